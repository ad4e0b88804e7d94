"""A trained router as ONE file: a ``.npz`` holding a JSON header and the router's arrays.

No pickle, ever: the file is read with ``np.load(..., allow_pickle=False)``, so loading an
artifact cannot run code, and any NumPy can read it. The header records what the router needs
to be *valid*, not just loadable — the panel it predicts for (model ids, in column order), the
embedding model its inputs came from, per-model mean costs, and a hash of the training data —
and :func:`load` refuses a router whose panel or embedder differ from the caller's, because
such a router would silently predict for the wrong columns or from the wrong vector space.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from rankgate.embed import Embedder
from rankgate.routing.base import OutcomeMatrix, Router

FORMAT = "rankgate-router/1"
_HEADER = "__header__"
_PREFIX = "a:"


class ArtifactError(ValueError):
    """A router file that cannot be used here: unreadable, or made for another panel or
    embedding model. The message names the file and both sides of any mismatch."""


def training_hash(matrix: OutcomeMatrix) -> str:
    """sha256 over the models, item ids and scores (missing = null): the same outcomes give
    the same hash, whatever process computed it."""
    h = hashlib.sha256()
    h.update(json.dumps(matrix.models).encode())
    for item, row in zip(matrix.item_ids, matrix.scores, strict=True):
        h.update(json.dumps([item, [None if math.isnan(s) else round(float(s), 12)
                                    for s in row]]).encode())
    return "sha256:" + h.hexdigest()


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, np.generic):
        return _json_safe(x.item())
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    return x


def save(router: Router, path: str | Path, *, panel_models: list[str], costs: Any,
         training_hash: str, embedder_name: str | None) -> Path:
    """Write ``router`` to ``path`` (atomically: a crash leaves the old file or none)."""
    path = Path(path)
    if list(router.models) != list(panel_models):
        raise ArtifactError(f"router was fitted for models {list(router.models)}, but the panel "
                            f"to save is {list(panel_models)}")
    c = np.asarray(costs, float).reshape(-1)
    if len(c) != len(panel_models):
        raise ArtifactError(f"{len(c)} costs for {len(panel_models)} panel models")
    params, arrays = router.state()
    header = {
        "format": FORMAT, "router": router.name, "params": _json_safe(params),
        "panel_models": list(panel_models),
        "costs": [None if math.isnan(v) else float(v) for v in c],
        "embedder": embedder_name, "training_hash": training_hash,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    payload: dict[str, np.ndarray] = {_HEADER: np.array(json.dumps(header))}
    for k, v in arrays.items():
        a = np.asarray(v)
        if a.dtype == object:
            raise ArtifactError(f"array {k!r} of router {router.name!r} has dtype object; "
                                "artifacts hold numeric arrays only")
        payload[_PREFIX + k] = a
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        np.savez(f, **payload)  # type: ignore[arg-type]
    os.replace(tmp, path)
    return path


def read_header(path: str | Path) -> dict[str, Any]:
    """The artifact's header alone (the arrays stay on disk): enough to know which embedder and
    panel a router needs before building it."""
    return _read(path, with_arrays=False)[0]


def read(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(header, arrays) of an artifact, without building the router."""
    return _read(path, with_arrays=True)


def _read(path: str | Path, with_arrays: bool
          ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            if _HEADER not in z.files:
                raise ArtifactError(f"{path}: not a rankgate router artifact (no header)")
            header = json.loads(str(z[_HEADER]))
            arrays = ({k[len(_PREFIX):]: z[k] for k in z.files if k.startswith(_PREFIX)}
                      if with_arrays else {})
    except ArtifactError:
        raise
    except FileNotFoundError:
        raise ArtifactError(f"{path}: no such router file") from None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise ArtifactError(f"{path}: corrupt or not a router artifact ({e})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        fmt = header.get("format") if isinstance(header, dict) else None
        raise ArtifactError(f"{path}: format {fmt!r} is not {FORMAT!r}")
    return header, arrays


def load(path: str | Path, embedder: Embedder | None,
         expected_models: list[str] | None = None) -> tuple[Router, dict[str, Any]]:
    """(router, header) from ``path``, checked against the panel and the embedder.

    ``expected_models`` is the serving panel in order (None: accept the artifact's). The
    embedder must be the one the router was trained with (same name, which includes the
    prompt window); routers that use no embedder record ``None`` and accept any. To get that
    embedder, pass ``read_header(path)["embedder"]`` to
    :func:`rankgate.embed.make_embedder`.
    """
    from rankgate.routing.registry import rebuild

    path = Path(path)
    header, arrays = read(path)
    saved_models = list(header.get("panel_models") or [])
    if expected_models is not None and list(expected_models) != saved_models:
        how = ("same models in a different order" if sorted(expected_models) ==
               sorted(saved_models) else "different models")
        raise ArtifactError(f"{path}: router was trained for panel {saved_models}, but this "
                            f"panel is {list(expected_models)} ({how}); retrain the router "
                            "or serve the panel it was trained for")
    want = header.get("embedder")
    have = embedder.name if embedder is not None else None
    if want is not None and want != have:
        raise ArtifactError(f"{path}: router was trained on embeddings from {want!r}, but the "
                            f"embedder here is {have!r}; use the same embedder and settings "
                            "(build it from the artifact's recorded name), or retrain")
    try:
        router = rebuild(header["router"], embedder, header["params"], arrays)
    except (KeyError, ValueError, TypeError, IndexError) as e:
        raise ArtifactError(f"{path}: corrupt router state for "
                            f"{header.get('router')!r} ({type(e).__name__}: {e})") from None
    if list(router.models) != saved_models:
        raise ArtifactError(f"{path}: header panel {saved_models} disagrees with the router's "
                            f"own models {list(router.models)}")
    return router, header
