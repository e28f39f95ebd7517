"""auth_router's login throttle (`LoginThrottle`): per username, per client, on a store.

Each test builds the auth app of ``tests/auth/support.py`` with the throttle it needs; the
throttle's MemoryStore reads a fake clock the tests step, so nothing sleeps for the limits.
With ``FASTKIT_TEST_REDIS_URL`` set, the Redis test shares one budget between two apps
(two workers); without it, it skips with a reason. It has a key prefix of its own and
deletes its keys afterwards.

No ``from __future__ import annotations``: see ``tests/auth/support.py``.
"""

import asyncio
from collections import Counter
from typing import Any

import anyio
import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

import fastkit
from fastkit.auth import JWTAuth, TokenClaims, TokenService, auth_router
from fastkit.ratelimit import LoginThrottle
from fastkit.stores import MemoryStore, RedisStore, Store
from tests.auth.support import PASSWORDS, SECRET, AuthApp, build_app, swagger_form
from tests.store_support import DEAD_REDIS_URL, REDIS_URL, FakeClock

try:
    import httpx2 as httpx
except ImportError:  # Python 3.10: httpx2 needs 3.11+
    import httpx  # type: ignore[no-redef]

WRONG = "not-the-password"


def throttled_app(clock: FakeClock, **throttle: Any) -> AuthApp:
    return build_app(login_throttle=LoginThrottle(store=MemoryStore(clock=clock), **throttle))


def post_login(client: TestClient, username: str, password: str) -> Any:
    return client.post("/auth/token", data=swagger_form(username, password))


def authenticate_calls(kit: AuthApp) -> int:
    return sum(1 for name, _, _ in kit.calls if name == "authenticate")


def assert_slow_down(response: Any) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["error"] == "slow_down"
    assert isinstance(body["error_description"], str)
    assert body["error_description"]
    assert body["code"] == 429
    assert response.headers["Cache-Control"] == "no-store"
    assert int(response.headers["Retry-After"]) >= 1


def test_wrong_passwords_are_throttled_then_the_clock_frees_them(clock: FakeClock) -> None:
    kit = throttled_app(clock)
    with TestClient(kit.app) as client:
        failures = [post_login(client, "alice", WRONG) for _ in range(10)]
        assert [(r.status_code, r.json()["error"]) for r in failures] == [
            (400, "invalid_grant")
        ] * 10
        checked = authenticate_calls(kit)
        eleventh = post_login(client, "alice", WRONG)
        assert_slow_down(eleventh)
        assert eleventh.headers["Retry-After"] == "6"  # 10/minute: a unit back every 6 s
        # Throttled, even the right password is refused, and no password is checked.
        right = post_login(client, "alice", PASSWORDS["alice"])
        assert_slow_down(right)
        assert authenticate_calls(kit) == checked
        clock.now += 6
        assert post_login(client, "alice", PASSWORDS["alice"]).status_code == 200


def test_successful_logins_give_their_units_back(clock: FakeClock) -> None:
    kit = throttled_app(clock)
    with TestClient(kit.app) as client:
        assert [post_login(client, "alice", WRONG).status_code for _ in range(9)] == [400] * 9
        logins = [post_login(client, "alice", PASSWORDS["alice"]) for _ in range(30)]
        assert [r.status_code for r in logins] == [200] * 30
        # The 30 successes took nothing: the 10th failure is still allowed, the 11th not.
        assert post_login(client, "alice", WRONG).status_code == 400
        assert_slow_down(post_login(client, "alice", WRONG))


def test_usernames_are_case_insensitive_and_stripped(clock: FakeClock) -> None:
    kit = throttled_app(clock)
    # Case, spaces, fullwidth letters (NFKC) and invisible characters: one budget.
    spellings = ["Alice", " alice ", "\uff21lice", "al\u200bice", "aLiCe\t"]
    with TestClient(kit.app) as client:
        codes = [post_login(client, spellings[n % 5], WRONG).status_code for n in range(10)]
        assert codes == [400] * 10
        assert_slow_down(post_login(client, "alice", PASSWORDS["alice"]))
        assert post_login(client, "bob", PASSWORDS["bob"]).status_code == 200  # another user


def test_per_client_budget_across_usernames(clock: FakeClock) -> None:
    kit = throttled_app(clock)
    with TestClient(kit.app, client=("10.0.0.1", 1)) as client:
        codes = Counter(post_login(client, f"user{n}", WRONG).status_code for n in range(100))
        assert codes == {400: 100}
        assert_slow_down(post_login(client, "user100", WRONG))
        assert_slow_down(post_login(client, "alice", PASSWORDS["alice"]))
    with TestClient(kit.app, client=("10.0.0.2", 1)) as client:
        assert post_login(client, "user101", WRONG).status_code == 400
        assert post_login(client, "alice", PASSWORDS["alice"]).status_code == 200


@pytest.mark.anyio
async def test_concurrent_guesses_cannot_pass_the_budget() -> None:
    # Every attempt takes its unit before the password check, so 50 guesses in flight at
    # once cannot all pass a check made before any of them failed.
    calls: list[str] = []

    async def slow_authenticate(username: str, password: str) -> dict[str, str] | None:
        calls.append(username)
        await anyio.sleep(0.05)
        return None

    def load(claims: TokenClaims) -> dict[str, str]:
        return {"id": claims.sub}

    auth: JWTAuth[dict[str, str]] = JWTAuth(TokenService(secret=SECRET), user_loader=load)
    app = FastAPI()
    fastkit.setup(app)
    app.include_router(
        auth_router(
            auth, authenticate=slow_authenticate, login_throttle=LoginThrottle("5/minute", None)
        )
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        answers = await asyncio.gather(
            *(client.post("/auth/token", data=swagger_form("alice", WRONG)) for _ in range(50))
        )
    assert len(calls) == 5
    assert Counter(r.status_code for r in answers) == {400: 5, 429: 45}
    assert {r.json()["error"] for r in answers if r.status_code == 429} == {"slow_down"}


def test_login_throttle_none_turns_it_off() -> None:
    kit = build_app(login_throttle=None)
    with TestClient(kit.app) as client:
        failures = [post_login(client, "alice", WRONG) for _ in range(20)]
        assert [(r.status_code, r.json()["error"]) for r in failures] == [
            (400, "invalid_grant")
        ] * 20
        assert post_login(client, "alice", PASSWORDS["alice"]).status_code == 200


def test_each_router_gets_its_own_default_throttle() -> None:
    # The default is a new LoginThrottle() per router, not one shared by every app.
    first, second = build_app(), build_app()
    with TestClient(first.app) as client:
        for _ in range(10):
            post_login(client, "alice", WRONG)
        assert_slow_down(post_login(client, "alice", WRONG))
    with TestClient(second.app) as client:
        assert post_login(client, "alice", PASSWORDS["alice"]).status_code == 200


def test_token_endpoint_documents_429() -> None:
    with TestClient(build_app().app) as client:
        operation = client.get("/openapi.json").json()["paths"]["/auth/token"]["post"]
    answer = operation["responses"]["429"]
    assert "slow_down" in answer["description"]
    assert "Retry-After" in answer["headers"]
    assert "temporarily_unavailable" in operation["responses"]["503"]["description"]


def login_on_a_dead_store(**throttle: Any) -> tuple[Any, AuthApp]:
    """Alice's right password, with the throttle's Redis down; the answer and the app."""
    dead = RedisStore(DEAD_REDIS_URL, timeout=0.2)
    kit = build_app(login_throttle=LoginThrottle(store=dead, **throttle))
    with TestClient(kit.app) as client:
        try:
            response = post_login(client, "alice", PASSWORDS["alice"])
        finally:
            assert client.portal is not None
            client.portal.call(dead.aclose)
    return response, kit


@pytest.mark.parametrize(
    ("on_error", "status"), [("allow", 200), ("deny", 503)], ids=["allow", "deny"]
)
def test_throttle_store_outage(on_error: str, status: int) -> None:
    response, _ = login_on_a_dead_store(on_error=on_error)
    assert response.status_code == status, response.text
    if status == 503:  # an OAuth2 error the clients raise on, and never cached
        assert response.json()["error"] == "temporarily_unavailable"
        assert response.headers["Cache-Control"] == "no-store"


def test_the_throttle_fails_closed_by_default() -> None:
    # Revocation checks fail closed; so does counting guesses: an outage must not open
    # the door to unthrottled password guessing.
    response, kit = login_on_a_dead_store()
    assert response.status_code == 503
    assert authenticate_calls(kit) == 0  # no password was checked


# --- Redis: two workers --------------------------------------------------------------------


def test_two_workers_on_redis_share_the_budget(redis_prefix: str, clock: FakeClock) -> None:
    assert REDIS_URL is not None
    stores: list[Store] = []
    kits: list[AuthApp] = []
    for _ in range(2):  # each worker has its own client and throttle; they share the prefix
        store = RedisStore(REDIS_URL, prefix=redis_prefix, clock=clock, timeout=10.0)
        stores.append(store)
        kits.append(build_app(login_throttle=LoginThrottle("3/minute", None, store=store)))
    with TestClient(kits[0].app) as one, TestClient(kits[1].app) as two:
        try:
            assert post_login(one, "alice", WRONG).status_code == 400
            assert post_login(two, "alice", WRONG).status_code == 400
            assert post_login(one, "alice", WRONG).status_code == 400
            assert_slow_down(post_login(two, "alice", PASSWORDS["alice"]))
            assert_slow_down(post_login(one, "alice", WRONG))
            assert post_login(two, "bob", PASSWORDS["bob"]).status_code == 200
        finally:
            for client, store in ((one, stores[0]), (two, stores[1])):
                assert client.portal is not None
                client.portal.call(store.aclose)
    keys = redis.Redis.from_url(REDIS_URL)
    try:
        names = [key.decode() for key in keys.scan_iter(match=f"{redis_prefix}*")]
    finally:
        keys.close()
    assert names, "the throttle kept nothing in Redis"
    assert not any("alice" in name or "bob" in name for name in names), names  # hashed
