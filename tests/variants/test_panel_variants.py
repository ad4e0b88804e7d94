"""``base+recipe`` ids resolve against the panel; custom variants are panel YAML entries;
bad ones are refused at load naming file, model and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from rankgate.panel import PanelError, default_panel, load_panel
from tests.variants.conftest import faulty_panel


def test_a_built_in_recipe_applies_to_any_panel_model_with_no_configuration():
    panel = default_panel()
    spec = panel.get("smollm2-135m+cot")
    assert spec is not None and spec.base == "smollm2-135m" and spec.recipe == {"name": "cot"}
    assert spec.backend == "llamacpp" and spec.bundled == "smollm2-135m"
    assert "qwen2.5-coder-0.5b+sc5" in panel
    assert "smollm2-135m+cot" not in panel.ids  # listed models stay the declared ones


def test_recipes_chain_and_each_link_is_a_variant_of_the_previous():
    spec = default_panel().get("smollm2-135m+retrieved+cot")
    assert spec is not None and spec.base == "smollm2-135m+retrieved"


def test_an_unknown_recipe_is_named():
    panel = default_panel()
    assert panel.get("smollm2-135m+cott") is None
    assert "unknown recipe 'cott'" in panel.why_unknown("smollm2-135m+cott")
    assert "'nope' is not a model" in panel.why_unknown("nope+cot")


def test_a_misconfigured_built_in_is_named():
    assert "recipe 'sc': k must be" in default_panel().why_unknown("smollm2-135m+sc0")


def test_custom_variants_are_declared_in_the_panel_yaml(tmp_path: Path):
    f = tmp_path / "panel.yaml"
    f.write_text("""
models:
  - {id: echo, backend: faulty}
  - echo+cot
  - id: echo+terse
    recipe: {use: system, text: "Answer in one line."}
  - id: terse-sc
    base: echo+terse
    recipe: sc3
""")
    panel = load_panel(f)
    assert panel.ids == ["echo", "echo+cot", "echo+terse", "terse-sc"]
    assert panel.get("echo+terse").recipe == {"use": "system", "text": "Answer in one line."}
    assert panel.get("terse-sc").base == "echo+terse"
    assert panel.get("echo+terse+cot").base == "echo+terse"  # built-ins on a custom variant


@pytest.mark.parametrize(("entries", "message"), [
    (["ghost+cot"], "model 'ghost+cot': field 'base': 'ghost' is not a model of this panel"),
    ([{"id": "x", "base": "ghost", "recipe": "cot"}],
     "model 'x': field 'base': 'ghost' is not a model of this panel"),
    (["echo+cott"], "model 'echo+cott': field 'recipe': unknown recipe 'cott'"),
    ([{"id": "echo+t", "recipe": {"use": "system", "txt": "a"}}],
     "model 'echo+t': field 'recipe': recipe 'system': unknown option 'txt'"),
    ([{"id": "echo+s", "recipe": {"text": "a"}}], "field 'recipe': a mapping needs 'use'"),
    ([{"id": "echo+s", "recipe": "cot", "path": "x.gguf"}], "field 'path': not a field"),
])
def test_a_bad_variant_is_refused_at_load_naming_file_model_and_field(entries, message):
    with pytest.raises(PanelError) as e:
        faulty_panel(*entries)
    assert str(e.value).startswith("test-panel.yaml: ")
    assert message in str(e.value)


def test_a_model_entry_cannot_also_be_a_variant():
    with pytest.raises(PanelError, match="model 'x': field '\\(model\\)': 'base' and 'recipe' "
                       "declare a variant"):
        faulty_panel({"id": "x", "backend": "faulty", "base": "echo", "recipe": {"use": "cot"}})
