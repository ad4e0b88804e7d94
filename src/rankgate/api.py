"""The Python API: evaluate, rank and route from a notebook or a script, without a server.

Three calls cover the loop, each the library behind a CLI command:

* ``evaluate(workload, panel=...)`` — ``rankgate eval``: every model on every item, scored;
  returns the outcomes.
* ``rank(outcomes)`` — ``rankgate rank --json``: the leaderboard object (accuracy with
  intervals, paired tests, Bradley–Terry, Pareto frontier, a recommendation).
* ``Router.load(path).choose(prompt_or_messages, min_quality=...)`` — what ``model="auto"``
  decides in the gateway, for one prompt, with the predicted quality and estimated cost of
  every candidate.

Functions take plain values (paths, lists of ``Outcome``, prompts or OpenAI messages) and
return plain values; nothing here starts a server or keeps global state. ``evaluate`` runs its
own event loop, in a worker thread when the caller already has one (Jupyter does).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from rankgate.config import Settings
from rankgate.outcomes import Outcome, read_jsonl
from rankgate.panel import Panel, load_panel

if TYPE_CHECKING:
    from rankgate.eval.scorers.base import Item
    from rankgate.routing.base import Decision

T = TypeVar("T")
OutcomesLike = Sequence[Outcome] | str | Path


def _outcomes(source: OutcomesLike) -> list[Outcome]:
    """Outcomes as given, or read from a JSONL path; ``"embedded"`` is the shipped
    evaluation of the embedded panel (as on the command line)."""
    if isinstance(source, str | Path):
        path = Path(source)
        if str(source) == "embedded" and not path.exists():
            path = Path(str(resources.files("rankgate") / "data" / "embedded_outcomes.jsonl"))
        return read_jsonl(path)
    return list(source)


def _panel(panel: Panel | str | Path | None) -> Panel:
    return panel if isinstance(panel, Panel) else load_panel(panel)


def _run(fn: Callable[[], T]) -> T:
    """``fn()`` here, or in a worker thread when this thread runs an event loop (a notebook),
    because ``fn`` calls ``asyncio.run``."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn).result()


def evaluate(workload: str | Path | Sequence[Item] = "starter", *,
             panel: Panel | str | Path | None = None, models: Sequence[str] | None = None,
             out: str | Path | None = None, limit: int | None = None,
             sample: int | None = None, seed: int = 0,
             categories: Sequence[str] | None = None, max_tokens: int | None = None,
             temperature: float = 0.0, cache: bool = True, judge: str | None = None,
             settings: Settings | None = None) -> list[Outcome]:
    """Run ``models`` of ``panel`` (default: every model of the embedded panel) over a
    workload and return one scored outcome per (item, model).

    ``workload`` is a JSONL path, a built-in name (``starter``, ``humaneval``, ``builtin``) or
    a list of items. With ``out`` the outcomes are also appended to that JSONL file, and a
    rerun resumes (pairs already in it are not run again; all of them are returned).
    ``settings`` defaults to ``Settings()`` (``RANKGATE_*`` variables)."""
    from rankgate.eval import datasets
    from rankgate.eval.runner import RunConfig
    from rankgate.eval.runner import evaluate as run

    settings = settings or Settings()
    p = _panel(panel)
    wanted = list(models) if models is not None else p.ids
    unknown = [m for m in [*wanted, *([judge] if judge else [])] if m not in p]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)}; panel has: "
                         f"{', '.join(p.ids)}")
    items = datasets.load(str(workload)) if isinstance(workload, str | Path) \
        else list(workload)
    items = datasets.select(items, limit=limit, sample=sample, seed=seed,
                            categories=list(categories) if categories else None)
    if not items:
        raise ValueError("the workload has no items (after limit/sample/categories)")
    cfg = RunConfig(temperature=temperature, max_tokens=max_tokens)
    with tempfile.TemporaryDirectory(prefix="rankgate-eval-") as tmp:
        path = Path(out) if out is not None else Path(tmp) / "outcomes.jsonl"
        _run(lambda: run(items, wanted, path, panel=p, settings=settings, cfg=cfg,
                         use_cache=cache, judge=judge))
        ids, chosen = {i.id for i in items}, set(wanted)
        return [o for o in read_jsonl(path) if o.prompt_id in ids and o.model in chosen]


def rank(outcomes: OutcomesLike, *, margin: float = 0.02) -> dict[str, Any]:
    """The leaderboard of ``outcomes`` (a list, a JSONL path, or ``"embedded"``): the object
    ``rankgate rank --json`` prints — per model accuracy with a 95% interval, cost, latency;
    paired tests; Bradley–Terry ratings; the Pareto frontier; a recommendation. ``margin`` is
    the accuracy within which a cheaper model counts as as good."""
    from rankgate.rank.leaderboard import leaderboard

    rows = _outcomes(outcomes)
    if not rows:
        raise ValueError("no outcomes to rank")
    return leaderboard(rows, None, margin)


@dataclass(frozen=True)
class Choice:
    """What ``Router.choose`` decided: the model, and why (every candidate's predicted
    quality and estimated $ per request; None where the cost is unknown)."""

    model: str
    router: str
    predicted_quality: dict[str, float]
    estimated_cost_usd: dict[str, float | None]
    quality_bound: dict[str, float] | None = None  # lower bounds, when a guarantee was asked
    guarantee: str | None = None  # "met 0.8@0.9" / "unmet 0.8@0.9: …"

    @classmethod
    def _of(cls, d: Decision) -> Choice:
        return cls(d.model, d.router, dict(d.predicted_quality), dict(d.estimated_cost),
                   dict(d.quality_bound) if d.quality_bound else None, d.guarantee)


class Router:
    """A trained router artifact (``rankgate route train --out router.npz``), for choosing a
    model per prompt in-process, exactly as the gateway's ``model="auto"`` would.

    The artifact is served with the embedder it was trained with (its name is in the
    artifact); ``home`` is where that embedder caches vectors (default: ``RANKGATE_HOME``).
    """

    def __init__(self, router: Any, costs: np.ndarray, meta: dict[str, Any],
                 source: Path) -> None:
        self._router = router
        self.costs = costs
        self.meta = meta
        self.source = source

    @classmethod
    def load(cls, path: str | Path, *, home: str | Path | None = None) -> Router:
        """The router in ``path``; ``rankgate.routing.artifact.ArtifactError`` naming the
        file and the problem if it cannot be used."""
        from rankgate.embed import make_embedder
        from rankgate.routing import artifact

        path = Path(path)
        want = artifact.read_header(path).get("embedder")
        embedder = None
        if want is not None:
            cache_home = Path(home) if home is not None else Settings().home
            try:
                embedder = make_embedder(str(want), cache_home / "cache" / "embeddings.sqlite")
            except ValueError as e:
                raise artifact.ArtifactError(f"{path}: {e}") from None
        router, meta = artifact.load(path, embedder)
        costs = np.array([np.nan if c is None else c for c in meta["costs"]], dtype=float)
        return cls(router, costs, meta, path)

    @property
    def name(self) -> str:
        return str(self._router.name)

    @property
    def models(self) -> list[str]:
        """The panel models it chooses among, in the panel's order."""
        return list(self._router.models)

    def predict(self, prompts: Sequence[str]) -> dict[str, list[float]]:
        """Predicted quality (0..1) of every model for each prompt, by model."""
        pred = np.asarray(self._router.predict(list(prompts)), float)
        return {m: pred[:, j].tolist() for j, m in enumerate(self.models)}

    def choose(self, prompt: str | Sequence[dict[str, Any]], *,
               min_quality: float | None = None, max_cost_usd: float | None = None,
               lam: float | None = None, confidence: float | None = None) -> Choice:
        """The model for one prompt (a string, or OpenAI chat messages), with at most one
        knob: ``min_quality`` (the cheapest model predicted to reach it), ``max_cost_usd``
        (the best model whose estimated cost per request fits) or ``lam`` ($ per unit of
        quality); none: the best predicted quality, ties to the cheaper model.
        ``confidence`` with ``min_quality`` asks for the guarantee, as ``model="auto"`` does
        (``Choice.guarantee`` says whether it was met); ``ValueError`` when the artifact has
        no bounds."""
        from rankgate.messages import prompt_text
        from rankgate.routing.base import Knob, decide

        text = prompt if isinstance(prompt, str) else prompt_text({"messages": list(prompt)})
        knob = Knob(lam=lam, min_quality=min_quality, max_cost=max_cost_usd,
                    confidence=confidence)
        if confidence is not None:
            from rankgate.gateway.auto_route import decide_guaranteed
            from rankgate.routing.conformal import guarantee_of

            guarantee = guarantee_of(self._router)
            if guarantee is None:
                raise ValueError(f"the router {self.name!r} has no quality guarantee: "
                                 "retrain it with this rankgate's `route train`")
            return Choice._of(decide_guaranteed(self._router, guarantee, text, self.costs,
                                                knob, self.name))
        return Choice._of(decide(self._router, text, self.costs, knob))

    def __repr__(self) -> str:
        return f"Router({self.name!r}, models={self.models}, source={str(self.source)!r})"
