"""fastkit.metrics: Prometheus metrics by route template and status class, fastkit's own
events, the /metrics route, and multiprocess mode with two real uvicorn workers."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import APIRouter, Depends, FastAPI, WebSocket
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import fastkit.metrics
from fastkit import Conflict, MissingDependencyError, install_exception_handlers, setup
from fastkit.db import Database
from fastkit.metrics import HTTPMetrics, PrometheusMiddleware, metrics_router
from fastkit.ratelimit import RateLimit
from fastkit.websocket import ConnectionManager
from tests.uvicorn_support import free_port, uvicorn_process

try:
    import httpx2 as httpx
except ImportError:  # Python 3.10: httpx2 needs 3.11+
    import httpx  # type: ignore[no-redef]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the exposition text: (name, labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples that have ``labels`` (0 when there is none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples(text).items() if n == name and wanted <= ls)


def make_app(registry: CollectorRegistry, *, use_setup: bool = True) -> FastAPI:
    app = FastAPI()
    if use_setup:
        setup(app, metrics=True, metrics_registry=registry)
    else:
        install_exception_handlers(app)
        app.add_middleware(PrometheusMiddleware, registry=registry)
    items = APIRouter(prefix="/items")

    @items.get("/{item_id}")
    async def read_item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @items.post("")
    async def create_item() -> None:
        raise Conflict("Item exists")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("unhandled")

    limit = RateLimit("1/minute", name="search")

    @app.get("/search", dependencies=[Depends(limit)])
    async def search() -> dict[str, str]:
        return {}

    app.include_router(items)
    app.include_router(metrics_router(registry=registry))
    return app


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.mark.parametrize("use_setup", [True, False], ids=["setup", "middleware"])
def test_requests_by_method_route_template_and_status_class(
    registry: CollectorRegistry, use_setup: bool
) -> None:
    with TestClient(make_app(registry, use_setup=use_setup), raise_server_exceptions=False) as c:
        for item_id in (1, 2, 3):
            assert c.get(f"/items/{item_id}").status_code == 200
        assert c.get("/items/x").status_code == 422
        assert c.get("/nowhere/1").status_code == 404
        assert c.get("/nowhere/2").status_code == 404
        assert c.post("/items").status_code == 409
        assert c.get("/boom").status_code == 500
        assert c.request("FOO", "/items/1").status_code == 405
        text = c.get("/metrics").text

    total = "http_requests_total"
    assert value(text, total, method="GET", route="/items/{item_id}", status="2xx") == 3
    assert value(text, total, method="GET", route="/items/{item_id}", status="4xx") == 1
    # Paths no route matched share one label: a scan cannot make a series per path.
    assert value(text, total, route="unmatched", status="4xx") == 2
    assert value(text, total, method="POST", route="/items", status="4xx") == 1
    assert value(text, total, method="GET", route="/boom", status="5xx") == 1
    # A made-up method shares the label "other".
    assert value(text, total, method="other") == 1
    assert not any("nowhere" in str(labels) for (_, labels) in samples(text))
    assert not any("/items/1" in str(labels) for (_, labels) in samples(text))

    histogram = "http_request_duration_seconds_count"
    assert value(text, histogram, method="GET", route="/items/{item_id}") == 4
    assert value(text, "http_request_duration_seconds_bucket", route="/boom", le="+Inf") == 1
    assert value(text, "http_requests_in_progress") == 1  # the scrape itself
    assert 'le="0.025"' in text  # the default buckets


def test_rate_limit_refusals(registry: CollectorRegistry) -> None:
    with TestClient(make_app(registry)) as c:
        assert c.get("/search").status_code == 200
        assert c.get("/search").status_code == 429
        text = c.get("/metrics").text
    assert value(text, "fastkit_ratelimit_refusals_total", limit="search") == 1


class Base(DeclarativeBase):
    pass


class Tag(Base):
    __tablename__ = "tag"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20), unique=True)


tags_db = Database("sqlite+aiosqlite://")  # in memory, one connection
TagSession = tags_db.Session


def test_database_errors_by_the_status_they_got(registry: CollectorRegistry) -> None:
    """A unique name taken twice: the IntegrityError answered 409 is counted."""
    app = make_app(registry)

    @app.post("/tags/{name}", status_code=201)
    async def add(name: str, session: TagSession) -> str:
        session.add(Tag(name=name))
        return name

    with TestClient(app) as c:
        c.portal.call(tags_db.create_all, Base.metadata)
        assert c.post("/tags/a").status_code == 201
        assert c.post("/tags/a").status_code == 409
        text = c.get("/metrics").text
        c.portal.call(tags_db.dispose)
    assert value(text, "fastkit_db_errors_total", status="409") == 1
    assert value(text, "fastkit_db_errors_total", status="503") == 0


def test_websocket_connections_and_drops(registry: CollectorRegistry) -> None:
    metrics = HTTPMetrics.get(registry)
    manager = ConnectionManager()
    app = FastAPI()

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        async with manager.connect(websocket) as conn:
            await manager.send(conn.id, {"hello": True})
            async for _ in manager.iter_json(conn):
                pass

    def gauge() -> float:
        return float(metrics.websocket_connections._value.get())

    before = gauge()
    with TestClient(app) as client, client.websocket_connect("/ws") as socket:
        socket.receive_json()
        assert gauge() == before + 1
        client.portal.call(manager.stop)  # the server shuts down: 1001
    assert gauge() == before
    assert metrics.websocket_drops.labels("shutdown")._value.get() == 1


def test_route_labels_are_bounded(
    registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mount path with a parameter puts its values in the template: past MAX_ROUTES
    distinct routes, new ones share the label "overflow" instead of growing the series."""
    monkeypatch.setattr(fastkit.metrics, "MAX_ROUTES", 3)
    sub = FastAPI()

    @sub.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    app = make_app(registry)
    app.mount("/tenants/{tenant}", sub)
    with TestClient(app) as c:
        for tenant in ("a", "b", "c", "d", "e"):
            assert c.get(f"/tenants/{tenant}/items/1").status_code == 200
        text = c.get("/metrics").text
    routes = {
        dict(labels).get("route")
        for (name, labels) in samples(text)
        if name == "http_requests_total"
    }
    assert len(routes) <= 3 + 1
    assert value(text, "http_requests_total", route="overflow") == 2  # tenants d and e
    assert sum(value(text, "http_requests_total", route=r) for r in routes if r) == 5


def test_buckets_and_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="increasing"):
        HTTPMetrics.get(CollectorRegistry(), buckets=(1.0, 0.5))
    with pytest.raises(ValueError, match="non-empty"):
        HTTPMetrics.get(CollectorRegistry(), buckets=())
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(MissingDependencyError, match=r"fastkit-fastapi\[metrics\]"):
        HTTPMetrics.get(CollectorRegistry())
    app = FastAPI()
    with pytest.raises(MissingDependencyError, match="metrics"):
        setup(app, metrics=True)


def test_one_registry_gets_one_set_of_metrics(registry: CollectorRegistry) -> None:
    """Two apps on one registry share the metrics (a second set would be a duplicate)."""
    with TestClient(make_app(registry)) as first, TestClient(make_app(registry)) as second:
        first.get("/items/1")
        second.get("/items/1")
        text = second.get("/metrics").text
    assert value(text, "http_requests_total", route="/items/{item_id}") == 2


def test_the_metrics_route_is_not_in_the_schema_and_not_cached(
    registry: CollectorRegistry,
) -> None:
    with TestClient(make_app(registry)) as c:
        assert "/metrics" not in c.get("/openapi.json").json()["paths"]
        response = c.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert response.headers["cache-control"] == "no-store"


# --- two real uvicorn workers, multiprocess mode --------------------------------------------


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[str]:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["tests.metrics_e2e_app:app", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--workers", "2", "--log-level", "warning"]
    with uvicorn_process(
        args, log_path=tmp_path / "out.log", ready_url=f"{url}/ping", env=env, startup_timeout=30
    ):
        yield url
    # Each worker wrote its own files; both are there, and the live gauges were released.
    pids = {path.stem.rsplit("_", 1)[-1] for path in directory.glob("counter_*.db")}
    assert len(pids) == 2, sorted(path.name for path in directory.iterdir())
    assert not list(directory.glob("gauge_livesum_*.db"))  # mark_process_dead at shutdown


def test_two_workers_count_together(two_workers: str) -> None:
    """Requests go to either worker; every scrape, whichever worker answers, counts them all."""
    requests = 0
    seen: set[str] = set()
    while len(seen) < 2 or requests < 60:
        # A new connection each time: the kernel spreads them over the two workers.
        with httpx.Client(base_url=two_workers) as client:
            response = client.get(f"/items/{requests}")
        assert response.status_code == 200
        seen.add(response.json()["pid"])
        requests += 1
        assert requests < 1000, "one worker answered every connection"
    for _ in range(4):  # any worker's /metrics answers for both
        with httpx.Client(base_url=two_workers) as client:
            text = client.get("/metrics").text
        assert value(text, "http_requests_total", route="/items/{item_id}") == requests
        assert value(text, "http_request_duration_seconds_count", route="/items/{item_id}") == (
            requests
        )
