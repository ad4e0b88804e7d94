"""A trained router as ONE file: a ``.npz`` holding a JSON header and the router's arrays.

No pickle, ever: the file is read with ``np.load(..., allow_pickle=False)``, so loading an
artifact cannot run code, and any NumPy can read it. The header records what the router needs
to be *valid*, not just loadable — the panel it predicts for (model ids, in column order), the
embedding model its inputs came from, per-model mean costs, and a hash of the training data —
and :func:`load` refuses a router whose panel or embedder differ from the caller's, because
such a router would silently predict for the wrong columns or from the wrong vector space.

Two more things make a router *comparable* and *honest*, and both are optional so that older
artifacts still load: ``calibration`` (per-model maps from predicted to realised quality, see
:mod:`rankgate.routing.calibration`; its knots are arrays ``c:*``) — loaded routers apply it, and
an artifact without it loads uncalibrated and says so in ``header["calibration_status"]``; and
what it was trained on — ``trained_through`` (unix seconds no training outcome is newer than)
and 8-byte hashes of the training prompts (array ``t:prompts``) — so that ``route promote``
replays routers only on traffic neither has seen.
"""

from __future__ import annotations

import calendar
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
from rankgate.routing.calibration import CalibratedRouter, Calibration
from rankgate.routing.conformal import Guarantee

FORMAT = "rankgate-router/1"
_HEADER = "__header__"
_PREFIX = "a:"  # the router's own arrays
_CALIBRATION = "c:"  # calibration knots
_TRAINING = "t:"  # what it was trained on
_GUARANTEE = "g:"  # held-out predictions and scores the quality guarantee is computed from


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


def prompt_hash(prompt: str) -> int:
    """First 8 bytes of the prompt's sha256 as an unsigned 64-bit integer: enough to tell
    whether a prompt was in the training data (a false match needs a 64-bit collision)."""
    return int.from_bytes(hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).digest()[:8],
                          "little")


def prompt_hashes(prompts: list[str]) -> np.ndarray:
    """:func:`prompt_hash` of each prompt, as a sorted unique uint64 array."""
    return np.unique(np.array([prompt_hash(p) for p in prompts], dtype=np.uint64))


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
         training_hash: str, embedder_name: str | None,
         calibration: Calibration | None = None, trained_through: float | None = None,
         training_prompts: list[str] | None = None, calibration_note: str | None = None,
         guarantee: Guarantee | None = None) -> Path:
    """Write ``router`` to ``path`` (atomically: a crash leaves the old file or none).

    A :class:`CalibratedRouter` is saved as its inner router plus its calibration;
    ``guarantee`` (optional, :mod:`rankgate.routing.conformal`) travels as header ``guarantee``
    and arrays ``g:*``, so the gateway can honour ``confidence`` knobs."""
    path = Path(path)
    if isinstance(router, CalibratedRouter):
        calibration = calibration or router.calibration
        router = router.inner
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
        "trained_through": time.time() if trained_through is None else float(trained_through),
        "calibration": None if calibration is None else _json_safe(calibration.header()),
        "guarantee": None if guarantee is None else _json_safe(guarantee.header()),
    }
    if calibration is None and calibration_note:
        header["calibration_note"] = calibration_note  # why it serves uncalibrated
    payload: dict[str, np.ndarray] = {_HEADER: np.array(json.dumps(header))}
    extra: dict[str, Any] = {}
    if calibration is not None:
        if list(calibration.models) != list(panel_models):
            raise ArtifactError(f"calibration is for {calibration.models}, the panel to save "
                                f"is {list(panel_models)}")
        extra.update({_CALIBRATION + k: v for k, v in calibration.arrays().items()})
    if training_prompts is not None:
        extra[_TRAINING + "prompts"] = prompt_hashes(training_prompts)
    if guarantee is not None:
        extra.update({_GUARANTEE + k: v for k, v in guarantee.arrays().items()})
    for k, v in [*((_PREFIX + k, v) for k, v in arrays.items()), *extra.items()]:
        a = np.asarray(v)
        if a.dtype == object:
            raise ArtifactError(f"array {k!r} of router {router.name!r} has dtype object; "
                                "artifacts hold numeric arrays only")
        payload[k] = a
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
    """(header, the router's arrays) of an artifact, without building the router."""
    return _read(path, with_arrays=True)


def read_sections(path: str | Path) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """(header, {"router": …, "calibration": …, "training": …, "guarantee": …} arrays) of an
    artifact."""
    header, arrays = _read(path, with_arrays=True, prefix="")
    sections: dict[str, dict[str, np.ndarray]] = {"router": {}, "calibration": {},
                                                  "training": {}, "guarantee": {}}
    for k, v in arrays.items():
        for name, pre in (("router", _PREFIX), ("calibration", _CALIBRATION),
                          ("training", _TRAINING), ("guarantee", _GUARANTEE)):
            if k.startswith(pre):
                sections[name][k[len(pre):]] = v
    return header, sections


def trained_through(header: dict[str, Any]) -> float | None:
    """Unix seconds no training outcome of this artifact is newer than: the recorded value, or
    for an artifact that predates it, its creation time (a safe upper bound); None if neither
    is readable."""
    v = header.get("trained_through")
    if isinstance(v, int | float) and math.isfinite(v):
        return float(v)
    try:
        return float(calendar.timegm(time.strptime(str(header.get("created")),
                                                   "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


def _read(path: str | Path, with_arrays: bool, prefix: str = _PREFIX
          ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            if _HEADER not in z.files:
                raise ArtifactError(f"{path}: not a rankgate router artifact (no header)")
            header = json.loads(str(z[_HEADER]))
            arrays = ({k[len(prefix):]: z[k] for k in z.files if k.startswith(prefix)
                       and k != _HEADER} if with_arrays else {})
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
    header, sections = read_sections(path)
    arrays = sections["router"]
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
    guarantee = _guarantee(path, header, sections["guarantee"], saved_models)
    cal = header.get("calibration")
    if cal is None:
        header["calibration_status"] = "uncalibrated: " + (
            "the artifact predates calibration (retrain it with `rankgate route train` to "
            "calibrate)" if "calibration" not in header else
            str(header.get("calibration_note") or "trained without calibration"))
        router.guarantee = guarantee  # type: ignore[attr-defined]
        return router, header
    try:
        calibration = Calibration.from_header(cal, sections["calibration"], saved_models)
    except (KeyError, ValueError, TypeError) as e:
        raise ArtifactError(f"{path}: corrupt calibration ({type(e).__name__}: {e})") from None
    header["calibration_status"] = "calibrated: " + ", ".join(
        f"{m} {mp.kind}" for m, mp in zip(saved_models, calibration.maps, strict=True))
    served = CalibratedRouter(router, calibration)
    served.guarantee = guarantee  # type: ignore[attr-defined]
    return served, header


def _guarantee(path: Path, header: dict[str, Any], arrays: dict[str, np.ndarray],
               models: list[str]) -> Guarantee | None:
    """The artifact's quality guarantee (None when it has none: a ``confidence`` knob is then
    refused, never answered with a point prediction)."""
    g = header.get("guarantee")
    if g is None:
        return None
    try:
        return Guarantee.from_header(g, arrays, models)
    except (KeyError, ValueError, TypeError) as e:
        raise ArtifactError(f"{path}: corrupt guarantee ({type(e).__name__}: {e})") from None
