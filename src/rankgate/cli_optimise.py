"""``rankgate optimise``: climb the recipe ladder for one model on a workload, measured.

Each rung is evaluated like any model (outcomes appended item by item to
``OUT/outcomes.jsonl``, so a rerun skips what is done) and compared with the best variant so
far on the same items; the rule that adopts or drops it is ``variants.ladder.Rule``. The run
ends with a table, ``report.json``, ``report.md``, a cost/quality picture (``ladder.png``,
with the ``report`` extra) and the recommended variant.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rankgate.cli_support import fail, progress
from rankgate.config import Settings

if TYPE_CHECKING:
    from rankgate.eval.scorers.base import Item
    from rankgate.panel import Panel
    from rankgate.variants.ladder import Rule, Step

console = Console()
err = Console(stderr=True)


async def climb(panel: Panel, settings: Settings, base: str, items: list[Item], out: Path,
                rule: Rule, source: str, show: Any) -> list[Step]:
    """Measure the base, then each rung on top of the best so far (see ``ladder``)."""
    from rankgate.eval.runner import ResponseCache, RunConfig, Runner
    from rankgate.outcomes import read_jsonl
    from rankgate.runtime import open_panel
    from rankgate.variants import RecipeError
    from rankgate.variants.base import RecipeContext
    from rankgate.variants.ladder import BRANCHES, Step, compare, compare_by_category, summary
    from rankgate.variants.quant import available_quants

    rt = open_panel(panel, settings, [base])
    cache = ResponseCache(settings.home / "cache" / "responses.sqlite")
    cfg = RunConfig(source=source)
    ids = {it.id for it in items}
    base_spec = panel.get(base)
    assert base_spec is not None
    quants, seen = available_quants(RecipeContext(base_spec, base_spec, rt.resources))
    branches = [*BRANCHES, *((f"quantisation {q}", (q,)) for q in quants)]
    n_rungs = 1 + sum(len(r) for _, r in branches)
    done = 0

    async def measure(model: str) -> str | None:
        nonlocal done
        spec = panel.get(model)
        try:
            if spec is None:
                return panel.why_unknown(model)
            rt.add(spec)
        except RecipeError as e:
            return str(e)
        await rt.backends[model].load()  # weights, example index: not timed as an answer
        done += 1
        label = f"rung {done}/{n_rungs} {model}"
        await Runner({model: rt.backends[model]}, rt.pricers, cache, cfg).run(
            items, [model], out, lambda pr: show(pr.done, pr.total, label))
        return None

    try:
        if (why := await measure(base)) is not None:
            raise ValueError(why)
        outcomes = read_jsonl(out)
        steps = [Step(base, "base", None, None, "base", **summary(outcomes, base, ids))]
        best = base
        for branch, recipes in branches:
            for recipe in recipes:
                quant = branch.startswith("quantisation")
                against = base if quant else best
                model = f"{against}+{recipe}"
                if (why := await measure(model)) is not None:
                    steps.append(Step(model, branch, recipe, against, "skipped", why))
                    break
                outcomes = read_jsonl(out)
                c = compare(outcomes, model, against)
                s = summary(outcomes, model, ids)
                if not c["n"]:
                    steps.append(Step(model, branch, recipe, against, "skipped",
                                      "no item answered by both", **s))
                    break
                pays, reason = rule.pays(c["diff"], c["cost_ratio"])
                fields = {k: v for k, v in c.items() if k != "n"}
                steps.append(Step(model, branch, recipe, against,
                                  "adopted" if pays else "not adopted", reason, **s, **fields,
                                  categories=compare_by_category(outcomes, model, against)))
                if not pays:
                    break  # this branch stops climbing
                if not quant:
                    best = model
        if not quants:
            steps.append(Step(f"{base}+q…", "quantisation", None, base, "skipped",
                              f"no other quantisation of {base} is installed (GGUF files "
                              f"seen: {', '.join(seen) or 'none'}); nothing is downloaded"))
        return steps
    finally:
        cache.close()
        await rt.aclose()


def recommended(steps: list[Step]) -> Step:
    """The last adopted step of the main climb (quantisations compete with it only when
    they were adopted and are cheaper), else the base."""
    climbed = [s for s in steps if s.verdict in ("base", "adopted")
               and not s.branch.startswith("quantisation")]
    best = climbed[-1]
    cheaper = [s for s in steps if s.verdict == "adopted" and s.branch.startswith("quant")
               and s.accuracy is not None and best.accuracy is not None
               and s.accuracy >= best.accuracy]
    return cheaper[0] if cheaper else best


def _pct(v: float | None, signed: bool = False) -> str:
    return "—" if v is None else (f"{v:+.1%}" if signed else f"{v:.1%}")


def _num(v: float | None, fmt: str = "{:.3g}") -> str:
    return "—" if v is None else fmt.format(v)


def table(steps: list[Step], title: str) -> Table:
    t = Table(title=title, caption="Δ: accuracy minus the variant it builds on, same items "
              "(95% paired bootstrap CI); cost and latency as ratios to it")
    for col in ("variant", "branch", "n", "accuracy", "Δ [95% CI]", "cost ×", "latency ×",
                "$/1k req", "verdict"):
        t.add_column(col, overflow="fold")
    for s in steps:
        delta = "—" if s.diff is None else (f"{s.diff:+.1%} [{_pct(s.ci_low, True)}, "
                                            f"{_pct(s.ci_high, True)}]")
        t.add_row(s.model, s.branch, str(s.n), _pct(s.accuracy), delta, _num(s.cost_ratio,
                  "{:.2f}"), _num(s.latency_ratio, "{:.2f}"), _num(s.cost_usd_per_1k),
                  s.verdict + (f": {s.reason}" if s.reason else ""))
    return t


def markdown(steps: list[Step], rec: Step, head: str) -> str:
    lines = [f"# {head}", "", "| variant | branch | n | accuracy | Δ vs previous [95% CI] | "
             "cost × | latency × | $/1k req | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    for s in steps:
        delta = "—" if s.diff is None else (f"{s.diff:+.1%} [{_pct(s.ci_low, True)}, "
                                            f"{_pct(s.ci_high, True)}]")
        lines.append(f"| {s.model} | {s.branch} | {s.n} | {_pct(s.accuracy)} | {delta} | "
                     f"{_num(s.cost_ratio, '{:.2f}')} | {_num(s.latency_ratio, '{:.2f}')} | "
                     f"{_num(s.cost_usd_per_1k)} | {s.verdict}"
                     f"{': ' + s.reason if s.reason else ''} |")
    for s in steps:
        if s.categories:
            lines += ["", f"### {s.model} vs {s.against}, per category", "",
                      "| category | n | Δ [95% CI] | cost × | latency × |", "|---|---|---|---|---|"]
            lines += [f"| {c} | {r['n']} | {r['diff']:+.1%} [{_pct(r['ci_low'], True)}, "
                      f"{_pct(r['ci_high'], True)}] | {_num(r['cost_ratio'], '{:.2f}')} | "
                      f"{_num(r['latency_ratio'], '{:.2f}')} |" for c, r in s.categories.items()]
    lines += ["", f"**Recommended: `{rec.model}`** ({_pct(rec.accuracy)} on {rec.n} items, "
              f"${_num(rec.cost_usd_per_1k)} per 1k requests)."]
    return "\n".join(lines) + "\n"


def picture(steps: list[Step], rec: Step, path: Path) -> bool:
    """The ladder on the cost/quality plane; False when matplotlib is not installed."""
    from rankgate.extras import MissingExtra

    try:
        from rankgate.rank.leaderboard_report import _plt
        plt = _plt()
    except (MissingExtra, ImportError):
        return False
    measured = {s.model: s for s in steps if s.accuracy is not None
                and s.cost_usd_per_1k is not None}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in measured.values():
        colour = "C0" if s.verdict in ("base", "adopted") else "C7"
        ax.scatter(s.cost_usd_per_1k, s.accuracy, color=colour, zorder=3,
                   marker="*" if s.model == rec.model else "o", s=160 if s.model == rec.model
                   else 40)
        ax.annotate(s.model.split("+", 1)[-1] if "+" in s.model else s.model,
                    (s.cost_usd_per_1k, s.accuracy), textcoords="offset points",
                    xytext=(5, 5), fontsize=8)
        prev = measured.get(s.against or "")
        if prev is not None:
            ax.annotate("", (s.cost_usd_per_1k, s.accuracy),
                        (prev.cost_usd_per_1k, prev.accuracy),
                        arrowprops={"arrowstyle": "->", "color": colour, "alpha": 0.6})
    ax.set_xlabel("cost, $ per 1,000 requests")
    ax.set_ylabel("accuracy")
    ax.set_title("optimisation ladder (blue: adopted, grey: did not pay; ★ recommended)")
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return True


def optimise(
    model: Annotated[str, typer.Option(help="the panel model (or variant) to improve")],
    workload: Annotated[str, typer.Option(help="JSONL file, or built-in: starter, humaneval, "
                                          "builtin")] = "starter",
    limit: Annotated[int | None, typer.Option(min=1, help="N items spread across categories "
                                              "(seeded; a larger N extends a smaller one)")
                     ] = None,
    out: Annotated[Path, typer.Option(help="directory: outcomes.jsonl (appended; resumable), "
                                      "report.json, report.md, ladder.png")] = Path("optimise"),
    panel: Annotated[Path | None, typer.Option("--panel", help="panel YAML (default: "
                                               "embedded)")] = None,
    examples: Annotated[str | None, typer.Option(
        help="solved examples for +retrieved: outcomes JSONL, 'embedded' or store:<url> "
        "(default: RANKGATE_EXAMPLES_OUTCOMES, else embedded)")] = None,
    seed: Annotated[int, typer.Option(min=0, help="seed of --limit")] = 0,
    min_gain: Annotated[float, typer.Option(help="a step must gain more accuracy than this")
                        ] = 0.0,
    gain_per_cost: Annotated[float, typer.Option(
        min=0, help="accuracy a step must gain per +100% cost to pay for it")] = 0.02,
    json_out: Annotated[bool, typer.Option("--json", help="print the steps as JSON")] = False,
) -> None:
    """Climb base → system prompt → few-shot → retrieved examples → chain-of-thought →
    self-consistency (and installed quantisations), each step paired against the last."""
    import orjson

    from rankgate.eval import datasets
    from rankgate.panel import PanelError, load_panel
    from rankgate.variants.ladder import Rule

    settings = Settings()
    settings = settings.model_copy(update={
        "examples_outcomes": examples or settings.examples_outcomes or "embedded"})
    try:
        p = load_panel(panel)
    except PanelError as e:
        raise fail(str(e)) from None
    if model not in p:
        raise fail(f"--model: {p.why_unknown(model)}; panel has: {', '.join(p.ids)}")
    try:
        items = datasets.interleave(datasets.select(datasets.load(workload), limit=limit,
                                                    seed=seed), seed)
    except datasets.WorkloadError as e:
        raise fail(str(e).splitlines()[0]) from None
    out.mkdir(parents=True, exist_ok=True)
    head = f"optimisation ladder — {model} on {workload} ({len(items)} items)"
    err.print(f"{head} → {out}", highlight=False)
    with progress("optimise", quiet=json_out) as show:
        try:
            steps = asyncio.run(climb(p, settings, model, items, out / "outcomes.jsonl",
                                      Rule(min_gain, gain_per_cost), f"optimise:{workload}",
                                      show))
        except ValueError as e:
            raise fail(str(e)) from None
    rec = recommended(steps)
    report = {"model": model, "workload": workload, "items": len(items),
              "rule": {"min_gain": min_gain, "gain_per_cost": gain_per_cost},
              "steps": [s.to_json() for s in steps], "recommended": rec.model}
    (out / "report.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    (out / "report.md").write_text(markdown(steps, rec, head), encoding="utf-8")
    drew = picture(steps, rec, out / "ladder.png")
    if json_out:
        sys.stdout.write(orjson.dumps(report).decode() + "\n")
        return
    console.print(table(steps, head))
    console.print(f"[bold]recommended:[/] {rec.model} — {_pct(rec.accuracy)} on {rec.n} items "
                  f"at ${_num(rec.cost_usd_per_1k)} per 1k requests", highlight=False)
    console.print(f"report: {out / 'report.md'}" + (f", picture: {out / 'ladder.png'}" if drew
                  else " (install rankgate[report] for the picture)"), highlight=False)
