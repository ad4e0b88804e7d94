"""Loading router artifacts, at start and into a running gateway (``POST /admin/router``,
SIGHUP), with the same checks both ways.

Why a swap cannot fail a request: a request resolves its :class:`LoadedRouter` once
(``RoutingTable.resolve``) and uses that object to the end. A swap builds the new router
completely — file read and router rebuilt in a worker thread, embedder made if it is a new
one, one trial prediction — and only then replaces the table's dict of routers by a new dict
in one assignment on the event loop. So a request that started before the swap finishes with
the router it started with, one that starts after gets the new one, and a bad artifact never
reaches the table: the old router keeps serving and the caller gets the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rankgate.config import Settings
from rankgate.embed import Embedder
from rankgate.gateway.auto_route import LoadedRouter, RoutingTable
from rankgate.panel import Panel
from rankgate.routing import artifact

if TYPE_CHECKING:
    from rankgate.gateway.state import GatewayState

log = logging.getLogger("rankgate")

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PROBE = "What is the capital of France?"


def load_one(path: Path, panel: Panel, settings: Settings,
             embedders: dict[str | None, Embedder | None]
             ) -> tuple[LoadedRouter, str | None, Embedder | None]:
    """(router, its embedder's name, the embedder) for the artifact at ``path``, checked
    against the panel; the embedder is taken from ``embedders`` when one of that name is
    there, else made. ``ArtifactError`` naming the file and the problem."""
    from rankgate.embed import make_embedder

    path = Path(path)
    want = artifact.read_header(path).get("embedder")
    if want is not None and not isinstance(want, str):
        raise artifact.ArtifactError(f"{path}: embedder {want!r} in the header is not a name")
    embedder = embedders.get(want)
    if want is not None and embedder is None:
        try:
            embedder = make_embedder(want, settings.home / "cache" / "embeddings.sqlite")
        except ValueError as e:  # a name no embedder here produces
            raise artifact.ArtifactError(f"{path}: {e}") from None
    router, meta = artifact.load(path, embedder)
    missing = [m for m in router.models if m not in panel]
    if missing:
        raise artifact.ArtifactError(
            f"{path}: router {meta['router']!r} picks among {router.models}, but "
            f"{missing} are not in the panel ({', '.join(panel.ids)})")
    costs = np.array([np.nan if c is None else c for c in meta["costs"]], dtype=float)
    return LoadedRouter(router, costs, meta, source=path), want, embedder


def probe(loaded: LoadedRouter) -> None:
    """One prediction, checked: a router whose arrays load but do not predict (wrong shapes,
    NaN) is refused before it serves. Also warms it (lazy model loads happen here)."""
    pred = np.asarray(loaded.router.predict([_PROBE]), float)
    m = len(loaded.router.models)
    if pred.shape != (1, m) or not np.isfinite(pred).all():
        src = loaded.source or "router"
        raise artifact.ArtifactError(f"{src}: a trial prediction gave shape {pred.shape} "
                                     f"with values {pred.ravel()[:m].tolist()} for {m} models; "
                                     "the artifact is corrupt")


def describe(name: str, loaded: LoadedRouter, default: bool) -> dict[str, Any]:
    h = loaded.meta
    return {"object": "router", "name": name, "default": default,
            "path": None if loaded.source is None else str(loaded.source),
            "router": h.get("router"), "panel_models": list(loaded.router.models),
            "embedder": h.get("embedder"), "training_hash": h.get("training_hash"),
            "created": h.get("created"), "trained_through": h.get("trained_through"),
            "calibration": h.get("calibration_status"), "loaded_at": loaded.loaded_at}


async def swap(state: GatewayState, path: Path, name: str | None = None) -> dict[str, Any]:
    """Load ``path`` and make it router ``name`` (default: the default router, i.e. what plain
    ``auto`` means; in a gateway without routers, the artifact's router kind). A new name adds
    a router (``auto:<name>``). ``ArtifactError`` leaves the table as it was."""
    table = state.routing
    if name is not None and not NAME.match(name):
        raise ValueError(f"router name {name!r}: use 1–64 letters, digits, '_', '.' or '-'")
    async with table.swap_lock:
        known = dict(table.embedders)
        loaded, emb_name, embedder = await asyncio.to_thread(
            load_one, path, state.panel, state.settings, known)
        shared = emb_name in known
        if shared:  # the embedder serves live requests: probe on the routing thread
            await asyncio.get_running_loop().run_in_executor(table.executor, probe, loaded)
        else:
            await asyncio.to_thread(probe, loaded)
        target = name or table.default or str(loaded.meta.get("router"))
        previous = table.routers.get(target)
        if not shared:
            table.embedders = {**table.embedders, emb_name: embedder}
        table.routers = {**table.routers, target: loaded}  # the swap: one assignment
    log.info("router swapped", extra={"router": target, "path": str(path),
                                      "calibration": loaded.meta.get("calibration_status")})
    out = describe(target, loaded, target == table.default)
    out["replaced"] = None if previous is None else describe(target, previous, False)
    if "uncalibrated" in str(loaded.meta.get("calibration_status")):
        out["warning"] = loaded.meta["calibration_status"]
    return out


async def reload_all(state: GatewayState) -> list[dict[str, Any]]:
    """Reload every router from the file it was last loaded from (at start: the ``--router``
    paths) — what SIGHUP does after ``route promote --install`` replaced a file. A file that
    fails keeps its old router serving; each outcome is logged and returned."""
    results = []
    for name, loaded in list(state.routing.routers.items()):
        if loaded.source is None:
            continue
        try:
            results.append(await swap(state, loaded.source, name))
        except (artifact.ArtifactError, OSError, ValueError) as e:
            log.error("router reload failed; the old router keeps serving",
                      extra={"router": name, "path": str(loaded.source), "error": str(e)})
            results.append({"name": name, "path": str(loaded.source), "error": str(e)})
    return results


def on_sighup(state: GatewayState) -> Callable[[], None]:
    """Reload routers on SIGHUP while the gateway runs; returns the undo. A no-op where the
    loop cannot take signal handlers (not the main thread, Windows)."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[Any]] = set()

    def handler() -> None:
        task = loop.create_task(reload_all(state))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    try:
        loop.add_signal_handler(signal.SIGHUP, handler)
    except (NotImplementedError, RuntimeError, ValueError, AttributeError):
        return lambda: None

    def undo() -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGHUP)

    return undo


def load_table(paths: list[Path], panel: Panel, settings: Settings) -> RoutingTable:
    """The routing table at start: every artifact loaded and checked as a swap would be;
    routers are named by their kind (``knn``, ``ensemble``…, then ``knn-1``… on a clash)."""
    table = RoutingTable()
    for path in paths:
        loaded, emb_name, embedder = load_one(path, panel, settings, table.embedders)
        table.embedders[emb_name] = embedder
        name = str(loaded.meta["router"])
        if name in table.routers:
            name = f"{name}-{len(table.routers)}"
        table.routers[name] = loaded
        status = str(loaded.meta.get("calibration_status"))
        if status.startswith("uncalibrated"):
            log.warning("router %s serves uncalibrated predictions: %s", name, status)
    return table
