"""The body limit under a real uvicorn: four concurrent 100 MB posts to a JSON route behind
a token check are each answered 413 within 100 ms, and the worker grows by less than
20 MiB; a chunked 100 MB post is cut at the limit the same way.

The clients are raw sockets that keep sending the body until the answer comes (as a
client that does not wait for ``100 Continue`` does) and stop then.
"""

from __future__ import annotations

import json
import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.uvicorn_support import free_port, uvicorn_process

BODY_SIZE = 100 * 1024 * 1024
PIECE = b"a" * (64 * 1024)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """(port, pid) of a one-worker uvicorn serving tests/body_limit_e2e_app.py."""
    port = free_port()
    log = tmp_path_factory.mktemp("body-limit") / "uvicorn.log"
    with uvicorn_process(
        ["tests.body_limit_e2e_app:app", "--host", "127.0.0.1", "--port", str(port)],
        log_path=log,
        ready_url=f"http://127.0.0.1:{port}/health",
        env=os.environ,
        startup_timeout=30,
    ) as process:
        yield port, process.pid


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def post_huge(port: int, *, chunked: bool) -> tuple[float, int, bytes, int]:
    """POST 100 MB to /notes until the answer comes: (seconds to the answer, status, body,
    bytes of the body sent by then)."""
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {BODY_SIZE}"
    head = (
        f"POST /notes HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\n{framing}\r\n\r\n"
    ).encode()

    def framed(data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data) if chunked else data

    piece = framed(PIECE)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    start = time.monotonic()
    sent, answer, writing = 0, b"", True
    pending = head + framed(b'{"text": "')
    try:
        while time.monotonic() - start < 10:
            want_write = [sock] if writing and sent < BODY_SIZE else []
            readable, writable, _ = select.select([sock], want_write, [], 1)
            if readable:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                answer += chunk
                if b"\r\n\r\n" in answer:
                    head_end = answer.index(b"\r\n\r\n")
                    length = int(answer.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    if len(answer) >= head_end + 4 + length:
                        break
                continue
            if writable:
                try:
                    pending = pending[sock.send(pending) :]
                except (BrokenPipeError, ConnectionResetError):
                    # The server closed after answering: the answer may be waiting unread.
                    writing = False  # stop sending; keep reading until it comes or ends
                    continue
                if not pending:
                    pending = piece
                    sent += len(PIECE)
    finally:
        elapsed = time.monotonic() - start
        sock.close()
    status = int(answer[9:12]) if answer.startswith(b"HTTP/1.1 ") else 0
    body = answer.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in answer else b""
    return elapsed, status, body, sent


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_four_concurrent_100mb_posts_are_refused_fast_and_small(
    server: tuple[int, int], chunked: bool
) -> None:
    port, pid = server
    before = rss_mib(pid)
    results: list[tuple[float, int, bytes, int]] = []
    threads = [
        threading.Thread(target=lambda: results.append(post_huge(port, chunked=chunked)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    grown = rss_mib(pid) - before
    assert len(results) == 4
    for elapsed, status, body, sent in results:
        assert status == 413, (status, body[:200])
        assert json.loads(body)["code"] == 413
        assert elapsed < 0.1, f"answered after {elapsed * 1000:.0f} ms"
        assert sent < BODY_SIZE  # the client stopped long before the end
    assert grown < 20, f"the worker grew by {grown:.1f} MiB"
