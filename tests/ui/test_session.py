"""``gateway/ui/session.py``: session cookies and CSRF tokens."""

from __future__ import annotations

from rankgate.gateway.ui.session import Sessions


def test_a_session_cookie_is_valid_until_it_expires():
    s = Sessions("admin", max_age_s=100)
    cookie = s.issue(now=1000.0)
    assert s.valid(cookie, now=1050.0)
    assert not s.valid(cookie, now=1101.0)


def test_a_tampered_or_foreign_cookie_is_refused():
    s = Sessions("admin")
    cookie = s.issue()
    expiry, nonce, sig = cookie.split(".")
    assert not s.valid(f"{int(expiry) + 10**6}.{nonce}.{sig}")  # a longer life, same sig
    assert not s.valid(f"{expiry}.{nonce}.{'0' * len(sig)}")
    assert not s.valid(Sessions("another admin key").issue())
    assert not s.valid("") and not s.valid(None) and not s.valid("a.b")


def test_csrf_tokens_differ_per_session_and_per_admin_key():
    s = Sessions("admin")
    a, b = s.issue(), s.issue()
    assert s.csrf_for(a) != s.csrf_for(b)
    assert Sessions("admin").csrf_for(a) == s.csrf_for(a)  # replicas sharing the key agree
    assert Sessions("other").csrf_for(a) != s.csrf_for(a)


def test_a_session_id_and_expiry_are_read_from_the_cookie():
    s = Sessions("admin", max_age_s=100)
    cookie = s.issue(now=1000.0)
    assert Sessions.expiry(cookie) == 1100.0
    assert Sessions.session_id(cookie) == cookie.split(".")[1]
    assert Sessions.session_id(s.issue()) != Sessions.session_id(cookie)


def test_a_login_token_is_bound_to_its_pre_session_cookie_and_admin_key():
    s = Sessions("admin")
    assert s.login_csrf_ok("nonce-a", s.login_csrf("nonce-a"))
    assert not s.login_csrf_ok("nonce-b", s.login_csrf("nonce-a"))
    assert not s.login_csrf_ok("nonce-a", Sessions("other").login_csrf("nonce-a"))
    assert not s.login_csrf_ok(None, s.login_csrf("nonce-a"))
    assert not s.login_csrf_ok("nonce-a", None) and not s.login_csrf_ok("nonce-a", "")
