from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from fastapi import BackgroundTasks, FastAPI, WebSocket
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.testclient import TestClient
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.httpsredirect import HTTPSRedirectMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastkit import get_request_id, setup
from fastkit.errors import UnhandledErrorMiddleware as _UnhandledErrorMiddleware
from fastkit.middleware import ObservabilityMiddleware as _ObservabilityMiddleware

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


def middleware_classes(app: FastAPI) -> list[Any]:
    return [m.cls for m in app.user_middleware]


# --- defaults ---------------------------------------------------------------------------


def test_defaults_add_request_id_timing_and_access_log(access_records: AccessRecords) -> None:
    response = client_for(build_app()).get("/ok")
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


@pytest.mark.parametrize("cors", [False, True], ids=["fused-responder", "cors-between"])
def test_500_without_cors_between_is_answered_once_with_every_header(
    cors: bool, access_records: AccessRecords, caplog: pytest.LogCaptureFixture
) -> None:
    # With nothing between them (the default), the observability layer answers unhandled
    # errors itself; with CORS between, the innermost responder does. Same answer.
    app = build_app(cors_origins=[ORIGIN] if cors else None)
    response = client_for(app).get("/boom", headers={"X-Request-ID": "req-7"})
    assert response.status_code == 500
    assert response.json()["request_id"] == "req-7"
    assert response.headers.get_list("x-request-id") == ["req-7"]
    assert len(response.headers.get_list("x-process-time")) == 1
    assert SERVER_TIMING.fullmatch(response.headers["server-timing"])
    assert response.headers["connection"] == "close"
    [access] = access_records()
    assert access.status == 500  # type: ignore[attr-defined]
    assert len([r for r in caplog.records if r.name == "fastkit.errors"]) == 1


def test_headers_the_endpoint_set_are_replaced_not_doubled() -> None:
    app = build_app()

    @app.get("/own")
    async def own() -> JSONResponse:
        return JSONResponse(
            {"ok": True},
            headers={"X-Request-ID": "mine", "X-Process-Time": "9", "Server-Timing": "db;dur=1"},
        )

    response = client_for(app).get("/own", headers={"X-Request-ID": "req-8"})
    assert response.headers.get_list("x-request-id") == ["req-8"]
    [elapsed] = response.headers.get_list("x-process-time")
    assert elapsed != "9"
    assert float(elapsed) >= 0
    assert response.headers["content-type"] == "application/json"
    # Server-Timing is a list: the app's metric stays, ours is added.
    timings = response.headers.get_list("server-timing")
    assert timings[0] == "db;dur=1"
    assert SERVER_TIMING.fullmatch(timings[1])


def test_a_stream_that_fails_midway_is_not_answered_twice(
    access_records: AccessRecords,
) -> None:
    app = build_app()

    async def chunks() -> AsyncIterator[bytes]:
        yield b"first,"
        raise RuntimeError(SECRET)

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        return StreamingResponse(chunks())

    with client_for(app).stream("GET", "/stream") as response:
        assert response.status_code == 200
        assert response.headers["x-request-id"]
        body = b"".join(response.iter_raw())
    # No 500 body glued on. (httpx on Python 3.10 drops the partial body when the app
    # raises mid-stream; httpx2 delivers it.)
    assert body in (b"first,", b"")
    assert b"Internal Server Error" not in body
    [access] = access_records()
    assert access.status == 200  # type: ignore[attr-defined]


def test_user_middleware_order_with_cors() -> None:
    app = setup(FastAPI(), cors_origins=[ORIGIN])
    assert middleware_classes(app) == [
        _ObservabilityMiddleware,  # request id, access log, timing: one layer
        CORSMiddleware,
        _UnhandledErrorMiddleware,
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
        _ObservabilityMiddleware,
        TrustedHostMiddleware,
        HTTPSRedirectMiddleware,
        CORSMiddleware,
        GZipMiddleware,
        _UnhandledErrorMiddleware,
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


class RecordsRequestIdHeader:
    """Pure ASGI middleware noting whether X-Request-ID is already on the response start."""

    def __init__(self, app: ASGIApp, *, seen: list[bool]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def spy(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.seen.append("x-request-id" in Headers(raw=message["headers"]))
            await send(message)

        await self.app(scope, receive, spy)


def test_middleware_added_after_setup_wraps_outside() -> None:
    seen: list[bool] = []
    app = build_app()
    app.add_middleware(RecordsRequestIdHeader, seen=seen)
    assert middleware_classes(app)[:2] == [RecordsRequestIdHeader, _ObservabilityMiddleware]
    client = client_for(app)
    assert client.get("/ok").status_code == 200
    assert client.get("/boom").status_code == 500
    assert seen == [True, True]


# --- each option on and off ----------------------------------------------------------------


@pytest.mark.parametrize("enabled", [True, False], ids=["on", "off"])
def test_request_id_option(enabled: bool, access_records: AccessRecords) -> None:
    client = client_for(build_app(request_id=enabled))
    assert ("x-request-id" in client.get("/ok").headers) is enabled
    assert ("request_id" in client.get("/boom").json()) is enabled
    assert all((r.request_id is not None) is enabled for r in access_records())  # type: ignore[attr-defined]


@pytest.mark.parametrize("enabled", [True, False], ids=["on", "off"])
def test_timing_option(enabled: bool) -> None:
    headers = client_for(build_app(timing=enabled)).get("/ok").headers
    assert ("x-process-time" in headers) is enabled
    assert ("server-timing" in headers) is enabled


@pytest.mark.parametrize("enabled", [True, False], ids=["on", "off"])
def test_access_log_option(enabled: bool, access_records: AccessRecords) -> None:
    assert client_for(build_app(access_log=enabled)).get("/ok").status_code == 200
    assert len(access_records()) == (1 if enabled else 0)


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


def test_websocket_gets_a_request_id_under_setup() -> None:
    app = setup(FastAPI())

    @app.websocket("/ws")
    async def ws_endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(get_request_id() or "")
        await websocket.close()

    with TestClient(app).websocket_connect("/ws", headers={"X-Request-ID": "ws-1"}) as ws:
        assert ws.receive_text() == "ws-1"


def test_access_log_duration_excludes_background_tasks(access_records: AccessRecords) -> None:
    app = setup(FastAPI())

    @app.get("/slow-after")
    async def slow_after(tasks: BackgroundTasks) -> dict[str, bool]:
        tasks.add_task(asyncio.sleep, 0.3)
        return {"ok": True}

    assert client_for(app).get("/slow-after").status_code == 200
    [record] = access_records()
    assert record.duration_ms < 250  # type: ignore[attr-defined]
