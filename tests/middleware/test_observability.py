"""fastkit.middleware.observability: request id, access log and timing as one layer."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import BackgroundTasks, FastAPI, WebSocket
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.testclient import TestClient

from fastkit import (
    AccessLogMiddleware,
    ObservabilityMiddleware,
    RequestIDMiddleware,
    TimingMiddleware,
    get_request_id,
    install_exception_handlers,
    setup,
)

HEX32 = re.compile(r"[0-9a-f]{32}")
PROCESS_TIME = re.compile(r"\d+\.\d{6}")
SERVER_TIMING = re.compile(r"app;dur=\d+\.\d{3}")
ACCESS = "fastkit.access"
ORIGIN = "https://app.example.com"


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == ACCESS]


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
    with caplog.at_level(logging.INFO, logger=ACCESS):
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


def test_the_layer_behaves_as_the_three_stacked(caplog: pytest.LogCaptureFixture) -> None:
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

    layered = FastAPI()
    install_exception_handlers(layered)
    layered.add_middleware(ObservabilityMiddleware)  # wraps the 500 responder: absorbs it
    assert observe(layered, caplog) == expected


def id_app() -> FastAPI:
    app = FastAPI()
    install_exception_handlers(app)

    @app.get("/id")
    async def current() -> str | None:
        return get_request_id()

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("boom")

    return app


@pytest.mark.parametrize("off", ["request_id", "access_log", "timing"])
def test_one_part_turned_off(off: str, caplog: pytest.LogCaptureFixture) -> None:
    app = id_app()
    app.add_middleware(ObservabilityMiddleware, **{off: False})
    c = TestClient(app, raise_server_exceptions=False)
    with caplog.at_level(logging.INFO, logger=ACCESS):
        response = c.get("/id", headers={"X-Request-ID": "req-42"})
        crash = c.get("/crash", headers={"X-Request-ID": "req-42"})
    has_id = off != "request_id"
    assert response.json() == ("req-42" if has_id else None)
    assert ("x-request-id" in response.headers) is has_id
    assert ("request_id" in crash.json()) is has_id
    assert ("x-process-time" in response.headers) is (off != "timing")
    assert ("server-timing" in response.headers) is (off != "timing")
    records = access_records(caplog)
    assert len(records) == (0 if off == "access_log" else 2)
    assert [r.status for r in records] == [200, 500][: len(records)]  # type: ignore[attr-defined]
    assert {r.request_id for r in records} <= {response.json()}  # type: ignore[attr-defined]


def test_without_its_own_id_the_log_takes_the_id_of_an_outer_middleware(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = id_app()
    app.add_middleware(ObservabilityMiddleware, request_id=False)
    app.add_middleware(RequestIDMiddleware)
    with caplog.at_level(logging.INFO, logger=ACCESS):
        TestClient(app).get("/id", headers={"X-Request-ID": "req-42"})
    [record] = access_records(caplog)
    assert record.request_id == "req-42"  # type: ignore[attr-defined]


def test_options(caplog: pytest.LogCaptureFixture) -> None:
    app = id_app()
    app.add_middleware(
        ObservabilityMiddleware,
        request_id_header="X-Trace",
        request_id_generator=lambda: "generated",
        request_id_validator=lambda value: value.startswith("t-"),
        logger="shop.access",
        timing_header=None,
    )
    c = TestClient(app)
    with caplog.at_level(logging.INFO, logger="shop.access"):
        kept = c.get("/id", headers={"X-Trace": "t-1"})
        replaced = c.get("/id", headers={"X-Trace": "other"})
    assert (kept.headers["x-trace"], kept.json()) == ("t-1", "t-1")
    assert (replaced.headers["x-trace"], replaced.json()) == ("generated", "generated")
    assert not {"x-request-id", "x-process-time"} & set(kept.headers)
    assert SERVER_TIMING.fullmatch(kept.headers["server-timing"])
    records = [r for r in caplog.records if r.name == "shop.access"]
    assert [r.request_id for r in records] == ["t-1", "generated"]  # type: ignore[attr-defined]
    assert access_records(caplog) == []


@pytest.mark.parametrize(
    ("options", "match"),
    [
        pytest.param({"request_id_header": ""}, "request_id_header", id="empty-id-header"),
        pytest.param({"request_id_header": " "}, "request_id_header", id="blank-id-header"),
        pytest.param(
            {"timing_header": None, "server_timing": False}, "nothing to send", id="no-timing"
        ),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ObservabilityMiddleware(FastAPI(), **options)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"request_id": False, "request_id_header": ""}, id="id-off-header-unused"),
        pytest.param(
            {"timing": False, "timing_header": None, "server_timing": False}, id="timing-off"
        ),
    ],
)
def test_options_of_a_part_turned_off_are_not_checked(options: dict[str, Any]) -> None:
    ObservabilityMiddleware(FastAPI(), **options)


def test_headers_the_endpoint_set_are_replaced_not_doubled() -> None:
    app = FastAPI()
    app.add_middleware(ObservabilityMiddleware)

    @app.get("/own")
    async def own() -> JSONResponse:
        return JSONResponse(
            {"ok": True},
            headers={"X-Request-ID": "mine", "X-Process-Time": "9", "Server-Timing": "db;dur=1"},
        )

    response = TestClient(app).get("/own", headers={"X-Request-ID": "req-8"})
    assert response.headers.get_list("x-request-id") == ["req-8"]
    [elapsed] = response.headers.get_list("x-process-time")
    assert PROCESS_TIME.fullmatch(elapsed)
    assert response.headers["content-type"] == "application/json"
    # Server-Timing is a list: the app's metric stays, ours is added.
    timings = response.headers.get_list("server-timing")
    assert timings[0] == "db;dur=1"
    assert SERVER_TIMING.fullmatch(timings[1])


@pytest.mark.parametrize("cors", [False, True], ids=["absorbed-responder", "cors-between"])
def test_500_is_answered_once_with_every_header(
    cors: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # With nothing between them (what setup() builds), the layer answers unhandled errors
    # itself through UnhandledErrorMiddleware.answer; with CORS between, the innermost
    # responder does. Same answer.
    app = setup(id_app(), cors_origins=[ORIGIN] if cors else None)
    with caplog.at_level(logging.INFO, logger=ACCESS):
        response = TestClient(app, raise_server_exceptions=False).get(
            "/crash", headers={"X-Request-ID": "req-7"}
        )
    assert response.status_code == 500
    assert response.json()["request_id"] == "req-7"
    assert response.headers.get_list("x-request-id") == ["req-7"]
    assert len(response.headers.get_list("x-process-time")) == 1
    assert SERVER_TIMING.fullmatch(response.headers["server-timing"])
    assert response.headers["connection"] == "close"
    [access] = access_records(caplog)
    assert access.status == 500  # type: ignore[attr-defined]
    assert len([r for r in caplog.records if r.name == "fastkit.errors"]) == 1


def test_a_stream_that_fails_midway_is_not_answered_twice(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = setup(FastAPI())

    async def chunks() -> AsyncIterator[bytes]:
        yield b"first,"
        raise RuntimeError("boom")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        return StreamingResponse(chunks())

    client = TestClient(app, raise_server_exceptions=False)
    with caplog.at_level(logging.INFO, logger=ACCESS), client.stream("GET", "/stream") as response:
        assert response.status_code == 200
        assert response.headers["x-request-id"]
        body = b"".join(response.iter_raw())
    # No 500 body glued on. (httpx on Python 3.10 drops the partial body when the app
    # raises mid-stream; httpx2 delivers it.)
    assert body in (b"first,", b"")
    assert b"Internal Server Error" not in body
    [access] = access_records(caplog)
    assert access.status == 200  # type: ignore[attr-defined]


def install_access_log(app: FastAPI, installed_by: str) -> FastAPI:
    if installed_by == "AccessLogMiddleware":
        app.add_middleware(TimingMiddleware)
        app.add_middleware(AccessLogMiddleware)
    else:
        app.add_middleware(ObservabilityMiddleware)
    return app


INSTALLED_BY = ["AccessLogMiddleware", "ObservabilityMiddleware"]


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
    names = [r.name for r in caplog.records if r.name in ("shop", ACCESS)]
    assert names == ["shop", ACCESS]
    # ...but its duration stops before the task: the task's time is not in it.
    [record] = access_records(caplog)
    assert record.duration_ms <= (total - spent[0]) * 1000  # type: ignore[attr-defined]


@pytest.mark.parametrize("installed_by", INSTALLED_BY)
def test_access_log_counts_a_streamed_body_in_full(
    installed_by: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = install_access_log(FastAPI(), installed_by)

    @app.get("/export.csv")
    async def export() -> StreamingResponse:
        async def rows() -> AsyncIterator[bytes]:
            yield b"id,name\n"
            await asyncio.sleep(0.1)
            yield b"1,pen\n"

        return StreamingResponse(rows(), media_type="text/csv")

    with caplog.at_level(logging.INFO, logger=ACCESS):
        response = TestClient(app).get("/export.csv")
    [record] = access_records(caplog)
    assert record.duration_ms >= 100  # type: ignore[attr-defined]
    assert float(response.headers["x-process-time"]) < 0.1  # the time to the first byte


def test_a_subclass_of_the_500_responder_keeps_its_layer() -> None:
    # Only fastkit's own responder is absorbed; a subclass of it answers as it chooses.
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse

    from fastkit.errors import UnhandledErrorMiddleware

    class Teapot(UnhandledErrorMiddleware):
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            try:
                await self.app(scope, receive, send)
            except RuntimeError:
                await PlainTextResponse("teapot", status_code=418)(scope, receive, send)

    app = id_app()
    app.user_middleware = [
        Middleware(Teapot) if m.cls is UnhandledErrorMiddleware else m for m in app.user_middleware
    ]
    app.add_middleware(ObservabilityMiddleware)
    response = TestClient(app, raise_server_exceptions=False).get("/crash")
    assert (response.status_code, response.text) == (418, "teapot")
    assert "x-request-id" in response.headers
