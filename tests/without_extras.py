"""Run the ``rankgate`` CLI as a base install would: the packages that only extras bring
(llama-cpp-python, matplotlib, redis, psycopg, openai) and httpx (tests and benchmarks only)
cannot be imported. ``python tests/without_extras.py rank --outcomes embedded``.

A meta-path finder refuses them, so an import anywhere in rankgate fails exactly as it would
where the package is not installed; at exit the script checks that none was imported.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

BLOCKED = ("llama_cpp", "matplotlib", "redis", "psycopg", "openai", "httpx")


class Blocker(importlib.abc.MetaPathFinder):
    """Finds nothing for the blocked packages, as if they were not installed."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def block() -> None:
    for name in list(sys.modules):
        if name.partition(".")[0] in BLOCKED:
            raise RuntimeError(f"{name} was imported before the blocker")
    sys.meta_path.insert(0, Blocker())


if __name__ == "__main__":
    block()
    from rankgate.cli import app

    try:
        app(prog_name="rankgate")
    finally:
        leaked = sorted(n for n in sys.modules if n.partition(".")[0] in BLOCKED)
        assert not leaked, leaked
