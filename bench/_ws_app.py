"""The websocket apps that ``bench/websocket.py`` serves through uvicorn.

Two factories with the same three routes; only the connection manager differs:

- ``fastkit_app``: `fastkit.websocket.ConnectionManager` (per-client bounded queue and writer
  task), its ``queue_size`` and ``send_timeout`` taken from the environment variables
  ``FASTKIT_BENCH_WS_QUEUE_SIZE`` and ``FASTKIT_BENCH_WS_SEND_TIMEOUT``;
- ``seed_app``: the seed-style manager (the FastAPI docs' pattern): a list of websockets and
  a ``broadcast`` that awaits ``send_text`` on each in turn.

Routes:

- ``WS /ws``: registers with the manager, then reads until the client leaves;
- ``POST /broadcast?n=100&size=16384&interval=0.05``: starts ``n`` broadcasts in a background
  task and answers at once (409 if a run is already going). Broadcast ``i`` is sent at
  ``start + i * interval`` (or at once if late) and is ``size`` bytes of text starting
  ``"<seq:08d>:<time.time_ns():019d>:"``, the wall-clock time just before the broadcast
  call, so a client on the same machine can compute the delivery latency;
- ``GET /status``: the manager's client count, the ``/ws`` handlers still running, the
  broadcast run's progress, and this process's CPU time.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from fastkit.websocket import ConnectionManager

__all__ = ["HEADER_LEN", "SeedConnectionManager", "fastkit_app", "make_message", "seed_app"]

HEADER_LEN = 29  # "00000001:1700000000000000000:"
MAX_BROADCASTS = 10_000
MAX_SIZE = 1024 * 1024


def make_message(seq: int, size: int, padding: str) -> str:
    """Broadcast ``seq``: its send time (wall clock, ns) first, then padding to ``size``."""
    return f"{seq:08d}:{time.time_ns():019d}:" + padding[: max(0, size - HEADER_LEN)]


class SeedConnectionManager:
    """The seed app's manager: one list, a sequential ``broadcast``, no timeout."""

    def __init__(self) -> None:
        self.active_connections: list[WebSocket] = []

    async def connect(self, websocket: WebSocket) -> None:
        await websocket.accept()
        self.active_connections.append(websocket)

    def disconnect(self, websocket: WebSocket) -> None:
        if websocket in self.active_connections:
            self.active_connections.remove(websocket)

    async def broadcast(self, message: str) -> None:
        for connection in self.active_connections:
            await connection.send_text(message)

    def __len__(self) -> int:
        return len(self.active_connections)


@dataclass
class RunState:
    running: bool = False
    requested: int = 0
    done: int = 0  # broadcast calls that returned
    failed: int = 0  # broadcast calls that raised (seed: a client left mid-loop)
    last_error: str = ""
    start_ns: int = 0  # time.time_ns() just before the first broadcast
    end_ns: int = 0  # just after the last broadcast call returned
    cpu_start: float = 0.0  # time.process_time() at start_ns
    lag_max_ms: float = 0.0  # worst lateness of a broadcast against its schedule


@dataclass
class AppState:
    handlers: int = 0  # /ws handlers running (accepted or not)
    handlers_total: int = 0
    run: RunState | None = None


def _common_routes(app: FastAPI, state: AppState, manager: Any, broadcast: Any) -> None:
    tasks: set[asyncio.Task[None]] = set()

    async def run(n: int, size: int, interval: float) -> None:
        run_state = state.run
        assert run_state is not None
        padding = "x" * size
        loop = asyncio.get_running_loop()
        run_state.cpu_start = time.process_time()
        run_state.start_ns = time.time_ns()
        start = loop.time()
        for seq in range(n):
            due = start + seq * interval
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                run_state.lag_max_ms = max(run_state.lag_max_ms, -delay * 1000)
                await asyncio.sleep(0)  # let the writers run even when behind
            try:
                await broadcast(make_message(seq, size, padding))
            except Exception as error:  # seed: a send to a client that left
                run_state.failed += 1
                run_state.last_error = repr(error)[:200]
            run_state.done += 1
        run_state.end_ns = time.time_ns()
        run_state.running = False

    @app.post("/broadcast")
    async def start_broadcast(n: int = 100, size: int = 16384, interval: float = 0.05) -> Any:
        if not (1 <= n <= MAX_BROADCASTS and HEADER_LEN <= size <= MAX_SIZE and interval >= 0):
            return JSONResponse({"error": "bad parameters"}, status_code=422)
        if state.run is not None and state.run.running:
            return JSONResponse({"error": "a broadcast run is going"}, status_code=409)
        state.run = RunState(running=True, requested=n)
        task = asyncio.create_task(run(n, size, interval))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return {"started": n, "clients": len(manager)}

    @app.get("/status")
    async def status() -> dict[str, Any]:
        return {
            "clients": len(manager),
            "handlers": state.handlers,
            "handlers_total": state.handlers_total,
            "cpu": time.process_time(),
            "now_ns": time.time_ns(),
            "run": asdict(state.run) if state.run is not None else None,
        }


def fastkit_app() -> FastAPI:
    """``/ws`` on `fastkit.websocket.ConnectionManager`."""
    queue_size = int(os.environ.get("FASTKIT_BENCH_WS_QUEUE_SIZE", "32"))
    send_timeout = float(os.environ.get("FASTKIT_BENCH_WS_SEND_TIMEOUT", "1.0"))
    manager = ConnectionManager(queue_size=queue_size, send_timeout=send_timeout)
    state = AppState()
    app = FastAPI()

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        state.handlers += 1
        state.handlers_total += 1
        try:
            async with manager.connect(websocket) as conn:
                async for _ in manager.iter_json(conn):
                    pass
        finally:
            state.handlers -= 1

    _common_routes(app, state, manager, manager.broadcast)
    return app


def seed_app() -> FastAPI:
    """``/ws`` on the seed-style manager, as the FastAPI docs write it."""
    manager = SeedConnectionManager()
    state = AppState()
    app = FastAPI()

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        state.handlers += 1
        state.handlers_total += 1
        try:
            await manager.connect(websocket)
            try:
                while True:
                    await websocket.receive_text()
            except WebSocketDisconnect:
                manager.disconnect(websocket)
        finally:
            state.handlers -= 1

    _common_routes(app, state, manager, manager.broadcast)
    return app
