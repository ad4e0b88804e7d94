"""How far can a judge be trusted? Measure it against gold before ranking with it.

A judge-based ranking (logged traffic, no gold) is only as good as its judge, so the judge is
measured on items that *do* have gold scores (the built-in workload and its shipped outcomes):

* **Grading.** The rubric judge (``scorers.judge.grade``) rates each gold-scored answer from the
  question alone (no target, no reference: what it sees on live traffic). Its pass is a rating
  ≥ ``THRESHOLD`` (6), chosen *a priori* because (6−1)/9 ≥ 0.5 is the same cut as gold's pass
  (score ≥ 0.5). Reported: agreement (Wilson 95% CI) beside what always-pass/always-fail would
  score, Cohen's κ and Spearman/Kendall between rating and gold score (bootstrap over items,
  since an item's answers are not independent); the best threshold only as a labelled
  in-sample figure.
* **Pairwise.** ``scorers.judge.compare`` (both orders, disagreement = tie) on pairs whose gold
  scores differ: share of decisive verdicts that pick the gold winner, and the tie rate.
  **Position bias**: P(the answer shown first wins) over decisive single-order verdicts (0.5 =
  none). **Length bias**: P(the longer answer wins) over decisive single-order verdicts on pairs
  whose gold scores are *equal* (bootstrap over pairs).

Unparsable verdicts are counted and never scored; a failed call is counted as an error. Every
judge answer goes through the evaluation ``ResponseCache``, so an interrupted or repeated
calibration costs nothing for what it already asked. ``judge_notes`` is what ``rank`` prints
beside a judge-based ranking.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from rankgate.backends.base import BackendError, Result, Usage
from rankgate.eval.scorers.base import Item
from rankgate.outcomes import Outcome
from rankgate.rank.stats import Interval, wilson

if TYPE_CHECKING:
    import numpy as np

    from rankgate.backends.base import Backend
    from rankgate.eval.runner import ResponseCache

THRESHOLD = 6  # judge pass: rating >= 6, i.e. (rating - 1) / 9 >= 0.5 (a priori, see above)
GOLD_PASS = 0.5  # gold pass: score >= 0.5
N_BOOT = 2000
SMALL = 50  # fewer observations than this: the figure comes with a "small sample" note


class CalibrationError(ValueError):
    """Input that cannot be calibrated on (no responses, no matching items); one line."""


# ---------------------------------------------------------------------------- verdict tables
@dataclass(frozen=True)
class GradeRow:
    """One gold-scored answer and the judge's rating of it (None: unparsable or failed)."""

    prompt_id: str
    model: str
    category: str | None
    gold: float
    rating: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class PairRow:
    """Two answers to one item and the judge's verdict in each order, as ``PairVerdict``
    gives them: ``first`` with a shown first, ``second`` with b shown first mapped back to
    a/b labels ('A', 'B', 'C' tie, None unparsable)."""

    prompt_id: str
    category: str | None
    a: str
    b: str
    gold_a: float
    gold_b: float
    len_a: int
    len_b: int
    first: str | None = None
    second: str | None = None
    error: str | None = None


# ------------------------------------------------------------------------------- statistics
def _iv(i: Interval, n: int) -> dict[str, Any]:
    def num(v: float) -> float | None:
        return None if v != v else round(float(v), 6)  # NaN -> null

    return {"estimate": num(i.estimate), "low": num(i.low), "high": num(i.high),
            "method": i.method, "n": n}


def _boot_iv(estimate: float | None, samples: np.ndarray, n: int, method: str
             ) -> dict[str, Any]:
    import numpy as np

    ok = samples[np.isfinite(samples)]
    if estimate is None or len(ok) == 0:
        return {"estimate": estimate, "low": None, "high": None, "method": method, "n": n}
    return {"estimate": round(float(estimate), 6), "low": round(float(np.quantile(ok, 0.025)), 6),
            "high": round(float(np.quantile(ok, 0.975)), 6), "method": method, "n": n}


def cohen_kappa(tp: float, fp: float, fn: float, tn: float) -> float | None:
    """κ of judge pass vs gold pass from the confusion counts; None when chance agreement is
    total (everything in one class: κ is undefined there)."""
    n = tp + fp + fn + tn
    if n == 0:
        return None
    po = (tp + tn) / n
    pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n)
    return None if pe >= 1 else (po - pe) / (1 - pe)


def _kappa_vec(cells: np.ndarray) -> np.ndarray:
    import numpy as np

    tp, fp, fn, tn = cells.T
    n = cells.sum(axis=1)
    po = (tp + tn) / n
    pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(pe < 1, (po - pe) / (1 - pe), np.nan)


def grading_stats(rows: list[GradeRow], threshold: int = THRESHOLD, n_boot: int = N_BOOT,
                  seed: int = 0) -> dict[str, Any]:
    """Agreement of the judge's pass (rating ≥ ``threshold``) with gold's pass, with
    intervals; rows without a rating are counted (unparsable/errors), never scored."""
    import numpy as np
    from scipy import stats as sps

    scored = [r for r in rows if r.rating is not None]
    out: dict[str, Any] = {
        "threshold": threshold,
        "threshold_rule": f"judge pass = rating >= {threshold} (chosen a priori: "
                          f"({threshold}-1)/9 >= {GOLD_PASS}, the same cut as gold pass = "
                          f"score >= {GOLD_PASS})",
        "n": len(scored), "answers": len(rows),
        "unparsable": sum(r.rating is None and r.error is None for r in rows),
        "errors": sum(r.error is not None for r in rows),
    }
    n = len(scored)
    if n == 0:
        return out
    gold = np.array([r.gold >= GOLD_PASS for r in scored])
    rating = np.array([r.rating for r in scored], dtype=float)
    judged = rating >= threshold
    tp, fp = int(np.sum(judged & gold)), int(np.sum(judged & ~gold))
    fn, tn = int(np.sum(~judged & gold)), int(np.sum(~judged & ~gold))
    gold_rate = float(gold.mean())
    out["confusion"] = {"judge_pass_gold_pass": tp, "judge_pass_gold_fail": fp,
                        "judge_fail_gold_pass": fn, "judge_fail_gold_fail": tn}
    out["agreement"] = _iv(wilson(tp + tn, n), n)
    out["base_rates"] = {"gold_pass_rate": round(gold_rate, 6),
                         "always_pass_agreement": round(gold_rate, 6),
                         "always_fail_agreement": round(1 - gold_rate, 6),
                         "judge_pass_rate": round(float(judged.mean()), 6)}
    # bootstrap over items: one item's answers share its difficulty
    items = sorted({r.prompt_id for r in scored})
    index = {pid: i for i, pid in enumerate(items)}
    item_of = np.array([index[r.prompt_id] for r in scored])
    cells = np.zeros((len(items), 4))
    for k, cell in enumerate((judged & gold, judged & ~gold, ~judged & gold, ~judged & ~gold)):
        np.add.at(cells[:, k], item_of, cell.astype(float))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(items), size=(n_boot, len(items)))
    out["kappa"] = _boot_iv(cohen_kappa(tp, fp, fn, tn), _kappa_vec(cells[picks].sum(axis=1)),
                            n, "bootstrap over items")
    gold_scores = np.array([r.gold for r in scored])
    members = [np.flatnonzero(item_of == i) for i in range(len(items))]
    n_corr = min(n_boot, 1000)
    for name, fn_corr in (("spearman", sps.spearmanr), ("kendall", sps.kendalltau)):
        est = fn_corr(rating, gold_scores)[0] if len(set(rating)) > 1 and len(
            set(gold_scores)) > 1 else float("nan")
        boots = np.empty(n_corr)
        with np.errstate(all="ignore"):
            for b in range(n_corr):
                idx = np.concatenate([members[i] for i in picks[b]])
                x, y = rating[idx], gold_scores[idx]
                boots[b] = fn_corr(x, y)[0] if x.min() < x.max() and y.min() < y.max() \
                    else np.nan
        out[name] = _boot_iv(None if est != est else float(est), boots, n,
                             "bootstrap over items")
    agree_at = {t: float(np.mean((rating >= t) == gold)) for t in range(1, 11)}
    best = max(agree_at, key=lambda t: (agree_at[t], -abs(t - threshold)))
    out["best_threshold_in_sample"] = {
        "threshold": best, "agreement": round(agree_at[best], 6),
        "note": "chosen on these same answers: optimistic, not a measured figure"}
    out["threshold_cross_validated"] = _cross_validated(rating, gold, item_of, len(items),
                                                        threshold, seed)
    out["rating_histogram"] = {str(k): int(np.sum(rating == k)) for k in range(1, 11)}
    out["per_model"] = _groups(scored, lambda r: r.model, threshold)
    out["per_category"] = _groups(scored, lambda r: r.category or "(none)", threshold)
    return out


def _best_threshold(rating: np.ndarray, gold: np.ndarray, prior: int) -> int:
    import numpy as np

    agree = {t: float(np.mean((rating >= t) == gold)) for t in range(1, 11)}
    return max(agree, key=lambda t: (agree[t], -abs(t - prior)))


def _cross_validated(rating: np.ndarray, gold: np.ndarray, item_of: np.ndarray, n_items: int,
                     prior: int, seed: int, folds: int = 5) -> dict[str, Any]:
    """Agreement when the threshold is learnt: 5 folds of items, each fold judged with the
    threshold that agrees best on the other four (an honest figure for a tuned threshold,
    unlike the in-sample best)."""
    import numpy as np

    if n_items < folds:
        return {"estimate": None, "low": None, "high": None, "method": "wilson", "n": 0,
                "note": f"fewer than {folds} items"}
    fold_of_item = np.random.default_rng(seed).permutation(n_items) % folds
    fold = fold_of_item[item_of]
    right = 0
    chosen = []
    for f in range(folds):
        t = _best_threshold(rating[fold != f], gold[fold != f], prior)
        chosen.append(t)
        right += int(np.sum((rating[fold == f] >= t) == gold[fold == f]))
    res = _iv(wilson(right, len(rating)), len(rating))
    res["thresholds"] = chosen
    res["note"] = f"{folds}-fold over items: each fold judged with the threshold learnt on the rest"
    return res


def _groups(rows: list[GradeRow], key: Callable[[GradeRow], str], threshold: int
            ) -> dict[str, Any]:
    """Per model/category: agreement with its interval, gold vs judge pass rates and mean
    scores (a judge lenient with one model shifts it in a judge-based ranking)."""
    by: dict[str, list[GradeRow]] = defaultdict(list)
    for r in rows:
        by[key(r)].append(r)
    res = {}
    for k, rs in sorted(by.items()):
        agree = sum(((r.rating or 0) >= threshold) == (r.gold >= GOLD_PASS) for r in rs)
        res[k] = {"agreement": _iv(wilson(agree, len(rs)), len(rs)),
                  "gold_pass_rate": round(sum(r.gold >= GOLD_PASS for r in rs) / len(rs), 6),
                  "judge_pass_rate": round(sum((r.rating or 0) >= threshold for r in rs)
                                           / len(rs), 6),
                  # what a judge-based leaderboard ranks by: mean (rating - 1) / 9
                  "gold_mean_score": round(sum(r.gold for r in rs) / len(rs), 6),
                  "judge_mean_score": round(sum(((r.rating or 1) - 1) / 9 for r in rs)
                                            / len(rs), 6)}
    return res


def _winner(v: str | None) -> str | None:
    return {"A": "a", "B": "b"}.get(v or "")


def pairwise_stats(rows: list[PairRow], n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any]:
    """Accuracy against gold winners, tie rate, position and length bias (see module doc)."""
    import numpy as np

    differ = [r for r in rows if r.gold_a != r.gold_b]
    equal = [r for r in rows if r.gold_a == r.gold_b]
    out: dict[str, Any] = {
        "pairs": len(rows), "pairs_gold_differs": len(differ), "pairs_gold_equal": len(equal),
        "errors": sum(r.error is not None for r in rows),
        "unparsable_verdicts": sum((r.first is None) + (r.second is None) for r in rows
                                   if r.error is None),
    }
    # combined verdicts (what `rankgate judge` votes): only pairs with both orders parsed
    both = [r for r in differ if r.error is None and r.first and r.second]
    decisive = [r for r in both if r.first == r.second and r.first != "C"]
    right = sum(_winner(r.first) == ("a" if r.gold_a > r.gold_b else "b") for r in decisive)
    out["accuracy"] = _iv(wilson(right, len(decisive)), len(decisive))
    out["tie_rate"] = _iv(wilson(len(both) - len(decisive), len(both)), len(both))
    # single-order verdicts: (shown first wins?) for a shown first, then b shown first
    first_wins = shown = 0
    for r in rows:
        if r.error is not None:
            continue
        for verdict, first_label in ((r.first, "a"), (r.second, "b")):
            w = _winner(verdict)
            if w is not None:
                shown += 1
                first_wins += w == first_label
    out["position_bias"] = _iv(wilson(first_wins, shown), shown)
    # length bias on equal-gold pairs, bootstrap over pairs (a pair's two verdicts share it)
    per_pair = []
    for r in equal:
        if r.error is not None or r.len_a == r.len_b:
            continue
        longer = "a" if r.len_a > r.len_b else "b"
        ws = [_winner(v) for v in (r.first, r.second)]
        ws = [w for w in ws if w is not None]
        if ws:
            per_pair.append((sum(w == longer for w in ws), len(ws)))
    if per_pair:
        arr = np.array(per_pair, dtype=float)
        rng = np.random.default_rng(seed)
        picks = arr[rng.integers(0, len(arr), size=(n_boot, len(arr)))].sum(axis=1)
        est = arr[:, 0].sum() / arr[:, 1].sum()
        out["length_bias"] = _boot_iv(est, picks[:, 0] / picks[:, 1], int(arr[:, 1].sum()),
                                      "bootstrap over pairs")
        out["length_bias"]["pairs"] = len(per_pair)
    else:
        out["length_bias"] = {"estimate": None, "low": None, "high": None,
                              "method": "bootstrap over pairs", "n": 0, "pairs": 0}
    return out


def small_sample_notes(report: dict[str, Any]) -> list[str]:
    """Figures measured on fewer than ``SMALL`` observations: their intervals are wide."""
    notes = []
    for section, key in (("grading", "agreement"), ("pairwise", "accuracy"),
                         ("pairwise", "position_bias"), ("pairwise", "length_bias")):
        fig = report.get(section, {}).get(key)
        if fig is not None and 0 < fig["n"] < SMALL:
            notes.append(f"{section} {key.replace('_', ' ')}: n={fig['n']} < {SMALL}, "
                         "small sample, the interval is wide")
    return notes


# ---------------------------------------------------------------------------- what to judge
def gold_answers(outcomes: Iterable[Outcome]) -> dict[tuple[str, str], Outcome]:
    """(item, model) → the gold-scored answer: scored, no error, a response, not itself a
    judge's outcome. A later line wins (a resumed run's retry replaces its error)."""
    best: dict[tuple[str, str], Outcome] = {}
    for o in outcomes:
        if (o.score is not None and o.error is None and o.response is not None
                and not (o.source or "").startswith("judge")):
            best[(o.prompt_id, o.model)] = o
    return best


def select_items(items: list[Item], answers: dict[tuple[str, str], Outcome], limit: int,
                 seed: int) -> list[Item]:
    """Up to ``limit`` items with at least one gold answer, a seeded sample stratified by
    category and spread across categories (a smaller ``limit`` picks a subset of a larger one,
    so raising it later reuses every cached verdict)."""
    from rankgate.eval import datasets

    have = {pid for pid, _ in answers}
    pool = [it for it in items if it.id in have]
    return datasets.interleave(datasets.select(pool, sample=limit, seed=seed), seed)


def _spread(pairs: list[PairRow], rng: random.Random) -> list[PairRow]:
    """Seeded shuffle, then round-robin across categories."""
    groups: dict[str | None, list[PairRow]] = defaultdict(list)
    for p in pairs:
        groups[p.category].append(p)
    lists = [groups[k] for k in sorted(groups, key=str)]
    for g in lists:
        rng.shuffle(g)
    out: list[PairRow] = []
    while any(lists):
        for g in lists:
            if g:
                out.append(g.pop())
    return out


def select_pairs(items: list[Item], answers: dict[tuple[str, str], Outcome], models: list[str],
                 n_differ: int, n_equal: int, seed: int) -> list[PairRow]:
    """``n_differ`` pairs whose gold scores differ (accuracy, ties, position bias) and
    ``n_equal`` whose gold scores are equal but lengths are not (length bias), from
    ``items``; which model is 'a' is a coin flip (the judge sees both orders anyway)."""
    rng = random.Random(seed)
    differ: list[PairRow] = []
    equal: list[PairRow] = []
    for it in items:
        present = [m for m in models if (it.id, m) in answers]
        for i, x in enumerate(present):
            for y in present[i + 1:]:
                a, b = (x, y) if rng.random() < 0.5 else (y, x)
                oa, ob = answers[(it.id, a)], answers[(it.id, b)]
                assert oa.score is not None and ob.score is not None and oa.response is not \
                    None and ob.response is not None
                row = PairRow(it.id, it.category, a, b, oa.score, ob.score, len(oa.response),
                              len(ob.response))
                if oa.score != ob.score:
                    differ.append(row)
                elif row.len_a != row.len_b:
                    equal.append(row)
    return _spread(differ, rng)[:n_differ] + _spread(equal, rng)[:n_equal]


# ------------------------------------------------------------------------------ the judging
class NotCached(Exception):
    """A ``cached_only`` judge was asked something it has not answered yet."""


class CachedJudge:
    """The judge backend with every answer kept in the evaluation ``ResponseCache`` (keyed on
    the model's identity + the request), so re-running a calibration asks nothing twice.
    It is what ``grade``/``compare`` receive: they only call ``complete`` and read ``spec``.
    ``cached_only`` never calls the model (``NotCached`` on a miss): a look at what a long
    calibration, possibly still running in another process, has judged so far.
    ``max_tokens`` caps the judge's answers as ``rankgate judge --store --max-tokens`` does
    (calibrate the judge with the budget it will judge with)."""

    def __init__(self, backend: Backend, cache: ResponseCache, cached_only: bool = False,
                 max_tokens: int | None = None) -> None:
        self.backend = backend
        self.cached_only = cached_only
        self.max_tokens = max_tokens
        self.spec = backend.spec
        self.capabilities = backend.capabilities
        self.context_window = backend.context_window
        self.cache = cache
        self.calls = 0  # sent to the model
        self.hits = 0  # answered from the cache
        ident = backend.spec.model_dump(include={"id", "backend", "path", "bundled",
                                                 "base_url", "upstream_model"})
        self._model_key = "judge:" + orjson.dumps(ident, option=orjson.OPT_SORT_KEYS).decode()

    async def complete(self, kind: str, payload: dict[str, Any]) -> Result:
        from rankgate.eval.runner import ResponseCache

        if self.max_tokens is not None:
            payload = {**payload, "max_tokens": self.max_tokens}
        key = ResponseCache.key(self._model_key, {"kind": kind, **payload})
        hit = self.cache.get(key)
        if hit is not None:
            self.hits += 1
            return Result({"choices": [{"message": {"role": "assistant",
                                                    "content": hit["response"]}}]}, Usage(), 0.0)
        if self.cached_only:
            raise NotCached(key)
        result = await self.backend.complete(kind, payload)  # type: ignore[arg-type]
        self.calls += 1
        content = (result.body["choices"][0].get("message") or {}).get("content") or ""
        self.cache.put(key, self.spec.id, {"response": content})
        return result


@dataclass
class Counts:
    """What the progress bar shows."""

    total: int
    done: int = 0
    graded: int = 0
    compared: int = 0
    unparsable: int = 0
    errors: int = 0
    calls: int = 0
    cached: int = 0
    skipped: int = 0  # not in the cache, with ``cached_only``


async def judge_all(judge: CachedJudge, questions: dict[str, str], grades: list[GradeRow],
                    pairs: list[PairRow], answers: dict[tuple[str, str], Outcome],
                    concurrency: int = 1, on_progress: Callable[[Counts], None] | None = None
                    ) -> tuple[list[GradeRow], list[PairRow], Counts]:
    """Grade every answer and compare every pair (``concurrency`` at once); a failed call
    becomes the row's error, an unparsable verdict stays None."""
    from dataclasses import replace

    from rankgate.eval.scorers.judge import compare, grade

    counts = Counts(total=len(grades) + len(pairs))
    graded: list[GradeRow | None] = [None] * len(grades)
    compared: list[PairRow | None] = [None] * len(pairs)
    queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    for i in range(len(grades)):
        queue.put_nowait(("grade", i))
    for i in range(len(pairs)):
        queue.put_nowait(("pair", i))

    async def one(kind: str, i: int) -> None:
        if kind == "grade":
            g = grades[i]
            answer = answers[(g.prompt_id, g.model)].response or ""
            try:
                s = await grade(judge, questions[g.prompt_id], answer)  # type: ignore[arg-type]
                row = replace(g, rating=None if s.extracted is None else int(s.extracted))
            except NotCached:
                counts.skipped += 1
                return
            except BackendError as e:
                row = replace(g, error=f"{e.code}: {e.message}")
            graded[i] = row
            counts.graded += 1
            counts.unparsable += row.rating is None and row.error is None
            counts.errors += row.error is not None
            return
        p = pairs[i]
        ra = answers[(p.prompt_id, p.a)].response or ""
        rb = answers[(p.prompt_id, p.b)].response or ""
        try:
            v = await compare(judge, questions[p.prompt_id], ra, rb)  # type: ignore[arg-type]
            prow = replace(p, first=v.first, second=v.second)
            counts.unparsable += (v.first is None) + (v.second is None)
        except NotCached:
            counts.skipped += 1
            return
        except BackendError as e:
            prow = replace(p, error=f"{e.code}: {e.message}")
            counts.errors += 1
        compared[i] = prow
        counts.compared += 1

    async def worker() -> None:
        while True:
            try:
                kind, i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await one(kind, i)
            counts.done += 1
            counts.calls, counts.cached = judge.calls, judge.hits
            if on_progress:
                on_progress(counts)

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    return ([g for g in graded if g is not None], [p for p in compared if p is not None],
            counts)


@dataclass
class Plan:
    """What a calibration will judge; built and validated before any model is opened."""

    items: list[Item]
    grades: list[GradeRow]
    pairs: list[PairRow]
    answers: dict[tuple[str, str], Outcome]
    models: list[str]
    outcomes_sha256: str
    meta: dict[str, Any] = field(default_factory=dict)


def rotate_answers(items: list[Item], answers: dict[tuple[str, str], Outcome],
                   models: list[str], per_item: int | None) -> list[tuple[Item, str]]:
    """(item, model) answers to grade: all of an item's, or ``per_item`` of them taken in
    turn (item k starts at model k mod M), so every model is graded about equally often."""
    out = []
    for k, it in enumerate(items):
        present = [m for m in models if (it.id, m) in answers]
        if per_item is not None and present:
            start = k % len(present)
            present = (present[start:] + present[:start])[:per_item]
        out.extend((it, m) for m in present)
    return out


def plan(outcomes_path: Path, items: list[Item], limit: int, n_pairs: int, n_length_pairs: int,
         seed: int, per_item: int | None = None) -> Plan:
    """Read the outcomes, pick items, the answers to grade (all, or ``per_item`` per item) and
    the pairs; ``CalibrationError`` (one line) when the file has no gold-scored responses or
    none of them is an item of the workload."""
    from rankgate.outcomes import OutcomeError, models_of, read_jsonl

    try:
        data = outcomes_path.read_bytes()
        rows = read_jsonl(outcomes_path)
    except OSError as e:
        raise CalibrationError(f"{outcomes_path}: cannot read: {e.strerror}") from None
    except OutcomeError as e:
        raise CalibrationError(str(e)) from None
    if not rows:
        raise CalibrationError(f"{outcomes_path}: holds no outcomes")
    answers = gold_answers(rows)
    if not answers:
        raise CalibrationError(
            f"{outcomes_path}: no outcome has both a gold score and a response; calibration "
            "grades the models' answers, so it needs outcomes written by `rankgate eval` "
            "(which keeps responses)")
    ids = {it.id for it in items}
    answers = {k: o for k, o in answers.items() if k[0] in ids}
    if not answers:
        raise CalibrationError(f"{outcomes_path}: none of its items is in the workload "
                               "(check --workload)")
    models = [m for m in models_of(rows) if any(k[1] == m for k in answers)]
    chosen = select_items(items, answers, limit, seed)
    grades = [GradeRow(it.id, m, it.category, float(answers[(it.id, m)].score or 0.0))
              for it, m in rotate_answers(chosen, answers, models, per_item)]
    pairs = select_pairs(chosen, answers, models, n_pairs, n_length_pairs, seed)
    return Plan(chosen, grades, pairs, answers, models, hashlib.sha256(data).hexdigest())


def report(judge_id: str, p: Plan, grades: list[GradeRow], pairs: list[PairRow],
           counts: Counts | None = None, wall_s: float | None = None, seed: int = 0
           ) -> dict[str, Any]:
    """The calibration file's content: figures with intervals, provenance, and the raw
    verdict tables (so anyone can recompute a figure)."""
    rep: dict[str, Any] = {
        "judge": judge_id,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **p.meta,
        "outcomes_sha256": p.outcomes_sha256,
        "models": p.models, "seed": seed, "items": len(p.items),
        "categories": dict(Counter(it.category or "(none)" for it in p.items)),
        "judge_sees": "the question only (no gold target, no reference answer)",
        "grading": grading_stats(grades, seed=seed),
        "pairwise": pairwise_stats(pairs, seed=seed),
    }
    if counts is not None:
        rep["judge_calls"] = {"made": counts.calls, "from_cache": counts.cached}
        if counts.skipped:
            rep["partial"] = {"planned": counts.total, "judged": counts.total - counts.skipped,
                              "note": "--cached-only: only what the cache held was reported"}
    if wall_s is not None:
        rep["wall_s"] = round(wall_s, 1)
    rep["notes"] = small_sample_notes(rep)
    rep["verdicts"] = {"grades": [asdict(g) for g in grades],
                       "pairs": [asdict(x) for x in pairs]}
    return rep


def calibrate(p: Plan, judge_id: str, panel: Any, settings: Any,
              on_progress: Callable[[Counts], None] | None = None, seed: int = 0,
              cached_only: bool = False, max_tokens: int | None = None) -> dict[str, Any]:
    """Open the judge, judge the plan through the cache, and return the report
    (``cached_only``: from the cache alone, see ``CachedJudge``)."""
    from rankgate.eval.runner import ResponseCache
    from rankgate.runtime import open_panel

    questions = {it.id: it.prompt_text for it in p.items}
    t0 = time.perf_counter()

    async def main() -> tuple[list[GradeRow], list[PairRow], Counts]:
        rt = open_panel(panel, settings, [judge_id])
        cache = ResponseCache(settings.home / "cache" / "responses.sqlite")
        try:
            judge = CachedJudge(rt.backends[judge_id], cache, cached_only, max_tokens)
            return await judge_all(judge, questions, p.grades, p.pairs, p.answers,
                                   rt.concurrency(judge_id, 8), on_progress)
        finally:
            await rt.aclose()
            cache.close()

    grades, pairs, counts = asyncio.run(main())
    return report(judge_id, p, grades, pairs, counts, time.perf_counter() - t0, seed)


# --------------------------------------------------------------------- stored calibrations
def default_path(home: Path, judge_id: str) -> Path:
    """Where ``rank`` looks for ``judge_id``'s calibration."""
    return home / "judge_calibration" / (re.sub(r"[^A-Za-z0-9._+@-]", "_", judge_id) + ".json")


def write_report(rep: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(orjson.dumps(rep, option=orjson.OPT_INDENT_2))
    tmp.replace(out)


def judge_note(judge_id: str, home: Path) -> str:
    """One line on how far ``judge_id`` agrees with gold, or how to measure it."""
    path = default_path(home, judge_id)
    try:
        rep = orjson.loads(path.read_bytes())
        g = rep["grading"]["agreement"]
        n = rep["grading"]["n"]
        pct = lambda v: f"{100 * v:.0f}"  # noqa: E731
        line = (f"judge {judge_id}: agrees with gold on {pct(g['estimate'])}% "
                f"[{pct(g['low'])}, {pct(g['high'])}] of {n} graded answers")
        k = rep["grading"].get("kappa") or {}
        if k.get("estimate") is not None and k.get("low") is not None:
            line += f" (κ {k['estimate']:.2f} [{k['low']:.2f}, {k['high']:.2f}])"
        cap = rep.get("judge_max_tokens")
        line += f" (calibrated {rep['created'][:10]}" + (
            f", answers capped at {cap} tokens)" if isinstance(cap, int) else ")")
        pb = rep.get("pairwise", {}).get("position_bias") or {}
        if pb.get("n"):
            line += f"; position bias {pb['estimate']:.2f} [{pb['low']:.2f}, {pb['high']:.2f}]"
        return line
    except FileNotFoundError:
        pass
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as e:
        return f"judge {judge_id}: its calibration file {path} is unreadable ({e}); re-run " \
               f"rankgate judge calibrate --judge {judge_id}"
    return f"judge {judge_id} is not calibrated: run rankgate judge calibrate --judge {judge_id}"


def _judge_id(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict):
        return _judge_id(value.get("model") or value.get("id"))
    return None


def judges_used(outcomes: Iterable[Outcome], *, votes_file: Path | None = None,
                votes: Iterable[Any] = (), engine: Any = None,
                since: float | str | None = None) -> list[str]:
    """Judge ids behind a ranking, first seen first: judge-sourced outcomes
    (``extra["judge"]``: an id, or ``{"model": id}``), a votes file's ``judge`` fields, votes
    that carry a ``judge`` (``StoredVote``, dicts) and — when some of ``votes`` are judge votes
    without one (``bradley_terry.Vote``) and ``engine`` is the store they came from — the
    store's judge votes since ``since``."""
    seen: dict[str, None] = {}

    def add(value: Any) -> None:
        if (j := _judge_id(value)) is not None:
            seen.setdefault(j, None)

    for o in outcomes:
        if (o.source or "").startswith("judge"):
            add(o.extra.get("judge"))
    if votes_file is not None and votes_file.is_file():
        for line in votes_file.read_bytes().splitlines():
            if line.strip():
                try:
                    d = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # the ranking itself reports a bad votes file
                add(d.get("judge") if isinstance(d, dict) else None)
    anonymous = False
    for v in votes:
        j = v.get("judge") if isinstance(v, dict) else getattr(v, "judge", None)
        source = v.get("source") if isinstance(v, dict) else getattr(v, "source", None)
        add(j)
        anonymous |= j is None and source == "judge"
    if anonymous and engine is not None:
        from rankgate.store.vote_store import read_votes

        if isinstance(since, str):  # `rank --since 7d`, already validated by rank
            from rankgate.time_spec import parse_time

            since = parse_time(since)

        for sv in read_votes(engine, since=since, sources=["judge"]):
            add(sv.judge)
    return list(seen)


def judge_notes(outcomes: Iterable[Outcome], home: Path, *, votes_file: Path | None = None,
                votes: Iterable[Any] = (), engine: Any = None,
                since: float | str | None = None) -> list[str]:
    """The lines ``rank`` prints beside a judge-based ranking (none for a gold-only one);
    arguments as ``judges_used``."""
    return [judge_note(j, home) for j in judges_used(outcomes, votes_file=votes_file,
                                                     votes=votes, engine=engine, since=since)]
