"""Real uvicorn processes serving tests/websocket/uvicorn_app.py on free loopback ports.

As in tests/test_e2e_uvicorn.py: a subprocess per server, its output in a log file that
failures print, up within a bounded time, terminated (then killed) on exit.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.uvicorn_support import free_port, httpx, uvicorn_process

__all__ = ["ROOT", "Server", "httpx", "uvicorn_server"]

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.websocket.uvicorn_app:app"
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


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


@contextlib.contextmanager
def uvicorn_server(log_dir: Path, env: dict[str, str]) -> Iterator[Server]:
    """One uvicorn process serving the test app, configured by ``env`` (see uvicorn_app)."""
    port = free_port()
    server = Server(port, log_dir / f"uvicorn-{port}.log")
    with uvicorn_process(
        [APP, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        log_path=server.log_path,
        ready_url=f"{server.base_url}/ok",
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        startup_timeout=STARTUP_TIMEOUT,
        stop_timeout=STOP_TIMEOUT,
    ):
        yield server
