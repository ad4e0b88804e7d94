"""Variants evaluate like models (self-consistency's cost counts all k calls), and bad input
— an unknown recipe, one that cannot apply — is one line and a non-zero exit before any
generation runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rankgate.eval.runner import RunConfig, Runner
from rankgate.eval.scorers.base import Item
from rankgate.outcomes import read_jsonl
from rankgate.runtime import open_panel
from rankgate.variants import RecipeError
from tests.variants.conftest import faulty_panel

ITEM = Item(id="f-1", messages=[{"role": "user", "content": "Say hello to the user."}],
            scorer="contains", target=["hello"], category="factual")


@pytest.mark.anyio
async def test_self_consistency_costs_k_times_its_base_in_evaluation(anyio_backend, settings,
                                                                     tmp_path):
    out = tmp_path / "out.jsonl"
    rt = open_panel(faulty_panel(), settings, ["echo", "echo+sc3"])
    try:
        await Runner({m: rt.backends[m] for m in ("echo", "echo+sc3")}, rt.pricers, None,
                     RunConfig()).run([ITEM], ["echo", "echo+sc3"], out)
    finally:
        await rt.aclose()
    rows = {o.model: o for o in read_jsonl(out)}
    base, sc = rows["echo"], rows["echo+sc3"]
    assert base.score == sc.score == 1.0
    assert sc.input_tokens == 3 * base.input_tokens
    assert sc.output_tokens == 3 * base.output_tokens
    assert sc.cost_usd == pytest.approx(3 * base.cost_usd)


def test_a_quantisation_no_package_ships_is_refused_naming_it(settings):
    from rankgate.panel import default_panel

    with pytest.raises(RecipeError) as e:
        open_panel(default_panel(), settings, ["smollm2-135m+q8_0"])
    assert "recipe 'q8_0' of 'smollm2-135m+q8_0' cannot apply: no installed package ships " \
        "smollm2-135m as Q8_0 (installed: SmolLM2-135M-Instruct.Q4_1.gguf)" in str(e.value)


def test_a_quantisation_of_the_quantisation_installed_says_so(settings):
    from rankgate.panel import default_panel

    with pytest.raises(RecipeError, match="smollm2-135m is already Q4_1"):
        open_panel(default_panel(), settings, ["smollm2-135m+q4_1"])


def test_a_quantisation_of_a_remote_model_is_refused(settings):
    with pytest.raises(RecipeError, match="served by backend 'faulty'"):
        open_panel(faulty_panel(), settings, ["echo+q8_0"])


def rankgate(*args: str, home: Path, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "rankgate", *args], capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "RANKGATE_HOME": str(home), **(env or {})})


@pytest.mark.parametrize(("model", "says"), [
    ("smollm2-135m+cott", "unknown recipe 'cott'"),
    ("nope+cot", "'nope' is not a model of this panel"),
    ("smollm2-135m+retrieved", "recipe 'retrieved' of 'smollm2-135m+retrieved' cannot apply"),
    ("smollm2-135m+q8_0", "no installed package ships smollm2-135m as Q8_0"),
])
def test_eval_refuses_a_bad_variant_in_one_line_before_generating(model, says, tmp_path):
    out = tmp_path / "out.jsonl"
    r = rankgate("eval", "--models", f"smollm2-135m,{model}", "--limit", "1", "--out",
                 str(out), home=tmp_path / "home")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0]
    assert not out.exists() or out.read_text() == ""  # nothing was generated
