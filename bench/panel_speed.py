"""Generation speed of each embedded panel model, measured through the gateway.

Starts ``rankgate serve`` on the embedded default panel (127.0.0.1, free port), warms each
model up, then asks each for the same fixed-length answers (``max_tokens`` tokens, greedy,
``ignore_eos``-free prompts that run long) and reports, per model: decode tokens/s from the
streamed chunks (first token → last token), TTFT, end-to-end completion tokens/s, and the
cost the gateway charged per request. All models are measured in one run on the same machine.

Run: ``.venv/bin/python bench/panel_speed.py [--requests 3] [--max-tokens 128] [--json]``
(needs the panel prepared: ``rankgate panel prepare``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import httpx
import openai
from rich.console import Console
from rich.table import Table

PROMPT = [{"role": "user", "content": "Write a long story about a lighthouse keeper who "
                                       "discovers a map. Use many details."}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(client: openai.OpenAI, model: str, n: int, max_tokens: int) -> dict:
    decode, ttft, e2e, costs = [], [], [], []
    client.chat.completions.create(model=model, messages=PROMPT, max_tokens=8)  # load + warm
    for _ in range(n):
        t0 = time.perf_counter()
        first = last = None
        chunks = 0
        with client.chat.completions.with_streaming_response.create(
                model=model, messages=PROMPT, max_tokens=max_tokens, temperature=0,
                stream=True, stream_options={"include_usage": True}) as resp:
            for c in resp.parse():
                now = time.perf_counter()
                if c.choices and c.choices[0].delta.content:
                    chunks += 1
                    first = first or now
                    last = now
                if c.usage:
                    out_tokens = c.usage.completion_tokens
                    costs.append(c.model_extra["rankgate"]["cost_usd"])
        assert first is not None and last is not None
        ttft.append(first - t0)
        if out_tokens > 1:
            decode.append((out_tokens - 1) / (last - first))
        e2e.append(out_tokens / (last - t0))
    return {"model": model, "requests": n, "output_tokens": out_tokens,
            "decode_tok_s": statistics.median(decode), "ttft_s": statistics.median(ttft),
            "e2e_tok_s": statistics.median(e2e), "cost_usd_per_request": statistics.median(costs)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    port = _free_port()
    home = os.environ.get("RANKGATE_HOME")  # reuse the prepared panel
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "RANKGATE_STORE_URL": f"sqlite:///{tmp}/bench.db"}
        if home:
            env["RANKGATE_HOME"] = home
        proc = subprocess.Popen([sys.executable, "-m", "rankgate", "serve", "--port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x",
                                   timeout=600)
            ready = httpx.get(f"http://127.0.0.1:{port}/healthz").json()["models"]
            rows = [measure(client, m, args.requests, args.max_tokens)
                    for m, info in ready.items() if info.get("ready")]
        finally:
            proc.terminate()
            proc.wait(30)
    if args.json:
        print(json.dumps({"threads": os.cpu_count(), "models": rows}, indent=2))
        return
    t = Table(title=f"embedded panel through the gateway ({os.cpu_count()} cores, "
                    f"{args.max_tokens} tokens, median of {args.requests})")
    for col in ("model", "decode tok/s", "end-to-end tok/s", "TTFT s", "$ / request"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["model"], f"{r['decode_tok_s']:.1f}", f"{r['e2e_tok_s']:.1f}",
                  f"{r['ttft_s']:.3f}", f"{r['cost_usd_per_request']:.2e}")
    Console().print(t)


if __name__ == "__main__":
    main()
