"""The snippets of docs/ratelimit.md do what the page says they do.

Only what the snippets show; fastkit.ratelimit itself is tested in tests/test_ratelimit.py.
"""

from __future__ import annotations

import os
import uuid

import pytest
from fastapi.testclient import TestClient

from tests.docs._snippets import load

REDIS_URL = os.environ.get("FASTKIT_TEST_REDIS_URL")


def test_route_and_router_limits() -> None:
    module = load("ratelimit_route")
    # Stopped clocks: "2/second" must not refill while the requests run, however slowly.
    for limit in (module.search_limit, module.reports.dependencies[0].dependency):
        limit.store.clock = lambda: 1_000.0
    with TestClient(module.app) as client:
        searches = [client.get("/search", params={"q": "x"}) for _ in range(6)]
        assert [r.status_code for r in searches] == [200] * 5 + [429]
        assert searches[0].headers["RateLimit-Policy"] == (
            '"default-60s";q=5;w=60, "default-3600s";q=100;w=3600'
        )
        assert searches[5].headers["Retry-After"] == "12"
        assert searches[5].json() == {
            "code": 429,
            "message": "Too many requests; retry after 12 s.",
            "data": None,
        }
        # Each route under the router has its own budget; /reports/1 and /reports/2 share one.
        reports = [client.get(f"/reports/{n}").status_code for n in (1, 2, 3)]
        assert reports == [200, 200, 429]
        openapi = client.get("/openapi.json").json()["paths"]
        assert "429" in openapi["/search"]["get"]["responses"]
        assert "429" in openapi["/reports/{report_id}"]["get"]["responses"]


class FrozenClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_global_limit_in_setup() -> None:
    module = load("ratelimit_middleware")
    module.per_client.store.clock = FrozenClock()  # no refill while the test runs
    with TestClient(module.app) as client:
        hop = {"X-Forwarded-For": "203.0.113.7"}
        statuses = [client.get("/nowhere", headers=hop).status_code for _ in range(101)]
        assert statuses == [404] * 100 + [429]  # 404s count: the limit runs before routing
        assert client.get("/health", headers=hop).status_code == 200  # exempt
        # The proxy's entry is the client: another address has its own budget.
        other = client.get("/items/1", headers={"X-Forwarded-For": "203.0.113.8"})
        assert other.status_code == 200
        assert other.headers["RateLimit"].startswith('"global-1s";r=99;')


@pytest.fixture
def redis_env(monkeypatch: pytest.MonkeyPatch) -> str:
    if not REDIS_URL:
        pytest.skip("FASTKIT_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0)")
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    monkeypatch.setenv("JWT_SECRET", "docs-ratelimit-snippet-secret-0123456789abcdef")
    return REDIS_URL


def test_per_user_limit_and_login_throttle_on_redis(
    redis_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    prefix = f"fastkit-test:{uuid.uuid4().hex}:"
    monkeypatch.setenv("REDIS_PREFIX", prefix)  # this test's own keys
    module = load("ratelimit_user")
    # A stopped clock for the GCRA step: "10/second" must not refill while 11 requests run
    # (a slow run, over 100 ms, let the 11th through).
    monkeypatch.setattr(module.store._backend, "clock", lambda: 1_800_000_000.0)
    with TestClient(module.app) as client:

        def token(username: str) -> dict[str, str]:
            form = {"username": username, "password": "secret"}
            issued = client.post("/auth/token", data=form).json()["access_token"]
            return {"Authorization": f"Bearer {issued}"}

        ann, bob = token("ann"), token("bob")
        ann_posts = [client.post("/notes", params={"text": "hi"}, headers=ann) for _ in range(11)]
        assert [r.status_code for r in ann_posts] == [200] * 10 + [429]
        assert client.post("/notes", params={"text": "hi"}, headers=bob).status_code == 200
        wrong = [
            client.post("/auth/token", data={"username": "cy", "password": "no"}).status_code
            for _ in range(11)
        ]
        assert wrong == [400] * 10 + [429]
    sync = redis.Redis.from_url(redis_env)
    try:
        keys = list(sync.scan_iter(match=f"{prefix}*"))
        assert keys  # revocation, rate limits and login counts all under the prefix
        sync.delete(*keys)
    finally:
        sync.close()
