"""fastkit.errors.handlers: every error rendered in the installed style."""

from __future__ import annotations

import http
import logging
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from fastkit import (
    AppError,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    RequestIDMiddleware,
    ServiceUnavailable,
    TimingMiddleware,
    TooManyRequests,
    Unauthorized,
    UnprocessableEntity,
    add_cors,
    get_request_id,
    install_exception_handlers,
    render_error,
)
from fastkit.errors import UnhandledErrorMiddleware

ERRORS: list[tuple[type[AppError], int, str]] = [
    (AppError, 400, "Bad Request"),
    (BadRequest, 400, "Bad Request"),
    (Unauthorized, 401, "Not authenticated"),
    (Forbidden, 403, "Forbidden"),
    (NotFound, 404, "Not Found"),
    (Conflict, 409, "Conflict"),
    (UnprocessableEntity, 422, "Unprocessable Entity"),
    (TooManyRequests, 429, "Too Many Requests"),
    (ServiceUnavailable, 503, "Service Unavailable"),
]
ERROR_IDS = [cls.__name__ for cls, _, _ in ERRORS]


class Signup(BaseModel):
    username: str = Field(min_length=3)
    password: str = Field(min_length=8)


class PaymentGatewayError(Exception):
    pass


def build_app(style: str = "envelope") -> FastAPI:
    app = FastAPI()
    install_exception_handlers(app, style=style)  # type: ignore[arg-type]

    @app.get("/raise/{name}")
    async def raise_named(name: str) -> None:
        cls = {cls.__name__: cls for cls, _, _ in ERRORS}[name]
        raise cls()

    @app.get("/custom")
    async def custom() -> None:
        raise Conflict(
            "Username taken", code=40901, data={"field": "username"}, headers={"X-Hint": "login"}
        )

    @app.get("/http")
    async def http_error() -> None:
        raise HTTPException(401, "Token expired", headers={"WWW-Authenticate": 'Bearer error="x"'})

    @app.get("/http-detail")
    async def http_detail() -> None:
        raise HTTPException(400, detail={"reason": "quota", "limit": 3})

    @app.get("/starlette")
    async def starlette_error() -> None:
        raise StarletteHTTPException(418)

    @app.get("/not-modified")
    async def not_modified() -> None:
        raise HTTPException(304, headers={"ETag": '"v1"'})

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("db password is hunter2")

    @app.get("/crash-sync")
    def crash_sync() -> None:
        raise KeyError("internal-key")

    @app.get("/typed")
    async def typed(page: int, size: int = 10) -> dict[str, int]:
        return {"page": page, "size": size}

    @app.post("/signup")
    async def signup(body: Signup) -> dict[str, str]:
        return {"username": body.username}

    @app.get("/gateway")
    async def gateway() -> None:
        raise PaymentGatewayError("upstream said no")

    @app.exception_handler(PaymentGatewayError)
    async def gateway_down(request: Request, exc: PaymentGatewayError) -> Response:
        return render_error(request, ServiceUnavailable("Payments are down", code=50301))

    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(build_app(), raise_server_exceptions=False)


@pytest.fixture
def problem() -> TestClient:
    return TestClient(build_app("problem"), raise_server_exceptions=False)


def test_bad_style_is_refused() -> None:
    with pytest.raises(ValueError, match="'envelope' or 'problem'"):
        install_exception_handlers(FastAPI(), style="html")  # type: ignore[arg-type]


# --- envelope style --------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "status", "message"), ERRORS, ids=ERROR_IDS)
def test_each_error_kind_in_envelope(
    client: TestClient, cls: type[AppError], status: int, message: str
) -> None:
    response = client.get(f"/raise/{cls.__name__}")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"code": status, "message": message, "data": None}


def test_unauthorized_sends_www_authenticate(client: TestClient) -> None:
    response = client.get("/raise/Unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


def test_business_code_data_and_headers(client: TestClient) -> None:
    response = client.get("/custom")
    assert response.status_code == 409
    assert response.headers["x-hint"] == "login"
    assert response.json() == {
        "code": 40901,
        "message": "Username taken",
        "data": {"field": "username"},
    }


def test_http_exception_keeps_headers(client: TestClient) -> None:
    response = client.get("/http")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="x"'
    assert response.json() == {"code": 401, "message": "Token expired", "data": None}


def test_http_exception_structured_detail_goes_to_data(client: TestClient) -> None:
    response = client.get("/http-detail")
    assert response.json() == {
        "code": 400,
        "message": "Bad Request",
        "data": {"reason": "quota", "limit": 3},
    }


def test_starlette_http_exception(client: TestClient) -> None:
    response = client.get("/starlette")
    assert response.status_code == 418
    assert response.json() == {"code": 418, "message": "I'm a Teapot", "data": None}


def test_bodyless_http_exception_keeps_status_and_headers(client: TestClient) -> None:
    response = client.get("/not-modified")
    assert response.status_code == 304
    assert response.headers["etag"] == '"v1"'
    assert response.content == b""


def test_unknown_route_is_404(client: TestClient) -> None:
    response = client.get("/no/such/route")
    assert response.status_code == 404
    assert response.json() == {"code": 404, "message": "Not Found", "data": None}


def test_wrong_method_is_405_with_allow(client: TestClient) -> None:
    response = client.delete("/custom")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert response.json() == {"code": 405, "message": "Method Not Allowed", "data": None}


@pytest.mark.parametrize(
    ("request_kwargs", "expected"),
    [
        pytest.param(
            {"method": "GET", "url": "/typed"},
            [{"loc": ["query", "page"], "msg": "Field required", "type": "missing"}],
            id="missing-query",
        ),
        pytest.param(
            {"method": "GET", "url": "/typed?page=x&size=1.5"},
            [
                {
                    "loc": ["query", "page"],
                    "msg": "Input should be a valid integer, unable to parse string as an integer",
                    "type": "int_parsing",
                },
                {
                    "loc": ["query", "size"],
                    "msg": "Input should be a valid integer, unable to parse string as an integer",
                    "type": "int_parsing",
                },
            ],
            id="bad-types",
        ),
        pytest.param(
            {
                "method": "POST",
                "url": "/signup",
                "content": b'{"username": "ann", ',
                "headers": {"content-type": "application/json"},
            },
            [{"loc": ["body", 20], "msg": "JSON decode error", "type": "json_invalid"}],
            id="malformed-json",
        ),
        pytest.param(
            {"method": "POST", "url": "/signup", "json": {"username": "ann"}},
            [{"loc": ["body", "password"], "msg": "Field required", "type": "missing"}],
            id="missing-field",
        ),
        pytest.param(
            {"method": "POST", "url": "/signup", "json": ["not", "an", "object"]},
            [
                {
                    "loc": ["body"],
                    "msg": "Input should be a valid dictionary or object to extract fields from",
                    "type": "model_attributes_type",
                }
            ],
            id="wrong-json-type",
        ),
    ],
)
def test_validation_errors_in_envelope(
    client: TestClient, request_kwargs: dict[str, Any], expected: list[dict[str, Any]]
) -> None:
    response = client.request(**request_kwargs)
    assert response.status_code == 422
    assert response.json() == {
        "code": 422,
        "message": "Request validation failed",
        "data": expected,
    }


def test_validation_error_does_not_echo_input(client: TestClient) -> None:
    response = client.post("/signup", json={"username": "ann", "password": "short7!"})
    assert response.status_code == 422
    assert response.json()["data"][0]["loc"] == ["body", "password"]
    assert "short7!" not in response.text


@pytest.mark.parametrize("path", ["/crash", "/crash-sync"])
def test_unhandled_exception_is_logged_and_hidden(
    client: TestClient, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    with caplog.at_level(logging.ERROR, logger="fastkit.errors"):
        response = client.get(path)
    assert response.status_code == 500
    assert response.json() == {"code": 500, "message": "Internal Server Error", "data": None}
    assert "hunter2" not in response.text
    assert "internal-key" not in response.text
    assert "Traceback" not in response.text
    records = [r for r in caplog.records if r.name == "fastkit.errors"]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert records[0].exc_info is not None
    assert path in records[0].getMessage()


def test_own_handler_renders_in_the_installed_style(
    client: TestClient, problem: TestClient
) -> None:
    response = client.get("/gateway")
    assert response.status_code == 503
    assert response.json() == {"code": 50301, "message": "Payments are down", "data": None}
    problem_response = problem.get("/gateway")
    assert problem_response.headers["content-type"] == "application/problem+json"
    assert problem_response.json()["code"] == 50301


# --- problem style ---------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "status", "message"), ERRORS, ids=ERROR_IDS)
def test_each_error_kind_as_problem(
    problem: TestClient, cls: type[AppError], status: int, message: str
) -> None:
    response = problem.get(f"/raise/{cls.__name__}")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "about:blank"
    assert body["status"] == status
    assert body["detail"] == message
    assert body["instance"] == f"/raise/{cls.__name__}"
    assert isinstance(body["title"], str)
    assert body["title"]
    assert "code" not in body


def test_problem_business_code_data_headers(problem: TestClient) -> None:
    response = problem.get("/custom")
    assert response.headers["x-hint"] == "login"
    assert response.json() == {
        "type": "about:blank",
        "title": "Conflict",
        "status": 409,
        "detail": "Username taken",
        "instance": "/custom",
        "code": 40901,
        "data": {"field": "username"},
    }


def test_problem_http_exception_404_405(problem: TestClient) -> None:
    unauthorized = problem.get("/http")
    assert unauthorized.headers["www-authenticate"] == 'Bearer error="x"'
    assert unauthorized.json()["detail"] == "Token expired"
    missing = problem.get("/nowhere")
    assert (missing.status_code, missing.json()["title"]) == (404, "Not Found")
    wrong = problem.post("/custom")
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "GET")
    assert wrong.headers["content-type"] == "application/problem+json"


def test_problem_validation_errors(problem: TestClient) -> None:
    response = problem.get("/typed", params={"page": "x"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": http.HTTPStatus(422).phrase,  # the wording changed across Python versions
        "status": 422,
        "detail": "Request validation failed",
        "instance": "/typed",
        "errors": [
            {
                "loc": ["query", "page"],
                "msg": "Input should be a valid integer, unable to parse string as an integer",
                "type": "int_parsing",
            }
        ],
    }


def test_problem_500_hides_internals(problem: TestClient) -> None:
    response = problem.get("/crash")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["title"], body["detail"]) == (
        500,
        "Internal Server Error",
        "Internal Server Error",
    )
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text


def test_http_exception_205_has_no_body() -> None:
    app = build_app()

    @app.get("/reset")
    async def reset() -> None:
        raise HTTPException(205)

    response = TestClient(app).get("/reset")
    assert (response.status_code, response.content) == (205, b"")


def test_the_500_responder_is_innermost_whenever_installed() -> None:
    app = FastAPI()
    app.add_middleware(TimingMiddleware)
    app.add_middleware(RequestIDMiddleware)
    install_exception_handlers(app)
    assert [m.cls for m in app.user_middleware][-1] is UnhandledErrorMiddleware


# --- the 500 responder: inside the middleware, unless the app answers 500s itself ----


ORIGIN = "https://app.example.com"


def test_unhandled_exception_is_reraised_after_the_500(caplog: pytest.LogCaptureFixture) -> None:
    app = build_app()
    with (
        caplog.at_level(logging.CRITICAL, logger="fastkit.errors"),
        TestClient(app) as default_client,
        pytest.raises(RuntimeError, match="hunter2"),
    ):
        default_client.get("/crash")


def crashing_app(*, handlers_first: bool, debug: bool = False) -> FastAPI:
    app = FastAPI(debug=debug)
    if handlers_first:
        install_exception_handlers(app)
    add_cors(app, origins=[ORIGIN])
    app.add_middleware(TimingMiddleware)
    app.add_middleware(RequestIDMiddleware)
    if not handlers_first:
        install_exception_handlers(app)

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("database password is hunter2")

    return app


@pytest.mark.parametrize("handlers_first", [True, False], ids=["handlers-first", "handlers-last"])
def test_500_is_answered_inside_the_middleware(
    handlers_first: bool, caplog: pytest.LogCaptureFixture
) -> None:
    app = crashing_app(handlers_first=handlers_first)
    with caplog.at_level(logging.ERROR, logger="fastkit.errors"):
        crash = TestClient(app, raise_server_exceptions=False).get(
            "/crash", headers={"Origin": ORIGIN}
        )
    assert crash.status_code == 500
    assert crash.headers["access-control-allow-origin"] == ORIGIN
    assert float(crash.headers["x-process-time"]) >= 0
    assert crash.json()["request_id"] == crash.headers["x-request-id"]
    assert len([r for r in caplog.records if r.name == "fastkit.errors"]) == 1


def test_own_exception_handler_after_install_replaces_the_500() -> None:
    app = crashing_app(handlers_first=True)
    seen: list[str | None] = []

    async def report_crash(request: Request, exc: Exception) -> Response:
        seen.append(get_request_id())
        return JSONResponse({"error": "crashed"}, status_code=500)

    app.add_exception_handler(Exception, report_crash)
    crash = TestClient(app, raise_server_exceptions=False).get(
        "/crash", headers={"Origin": ORIGIN, "X-Request-ID": "req-42"}
    )
    assert crash.status_code == 500
    assert crash.json() == {"error": "crashed"}
    for header in ("access-control-allow-origin", "x-request-id", "x-process-time"):
        assert header not in crash.headers
    assert seen == [None]


def test_own_exception_handler_before_install_is_replaced() -> None:
    app = FastAPI()

    async def report_crash(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "crashed"}, status_code=500)

    app.add_exception_handler(Exception, report_crash)
    install_exception_handlers(app)

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("boom")

    response = TestClient(app, raise_server_exceptions=False).get("/crash")
    assert response.json() == {"code": 500, "message": "Internal Server Error", "data": None}


# The handlers registered after install_exception_handlers, in order.
OWN_500_HANDLERS = {
    "500": [500],
    # Exception keeps its place (first registered by fastkit), so 500 stays the last key.
    "500-then-exception": [500, Exception],
}


@pytest.mark.parametrize("keys", OWN_500_HANDLERS.values(), ids=OWN_500_HANDLERS.keys())
def test_own_500_handler_after_install_replaces_the_500(
    keys: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    app = crashing_app(handlers_first=True)
    seen: list[str | None] = []

    async def report_crash(request: Request, exc: Exception) -> Response:
        seen.append(get_request_id())
        return JSONResponse({"error": "crashed"}, status_code=500)

    async def never_called(request: Request, exc: Exception) -> Response:
        raise AssertionError("Starlette uses the handler of the last key")

    app.add_exception_handler(keys[0], report_crash)
    for key in keys[1:]:
        app.add_exception_handler(key, never_called)
    with caplog.at_level(logging.ERROR, logger="fastkit.errors"):
        crash = TestClient(app, raise_server_exceptions=False).get(
            "/crash", headers={"Origin": ORIGIN, "X-Request-ID": "req-42"}
        )
    assert crash.status_code == 500
    assert crash.json() == {"error": "crashed"}
    for header in ("access-control-allow-origin", "x-request-id", "x-process-time"):
        assert header not in crash.headers
    assert seen == [None]
    assert [r for r in caplog.records if r.name == "fastkit.errors"] == []


def test_debug_keeps_starlettes_traceback_page(caplog: pytest.LogCaptureFixture) -> None:
    app = crashing_app(handlers_first=True, debug=True)
    headers = {"Origin": ORIGIN, "X-Request-ID": "req-42"}
    with caplog.at_level(logging.ERROR, logger="fastkit.errors"):
        c = TestClient(app, raise_server_exceptions=False)
        browser = c.get("/crash", headers={**headers, "Accept": "text/html"})
        other = c.get("/crash", headers=headers)
    assert browser.status_code == other.status_code == 500
    assert browser.headers["content-type"].startswith("text/html")
    assert other.headers["content-type"].startswith("text/plain")
    assert other.text.startswith("Traceback (most recent call last):")
    for response in (browser, other):
        assert "RuntimeError" in response.text
        assert "database password is hunter2" in response.text  # why never in production
        for header in ("access-control-allow-origin", "x-request-id", "x-process-time"):
            assert header not in response.headers
    assert [r for r in caplog.records if r.name == "fastkit.errors"] == []


def test_install_after_serving_is_refused() -> None:
    app = FastAPI()
    TestClient(app).get("/")
    with pytest.raises(RuntimeError, match="before the app starts serving"):
        install_exception_handlers(app)
