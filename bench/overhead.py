"""Gateway overhead: the same requests sent straight to an upstream and through rankgate.

What it measures
    The cost of the gateway itself: its requests/s, latency p50/p99 and, for streams,
    time-to-first-byte, against the very same upstream hit directly. The upstream is
    ``rankgate.testing.fault_upstream`` (a raw ASGI app that answers in microseconds), so
    whatever the gateway adds (parsing, validation, the second HTTP hop, pricing, the request
    log) is not hidden behind model time. The headline figures are the *added* latency
    ``gateway - direct`` at p50 and p99 (a difference of percentiles, not a percentile of
    differences) and the throughput ratio ``gateway_rps / direct_rps``. Because the load is
    closed-loop at a fixed concurrency, a gateway that saturates the CPU shows up as queueing:
    the added p50 is then mostly waiting, not work. So the CPU time that the client, the
    upstream and the gateway processes each used per measured request is reported too (from
    ``/proc``, Linux only), as is the gateway's own ``x-rankgate-overhead-ms`` header; the
    added CPU ms per request is the figure least disturbed by other load on the machine.

Why this way
    Both targets run on the same machine, in the same run, driven by the same client (one
    pooled ``httpx.AsyncClient`` with keep-alive, at a fixed concurrency) with identical
    request bodies. Non-streaming rounds are interleaved (direct, gateway, direct, gateway) so
    that drift (thermal, noisy neighbours, a cache warming up) falls on both sides equally;
    the figures pool both rounds, and the per-round numbers are kept in the JSON (streaming
    rounds: one pair by default, ``--stream-rounds`` for more). Each measured round is
    preceded by a pause that lets the client's idle connections to the other target expire,
    then ~100 unmeasured warm-up requests to the same target in the same mode, so no measured
    request pays for a cold connection or a cold code path. Client, upstream and gateway
    share the CPU: on a small machine the absolute requests/s partly measure the client too,
    so compare the two sides, not the absolute numbers, across hosts.

    Every non-200 response, exception, unparsable body or stream that does not end in
    ``[DONE]`` is counted as an error (warm-up errors included, reported separately); errors
    are excluded from the latency percentiles but never skipped silently. At the end the
    gateway's ``/healthz`` request-log stats are read (after waiting up to 10 s for its queue
    to drain) and checked: ``written`` must equal the number of requests sent through the
    gateway, warm-up included, and ``dropped`` must be 0.

Run (from the repository root)::

    .venv/bin/python bench/overhead.py [--quick] [--json]
    # options: --concurrency 32  --requests 3000  --stream-rounds 1

``--quick`` sends 1000 measured requests per round instead of 3000 (under ~2 minutes on two
cores). ``--json`` prints one JSON object on stdout (the table then goes to stderr). The exit
status is 1 if any request failed or the request-log check did not hold.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from rich.console import Console
from rich.table import Table

WARMUP = 100
READY_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 10.0
KEEPALIVE_S = 1.0  # client keep-alive expiry; rounds start after a longer pause
BODY: dict[str, Any] = {"model": "fast", "messages": [{"role": "user", "content": "hello"}],
                        "max_tokens": 16}
STREAM_BODY: dict[str, Any] = {**BODY, "stream": True}


# -- measurement --------------------------------------------------------------------------
@dataclass
class Round:
    """One batch of requests to one target in one mode."""

    target: str  # "direct" | "gateway"
    mode: str  # "non-stream" | "stream"
    requests: int
    elapsed_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)  # successful requests only
    ttfts_ms: list[float] = field(default_factory=list)  # streams, successful only
    overheads_ms: list[float] = field(default_factory=list)  # gateway's x-rankgate-overhead-ms
    errors: int = 0
    error_samples: dict[str, int] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)  # process -> CPU seconds used

    def error(self, what: str) -> None:
        self.errors += 1
        self.error_samples[what] = self.error_samples.get(what, 0) + 1

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed_s if self.elapsed_s else 0.0


def cpu_seconds(pid: int | None) -> float | None:
    """CPU time (user + system) of a process: ours if pid is None, else from /proc (Linux)."""
    if pid is None:
        return time.process_time()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100), None for no values."""
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


async def _one_plain(client: httpx.AsyncClient, url: str, content: bytes, r: Round) -> None:
    t0 = time.perf_counter()
    try:
        resp = await client.post(url, content=content,
                                 headers={"content-type": "application/json"})
        elapsed = (time.perf_counter() - t0) * 1000.0
        if resp.status_code != 200:
            r.error(f"HTTP {resp.status_code}: {resp.text[:120]}")
            return
        data = orjson.loads(resp.content)
        if not isinstance(data, dict) or not data.get("choices"):
            r.error(f"200 without choices: {resp.text[:120]}")
            return
    except Exception as e:
        r.error(f"{type(e).__name__}: {str(e)[:120]}")
        return
    r.latencies_ms.append(elapsed)
    overhead = resp.headers.get("x-rankgate-overhead-ms")
    if overhead is not None:
        r.overheads_ms.append(float(overhead))


async def _one_stream(client: httpx.AsyncClient, url: str, content: bytes, r: Round) -> None:
    t0 = time.perf_counter()
    ttft: float | None = None
    done = False
    try:
        async with client.stream("POST", url, content=content,
                                 headers={"content-type": "application/json"}) as resp:
            if resp.status_code != 200:
                await resp.aread()
                r.error(f"HTTP {resp.status_code}: {resp.text[:120]}")
                return
            async for line in resp.aiter_lines():
                if not line.startswith("data:"):
                    continue
                if ttft is None:
                    ttft = (time.perf_counter() - t0) * 1000.0
                payload = line[5:].strip()
                if payload == "[DONE]":
                    done = True
                    continue
                chunk = orjson.loads(payload)
                if "error" in chunk:
                    r.error(f"error event: {payload[:120]}")
                    return
        elapsed = (time.perf_counter() - t0) * 1000.0
    except Exception as e:
        r.error(f"{type(e).__name__}: {str(e)[:120]}")
        return
    if not done or ttft is None:
        r.error("stream ended without data: [DONE]")
        return
    r.latencies_ms.append(elapsed)
    r.ttfts_ms.append(ttft)


async def run_round(client: httpx.AsyncClient, base: str, target: str, mode: str, n: int,
                    concurrency: int, pids: dict[str, int | None] | None = None) -> Round:
    """Send ``n`` requests with exactly ``concurrency`` in flight (until the tail), and
    account the CPU time each process in ``pids`` used meanwhile."""
    r = Round(target, mode, n)
    url = f"{base}/v1/chat/completions"
    stream = mode == "stream"
    content = orjson.dumps(STREAM_BODY if stream else BODY)
    one = _one_stream if stream else _one_plain
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await one(client, url, content, r)

    pids = pids or {}
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
    r.elapsed_s = time.perf_counter() - t0
    for name, pid in pids.items():
        before, after = cpu0[name], cpu_seconds(pid)
        if before is not None and after is not None:
            r.cpu_s[name] = after - before
    return r


# -- processes ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(cmd: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=35)  # the gateway drains its request log on shutdown
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


async def wait_ready(client: httpx.AsyncClient, url: str, proc: subprocess.Popen[bytes],
                     log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}:\n"
                               f"{log_path.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get(url, timeout=2.0)).status_code == 200:
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {READY_TIMEOUT_S:.0f} s:\n"
                       f"{log_path.read_text(errors='replace')[-2000:]}")


async def drained_log_stats(client: httpx.AsyncClient, gateway: str, expected: int
                            ) -> tuple[dict[str, Any], float]:
    """``/healthz`` request-log stats once the queue is empty and every expected row is in
    (or after DRAIN_TIMEOUT_S), plus how long that took."""
    t0 = time.monotonic()
    while True:
        stats = (await client.get(f"{gateway}/healthz")).json()["request_log"]
        settled = stats["queued"] == 0 and stats["written"] + stats["dropped"] >= expected
        if settled or time.monotonic() - t0 > DRAIN_TIMEOUT_S:
            return stats, time.monotonic() - t0
        await asyncio.sleep(0.05)


# -- the benchmark ------------------------------------------------------------------------
async def bench(args: argparse.Namespace, log: Console) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="rankgate-bench-"))
    up_port, gw_port = free_port(), free_port()
    upstream, gateway = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{gw_port}"
    panel = tmp / "panel.yaml"  # JSON is YAML
    panel.write_text(json.dumps({"models": [{
        "id": "fast", "backend": "openai", "base_url": f"{upstream}/v1",
        "input_price_per_mtok": 1.0, "output_price_per_mtok": 2.0}]}))
    env = {k: v for k, v in os.environ.items() if k != "RANKGATE_STORE_URL"}
    env["RANKGATE_HOME"] = str(tmp / "home")
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    py = sys.executable
    procs: list[subprocess.Popen[bytes]] = []
    # Room for one connection set per target (each is driven at `concurrency`). Idle
    # connections expire after KEEPALIVE_S and every round starts with a pause longer than
    # that: httpcore polls each idle pooled connection on every request, so the previous
    # target's idle connections would otherwise cost the client ~1-2 ms of CPU per request
    # (measured: direct dropped from ~600 to ~300 req/s after a gateway round). Expiring well
    # before uvicorn's 5 s keep-alive timeout also avoids reusing a connection it is closing.
    limits = httpx.Limits(max_connections=2 * args.concurrency,
                          max_keepalive_connections=2 * args.concurrency,
                          keepalive_expiry=KEEPALIVE_S)
    try:
        procs.append(start([py, "-m", "rankgate.testing.fault_upstream", "--port", str(up_port)],
                           env, tmp / "upstream.log"))
        procs.append(start([py, "-m", "rankgate", "serve", "--panel", str(panel),
                            "--port", str(gw_port)], env, tmp / "gateway.log"))
        async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30.0),
                                     trust_env=False) as client:
            await wait_ready(client, f"{upstream}/v1/models", procs[0], tmp / "upstream.log")
            await wait_ready(client, f"{gateway}/healthz", procs[1], tmp / "gateway.log")
            log.print(f"upstream {upstream}  gateway {gateway}  RANKGATE_HOME {tmp / 'home'}")

            bases = {"direct": upstream, "gateway": gateway}
            pids: dict[str, int | None] = {"client": None, "upstream": procs[0].pid,
                                           "gateway": procs[1].pid}
            plan = [*[(t, "non-stream") for _ in range(2) for t in ("direct", "gateway")],
                    *[(t, "stream") for _ in range(args.stream_rounds)
                      for t in ("direct", "gateway")]]
            rounds: list[Round] = []
            warmups: list[Round] = []
            t_start = time.perf_counter()
            for target, mode in plan:
                await asyncio.sleep(KEEPALIVE_S + 0.5)  # let the other target's pool expire
                w = await run_round(client, bases[target], target, mode, WARMUP,
                                    args.concurrency)
                warmups.append(w)
                r = await run_round(client, bases[target], target, mode, args.requests,
                                    args.concurrency, pids)
                rounds.append(r)
                cpu = " ".join(f"{k} {v * 1000 / r.requests:.2f}" for k, v in r.cpu_s.items())
                log.print(f"  {target:7} {mode:10} {r.requests} req in {r.elapsed_s:6.2f} s "
                          f"= {r.rps:5.0f} req/s, p50 {_fmt(percentile(r.latencies_ms, 50))} "
                          f"ms, errors {r.errors} (warm-up {w.errors}); CPU ms/req: {cpu}",
                          highlight=False)
            measure_s = time.perf_counter() - t_start

            sent_via_gateway = sum(x.requests for x in rounds + warmups if x.target == "gateway")
            stats, waited = await drained_log_stats(client, gateway, sent_via_gateway)
    finally:
        for p in reversed(procs):
            stop(p)

    return report(args, rounds, warmups, stats, waited, sent_via_gateway, measure_s, tmp)


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(x, nd)


def _side(rs: list[Round], ws: list[Round]) -> dict[str, Any]:
    lat = [v for r in rs for v in r.latencies_ms]
    ttft = [v for r in rs for v in r.ttfts_ms]
    n = sum(r.requests for r in rs)
    elapsed = sum(r.elapsed_s for r in rs)
    out: dict[str, Any] = {
        "requests": n, "ok": len(lat), "errors": sum(r.errors for r in rs),
        "warmup_requests": sum(w.requests for w in ws),
        "warmup_errors": sum(w.errors for w in ws),
        "rps": _r(n / elapsed if elapsed else 0.0, 1),
        "latency_p50_ms": _r(percentile(lat, 50)), "latency_p99_ms": _r(percentile(lat, 99)),
        "rounds": [{"rps": _r(r.rps, 1), "latency_p50_ms": _r(percentile(r.latencies_ms, 50)),
                    "latency_p99_ms": _r(percentile(r.latencies_ms, 99)), "errors": r.errors}
                   for r in rs],
    }
    if any(r.mode == "stream" for r in rs):
        out["ttft_p50_ms"] = _r(percentile(ttft, 50))
        out["ttft_p99_ms"] = _r(percentile(ttft, 99))
    cpu: dict[str, float] = {}
    for r in rs:
        for name, v in r.cpu_s.items():
            cpu[name] = cpu.get(name, 0.0) + v
    if cpu:
        out["cpu_ms_per_request"] = {k: round(v * 1000 / n, 3) for k, v in cpu.items()}
        out["cpu_ms_per_request"]["total"] = round(sum(cpu.values()) * 1000 / n, 3)
    overheads = [v for r in rs for v in r.overheads_ms]
    if overheads:
        out["self_reported_overhead_p50_ms"] = _r(percentile(overheads, 50))
        out["self_reported_overhead_p99_ms"] = _r(percentile(overheads, 99))
    samples: dict[str, int] = {}
    for r in rs + ws:
        for k, v in r.error_samples.items():
            samples[k] = samples.get(k, 0) + v
    if samples:
        out["error_samples"] = samples
    return out


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


def report(args: argparse.Namespace, rounds: list[Round], warmups: list[Round],
           stats: dict[str, Any], waited: float, sent_via_gateway: int, measure_s: float,
           tmp: Path) -> dict[str, Any]:
    modes: dict[str, Any] = {}
    for mode in ("non-stream", "stream"):
        d = _side([r for r in rounds if r.mode == mode and r.target == "direct"],
                  [w for w in warmups if w.mode == mode and w.target == "direct"])
        g = _side([r for r in rounds if r.mode == mode and r.target == "gateway"],
                  [w for w in warmups if w.mode == mode and w.target == "gateway"])
        m: dict[str, Any] = {
            "direct": d, "gateway": g,
            "added_latency_p50_ms": _diff(g["latency_p50_ms"], d["latency_p50_ms"]),
            "added_latency_p99_ms": _diff(g["latency_p99_ms"], d["latency_p99_ms"]),
            "rps_ratio": round(g["rps"] / d["rps"], 3) if d["rps"] else None,
        }
        if "cpu_ms_per_request" in g and "cpu_ms_per_request" in d:
            m["added_cpu_ms_per_request"] = _diff(g["cpu_ms_per_request"]["total"],
                                                  d["cpu_ms_per_request"]["total"])
        if mode == "stream":
            m["added_ttft_p50_ms"] = _diff(g["ttft_p50_ms"], d["ttft_p50_ms"])
            m["added_ttft_p99_ms"] = _diff(g["ttft_p99_ms"], d["ttft_p99_ms"])
        modes[mode] = m
    log_ok = stats["written"] == sent_via_gateway and stats["dropped"] == 0
    errors = sum(r.errors for r in rounds + warmups)
    return {
        "benchmark": "rankgate gateway overhead vs direct upstream",
        "config": {"concurrency": args.concurrency, "requests_per_round": args.requests,
                   "warmup_per_round": WARMUP, "quick": args.quick,
                   "order": "non-stream: (direct, gateway) x 2; "
                            f"stream: (direct, gateway) x {args.stream_rounds}",
                   "upstream": "rankgate.testing.fault_upstream",
                   "client": f"httpx {httpx.__version__}, one AsyncClient",
                   "python": platform.python_version(), "cpus": os.cpu_count(),
                   "tmp": str(tmp)},
        "modes": modes,
        "request_log": {**stats, "expected_written": sent_via_gateway,
                        "waited_for_drain_s": round(waited, 3), "ok": log_ok},
        "total_errors": errors,
        "measure_s": round(measure_s, 2),
        "ok": log_ok and errors == 0,
    }


def _fmt(x: float | None, nd: int = 2, signed: bool = False) -> str:
    if x is None:
        return "—"
    return f"{x:+.{nd}f}" if signed else f"{x:.{nd}f}"


def print_table(res: dict[str, Any], console: Console) -> None:
    c = res["config"]
    t = Table(title=f"rankgate overhead — concurrency {c['concurrency']}, "
                    f"{c['requests_per_round']} req/round, {c['cpus']} CPUs")
    for col in ("mode", "target", "req/s", "p50 ms", "p99 ms", "TTFT p50", "TTFT p99",
                "CPU ms/req cli+up+gw", "errors (warm-up)"):
        t.add_column(col, justify="left" if col in ("mode", "target") else "right")
    for mode, m in res["modes"].items():
        for target in ("direct", "gateway"):
            s = m[target]
            cpu = s.get("cpu_ms_per_request", {})
            cpu_s = (f"{cpu['client']:.2f}+{cpu['upstream']:.2f}+{cpu['gateway']:.2f}"
                     f" = {cpu['total']:.2f}" if len(cpu) == 4 else "—")
            t.add_row(mode, target, _fmt(s["rps"], 0), _fmt(s["latency_p50_ms"]),
                      _fmt(s["latency_p99_ms"]), _fmt(s.get("ttft_p50_ms")),
                      _fmt(s.get("ttft_p99_ms")), cpu_s,
                      f"{s['errors']} ({s['warmup_errors']})")
        ratio = f"×{m['rps_ratio']:.3f}" if m["rps_ratio"] is not None else "—"
        t.add_row(mode, "[bold]added[/]", f"[bold]{ratio}[/]",
                  f"[bold]{_fmt(m['added_latency_p50_ms'], signed=True)}[/]",
                  f"[bold]{_fmt(m['added_latency_p99_ms'], signed=True)}[/]",
                  _fmt(m.get("added_ttft_p50_ms"), signed=True),
                  _fmt(m.get("added_ttft_p99_ms"), signed=True),
                  _fmt(m.get("added_cpu_ms_per_request"), signed=True), "", end_section=True)
    console.print(t)
    for mode, m in res["modes"].items():
        for target in ("direct", "gateway"):
            for what, count in m[target].get("error_samples", {}).items():
                console.print(f"[red]error[/] {mode} {target} ×{count}: {what}",
                              highlight=False, markup=False)
    g = res["modes"]["non-stream"]["gateway"]
    if "self_reported_overhead_p50_ms" in g:
        console.print(f"gateway self-reported overhead (x-rankgate-overhead-ms, non-stream): "
                      f"p50 {g['self_reported_overhead_p50_ms']:.3f} ms, "
                      f"p99 {g['self_reported_overhead_p99_ms']:.3f} ms", highlight=False)
    rl = res["request_log"]
    verdict = "[green]ok[/]" if rl["ok"] else "[red]MISMATCH[/]"
    console.print(f"request log (/healthz): written {rl['written']} / expected "
                  f"{rl['expected_written']}, dropped {rl['dropped']}, queued {rl['queued']}, "
                  f"write_errors {rl['write_errors']} (drained in {rl['waited_for_drain_s']} s)"
                  f" — {verdict}", highlight=False)
    console.print(f"measured phase {res['measure_s']} s; total errors {res['total_errors']}",
                  highlight=False)


def main() -> int:
    ap = argparse.ArgumentParser(description="rankgate gateway overhead vs direct upstream")
    ap.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    ap.add_argument("--requests", type=int, default=None,
                    help="measured requests per round (default 3000, 1000 with --quick)")
    ap.add_argument("--quick", action="store_true", help="1000 requests per round")
    ap.add_argument("--stream-rounds", type=int, default=1,
                    help="interleaved (direct, gateway) pairs of streaming rounds (default 1)")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = ap.parse_args()
    if args.requests is None:
        args.requests = 1000 if args.quick else 3000
    if min(args.concurrency, args.requests, args.stream_rounds) < 1:
        ap.error("--concurrency, --requests and --stream-rounds must be >= 1")
    # never truncate figures when the output is a pipe or a file (rich's default is 80 columns)
    log = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
    out = log if args.json else Console(width=None if sys.stdout.isatty() else 160)
    try:
        import uvloop
    except ImportError:  # Windows: the plain asyncio loop
        res = asyncio.run(bench(args, log))
    else:
        res = uvloop.run(bench(args, log))
    print_table(res, out)
    if args.json:
        sys.stdout.write(json.dumps(res, indent=2) + "\n")
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
