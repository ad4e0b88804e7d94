"""``rankgate keys …``: create, list and revoke virtual keys in the gateway's database.

The commands write the same ``api_keys`` table the gateways read, so a key created here works
on every gateway that shares the database (within their key-cache TTL, 5 s by default).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from rankgate.config import Settings

keys_app = typer.Typer(help="Virtual API keys: create (the secret is shown once), list, revoke.",
                       no_args_is_help=True)
console = Console()
err = Console(stderr=True)

StoreOpt = Annotated[str | None, typer.Option(
    "--store", help="database URL (default: RANKGATE_STORE_URL or SQLite in RANKGATE_HOME)")]


def _store(url: str | None):  # noqa: ANN202 - KeyStore (imported lazily)
    from rankgate.gateway.auth import KeyStore

    return KeyStore(url or Settings().resolved_store_url())


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="a label: who or what uses the key")],
    models: Annotated[str | None, typer.Option(
        "--models", help="comma-separated model ids it may use; include 'auto' to allow "
        "routing (default: all)")] = None,
    rpm: Annotated[int | None, typer.Option("--rpm", help="requests per minute")] = None,
    tpm: Annotated[int | None, typer.Option("--tpm", help="tokens per minute")] = None,
    budget_usd: Annotated[float | None, typer.Option(
        "--budget-usd", help="$ it may spend per budget period")] = None,
    budget_period: Annotated[str, typer.Option(
        "--budget-period", help="day | week | month | total (UTC calendar periods)")] = "month",
    min_quality: Annotated[float | None, typer.Option(
        "--min-quality", help="default routing: cheapest model predicted to reach this")] = None,
    lambda_: Annotated[float | None, typer.Option(
        "--lambda", help="default routing: $ it would pay per unit of quality")] = None,
    max_cost_usd: Annotated[float | None, typer.Option(
        "--max-cost-usd", help="default routing: best model under this $ per request")] = None,
    savings: Annotated[float | None, typer.Option(
        "--savings", help="default routing: spend this share less than the best model "
        "(0-1)")] = None,
    confidence: Annotated[float | None, typer.Option(
        "--confidence", help="with --min-quality: guarantee it at this confidence (0-1, "
        "conformal bounds)")] = None,
    log_bodies: Annotated[bool | None, typer.Option(
        "--log-bodies/--no-log-bodies", help="store this key's request bodies (redacted), or "
        "never; overrides `serve --log-bodies` (default: the server's setting)")] = None,
    store: StoreOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the key as JSON")] = False,
) -> None:
    """Create a key and print its secret — the only time it is ever shown."""
    from rankgate.gateway.auth import InvalidKeySettings

    knobs = {"min_quality": min_quality, "lambda": lambda_, "max_cost_usd": max_cost_usd,
             "savings": savings, "confidence": confidence}
    routing = {k: v for k, v in knobs.items() if v is not None} or None
    model_list = [m.strip() for m in models.split(",") if m.strip()] if models else None
    keys = _store(store)
    try:
        secret, info = keys.create(name, models=model_list, rpm=rpm, tpm=tpm,
                                   budget_usd=budget_usd, budget_period=budget_period,
                                   routing=routing, log_bodies=log_bodies)
    except InvalidKeySettings as e:
        raise _fail(str(e)) from None
    finally:
        keys.close()
    if json_out:
        print(json.dumps({"key": secret, **info.public()}))
        return
    console.print(f"[green]✓[/] created key [bold]{info.id}[/] ({info.name})", highlight=False)
    console.print(secret, style="bold", highlight=False, soft_wrap=True)
    err.print("[yellow]This secret is shown only now; store it safely. The gateway keeps "
              "only its hash.[/]", highlight=False)


@keys_app.command("list")
def list_keys(
    store: StoreOpt = None,
    include_revoked: Annotated[bool, typer.Option("--all", help="include revoked keys")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print the keys and their usage as "
                                           "JSON")] = False,
) -> None:
    """List keys with their limits and usage — requests and $ spent, in all and in the
    current budget period, from the request log every gateway writes (never their secrets)."""
    import time

    from rankgate.gateway.limits import period_bounds
    from rankgate.store.key_usage import key_usage

    keys = _store(store)
    try:
        rows = keys.list(include_revoked=include_revoked)
        now = time.time()
        starts = {r["id"]: period_bounds(r["budget_period"], now)[0] for r in rows
                  if r["budget_usd"] is not None}
        usage = key_usage(keys.engine, starts)
    finally:
        keys.close()
    for r in rows:
        u = usage.get(r["id"])
        r["usage"] = {"requests": u.requests if u else 0, "answered": u.answered if u else 0,
                      "spent_usd": u.spent_usd if u else 0.0,
                      "last_request_at": u.last_ts if u else None}
        if r["budget_usd"] is not None:
            r["usage"]["period_requests"] = (u.period_requests or 0) if u else 0
            r["usage"]["period_spent_usd"] = (u.period_spent_usd or 0.0) if u else 0.0
    if json_out:
        print(json.dumps(rows))
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("id", no_wrap=True)
    table.add_column("name", overflow="fold")
    table.add_column("prefix", no_wrap=True)
    for column in ("models", "limits", "budget", "routing", "bodies", "usage"):
        table.add_column(column, overflow="fold")
    if include_revoked:
        table.add_column("status", no_wrap=True)
    for r in rows:
        limits = ", ".join(f"{r[k]} {k}" for k in ("rpm", "tpm") if r[k] is not None) or "-"
        budget = (f"${r['budget_usd']:g}/{r['budget_period']}" if r["budget_usd"] is not None
                  else "-")
        routing = ", ".join(f"{k}={v:g}" for k, v in (r["routing"] or {}).items()) or "-"
        bodies = {True: "logged", False: "never", None: "default"}[r.get("log_bodies")]
        u = r["usage"]
        used = f"{u['requests']} req ({u['answered']} ok), ${u['spent_usd']:.4g}"
        if "period_spent_usd" in u:  # a budget: what this period used of it
            if r["budget_period"] != "total":
                used += f"; ${u['period_spent_usd']:.4g} this {r['budget_period']}"
            if r["budget_usd"]:
                budget += f", {u['period_spent_usd'] / r['budget_usd']:.0%} used"
        cells = [r["id"], r["name"], r["prefix"],
                 ", ".join(r["models"]) if r["models"] is not None else "all",
                 limits, budget, routing, bodies, used]
        if include_revoked:
            cells.append("revoked" if r["revoked_at"] is not None else "active")
        table.add_row(*cells)
    console.print(table)


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="the key's id (see `rankgate keys list`)")],
    store: StoreOpt = None,
) -> None:
    """Revoke a key; every gateway refuses it within its key-cache TTL (5 s by default)."""
    keys = _store(store)
    try:
        done = keys.revoke(key_id)
    finally:
        keys.close()
    if not done:
        err.print(f"[bold red]error:[/] no active key with id {key_id!r}", highlight=False)
        raise typer.Exit(1)
    console.print(f"[green]✓[/] revoked {key_id}", highlight=False)
