"""OpenAI chat messages as rankgate reads them: their text, what they need, and a plain form.

Clients send every shape the OpenAI API accepts — content as a string, ``null`` (an assistant
turn that only calls tools) or a list of parts (``text``, ``image_url``, ``input_audio``,
``file``, ``refusal``); ``tool``/``function`` results; ``developer`` instructions; ``name``
fields. Three questions are asked of them, always through this module so the answers can't
drift apart:

* **What is the text?** ``prompt_text`` is what routers train on and serve with, what the
  semantic cache compares and what evaluation records as the outcome's prompt — one function,
  so a router never trains on other text than it is served.
* **What does the request need?** ``needs`` lists the capabilities (images, audio, files, tool
  calls) a model must have to take it, so a model that can't gets a 400 naming the capability
  and ``auto`` routes only among models that can.
* **A plain form** for chat templates that only know ``{role, content: str}`` (most GGUF
  templates): ``plain_messages`` renders tool calls and results, refusals and text parts into
  strings, without losing what the conversation said.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

#: content-part types that carry something other than text, and the capability each needs
_PART_NEEDS = {"image_url": "images", "input_image": "images", "image": "images",
               "input_audio": "audio", "audio": "audio", "file": "files", "input_file": "files"}


def content_text(content: Any) -> str:
    """The text of one message's ``content``: a string as is, ``None`` as empty, a list of
    parts as its text (and refusal) parts joined by newlines; other parts contribute nothing."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                t = part.get("text") if part.get("type", "text") == "text" else \
                    part.get("refusal") if part.get("type") == "refusal" else None
                if isinstance(t, str):
                    texts.append(t)
        return "\n".join(texts)
    return str(content)


def _tool_calls_text(calls: Any) -> str:
    """An assistant's tool calls as text: ``[tool call get_weather({"city": "Oslo"})]``."""
    out = []
    for call in calls if isinstance(calls, list) else ():
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            args = fn.get("arguments")
            if not isinstance(args, str):
                args = orjson.dumps(args).decode()
            out.append(f"[tool call {fn.get('name')}({args})]")
    return "\n".join(out)


def message_text(message: dict[str, Any]) -> str:
    """One message as text, tool calls (and a legacy ``function_call``) included."""
    text = content_text(message.get("content"))
    if message.get("refusal") and isinstance(message["refusal"], str) and not text:
        text = message["refusal"]
    calls = _tool_calls_text(message.get("tool_calls"))
    fc = message.get("function_call")
    if isinstance(fc, dict):
        calls = "\n".join(filter(None, [calls, _tool_calls_text([{"function": fc}])]))
    return "\n".join(filter(None, [text, calls]))


def prompt_text(body: dict[str, Any]) -> str:
    """The request as routers, the cache and outcomes see it: the messages' texts joined by a
    blank line (chat), or the prompt (text completions; a one-element list is its element)."""
    if "messages" in body:
        msgs = body["messages"] or ()
        return "\n\n".join(message_text(m) for m in msgs if isinstance(m, dict))
    p = body.get("prompt", "")
    if isinstance(p, list):
        return str(p[0]) if p else ""
    return str(p)


@dataclass(frozen=True)
class Needs:
    """What a request asks of the model that answers it."""

    images: bool = False
    audio: bool = False
    files: bool = False
    tools: bool = False  # the model must be able to *return* tool calls
    #: capability -> the request field that needs it (``messages[0].content[1]``, ``tools``)
    where: dict[str, str] = field(default_factory=dict, compare=False)

    def missing(self, caps: Any) -> list[str]:
        """The needs ``caps`` (a backend's ``Capabilities``) does not meet, as words."""
        return [name for name in ("images", "audio", "files", "tools")
                if getattr(self, name) and not getattr(caps, name)]


def needs(body: dict[str, Any]) -> Needs:
    """The capabilities a chat request needs: media parts in any message, or ``tools`` /
    ``functions`` offered to the model (a replayed conversation with tool calls and results
    but no tools on offer needs nothing: it is text)."""
    where: dict[str, str] = {}
    for i, m in enumerate(body.get("messages") or ()):
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            for j, part in enumerate(content):
                if isinstance(part, dict) and part.get("type") in _PART_NEEDS:
                    where.setdefault(_PART_NEEDS[part["type"]], f"messages[{i}].content[{j}]")
    if body.get("functions"):
        where["tools"] = "functions"
    elif body.get("tools") and body.get("tool_choice") != "none":
        # tools described but the model told not to call them need nothing
        where["tools"] = "tools"
    return Needs(images="images" in where, audio="audio" in where, files="files" in where,
                 tools="tools" in where, where=where)


_ROLE_AS = {"developer": "system", "system": "system", "user": "user", "assistant": "assistant"}


def plain_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Messages any chat template can render: roles system/user/assistant, string content.

    ``developer`` becomes ``system``; an assistant's tool calls are written into its content;
    a ``tool`` (or legacy ``function``) result becomes a user turn that says which call it
    answers; consecutive turns of the same role stay separate (templates handle that). Only
    for models that cannot take tools natively: nothing the conversation said is dropped.
    """
    out: list[dict[str, str]] = []
    for m in messages:
        role = m.get("role")
        if role in ("tool", "function"):
            who = m.get("name") or m.get("tool_call_id") or "tool"
            out.append({"role": "user",
                        "content": f"[tool result {who}]\n{content_text(m.get('content'))}"})
            continue
        text = message_text(m)
        name = m.get("name")
        if isinstance(name, str) and name and role == "user":
            text = f"{name}: {text}"
        out.append({"role": _ROLE_AS.get(str(role), "user"), "content": text})
    return out
