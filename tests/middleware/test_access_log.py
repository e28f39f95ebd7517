from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient

import fastkit
from fastkit import AccessLogMiddleware, RequestIDMiddleware, install_exception_handlers

if TYPE_CHECKING:
    from tests.middleware.conftest import CallASGI

ACCESS = "fastkit.access"
FIELDS = ("method", "path", "status", "duration_ms", "request_id", "client")


def build_app(*, handlers: bool = True, request_id: bool = True, **options: Any) -> FastAPI:
    app = FastAPI()
    if handlers:
        install_exception_handlers(app)
    app.add_middleware(AccessLogMiddleware, **options)
    if request_id:
        app.add_middleware(RequestIDMiddleware)  # added last: outermost

    @app.get("/items")
    async def list_items() -> list[int]:
        return [1, 2]

    @app.post("/items", status_code=201)
    async def create_item() -> dict[str, int]:
        return {"id": 3}

    @app.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("boom")

    @app.websocket("/ws")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    return app


def access_records(caplog: pytest.LogCaptureFixture, name: str = ACCESS) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == name]


@pytest.mark.parametrize(
    ("method", "path", "status", "level"),
    [
        pytest.param("GET", "/items", 200, logging.INFO, id="200"),
        pytest.param("POST", "/items", 201, logging.INFO, id="201-post"),
        pytest.param("GET", "/no/such/route", 404, logging.INFO, id="404-unknown-route"),
        pytest.param("GET", "/items/abc", 422, logging.INFO, id="422-validation"),
        pytest.param("GET", "/crash", 500, logging.ERROR, id="500-unhandled"),
    ],
)
def test_one_record_per_request(
    caplog: pytest.LogCaptureFixture, method: str, path: str, status: int, level: int
) -> None:
    client = TestClient(build_app(), raise_server_exceptions=False)
    with caplog.at_level(logging.INFO, logger=ACCESS):
        response = client.request(method, path)
    assert response.status_code == status
    [record] = access_records(caplog)
    assert record.levelno == level
    assert record.method == method  # type: ignore[attr-defined]
    assert record.path == path  # type: ignore[attr-defined]
    assert record.status == status  # type: ignore[attr-defined]
    assert isinstance(record.duration_ms, float)  # type: ignore[attr-defined]
    assert record.duration_ms >= 0  # type: ignore[attr-defined]
    assert record.request_id == response.headers["x-request-id"]  # type: ignore[attr-defined]
    assert record.client == "testclient:50000"  # type: ignore[attr-defined]
    assert re.fullmatch(rf"{method} {re.escape(path)} {status} \d+\.\d\dms", record.getMessage())


def test_query_string_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    client = TestClient(build_app())
    with caplog.at_level(logging.INFO, logger=ACCESS):
        response = client.get("/items", params={"token": "s3cr3t-token"})
    assert response.status_code == 200
    [record] = access_records(caplog)
    assert record.path == "/items"  # type: ignore[attr-defined]
    assert "s3cr3t-token" not in record.getMessage()
    assert all("s3cr3t-token" not in str(getattr(record, field)) for field in FIELDS)


def test_exception_escaping_the_app_is_logged_as_500(caplog: pytest.LogCaptureFixture) -> None:
    # Without install_exception_handlers nothing answers inside the middleware.
    client = TestClient(build_app(handlers=False), raise_server_exceptions=False)
    with caplog.at_level(logging.INFO, logger=ACCESS):
        response = client.get("/crash")
    assert response.status_code == 500
    [record] = access_records(caplog)
    assert record.levelno == logging.ERROR
    assert record.status == 500  # type: ignore[attr-defined]


def test_nothing_logged_when_info_is_disabled(caplog: pytest.LogCaptureFixture) -> None:
    client = TestClient(build_app())
    with caplog.at_level(logging.WARNING, logger=ACCESS):
        response = client.get("/items")
    assert response.status_code == 200
    assert access_records(caplog) == []


def test_server_errors_still_logged_at_warning_level(caplog: pytest.LogCaptureFixture) -> None:
    # A WARNING threshold drops the INFO records, never the ERROR ones.
    client = TestClient(build_app(), raise_server_exceptions=False)
    with caplog.at_level(logging.WARNING, logger=ACCESS):
        assert client.get("/items").status_code == 200
        assert client.get("/crash").status_code == 500
    [record] = access_records(caplog)
    assert (record.levelno, record.status) == (logging.ERROR, 500)  # type: ignore[attr-defined]


def test_nothing_done_when_error_is_disabled(caplog: pytest.LogCaptureFixture) -> None:
    client = TestClient(build_app(), raise_server_exceptions=False)
    with caplog.at_level(logging.CRITICAL, logger=ACCESS):
        assert client.get("/crash").status_code == 500
    assert access_records(caplog) == []


@pytest.mark.parametrize(
    "logger",
    [
        pytest.param(logging.getLogger("tests.middleware.access.instance"), id="logger-instance"),
        pytest.param("tests.middleware.access.by-name", id="logger-name"),
    ],
)
def test_custom_logger(caplog: pytest.LogCaptureFixture, logger: logging.Logger | str) -> None:
    name = logger if isinstance(logger, str) else logger.name
    client = TestClient(build_app(logger=logger))
    with caplog.at_level(logging.INFO, logger=name), caplog.at_level(logging.INFO, logger=ACCESS):
        client.get("/items")
    [record] = access_records(caplog, name)
    assert record.status == 200  # type: ignore[attr-defined]
    assert access_records(caplog) == []


def test_request_id_is_none_without_request_id_middleware(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = TestClient(build_app(request_id=False))
    with caplog.at_level(logging.INFO, logger=ACCESS):
        client.get("/items")
    [record] = access_records(caplog)
    assert record.request_id is None  # type: ignore[attr-defined]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("client", "expected"),
    [
        pytest.param(("203.0.113.7", 4242), "203.0.113.7:4242", id="host-port"),
        pytest.param(None, None, id="no-client"),
        # The ASGI spec allows any two-item iterable; a list is not hashable.
        pytest.param(["203.0.113.8", 4343], "203.0.113.8:4343", id="list"),
    ],
)
async def test_client_field(
    caplog: pytest.LogCaptureFixture,
    call_asgi: CallASGI,
    client: tuple[str, int] | None,
    expected: str | None,
) -> None:
    app = build_app()
    with caplog.at_level(logging.INFO, logger=ACCESS):
        for _ in range(2):  # the second one from the remembered text
            sent = await call_asgi(app, "/items", client=client)
            assert sent.status == 200
    assert [r.client for r in access_records(caplog)] == [expected] * 2  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_records_are_independent(
    caplog: pytest.LogCaptureFixture, call_asgi: CallASGI
) -> None:
    # Records start from a shared template: one request's fields never leak into another.
    app = build_app()
    with caplog.at_level(logging.INFO, logger=ACCESS):
        await call_asgi(app, "/items", client=("198.51.100.1", 1))
        with pytest.raises(RuntimeError, match="boom"):  # answered 500, then re-raised
            await call_asgi(app, "/crash", client=("198.51.100.2", 2))
    first, second = access_records(caplog)
    assert (first.path, first.status, first.levelname) == ("/items", 200, "INFO")  # type: ignore[attr-defined]
    assert (second.path, second.status, second.levelname) == ("/crash", 500, "ERROR")  # type: ignore[attr-defined]
    assert first.client == "198.51.100.1:1"  # type: ignore[attr-defined]
    assert first.created <= second.created
    assert first.__dict__ is not second.__dict__
    for record in (first, second):
        # Rounded to 3 decimals, as documented.
        assert record.duration_ms == round(record.duration_ms, 3)  # type: ignore[attr-defined]


def test_websocket_passes_through_unlogged(caplog: pytest.LogCaptureFixture) -> None:
    client = TestClient(build_app())
    with caplog.at_level(logging.INFO, logger=ACCESS), client.websocket_connect("/ws") as websocket:
        websocket.send_text("hello")
        assert websocket.receive_text() == "hello"
    assert access_records(caplog) == []


def test_lifespan_passes_through(caplog: pytest.LogCaptureFixture) -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan)
    app.add_middleware(AccessLogMiddleware)

    with caplog.at_level(logging.INFO, logger=ACCESS), TestClient(app):
        assert events == ["startup"]
    assert events == ["startup", "shutdown"]
    assert access_records(caplog) == []


def test_record_has_every_standard_attribute(caplog: pytest.LogCaptureFixture) -> None:
    # The access record is built without LogRecord.__init__ (for speed); formatters that
    # use any standard attribute must still work and agree with a regular record.
    client = TestClient(build_app())
    with caplog.at_level(logging.INFO, logger=ACCESS):
        client.get("/items")
    [record] = access_records(caplog)
    regular = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    assert set(vars(regular)) <= set(vars(record))
    assert record.levelname == "INFO"
    assert record.process == regular.process
    assert record.processName == regular.processName
    assert abs(record.relativeCreated - regular.relativeCreated) < 60_000
    assert abs(record.created - regular.created) < 60
    formatter = logging.Formatter(
        "%(asctime)s %(msecs)03d %(relativeCreated)d %(levelname)s %(name)s %(process)d "
        "%(processName)s %(thread)d %(threadName)s %(pathname)s %(filename)s %(module)s "
        "%(funcName)s %(lineno)d %(message)s"
    )
    line = formatter.format(record)
    assert re.search(r" GET /items 200 \d+\.\d{2}ms$", line)
    assert "observability.py observability access_log" in line


def test_custom_record_factory_is_respected(caplog: pytest.LogCaptureFixture) -> None:
    original = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = original(*args, **kwargs)  # type: ignore[arg-type]
        record.service = "billing"
        return record

    logging.setLogRecordFactory(factory)
    try:
        client = TestClient(build_app())
        with caplog.at_level(logging.INFO, logger=ACCESS):
            client.get("/items")
    finally:
        logging.setLogRecordFactory(original)
    [record] = access_records(caplog)
    assert record.service == "billing"  # type: ignore[attr-defined]
    assert record.status == 200  # type: ignore[attr-defined]


FORGING_PATHS = [
    "/a%0aINFO%20fastkit.access%20GET%20/admin%20200",  # newline
    "/a%0d%0aX",  # carriage return
    "/a%1b%5b31mred",  # terminal escape
    "/a%e2%80%a8b",  # U+2028 line separator
    "/a%c2%85b",  # U+0085 next line
    "/a%00b",  # NUL
]


@pytest.mark.parametrize("raw_path", FORGING_PATHS)
def test_one_request_is_one_line_whatever_its_path(
    raw_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A decoded path can hold control characters: they are escaped in the message and in
    the ``path`` field, in the access log and in the unhandled-error log alike."""

    def crash_everything(inner: Any) -> Any:  # any path, even one no route pattern matches
        async def middleware(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                raise RuntimeError("boom")
            await inner(scope, receive, send)

        return middleware

    app = FastAPI()
    app.add_middleware(crash_everything)  # type: ignore[arg-type]
    fastkit.setup(app)
    with caplog.at_level(logging.INFO):
        TestClient(app, raise_server_exceptions=False).get(raw_path)
    [access] = access_records(caplog)
    [error] = access_records(caplog, "fastkit.errors")
    handler = logging.StreamHandler()
    for record in (access, error):
        record.exc_info = record.exc_text = None  # the traceback may take lines; the message not
        line = handler.format(record)
        assert line.isprintable(), repr(line)
        assert len(line.splitlines()) == 1
    assert access.path.startswith("/a\\x") or access.path.startswith("/a\\u2028")  # type: ignore[attr-defined]
    assert access.path.isprintable()  # type: ignore[attr-defined]
    assert access.path in error.getMessage()  # type: ignore[attr-defined]


def test_printable_paths_are_logged_unchanged(caplog: pytest.LogCaptureFixture) -> None:
    app = build_app()
    with caplog.at_level(logging.INFO):
        TestClient(app).get("/items/caf%C3%A9")  # 422: not an int
    [record] = access_records(caplog)
    assert record.path == "/items/café"  # type: ignore[attr-defined]


def test_a_client_address_from_a_proxy_header_is_escaped(caplog: pytest.LogCaptureFixture) -> None:
    """uvicorn's --proxy-headers copy X-Forwarded-For into the scope's client as is."""
    app = fastkit.setup(FastAPI())
    with caplog.at_level(logging.INFO):
        TestClient(app, client=("1.2.3.4\x85INFO forged", 5000)).get("/nope")
    [record] = access_records(caplog)
    assert record.client == "1.2.3.4\\x85INFO forged:5000"  # type: ignore[attr-defined]
