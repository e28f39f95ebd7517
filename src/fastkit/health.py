"""Liveness and readiness routes for load balancers, orchestrators and monitoring.

``health_router(checks={"database": db.ping, "redis": store.ping})`` adds two routes:

- ``GET /health/live``: liveness. Answers 200 while the process serves requests; it never
  touches a dependency, so a database outage does not get every worker restarted.
- ``GET /health``: readiness. Runs every check at once, each under its own timeout, and
  answers 200 when all pass, 503 naming the ones that failed.

Both answer ``application/health+json``, the format of the IETF draft "Health Check
Response Format for HTTP APIs" (draft-inadarei-api-health-check), not fastkit's envelope:
probes read the status code, and monitoring tools that read a body know this format.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Literal

import anyio.to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

__all__ = [
    "HEALTH_MEDIA_TYPE",
    "CheckResult",
    "HealthCheck",
    "HealthResponse",
    "HealthStatus",
    "health_router",
]

logger = logging.getLogger("fastkit.health")

HEALTH_MEDIA_TYPE = "application/health+json"

HealthCheck = Callable[[], Awaitable[Any] | Any]
"""A check: a function of no arguments, async or sync (a sync one runs in a worker
thread). It fails when it returns ``False`` or raises, and passes otherwise."""

HealthStatus = Literal["pass", "fail"]


class CheckResult(BaseModel):
    """One check's outcome (the draft's ``checks`` entry)."""

    status: HealthStatus
    time: str = Field(description="When the check ended (RFC 3339, UTC).")
    observedValue: float = Field(description="How long the check took.")
    observedUnit: Literal["ms"] = "ms"
    output: str | None = Field(None, description="Why the check failed; absent when it passed.")


class HealthResponse(BaseModel):
    """``{"status": "pass"|"fail", "checks": {...}, "output": ...}``."""

    status: HealthStatus
    checks: dict[str, list[CheckResult]] = Field(default_factory=dict)
    output: str | None = Field(None, description="The failing checks, when some failed.")


def _json(body: dict[str, Any], status_code: int) -> JSONResponse:
    return JSONResponse(
        body,
        status_code=status_code,
        media_type=HEALTH_MEDIA_TYPE,
        headers={"Cache-Control": "no-store"},
    )


class _Readiness:
    """Runs the checks; concurrent probes share one run (single flight), so a flood of
    requests to the readiness route costs the dependencies one round of checks at a time."""

    def __init__(self, checks: Mapping[str, HealthCheck], timeouts: Mapping[str, float]) -> None:
        self.checks = dict(checks)
        self.timeouts = dict(timeouts)
        self.running: asyncio.Future[tuple[dict[str, Any], int]] | None = None
        # Sync checks whose thread still runs (a timeout cannot stop a thread): they fail
        # at once until it returns, rather than start one more thread per probe.
        self.busy: set[str] = set()

    async def __call__(self) -> tuple[dict[str, Any], int]:
        running = self.running
        # A run of another event loop (a TestClient's, closed since) is not shared.
        if running is None or running.get_loop() is not asyncio.get_running_loop():
            running = self.running = asyncio.ensure_future(self._run())
            running.add_done_callback(self._done)
        return await asyncio.shield(running)

    def _done(self, future: asyncio.Future[Any]) -> None:
        if self.running is future:
            self.running = None

    async def _run(self) -> tuple[dict[str, Any], int]:
        names = list(self.checks)
        results = await asyncio.gather(*(self._one(name) for name in names))
        checks = {name: [result] for name, result in zip(names, results, strict=True)}
        failing = [
            name for name, result in zip(names, results, strict=True) if result["status"] == "fail"
        ]
        body: dict[str, Any] = {"status": "fail" if failing else "pass", "checks": checks}
        if failing:
            body["output"] = f"Failing: {', '.join(failing)}."
        return body, 503 if failing else 200

    async def _one(self, name: str) -> dict[str, Any]:
        check = self.checks[name]
        timeout = self.timeouts[name]
        started = time.perf_counter()
        output: str | None = None
        try:
            if name in self.busy:
                raise _StillRunning
            passed = await asyncio.wait_for(_call(name, check, self.busy), timeout)
        except _StillRunning:
            output = "Still running since an earlier probe."
        except (TimeoutError, asyncio.TimeoutError):
            output = f"Timed out after {timeout:g} s."
        except Exception as error:
            output = f"Raised {type(error).__name__}."
            logger.warning("Health check %r failed: %s", name, output, exc_info=True)
        else:
            if passed is False:
                output = "Returned false."
        result: dict[str, Any] = {
            "status": "pass" if output is None else "fail",
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "observedValue": round((time.perf_counter() - started) * 1000, 3),
            "observedUnit": "ms",
        }
        if output is not None:
            result["output"] = output
            if not output.startswith("Raised"):  # logged above, with its traceback
                logger.warning("Health check %r failed: %s", name, output)
        return result


async def _call(name: str, check: HealthCheck, busy: set[str]) -> Any:
    if inspect.iscoroutinefunction(check) or inspect.iscoroutinefunction(
        getattr(check, "__call__", None)  # noqa: B004 - an object with an async __call__
    ):
        return await check()
    # A sync function (SyncDatabase.ping) may block: in a worker thread, never on the loop;
    # marked busy until the thread returns, even after a timeout gave up waiting for it.
    busy.add(name)

    def run() -> Any:
        try:
            return check()
        finally:
            busy.discard(name)

    result = await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
    if inspect.isawaitable(result):
        return await result
    return result


class _StillRunning(Exception):
    """A sync check's thread from an earlier probe has not returned."""


def health_router(
    checks: Mapping[str, HealthCheck] | None = None,
    *,
    timeout: float = 2.0,
    timeouts: Mapping[str, float] | None = None,
    path: str = "/health",
    live_path: str = "/health/live",
    include_in_schema: bool = True,
    tags: Sequence[str] = ("health",),
) -> APIRouter:
    """A router with a liveness route and a readiness route that runs ``checks``.

    Args:
        checks: Name -> check. A check is a function of no arguments, async or sync (a
            sync one runs in a worker thread); it fails when it returns ``False``, raises or
            runs past its timeout. fastkit's own: ``Database.ping``, ``SyncDatabase.ping``,
            ``RedisStore.ping``, ``RedisBroker.ping``.
        timeout: Seconds each check may take (each its own, all running at once).
        timeouts: Name -> seconds, for checks that need another timeout than ``timeout``.
        path: The readiness route: 200 when every check passes, else 503.
        live_path: The liveness route: always 200; it runs no check.
        include_in_schema: Whether the routes appear in OpenAPI.
        tags: Their OpenAPI tags.

    Raises:
        ValueError: For a timeout that is not positive, a check that is not callable, a
            name in ``timeouts`` that is not a check, or two routes on one path.

    Example:
        ```python
        app.include_router(health_router(checks={"database": db.ping}, timeout=1.0))
        ```
    """
    checks = dict(checks or {})
    timeouts = dict(timeouts or {})
    for name, check in checks.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"Health check names are non-empty strings; got {name!r}.")
        if not callable(check):
            raise ValueError(f"Health check {name!r} is not callable; pass a function.")
    unknown = sorted(set(timeouts) - set(checks))
    if unknown:
        raise ValueError(f"timeouts names checks that do not exist: {', '.join(unknown)}.")
    for name, seconds in [("timeout", timeout), *timeouts.items()]:
        if not seconds > 0:
            raise ValueError(f"The timeout of {name!r} must be a positive number of seconds.")
    if path == live_path:
        raise ValueError("path and live_path must differ: one route is readiness, one liveness.")
    readiness = _Readiness(checks, {name: timeouts.get(name, timeout) for name in checks})

    router = APIRouter(tags=list(tags), include_in_schema=include_in_schema)
    responses: dict[int | str, dict[str, Any]] = {
        200: {"model": HealthResponse, "content": {HEALTH_MEDIA_TYPE: {}}},
    }

    @router.get(
        live_path,
        response_class=JSONResponse,
        responses=responses,
        summary="Liveness",
        description="200 while the process serves requests; it checks no dependency.",
    )
    async def live() -> JSONResponse:
        return _json({"status": "pass"}, 200)

    @router.get(
        path,
        response_class=JSONResponse,
        responses={
            **responses,
            503: {
                "model": HealthResponse,
                "description": "A check failed.",
                "content": {HEALTH_MEDIA_TYPE: {}},
            },
        },
        summary="Readiness",
        description="Runs every check at once: 200 when all pass, 503 naming the failing ones.",
    )
    async def ready() -> JSONResponse:
        body, status_code = await readiness()
        return _json(body, status_code)

    return router
