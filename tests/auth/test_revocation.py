"""fastkit.auth.revocation: in memory always, against real Redis when its URL is set.

With ``FASTKIT_TEST_REDIS_URL`` set, an unreachable server fails the Redis tests (they never
skip); without it they skip with a reason. Each Redis test uses its own key prefix and deletes
its keys afterwards. Redis clients belong to the event loop that opened their connections:
each test opens and closes its clients in one loop (the test's, or its TestClient portal's).

No ``from __future__ import annotations``: see ``tests/auth/support.py``.
"""

import time
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
import redis
import redis.asyncio
from fastapi.testclient import TestClient

import fastkit.auth.revocation as revocation_module
from fastkit import ServiceUnavailable
from fastkit.auth import (
    MemoryRevocationStore,
    RedisRevocationStore,
    RevocationPolicy,
    RevocationStore,
    TokenService,
)
from tests.auth.support import (
    INVALID_TOKEN,
    INVALID_TOKEN_CHALLENGE,
    SECRET,
    bearer,
    build_app,
)
from tests.store_support import DEAD_REDIS_URL, REDIS_URL

UNAVAILABLE = {"code": 503, "message": "Token revocation check unavailable", "data": None}


def soon() -> int:
    """An expiry between 0.2 and 1.2 seconds away (exp claims are whole seconds)."""
    now = time.time()
    return int(now) + (1 if now % 1 < 0.8 else 2)


# --- MemoryRevocationStore ---------------------------------------------------------------


@pytest.mark.anyio
async def test_memory_revoke_is_true_once_then_false() -> None:
    store = MemoryRevocationStore()
    expires_at = int(time.time()) + 60
    assert await store.revoke("jti-1", expires_at) is True
    assert await store.revoke("jti-1", expires_at) is False
    assert await store.revoke("jti-1", expires_at + 60) is False
    assert await store.revoke("jti-2", expires_at) is True
    assert len(store) == 2


@pytest.mark.anyio
async def test_memory_is_revoked_is_true_if_any_id_is() -> None:
    store = MemoryRevocationStore()
    await store.revoke("fam:f1", int(time.time()) + 60)
    assert await store.is_revoked("fam:f1") is True
    assert await store.is_revoked("jti-x", "fam:f1") is True
    assert await store.is_revoked("fam:f1", "jti-x") is True
    assert await store.is_revoked("jti-x", "fam:f2") is False
    assert await store.is_revoked() is False


@pytest.mark.anyio
async def test_memory_entries_are_forgotten_once_the_token_expires() -> None:
    store = MemoryRevocationStore()
    expires_at = soon()
    assert await store.revoke("short-lived", expires_at) is True
    assert await store.revoke("long-lived", expires_at + 60) is True
    assert await store.is_revoked("short-lived") is True

    await anyio.sleep(expires_at - time.time() + 0.05)

    assert await store.is_revoked("short-lived") is False
    assert await store.is_revoked("long-lived") is True
    assert len(store) == 1


# --- RevocationPolicy ----------------------------------------------------------------------


class RecordingStore(MemoryRevocationStore):
    """A memory store that also keeps every ``revoke`` call's (id, expires_at)."""

    def __init__(self) -> None:
        super().__init__()
        self.revoked: list[tuple[str, int]] = []

    async def revoke(self, jti: str, expires_at: int) -> bool:
        self.revoked.append((jti, expires_at))
        return await super().revoke(jti, expires_at)


def policy_for(**options: Any) -> tuple[RevocationPolicy, RecordingStore, TokenService]:
    tokens = TokenService(secret=SECRET, **options)
    store = RecordingStore()
    return RevocationPolicy(store, tokens), store, tokens


@pytest.mark.anyio
async def test_policy_revoke_token_ends_only_that_token() -> None:
    policy, store, tokens = policy_for(leeway=3)
    claims = tokens.decode(tokens.create_access_token("1", family="f1"))
    sibling = tokens.decode(tokens.create_access_token("1", family="f1"))
    assert await policy.revoke_token(claims) is True
    assert await policy.revoke_token(claims) is False
    assert await policy.is_revoked(claims) is True
    assert await policy.is_revoked(sibling) is False
    assert await policy.is_login_revoked(claims) is False
    # Kept until the token is refused as expired anyway: exp + leeway + 1.
    assert store.revoked[0] == (claims.jti, claims.exp + 3 + 1)


@pytest.mark.anyio
async def test_policy_revoke_login_ends_every_token_of_the_login() -> None:
    policy, store, tokens = policy_for(refresh_ttl=600, leeway=2)
    claims = tokens.decode(tokens.create_access_token("1", family="f1"))
    refresh = tokens.decode(tokens.create_refresh_token("1", family="f1"), expected_type="refresh")
    other_login = tokens.decode(tokens.create_access_token("1", family="f2"))
    before = int(time.time())
    await policy.revoke_login(claims)
    assert await policy.is_revoked(refresh) is True
    assert await policy.is_login_revoked(refresh) is True
    assert await policy.is_revoked(other_login) is False
    # The login is kept as revoked until any refresh token it may have has expired.
    (family, until) = store.revoked[1]
    assert family != claims.jti
    assert before + 600 + 2 + 1 <= until <= int(time.time()) + 600 + 2 + 1


@pytest.mark.anyio
async def test_policy_revoke_login_without_a_family_ends_the_token() -> None:
    policy, store, tokens = policy_for()
    claims = tokens.decode(tokens.create_access_token("1"))
    await policy.revoke_login(claims)
    assert await policy.is_revoked(claims) is True
    assert await policy.is_login_revoked(claims) is False
    assert len(store.revoked) == 1


@pytest.mark.anyio
async def test_policy_rotate_once_then_a_replay_ends_the_login() -> None:
    policy, _store, tokens = policy_for()
    used = tokens.decode(tokens.create_refresh_token("1", family="f1"), expected_type="refresh")
    next_one = tokens.decode(tokens.create_refresh_token("1", family="f1"), expected_type="refresh")
    assert await policy.rotate(used) is True
    assert await policy.is_login_revoked(used) is False
    assert await policy.is_revoked(next_one) is False
    assert await policy.rotate(used) is False
    assert await policy.is_login_revoked(next_one) is True
    assert await policy.is_revoked(next_one) is True


@pytest.mark.anyio
async def test_policy_of_racing_rotations_exactly_one_wins() -> None:
    policy, _store, tokens = policy_for()
    used = tokens.decode(tokens.create_refresh_token("1", family="f1"), expected_type="refresh")
    results: list[bool] = []

    async def rotate() -> None:
        results.append(await policy.rotate(used))

    async with anyio.create_task_group() as group:
        for _ in range(5):
            group.start_soon(rotate)
    assert sorted(results) == [False, False, False, False, True]


def test_jwtauth_policy_uses_its_store() -> None:
    store = MemoryRevocationStore()
    kit = build_app(revocation=store)
    assert kit.auth.revocation_policy.store is store
    assert kit.auth.revocation_policy.tokens is kit.tokens


def test_stores_satisfy_the_protocol() -> None:
    assert isinstance(MemoryRevocationStore(), RevocationStore)
    assert isinstance(RedisRevocationStore(client=object()), RevocationStore)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({}, id="neither"),
        pytest.param({"url": DEAD_REDIS_URL, "client": object()}, id="both"),
    ],
)
def test_redis_store_needs_url_or_client(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="either url= or client="):
        RedisRevocationStore(**kwargs)


# --- fail closed -------------------------------------------------------------------------


def test_unreachable_redis_fails_closed_with_503(caplog: pytest.LogCaptureFixture) -> None:
    store = RedisRevocationStore(DEAD_REDIS_URL, timeout=0.2)
    kit = build_app(revocation=store)
    access = kit.tokens.create_access_token("1", scopes=["items:read"], family="fam-1")
    refresh = kit.tokens.create_refresh_token("1", family="fam-1")
    with TestClient(kit.app) as client:
        try:
            responses = {
                "current_user": client.get("/me", headers=bearer(access)),
                "claims": client.get("/claims", headers=bearer(access)),
                "scoped": client.get("/items", headers=bearer(access)),
                "optional_user": client.get("/maybe", headers=bearer(access)),
                "refresh": client.post("/auth/refresh", json={"refresh_token": refresh}),
                "logout": client.post("/auth/logout", headers=bearer(access)),
            }
        finally:
            assert client.portal is not None
            client.portal.call(store.aclose)
    for name, response in responses.items():
        assert (name, response.status_code, response.json()) == (name, 503, UNAVAILABLE)
    errors = [r for r in caplog.records if r.name == "fastkit.auth" and r.levelname == "ERROR"]
    assert errors
    assert all("Revocation store unreachable" in r.getMessage() for r in errors)


@pytest.mark.anyio
async def test_unreachable_redis_raises_service_unavailable() -> None:
    store = RedisRevocationStore(DEAD_REDIS_URL, timeout=0.2)
    try:
        with pytest.raises(ServiceUnavailable):
            await store.is_revoked("jti")
        with pytest.raises(ServiceUnavailable):
            await store.revoke("jti", int(time.time()) + 60)
    finally:
        await store.aclose()


# --- RedisRevocationStore against a real server ------------------------------------------


@pytest.mark.anyio
async def test_redis_revoke_and_is_revoked(redis_prefix: str) -> None:
    assert REDIS_URL is not None
    store = RedisRevocationStore(REDIS_URL, prefix=redis_prefix)
    try:
        expires_at = int(time.time()) + 100
        assert await store.revoke("jti-1", expires_at) is True
        assert await store.revoke("jti-1", expires_at) is False
        assert await store.is_revoked("jti-1") is True
        assert await store.is_revoked("jti-x", "jti-1") is True
        assert await store.is_revoked("jti-x", "fam:other") is False
        assert await store.is_revoked() is False

        key = f"{redis_prefix}jti-1"
        assert await store.client.keys(f"{redis_prefix}*") == [key.encode()]
        assert 98 <= await store.client.ttl(key) <= 100  # forgotten when the token expires
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_redis_store_with_a_ready_client(redis_prefix: str) -> None:
    assert REDIS_URL is not None
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    store = RedisRevocationStore(client=client, prefix=redis_prefix)
    try:
        assert await store.revoke("jti-1", int(time.time()) + 60) is True
        assert await client.exists(f"{redis_prefix}jti-1") == 1
        assert await store.is_revoked("jti-1") is True
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_a_check_survives_its_connection_being_killed(redis_prefix: str) -> None:
    # A Redis restart or CLIENT KILL leaves a dead connection in the pool: the next check
    # must not answer 503 for that alone (it is tried once more on a new connection).
    assert REDIS_URL is not None
    store = RedisRevocationStore(REDIS_URL, prefix=redis_prefix)
    admin = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        await store.revoke("jti-1", int(time.time()) + 60)
        assert await store.is_revoked("jti-1") is True
        await store.client.client_setname("fastkit-test-victim")
        victims = [c for c in await admin.client_list() if c["name"] == "fastkit-test-victim"]
        assert victims
        for victim in victims:
            await admin.client_kill_filter(_id=victim["id"])
        assert await store.is_revoked("jti-1") is True
        assert await store.is_revoked("jti-2") is False
    finally:
        await admin.aclose()
        await store.aclose()


@pytest.mark.anyio
async def test_redis_entries_expire(redis_prefix: str) -> None:
    assert REDIS_URL is not None
    store = RedisRevocationStore(REDIS_URL, prefix=redis_prefix)
    try:
        expires_at = soon()
        assert await store.revoke("short-lived", expires_at) is True
        assert await store.is_revoked("short-lived") is True
        await anyio.sleep(expires_at - time.time() + 1.05)  # Redis TTLs are whole seconds
        assert await store.is_revoked("short-lived") is False
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_redis_revocation_lasts_as_long_as_the_token(
    redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert REDIS_URL is not None
    # Half past a second, so that the token has 9.5 s left: a TTL in whole seconds
    # rounded down (9 s) would free it early.
    now = int(time.time()) + 0.5
    monkeypatch.setattr(revocation_module, "time", SimpleNamespace(time=lambda: now))
    store = RedisRevocationStore(REDIS_URL, prefix=redis_prefix)
    try:
        await store.revoke("jti-1", int(now) + 10)
        assert 9_000 < await store.client.pttl(f"{redis_prefix}jti-1") <= 9_500
    finally:
        await store.aclose()


def test_two_apps_sharing_redis_share_revocations(redis_prefix: str) -> None:
    """Two workers (own TokenService, own store, own event loop) and one Redis."""
    assert REDIS_URL is not None
    store_a = RedisRevocationStore(REDIS_URL, prefix=redis_prefix)
    store_b = RedisRevocationStore(REDIS_URL, prefix=redis_prefix)
    app_a, app_b = build_app(revocation=store_a), build_app(revocation=store_b)
    with TestClient(app_a.app) as a, TestClient(app_b.app) as b:
        try:
            token = app_a.login(a)
            assert b.get("/me", headers=bearer(token["access_token"])).status_code == 200

            assert a.post("/auth/logout", headers=bearer(token["access_token"])).status_code == 200

            refused = b.get("/me", headers=bearer(token["access_token"]))
            assert (refused.status_code, refused.json()) == (401, INVALID_TOKEN)
            assert refused.headers["www-authenticate"] == INVALID_TOKEN_CHALLENGE
            again = b.post("/auth/refresh", json={"refresh_token": token["refresh_token"]})
            assert again.status_code == 401

            # Reuse detection across workers: rotate on B, replay the old token on A.
            login = app_a.login(a)
            rotated = b.post("/auth/refresh", json={"refresh_token": login["refresh_token"]})
            assert rotated.status_code == 200
            replay = a.post("/auth/refresh", json={"refresh_token": login["refresh_token"]})
            assert replay.status_code == 401
            new_access = rotated.json()["access_token"]
            assert b.get("/me", headers=bearer(new_access)).status_code == 401
        finally:
            assert a.portal is not None
            assert b.portal is not None
            a.portal.call(store_a.aclose)
            b.portal.call(store_b.aclose)


def test_stores_of_the_wrong_kind_are_refused_with_the_right_class_named() -> None:
    from fastkit.stores import MemoryStore, RedisStore

    redis_store = RedisStore("redis://127.0.0.1:1/0")
    with pytest.raises(TypeError, match=r"RedisRevocationStore\(store=\.\.\.\)"):
        MemoryRevocationStore(redis_store)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"pass a store as RedisRevocationStore\(store=\.\.\.\)"):
        RedisRevocationStore(redis_store)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="store= takes a RedisStore"):
        RedisRevocationStore(store=MemoryStore())  # type: ignore[arg-type]
