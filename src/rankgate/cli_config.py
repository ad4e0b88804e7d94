"""``rankgate config``: check a ``rankgate.yaml`` before serving with it, print an example."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

if TYPE_CHECKING:
    from rankgate.config_file import ServeConfig

T = TypeVar("T")

config_app = typer.Typer(help="The config file (rankgate.yaml): check one, print an example.",
                         no_args_is_help=True)
_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


@config_app.command("check")
def config_check(
    file: Annotated[Path, typer.Argument(help="the config file, e.g. rankgate.yaml")],
) -> None:
    """Validate FILE (its keys, the panel it names or holds, its router files): print every
    error with its path and exit 1, or print OK."""
    from rankgate.config_file import check

    errors = check(file)
    if errors:
        for path, message in errors:
            _err.print(f"[bold red]{path or str(file)}[/]: {message}", markup=True)
        _err.print(f"{file}: {len(errors)} error(s)")
        raise typer.Exit(1)
    _out.print(f"OK: {file}")


@config_app.command("example")
def config_example() -> None:
    """Print a commented example with every setting and its default (rankgate.example.yaml)."""
    from rankgate.config_file import example

    sys.stdout.write(example())


def load_for_serve(path: Path) -> ServeConfig:
    """The file ``serve --config`` names, or exit 2 listing every error with its path."""
    from rankgate.config_file import ConfigError, load

    try:
        return load(path)
    except ConfigError as e:
        for where, message in e.errors:
            _err.print(f"[bold red]error:[/] {path}: {where + ': ' if where else ''}{message}",
                       markup=True)
        raise typer.Exit(2) from None


def file_value(ctx: typer.Context, config: ServeConfig | None, name: str,
               value: T) -> T | Any:
    """``value`` when the flag ``name`` was given (or there is no file), else the file's."""
    if config is None or name not in config.serve:
        return value
    source = ctx.get_parameter_source(name)  # typer may vendor click: compare by name
    if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
        return value
    return config.serve[name]


def file_panel(config: ServeConfig) -> Any:
    """The panel the file names or holds (exit 2 naming the problem); None: the default."""
    from rankgate.panel import PanelError

    try:
        return config.load_panel()
    except PanelError as e:
        _err.print(f"[bold red]error:[/] {e}", markup=True)
        raise typer.Exit(2) from None


def note_env_overrides(config: ServeConfig) -> None:
    """Say which RANKGATE_* variables win over values of the file (precedence: flags, env,
    file, defaults), so a stray variable never silently changes a checked-in setting."""
    names = config.env_overridden()
    if names:
        _out.print(f"{config.source}: overridden by the environment: {', '.join(names)}")
