"""Backends are found through the registry and described by their capabilities: nothing outside
``backends/`` asks which class a backend is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rankgate.backends.registry import BACKENDS, backend_type
from rankgate.config import Settings
from rankgate.panel import ModelSpec, Panel, PanelError, parse_panel
from rankgate.pricing import Pricer
from rankgate.runtime import open_panel

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


SRC = Path(__file__).resolve().parents[2] / "src" / "rankgate"


def test_no_backend_class_checks_outside_backends():
    pattern = re.compile(r"isinstance\([^)]*Backend\)|spec\.backend ==|\.backend == ")
    offenders = [f"{p.relative_to(SRC)}:{n}" for p in SRC.rglob("*.py")
                 if "backends" not in p.relative_to(SRC).parts
                 for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []


def test_unknown_backend_names_the_known_ones():
    with pytest.raises(PanelError) as e:
        parse_panel([{"id": "a", "backend": "vllm", "base_url": "http://x"}], "p.yaml")
    msg = str(e.value)
    assert "model 'a': field 'backend'" in msg
    assert all(repr(name) in msg for name in BACKENDS)


def test_each_backend_validates_its_own_fields():
    with pytest.raises(ValueError, match="base_url"):
        backend_type("openai").validate(ModelSpec.model_construct(id="a", backend="openai",
                                                                 base_url=None))
    with pytest.raises(PanelError, match="faulty' takes no path"):
        parse_panel([{"id": "a", "backend": "faulty", "path": "/x.gguf"}], "p.yaml")


async def test_capabilities_say_what_each_backend_takes(smollm_path: Path):
    panel = Panel([
        ModelSpec(id="small", backend="llamacpp", path=str(smollm_path)),
        ModelSpec(id="remote", backend="openai", base_url="http://127.0.0.1:9/v1"),
        ModelSpec(id="remote-text", backend="openai", base_url="http://127.0.0.1:9/v1",
                  capabilities={"images": False, "audio": False}),
    ])
    async with open_panel(panel, Settings(local_slots=3)) as rt:
        small, remote, text = (rt.backends[m].capabilities for m in panel.ids)
        # a local model takes as many requests at once as it has batch slots
        assert (small.images, small.tools, small.max_concurrency) == (False, False, 3)
        assert small.logprobs and small.compute_priced
        assert remote.images and remote.tools and remote.max_concurrency is None
        assert not text.images and not text.audio and text.tools  # narrowed, not widened
        assert rt.backends["small"].context_window == 8192
        assert rt.pricers["small"].basis == "local-compute"
        assert rt.concurrency("small", 8) == 3 and rt.concurrency("remote", 8) == 8


def test_a_panel_entry_cannot_invent_a_capability():
    with pytest.raises(PanelError, match="unknown capability 'telepathy'"):
        parse_panel([{"id": "a", "backend": "openai", "base_url": "http://x",
                      "capabilities": {"telepathy": True}}], "p.yaml")


def test_pricer_takes_the_backend_types_pricing_when_not_told():
    spec = ModelSpec(id="m", backend="llamacpp", path="/nowhere.gguf")
    assert Pricer(spec, 0.1).basis == "local-compute"
    assert Pricer(spec, 0.1, compute_priced=False).basis.startswith("unknown")


async def test_two_entries_on_one_file_share_loaded_weights(smollm_path: Path):
    panel = Panel([ModelSpec(id="a", backend="llamacpp", path=str(smollm_path)),
                   ModelSpec(id="b", backend="llamacpp", path=str(smollm_path),
                             tags=("variant",))])
    async with open_panel(panel, Settings(threads=1)) as rt:
        a, b = rt.backends["a"], rt.backends["b"]
        assert a.weights is b.weights
        await a.complete("chat", {"messages": [{"role": "user", "content": "Hi"}],
                                  "max_tokens": 2, "temperature": 0})
        assert b.status().loaded  # loaded once, for both
        r = await b.complete("chat", {"messages": [{"role": "user", "content": "Hi"}],
                                      "max_tokens": 2, "temperature": 0})
        assert r.usage.output_tokens and r.usage.output_tokens <= 2
    assert not a.status().loaded  # closing the runtime released the weights


async def test_status_reports_a_missing_file_without_loading(tmp_path: Path):
    panel = Panel([ModelSpec(id="gone", backend="llamacpp", path=str(tmp_path / "x.gguf"))])
    async with open_panel(panel, Settings()) as rt:
        st = rt.backends["gone"].status()
        await rt.load()  # preload skips what is not there; the first request will say why
    assert (st.ready, st.loaded, st.note) == (False, False, "file missing")


def test_open_panel_refuses_unknown_models():
    panel = Panel([ModelSpec(id="a", backend="faulty")])
    with pytest.raises(KeyError, match="not in the panel: b"):
        open_panel(panel, Settings(), ["a", "b"])
