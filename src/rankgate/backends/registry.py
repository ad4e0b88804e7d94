"""Which backends exist: one line per backend, naming its config check and its factory.

Adding a backend is one file under ``backends/`` (a class that satisfies ``Backend``, a
``validate(spec)`` for its panel fields and a ``build(spec, resources)``) plus one line in
``BACKENDS``. Nothing outside ``backends/`` asks which backend a model uses: callers read its
``capabilities`` and ``status()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rankgate.backends import faulty, llamacpp, openai_http

if TYPE_CHECKING:
    from rankgate.backends.base import Backend
    from rankgate.backends.resources import Resources
    from rankgate.panel import ModelSpec


@dataclass(frozen=True)
class BackendType:
    name: str
    validate: Callable[[ModelSpec], None]  # raises ValueError with a one-line reason
    build: Callable[[ModelSpec, Resources], Backend]  # cheap: loads and connects nothing
    compute_priced: bool = False  # priced by compute seconds (see pricing.py)


BACKENDS: dict[str, BackendType] = {
    "llamacpp": BackendType("llamacpp", llamacpp.validate, llamacpp.build, compute_priced=True),
    "openai": BackendType("openai", openai_http.validate, openai_http.build),
    "faulty": BackendType("faulty", faulty.validate, faulty.build),
}


def backend_type(name: str) -> BackendType:
    """The registered backend ``name``; a ValueError listing the known ones otherwise."""
    try:
        return BACKENDS[name]
    except KeyError:
        known = " or ".join(repr(n) for n in BACKENDS)
        raise ValueError(f"unknown backend {name!r}: use {known}") from None
