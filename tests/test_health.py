"""health_router: liveness that touches nothing, readiness that runs every check at once,
each under its own timeout, in application/health+json."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.pool import NullPool

from fastkit import setup
from fastkit.health import HEALTH_MEDIA_TYPE, health_router

try:
    import httpx2 as httpx
except ImportError:  # Python 3.10: httpx2 needs 3.11+
    import httpx  # type: ignore[no-redef]


def client_for(**options: Any) -> TestClient:
    app = FastAPI()
    setup(app)
    app.include_router(health_router(**options))
    return TestClient(app)


async def passes() -> bool:
    return True


async def returns_none() -> None:
    return None


async def returns_false() -> bool:
    return False


async def raises() -> bool:
    raise ConnectionRefusedError("secret host db.internal:5432 refused")


async def hangs() -> bool:
    await asyncio.sleep(60)
    return True


def test_liveness_runs_no_check() -> None:
    calls: list[str] = []

    async def counted() -> bool:
        calls.append("ran")
        return False

    with client_for(checks={"database": counted}) as client:
        response = client.get("/health/live")
    assert response.status_code == 200
    assert response.headers["content-type"] == HEALTH_MEDIA_TYPE
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {"status": "pass"}
    assert calls == []


def test_readiness_passes_when_every_check_passes() -> None:
    with client_for(checks={"database": passes, "cache": returns_none}) as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == HEALTH_MEDIA_TYPE
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["status"] == "pass"
    assert "output" not in body
    assert set(body["checks"]) == {"database", "cache"}
    for [result] in body["checks"].values():
        assert result["status"] == "pass"
        assert result["observedUnit"] == "ms"
        assert result["observedValue"] >= 0
        assert result["time"].endswith("+00:00")
        assert "output" not in result


def test_no_checks_is_ready() -> None:
    with client_for() as client:
        response = client.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "pass", "checks": {}})


@pytest.mark.parametrize(
    ("check", "output"),
    [
        pytest.param(returns_false, "Returned false.", id="false"),
        pytest.param(raises, "Raised ConnectionRefusedError.", id="raises"),
        pytest.param(hangs, "Timed out after 0.2 s.", id="timeout"),
    ],
)
def test_a_failing_check_is_a_503_naming_it(
    check: Callable[[], Any], output: str, caplog: pytest.LogCaptureFixture
) -> None:
    with client_for(checks={"database": check, "cache": passes}, timeout=0.2) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert response.headers["content-type"] == HEALTH_MEDIA_TYPE
    body = response.json()
    assert body["status"] == "fail"
    assert body["output"] == "Failing: database."
    assert body["checks"]["database"][0]["status"] == "fail"
    assert body["checks"]["database"][0]["output"] == output
    assert body["checks"]["cache"][0]["status"] == "pass"  # the others still reported
    assert "db.internal" not in response.text  # an exception's text stays in the log
    assert f"Health check 'database' failed: {output}" in caplog.messages


def test_a_raising_check_is_logged_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    with client_for(checks={"database": raises}) as client:
        client.get("/health")
    [record] = [r for r in caplog.records if r.name == "fastkit.health"]
    assert record.getMessage() == "Health check 'database' failed: Raised ConnectionRefusedError."
    assert record.levelno == logging.WARNING
    assert record.exc_info is not None


def test_checks_run_at_once_each_with_its_own_timeout() -> None:
    """The first check can only pass if the second runs while it waits; the slow one gets a
    timeout of its own, longer than the default."""
    started = asyncio.Event()

    async def waits_for_the_other() -> bool:
        await asyncio.wait_for(started.wait(), 5)
        return True

    async def signals() -> bool:
        started.set()
        return True

    async def slow() -> bool:
        await asyncio.sleep(0.3)
        return True

    checks = {"first": waits_for_the_other, "second": signals, "slow": slow}
    with client_for(checks=checks, timeout=0.2, timeouts={"first": 5, "slow": 2}) as client:
        response = client.get("/health")
    assert response.status_code == 200, response.json()


def test_a_sync_check_runs_in_a_worker_thread() -> None:
    threads: list[threading.Thread] = []

    def blocking() -> bool:
        threads.append(threading.current_thread())
        time.sleep(0.05)  # as a sync driver would
        return True

    with client_for(checks={"sync": blocking}) as client:
        assert client.get("/health").status_code == 200
    assert threads
    assert threads[0] is not threading.main_thread()
    assert threads[0].name != "MainThread"


def test_a_hung_sync_check_holds_one_thread_not_one_per_probe() -> None:
    """A thread cannot be stopped: until it returns, the check fails at once."""
    started: list[threading.Thread] = []
    release = threading.Event()

    def hangs_in_a_driver() -> bool:
        started.append(threading.current_thread())
        release.wait(10)
        return True

    with client_for(checks={"sync": hangs_in_a_driver}, timeout=0.1) as client:
        outputs = [client.get("/health").json()["checks"]["sync"][0]["output"] for _ in range(5)]
        assert outputs == ["Timed out after 0.1 s."] + ["Still running since an earlier probe."] * 4
        assert len(started) == 1
        release.set()
        deadline = time.monotonic() + 5
        while client.get("/health").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    assert len(started) == 2


def test_a_sync_check_that_returns_false_fails() -> None:
    with client_for(checks={"sync": lambda: False}) as client:
        assert client.get("/health").status_code == 503


def test_concurrent_probes_share_one_run_of_the_checks() -> None:
    asyncio.run(concurrent_probes())


async def concurrent_probes() -> None:
    """A flood of readiness requests costs the dependency one check at a time."""
    calls = 0
    release, running = asyncio.Event(), asyncio.Event()

    async def counted() -> bool:
        nonlocal calls
        calls += 1
        running.set()
        await release.wait()
        return True

    app = FastAPI()
    app.include_router(health_router(checks={"database": counted}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        probes = [asyncio.create_task(client.get("/health")) for _ in range(20)]
        await asyncio.wait_for(running.wait(), 5)
        await asyncio.sleep(0.05)  # the other probes arrive while the check runs
        release.set()
        answers = await asyncio.gather(*probes)
        assert {answer.status_code for answer in answers} == {200}
        assert calls == 1
        # The next probe runs the checks again.
        assert (await client.get("/health")).status_code == 200
        assert calls == 2


def test_paths_and_schema() -> None:
    with client_for(checks={"db": passes}, path="/readyz", live_path="/livez") as client:
        assert client.get("/readyz").status_code == 200
        assert client.get("/livez").status_code == 200
        assert client.get("/health").status_code == 404
        paths = client.get("/openapi.json").json()["paths"]
    assert set(paths) == {"/readyz", "/livez"}
    ready = paths["/readyz"]["get"]
    assert set(ready["responses"]) >= {"200", "503"}
    assert HEALTH_MEDIA_TYPE in ready["responses"]["503"]["content"]
    with client_for(include_in_schema=False) as client:
        assert client.get("/openapi.json").json()["paths"] == {}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"timeout": 0}, "timeout of 'timeout' must be a positive", id="zero"),
        pytest.param({"timeout": -1}, "must be a positive", id="negative"),
        pytest.param({"timeout": float("nan")}, "must be a positive", id="nan"),
        pytest.param(
            {"checks": {"db": passes}, "timeouts": {"db": 0}}, "timeout of 'db'", id="per-check"
        ),
        pytest.param(
            {"checks": {"db": passes}, "timeouts": {"redis": 1}},
            "timeouts names checks that do not exist: redis",
            id="unknown-name",
        ),
        pytest.param({"checks": {"db": "SELECT 1"}}, "'db' is not callable", id="not-callable"),
        pytest.param({"checks": {"": passes}}, "non-empty strings", id="empty-name"),
        pytest.param({"path": "/h", "live_path": "/h"}, "must differ", id="same-path"),
    ],
)
def test_bad_configuration_is_a_value_error(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        health_router(**options)


# --- fastkit's own checks, against real services -------------------------------------------

POSTGRES_URL = os.environ.get("FASTKIT_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("FASTKIT_TEST_REDIS_URL")
DEAD_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:1/test"  # nothing listens on 1
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"


def readiness(checks: dict[str, Any]) -> dict[str, str]:
    """Each check's status through the readiness route."""
    with client_for(checks=checks, timeout=3.0) as client:
        body = client.get("/health").json()
    return {name: result[0]["status"] for name, result in body["checks"].items()}


def test_database_checks_on_sqlite(tmp_path: Path) -> None:
    from fastkit.db import Database, SyncDatabase

    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    db = Database(url, poolclass=NullPool)
    sync_db = SyncDatabase(f"sqlite:///{tmp_path / 'app.db'}")
    try:
        assert readiness({"db": db.ping, "sync": sync_db.ping}) == {"db": "pass", "sync": "pass"}
    finally:
        sync_db.dispose()


def test_database_checks_on_postgres() -> None:
    from fastkit.db import Database, SyncDatabase

    if not POSTGRES_URL:
        pytest.skip("FASTKIT_TEST_POSTGRES_URL is not set")
    sync_url = POSTGRES_URL.replace("+asyncpg", "+psycopg")
    live, dead = Database(POSTGRES_URL, poolclass=NullPool), Database(DEAD_POSTGRES_URL)
    sync_db = SyncDatabase(sync_url)
    try:
        assert readiness({"up": live.ping, "down": dead.ping, "sync": sync_db.ping}) == {
            "up": "pass",
            "down": "fail",
            "sync": "pass",
        }
    finally:
        sync_db.dispose()


def test_redis_checks() -> None:
    from fastkit.stores import RedisStore
    from fastkit.websocket import RedisBroker

    if not REDIS_URL:
        pytest.skip("FASTKIT_TEST_REDIS_URL is not set")
    store, dead = RedisStore(REDIS_URL), RedisStore(DEAD_REDIS_URL, timeout=0.5)
    broker = RedisBroker(REDIS_URL, secret="s" * 32, channel=f"health-{uuid.uuid4().hex}")
    idle = RedisBroker(REDIS_URL, secret="s" * 32)  # never started: not subscribed

    async def deliver(message: dict[str, Any]) -> None:
        pass

    app = FastAPI()
    app.include_router(
        health_router(
            checks={
                "store": store.ping,
                "dead": dead.ping,
                "broker": broker.ping,
                "idle": idle.ping,
            }
        )
    )

    async def probe() -> dict[str, str]:
        await broker.start(deliver)
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                body = (await client.get("/health")).json()
        finally:
            await broker.stop()
            await idle.stop()
            await store.aclose()
            await dead.aclose()
        return {name: result[0]["status"] for name, result in body["checks"].items()}

    assert asyncio.run(probe()) == {
        "store": "pass",
        "dead": "fail",
        "broker": "pass",
        "idle": "fail",
    }
