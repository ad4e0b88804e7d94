"""What every ``rankgate`` command shares: one-line usage errors, ``--version``, progress on
stderr, and ``--cost MODEL=$`` parsing.

Kept apart from ``cli.py`` so the command modules (``cli.py``, ``cli_keys.py``, ``cli_judge.py``,
``cli_loop.py``, ``cli_logs.py``) behave the same way without importing each other.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

err = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """The one-line ``error: …`` every command prints for bad input (exit 2) or a failed
    run (exit 1); raise what it returns."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)

# typer >= 0.20 vendors click (``typer._click``); older typers use click itself. Reach the
# exception classes through a public typer name so both work.
_ClickException: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


class OneLineErrors(TyperGroup):
    """The root command group: a bad flag value (or an unknown option, a missing argument) is
    one line on stderr and exit code 2, instead of click's boxed usage text — the same shape as
    every error the commands raise themselves, so scripts can rely on it."""

    def main(self, args: Any = None, prog_name: str | None = None,  # type: ignore[override]
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except _ClickException as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # `rankgate route`: show the help
                ctx = getattr(e, "ctx", None)
                sys.stdout.write((ctx.get_help() if ctx is not None else str(e)) + "\n")
                sys.exit(2)
            ctx = getattr(e, "ctx", None)
            where = f"{ctx.command_path}: " if ctx is not None else ""
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            message = " ".join(e.format_message().split())  # type: ignore[attr-defined]
            err.print(f"[bold red]error:[/] {where}{message}{hint}", highlight=False,
                      soft_wrap=True, markup=True)
            sys.exit(getattr(e, "exit_code", 2))
        except typer.Abort:
            err.print("aborted", highlight=False)
            sys.exit(1)
        except OSError as e:  # a path given on the command line that can't be read/written
            if e.filename is None:
                raise
            err.print(f"[bold red]error:[/] {e.filename}: {e.strerror}", highlight=False,
                      soft_wrap=True)
            sys.exit(2)
        sys.exit(rv if isinstance(rv, int) else 0)


def package_version() -> str:
    """The installed distribution's version (``__version__`` when run from a source tree that
    was never installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rankgate")
    except PackageNotFoundError:
        from rankgate import __version__

        return __version__


def show_version(value: bool) -> None:
    """``rankgate --version``: print and stop before any command runs."""
    if value:
        sys.stdout.write(f"rankgate {package_version()}\n")
        raise typer.Exit(0)


@contextlib.contextmanager
def progress(description: str, total: int | None = None, *, quiet: bool = False,
             every_s: float = 30.0, bar: bool = True) -> Iterator[Callable[..., None]]:
    """Show progress of long work on stderr (stdout stays for results, e.g. ``--json``).

    Yields ``update(done, total=None, description=None)``. In a terminal: a rich bar with
    counts, rate and ETA (none with ``bar=False``: the caller draws its own). Otherwise (a log
    file, CI): a plain line every ``every_s`` seconds, and a last one at the end once any was
    printed — so a short run adds nothing to stderr — unless ``quiet`` (``--json`` runs).
    """
    state: dict[str, Any] = {"total": total, "done": 0, "description": description,
                             "last": time.monotonic(), "t0": time.monotonic()}
    if err.is_terminal and not bar:
        yield lambda done, total=None, description=None: None
        return
    if err.is_terminal:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), TimeRemainingColumn(), console=err,
                      transient=True) as bar:
            task = bar.add_task(description, total=total)

            def update(done: int, total: int | None = None,
                       description: str | None = None) -> None:
                fields: dict[str, Any] = {"completed": done}
                if total is not None:
                    fields["total"] = total
                if description is not None:
                    fields["description"] = description
                bar.update(task, **fields)

            yield update
        return

    def line() -> None:
        of = f"/{state['total']}" if state["total"] is not None else ""
        err.print(f"{time.strftime('%H:%M:%S')} {state['description']}: {state['done']}{of} "
                  f"({time.monotonic() - state['t0']:.0f} s)", highlight=False,
                  soft_wrap=True)

    def plain_update(done: int, total: int | None = None,
                     description: str | None = None) -> None:
        state["done"] = done
        if total is not None:
            state["total"] = total
        if description is not None:
            state["description"] = description
        now = time.monotonic()
        if not quiet and now - state["last"] >= every_s:
            state["last"] = now
            state["printed"] = True
            line()

    yield plain_update
    if state.get("printed"):
        line()


def parse_costs(pairs: list[str] | None, cost_file: Path | None = None) -> dict[str, float]:
    """``--cost MODEL=USD`` (repeatable) and/or a cost file (JSON/YAML ``{model: $ per
    request}``) as one mapping; ``--cost`` wins over the file. A malformed entry raises
    ``typer.BadParameter`` (one line, exit 2) — a cost is never guessed."""
    out: dict[str, float] = {}
    if cost_file is not None:
        try:
            raw = cost_file.read_bytes()
        except OSError as e:
            raise typer.BadParameter(f"{cost_file}: {e.strerror}",
                                     param_hint="'--costs'") from None
        try:
            if cost_file.suffix.lower() in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(raw)
            else:
                import orjson

                data = orjson.loads(raw)
        except Exception as e:  # yaml and orjson raise different error types
            raise typer.BadParameter(f"{cost_file}: not valid JSON/YAML ({e})",
                                     param_hint="'--costs'") from None
        if not isinstance(data, dict):
            raise typer.BadParameter(f"{cost_file}: must map model names to $ per request",
                                     param_hint="'--costs'")
        for model, value in data.items():
            out[str(model)] = _cost_value(str(model), value, "'--costs'")
    for pair in pairs or []:
        model, sep, value = pair.partition("=")
        if not sep or not model.strip():
            raise typer.BadParameter(f"{pair!r} is not MODEL=USD (e.g. gpt-4=0.03)",
                                     param_hint="'--cost'")
        out[model.strip()] = _cost_value(model.strip(), value, "'--cost'")
    return out


def _cost_value(model: str, value: Any, hint: str) -> float:
    import math

    try:
        v = float(value)
    except (TypeError, ValueError):
        raise typer.BadParameter(f"{model}: {value!r} is not a number of $ per request",
                                 param_hint=hint) from None
    if isinstance(value, bool) or not math.isfinite(v) or v < 0:
        raise typer.BadParameter(f"{model}: a cost is a finite number >= 0, got {value!r}",
                                 param_hint=hint)
    return v
