"""The dashboard in a real headless browser (Debian's chromium through selenium) against a
real gateway subprocess: log in, the overview agrees with ``/metrics`` after a known burst and
refreshes by itself, a routed request's page explains its routing, a key created on the page
works with the official ``openai`` client until it is revoked on the page, and logged HTML
stays text."""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import Server
from tests.ui.conftest import ADMIN_KEY, BIG, BROKEN, SMALL, admin_client

WAIT_S = 60  # an upper bound for the page to show something, never a measured figure

#: an htmx swap can replace an element between finding and reading it: retry, don't fail
STALE = (StaleElementReferenceException, NoSuchElementException)


def wait(browser: Any, poll_frequency: float = 0.5) -> WebDriverWait:
    """A wait for the page that retries through htmx swaps (``STALE``)."""
    return WebDriverWait(browser, WAIT_S, poll_frequency=poll_frequency,
                         ignored_exceptions=STALE)


def login(browser: Any, gw: Server) -> None:
    browser.delete_all_cookies()
    browser.get(gw.root + "/ui")
    wait(browser).until(lambda d: d.find_elements(By.ID, "admin_key"))
    assert "/ui/login" in browser.current_url
    browser.find_element(By.ID, "admin_key").send_keys(ADMIN_KEY)
    browser.find_element(By.ID, "login").click()
    wait(browser).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=requests]"))


def number(text: str) -> float:
    return float(text.replace("$", "").replace(",", "").strip())


def metric_figures(gw: Server) -> dict[str, Any]:
    """Per-model requests/tokens/spend and errors by type, from ``/metrics``."""
    text = httpx.get(gw.root + "/metrics").text
    out: dict[str, Any] = {"requests": defaultdict(float), "input": defaultdict(float),
                           "output": defaultdict(float), "spend": defaultdict(float),
                           "errors": defaultdict(float)}
    names = {"rankgate_requests_total": "requests", "rankgate_input_tokens_total": "input",
             "rankgate_output_tokens_total": "output", "rankgate_spend_usd_total": "spend"}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name in names:
                out[names[s.name]][s.labels["model"]] += s.value
            elif s.name == "rankgate_errors_total":
                out["errors"][s.labels["type"]] += s.value
    return out


# read in one script: the overview swaps itself every few seconds, so element handles taken
# one by one could go stale between two reads
READ_OVERVIEW = """
const text = (sel) => { const e = document.querySelector(sel); return e ? e.textContent : null; };
const models = {};
for (const tr of document.querySelectorAll("[data-testid=models] tr[data-model]")) {
  const cells = {};
  for (const td of tr.querySelectorAll("td[data-field]")) cells[td.dataset.field] = td.textContent;
  models[tr.dataset.model] = cells;
}
const errors = {};
for (const td of document.querySelectorAll("[data-testid=error-type]")) {
  errors[td.textContent] = text(`[data-testid='error-count-${td.textContent}']`);
}
return {models: models, errors: errors, requests: text("[data-testid=requests]"),
        spend_month: text("[data-testid=spend-month]"),
        breakers: Object.fromEntries([...document.querySelectorAll("[data-testid^=breaker-]")]
          .map(e => [e.dataset.testid.slice(8), e.textContent]))};
"""


def read_overview(browser: Any) -> dict[str, Any]:
    raw = browser.execute_script(READ_OVERVIEW)
    return {"models": {m: {k: number(v) for k, v in cells.items()}
                       for m, cells in raw["models"].items()},
            "errors": {t: number(v) for t, v in raw["errors"].items()},
            "requests": number(raw["requests"]), "spend_month": number(raw["spend_month"]),
            "breakers": raw["breakers"]}


def page_models(browser: Any) -> dict[str, dict[str, float]]:
    return read_overview(browser)["models"]


def chat(gw: Server, model: str, content: str = "Say hi.") -> httpx.Response:
    with admin_client(gw) as c:
        return c.post("/v1/chat/completions", json={
            "model": model, "messages": [{"role": "user", "content": content}]})


def test_without_a_session_pages_redirect_to_login_and_data_answers_401(ui_gateway):
    with httpx.Client(base_url=ui_gateway.root, timeout=30) as c:
        for path in ("/ui", "/ui/routing", "/ui/leaderboard", "/ui/requests",
                     "/ui/requests/abc", "/ui/keys", "/ui/evals"):
            r = c.get(path)
            assert r.status_code == 303 and r.headers["location"].startswith("/ui/login"), path
            assert "rankgate_requests" not in r.text and "<table" not in r.text
        for path in ("/ui/api/overview", "/ui/partials/overview"):
            r = c.get(path)
            assert r.status_code == 401, path
            assert "requests" not in r.text.lower().replace("log in", "")
        r = c.get("/ui/requests", headers={"HX-Request": "true"})
        assert r.status_code == 401
        for path in ("/ui/keys", "/ui/keys/key-x/revoke", "/ui/requests/abc/feedback",
                     "/ui/logout"):
            assert c.post(path, data={"name": "x"}).status_code == 401, path
    forged = {"rankgate_ui": "9999999999.00.deadbeef"}
    with httpx.Client(base_url=ui_gateway.root, timeout=30, cookies=forged) as c:
        assert c.get("/ui/api/overview").status_code == 401
        assert c.get("/ui/api/overview", headers={
            "Authorization": "Bearer not-the-admin-key"}).status_code == 401
        assert c.get("/ui/api/overview", headers={
            "Authorization": f"Bearer {ADMIN_KEY}"}).status_code == 200


def test_wrong_admin_key_is_refused_on_the_login_form(ui_gateway, browser):
    browser.delete_all_cookies()
    browser.get(ui_gateway.root + "/ui/keys")
    wait(browser).until(lambda d: d.find_elements(By.ID, "admin_key"))
    browser.find_element(By.ID, "admin_key").send_keys("wrong")
    browser.find_element(By.ID, "login").click()
    err = wait(browser).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=login-error]"))
    assert "not the admin key" in err[0].text
    # no session; only the login form's own CSRF cookie
    assert [c["name"] for c in browser.get_cookies()] == ["rankgate_ui_login"]


def test_overview_numbers_equal_metrics_after_a_known_burst_and_refresh(ui_gateway, browser):
    before = metric_figures(ui_gateway)
    burst = {SMALL: 12, BIG: 7, BROKEN: 3}
    for model, n in burst.items():
        for i in range(n):
            r = chat(ui_gateway, model, f"burst {model} {i}")
            assert r.status_code == (502 if model == BROKEN else 200), r.text
    after = metric_figures(ui_gateway)
    for model, n in burst.items():
        assert after["requests"][model] - before["requests"][model] == n
    ui_gateway.settle()
    login(browser, ui_gateway)
    page = read_overview(browser)
    shown = page["models"]
    for model in burst:
        assert shown[model]["requests"] == after["requests"][model]
        assert shown[model]["input_tokens"] == after["input"][model]
        assert shown[model]["output_tokens"] == after["output"][model]
        # dollars are shown with 6 significant digits
        assert shown[model]["spend"] == pytest.approx(after["spend"][model], rel=1e-5)
    assert page["errors"] == dict(after["errors"])
    assert page["errors"].get("upstream_error", 0) >= 3
    assert page["requests"] == sum(after["requests"].values())
    if time.gmtime().tm_mday > 1:  # the gateway started this month: the store agrees
        assert page["spend_month"] == pytest.approx(sum(after["spend"].values()), rel=1e-3)
    assert page["breakers"][SMALL] == "closed"
    # it refreshes by itself: more traffic appears without a reload
    for i in range(4):
        assert chat(ui_gateway, SMALL, f"after load {i}").status_code == 200
    expected = metric_figures(ui_gateway)["requests"][SMALL]
    wait(browser).until(lambda d: page_models(d)[SMALL]["requests"] == expected)


def test_a_routed_request_page_shows_its_routing_explanation(ui_gateway, browser):
    client = openai.OpenAI(base_url=ui_gateway.base_url, api_key=ADMIN_KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Write a Python function f7(xs) "
                                 "that sorts the list xs and returns it. Reply with one "
                                 "```python block."}])
    rid, chosen = raw.headers["x-request-id"], raw.headers["x-rankgate-model"]
    header = dict(part.split("=") for part in raw.headers["x-rankgate-candidates"].split(","))
    ui_gateway.settle()
    login(browser, ui_gateway)
    browser.get(ui_gateway.root + "/ui/requests")
    browser.find_element(By.CSS_SELECTOR, f"tr[data-request-id='{rid}'] a").click()
    wait(browser).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=routing]"))
    assert browser.find_element(By.CSS_SELECTOR, "[data-testid=router]").text \
        == raw.headers["x-rankgate-router"]
    shown = {}
    for tr in browser.find_elements(By.CSS_SELECTOR, "[data-testid=candidate]"):
        cells = [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        shown[cells[0]] = cells
    assert set(shown) == {SMALL, BIG}
    for model, cells in shown.items():
        assert cells[1] == header[model].split("/")[0]  # the same predicted quality
    assert "answered" in shown[chosen][3]
    assert browser.find_element(By.CSS_SELECTOR, "[data-testid=model]").text == chosen
    # feedback from the page is stored and shown
    browser.find_element(By.ID, "thumbs-up").click()
    notice = wait(browser).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=notice]"))
    assert "Feedback recorded" in notice[0].text
    assert "feedback" in browser.find_element(By.CSS_SELECTOR, "[data-testid=feedback]").text


def test_a_key_created_on_the_page_works_until_revoked_on_the_page(ui_gateway, browser):
    login(browser, ui_gateway)
    browser.get(ui_gateway.root + "/ui/keys")
    browser.find_element(By.ID, "key-name").send_keys("from-the-browser")
    browser.find_element(By.ID, "key-models").send_keys(SMALL)
    browser.find_element(By.ID, "create-key").click()
    secret_el = wait(browser).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=secret]"))
    secret = secret_el[0].text.strip()
    assert secret.startswith("rg-")
    def new_key_id(d: Any) -> str | None:  # rows may be swapped in while we read them
        return next((tr.get_attribute("data-key-id") for tr in d.find_elements(
            By.CSS_SELECTOR, "tr[data-key-id]") if "from-the-browser" in tr.text), None)

    key_id = wait(browser).until(new_key_id)
    client = openai.OpenAI(base_url=ui_gateway.base_url, api_key=secret, max_retries=0)
    answer = client.chat.completions.create(model=SMALL, messages=[
        {"role": "user", "content": "hello"}])
    assert answer.choices[0].message.content
    with pytest.raises(openai.PermissionDeniedError):  # the models it may use are enforced
        client.chat.completions.create(model=BIG, messages=[{"role": "user", "content": "x"}])
    browser.get(ui_gateway.root + "/ui/keys")  # shown once: never again
    assert secret not in browser.page_source
    browser.find_element(By.CSS_SELECTOR, f"[data-testid='revoke-{key_id}']").click()
    wait(browser).until(
        lambda d: "revoked" in d.find_element(By.CSS_SELECTOR,
                                              f"tr[data-key-id='{key_id}']").text)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model=SMALL, messages=[
            {"role": "user", "content": "hello"}])


XSS_PROMPT = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
XSS_MODEL = '<img src=x onerror="window.__xss = 3">'


def test_logged_html_in_prompts_and_model_names_renders_as_text(ui_gateway, browser):
    ok = chat(ui_gateway, SMALL, XSS_PROMPT)
    assert ok.status_code == 200
    assert chat(ui_gateway, XSS_MODEL, XSS_PROMPT).status_code == 404
    rid = ok.headers["x-request-id"]
    ui_gateway.settle()
    login(browser, ui_gateway)
    for path in ("/ui", "/ui/requests", f"/ui/requests?model={XSS_MODEL}",
                 f"/ui/requests/{rid}"):
        browser.get(ui_gateway.root + path)
        wait(browser).until(lambda d: d.find_elements(By.TAG_NAME, "main"))
        assert browser.execute_script("return window.__xss") is None, path
        assert browser.find_elements(By.TAG_NAME, "img") == [], path
    # the logged messages (written in the background) show the markup as text
    def message_shown(d: Any) -> bool:
        d.get(ui_gateway.root + f"/ui/requests/{rid}")
        return bool(d.find_elements(By.CSS_SELECTOR, "[data-testid=message]"))

    wait(browser, poll_frequency=0.5).until(message_shown)
    assert browser.find_element(By.CSS_SELECTOR, "[data-testid=message]").text == XSS_PROMPT
    assert XSS_PROMPT in browser.find_element(By.CSS_SELECTOR, "[data-testid=prompt]").text
    assert browser.execute_script("return window.__xss") is None
    browser.get(ui_gateway.root + "/ui")
    wait(browser).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=models]"))
    assert XSS_MODEL in browser.find_element(By.CSS_SELECTOR, "[data-testid=models]").text
    assert browser.execute_script("return window.__xss") is None


def login_token(c: httpx.Client) -> str:
    """The login form's CSRF token (the form page also sets the cookie it signs)."""
    page = c.get("/ui/login").text
    return page.split('name="csrf_token" value="')[1].split('"')[0]


def _session(gw: Server) -> httpx.Client:
    c = httpx.Client(base_url=gw.root, timeout=30)
    r = c.post("/ui/login", data={"admin_key": ADMIN_KEY, "next": "/ui",
                                  "csrf_token": login_token(c)})
    assert r.status_code == 303 and "rankgate_ui" in c.cookies
    return c


def _key_names(gw: Server) -> list[str]:
    with admin_client(gw) as c:
        return [k["name"] for k in c.get("/admin/keys").json()["data"]]


def test_posts_without_the_csrf_token_are_refused(ui_gateway):
    with contextlib.closing(_session(ui_gateway)) as c:
        assert c.post("/ui/keys", data={"name": "csrf-less"}).status_code == 403
        assert c.post("/ui/keys", data={"name": "csrf-wrong",
                                        "csrf_token": "0" * 64}).status_code == 403
        names = _key_names(ui_gateway)
        assert "csrf-less" not in names and "csrf-wrong" not in names
        page = c.get("/ui/keys").text
        token = page.split('name="csrf_token" value="')[1].split('"')[0]
        created = c.post("/ui/keys", data={"name": "with-token", "csrf_token": token})
        assert created.status_code == 200 and "with-token" in _key_names(ui_gateway)
        key_id = created.text.split('data-key-id="')[1].split('"')[0]
        assert c.post(f"/ui/keys/{key_id}/revoke").status_code == 403
        with admin_client(ui_gateway) as admin:
            assert admin.get(f"/admin/keys/{key_id}").json()["revoked_at"] is None
        assert c.post("/ui/logout").status_code == 403
        assert c.get("/ui/api/overview").status_code == 200  # still logged in


def severe_console_errors(browser: Any) -> list[str]:
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def test_every_page_renders_its_data_and_charts_without_browser_errors(ui_gateway, browser):
    client = openai.OpenAI(base_url=ui_gateway.base_url, api_key=ADMIN_KEY, max_retries=0)
    for i in range(6):
        client.chat.completions.create(model="auto", messages=[
            {"role": "user", "content": f"What is {i} plus {i + 2}? Answer with the number."}])
    ui_gateway.settle()
    login(browser, ui_gateway)
    browser.get_log("browser")  # start clean
    browser.get(ui_gateway.root + "/ui/routing?window=1h")
    mix = browser.execute_script(
        "const c = Chart.getChart(document.getElementById('mix-chart'));"
        "return c.data.datasets.map(d => [d.label, d.data.reduce((a, b) => a + b, 0)]);")
    totals = {td[0].text: number(td[1].text) for td in (
        tr.find_elements(By.TAG_NAME, "td") for tr in browser.find_elements(
            By.CSS_SELECTOR, "[data-testid=mix-totals] tr")) if td}
    assert dict(mix) == totals and sum(totals.values()) >= 6
    assert browser.find_elements(By.CSS_SELECTOR, "[data-testid=router-knn]")
    browser.get(ui_gateway.root + "/ui/leaderboard")
    assert "Recommendation" in browser.find_element(
        By.CSS_SELECTOR, "[data-testid=recommendation]").text
    models = [tr.find_element(By.TAG_NAME, "td").text.split()[0] for tr in
              browser.find_elements(By.CSS_SELECTOR, "[data-testid=board] tr")[1:]]
    assert len(models) >= 2
    # hovering a point of the Pareto plot shows the model and its figures
    label = browser.execute_script(
        "const c = Chart.getChart(document.getElementById('pareto-chart'));"
        "const m = c.getDatasetMeta(0).data[0];"
        "c.tooltip.setActiveElements([{datasetIndex: 0, index: 0}], {x: m.x, y: m.y});"
        "c.update();"
        "return [c.data.datasets[0].data[0].p.model, c.tooltip.body[0].lines[0]];")
    assert label[1].startswith(label[0] + ": ") and "/1k" in label[1] and label[0] in models
    assert browser.find_elements(By.CSS_SELECTOR, "[data-testid=pairwise] tr")
    browser.get(ui_gateway.root + "/ui/evals")
    assert "embedded_outcomes.jsonl" in browser.find_element(
        By.CSS_SELECTOR, "[data-testid=files]").text
    browser.get(ui_gateway.root + "/ui/requests?status=5xx")
    statuses = {td.text for td in browser.find_elements(
        By.CSS_SELECTOR, "[data-testid=requests] td.n .pill")}
    assert statuses and all(s.startswith("5") for s in statuses)
    assert severe_console_errors(browser) == []
