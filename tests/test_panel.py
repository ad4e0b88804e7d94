"""Panel files: valid ones load; every mistake is one line naming file, model and field."""

from __future__ import annotations

import pytest

from rankgate.panel import PanelError, default_panel, load_panel


def write(tmp_path, text: str):
    p = tmp_path / "panel.yaml"
    p.write_text(text)
    return p


def test_default_panel_is_the_three_bundled_models_cheapest_first():
    assert default_panel().ids == ["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]


def test_valid_panel_loads_in_order(tmp_path):
    p = load_panel(write(tmp_path, """
models:
  - id: local-small
    backend: llamacpp
    bundled: smollm2-135m
  - id: gpt-4o-mini
    backend: openai
    base_url: https://api.openai.com/v1
    api_key_env: OPENAI_API_KEY
    input_price_per_mtok: 0.15
    output_price_per_mtok: 0.6
"""))
    assert p.ids == ["local-small", "gpt-4o-mini"]
    assert p.get("gpt-4o-mini").output_price_per_mtok == 0.6


@pytest.mark.parametrize(("text", "expected"), [
    ("- {id: a, backend: vllm, base_url: http://x}", "model 'a': field 'backend'"),
    ("- {id: a, backend: openai}", "model 'a': field '(model)': openai models need 'base_url'"),
    ("- {id: a, backend: openai, base_url: http://x, temprature: 1}",
     "model 'a': field 'temprature': Extra inputs are not permitted"),
    ("- {id: a, backend: llamacpp}", "exactly one of 'path' or 'bundled'"),
    ("- {id: a, backend: llamacpp, bundled: gpt-9}", "unknown bundled model 'gpt-9'"),
    ("- {backend: openai, base_url: http://x}", "model #1: field 'id': Field required"),
    ("- {id: a, backend: openai, base_url: http://x, input_price_per_mtok: -1,"
     " output_price_per_mtok: 1}", "field 'input_price_per_mtok'"),
    ("- {id: a, backend: openai, base_url: http://x, input_price_per_mtok: 1}",
     "give both input_price_per_mtok and output_price_per_mtok"),
    ("- {id: a, backend: openai, base_url: http://x}\n- {id: a, backend: openai, base_url: http://y}",
     "model 'a': field 'id': duplicate id"),
    ("models: []", "the panel has no models"),
    ("just a string", "expected a list of models"),
    ("- [unclosed", "not valid YAML"),
])
def test_mistakes_are_one_line_naming_file_model_and_field(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(PanelError) as e:
        load_panel(path)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(str(path))
    assert expected in msg


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(PanelError, match="cannot read panel file"):
        load_panel(tmp_path / "nope.yaml")
