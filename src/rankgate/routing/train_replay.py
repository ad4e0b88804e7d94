"""``route train`` and ``route replay``: from outcome files to an artifact or a replay report.

Replay trains every router on the training items only and scores it on held-out items that
every model answered (a replay needs the whole row to know what any choice would have scored).
Items whose prompt text also occurs in the training part are dropped from the test part and
counted, so a memorised duplicate can't flatter a router. The cascade joins when the outcomes
carry a confidence (token logprobs) for every model.

Both calibrate the same way (:mod:`rankgate.routing.calibration`): ``train`` fits the per-model
maps on cross-fitted predictions of the training items and saves them with the router; replay
does exactly that on its training part and reports, per router, the ECE on the held-out part
before and after, and replays the router *as it would be served* (calibrated).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from rankgate.embed import Embedder
from rankgate.outcomes import Outcome
from rankgate.routing import artifact, cascade, replay
from rankgate.routing import calibration as calib
from rankgate.routing.bandit import LinUCBRouter
from rankgate.routing.base import OnlineRouter, OutcomeMatrix, Router
from rankgate.routing.registry import ROUTERS, make


def build(name: str, embedder: Embedder,
          params: dict[str, Any] | None = None) -> Router:
    """A new router by name: the learned ones plus the bandit."""
    if name == "bandit":
        return LinUCBRouter(embedder, **(params or {}))
    return make(name, embedder, **(params or {}))


def split(outcomes: list[Outcome], test_frac: float, seed: int
          ) -> tuple[list[Outcome], list[Outcome]]:
    """Split by item (all of an item's outcomes on one side), deterministically by seed."""
    ids = sorted({o.prompt_id for o in outcomes})
    rng = np.random.default_rng(seed)
    test = set(rng.choice(ids, size=max(1, round(test_frac * len(ids))), replace=False))
    return ([o for o in outcomes if o.prompt_id not in test],
            [o for o in outcomes if o.prompt_id in test])


def _confidence(outcomes: list[Outcome], m: OutcomeMatrix) -> np.ndarray:
    row = {pid: i for i, pid in enumerate(m.item_ids)}
    col = {mod: j for j, mod in enumerate(m.models)}
    conf = np.full(m.scores.shape, np.nan)
    for o in outcomes:
        if o.prompt_id in row and o.model in col and o.confidence is not None:
            conf[row[o.prompt_id], col[o.model]] = o.confidence
    return conf


def uncalibrated_because(router: Router, n_items: int, calibrated: bool,
                         folds: int = calib.FOLDS) -> str | None:
    """Why ``router`` will serve uncalibrated predictions, or None when it can be calibrated.
    An online router (the bandit) is never calibrated: its predictions move with every piece
    of feedback, so a map fitted once would go stale while it serves."""
    if not calibrated:
        return "trained with --no-calibrate"
    if isinstance(router, OnlineRouter):
        return "online router (its predictions move with feedback; a fixed map would go stale)"
    if n_items < 2 * folds:
        return f"only {n_items} training items; cross-fitting a calibration needs {2 * folds}"
    return None


def calibrate(name: str, embedder: Embedder, data: OutcomeMatrix,
              params: dict[str, Any] | None = None, folds: int = calib.FOLDS, seed: int = 0,
              method: str = "auto") -> calib.Calibration:
    """The calibration of router ``name`` fitted on cross-fitted predictions of ``data``."""
    oof = calib.out_of_fold(lambda: build(name, embedder, params), data, folds, seed)
    return calib.fit(oof, data.scores, data.models, folds, seed, method)


def train(outcomes: list[Outcome], router: str, out: Path,
          embedder: Embedder,
          models: list[str] | None = None, params: dict[str, Any] | None = None,
          *, calibrated: bool = True, folds: int = calib.FOLDS, seed: int = 0,
          trained_through: float | None = None) -> dict[str, Any]:
    """Fit ``router`` on every outcome, calibrate it (unless ``calibrated`` is False or it is
    online) and save both in one artifact. ``trained_through`` (unix seconds no outcome is
    newer than) defaults to now: every outcome passed in was stored before this call."""
    started = time.time() if trained_through is None else trained_through
    m = OutcomeMatrix.from_outcomes(outcomes, models)
    r = build(router, embedder, params)
    r.fit(m)
    note = uncalibrated_because(r, len(m.item_ids), calibrated, folds)
    cal = None if note else calibrate(router, embedder, m, params, folds, seed)
    costs = m.mean_costs()
    artifact.save(r, out, panel_models=m.models, costs=costs,
                  training_hash=artifact.training_hash(m), embedder_name=embedder.name,
                  calibration=cal, trained_through=started, training_prompts=m.prompts,
                  calibration_note=note)
    return {"router": router, "models": m.models, "n_items": len(m.item_ids),
            "costs": [None if np.isnan(c) else float(c) for c in costs], "path": str(out),
            "calibration": None if cal is None else cal.header(), "calibration_note": note,
            "trained_through": started}


def run_replay(train_rows: list[Outcome], test_rows: list[Outcome], routers: list[str],
               embedder: Embedder, cost_order: list[str] | None = None,
               n_boot: int = 200, seed: int = 0, calibrated: bool = True,
               method: str = "auto") -> dict[str, Any]:
    train_m = OutcomeMatrix.from_outcomes(train_rows)
    models = train_m.models
    test_all = OutcomeMatrix.from_outcomes(test_rows, models).complete()
    train_text = {hashlib.sha256(p.encode()).digest() for p in train_m.prompts}
    keep = [i for i, p in enumerate(test_all.prompts)
            if hashlib.sha256(p.encode()).digest() not in train_text]
    test_m = test_all.subset(keep)
    if len(test_m.item_ids) == 0:
        raise ValueError("no held-out item was answered by every model")
    costs = train_m.mean_costs()
    has_costs = not np.isnan(costs).any()
    predictions, raw_predictions = {}, {}
    calibration_report: dict[str, Any] = {}
    for name in routers:
        r = build(name, embedder)
        r.fit(train_m)
        raw = r.predict(test_m.prompts)
        note = uncalibrated_because(r, len(train_m.item_ids), calibrated)
        cal = None if note else calibrate(name, embedder, train_m, seed=seed, method=method)
        served = raw if cal is None else cal.apply(raw)
        predictions[name] = served
        raw_predictions[name] = raw
        calibration_report[name] = {
            "before": calib.reliability(raw, test_m.scores, n_boot=n_boot, seed=seed),
            "after": None if cal is None else calib.reliability(served, test_m.scores,
                                                                n_boot=n_boot, seed=seed),
            "maps": None if cal is None else cal.header()["models"],
            "note": None if note is None else f"served uncalibrated: {note}",
        }
    report = replay.replay_report(predictions, test_m.scores,
                                  costs if has_costs else None, models,
                                  order=cost_order, n_boot=n_boot, seed=seed)
    used = np.array([report["models"][m]["cost"] for m in models])  # $ or rank units
    for name, entry in calibration_report.items():
        if entry["after"] is not None:  # what calibration did to routing itself
            entry["apgr_uncalibrated"] = replay.evaluate_router(
                name, raw_predictions[name], test_m.scores, used)["apgr"]
            entry["apgr_calibrated"] = report["routers"][name]["apgr"]
    report["calibration"] = calibration_report
    report["calibrated"] = calibrated
    report["n_train"] = len(train_m.item_ids)
    report["embedder"] = embedder.name
    report["n_test_dropped_duplicates"] = len(test_all.item_ids) - len(keep)
    train_conf = _confidence(train_rows, train_m)
    test_conf = _confidence(test_rows, test_m)
    if has_costs and not np.isnan(test_conf).all() and not np.isnan(train_conf).all():
        tc = np.nan_to_num(train_m.costs, nan=0.0)
        pts = cascade.curve(train_conf, np.nan_to_num(train_m.scores), tc, test_conf,
                            test_m.scores, np.tile(costs, (len(test_m.item_ids), 1)))
        cas_curve = [(c, q) for c, q, _ in pts]
        singles = replay.single_model_points(test_m.scores, costs)
        report["routers"]["cascade"] = replay.curve_metrics(cas_curve, singles)
        report["routers"]["cascade"]["note"] = ("confidence = exp(mean token logprob); "
                                                "cost counts every call made")
    elif "cascade" not in report["routers"]:
        report["cascade_skipped"] = "the outcomes carry no confidence (token logprobs)"
    if not has_costs:
        report["note"] = ("the outcomes have no costs: costs are model ranks from "
                          + ("--cost-order" if cost_order else "the panel order"))
    return report


def all_routers() -> list[str]:
    return [*ROUTERS, "bandit"]
