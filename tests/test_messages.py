"""One reading of OpenAI messages for routing, caching, evaluation and local templates."""

from __future__ import annotations

from rankgate.eval.scorers.base import Item
from rankgate.messages import needs, plain_messages, prompt_text

AGENT = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": [{"type": "text", "text": "Weather in Oslo?"},
                                 {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "12 C"},
]


def test_prompt_text_reads_parts_and_tool_calls():
    text = prompt_text({"messages": AGENT})
    assert text.split("\n\n") == ["You are terse.", "Weather in Oslo?",
                                  '[tool call get_weather({"city": "Oslo"})]', "12 C"]
    assert prompt_text({"prompt": ["only"]}) == "only"


def test_evaluation_items_read_as_the_gateway_reads_them():
    msgs = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "2+2?"}]}]
    item = Item(id="a", messages=msgs, scorer="exact")
    assert item.prompt_text == prompt_text({"messages": msgs}) == "Be brief.\n\n2+2?"


def test_needs_points_at_the_part_or_field_that_needs_it():
    n = needs({"messages": AGENT, "tools": [{"type": "function", "function": {"name": "f"}}]})
    assert (n.images, n.tools, n.audio) == (True, True, False)
    assert n.where == {"images": "messages[1].content[1]", "tools": "tools"}
    told_not_to = needs({"messages": AGENT[:1], "tools": [{"type": "function"}],
                         "tool_choice": "none"})
    assert not told_not_to.tools


def test_plain_messages_keep_what_was_said_in_three_roles():
    plain = plain_messages([{"role": "developer", "content": "Rules."}, *AGENT,
                            {"role": "user", "name": "ana", "content": "thanks"}])
    assert [m["role"] for m in plain] == ["system", "system", "user", "assistant", "user",
                                         "user"]
    assert all(isinstance(m["content"], str) for m in plain)
    assert "get_weather" in plain[3]["content"]
    assert plain[4]["content"] == "[tool result c1]\n12 C"
    assert plain[5]["content"] == "ana: thanks"
