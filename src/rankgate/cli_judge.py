"""``rankgate judge …``: the judge group. ``rankgate judge --outcomes F --judge M`` (its default
command ``votes``, defined in ``cli.py``) writes pairwise votes as before; ``rankgate judge
calibrate`` measures a judge against gold before anyone ranks with it
(``eval/judge_calibration.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from rankgate.cli_support import fail as _fail
from rankgate.config import Settings


class _VotesByDefault(TyperGroup):
    """``rankgate judge --outcomes F --judge M`` keeps working: arguments that do not start
    with a subcommand name go to ``votes`` (the command ``judge`` was before it had
    subcommands); ``rankgate judge --help`` shows the group."""

    default = "votes"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if (not args or args[0] not in self.commands) and args[:1] != ["--help"]:
            args = [self.default, *args]
        return super().parse_args(ctx, args)


judge_app = typer.Typer(
    cls=_VotesByDefault,
    help="Judge answers with a panel model. Without a subcommand, `votes` runs "
    "(`rankgate judge --outcomes F --judge M`); `calibrate` measures a judge against gold.")
console = Console()
err = Console(stderr=True)




def _outcome_path(value: str) -> Path:
    """``embedded`` names the shipped evaluation of the embedded panel."""
    f = Path(value)
    if value == "embedded" and not f.exists():
        from importlib import resources

        return Path(str(resources.files("rankgate") / "data" / "embedded_outcomes.jsonl"))
    return f


def _fmt(iv: dict[str, Any] | None, pct: bool = True) -> str:
    if not iv or iv.get("estimate") is None:
        return "—"
    f = (lambda v: f"{100 * v:.1f}%") if pct else (lambda v: f"{v:.3f}")
    lo_hi = f" [{f(iv['low'])}, {f(iv['high'])}]" if iv.get("low") is not None else ""
    return f"{f(iv['estimate'])}{lo_hi}  n={iv['n']}"


def _print(rep: dict[str, Any]) -> None:
    g, pw = rep["grading"], rep["pairwise"]
    t = Table(title=f"judge {rep['judge']} vs gold — {rep['items']} items, "
              f"{len(rep['models'])} models ({rep['judge_sees']})")
    t.add_column("figure")
    t.add_column("estimate [95% CI]")
    t.add_row(f"agreement (pass = rating ≥ {g['threshold']}, a priori)",
              _fmt(g.get("agreement")))
    if "base_rates" in g:
        b = g["base_rates"]
        t.add_row("  always-pass / always-fail would score",
                  f"{b['always_pass_agreement']:.1%} / {b['always_fail_agreement']:.1%}")
    t.add_row("Cohen's κ", _fmt(g.get("kappa"), pct=False))
    t.add_row("Spearman (rating vs gold score)", _fmt(g.get("spearman"), pct=False))
    t.add_row("Kendall τ-b (rating vs gold score)", _fmt(g.get("kendall"), pct=False))
    if "best_threshold_in_sample" in g:
        bt = g["best_threshold_in_sample"]
        t.add_row("  best threshold, IN-SAMPLE (optimistic)",
                  f"≥ {bt['threshold']}: {bt['agreement']:.1%}")
        cv = g["threshold_cross_validated"]
        t.add_row("  threshold learnt, 5-fold cross-validated",
                  _fmt(cv) + (f"  (≥ {'/'.join(map(str, cv['thresholds']))})"
                              if cv.get("thresholds") else ""))
    t.add_row("grading: unparsable / errors", f"{g['unparsable']} / {g['errors']} "
              f"of {g['answers']} answers (never scored)")
    t.add_row("pairwise: picks the gold winner (decisive)", _fmt(pw["accuracy"]))
    t.add_row("pairwise: tie rate (gold differs)", _fmt(pw["tie_rate"]))
    t.add_row("position bias P(shown first wins), 0.5 = none", _fmt(pw["position_bias"], False))
    t.add_row("length bias P(longer wins | gold equal)", _fmt(pw["length_bias"], False))
    t.add_row("pairwise: unparsable verdicts / errors",
              f"{pw['unparsable_verdicts']} / {pw['errors']} of {pw['pairs']} pairs × 2 orders")
    console.print(t)
    if "per_model" in g:
        mt = Table(title="per answering model (judge leniency shifts a judge-based ranking)")
        for col in ("model", "agreement [95% CI]", "gold pass rate", "judge pass rate",
                    "gold mean score", "judge mean score"):
            mt.add_column(col)
        for m, v in g["per_model"].items():
            mt.add_row(m, _fmt(v["agreement"]), f"{v['gold_pass_rate']:.1%}",
                       f"{v['judge_pass_rate']:.1%}", f"{v['gold_mean_score']:.3f}",
                       f"{v['judge_mean_score']:.3f}")
        console.print(mt)
    for note in rep["notes"]:
        console.print(f"[yellow]note[/] {note}", highlight=False)


@judge_app.command("calibrate")
def calibrate_cmd(
    judge_model: Annotated[str, typer.Option("--judge", help="panel model to measure")],
    workload: Annotated[str, typer.Option(help="workload the outcomes answer (JSONL, or "
                                          "built-in: starter, humaneval, builtin)")] = "builtin",
    outcomes: Annotated[str, typer.Option(help="gold-scored outcomes with responses, or "
                                          "'embedded' (the shipped evaluation)")] = "embedded",
    limit: Annotated[int, typer.Option(min=1, help="items with gold-scored answers, sampled "
                                       "across categories")] = 200,
    pairs: Annotated[int, typer.Option(min=0, help="pairs whose gold scores differ, compared "
                                       "in both orders")] = 100,
    answers_per_item: Annotated[int | None, typer.Option(
        min=1, help="grade only this many of an item's answers, models taken in turn "
        "(default: all; 1 makes a slow judge's run a third as long)")] = None,
    length_pairs: Annotated[int | None, typer.Option(
        min=0, help="pairs with equal gold scores, for length bias (default: --pairs / 2)")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the item and pair samples")] = 0,
    out: Annotated[Path | None, typer.Option(
        help="report JSON (default: RANKGATE_HOME/judge_calibration/<judge>.json, which "
        "`rank` reads)")] = None,
    panel: Annotated[Path | None, typer.Option("--panel", help="panel YAML (default: "
                                               "embedded)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    max_tokens: Annotated[int | None, typer.Option(
        min=1, help="cap the judge's answers, as `rankgate judge --store --max-tokens` does "
        "(default: the judge's own 400)")] = None,
    cached_only: Annotated[bool, typer.Option(
        "--cached-only", help="report on the verdicts already cached and ask the judge "
        "nothing (a look at a long calibration while it runs); written only with --out")
    ] = False,
) -> None:
    """Measure a judge against gold: agreement, κ, rank correlation, pairwise accuracy,
    position and length bias, each with a 95% interval. Cached and resumable."""
    import time

    import orjson
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from rankgate.eval import datasets
    from rankgate.eval import judge_calibration as jc
    from rankgate.panel import PanelError, load_panel

    settings = Settings()
    try:
        p = load_panel(panel)
    except PanelError as e:
        raise _fail(str(e)) from None
    if judge_model not in p:
        raise _fail(f"unknown judge {judge_model!r}; panel has: {', '.join(p.ids)}")
    src = _outcome_path(outcomes)
    if not src.is_file():
        raise _fail(f"{src}: no such file")
    try:
        items = datasets.load(workload)
        plan = jc.plan(src, items, limit, pairs,
                       pairs // 2 if length_pairs is None else length_pairs, seed,
                       answers_per_item)
    except datasets.WorkloadError as e:
        if len(e.problems) == 1 and e.problems[0].line == 0:  # no such file / no items
            raise _fail(f"--workload {workload}: {e.problems[0].reason}") from None
        raise _fail(str(e)) from None
    except jc.CalibrationError as e:
        raise _fail(str(e)) from None
    spec = p.get(judge_model)
    assert spec is not None
    plan.meta = {"judge_spec": spec.model_dump(exclude_none=True, exclude_defaults=True),
                 "workload": workload, "outcomes": str(src), "limit": limit,
                 "answers_per_item": answers_per_item or "all",
                 "judge_max_tokens": max_tokens or "default (400)",
                 "pairs_requested": pairs,
                 "length_pairs_requested": pairs // 2 if length_pairs is None else length_pairs}
    from rankgate.runtime import open_panel

    rt = open_panel(p, settings, [judge_model])  # builds the backend only: a readiness check
    try:
        st = rt.backends[judge_model].status()
    finally:
        import asyncio

        asyncio.run(rt.aclose())
    if st.ready is False and not cached_only:
        raise _fail(f"judge {judge_model} is not ready: {st.note or 'weights missing'} "
                    f"(run `rankgate panel prepare {judge_model}`)", 1)
    target = out or jc.default_path(settings.home, judge_model)
    n_grades, n_pairs = len(plan.grades), len(plan.pairs)
    (err if json_out else console).print(
        f"calibrating judge {judge_model}: {n_grades} answers to grade from {len(plan.items)} "
        f"items, {n_pairs} pairs to compare in both orders → "
        + (str(target) if not cached_only or out is not None else "(--cached-only: not written)"),
        highlight=False)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=err if json_out else console) as bar:
        task = bar.add_task("judging", total=n_grades + n_pairs, rate="")
        t0 = time.perf_counter()
        plain = not bar.console.is_terminal  # a log file: a line now and then instead
        last = [t0]

        def show(c: jc.Counts) -> None:
            now = time.perf_counter()
            rate = c.done / max(now - t0, 1e-9)
            text = (f"graded {c.graded}/{n_grades} · pairs {c.compared}/{n_pairs} · calls "
                    f"{c.calls} (+{c.cached} cached) · unparsable {c.unparsable}"
                    + (f" · errors {c.errors}" if c.errors else ""))
            bar.update(task, completed=c.done, rate=f"{rate:.2f}/s", description=text)
            if plain and (now - last[0] >= 60 or c.done == c.total):
                last[0] = now
                new = c.calls / max(now - t0, 1e-9)
                left = f"~{(c.total - c.done) / new / 60:.0f} min left" if new > 0 else ""
                bar.console.print(f"{time.strftime('%H:%M:%S')} {text} · "
                                  f"{now - t0:.0f} s elapsed {left}", highlight=False)

        rep = jc.calibrate(plan, judge_model, p, settings, show, seed, cached_only, max_tokens)
    if not cached_only or out is not None:
        jc.write_report(rep, target)
    if json_out:
        sys.stdout.write(orjson.dumps(rep, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    _print(rep)
    if "partial" in rep:
        console.print(f"[yellow]partial[/]: {rep['partial']['judged']} of "
                      f"{rep['partial']['planned']} planned verdicts were in the cache",
                      highlight=False)
    console.print(f"{rep['judge_calls']['made']} judge call(s), "
                  f"{rep['judge_calls']['from_cache']} from cache, {rep['wall_s']} s"
                  + (f" → {target}" if not cached_only or out is not None else ""),
                  highlight=False)
