"""What OpenTelemetry tracing costs the gateway: the same requests, in the same run, through
gateways that differ only in their code or their tracing setting.

Sides (each a ``rankgate serve`` subprocess in front of one shared fault upstream):
    head     the committed code (``git archive HEAD src``), given with ``--head-src``
    before   the working tree without the tracing change, given with ``--before-src``
    off      this tree (or ``--after-src``), tracing off (the default)
    on       the same code, ``RANKGATE_OTEL_ENDPOINT`` set, spans exported over OTLP/HTTP to
             ``rankgate.testing.otlp_receiver`` in its own process (SDK defaults: batch
             processor, 5 s schedule delay)
Sides without a source directory are left out. Rounds are interleaved (every side once per
round, in a rotating order) so that drift and the machine's other load fall on all sides
alike; each measured round follows ~100 unmeasured warm-up requests to the same side. The
load and measurement code is ``bench/overhead.py``'s (closed loop, fixed concurrency, httpx,
CPU per request from /proc). Also printed: the in-process cost of the one check the request
path makes when tracing is off (``state.tracer is not None``), in ns, by ``timeit``.

Run::

    git archive HEAD src | tar -x -C /tmp/head
    .venv/bin/python bench/tracing.py --quick --head-src /tmp/head/src [--before-src DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import timeit
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from overhead import (  # a sibling script, not a package
    KEEPALIVE_S,
    WARMUP,
    Round,
    free_port,
    percentile,
    run_round,
    start,
    stop,
    wait_ready,
)


def disabled_check_ns() -> float:
    """ns per ``state.tracer is not None`` on a state object whose tracer is None."""

    class State:
        tracer = None

    state = State()
    n = 2_000_000
    t = timeit.timeit("state.tracer is not None", globals={"state": state}, number=n)
    empty = timeit.timeit("pass", number=n)
    return (t - empty) / n * 1e9


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="rankgate-bench-otel-"))
    up_port, otlp_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    panel = tmp / "panel.yaml"
    panel.write_text(json.dumps({"models": [{
        "id": "fast", "backend": "openai", "base_url": f"{upstream}/v1",
        "input_price_per_mtok": 1.0, "output_price_per_mtok": 2.0}]}))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("RANKGATE_", "OTEL_"))}
    base_env["NO_PROXY"] = base_env["no_proxy"] = "127.0.0.1,localhost"
    sides: dict[str, dict[str, str]] = {}
    if args.head_src:
        sides["head"] = {"PYTHONPATH": str(args.head_src.resolve())}
    if args.before_src:
        sides["before"] = {"PYTHONPATH": str(args.before_src.resolve())}
    after = {"PYTHONPATH": str(args.after_src.resolve())} if args.after_src else {}
    sides["off"] = {**after}
    sides["on"] = {**after, "RANKGATE_OTEL_ENDPOINT": f"http://127.0.0.1:{otlp_port}"}
    py = sys.executable
    procs = []
    ports: dict[str, int] = {}
    pids: dict[str, int] = {}
    try:
        up = start([py, "-m", "rankgate.testing.fault_upstream", "--port", str(up_port)],
                   base_env, tmp / "upstream.log")
        procs.append(up)
        otlp = start([py, "-m", "rankgate.testing.otlp_receiver", "--port", str(otlp_port)],
                     base_env, tmp / "otlp.log")
        procs.append(otlp)
        for name, extra in sides.items():
            ports[name] = free_port()
            env = {**base_env, "RANKGATE_HOME": str(tmp / name), **extra}
            p = start([py, "-m", "rankgate", "serve", "--panel", str(panel), "--port",
                       str(ports[name])], env, tmp / f"{name}.log")
            procs.append(p)
            pids[name] = p.pid
        limits = httpx.Limits(max_connections=2 * args.concurrency,
                              max_keepalive_connections=2 * args.concurrency,
                              keepalive_expiry=KEEPALIVE_S)
        async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30.0),
                                     trust_env=False) as client:
            await wait_ready(client, f"{upstream}/v1/models", up, tmp / "upstream.log")
            for i, name in enumerate(sides):
                await wait_ready(client, f"http://127.0.0.1:{ports[name]}/healthz",
                                 procs[2 + i], tmp / f"{name}.log")
            results: dict[str, list[Round]] = {n: [] for n in sides}
            names = list(sides)
            for r in range(args.rounds):
                order = names[r % len(names):] + names[:r % len(names)]
                for name in order:
                    await asyncio.sleep(KEEPALIVE_S + 0.5)
                    base = f"http://127.0.0.1:{ports[name]}"
                    await run_round(client, base, name, "non-stream", WARMUP, args.concurrency)
                    rd = await run_round(client, base, name, "non-stream", args.requests,
                                         args.concurrency,
                                         {"client": None, "upstream": up.pid,
                                          "gateway": pids[name]})
                    results[name].append(rd)
                    print(f"  round {r + 1} {name:6} {rd.rps:6.0f} req/s  p50 "
                          f"{percentile(rd.latencies_ms, 50):.2f} ms  gateway CPU "
                          f"{rd.cpu_s.get('gateway', 0) * 1000 / rd.requests:.3f} ms/req  "
                          f"errors {rd.errors}", file=sys.stderr)
    finally:
        for p in reversed(procs):
            stop(p)
    spans = json.loads((tmp / "otlp.log").read_text().strip().splitlines()[-1])
    out: dict[str, Any] = {"sides": {}, "otlp_receiver": spans,
                           "disabled_check_ns": round(disabled_check_ns(), 1),
                           "loadavg": Path("/proc/loadavg").read_text().split()[:3],
                           "config": {"requests_per_round": args.requests,
                                      "rounds": args.rounds, "concurrency": args.concurrency,
                                      "cpus": os.cpu_count()}}
    for name, rounds in results.items():
        lat = [v for rd in rounds for v in rd.latencies_ms]
        n = sum(rd.requests for rd in rounds)
        cpu = sum(rd.cpu_s.get("gateway", 0.0) for rd in rounds)
        out["sides"][name] = {
            "rps": round(n / sum(rd.elapsed_s for rd in rounds), 1),
            "rps_rounds": [round(rd.rps, 1) for rd in rounds],
            "p50_ms": round(percentile(lat, 50) or 0, 3),
            "p99_ms": round(percentile(lat, 99) or 0, 3),
            "gateway_cpu_ms_per_request": round(cpu * 1000 / n, 3),
            "errors": sum(rd.errors for rd in rounds)}
    ref = out["sides"].get("before") or out["sides"].get("head")
    if ref:
        for s in out["sides"].values():
            s["rps_vs_before"] = round(s["rps"] / ref["rps"], 3)
            s["cpu_vs_before"] = round(s["gateway_cpu_ms_per_request"]
                                       / ref["gateway_cpu_ms_per_request"], 3)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--head-src", type=Path, help="src/ of the committed code")
    ap.add_argument("--before-src", type=Path, help="src/ without the tracing change")
    ap.add_argument("--after-src", type=Path,
                    help="src/ of off and on (default: the installed rankgate); a snapshot "
                    "keeps edits made during the run out of the comparison")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--requests", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--quick", action="store_true", help="600 requests x 3 rounds per side")
    args = ap.parse_args()
    args.requests = args.requests or (600 if args.quick else 2000)
    args.rounds = args.rounds or (3 if args.quick else 6)
    res = asyncio.run(bench(args))
    print(json.dumps(res, indent=1))
    return 0 if all(s["errors"] == 0 for s in res["sides"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
