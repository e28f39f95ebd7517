"""The snippets of docs/operations.md do what the page says they do."""

from __future__ import annotations

import logging
import os

import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from tests.docs._snippets import load

REDIS_URL = os.environ.get("FASTKIT_TEST_REDIS_URL")


def test_health_and_metrics(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    if not REDIS_URL:
        pytest.skip("FASTKIT_TEST_REDIS_URL is not set")
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/app.db")
    module = load("operations_app")
    with TestClient(module.app) as client:
        assert client.get("/health/live").json() == {"status": "pass"}
        ready = client.get("/health")
        assert ready.status_code == 200, ready.text
        assert ready.headers["content-type"] == "application/health+json"
        assert {n: r[0]["status"] for n, r in ready.json()["checks"].items()} == {
            "database": "pass",
            "redis": "pass",
        }
        for item_id in (1, 2):
            client.get(f"/items/{item_id}")
        text = client.get("/metrics").text
    counted = {
        sample.labels["route"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "http_requests_total" and sample.labels["method"] == "GET"
    }
    assert counted["/items/{item_id}"] >= 2  # one series for both ids
    assert counted["/health"] >= 1


def test_health_names_a_dead_redis(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/app.db")
    module = load("operations_app")
    with TestClient(module.app) as client:
        ready = client.get("/health")
    assert ready.status_code == 503
    assert ready.json()["output"] == "Failing: redis."


def test_tracing(capfd: pytest.CaptureFixture[str]) -> None:
    module = load("operations_tracing")
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with TestClient(module.app) as client:
        response = client.get("/hello", headers={"X-Request-ID": "snippet-request-1"})
    assert response.status_code == 200
    [span] = [s for s in exporter.get_finished_spans() if s.kind == trace.SpanKind.SERVER]
    assert span.attributes is not None
    assert span.attributes["fastkit.request_id"] == "snippet-request-1"
    assert span.context is not None
    line = f"WARNING snippet-request-1 trace={span.context.trace_id:032x} saying hello"
    assert line in capfd.readouterr().err
    logging.getLogger("app").handlers.clear()
    module.provider.shutdown()  # nothing left to export at exit, to a closed stdout
