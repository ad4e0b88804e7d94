"""Drift on ``/metrics``: a real gateway subprocess re-tests the judge outcomes in its store and
publishes the verdict per model — a model whose judged quality fell is flagged, a steady one
is not, and a model without enough outcomes gets no series at all."""

from __future__ import annotations

import re
import time

import httpx

from rankgate.outcomes import Outcome
from rankgate.store.outcome_store import add_outcomes
from rankgate.store.tables import make_engine

PANEL = [{"id": "good", "backend": "faulty", "upstream_model": "ok"},
         {"id": "steady", "backend": "faulty", "upstream_model": "ok"}]
WINDOW = 3600.0


def judged(model: str, scores: list[float], start: float, tag: str) -> list[tuple[float,
                                                                                   Outcome]]:
    return [(start + 60 * i, Outcome(prompt_id=f"{tag}-{model}-{i}", prompt=f"q{i}",
                                     model=model, score=s, source="judge"))
            for i, s in enumerate(scores)]


def gauge(text: str, model: str, metric: str, stat: str) -> float | None:
    labels = "".join(f'(?=[^}}]*{k}="{re.escape(v)}")'
                     for k, v in (("model", model), ("metric", metric), ("stat", stat)))
    pat = r"^rankgate_drift\{" + labels + r"[^}]*\} (\S+)$"
    m = re.search(pat, text, re.M)
    return float(m.group(1)) if m else None


def test_drift_of_judged_quality_is_on_metrics(start_gateway):
    gw = start_gateway(PANEL, name="drift", env={"RANKGATE_DRIFT_WINDOW_S": str(WINDOW),
                                                 "RANKGATE_DRIFT_INTERVAL_S": "0.2"})
    now = time.time()
    before, after = now - 2 * WINDOW + 300, now - WINDOW + 300
    rows = (judged("good", [1.0] * 27 + [0.0] * 3, before, "b")
            + judged("good", [1.0] * 6 + [0.0] * 24, after, "a")
            + judged("steady", [1.0, 0.0] * 15, before, "b")
            + judged("steady", [0.0, 1.0] * 15, after, "a")
            + judged("thin", [1.0] * 3, after, "a"))
    engine = make_engine(f"sqlite:///{gw.home / 'rankgate.db'}")
    try:
        for ts, o in rows:
            add_outcomes(engine, [o], ts=ts)
    finally:
        engine.dispose()

    deadline = time.time() + 30
    while True:
        text = httpx.get(gw.root + "/metrics").text
        if gauge(text, "good", "quality (judge)", "detected") is not None:
            break
        assert time.time() < deadline, "no drift series on /metrics"
        time.sleep(0.2)
    assert gauge(text, "good", "quality (judge)", "detected") == 1.0
    diff = gauge(text, "good", "quality (judge)", "diff")
    assert diff is not None and abs(diff - (0.2 - 0.9)) < 1e-9
    high = gauge(text, "good", "quality (judge)", "high")
    assert high is not None and high < 0  # the interval of the fall excludes zero
    assert gauge(text, "good", "quality (judge)", "n_after") == 30
    assert gauge(text, "steady", "quality (judge)", "detected") == 0.0
    assert gauge(text, "thin", "quality (judge)", "detected") is None  # too few to test
    assert re.search(r"^rankgate_drift_checked_timestamp_seconds \S+", text, re.M)
