"""fastkit.ratelimit: RateLimit on routes and routers, key functions, the middleware.

Every behaviour that touches a store runs on a MemoryStore and, when
``FASTKIT_TEST_REDIS_URL`` is set, on a real Redis (the ``store`` fixture, ids
``memory``/``redis``); without the URL the Redis case skips with a reason, and with it set an
unreachable server fails it. Both stores read a fake clock the tests step, so no test sleeps.
Each Redis test has a key prefix of its own and deletes its keys afterwards.

Redis clients belong to the event loop that opened their connections: `serve` closes the
store's connections in the TestClient's loop before that loop ends.


No ``from __future__ import annotations``: the endpoints are built inside functions.
"""

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import redis
from fastapi import APIRouter, Depends, FastAPI, WebSocket
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from starlette.requests import Request

import fastkit
from fastkit.auth import JWTAuth, TokenClaims, TokenService
from fastkit.errors import NotFound, install_exception_handlers
from fastkit.ratelimit import (
    RateLimit,
    RateLimitMiddleware,
    api_key,
    client_ip,
    jwt_subject,
    parse_rate,
)
from fastkit.stores import MemoryStore, RedisStore, Store, Window
from tests.store_support import DEAD_REDIS_URL, REDIS_URL, FakeClock

try:
    import httpx2 as httpx
except ImportError:  # Python 3.10: httpx2 needs 3.11+
    import httpx  # type: ignore[no-redef]

SECRET = "fastkit-tests-secret-0123456789abcdef"
UNAVAILABLE = {"code": 503, "message": "Rate limit check unavailable; retry later.", "data": None}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, clock: FakeClock) -> Store:
    """A MemoryStore, then a RedisStore, both reading the fake clock for GCRA."""
    if request.param == "memory":
        return MemoryStore(clock=clock)
    prefix = request.getfixturevalue("redis_prefix")
    return RedisStore(REDIS_URL, prefix=prefix, clock=clock, timeout=10.0)


@contextmanager
def serve(app: FastAPI, *stores: Store, **options: Any) -> Iterator[TestClient]:
    """A TestClient (one event loop) that closes ``stores``' connections in that loop."""
    with TestClient(app, **options) as client:
        try:
            yield client
        finally:
            assert client.portal is not None
            for each in stores:
                client.portal.call(each.aclose)


def stored_keys(store: Store) -> list[str]:
    """Every key the store holds (MemoryStore internals; Redis KEYS under the prefix)."""
    if isinstance(store, MemoryStore):
        return list(store._data)
    assert isinstance(store, RedisStore)
    assert REDIS_URL is not None
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return [key.decode() for key in client.scan_iter(match=f"{store.prefix}*")]
    finally:
        client.close()


_ITEM = re.compile(r'"([^"\\]*)"((?:;[a-z][a-z0-9_.*-]*=-?\d+)*)')


def parse_items(value: str) -> dict[str, dict[str, int]]:
    """A ``RateLimit``/``RateLimit-Policy`` field: a structured-field list of strings with
    integer parameters (``"default-1s";q=3;w=1, ...``), as ``{name: {param: int}}``."""
    items: dict[str, dict[str, int]] = {}
    for member in value.split(","):
        match = _ITEM.fullmatch(member.strip())
        assert match is not None, f"not a list of sf-string items: {value!r}"
        params = [p.split("=") for p in match.group(2).split(";")[1:]]
        assert match.group(1) not in items, f"two items named {match.group(1)!r}: {value!r}"
        items[match.group(1)] = {name: int(number) for name, number in params}
    return items


def remaining(response: Any) -> dict[str, int]:
    """``r`` of each item of the response's ``RateLimit`` field."""
    return {
        name: params["r"] for name, params in parse_items(response.headers["RateLimit"]).items()
    }


def limited_app(*limits: RateLimit, errors: Any = "envelope", middleware: bool = True) -> FastAPI:
    """``/limited`` and ``/things/{n}`` (``n=0``: 404; ``?q`` an int) behind ``limits``.

    ``middleware=False``: the error handlers only, without fastkit's middleware (the fields
    then ride on FastAPI's Response parameter and the error handlers).
    """
    app = FastAPI()
    if middleware:
        fastkit.setup(app, errors=errors)
    else:
        install_exception_handlers(app, style=errors)
    guard = [Depends(limit) for limit in limits]

    @app.get("/limited", dependencies=guard)
    async def limited() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/things/{n}", dependencies=guard)
    async def thing(n: int, q: int = 0) -> dict[str, int]:
        if n == 0:
            raise NotFound("No thing 0")
        return {"n": n, "q": q}

    @app.get("/free")
    async def free() -> dict[str, bool]:
        return {"ok": True}

    return app


# --- parse_rate and construction ---------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "windows"),
    [
        ("10/second", [Window(10, 1.0)]),
        ("1000/hour", [Window(1000, 3600.0)]),
        ("5 per 10 minutes", [Window(5, 600.0)]),
        ("1/3s", [Window(1, 3.0)]),
        ("10/second;1000/hour", [Window(10, 1.0), Window(1000, 3600.0)]),
        ("10/s, 100/m", [Window(10, 1.0), Window(100, 60.0)]),
        ("1000/hour;10/second", [Window(10, 1.0), Window(1000, 3600.0)]),
        ("7/DAY", [Window(7, 86400.0)]),
        ("10/second;", [Window(10, 1.0)]),
    ],
    ids=["second", "hour", "per-n-minutes", "n-seconds", "two", "comma-short", "sorted", "upper",
         "trailing-separator"],
)  # fmt: skip
def test_parse_rate_reads_the_windows(rate: str, windows: list[Window]) -> None:
    assert list(parse_rate(rate)) == windows


@pytest.mark.parametrize(
    ("rate", "hint"),
    [
        ("", r'like "10/second'),
        (" ; ", r'like "10/second'),
        ("10", r'write it like "10/second"'),
        ("ten/second", r'write it like "10/second"'),
        ("10/fortnight", r'write it like "10/second"'),
        ("0/second", r"at least 1 request per period.*like"),
        ("10/second;20/second", r"same period; keep one of them"),
        ("10/0seconds", r"period.*like"),
    ],
    ids=["empty", "blank-parts", "no-period", "words", "unknown-unit", "zero-count",
         "same-period", "zero-period"],
)  # fmt: skip
def test_parse_rate_refuses_and_says_how_to_write_it(rate: str, hint: str) -> None:
    with pytest.raises(ValueError, match=hint):
        parse_rate(rate)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"on_error": "maybe"}, 'on_error must be "allow" or "deny"'),
        ({"cost": 0}, "cost must be a whole number of at least 1"),
        ({"cost": True}, "cost must be a whole number of at least 1"),
        ({"name": "a:b"}, "name must be letters, digits"),
        ({"name": ""}, "name must be letters, digits"),
    ],
    ids=["on_error", "cost-0", "cost-bool", "name-colon", "name-empty"],
)
def test_rate_limit_refuses_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RateLimit("10/second", **options)


def test_rate_limit_refuses_an_empty_window_list() -> None:
    with pytest.raises(ValueError, match="list of Window objects"):
        RateLimit([])


# --- the dependency: burst, pacing, windows, fields ---------------------------------------


def test_burst_pacing_and_fields(store: Store, clock: FakeClock) -> None:
    limit = RateLimit("3/second;5/minute", store=store)
    with serve(limited_app(limit), store) as client:
        passed = [client.get("/limited") for _ in range(3)]
        assert [r.status_code for r in passed] == [200, 200, 200]
        policy = parse_items(passed[0].headers["RateLimit-Policy"])
        assert policy == {"default-1s": {"q": 3, "w": 1}, "default-60s": {"q": 5, "w": 60}}
        assert [remaining(r) for r in passed] == [
            {"default-1s": 2, "default-60s": 4},
            {"default-1s": 1, "default-60s": 3},
            {"default-1s": 0, "default-60s": 2},
        ]
        assert all(set(parse_items(r.headers["RateLimit"])["default-1s"]) == {"r", "t"}
                   for r in passed)  # fmt: skip

        refused = client.get("/limited")
        assert refused.status_code == 429
        body = refused.json()
        assert body == {"code": 429, "message": body["message"], "data": None}
        assert "retry after 1 s" in body["message"]
        assert refused.headers["Retry-After"] == "1"
        assert parse_items(refused.headers["RateLimit-Policy"]) == policy
        assert parse_items(refused.headers["RateLimit"]) == {
            "default-1s": {"r": 0, "t": 1},
            "default-60s": {"r": 2, "t": 12},  # 5/minute: one unit back every 12 s
        }
        # A refused request takes nothing: the next one sees the same state.
        again = client.get("/limited")
        assert (again.status_code, remaining(again)) == (429, remaining(refused))

        clock.now += 1 / 3  # one emission interval of 3/second: one more passes
        assert (client.get("/limited").status_code, client.get("/limited").status_code) == (
            200,
            429,
        )

        clock.now += 1  # the period of 3/second: its burst is back, but 5/minute is not
        fifth = client.get("/limited")
        assert (fifth.status_code, remaining(fifth)) == (200, {"default-1s": 2, "default-60s": 0})
        sixth = client.get("/limited")
        assert sixth.status_code == 429
        assert remaining(sixth) == {"default-1s": 2, "default-60s": 0}  # 1s free, took nothing
        # 5 units at 12 s each end 60 s after the start; 4/3 s have passed: 10.67 s to wait.
        assert sixth.headers["Retry-After"] == "11"


def test_the_burst_comes_back_after_the_period(store: Store, clock: FakeClock) -> None:
    limit = RateLimit("3/second", store=store)
    with serve(limited_app(limit), store) as client:
        for _ in range(3):
            assert [client.get("/limited").status_code for _ in range(4)] == [200, 200, 200, 429]
            clock.now += 1


def test_cost_and_headers_options(store: Store) -> None:
    heavy = RateLimit("4/second", store=store, cost=2)
    quiet = RateLimit("1/second", store=store, name="quiet", headers=False)
    app = FastAPI()
    fastkit.setup(app)

    @app.get("/heavy", dependencies=[Depends(heavy)])
    async def heavy_route() -> None:
        return None

    @app.get("/quiet", dependencies=[Depends(quiet)])
    async def quiet_route() -> None:
        return None

    with serve(app, store) as client:
        codes = [client.get("/heavy") for _ in range(3)]
        assert [r.status_code for r in codes] == [200, 200, 429]
        assert remaining(codes[0]) == {"default-1s": 2}
        first, second = client.get("/quiet"), client.get("/quiet")
        assert (first.status_code, second.status_code) == (200, 429)
        assert "RateLimit" not in first.headers
        assert "RateLimit" not in second.headers
        assert second.headers["Retry-After"] == "1"


def test_unlimited_route_has_no_fields(store: Store) -> None:
    with serve(limited_app(RateLimit("1/second", store=store)), store) as client:
        answers = [client.get("/free") for _ in range(5)]
    assert [r.status_code for r in answers] == [200] * 5
    assert not any("RateLimit" in r.headers or "RateLimit-Policy" in r.headers for r in answers)


@pytest.mark.parametrize("errors", ["envelope", "problem"])
def test_fields_ride_on_errors_the_route_raises(store: Store, errors: str) -> None:
    limit = RateLimit("3/second", store=store)
    with serve(limited_app(limit, errors=errors), store) as client:
        not_found = client.get("/things/0")
        invalid = client.get("/things/1", params={"q": "x"})
        ok = client.get("/things/1")
        refused = client.get("/things/1")
    assert (not_found.status_code, remaining(not_found)) == (404, {"default-1s": 2})
    assert (invalid.status_code, remaining(invalid)) == (422, {"default-1s": 1})
    assert (ok.status_code, remaining(ok)) == (200, {"default-1s": 0})
    for response in (not_found, invalid, refused):
        assert parse_items(response.headers["RateLimit-Policy"]) == {"default-1s": {"q": 3, "w": 1}}
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    if errors == "problem":
        assert refused.headers["content-type"] == "application/problem+json"
        body = refused.json()
        assert (body["status"], body["title"]) == (429, "Too Many Requests")
        assert not_found.headers["content-type"] == "application/problem+json"
    else:
        assert refused.headers["content-type"] == "application/json"
        assert refused.json()["code"] == 429


def test_two_limits_on_one_route_list_both_windows(store: Store) -> None:
    fast = RateLimit("3/second", store=store)
    daily = RateLimit("100/day", store=store, name="daily")
    with serve(limited_app(fast, daily), store) as client:
        ok = client.get("/things/1")
    assert parse_items(ok.headers["RateLimit-Policy"]) == {
        "default-1s": {"q": 3, "w": 1},
        "daily-86400s": {"q": 100, "w": 86400},
    }
    assert remaining(ok) == {"default-1s": 2, "daily-86400s": 99}


@pytest.mark.parametrize("middleware", [True, False], ids=["setup", "handlers-only"])
def test_two_limits_on_one_route_list_both_windows_on_errors(
    store: Store, middleware: bool
) -> None:
    fast = RateLimit("3/second", store=store)
    daily = RateLimit("2/day", store=store, name="daily")
    with serve(limited_app(fast, daily, middleware=middleware), store) as client:
        not_found = client.get("/things/0")
        bad_query = client.get("/things/1?q=x")
        refused = client.get("/things/1")  # the daily limit is spent: 429 names both
    assert (not_found.status_code, bad_query.status_code, refused.status_code) == (404, 422, 429)
    for response in (not_found, bad_query, refused):
        assert set(parse_items(response.headers["RateLimit-Policy"])) == {
            "default-1s",
            "daily-86400s",
        }
        assert set(remaining(response)) == {"default-1s", "daily-86400s"}
    assert remaining(refused)["daily-86400s"] == 0


def test_fields_reach_a_route_that_returns_a_response(store: Store) -> None:
    limit = RateLimit("3/second", store=store)
    app = FastAPI()
    fastkit.setup(app)

    @app.get("/direct", dependencies=[Depends(limit)])
    async def direct() -> JSONResponse:
        return JSONResponse({"ok": True})

    with serve(app, store) as client:
        response = client.get("/direct")
    assert response.status_code == 200
    assert remaining(response) == {"default-1s": 2}


# --- per_route and routers ----------------------------------------------------------------


def items_app(limit: RateLimit) -> FastAPI:
    app = FastAPI()
    fastkit.setup(app)

    @app.get("/items/{item_id}", dependencies=[Depends(limit)])
    async def read_item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.post("/items/{item_id}", dependencies=[Depends(limit)])
    async def write_item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/other", dependencies=[Depends(limit)])
    async def other() -> dict[str, bool]:
        return {"ok": True}

    return app


def test_per_route_buckets_by_method_and_path_template(store: Store) -> None:
    limit = RateLimit("2/second", store=store)
    with serve(items_app(limit), store) as client:
        # /items/1 and /items/2 are one route, /items/{item_id}: one budget.
        assert [client.get(f"/items/{n}").status_code for n in (1, 2, 3)] == [200, 200, 429]
        # POST on that path, and another route, have budgets of their own.
        assert [client.post(f"/items/{n}").status_code for n in (1, 2, 3)] == [200, 200, 429]
        assert [client.get("/other").status_code for _ in range(3)] == [200, 200, 429]


def test_per_route_false_is_one_budget_across_routes(store: Store) -> None:
    limit = RateLimit("2/second", store=store, per_route=False, name="shared")
    with serve(items_app(limit), store) as client:
        codes = [
            client.get("/items/1").status_code,
            client.get("/other").status_code,
            client.post("/items/1").status_code,
            client.get("/other").status_code,
        ]
    assert codes == [200, 200, 429, 429]


def test_routes_declared_alike_in_two_routers_have_their_own_budgets(store: Store) -> None:
    # FastAPI 0.16x keeps the route as declared ("/{item_id}") in scope["route"]; the bucket
    # must use the full template, or /users/1 and /teams/1 would share one.
    limit = RateLimit("2/second", store=store)
    app = FastAPI()
    fastkit.setup(app)
    for prefix in ("/users", "/teams"):
        router = APIRouter(prefix=prefix)

        @router.get("/{item_id}", dependencies=[Depends(limit)])
        async def read(item_id: int) -> dict[str, int]:
            return {"id": item_id}

        app.include_router(router, prefix="/v1")
    with serve(app, store) as client:
        users = [client.get(f"/v1/users/{n}").status_code for n in range(3)]
        teams = [client.get(f"/v1/teams/{n}").status_code for n in range(3)]
    assert users == [200, 200, 429]
    assert teams == [200, 200, 429]


def test_a_limit_on_a_router_limits_all_its_routes(store: Store) -> None:
    limit = RateLimit("2/second", store=store)
    router = APIRouter(prefix="/r", dependencies=[Depends(limit)])

    @router.get("/a")
    async def route_a() -> None:
        return None

    @router.get("/b/{n}")
    async def route_b(n: int) -> None:
        return None

    app = FastAPI()
    fastkit.setup(app)
    app.include_router(router)

    @app.get("/outside")
    async def outside() -> None:
        return None

    with serve(app, store) as client:
        a = [client.get("/r/a") for _ in range(3)]
        b = [client.get(f"/r/b/{n}") for n in range(3)]
        out = [client.get("/outside") for _ in range(3)]
    assert [r.status_code for r in a] == [200, 200, 429]
    assert [r.status_code for r in b] == [200, 200, 429]
    assert remaining(b[0]) == {"default-1s": 1}
    assert [r.status_code for r in out] == [200, 200, 200]
    assert not any("RateLimit" in r.headers for r in out)


# --- keys: client_ip ----------------------------------------------------------------------


def make_request(host: str | None, *forwarded_for: str) -> Request:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "query_string": b"",
        "headers": [(b"x-forwarded-for", value.encode()) for value in forwarded_for],
        "client": None if host is None else (host, 1234),
    }
    return Request(scope)


@pytest.mark.parametrize(
    ("options", "host", "forwarded_for", "key"),
    [
        ({}, "10.0.0.1", (), "ip:10.0.0.1"),
        ({}, "10.0.0.1", ("203.0.113.9",), "ip:10.0.0.1"),
        ({"trusted_proxies": 1}, "10.0.0.1", ("198.51.100.1, 203.0.113.9",), "ip:203.0.113.9"),
        ({"trusted_proxies": 2}, "10.0.0.1", ("198.51.100.1, 203.0.113.9",), "ip:198.51.100.1"),
        ({"trusted_proxies": 2}, "10.0.0.1", ("1.1.1.1, 198.51.100.1, 203.0.113.9",),
         "ip:198.51.100.1"),
        ({"trusted_proxies": 1}, "10.0.0.1", ("198.51.100.1", "203.0.113.9"), "ip:203.0.113.9"),
        ({"trusted_proxies": 1}, "10.0.0.1", (), "ip:10.0.0.1"),
        ({"trusted_proxies": 1}, "10.0.0.1", ("",), "ip:10.0.0.1"),
        ({"trusted_proxies": 1}, "10.0.0.1", ("garbage",), "ip:10.0.0.1"),
        ({"trusted_proxies": 1}, "10.0.0.1", ("203.0.113.9, not-an-ip",), "ip:10.0.0.1"),
        ({"trusted_proxies": 1}, "10.0.0.1", ("2001:db8::7",), "ip:2001:db8::/64"),
        ({}, "2001:db8::1", (), "ip:2001:db8::/64"),
        ({}, "2001:db8::ffff:1", (), "ip:2001:db8::/64"),
        ({}, "2001:db8:0:1::1", (), "ip:2001:db8:0:1::/64"),
        ({"ipv6_prefix": 128}, "2001:db8::1", (), "ip:2001:db8::1/128"),
        ({"ipv6_prefix": 48}, "2001:db8:0:1::1", (), "ip:2001:db8::/48"),
        ({}, "::ffff:10.0.0.1", (), "ip:10.0.0.1"),
        ({}, "testclient", (), "ip:testclient"),
        ({}, None, (), "ip:unknown"),
    ],
    ids=["peer", "xff-ignored", "1-proxy-rightmost", "2-proxies", "2-proxies-3-hops",
         "two-headers", "1-proxy-no-xff", "1-proxy-empty-xff", "1-proxy-garbage",
         "1-proxy-garbage-rightmost", "1-proxy-ipv6", "ipv6-64", "ipv6-same-64",
         "ipv6-other-64", "ipv6-128", "ipv6-48", "ipv4-mapped", "not-an-address", "no-client"],
)  # fmt: skip
def test_client_ip_keys(
    options: dict[str, int], host: str | None, forwarded_for: tuple[str, ...], key: str
) -> None:
    assert client_ip(**options)(make_request(host, *forwarded_for)) == key


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"trusted_proxies": -1}, "trusted_proxies must be 0 or more"),
        ({"ipv6_prefix": 0}, "ipv6_prefix must be between 1 and 128"),
        ({"ipv6_prefix": 129}, "ipv6_prefix must be between 1 and 128"),
    ],
    ids=["negative-proxies", "prefix-0", "prefix-129"],
)
def test_client_ip_refuses_bad_arguments(options: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        client_ip(**options)


def test_client_ip_ignores_x_forwarded_for_by_default(store: Store) -> None:
    limit = RateLimit("2/second", store=store)
    with serve(limited_app(limit), store, client=("10.0.0.1", 1)) as client:
        codes = [
            client.get("/limited", headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code
            for n in range(4)
        ]
    assert codes == [200, 200, 429, 429]


def test_client_ip_behind_a_trusted_proxy(store: Store) -> None:
    limit = RateLimit("2/second", store=store, key=client_ip(trusted_proxies=1))
    with serve(limited_app(limit), store, client=("10.0.0.1", 1)) as client:

        def get(forwarded: str | None) -> int:
            headers = {} if forwarded is None else {"X-Forwarded-For": forwarded}
            return client.get("/limited", headers=headers).status_code

        # What the client writes on the left is forgeable; the proxy's entry is not.
        assert [get(f"{n}.1.1.1, 203.0.113.9") for n in range(3)] == [200, 200, 429]
        assert [get(f"203.0.113.{n}") for n in range(10, 14)] == [200] * 4  # four clients
        assert [get(None) for _ in range(3)] == [200, 200, 429]  # no XFF: the proxy itself
        assert get("garbage") == 429  # the proxy's budget again


def test_ipv6_clients_share_a_budget_per_64(store: Store) -> None:
    app = limited_app(RateLimit("2/second", store=store))

    def get(host: str) -> int:
        with serve(app, store, client=(host, 123)) as client:
            return client.get("/limited").status_code

    assert [get("2001:db8::1"), get("2001:db8::ffff:2"), get("2001:db8::3")] == [200, 200, 429]
    assert get("2001:db8:0:1::1") == 200  # another /64


def test_ipv4_mapped_ipv6_is_the_ipv4_client(store: Store) -> None:
    app = limited_app(RateLimit("2/second", store=store))

    def get(host: str) -> int:
        with serve(app, store, client=(host, 123)) as client:
            return client.get("/limited").status_code

    assert [get("10.0.0.1"), get("::ffff:10.0.0.1"), get("10.0.0.1")] == [200, 200, 429]


# --- keys: jwt_subject, api_key, custom -----------------------------------------------------


def test_jwt_subject_keys_by_user_and_falls_back_to_ip(store: Store) -> None:
    tokens = TokenService(secret=SECRET)

    def load(claims: TokenClaims) -> str:
        return claims.sub

    auth: JWTAuth[str] = JWTAuth(tokens, user_loader=load)
    limit = RateLimit("2/second", store=store, key=jwt_subject(auth))
    app = limited_app(limit)
    user1 = {"Authorization": "Bearer " + tokens.create_access_token("1")}
    user2 = {"Authorization": "Bearer " + tokens.create_access_token("2")}
    refresh = {"Authorization": "Bearer " + tokens.create_refresh_token("2", family="f")}
    bad = {"Authorization": "Bearer not-a-token"}
    basic = {"Authorization": "Basic dXNlcjpwYXNz"}

    with serve(app, store, client=("10.0.0.1", 1)) as client:

        def get(headers: dict[str, str] | None = None) -> int:
            return client.get("/limited", headers=headers).status_code

        assert [get(user1), get(user1), get(user1)] == [200, 200, 429]
        assert get(user2) == 200  # another user from the same address
        # No token, a bad one, a refresh token, Basic: this address's budget, not a user's.
        assert [get(), get(bad), get(refresh), get(basic)] == [200, 200, 429, 429]
        assert get(user2) == 200
    with serve(app, store, client=("10.0.0.2", 1)) as client:
        assert client.get("/limited", headers=user1).status_code == 429  # follows the user
        assert client.get("/limited").status_code == 200  # this address's own budget


def test_api_key_keys_by_a_hash_of_the_key(store: Store) -> None:
    limit = RateLimit("2/second", store=store, key=api_key())
    with serve(limited_app(limit), store) as client:

        def get(key: str | None = None) -> int:
            headers = {} if key is None else {"X-API-Key": key}
            return client.get("/limited", headers=headers).status_code

        assert [get("secret-key-one"), get("secret-key-one"), get("secret-key-one")] == [
            200,
            200,
            429,
        ]
        assert get("secret-key-two") == 200
        assert [get(), get(), get()] == [200, 200, 429]  # no header: the client's address
        assert get("secret-key-two") == 200
    keys = stored_keys(store)
    assert len(keys) == 3, keys
    assert not any("secret-key" in key for key in keys), keys
    assert sum(":key:" in key for key in keys) == 2, keys
    assert sum(key.endswith(":ip:testclient") for key in keys) == 1, keys


def test_api_key_reads_the_header_it_is_given(store: Store) -> None:
    limit = RateLimit("1/second", store=store, key=api_key("Authorization"))
    with serve(limited_app(limit), store) as client:
        codes = [
            client.get("/limited", headers={"Authorization": "Token a"}).status_code,
            client.get("/limited", headers={"Authorization": "Token b"}).status_code,
            client.get("/limited", headers={"Authorization": "Token a"}).status_code,
        ]
    assert codes == [200, 200, 429]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_custom_key_function_and_none_exempts(store: Store, kind: str) -> None:
    def tenant_sync(request: Request) -> str | None:
        return request.headers.get("x-tenant")

    async def tenant_async(request: Request) -> str | None:
        await anyio.lowlevel.checkpoint()
        return request.headers.get("x-tenant")

    limit = RateLimit("2/second", store=store, key=tenant_sync if kind == "sync" else tenant_async)
    with serve(limited_app(limit), store) as client:
        a = [client.get("/limited", headers={"X-Tenant": "a"}) for _ in range(3)]
        b = client.get("/limited", headers={"X-Tenant": "b"})
        exempt = [client.get("/limited") for _ in range(10)]
    assert [r.status_code for r in a] == [200, 200, 429]
    assert b.status_code == 200
    assert [r.status_code for r in exempt] == [200] * 10
    assert not any("RateLimit" in r.headers or "RateLimit-Policy" in r.headers for r in exempt)


def test_a_key_function_returning_an_int_is_a_type_error() -> None:
    limit = RateLimit("2/second", key=lambda request: 42)
    with (
        TestClient(limited_app(limit), raise_server_exceptions=True) as client,
        pytest.raises(TypeError, match="must return str or None, got 42"),
    ):
        client.get("/limited")


# --- store outage ---------------------------------------------------------------------------


def ratelimit_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "fastkit.ratelimit" and r.levelname == "ERROR"]


def test_store_outage_allow_serves_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    dead = RedisStore(DEAD_REDIS_URL, timeout=0.2)
    limit = RateLimit("2/second", store=dead, on_error="allow")
    with serve(limited_app(limit), dead) as client:
        answers = [client.get("/limited") for _ in range(20)]
    assert [r.status_code for r in answers] == [200] * 20
    assert not any("RateLimit" in r.headers for r in answers)
    errors = ratelimit_errors(caplog)
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "store unreachable, requests let through" in errors[0].getMessage()
    assert "Redis at 127.0.0.1:1" in errors[0].getMessage()  # says which server


def test_store_outage_deny_answers_503(caplog: pytest.LogCaptureFixture) -> None:
    dead = RedisStore(DEAD_REDIS_URL, timeout=0.2)
    limit = RateLimit("2/second", store=dead, on_error="deny")
    with serve(limited_app(limit), dead) as client:
        answers = [client.get("/limited") for _ in range(20)]
    assert [(r.status_code, r.json()) for r in answers] == [(503, UNAVAILABLE)] * 20
    errors = ratelimit_errors(caplog)
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "store unreachable, requests answered 503" in errors[0].getMessage()


# --- OpenAPI --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("errors", "media_type"),
    [("envelope", "application/json"), ("problem", "application/problem+json")],
)
def test_openapi_documents_429_and_503(errors: str, media_type: str) -> None:
    app = limited_app(RateLimit("3/second;5/minute"), errors=errors)

    @app.get("/deny", dependencies=[Depends(RateLimit("3/second", on_error="deny"))])
    async def deny() -> None:
        return None

    two = [Depends(RateLimit("3/second")), Depends(RateLimit("100/day", name="daily"))]

    @app.get("/two", dependencies=two)
    async def two_limits() -> None:
        return None

    with TestClient(app) as client:
        paths = client.get("/openapi.json").json()["paths"]
    limited = paths["/limited"]["get"]["responses"]
    answer = limited["429"]
    assert set(answer["headers"]) == {"Retry-After", "RateLimit", "RateLimit-Policy"}
    assert answer["headers"]["Retry-After"]["schema"] == {"type": "integer"}
    assert answer["content"] == {
        media_type: {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}
    }
    assert "3 per second; 5 per minute" in answer["description"]
    assert "503" not in limited
    assert "429" in paths["/things/{n}"]["get"]["responses"]
    assert "429" not in paths["/free"]["get"]["responses"]
    assert "503" in paths["/deny"]["get"]["responses"]
    both = paths["/two"]["get"]["responses"]["429"]["description"]
    assert "3 per second" in both
    assert "100 per day" in both


# --- RateLimitMiddleware --------------------------------------------------------------------


@pytest.mark.parametrize("errors", ["envelope", "problem"])
def test_middleware_limits_every_path_before_routing(
    store: Store, clock: FakeClock, errors: str
) -> None:
    calls: list[str] = []
    app = FastAPI()
    fastkit.setup(app, errors=errors)

    @app.post("/hello")
    async def hello(n: int) -> dict[str, int]:
        calls.append("hello")
        return {"n": n}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.websocket("/ws")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    limit = RateLimit("2/second", store=store)
    app.add_middleware(RateLimitMiddleware, limit=limit, exempt=["/health"])
    with serve(app, store) as client:
        passed = client.post("/hello", params={"n": 1})
        missing = client.get("/nope")
        refused = client.post("/hello", params={"n": 1})
        refused_404 = client.get("/nope")
        refused_422 = client.post("/hello")  # no n: refused before validation
        health = [client.get("/health") for _ in range(5)]
        with client.websocket_connect("/ws") as websocket:
            websocket.send_text("still here")
            echoed = websocket.receive_text()
        clock.now += 0.5
        later = client.post("/hello", params={"n": 2})
    assert (passed.status_code, remaining(passed)) == (200, {"default-1s": 1})
    assert parse_items(passed.headers["RateLimit-Policy"]) == {"default-1s": {"q": 2, "w": 1}}
    assert (missing.status_code, remaining(missing)) == (404, {"default-1s": 0})
    for response in (refused, refused_404, refused_422):
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "1"
        assert remaining(response) == {"default-1s": 0}
    if errors == "envelope":
        body = refused.json()
        assert body == {"code": 429, "message": body["message"], "data": None}
    else:
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["status"] == 429
    assert calls == ["hello", "hello"]  # the refused ones never reached the route
    assert [r.status_code for r in health] == [200] * 5
    assert not any("RateLimit" in r.headers for r in health)
    assert echoed == "still here"
    assert (later.status_code, remaining(later)) == (200, {"default-1s": 0})


def test_middleware_needs_a_rate_limit() -> None:
    with pytest.raises(TypeError, match="limit=RateLimit"):
        RateLimitMiddleware(FastAPI(), limit="2/second")  # type: ignore[arg-type]


def test_middleware_store_outage_deny_answers_503() -> None:
    dead = RedisStore(DEAD_REDIS_URL, timeout=0.2)
    app = limited_app()
    app.add_middleware(
        RateLimitMiddleware, limit=RateLimit("2/second", store=dead, on_error="deny")
    )
    with serve(app, dead) as client:
        answers = [client.get("/free") for _ in range(3)]
    assert [(r.status_code, r.json()) for r in answers] == [(503, UNAVAILABLE)] * 3


# --- Redis: many workers ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_two_workers_on_redis_share_one_budget(redis_prefix: str, clock: FakeClock) -> None:
    assert REDIS_URL is not None
    workers: list[tuple[FastAPI, RedisStore]] = []
    for _ in range(2):
        # Each worker has its own client and RateLimit; they share the prefix.
        store = RedisStore(REDIS_URL, prefix=redis_prefix, clock=clock, timeout=10.0)
        workers.append((limited_app(RateLimit("5/minute", store=store)), store))
    clients = [
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://worker")
        for app, _ in workers
    ]
    try:
        codes: list[int] = []

        async def get(client: httpx.AsyncClient) -> None:
            codes.append((await client.get("/limited")).status_code)

        async with anyio.create_task_group() as group:
            for n in range(20):
                group.start_soon(get, clients[n % 2])
        assert sorted(codes) == [200] * 5 + [429] * 15
        assert len(stored_keys(workers[0][1])) == 1
    finally:
        for client in clients:
            await client.aclose()
        for _, store in workers:
            await store.aclose()


# --- mistakes a user makes, caught early -------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"store": "redis://localhost"}, TypeError, r"pass RedisStore\(url\)"),
        ({"key": "ip"}, TypeError, "key must be a function of the request"),
        ({"cost": 6}, ValueError, "no request could ever pass"),
        ({"per_route": False}, ValueError, "needs a name="),
    ],
    ids=["store-url", "key-not-callable", "cost-over-limit", "shared-without-name"],
)
def test_construction_refuses_what_could_only_fail_later(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        RateLimit("5/minute", **kwargs)


@pytest.mark.parametrize("rate", ["5/hr", "5/mins", "5/secs"], ids=["hr", "mins", "secs"])
def test_short_unit_names_are_read(rate: str) -> None:
    assert RateLimit(rate).windows[0].limit == 5


def test_an_unknown_unit_names_the_units_it_takes() -> None:
    with pytest.raises(ValueError, match="second, minute, hour or day"):
        parse_rate("100/month")


@pytest.mark.parametrize("proxies", [True, 1.5, "1"], ids=["bool", "float", "str"])
def test_trusted_proxies_must_be_a_count(proxies: Any) -> None:
    with pytest.raises(TypeError, match="count of proxies"):
        client_ip(trusted_proxies=proxies)


def test_without_fastkit_handlers_a_refusal_is_still_a_429() -> None:
    # No setup(), no install_exception_handlers: FastAPI answers the HTTPException itself.
    app = FastAPI()
    limit = RateLimit("1/minute")

    @app.get("/x", dependencies=[Depends(limit)])
    async def x() -> dict[str, bool]:
        return {"ok": True}

    with TestClient(app, raise_server_exceptions=False) as client:
        first, second = client.get("/x"), client.get("/x")
    assert first.status_code == 200
    assert first.headers["RateLimit"].startswith('"default-60s";r=0;')
    assert second.status_code == 429
    assert second.json() == {"detail": "Too many requests; retry after 60 s."}
    assert second.headers["Retry-After"] == "60"


def test_without_fastkit_handlers_a_store_outage_is_a_503() -> None:
    app = FastAPI()
    dead = RedisStore("redis://127.0.0.1:1/0", timeout=0.2)
    limit = RateLimit("1/minute", store=dead, on_error="deny")

    @app.get("/x", dependencies=[Depends(limit)])
    async def x() -> dict[str, bool]:
        return {"ok": True}

    with serve(app, dead, raise_server_exceptions=False) as client:
        answer = client.get("/x")
    assert answer.status_code == 503
    assert answer.json() == {"detail": "Rate limit check unavailable; retry later."}


def test_two_limits_with_one_name_on_a_route_are_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outer, inner = RateLimit("10/second"), RateLimit("20/second")
    app = FastAPI()
    fastkit.setup(app)
    router = APIRouter(dependencies=[Depends(outer)])

    @router.get("/x", dependencies=[Depends(inner)])
    async def x() -> dict[str, bool]:
        return {"ok": True}

    app.include_router(router)
    with caplog.at_level(logging.WARNING, logger="fastkit.ratelimit"), TestClient(app) as client:
        for _ in range(3):
            assert client.get("/x").status_code == 200
    clashes = [r for r in caplog.records if "give each a name=" in r.getMessage()]
    assert len(clashes) == 1
    assert "GET /x" in clashes[0].getMessage()


def test_a_trailing_slash_twin_shares_the_routes_budget(store: Store) -> None:
    from fastkit import OptionalSlashRouter

    limit = RateLimit("3/minute", store=store)
    router = OptionalSlashRouter(prefix="/items")

    @router.get("", dependencies=[Depends(limit)])
    async def items() -> list[int]:
        return []

    app = FastAPI()
    fastkit.setup(app)
    app.include_router(router)
    with serve(app, store) as client:
        codes = [client.get(path).status_code for path in ["/items", "/items/"] * 3]
    assert codes == [200, 200, 200, 429, 429, 429]


@pytest.mark.parametrize(
    ("hop", "key"),
    [
        ("203.0.113.7:4711", "ip:203.0.113.7"),
        ("[2001:db8::1]:443", "ip:2001:db8::/64"),
        ("[2001:db8::1]", "ip:2001:db8::/64"),
        ("01.2.3.4", None),  # not an address: the peer is used
        ("1.2.3.\u00b2", None),  # a superscript digit is no digit of an address
    ],
    ids=["ipv4-port", "ipv6-port", "ipv6-brackets", "leading-zero", "unicode-digit"],
)
def test_forwarded_hops_with_ports_and_odd_forms(hop: str, key: str | None) -> None:
    from starlette.requests import Request

    scope = {
        "type": "http",
        "headers": [(b"x-forwarded-for", hop.encode())],
        "client": ("10.0.0.1", 5000),
    }
    found = client_ip(trusted_proxies=1)(Request(scope))
    assert found == (key if key is not None else "ip:10.0.0.1")


def test_windows_must_last_whole_seconds() -> None:
    with pytest.raises(ValueError, match="whole seconds"):
        RateLimit([Window(10, 1.5)])
    with pytest.raises(ValueError, match="whole seconds"):
        RateLimit([Window(1, 0.01)])
