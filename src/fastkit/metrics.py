"""Prometheus metrics (extra ``metrics``) and OpenTelemetry traces (extra ``otel``).

``setup(app, metrics=True)`` counts every HTTP request in the layer that already times it
(`ObservabilityMiddleware`), and ``app.include_router(metrics_router())`` serves
``/metrics``. `PrometheusMiddleware` does the same counting for apps without ``setup``.

What is exported (the names are Prometheus conventions; ``route`` is the matched route's
template, ``/todos/{todo_id}``, never the raw path):

- ``http_requests_total{method, route, status}``: ``status`` is the class, ``2xx``...
- ``http_request_duration_seconds{method, route}``: a histogram, until the response's
  last byte.
- ``http_requests_in_progress{method}``.
- ``fastkit_ratelimit_refusals_total{limit}``, ``fastkit_db_errors_total{status}`` (the
  database errors answered 409, 400 or 503), ``fastkit_websocket_connections``,
  ``fastkit_websocket_drops_total{reason}``.

Several uvicorn workers: start them with ``PROMETHEUS_MULTIPROC_DIR`` set to an empty
directory (prometheus-client's multiprocess mode); any worker's ``/metrics`` then answers
for all of them.

The library's other modules report their events through `record`, which does nothing
until metrics are installed: they never import prometheus-client.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from fastkit._compat import require
from fastkit.routing import route_template

__all__ = [
    "DEFAULT_BUCKETS",
    "MAX_ROUTES",
    "OVERFLOW_ROUTE",
    "UNMATCHED_ROUTE",
    "HTTPMetrics",
    "PrometheusMiddleware",
    "mark_process_dead",
    "metrics_router",
    "record",
]

# Seconds; Prometheus' defaults, with 25 ms and 250 ms for APIs that answer fast.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED_ROUTE = "unmatched"  # one label for every request that reached no route
OVERFLOW_ROUTE = "overflow"  # routes past MAX_ROUTES (see HTTPMetrics.finished)
# Distinct route labels kept per registry: an app has tens of routes; more means labels
# that carry values (a mount path with a parameter), which must not grow without end.
MAX_ROUTES = 1000
# Other methods share one label: a client must not make a time series per made-up method.
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
_STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")

# --- events from the rest of fastkit -------------------------------------------------------

_listeners: list[Callable[[str, str], None]] = []


def record(event: str, label: str = "") -> None:
    """Report a fastkit event to the installed metrics (nothing happens without them).

    Events: ``"ratelimit_refused"`` (label: the limit's name), ``"db_error"`` (the status
    answered), ``"websocket_connected"``, ``"websocket_disconnected"``, ``"websocket_dropped"``
    (label: why).
    """
    for listener in _listeners:
        listener(event, label)


# --- the metrics ---------------------------------------------------------------------------

_lock = threading.Lock()
_by_registry: dict[int, HTTPMetrics] = {}


class HTTPMetrics:
    """The metric objects of one registry, made once (a second set would be refused as
    duplicates); get them with `HTTPMetrics.get`.

    Attributes:
        registry: The ``CollectorRegistry`` they are registered in.
    """

    def __init__(self, registry: Any, buckets: Sequence[float]) -> None:
        prometheus = require("prometheus_client", "metrics")
        self.registry = registry
        self._shared = _multiprocess_dir() is not None
        # Several processes: prometheus-client's own metrics, which write the shared files.
        # One process: plain counts per request, turned into the same families when
        # scraped (_Collector), a third of the cost of the locked updates per request.
        own = None if not self._shared else registry
        self.requests = prometheus.Counter(
            "http_requests_total",
            "HTTP requests answered, by method, route template and status class.",
            ["method", "route", "status"],
            registry=own,
        )
        self.duration = prometheus.Histogram(
            "http_request_duration_seconds",
            "Seconds from the request to the response's last byte, by method and route.",
            ["method", "route"],
            buckets=tuple(buckets),
            registry=own,
        )
        self._bounds = tuple(float(b) for b in buckets)
        self._counts: dict[tuple[str, str, str], int] = {}
        self._observed: dict[tuple[str, str], list[Any]] = {}  # [bucket counts, sum]
        if not self._shared:
            registry.register(_Collector(self))
        self.in_progress = prometheus.Gauge(
            "http_requests_in_progress",
            "HTTP requests being answered, by method.",
            ["method"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.ratelimit_refusals = prometheus.Counter(
            "fastkit_ratelimit_refusals_total",
            "Requests refused by a rate limit (429), by the limit's name.",
            ["limit"],
            registry=registry,
        )
        self.db_errors = prometheus.Counter(
            "fastkit_db_errors_total",
            "Database errors answered as 409, 400 or 503, by status.",
            ["status"],
            registry=registry,
        )
        self.websocket_connections = prometheus.Gauge(
            "fastkit_websocket_connections",
            "Websocket connections open in a ConnectionManager.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.websocket_drops = prometheus.Counter(
            "fastkit_websocket_drops_total",
            "Websocket connections the server closed on the client, by reason.",
            ["reason"],
            registry=registry,
        )
        # Children by label values: .labels() is a dict lookup and a lock otherwise.
        self._requests: dict[tuple[str, str, str], Any] = {}
        self._durations: dict[tuple[str, str], Any] = {}
        self._routes: set[str] = set()
        # In one process the in-progress gauge is read when scraped (set_function): a plain
        # count per request instead of two locked updates. Several processes share files,
        # which only inc/dec write.
        self._live = dict.fromkeys([*_METHODS, "other"], 0)
        self._in_progress = {method: self.in_progress.labels(method) for method in self._live}
        if not self._shared:
            for method, child in self._in_progress.items():
                child.set_function(functools.partial(self._live.__getitem__, method))

    @classmethod
    def get(
        cls, registry: Any = None, *, buckets: Sequence[float] = DEFAULT_BUCKETS
    ) -> HTTPMetrics:
        """The metrics of ``registry`` (prometheus-client's default one if None), made on
        the first call; later calls return the same ones (their ``buckets`` are ignored).

        Raises:
            MissingDependencyError: Without the ``metrics`` extra.
            ValueError: If ``buckets`` is empty or not increasing.
        """
        prometheus = require("prometheus_client", "metrics")
        if registry is None:
            registry = prometheus.REGISTRY
        if not buckets or any(a >= b for a, b in itertools.pairwise(buckets)):
            raise ValueError("buckets must be a non-empty, increasing list of seconds.")
        with _lock:
            metrics = _by_registry.get(id(registry))
            if metrics is None or metrics.registry is not registry:
                metrics = _by_registry[id(registry)] = cls(registry, buckets)
                _listeners.append(metrics.on_event)
            return metrics

    @staticmethod
    def method(scope: Mapping[str, Any]) -> str:
        method: str = scope.get("method", "GET")
        return method if method in _METHODS else "other"

    def started(self, method: str) -> None:
        if self._shared:
            self._in_progress[method].inc()
        else:
            self._live[method] += 1

    def finished(self, scope: Mapping[str, Any], method: str, status: int, seconds: float) -> None:
        """One answered request: its route (read now, after routing), status and time."""
        if self._shared:
            self._in_progress[method].dec()
        else:
            self._live[method] -= 1
        route = route_template(scope) or UNMATCHED_ROUTE
        if route not in self._routes:
            if len(self._routes) >= MAX_ROUTES:
                route = OVERFLOW_ROUTE
            else:
                self._routes.add(route)
        status_class = _STATUS_CLASSES[status // 100 - 1] if 100 <= status < 600 else "5xx"
        key = (method, route, status_class)
        if not self._shared:
            counts = self._counts
            counts[key] = counts.get(key, 0) + 1
            observed = self._observed.get((method, route))
            if observed is None:
                observed = self._observed[(method, route)] = [[0] * (len(self._bounds) + 1), 0.0]
            observed[0][bisect.bisect_left(self._bounds, seconds)] += 1
            observed[1] += seconds
            return
        counter = self._requests.get(key)
        if counter is None:
            counter = self._requests[key] = self.requests.labels(*key)
        counter.inc()
        histogram = self._durations.get((method, route))
        if histogram is None:
            histogram = self._durations[(method, route)] = self.duration.labels(method, route)
        histogram.observe(seconds)

    def on_event(self, event: str, label: str) -> None:
        if event == "ratelimit_refused":
            self.ratelimit_refusals.labels(label or "default").inc()
        elif event == "db_error":
            self.db_errors.labels(label).inc()
        elif event == "websocket_connected":
            self.websocket_connections.inc()
        elif event == "websocket_disconnected":
            self.websocket_connections.dec()
        elif event == "websocket_dropped":
            self.websocket_drops.labels(label or "unknown").inc()


class _Collector:
    """The request counter and latency histogram of one process, as prometheus-client's
    families, built from `HTTPMetrics`' plain counts when scraped."""

    def __init__(self, metrics: HTTPMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Any]:
        return []  # the names are checked for duplicates from collect()

    def collect(self) -> Iterator[Any]:
        core = require("prometheus_client.core", "metrics")
        metrics = self.metrics
        requests = core.CounterMetricFamily(
            "http_requests",
            metrics.requests._documentation,
            labels=["method", "route", "status"],
        )
        for key, count in list(metrics._counts.items()):
            requests.add_metric(list(key), count)
        yield requests
        duration = core.HistogramMetricFamily(
            "http_request_duration_seconds",
            metrics.duration._documentation,
            labels=["method", "route"],
        )
        utils = require("prometheus_client.utils", "metrics")
        bounds = [*(utils.floatToGoString(b) for b in metrics._bounds), "+Inf"]
        for (method, route), (counts, total) in list(metrics._observed.items()):
            cumulative, running = [], 0
            for bound, count in zip(bounds, counts, strict=True):
                running += count
                cumulative.append((bound, running))
            duration.add_metric([method, route], cumulative, total)
        yield duration


def _multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


class PrometheusMiddleware:
    """Counts and times HTTP requests (pure ASGI), for apps built without `setup`.

    With ``setup(app, metrics=True)`` the same is done by `ObservabilityMiddleware`, in the
    layer that times requests already; do not add both. Websocket and lifespan events pass
    through; at shutdown in multiprocess mode the worker's live gauges are released.

    Args:
        app: The ASGI app.
        registry: A prometheus-client ``CollectorRegistry`` (default: the global one).
        buckets: The latency histogram's buckets, in seconds.

    Raises:
        MissingDependencyError: Without the ``metrics`` extra.
    """

    def __init__(
        self, app: Any, *, registry: Any = None, buckets: Sequence[float] = DEFAULT_BUCKETS
    ) -> None:
        self.app = app
        self.metrics = HTTPMetrics.get(registry, buckets=buckets)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self.app(scope, receive, _on_shutdown(send, mark_process_dead))
                return
            await self.app(scope, receive, send)
            return
        metrics = self.metrics
        method = metrics.method(scope)
        metrics.started(method)
        start = time.perf_counter()
        status = 0

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            metrics.finished(scope, method, status or 500, time.perf_counter() - start)


def _on_shutdown(send: Any, action: Callable[[], None]) -> Any:
    async def wrapped(message: Any) -> None:
        if message["type"] == "lifespan.shutdown.complete":
            action()
        await send(message)

    return wrapped


def mark_process_dead() -> None:
    """Multiprocess mode: drop this worker's live gauges (its in-progress requests and
    websocket connections) when it stops. Nothing to do in a single process."""
    if _multiprocess_dir():
        multiprocess = require("prometheus_client.multiprocess", "metrics")
        multiprocess.mark_process_dead(os.getpid())


def metrics_router(
    path: str = "/metrics", *, registry: Any = None, include_in_schema: bool = False
) -> Any:
    """A router serving the metrics in Prometheus' text format at ``path``.

    With ``PROMETHEUS_MULTIPROC_DIR`` set, every scrape collects all the workers' files, so
    any worker answers for all. Protect the route (a network policy, or a dependency of
    yours on the router) if the app is public: it names every route.

    Args:
        path: Where to serve them.
        registry: The registry to expose (default: the global one; ignored in multiprocess
            mode, where the workers' files are read).
        include_in_schema: Whether the route appears in OpenAPI.

    Raises:
        MissingDependencyError: Without the ``metrics`` extra.
    """
    from fastapi import APIRouter
    from fastapi.responses import Response

    prometheus = require("prometheus_client", "metrics")
    multiprocess = require("prometheus_client.multiprocess", "metrics")
    router = APIRouter(include_in_schema=include_in_schema)
    fixed = prometheus.REGISTRY if registry is None else registry

    @router.get(path, response_class=Response)
    def metrics() -> Response:  # sync: reading the workers' files blocks; FastAPI threads it
        if _multiprocess_dir():
            collected = prometheus.CollectorRegistry()
            multiprocess.MultiProcessCollector(collected)
        else:
            collected = fixed
        return Response(
            prometheus.generate_latest(collected),
            media_type=prometheus.CONTENT_TYPE_LATEST,
            headers={"Cache-Control": "no-store"},
        )

    return router
