"""The panel: which models rankgate can send a request to, and how to reach each.

A panel comes from a YAML file (a list of models, or ``{"models": [...]}``) or, with no file,
is the embedded default of three bundled llama.cpp models. Validation happens once, at load,
and a mistake is reported in one line naming the file, the model and the field, so a typo
never surfaces later as a confusing request failure.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rankgate.local_models import BUNDLED

if TYPE_CHECKING:
    from rankgate.backends.base import Capabilities

#: capabilities a panel entry may turn off (a server whose model takes no images, say)
CAPABILITY_FLAGS = ("streaming", "logprobs", "tools", "images", "audio", "files", "embeddings")


class PanelError(ValueError):
    """A panel file that cannot be used; the message is one line and names file/model/field."""


class ModelSpec(BaseModel):
    """One panel model. ``id`` is what clients put in ``model``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")
    backend: str  # a name in backends/registry.py
    # llamacpp: a GGUF file, or the name of a bundled model
    path: str | None = None
    bundled: str | None = None
    # openai: any OpenAI-compatible server
    base_url: str | None = None
    api_key_env: str | None = None
    upstream_model: str | None = Field(default=None, description="name at the upstream; id")
    provider: str | None = Field(default=None, description="genai-prices provider id")
    # prices in $ per million tokens; absent -> looked up by name (hosted) or compute time (local)
    input_price_per_mtok: float | None = Field(default=None, ge=0)
    output_price_per_mtok: float | None = Field(default=None, ge=0)
    context_window: int | None = Field(default=None, gt=0)
    timeout_s: float | None = Field(default=None, gt=0)
    # panel ids tried in order when this model fails with a retryable error
    fallbacks: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    # what this model can NOT do although its backend could (e.g. {images: false})
    capabilities: dict[str, bool] | None = None
    # a variant (``base+recipe``, see rankgate.variants): the model it wraps and its recipe
    base: str | None = None
    recipe: dict[str, Any] | None = None

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, name: str) -> str:
        from rankgate.backends.registry import backend_type

        backend_type(name)  # ValueError naming the known backends
        return name

    @field_validator("capabilities")
    @classmethod
    def _known_flags(cls, caps: dict[str, bool] | None) -> dict[str, bool] | None:
        unknown = sorted(set(caps or {}) - set(CAPABILITY_FLAGS))
        if unknown:
            raise ValueError(f"unknown capability {unknown[0]!r} (known: "
                             f"{', '.join(CAPABILITY_FLAGS)})")
        return caps

    @model_validator(mode="after")
    def _backend_fields(self) -> ModelSpec:
        from rankgate.backends.registry import backend_type

        backend_type(self.backend).validate(self)
        if self.base is not None or self.recipe is not None:  # only variants carry them
            raise ValueError("'base' and 'recipe' declare a variant (base+recipe), which "
                             "takes its backend from its base: leave out 'backend'")
        if (self.input_price_per_mtok is None) != (self.output_price_per_mtok is None):
            raise ValueError("give both input_price_per_mtok and output_price_per_mtok, or none")
        return self

    @property
    def name_upstream(self) -> str:
        return self.upstream_model or self.id

    def narrow(self, caps: Capabilities) -> Capabilities:
        """``caps`` with what this entry turns off turned off (never turns anything on)."""
        from dataclasses import replace

        off = {k: False for k, v in (self.capabilities or {}).items() if v is False}
        return replace(caps, **off) if off else caps


class Panel:
    """An ordered, id-indexed set of models (order is the user's: it breaks routing ties)."""

    def __init__(self, models: list[ModelSpec], source: str = "<default>") -> None:
        seen: set[str] = set()
        for m in models:
            if m.id in seen:
                raise PanelError(f"{source}: model {m.id!r}: field 'id': duplicate id")
            seen.add(m.id)
        for m in models:
            for f in m.fallbacks:
                if f not in seen or f == m.id:
                    raise PanelError(f"{source}: model {m.id!r}: field 'fallbacks': {f!r} is "
                                     f"not another model of this panel")
        if not models:
            raise PanelError(f"{source}: the panel has no models")
        self.models = list(models)
        self.source = source
        self._by_id = {m.id: m for m in models}

    def __iter__(self):  # noqa: ANN204 - iterator of ModelSpec
        return iter(self.models)

    def __len__(self) -> int:
        return len(self.models)

    def __contains__(self, model_id: object) -> bool:
        return isinstance(model_id, str) and self.get(model_id) is not None

    def get(self, model_id: str) -> ModelSpec | None:
        """The model ``model_id``: declared, or a variant of one with built-in recipes
        (``smollm2-135m+cot``), resolved on first use; None when neither."""
        spec = self._by_id.get(model_id)
        if spec is None and "+" in model_id:
            from rankgate.variants.naming import resolve

            try:
                spec = resolve(model_id, self._by_id)
            except (KeyError, ValueError):
                return None
            self._by_id[model_id] = spec  # a pure function of the id: remembered
        return spec

    def why_unknown(self, model_id: str) -> str:
        """One line saying why ``model_id`` is not a model here (an unknown recipe is named)."""
        from rankgate.variants.naming import resolve

        try:
            resolve(model_id, self._by_id)
        except (KeyError, ValueError) as e:
            return str(e)
        return f"{model_id!r} is a model of this panel"

    @property
    def ids(self) -> list[str]:
        return [m.id for m in self.models]


def default_panel() -> Panel:
    """The embedded panel: the three bundled models, cheapest first."""
    return Panel(
        [
            ModelSpec(id=m.id, backend="llamacpp", bundled=m.id, context_window=None,
                      tags=("local", "embedded"))
            for m in BUNDLED.values()
        ]
    )


def _one_line(source: str, raw: Any, index: int, err: ValidationError) -> str:
    first = err.errors()[0]
    name = raw.get("id") if isinstance(raw, dict) else None
    who = f"model {name!r}" if name else f"model #{index + 1}"
    field = ".".join(str(p) for p in first["loc"]) or "(model)"
    msg = first["msg"].removeprefix("Value error, ")
    return f"{source}: {who}: field '{field}': {msg}"


def parse_panel(data: Any, source: str) -> Panel:
    """Build a Panel from already-parsed YAML/JSON data."""
    if isinstance(data, dict) and set(data) == {"models"}:
        data = data["models"]
    if not isinstance(data, list):
        raise PanelError(f"{source}: expected a list of models (or a 'models:' key)")
    from rankgate.variants.naming import is_variant_entry

    specs: dict[int, ModelSpec] = {}
    for i, raw in enumerate(data):
        if is_variant_entry(raw):
            continue
        if not isinstance(raw, dict):
            raise PanelError(f"{source}: model #{i + 1}: expected a mapping, got {raw!r}")
        try:
            specs[i] = ModelSpec.model_validate(raw)
        except ValidationError as e:
            raise PanelError(_one_line(source, raw, i, e)) from None
    specs.update(_variants(data, specs, source))
    return Panel([specs[i] for i in sorted(specs)], source)


def _variants(data: list[Any], specs: dict[int, ModelSpec], source: str
              ) -> dict[int, ModelSpec]:
    """The variant entries of ``data`` (``base+recipe``), each resolved once its base is
    known (a variant may build on another, in any order); the first that cannot be is
    refused naming file, model and field."""
    from rankgate.variants.naming import EntryError, is_variant_entry, variant_entry

    declared = {s.id: s for s in specs.values()}
    pending = [i for i, raw in enumerate(data) if is_variant_entry(raw)]
    out: dict[int, ModelSpec] = {}
    while pending:
        errors: dict[int, EntryError] = {}
        for i in pending:
            try:
                out[i] = variant_entry(data[i], declared)
                declared[out[i].id] = out[i]
            except EntryError as e:
                errors[i] = e
        if len(errors) == len(pending):  # no progress: report the first
            i, e = next(iter(errors.items()))
            raw = data[i]
            name = raw if isinstance(raw, str) else raw.get("id")
            who = f"model {name!r}" if name else f"model #{i + 1}"
            raise PanelError(f"{source}: {who}: field '{e.field}': {e.reason}")
        pending = list(errors)
    return out


def load_panel(path: str | Path | None) -> Panel:
    """The panel in ``path``, or the embedded default when ``path`` is None."""
    if path is None:
        return default_panel()
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise PanelError(f"{p}: cannot read panel file: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise PanelError(f"{p}:{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    return parse_panel(data, str(p))
