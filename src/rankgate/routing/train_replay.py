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
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rankgate.embed import Embedder
from rankgate.embed.memo import RunMemo
from rankgate.outcomes import Outcome
from rankgate.routing import artifact, cascade, conformal, replay
from rankgate.routing import calibration as calib
from rankgate.routing.bandit import LinUCBRouter
from rankgate.routing.base import OnlineRouter, OutcomeMatrix, Router
from rankgate.routing.registry import ROUTERS, make

PAIRED_REFERENCE = "knn_tuned"
"""The router every other one is compared with, paired, in replay (when it is replayed)."""


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
    return calibrate_and_guarantee(name, embedder, data, None, params, folds, seed,
                                   method)[0]


def calibrate_and_guarantee(name: str, embedder: Embedder, data: OutcomeMatrix,
                            costs: np.ndarray | None, params: dict[str, Any] | None = None,
                            folds: int = calib.FOLDS, seed: int = 0, method: str = "auto"
                            ) -> tuple[calib.Calibration, conformal.Guarantee | None, str | None]:
    """(calibration, quality guarantee, why there is no guarantee) from ONE set of cross-fitted
    predictions of ``data``: the guarantee's conformal bounds are computed from the same
    held-out predictions, as the calibrated router will serve them. ``costs`` None: no
    guarantee is fitted."""
    oof = calib.out_of_fold(lambda: build(name, embedder, params), data, folds, seed)
    cal = calib.fit(oof, data.scores, data.models, folds, seed, method)
    if costs is None:
        return cal, None, "not asked for"
    try:
        g = conformal.Guarantee(list(data.models), cal.apply(np.nan_to_num(oof, nan=0.5)),
                                data.scores, costs, seed)
    except ValueError as e:
        return cal, None, str(e)
    return cal, g, None


def train(outcomes: list[Outcome], router: str, out: Path,
          embedder: Embedder,
          models: list[str] | None = None, params: dict[str, Any] | None = None,
          *, calibrated: bool = True, folds: int = calib.FOLDS, seed: int = 0,
          trained_through: float | None = None,
          on_stage: Callable[[str, int, int], None] | None = None,
          on_embed: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Fit ``router`` on every outcome, calibrate it (unless ``calibrated`` is False or it is
    online) and save both in one artifact. ``trained_through`` (unix seconds no outcome is
    newer than) defaults to now: every outcome passed in was stored before this call.
    ``on_stage(stage, done, total)`` is told as each of the three stages (fit, calibrate,
    save) starts — a caller's progress display; the calibration refits the router per fold,
    so it is the long one. ``on_embed(done, total)`` hears the one pass that embeds each
    distinct prompt (every later use is a lookup)."""
    def stage(name: str, k: int) -> None:
        if on_stage is not None:
            on_stage(name, k, 3)

    started = time.time() if trained_through is None else trained_through
    m = OutcomeMatrix.from_outcomes(outcomes, models)
    # nothing to route between, or nothing to learn: refused for every router, naming the
    # minimum (routers that need more items refuse with their own minimum when fitted)
    conformal.check_trainable(m.scores, m.models, 1, f"training the {router} router")
    embedder = RunMemo(embedder)
    embedder.prefetch(m.prompts, on_embed)
    r = build(router, embedder, params)
    stage(f"fitting on {len(m.item_ids)} items", 0)
    r.fit(m)
    note = uncalibrated_because(r, len(m.item_ids), calibrated, folds)
    if not note:
        stage(f"calibrating ({folds}-fold cross-fitting)", 1)
    with warnings.catch_warnings():  # a model without any cost: NaN, printed as unknown
        warnings.simplefilter("ignore", RuntimeWarning)
        costs = m.mean_costs()
    cal, guarantee, guarantee_note = (None, None, note) if note else calibrate_and_guarantee(
        router, embedder, m, costs, params, folds, seed)
    stage("saving the artifact", 2)
    artifact.save(r, out, panel_models=m.models, costs=costs,
                  training_hash=artifact.training_hash(m), embedder_name=embedder.name,
                  calibration=cal, trained_through=started, training_prompts=m.prompts,
                  calibration_note=note, guarantee=guarantee)
    stage("done", 3)
    return {"router": router, "models": m.models, "n_items": len(m.item_ids),
            "costs": [None if np.isnan(c) else float(c) for c in costs], "path": str(out),
            "calibration": None if cal is None else cal.header(), "calibration_note": note,
            "guarantee": None if guarantee is None else guarantee.header(),
            "guarantee_note": guarantee_note,
            "trained_through": started}


def replay_costs(train_m: OutcomeMatrix, given: Mapping[str, float] | None
                 ) -> tuple[np.ndarray, list[str]]:
    """Mean $ per request per model: the outcomes' own costs, overridden by ``given`` (from
    ``--cost model=$`` or a cost file); NaN where neither knows. Also the models still without
    a cost. A name in ``given`` that is not a model of the data is an error (a typo would
    otherwise leave that model silently unpriced)."""
    with warnings.catch_warnings():  # a model with no cost at all: NaN, said in the note
        warnings.simplefilter("ignore", RuntimeWarning)
        costs = train_m.mean_costs().astype(float)
    for name, value in (given or {}).items():
        if name not in train_m.models:
            raise ValueError(f"--cost names {name!r}, which is not a model of these outcomes "
                             f"({', '.join(train_m.models)})")
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"--cost {name}: a cost is a finite number >= 0, got {value!r}")
        costs[train_m.models.index(name)] = float(value)
    return costs, [m for m, c in zip(train_m.models, costs, strict=True) if np.isnan(c)]


def run_replay(train_rows: list[Outcome], test_rows: list[Outcome], routers: list[str],
               embedder: Embedder, costs_given: Mapping[str, float] | None = None,
               n_boot: int = 200, seed: int = 0, calibrated: bool = True,
               method: str = "auto",
               on_router: Callable[[str, int, int], None] | None = None,
               on_embed: Callable[[int, int], None] | None = None,
               kept: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train each router on ``train_rows``, replay it on ``test_rows`` (see the module doc).

    ``costs_given`` ($ per request by model) overrides the outcomes' costs. When some model
    still has no cost, the replay's x axis is the share of calls to the strong model: APGR and
    CPT stay defined and no $ figure is made up. ``on_router(name, done, total)`` is called
    before each router is trained (progress for a caller that shows it); ``on_embed(done,
    total)`` during the one pass that embeds each distinct prompt. ``kept``, when given, gets
    the served ``predictions`` by router, the test ``item_ids`` and ``scores`` and the
    ``used`` cost axis: what a caller needs to compare two replays on the same items, paired
    (:func:`rankgate.routing.replay.paired_difference`), e.g. one router under two embedders.
    """
    train_m = OutcomeMatrix.from_outcomes(train_rows)
    models = train_m.models
    test_all = OutcomeMatrix.from_outcomes(test_rows, models).complete()
    train_text = {hashlib.sha256(p.encode()).digest() for p in train_m.prompts}
    keep = [i for i, p in enumerate(test_all.prompts)
            if hashlib.sha256(p.encode()).digest() not in train_text]
    test_m = test_all.subset(keep)
    if len(test_m.item_ids) == 0:
        raise ValueError("no held-out item was answered by every model")
    costs, unpriced = replay_costs(train_m, costs_given)
    embedder = RunMemo(embedder)
    embedder.prefetch([*train_m.prompts, *test_m.prompts], on_embed)
    has_costs = not unpriced
    predictions, raw_predictions = {}, {}
    calibration_report: dict[str, Any] = {}
    guarantee_report: dict[str, Any] = {}
    # the policy the guarantee replays on its calibration items uses training-side costs only
    complete_train = train_m.complete().scores
    g_costs = replay.resolve_costs(costs if has_costs else None, len(models), None,
                                   complete_train if len(complete_train) else None)[0]
    for k, name in enumerate(routers):
        if on_router is not None:
            on_router(name, k, len(routers))
        r = build(name, embedder)
        r.fit(train_m)
        raw = r.predict(test_m.prompts)
        note = uncalibrated_because(r, len(train_m.item_ids), calibrated)
        cal, guarantee, g_note = (None, None, note) if note else calibrate_and_guarantee(
            name, embedder, train_m, g_costs, seed=seed, method=method)
        served = raw if cal is None else cal.apply(raw)
        predictions[name] = served
        raw_predictions[name] = raw
        guarantee_report[name] = ({"note": f"no guarantee: {g_note}"} if guarantee is None else
                                  {"rows": conformal.coverage_table(guarantee, served,
                                                                    test_m.scores, g_costs)})
        calibration_report[name] = {
            "before": calib.reliability(raw, test_m.scores, n_boot=n_boot, seed=seed),
            "after": None if cal is None else calib.reliability(served, test_m.scores,
                                                                n_boot=n_boot, seed=seed),
            "maps": None if cal is None else cal.header()["models"],
            "note": None if note is None else f"served uncalibrated: {note}",
        }
    report = replay.replay_report(predictions, test_m.scores,
                                  costs if has_costs else None, models,
                                  n_boot=n_boot, seed=seed)
    used = np.array([report["axis"][m] for m in models])  # $ or strong-call share
    if kept is not None:
        kept.update(predictions=dict(predictions), item_ids=list(test_m.item_ids),
                    scores=test_m.scores, used=used)
    for name, entry in calibration_report.items():
        if entry["after"] is not None:  # what calibration did to routing itself
            entry["apgr_uncalibrated"] = replay.evaluate_router(
                name, raw_predictions[name], test_m.scores, used)["apgr"]
            entry["apgr_calibrated"] = report["routers"][name]["apgr"]
    report["calibration"] = calibration_report
    report["guarantee"] = guarantee_report
    if PAIRED_REFERENCE in predictions:  # every router against the bar it must clear
        report["paired_vs"] = PAIRED_REFERENCE
        report["paired"] = {
            name: {metric: replay.paired_difference(P, predictions[PAIRED_REFERENCE],
                                                    test_m.scores, used, n_boot, seed,
                                                    metric=metric)
                   for metric in ("aiq", "apgr")}
            for name, P in predictions.items() if name != PAIRED_REFERENCE}
    report["calibrated"] = calibrated
    report["n_train"] = len(train_m.item_ids)
    report["embedder"] = embedder.name
    report["n_test_dropped_duplicates"] = len(test_all.item_ids) - len(keep)
    train_conf = _confidence(train_rows, train_m)
    test_conf = _confidence(test_rows, test_m)
    if has_costs and not np.isnan(test_conf).all() and not np.isnan(train_conf).all():
        # per-item $ where recorded, else the model's mean (or its --cost): the cascade
        # orders models by these, so an unrecorded cost must not read as free
        tc = np.where(np.isnan(train_m.costs), costs[None, :], train_m.costs)
        pts = cascade.curve(train_conf, np.nan_to_num(train_m.scores), tc, test_conf,
                            test_m.scores, np.tile(costs, (len(test_m.item_ids), 1)))
        cas_curve = [(c, q) for c, q, _ in pts]
        singles = replay.single_model_points(test_m.scores, costs)
        report["routers"]["cascade"] = replay.curve_metrics(cas_curve, singles)
        report["routers"]["cascade"]["note"] = ("confidence = exp(mean token logprob); "
                                                "cost counts every call made")
    elif "cascade" not in report["routers"]:
        report["cascade_skipped"] = ("the outcomes carry no confidence (token logprobs)"
                                     if has_costs else "a cascade's cost needs $ costs")
    report["costs_given"] = dict(costs_given or {})
    if not has_costs:
        strong = report["reference"]["strong"]
        report["note"] = (f"no $ cost for {', '.join(unpriced)}: the x axis is the share of "
                          f"calls to the strong model {strong} (the most accurate; every "
                          "other model counts as free), so APGR and CPT are RouteLLM's and "
                          "savings are strong calls saved; give --cost MODEL=$ per request "
                          "for $ figures"
                          + ("" if len(models) <= 2 else
                             f" (with {len(models)} models, treating every non-strong model "
                             "as free flatters routing among them: prefer --cost)"))
    return report


def all_routers() -> list[str]:
    return [*ROUTERS, "bandit"]
