"""The store-facing halves of ``rankgate judge``, ``rank`` and ``route train`` (the loop in
production): open the store, parse ``--since``/``--sources``, show progress, say what a ranking
was made of. ``cli.py`` keeps only the option declarations and calls these, so the loop's
command code lives in one place.

Errors are one line on stderr and an exit code: 2 for an option the user must fix, 1 for data
that is not there (an empty store or range, models missing from the panel, judge calls that
failed and need a re-run).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from rankgate.cli_support import fail

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from rankgate.outcomes import Outcome
    from rankgate.panel import Panel
    from rankgate.rank.drift import DriftReport
    from rankgate.rank.inputs import Inputs

console = Console()
err = Console(stderr=True)




def open_store(spec: str) -> Engine:
    from rankgate.store.open_store import StoreError
    from rankgate.store.open_store import open_store as _open

    try:
        return _open(spec)
    except StoreError as e:
        raise fail(str(e), 1) from None


def shown(spec: str) -> str:
    """A store URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(spec).render_as_string(hide_password=True) if "://" in spec else spec
    except Exception:
        return spec.split("@")[-1]


def since_ts(spec: str | None, option: str = "--since") -> float | None:
    from rankgate.time_spec import TimeSpecError, parse_time

    if spec is None:
        return None
    try:
        return parse_time(spec)
    except TimeSpecError as e:
        raise fail(f"{option}: {e}") from None


def _panel(path: Path | None) -> Panel:
    from rankgate.panel import PanelError, load_panel

    try:
        return load_panel(path)
    except PanelError as e:
        raise fail(str(e)) from None


def _range(since: str | None) -> str:
    return f" since {since}" if since else ""


# --- judge --store ------------------------------------------------------------------------

def judge_store(store: str, judge_model: str, panel: Path | None, since: str | None,
                mode: str, limit: int | None, max_tokens: int | None,
                json_out: bool = False) -> None:
    """``rankgate judge --store``: see ``eval/store_judge.py``. Progress goes to stderr (off
    a terminal with ``json_out``: none), the result to stdout."""
    import asyncio
    import sys

    import orjson

    from rankgate.cli_support import progress
    from rankgate.config import Settings
    from rankgate.eval import store_judge as sj
    from rankgate.runtime import open_panel

    if mode not in sj.MODES:
        raise fail(f"--mode must be one of {', '.join(sj.MODES)}, not {mode!r}")
    p = _panel(panel)
    if judge_model not in p:
        raise fail(f"unknown judge {judge_model!r}; panel has: {', '.join(p.ids)}")
    start = since_ts(since)
    engine = open_store(store)
    rt = open_panel(p, Settings(), [judge_model])
    judge = rt.backends[judge_model]
    if max_tokens is not None:
        judge = sj.CappedJudge(judge, max_tokens)  # type: ignore[assignment]
    try:
        with progress(f"judging with {judge_model}", quiet=json_out) as update:

            def planned(r: sj.JudgeReport) -> None:
                update(0, r.to_do)

            def progressed(r: sj.JudgeReport) -> None:
                text = (f"judging with {judge_model} [votes {r.votes}, grades {r.grades}"
                        + (f", unparsable {r.unparsable}" if r.unparsable else "")
                        + (f", failed {r.failed}" if r.failed else "") + "]")
                update(r.done, None, text)

            report = sj.judge_store(engine, judge, since=start, mode=mode,  # type: ignore[arg-type]
                                    limit=limit, concurrency=rt.concurrency(judge_model, 4),
                                    on_plan=planned, on_progress=progressed)
    finally:
        asyncio.run(rt.aclose())
        engine.dispose()
    if report.requests == 0:
        raise fail(f"no logged request{_range(since)} has two or more answers to judge (log "
                   "bodies and shadow answers: serve --log-bodies --shadow-rate R)", 1)
    if json_out:
        sys.stdout.write(orjson.dumps({
            "judge": judge_model, "requests": report.requests, "votes": report.votes,
            "grades": report.grades, "skipped": report.skipped,
            "unparsable": report.unparsable, "failed": report.failed,
            "failures": report.failures}).decode() + "\n")
    else:
        console.print(
            f"{report.requests} logged request(s) with ≥ 2 answers{_range(since)}: "
            f"{report.votes} new vote(s), {report.grades} new grade(s) by {judge_model}; "
            f"{report.skipped} already judged (skipped); {report.unparsable} unparsable "
            f"verdict(s) recorded as errors (never scores); {report.failed} judge call(s) "
            "failed", highlight=False)
    for line in report.failures:
        err.print(f"[yellow]failed[/] {line}", highlight=False, soft_wrap=True)
    if report.failed:
        raise fail(f"{report.failed} judge call(s) failed; re-run the same command to retry "
                   "them (finished verdicts are kept)", 1)


# --- rank / route train from the store ------------------------------------------------------

def gather(file_outcomes: list[Outcome], store: str | None, since: str | None,
           sources: str | None, votes: Path | None) -> tuple[Inputs, Engine | None]:
    """Outcomes and votes from files and/or the store (the engine is returned open for drift;
    the caller disposes of it)."""
    from rankgate.rank import inputs as ri

    try:
        kinds = ri.parse_sources(sources)
        file_votes = ri.read_vote_file(votes) if votes else []
    except ri.InputError as e:
        raise fail(str(e)) from None
    start = since_ts(since)
    if store is None:
        if since is not None or sources is not None:
            raise fail("--since and --sources select from the store: give --store URL")
        return ri.gather(file_outcomes, None, file_votes=file_votes), None
    engine = open_store(store)
    got = ri.gather(file_outcomes, engine, since=start, kinds=kinds, file_votes=file_votes)
    if not got.outcomes and not got.votes:
        engine.dispose()
        raise fail(f"the store holds no outcomes or votes of kind(s) {','.join(kinds)}"
                   f"{_range(since)}: judge logged traffic first (rankgate judge --store), "
                   "or widen --since/--sources", 1)
    return got, engine


def drift(engine: Engine, since: str | None, window: str) -> DriftReport:
    """Drift of the store's judge/feedback outcomes (``rank/drift.py``)."""
    from rankgate.rank.drift import detect
    from rankgate.store.outcome_store import query_outcomes
    from rankgate.time_spec import TimeSpecError, parse_duration

    try:
        window_s = parse_duration(window)
    except TimeSpecError as e:
        raise fail(f"--drift-window: {e}") from None
    timed = query_outcomes(engine, since=since_ts(since), kinds=["judge", "feedback"])
    return detect(timed, window_s)


def print_drift(report: DriftReport, window: str) -> None:
    from rankgate.rank.drift import describe

    head = f"drift (latest {window} vs the {window} before)"
    if not report.checks:
        console.print(f"{head}: nothing to test — no model has ≥ 10 judge/feedback outcomes "
                      "in both windows", highlight=False)
        return
    found = report.drifts
    console.print(f"{head}: {len(report.checks)} check(s), {len(found)} drift(s)"
                  + ("" if found else " — stable"), highlight=False)
    for c in found:
        console.print(f"[bold yellow]drift[/] {describe(c)}", highlight=False)


def check_panel(models: list[str], panel: Path | None) -> None:
    """A router trained from a store must be servable by the panel: name what is missing."""
    p = _panel(panel)
    missing = [m for m in models if m not in p]
    if missing:
        raise fail(f"the store has outcomes for model(s) not in the panel ({p.source}): "
                   f"{', '.join(missing)}; pass the panel the traffic was served with "
                   "(--panel FILE) or narrow --sources/--since", 1)


def train_outcomes(file_outcomes: list[Outcome], store: str | None, since: str | None,
                   sources: str | None, panel: Path | None) -> tuple[list[Outcome], str]:
    """``route train``'s outcomes (files and/or the store, merged per answer) and the sentence
    saying what they were; with a store, every model must be in ``panel``."""
    from rankgate.outcomes import models_of

    if store is None and not file_outcomes:
        raise fail("give --outcomes FILE and/or --store URL")
    inputs, engine = gather(file_outcomes, store, since, sources, None)
    if engine is not None:
        engine.dispose()
        if not inputs.outcomes:
            raise fail("the store holds votes but no outcomes to train on: grade the answers "
                       "(rankgate judge --store --mode rubric)", 1)
        check_panel(models_of(inputs.outcomes), panel)
    return inputs.outcomes, inputs.provenance()["summary"]
