from __future__ import annotations

import itertools
import logging
import logging.config
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import pytest
from fastapi import BackgroundTasks, Depends, FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from fastkit import (
    RequestIDLogFilter,
    RequestIDMiddleware,
    get_request_id,
    install_exception_handlers,
)

if TYPE_CHECKING:
    from tests.middleware.conftest import CallASGI

HEX32 = re.compile(r"^[0-9a-f]{32}$")
APP_LOGGER = "tests.middleware.request_id.app"


class Teapot(Exception):
    pass


def build_app(seen: list[str | None] | None = None, **options: Any) -> FastAPI:
    """An app that reports ``get_request_id()`` from every place a request's code runs."""
    seen = [] if seen is None else seen
    app = FastAPI()
    install_exception_handlers(app)
    app.add_middleware(RequestIDMiddleware, **options)
    log = logging.getLogger(APP_LOGGER)

    def record() -> None:
        seen.append(get_request_id())

    async def async_record() -> None:
        record()

    async def yield_dependency() -> AsyncIterator[None]:
        yield
        record()  # teardown, after the endpoint

    async def teapot_handler(request: Request, exc: Exception) -> JSONResponse:
        record()
        return JSONResponse({"request_id": get_request_id()}, status_code=418)

    app.add_exception_handler(Teapot, teapot_handler)

    @app.get("/id")
    async def current_id() -> dict[str, str | None]:
        return {"request_id": get_request_id()}

    @app.get("/where/async-endpoint")
    async def in_async_endpoint() -> None:
        record()

    @app.get("/where/sync-endpoint")
    def in_sync_endpoint() -> None:
        record()

    @app.get("/where/async-dependency", dependencies=[Depends(async_record)])
    async def in_async_dependency() -> None:
        pass

    @app.get("/where/sync-dependency", dependencies=[Depends(record)])
    async def in_sync_dependency() -> None:
        pass

    @app.get("/where/yield-dependency-teardown", dependencies=[Depends(yield_dependency)])
    async def in_yield_dependency() -> None:
        pass

    @app.get("/where/exception-handler")
    async def in_exception_handler() -> None:
        raise Teapot

    @app.get("/where/async-background-task")
    async def in_async_background_task(tasks: BackgroundTasks) -> None:
        tasks.add_task(async_record)

    @app.get("/where/sync-background-task")
    async def in_sync_background_task(tasks: BackgroundTasks) -> None:
        tasks.add_task(record)

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("db password is hunter2")

    @app.get("/log")
    async def log_async() -> None:
        log.info("inside an async endpoint")

    @app.get("/log-sync")
    def log_sync() -> None:
        log.info("inside a sync endpoint")

    @app.websocket("/ws")
    async def websocket_id(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(get_request_id() or "")
        await websocket.close()

    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(build_app(), raise_server_exceptions=False)


# --- generating, keeping and replacing ids ---------------------------------------------


def test_generates_a_hex_id_and_echoes_it(client: TestClient) -> None:
    first = client.get("/id")
    second = client.get("/id")
    for response in (first, second):
        assert response.headers.get_list("x-request-id") == [response.json()["request_id"]]
        assert HEX32.fullmatch(response.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.mark.parametrize(
    "incoming",
    [
        pytest.param("abc", id="short"),
        pytest.param(str(uuid.UUID(int=7)), id="uuid-with-dashes"),
        pytest.param("01ARZ3NDEKTSV4RRFFQ69G5FAV", id="ulid"),
        pytest.param("trace.id_1-2", id="dot-underscore-dash"),
        pytest.param("a" * 128, id="128-chars"),
    ],
)
def test_valid_incoming_id_is_kept(client: TestClient, incoming: str) -> None:
    response = client.get("/id", headers={"X-Request-ID": incoming})
    assert response.headers.get_list("x-request-id") == [incoming]
    assert response.json()["request_id"] == incoming


@pytest.mark.anyio
@pytest.mark.parametrize(
    "incoming",
    [
        pytest.param(b"abc\ndef", id="newline"),
        pytest.param(b"abc\r\nSet-Cookie: x=1", id="header-injection"),
        pytest.param(b"abc\x00", id="nul-byte"),
        pytest.param(b"a" * 500, id="500-chars"),
        pytest.param(b"a" * 129, id="129-chars"),
        pytest.param(b"caf\xc3\xa9", id="non-ascii-utf8"),
        pytest.param(b"caf\xe9", id="non-ascii-latin1"),
        pytest.param(b"", id="empty"),
        pytest.param(b"abc def", id="space"),
        pytest.param(b"../etc", id="slash"),
        pytest.param(b"<script>", id="markup"),
    ],
)
async def test_invalid_incoming_id_is_replaced_and_never_echoed(
    call_asgi: CallASGI, incoming: bytes
) -> None:
    sent = await call_asgi(build_app(), "/id", headers=[(b"x-request-id", incoming)])
    assert sent.status == 200
    values = sent.header("x-request-id")
    assert len(values) == 1
    assert values[0] != incoming
    assert HEX32.fullmatch(values[0].decode("ascii"))
    assert sent.json()["request_id"] == values[0].decode("ascii")
    if incoming:
        assert incoming not in sent.body


# --- get_request_id() ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "status"),
    [
        pytest.param("async-endpoint", 200, id="async-endpoint"),
        pytest.param("sync-endpoint", 200, id="sync-endpoint-threadpool"),
        pytest.param("async-dependency", 200, id="async-dependency"),
        pytest.param("sync-dependency", 200, id="sync-dependency-threadpool"),
        pytest.param("yield-dependency-teardown", 200, id="yield-dependency-teardown"),
        pytest.param("exception-handler", 418, id="custom-exception-handler"),
        pytest.param("async-background-task", 200, id="async-background-task"),
        pytest.param("sync-background-task", 200, id="sync-background-task"),
    ],
)
def test_get_request_id_everywhere_the_request_goes(where: str, status: int) -> None:
    seen: list[str | None] = []
    response = TestClient(build_app(seen)).get(f"/where/{where}")
    assert response.status_code == status
    assert HEX32.fullmatch(response.headers["x-request-id"])
    assert seen == [response.headers["x-request-id"]]


def test_get_request_id_is_none_outside_a_request() -> None:
    assert get_request_id() is None


@pytest.mark.anyio
async def test_id_is_cleared_when_the_request_ends(call_asgi: CallASGI) -> None:
    # Called in this task, so a leaked context variable would be visible here.
    sent = await call_asgi(build_app(), "/id", headers=[(b"x-request-id", b"req-1")])
    assert sent.json() == {"request_id": "req-1"}
    assert get_request_id() is None


# --- the 500 path ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("style", "headers", "expected"),
    [
        pytest.param("envelope", {}, None, id="envelope-generated"),
        pytest.param(
            "envelope", {"X-Request-ID": "client-42"}, "client-42", id="envelope-incoming"
        ),
        pytest.param("problem", {}, None, id="problem-generated"),
        pytest.param("problem", {"X-Request-ID": "client-42"}, "client-42", id="problem-incoming"),
    ],
)
def test_500_carries_the_id_in_header_and_body(
    style: str, headers: dict[str, str], expected: str | None
) -> None:
    app = FastAPI()
    install_exception_handlers(app, style=style)  # type: ignore[arg-type]
    app.add_middleware(RequestIDMiddleware)

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("db password is hunter2")

    response = TestClient(app, raise_server_exceptions=False).get("/crash", headers=headers)
    assert response.status_code == 500
    values = response.headers.get_list("x-request-id")
    assert len(values) == 1
    assert response.json()["request_id"] == values[0]
    if expected is None:
        assert HEX32.fullmatch(values[0])
    else:
        assert values[0] == expected
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    assert "Traceback" not in response.text


# --- options ----------------------------------------------------------------------------------


def test_custom_header_name() -> None:
    client = TestClient(build_app(header="X-Correlation-ID"), raise_server_exceptions=False)

    kept = client.get("/id", headers={"X-Correlation-ID": "corr-1"})
    assert kept.headers["x-correlation-id"] == "corr-1"
    assert kept.json()["request_id"] == "corr-1"
    assert "x-request-id" not in kept.headers

    # The default header is not read any more.
    other = client.get("/id", headers={"X-Request-ID": "req-1"})
    assert HEX32.fullmatch(other.headers["x-correlation-id"])
    assert "x-request-id" not in other.headers

    crashed = client.get("/crash", headers={"X-Correlation-ID": "corr-2"})
    assert crashed.status_code == 500
    assert crashed.headers["x-correlation-id"] == "corr-2"
    assert crashed.json()["request_id"] == "corr-2"
    assert "x-request-id" not in crashed.headers


def test_custom_generator() -> None:
    counter = itertools.count(1)
    client = TestClient(build_app(generator=lambda: f"req-{next(counter)}"))
    assert client.get("/id").headers["x-request-id"] == "req-1"
    assert client.get("/id").json()["request_id"] == "req-2"
    # A valid incoming id is kept: the generator is not asked.
    assert client.get("/id", headers={"X-Request-ID": "abc"}).headers["x-request-id"] == "abc"
    assert client.get("/id").headers["x-request-id"] == "req-3"


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        pytest.param("trace-abc", True, id="accepted"),
        pytest.param("trace-" + "x" * 200, True, id="accepted-beyond-default-length"),
        pytest.param("abc", False, id="rejected-though-default-accepts"),
    ],
)
def test_custom_validator(incoming: str, kept: bool) -> None:
    client = TestClient(build_app(validator=lambda value: value.startswith("trace-")))
    response = client.get("/id", headers={"X-Request-ID": incoming})
    if kept:
        assert response.headers["x-request-id"] == incoming
    else:
        assert HEX32.fullmatch(response.headers["x-request-id"])
    assert response.json()["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize("header", [pytest.param("", id="empty"), pytest.param("  ", id="blank")])
def test_empty_header_name_is_refused(header: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. 'X-Request-ID'"):
        RequestIDMiddleware(FastAPI(), header=header)


# --- other scope types ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({}, None, id="generated"),
        pytest.param({"X-Request-ID": "ws-1"}, "ws-1", id="incoming"),
        pytest.param({"X-Request-ID": "bad id"}, None, id="invalid-incoming"),
    ],
)
def test_websocket_gets_an_id(
    client: TestClient, headers: dict[str, str], expected: str | None
) -> None:
    with client.websocket_connect("/ws", headers=headers) as websocket:
        request_id = websocket.receive_text()
    if expected is None:
        assert HEX32.fullmatch(request_id)
    else:
        assert request_id == expected


def test_lifespan_passes_through() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append(f"startup:{get_request_id()}")
        yield
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan)
    app.add_middleware(RequestIDMiddleware)

    @app.get("/id")
    async def current_id() -> dict[str, str | None]:
        return {"request_id": get_request_id()}

    with TestClient(app) as client:
        assert events == ["startup:None"]
        assert HEX32.fullmatch(client.get("/id").json()["request_id"])
    assert events == ["startup:None", "shutdown"]


# --- RequestIDLogFilter -------------------------------------------------------------------------


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def app_log() -> Iterator[ListHandler]:
    """A capturing handler with `RequestIDLogFilter` on the endpoints' logger."""
    handler = ListHandler()
    handler.addFilter(RequestIDLogFilter())
    logger = logging.getLogger(APP_LOGGER)
    previous_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(previous_level)


@pytest.mark.parametrize(
    "path",
    [pytest.param("/log", id="async-endpoint"), pytest.param("/log-sync", id="sync-endpoint")],
)
def test_log_filter_puts_the_id_on_records(
    client: TestClient, app_log: ListHandler, path: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert len(app_log.records) == 1
    assert app_log.records[0].request_id == response.headers["x-request-id"]  # type: ignore[attr-defined]


def test_log_filter_default_outside_a_request(app_log: ListHandler) -> None:
    logging.getLogger(APP_LOGGER).info("at import time, say")
    assert [r.request_id for r in app_log.records] == ["-"]  # type: ignore[attr-defined]


def test_log_filter_custom_default() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "msg", None, None)
    assert RequestIDLogFilter(default="no-request").filter(record) is True
    assert record.request_id == "no-request"  # type: ignore[attr-defined]


def test_log_filter_can_be_named_in_dict_config() -> None:
    configurator = logging.config.BaseConfigurator({})
    assert configurator.resolve("fastkit.RequestIDLogFilter") is RequestIDLogFilter


def test_only_the_first_incoming_header_counts(client: TestClient) -> None:
    response = client.get("/id", headers=[("X-Request-ID", "first"), ("X-Request-ID", "second")])
    assert response.headers.get_list("x-request-id") == ["first"]
