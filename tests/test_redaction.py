"""``gateway/redaction.py``: what it promises to remove is removed; ordinary text is kept."""

from __future__ import annotations

import base64
import random
import string

import pytest

from rankgate.gateway.redaction import Redactor

R = Redactor()

SECRETS = {
    "email": ["jane.doe+billing@example.co.uk", "x@y.io", "first_last-99@sub.mail.example.org"],
    "api_key": ["sk-" + "aB3" * 16, "sk-proj-" + "Zq9_-x" * 8, "sk-ant-api03-" + "k" * 40,
                "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", "rg-" + "Q7w_e-Rt" * 5],
    "bearer": ["Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dBjftJeZ4CVP",
               "bearer 0123456789abcdefXYZ"],
    "aws_key": ["AKIAIOSFODNN7EXAMPLE", "ASIAY34FZKBOKMUTVV7A"],
    "github": ["ghp_" + "A1b2C3d4E5f6" * 3, "github_pat_11ABCDEFG0" + "x" * 30],
    "slack": ["xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp", "xoxp-1234567890-abc"],
    "hex": ["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "0123456789abcdef0123456789ABCDEF"],
}

ORDINARY = [
    "What is the capital of France? Answer in one word.",
    "def getUserAccountSettingsFromDatabase2(self, user_id: int) -> dict: ...",
    "class XMLHttpRequestHandlerFactoryBuilder42: pass",
    "The bearer instruments were negotiable; a bearer of bad news arrived.",
    "Install scikit-learn (import sklearn) and use sk-learn style pipelines.",
    "Request id 3fa85f64-5717-4562-b3fc-2c963f66afa6 failed at 2024-05-01T10:00:00Z.",
    "Open /Users/JohnSmith/Documents/Project1/src/main.py and https://example.com/a/b?c=d.",
    "HTTP_PROXY_CONFIGURATION_VARIABLE_NAME_2024 = 'x'",
    "pneumonoultramicroscopicsilicovolcanoconiosis is a long word.",
    "Call me at 12:30; the order number is 12345678901234567890123456789012.",
    "Use @decorator syntax, e.g. @app.get('/users') or user@localhost without a domain.",
]


@pytest.mark.parametrize(("kind", "secret"),
                         [(k, s) for k, v in SECRETS.items() for s in v])
def test_each_kind_of_secret_is_replaced_by_its_marker(kind: str, secret: str) -> None:
    out = R.text(f"before {secret} after")
    assert out == f"before [REDACTED:{kind}] after"


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert R.text(text) == text


def test_secrets_inside_longer_runs_are_still_found() -> None:
    """A path or identifier that is not random-looking never hides a secret inside it."""
    hexkey = "0123456789abcdef" * 2
    assert R.text(f"path/to/{hexkey}") == "path/to/[REDACTED:hex]"
    assert R.text(f"key_{hexkey}") == "key_[REDACTED:hex]"
    assert R.text("url=https://api.x.com/v1?key=sk-" + "aB3" * 8) == \
        "url=https://api.x.com/v1?key=[REDACTED:api_key]"
    assert R.text("mailto:someone@example.com,other@example.org") == \
        "mailto:[REDACTED:email],[REDACTED:email]"


def test_random_base64_secrets_of_no_known_format_are_mostly_caught() -> None:
    """The ``token`` kind is a guess; its documented catch rates hold (seeded sample)."""
    rng = random.Random(7)
    urlsafe = string.ascii_letters + string.digits + "-_"

    def rate(make: object, n: int = 4000) -> float:
        return sum("[REDACTED:" in R.text(f"x {make()} y") for _ in range(n)) / n  # type: ignore[operator]

    r32 = rate(lambda: "".join(rng.choice(urlsafe) for _ in range(32)))
    r43 = rate(lambda: "".join(rng.choice(urlsafe) for _ in range(43)))
    b64 = rate(lambda: base64.b64encode(rng.randbytes(30)).decode())
    assert r32 >= 0.96 and r43 >= 0.98 and b64 >= 0.96, (r32, r43, b64)


def test_extra_patterns_apply_after_the_builtins() -> None:
    r = Redactor([r"\b\d{3}-\d{2}-\d{4}\b", r"(?i)project\s+falcon"])
    assert r.text("SSN 123-45-6789 for Project Falcon, mail a@b.co") == \
        "SSN [REDACTED:custom] for [REDACTED:custom], mail [REDACTED:email]"


def test_a_bad_extra_pattern_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"redact pattern 1 \('a\('\)"):
        Redactor(["ok", "a("])


def test_value_redacts_every_string_but_roles_and_types() -> None:
    msgs = [{"role": "user", "content": [
        {"type": "text", "text": "my mail is a@b.co"},
        {"type": "image_url", "image_url": {"url": "https://x.io/i.png?token=sk-" + "q1W" * 8}}]},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "send", "arguments": '{"to": "bob@corp.com"}'}}]}]
    out = R.value(msgs)
    assert out[0]["content"][0] == {"type": "text", "text": "my mail is [REDACTED:email]"}
    assert out[0]["content"][1]["image_url"]["url"] == "https://x.io/i.png?token=[REDACTED:api_key]"
    assert out[1]["tool_calls"][0]["function"]["arguments"] == '{"to": "[REDACTED:email]"}'
    assert out[1]["role"] == "assistant" and out[1]["content"] is None
