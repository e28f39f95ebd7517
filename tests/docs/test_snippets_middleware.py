"""The snippets of docs/middleware.md and docs/setup.md, run as the pages show them.

Each test checks what its snippet shows; the behaviour behind it is tested beside its
module (tests/middleware/, tests/errors/, tests/test_app.py).
"""

from __future__ import annotations

import inspect
import io
import json
import logging
import logging.config
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI, WebSocket
from fastapi.testclient import TestClient

from fastkit import (
    AccessLogMiddleware,
    OptionalSlashRouter,
    RequestIDMiddleware,
    SPAStaticFiles,
    TimingMiddleware,
    get_request_id,
    setup,
)
from fastkit.errors import UnhandledErrorMiddleware
from tests.docs._snippets import SNIPPETS, client, load

HEX32 = re.compile(r"[0-9a-f]{32}")
PROCESS_TIME = re.compile(r"\d+\.\d{6}")
SERVER_TIMING = re.compile(r"app;dur=\d+\.\d{3}")
ACCESS_MESSAGE = re.compile(r"(GET|POST) (/\S*) (\d{3}) \d+\.\d{2}ms")
ORIGIN = "https://app.example.com"
EVIL = "https://evil.example.net"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
NOT_FOUND = {"code": 404, "message": "Not Found", "data": None}


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "fastkit.access"]


def classes(app: FastAPI) -> list[Any]:
    return [m.cls for m in app.user_middleware]


def defaults_of(function: Any) -> dict[str, Any]:
    return {
        name: parameter.default
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }


# --- middleware.md: adding them by hand ----------------------------------------------------


def test_middleware_stack(caplog: pytest.LogCaptureFixture) -> None:
    app = load("middleware_stack").app
    assert classes(app) == [
        RequestIDMiddleware,
        AccessLogMiddleware,
        TimingMiddleware,
        UnhandledErrorMiddleware,
    ]
    with caplog.at_level(logging.INFO, logger="fastkit.access"):
        c = TestClient(app)
        item = c.get("/items/1")
        streamed = c.get("/export.csv")
    assert item.json() == {"id": 1}
    for response in (item, streamed):
        assert HEX32.fullmatch(response.headers["x-request-id"])
        assert PROCESS_TIME.fullmatch(response.headers["x-process-time"])
        assert SERVER_TIMING.fullmatch(response.headers["server-timing"])
    assert streamed.text == "id,name\n1,pen\n"
    records = access_records(caplog)
    assert [r.request_id for r in records] == [  # type: ignore[attr-defined]
        item.headers["x-request-id"],
        streamed.headers["x-request-id"],
    ]


# --- middleware.md: RequestIDMiddleware ------------------------------------------------------


def test_request_id_everywhere() -> None:
    module = load("request_id")
    c = TestClient(module.app)
    placed = c.post("/orders/7", headers={"X-Request-ID": "req-42"})
    assert placed.status_code == 200
    assert placed.headers["x-request-id"] == "req-42"
    assert placed.json() == {
        "order": 7,
        "request_id": "req-42",
        "upstream_headers": {"X-Request-ID": "req-42"},
    }
    assert module.OUTBOX == [{"receipt": "order 7", "request_id": "req-42"}]

    refused = c.post("/orders/0", headers={"X-Request-ID": "req-42"})
    assert refused.status_code == 409
    assert refused.json() == {"error": "out of stock", "request_id": "req-42"}

    replaced = c.post("/orders/7", headers={"X-Request-ID": "bad id!"})
    new_id = replaced.headers["x-request-id"]
    assert HEX32.fullmatch(new_id)
    assert replaced.json() == {
        "order": 7,
        "request_id": new_id,
        "upstream_headers": {"X-Request-ID": new_id},
    }
    assert module.OUTBOX[-1] == {"receipt": "order 7", "request_id": new_id}
    assert get_request_id() is None  # outside a request


# --- middleware.md: logging the request id ----------------------------------------------------


def test_request_id_logging(caplog: pytest.LogCaptureFixture) -> None:
    module = load("request_id_logging")
    stream = io.StringIO()
    module.handler.setStream(stream)
    caplog.set_level(logging.INFO)  # what basicConfig(level=INFO) does outside pytest
    logging.getLogger().addHandler(module.handler)  # basicConfig does nothing under pytest
    try:
        response = TestClient(module.app).post("/orders/7", headers={"X-Request-ID": "req-42"})
        module.log.info("started")
    finally:
        logging.getLogger().removeHandler(module.handler)
    assert response.json() == {"order": 7}
    lines = [line for line in stream.getvalue().splitlines() if " httpx" not in line]
    assert lines[:2] == [
        "INFO [req-42] shop: order 7 placed",
        "INFO [req-42] shop: receipt for order 7 sent",
    ]
    assert re.fullmatch(
        r"INFO \[req-42\] fastkit\.access: POST /orders/7 200 \d+\.\d{2}ms", lines[2]
    )
    assert lines[3:] == ["INFO [-] shop: started"]


# --- middleware.md: AccessLogMiddleware ------------------------------------------------------


def test_access_log_json() -> None:
    module = load("access_log")
    stream = io.StringIO()
    module.handler.setStream(stream)
    c = TestClient(module.app, raise_server_exceptions=False)
    assert c.get("/items/1?token=secret", headers={"X-Request-ID": "req-42"}).status_code == 200
    assert c.get("/crash", headers={"X-Request-ID": "req-43"}).status_code == 500
    ok, crash = (json.loads(line) for line in stream.getvalue().splitlines())
    assert isinstance(ok.pop("duration_ms"), float)
    assert re.fullmatch(r"[^:]+:\d+", ok.pop("client"))
    assert ok == {
        "level": "INFO",
        "method": "GET",
        "path": "/items/1",
        "status": 200,
        "request_id": "req-42",
    }
    assert (crash["level"], crash["path"], crash["status"]) == ("ERROR", "/crash", 500)
    assert "secret" not in stream.getvalue()


# --- middleware.md: CORS ----------------------------------------------------------------------


def test_cors() -> None:
    c = client("cors")
    preflight = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    allowed = c.options("/me", headers=preflight)
    assert allowed.status_code == 200
    assert {
        name: allowed.headers[name]
        for name in (
            "access-control-allow-origin",
            "access-control-allow-credentials",
            "access-control-allow-methods",
            "access-control-allow-headers",
            "access-control-max-age",
        )
    } == {
        "access-control-allow-origin": ORIGIN,
        "access-control-allow-credentials": "true",
        "access-control-allow-methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
        "access-control-allow-headers": (
            "Accept, Accept-Language, Authorization, Content-Language, Content-Type"
        ),
        "access-control-max-age": "600",
    }

    refused = c.options("/me", headers={**preflight, "Origin": EVIL})
    assert (refused.status_code, refused.text) == (400, "Disallowed CORS origin")
    assert "access-control-allow-origin" not in refused.headers

    simple = c.get("/me", headers={"Origin": ORIGIN})
    assert simple.json() == {"name": "ann"}
    assert simple.headers["access-control-allow-origin"] == ORIGIN
    assert simple.headers["access-control-expose-headers"] == (
        "X-Request-ID, RateLimit, RateLimit-Policy, Retry-After"
    )
    assert "access-control-allow-origin" not in c.get("/me", headers={"Origin": EVIL}).headers

    crash = c.get("/crash", headers={"Origin": ORIGIN})
    assert crash.status_code == 500
    assert crash.headers["access-control-allow-origin"] == ORIGIN
    assert crash.json() == {
        "code": 500,
        "message": "Internal Server Error",
        "data": None,
        "request_id": crash.headers["x-request-id"],
    }
    assert (
        c.get("/nowhere", headers={"Origin": ORIGIN}).headers["access-control-allow-origin"]
        == ORIGIN
    )


# --- setup.md: setup(app) ---------------------------------------------------------------------


def test_setup_app(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="fastkit.access"):
        c = client("setup_app", base_url="https://api.example.com")
        item = c.get("/items/1", headers={"Origin": ORIGIN})
        missing = c.get("/items/101", headers={"Origin": ORIGIN})
        crash = c.get("/crash", headers={"Origin": ORIGIN})
        other_host = client("setup_app", base_url="https://evil.test").get("/items/1")
    assert item.json() == {"id": 1}
    assert missing.status_code == 404
    assert missing.json() == {"code": 404, "message": "Item not found", "data": None}
    assert crash.status_code == 500
    assert crash.json() == {
        "code": 500,
        "message": "Internal Server Error",
        "data": None,
        "request_id": crash.headers["x-request-id"],
    }
    for response in (item, missing, crash):
        assert HEX32.fullmatch(response.headers["x-request-id"])
        assert PROCESS_TIME.fullmatch(response.headers["x-process-time"])
        assert SERVER_TIMING.fullmatch(response.headers["server-timing"])
        assert response.headers["access-control-allow-origin"] == ORIGIN
        assert response.headers["access-control-expose-headers"] == (
            "X-Request-ID, RateLimit, RateLimit-Policy, Retry-After"
        )
    assert (other_host.status_code, other_host.text) == (400, "Invalid host header")
    assert other_host.headers["content-type"].startswith("text/plain")
    assert HEX32.fullmatch(other_host.headers["x-request-id"])
    assert PROCESS_TIME.fullmatch(other_host.headers["x-process-time"])
    assert SERVER_TIMING.fullmatch(other_host.headers["server-timing"])
    records = access_records(caplog)
    assert [ACCESS_MESSAGE.fullmatch(r.getMessage()).groups() for r in records] == [  # type: ignore[union-attr]
        ("GET", "/items/1", "200"),
        ("GET", "/items/101", "404"),
        ("GET", "/crash", "500"),
        ("GET", "/items/1", "400"),
    ]
    assert records[-1].request_id == other_host.headers["x-request-id"]  # type: ignore[attr-defined]


# --- setup.md: SPAStaticFiles -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "accept", "status", "body"),
    [
        pytest.param("GET", "/assets/app.js", "*/*", 200, "app.js", id="file"),
        pytest.param("GET", "/", BROWSER, 200, "index.html", id="root"),
        pytest.param("GET", "/settings/profile", BROWSER, 200, "index.html", id="client-route"),
        pytest.param("GET", "/settings/profile", "*/*", 404, NOT_FOUND, id="fetch"),
        pytest.param("GET", "/settings/profile", "application/json", 404, NOT_FOUND, id="json"),
        pytest.param("GET", "/assets/missing.js", BROWSER, 404, NOT_FOUND, id="missing-file"),
        pytest.param("GET", "/favicon.ico", BROWSER, 404, NOT_FOUND, id="dot-in-last-segment"),
        pytest.param("GET", "/api/nope", BROWSER, 404, NOT_FOUND, id="excluded-prefix"),
        pytest.param("GET", "/api/health", "*/*", 200, {"status": "ok"}, id="api-route"),
        pytest.param(
            "POST",
            "/settings",
            BROWSER,
            405,
            {"code": 405, "message": "Method Not Allowed", "data": None},
            id="post",
        ),
    ],
)
def test_spa(method: str, path: str, accept: str, status: int, body: Any) -> None:
    response = client("spa").request(method, path, headers={"Accept": accept})
    assert response.status_code == status
    if body == "index.html":
        assert response.text == (SNIPPETS / "frontend/build/index.html").read_text()
    elif body == "app.js":
        assert response.text == (SNIPPETS / "frontend/build/assets/app.js").read_text()
    else:
        assert response.json() == body


def test_spa_route_after_the_mount_is_never_reached() -> None:
    app = load("spa").app

    @app.get("/late")
    async def late() -> dict[str, str]:
        return {"reached": "yes"}

    assert TestClient(app).get("/late").status_code == 404


@pytest.mark.parametrize("prefix", ["/api", "api", "/api/"])
def test_spa_exclude_prefix_spellings(prefix: str) -> None:
    app = FastAPI()
    app.mount("/", SPAStaticFiles(directory=SNIPPETS / "frontend/build", exclude_prefixes=[prefix]))
    c = TestClient(app)
    assert c.get("/api/x", headers={"Accept": BROWSER}).status_code == 404
    assert c.get("/apix", headers={"Accept": BROWSER}).status_code == 200


def test_spa_ignores_the_builds_404_page(tmp_path: Path) -> None:
    build = tmp_path / "build"
    shutil.copytree(SNIPPETS / "frontend/build", build)
    (build / "404.html").write_text("<h1>custom 404</h1>")
    app = setup(FastAPI())
    app.mount("/", SPAStaticFiles(directory=build, exclude_prefixes=["/api"]))
    c = TestClient(app)
    assert c.get("/settings", headers={"Accept": BROWSER}).status_code == 200
    missing = c.get("/missing.js", headers={"Accept": BROWSER})
    assert (missing.status_code, missing.json()) == (404, NOT_FOUND)


def test_spa_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="file name"):
        SPAStaticFiles(directory=SNIPPETS / "frontend/build", index="pages/index.html")
    with pytest.raises(RuntimeError, match="does not exist"):
        SPAStaticFiles(directory=tmp_path / "missing")
    SPAStaticFiles(directory=tmp_path / "missing", check_dir=False)
    assert defaults_of(SPAStaticFiles.__init__) == {
        "directory": inspect.Parameter.empty,
        "index": "index.html",
        "exclude_prefixes": (),
        "check_dir": True,
    }


# --- setup.md: OptionalSlashRouter ------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "status", "data"),
    [
        pytest.param("GET", "/items", 200, [{"id": 1, "name": "pen"}], id="list"),
        pytest.param("GET", "/items/", 200, [{"id": 1, "name": "pen"}], id="list-slash"),
        pytest.param("POST", "/items/", 201, {"id": 2, "name": "cap"}, id="create-slash"),
        pytest.param("POST", "/items", 201, {"id": 2, "name": "cap"}, id="create"),
        pytest.param("GET", "/items/1", 200, {"id": 1, "name": "pen"}, id="read"),
        pytest.param("GET", "/items/1/", 200, {"id": 1, "name": "pen"}, id="read-slash"),
    ],
)
def test_slash_router(method: str, url: str, status: int, data: Any) -> None:
    body = {"name": "cap"} if method == "POST" else None
    response = client("slash_router").request(method, url, json=body, follow_redirects=False)
    assert response.status_code == status
    assert response.json() == {"code": status, "message": "success", "data": data}


def test_slash_router_openapi_and_url_path_for() -> None:
    app = load("slash_router").app
    openapi = TestClient(app).get("/openapi.json").json()
    assert list(openapi["paths"]) == ["/items", "/items/{item_id}/"]
    assert app.url_path_for("read_item", item_id=1) == "/items/1/"
    assert app.url_path_for("list_items") == "/items"


@pytest.mark.parametrize("redirect_slashes", [True, False], ids=["default", "redirects-off"])
def test_plain_router_redirects_or_404s(redirect_slashes: bool) -> None:
    router = APIRouter(prefix="/items")

    @router.get("")
    async def list_items() -> list[int]:
        return []

    app = FastAPI(redirect_slashes=redirect_slashes)
    app.include_router(router)
    response = TestClient(app).get("/items/", follow_redirects=False)
    if redirect_slashes:
        assert response.status_code == 307
        assert response.headers["location"].endswith("/items")
    else:
        assert response.status_code == 404


def test_slash_router_root_and_websockets() -> None:
    router = OptionalSlashRouter()

    @router.get("/")
    async def root() -> None:
        pass

    @router.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.close()

    assert [getattr(route, "path", None) for route in router.routes] == ["/", "/ws"]


def test_body_limit() -> None:
    c = client("body_limit")
    big_note = {"text": "a" * (2 * 1024 * 1024)}
    refused = c.post("/notes", json=big_note)
    assert refused.status_code == 413
    assert refused.json() == {
        "code": 413,
        "message": "Request body too large; send at most 1048576 bytes.",
        "data": None,
    }
    assert c.post("/notes", json={"text": "hi"}).json() == {"length": 2}
    three_mib = {"file": ("a.bin", b"x" * (3 * 1024 * 1024), "application/octet-stream")}
    assert c.post("/files", files=three_mib).json() == {"size": 3 * 1024 * 1024}
    assert c.post("/files/avatar", files=three_mib).status_code == 413
    schema = c.get("/openapi.json").json()["paths"]
    assert "413" in schema["/files/avatar"]["post"]["responses"]
