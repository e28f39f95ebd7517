"""fastkit.setup() behind a real uvicorn, driven over real HTTP (tests/e2e_app.py)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator

import pytest

from tests import uvicorn_support
from tests.uvicorn_support import free_port, uvicorn_process

try:
    import httpx2 as httpx
except ImportError:  # Python 3.10: httpx2 needs 3.11+
    import httpx  # type: ignore[no-redef]

ORIGIN = "https://app.example.com"  # as in tests/e2e_app.py
STARTUP_TIMEOUT = 15.0
LOG_TIMEOUT = 5.0


class Server(uvicorn_support.Server):
    def wait_for_log(self, text: str) -> str:
        """The server output once it contains ``text``; lines are written after responding."""
        deadline = time.monotonic() + LOG_TIMEOUT
        while text not in (log := self.log()):
            if time.monotonic() > deadline:
                pytest.fail(f"{text!r} not in the server output:\n{log}")
            time.sleep(0.05)
        return log


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    server = Server(f"http://127.0.0.1:{port}", tmp_path_factory.mktemp("uvicorn") / "out.log")
    args = ["tests.e2e_app:app", "--host", "127.0.0.1", "--port", str(port)]
    with uvicorn_process(
        [*args, "--log-level", "warning"],
        log_path=server.log_path,
        ready_url=f"{server.base_url}/ok",
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        startup_timeout=STARTUP_TIMEOUT,
    ):
        yield server


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    # One client per test: the server closes a connection after a 500 (see test_unhandled_...).
    with httpx.Client(base_url=server.base_url, timeout=5.0) as client:
        yield client


def test_ok_has_request_id_timing_and_access_log(http: httpx.Client, server: Server) -> None:
    response = http.get("/ok")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    request_id = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert float(response.headers["x-process-time"]) >= 0
    assert re.fullmatch(r"app;dur=\d+\.\d{3}", response.headers["server-timing"])
    server.wait_for_log(f"fastkit.access INFO [{request_id}] GET /ok 200")


def test_unhandled_error_is_enveloped_with_cors_and_logged(
    http: httpx.Client, server: Server
) -> None:
    response = http.get("/boom", headers={"Origin": ORIGIN})
    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    assert response.json() == {
        "code": 500,
        "message": "Internal Server Error",
        "data": None,
        "request_id": request_id,
    }
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "x-process-time" in response.headers
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    # The operator, not the client, gets the traceback, tagged with the same id.
    log = server.wait_for_log(f"fastkit.access ERROR [{request_id}] GET /boom 500")
    assert f"fastkit.errors ERROR [{request_id}] Unhandled RuntimeError on GET /boom" in log
    assert "RuntimeError: db password is hunter2" in log
    # uvicorn closes the connection after the app re-raises; the 500 says so, so a pooled
    # client opens a new one instead of being reset on the next request.
    assert response.headers["connection"] == "close"
    for _ in range(3):
        assert http.get("/boom").status_code == 500
        assert http.get("/ok").status_code == 200
