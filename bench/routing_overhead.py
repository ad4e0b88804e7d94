"""Routing decision overhead: embedding + predict + policy, per request, on this machine.

Trains each router on outcomes (default: the shipped embedded-panel evaluation), then times
``decide()`` for fresh prompts of ~50 and ~1,000 tokens (every prompt is different, so the
embedding cache never hits), after a warm-up, and prints p50/p99 in milliseconds. The
embedding step embeds a bounded window of a long prompt; the output says which window.

Run: ``.venv/bin/python bench/routing_overhead.py [--outcomes F] [--runs 200] [--json]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from importlib import resources
from pathlib import Path

import numpy as np

from rankgate.outcomes import read_jsonl
from rankgate.routing.base import Knob, OutcomeMatrix, decide
from rankgate.routing.embed import Embedder
from rankgate.routing.workflow import all_routers, build

WORDS = ("the router sends each request to the cheapest model that will answer it well "
         "given what it learned from outcomes of earlier requests on this workload").split()


def prompt(n_tokens: int, i: int) -> str:
    # ~0.75 words per token for English text
    n_words = int(n_tokens * 0.75)
    body = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(n_words))
    return f"Request {i}: {body}?"


def main() -> None:
    ap = argparse.ArgumentParser()
    default = Path(str(resources.files("rankgate") / "data" / "embedded_outcomes.jsonl"))
    ap.add_argument("--outcomes", type=Path, default=default)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--routers", default=",".join(all_routers()))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    data = OutcomeMatrix.from_outcomes(read_jsonl(args.outcomes))
    costs = data.mean_costs()
    results = {}
    for name in args.routers.split(","):
        emb = Embedder(None)  # in-memory cache only; prompts never repeat below
        router = build(name, emb)
        router.fit(data)
        row = {}
        for n_tok in (50, 1000):
            for i in range(20):  # warm-up
                decide(router, prompt(n_tok, -1 - i), costs, Knob())
            times = []
            for i in range(args.runs):
                p = prompt(n_tok, i + 1000 * n_tok)
                t0 = time.perf_counter()
                decide(router, p, costs, Knob())
                times.append((time.perf_counter() - t0) * 1000)
            row[f"{n_tok}_tokens"] = {"p50_ms": statistics.median(times),
                                      "p99_ms": float(np.percentile(times, 99))}
        results[name] = row
    window = getattr(Embedder(None), "name", "?")
    out = {"embedder": window, "train_items": len(data.item_ids), "runs": args.runs,
           "routers": results}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"embedder {window}; trained on {len(data.item_ids)} items; {args.runs} runs each")
    print(f"{'router':12} {'50 tok p50':>11} {'p99':>8} {'1000 tok p50':>13} {'p99':>8}  (ms)")
    for name, r in results.items():
        a, b = r["50_tokens"], r["1000_tokens"]
        print(f"{name:12} {a['p50_ms']:11.2f} {a['p99_ms']:8.2f} {b['p50_ms']:13.2f} "
              f"{b['p99_ms']:8.2f}")


if __name__ == "__main__":
    main()
