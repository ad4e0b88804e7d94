"""The embedder contract: what the routers and the semantic cache may rely on, and nothing more.

Routers (kNN, MF, classifier, ensemble, bandit) learn from the vectors and must see the *same*
vector space at serving time as at training time, so a router artifact records the embedder's
``name`` and refuses another. The semantic cache compares vectors by dot product, so it needs
unit rows and their width. Keeping the contract this small is what lets a new embedder be one
file behind this protocol plus one line in :mod:`rankgate.embed.registry`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    """Texts → L2-normalised float32 vectors of a fixed width, deterministic for a ``name``.

    Implementations must be safe to call from several threads at once: the gateway embeds off
    the event loop, in worker threads, for routers and the semantic cache alike.
    """

    @property
    def name(self) -> str:
        """Pins every setting that changes a vector (model, library version, prompt window…).

        Two embedders with equal names give equal vectors for equal texts, in any process; a
        router artifact records it, and :func:`rankgate.embed.make_embedder` rebuilds the
        embedder from it. It must fully match one pattern the registry knows.
        """
        ...

    @property
    def dim(self) -> int:
        """The width of every row :meth:`embed` returns."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of ``texts``: shape ``[len(texts), dim]``, dtype float32, rows of unit L2
        norm (so a dot product is a cosine), row ``i`` depending on ``texts[i]`` only (not on
        the batch). A bare ``str`` counts as one text; an empty sequence gives ``[0, dim]``.
        Any ``str`` embeds (empty, NUL characters, unpaired surrogates, megabytes: the cost
        per text is bounded by reading a window of it).
        """
        ...
