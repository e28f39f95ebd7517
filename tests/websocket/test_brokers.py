"""fastkit.websocket brokers: the Broker protocol, and RedisBroker in one process.

Two managers on one channel, each with its own RedisBroker and its own Redis connections,
stand for two workers. With ``FASTKIT_TEST_REDIS_URL`` set, an
unreachable server fails these tests (they never skip); without it they skip with a reason.
Each test uses its own channel and its own client name, and kills only its own pub/sub
connections: other test runs may share the server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import redis.asyncio

from fastkit.websocket import Broker, ConnectionManager, MemoryBroker, RedisBroker
from tests.websocket.peers import Peer, eventually, sessions

pytestmark = pytest.mark.anyio

REDIS_URL = os.environ.get("FASTKIT_TEST_REDIS_URL")
NO_REDIS = "FASTKIT_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0)"
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
SECRET = "fastkit-broker-tests-secret-0123456789"


def named(url: str, client_name: str) -> str:
    """``url`` whose connections call themselves ``client_name`` (CLIENT SETNAME)."""
    return f"{url}{'&' if '?' in url else '?'}client_name={client_name}"


def texts(peer: Peer) -> list[str]:
    return [f for f in peer.frames if isinstance(f, str)]


def decoded(peer: Peer) -> list[object]:
    return [json.loads(f) for f in texts(peer)]


@dataclass
class Workers:
    """Two managers sharing one Redis channel, and a plain client to inspect the server."""

    a: ConnectionManager
    b: ConnectionManager
    channel: str
    client_name: str
    admin: redis.asyncio.Redis

    async def pubsub_connections(self) -> list[dict[str, str]]:
        clients = await self.admin.client_list(_type="pubsub")
        return [c for c in clients if c.get("name") == self.client_name]


@pytest.fixture
async def workers() -> AsyncIterator[Workers]:
    if not REDIS_URL:
        pytest.skip(NO_REDIS)
    suffix = uuid.uuid4().hex
    channel, client_name = f"fastkit-test:ws:{suffix}", f"fastkit-test-ws-{suffix}"
    brokers = [
        RedisBroker(named(REDIS_URL, client_name), secret=SECRET, channel=channel) for _ in range(2)
    ]
    a, b = (ConnectionManager(broker=broker) for broker in brokers)
    admin = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        # No try/skip around the server: with the URL set, an unreachable server must fail.
        await admin.ping()
        await a.start()
        await b.start()
        assert all(broker.subscribed.is_set() for broker in brokers)
        yield Workers(a, b, channel, client_name, admin)
    finally:
        await a.stop()
        await b.stop()
        await admin.aclose()


# --- without a server --------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({}, id="neither"),
        pytest.param({"url": DEAD_REDIS_URL, "client": object()}, id="both"),
    ],
)
def test_redis_broker_needs_url_or_client(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="either url= or client="):
        RedisBroker(**kwargs, secret=SECRET)  # type: ignore[arg-type]


def test_brokers_satisfy_the_protocol() -> None:
    assert isinstance(MemoryBroker(), Broker)
    assert isinstance(RedisBroker(DEAD_REDIS_URL, secret=SECRET), Broker)


def test_the_default_channel() -> None:
    assert RedisBroker(DEAD_REDIS_URL, secret=SECRET).channel == "fastkit:websocket"


async def test_unreachable_redis_drops_messages_without_raising(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager = ConnectionManager(
        broker=RedisBroker(DEAD_REDIS_URL, secret=SECRET, publish_timeout=5)
    )
    peer = Peer()
    with caplog.at_level(logging.WARNING, logger="fastkit.websocket"):
        try:
            # start() waits up to 5 s for a subscription, then goes on retrying in the background.
            async with sessions(manager, ann=peer):
                await manager.broadcast("lost")
                await manager.send("ann", "lost too")
                assert manager.clients() == ["ann"]
        finally:
            await manager.stop()
    assert peer.frames == []
    messages = [r.getMessage() for r in caplog.records if r.name == "fastkit.websocket"]
    assert sum("Redis unreachable: websocket message dropped" in m for m in messages) == 2
    assert any("Redis not subscribed after 5s" in m for m in messages)
    assert any("Redis subscription lost" in m for m in messages)


# --- against a real server ---------------------------------------------------------------


async def test_broadcast_and_send_reach_clients_of_both_workers(workers: Workers) -> None:
    a1, a2, b1 = Peer(), Peer(), Peer()
    async with sessions(workers.a, a1=a1, a2=a2), sessions(workers.b, b1=b1) as on_b:
        workers.b.join(on_b.conns["b1"], "room")

        await workers.a.broadcast({"n": 1})
        await eventually(lambda: all(decoded(p) == [{"n": 1}] for p in (a1, a2, b1)))

        await workers.a.send("b1", "to b1 from a")  # b1 is on the other worker
        await workers.b.send("a2", b"bytes to a2 from b")
        await workers.a.broadcast("room only", room="room")
        await workers.b.broadcast("not a1", exclude=["a1"])
        await eventually(lambda: len(b1.frames) == 4 and len(a2.frames) == 3)
        await workers.a.send("a1", "marker")
        await eventually(lambda: len(a1.frames) == 2)
        assert b1.frames[1:] == ["to b1 from a", "room only", "not a1"]
        assert a2.frames[1:] == [b"bytes to a2 from b", "not a1"]
        assert a1.frames[1:] == ["marker"]


async def test_the_broker_resubscribes_after_its_connection_is_killed(workers: Workers) -> None:
    a1, b1 = Peer(), Peer()
    async with sessions(workers.a, a1=a1), sessions(workers.b, b1=b1):
        await workers.a.broadcast("before")
        await eventually(lambda: texts(a1) == texts(b1) == ["before"])

        killed = await workers.pubsub_connections()
        assert len(killed) == 2  # one per worker
        for connection in killed:
            await workers.admin.client_kill_filter(_id=connection["id"])

        # Messages published until the brokers resubscribe are lost (at-most-once): probe.
        for probe in range(50):
            await workers.b.broadcast(f"probe {probe}")
            await asyncio.sleep(0.2)
            if any(t.startswith("probe") for t in texts(a1)) and any(
                t.startswith("probe") for t in texts(b1)
            ):
                break
        else:
            pytest.fail("no probe reached both workers' clients within 10 s")

        now = await workers.pubsub_connections()
        assert len(now) == 2
        assert {c["id"] for c in now}.isdisjoint(c["id"] for c in killed)
        await workers.a.broadcast("after")
        await workers.a.send("b1", "after, to b1")
        await eventually(lambda: texts(a1)[-1] == "after" and texts(b1)[-1] == "after, to b1")


async def test_a_client_passed_in_is_left_open(workers: Workers) -> None:
    assert REDIS_URL is not None
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    manager = ConnectionManager(
        broker=RedisBroker(client=client, secret=SECRET, channel=workers.channel)
    )
    try:
        peer = Peer()
        async with sessions(manager, own=peer), sessions(workers.a, a1=(a1 := Peer())):
            await workers.a.broadcast("shared channel")
            await eventually(lambda: texts(peer) == texts(a1) == ["shared channel"])
        await manager.stop()
        assert await client.ping() is True
    finally:
        await client.aclose()


# --- signed messages ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret", [pytest.param("short", id="short"), pytest.param(b"x" * 31, id="31-bytes")]
)
def test_a_short_secret_is_refused(secret: str | bytes) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        RedisBroker(DEAD_REDIS_URL, secret=secret)


def forged_messages() -> list[bytes]:
    """What someone with access to the channel but not the secret might publish."""
    body = json.dumps(
        {
            "op": "broadcast",
            "room": None,
            "exclude": [],
            "message": {"kind": "text", "value": "pwn"},
        }
    ).encode()
    other = RedisBroker(DEAD_REDIS_URL, secret="another-secret-of-32-bytes-0123456789")
    return [
        body,  # the old, unsigned format
        b"0" * 64 + b"." + body,  # a made-up signature
        other._sign(body),  # signed with another secret
        b"." + body,
        b"",
    ]


async def test_messages_without_a_valid_signature_are_dropped_and_logged(
    workers: Workers, caplog: pytest.LogCaptureFixture
) -> None:
    a1, b1 = Peer(), Peer()
    with caplog.at_level(logging.WARNING, logger="fastkit.websocket"):
        async with sessions(workers.a, a1=a1), sessions(workers.b, b1=b1):
            for forged in forged_messages():
                await workers.admin.publish(workers.channel, forged)
            await workers.a.broadcast("signed")  # after the forged ones, on the same channel
            await eventually(lambda: texts(a1) == texts(b1) == ["signed"])
    dropped = [
        r.getMessage()
        for r in caplog.records
        if r.name == "fastkit.websocket" and "without a valid signature" in r.getMessage()
    ]
    # One warning per worker (then at most one per 10 s), naming the channel.
    assert len(dropped) == 2
    assert all(workers.channel in message for message in dropped)
