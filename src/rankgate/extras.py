"""Optional dependencies: which pip extra brings each one, and the error that says so.

``pip install rankgate`` is the gateway, evaluation, ranking and routing against HTTP backends;
the embedded llama.cpp panel, plots, Redis and PostgreSQL are extras. Code that needs one
imports it through ``require`` at the point of use (never at module top), so a base install
imports every module and fails only when a feature that needs the extra is used — with a
message that names the command that fixes it, not a bare ``ModuleNotFoundError``.

``MissingExtra`` is an ``ImportError`` (what Python code and notebooks expect); what
``require`` raises is also the CLI's ``ClickException``, so a command prints the message as a
one-line error (exit code 1) instead of a traceback.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Extra:
    name: str  # the pip extra: pip install 'rankgate[<name>]'
    package: str  # the distribution it installs
    purpose: str  # what needs it, as the start of a sentence


#: top-level module -> the extra that installs it
EXTRAS: dict[str, Extra] = {
    "llama_cpp": Extra("local", "llama-cpp-python", "the embedded llama.cpp panel"),
    "matplotlib": Extra("report", "matplotlib", "plots (--png, --html)"),
    "redis": Extra("redis", "redis", "a Redis URL (limits, budgets and cache shared by "
                   "several gateways)"),
    "psycopg": Extra("postgres", "psycopg", "a PostgreSQL store"),
    "openai": Extra("client", "openai", "the openai client"),
    "opentelemetry": Extra("otel", "opentelemetry-sdk", "OpenTelemetry traces "
                           "(RANKGATE_OTEL_ENDPOINT)"),
}


class MissingExtra(ImportError):
    """An optional package is not installed; the message names the extra that brings it."""

    def __init__(self, module: str) -> None:
        extra = EXTRAS[module]
        message = (f"{extra.purpose} needs `pip install 'rankgate[{extra.name}]'` "
                   f"({extra.package} is not installed)")
        super().__init__(message, name=module)
        self.message = message
        self.extra = extra


@functools.cache
def _cli_class() -> type[MissingExtra]:
    """``MissingExtra`` that is also typer's ``ClickException`` (typer may vendor click, so the
    class is found through a public typer name); built on the first error, so that the
    gateway never imports typer."""
    import typer
    from rich.markup import escape

    click_exception = next(c for c in typer.BadParameter.__mro__
                           if c.__name__ == "ClickException")

    class MissingExtraError(MissingExtra, click_exception):  # type: ignore[misc, valid-type]
        exit_code = 1

        def __init__(self, module: str) -> None:
            MissingExtra.__init__(self, module)

        def format_message(self) -> str:
            return escape(self.message)  # printed as rich markup: keep '[local]' literal

        def __str__(self) -> str:
            return self.message

    return MissingExtraError


def missing(module: str) -> MissingExtra:
    """The error to raise for ``module`` (a key of ``EXTRAS``)."""
    return _cli_class()(module)


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (a file-system look-up)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str) -> ModuleType:
    """Import ``module`` (a key of ``EXTRAS`` or a submodule of one), or raise
    ``MissingExtra`` naming the extra to install."""
    top = module.partition(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and e.name.partition(".")[0] == top and top in EXTRAS:
            raise missing(top) from None
        raise


def check_urls(store_url: str | None, redis_url: str | None) -> None:
    """Fail before start-up, not on the first request, when a configured URL needs an extra
    that is missing."""
    if redis_url and not installed("redis"):
        raise missing("redis")
    if store_url and store_url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres"):
        driver = store_url.split(":", 1)[0].partition("+")[2] or "psycopg"
        if driver == "psycopg" and not installed("psycopg"):
            raise missing("psycopg")
