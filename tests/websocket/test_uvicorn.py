"""ConnectionManager behind one real uvicorn process, driven by raw `websockets` clients.

A client that never reads, with a tiny TCP receive window, must be dropped without holding
up the others; a client that vanishes without a close frame must be removed. The server
(tests/websocket/uvicorn_app.py) uses ``queue_size=8`` and ``send_timeout=0.5``.

Needs the ``websockets`` package, both as the client here and as uvicorn's websocket
implementation; skipped with a reason without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.uvicorn_support import ROOT, free_port, httpx, uvicorn_process

NO_WEBSOCKETS = "the websockets package is not installed (uvicorn needs it to serve websockets)"
ws_client = pytest.importorskip("websockets.asyncio.client", reason=NO_WEBSOCKETS)
ws_exceptions = pytest.importorskip("websockets.exceptions", reason=NO_WEBSOCKETS)

pytestmark = pytest.mark.anyio

QUEUE_SIZE = 8
SEND_TIMEOUT = 0.5
SIZE = 64 * 1024  # each broadcast: more than a TCP window of a client that never reads
BROADCASTS = 200
WINDOW = 4  # broadcasts in flight: fewer than QUEUE_SIZE, so live clients never overflow
RECV_TIMEOUT = 15.0
POLL = 0.1


@dataclass
class Server:
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, client_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/{client_id}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One uvicorn process serving tests/websocket/uvicorn_app.py, its output in a log."""
    port = free_port()
    server = Server(port, tmp_path_factory.mktemp("ws-uvicorn") / "uvicorn.log")
    env = {"FASTKIT_WS_QUEUE_SIZE": str(QUEUE_SIZE), "FASTKIT_WS_SEND_TIMEOUT": str(SEND_TIMEOUT)}
    args = ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    with uvicorn_process(
        ["tests.websocket.uvicorn_app:app", *args],
        log_path=server.log_path,
        ready_url=f"{server.base_url}/ok",
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        startup_timeout=30,
    ):
        yield server


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as client:
        yield client


def connect(url: str, **kwargs: Any) -> Any:
    """A raw client: no compression (the padding must fill the TCP buffers), no keepalive."""
    options: dict[str, Any] = {
        "compression": None,
        "ping_interval": None,
        "proxy": None,
        "open_timeout": 10,
        "close_timeout": 2,
    }
    return ws_client.connect(url, **{**options, **kwargs})


@contextlib.asynccontextmanager
async def stalled_client(server: Server, client_id: str) -> AsyncIterator[Any]:
    """A client that never reads: a 4 KiB receive buffer, at most one message queued."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
        async with connect(server.ws_url(client_id), sock=sock, max_queue=1) as ws:
            yield ws
    finally:
        sock.close()


async def clients_of(http: httpx.AsyncClient) -> set[str]:
    response = await http.get("/clients")
    assert response.status_code == 200
    return set(response.json()["clients"])


async def wait_for_clients(
    http: httpx.AsyncClient, server: Server, ok: Callable[[set[str]], bool], what: str
) -> None:
    """Poll the server's client list until ``ok(clients)``, for at most 15 s."""
    clients: set[str] = set()
    for _ in range(int(15 / POLL)):
        clients = await clients_of(http)
        if ok(clients):
            return
        await asyncio.sleep(POLL)
    pytest.fail(f"{what}; the server's clients: {sorted(clients)}\n{server.log()}")


async def receive_json(ws: Any) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT))


async def broadcast_all(publisher: Any, readers: dict[str, Any], count: int) -> dict[str, list]:
    """``count`` broadcasts of SIZE bytes from ``publisher``, WINDOW in flight; what each got."""
    got: dict[str, list[Any]] = {name: [] for name in readers}

    async def take_one_each() -> None:
        for name, ws in readers.items():
            message = await receive_json(ws)
            assert len(message["pad"]) == SIZE
            got[name].append(message["i"])

    for i in range(count):
        await publisher.send(json.dumps({"op": "broadcast", "i": i, "size": SIZE}))
        if i >= WINDOW:
            await take_one_each()
    for _ in range(min(WINDOW, count)):
        await take_one_each()
    return got


async def test_a_stalled_client_is_dropped_while_live_clients_get_every_broadcast(
    server: Server, http: httpx.AsyncClient
) -> None:
    async with (
        stalled_client(server, "stalled") as _stalled,
        connect(server.ws_url("live1")) as live1,
        connect(server.ws_url("live2")) as live2,
    ):
        wanted = {"stalled", "live1", "live2"}
        await wait_for_clients(http, server, wanted.issubset, "the clients did not connect")

        got = await broadcast_all(live1, {"live1": live1, "live2": live2}, BROADCASTS)

        assert got["live1"] == list(range(BROADCASTS))
        assert got["live2"] == list(range(BROADCASTS))
        await wait_for_clients(
            http,
            server,
            lambda clients: "stalled" not in clients and {"live1", "live2"} <= clients,
            "the stalled client was not dropped",
        )
        log = server.log()
        assert (
            "Closing websocket stalled: its queue is full" in log
            or "Closing websocket stalled: a send timed out" in log
        ), log


async def test_a_stalled_client_gets_a_1008_or_1011_close_once_it_reads(
    server: Server, http: httpx.AsyncClient
) -> None:
    async with (
        stalled_client(server, "stalled-close") as stalled,
        connect(server.ws_url("publisher")) as publisher,
    ):
        wanted = {"stalled-close", "publisher"}
        await wait_for_clients(http, server, wanted.issubset, "the clients did not connect")
        await broadcast_all(publisher, {"publisher": publisher}, BROADCASTS)
        await wait_for_clients(
            http,
            server,
            lambda clients: "stalled-close" not in clients,
            "the stalled client was not dropped",
        )
        # A client stalled for a while (a phone on a slow link, a frozen tab) reads again
        # later than the manager's 1 s close timeout: it must still learn that it was closed.
        await asyncio.sleep(2.0)
        with pytest.raises(ws_exceptions.ConnectionClosed) as closed:  # noqa: PT012
            for _ in range(BROADCASTS + 1):
                await asyncio.wait_for(stalled.recv(), 5.0)
        assert closed.value.rcvd is not None, "closed without a close frame"
        assert closed.value.rcvd.code in (1008, 1011)


CLIENT_SCRIPT = """
import asyncio, sys
from websockets.asyncio.client import connect

async def main():
    async with connect(sys.argv[1], compression=None, ping_interval=None, proxy=None):
        await asyncio.sleep(60)  # killed long before

asyncio.run(main())
"""


@pytest.mark.parametrize("how", ["abort-transport", "kill-client-process"])
async def test_a_client_that_vanishes_without_a_close_frame_is_removed(
    server: Server, http: httpx.AsyncClient, tmp_path: Path, how: str
) -> None:
    client_id = f"ghost-{how}"
    async with connect(server.ws_url("witness")) as witness:
        await wait_for_clients(http, server, {"witness"}.issubset, "the witness did not connect")
        if how == "abort-transport":
            async with connect(server.ws_url(client_id)) as ghost:
                await wait_for_clients(
                    http, server, {client_id}.issubset, "the client did not connect"
                )
                ghost.transport.abort()  # a TCP reset: no close frame
                await wait_for_clients(
                    http, server, lambda c: client_id not in c, "the vanished client stayed"
                )
        else:
            with (tmp_path / "client.log").open("wb") as log:
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-c",
                    CLIENT_SCRIPT,
                    server.ws_url(client_id),
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
            try:
                await wait_for_clients(
                    http, server, {client_id}.issubset, "the client process did not connect"
                )
                process.kill()  # the kernel closes its socket: no close frame
                await asyncio.wait_for(process.wait(), 10)
                await wait_for_clients(
                    http, server, lambda c: client_id not in c, "the killed client stayed"
                )
            finally:
                if process.returncode is None:
                    process.kill()
                    await asyncio.wait_for(process.wait(), 10)
        # The others are untouched.
        assert "witness" in await clients_of(http)
        response = await http.post("/send/witness", json={"still": "here"})
        assert response.status_code == 200
        assert await receive_json(witness) == {"still": "here"}


# --- shutdown: the close code clients see ---------------------------------------------------


@pytest.mark.parametrize("ws_impl", ["websockets-sansio", "websockets"])
async def test_a_server_shutdown_closes_clients_with_1012(tmp_path: Path, ws_impl: str) -> None:
    """uvicorn closes open websockets with 1012 (service restart) when it stops, before the
    lifespan's ``manager.stop()`` runs; the docs say so. A client reconnects on 1012."""
    port = free_port()
    log_path = tmp_path / "uvicorn.log"
    args = ["--host", "127.0.0.1", "--port", str(port), "--ws", ws_impl, "--log-level", "warning"]
    with uvicorn_process(
        ["tests.websocket.uvicorn_app:app", *args],
        log_path=log_path,
        ready_url=f"http://127.0.0.1:{port}/ok",
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        startup_timeout=30,
    ) as process:
        async with connect(f"ws://127.0.0.1:{port}/ws/leaving") as ws:
            await ws.send(json.dumps({"op": "broadcast", "i": 0, "size": 1}))
            assert (await receive_json(ws))["i"] == 0
            process.terminate()  # SIGTERM, as an orchestrator stops a worker
            with pytest.raises(ws_exceptions.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), RECV_TIMEOUT)
            assert ws.close_code == 1012, log_path.read_text(errors="replace")
        await asyncio.to_thread(process.wait, 10)
