"""``route promote``: replace the serving router only when fresh traffic says it is no worse.

A router that replays well on last month's held-out split can still be worse on this week's
traffic, and a retrained router that is merely *different* must not replace a good one. So the
guard replays both routers, at the same knob, on outcomes neither was trained on, item by item:

1. **fresh items** — the store's outcomes stored after both artifacts' ``trained_through``, for
   every model either router can pick, one score per answer (the most trusted source's, as
   ``rank`` merges them); only items every such model was scored on (the replay needs the
   score of whichever model a router picks); items whose prompt is in either artifact's
   training prompts are dropped and counted. ``since`` moves the window's start — later, or
   earlier when the artifacts record their training prompts: the prompt check alone then keeps
   training items out (an artifact without that record keeps its ``trained_through`` as a
   bound);
2. **replay** — each router predicts (calibrated, as it would be served) and the shared policy
   picks with its own cost estimates and the same knob; a pick's realised quality is the
   stored score, its realised cost the stored cost (else that model's mean fresh cost, else the
   artifacts' estimate);
3. **quality, paired** — on the same items, the difference NEW − CURRENT with a 95% bootstrap
   interval (and McNemar's exact test for 0/1 scores, the paired bootstrap test otherwise, from
   :mod:`rankgate.rank.stats`); NEW is non-inferior when the interval's lower bound is above
   −margin, exactly as ``rank`` recommends a cheaper model;
4. **cost** — the paired mean cost difference; NEW must not cost more (point estimate);
5. **enough items** — fewer than ``min_items`` (default :data:`MIN_ITEMS`) fresh items: refuse
   and say how many are needed; an interval that straddles −margin: refuse as undecided, with
   the items a test at 80% power would need (:func:`items_needed`).

Promote iff 3 and 4 hold. Exit codes (CLI): 0 promoted, 1 refused, 2 bad input.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from rankgate.outcomes import Outcome
from rankgate.routing import artifact
from rankgate.routing.base import Knob, OutcomeMatrix, Router, choose

MIN_ITEMS = 100
"""Fewest fresh paired items a decision is made on. Below ~100, one item moves a mean by ≥1%
— half the default 2% margin — and the percentile bootstrap under-covers."""
MIN_SPREAD_ITEMS = 10  # fewer paired items than this: no spread estimate, no power count
Z_95 = 1.959963984540054  # the interval's lower bound is a one-sided 2.5% test
Z_POWER_80 = 0.8416212335729143


class PromoteInputError(ValueError):
    """Bad input (unreadable artifact, incompatible store): the CLI exits 2 with the message."""


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass
class Candidate:
    """One artifact, loaded as it would be served."""

    path: Path
    router: Router
    header: dict[str, Any]
    training: np.ndarray | None  # sorted uint64 prompt hashes, None for an old artifact

    @property
    def models(self) -> list[str]:
        return list(self.router.models)

    @property
    def costs(self) -> np.ndarray:
        return np.array([np.nan if c is None else c for c in self.header["costs"]], float)


def load_candidate(path: Path, cache_path: Path | None,
                   embedders: dict[str | None, Any]) -> Candidate:
    """The artifact at ``path`` with its own embedder (shared with ``embedders`` by name)."""
    from rankgate.embed import make_embedder

    path = Path(path)
    try:
        want = artifact.read_header(path).get("embedder")
        if want not in embedders:
            embedders[want] = None if want is None else make_embedder(want, cache_path)
        router, header = artifact.load(path, embedders[want])
        _, sections = artifact.read_sections(path)
    except (artifact.ArtifactError, ValueError) as e:
        raise PromoteInputError(str(e) if str(path) in str(e) else f"{path}: {e}") from None
    training = sections["training"].get("prompts")
    return Candidate(path, router, header,
                     None if training is None else np.asarray(training, np.uint64))


def fresh_items(outcomes: list[Outcome], models: list[str],
                trained: list[np.ndarray | None]) -> tuple[OutcomeMatrix, dict[str, Any]]:
    """The fresh outcomes as complete rows over ``models``, minus prompts either router was
    trained on; with counts of what was dropped and why. ``PromoteInputError`` naming the
    models the store lacks."""
    seen = sorted({o.model for o in outcomes})
    missing = [m for m in models if m not in seen]
    if outcomes and missing:
        raise PromoteInputError(
            f"the store's fresh outcomes are for models {seen}, but the routers choose among "
            f"{models}: no fresh outcome for {missing}. Is this the store of the panel these "
            "routers serve? (Shadow evaluation of those models fills it.)")
    full = OutcomeMatrix.from_outcomes(outcomes, models)
    complete = full.complete()
    known = [t for t in trained if t is not None]
    keep = list(range(len(complete.item_ids)))
    if known:
        item_hash = np.array([artifact.prompt_hash(p) for p in complete.prompts], np.uint64)
        trained_any = np.zeros(len(item_hash), bool)
        for t in known:
            trained_any |= np.isin(item_hash, t)
        keep = [i for i in range(len(item_hash)) if not trained_any[i]]
    counts = {"items_stored": len(full.item_ids),
              "dropped_incomplete": len(full.item_ids) - len(complete.item_ids),
              "dropped_trained_on": len(complete.item_ids) - len(keep),
              "training_prompts_known": len(known) == len(trained)}
    return complete.subset(keep), counts


def _realised_costs(data: OutcomeMatrix, estimates: list[np.ndarray]) -> np.ndarray:
    """Per (item, model) $: the stored cost, else the model's mean stored cost, else the mean of
    the artifacts' estimates (NaN when nothing is known)."""
    c = np.array(data.costs, float)
    with np.errstate(all="ignore"):
        col = np.nanmean(c, axis=0) if len(c) else np.full(c.shape[1], np.nan)
        est = np.nanmean(np.vstack(estimates), axis=0)
    col = np.where(np.isnan(col), est, col)
    return np.where(np.isnan(c), col, c)


def replay_choices(cand: Candidate, data: OutcomeMatrix, knob: Knob) -> np.ndarray:
    """Column (in ``data.models``) each item goes to under ``cand``'s router at ``knob``."""
    pred = cand.router.predict(data.prompts)
    picks = choose(pred, cand.costs, knob)
    col = {m: j for j, m in enumerate(data.models)}
    return np.array([col[cand.models[int(k)]] for k in picks], dtype=int)


def items_needed(sd: float, margin: float) -> int:
    """Paired items for an 80%-power non-inferiority decision at ``margin`` when the routers are
    in truth equal: n = ((z₀.₉₇₅ + z₀.₈₀)·sd / margin)², sd = std of the paired differences."""
    if margin <= 0:
        return 10**9
    return max(1, math.ceil(((Z_95 + Z_POWER_80) * sd / margin) ** 2))


def compare(q_new: np.ndarray, q_cur: np.ndarray, c_new: np.ndarray, c_cur: np.ndarray,
            margin: float, min_items: int, seed: int = 0) -> dict[str, Any]:
    """The decision on paired per-item quality and cost of the two routers' picks."""
    from rankgate.rank import stats

    n = len(q_new)
    d = np.asarray(q_new, float) - np.asarray(q_cur, float)
    sd = float(d.std(ddof=1)) if n >= MIN_SPREAD_ITEMS else 0.0  # too few to estimate it
    need = max(min_items, items_needed(sd, margin)) if sd > 0 else min_items
    out: dict[str, Any] = {"n": n, "margin": margin, "min_items": min_items,
                           "items_needed": need, "sd_diff": sd}
    if n < min_items:
        out.update(promote=False, verdict="too_few_items",
                   reason=(f"only {n} fresh item(s) neither router was trained on; "
                           f"a decision needs at least {need} (the minimum is {min_items}"
                           + (f"; at the observed spread of paired differences (sd {sd:.2f}) "
                              f"an 80%-power test of the −{margin:.1%} margin needs {need}"
                              if need > min_items else "") + "). Collect more traffic "
                           "(shadow evaluation scores it) and run promote again."))
        return out
    qn, qc = stats.mean_interval(q_new, seed), stats.mean_interval(q_cur, seed)
    pair = stats.paired_compare(q_new, q_cur, seed=seed)
    cost_known = bool(np.isfinite(c_new).all() and np.isfinite(c_cur).all())
    out["quality"] = {"new": [qn.estimate, qn.low, qn.high], "current": [qc.estimate, qc.low,
                                                                         qc.high],
                      "diff": [pair.diff, pair.low, pair.high], "p_value": pair.p_value,
                      "test": pair.test, "discordant": pair.discordant}
    test = (f"{pair.test}, p={pair.p_value:.3g}"
            + (f", discordant {pair.discordant[0]}/{pair.discordant[1]}"
               if pair.discordant else ""))
    q_words = (f"quality NEW {qn.estimate:.3f} ({qn.low:.3f}–{qn.high:.3f}) vs CURRENT "
               f"{qc.estimate:.3f} ({qc.low:.3f}–{qc.high:.3f}); paired difference "
               f"{pair.diff:+.1%} (95% CI {pair.low:+.1%} to {pair.high:+.1%}; {test}) on {n} "
               "items")
    non_inferior = pair.low > -margin
    inferior = pair.high < -margin
    if cost_known:
        cn, cc = float(np.mean(c_new)), float(np.mean(c_cur))
        cd = stats.bootstrap_mean(np.asarray(c_new) - np.asarray(c_cur), seed=seed)
        cheaper_or_equal = cn <= cc * (1 + 1e-9) + 1e-300
        rel = (cn / cc - 1) if cc > 0 else 0.0
        out["cost"] = {"new": cn, "current": cc, "diff": [cd.estimate, cd.low, cd.high],
                       "relative": rel}
        c_words = (f"mean cost NEW ${cn:.3g} vs CURRENT ${cc:.3g} per request ({rel:+.1%}; "
                   f"paired difference 95% CI ${cd.low:+.2g} to ${cd.high:+.2g})")
    else:
        cheaper_or_equal = False
        out["cost"] = None
        c_words = "the cost of some picks is unknown (no stored cost and no estimate)"
    if non_inferior and cheaper_or_equal:
        out.update(promote=True, verdict="promoted",
                   reason=(f"NEW is non-inferior — {q_words}; the lower bound "
                           f"{pair.low:+.1%} is above the −{margin:.1%} margin — and not more "
                           f"expensive — {c_words}."))
    elif non_inferior:
        out.update(promote=False, verdict="more_expensive",
                   reason=(f"NEW is non-inferior in quality ({q_words}) but "
                           f"{'more expensive' if cost_known else 'not shown to be cheaper'}: "
                           f"{c_words}."))
    elif inferior:
        out.update(promote=False, verdict="worse",
                   reason=(f"NEW is worse — {q_words}; the whole interval is below "
                           f"the −{margin:.1%} margin. {c_words[0].upper() + c_words[1:]}."))
    else:
        out.update(promote=False, verdict="undecided",
                   reason=(f"not shown non-inferior — {q_words}; the lower bound "
                           f"{pair.low:+.1%} is not above the −{margin:.1%} margin. At this "
                           f"spread (sd {sd:.2f}) an 80%-power decision needs about {need} "
                           f"items; {c_words}."))
    return out


def promote(new: Path, current: Path, store_url: str, *, since: float | None = None,
            margin: float = 0.02, min_items: int = MIN_ITEMS, knob: Knob | None = None,
            sources: list[str] | None = None, cache_path: Path | None = None,
            seed: int = 0) -> dict[str, Any]:
    """Replay NEW and CURRENT on the store's fresh outcomes; the decision and its figures.

    ``PromoteInputError`` for bad input (an unreadable artifact, a store without the routers'
    models); a refusal is a result (``promote: False``), not an error."""
    from rankgate.store.outcome_store import read_outcomes

    knob = knob or Knob()
    embedders: dict[str | None, Any] = {}
    cand_new = load_candidate(new, cache_path, embedders)
    cand_cur = load_candidate(current, cache_path, embedders)
    models = list(dict.fromkeys([*cand_cur.models, *cand_new.models]))
    through = [artifact.trained_through(c.header) for c in (cand_new, cand_cur)]
    if any(t is None for t in through):
        bad = [str(c.path) for c, t in zip((cand_new, cand_cur), through, strict=True)
               if t is None]
        raise PromoteInputError(f"{', '.join(bad)}: no training time or creation time in the "
                                "header; cannot tell fresh traffic from training data")
    window = [t for t in through if t is not None]
    if since is not None:  # earlier than training only where training prompts are recorded
        window = [*(t for c, t in zip((cand_new, cand_cur), window, strict=True)
                    if c.training is None), since]
    cutoff = max(window)
    engine = _open_store(store_url)
    try:
        rows = read_outcomes(engine, since=float(np.nextafter(cutoff, np.inf)))
    except SQLAlchemyError as e:
        raise PromoteInputError(f"cannot read outcomes from the store: {e}") from None
    finally:
        engine.dispose()
    from rankgate.rank.inputs import merge_answers

    kinds = None if sources is None else set(sources)  # "eval" also matches "eval:builtin"
    rows = [o for o in rows if o.score is not None and (
        kinds is None or o.source in kinds or (o.source or "").split(":", 1)[0] in kinds)]
    rows, merged = merge_answers(rows)  # one score per answer, the most trusted, as in rank
    data, counts = fresh_items(rows, models, [cand_new.training, cand_cur.training])
    counts["answers_scored_more_than_once"] = merged
    result: dict[str, Any] = {
        "new": str(new), "current": str(current), "knob": {k: v for k, v in vars(knob).items()
                                                           if v is not None},
        "window_start": cutoff, "window_start_utc": _when(cutoff), "models": models,
        **counts,
        "calibration": {"new": cand_new.header.get("calibration_status"),
                        "current": cand_cur.header.get("calibration_status")},
    }
    if len(data.item_ids):
        costs = _realised_costs(data, [_align(cand_new, models), _align(cand_cur, models)])
        rows_i = np.arange(len(data.item_ids))
        j_new = replay_choices(cand_new, data, knob)
        j_cur = replay_choices(cand_cur, data, knob)
        q_new, q_cur = data.scores[rows_i, j_new], data.scores[rows_i, j_cur]
        c_new, c_cur = costs[rows_i, j_new], costs[rows_i, j_cur]
        result["picks"] = {"new": _share(j_new, models), "current": _share(j_cur, models),
                           "same_pick": float(np.mean(j_new == j_cur))}
    else:
        q_new = q_cur = c_new = c_cur = np.zeros(0)
    result.update(compare(q_new, q_cur, c_new, c_cur, margin, min_items, seed))
    return result


def _open_store(url: str) -> Engine:
    """An engine on an existing store (a SQLite file that does not exist is an error, never a
    new empty database passing for a store with no traffic)."""
    from rankgate.store.open_store import StoreError, open_store

    try:
        return open_store(url)
    except StoreError as e:
        raise PromoteInputError(f"--store: {e}") from None


def _align(cand: Candidate, models: list[str]) -> np.ndarray:
    """``cand``'s cost estimates in the column order of ``models`` (NaN where it has none)."""
    own = dict(zip(cand.models, cand.costs, strict=True))
    return np.array([own.get(m, np.nan) for m in models], float)


def _share(picks: np.ndarray, models: list[str]) -> dict[str, float]:
    return {m: float(np.mean(picks == j)) for j, m in enumerate(models)} if len(picks) else {}


def install(src: Path, dest: Path) -> Path:
    """Copy ``src`` over ``dest`` atomically (temp file in ``dest``'s directory, fsync,
    rename): a gateway reloading ``dest`` at any moment reads the old file or the new one."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        with Path(src).open("rb") as f, tmp.open("wb") as g:
            shutil.copyfileobj(f, g)
            g.flush()
            os.fsync(g.fileno())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest
