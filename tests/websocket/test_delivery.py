"""ConnectionManager delivery and lifecycle, step by step, on server-less Starlette websockets.

Stalled, timed-out and vanished clients; duplicate ids (also two connecting at once);
and the known bugs, as strict xfails that say what is wrong (remove the marker once fixed).
"""

from __future__ import annotations

import asyncio

import pytest
from starlette.exceptions import WebSocketException

from fastkit.websocket import (
    CLOSE_SEND_TIMEOUT,
    CLOSE_TOO_SLOW,
    ConnectionManager,
)
from tests.websocket.peers import Peer, eventually, serve, sessions

pytestmark = pytest.mark.anyio


async def test_a_client_that_does_not_read_is_closed_with_1008_others_get_everything() -> None:
    manager = ConnectionManager(queue_size=2, send_timeout=60)
    slow, ann, bob = Peer(stall=True), Peer(), Peer()
    async with sessions(manager, slow=slow, ann=ann, bob=bob):
        for n in range(20):
            await manager.broadcast(str(n))  # returns at once, whoever stalls
            await eventually(lambda n=n: len(ann.frames) == len(bob.frames) == n + 1)
        await eventually(lambda: slow.close_code is not None)
        assert slow.close_code == CLOSE_TOO_SLOW == 1008
        assert sorted(manager.clients()) == ["ann", "bob"]
        expected = [str(n) for n in range(20)]
        assert ann.frames == bob.frames == expected
        # One message was in the stalled send, two queued, the fourth overflowed: none went out.
        assert slow.frames == []


async def test_a_send_over_send_timeout_closes_with_1011() -> None:
    manager = ConnectionManager(send_timeout=0.05)
    stuck, ann = Peer(stall=True), Peer()
    async with sessions(manager, stuck=stuck, ann=ann):
        await manager.broadcast({"n": 1})
        await eventually(lambda: stuck.close_code is not None)
        assert stuck.close_code == CLOSE_SEND_TIMEOUT == 1011
        assert manager.clients() == ["ann"]
        assert ann.frames == ['{"n":1}']


async def test_a_vanished_client_is_dropped_on_its_first_failed_send() -> None:
    manager = ConnectionManager()
    gone, ann = Peer(fail=True), Peer()
    async with sessions(manager, gone=gone, ann=ann) as running:
        manager.join(running.conns["gone"], "room")
        await manager.broadcast("hello")
        await eventually(lambda: manager.clients() == ["ann"])
        assert manager.rooms() == []
        assert gone.close_code is None  # no close frame to a dead socket
        assert ann.frames == ["hello"]


async def test_leaving_while_messages_are_queued_ends_cleanly() -> None:
    manager = ConnectionManager(queue_size=100)
    slow = Peer(stall=True)
    async with sessions(manager, slow=slow) as running:
        for n in range(10):
            await manager.broadcast(n)
        slow.leave()
        conn = await asyncio.wait_for(running.tasks["slow"], 10)
        assert conn.closed
        assert len(manager) == 0
        assert conn.writer is not None
        assert conn.writer.done()


async def test_a_duplicate_client_id_is_refused_with_1008_before_accept() -> None:
    manager = ConnectionManager()
    first, second = Peer(), Peer()
    async with sessions(manager, ann=first):
        with pytest.raises(WebSocketException) as refused:
            async with manager.connect(second.websocket, client_id="ann"):
                pytest.fail("a second 'ann' was let in")  # pragma: no cover
        # FastAPI answers a WebSocketException before accept by closing with its code.
        assert (refused.value.code, refused.value.reason) == (1008, "client id already connected")
        assert not second.accepted
        assert manager.clients() == ["ann"]
        await manager.send("ann", "still yours")
        await eventually(lambda: first.frames == ["still yours"])


# --- known bugs ----------------------------------------------------------------------------


@pytest.mark.xfail(
    strict=True,
    reason="src bug: connect() checks the id, then awaits accept(), then registers; two "
    "handshakes with one id in that window are both admitted",
)
async def test_two_concurrent_connects_with_one_id_admit_only_one() -> None:
    manager = ConnectionManager()
    a, b = Peer(), Peer()
    outcomes: list[str] = []

    async def attempt(peer: Peer) -> None:
        try:
            await serve(manager, peer, "ann", rooms=["r"])
        except WebSocketException:
            outcomes.append("refused")
        else:
            outcomes.append("served")

    tasks = [asyncio.create_task(attempt(a)), asyncio.create_task(attempt(b))]
    try:
        await eventually(lambda: a.accepted or b.accepted)
        await asyncio.sleep(0.05)  # both handshakes are past the id check by now
        accepted = [p.accepted for p in (a, b)]
    finally:
        a.leave()
        b.leave()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert sorted(outcomes) == ["refused", "served"]
    assert accepted.count(True) == 1


@pytest.mark.xfail(
    strict=True,
    reason="src bug: join() on a connection the manager already closed leaves its id in the "
    "room; the next broadcast to the room raises KeyError",
)
async def test_join_after_the_manager_closed_the_connection_is_harmless() -> None:
    manager = ConnectionManager(queue_size=1, send_timeout=60)
    slow, ann = Peer(stall=True), Peer()
    async with sessions(manager, slow=slow, ann=ann) as running:
        conn = running.conns["slow"]
        for n in range(3):  # one in its send, one queued, the third overflows
            await manager.broadcast(n)
            await asyncio.sleep(0.01)
        await eventually(lambda: conn.closed and slow.close_code == 1008)
        # The endpoint, still reading a "join" the client sent before it stalled, joins:
        manager.join(conn, "late")
        manager.join(running.conns["ann"], "late")
        await manager.broadcast("to late", room="late")  # KeyError: 'slow'
        await eventually(lambda: "to late" in ann.frames)
        assert manager.clients("late") == ["ann"]


@pytest.mark.xfail(
    strict=True,
    reason="src bug: an exception inside `async with manager.connect()` closes with 1000 "
    "(normal closure); 1011 (internal error) tells the client the truth",
)
async def test_an_exception_inside_connect_closes_with_1011() -> None:
    manager = ConnectionManager()
    peer = Peer()
    with pytest.raises(RuntimeError, match="handler failed"):
        async with manager.connect(peer.websocket, client_id="ann"):
            raise RuntimeError("handler failed")
    assert len(manager) == 0
    assert peer.close_code == 1011


@pytest.mark.xfail(
    strict=True,
    reason="src bug: _close() awaits the writer task directly and the writer swallows "
    "CancelledError, so cancelling a task inside _close (e.g. stop()) is lost",
)
async def test_stop_can_be_cancelled() -> None:
    manager = ConnectionManager(send_timeout=60)
    slow = Peer(stall=True)
    async with sessions(manager, slow=slow):
        await manager.broadcast("stuck")  # the writer is now inside its send
        await asyncio.sleep(0.01)
        stopping = asyncio.create_task(manager.stop())
        await asyncio.sleep(0)  # stop() runs until it awaits the writer task
        stopping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(stopping, 10)
