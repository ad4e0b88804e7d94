"""Real ``tool_calls`` from local models whose chat template knows tools (Qwen2.5 and kin).

Such a template renders the offered tools into the system prompt and asks the model to answer
a call as ``<tool_call>{"name": …, "arguments": {…}}</tool_call>``. rankgate passes the tools
to the template (llama-cpp-python's Jinja formatter does), forces that shape with a grammar when
the client requires a call (``tool_choice: "required"`` or a named function), and turns the
tagged blocks of the answer into OpenAI ``tool_calls`` with ``finish_reason: "tool_calls"``.
Models whose template has no tools (SmolLM2) do not claim the capability: the gateway answers a
request with tools for them with a 400 naming the model.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import orjson

from rankgate.backends.gguf_meta import chat_template
from rankgate.messages import content_text

_CALL = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.S)
_FENCED = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


def template_calls_tools(path: Path) -> bool:
    """Whether the GGUF file's chat template renders tools and asks for ``<tool_call>``."""
    tpl = chat_template(path)
    return tpl is not None and "tools" in tpl and "<tool_call>" in tpl


def wants_tools(payload: dict[str, Any]) -> bool:
    return bool(payload.get("tools")) and payload.get("tool_choice") != "none"


def native_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as a tool-aware template reads them: string content (parts joined, null as
    empty), ``developer`` as ``system``, tool-call arguments as objects (templates apply
    ``tojson`` to them, which would quote an OpenAI argument string a second time)."""
    out = []
    for m in messages:
        role = "system" if m.get("role") == "developer" else m.get("role")
        msg: dict[str, Any] = {"role": role, "content": content_text(m.get("content"))}
        if m.get("tool_calls"):
            msg["tool_calls"] = [_call_for_template(c) for c in m["tool_calls"]]
        for k in ("tool_call_id", "name"):
            if m.get(k) is not None:
                msg[k] = m[k]
        out.append(msg)
    return out


def _call_for_template(call: dict[str, Any]) -> dict[str, Any]:
    fn = dict(call.get("function") or {})
    args = fn.get("arguments")
    if isinstance(args, str):
        try:
            fn["arguments"] = orjson.loads(args)
        except orjson.JSONDecodeError:
            pass  # not JSON: the template shows it as a string
    return {"id": call.get("id"), "type": "function", "function": fn}


def forced_call_grammar(payload: dict[str, Any]) -> Any:
    """A grammar that makes the model call a tool (``tool_choice`` "required" or a named
    function), or None when the model may answer in text."""
    choice = payload.get("tool_choice")
    if isinstance(choice, dict):
        names = [choice["function"]["name"]]
    elif choice == "required":
        names = [t["function"]["name"] for t in payload["tools"]]
    else:
        return None
    from llama_cpp import llama_grammar

    json_rules = "\n".join(line for line in llama_grammar.JSON_GBNF.splitlines()
                           if not line.startswith("root"))
    alternatives = " | ".join(f'"{n}"' for n in names)  # names match [A-Za-z0-9_-]{1,64}
    gbnf = ('root ::= "<tool_call>\\n{\\"name\\": \\"" name "\\", \\"arguments\\": " object '
            '"}\\n</tool_call>"\n'
            f"name ::= {alternatives}\n{json_rules}")
    return llama_grammar.LlamaGrammar.from_string(gbnf, verbose=False)


def _call(data: Any, offered: set[str]) -> dict[str, Any] | None:
    """An OpenAI tool call from ``{"name", "arguments"}``, if it names an offered tool."""
    if not isinstance(data, dict) or data.get("name") not in offered:
        return None
    args = data.get("arguments", {})
    return {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
            "function": {"name": data["name"], "arguments": args if isinstance(args, str)
                         else orjson.dumps(args).decode()}}


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def extract_tool_calls(body: dict[str, Any], offered: set[str]) -> None:
    """Turn the calls in the answer's text into OpenAI ``tool_calls`` (in place), naming only
    ``offered`` tools: ``<tool_call>`` blocks (text outside them stays the content), or — as
    small models often answer — the whole answer being such a JSON object, bare or fenced."""
    choice = body["choices"][0]
    message = choice.get("message") or {}
    text = message.get("content") or ""
    calls = [c for m in _CALL.finditer(text) if (c := _call(_loads(m.group(1)), offered))]
    rest = _CALL.sub("", text).strip() if calls else text
    if not calls:
        fenced = _FENCED.match(text)
        data = _loads(fenced.group(1) if fenced else text.strip())
        items = data if isinstance(data, list) else [data]
        found = [_call(d, offered) for d in items]
        if not items or None in found:
            return
        calls, rest = [c for c in found if c is not None], ""
    message["content"] = rest or None
    message["tool_calls"] = calls
    message.pop("function_call", None)
    choice["message"] = message
    choice["finish_reason"] = "tool_calls"


def as_chunks(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A finished chat completion as the stream chunks that would have carried it (tool calls
    are only known once the answer is complete, so tool requests stream at the end)."""
    choice = body["choices"][0]
    message = choice.get("message") or {}
    base = {"id": body.get("id"), "object": "chat.completion.chunk",
            "created": body.get("created"), "model": body.get("model")}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant"},
                                    "finish_reason": None}]}]
    if message.get("content"):
        chunks.append({**base, "choices": [{"index": 0, "delta": {
            "content": message["content"]}, "finish_reason": None}]})
    for i, call in enumerate(message.get("tool_calls") or ()):
        chunks.append({**base, "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": i, **call}]}, "finish_reason": None}]})
    chunks.append({**base, "choices": [{"index": 0, "delta": {},
                                        "finish_reason": choice.get("finish_reason")}]})
    return chunks
