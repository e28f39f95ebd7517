"""The snippets and claims of docs/middleware.md and docs/setup.md."""

from __future__ import annotations

import ast
import asyncio
import inspect
import io
import json
import logging
import logging.config
import random
import re
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn.config
from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, WebSocket
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.testclient import TestClient
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.httpsredirect import HTTPSRedirectMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastkit import (
    AccessLogMiddleware,
    OptionalSlashRouter,
    RequestIDLogFilter,
    RequestIDMiddleware,
    SPAStaticFiles,
    TimingMiddleware,
    add_cors,
    get_request_id,
    install_exception_handlers,
    setup,
)
from fastkit.errors import UnhandledErrorMiddleware as _UnhandledErrorMiddleware
from fastkit.middleware import ObservabilityMiddleware as _ObservabilityMiddleware
from fastkit.middleware.request_id import (
    default_request_id_generator,
    default_request_id_validator,
)
from tests.docs._snippets import DOCS, SNIPPETS, client, load, page

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


def table_rows(text: str, heading: str, index: int = 0) -> list[list[str]]:
    """The cells of the ``index``-th table under ``heading``, before the next heading."""
    lines = text.splitlines()
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("#")), len(lines))
    tables: list[list[list[str]]] = []
    previous = ""
    for line in lines[start:end]:
        if line.startswith("|"):
            if not previous.startswith("|"):
                tables.append([])
            tables[-1].append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
        previous = line
    return tables[index][2:]  # without the header and the separator


def code(cell: str) -> str:
    """The text of a cell that is one inline code span."""
    match = re.fullmatch(r"`([^`]+)`", cell)
    assert match, cell
    return match.group(1)


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
        _UnhandledErrorMiddleware,
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


def test_middleware_stack_websocket_and_lifespan(caplog: pytest.LogCaptureFixture) -> None:
    app = load("middleware_stack").app

    @app.websocket("/ws")
    async def whoami(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(get_request_id() or "none")
        await websocket.close()

    with caplog.at_level(logging.INFO, logger="fastkit.access"), TestClient(app) as c:
        with c.websocket_connect("/ws", headers={"X-Request-ID": "req-42"}) as ws:
            assert ws.receive_text() == "req-42"
        with c.websocket_connect("/ws") as ws:
            assert HEX32.fullmatch(ws.receive_text())
    assert access_records(caplog) == []  # websockets are not logged


def test_error_responder_is_innermost_whenever_installed() -> None:
    app = FastAPI()
    app.add_middleware(TimingMiddleware)
    app.add_middleware(RequestIDMiddleware)
    install_exception_handlers(app)
    assert classes(app)[-1] is _UnhandledErrorMiddleware


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


def test_request_id_in_sync_code_and_yield_teardown() -> None:
    seen: list[tuple[str, str | None]] = []

    def sync_dependency() -> None:
        seen.append(("sync dependency", get_request_id()))

    async def yield_dependency() -> AsyncIterator[None]:
        yield
        seen.append(("yield teardown", get_request_id()))

    app = FastAPI()
    app.add_middleware(RequestIDMiddleware)

    @app.get("/", dependencies=[Depends(sync_dependency), Depends(yield_dependency)])
    def sync_endpoint() -> None:
        seen.append(("sync endpoint", get_request_id()))

    TestClient(app).get("/", headers={"X-Request-ID": "req-42"})
    assert sorted(seen) == [
        ("sync dependency", "req-42"),
        ("sync endpoint", "req-42"),
        ("yield teardown", "req-42"),
    ]


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        pytest.param("3f2b9c1e-8d4a-4c6e-9b1f-2a7d5e8c0b13", True, id="uuid"),
        pytest.param("01HZX3J8Q4RM5T6V7W8X9Y0ZAB", True, id="ulid"),
        pytest.param("req-42.a_B", True, id="dots-underscores-dashes"),
        pytest.param("a" * 128, True, id="128-chars"),
        pytest.param(None, False, id="missing"),
        pytest.param("", False, id="empty"),
        pytest.param("a" * 129, False, id="129-chars"),
        pytest.param("bad id", False, id="space"),
        pytest.param("a/b", False, id="slash"),
        pytest.param("a:b", False, id="colon"),
        pytest.param("café".encode(), False, id="not-ascii"),
    ],
)
def test_which_incoming_ids_are_kept(incoming: str | bytes | None, kept: bool) -> None:
    headers = {} if incoming is None else {"X-Request-ID": incoming}
    response = client("request_id").post("/orders/7", headers=headers)
    request_id = response.headers["x-request-id"]
    if kept:
        assert request_id == incoming
    else:
        assert HEX32.fullmatch(request_id)
    assert response.json()["request_id"] == request_id


def test_request_id_table_matches_the_tests() -> None:
    rows = table_rows(page("middleware.md"), "### Which incoming ids are kept")
    assert [result for _, result in rows] == ["kept"] * 4 + ["replaced"] * 4
    assert code(rows[0][0]) == "3f2b9c1e-8d4a-4c6e-9b1f-2a7d5e8c0b13"
    assert code(rows[2][0]) == "req-42.a_B"


def test_only_the_first_header_counts() -> None:
    response = client("request_id").post(
        "/orders/7", headers=[("X-Request-ID", "first"), ("X-Request-ID", "second")]
    )
    assert response.headers["x-request-id"] == "first"


def test_request_id_options() -> None:
    app = FastAPI()
    app.add_middleware(
        RequestIDMiddleware,
        header="X-Trace",
        generator=lambda: "generated",
        validator=lambda value: value.startswith("t-"),
    )

    @app.get("/id")
    async def current() -> str | None:
        return get_request_id()

    c = TestClient(app)
    kept = c.get("/id", headers={"X-Trace": "t-1"})
    assert (kept.headers["x-trace"], kept.json()) == ("t-1", "t-1")
    assert "x-request-id" not in kept.headers
    replaced = c.get("/id", headers={"X-Trace": "other"})
    assert (replaced.headers["x-trace"], replaced.json()) == ("generated", "generated")
    assert HEX32.fullmatch(default_request_id_generator())
    assert default_request_id_validator("req-42.a_B")
    assert not default_request_id_validator("bad id")


def test_default_ids_are_predictable_uuid4s() -> None:
    state = random.getstate()
    try:
        random.seed(42)
        first = default_request_id_generator()
        random.seed(42)
        again = default_request_id_generator()
    finally:
        random.setstate(state)
    assert first == again  # from the random module: predictable, never a token
    assert (uuid.UUID(first).version, uuid.UUID(first).variant) == (4, uuid.RFC_4122)
    text = page("middleware.md")
    assert "random but predictable" in text
    assert "`generator=lambda: uuid.uuid4().hex`" in text


def test_uuid4_generator_from_the_docs() -> None:
    app = FastAPI()
    app.add_middleware(RequestIDMiddleware, generator=lambda: uuid.uuid4().hex)

    @app.get("/id")
    async def current() -> str | None:
        return get_request_id()

    response = TestClient(app).get("/id")
    assert HEX32.fullmatch(response.json())
    assert response.headers["x-request-id"] == response.json()


def test_request_id_options_table() -> None:
    rows = table_rows(page("middleware.md"), "### Options")
    assert [code(row[0]) for row in rows] == list(defaults_of(RequestIDMiddleware.__init__))
    assert ast.literal_eval(code(rows[0][1])) == defaults_of(RequestIDMiddleware.__init__)["header"]


def test_request_id_replaces_the_apps_own_header() -> None:
    app = FastAPI()
    app.add_middleware(RequestIDMiddleware)

    @app.get("/")
    async def root() -> JSONResponse:
        return JSONResponse({}, headers={"X-Request-ID": "from-the-app"})

    response = TestClient(app).get("/", headers={"X-Request-ID": "req-42"})
    assert response.headers.get_list("x-request-id") == ["req-42"]


@pytest.mark.parametrize("header", ["", "  "], ids=["empty", "blank"])
def test_empty_request_id_header_is_refused(header: str) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        RequestIDMiddleware(FastAPI(), header=header)


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


def test_log_filter_custom_default() -> None:
    record = logging.LogRecord("shop", logging.INFO, __file__, 1, "started", None, None)
    assert RequestIDLogFilter(default="no-request").filter(record)
    assert record.request_id == "no-request"  # type: ignore[attr-defined]


def test_format_without_the_filter_is_a_logging_error(capsys: pytest.CaptureFixture[str]) -> None:
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(logging.Formatter("[%(request_id)s] %(message)s"))
    handler.handle(logging.LogRecord("shop", logging.INFO, __file__, 1, "started", None, None))
    assert "--- Logging error ---" in capsys.readouterr().err


def test_log_filter_in_dict_config() -> None:
    configurator = logging.config.BaseConfigurator({})
    factory = configurator.resolve("fastkit.RequestIDLogFilter")
    assert factory is RequestIDLogFilter


def test_uvicorn_loggers_do_not_reach_the_root_logger() -> None:
    loggers = uvicorn.config.LOGGING_CONFIG["loggers"]
    assert loggers["uvicorn"]["propagate"] is False
    assert loggers["uvicorn.access"]["propagate"] is False
    assert "propagate" not in loggers["uvicorn.error"]  # passes on to "uvicorn" only


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


def test_access_log_json_example_has_the_fields() -> None:
    text = page("middleware.md")
    example = re.search(r'^\{"level": "INFO", "method".*\}$', text, flags=re.MULTILINE)
    assert example
    fields = json.loads(example.group(0))
    assert list(fields) == ["level", *load("access_log").FIELDS]
    rows = table_rows(text, "## `AccessLogMiddleware`")
    assert [code(row[0]) for row in rows] == list(load("access_log").FIELDS)


def test_access_log_message_and_levels(caplog: pytest.LogCaptureFixture) -> None:
    app = load("errors_request_id").app
    app.add_middleware(AccessLogMiddleware)  # outside the request id: request_id is None
    with caplog.at_level(logging.INFO, logger="fastkit.access"):
        c = TestClient(app, raise_server_exceptions=False)
        c.get("/nowhere")
        c.get("/crash")
    missing, crash = access_records(caplog)
    assert ACCESS_MESSAGE.fullmatch(missing.getMessage())
    assert missing.getMessage().startswith("GET /nowhere 404 ")
    assert (missing.levelno, crash.levelno) == (logging.INFO, logging.ERROR)
    assert missing.request_id is None  # type: ignore[attr-defined]
    assert round(missing.duration_ms, 3) == missing.duration_ms  # type: ignore[attr-defined]


def test_exception_escaping_the_app_is_logged_as_500(caplog: pytest.LogCaptureFixture) -> None:
    app = FastAPI()  # no exception handlers: the exception leaves the middleware
    app.add_middleware(AccessLogMiddleware)

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.INFO, logger="fastkit.access"):
        TestClient(app, raise_server_exceptions=False).get("/crash")
    [record] = access_records(caplog)
    assert (record.levelno, record.status) == (logging.ERROR, 500)  # type: ignore[attr-defined]


def install_access_log(app: FastAPI, installed_by: str) -> FastAPI:
    if installed_by == "setup":
        return setup(app)
    app.add_middleware(AccessLogMiddleware)
    return app


INSTALLED_BY = ["add_middleware", "setup"]


@pytest.mark.parametrize("installed_by", INSTALLED_BY)
def test_access_log_duration_stops_at_the_last_byte(
    installed_by: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = install_access_log(FastAPI(), installed_by)
    log = logging.getLogger("shop")
    spent: list[float] = []

    def slow_task() -> None:
        started = time.perf_counter()
        time.sleep(0.1)
        log.info("background task done")
        spent.append(time.perf_counter() - started)

    @app.get("/")
    async def root(tasks: BackgroundTasks) -> None:
        tasks.add_task(slow_task)

    c = TestClient(app)
    with caplog.at_level(logging.INFO):
        started = time.perf_counter()
        c.get("/")
        total = time.perf_counter() - started
    # The record is written when the app returns, after the background task...
    names = [r.name for r in caplog.records if r.name in ("shop", "fastkit.access")]
    assert names == ["shop", "fastkit.access"]
    # ...but its duration stops before the task: the task's time is not in it.
    [record] = access_records(caplog)
    assert record.duration_ms <= (total - spent[0]) * 1000  # type: ignore[attr-defined]


@pytest.mark.parametrize("installed_by", INSTALLED_BY)
def test_access_log_counts_a_streamed_body_in_full(
    installed_by: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = install_access_log(FastAPI(), installed_by)
    if installed_by == "add_middleware":
        app.add_middleware(TimingMiddleware)  # setup() times too

    @app.get("/export.csv")
    async def export() -> StreamingResponse:
        async def rows() -> AsyncIterator[bytes]:
            yield b"id,name\n"
            await asyncio.sleep(0.1)
            yield b"1,pen\n"

        return StreamingResponse(rows(), media_type="text/csv")

    with caplog.at_level(logging.INFO, logger="fastkit.access"):
        response = TestClient(app).get("/export.csv")
    [record] = access_records(caplog)
    assert record.duration_ms >= 100  # type: ignore[attr-defined]
    assert float(response.headers["x-process-time"]) < 0.1  # the time to the first byte


def test_access_log_needs_info_enabled(caplog: pytest.LogCaptureFixture) -> None:
    app = load("errors_request_id").app
    app.add_middleware(AccessLogMiddleware, logger="shop.access")
    assert logging.getLogger("shop.access").getEffectiveLevel() == logging.WARNING
    c = TestClient(app, raise_server_exceptions=False)
    with caplog.at_level(logging.DEBUG, logger="fastkit.access"):
        c.get("/nowhere")
        c.get("/crash")
    access = [r for r in caplog.records if r.name in ("shop.access", "fastkit.access")]
    assert [(r.name, r.status) for r in access] == [("shop.access", 500)]  # type: ignore[attr-defined]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="shop.access"):
        TestClient(app).get("/nowhere")
    assert [r.name for r in caplog.records if r.name.endswith(".access")] == ["shop.access"]


# --- middleware.md: TimingMiddleware ----------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "present", "absent"),
    [
        pytest.param({}, ["x-process-time", "server-timing"], [], id="defaults"),
        pytest.param({"header": None}, ["server-timing"], ["x-process-time"], id="no-header"),
        pytest.param(
            {"server_timing": False}, ["x-process-time"], ["server-timing"], id="no-server-timing"
        ),
    ],
)
def test_timing_options(options: dict[str, Any], present: list[str], absent: list[str]) -> None:
    app = FastAPI()
    app.add_middleware(TimingMiddleware, **options)

    @app.get("/")
    async def root() -> None:
        pass

    headers = TestClient(app).get("/").headers
    assert all(name in headers for name in present)
    assert not any(name in headers for name in absent)


def test_timing_with_nothing_to_send_is_refused() -> None:
    with pytest.raises(ValueError, match="nothing to send"):
        TimingMiddleware(FastAPI(), header=None, server_timing=False)


def test_timing_keeps_the_apps_server_timing() -> None:
    app = FastAPI()
    app.add_middleware(TimingMiddleware)

    @app.get("/")
    async def root() -> JSONResponse:
        return JSONResponse({}, headers={"Server-Timing": "db;dur=12"})

    values = TestClient(app).get("/").headers.get_list("server-timing")
    assert values[0] == "db;dur=12"
    assert SERVER_TIMING.fullmatch(values[1])


def test_timing_options_table() -> None:
    rows = table_rows(page("middleware.md"), "## `TimingMiddleware`")
    documented = {code(row[0]): ast.literal_eval(code(row[1])) for row in rows}
    assert documented == defaults_of(TimingMiddleware.__init__)


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
    assert simple.headers["access-control-expose-headers"] == "X-Request-ID, X-Process-Time"
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


def test_cors_options_table() -> None:
    rows = table_rows(page("middleware.md"), "## CORS: `add_cors`")
    documented = {code(row[0]): row[1] for row in rows}
    defaults = defaults_of(add_cors)
    assert list(documented) == list(defaults)
    assert documented.pop("origins") == "(required)"
    for name, cell in documented.items():
        value = ast.literal_eval(code(cell))
        default = defaults[name]
        assert value == (list(default) if isinstance(default, tuple) else default), name


# The "Argument" column of the refusals table, and the call it stands for.
CORS_REFUSALS: dict[str, dict[str, Any]] = {
    'origins="https://app.example.com"': {"origins": ORIGIN},
    'origins=["*"], allow_credentials=True': {"origins": ["*"], "allow_credentials": True},
    'origins=["app.example.com"]': {"origins": ["app.example.com"]},
    'origins=["https://app.example.com/"]': {"origins": [ORIGIN + "/"]},
    'origins=["https://*.example.com"]': {"origins": ["https://*.example.com"]},
    'origins=["https://App.Example.com"]': {"origins": ["https://App.Example.com"]},
    'origins=["https://app.example.com:443"]': {"origins": [ORIGIN + ":443"]},
    'origins=["http://localhost:99999"]': {"origins": ["http://localhost:99999"]},
    "origins=[]": {"origins": []},
    'allow_methods="GET"': {"allow_methods": "GET"},
    'allow_methods=["GET, POST"]': {"allow_methods": ["GET, POST"]},
    'allow_headers=["Authorization, X-Token"]': {"allow_headers": ["Authorization, X-Token"]},
    'expose_headers=["*"], allow_credentials=True': {
        "expose_headers": ["*"],
        "allow_credentials": True,
    },
    "max_age=-1": {"max_age": -1},
    'origin_regex="https://(.*"': {"origin_regex": "https://(.*"},
}


def cors_refusals() -> list[tuple[str, str]]:
    rows = table_rows(page("middleware.md"), "### What `add_cors` refuses")
    return [(code(argument), code(raises)) for argument, raises, _ in rows]


def test_cors_refusals_table_is_tested() -> None:
    assert [argument for argument, _ in cors_refusals()] == list(CORS_REFUSALS)


@pytest.mark.parametrize(("argument", "raises"), cors_refusals())
def test_cors_refusals(argument: str, raises: str) -> None:
    app = FastAPI()
    with pytest.raises({"TypeError": TypeError, "ValueError": ValueError}[raises]):
        add_cors(app, **{"origins": [ORIGIN], **CORS_REFUSALS[argument]})
    assert app.user_middleware == []


@pytest.mark.parametrize("name", ["allow_headers", "expose_headers"])
def test_cors_other_lists_as_strings(name: str) -> None:
    with pytest.raises(TypeError, match=name):
        add_cors(FastAPI(), origins=[ORIGIN], **{name: "Authorization"})


def test_cors_substring_hazard_that_the_type_check_prevents() -> None:
    app = FastAPI()
    app.add_middleware(CORSMiddleware, allow_origins=ORIGIN)  # what add_cors refuses
    response = TestClient(app).get("/", headers={"Origin": "https://app.example.co"})
    assert response.headers["access-control-allow-origin"] == "https://app.example.co"


# --- middleware.md: the rest ------------------------------------------------------------------


def test_benchmark_note_points_at_the_results() -> None:
    # bench/ is outside the docs: mkdocs --strict would reject a link to it.
    text = page("middleware.md")
    assert "See `bench/README.md`" in text
    assert "`bench/results/middleware.md`" in text
    assert "](../bench" not in text
    assert (DOCS.parent / "bench/results/middleware.md").is_file()


def test_benchmarks_page_includes_every_result_file() -> None:
    # What bench/README.md says: docs/benchmarks.md shows bench/results/*.md as last written,
    # each from its third line (after the file's own "# ..." title and the blank line).
    results = DOCS.parent / "bench/results"
    includes = re.findall(r'^--8<-- "bench/results/([^"]+)"$', page("benchmarks.md"), re.M)
    # The reliability run has a page of its own.
    benchmarks = [path for path in results.glob("*.md") if path.name != "reliability.md"]
    assert sorted(includes) == sorted(f"{path.name}:3:" for path in benchmarks)
    assert '--8<-- "bench/results/reliability.md:3:"' in page("reliability.md")
    for path in results.glob("*.md"):
        title, blank = path.read_text(encoding="utf-8").splitlines()[:2]
        assert title.startswith("# "), path.name
        assert blank == "", path.name
    for doc in DOCS.glob("*.md"):
        if doc.name not in ("benchmarks.md", "reliability.md"):
            assert "bench/results/" not in "".join(
                line for line in doc.read_text().splitlines() if line.startswith("--8<--")
            ), doc.name
    readme = " ".join((DOCS.parent / "bench/README.md").read_text().split())
    assert "the docs site's Benchmarks page (`docs/benchmarks.md`) includes" in readme


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
        assert response.headers["access-control-expose-headers"] == "X-Request-ID, X-Process-Time"
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


def test_setup_returns_the_app() -> None:
    app = FastAPI()
    assert setup(app) is app


def test_setup_options_table() -> None:
    rows = table_rows(page("setup.md"), "### Options")
    documented = {code(row[0]): ast.literal_eval(code(row[1])) for row in rows}
    assert documented == defaults_of(setup)
    assert list(documented) == list(defaults_of(setup))


# What each item of "The order" names, by the class setup() installs for it.
ORDER_NAMES = {
    _ObservabilityMiddleware: ["RequestIDMiddleware", "AccessLogMiddleware", "TimingMiddleware"],
    _UnhandledErrorMiddleware: ["install_exception_handlers"],
}


def test_setup_order_list() -> None:
    text = page("setup.md")
    section = text[text.index("### The order") : text.index("### Rules")]
    items = re.findall(r"^\d+\. ((?:`\w+`(?:, | and )?)+)", section, flags=re.MULTILINE)
    documented = [re.findall(r"`(\w+)`", item) for item in items]
    app = setup(
        FastAPI(),
        cors_origins=[ORIGIN],
        trusted_hosts=["api.example.com"],
        https_redirect=True,
        gzip_min_size=500,
    )
    assert documented == [ORDER_NAMES.get(cls, [cls.__name__]) for cls in classes(app)]
    assert classes(app) == [
        _ObservabilityMiddleware,
        TrustedHostMiddleware,
        HTTPSRedirectMiddleware,
        CORSMiddleware,
        GZipMiddleware,
        _UnhandledErrorMiddleware,
    ]
    assert "`fastkit.app._ObservabilityMiddleware`" in section


def observed_app(app: FastAPI) -> tuple[FastAPI, list[str | None]]:
    """Routes that show what the request id, access log and timing do; and the ids seen late."""
    late: list[str | None] = []

    @app.get("/items/{item_id}")
    async def read_item(item_id: int, tasks: BackgroundTasks) -> dict[str, Any]:
        tasks.add_task(lambda: late.append(get_request_id()))
        return {"id": item_id, "request_id": get_request_id()}

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("boom")

    @app.get("/export.csv")
    async def export() -> StreamingResponse:
        async def rows() -> AsyncIterator[bytes]:
            yield b"id,name\n"

        return StreamingResponse(rows(), media_type="text/csv")

    @app.websocket("/ws")
    async def whoami(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(get_request_id() or "none")
        await websocket.close()

    return app, late


def observe(app: FastAPI, caplog: pytest.LogCaptureFixture) -> list[Any]:
    """What the client and the access log see, with the values that vary left out."""
    app, late = observed_app(app)
    requests = [
        ("GET", "/items/1", {"X-Request-ID": "req-42"}),
        ("GET", "/items/2", {"X-Request-ID": "bad id"}),
        ("GET", "/crash", {}),
        ("GET", "/nowhere", {}),
        ("POST", "/items/1", {}),
        ("GET", "/export.csv", {}),
    ]
    seen: list[Any] = []
    with caplog.at_level(logging.INFO, logger="fastkit.access"):
        c = TestClient(app, raise_server_exceptions=False)
        for method, path, headers in requests:
            caplog.clear()
            response = c.request(method, path, headers=headers)
            request_id = response.headers["x-request-id"]
            [record] = access_records(caplog)
            seen.append(
                (
                    response.status_code,
                    response.text.replace(request_id, "<id>"),
                    sorted(name for name, _ in response.headers.multi_items()),
                    request_id if request_id == "req-42" else bool(HEX32.fullmatch(request_id)),
                    bool(PROCESS_TIME.fullmatch(response.headers["x-process-time"])),
                    bool(SERVER_TIMING.fullmatch(response.headers["server-timing"])),
                    record.getMessage().rsplit(" ", 1)[0],
                    (record.levelno, record.status, record.client),  # type: ignore[attr-defined]
                    record.request_id == request_id,  # type: ignore[attr-defined]
                )
            )
        caplog.clear()
        with c.websocket_connect("/ws", headers={"X-Request-ID": "req-42"}) as ws:
            seen.append(ws.receive_text())
        seen.append(access_records(caplog))  # websockets are not logged
    # The background tasks of /items/1 and /items/2 ran with their request's id.
    seen.append([late[0], bool(HEX32.fullmatch(late[1] or "")), len(late)])
    return seen


def test_setup_layer_behaves_as_the_three_stacked(caplog: pytest.LogCaptureFixture) -> None:
    stacked = FastAPI()
    install_exception_handlers(stacked)
    stacked.add_middleware(TimingMiddleware)
    stacked.add_middleware(AccessLogMiddleware)
    stacked.add_middleware(RequestIDMiddleware)
    expected = observe(stacked, caplog)
    assert expected[0][:2] == (200, '{"id":1,"request_id":"<id>"}')
    assert expected[0][3] == "req-42"
    assert expected[2][0] == 500
    assert expected[-3:] == ["req-42", [], ["req-42", True, 2]]

    layered = setup(FastAPI())
    assert classes(layered) == [_ObservabilityMiddleware, _UnhandledErrorMiddleware]
    assert observe(layered, caplog) == expected


def id_app() -> FastAPI:
    app = FastAPI()

    @app.get("/id")
    async def current() -> str | None:
        return get_request_id()

    return app


@pytest.mark.parametrize("off", ["request_id", "access_log", "timing"])
def test_setup_turns_one_part_of_the_layer_off(off: str, caplog: pytest.LogCaptureFixture) -> None:
    options: dict[str, Any] = {off: False}
    app = setup(id_app(), **options)
    assert classes(app) == [_ObservabilityMiddleware, _UnhandledErrorMiddleware]
    with caplog.at_level(logging.INFO, logger="fastkit.access"):
        response = TestClient(app).get("/id", headers={"X-Request-ID": "req-42"})
    has_id = off != "request_id"
    assert response.json() == ("req-42" if has_id else None)
    assert ("x-request-id" in response.headers) is has_id
    assert ("x-process-time" in response.headers) is (off != "timing")
    assert ("server-timing" in response.headers) is (off != "timing")
    records = access_records(caplog)
    assert len(records) == (0 if off == "access_log" else 1)
    assert [r.request_id for r in records] == [response.json()] * len(records)  # type: ignore[attr-defined]


def test_setup_with_the_whole_layer_off() -> None:
    app = setup(id_app(), request_id=False, access_log=False, timing=False)
    assert classes(app) == [_UnhandledErrorMiddleware]
    response = TestClient(app).get("/id", headers={"X-Request-ID": "req-42"})
    assert response.json() is None
    assert not {"x-request-id", "x-process-time", "server-timing"} & set(response.headers)


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


def test_setup_timing_covers_the_middleware_below_it() -> None:
    outside = setup(slow_stream_app(), gzip_min_size=0)
    inside = slow_stream_app()
    inside.add_middleware(TimingMiddleware)  # before setup(): innermost, the app alone
    setup(inside, gzip_min_size=0, timing=False)
    assert classes(inside) == [
        _ObservabilityMiddleware,
        GZipMiddleware,
        TimingMiddleware,
        _UnhandledErrorMiddleware,
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


def test_setup_rejections_are_plain_text(caplog: pytest.LogCaptureFixture) -> None:
    app = setup(FastAPI(), cors_origins=[ORIGIN], https_redirect=True)
    with caplog.at_level(logging.INFO, logger="fastkit.access"):
        c = TestClient(app, base_url="https://testserver")
        refused = c.options("/", headers={"Origin": EVIL, "Access-Control-Request-Method": "GET"})
        redirected = TestClient(app).get("/", follow_redirects=False)
    assert refused.status_code == 400
    assert refused.headers["content-type"].startswith("text/plain")
    assert redirected.status_code == 307
    assert redirected.headers["location"] == "https://testserver/"
    for response, record in zip((refused, redirected), access_records(caplog), strict=True):
        assert record.request_id == response.headers["x-request-id"]  # type: ignore[attr-defined]


def test_setup_twice_is_refused() -> None:
    app = setup(FastAPI())
    with pytest.raises(RuntimeError, match="already called"):
        setup(app)


def test_setup_after_serving_is_refused() -> None:
    app = FastAPI()
    TestClient(app).get("/")
    with pytest.raises(RuntimeError, match="before the app starts serving"):
        setup(app)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        pytest.param({"cors_origins": [ORIGIN + "/"]}, ValueError, id="bad-cors-origin"),
        pytest.param({"cors_origins": ORIGIN}, TypeError, id="cors-origins-str"),
        pytest.param({"trusted_hosts": []}, ValueError, id="no-trusted-hosts"),
        pytest.param({"gzip_min_size": -1}, ValueError, id="negative-gzip"),
        pytest.param({"errors": "html"}, ValueError, id="errors-html"),
    ],
)
def test_bad_option_leaves_the_app_untouched(options: dict[str, Any], error: type) -> None:
    app = FastAPI()
    handlers = dict(app.exception_handlers)
    with pytest.raises(error):
        setup(app, **options)
    assert app.user_middleware == []
    assert app.exception_handlers == handlers
    setup(app)  # fixed, on the same app
    assert classes(app) == [_ObservabilityMiddleware, _UnhandledErrorMiddleware]
    assert app.exception_handlers != handlers
    assert HEX32.fullmatch(TestClient(app).get("/").headers["x-request-id"])


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


def crash_app() -> FastAPI:
    app = FastAPI()

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("boom")

    return app


def test_middleware_added_after_setup_wraps_outside() -> None:
    seen: list[tuple[str | None, bool]] = []
    app = setup(crash_app())
    app.add_middleware(RecordRequestId, seen=seen)
    assert classes(app)[0] is RecordRequestId
    assert TestClient(app, raise_server_exceptions=False).get("/crash").status_code == 500
    assert seen == [(None, True)]  # sees the header on the 500, not the id


def test_middleware_added_before_setup_runs_inside() -> None:
    seen: list[tuple[str | None, bool]] = []
    app = crash_app()
    app.add_middleware(RecordRequestId, seen=seen)
    setup(app)
    assert classes(app) == [_ObservabilityMiddleware, RecordRequestId, _UnhandledErrorMiddleware]
    response = TestClient(app, raise_server_exceptions=False).get("/crash")
    assert response.status_code == 500
    assert PROCESS_TIME.fullmatch(response.headers["x-process-time"])
    # It has the id; the 500 it sees already carries the header (the responder sets it).
    assert seen == [(response.headers["x-request-id"], True)]


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


def test_spa_table_rows_are_tested() -> None:
    rows = table_rows(page("setup.md"), "## Serving a single-page app: `SPAStaticFiles`")
    requests = [row[0] for row in rows[:8]]
    assert requests[0] == "`GET /assets/app.js`"
    assert requests[7] == "`POST /settings`"


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
