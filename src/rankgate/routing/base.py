"""The routing contract: every router predicts a quality per panel model, one shared policy
turns predictions + costs + the user's knob into a choice.

So cost-awareness, cost/quality curves, explanations and replay are written once, here, and
every router (kNN, matrix factorisation, classifier, ensemble, bandit) gets them for free —
RouteLLM's lesson, generalised from "strong vs weak" to a whole panel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rankgate.outcomes import Outcome, models_of


@dataclass
class OutcomeMatrix:
    """Outcomes pivoted to items × models, the shape routers learn from.

    ``scores[i, j]`` is model j's score on item i (NaN if missing); ``costs[i, j]`` its cost in
    $ (NaN if unknown). ``prompts[i]`` is the text the router sees.
    """

    item_ids: list[str]
    prompts: list[str]
    models: list[str]
    scores: np.ndarray  # float [n_items, n_models], NaN = missing
    costs: np.ndarray  # float [n_items, n_models], NaN = unknown
    categories: list[str | None] = field(default_factory=list)

    @classmethod
    def from_outcomes(cls, outcomes: Sequence[Outcome], models: list[str] | None = None
                      ) -> OutcomeMatrix:
        models = models or models_of(outcomes)
        col = {m: j for j, m in enumerate(models)}
        row: dict[str, int] = {}
        prompts: list[str] = []
        cats: list[str | None] = []
        for o in outcomes:
            if o.model in col and o.prompt_id not in row:
                row[o.prompt_id] = len(prompts)
                prompts.append(o.prompt)
                cats.append(o.category)
        scores = np.full((len(row), len(models)), np.nan)
        costs = np.full((len(row), len(models)), np.nan)
        for o in outcomes:
            if o.model not in col or o.score is None:
                continue
            i, j = row[o.prompt_id], col[o.model]
            scores[i, j] = o.score
            if o.cost_usd is not None:
                costs[i, j] = o.cost_usd
        return cls(list(row), prompts, models, scores, costs, cats)

    def subset(self, idx: Sequence[int] | np.ndarray) -> OutcomeMatrix:
        idx = list(np.asarray(idx, dtype=int))
        return OutcomeMatrix([self.item_ids[i] for i in idx], [self.prompts[i] for i in idx],
                             list(self.models), self.scores[idx], self.costs[idx],
                             [self.categories[i] for i in idx] if self.categories else [])

    def complete(self) -> OutcomeMatrix:
        """Only the items every model answered (replay needs the full row)."""
        keep = np.where(~np.isnan(self.scores).any(axis=1))[0]
        return self.subset(keep)

    def mean_costs(self) -> np.ndarray:
        """Mean $ per request per model (NaN where no cost is known)."""
        with np.errstate(all="ignore"):
            return np.nanmean(self.costs, axis=0) if len(self.costs) else np.full(
                len(self.models), np.nan)


class Router(Protocol):
    """Learns from outcomes; predicts each panel model's quality on new prompts."""

    name: str
    models: list[str]

    def fit(self, data: OutcomeMatrix) -> None: ...

    def predict(self, prompts: list[str]) -> np.ndarray:
        """Predicted quality in [0, 1], shape [len(prompts), len(self.models)]."""
        ...

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able parameters, named NumPy arrays) — everything needed to rebuild it."""
        ...

    @classmethod
    def from_state(cls, embedder: Any, params: dict[str, Any],
                   arrays: dict[str, np.ndarray]) -> Router:
        """The router ``state()`` described, serving with ``embedder`` (artifacts load this
        way; a router that embeds nothing ignores it)."""
        ...


@runtime_checkable
class OnlineRouter(Protocol):
    """A router that keeps learning while it serves (the bandit): it picks with exploration
    and folds in feedback. The gateway checks for this protocol, not for a class."""

    models: list[str]

    def select(self, prompt: str, costs: np.ndarray, knob: Knob) -> tuple[int, np.ndarray]:
        """(index of the model to use, mean predicted quality per model)."""
        ...

    def update(self, prompt: str, model: str, reward: float) -> None:
        """Learn from one verdict (a score in [0, 1]) on ``model``'s answer to ``prompt``."""
        ...


@dataclass(frozen=True)
class Knob:
    """The user's cost/quality preference; exactly one field set (or none: best quality).

    * ``lam`` — willingness to pay: maximise quality − λ·cost ($ per unit of quality);
    * ``min_quality`` — the cheapest model predicted to reach this quality (best if none does);
    * ``max_cost`` — the best predicted quality among models whose estimated cost fits.

    ``confidence`` (only with ``min_quality``) turns the target into a *guarantee*: the
    cheapest model whose lower prediction bound at that confidence clears ``min_quality``
    (bounds from :mod:`rankgate.routing.conformal`), the best model — flagged as unmet — when
    none does.

    ``savings`` — spend at most (1 − savings) × the best model's mean cost: the gateway turns it
    into the λ that does so on the artifact's held-out training predictions
    (:mod:`rankgate.routing.budget`).
    """

    lam: float | None = None
    min_quality: float | None = None
    max_cost: float | None = None
    confidence: float | None = None
    savings: float | None = None

    def __post_init__(self) -> None:
        if sum(v is not None for v in (self.lam, self.min_quality, self.max_cost,
                                       self.savings)) > 1:
            raise ValueError("give at most one of lambda, min_quality, max_cost, savings")
        if self.savings is not None and not (np.isfinite(self.savings)
                                             and 0 <= self.savings < 1):
            raise ValueError("savings is a share of the best model's cost in [0, 1)")
        for name in ("lam", "min_quality", "max_cost"):
            v = getattr(self, name)
            if v is not None and (not np.isfinite(v) or v < 0):
                raise ValueError(f"{name} must be a finite number >= 0")
        if self.min_quality is not None and self.min_quality > 1:
            raise ValueError("min_quality is a quality in [0, 1]")
        if self.confidence is not None:
            if not (np.isfinite(self.confidence) and 0 < self.confidence < 1):
                raise ValueError("confidence must be strictly between 0 and 1")
            if self.min_quality is None:
                raise ValueError("confidence needs min_quality (the quality it guarantees)")


def choose_guaranteed(lower: np.ndarray, pred: np.ndarray, costs: np.ndarray, target: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(chosen index, guarantee met) per row: the cheapest model whose ``lower`` bound [n, m]
    reaches ``target``; where none does, the best predicted model (``pred``) and met = False,
    so a caller can say so instead of pretending."""
    lower = np.atleast_2d(np.asarray(lower, float))
    pred = np.atleast_2d(np.asarray(pred, float))
    c = np.broadcast_to(np.asarray(costs, float), pred.shape).copy()
    if np.isnan(c).any():
        c[np.isnan(c)] = np.nanmax(c) * (1 + 1e-6) + 1e-300 if not np.isnan(c).all() else 0.0
    ok = lower >= target - 1e-12
    cheapest_ok = _cheapest_best(np.where(ok, -c, -np.inf), -lower)
    best = _cheapest_best(pred, c)
    met = ok.any(axis=1)
    return np.where(met, cheapest_ok, best), met


def _cheapest_best(values: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """Per row, the argmax of ``values``; exact (float-noise) ties go to the cheaper model.

    Costs in dollars are ~1e-6, so an additive epsilon tie-break would drown in rounding."""
    best = values.max(axis=1, keepdims=True)
    tol = 1e-9 * np.maximum(1.0, np.abs(np.where(np.isfinite(best), best, 0.0)))
    tied = values >= best - tol
    return np.argmin(np.where(tied, costs, np.inf), axis=1)


def choose(pred: np.ndarray, costs: np.ndarray, knob: Knob) -> np.ndarray:
    """Index of the chosen model for each row of ``pred`` [n, m] given per-model ``costs`` [m]
    (or per-row [n, m]). Unknown costs (NaN) count as slightly dearer than the dearest known
    cost, so a model of unknown price never wins a tie."""
    pred = np.atleast_2d(np.asarray(pred, float))
    c = np.asarray(costs, float)
    c = np.broadcast_to(c, pred.shape).copy()
    if np.isnan(c).any():
        fill = np.nanmax(c) * (1 + 1e-6) + 1e-300 if not np.isnan(c).all() else 0.0
        c[np.isnan(c)] = fill
    if knob.min_quality is not None:
        ok = pred >= knob.min_quality
        cheapest_ok = _cheapest_best(np.where(ok, -c, -np.inf), -pred)
        best = _cheapest_best(pred, c)
        return np.where(ok.any(axis=1), cheapest_ok, best)
    if knob.max_cost is not None:
        ok = c <= knob.max_cost
        chosen = _cheapest_best(np.where(ok, pred, -np.inf), c)
        cheapest = _cheapest_best(-c, -pred)  # nothing fits: the cheapest one
        return np.where(ok.any(axis=1), chosen, cheapest)
    return _cheapest_best(pred - (knob.lam or 0.0) * c, c)


@dataclass(frozen=True)
class Decision:
    """One routing decision, with what is needed to explain it."""

    model: str
    router: str
    predicted_quality: dict[str, float]
    estimated_cost: dict[str, float | None]
    quality_bound: dict[str, float] | None = None  # lower bounds a guarantee was judged on
    guarantee: str | None = None  # "met 0.8@0.9" / "unmet 0.8@0.9: …" when one was asked

    def candidates_header(self) -> str:
        """Compact ``model=quality/cost`` list for the x-rankgate-candidates header."""
        parts = []
        for m, q in self.predicted_quality.items():
            c = self.estimated_cost.get(m)
            parts.append(f"{m}={q:.3f}/{'?' if c is None else f'{c:.2e}'}")
        return ",".join(parts)


def decide(router: Router, prompt: str, costs: np.ndarray, knob: Knob) -> Decision:
    pred = router.predict([prompt])[0]
    j = int(choose(pred[None, :], costs, knob)[0])
    return Decision(
        model=router.models[j], router=router.name,
        predicted_quality={m: float(q) for m, q in zip(router.models, pred, strict=True)},
        estimated_cost={m: (None if np.isnan(c) else float(c))
                        for m, c in zip(router.models, np.asarray(costs, float), strict=True)},
    )
