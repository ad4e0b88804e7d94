"""A gateway without an admin key (open, loopback only): its dashboard shows the data to
loopback clients read-only, says so, and refuses every change."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.conftest import Server
from tests.ui.conftest import PANEL


def test_open_gateway_dashboard_is_read_only_and_says_so(start_gateway: Callable[..., Server]):
    gw = start_gateway(panel=PANEL[:1], name="ui-open")
    with httpx.Client(base_url=gw.root, timeout=30) as c:
        assert c.post("/v1/chat/completions", json={
            "model": PANEL[0]["id"], "messages": [{"role": "user", "content": "hi"}]}
        ).status_code == 200
        page = c.get("/ui")
        assert page.status_code == 200 and 'data-testid="readonly"' in page.text
        assert "Read-only" in page.text and "csrf_token" not in page.text
        assert c.get("/ui/api/overview").json()["requests"] == 1
        keys = c.get("/ui/keys")
        assert keys.status_code == 200 and "create-key" not in keys.text
        for path in ("/ui/keys", "/ui/keys/k/revoke", "/ui/requests/r/feedback"):
            refused = c.post(path, data={"name": "x"})
            assert refused.status_code == 403 and "read-only" in refused.text, path
        assert c.get("/ui/login", follow_redirects=False).status_code == 303
