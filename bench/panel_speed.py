"""Generation speed of each embedded panel model under concurrency, batched vs serial vs raw.

Three ways to run the same model on the same machine, measured one after the other in one run:

* **batched** — ``rankgate serve`` as shipped: concurrent requests to a local model share its
  decode steps (``backends/llamacpp_batch.py``, ``RANKGATE_LOCAL_SLOTS`` sequences).
* **serial** — ``rankgate serve`` with ``RANKGATE_LOCAL_SLOTS=0``: one request at a time per
  model through llama-cpp-python's own loop (the backend before batching).
* **raw** — llama-cpp-python's ``Llama.create_chat_completion`` called directly in this
  process, no gateway (single stream only: a ``Llama`` serves one request at a time).

For each model and concurrency c (1, 4, 8), c streamed requests with distinct long-answer
prompts start together; reported: aggregate completion tokens/s (all tokens / wall time of the
round), single-stream decode tokens/s (first → last token, c = 1), and TTFT p50/p95 over the
requests. The machine's load average is printed before and after: llama.cpp's spinning threads
slow down badly when another process takes a core, so run it on a quiet machine.

Run: ``.venv/bin/python bench/panel_speed.py [--max-tokens 64] [--repeat 3] [--models a,b]
[--json]``
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
import threading
import time
from typing import Any

import httpx
import openai
from rich.console import Console
from rich.table import Table

CONCURRENCY = (1, 4, 8)
TOPICS = ["a lighthouse keeper who finds a map", "a robot learning to paint",
          "a city under the sea", "a dragon who fears fire", "two rival bakers",
          "a lost astronaut", "a talking cat detective", "a village with no clocks"]


def _prompt(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Write a long story about {TOPICS[i % len(TOPICS)]}. "
                                        "Use many details."}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _stream_once(create: Any, i: int, max_tokens: int, out: list[dict[str, float]],
                 start: threading.Barrier) -> None:
    start.wait()
    t0 = time.perf_counter()
    first = last = None
    tokens = 0
    for c in create(messages=_prompt(i), max_tokens=max_tokens, temperature=0, stream=True):
        now = time.perf_counter()
        choices = c["choices"] if isinstance(c, dict) else c.choices
        if not choices:
            continue
        delta = choices[0]["delta"] if isinstance(c, dict) else choices[0].delta.model_dump()
        if delta.get("content"):
            tokens += 1  # one chunk per token on both paths
            first = first or now
            last = now
    assert first is not None and last is not None, "no tokens streamed"
    out.append({"t0": t0, "ttft": first - t0, "end": last, "tokens": tokens,
                "decode": (tokens - 1) / (last - first) if tokens > 1 and last > first else 0})


def _round(create: Any, c: int, max_tokens: int) -> dict[str, float]:
    out: list[dict[str, float]] = []
    barrier = threading.Barrier(c)
    if c == 1:  # in this thread: llama.cpp called from a fresh thread runs ~30% slower (raw)
        _stream_once(create, 0, max_tokens, out, barrier)
    threads = [threading.Thread(target=_stream_once, args=(create, i, max_tokens, out, barrier))
               for i in range(c)] if c > 1 else []
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = max(r["end"] for r in out) - min(r["t0"] for r in out)
    ttfts = sorted(r["ttft"] for r in out)
    return {"agg_tok_s": sum(r["tokens"] for r in out) / wall,
            "decode_tok_s": statistics.median(r["decode"] for r in out),
            "ttft_p50": statistics.median(ttfts),
            "ttft_p95": ttfts[min(len(ttfts) - 1, round(0.95 * (len(ttfts) - 1)))],
            "tokens": sum(r["tokens"] for r in out)}


def _rounds(create: Any, c: int, max_tokens: int, repeat: int) -> dict[str, float]:
    """``repeat`` rounds at concurrency ``c``: the median of each figure."""
    runs = [_round(create, c, max_tokens) for _ in range(repeat)]
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def _gateway(slots: int, tmp: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "RANKGATE_STORE_URL": f"sqlite:///{tmp}/bench-{slots}.db",
           "RANKGATE_LOCAL_SLOTS": str(slots), "RANKGATE_CACHE": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "rankgate", "serve", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the gateway did not start")


def _via_gateway(slots: int, models: list[str], max_tokens: int, repeat: int, tmp: str
                 ) -> dict[str, dict[int, dict[str, float]]]:
    proc, base = _gateway(slots, tmp)
    try:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="x", timeout=1200, max_retries=0)
        res: dict[str, dict[int, dict[str, float]]] = {}
        for m in models:
            client.chat.completions.create(model=m, messages=_prompt(0), max_tokens=4)  # load

            def create(m: str = m, **kw: Any) -> Any:
                return client.chat.completions.create(model=m, **kw)

            res[m] = {c: _rounds(create, c, max_tokens, repeat) for c in CONCURRENCY}
        return res
    finally:
        proc.terminate()
        proc.wait(60)


def _raw(models: list[str], max_tokens: int, repeat: int
         ) -> dict[str, dict[int, dict[str, float]]]:
    import llama_cpp

    from rankgate.config import Settings
    from rankgate.local_models import BUNDLED, model_path
    from rankgate.panel import default_panel

    settings = Settings()
    res: dict[str, dict[int, dict[str, float]]] = {}
    for m in models:
        spec = default_panel().get(m)
        assert spec is not None and spec.bundled
        bundled = BUNDLED[spec.bundled]
        llama = llama_cpp.Llama(model_path=str(model_path(bundled, settings.home)),
                                n_ctx=bundled.context_window, n_threads=settings.threads,
                                n_threads_batch=settings.threads, verbose=False)
        llama.create_chat_completion(messages=_prompt(0), max_tokens=4)
        res[m] = {1: _rounds(llama.create_chat_completion, 1, max_tokens, repeat)}
        llama.close()
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3, help="rounds per model and concurrency "
                    "(medians reported)")
    ap.add_argument("--models", default="smollm2-135m,qwen2.5-coder-0.5b,qwen2.5-coder-1.5b")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    models = args.models.split(",")
    load_before = _load()
    with tempfile.TemporaryDirectory() as tmp:
        results = {"raw": _raw(models, args.max_tokens, args.repeat),
                   "serial": _via_gateway(0, models, args.max_tokens, args.repeat, tmp),
                   "batched": _via_gateway(max(CONCURRENCY), models, args.max_tokens,
                                           args.repeat, tmp)}
    report = {"cores": os.cpu_count(), "max_tokens": args.max_tokens, "repeat": args.repeat,
              "load_before": load_before, "load_after": _load(), "results": results}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    t = Table(title=f"embedded panel, {os.cpu_count()} cores, {args.max_tokens} tokens per "
                    f"answer, median of {args.repeat} rounds (load {load_before} → "
                    f"{report['load_after']})")
    for col in ("model", "c", "raw tok/s", "serial agg tok/s", "batched agg tok/s",
                "batched / serial", "TTFT p50/p95 serial", "TTFT p50/p95 batched"):
        t.add_column(col)
    for m in models:
        for c in CONCURRENCY:
            s, b = results["serial"][m][c], results["batched"][m][c]
            raw = results["raw"][m].get(c)
            t.add_row(m, str(c), f"{raw['agg_tok_s']:.1f}" if raw else "—",
                      f"{s['agg_tok_s']:.1f}", f"{b['agg_tok_s']:.1f}",
                      f"{b['agg_tok_s'] / s['agg_tok_s']:.2f}×",
                      f"{s['ttft_p50']:.2f}/{s['ttft_p95']:.2f}",
                      f"{b['ttft_p50']:.2f}/{b['ttft_p95']:.2f}")
        raw1, b1 = results["raw"][m][1], results["batched"][m][1]
        t.add_row(m, "1", "decode", "", "", f"{b1['decode_tok_s'] / raw1['decode_tok_s']:.0%}"
                  " of raw", "", "")
    Console().print(t)


if __name__ == "__main__":
    main()
