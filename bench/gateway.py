"""rankgate vs LiteLLM proxy vs the bare upstream, at fixed offered loads (issue #5).

What it measures
    Three targets in one process tree, on this machine, in the same run, against the same
    upstream (``rankgate.testing.fault_upstream``, a raw ASGI app that answers in
    microseconds): the upstream hit **directly**, **rankgate** in front of it, and the
    **LiteLLM proxy** in front of it (installed by this script in its own venv under
    ``.rankgate/bench/litellm-venv``; the install time is printed apart and not counted).
    For each offered load (requests/s, fixed arrival rate) and mode (non-streaming,
    streaming) it reports the achieved rate, latency p50/p99, TTFT p50/p99 for streams, the
    error rate and the CPU each process used per request; *added* latency is
    ``target - direct`` at the same offered load (a difference of percentiles). Then a soak
    runs rankgate at a fixed moderate load, samples its RSS (``/proc/<pid>/status`` VmRSS)
    every second and fits a slope in MiB/min after a warm-up.

    A target *sustains* a load when it achieved ≥ 95 % of the offered rate with < 1 % errors
    and p99 ≤ 50 ms. Its max sustainable rate is the achieved rate at the highest load it
    sustained. Loads rise in order and a gateway that fails a load is not offered higher ones
    in that mode (it would only pile up queued work that bleeds into the next run).

Why this way
    Open loop: requests are sent at their scheduled arrival times whether or not earlier ones
    have come back, and each latency is measured from the *scheduled* time, so a server that
    stalls is charged for the queue it causes (no coordinated omission). The client is a
    small keep-alive HTTP/1.1 client on ``httptools`` + uvloop (≈ 0.1 ms CPU per request,
    against ≈ 1 ms for httpx), in this process, separate from the servers, so that at 1000
    req/s on two cores the load generator is not the bottleneck; its scheduling lag is
    reported so you can tell when it was. With ``--pin`` (default on ≥ 2 CPUs) the client and
    the upstream share CPU 0 and the server under test gets CPU 1 (both gateways are pinned
    to CPU 1, and only one is under load at a time); ``--no-pin`` lets the OS place them.

    Spend logging: LiteLLM runs without a database (``database_url`` unset), so its spend
    logs are *off* — they need PostgreSQL + Prisma; rankgate cannot switch its request log
    off, so its logging is *on* (every request is journalled and written to SQLite off the
    request path). That handicaps rankgate, so the comparison is conservative for rankgate.
    rankgate's response cache is turned off (``RANKGATE_CACHE=false``) so that identical
    benchmark bodies are not served from it; LiteLLM has no cache configured.

Run (from the repository root)::

    .venv/bin/python bench/gateway.py [--quick | --smoke] [--json]
    # options: --loads 50,200,500,1000  --measure-s 10  --soak-s 300  --soak-rps 200
    #          --no-pin  --no-litellm  --litellm-version 1.x.y

``--quick`` (< 4 minutes after the one-off install): 6 loads, 2 s each, 60 s soak.
``--smoke``: 2 loads, 3 s each, 10 s soak — proves the pipeline end to end. ``--json`` prints
``{"summary": {...}, "runs": [...], ...}`` on stdout (tables go to stderr). Exit status 1 if
a server failed to start or the direct upstream could not sustain the lowest load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httptools
import httpx
import orjson
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import cpu_seconds, free_port, percentile, start, stop, wait_ready

ROOT = Path(__file__).resolve().parent.parent
LITELLM_VENV = ROOT / ".rankgate" / "bench" / "litellm-venv"
MODEL = "fast"
BODY = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hello"}],
                     "max_tokens": 16})
STREAM_BODY = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hello"}],
                            "max_tokens": 16, "stream": True})
PATH = "/v1/chat/completions"
MAX_CONNS = 512  # per target; past that, requests wait in the client (and are charged for it)
SUSTAIN_ACHIEVED = 0.95
SUSTAIN_ERRORS = 0.01
SUSTAIN_P99_MS = 50.0
PROFILES: dict[str, dict[str, Any]] = {
    "full": {"loads": [50, 100, 200, 300, 500, 700, 1000, 1500, 2000], "warm_s": 2.0,
             "measure_s": 10.0, "grace_s": 5.0, "soak_s": 300.0},
    "quick": {"loads": [50, 100, 200, 400, 700, 1000], "warm_s": 0.5, "measure_s": 2.0,
              "grace_s": 3.0, "soak_s": 60.0},
    "smoke": {"loads": [50, 200], "warm_s": 0.5, "measure_s": 3.0, "grace_s": 3.0,
              "soak_s": 10.0},
}


# -- a small open-loop HTTP/1.1 client ----------------------------------------------------
class _Conn(asyncio.Protocol):
    """One keep-alive connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.fut: asyncio.Future[tuple[int, bytes, float | None, float]] | None = None
        self.body: list[bytes] = []
        self.ttft: float | None = None
        self.stream = False
        self.closed = False
        self.keep = True

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(ConnectionError(f"bad HTTP response: {e}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionError(f"connection lost: {exc}"))

    def _fail(self, exc: Exception) -> None:
        if self.fut is not None and not self.fut.done():
            self.fut.set_exception(exc)
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        if self.stream and self.ttft is None and b"data:" in body:
            self.ttft = time.perf_counter()
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.keep = self.parser.should_keep_alive()
        if self.fut is not None and not self.fut.done():
            self.fut.set_result((self.parser.get_status_code(), b"".join(self.body), self.ttft,
                                 time.perf_counter()))

    def request(self, raw: bytes, stream: bool) -> asyncio.Future[Any]:
        assert self.transport is not None
        self.fut = asyncio.get_running_loop().create_future()
        self.body, self.ttft, self.stream = [], None, stream
        self.transport.write(raw)
        return self.fut


class Pool:
    """Keep-alive connections to one host:port, opened on demand up to ``MAX_CONNS``."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[_Conn] = []
        self.open = 0
        self.waiters: list[asyncio.Future[None]] = []

    async def acquire(self) -> _Conn:
        while True:
            while self.idle:
                c = self.idle.pop()
                if not c.closed:
                    return c
                self.open -= 1
            if self.open < MAX_CONNS:
                self.open += 1
                try:
                    _, c = await asyncio.get_running_loop().create_connection(
                        _Conn, self.host, self.port)
                except BaseException:
                    self.open -= 1
                    raise
                return c
            w = asyncio.get_running_loop().create_future()
            self.waiters.append(w)
            await w

    def release(self, c: _Conn, ok: bool) -> None:
        if not ok or c.closed or not c.keep:
            self.discard(c)
        else:
            self.idle.append(c)
        while self.waiters:
            w = self.waiters.pop(0)
            if not w.done():
                w.set_result(None)
                break

    def discard(self, c: _Conn) -> None:
        if c.transport is not None:
            c.transport.close()
        if not c.closed:
            c.closed = True
        self.open -= 1

    def close(self) -> None:
        for c in self.idle:
            if c.transport is not None:
                c.transport.close()
        self.idle.clear()
        self.open = 0
        for w in self.waiters:
            if not w.done():
                w.cancel()
        self.waiters.clear()


@dataclass
class Rec:
    latencies_ms: list[float] = field(default_factory=list)
    ttfts_ms: list[float] = field(default_factory=list)
    sent: int = 0
    errors: int = 0
    error_samples: dict[str, int] = field(default_factory=dict)
    first_s: float | None = None  # scheduled time of the first request
    last_end_s: float = 0.0
    lag_ms: list[float] = field(default_factory=list)  # dispatch time - scheduled time

    def error(self, what: str) -> None:
        self.errors += 1
        self.error_samples[what] = self.error_samples.get(what, 0) + 1


def _raw_request(host: str, port: int, body: bytes) -> bytes:
    return (f"POST {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode() + body


async def _one(pool: Pool, raw: bytes, stream: bool, t_sched: float, rec: Rec) -> None:
    try:
        c = await pool.acquire()
    except OSError as e:
        rec.error(f"connect: {type(e).__name__}")
        return
    try:
        status, body, ttft, t_end = await c.request(raw, stream)
    except asyncio.CancelledError:
        pool.discard(c)
        raise
    except ConnectionError as e:
        pool.discard(c)
        rec.error(str(e)[:80])
        return
    ok = status == 200 and (
        (b"data: [DONE]" in body and b'{"error"' not in body) if stream else b'"choices"' in body)
    pool.release(c, ok=status < 500)
    if not ok:
        rec.error(f"HTTP {status}: {body[:100]!r}")
        return
    rec.latencies_ms.append((t_end - t_sched) * 1000.0)
    if ttft is not None:
        rec.ttfts_ms.append((ttft - t_sched) * 1000.0)
    rec.last_end_s = max(rec.last_end_s, t_end)


async def offered_load(pool: Pool, rate: float, warm_s: float, measure_s: float, grace_s: float,
                       modes: list[bool], on_measure_start: Callable[[], None] | None = None
                       ) -> Rec:
    """Send requests at ``rate``/s for ``warm_s + measure_s``; only the last ``measure_s``
    are recorded. ``modes`` cycles stream/non-stream per request. Requests unanswered
    ``grace_s`` after the last arrival are cancelled and counted as errors."""
    raws = {s: _raw_request(pool.host, pool.port, STREAM_BODY if s else BODY) for s in (0, 1)}
    n_warm, n_meas = int(rate * warm_s), max(1, int(rate * measure_s))
    warm, rec = Rec(), Rec()
    tasks: set[asyncio.Task[None]] = set()
    measured: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter() + 0.01
    for i in range(n_warm + n_meas):
        t_i = t0 + i / rate
        delay = t_i - time.perf_counter()
        if delay > 0.0002:
            await asyncio.sleep(delay)
        elif i % 32 == 0:
            await asyncio.sleep(0)
        r = rec if i >= n_warm else warm
        if i == n_warm:
            rec.first_s = t_i
            if on_measure_start:
                on_measure_start()
        stream = modes[i % len(modes)]
        r.sent += 1
        r.lag_ms.append((time.perf_counter() - t_i) * 1000.0)
        task = loop.create_task(_one(pool, raws[stream], stream, t_i, r))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        if r is rec:
            measured.add(task)
    if measured:
        _, pending = await asyncio.wait(measured, timeout=grace_s)
        for t in pending:
            t.cancel()
        for _ in pending:
            rec.error(f"no answer within {grace_s:.0f} s of the last arrival")
    for t in list(tasks):
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    pool.close()
    return rec


# -- processes ----------------------------------------------------------------------------
def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def tree_rss_mib(pid: int) -> float | None:
    """RSS of a process plus its children (LiteLLM/uvicorn may fork a worker)."""
    total = rss_mib(pid)
    if total is None:
        return None
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            total += rss_mib(int(child)) or 0.0
    return total


async def wait_idle(pids: list[int], timeout_s: float = 15.0) -> float:
    """Wait until the given processes use < 5 % of a core for 0.6 s (queued work from an
    overloaded run has finished); returns the seconds waited."""
    t0 = time.monotonic()
    quiet = 0
    prev = sum(cpu_seconds(p) or 0.0 for p in pids)
    while time.monotonic() - t0 < timeout_s and quiet < 3:
        await asyncio.sleep(0.2)
        now = sum(cpu_seconds(p) or 0.0 for p in pids)
        quiet = quiet + 1 if now - prev < 0.01 else 0
        prev = now
    return time.monotonic() - t0


def ensure_litellm(version: str | None, log: Console) -> tuple[Path, str, float | None]:
    """LiteLLM proxy in its own venv; returns (litellm executable, version, install seconds
    or None if it was already installed)."""
    py = LITELLM_VENV / "bin" / "python"
    exe = LITELLM_VENV / "bin" / "litellm"

    def installed() -> str | None:
        if not exe.exists():
            return None
        r = subprocess.run([str(py), "-c", "import importlib.metadata as m;"
                            "print(m.version('litellm'))"], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None

    have = installed()
    if have and (version is None or have == version):
        return exe, have, None
    t0 = time.monotonic()
    log.print(f"installing litellm[proxy]{'==' + version if version else ''} into "
              f"{LITELLM_VENV} (one-off, not counted) …")
    LITELLM_VENV.parent.mkdir(parents=True, exist_ok=True)
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
    spec = f"litellm[proxy]=={version}" if version else "litellm[proxy]"
    subprocess.run([str(py), "-m", "pip", "install", "-q", spec], check=True,
                   stdout=subprocess.DEVNULL)
    have = installed()
    if not have:
        raise RuntimeError("litellm did not install")
    return exe, have, time.monotonic() - t0


def litellm_config(path: Path, upstream: str) -> None:
    """One model, no database (so no spend logs), no callbacks, no telemetry."""
    path.write_text(json.dumps({  # JSON is YAML
        "model_list": [{"model_name": MODEL, "litellm_params": {
            "model": f"openai/{MODEL}", "api_base": f"{upstream}/v1", "api_key": "dummy"}}],
        "litellm_settings": {"success_callback": [], "failure_callback": [], "callbacks": [],
                             "telemetry": False, "set_verbose": False, "drop_params": True,
                             "request_timeout": 30},
        "general_settings": {"disable_spend_logs": True, "disable_error_logs": True,
                             "disable_reset_budget": True, "background_health_checks": False},
    }))


def pin(pid: int, cpus: set[int]) -> None:
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(pid, cpus)
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            os.sched_setaffinity(int(child), cpus)


# -- the benchmark ------------------------------------------------------------------------
@dataclass
class Target:
    name: str
    port: int
    proc: subprocess.Popen[bytes] | None = None


def summarize_run(target: str, mode: str, load: float, rec: Rec, cpu: dict[str, float],
                  measure_s: float) -> dict[str, Any]:
    n = rec.sent
    ok = len(rec.latencies_ms)
    span = (rec.last_end_s - rec.first_s) if rec.first_s and rec.last_end_s else 0.0
    achieved = ok / max(span, measure_s) if ok else 0.0
    p99 = percentile(rec.latencies_ms, 99)
    err_rate = rec.errors / n if n else 1.0
    out: dict[str, Any] = {
        "target": target, "mode": mode, "offered_rps": load, "sent": n, "ok": ok,
        "errors": rec.errors, "error_rate": round(err_rate, 4),
        "achieved_rps": round(achieved, 1),
        "latency_p50_ms": _r(percentile(rec.latencies_ms, 50)), "latency_p99_ms": _r(p99),
        "client_lag_p99_ms": _r(percentile(rec.lag_ms, 99)),
        "cpu_ms_per_request": {k: round(v * 1000 / max(n, 1), 3) for k, v in cpu.items()},
    }
    if mode == "stream":
        out["ttft_p50_ms"] = _r(percentile(rec.ttfts_ms, 50))
        out["ttft_p99_ms"] = _r(percentile(rec.ttfts_ms, 99))
    out["sustained"] = bool(achieved >= SUSTAIN_ACHIEVED * load and err_rate < SUSTAIN_ERRORS
                            and p99 is not None and p99 <= SUSTAIN_P99_MS)
    if rec.error_samples:
        out["error_samples"] = dict(sorted(rec.error_samples.items(), key=lambda kv: -kv[1])[:5])
    return out


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(x, nd)


async def measure(args: argparse.Namespace, targets: dict[str, Target], upstream_pid: int,
                  log: Console) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    client_pid = os.getpid()
    for mode in ("non-stream", "stream"):
        failed: set[str] = set()
        for load in args.loads:
            gateways = [t for t in targets if t != "direct" and t not in failed]
            if not gateways:
                break
            for name in ["direct", *gateways]:
                t = targets[name]
                pids = {"client": client_pid, "upstream": upstream_pid}
                if t.proc is not None:
                    pids[name] = t.proc.pid
                await wait_idle([p for k, p in pids.items() if k != "client"])
                cpu0: dict[str, float | None] = {}

                def mark(pids: dict[str, int] = pids, cpu0: dict[str, float | None] = cpu0
                         ) -> None:
                    cpu0.update({k: cpu_seconds(p) for k, p in pids.items()})

                rec = await offered_load(Pool("127.0.0.1", t.port), load, args.warm_s,
                                         args.measure_s, args.grace_s, [mode == "stream"],
                                         mark)
                cpu = {k: (cpu_seconds(p) or 0.0) - (cpu0.get(k) or 0.0)
                       for k, p in pids.items()}
                run = summarize_run(name, mode, load, rec, cpu, args.measure_s)
                runs.append(run)
                log.print(_run_line(run), highlight=False)
                if name != "direct" and not run["sustained"]:
                    failed.add(name)
    for run in runs:  # added latency vs direct at the same load and mode
        if run["target"] == "direct":
            continue
        d = next((r for r in runs if r["target"] == "direct" and r["mode"] == run["mode"]
                  and r["offered_rps"] == run["offered_rps"]), None)
        if d is None:
            continue
        for q in ("p50", "p99"):
            run[f"added_latency_{q}_ms"] = _diff(run[f"latency_{q}_ms"], d[f"latency_{q}_ms"])
            if run["mode"] == "stream":
                run[f"added_ttft_{q}_ms"] = _diff(run[f"ttft_{q}_ms"], d[f"ttft_{q}_ms"])
    return runs


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


def _run_line(r: dict[str, Any]) -> str:
    cpu = " ".join(f"{k} {v:.2f}" for k, v in r["cpu_ms_per_request"].items())
    ttft = f" ttft p50 {_fmt(r.get('ttft_p50_ms'))}" if r["mode"] == "stream" else ""
    return (f"  {r['mode']:10} {r['target']:8} offered {r['offered_rps']:5.0f}/s achieved "
            f"{r['achieved_rps']:7.1f}/s p50 {_fmt(r['latency_p50_ms'])} p99 "
            f"{_fmt(r['latency_p99_ms'])} ms{ttft} err {r['error_rate']:.2%} "
            f"{'ok' if r['sustained'] else 'NOT sustained'}; CPU ms/req {cpu}; "
            f"client lag p99 {_fmt(r['client_lag_p99_ms'])} ms")


async def soak(args: argparse.Namespace, t: Target, log: Console) -> dict[str, Any]:
    """rankgate at a fixed load (3 non-streams : 1 stream) for ``soak_s``; RSS every second."""
    assert t.proc is not None
    pid = t.proc.pid
    samples: list[tuple[float, float]] = []
    t0 = time.monotonic()

    async def sample() -> None:
        while True:
            v = tree_rss_mib(pid)
            if v is not None:
                samples.append((time.monotonic() - t0, v))
            await asyncio.sleep(1.0)

    sampler = asyncio.create_task(sample())
    try:
        rec = await offered_load(Pool("127.0.0.1", t.port), args.soak_rps, 0.0, args.soak_s,
                                 args.grace_s, [False, False, False, True])
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    warm = max(args.soak_s * 0.2, min(5.0, args.soak_s / 2))
    pts = [(s / 60.0, v) for s, v in samples if s >= warm]
    slope = _slope(pts)
    out = {"target": t.name, "offered_rps": args.soak_rps, "duration_s": args.soak_s,
           "warmup_excluded_s": round(warm, 1), "sent": rec.sent, "errors": rec.errors,
           "latency_p50_ms": _r(percentile(rec.latencies_ms, 50)),
           "latency_p99_ms": _r(percentile(rec.latencies_ms, 99)),
           "rss_start_mib": _r(samples[0][1], 1) if samples else None,
           "rss_end_mib": _r(samples[-1][1], 1) if samples else None,
           "rss_samples": len(samples), "rss_growth_mib_per_min": _r(slope, 3)}
    log.print(f"  soak {t.name} {args.soak_rps}/s for {args.soak_s:.0f} s: sent {rec.sent}, "
              f"errors {rec.errors}, p99 {_fmt(out['latency_p99_ms'])} ms, RSS "
              f"{out['rss_start_mib']} → {out['rss_end_mib']} MiB, slope after warm-up "
              f"{_fmt(slope, 3)} MiB/min", highlight=False)
    return out


def _slope(pts: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over x."""
    if len(pts) < 3:
        return None
    n = len(pts)
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else None


def max_sustained(runs: list[dict[str, Any]], target: str, mode: str
                  ) -> tuple[float, float | None]:
    """(achieved rps, offered rps) at the highest load the target sustained; (0, None)."""
    ok = [r for r in runs if r["target"] == target and r["mode"] == mode and r["sustained"]]
    if not ok:
        return 0.0, None
    best = max(ok, key=lambda r: r["offered_rps"])
    return best["achieved_rps"], best["offered_rps"]


def summary(runs: list[dict[str, Any]], soak_res: dict[str, Any] | None, loads: list[float],
            with_litellm: bool) -> dict[str, Any]:
    """Headline figures (non-streaming), plus the same for streams under ``stream``."""
    def for_mode(mode: str) -> dict[str, Any]:
        rg, rg_at = max_sustained(runs, "rankgate", mode)
        ll, ll_at = max_sustained(runs, "litellm", mode) if with_litellm else (0.0, None)
        at = ll_at if ll_at is not None else (loads[0] if with_litellm else None)
        rg_run = next((r for r in runs if r["target"] == "rankgate" and r["mode"] == mode
                       and r["offered_rps"] == at), None)
        out = {
            "throughput_ratio_vs_litellm": round(rg / ll, 2) if ll else None,
            "rankgate_added_p99_ms_at_litellm_max":
                rg_run.get("added_latency_p99_ms") if rg_run else None,
            "litellm_max_rps": ll if with_litellm else None,
            "rankgate_max_rps": rg,
            "rankgate_at_ceiling": rg_at == max(loads),  # the ratio is then a lower bound
            "litellm_max_offered_rps": ll_at,
        }
        if with_litellm and ll_at is None:  # ratio undefined; added p99 is at the lowest load
            out["litellm_sustained_no_load"] = True
        if mode == "stream" and rg_run:
            out["rankgate_added_ttft_p99_ms_at_litellm_max"] = rg_run.get("added_ttft_p99_ms")
        return out

    s = for_mode("non-stream")
    s["soak_rss_growth_mib_per_min"] = soak_res["rss_growth_mib_per_min"] if soak_res else None
    s["stream"] = for_mode("stream")
    s["targets_met"] = {
        "added_p99_under_5ms_at_litellm_max":
            None if s["rankgate_added_p99_ms_at_litellm_max"] is None
            else s["rankgate_added_p99_ms_at_litellm_max"] < 5.0,
        "throughput_at_least_3x_litellm":
            None if s["throughput_ratio_vs_litellm"] is None
            else s["throughput_ratio_vs_litellm"] >= 3.0,
    }
    return s


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() \
        else []
    return {"cpu": cpu, "cpus": os.cpu_count(), "kernel": platform.release(),
            "loadavg_at_start": load}


async def bench(args: argparse.Namespace, log: Console) -> dict[str, Any]:
    t_all = time.monotonic()
    litellm_exe, litellm_version, install_s = (None, None, None)
    if args.litellm:
        litellm_exe, litellm_version, install_s = ensure_litellm(args.litellm_version, log)
        log.print(f"litellm {litellm_version} "
                  + (f"installed in {install_s:.0f} s (not counted)" if install_s
                     else "already installed"), highlight=False)
    t_start = time.monotonic()
    machine = machine_info()
    tmp = Path(tempfile.mkdtemp(prefix="rankgate-bench-gw-"))
    up_port = free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    targets = {"direct": Target("direct", up_port), "rankgate": Target("rankgate", free_port())}
    if args.litellm:
        targets["litellm"] = Target("litellm", free_port())
    panel = tmp / "panel.yaml"
    panel.write_text(json.dumps({"models": [{
        "id": MODEL, "backend": "openai", "base_url": f"{upstream}/v1",
        "input_price_per_mtok": 1.0, "output_price_per_mtok": 2.0}]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RANKGATE_")}
    env.update(RANKGATE_HOME=str(tmp / "home"), RANKGATE_CACHE="false", NO_PROXY="*",
               no_proxy="*")
    if args.rankgate_src:
        env["PYTHONPATH"] = str(args.rankgate_src.resolve())
    ll_env = {**env, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
              "LITELLM_TELEMETRY": "False", "DISABLE_ADMIN_UI": "True",
              # no auth on either gateway (rankgate runs without an admin key)
              "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true"}
    py = sys.executable
    procs: list[subprocess.Popen[bytes]] = []
    soak_res: dict[str, Any] | None = None
    runs: list[dict[str, Any]] = []
    try:
        up = start([py, "-m", "rankgate.testing.fault_upstream", "--port", str(up_port)], env,
                   tmp / "upstream.log")
        procs.append(up)
        rg = targets["rankgate"]
        rg.proc = start([py, "-m", "rankgate", "serve", "--panel", str(panel), "--port",
                         str(rg.port)], env, tmp / "rankgate.log")
        procs.append(rg.proc)
        if args.litellm:
            ll = targets["litellm"]
            cfg = tmp / "litellm.yaml"
            litellm_config(cfg, upstream)
            ll.proc = start([str(litellm_exe), "--config", str(cfg), "--host", "127.0.0.1",
                             "--port", str(ll.port), "--num_workers", "1"], ll_env,
                            tmp / "litellm.log")
            procs.append(ll.proc)
        async with httpx.AsyncClient(trust_env=False) as c:
            await wait_ready(c, f"{upstream}/v1/models", up, tmp / "upstream.log")
            await wait_ready(c, f"http://127.0.0.1:{rg.port}/healthz", rg.proc,
                             tmp / "rankgate.log")
            if args.litellm:
                ll = targets["litellm"]
                assert ll.proc is not None
                await _wait_litellm(c, ll, tmp / "litellm.log")
        startup_s = time.monotonic() - t_start
        log.print(f"servers up in {startup_s:.1f} s (logs in {tmp}); loads {args.loads}, "
                  f"{args.measure_s} s each after {args.warm_s} s warm-up; pin={args.pin}",
                  highlight=False)
        if args.pin:
            pin(os.getpid(), {0})
            pin(up.pid, {0})
            for t in targets.values():
                if t.proc is not None:
                    pin(t.proc.pid, {1})
        runs = await measure(args, targets, up.pid, log)
        if args.soak_s > 0:
            await wait_idle([up.pid, rg.proc.pid])
            soak_res = await soak(args, rg, log)
    finally:
        for p in reversed(procs):
            stop(p)
    versions = {"python": platform.python_version(), "rankgate": _version("rankgate"),
                "litellm": litellm_version, "uvicorn": _version("uvicorn"),
                "fastapi": _version("fastapi"), "httpx": _version("httpx")}
    res = {
        "summary": summary(runs, soak_res, args.loads, args.litellm),
        "runs": runs,
        "soak": soak_res,
        "machine": {**machine, "loadavg_at_end": Path("/proc/loadavg").read_text().split()[:3]},
        "versions": versions,
        "config": {"profile": args.profile, "loads": args.loads, "warm_s": args.warm_s,
                   "measure_s": args.measure_s, "grace_s": args.grace_s,
                   "soak_s": args.soak_s, "soak_rps": args.soak_rps, "pin": args.pin,
                   "sustain_rule": f"achieved >= {SUSTAIN_ACHIEVED:.0%} of offered, errors < "
                                   f"{SUSTAIN_ERRORS:.0%}, p99 <= {SUSTAIN_P99_MS:.0f} ms",
                   "spend_logging": "rankgate on (request log: journal + SQLite, async); "
                                    "litellm off (no database_url)",
                   "rankgate_cache": "off", "max_conns_per_target": MAX_CONNS,
                   "rankgate_src": str(args.rankgate_src) if args.rankgate_src else None},
        "timing": {"litellm_install_s": _r(install_s, 1), "startup_s": round(startup_s, 1),
                   "total_s_excluding_install": round(time.monotonic() - t_start, 1),
                   "total_s": round(time.monotonic() - t_all, 1)},
    }
    return res


async def _wait_litellm(c: httpx.AsyncClient, t: Target, log_path: Path) -> None:
    """LiteLLM answers /health/liveliness before its router is ready: also wait for one
    real completion."""
    assert t.proc is not None
    base = f"http://127.0.0.1:{t.port}"
    await wait_ready(c, f"{base}/health/liveliness", t.proc, log_path)
    deadline = time.monotonic() + 60
    last = ""
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            r = await c.post(base + PATH, content=BODY,
                             headers={"content-type": "application/json"}, timeout=10)
            if r.status_code == 200:
                return
            last = f"{r.status_code}: {r.text[:300]}"
        await asyncio.sleep(0.5)
    raise RuntimeError(f"litellm never answered a completion: {last}\n"
                       f"{log_path.read_text(errors='replace')[-2000:]}")


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _fmt(x: float | None, nd: int = 2) -> str:
    return "—" if x is None else f"{x:.{nd}f}"


def print_tables(res: dict[str, Any], console: Console) -> None:
    for mode in ("non-stream", "stream"):
        t = Table(title=f"{mode}: offered load vs achieved (added = target − direct)")
        cols = ["load/s", "target", "achieved/s", "p50 ms", "p99 ms", "+p50", "+p99"]
        if mode == "stream":
            cols += ["TTFT p50", "+TTFT p50", "+TTFT p99"]
        cols += ["err %", "CPU ms/req (server)", "sustained"]
        for col in cols:
            t.add_column(col, justify="left" if col == "target" else "right")
        for r in [r for r in res["runs"] if r["mode"] == mode]:
            row = [f"{r['offered_rps']:.0f}", r["target"], _fmt(r["achieved_rps"], 0),
                   _fmt(r["latency_p50_ms"]), _fmt(r["latency_p99_ms"]),
                   _fmt(r.get("added_latency_p50_ms")), _fmt(r.get("added_latency_p99_ms"))]
            if mode == "stream":
                row += [_fmt(r.get("ttft_p50_ms")), _fmt(r.get("added_ttft_p50_ms")),
                        _fmt(r.get("added_ttft_p99_ms"))]
            server = r["cpu_ms_per_request"].get(r["target"],
                                                 r["cpu_ms_per_request"].get("upstream"))
            row += [f"{r['error_rate'] * 100:.1f}", _fmt(server),
                    "yes" if r["sustained"] else "[red]no[/]"]
            t.add_row(*row)
        console.print(t)
    console.print_json(data=res["summary"])


def main() -> int:
    ap = argparse.ArgumentParser(description="rankgate vs LiteLLM proxy vs direct upstream")
    prof = ap.add_mutually_exclusive_group()
    prof.add_argument("--quick", action="store_true", help="6 loads x 2 s, 60 s soak (< 4 min)")
    prof.add_argument("--smoke", action="store_true", help="2 loads x 3 s, 10 s soak")
    ap.add_argument("--loads", help="comma-separated offered loads in req/s")
    ap.add_argument("--measure-s", type=float, help="measured seconds per load")
    ap.add_argument("--soak-s", type=float, help="soak duration (0: no soak)")
    ap.add_argument("--soak-rps", type=float, default=200.0, help="soak load (default 200/s)")
    ap.add_argument("--pin", action=argparse.BooleanOptionalAction,
                    default=(os.cpu_count() or 1) >= 2,
                    help="client+upstream on CPU 0, gateways on CPU 1 (default on >= 2 CPUs)")
    ap.add_argument("--litellm", action=argparse.BooleanOptionalAction, default=True,
                    help="include the LiteLLM proxy (default on)")
    ap.add_argument("--litellm-version", help="pin a LiteLLM version (default: latest)")
    ap.add_argument("--rankgate-src", type=Path,
                    help="run rankgate (and the upstream) from this src/ directory instead of "
                    "the installed package, e.g. an exported older commit for an A/B")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = ap.parse_args()
    args.profile = "quick" if args.quick else "smoke" if args.smoke else "full"
    p = PROFILES[args.profile]
    args.loads = [float(x) for x in args.loads.split(",")] if args.loads else p["loads"]
    args.measure_s = args.measure_s or p["measure_s"]
    args.soak_s = p["soak_s"] if args.soak_s is None else args.soak_s
    args.warm_s, args.grace_s = p["warm_s"], p["grace_s"]
    log = Console(stderr=True, width=None if sys.stderr.isatty() else 200)
    out = log if args.json else Console(width=None if sys.stdout.isatty() else 200)
    import uvloop

    res = uvloop.run(bench(args, log))
    print_tables(res, out)
    log.print(f"timing: {res['timing']}", highlight=False)
    if args.json:
        sys.stdout.write(json.dumps(res, indent=2) + "\n")
    direct_first = next((r for r in res["runs"] if r["target"] == "direct"), None)
    return 0 if direct_first and direct_first["sustained"] else 1


if __name__ == "__main__":
    sys.exit(main())
