from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from fastapi import FastAPI, Response, WebSocket
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient

from fastkit import TimingMiddleware, install_exception_handlers

PROCESS_TIME = re.compile(r"^\d+\.\d{6}$")
SERVER_TIMING = re.compile(r"^app;dur=(\d+\.\d{3})$")


def build_app(**options: Any) -> FastAPI:
    app = FastAPI()
    install_exception_handlers(app)
    app.add_middleware(TimingMiddleware, **options)

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("boom")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"{i}\n".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        await anyio.sleep(0.05)
        return {"ok": True}

    @app.get("/own-server-timing")
    async def own_server_timing(response: Response) -> dict[str, bool]:
        response.headers["Server-Timing"] = "db;dur=2"
        return {"ok": True}

    @app.websocket("/ws")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(build_app(), raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        pytest.param("/ok", 200, id="ok"),
        pytest.param("/no/such/route", 404, id="unknown-route"),
        pytest.param("/items/not-a-number", 422, id="validation-error"),
        pytest.param("/crash", 500, id="unhandled-exception"),
        pytest.param("/stream", 200, id="streaming"),
    ],
)
def test_both_headers_on_every_response(client: TestClient, path: str, status: int) -> None:
    response = client.get(path)
    assert response.status_code == status
    process_times = response.headers.get_list("x-process-time")
    server_timings = response.headers.get_list("server-timing")
    assert len(process_times) == 1
    assert len(server_timings) == 1
    assert PROCESS_TIME.fullmatch(process_times[0]), process_times
    match = SERVER_TIMING.fullmatch(server_timings[0])
    assert match, server_timings
    # One measurement, two units: seconds in X-Process-Time, milliseconds in Server-Timing.
    assert float(process_times[0]) * 1000 == pytest.approx(float(match[1]), abs=0.0011)


def test_streaming_body_is_intact(client: TestClient) -> None:
    response = client.get("/stream")
    assert response.text == "0\n1\n2\n"
    assert "x-process-time" in response.headers


def test_measures_the_app_in_seconds_and_milliseconds(client: TestClient) -> None:
    # A lower bound only: the endpoint sleeps 50 ms, so no unit mix-up can pass.
    response = client.get("/slow")
    assert float(response.headers["x-process-time"]) >= 0.045
    match = SERVER_TIMING.fullmatch(response.headers["server-timing"])
    assert match
    assert float(match[1]) >= 45


def test_keeps_the_apps_own_server_timing(client: TestClient) -> None:
    response = client.get("/own-server-timing")
    values = response.headers.get_list("server-timing")
    assert values[0] == "db;dur=2"
    assert len(values) == 2
    assert SERVER_TIMING.fullmatch(values[1])


@pytest.mark.parametrize(
    ("options", "present", "absent"),
    [
        pytest.param({"header": None}, ["server-timing"], ["x-process-time"], id="header-none"),
        pytest.param(
            {"server_timing": False}, ["x-process-time"], ["server-timing"], id="no-server-timing"
        ),
        pytest.param(
            {"header": "X-Response-Time"},
            ["x-response-time", "server-timing"],
            ["x-process-time"],
            id="custom-header",
        ),
    ],
)
def test_header_options(options: dict[str, Any], present: list[str], absent: list[str]) -> None:
    response = TestClient(build_app(**options)).get("/ok")
    assert response.status_code == 200
    for name in present:
        assert name in response.headers
    for name in absent:
        assert name not in response.headers
    if "x-response-time" in present:
        assert PROCESS_TIME.fullmatch(response.headers["x-response-time"])


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"header": None, "server_timing": False}, id="none-and-false"),
        pytest.param({"header": "", "server_timing": False}, id="empty-and-false"),
    ],
)
def test_nothing_to_send_is_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="set header or server_timing"):
        TimingMiddleware(FastAPI(), **options)


def test_websocket_passes_through(client: TestClient) -> None:
    with client.websocket_connect("/ws") as websocket:
        websocket.send_text("hello")
        assert websocket.receive_text() == "hello"
        accept_headers = dict(websocket.extra_headers or [])
    assert b"x-process-time" not in accept_headers
    assert b"server-timing" not in accept_headers


def test_lifespan_passes_through() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan)
    app.add_middleware(TimingMiddleware)

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    with TestClient(app) as client:
        assert events == ["startup"]
        assert client.get("/ok").status_code == 200
    assert events == ["startup", "shutdown"]
