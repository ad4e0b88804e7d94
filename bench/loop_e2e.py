"""The loop in production, end to end, on the embedded panel (issue #10's "what it must show").

1. Serve the embedded panel with ``--log-bodies --shadow-rate 1`` and a router trained on the
   shipped outcomes, so every request is answered live by the model ``auto`` picks and in
   shadow by the two others.
2. Send N built-in prompts **without their targets** through ``model="auto"`` with the official
   ``openai`` client.
3. ``rankgate judge --store`` (pairwise, both orders) → ``rankgate rank --store`` (one
   Bradley–Terry fit with bootstrap intervals) → ``rankgate route train --store`` →
   ``rankgate route promote``.
4. Gold: the logged answers (live and shadow) are scored with the items' own gold scorers —
   the same answers the judge saw — and the judge's order of the three models is compared with
   the gold order on the same items (Kendall τ, with the BT intervals and the gold accuracies).

Resumable: everything lives in ``--home`` (default ``.rankgate/loop-e2e``); a second run reuses
the answers already logged and the verdicts already given. Prints a summary; ``--json`` for
machines. It is a measurement, not a test: the CPU work (three local models answering and a
1.5B judge) takes tens of minutes on 2 cores.

    .venv/bin/python bench/loop_e2e.py --n 60 --judge qwen2.5-coder-1.5b
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MODELS = ["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]


def run(args: list[str], env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    print("$ rankgate " + " ".join(args[3:]), file=sys.stderr, flush=True)
    r = subprocess.run(args, env=env, capture_output=True, text=True)
    if check and r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit(f"step failed: {' '.join(args[3:])}")
    return r


def rankgate(*args: str) -> list[str]:
    return [sys.executable, "-m", "rankgate", *args]


def pick_items(n: int, seed: int) -> list[Any]:
    from rankgate.eval import datasets

    items = datasets.select(datasets.load("builtin"), sample=n, seed=seed)
    return datasets.interleave(items, seed)


def start_server(home: Path, env: dict[str, str], port: int, router: Path
                 ) -> subprocess.Popen:
    log = (home / "serve.log").open("ab")
    proc = subprocess.Popen(rankgate("serve", "--port", str(port), "--router", str(router),
                                     "--log-bodies", "--shadow-rate", "1", "--preload"),
                            env=env, stdout=log, stderr=log)
    import httpx

    deadline = time.time() + 600
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gateway exited ({proc.returncode}); see {home / 'serve.log'}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("gateway did not come up")


def send(items: list[Any], port: int, done: set[str], log_path: Path,
         max_tokens_cap: int | None, db: Path) -> None:
    """Each item's messages (no target) through model="auto"; one line per item (a failed
    request is written with its error and not retried: the loop must cope with gaps).

    The next prompt leaves once this one's shadow answers are stored, as on a lightly loaded
    gateway: a local shadow call yields to live traffic (it is cancelled, ``preempted``, when
    a live call arrives), so back-to-back prompts would leave most items with one answer."""
    from openai import APIError, OpenAI

    from rankgate.eval.runner import DEFAULT_MAX_TOKENS, MAX_TOKENS

    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0,
                    timeout=3600)
    with log_path.open("a") as f:
        for i, item in enumerate(items, 1):
            if item.id in done:
                continue
            max_tokens = MAX_TOKENS.get(item.category or "", DEFAULT_MAX_TOKENS)
            if max_tokens_cap:
                max_tokens = min(max_tokens, max_tokens_cap)
            try:
                raw = client.chat.completions.with_raw_response.create(
                    model="auto", messages=item.messages, temperature=0, seed=0,
                    max_tokens=max_tokens)
            except APIError as e:
                f.write(json.dumps({"item": item.id, "error": str(e)[:300]}) + "\n")
                f.flush()
                print(f"  {i}/{len(items)} {item.id} failed: {e}", file=sys.stderr, flush=True)
                continue
            f.write(json.dumps({"item": item.id, "request_id": raw.headers["x-request-id"],
                                "model": raw.headers["x-rankgate-model"],
                                "fallback": raw.headers.get("x-rankgate-fallback")}) + "\n")
            wait_for_shadows(db, [raw.headers["x-request-id"]], 1800)
            f.flush()
            print(f"  {i}/{len(items)} {item.id} -> {raw.headers['x-rankgate-model']}",
                  file=sys.stderr, flush=True)


def wait_for_shadows(db: Path, request_ids: list[str], timeout_s: float) -> int:
    """Wait until every request has its live answer and both shadow answers stored."""
    from rankgate.store.exchange_store import by_request, read_exchanges
    from rankgate.store.tables import make_engine

    engine = make_engine(f"sqlite:///{db}")
    deadline = time.time() + timeout_s
    try:
        while True:
            got = by_request(read_exchanges(engine))
            complete = sum(len(got.get(r, ())) >= len(MODELS) for r in request_ids)
            if complete == len(request_ids) or time.time() > deadline:
                return complete
            time.sleep(1)
    finally:
        engine.dispose()


def gold_scores(db: Path, sent: list[dict[str, Any]], items: dict[str, Any]
                ) -> dict[str, dict[str, float]]:
    """Gold score of every logged answer (live and shadow): item -> model -> score."""
    from rankgate.eval import scorers
    from rankgate.store.exchange_store import by_request, read_exchanges
    from rankgate.store.tables import make_engine

    answers = by_request(read_exchanges(make_engine(f"sqlite:///{db}")))
    out: dict[str, dict[str, float]] = {}
    for s in sent:
        item = items[s["item"]]
        for x in answers.get(s["request_id"], ()):
            if x.answer is None:
                continue
            score = asyncio.run(scorers.get(item.scorer).ascore(x.answer, item))
            out.setdefault(item.id, {})[x.model] = float(score.value)
    return out


def kendall_tau(a: list[str], b: list[str]) -> float:
    pos = {m: i for i, m in enumerate(b)}
    n = len(a)
    s = sum(1 if pos[a[i]] < pos[a[j]] else -1 for i in range(n) for j in range(i + 1, n))
    return s / (n * (n - 1) / 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60, help="built-in prompts to send")
    ap.add_argument("--judge", default="qwen2.5-coder-1.5b")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--home", type=Path, default=REPO / ".rankgate" / "loop-e2e")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--max-tokens", type=int, default=None,
                    help="cap every answer's max_tokens (the eval's per-category budgets "
                         "otherwise); the judge and the gold scorers see the same answers")
    args = ap.parse_args()

    home = args.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    # one thread per generation (two run at once on 2 cores: spinning threads collapse when
    # they outnumber cores) and timeouts long enough for a busy machine: a measurement, not
    # a latency test
    env = {"RANKGATE_THREADS_PER_MODEL": "1", "RANKGATE_UPSTREAM_TIMEOUT_S": "3600",
           "RANKGATE_SHADOW_TIMEOUT_S": "3600", **os.environ, "RANKGATE_HOME": str(home),
           "RANKGATE_CACHE": "false"}
    db = home / "rankgate.db"
    models = home / "models"  # the panel's weights, where `rankgate panel prepare` put them
    if not models.exists():
        from rankgate.config import Settings

        models.symlink_to(Settings().home / "models")
    store = f"sqlite:///{db}"
    t0 = time.time()

    router = home / "router.npz"
    if not router.exists():
        run(rankgate("route", "train", "--outcomes", "embedded", "--router", "knn",
                     "--out", str(router)), env)
    items = pick_items(args.n, args.seed)
    by_id = {it.id: it for it in items}
    sent_path = home / "sent.jsonl"
    sent = [json.loads(x) for x in sent_path.read_text().splitlines()] \
        if sent_path.exists() else []
    proc = start_server(home, env, args.port, router)
    try:
        send(items, args.port, {s["item"] for s in sent}, sent_path, args.max_tokens, db)
        logged = [json.loads(x) for x in sent_path.read_text().splitlines()]
        failed = [s for s in logged if "error" in s]
        sent = [s for s in logged if "error" not in s]
        complete = wait_for_shadows(db, [s["request_id"] for s in sent], 3600)
    finally:
        proc.terminate()
        proc.wait(30)
    t_serve = time.time() - t0

    # the judge is one model answering one call at a time: give it both cores, and cap its
    # verdicts at 32 tokens as `judge calibrate` measured it
    run(rankgate("judge", "--store", store, "--judge", args.judge, "--mode", "pairwise",
                 "--max-tokens", "32"), {**env, "RANKGATE_THREADS_PER_MODEL": "2"})
    t_judge = time.time() - t0 - t_serve
    ranked = json.loads(run(rankgate("rank", "--store", store, "--json"), env).stdout)
    new = home / "router-new.npz"
    run(rankgate("route", "train", "--store", store, "--outcomes", "embedded", "--router",
                 "knn", "--out", str(new)), env)
    promote = run(rankgate("route", "promote", str(new), "--against", str(router),
                           "--store", store), env, check=False)

    gold = gold_scores(db, sent, by_id)
    shared = [i for i, per in gold.items() if all(m in per for m in MODELS)]
    gold_acc = {m: sum(gold[i][m] for i in shared) / max(1, len(shared)) for m in MODELS}
    ratings = {e["model"]: {"rating": e["bt_rating"], "low": e["bt_low"],
                            "high": e["bt_high"], "votes": e.get("bt_votes")}
               for e in ranked.get("models", []) if e["model"] in MODELS and "bt_rating" in e}
    judge_order = sorted(ratings, key=lambda m: -ratings[m]["rating"]) if ratings else []
    gold_order = sorted(MODELS, key=lambda m: -gold_acc[m])
    summary = {
        "n_sent": len(sent), "n_failed": len(failed), "max_tokens_cap": args.max_tokens,
        "n_with_all_answers": complete, "n_gold_shared": len(shared),
        "live_models": {m: sum(s["model"] == m for s in sent) for m in MODELS},
        "gold_accuracy_same_items": gold_acc, "gold_order": gold_order,
        "judge": args.judge, "judge_bt": ratings, "votes": ranked.get("votes"),
        "judge_order": judge_order,
        "kendall_tau": kendall_tau(judge_order, gold_order) if len(judge_order) == 3
        else None,
        "promote_exit": promote.returncode, "promote_says": (promote.stdout
                                                             + promote.stderr).strip()[-600:],
        "seconds": {"serve_and_shadow": round(t_serve), "judge": round(t_judge),
                    "total": round(time.time() - t0)},
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    for k, v in summary.items():
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()
