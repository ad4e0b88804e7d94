"""Wall time of ``rankgate eval`` on the embedded panel, batched vs serial, and its scores
against the shipped outcomes.

Runs ``rankgate eval --workload builtin --no-cache`` (all three embedded models, temperature
0) once with the batched local backend (``RANKGATE_LOCAL_SLOTS`` default) and, unless
``--skip-serial``, once with ``RANKGATE_LOCAL_SLOTS=0`` (the serial loop the shipped outcomes
were made with), on the same items, one after the other. Reports each run's wall time and the
agreement of its scores with ``src/rankgate/data/embedded_outcomes.jsonl`` per model: the share
of items scored the same, and the paired accuracy difference with a bootstrap interval
(generation at temperature 0 is deterministic only up to llama.cpp's arithmetic: batched
kernels round differently from one-token ones, see the README's *Determinism*).

Run: ``.venv/bin/python bench/eval_speed.py [--limit 60] [--skip-serial] [--json]`` on a quiet
machine (the load average is printed); ``--limit`` takes the same items ``rankgate eval
--limit`` takes. Weights come from ``RANKGATE_HOME`` (default ``~/.cache/rankgate``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHIPPED = Path(__file__).resolve().parents[1] / "src/rankgate/data/embedded_outcomes.jsonl"


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _scores(path: Path) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if row.get("score") is not None:
            out[(row["prompt_id"], row["model"])] = float(row["score"])
    return out


def _run(slots: int | None, limit: int | None, out: Path, store: Path) -> float:
    env = {**os.environ, "RANKGATE_STORE_URL": f"sqlite:///{store}"}
    if slots is not None:
        env["RANKGATE_LOCAL_SLOTS"] = str(slots)
    cmd = [sys.executable, "-m", "rankgate", "eval", "--workload", "builtin", "--no-cache",
           "--out", str(out)] + (["--limit", str(limit)] if limit else [])
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _agreement(run: dict[tuple[str, str], float], shipped: dict[tuple[str, str], float]
               ) -> dict[str, dict[str, float]]:
    by_model: dict[str, list[tuple[float, float]]] = {}
    for key, score in run.items():
        if key in shipped:
            by_model.setdefault(key[1], []).append((score, shipped[key]))
    rng = random.Random(0)
    res = {}
    for model, pairs in sorted(by_model.items()):
        diffs = [a - b for a, b in pairs]
        boots = sorted(sum(rng.choice(diffs) for _ in diffs) / len(diffs) for _ in range(2000))
        res[model] = {"items": len(pairs),
                      "same_score": sum(a == b for a, b in pairs) / len(pairs),
                      "accuracy": sum(a for a, _ in pairs) / len(pairs),
                      "shipped_accuracy": sum(b for _, b in pairs) / len(pairs),
                      "diff": sum(diffs) / len(diffs), "diff_lo": boots[50],
                      "diff_hi": boots[1949]}
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=None, help="items (default: all 533)")
    ap.add_argument("--skip-serial", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    shipped = _scores(SHIPPED)
    report: dict[str, object] = {"load_before": _load(), "limit": args.limit or "all"}
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("batched", None)] + ([] if args.skip_serial else [("serial", 0)])
        for name, slots in runs:
            out = Path(tmp) / f"{name}.jsonl"
            wall = _run(slots, args.limit, out, Path(tmp) / f"{name}.db")
            got = _scores(out)
            report[name] = {"wall_s": wall, "generations": len(got),
                            "vs_shipped": _agreement(got, shipped), "load_after": _load()}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"load before: {report['load_before']}; items: {report['limit']}")
    for name, _ in runs:
        r = report[name]
        assert isinstance(r, dict)
        print(f"{name}: {r['generations']} scored generations in {r['wall_s'] / 60:.1f} min "
              f"(load after {r['load_after']})")
        for model, a in r["vs_shipped"].items():
            print(f"  {model:22s} same score {a['same_score']:.1%} of {a['items']}; accuracy "
                  f"{a['accuracy']:.3f} vs shipped {a['shipped_accuracy']:.3f} (paired diff "
                  f"{a['diff']:+.3f} [{a['diff_lo']:+.3f}, {a['diff_hi']:+.3f}])")


if __name__ == "__main__":
    main()
