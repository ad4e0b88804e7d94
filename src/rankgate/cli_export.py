"""``rankgate export finetune``: outcomes → chat-format training data (see
``rankgate.outcomes.finetune``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from rankgate.cli_support import fail

export_app = typer.Typer(help="Export outcomes as data for other tools: fine-tuning sets.",
                         no_args_is_help=True)
console = Console()


@export_app.command("finetune")
def finetune(
    out: Annotated[Path, typer.Option(help="training JSONL to write (the held-out split "
                                      "goes beside it: NAME.heldout.jsonl)")],
    outcomes: Annotated[list[Path] | None, typer.Option(
        "--outcomes", help="outcomes JSONL (.gz ok; 'embedded': the shipped evaluation); "
        "repeatable")] = None,
    store: Annotated[str | None, typer.Option(help="also the outcomes in this store (URL or "
                                              "SQLite file)")] = None,
    min_score: Annotated[float, typer.Option(min=0, max=1, help="an answer qualifies at or "
                                             "above this score")] = 1.0,
    teacher: Annotated[list[str] | None, typer.Option(
        help="only answers of this model (repeatable): the one to distil")] = None,
    heldout: Annotated[float, typer.Option(min=0, max=0.9, help="share of prompts held out "
                                           "for evaluation")] = 0.1,
    seed: Annotated[int, typer.Option(min=0, help="seed of the held-out split")] = 0,
    system: Annotated[str | None, typer.Option(help="a system message for every example")
                      ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the counts as JSON")] = False,
) -> None:
    """Best-scoring answer per prompt as OpenAI chat fine-tuning data, validated, with a
    held-out split; nothing qualifies → says why, writes nothing, exits 1."""
    import orjson

    from rankgate.outcomes import OutcomeError
    from rankgate.outcomes.finetune import NothingToExport, export_finetune
    from rankgate.outcomes.solved import read_outcome_source

    if not outcomes and store is None:
        raise fail("give --outcomes FILE|embedded and/or --store URL")
    rows = []
    try:
        for f in outcomes or []:
            rows.extend(read_outcome_source(str(f)))
        if store is not None:
            rows.extend(read_outcome_source(f"store:{store}"))
    except (OutcomeError, ValueError) as e:
        raise fail(str(e)) from None
    try:
        done = export_finetune(rows, out, min_score=min_score, teachers=teacher,
                               heldout=heldout, seed=seed, system=system)
    except NothingToExport as e:
        raise fail(str(e), 1) from None
    s = done.solved
    summary = {"out": str(done.train_path), "train": done.train, "heldout": done.heldout,
               "heldout_out": str(done.heldout_path) if done.heldout_path else None,
               "outcomes_read": s.considered, "below_threshold": s.below,
               "without_response": s.without_text, "format": "openai-chat"}
    if json_out:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
        return
    console.print(f"wrote {done.train} training example(s) → {done.train_path}"
                  + (f" and {done.heldout} held out → {done.heldout_path}"
                     if done.heldout_path else "")
                  + f" (best answer per prompt scoring >= {min_score:g}; {s.considered} "
                  f"outcome(s) read, {s.below} below, {s.without_text} without text); every "
                  "line validated against the OpenAI chat fine-tuning format", highlight=False)
