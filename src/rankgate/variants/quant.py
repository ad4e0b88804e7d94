"""Another GGUF quantisation of the same weights — only where an installed package ships one.

``+q8_0`` looks for a GGUF file whose name carries that quantisation tag beside the base's own
weights: in the packages that ship a bundled model, or in the directory of a ``path:`` model.
Nothing is ever downloaded. None found is a refusal naming the tag, the model and what is
installed. A quantisation is the one recipe that cannot share its base's loaded weights (they
are other weights): it runs its own llama.cpp backend on the other file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rankgate.variants.base import Recipe, RecipeContext, RecipeError

if TYPE_CHECKING:
    from rankgate.backends.base import Backend


def _own_file(ctx: RecipeContext) -> Path | None:
    """The base's own GGUF file, resolved."""
    from rankgate.local_models import BUNDLED, model_path

    base = ctx.base
    if base.path:
        return Path(base.path).expanduser().resolve()
    if base.bundled in BUNDLED:
        return model_path(BUNDLED[base.bundled], ctx.resources.settings.home).resolve()
    return None


def candidate_dirs(ctx: RecipeContext) -> list[Path]:
    """Where another quantisation of the base could already be on disk."""
    from rankgate.local_models import BUNDLED, _module_dir

    dirs: list[Path] = []
    base = ctx.base
    if base.bundled and base.bundled in BUNDLED:
        for package in BUNDLED[base.bundled].packages:
            found = _module_dir(package)
            if found is not None:
                dirs.append(found)
    if base.path:
        dirs.append(Path(base.path).expanduser().parent)
    return dirs


_QUANT_TAG = re.compile(r"(?i)[.\-_]((?:i?q\d[a-z0-9_]*)|f16|bf16|f32)$")


def available_quants(ctx: RecipeContext) -> tuple[list[str], list[str]]:
    """(quantisation tags of *other* installed GGUF files of the base, every file seen):
    what ``rankgate optimise`` can try."""
    files = sorted({p for d in candidate_dirs(ctx) for p in d.rglob("*.gguf")})
    own = _own_file(ctx)
    tags = []
    for f in files:
        m = _QUANT_TAG.search(f.stem)
        if m and f.resolve() != own:
            tags.append(m[1].lower())
    return sorted(set(tags)), [f.name for f in files]


@dataclass
class Quantisation(Recipe):
    key: ClassVar[str] = "q"
    spelling: ClassVar[str | None] = "q<quant>"
    param_help: ClassVar[str | None] = "GGUF quantisation tag (q8_0, q4_k_m)"
    quant: str = ""
    label: str = ""
    path: str | None = None  # resolved by ``check``

    @classmethod
    def from_param(cls, param: str | None, options: dict[str, Any]) -> Recipe:
        if param is not None:
            options = {**options, "quant": f"q{param}"}
        recipe = cls(**options)
        if not recipe.quant:
            raise RecipeError("recipe 'q': name the quantisation, e.g. +q8_0")
        return recipe

    def check(self, ctx: RecipeContext) -> None:
        if ctx.base.base is not None:  # it swaps the model under every recipe below it
            raise RecipeError(f"recipe {self.quant!r} of {ctx.variant.id!r}: apply a "
                              "quantisation to a model directly, before other recipes "
                              f"({ctx.base.id.split('+', 1)[0]}+{self.quant}+…)")
        if ctx.base.backend != "llamacpp":
            raise RecipeError(f"recipe {self.quant!r} of {ctx.variant.id!r} cannot apply: "
                              f"quantisations are GGUF files, and {ctx.base.id!r} is served by "
                              f"backend {ctx.base.backend!r}")
        files = sorted({p for d in candidate_dirs(ctx) for p in d.rglob("*.gguf")})
        tag = re.compile(rf"(?i)(^|[.\-]){re.escape(self.quant)}($|[.\-])")
        match = [f for f in files if tag.search(f.stem)]
        if not match:
            shipped = ", ".join(f.name for f in files) or "no GGUF file in a package"
            raise RecipeError(
                f"recipe {self.quant!r} of {ctx.variant.id!r} cannot apply: no installed "
                f"package ships {ctx.base.id} as {self.quant.upper()} (installed: {shipped}); "
                "rankgate downloads nothing — install a package that ships it, or declare a "
                "panel model with its path")
        if match[0].resolve() == _own_file(ctx):
            raise RecipeError(f"recipe {self.quant!r} of {ctx.variant.id!r}: {ctx.base.id} is "
                              f"already {self.quant.upper()} ({match[0].name})")
        self.path = str(match[0])

    def inner(self, ctx: RecipeContext, base: Backend) -> Backend:
        from rankgate.backends import build_backend

        assert self.path is not None
        other = ctx.base.model_copy(update={"id": ctx.variant.id, "bundled": None,
                                            "path": self.path})
        return build_backend(other, ctx.resources)
