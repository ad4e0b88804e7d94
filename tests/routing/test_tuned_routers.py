"""The issue-16 routers (tuned kNN, cluster, IRT): they fit, predict a quality per model,
survive the artifact, route better than chance on data with structure, refuse data they cannot
learn from naming the minimum, and tune their hyper-parameters on training items only."""

from __future__ import annotations

import numpy as np
import pytest

from rankgate.embed import HashEmbedder
from rankgate.outcomes import Outcome
from rankgate.routing import artifact
from rankgate.routing.base import OutcomeMatrix
from rankgate.routing.knn_tuned import TunedKNNRouter
from rankgate.routing.registry import ROUTERS, make
from rankgate.routing.train_replay import run_replay, split

NEW = ["knn_tuned", "cluster", "irt"]
TOPICS = ["add these numbers and give the sum", "write a python function that sorts a list",
          "who was the king of france in 1700", "translate this sentence into german"]
SKILL = np.array([[0.15, 0.6, 0.95], [0.05, 0.3, 0.9], [0.8, 0.85, 0.9], [0.5, 0.9, 0.7]])
MODELS = ["tiny", "mid", "big"]


def synthetic(n: int, seed: int = 0) -> OutcomeMatrix:
    """Four kinds of prompt; each model's success rate depends on the kind."""
    rng = np.random.default_rng(seed)
    kind = np.arange(n) % len(TOPICS)
    prompts = [f"{TOPICS[k]}: item {i} " + " ".join(rng.choice(list("pqrstuvw"), 4))
               for i, k in enumerate(kind)]
    Y = (rng.random((n, 3)) < SKILL[kind]).astype(float)
    return OutcomeMatrix([f"s{seed}-{i}" for i in range(n)], prompts, MODELS, Y,
                         np.tile([1e-6, 1e-5, 1e-4], (n, 1)))


@pytest.fixture(scope="module")
def emb() -> HashEmbedder:
    return HashEmbedder()


@pytest.mark.parametrize("name", NEW)
def test_new_router_is_registered_and_fits_predicts_and_round_trips(name, emb, tmp_path):
    assert name in ROUTERS
    train, test = synthetic(240, 0), synthetic(80, 1)
    r = make(name, emb)
    r.fit(train)
    P = r.predict(test.prompts)
    assert P.shape == (80, 3) and np.all((P >= 0) & (P <= 1))
    path = artifact.save(r, tmp_path / f"{name}.npz", panel_models=MODELS,
                         costs=[1e-6, 1e-5, 1e-4], training_hash="x", embedder_name=emb.name)
    loaded, header = artifact.load(path, emb, MODELS)
    assert header["router"] == name
    np.testing.assert_allclose(loaded.predict(test.prompts), P, atol=1e-9)


@pytest.mark.parametrize("name", NEW)
def test_new_router_picks_better_than_a_random_model(name, emb):
    train, test = synthetic(400, 0), synthetic(200, 1)
    r = make(name, emb)
    r.fit(train)
    picked = test.scores[np.arange(200), r.predict(test.prompts).argmax(axis=1)].mean()
    expected_best = SKILL[np.arange(200) % 4].max(axis=1).mean()
    assert picked > test.scores.mean() + 0.1  # a random pick averages the matrix
    assert picked > expected_best - 0.12


@pytest.mark.parametrize("name", NEW)
def test_new_router_refuses_one_model(name, emb):
    d = synthetic(120)
    one = OutcomeMatrix(d.item_ids, d.prompts, ["big"], d.scores[:, 2:], d.costs[:, 2:])
    with pytest.raises(ValueError, match="at least 2 models"):
        make(name, emb).fit(one)


@pytest.mark.parametrize("name", NEW)
def test_new_router_refuses_scores_without_variation(name, emb):
    d = synthetic(120)
    flat = OutcomeMatrix(d.item_ids, d.prompts, MODELS, np.ones_like(d.scores), d.costs)
    with pytest.raises(ValueError, match="scores that vary"):
        make(name, emb).fit(flat)


@pytest.mark.parametrize(("name", "minimum"), [("knn_tuned", 20), ("cluster", 40), ("irt", 40)])
def test_new_router_refuses_too_few_items_naming_the_minimum(name, minimum, emb):
    d = synthetic(12)
    with pytest.raises(ValueError, match=f"at least {minimum} items, got 12"):
        make(name, emb).fit(d)


def test_tuned_knn_cross_validates_on_the_training_items_it_was_given(emb):
    train = synthetic(200, 0)
    r = TunedKNNRouter(emb)
    r.fit(train)
    assert r.cv_items == train.item_ids
    assert set(r.chosen) >= {"k", "temperature", "prior"}


def _outcomes(d: OutcomeMatrix) -> list[Outcome]:
    return [Outcome(pid, p, m, float(d.scores[i, j]), cost_usd=float(d.costs[i, j]))
            for i, (pid, p) in enumerate(zip(d.item_ids, d.prompts, strict=True))
            for j, m in enumerate(d.models)]


def test_replay_never_lets_hyperparameter_search_see_a_test_item(emb, monkeypatch):
    """Poison the held-out items (every score inverted) and record every item any tuned-kNN
    fit sees during replay — the router, its calibration folds and its guarantee: none is a
    test item, and the hyper-parameters chosen are those chosen without the poison."""
    rows = _outcomes(synthetic(300, 0))
    train_rows, test_rows = split(rows, 0.3, seed=0)
    test_ids = {o.prompt_id for o in test_rows}
    poisoned = [Outcome(o.prompt_id, o.prompt, o.model, 1.0 - o.score, cost_usd=o.cost_usd)
                for o in test_rows]
    seen: list[set[str]] = []
    chosen: list[dict] = []
    original = TunedKNNRouter.fit_embedded

    def spy(self, X, data):
        seen.append(set(data.item_ids))
        original(self, X, data)
        chosen.append(dict(self.chosen))

    monkeypatch.setattr(TunedKNNRouter, "fit_embedded", spy)
    run_replay(train_rows, poisoned, ["knn_tuned"], emb, n_boot=0)
    assert len(seen) == 1 + 5  # the router, then one per calibration fold
    assert all(not (s & test_ids) for s in seen)
    poisoned_choice = chosen[0]
    seen.clear()
    chosen.clear()
    run_replay(train_rows, test_rows, ["knn_tuned"], emb, n_boot=0)
    assert chosen[0] == poisoned_choice
