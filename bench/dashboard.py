"""The dashboard at 1,000,000 logged requests: page server time, and what an open dashboard
costs the gateway's own latency.

What it measures
    A request log of ``--rows`` (1,000,000) rows is written straight into a SQLite store and,
    when ``scripts/ensure-postgres.sh`` provides PostgreSQL binaries, into a throwaway
    PostgreSQL cluster (COPY, then ``VACUUM ANALYZE``). The rows span the last 40 hours (all
    in the current month: the worst case for "spend this month"), over 20 keys, 4 models,
    60 % routed, 5 % errors. For each store a real gateway (``rankgate serve --store``, an
    admin key, a ``faulty`` model that answers at once) serves:

    1. Page server time: each page is loaded ``--loads`` times in a row, logged in; the figure
       is the gateway's own ``Server-Timing: app;dur=`` (queries + rendering, what the goal of
       ≤ 300 ms is about) and, beside it, the time seen by the client over loopback; the first
       load (cold: nothing cached, SQLite pages not in memory) is reported apart. Pages:
       the Overview (full page and the fragment it refreshes), Requests (first page, a model +
       status filter, and page 20 by keyset cursor), Routing (24 h).
    2. Gateway p99 with the dashboard closed vs open: an open-loop load of ``--rate`` chat
       requests per second (latency from the scheduled send time, so a stall shows up),
       alternating rounds of ``--seconds`` each: *closed* (no dashboard), *open* (one
       dashboard refreshing the Overview every 5 s as the page does) and *busy* (the Overview
       and the Requests page every second: five dashboards' worth). Reported: p50/p99 per
       side and the change of p99 against closed.

Run (from the repository root)::

    .venv/bin/python bench/dashboard.py [--rows 1000000] [--quick] [--no-postgres]

``--quick``: 50,000 rows, 3 loads, 5 s rounds (checks that it works). The machine's load
average is printed with the figures: on a shared 2-core machine, read them with it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import os
import random
import shutil
import sqlite3
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

ADMIN = "bench-dashboard-admin"
MODELS = ["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "fast"]
COLUMNS = ["id", "ts", "endpoint", "key_id", "model", "stream", "status", "error_type",
           "error_code", "error", "input_tokens", "output_tokens", "cost_usd", "cost_basis",
           "latency_ms", "ttft_ms", "overhead_ms", "router", "prompt", "cache",
           "fallback_from", "attempts"]
PAGES = [("overview", "/ui"), ("overview fragment", "/ui/partials/overview"),
         ("requests", "/ui/requests"),
         ("requests model+5xx", "/ui/requests?model=qwen2.5-coder-0.5b&status=5xx"),
         ("requests page 20", None), ("routing 24h", "/ui/routing?window=24h")]
PANEL = "models:\n  - {id: fast, backend: faulty, upstream_model: ok, " \
        "input_price_per_mtok: 0.1, output_price_per_mtok: 0.2}\n"


def rows(n: int, seed: int = 0) -> Any:
    """``n`` plausible request-log rows over the last 40 hours (within this month)."""
    rng = random.Random(seed)
    now = time.time()
    month = time.gmtime(now)
    month_start = time.mktime((month.tm_year, month.tm_mon, 1, 0, 0, 0, 0, 0, 0)) \
        - time.timezone
    span = min(40 * 3600.0, now - month_start - 60)
    for i in range(n):
        model = MODELS[rng.randrange(4)]
        roll = rng.random()
        status = 200 if roll < 0.95 else (429 if roll < 0.98 else 502)
        ok = status == 200
        inp, out = rng.randint(10, 800), rng.randint(1, 400) if ok else 0
        yield (f"b{i:08d}", now - span * rng.random(), "/v1/chat/completions",
               f"key-{rng.randrange(20):02d}", model, False, status,
               None if ok else ("rate_limit_error" if status == 429 else "upstream_error"),
               None, None if ok else "synthetic", inp, out,
               (inp + out) * 1e-7 if ok else None, "panel", rng.uniform(50, 3000),
               None, rng.uniform(0.2, 2), "knn" if rng.random() < 0.6 else None,
               f"synthetic prompt {i} about topic {rng.randrange(1000)}", None, None, 1)


def fill_sqlite(path: Path, n: int) -> float:
    from rankgate.store.tables import make_engine

    make_engine(f"sqlite:///{path}").dispose()  # the schema and every index
    t0 = time.perf_counter()
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    sql = f"INSERT INTO request_log ({','.join(COLUMNS)}) VALUES ({','.join('?' * len(COLUMNS))})"
    batch: list[tuple[Any, ...]] = []
    for r in rows(n):
        batch.append(r)
        if len(batch) == 50_000:
            con.executemany(sql, batch)
            con.commit()
            batch.clear()
    con.executemany(sql, batch)
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # as a running gateway would have
    con.close()
    return time.perf_counter() - t0


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@contextlib.contextmanager
def postgres() -> Any:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (as the tests start one)."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        yield None
        return
    base = Path(tempfile.mkdtemp(prefix="rankgate-bench-pg-"))
    data, port = base / "data", free_port()
    prefix: list[str] = []
    if os.geteuid() == 0:
        prefix = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
    subprocess.run([*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "rankgate"],
                   check=True, capture_output=True)
    subprocess.run([*prefix, pg_ctl, "-D", str(data), "-l", str(base / "pg.log"), "-w", "-o",
                    f"-p {port} -c listen_addresses=127.0.0.1 -k {base}", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://rankgate@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def fill_postgres(url: str, n: int) -> float:
    import psycopg

    from rankgate.store.tables import make_engine

    make_engine(url).dispose()
    t0 = time.perf_counter()
    with psycopg.connect(url.replace("postgresql://", "postgresql://", 1)) as con:
        with con.cursor() as cur, cur.copy(
                f"COPY request_log ({','.join(COLUMNS)}) FROM STDIN") as copy:
            for r in rows(n):
                copy.write_row(r)
        con.commit()
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("VACUUM ANALYZE request_log")
    return time.perf_counter() - t0


@dataclass
class Round:
    side: str
    latencies: list[float] = field(default_factory=list)
    errors: int = 0


async def load(client: httpx.AsyncClient, base: str, rate: float, seconds: float,
               r: Round) -> None:
    """Open loop: one chat request every 1/rate s whatever earlier ones do."""
    body = {"model": "fast", "messages": [{"role": "user", "content": "hello"}],
            "max_tokens": 8}
    headers = {"Authorization": f"Bearer {ADMIN}"}
    t0 = time.perf_counter()

    async def one(at: float) -> None:
        try:
            resp = await client.post(base + "/v1/chat/completions", json=body, headers=headers)
            if resp.status_code != 200:
                r.errors += 1
        except httpx.HTTPError:
            r.errors += 1
        r.latencies.append(time.perf_counter() - at)

    tasks = []
    for i in range(int(rate * seconds)):
        at = t0 + i / rate
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        tasks.append(asyncio.create_task(one(at)))
    await asyncio.gather(*tasks)


async def dashboard(client: httpx.AsyncClient, base: str, paths: list[str], every_s: float,
                    stop_at: float) -> int:
    loads = 0
    while time.perf_counter() < stop_at:
        for p in paths:
            (await client.get(base + p)).raise_for_status()
            loads += 1
        await asyncio.sleep(every_s)
    return loads


async def login(client: httpx.AsyncClient, base: str) -> None:
    form = (await client.get(base + "/ui/login")).text  # sets the login form's cookie
    token = form.split('name="csrf_token" value="')[1].split('"')[0]
    r = await client.post(base + "/ui/login", data={"admin_key": ADMIN, "next": "/ui",
                                                    "csrf_token": token})
    assert r.status_code == 303, r.text


async def page_times(client: httpx.AsyncClient, base: str, loads: int) -> dict[str, Any]:
    out = {}
    for name, path in PAGES:
        if path is None:  # page 20 of the unfiltered search, by cursor
            path = "/ui/requests"
            for _ in range(19):
                html = (await client.get(base + path)).text
                nxt = html.split('data-testid="next-page" href="')[1].split('"')[0]
                path = nxt.replace("&amp;", "&")
        server, client_ms = [], []
        for _ in range(loads + 1):  # the first load (cold caches) is reported apart
            t0 = time.perf_counter()
            resp = await client.get(base + path)
            client_ms.append((time.perf_counter() - t0) * 1000)
            resp.raise_for_status()
            server.append(float(resp.headers["server-timing"].split("dur=")[1]))
        out[name] = {"first_ms": server[0], "server_p50_ms": percentile(server[1:], 50),
                     "server_max_ms": max(server[1:]),
                     "client_p50_ms": percentile(client_ms[1:], 50)}
    return out


async def measure(store: str, url: str | None, home: Path, args: argparse.Namespace
                  ) -> dict[str, Any]:
    port = free_port()
    (home / "panel.yaml").write_text(PANEL)
    cmd = [sys.executable, "-m", "rankgate", "serve", "--port", str(port), "--panel",
           str(home / "panel.yaml")] + (["--store", url] if url else [])
    env = {**os.environ, "RANKGATE_HOME": str(home), "RANKGATE_ADMIN_KEY": ADMIN,
           "RANKGATE_CACHE": "false"}
    proc = start(cmd, env, home / "gateway.log")
    base = f"http://127.0.0.1:{port}"
    result: dict[str, Any] = {"store": store}
    try:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(
                max_connections=500)) as client:
            await wait_ready(client, base + "/healthz", proc, home / "gateway.log")
            await login(client, base)
            result["pages"] = await page_times(client, base, args.loads)
            result["load_avg_pages"] = os.getloadavg()
            sides = {"closed": None, "open": (["/ui/partials/overview"], 5.0),
                     "busy": (["/ui/partials/overview", "/ui/requests"], 1.0)}
            rounds: list[Round] = []
            for _ in range(args.rounds):
                for side, dash in sides.items():
                    r = Round(side)
                    stop_at = time.perf_counter() + args.seconds
                    jobs = [load(client, base, args.rate, args.seconds, r)]
                    if dash is not None:
                        jobs.append(dashboard(client, base, dash[0], dash[1], stop_at))
                    await asyncio.gather(*jobs)
                    rounds.append(r)
            result["load_avg_latency"] = os.getloadavg()
            result["latency"] = {}
            for side in sides:
                lat = [x for r in rounds if r.side == side for x in r.latencies]
                result["latency"][side] = {
                    "n": len(lat), "errors": sum(r.errors for r in rounds if r.side == side),
                    "p50_ms": (percentile(lat, 50) or 0) * 1000,
                    "p99_ms": (percentile(lat, 99) or 0) * 1000}
    finally:
        stop(proc)
    return result


def print_result(res: dict[str, Any], rows_n: int, fill_s: float) -> None:
    print(f"\n== {res['store']}: {rows_n:,} request-log rows (filled in {fill_s:.0f} s) ==")
    la = res["load_avg_pages"]
    print(f"page server time (Server-Timing; load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f})")
    print(f"  {'page':<22}{'first load':>12}{'server p50':>12}{'server max':>12}"
          f"{'client p50':>12}")
    for name, p in res["pages"].items():
        print(f"  {name:<22}{p['first_ms']:>10.1f}ms{p['server_p50_ms']:>10.1f}ms"
              f"{p['server_max_ms']:>10.1f}ms{p['client_p50_ms']:>10.1f}ms")
    la = res["load_avg_latency"]
    print(f"gateway latency, open loop (load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f})")
    closed = res["latency"]["closed"]["p99_ms"]
    for side, v in res["latency"].items():
        delta = "" if side == "closed" else f"  p99 vs closed {v['p99_ms'] - closed:+.1f} ms"
        print(f"  {side:<8} n={v['n']:<6} errors={v['errors']:<3} p50 {v['p50_ms']:7.1f} ms"
              f"  p99 {v['p99_ms']:7.1f} ms{delta}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--loads", type=int, default=10)
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--only", choices=["sqlite", "postgresql"])
    args = ap.parse_args()
    if args.quick:
        args.rows, args.loads, args.seconds, args.rounds = 50_000, 3, 5.0, 1
    failed = False
    if args.only in (None, "sqlite"):
        home = Path(tempfile.mkdtemp(prefix="rankgate-bench-ui-"))
        print(f"filling SQLite with {args.rows:,} rows …", flush=True)
        fill_s = fill_sqlite(home / "rankgate.db", args.rows)
        res = asyncio.run(measure("SQLite", None, home, args))
        print_result(res, args.rows, fill_s)
        failed |= any(v["errors"] for v in res["latency"].values())
        shutil.rmtree(home, ignore_errors=True)
    if args.only in (None, "postgresql") and not args.no_postgres:
        with postgres() as url:
            if url is None:
                print("\nPostgreSQL: no server binaries (run scripts/ensure-postgres.sh)")
            else:
                home = Path(tempfile.mkdtemp(prefix="rankgate-bench-ui-pg-"))
                print(f"\nfilling PostgreSQL with {args.rows:,} rows …", flush=True)
                fill_s = fill_postgres(url, args.rows)
                res = asyncio.run(measure("PostgreSQL", url, home, args))
                print_result(res, args.rows, fill_s)
                failed |= any(v["errors"] for v in res["latency"].values())
                shutil.rmtree(home, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
