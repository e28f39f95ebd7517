from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.httpsredirect import HTTPSRedirectMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastkit import get_request_id, setup
from fastkit.errors import UnhandledErrorMiddleware
from fastkit.middleware import (
    BodyLimitMiddleware,
    ObservabilityMiddleware,
    SecurityHeadersMiddleware,
    TimingMiddleware,
)

AccessRecords = Callable[[], list[logging.LogRecord]]  # the conftest fixture

ORIGIN = "https://app.example.com"
SECRET = "db password is hunter2"
BIG = [{"id": i, "name": f"item {i}"} for i in range(100)]
SERVER_TIMING = re.compile(r"app;dur=\d+\.\d{3}")


def add_routes(app: FastAPI) -> FastAPI:
    @app.get("/ok")
    async def ok_route() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError(SECRET)

    @app.get("/big")
    async def big() -> list[dict[str, Any]]:
        return BIG

    return app


def build_app(**options: Any) -> FastAPI:
    return add_routes(setup(FastAPI(), **options))


def client_for(app: FastAPI, base_url: str = "http://testserver") -> TestClient:
    return TestClient(app, base_url=base_url, raise_server_exceptions=False)


DEFAULT_LAYERS = [
    ObservabilityMiddleware,
    SecurityHeadersMiddleware,
    BodyLimitMiddleware,
    UnhandledErrorMiddleware,
]


def middleware_classes(app: FastAPI) -> list[Any]:
    return [m.cls for m in app.user_middleware]


# --- defaults ---------------------------------------------------------------------------


def test_defaults_add_request_id_timing_and_access_log(access_records: AccessRecords) -> None:
    app = FastAPI()
    assert setup(app) is app
    assert middleware_classes(app) == DEFAULT_LAYERS
    response = client_for(add_routes(app)).get("/ok")
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert float(response.headers["x-process-time"]) >= 0
    assert SERVER_TIMING.fullmatch(response.headers["server-timing"])
    [record] = access_records()
    assert record.levelno == logging.INFO
    assert (record.method, record.path, record.status) == ("GET", "/ok", 200)  # type: ignore[attr-defined]
    assert record.request_id == request_id  # type: ignore[attr-defined]


def test_defaults_answer_errors_in_envelope() -> None:
    client = client_for(build_app())
    missing = client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json() == {"code": 404, "message": "Not Found", "data": None}
    assert "x-request-id" in missing.headers
    crash = client.get("/boom")
    assert crash.status_code == 500
    assert crash.json() == {
        "code": 500,
        "message": "Internal Server Error",
        "data": None,
        "request_id": crash.headers["x-request-id"],
    }
    assert "hunter2" not in crash.text


def test_problem_style_answers_problem_json() -> None:
    client = client_for(build_app(errors="problem"))
    missing = client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["status"] == 404
    crash = client.get("/boom")
    assert crash.headers["content-type"] == "application/problem+json"
    assert crash.json()["request_id"] == crash.headers["x-request-id"]


# --- middleware order ---------------------------------------------------------------------


def test_500_carries_every_middleware_header_and_is_logged_once(
    access_records: AccessRecords, caplog: pytest.LogCaptureFixture
) -> None:
    client = client_for(build_app(cors_origins=[ORIGIN]))
    response = client.get("/boom", headers={"X-Request-ID": "req-42.a_B", "Origin": ORIGIN})
    assert response.status_code == 500
    assert response.json() == {
        "code": 500,
        "message": "Internal Server Error",
        "data": None,
        "request_id": "req-42.a_B",
    }
    assert response.headers["x-request-id"] == "req-42.a_B"
    assert response.headers["access-control-allow-origin"] == ORIGIN
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "x-request-id" in exposed
    assert float(response.headers["x-process-time"]) >= 0
    assert "hunter2" not in response.text
    [access] = access_records()
    assert access.levelno == logging.ERROR
    assert access.status == 500  # type: ignore[attr-defined]
    assert access.request_id == "req-42.a_B"  # type: ignore[attr-defined]
    errors = [r for r in caplog.records if r.name == "fastkit.errors"]
    assert len(errors) == 1  # rendered inside, not logged again by Starlette's outer handler
    assert errors[0].exc_info is not None


def test_by_default_the_observability_layer_answers_errors_and_adds_security_headers() -> None:
    """The body limit lets other errors pass and adds no header, so the responder for
    unhandled exceptions is taken out from under it: one layer less per request."""
    app = add_routes(setup(FastAPI()))
    stack: Any = app.build_middleware_stack()
    layers = []
    while hasattr(stack, "app"):
        layers.append(type(stack))
        stack = stack.app
    assert UnhandledErrorMiddleware not in layers
    assert SecurityHeadersMiddleware not in layers  # its headers come from Observability's
    at = layers.index(ObservabilityMiddleware)
    assert layers[at + 1] is BodyLimitMiddleware
    response = client_for(app).get("/boom")
    assert response.status_code == 500
    assert response.json()["request_id"] == response.headers["x-request-id"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_user_middleware_order_with_cors() -> None:
    app = setup(FastAPI(), cors_origins=[ORIGIN])
    assert middleware_classes(app) == [
        ObservabilityMiddleware,  # request id, access log, timing: one layer
        SecurityHeadersMiddleware,  # its headers added by the layer above
        BodyLimitMiddleware,
        CORSMiddleware,
        UnhandledErrorMiddleware,
    ]


def test_user_middleware_order_with_every_option() -> None:
    app = setup(
        FastAPI(),
        cors_origins=[ORIGIN],
        trusted_hosts=["testserver"],
        https_redirect=True,
        gzip_min_size=500,
    )
    assert middleware_classes(app) == [
        ObservabilityMiddleware,
        SecurityHeadersMiddleware,
        BodyLimitMiddleware,
        TrustedHostMiddleware,
        HTTPSRedirectMiddleware,
        CORSMiddleware,
        GZipMiddleware,
        UnhandledErrorMiddleware,
    ]


@pytest.mark.parametrize(
    ("options", "request_kwargs", "status"),
    [
        pytest.param(
            {"trusted_hosts": ["example.com"]},
            {"method": "GET", "url": "/ok"},
            400,
            id="untrusted-host",
        ),
        pytest.param(
            {"https_redirect": True},
            {"method": "GET", "url": "/ok"},
            307,
            id="https-redirect",
        ),
        pytest.param(
            {"cors_origins": [ORIGIN]},
            {
                "method": "OPTIONS",
                "url": "/ok",
                "headers": {"Origin": ORIGIN, "Access-Control-Request-Method": "GET"},
            },
            200,
            id="cors-preflight",
        ),
        pytest.param(
            {"cors_origins": [ORIGIN]},
            {
                "method": "OPTIONS",
                "url": "/ok",
                "headers": {
                    "Origin": "https://evil.example.net",
                    "Access-Control-Request-Method": "GET",
                },
            },
            400,
            id="cors-preflight-refused",
        ),
    ],
)
def test_answers_from_middleware_carry_request_id_and_are_logged(
    access_records: AccessRecords,
    options: dict[str, Any],
    request_kwargs: dict[str, Any],
    status: int,
) -> None:
    response = client_for(build_app(**options)).request(**request_kwargs, follow_redirects=False)
    assert response.status_code == status
    [record] = access_records()
    assert record.status == status  # type: ignore[attr-defined]
    assert record.request_id == response.headers["x-request-id"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("options", "origin", "allowed"),
    [
        pytest.param({"cors_origins": [ORIGIN]}, ORIGIN, True, id="listed-origin"),
        pytest.param(
            {"cors_origin_regex": r"https://[a-z]+\.example\.com"},
            "https://admin.example.com",
            True,
            id="regex-origin",
        ),
        pytest.param({"cors_origins": [ORIGIN]}, "https://evil.example.net", False, id="other"),
        pytest.param({}, ORIGIN, False, id="cors-off"),
    ],
)
def test_cors_origins(options: dict[str, Any], origin: str, allowed: bool) -> None:
    response = client_for(build_app(**options)).get("/ok", headers={"Origin": origin})
    assert response.status_code == 200
    assert response.headers.get("access-control-allow-origin") == (origin if allowed else None)


class RecordRequestId:
    """A pure ASGI middleware noting get_request_id() and the response's X-Request-ID."""

    def __init__(self, app: ASGIApp, *, seen: list[tuple[str | None, bool]]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        current = get_request_id()

        async def spy(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {key.lower() for key, _ in message["headers"]}
                self.seen.append((current, b"x-request-id" in names))
            await send(message)

        await self.app(scope, receive, spy)


def test_middleware_added_after_setup_wraps_outside() -> None:
    seen: list[tuple[str | None, bool]] = []
    app = build_app()
    app.add_middleware(RecordRequestId, seen=seen)
    assert middleware_classes(app)[:3] == [
        RecordRequestId,
        ObservabilityMiddleware,
        SecurityHeadersMiddleware,
    ]
    client = client_for(app)
    assert client.get("/ok").status_code == 200
    assert client.get("/boom").status_code == 500
    assert seen == [(None, True), (None, True)]  # sees the header, not the id


def test_middleware_added_before_setup_runs_inside() -> None:
    seen: list[tuple[str | None, bool]] = []
    app = add_routes(FastAPI())
    app.add_middleware(RecordRequestId, seen=seen)
    setup(app)
    assert middleware_classes(app) == [
        ObservabilityMiddleware,
        SecurityHeadersMiddleware,
        BodyLimitMiddleware,
        RecordRequestId,
        UnhandledErrorMiddleware,
    ]
    response = client_for(app).get("/boom")
    assert response.status_code == 500
    assert float(response.headers["x-process-time"]) >= 0
    # It has the id; the 500 it sees already carries the header (the responder sets it).
    assert seen == [(response.headers["x-request-id"], True)]


SLOW = 0.2  # seconds before the first chunk of the body


def slow_stream_app() -> FastAPI:
    app = FastAPI()

    @app.get("/export.csv")
    async def export() -> StreamingResponse:
        async def rows() -> AsyncIterator[bytes]:
            await asyncio.sleep(SLOW)
            yield b"id,name\n" * 100

        return StreamingResponse(rows(), media_type="text/csv")

    return app


def test_timing_covers_the_middleware_below_it() -> None:
    outside = setup(slow_stream_app(), gzip_min_size=0)
    inside = slow_stream_app()
    inside.add_middleware(TimingMiddleware)  # before setup(): innermost, the app alone
    setup(inside, gzip_min_size=0, timing=False)
    assert middleware_classes(inside) == [
        ObservabilityMiddleware,
        SecurityHeadersMiddleware,
        BodyLimitMiddleware,
        GZipMiddleware,
        TimingMiddleware,
        UnhandledErrorMiddleware,
    ]
    gzip = {"Accept-Encoding": "gzip"}
    timed_with_gzip = TestClient(outside).get("/export.csv", headers=gzip)
    timed_alone = TestClient(inside).get("/export.csv", headers=gzip)
    for response in (timed_with_gzip, timed_alone):
        assert response.headers["content-encoding"] == "gzip"
        assert response.text == "id,name\n" * 100
    # gzip holds the response's start back until it has the first chunk of the body.
    assert float(timed_with_gzip.headers["x-process-time"]) >= SLOW
    assert float(timed_alone.headers["x-process-time"]) < SLOW


# --- each option on and off ----------------------------------------------------------------


@pytest.mark.parametrize("off", ["request_id", "access_log", "timing"])
def test_one_part_of_the_layer_off(off: str, access_records: AccessRecords) -> None:
    client = client_for(build_app(**{off: False}))
    response = client.get("/ok", headers={"X-Request-ID": "req-42"})
    assert middleware_classes(client.app) == DEFAULT_LAYERS  # type: ignore[arg-type]
    has_id = off != "request_id"
    assert (response.headers.get("x-request-id") == "req-42") is has_id
    assert ("x-request-id" in response.headers) is has_id
    assert ("request_id" in client.get("/boom").json()) is has_id
    assert ("x-process-time" in response.headers) is (off != "timing")
    assert ("server-timing" in response.headers) is (off != "timing")
    records = access_records()
    assert len(records) == (0 if off == "access_log" else 2)
    assert all((r.request_id is not None) is has_id for r in records)  # type: ignore[attr-defined]


def test_the_whole_layer_off() -> None:
    app = build_app(request_id=False, access_log=False, timing=False)
    assert middleware_classes(app) == [
        SecurityHeadersMiddleware,
        BodyLimitMiddleware,
        UnhandledErrorMiddleware,
    ]
    response = client_for(app).get("/ok", headers={"X-Request-ID": "req-42"})
    assert not {"x-request-id", "x-process-time", "server-timing"} & set(response.headers)


@pytest.mark.parametrize(
    ("trusted_hosts", "base_url", "status"),
    [
        pytest.param(None, "http://anything.test", 200, id="off-allows-any"),
        pytest.param(["testserver"], "http://testserver", 200, id="exact"),
        pytest.param(["example.com", "testserver"], "http://testserver", 200, id="second-of-two"),
        pytest.param(["*.example.com"], "http://api.example.com", 200, id="wildcard"),
        pytest.param(["example.com"], "http://testserver", 400, id="other-host"),
        pytest.param(["*.example.com"], "http://example.com", 400, id="wildcard-not-apex"),
        pytest.param(["*.example.com"], "http://evilexample.com", 400, id="wildcard-suffix"),
    ],
)
def test_trusted_hosts(trusted_hosts: list[str] | None, base_url: str, status: int) -> None:
    client = client_for(build_app(trusted_hosts=trusted_hosts), base_url=base_url)
    assert client.get("/ok").status_code == status


@pytest.mark.parametrize(
    ("https_redirect", "base_url", "status"),
    [
        pytest.param(True, "http://testserver", 307, id="on-http"),
        pytest.param(True, "https://testserver", 200, id="on-https"),
        pytest.param(False, "http://testserver", 200, id="off"),
    ],
)
def test_https_redirect(https_redirect: bool, base_url: str, status: int) -> None:
    client = client_for(build_app(https_redirect=https_redirect), base_url=base_url)
    response = client.get("/ok?page=2", follow_redirects=False)
    assert response.status_code == status
    if status == 307:
        assert response.headers["location"] == "https://testserver/ok?page=2"


@pytest.mark.parametrize(
    ("gzip_min_size", "accept_encoding", "encoding"),
    [
        pytest.param(10, "gzip", "gzip", id="large-body"),
        pytest.param(0, "gzip, deflate", "gzip", id="min-size-zero"),
        pytest.param(10, "identity", None, id="client-refuses"),
        pytest.param(100_000, "gzip", None, id="below-min-size"),
        pytest.param(None, "gzip", None, id="off"),
    ],
)
def test_gzip(gzip_min_size: int | None, accept_encoding: str, encoding: str | None) -> None:
    client = client_for(build_app(gzip_min_size=gzip_min_size))
    response = client.get("/big", headers={"Accept-Encoding": accept_encoding})
    assert response.status_code == 200
    assert response.headers.get("content-encoding") == encoding
    assert response.json() == BIG


# --- misuse ------------------------------------------------------------------------------


def test_setup_twice_is_refused() -> None:
    app = setup(FastAPI())
    before = list(app.user_middleware)
    with pytest.raises(RuntimeError, match="already called on this app"):
        setup(app)
    assert app.user_middleware == before


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        pytest.param(
            {"cors_origins": ["*"], "cors_allow_credentials": True},
            ValueError,
            "allow_credentials",
            id="cors-wildcard-with-credentials",
        ),
        pytest.param(
            {"cors_origins": [ORIGIN + "/"]},
            ValueError,
            "trailing slash",
            id="cors-origin-trailing-slash",
        ),
        pytest.param({"cors_origins": ORIGIN}, TypeError, "not a string", id="cors-origins-str"),
        pytest.param({"cors_origin_regex": "("}, ValueError, "regular expression", id="bad-regex"),
        pytest.param({"trusted_hosts": "a.com"}, ValueError, "non-empty list", id="hosts-str"),
        pytest.param({"trusted_hosts": []}, ValueError, "non-empty list", id="hosts-empty"),
        pytest.param(
            {"trusted_hosts": ["api.*.example.com"]}, ValueError, "pattern", id="hosts-mid-star"
        ),
        pytest.param(
            {"trusted_hosts": ["*example.com"]}, ValueError, "pattern", id="hosts-star-no-dot"
        ),
        pytest.param({"trusted_hosts": [""]}, ValueError, "host name", id="hosts-empty-entry"),
        pytest.param({"gzip_min_size": -1}, ValueError, ">= 0", id="negative-gzip"),
        pytest.param({"errors": "html"}, ValueError, "'envelope' or 'problem'", id="errors-html"),
    ],
)
def test_bad_option_leaves_app_untouched(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    app = add_routes(FastAPI())
    handlers = dict(app.exception_handlers)
    with pytest.raises(error, match=match):
        setup(app, **options)
    assert app.user_middleware == []
    assert app.exception_handlers == handlers
    setup(app)  # the mistake can be corrected on the same app
    response = client_for(app).get("/nowhere")
    assert response.json() == {"code": 404, "message": "Not Found", "data": None}
    assert "x-request-id" in response.headers


def test_setup_after_serving_is_refused() -> None:
    app = add_routes(FastAPI())
    assert client_for(app).get("/ok").status_code == 200
    handlers = dict(app.exception_handlers)
    with pytest.raises(RuntimeError, match="before the app starts serving"):
        setup(app)
    assert app.user_middleware == []
    assert app.exception_handlers == handlers


# --- rate_limit -------------------------------------------------------------------------


def test_setup_rate_limit_sits_inside_cors_and_the_request_id() -> None:
    from fastkit.ratelimit import RateLimit, RateLimitMiddleware
    from fastkit.stores import MemoryStore

    clock = [1000.0]
    limit = RateLimit("2/minute", store=MemoryStore(clock=lambda: clock[0]), name="global")
    app = FastAPI()
    setup(app, cors_origins=["https://app.example.com"], rate_limit=limit)
    kinds = [m.cls for m in app.user_middleware]
    assert kinds.index(CORSMiddleware) < kinds.index(RateLimitMiddleware)  # outer first

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    origin = {"Origin": "https://app.example.com"}
    with TestClient(app) as client:
        preflight = {**origin, "Access-Control-Request-Method": "GET"}
        assert client.options("/ping", headers=preflight).status_code == 200  # not counted
        assert [client.get("/ping", headers=origin).status_code for _ in range(2)] == [200, 200]
        refused = client.get("/ping", headers=origin)
    assert refused.status_code == 429
    assert refused.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "retry-after" in refused.headers["access-control-expose-headers"].lower()
    assert refused.headers["x-request-id"]
    assert refused.json()["code"] == 429


def test_setup_refuses_a_rate_limit_that_is_not_a_rate_limit() -> None:
    app = FastAPI()
    with pytest.raises(TypeError, match="takes a RateLimit"):
        setup(app, rate_limit="100/second")  # type: ignore[arg-type]
    assert app.user_middleware == []
