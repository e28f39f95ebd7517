"""examples/chat behind a real uvicorn, driven by the ``websockets`` client library.

With ``FASTKIT_TEST_REDIS_URL`` set, two uvicorn processes sharing Redis serve one chat:
a user on one worker talks to a user on the other.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.uvicorn_support import free_port

try:
    import httpx2 as httpx
except ImportError:  # Python 3.10: httpx2 needs 3.11+
    import httpx  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 30.0
RECEIVE_TIMEOUT = 5.0
REDIS_URL = os.environ.get("FASTKIT_TEST_REDIS_URL")
CHAT_APP = "examples.chat.main:app"
# The workers of one chat share it; without it each would sign with its own random secret.
JWT_SECRET = "a-chat-e2e-secret-of-at-least-32-bytes-0123"
PASSWORDS = {"alice": "wonderland", "bob": "builder", "carol": "christmas"}


class Server:
    def __init__(
        self, log_path: Path, env: dict[str, str], app: str = CHAT_APP, port: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.log_path = log_path
        command = [sys.executable, "-m", "uvicorn", app]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"uvicorn exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"uvicorn did not answer within {STARTUP_TIMEOUT:.0f} s:\n{self.log()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def login(self, username: str) -> str:
        response = httpx.post(
            f"{self.base_url}/auth/token",
            data={"username": username, "password": PASSWORDS[username]},
            timeout=5.0,
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token


def start(
    tmp: Path, name: str, env: dict[str, str], app: str = CHAT_APP, port: int | None = None
) -> Server:
    """A uvicorn process serving ``app`` (on ``port``, else a free one) once it answers
    ``/health``."""
    server = Server(tmp / f"{name}.log", env, app, port)
    try:
        server.wait_until_up()
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # No REDIS_URL: one process, the memory broker. No JWT_SECRET: a random one, warned about.
    env = {"REDIS_URL": "", "JWT_SECRET": ""}
    server = start(tmp_path_factory.mktemp("chat"), "uvicorn", env)
    yield server
    server.stop()


async def receive(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT))
    message.pop("at", None)
    return message


async def join(server: Server, username: str, room: str) -> ClientConnection:
    token = server.login(username)
    ws = await connect(f"{server.ws_url}/ws/{room}", subprotocols=[token])
    assert ws.subprotocol == token  # the server echoes it, as browsers require
    assert await receive(ws) == {"type": "welcome", "room": room, "user": username}
    return ws


async def chat_two_rooms(lobby_a: Server, lobby_b: Server, games: Server) -> None:
    """alice (on ``lobby_a``) and bob (on ``lobby_b``) in lobby, carol (on ``games``) apart."""
    room = f"lobby-{uuid.uuid4().hex[:8]}"  # unique: a shared Redis may serve other runs
    other = f"games-{uuid.uuid4().hex[:8]}"
    alice = await join(lobby_a, "alice", room)
    carol = await join(games, "carol", other)
    bob = await join(lobby_b, "bob", room)
    try:
        assert await receive(alice) == {"type": "joined", "room": room, "user": "bob"}

        await bob.send(json.dumps({"text": "hi alice"}))
        said = {"type": "message", "room": room, "user": "bob", "text": "hi alice"}
        assert await receive(alice) == said
        assert await receive(bob) == said

        await carol.send(json.dumps({"text": "anyone?"}))
        assert await receive(carol) == {
            "type": "message",
            "room": other,
            "user": "carol",
            "text": "anyone?",
        }
        # Room isolation: what alice and bob get next is alice's message, not carol's.
        await alice.send(json.dumps({"text": "hello bob"}))
        assert (await receive(alice))["text"] == (await receive(bob))["text"] == "hello bob"

        await bob.close()
        assert await receive(alice) == {"type": "left", "room": room, "user": "bob"}
        await carol.send(json.dumps({"text": "still here"}))
        assert (await receive(carol))["text"] == "still here"  # no notice from the lobby
    finally:
        for ws in (alice, bob, carol):
            await ws.close()


def test_two_clients_in_one_room_one_in_another(server: Server) -> None:
    asyncio.run(chat_two_rooms(server, server, server))


def test_the_random_secret_is_warned_about_in_the_server_output(server: Server) -> None:
    # uvicorn leaves the root logger alone: the app's WARNING reaches stderr all the same.
    assert "JWT_SECRET is not set: using a random secret." in server.log()


@pytest.mark.parametrize(
    "subprotocols",
    [pytest.param(None, id="no-token"), pytest.param(["a.b.c"], id="bad-token")],
)
def test_bad_token_is_refused_with_a_readable_answer(
    server: Server, subprotocols: list[str] | None
) -> None:
    reason = "Missing token" if subprotocols is None else "Invalid or expired token"

    async def attempt() -> None:
        # A client without Origin: refused before accept with HTTP 401 and the envelope.
        with pytest.raises(InvalidStatus) as refused:
            await connect(f"{server.ws_url}/ws/lobby", subprotocols=subprotocols)
        response = refused.value.response
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert json.loads(response.body) == {"code": 401, "message": reason, "data": None}
        # With Origin, as a browser: accepted, then closed with 1008 and the reason.
        async with connect(
            f"{server.ws_url}/ws/lobby", subprotocols=subprotocols, origin=server.base_url
        ) as ws:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        assert ws.close_code == 1008
        assert ws.close_reason == reason

    asyncio.run(attempt())


@pytest.fixture(scope="module")
def redis_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    if not REDIS_URL:
        pytest.skip("FASTKIT_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0)")
    tmp = tmp_path_factory.mktemp("chat-redis")
    # Two processes, as `uvicorn --workers 2` would start, sharing rooms through Redis.
    env = {"REDIS_URL": REDIS_URL, "JWT_SECRET": JWT_SECRET}
    first = start(tmp, "first", env)
    try:
        second = start(tmp, "second", env)
    except BaseException:
        first.stop()
        raise
    yield first, second
    second.stop()
    first.stop()


def test_two_workers_share_rooms_through_redis(redis_servers: tuple[Server, Server]) -> None:
    first, second = redis_servers
    asyncio.run(chat_two_rooms(first, second, second))


def test_logout_on_one_worker_is_refused_on_the_other(
    redis_servers: tuple[Server, Server],
) -> None:
    first, second = redis_servers
    token = first.login("alice")
    # The shared secret: the other worker accepts the token until the logout.
    me = httpx.get(
        f"{second.base_url}/me", headers={"Authorization": f"Bearer {token}"}, timeout=5.0
    )
    assert me.status_code == 200
    response = httpx.post(
        f"{first.base_url}/auth/logout", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200

    async def attempt() -> None:
        with pytest.raises(InvalidStatus):
            await connect(f"{second.ws_url}/ws/lobby", subprotocols=[token])

    asyncio.run(attempt())
