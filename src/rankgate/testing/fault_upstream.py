"""A fast OpenAI-compatible HTTP upstream whose model names inject faults.

It is the stand-in upstream for two jobs where a real model would only add noise:
benchmarks of the gateway's own overhead (it answers in microseconds) and failure tests and
chaos drills (it fails exactly as asked). It is never used in place of a model under test.

Model names: ``error-500``, ``error-503``, ``rate-limit-429``, ``bad-request-400``, ``slow-<ms>``,
``hang``, ``err-in-stream``, ``truncated-stream``, ``bad-json``, ``error-in-200``; any other name
answers normally ("Hello from the fault upstream."), streamed word by word when asked.
``/v1/embeddings`` answers deterministic unit vectors (a hash of each input; ``error-<status>``
fails), so embeddings pass-through is tested the same way.

Run: ``python -m rankgate.testing.fault_upstream --port 9100``. A raw ASGI app (no framework)
so that the upstream is never the bottleneck of a benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

REPLY = "Hello from the fault upstream."
_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


async def _read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            return body


async def _respond(send: Send, status: int, body: bytes, headers: list | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or _JSON})
    await send({"type": "http.response.body", "body": body})


def _error(status: int, message: str, type_: str = "server_error") -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "param": None,
                                   "code": str(status)}})


def _completion(kind: str, model: str, n_prompt: int) -> dict[str, Any]:
    n_out = len(REPLY.split())
    choice: dict[str, Any] = {"index": 0, "finish_reason": "stop", "logprobs": None}
    if kind == "chat":
        choice["message"] = {"role": "assistant", "content": REPLY}
    else:
        choice["text"] = REPLY
    return {"id": "up-1", "object": "chat.completion" if kind == "chat" else "text_completion",
            "created": int(time.time()), "model": model, "choices": [choice],
            "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_out,
                      "total_tokens": n_prompt + n_out}}


def _chunk(kind: str, model: str, text: str | None, finish: str | None) -> bytes:
    if kind == "chat":
        delta = {"content": text} if text is not None else {}
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
        obj = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": text or "", "finish_reason": finish}
        obj = "text_completion"
    return b"data: " + orjson.dumps({"id": "up-1", "object": obj, "created": 0, "model": model,
                                     "choices": [choice]}) + b"\n\n"


def _prompt_tokens(req: dict[str, Any]) -> int:
    if "messages" in req:
        return sum(len(str(m.get("content", "")).split()) for m in req["messages"]) or 1
    return len(str(req.get("prompt", "")).split()) or 1


async def _stream(send: Send, kind: str, model: str, req: dict[str, Any]) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": _SSE})
    words = REPLY.split()
    for i, w in enumerate(words):
        await send({"type": "http.response.body", "more_body": True,
                    "body": _chunk(kind, model, w if i == 0 else " " + w, None)})
        if i == 1 and model == "err-in-stream":
            err = b"data: " + _error(500, "upstream crashed mid-stream") + b"\n\n"
            await send({"type": "http.response.body", "body": err})
            return
        if i == 1 and model == "truncated-stream":
            await send({"type": "http.response.body", "body": b""})  # ends without [DONE]
            return
    tail = _chunk(kind, model, None, "stop")
    if (req.get("stream_options") or {}).get("include_usage"):
        usage = _completion(kind, model, _prompt_tokens(req))["usage"]
        tail += b"data: " + orjson.dumps({"id": "up-1", "object": "chat.completion.chunk",
                                          "created": 0, "model": model, "choices": [],
                                          "usage": usage}) + b"\n\n"
    await send({"type": "http.response.body", "body": tail + b"data: [DONE]\n\n"})


async def _embeddings(send: Send, raw: bytes) -> None:
    """Deterministic 8-dimensional unit vectors (``dimensions`` changes the size), one per
    input, from a hash of the input; ``error-<status>`` models fail as for completions."""
    import base64
    import hashlib
    import struct

    try:
        req = orjson.loads(raw)
    except orjson.JSONDecodeError:
        await _respond(send, 400, _error(400, "body is not JSON", "invalid_request_error"))
        return
    model = str(req.get("model", ""))
    if model.startswith("error-") and model[6:].isdigit():
        await _respond(send, int(model[6:]), _error(int(model[6:]), f"injected {model}"))
        return
    inputs = req.get("input")
    items = inputs if isinstance(inputs, list) and not all(isinstance(t, int) for t in inputs) \
        else [inputs]
    dims = int(req.get("dimensions") or 8)
    data, tokens = [], 0
    for i, item in enumerate(items):
        text = item if isinstance(item, str) else " ".join(map(str, item))
        tokens += len(text.split())
        seed = hashlib.sha256(text.encode()).digest()
        raw_v = [(seed[j % 32] + j) % 251 - 125.0 for j in range(dims)]
        norm = sum(x * x for x in raw_v) ** 0.5 or 1.0
        vec = [x / norm for x in raw_v]
        emb: object = vec
        if req.get("encoding_format") == "base64":
            emb = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode()
        data.append({"object": "embedding", "index": i, "embedding": emb})
    await _respond(send, 200, orjson.dumps({
        "object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}))


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if scope["method"] == "GET" and path.endswith("/models"):
        await _respond(send, 200, orjson.dumps({"object": "list", "data": [
            {"id": "fast", "object": "model", "created": 0, "owned_by": "fault-upstream"}]}))
        return
    if scope["method"] == "POST" and path.endswith("/embeddings"):
        await _embeddings(send, await _read_body(receive))
        return
    if scope["method"] != "POST" or not path.endswith("completions"):
        await _respond(send, 404, _error(404, f"no route {path}", "invalid_request_error"))
        return
    kind = "chat" if path.endswith("chat/completions") else "text"
    try:
        req = orjson.loads(await _read_body(receive))
    except orjson.JSONDecodeError:
        await _respond(send, 400, _error(400, "body is not JSON", "invalid_request_error"))
        return
    model = str(req.get("model", ""))
    if model.startswith("slow-"):
        await asyncio.sleep(int(model.removeprefix("slow-")) / 1000.0)
    elif model == "hang":
        await asyncio.sleep(3600)
    elif model.startswith("error-") and model[6:].isdigit():
        await _respond(send, int(model[6:]), _error(int(model[6:]), f"injected {model}"))
        return
    elif model == "rate-limit-429":
        await _respond(send, 429, _error(429, "injected rate limit", "rate_limit_error"),
                       [*_JSON, (b"retry-after", b"1")])
        return
    elif model == "bad-request-400":
        await _respond(send, 400, _error(400, "injected bad request", "invalid_request_error"))
        return
    elif model == "bad-json":
        await _respond(send, 200, b"<html>not json</html>")
        return
    elif model == "error-in-200":
        await _respond(send, 200, orjson.dumps({"error": {"message": "injected error in 200"}}))
        return
    if req.get("stream"):
        await _stream(send, kind, model, req)
        return
    await _respond(send, 200, orjson.dumps(_completion(kind, model, _prompt_tokens(req))))


def main() -> None:
    import uvicorn

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9100)
    args = ap.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                loop="uvloop", http="httptools")


if __name__ == "__main__":
    main()
