"""Tool calls from local models: which templates can take tools, and how answers become
``tool_calls`` (the live path is in tests/routing/test_live_routing.py)."""

from __future__ import annotations

from pathlib import Path

import orjson

from rankgate.backends.gguf_meta import chat_template
from rankgate.backends.llamacpp_tools import (
    as_chunks,
    extract_tool_calls,
    native_messages,
    template_calls_tools,
)


def _body(text: str) -> dict:
    return {"id": "x", "created": 1, "model": "m", "choices": [
        {"index": 0, "finish_reason": "stop",
         "message": {"role": "assistant", "content": text}}]}


def test_templates_say_whether_a_model_can_call_tools(smollm_path: Path, qwen05_path: Path):
    assert "im_start" in (chat_template(smollm_path) or "")
    assert not template_calls_tools(smollm_path)
    assert template_calls_tools(qwen05_path)
    assert chat_template(smollm_path.parent / "no-such.gguf") is None


def test_tagged_calls_become_tool_calls_and_the_rest_stays_text():
    body = _body('Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": '
                 '{"city": "Oslo"}}\n</tool_call>')
    extract_tool_calls(body, {"get_weather"})
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me check."
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert orjson.loads(call["function"]["arguments"]) == {"city": "Oslo"}


def test_a_fenced_json_call_of_an_offered_tool_is_a_call():
    body = _body('```json\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n```')
    extract_tool_calls(body, {"get_weather"})
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert body["choices"][0]["message"]["content"] is None


def test_json_naming_a_tool_not_offered_stays_an_answer():
    text = '{"name": "delete_everything", "arguments": {}}'
    body = _body(text)
    extract_tool_calls(body, {"get_weather"})
    assert body["choices"][0]["message"] == {"role": "assistant", "content": text}
    assert body["choices"][0]["finish_reason"] == "stop"


def test_broken_json_in_a_tag_stays_text():
    body = _body('<tool_call>{"name": "get_weather", "arguments": {"city": </tool_call>')
    extract_tool_calls(body, {"get_weather"})
    assert "tool_calls" not in body["choices"][0]["message"]


def test_replayed_calls_reach_the_template_with_object_arguments():
    msgs = native_messages([
        {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "f", "arguments": '{"a": 1}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"}])
    assert msgs[0] == {"role": "system", "content": "Be brief."}
    assert msgs[1]["content"] == "" and msgs[1]["tool_calls"][0]["function"]["arguments"] == {
        "a": 1}
    assert msgs[2]["tool_call_id"] == "c1"


def test_a_finished_call_replays_as_stream_chunks():
    body = _body('<tool_call>{"name": "f", "arguments": {}}</tool_call>')
    extract_tool_calls(body, {"f"})
    chunks = as_chunks(body)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert chunks[1]["choices"][0]["delta"]["tool_calls"][0]["index"] == 0
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
