"""Real uvicorn processes for the end-to-end tests: a free loopback port, start, wait, stop."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

try:
    import httpx2 as httpx
except ImportError:  # Python 3.10: httpx2 needs 3.11+
    import httpx  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Server:
    """A running uvicorn: where it answers and where its output goes."""

    base_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_up(
    process: subprocess.Popen[bytes], url: str, log: Callable[[], str], timeout: float
) -> None:
    """Until ``url`` answers 200; fail with the server's output if it exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"uvicorn exited with {process.returncode}:\n{log()}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"uvicorn did not answer within {timeout:.0f} s:\n{log()}")


@contextlib.contextmanager
def uvicorn_process(
    args: Sequence[str],
    *,
    log_path: Path,
    ready_url: str,
    env: Mapping[str, str],
    startup_timeout: float,
    stop_timeout: float = 10.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m uvicorn *args`` from the repository root, its output in ``log_path``;
    yielded once ``ready_url`` answers 200, terminated (then killed) on exit."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", *args],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
        )
    try:
        wait_until_up(
            process, ready_url, lambda: log_path.read_text(errors="replace"), startup_timeout
        )
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
