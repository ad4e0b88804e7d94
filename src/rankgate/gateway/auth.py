"""Who is calling: the admin key, virtual keys, and which models a key may use.

The admin key comes from the environment (``RANKGATE_ADMIN_KEY``); without it the gateway is
open and every request carries ``key=None``. Virtual keys live in the ``api_keys`` table on the
same database as the request log, so every gateway process that shares the database shares the
keys. Only the sha256 of a secret is stored — secrets are random 256-bit tokens, so a plain hash
is as good as a slow one — and a secret is shown exactly once, when it is created.

Secrets never appear in logs or error messages; those name a key by its id or its ``prefix``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from rankgate.gateway.errors import APIError
from rankgate.gateway.knob import KNOB_FIELDS, KnobError, knob_fields
from rankgate.store.key_store import (
    StoredKey,
    add_key,
    ensure_key_table,
    find_active_key,
    find_key,
    list_keys,
    revoke_key,
)
from rankgate.store.tables import make_engine

log = logging.getLogger("rankgate.auth")

SECRET_PREFIX = "rg-"
PREFIX_CHARS = 8  # of the random part, shown as the key's non-secret prefix
BUDGET_PERIODS = ("day", "week", "month", "total")
ROUTING_KNOBS = tuple(KNOB_FIELDS)  # every knob a request's ``rankgate`` field can hold
ADMIN_ID = "admin"


@dataclass(frozen=True)
class KeyInfo:
    """What a request carries after authentication: the key's identity and its limits."""

    id: str
    name: str
    prefix: str
    models: tuple[str, ...] | None  # None = all models ("auto" allowed iff None or listed)
    rpm: int | None
    tpm: int | None
    budget_usd: float | None
    budget_period: str  # "day" | "week" | "month" | "total", UTC calendar periods
    routing: dict[str, float] | None  # default knob, e.g. {"min_quality": 0.8, "confidence": 0.9}
    admin: bool = False  # the admin key itself: all models, no limits
    log_bodies: bool | None = None  # store its request bodies; None: the server's default

    def __hash__(self) -> int:  # ``routing`` is a dict; the id alone identifies a key
        return hash(self.id)

    @property
    def label(self) -> str:
        """How errors and logs name the key (never the secret)."""
        return f"{self.id} ({self.prefix}…)"

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "prefix": self.prefix,
                "models": list(self.models) if self.models is not None else None,
                "rpm": self.rpm, "tpm": self.tpm, "budget_usd": self.budget_usd,
                "budget_period": self.budget_period, "routing": self.routing,
                "log_bodies": self.log_bodies}


ADMIN = KeyInfo(id=ADMIN_ID, name="admin", prefix="admin", models=None, rpm=None, tpm=None,
                budget_usd=None, budget_period="total", routing=None, admin=True)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class InvalidKeySettings(ValueError):
    """A key setting that can't be used; ``param`` names it (the admin API answers 400)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def _positive_int(name: str, v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise InvalidKeySettings(name, f"{name} must be a whole number >= 1 "
                                 "(or absent for no limit)")
    return v


def validate_limits(name: Any, models: Any, rpm: Any, tpm: Any, budget_usd: Any,
                    budget_period: Any, routing: Any, log_bodies: Any = None) -> dict[str, Any]:
    """Check a key's settings; ``InvalidKeySettings`` (a ``ValueError``) says what is wrong.

    Returns the normalised values (models as a de-duplicated list, routing as floats)."""
    bad = InvalidKeySettings
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise bad("name", "name must be a non-empty string of at most 200 characters")
    if models is not None:
        if (not isinstance(models, list | tuple) or not models
                or not all(isinstance(m, str) and m.strip() for m in models)):
            raise bad("models", "models must be a non-empty list of model ids "
                      "(or absent for all models)")
        models = list(dict.fromkeys(m.strip() for m in models))
    rpm, tpm = _positive_int("rpm", rpm), _positive_int("tpm", tpm)
    if budget_usd is not None:
        if (isinstance(budget_usd, bool) or not isinstance(budget_usd, int | float)
                or not math.isfinite(budget_usd) or budget_usd < 0):
            raise bad("budget_usd", "budget_usd must be a finite number >= 0 (or absent)")
        budget_usd = float(budget_usd)
    if budget_period not in BUDGET_PERIODS:
        raise bad("budget_period", f"budget_period must be one of {', '.join(BUDGET_PERIODS)}")
    if routing is not None:
        try:  # exactly what a request's ``rankgate`` field may hold, checked the same way
            routing = knob_fields(routing)
        except KnobError as e:
            raise bad(f"routing.{e.field}" if e.field else "routing",
                      f"routing{'.' + e.field if e.field else ''} {e}") from None
    if log_bodies is not None and not isinstance(log_bodies, bool):
        raise bad("log_bodies", "log_bodies must be true or false (or absent for the "
                  "server's default)")
    return {"name": name.strip(), "models": models, "rpm": rpm, "tpm": tpm,
            "budget_usd": budget_usd, "budget_period": budget_period, "routing": routing,
            "log_bodies": log_bodies}


def _info(key: StoredKey) -> KeyInfo:
    return KeyInfo(id=key.id, name=key.name, prefix=key.prefix, models=key.models,
                   rpm=key.rpm, tpm=key.tpm, budget_usd=key.budget_usd,
                   budget_period=key.budget_period, routing=key.routing,
                   log_bodies=key.log_bodies)


def _listed(key: StoredKey) -> dict[str, Any]:
    return {**_info(key).public(), "created_at": key.created_at, "revoked_at": key.revoked_at}


class KeyStore:
    """Virtual keys in the database (SQLite or PostgreSQL), through ``store/key_store.py``.
    Blocking calls: from async code, run them in a thread (``Auth`` does)."""

    def __init__(self, url_or_engine: str | Engine) -> None:
        if isinstance(url_or_engine, str):
            self.engine = make_engine(url_or_engine)
            self._owns_engine = True
        else:
            self.engine = url_or_engine
            ensure_key_table(self.engine)
            self._owns_engine = False

    def create(self, name: str, models: list[str] | tuple[str, ...] | None = None,
               rpm: int | None = None, tpm: int | None = None, budget_usd: float | None = None,
               budget_period: str = "month", routing: dict[str, float] | None = None,
               log_bodies: bool | None = None) -> tuple[str, KeyInfo]:
        """A new key: ``(secret, info)``. The secret is returned here and never again.
        ``log_bodies`` True/False overrides the server's ``--log-bodies`` for this key."""
        v = validate_limits(name, models, rpm, tpm, budget_usd, budget_period, routing,
                            log_bodies)
        token = secrets.token_urlsafe(32)  # 256 random bits
        secret = SECRET_PREFIX + token
        key = StoredKey(id="key-" + secrets.token_hex(6), name=v["name"],
                        prefix=SECRET_PREFIX + token[:PREFIX_CHARS],
                        models=tuple(v["models"]) if v["models"] is not None else None,
                        rpm=v["rpm"], tpm=v["tpm"], budget_usd=v["budget_usd"],
                        budget_period=v["budget_period"], routing=v["routing"],
                        created_at=time.time(), log_bodies=v["log_bodies"])
        add_key(self.engine, key, hash_secret(secret))
        return secret, _info(key)

    def list(self, include_revoked: bool = False) -> list[dict[str, Any]]:
        """Every key's settings, oldest first — never the secret or its hash."""
        return [_listed(k) for k in list_keys(self.engine, include_revoked=include_revoked)]

    def get(self, key_id: str) -> dict[str, Any] | None:
        """One key's settings as ``list`` shows them (revoked ones too); None if unknown."""
        key = find_key(self.engine, key_id)
        return _listed(key) if key is not None else None

    def revoke(self, key_id: str) -> bool:
        """Revoke an active key; False if there is no such active key."""
        return revoke_key(self.engine, key_id, at=time.time())

    def lookup(self, secret: str) -> KeyInfo | None:
        """The active key with this secret, or None (unknown or revoked)."""
        key = find_active_key(self.engine, hash_secret(secret))
        return _info(key) if key is not None else None

    def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()


def _unauthorized(message: str, code: str = "invalid_api_key") -> APIError:
    return APIError(401, message, type="invalid_request_error", code=code,
                    headers={"WWW-Authenticate": "Bearer"})


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (None if absent or empty)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class Auth:
    """Authenticate requests and check which models a key may use.

    Lookups are cached in-process for ``cache_ttl_s`` (unknown secrets too, so a flood of bad
    keys doesn't become a flood of queries), and concurrent lookups of one secret share a
    single query. So a key revoked in any process stops working everywhere within
    ``cache_ttl_s``; ``forget`` makes it immediate in this process.
    """

    def __init__(self, store: KeyStore, admin_key: str | None, cache_ttl_s: float = 5.0,
                 cache_max: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self._admin_hash = hash_secret(admin_key) if admin_key else None
        self.cache_ttl_s = cache_ttl_s
        self.cache_max = cache_max
        self._clock = clock
        # sha256(secret) -> (key or None, expires at); the secrets themselves are not kept
        self._cache: OrderedDict[str, tuple[KeyInfo | None, float]] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[KeyInfo | None]] = {}

    @property
    def enabled(self) -> bool:
        """True iff an admin key is configured; otherwise the gateway is open."""
        return self._admin_hash is not None

    def is_admin(self, authorization: str | None) -> bool:
        token = bearer_token(authorization)
        return (self._admin_hash is not None and token is not None
                and hmac.compare_digest(hash_secret(token), self._admin_hash))

    async def authenticate(self, authorization: str | None,
                           x_api_key: str | None = None) -> KeyInfo | None:
        """The caller's key (None when the gateway is open), or an ``APIError`` 401.

        Accepts ``Authorization: Bearer <secret>``, or else the ``x-api-key`` header value."""
        if not self.enabled:
            return None
        token = bearer_token(authorization) or (x_api_key.strip() if x_api_key else None)
        if not token:
            raise _unauthorized("Missing API key: send 'Authorization: Bearer <key>'.",
                                code="missing_api_key")
        digest = hash_secret(token)
        assert self._admin_hash is not None
        if hmac.compare_digest(digest, self._admin_hash):
            return ADMIN
        key = await self._lookup(token, digest)
        if key is None:
            raise _unauthorized("Invalid API key: it is unknown or has been revoked.")
        return key

    async def _lookup(self, secret: str, digest: str) -> KeyInfo | None:
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > self._clock():
            return hit[0]
        task = self._inflight.get(digest)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch(secret, digest))
            self._inflight[digest] = task

            def done(t: asyncio.Task[KeyInfo | None]) -> None:
                self._inflight.pop(digest, None)
                if not t.cancelled():
                    t.exception()  # retrieved: every waiter re-raises it itself

            task.add_done_callback(done)
        # shielded: a caller that goes away doesn't cancel the lookup others wait for
        return await asyncio.shield(task)

    async def _fetch(self, secret: str, digest: str) -> KeyInfo | None:
        try:
            key = await asyncio.to_thread(self.store.lookup, secret)
        except Exception as e:
            log.exception("key lookup failed")  # the query carries the hash, never the secret
            raise APIError(503, "The key store is unavailable; try again.",
                           type="server_error", code="key_store_unavailable") from e
        self._cache[digest] = (key, self._clock() + self.cache_ttl_s)
        self._cache.move_to_end(digest)
        while len(self._cache) > self.cache_max:
            self._cache.popitem(last=False)
        return key

    def forget(self, key_id: str) -> None:
        """Drop a key from this process's cache (after revoking it here)."""
        for digest in [d for d, (k, _) in self._cache.items() if k is not None and k.id == key_id]:
            del self._cache[digest]

    @staticmethod
    def allowed(key: KeyInfo | None, model: str) -> bool:
        """Whether ``key`` may ask for ``model``; ``auto``/``auto:<router>`` need "auto" listed
        (or the exact ``auto:<router>``)."""
        if key is None or key.admin or key.models is None:
            return True
        if model in key.models:
            return True
        return model.startswith("auto:") and "auto" in key.models

    def authorize(self, key: KeyInfo | None, model: str) -> None:
        """Raise ``APIError`` 403 unless ``key`` may use ``model``."""
        if not self.allowed(key, model):
            assert key is not None and key.models is not None
            raise APIError(403, f"Key {key.label} may not use model {model!r}; it may use "
                           f"{', '.join(key.models)}.", type="permission_error", param="model",
                           code="model_not_allowed")
