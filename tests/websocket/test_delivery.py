"""How `ConnectionManager` delivers: sends run as each connection's writer task, the send
watchdog, draining a backlog in order, and the hand-over of a send that has to wait.

Most sends of a server end at once (the socket takes the frame): `InstantPeer` is such a
client end. Those sends run from the manager's flush, one loop callback per batch of
queued frames, as the connection's writer task. A send that has to wait (the `Peer` of
``peers.py`` yields once in every send; a gated `InstantPeer` waits for its gate) is
carried on by the writer task itself.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any

import anyio
import pytest
from starlette.types import Message

from fastkit.websocket import CLOSE_SEND_TIMEOUT, CLOSE_TOO_SLOW, ConnectionManager
from tests.websocket.peers import Peer, eventually, serve, sessions

pytestmark = pytest.mark.anyio

HANDLER_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("handler_var")


class InstantPeer(Peer):
    """A client end whose sends end without yielding, unless ``gate`` is given and not set.

    Records, for each frame sent, the task that sent it and `HANDLER_VAR` as it saw it.
    """

    def __init__(self, *, gate: asyncio.Event | None = None, fail: bool = False) -> None:
        super().__init__(fail=fail)
        self.gate = gate
        self.tasks: list[asyncio.Task[Any] | None] = []
        self.seen: list[str | None] = []
        self.cancelled_sends = 0  # sends that got a CancelledError while they waited
        self.closed_sends = 0  # sends closed (GeneratorExit) while they waited

    async def _send(self, message: Message) -> None:
        if message["type"] == "websocket.send":
            self.tasks.append(asyncio.current_task())
            self.seen.append(HANDLER_VAR.get(None))
            if self.fail:
                raise OSError("Connection reset by peer")  # uvicorn's ClientDisconnected
            if self.gate is not None and not self.gate.is_set():
                try:
                    await self.gate.wait()
                except asyncio.CancelledError:
                    self.cancelled_sends += 1
                    raise
                except GeneratorExit:
                    self.closed_sends += 1
                    raise
        self.sent.append(message)


async def test_sends_run_as_the_writer_task_in_its_context_not_the_broadcaster() -> None:
    manager = ConnectionManager()
    peers = {name: InstantPeer() for name in ("ann", "bob", "cat")}
    conns: dict[str, Any] = {}

    async def handler(name: str) -> None:
        HANDLER_VAR.set(f"set by {name}'s handler")
        await serve(manager, peers[name], name, conns=conns)

    tasks = [asyncio.create_task(handler(name)) for name in peers]
    try:
        await eventually(lambda: len(conns) == 3)
        for n in range(5):
            await manager.broadcast(f"b{n}")
            await manager.send("bob", f"p{n}")
        await eventually(lambda: len(peers["bob"].frames) == 10)
        assert peers["bob"].frames == [x for n in range(5) for x in (f"b{n}", f"p{n}")]
        for name, peer in peers.items():
            assert peer.frames[:1] == ["b0"]
            writer = conns[name].writer
            assert writer is not None
            assert peer.tasks == [writer] * len(peer.frames)  # never the broadcaster
            assert peer.seen == [f"set by {name}'s handler"] * len(peer.frames)
    finally:
        for peer in peers.values():
            peer.leave()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)


async def test_a_send_that_fails_at_once_drops_only_its_client() -> None:
    manager = ConnectionManager()
    gone, ann = InstantPeer(fail=True), InstantPeer()
    async with sessions(manager, gone=gone, ann=ann) as running:
        manager.join(running.conns["gone"], "room")
        await manager.broadcast("hello")
        await manager.broadcast("again")
        await eventually(lambda: manager.clients() == ["ann"])
        assert manager.rooms() == []
        assert gone.close_code is None  # no close frame to a dead socket
        assert len(gone.tasks) == 1  # nothing more was tried
        await eventually(lambda: ann.frames == ["hello", "again"])


async def test_a_backlog_is_drained_in_order_then_sends_run_from_the_flush_again() -> None:
    manager = ConnectionManager(queue_size=50, send_timeout=60)
    gate = asyncio.Event()
    slow, ann = InstantPeer(gate=gate), InstantPeer()
    async with sessions(manager, slow=slow, ann=ann) as running:
        for n in range(30):  # the first send waits at the gate, 29 frames queue behind it
            await manager.broadcast(n)
        conn = running.conns["slow"]
        assert (len(conn.queue), slow.frames) == (29, [])
        assert ann.frames == [str(n) for n in range(30)]  # never held up by slow
        gate.set()
        await eventually(lambda: len(slow.frames) == 30)
        assert slow.frames == [str(n) for n in range(30)]
        assert not conn.queue
        await manager.broadcast("later")  # the writer is idle again
        await eventually(lambda: slow.frames[-1:] == ["later"])
        assert set(slow.tasks) == {conn.writer}
        assert not conn.closed


async def test_the_watchdog_drops_a_send_over_send_timeout_with_1011_others_keep_receiving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    timeout = 0.3
    manager = ConnectionManager(send_timeout=timeout, queue_size=1000)
    stuck = InstantPeer(gate=asyncio.Event())  # never opened: its first send hangs
    ann, bob = InstantPeer(), Peer()
    loop = asyncio.get_running_loop()
    with caplog.at_level(logging.WARNING, logger="fastkit.websocket"):
        async with sessions(manager, stuck=stuck, ann=ann, bob=bob) as running:
            started = loop.time()
            await manager.broadcast(0)
            n = 1
            while not running.conns["stuck"].closed:
                assert loop.time() - started < 10, "the hung send was never dropped"
                await manager.broadcast(n)
                n += 1
                await asyncio.sleep(0.01)
            dropped_after = loop.time() - started
            await eventually(lambda: stuck.close_code is not None)
            assert stuck.close_code == CLOSE_SEND_TIMEOUT == 1011
            assert dropped_after >= timeout  # never before its time
            assert sorted(manager.clients()) == ["ann", "bob"]
            await manager.broadcast("after")
            expected = [str(i) for i in range(n)] + ["after"]
            await eventually(lambda: ann.frames == bob.frames == expected)
            assert stuck.frames == []
            assert stuck.cancelled_sends == 1  # the hung send itself was cancelled
    drops = [r for r in caplog.records if "a send timed out" in r.getMessage()]
    assert [r.getMessage() for r in drops] == ["Closing websocket stuck: a send timed out"]


async def test_the_watchdog_leaves_sends_that_end_in_time_alone() -> None:
    manager = ConnectionManager(send_timeout=0.2)
    gate = asyncio.Event()
    slow = InstantPeer(gate=gate)
    async with sessions(manager, slow=slow) as running:
        for n in range(3):
            await manager.broadcast(n)
            await asyncio.sleep(0.12)  # each wait is under send_timeout
            gate.set()
            await eventually(lambda n=n: len(slow.frames) == n + 1)
            gate.clear()
        await asyncio.sleep(0.3)  # more than send_timeout, between sends: nothing in flight
        assert not running.conns["slow"].closed
        assert manager.clients() == ["slow"]


async def test_a_queue_over_queue_size_still_closes_with_1008() -> None:
    manager = ConnectionManager(queue_size=3, send_timeout=60)
    slow = InstantPeer(gate=asyncio.Event())
    async with sessions(manager, slow=slow) as running:
        for n in range(4):  # one waits in its send, three queue
            await manager.broadcast(n)
        assert not running.conns["slow"].closed
        await manager.broadcast(4)  # the fourth queued frame: one too many
        await eventually(lambda: slow.close_code is not None)
        assert slow.close_code == CLOSE_TOO_SLOW
        assert slow.frames == []


async def test_a_send_in_an_anyio_cancel_scope_that_waits_is_carried_on_by_the_writer() -> None:
    # The send starts in the flush and ends in the writer task: a cancel scope entered in
    # it must be left in the same task, as anyio checks.
    class ScopedPeer(InstantPeer):
        async def _send(self, message: Message) -> None:
            with anyio.fail_after(10):
                await super()._send(message)

    manager = ConnectionManager(send_timeout=60)
    gate = asyncio.Event()
    peer = ScopedPeer(gate=gate)
    async with sessions(manager, peer=peer) as running:
        await manager.broadcast("one")
        await manager.broadcast("two")
        await asyncio.sleep(0.05)
        gate.set()
        await eventually(lambda: peer.frames == ["one", "two"])
        assert not running.conns["peer"].closed


async def test_a_drop_just_as_a_waiting_send_is_handed_over_closes_that_send() -> None:
    manager = ConnectionManager(send_timeout=60)
    peer = InstantPeer(gate=asyncio.Event())
    async with sessions(manager, peer=peer) as running:
        conn = running.conns["peer"]
        loop = asyncio.get_running_loop()
        # Queued behind _flush, before the writer wakes for the send _flush hands it.
        await manager._deliver({"op": "broadcast", "message": {"kind": "text", "value": "x"}})
        loop.call_soon(manager._drop, conn, 1001)
        await eventually(lambda: peer.close_code is not None)
        assert peer.close_code == 1001
        assert (peer.closed_sends, peer.cancelled_sends, peer.frames) == (1, 0, [])
        assert conn.writer is not None
        await asyncio.wait_for(asyncio.wait({conn.writer}), 5)


async def test_a_foreign_cancel_just_as_a_waiting_send_is_handed_over_reaches_that_send() -> None:
    manager = ConnectionManager(send_timeout=60)
    peer = InstantPeer(gate=asyncio.Event())
    async with sessions(manager, peer=peer) as running:
        conn = running.conns["peer"]
        assert conn.writer is not None
        loop = asyncio.get_running_loop()
        await manager._deliver({"op": "broadcast", "message": {"kind": "text", "value": "x"}})
        loop.call_soon(conn.writer.cancel)  # not the manager: the send gets it, as in a task
        await asyncio.wait_for(asyncio.wait({conn.writer}), 5)
        assert (peer.cancelled_sends, peer.closed_sends, peer.frames) == (1, 0, [])
