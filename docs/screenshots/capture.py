"""Screenshots of every dashboard page, from a real gateway on the embedded panel.

Starts ``rankgate serve`` (the embedded llama.cpp models, a kNN router trained on the shipped
evaluation with its replay card beside it, bodies logged, an admin key), sends real traffic
through the official ``openai`` client (routed and direct requests, a virtual key with a
budget, one unknown model, thumbs from users; a small evaluation run beforehand), then
photographs each page with Debian's headless chromium. Writes ``docs/screenshots/*.png``
(each kept under ~300 KB).

    .venv/bin/python docs/screenshots/capture.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import openai

ADMIN = "screenshot-admin-key"
PROMPTS = [
    "What is 17 times 23? Answer with the number only.",
    "Write a Python function is_prime(n) that returns True if n is prime.",
    "What is the capital of Australia? One word.",
    "Convert 3.5 kilometres to metres. Answer with the number only.",
    "Write a SQL query that counts the rows of a table named orders.",
    "Name the largest planet of the solar system.",
    "Extract the year from: 'The bridge opened in May 1937.' Answer with the year.",
    "Reverse the string 'rankgate' and answer with the result only.",
    "If a train travels 120 km in 1.5 hours, what is its average speed in km/h?",
    "Write a Python one-liner that sums the squares of 1..10.",
    "Which gas do plants absorb from the air for photosynthesis?",
    "Is 221 a prime number? Answer yes or no.",
]
PAGES = [("overview", "/ui"), ("routing", "/ui/routing"), ("leaderboard", "/ui/leaderboard"),
         ("requests", "/ui/requests"), ("request", None), ("keys", "/ui/keys"),
         ("evals", "/ui/evals")]
MAX_BYTES = 300_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rankgate(*args: str, env: dict[str, str], **kw: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rankgate", *args], env=env, check=True,
                          **kw)  # type: ignore[call-overload]


def start(home: Path, router: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = (home / "gateway.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "rankgate", "serve", "--port", str(port),
                             "--router", str(router), "--log-bodies", "--preload"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    root = f"http://127.0.0.1:{port}"
    deadline = time.time() + 600
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gateway exited: {(home / 'gateway.log').read_text()[-2000:]}")
        try:
            if httpx.get(root + "/healthz", timeout=2).status_code == 200:
                return proc, root
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("gateway did not come up")


def traffic(root: str) -> str:
    """Real requests; returns the id of one routed request to photograph."""
    admin = openai.OpenAI(base_url=root + "/v1", api_key=ADMIN, max_retries=0, timeout=300)
    key = httpx.post(root + "/admin/keys", headers={"Authorization": f"Bearer {ADMIN}"},
                     json={"name": "team-a", "models": ["auto", "smollm2-135m"], "rpm": 60,
                           "budget_usd": 0.01, "budget_period": "day"}).json()["key"]
    httpx.post(root + "/admin/keys", headers={"Authorization": f"Bearer {ADMIN}"},
               json={"name": "ci", "rpm": 30, "budget_usd": 1, "budget_period": "month"})
    team = openai.OpenAI(base_url=root + "/v1", api_key=key, max_retries=0, timeout=300)
    routed = None
    for i, prompt in enumerate(PROMPTS * 2):
        client = team if i % 3 == 0 else admin
        model = "smollm2-135m" if i % 5 == 4 else "auto"
        raw = client.chat.completions.with_raw_response.create(
            model=model, max_tokens=48, temperature=0,
            messages=[{"role": "user", "content": prompt}])
        rid = raw.headers["x-request-id"]
        if model == "auto" and routed is None:
            routed = rid
        if i % 4 == 1:
            httpx.post(root + "/v1/feedback", headers={"Authorization": f"Bearer {ADMIN}"},
                       json={"request_id": rid, "thumbs": "up" if i % 8 == 1 else "down"})
    try:
        admin.chat.completions.create(model="gpt-nonexistent", messages=[
            {"role": "user", "content": "hi"}])
    except openai.NotFoundError:
        pass
    assert routed is not None
    return routed


def shrink(png: bytes) -> bytes:
    if len(png) <= MAX_BYTES:
        return png
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=128)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()


def photograph(root: str, routed: str, out: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--hide-scrollbars"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        driver.get(root + "/ui/login")
        driver.find_element(By.ID, "admin_key").send_keys(ADMIN)
        driver.find_element(By.ID, "login").click()
        time.sleep(1)
        for name, path in PAGES:
            driver.set_window_size(1400, 1000)
            driver.get(root + (path or f"/ui/requests/{routed}"))
            time.sleep(1.5)  # charts draw after load
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(1400, min(max(int(height) + 20, 700), 2000))
            time.sleep(0.5)
            data = shrink(driver.get_screenshot_as_png())
            (out / f"{name}.png").write_bytes(data)
            print(f"{name}.png {len(data) // 1024} KB")
    finally:
        driver.quit()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="rankgate-shots-"))
    env = {**os.environ, "RANKGATE_HOME": str(home), "RANKGATE_ADMIN_KEY": ADMIN}
    router = home / "router.npz"
    rankgate("panel", "prepare", env=env, stdout=subprocess.DEVNULL)  # assemble the weights
    rankgate("route", "train", "--outcomes", "embedded", "--router", "knn", "--out",
             str(router), env=env, stdout=subprocess.DEVNULL)
    card = rankgate("route", "replay", "--outcomes", "embedded", "--routers", "knn",
                    "--n-boot", "50", "--json", env=env, capture_output=True, text=True)
    (home / "router.npz.replay.json").write_text(card.stdout)
    # a real evaluation, so the Evaluations page shows a recorded run and its outcome file
    (home / "evals").mkdir(exist_ok=True)
    rankgate("eval", "--models", "smollm2-135m", "--workload", "starter", "--limit", "6",
             "--out", str(home / "evals" / "starter-smollm.jsonl"), env=env,
             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc, root = start(home, router, env)
    try:
        routed = traffic(root)
        time.sleep(1)
        photograph(root, routed, args.out)
    finally:
        proc.terminate()
        proc.wait(60)


if __name__ == "__main__":
    main()
