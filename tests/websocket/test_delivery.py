"""ConnectionManager delivery and lifecycle, step by step, on server-less Starlette websockets.

Stalled, timed-out and vanished clients; duplicate ids (also two connecting at once);
and the bugs that used to slip through (each test names what went wrong).
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


# --- lifecycle races and cancellation ---------------------------------------------------


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


async def test_an_exception_inside_connect_closes_with_1011() -> None:
    manager = ConnectionManager()
    peer = Peer()
    with pytest.raises(RuntimeError, match="handler failed"):
        async with manager.connect(peer.websocket, client_id="ann"):
            raise RuntimeError("handler failed")
    assert len(manager) == 0
    assert peer.close_code == 1011


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


async def test_a_dropped_client_gets_its_close_frame_once_it_reads_again() -> None:
    # Behind a full TCP window the close frame waits like any frame; the handler waits for
    # it (up to close_timeout) rather than return and let the server cut the socket first.
    manager = ConnectionManager(queue_size=1, send_timeout=60, close_timeout=10)
    slow = Peer(stall=True, stall_close=True)
    task = asyncio.create_task(serve(manager, slow, "slow"))
    await eventually(lambda: manager.clients() == ["slow"])
    for n in range(3):  # one in its send, one queued, the third overflows
        await manager.broadcast(n)
        await asyncio.sleep(0.01)
    await eventually(lambda: manager.clients() == [])
    await asyncio.sleep(0.3)
    assert not task.done()  # still owed its close frame
    assert slow.close_code is None
    slow.released.set()  # the client reads again
    await asyncio.wait_for(task, 5)
    assert slow.close_code == CLOSE_TOO_SLOW


async def test_a_client_that_never_reads_again_is_abandoned_after_close_timeout() -> None:
    manager = ConnectionManager(queue_size=1, send_timeout=60, close_timeout=0.2)
    slow = Peer(stall=True, stall_close=True)
    task = asyncio.create_task(serve(manager, slow, "slow"))
    await eventually(lambda: manager.clients() == ["slow"])
    started = asyncio.get_running_loop().time()
    for n in range(3):
        await manager.broadcast(n)
        await asyncio.sleep(0.01)
    conn = await asyncio.wait_for(task, 5)  # the handler ends: the server closes the socket
    assert asyncio.get_running_loop().time() - started < 2
    assert conn.closed
    assert slow.close_code is None  # never sent: the client never read
    assert len(manager) == 0
    slow.released.set()


async def test_a_single_room_given_as_a_string_is_one_room() -> None:
    manager = ConnectionManager()
    peer = Peer()
    async with manager.connect(peer.websocket, client_id="ann", rooms="lobby"):
        assert manager.rooms() == ["lobby"]
        assert manager.clients("lobby") == ["ann"]
    assert manager.rooms() == []
