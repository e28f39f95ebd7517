"""Middleware overhead: requests/second through each app, relative to bare FastAPI.

In-process (the default): no server and no HTTP client. The ASGI ``scope``/``receive``/
``send`` are built by hand (``_driver.drive``) and each app awaited in a loop on one event
loop, so the figures show the cost of the middleware itself. Each config is warmed up, then
the configs are interleaved for several rounds (the order rotates each round); ratios are
taken within a round and the median reported. Time is the driving thread's CPU time by
default (``--clock wall`` for elapsed time).

End to end (``--e2e``): ``bare`` and ``setup`` served by two uvicorn workers (this module's
factories), loaded in turn by an asyncio httpx2 client on the same machine; read the ratio.

    hatch run bench:middleware                    # in-process, ~1-2 min
    hatch run bench:middleware --requests 2000    # quick look
    hatch run bench:middleware --profile setup    # cProfile one config instead
    hatch run bench:middleware --e2e              # through uvicorn, ~1 min
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import logging
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

import fastapi
import starlette
import uvicorn
from _driver import (
    CLOCKS,
    HOST,
    drive,
    free_port,
    interleaved,
    one_request,
    read_log,
    stop_process,
    uvicorn_command,
    write_section,
)
from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI, Request, Response

import fastkit

ITEM = {"id": 1, "name": "widget", "price": 9.99, "in_stock": True}
OURS = ("x-request-id", "x-process-time", "server-timing")
SECURITY = ("x-content-type-options", "content-security-policy")


class DiscardHandler(logging.Handler):
    """Takes every record through ``Handler.handle`` (filters, lock, emit) and writes nothing."""

    def emit(self, record: logging.LogRecord) -> None:
        pass


def quiet_access_log() -> None:
    """Enable ``fastkit.access`` at INFO with a discarding handler, so records are made."""
    logger = logging.getLogger("fastkit.access")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if not any(isinstance(h, DiscardHandler) for h in logger.handlers):
        logger.addHandler(DiscardHandler(logging.INFO))


def _app() -> FastAPI:
    app = FastAPI()

    # No return annotation: a response model would make the endpoint dearer and hide the
    # middleware's share.
    @app.get("/item")
    async def item():  # type: ignore[no-untyped-def]
        return {"id": 1, "name": "widget", "price": 9.99, "in_stock": True}

    return app


# The apps compared; uvicorn serves ``bare`` and ``setup`` as ``middleware:<name>``.
def bare() -> FastAPI:
    return _app()


def setup() -> FastAPI:
    quiet_access_log()
    return fastkit.setup(_app())


def setup_metrics() -> FastAPI:
    """setup(app) with Prometheus metrics (fastkit.metrics), in a registry of its own."""
    from prometheus_client import CollectorRegistry

    quiet_access_log()
    return fastkit.setup(_app(), metrics=True, metrics_registry=CollectorRegistry())


def setup_nolog() -> FastAPI:
    return fastkit.setup(_app(), access_log=False)


def setup_before_protections() -> FastAPI:
    """setup() as it was before the request protections became defaults (issue 16)."""
    quiet_access_log()
    return fastkit.setup(_app(), security_headers=False, max_body_size=None)


def seed() -> FastAPI:
    """The timing middleware as the seed app wrote it: ``@app.middleware("http")``."""
    app = _app()

    @app.middleware("http")
    async def timing(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Any:
        start = time.time()
        response = await call_next(request)
        response.headers["X-Process-Time"] = str(time.time() - start)
        return response

    return app


def with_middleware(cls: Any) -> Callable[[], FastAPI]:
    def factory() -> FastAPI:
        app = _app()
        app.add_middleware(cls)
        return app

    return factory


CONFIGS: list[tuple[str, str, Callable[[], FastAPI], tuple[str, ...]]] = [
    ("bare", "(1) bare FastAPI", bare, ()),
    ("setup", "(2) fastkit.setup(app) defaults", setup, OURS + SECURITY),
    ("setup-nolog", "(2b) fastkit.setup(app, access_log=False)", setup_nolog, OURS + SECURITY),
    ("setup-metrics", "(2d) fastkit.setup(app, metrics=True)", setup_metrics, OURS + SECURITY),
    (
        "setup-unprotected",
        "(2c) setup(app, security_headers=False, max_body_size=None)",
        setup_before_protections,
        OURS,
    ),
    ("seed", '(3) seed @app.middleware("http") timing', seed, ("x-process-time",)),
    (
        "cid",
        "(4a) asgi-correlation-id CorrelationIdMiddleware",
        with_middleware(CorrelationIdMiddleware),
        ("x-request-id",),
    ),
    (
        "rid",
        "(4b) fastkit RequestIDMiddleware",
        with_middleware(fastkit.RequestIDMiddleware),
        ("x-request-id",),
    ),
    ("timing", "(5) fastkit TimingMiddleware", with_middleware(fastkit.TimingMiddleware), OURS[1:]),
]
LABELS = {key: label for key, label, _, _ in CONFIGS}
TARGETS = [  # (numerator, denominator, description, minimum)
    ("setup", "bare", "(2)/(1)  setup(app) vs bare FastAPI", 0.80),
    ("setup-metrics", "bare", "(2d)/(1) setup(app, metrics=True) vs bare FastAPI", 0.75),
    ("setup", "seed", "(2)/(3)  setup(app) vs seed timing middleware", 2.5),
    ("rid", "cid", "(4b)/(4a) RequestIDMiddleware vs CorrelationIdMiddleware", 1.0),
]


def check(label: str, status: int, body: bytes, names: set[str], wanted: tuple[str, ...]) -> None:
    """Exit with a message unless the response is the one we mean to measure."""
    problems = [f"status {status}"] if status != 200 else []
    if json.loads(body or b"null") != ITEM:
        problems.append(f"unexpected body {body!r}")
    if missing := [h for h in wanted if h not in names]:
        problems.append(f"missing headers {missing} (got {sorted(names)})")
    if problems:
        sys.exit(f"{label}: " + "; ".join(problems))


async def verify(key: str, app: Any) -> None:
    records: list[logging.LogRecord] = []
    capture = logging.Handler(logging.INFO)
    capture.emit = records.append  # type: ignore[method-assign]
    access = logging.getLogger("fastkit.access")
    access.addHandler(capture)
    try:
        exchange = await one_request(app)
    finally:
        access.removeHandler(capture)
    names = {k.decode("latin-1").lower() for k, _ in exchange.headers}
    _, label, _, wanted = next(c for c in CONFIGS if c[0] == key)
    check(label, exchange.status, exchange.body if exchange.complete else b"", names, wanted)
    if key == "setup" and len(records) != 1:
        sys.exit(f"{label}: expected 1 access log record, got {len(records)}")


async def in_process(args: argparse.Namespace) -> dict[str, list[float]]:
    apps = {key: factory() for key, _, factory, _ in CONFIGS}
    for key, app in apps.items():
        await verify(key, app)
        await drive(app, args.warmup)
    return await interleaved(apps, args.rounds, args.requests, CLOCKS[args.clock])


def ratios(rates: dict[str, list[float]], num: str, den: str) -> list[float]:
    """Per-round ratios: one round's configs ran moments apart, so load drift cancels out."""
    return [a / b for a, b in zip(rates[num], rates[den], strict=True)]


def render(rates: dict[str, list[float]], args: argparse.Namespace, load: float) -> str:
    """Print the table and the targets; return the Markdown section."""
    clock = "the driving thread's CPU time" if args.clock == "cpu" else "wall-clock time"
    md = [
        "## In-process (ASGI driver, no server)",
        "",
        f"`python bench/middleware.py --requests {args.requests} --rounds {args.rounds} "
        f"--clock {args.clock}`: {args.rounds} interleaved rounds of {args.requests} sequential "
        f"`GET /item` requests per config on one asyncio event loop, timed by {clock}; "
        "*req/s* is the median round, *vs bare* the median of the per-round ratios, *range* "
        f"their min-max. Python {platform.python_version()}, FastAPI {fastapi.__version__}, "
        f"Starlette {starlette.__version__}; {platform.machine()}, {os.cpu_count()} CPU(s), "
        f"load average {load:.2f} at start.",
        "",
        "| config | req/s | vs bare | range vs bare |",
        "| --- | ---: | ---: | ---: |",
    ]
    width = max(map(len, LABELS.values()))
    print(f"{'config':<{width}}  {'req/s':>9}  {'vs bare':>7}  {'range vs bare':>13}")
    for key, label in LABELS.items():
        rate, per_round = statistics.median(rates[key]), ratios(rates, key, "bare")
        ratio, span = statistics.median(per_round), f"{min(per_round):.2f}-{max(per_round):.2f}"
        print(f"{label:<{width}}  {rate:>9,.0f}  {ratio:>7.2f}  {span:>13}")
        escaped = label.replace("|", "\\|")
        md.append(f"| {escaped} | {rate:,.0f} | {ratio:.2f} | {span} |")
    print()
    md += ["", "| target | ratio | goal | result |", "| --- | ---: | ---: | --- |"]
    for num, den, text, goal in TARGETS:
        ratio = statistics.median(ratios(rates, num, den))
        verdict = "PASS" if ratio >= goal else "MISS"
        print(f"{text:<58} {ratio:>5.2f}  target >= {goal:.2f}  {verdict}")
        md.append(f"| {text} | {ratio:.2f} | >= {goal:.2f} | {verdict} |")
    md += [
        "",
        "`setup(app)` logs every request to `fastkit.access` at INFO through a handler "
        "that discards the record (the record is made and handled; nothing is written).",
    ]
    return "\n".join(md)


def profile(key: str, n: int) -> None:
    """Print where the time goes for one config (cProfile, sorted by own time)."""
    app = next(factory for k, _, factory, _ in CONFIGS if k == key)()

    async def run() -> None:
        await verify(key, app)
        await drive(app, min(n, 1000))  # warm up
        with cProfile.Profile() as profiler:
            await drive(app, n)
        print(f"cProfile of {LABELS[key]}, {n} requests")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)

    asyncio.run(run())


# -- end to end ------------------------------------------------------------------------


async def http_load(url: str, connections: int, duration: float) -> float:
    """Requests/second of ``connections`` concurrent clients on ``url`` for ``duration``."""
    import httpx2

    limits = httpx2.Limits(max_connections=connections, max_keepalive_connections=connections)
    counts = {"ok": 0, "failed": 0}
    async with httpx2.AsyncClient(limits=limits, timeout=5.0) as client:
        start = time.perf_counter()

        async def worker() -> None:
            while time.perf_counter() < start + duration:
                try:
                    status = (await client.get(url)).status_code
                except httpx2.HTTPError:
                    status = 0
                counts["ok" if status == 200 else "failed"] += 1

        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(connections))), 120)
        elapsed = time.perf_counter() - start
    if counts["failed"]:
        print(f"warning: {url}: {counts['failed']} failed requests", file=sys.stderr)
    return counts["ok"] / elapsed


def wait_ready(name: str, url: str, process: subprocess.Popen[bytes], log: Any) -> None:
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            sys.exit(f"{name} server exited early:\n{read_log(log, tail=4000)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                status, names, body = response.status, response.headers, response.read()
                break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"{name} server did not answer within 20 s")
            time.sleep(0.1)
    wanted = OURS + SECURITY if name == "setup" else ()
    check(name, status, body, {k.lower() for k in names}, wanted)


def end_to_end(args: argparse.Namespace) -> str:
    """Load the bare and the setup server in turn; print the table, return the Markdown."""
    rates: dict[str, list[float]] = {"bare": [], "setup": []}
    urls: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        for name in rates:
            port, log = free_port(), stack.enter_context(tempfile.TemporaryFile())
            process = subprocess.Popen(
                uvicorn_command(f"middleware:{name}", port), stdout=log, stderr=subprocess.STDOUT
            )
            stack.callback(stop_process, process)
            urls[name] = f"http://{HOST}:{port}/item"
            wait_ready(name, urls[name], process, log)
            asyncio.run(http_load(urls[name], args.connections, 2.0))  # warm up
        for round_no in range(args.e2e_rounds):
            for name, url in urls.items():
                rates[name].append(asyncio.run(http_load(url, args.connections, args.duration)))
                print(f"round {round_no + 1} {name}: {rates[name][-1]:,.0f} req/s", file=sys.stderr)
    means = {name: statistics.mean(values) for name, values in rates.items()}
    ratio = means["setup"] / means["bare"]
    header = ["server", *(f"run {i + 1}" for i in range(args.e2e_rounds)), "mean req/s", "vs bare"]
    rows = [
        [LABELS[name], *(f"{r:,.0f}" for r in values), f"{means[name]:,.0f}",
         f"{means[name] / means['bare']:.2f}"]
        for name, values in rates.items()
    ]  # fmt: skip
    for row in [header, *rows]:
        print("  ".join(cell.rjust(14) if i else cell.ljust(32) for i, cell in enumerate(row)))
    print(f"\nsetup/bare ratio (end to end): {ratio:.2f}")
    return "\n".join(
        [
            "## End to end (uvicorn + load generator)",
            "",
            f"`python bench/middleware.py --e2e`: uvicorn {uvicorn.__version__} (1 worker), "
            f"load from an asyncio httpx2 client, {args.connections} concurrent requests for "
            f"{args.duration:g} s, servers alternated {args.e2e_rounds}x (bare, setup, ...), on "
            f"the same {os.cpu_count()}-CPU machine as the server.",
            "",
            "| " + " | ".join(header) + " |",
            "| --- |" + " ---: |" * (len(header) - 1),
            *("| " + " | ".join(row) + " |" for row in rows),
            "",
            f"**setup/bare: {ratio:.2f}**",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=8_000, help="per config and round")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--clock", choices=list(CLOCKS), default="cpu")
    parser.add_argument("--warmup", type=int, default=2_000, help="requests per config first")
    parser.add_argument("--profile", choices=list(LABELS), help="cProfile one config instead")
    parser.add_argument("--e2e", action="store_true", help="through uvicorn instead")
    parser.add_argument("--duration", type=float, default=10.0, help="--e2e: seconds per run")
    parser.add_argument("--connections", type=int, default=32, help="--e2e: concurrency")
    parser.add_argument("--e2e-rounds", type=int, default=2, help="--e2e: runs per server")
    parser.add_argument("--no-write", action="store_true", help="do not update bench/results/")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.rounds < 1 or args.warmup < 0:
        parser.error("--requests and --rounds must be >= 1 and --warmup >= 0")
    if not (0 < args.duration <= 120 and 1 <= args.connections <= 256 and args.e2e_rounds >= 1):
        parser.error("keep it bounded: 0 < --duration <= 120, --connections 1-256")
    if args.profile:
        profile(args.profile, args.requests)
        return 0
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"note: load average is {load:.2f}; other work may skew req/s", file=sys.stderr)
    if args.e2e:
        section, markdown = "e2e", end_to_end(args)
    else:
        section, markdown = "in-process", render(asyncio.run(in_process(args)), args, load)
    if not args.no_write:
        print(f"\nwrote {write_section(section, markdown)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
