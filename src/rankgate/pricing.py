"""What a request cost, in dollars, and on what basis.

Three bases, decided once per model when the gateway starts:

* ``panel`` — explicit $/Mtok prices in the panel file;
* ``genai-prices`` — hosted models looked up by name in the offline ``genai-prices`` snapshot;
* ``local-compute`` — local models cost their measured generation seconds × the machine's $/hour,
  so "cheaper" means "less compute", measured.

When none applies the cost is ``None`` (never 0) and the basis says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from rankgate.panel import ModelSpec


@dataclass(frozen=True)
class Cost:
    usd: float | None
    basis: str  # "panel", "genai-prices", "local-compute" or "unknown: <why>"

    def header(self) -> str:
        return "unknown" if self.usd is None else repr(self.usd)


def _compute_priced(spec: ModelSpec) -> bool:
    from rankgate.backends.registry import backend_type

    return backend_type(spec.backend).compute_priced


class Pricer:
    """Prices requests for one model; construction does the (slow) catalogue lookup."""

    def __init__(self, spec: ModelSpec, machine_usd_per_hour: float,
                 local_tokens_per_s: float = 20.0, compute_priced: bool | None = None) -> None:
        """``compute_priced``: the backend's ``capabilities.compute_priced`` (None: what its
        backend type registers)."""
        self.spec = spec
        self.machine_usd_per_hour = machine_usd_per_hour
        # compute seconds per generated token, learned from this model's own requests
        self._s_per_token = 1.0 / local_tokens_per_s
        self._catalogue_ref: tuple[str, str | None] | None = None
        if spec.input_price_per_mtok is not None:
            self.basis = "panel"
        elif compute_priced or (compute_priced is None and _compute_priced(spec)):
            self.basis = "local-compute"
        elif self._lookup():
            self.basis = "genai-prices"
        else:
            self.basis = f"unknown: no price for {spec.name_upstream!r} in genai-prices or panel"

    def _lookup(self) -> bool:
        try:
            from genai_prices import Usage, calc_price
        except ImportError:  # pragma: no cover - a declared dependency
            return False
        for ref in ((self.spec.name_upstream, self.spec.provider), (self.spec.name_upstream, None)):
            try:
                calc_price(Usage(input_tokens=1, output_tokens=1), ref[0], provider_id=ref[1])
            except (LookupError, ValueError):
                continue
            self._catalogue_ref = ref
            return True
        return False

    def cost(self, input_tokens: int | None, output_tokens: int | None,
             compute_s: float | None, estimated_tokens: bool = False) -> Cost:
        """Cost of one request given its token usage and backend compute seconds."""
        c = self._cost(input_tokens, output_tokens, compute_s)
        if self.basis == "local-compute" and compute_s and output_tokens:
            observed = compute_s / (output_tokens + (input_tokens or 0) / 8)
            self._s_per_token += 0.2 * (observed - self._s_per_token)
        if estimated_tokens and c.usd is not None and self.basis != "local-compute":
            return Cost(c.usd, c.basis + " (tokens estimated)")
        return c

    def estimate(self, input_tokens: int, max_output_tokens: int) -> float | None:
        """The cost of a request before it runs, assuming it generates ``max_output_tokens``
        (budget reservations: settled with the real cost afterwards). Local models: their
        measured seconds per token (prompt tokens weigh 1/8: prefill is batched)."""
        if self.basis == "local-compute":
            seconds = (max_output_tokens + input_tokens / 8) * self._s_per_token
            return seconds * self.machine_usd_per_hour / 3600.0
        return self._cost(input_tokens, max_output_tokens, None).usd

    def _cost(self, input_tokens: int | None, output_tokens: int | None,
              compute_s: float | None) -> Cost:
        if self.basis == "local-compute":
            if compute_s is None:
                return Cost(None, "unknown: compute time not measured")
            return Cost(compute_s * self.machine_usd_per_hour / 3600.0, self.basis)
        if input_tokens is None or output_tokens is None:
            return Cost(None, "unknown: the backend reported no token usage")
        if self.basis == "panel":
            assert self.spec.input_price_per_mtok is not None
            assert self.spec.output_price_per_mtok is not None
            usd = (input_tokens * self.spec.input_price_per_mtok
                   + output_tokens * self.spec.output_price_per_mtok) / 1e6
            return Cost(usd, self.basis)
        if self._catalogue_ref is not None:
            from genai_prices import Usage, calc_price

            price = calc_price(
                Usage(input_tokens=input_tokens, output_tokens=output_tokens),
                self._catalogue_ref[0], provider_id=self._catalogue_ref[1],
            )
            return Cost(float(Decimal(price.total_price)), self.basis)
        return Cost(None, self.basis)
