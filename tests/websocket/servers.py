"""Real uvicorn processes serving tests/websocket/uvicorn_app.py on free loopback ports.

As in tests/test_e2e_uvicorn.py: a subprocess per server, its output in a log file that
failures print, up within a bounded time, terminated (then killed) on exit.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

try:
    import httpx2 as httpx
except ImportError:  # Python 3.10: httpx2 needs 3.11+
    import httpx  # type: ignore[no-redef]

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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_up(process: subprocess.Popen[bytes], server: Server) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"uvicorn exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.base_url}/ok", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"uvicorn did not answer within {STARTUP_TIMEOUT:.0f} s:\n{server.log()}")


@contextlib.contextmanager
def uvicorn_server(log_dir: Path, env: dict[str, str]) -> Iterator[Server]:
    """One uvicorn process serving the test app, configured by ``env`` (see uvicorn_app)."""
    port = free_port()
    server = Server(port, log_dir / f"uvicorn-{port}.log")
    command = [sys.executable, "-m", "uvicorn", APP, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--log-level", "warning"]
    with server.log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        )
    try:
        _wait_until_up(process, server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
