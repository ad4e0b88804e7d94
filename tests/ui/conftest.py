"""A real gateway (subprocess, two ``faulty`` models, a kNN router, bodies logged, an admin
key) and Debian's headless chromium driven by selenium, for the dashboard tests."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from rankgate.embed import HashEmbedder
from rankgate.outcomes import Outcome
from rankgate.routing.train_replay import train
from tests.conftest import Server

ADMIN_KEY = "ui-admin-key-for-tests"
SMALL, BIG, BROKEN = "small", "big", "broken"
PANEL = [{"id": SMALL, "backend": "faulty", "upstream_model": "ok",
          "input_price_per_mtok": 0.1, "output_price_per_mtok": 0.2},
         {"id": BIG, "backend": "faulty", "upstream_model": "ok",
          "input_price_per_mtok": 1.0, "output_price_per_mtok": 2.0},
         {"id": BROKEN, "backend": "faulty", "upstream_model": "error-500",
          "input_price_per_mtok": 1.0, "output_price_per_mtok": 2.0}]


def router_outcomes() -> list[Outcome]:
    """SMALL is good at sums and bad at code; BIG is good at both."""
    rows = []
    for i in range(120):
        if i % 2 == 0:
            text, sums = f"What is {i} plus {i * 3 % 17}? Answer with the number only.", True
        else:
            text, sums = (f"Write a Python function f{i}(xs) that sorts the list xs and "
                          "returns it. Reply with one ```python block."), False
        for m in (SMALL, BIG):
            good = m == BIG or sums
            rows.append(Outcome(f"i{i}", text, m, 1.0 if good else 0.0,
                                cost_usd=1e-5 if m == SMALL else 1e-4, source="eval"))
    return rows


@pytest.fixture(scope="module")
def router_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ui-router") / "router.npz"
    train(router_outcomes(), "knn", path, HashEmbedder())
    return path


@pytest.fixture(scope="module")
def ui_gateway(start_gateway: Callable[..., Server], router_file: Path) -> Server:
    return start_gateway(panel=PANEL, name="ui", env={"RANKGATE_ADMIN_KEY": ADMIN_KEY,
                                                      "RANKGATE_BREAKER_FAILURES": "1000"},
                         extra_args=["--router", str(router_file), "--log-bodies"])


def admin_client(gw: Server) -> httpx.Client:
    return httpx.Client(base_url=gw.root, headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                        timeout=30)


def _chromium() -> tuple[str, str]:
    binary = shutil.which("chromium") or "/usr/bin/chromium"
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not Path(binary).exists() or not Path(driver).exists():
        pytest.fail("chromium/chromedriver not found; run scripts/ensure-chromium.sh "
                    "(`make test` does)")
    return binary, driver


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = _chromium()
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console errors, CSP
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
