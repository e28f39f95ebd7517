"""In-process middleware overhead: requests/second through each app, relative to bare FastAPI.

No server and no HTTP client: the ASGI ``scope``/``receive``/``send`` are built by hand and
the app is awaited in a loop on one asyncio event loop, so the figures show the cost of the
middleware itself. Each config is warmed up, then the configs are interleaved for several
rounds (the order rotates each round). Ratios are taken within a round and the median
round ratio is reported, so they compare runs of the same process moments apart;
absolute req/s depend on the machine. Time is the driving thread's CPU time by default
(``--clock wall`` for elapsed time): the loop never waits, so the two agree on an idle
machine, and CPU time leaves out the moments other processes held the CPU.

    hatch run bench:middleware                    # full run, ~1-2 min
    hatch run bench:middleware --requests 2000    # quick look
    hatch run bench:middleware --profile setup    # cProfile one config instead
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import logging
import os
import platform
import pstats
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import _apps
import fastapi
import starlette
from _asgi import CLOCKS, drive, one_request
from _results import RESULTS, write_section

ASGIApp = Callable[..., Any]


@dataclass(frozen=True)
class Config:
    key: str
    label: str
    factory: Callable[[], fastapi.FastAPI]
    headers: tuple[str, ...]  # response headers that must be present


CONFIGS = [
    Config("bare", "(1) bare FastAPI", _apps.bare, ()),
    Config(
        "setup",
        "(2) fastkit.setup(app) defaults",
        _apps.with_setup,
        ("x-request-id", "x-process-time", "server-timing"),
    ),
    Config(
        "setup-nolog",
        "(2b) fastkit.setup(app, access_log=False)",
        _apps.with_setup_no_access_log,
        ("x-request-id", "x-process-time", "server-timing"),
    ),
    Config(
        "seed", '(3) seed @app.middleware("http") timing', _apps.seed_timing, ("x-process-time",)
    ),
    Config(
        "cid",
        "(4a) asgi-correlation-id CorrelationIdMiddleware",
        _apps.correlation_id,
        ("x-request-id",),
    ),
    Config("rid", "(4b) fastkit RequestIDMiddleware", _apps.request_id, ("x-request-id",)),
    Config(
        "timing", "(5) fastkit TimingMiddleware", _apps.timing, ("x-process-time", "server-timing")
    ),
]
TARGETS = [  # (numerator, denominator, description, minimum)
    ("setup", "bare", "(2)/(1)  setup(app) vs bare FastAPI", 0.80),
    ("setup", "seed", "(2)/(3)  setup(app) vs seed timing middleware", 2.5),
    ("rid", "cid", "(4b)/(4a) RequestIDMiddleware vs CorrelationIdMiddleware", 1.0),
]


ASGIApp = Callable[..., Any]


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def verify(config: Config, app: ASGIApp) -> None:
    """Check one response of ``app``; exit with a message if it is not what we measure."""
    capture = _Capture()
    access = logging.getLogger("fastkit.access")
    access.addHandler(capture)
    try:
        exchange = await one_request(app)
    finally:
        access.removeHandler(capture)
    names = {key.decode("latin-1").lower() for key, _ in exchange.headers}
    problems = []
    if exchange.status != 200:
        problems.append(f"status {exchange.status}, expected 200")
    if not exchange.complete:
        problems.append("the response never completed")
    elif json.loads(exchange.body) != _apps.ITEM:
        problems.append(f"unexpected body {exchange.body!r}")
    missing = [h for h in config.headers if h not in names]
    if missing:
        problems.append(f"missing headers {missing} (got {sorted(names)})")
    if config.key == "setup":
        if not access.isEnabledFor(logging.INFO):
            problems.append("logger fastkit.access is not enabled for INFO")
        elif len(capture.records) != 1:
            problems.append(f"expected 1 access log record, got {len(capture.records)}")
    if problems:
        sys.exit(f"{config.label}: " + "; ".join(problems))


def paired_ratio(rates: dict[str, list[float]], num: str, den: str) -> list[float]:
    """Per-round ratios: configs of one round ran back to back, so drift in machine load
    (other processes, CPU frequency) mostly cancels out of each ratio."""
    return [a / b for a, b in zip(rates[num], rates[den], strict=True)]


def render(
    rates: dict[str, list[float]], args: argparse.Namespace, load_before: float
) -> tuple[str, str]:
    """The console table and the Markdown section."""
    width = max(len(c.label) for c in CONFIGS)
    lines = [
        f"{'config':<{width}}  {'req/s':>9}  {'vs bare':>7}  {'range vs bare':>13}",
        "-" * (width + 37),
    ]
    md = [
        "## In-process (ASGI driver, no server)",
        "",
        f"`python bench/middleware.py --requests {args.requests} --rounds {args.rounds} "
        f"--clock {args.clock}`: "
        f"{args.rounds} interleaved rounds of {args.requests} sequential `GET /item` "
        "requests per config on one asyncio event loop, timed by "
        + ("the driving thread's CPU time" if args.clock == "cpu" else "wall-clock time")
        + "; *req/s* is the median round, "
        "*vs bare* the median of the per-round ratios, *range* their min-max. "
        f"Python {platform.python_version()}, FastAPI {fastapi.__version__}, "
        f"Starlette {starlette.__version__}; {platform.machine()}, {_cpu_count()} CPU(s), "
        f"load average {load_before:.2f} at start.",
        "",
        "| config | req/s | vs bare | range vs bare |",
        "| --- | ---: | ---: | ---: |",
    ]
    for config in CONFIGS:
        rate = statistics.median(rates[config.key])
        ratios = paired_ratio(rates, config.key, "bare")
        ratio, span = statistics.median(ratios), f"{min(ratios):.2f}-{max(ratios):.2f}"
        lines.append(f"{config.label:<{width}}  {rate:>9,.0f}  {ratio:>7.2f}  {span:>13}")
        label = config.label.replace("|", "\\|")
        md.append(f"| {label} | {rate:,.0f} | {ratio:.2f} | {span} |")
    lines.append("")
    md += ["", "| target | ratio | goal | result |", "| --- | ---: | ---: | --- |"]
    for num, den, text, goal in TARGETS:
        ratio = statistics.median(paired_ratio(rates, num, den))
        verdict = "PASS" if ratio >= goal else "MISS"
        lines.append(f"{text:<58} {ratio:>5.2f}  target >= {goal:.2f}  {verdict}")
        md.append(f"| {text} | {ratio:.2f} | >= {goal:.2f} | {verdict} |")
    md += [
        "",
        "`setup(app)` logs every request to `fastkit.access` at INFO through a handler "
        "that discards the record (the record is made and handled; nothing is written).",
    ]
    return "\n".join(lines), "\n".join(md)


def _cpu_count() -> int:
    return os.cpu_count() or 1


def profile(key: str, n: int) -> None:
    """Print where the time goes for one config (cProfile, sorted by own time)."""
    config = next(c for c in CONFIGS if c.key == key)
    app = config.factory()

    async def run() -> None:
        await verify(config, app)
        await drive(app, min(n, 1000))  # warm up
        profiler = cProfile.Profile()
        profiler.enable()
        await drive(app, n)
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(30)
        print(f"cProfile of {config.label}, {n} requests\n{out.getvalue()}")

    asyncio.run(run())


async def run(args: argparse.Namespace) -> dict[str, list[float]]:
    apps = {config.key: config.factory() for config in CONFIGS}
    for config in CONFIGS:
        await verify(config, apps[config.key])
        await drive(apps[config.key], args.warmup)
    rates: dict[str, list[float]] = {config.key: [] for config in CONFIGS}
    for round_no in range(args.rounds):
        shift = round_no % len(CONFIGS)
        for config in CONFIGS[shift:] + CONFIGS[:shift]:
            rate = await drive(apps[config.key], args.requests, CLOCKS[args.clock])
            rates[config.key].append(rate)
        print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr)
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=8_000, help="per config and round")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--clock",
        choices=list(CLOCKS),
        default="cpu",
        help="cpu: the driving thread's CPU time (default; robust to other load); wall: elapsed",
    )
    parser.add_argument("--warmup", type=int, default=2_000, help="requests per config first")
    parser.add_argument(
        "--profile",
        choices=[c.key for c in CONFIGS],
        help="cProfile --requests requests of one config instead of the comparison",
    )
    parser.add_argument("--no-write", action="store_true", help=f"do not update {RESULTS.name}")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.rounds < 1 or args.warmup < 0:
        parser.error("--requests and --rounds must be >= 1 and --warmup >= 0")
    if args.profile:
        profile(args.profile, args.requests)
        return 0

    load_before = os.getloadavg()[0]
    if load_before > 0.5:
        print(
            f"note: load average is {load_before:.2f}; other work may skew req/s", file=sys.stderr
        )
    rates = asyncio.run(run(args))
    table, markdown = render(rates, args, load_before)
    print(table)
    if not args.no_write:
        path = write_section("in-process", markdown)
        print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
