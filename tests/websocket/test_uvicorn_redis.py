"""Two uvicorn workers sharing one Redis: what one worker's clients send reaches the other's.

Each test starts its own two processes (A and B) on a channel of its own, with a client name
of its own, and kills only those connections: other test runs may share the server. With
``FASTKIT_TEST_REDIS_URL`` set, an unreachable server fails these tests; without it they
skip with a reason, as they do without the ``websockets`` package.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio

from tests.websocket.servers import Server, httpx, uvicorn_server

NO_WEBSOCKETS = "the websockets package is not installed (uvicorn needs it to serve websockets)"
ws_client = pytest.importorskip("websockets.asyncio.client", reason=NO_WEBSOCKETS)

pytestmark = pytest.mark.anyio

REDIS_URL = os.environ.get("FASTKIT_TEST_REDIS_URL")
NO_REDIS = "FASTKIT_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0)"
RECV_TIMEOUT = 15.0
RESUBSCRIBE_TIMEOUT = 15.0


@dataclass
class Pair:
    a: Server
    b: Server
    channel: str
    client_name: str


@pytest.fixture
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    if not REDIS_URL:
        pytest.skip(NO_REDIS)
    suffix = uuid.uuid4().hex
    channel, client_name = f"fastkit-test:ws:{suffix}", f"fastkit-test-ws-{suffix}"
    url = f"{REDIS_URL}{'&' if '?' in REDIS_URL else '?'}client_name={client_name}"
    logs = tmp_path_factory.mktemp("ws-redis")
    env = {"FASTKIT_WS_REDIS_URL": url, "FASTKIT_WS_CHANNEL": channel}
    with (
        uvicorn_server(logs, {**env, "FASTKIT_WS_WORKER": "A"}) as a,
        uvicorn_server(logs, {**env, "FASTKIT_WS_WORKER": "B"}) as b,
    ):
        yield Pair(a, b, channel, client_name)


@pytest.fixture
async def admin() -> AsyncIterator[redis.asyncio.Redis]:
    assert REDIS_URL is not None
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        await client.aclose()


def connect(url: str) -> Any:
    return ws_client.connect(
        url, compression=None, ping_interval=None, proxy=None, open_timeout=10, close_timeout=2
    )


async def receive_json(ws: Any, timeout: float = RECV_TIMEOUT) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def next_matching(ws: Any, ok: Callable[[Any], bool], limit: int = 100) -> Any:
    """The next message that is ``ok``, skipping at most ``limit`` others (probes)."""
    for _ in range(limit):
        message = await receive_json(ws)
        if ok(message):
            return message
    pytest.fail(f"no matching message among {limit}")


async def post(server: Server, path: str, body: Any) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as http:
        response = await http.post(path, json=body)
    assert response.status_code == 200, response.text


async def wait_connected(server: Server, client_id: str) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as http:
        for _ in range(150):
            if client_id in (await http.get("/clients")).json()["clients"]:
                return
            await asyncio.sleep(0.1)
    pytest.fail(f"{client_id} did not connect:\n{server.log()}")


async def test_broadcast_and_send_cross_workers(pair: Pair) -> None:
    async with (
        connect(pair.a.ws_url("a1")) as a1,
        connect(pair.b.ws_url("b1")) as b1,
        connect(pair.b.ws_url("b2")) as b2,
    ):
        for server, client_id in ((pair.a, "a1"), (pair.b, "b1"), (pair.b, "b2")):
            await wait_connected(server, client_id)

        # A broadcast from a client on worker A reaches the clients on A and on B.
        await a1.send(json.dumps({"op": "broadcast", "i": 1, "size": 10}))
        expected = {"i": 1, "from": "A", "pad": "x" * 10}
        for ws in (a1, b1, b2):
            assert await receive_json(ws) == expected

        # A personal send, triggered on A, to a client connected to B.
        await post(pair.a, "/send/b1", {"to": "b1", "via": "A"})
        assert await receive_json(b1) == {"to": "b1", "via": "A"}
        # ... and only to it: each other client's next message is its own marker.
        await post(pair.b, "/send/b2", {"marker": "b2"})
        await post(pair.b, "/send/a1", {"marker": "a1"})
        assert await receive_json(b2) == {"marker": "b2"}
        assert await receive_json(a1) == {"marker": "a1"}

        # And the other way: a broadcast posted to B reaches A's client.
        await post(pair.b, "/broadcast", {"from": "B"})
        for ws in (a1, b1, b2):
            assert await receive_json(ws) == {"from": "B"}


async def test_delivery_resumes_after_the_pubsub_connections_are_killed(
    pair: Pair, admin: redis.asyncio.Redis
) -> None:
    async with connect(pair.a.ws_url("a1")) as a1, connect(pair.b.ws_url("b1")) as b1:
        await wait_connected(pair.a, "a1")
        await wait_connected(pair.b, "b1")
        await post(pair.a, "/broadcast", {"n": "before"})
        for ws in (a1, b1):
            assert await receive_json(ws) == {"n": "before"}

        ours = [
            c for c in await admin.client_list(_type="pubsub") if c.get("name") == pair.client_name
        ]
        assert len(ours) == 2, ours  # one subscription per worker
        for connection in ours:
            assert await admin.client_kill_filter(_id=connection["id"]) == 1

        # Until both brokers have resubscribed, broadcasts are lost (at-most-once): probe.
        seen = {"a1": False, "b1": False}
        for probe in range(int(RESUBSCRIBE_TIMEOUT / 0.5)):
            await post(pair.a, "/broadcast", {"probe": probe})
            for name, ws in (("a1", a1), ("b1", b1)):
                try:
                    while not seen[name]:
                        seen[name] = "probe" in await receive_json(ws, timeout=0.25)
                except (TimeoutError, asyncio.TimeoutError):
                    pass
            if all(seen.values()):
                break
        else:
            pytest.fail(
                f"delivery did not resume within {RESUBSCRIBE_TIMEOUT:.0f} s: {seen}\n"
                f"A:\n{pair.a.log()}\nB:\n{pair.b.log()}"
            )

        # Later messages are delivered again, both ways, sends too.
        await post(pair.b, "/broadcast", {"n": "after"})
        await post(pair.b, "/send/a1", {"n": "after, to a1"})
        await post(pair.a, "/send/b1", {"n": "after, to b1"})
        assert await next_matching(a1, lambda m: "probe" not in m) == {"n": "after"}
        assert await next_matching(b1, lambda m: "probe" not in m) == {"n": "after"}
        assert await receive_json(a1) == {"n": "after, to a1"}
        assert await receive_json(b1) == {"n": "after, to b1"}
        resubscribed = [
            c for c in await admin.client_list(_type="pubsub") if c.get("name") == pair.client_name
        ]
        assert len(resubscribed) == 2
        assert {c["id"] for c in resubscribed}.isdisjoint(c["id"] for c in ours)
