"""`python -m rankgate` runs the same Typer app as the `rankgate` console script."""

from rankgate.cli import app

app(prog_name="rankgate")
