"""uvicorn subprocesses for the end-to-end benchmarks: a free port, the command, the stop."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

__all__ = ["BENCH_DIR", "HOST", "free_port", "read_log", "stop_process", "uvicorn_command"]

BENCH_DIR = Path(__file__).resolve().parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def uvicorn_command(factory: str, port: int, *extra: str) -> list[str]:
    """One quiet uvicorn worker serving ``module:factory`` from ``bench/`` on ``port``."""
    return [
        sys.executable, "-m", "uvicorn", factory, "--factory", "--app-dir", str(BENCH_DIR),
        "--host", HOST, "--port", str(port), "--workers", "1",
        "--log-level", "warning", "--no-access-log", *extra,
    ]  # fmt: skip


def stop_process(process: subprocess.Popen[Any] | None, timeout: float = 10.0) -> None:
    """Terminate ``process`` if it runs; kill it if it has not stopped within ``timeout``."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def read_log(log: IO[bytes] | None, tail: int | None = None) -> str:
    """What a server wrote to ``log`` so far (its last ``tail`` characters)."""
    if log is None:
        return ""
    log.flush()
    log.seek(0)
    text = log.read().decode(errors="replace")
    return text if tail is None else text[-tail:]
