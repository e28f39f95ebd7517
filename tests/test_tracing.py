"""setup(app, tracing=True): OpenTelemetry's FastAPI instrumentation outside every fastkit
layer, the request id on the server span, the trace id on log records."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from fastkit import MissingDependencyError, RequestIDLogFilter, setup
from fastkit.ratelimit import RateLimit

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def provider() -> None:
    """One SDK tracer provider for the process (OpenTelemetry allows one global)."""
    current = trace.get_tracer_provider()
    if not isinstance(current, TracerProvider):  # another test module may have set one
        current = TracerProvider()
        trace.set_tracer_provider(current)
    if not getattr(current, "_fastkit_test_exporter", False):
        current.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        current._fastkit_test_exporter = True  # type: ignore[attr-defined]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.addFilter(RequestIDLogFilter())
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("tracing-test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)


def make_app(**options: object) -> FastAPI:
    app = FastAPI()
    setup(app, tracing=True, **options)  # type: ignore[arg-type]

    @app.get("/hello/{name}")
    async def hello(name: str) -> dict[str, str]:
        logging.getLogger("tracing-test").info("saying hello")
        return {"hello": name}

    @app.post("/upload")
    async def upload(body: dict[str, str]) -> dict[str, int]:
        return {"keys": len(body)}

    return app


def server_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.kind == trace.SpanKind.SERVER]


def test_the_request_id_is_on_the_server_span_and_the_trace_id_on_log_records(
    spans: InMemorySpanExporter, records: Records
) -> None:
    with TestClient(make_app()) as client:
        response = client.get("/hello/ann", headers={"X-Request-ID": "req-from-the-client-123"})
    assert response.status_code == 200
    [span] = server_spans(spans)
    assert span.attributes is not None
    assert span.attributes["fastkit.request_id"] == "req-from-the-client-123"
    assert span.attributes.get("http.route") == "/hello/{name}"
    [record] = [r for r in records.records if r.getMessage() == "saying hello"]
    assert record.request_id == "req-from-the-client-123"  # type: ignore[attr-defined]
    assert span.context is not None
    assert record.trace_id == format(span.context.trace_id, "032x")  # type: ignore[attr-defined]
    assert len(record.span_id) == 16  # type: ignore[attr-defined]
    # No send/receive spans: one span per request.
    assert [s.kind for s in spans.get_finished_spans()] == [trace.SpanKind.SERVER]


def test_rejections_of_fastkits_layers_are_inside_the_span(spans: InMemorySpanExporter) -> None:
    """The body limit's 413 and the global rate limit's 429 come from layers inside the
    instrumentation: their requests have spans too, with their request ids."""
    app = make_app(max_body_size=10, rate_limit=RateLimit("1/minute"))
    with TestClient(app) as client:
        too_big = client.post("/upload", json={"text": "x" * 100})
        limited = client.get("/hello/bob")
    assert (too_big.status_code, limited.status_code) == (413, 429)
    by_id = {
        span.attributes["fastkit.request_id"]: span
        for span in server_spans(spans)
        if span.attributes is not None
    }
    for response in (too_big, limited):
        span = by_id[response.headers["x-request-id"]]
        assert span.attributes is not None
        # The semantic conventions' old name or new one, whichever the version writes.
        status = span.attributes.get("http.status_code") or span.attributes.get(
            "http.response.status_code"
        )
        assert status == response.status_code


def test_outside_a_span_log_records_get_the_default() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "outside", None, None)
    assert RequestIDLogFilter(default="-").filter(record)
    assert (record.trace_id, record.span_id) == ("-", "-")  # type: ignore[attr-defined]


def test_tracing_needs_the_request_id() -> None:
    with pytest.raises(ValueError, match="keep request_id=True"):
        setup(FastAPI(), tracing=True, request_id=False)


def test_tracing_without_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.instrumentation.fastapi", None)
    app = FastAPI()
    with pytest.raises(MissingDependencyError, match=r"fastkit-fastapi\[otel\]"):
        setup(app, tracing=True)
    assert app.user_middleware == []  # nothing half-installed
