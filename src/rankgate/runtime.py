"""One runtime for a panel: its backends, their prices and their shared resources.

The gateway, the evaluation runner and the judge all open a panel the same way, so a setting
(the machine's price, a first guess of local speed, threads, timeouts) reaches every one of
them, and closing is written once: backends, then the HTTP pool, then the thread budget.

    async with open_panel(panel, settings) as rt:
        result = await rt.backends["qwen2.5-coder-0.5b"].complete("chat", payload)
        cost = rt.pricers["qwen2.5-coder-0.5b"].cost(...)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rankgate.backends import Backend, Resources, ThreadBudget, build_backend
from rankgate.backends.openai_http import UpstreamPool
from rankgate.config import Settings
from rankgate.panel import ModelSpec, Panel
from rankgate.pricing import Pricer


@dataclass
class PanelRuntime:
    """Backends and pricers for (some of) a panel's models; build with ``open_panel``."""

    panel: Panel
    settings: Settings
    resources: Resources
    backends: dict[str, Backend] = field(default_factory=dict)
    pricers: dict[str, Pricer] = field(default_factory=dict)

    @property
    def pool(self) -> UpstreamPool:
        return self.resources.pool

    @property
    def budget(self) -> ThreadBudget:
        return self.resources.budget

    def __post_init__(self) -> None:
        self.backends = _OnDemand(self, self.backends)
        self.pricers = _OnDemand(self, self.pricers)

    def add(self, spec: ModelSpec) -> Backend:
        """The backend of ``spec``, built once (e.g. a judge that is not among the models
        being evaluated). A variant (``base+recipe``) wraps its base's backend, built first:
        one copy of the weights. Raises ``RecipeError`` when a variant's recipe cannot apply."""
        if spec.id not in self.backends:
            if spec.base is not None:
                from rankgate.variants import build_variant

                base_spec = self.panel.get(spec.base)
                assert base_spec is not None, spec.base  # the panel resolved the variant
                backend: Backend = build_variant(spec, base_spec, self.add(base_spec),
                                                 self.resources)
            else:
                backend = build_backend(spec, self.resources)
            self.backends[spec.id] = backend
            self.pricers[spec.id] = Pricer(spec, self.settings.machine_usd_per_hour,
                                           self.settings.local_tokens_per_s,
                                           compute_priced=backend.capabilities.compute_priced)
        return self.backends[spec.id]

    def concurrency(self, model_id: str, default: int) -> int:
        """Requests worth sending ``model_id`` at once: its own limit, else ``default``."""
        limit = self.backends[model_id].capabilities.max_concurrency
        return default if limit is None else min(limit, default)

    async def load(self) -> None:
        """Warm every backend up (local weights whose file exists), one after the other."""
        for backend in self.backends.values():
            await backend.load()

    async def aclose(self) -> None:
        for backend in self.backends.values():
            await backend.aclose()
        await self.resources.pool.aclose()
        self.resources.budget.shutdown()

    async def __aenter__(self) -> PanelRuntime:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _OnDemand(dict):  # type: ignore[type-arg]
    """Backends (or pricers) by id that builds a variant the panel resolves on first lookup
    (``rt.backends["smollm2-135m+cot"]``), so a gateway serves any ``base+recipe`` by name
    without every caller asking the runtime first; other ids stay ``KeyError``."""

    def __init__(self, rt: PanelRuntime, items: dict) -> None:  # type: ignore[type-arg]
        super().__init__(items)
        self._rt = rt

    def __missing__(self, model_id: str) -> object:
        spec = self._rt.panel.get(model_id) if isinstance(model_id, str) else None
        if spec is None or spec.base is None:
            raise KeyError(model_id)
        self._rt.add(spec)
        return dict.__getitem__(self, model_id)


def open_panel(panel: Panel, settings: Settings, models: list[str] | None = None, *,
               max_connections: int = 100) -> PanelRuntime:
    """A runtime for ``models`` of ``panel`` (default: all; ``base+recipe`` variants too).
    Nothing is loaded or connected until used; the caller closes it (``aclose`` or ``async
    with``). Unknown ids raise ``KeyError`` naming them; a variant whose recipe cannot apply
    raises ``RecipeError`` naming it."""
    ids = panel.ids if models is None else list(models)
    unknown = [m for m in ids if m not in panel]
    if unknown:
        raise KeyError(f"not in the panel: {', '.join(unknown)} (panel: {', '.join(panel.ids)})")
    resources = Resources(settings, UpstreamPool(max_connections=max_connections),
                          ThreadBudget(settings.threads, settings.threads_per_model))
    rt = PanelRuntime(panel, settings, resources)
    try:
        for mid in ids:
            spec = panel.get(mid)
            assert spec is not None
            rt.add(spec)
    except ValueError:  # a recipe that cannot apply: nothing may leak (threads, pool)
        rt.resources.budget.shutdown()
        raise
    return rt
