"""Virtual keys on a real SQLite database: hashing, lookup, revocation, 401/403 on ``Auth``."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
import sqlalchemy as sa

from rankgate.gateway.auth import Auth, InvalidKeySettings, KeyInfo, KeyStore
from rankgate.gateway.errors import APIError

ADMIN_KEY = "admin-secret-for-tests"


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class CountingStore(KeyStore):
    """The real store, counting how often the database is asked."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.lookups = 0

    def lookup(self, secret: str) -> KeyInfo | None:
        self.lookups += 1
        return super().lookup(secret)


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'rankgate.db'}"


@pytest.fixture
def store(db_url):
    s = CountingStore(db_url)
    yield s
    s.close()


def test_secret_is_stored_only_as_its_hash(store, db_url, tmp_path):
    secret, info = store.create("team-a")
    assert secret.startswith("rg-") and len(secret) >= 40
    assert info.prefix == secret[: len(info.prefix)] and len(info.prefix) < 16
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(sa.text("select * from api_keys"))]
    engine.dispose()
    flat = " ".join(str(v) for row in rows for v in row)
    assert secret not in flat
    assert hashlib.sha256(secret.encode()).hexdigest() in flat
    store.engine.dispose()
    assert secret.encode() not in (tmp_path / "rankgate.db").read_bytes()


def test_each_key_gets_a_distinct_secret_and_id(store):
    made = [store.create(f"k{i}") for i in range(20)]
    assert len({s for s, _ in made}) == 20 and len({i.id for _, i in made}) == 20


def test_lookup_returns_the_keys_settings(store):
    secret, info = store.create("team-a", models=["m1", "auto"], rpm=60, tpm=1000,
                                budget_usd=5, budget_period="week",
                                routing={"min_quality": 0.8})
    found = store.lookup(secret)
    assert found == info
    assert found.models == ("m1", "auto") and found.rpm == 60 and found.tpm == 1000
    assert found.budget_usd == 5.0 and found.budget_period == "week"
    assert found.routing == {"min_quality": 0.8} and not found.admin
    assert store.lookup(secret + "x") is None
    assert store.lookup("rg-" + "A" * 43) is None


def test_revoked_key_is_not_found_and_revoking_twice_says_so(store):
    secret, info = store.create("team-a")
    assert store.revoke(info.id) is True
    assert store.lookup(secret) is None
    assert store.revoke(info.id) is False
    assert store.revoke("key-unknown") is False
    assert store.list() == []
    listed = store.list(include_revoked=True)
    assert [k["id"] for k in listed] == [info.id] and listed[0]["revoked_at"] is not None


def test_list_never_shows_secret_or_hash(store):
    secret, _ = store.create("team-a", rpm=5)
    text = repr(store.list(include_revoked=True))
    assert secret not in text and hashlib.sha256(secret.encode()).hexdigest() not in text


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"name": ""}, "name"),
    ({"name": "a", "rpm": 0}, "rpm"),
    ({"name": "a", "tpm": 2.5}, "tpm"),
    ({"name": "a", "budget_usd": -1}, "budget_usd"),
    ({"name": "a", "budget_period": "year"}, "budget_period"),
    ({"name": "a", "models": []}, "models"),
    ({"name": "a", "routing": {"min_quality": 1.5}}, "routing.min_quality"),
    ({"name": "a", "routing": {"min_quality": 0.5, "lambda": 1}}, "routing"),
    ({"name": "a", "routing": {"speed": 1}}, "routing"),
])
def test_create_rejects_unusable_settings(store, kwargs, param):
    with pytest.raises(InvalidKeySettings) as e:
        store.create(**kwargs)
    assert e.value.param == param
    assert store.list(include_revoked=True) == []


def _auth(store, clock=None, admin_key=ADMIN_KEY) -> Auth:
    return Auth(store, admin_key, cache_ttl_s=5.0, clock=clock or Clock())


def test_without_admin_key_the_gateway_is_open(store):
    auth = _auth(store, admin_key=None)
    assert not auth.enabled
    assert asyncio.run(auth.authenticate(None)) is None
    assert asyncio.run(auth.authenticate("Bearer whatever")) is None


def test_missing_key_is_401(store):
    auth = _auth(store)
    for header in (None, "", "Bearer ", "Basic abc"):
        with pytest.raises(APIError) as e:
            asyncio.run(auth.authenticate(header))
        assert e.value.status == 401 and e.value.code == "missing_api_key"


def test_unknown_key_is_401_and_the_message_does_not_echo_it(store):
    auth = _auth(store)
    bogus = "rg-thisisnotarealkeybutlooksabitlikeone123"
    with pytest.raises(APIError) as e:
        asyncio.run(auth.authenticate(f"Bearer {bogus}"))
    assert e.value.status == 401 and e.value.code == "invalid_api_key"
    assert bogus not in e.value.message and bogus[:10] not in e.value.message


def test_admin_key_authenticates_as_admin(store):
    key = asyncio.run(_auth(store).authenticate(f"Bearer {ADMIN_KEY}"))
    assert key is not None and key.admin and key.models is None and key.rpm is None


def test_virtual_key_authenticates_by_bearer_or_x_api_key(store):
    secret, info = store.create("team-a")
    auth = _auth(store)
    assert asyncio.run(auth.authenticate(f"Bearer {secret}")) == info
    assert asyncio.run(auth.authenticate(f"bearer  {secret} ")) == info
    assert asyncio.run(auth.authenticate(None, x_api_key=secret)) == info


def test_lookups_are_cached_and_concurrent_ones_share_one_query(store):
    secret, info = store.create("team-a")
    auth = _auth(store)

    async def burst() -> list[KeyInfo | None]:
        return await asyncio.gather(*(auth.authenticate(f"Bearer {secret}") for _ in range(50)))

    assert asyncio.run(burst()) == [info] * 50
    assert asyncio.run(auth.authenticate(f"Bearer {secret}")) == info
    assert store.lookups == 1


def test_revocation_elsewhere_takes_effect_within_the_cache_ttl(store, db_url):
    secret, info = store.create("team-a")
    clock = Clock()
    auth = _auth(store, clock)
    assert asyncio.run(auth.authenticate(f"Bearer {secret}")) == info
    other_process = KeyStore(db_url)
    assert other_process.revoke(info.id)
    other_process.close()
    clock.t += 4.9  # still cached here
    assert asyncio.run(auth.authenticate(f"Bearer {secret}")) == info
    clock.t += 0.2
    with pytest.raises(APIError) as e:
        asyncio.run(auth.authenticate(f"Bearer {secret}"))
    assert e.value.status == 401


def test_forget_makes_a_local_revocation_immediate(store):
    secret, info = store.create("team-a")
    auth = _auth(store)
    asyncio.run(auth.authenticate(f"Bearer {secret}"))
    store.revoke(info.id)
    auth.forget(info.id)
    with pytest.raises(APIError):
        asyncio.run(auth.authenticate(f"Bearer {secret}"))


def test_unreachable_store_is_503_not_401(tmp_path):
    store = KeyStore(f"sqlite:///{tmp_path / 'k.db'}")
    secret, _ = store.create("team-a")
    with store.engine.begin() as conn:
        conn.execute(sa.text("drop table api_keys"))
    with pytest.raises(APIError) as e:
        asyncio.run(_auth(store).authenticate(f"Bearer {secret}"))
    assert e.value.status == 503 and secret not in e.value.message
    store.close()


def test_authorize_limits_models_and_names_the_key_not_its_secret(store):
    secret, key = store.create("team-a", models=["m1", "m2"])
    auth = _auth(store)
    auth.authorize(key, "m1")
    for model in ("m3", "auto", "auto:knn"):
        with pytest.raises(APIError) as e:
            auth.authorize(key, model)
        assert e.value.status == 403 and e.value.code == "model_not_allowed"
        assert key.id in e.value.message and secret not in e.value.message


def test_auto_is_allowed_iff_listed_or_all_models(store):
    auth = _auth(store)
    _, with_auto = store.create("a", models=["m1", "auto"])
    _, everything = store.create("b")
    for key in (with_auto, everything, None):
        auth.authorize(key, "auto")
        auth.authorize(key, "auto:knn")
    auth.authorize(asyncio.run(auth.authenticate(f"Bearer {ADMIN_KEY}")), "anything")
    _, only_router = store.create("c", models=["auto:knn"])
    auth.authorize(only_router, "auto:knn")
    with pytest.raises(APIError):
        auth.authorize(only_router, "auto:other")


def test_keys_are_shared_through_postgresql(postgres_url):
    """Two gateway processes on one PostgreSQL database see the same keys and revocations."""
    here, there = KeyStore(postgres_url), KeyStore(postgres_url)
    try:
        secret, info = here.create("pg-team", models=["m1"], budget_usd=3)
        assert there.lookup(secret) == info
        assert info.id in [k["id"] for k in there.list()]
        assert there.revoke(info.id) and here.lookup(secret) is None
    finally:
        here.close()
        there.close()
