"""What ``--durable`` costs: the default gateway vs ``rankgate serve --durable``, side by side.

What it measures
    Two gateways on 127.0.0.1, identical but for ``--durable``, each in front of the in-process
    ``faulty`` backend answering instantly (``upstream_model: fast``), so the only difference
    between them is the request journal: one ``write(2)`` per row (default) vs that write plus
    waiting for a group-commit ``fdatasync`` before the response leaves (durable). Each is
    driven at the same fixed *offered* load (default 200 req/s, open loop: a request is sent
    on schedule whether or not earlier ones have returned, so a slow side shows up as latency,
    not as fewer requests) for a bounded time (default 10 s each). Latency is measured from the
    scheduled send time (no coordinated omission). Reported per side: achieved throughput,
    latency p50/p99, errors; and the *added* p50/p99 (durable - default, a difference of
    percentiles) and the throughput ratio. From the durable gateway's ``/healthz``: fsyncs made
    and rows per fsync (group commit at work), and acknowledgements without a confirmed sync
    (must be 0). Both request logs are checked at the end: every sent request logged, none
    dropped.

Why this way
    The fsync's cost depends on the disk (tmpfs: ~0; a laptop NVMe: ~0.1-1 ms; cloud block
    storage: 1-10 ms), so the figure only means something for the filesystem that holds
    ``RANKGATE_HOME`` (``--home-dir`` chooses it; by default a temporary directory, whose
    filesystem is printed). A fixed offered load, not a closed loop, is what a gateway sees
    and is what makes group commit visible: at 200 req/s several requests arrive during one
    fsync and share the next. Rounds alternate default, durable (``--rounds`` pairs), so drift
    on a shared machine falls on both sides.

Run (from the repository root)::

    .venv/bin/python bench/durable.py [--quick] [--json] [--rate 200] [--seconds 10]

``--quick``: 3 s per side, one pair of rounds (checks that it works; the figures of a quick run
on a busy machine are noise). The exit status is 1 if any request failed or a log check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import free_port, percentile, start, stop, wait_ready

BODY = {"model": "fast", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}
WARMUP_S = 1.0


@dataclass
class Side:
    """One gateway's measured round(s)."""

    name: str
    sent: int = 0
    elapsed_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


async def offered_load(client: httpx.AsyncClient, url: str, rate: float, seconds: float,
                       side: Side | None) -> int:
    """Send ``rate`` requests per second for ``seconds`` on a fixed schedule; wait for all."""
    n = int(rate * seconds)
    t0 = time.perf_counter()
    tasks: list[asyncio.Task[None]] = []

    async def one(scheduled: float) -> None:
        try:
            r = await client.post(url, json=BODY)
            ok = r.status_code == 200
            what = f"HTTP {r.status_code}"
        except httpx.HTTPError as e:
            ok, what = False, type(e).__name__
        if side is None:
            return
        if ok:
            side.latencies_ms.append((time.perf_counter() - scheduled) * 1000.0)
        else:
            side.error(what)

    for i in range(n):
        scheduled = t0 + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    if side is not None:
        side.sent += n
        side.elapsed_s += time.perf_counter() - t0
    return n


async def healthz(client: httpx.AsyncClient, base: str, expected: int) -> dict[str, Any]:
    """Request-log stats once every expected row is written (or after 15 s)."""
    deadline = time.monotonic() + 15
    while True:
        stats = (await client.get(f"{base}/healthz")).json()["request_log"]
        if (stats["queued"] == 0 and stats["written"] + stats["dropped"] >= expected) \
                or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.1)


def filesystem_of(path: Path) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["df", "-T", str(path)], capture_output=True, text=True,
                             timeout=5).stdout.splitlines()
        if len(out) >= 2:
            return out[1].split()[1]
    return "unknown"


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="rankgate-durable-", dir=args.home_dir))
    panel = root / "panel.yaml"  # JSON is YAML
    panel.write_text(json.dumps({"models": [{
        "id": "fast", "backend": "faulty", "upstream_model": "fast",
        "input_price_per_mtok": 1.0, "output_price_per_mtok": 2.0}]}))
    base_env = {k: v for k, v in os.environ.items()
                if k not in ("RANKGATE_STORE_URL", "RANKGATE_DURABLE_JOURNAL")}
    base_env["NO_PROXY"] = base_env["no_proxy"] = "127.0.0.1,localhost"
    names = ("default", "durable")
    ports = {name: free_port() for name in names}
    bases = {name: f"http://127.0.0.1:{ports[name]}" for name in names}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    sides = {name: Side(name) for name in names}
    sent = dict.fromkeys(names, 0)
    try:
        for name in names:
            env = {**base_env, "RANKGATE_HOME": str(root / name)}
            cmd = [sys.executable, "-m", "rankgate", "serve", "--host", "127.0.0.1",
                   "--port", str(ports[name]), "--panel", str(panel),
                   *(["--durable"] if name == "durable" else [])]
            procs[name] = start(cmd, env, root / f"{name}.log")
        limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
        async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30.0),
                                     trust_env=False) as client:
            for name in names:
                await wait_ready(client, f"{bases[name]}/healthz", procs[name],
                                 root / f"{name}.log")
                sent[name] += await offered_load(client, f"{bases[name]}/v1/chat/completions",
                                                 args.rate, WARMUP_S, None)
            for _ in range(args.rounds):
                for name in names:
                    await asyncio.sleep(0.5)
                    sent[name] += await offered_load(
                        client, f"{bases[name]}/v1/chat/completions", args.rate,
                        args.seconds / args.rounds, sides[name])
            stats = {name: await healthz(client, bases[name], sent[name]) for name in names}
    finally:
        for p in procs.values():
            stop(p)
    return report(args, sides, stats, sent, root)


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(x, nd)


def report(args: argparse.Namespace, sides: dict[str, Side], stats: dict[str, dict[str, Any]],
           sent: dict[str, int], root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"config": {
        "offered_rps": args.rate, "seconds_per_side": args.seconds, "rounds": args.rounds,
        "quick": args.quick, "backend": "faulty (upstream_model: fast, in-process)",
        "home": str(root), "filesystem": filesystem_of(root), "cpus": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()]}}
    for name, s in sides.items():
        out[name] = {"requests": s.sent, "ok": len(s.latencies_ms),
                     "errors": sum(s.errors.values()), "error_samples": s.errors,
                     "rps": _r(len(s.latencies_ms) / s.elapsed_s if s.elapsed_s else 0.0, 1),
                     "latency_p50_ms": _r(percentile(s.latencies_ms, 50)),
                     "latency_p99_ms": _r(percentile(s.latencies_ms, 99))}
    d, g = out["default"], out["durable"]
    out["added_latency_p50_ms"] = _diff(g["latency_p50_ms"], d["latency_p50_ms"])
    out["added_latency_p99_ms"] = _diff(g["latency_p99_ms"], d["latency_p99_ms"])
    out["rps_ratio"] = round(g["rps"] / d["rps"], 3) if d["rps"] else None
    ds = stats["durable"]
    syncs = ds.get("journal_syncs")
    out["durable_journal"] = {
        "wired": ds.get("durable") == 1, "fsyncs": syncs,
        "rows_per_fsync": round(sent["durable"] / syncs, 2) if syncs else None,
        "sync_failures": ds.get("sync_failures")}
    out["request_log"] = {name: {**{k: stats[name][k] for k in ("written", "dropped")},
                                 "expected": sent[name],
                                 "ok": stats[name]["written"] == sent[name]
                                 and stats[name]["dropped"] == 0} for name in sides}
    errors = d["errors"] + g["errors"]
    out["ok"] = (errors == 0 and all(v["ok"] for v in out["request_log"].values())
                 and out["durable_journal"]["wired"] and not ds.get("sync_failures"))
    return out


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


def _f(x: float | None, signed: bool = False) -> str:
    return "—" if x is None else (f"{x:+.2f}" if signed else f"{x:.2f}")


def print_report(res: dict[str, Any]) -> None:
    c = res["config"]
    print(f"offered load {c['offered_rps']} req/s, {c['seconds_per_side']} s per side "
          f"({c['rounds']} round pair(s)), backend {c['backend']}")
    print(f"RANKGATE_HOME on {c['filesystem']} ({c['home']}); {c['cpus']} CPUs, load average "
          f"at the end {c['loadavg']}")
    print(f"{'side':8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'ok':>6} {'errors':>6}")
    for name in ("default", "durable"):
        s = res[name]
        print(f"{name:8} {s['rps']:8.1f} {_f(s['latency_p50_ms']):>8} "
              f"{_f(s['latency_p99_ms']):>8} {s['ok']:6d} {s['errors']:6d}")
    ratio = res["rps_ratio"]
    print(f"{'added':8} {'×' + format(ratio, '.3f') if ratio else '—':>8} "
          f"{_f(res['added_latency_p50_ms'], True):>8} {_f(res['added_latency_p99_ms'], True):>8}")
    j = res["durable_journal"]
    print(f"durable journal: wired {j['wired']}, {j['fsyncs']} fsyncs, {j['rows_per_fsync']} "
          f"rows per fsync, {j['sync_failures']} acknowledgements without a confirmed sync")
    for name, rl in res["request_log"].items():
        print(f"request log {name}: written {rl['written']} / expected {rl['expected']}, "
              f"dropped {rl['dropped']} — {'ok' if rl['ok'] else 'MISMATCH'}")
    for name in ("default", "durable"):
        for what, n in res[name]["error_samples"].items():
            print(f"error {name} ×{n}: {what}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=200.0, help="offered load, requests/s")
    ap.add_argument("--seconds", type=float, default=None,
                    help="measured seconds per side (default 10, 3 with --quick)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="alternating (default, durable) pairs the seconds are split over "
                    "(default 2, 1 with --quick)")
    ap.add_argument("--quick", action="store_true", help="3 s per side, one pair")
    ap.add_argument("--home-dir", type=Path, default=None,
                    help="where the gateways' RANKGATE_HOME goes (its disk is what fsyncs)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    args.seconds = args.seconds or (3.0 if args.quick else 10.0)
    args.rounds = args.rounds or (1 if args.quick else 2)
    if args.rate <= 0 or args.seconds <= 0 or args.rounds < 1:
        ap.error("--rate and --seconds must be > 0, --rounds >= 1")
    try:
        import uvloop
    except ImportError:
        res = asyncio.run(bench(args))
    else:
        res = uvloop.run(bench(args))
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print_report(res)
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
