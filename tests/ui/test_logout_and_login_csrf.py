"""Logging out ends the session on the server, for every gateway sharing the store (a copied
cookie is refused afterwards), and the login form carries a CSRF token of its own (a login
POST without it, or with a wrong one, is refused). Real gateways, real headless chromium."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from selenium.webdriver.common.by import By

from tests.conftest import Server
from tests.ui.conftest import ADMIN_KEY, PANEL
from tests.ui.test_dashboard_browser import login, login_token, wait


def replay(gw: Server, cookie: str) -> tuple[int, int, str]:
    """(status of the data endpoint, status of a page, where the page sends us) with only
    the copied session cookie."""
    with httpx.Client(base_url=gw.root, timeout=30, cookies={"rankgate_ui": cookie}) as c:
        data = c.get("/ui/api/overview")
        page = c.get("/ui/keys")
        return data.status_code, page.status_code, page.headers.get("location", "")


def test_a_session_cookie_copied_before_logout_is_refused_after_it(
        ui_gateway: Server, browser: Any, start_gateway: Callable[..., Server]):
    login(browser, ui_gateway)
    cookie = next(c["value"] for c in browser.get_cookies() if c["name"] == "rankgate_ui")
    assert replay(ui_gateway, cookie)[:2] == (200, 200)  # the copy works while logged in
    # a second gateway on the same store (and admin key) accepts the same signed cookie
    other = start_gateway(panel=PANEL, name="ui-other", env={
        "RANKGATE_ADMIN_KEY": ADMIN_KEY,
        "RANKGATE_STORE_URL": f"sqlite:///{ui_gateway.home / 'rankgate.db'}"})
    assert replay(other, cookie)[:2] == (200, 200)

    browser.find_element(By.ID, "logout").click()
    wait(browser).until(lambda d: d.find_elements(By.ID, "admin_key"))
    assert not [c for c in browser.get_cookies() if c["name"] == "rankgate_ui"]
    for gw in (ui_gateway, other):  # revoked on the store: every gateway refuses the copy
        data, page, where = replay(gw, cookie)
        assert data == 401 and page == 303 and where.startswith("/ui/login"), gw.root
    # and so does the browser when the copy is put back
    browser.add_cookie({"name": "rankgate_ui", "value": cookie, "path": "/ui"})
    browser.get(ui_gateway.root + "/ui/keys")
    wait(browser).until(lambda d: d.find_elements(By.ID, "admin_key"))
    assert "/ui/login" in browser.current_url
    # a new login is a new session, and works
    login(browser, ui_gateway)
    browser.get(ui_gateway.root + "/ui/keys")
    assert browser.find_elements(By.ID, "key-name")


def test_login_without_its_csrf_token_or_with_a_wrong_one_is_refused(ui_gateway: Server):
    form = {"admin_key": ADMIN_KEY, "next": "/ui"}
    with httpx.Client(base_url=ui_gateway.root, timeout=30) as c:
        r = c.post("/ui/login", data=form)  # no form page seen: no cookie, no token
        assert r.status_code == 403 and "rankgate_ui" not in c.cookies
        token = login_token(c)
        r = c.post("/ui/login", data={**form, "csrf_token": "0" * 64})
        assert r.status_code == 403 and "rankgate_ui" not in c.cookies
        assert "CSRF" in r.text
        with httpx.Client(base_url=ui_gateway.root, timeout=30) as attacker:
            foreign = login_token(attacker)  # a valid token, for another browser's cookie
        r = c.post("/ui/login", data={**form, "csrf_token": foreign})
        assert r.status_code == 403 and "rankgate_ui" not in c.cookies
        r = c.post("/ui/login", data={**form, "csrf_token": token})
        assert r.status_code == 303 and "rankgate_ui" in c.cookies
        assert c.get("/ui/api/overview").status_code == 200


def test_the_login_form_in_the_browser_carries_its_token(ui_gateway: Server, browser: Any):
    browser.delete_all_cookies()
    browser.get(ui_gateway.root + "/ui/login")
    token = wait(browser).until(lambda d: d.find_elements(By.NAME, "csrf_token"))
    assert len(token[0].get_attribute("value")) == 64
    # the pre-session cookie is HttpOnly: page scripts cannot read it to forge a token
    assert browser.execute_script("return document.cookie") == ""
