"""BodyLimitMiddleware and BodyLimit: 413 for bodies over the limit, before they are read.

Through ``fastkit.setup(app)`` (its 1 MiB default) and the TestClient; the real-server
proof (memory and time under 100 MB posts) is in tests/middleware/test_body_limit_e2e.py.

No ``from __future__ import annotations``: FastAPI evaluates the endpoints' annotations.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Request, UploadFile
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel
from starlette.types import Message, Receive, Scope, Send

import fastkit
from fastkit.errors import Unauthorized
from fastkit.middleware import DEFAULT_MAX_BODY_SIZE, BodyLimit, BodyLimitMiddleware, KiB, MiB


class Note(BaseModel):
    text: str


calls: list[str] = []  # what the app got to run


def require_token(authorization: Annotated[str | None, Header()] = None) -> None:
    calls.append("auth")
    if authorization != "Bearer good":
        raise Unauthorized()


def build(**setup_options: Any) -> FastAPI:
    app = FastAPI()

    @app.post("/notes", dependencies=[Depends(require_token)])
    async def create_note(note: Note) -> dict[str, int]:
        calls.append("create_note")
        return {"length": len(note.text)}

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        calls.append("raw")
        return {"length": len(await request.body())}

    @app.post("/upload", dependencies=[Depends(BodyLimit(5 * MiB))])
    async def upload(file: UploadFile) -> dict[str, int]:
        return {"length": len(await file.read())}

    @app.post("/tiny", dependencies=[Depends(BodyLimit(10))])
    async def tiny(request: Request) -> dict[str, int]:
        return {"length": len(await request.body())}

    @app.post("/unlimited", dependencies=[Depends(BodyLimit(None))])
    async def unlimited(request: Request) -> dict[str, int]:
        return {"length": len(await request.body())}

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    files = APIRouter(prefix="/files", dependencies=[Depends(BodyLimit(3 * MiB))])

    @files.post("/big")
    async def files_big(request: Request) -> dict[str, int]:
        return {"length": len(await request.body())}

    @files.post("/small", dependencies=[Depends(BodyLimit(100))])
    async def files_small(request: Request) -> dict[str, int]:
        return {"length": len(await request.body())}

    app.include_router(files)
    return fastkit.setup(app, **setup_options)


@pytest.fixture
def client() -> Iterator[TestClient]:
    calls.clear()
    with TestClient(build()) as client:
        yield client


def chunks(size: int, piece: int = 64 * KiB) -> Iterator[bytes]:
    """``size`` bytes as a chunked body (no Content-Length)."""
    sent = 0
    while sent < size:
        part = min(piece, size - sent)
        sent += part
        yield b"x" * part


def assert_too_large(response: Any, limit: int) -> None:
    assert response.status_code == 413
    assert response.json() == {
        "code": 413,
        "message": f"Request body too large; send at most {limit} bytes.",
        "data": None,
    }


def test_default_is_one_mebibyte() -> None:
    assert DEFAULT_MAX_BODY_SIZE == MiB == 1024 * KiB


def test_a_body_at_the_limit_passes_one_byte_more_is_413(client: TestClient) -> None:
    assert client.post("/raw", content=b"x" * MiB).json() == {"length": MiB}
    assert_too_large(client.post("/raw", content=b"x" * (MiB + 1)), MiB)


def test_a_declared_length_over_the_limit_is_refused_before_any_dependency(
    client: TestClient,
) -> None:
    """The issue's case: an unauthenticated huge POST gets 413, and nothing ran."""
    body = b'{"text": "' + b"a" * (2 * MiB) + b'"}'
    response = client.post("/notes", content=body, headers={"Content-Type": "application/json"})
    assert_too_large(response, MiB)
    assert calls == []
    # Under the limit, the same route answers as usual: 401 without a token, 200 with one.
    assert client.post("/notes", json={"text": "hi"}).status_code == 401
    ok = client.post("/notes", json={"text": "hi"}, headers={"Authorization": "Bearer good"})
    assert ok.json() == {"length": 2}


def test_a_chunked_body_is_cut_at_the_limit(client: TestClient) -> None:
    assert_too_large(client.post("/raw", content=chunks(3 * MiB)), MiB)
    assert client.post("/raw", content=chunks(MiB // 2)).json() == {"length": MiB // 2}


def test_a_route_limit_overrides_the_default_up_and_down(client: TestClient) -> None:
    data = {"file": ("a.bin", b"y" * (3 * MiB), "application/octet-stream")}
    assert client.post("/upload", files=data).json() == {"length": 3 * MiB}
    too_big = {"file": ("a.bin", b"y" * (6 * MiB), "application/octet-stream")}
    assert_too_large(client.post("/upload", files=too_big), 5 * MiB)
    assert client.post("/tiny", content=b"0123456789").json() == {"length": 10}
    assert_too_large(client.post("/tiny", content=b"0123456789!"), 10)
    assert client.post("/unlimited", content=b"z" * (2 * MiB)).json() == {"length": 2 * MiB}


def test_a_router_limit_covers_its_routes_and_a_route_limit_wins(client: TestClient) -> None:
    assert client.post("/files/big", content=b"x" * (2 * MiB)).json() == {"length": 2 * MiB}
    assert_too_large(client.post("/files/big", content=b"x" * (3 * MiB + 1)), 3 * MiB)
    assert client.post("/files/small", content=b"x" * 100).json() == {"length": 100}
    assert_too_large(client.post("/files/small", content=b"x" * 101), 100)


def test_a_multipart_upload_over_the_limit_is_413_not_400(client: TestClient) -> None:
    data = {"file": ("a.bin", b"y" * (2 * MiB), "application/octet-stream")}
    assert_too_large(client.post("/raw", files=data), MiB)


def test_requests_without_a_body_are_untouched(client: TestClient) -> None:
    assert client.get("/ping").json() == {"ok": True}
    assert client.post("/raw").json() == {"length": 0}


def test_setup_none_turns_the_limit_off() -> None:
    with TestClient(build(max_body_size=None)) as client:
        assert client.post("/raw", content=b"x" * (3 * MiB)).json() == {"length": 3 * MiB}


def test_setup_takes_another_default() -> None:
    with TestClient(build(max_body_size=2 * KiB)) as client:
        assert client.post("/raw", content=b"x" * 2048).json() == {"length": 2048}
        assert_too_large(client.post("/raw", content=b"x" * 2049), 2048)
        # A route's own limit still wins over setup's.
        assert client.post("/files/big", content=b"x" * MiB).json() == {"length": MiB}


def test_problem_style_answers_a_problem() -> None:
    with TestClient(build(errors="problem")) as client:
        response = client.post("/raw", content=b"x" * (MiB + 1))
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == f"Request body too large; send at most {MiB} bytes."


def test_without_fastkits_handlers_it_is_fastapis_own_413() -> None:
    app = FastAPI()

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"length": len(await request.body())}

    app.add_middleware(BodyLimitMiddleware, max_body_size=100)
    with TestClient(app) as client:
        response = client.post("/raw", content=b"x" * 101)
    assert response.status_code == 413
    assert response.json() == {"detail": "Request body too large; send at most 100 bytes."}


class ReadsTheBody:
    """Middleware that reads the whole body before the app runs (as some signature checks
    do), then replays it: outside every exception handler."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        while not messages or messages[-1].get("more_body"):
            messages.append(await receive())

        async def replay() -> Message:
            return messages.pop(0)

        await self.app(scope, replay, send)


def test_a_body_read_outside_the_error_handlers_is_answered_by_the_limit_itself() -> None:
    app = FastAPI()

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"length": len(await request.body())}

    app.add_middleware(ReadsTheBody)  # before setup(): inside its layers
    fastkit.setup(app, max_body_size=100)
    with TestClient(app) as client:
        assert client.post("/raw", content=b"x" * 100).json() == {"length": 100}
        response = client.post("/raw", content=b"x" * 101)
    assert_too_large(response, 100)


def test_openapi_documents_the_413_of_a_route_limit(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "at most 5242880 bytes" in paths["/upload"]["post"]["responses"]["413"]["description"]


@pytest.mark.parametrize("bad", [-1, 1.5, True, "1MB"])
def test_bad_sizes_are_refused_at_construction(bad: Any) -> None:
    with pytest.raises(ValueError, match="whole number of bytes"):
        BodyLimit(bad)
    with pytest.raises(ValueError, match="whole number of bytes"):
        BodyLimitMiddleware(FastAPI(), max_body_size=bad)
    app = FastAPI()
    with pytest.raises(ValueError, match="max_body_size"):
        fastkit.setup(app, max_body_size=bad)
    assert app.user_middleware == []  # a refused setup leaves the app as it was


def test_a_streamed_answer_to_a_refused_body_is_a_clean_413(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Starlette's streaming responses read the request beside the stream (to notice a
    disconnect): a declared body over the limit gets the 413, not a 200 cut short with an
    error logged at every request."""
    app = FastAPI()

    @app.get("/events")
    async def events() -> StreamingResponse:
        async def lines() -> AsyncIterator[bytes]:
            for i in range(3):
                yield b"data: %d\n\n" % i
                await asyncio.sleep(0.01)

        return StreamingResponse(lines(), media_type="text/event-stream")

    fastkit.setup(app, max_body_size=100)
    with caplog.at_level(logging.WARNING), TestClient(app) as client:
        refused = client.request("GET", "/events", content=b"x" * 1000)
        ok = client.get("/events")
    assert_too_large(refused, 100)
    assert ok.text == "data: 0\n\ndata: 1\n\ndata: 2\n\n"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_route_limits_hold_without_a_default() -> None:
    with TestClient(build(max_body_size=None)) as client:
        assert_too_large(client.post("/tiny", content=b"0123456789!"), 10)
        assert client.post("/raw", content=b"x" * (2 * MiB)).json() == {"length": 2 * MiB}


def test_a_limit_inside_a_dependency_does_not_override_the_routes_own() -> None:
    def uploader(_: Annotated[None, Depends(BodyLimit(50 * MiB))]) -> str:
        return "ann"

    app = FastAPI()

    @app.post("/small", dependencies=[Depends(BodyLimit(100))])
    async def small(request: Request, user: Annotated[str, Depends(uploader)]) -> int:
        return len(await request.body())

    @app.post("/via-dependency")
    async def via_dependency(request: Request, user: Annotated[str, Depends(uploader)]) -> int:
        return len(await request.body())

    fastkit.setup(app)
    with TestClient(app) as client:
        assert_too_large(client.post("/small", content=b"x" * 101), 100)
        # With nothing on the route itself, the dependency's limit applies.
        assert client.post("/via-dependency", content=b"x" * (2 * MiB)).json() == 2 * MiB


def test_a_413_closes_the_connection(client: TestClient) -> None:
    """The server need not read, and throw away, the rest of the body."""
    response = client.post("/raw", content=b"x" * (MiB + 1))
    assert response.status_code == 413
    assert response.headers["connection"] == "close"
