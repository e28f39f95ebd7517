"""End to end through uvicorn: requests/second of ``setup(app)`` relative to bare FastAPI.

Starts two uvicorn servers on free 127.0.0.1 ports (``_apps:bare`` and ``_apps:with_setup``,
one worker each, ``--log-level warning --no-access-log``), checks one response of each, then
loads them in turn — bare, setup, bare, setup — with ``wrk`` when it is installed
(``wrk -t2 -c32 -d10s``), otherwise with a bounded asyncio client on httpx2 (32 concurrent
requests for 10 s). The servers are always stopped at the end. The load generator shares
the machine with the server, so absolute figures are low on small machines; the ratio is
what to read.

    hatch run bench:middleware-e2e
    hatch run bench:middleware-e2e --duration 5 --rounds 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from typing import IO, Any

import _apps
import uvicorn
from _results import RESULTS, write_section
from _servers import HOST, free_port, read_log, stop_process, uvicorn_command

MAX_PYTHON_REQUESTS = 2_000_000  # hard cap for the Python load generator, per run


@dataclass
class Server:
    name: str
    factory: str  # attribute of bench/_apps.py
    headers: tuple[str, ...]  # response headers that must be present
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    rates: list[float] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/item"


def start(server: Server, log: IO[bytes]) -> None:
    server.port = free_port()
    server.log = log
    command = uvicorn_command(f"_apps:{server.factory}", server.port)
    server.process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=server.log, stderr=subprocess.STDOUT
    )


def server_log(server: Server) -> str:
    return read_log(server.log, tail=4000)


def stop(server: Server) -> None:
    stop_process(server.process)


def wait_ready(server: Server, timeout: float = 20.0) -> None:
    """Poll until the server answers, then check that the response is what we measure."""
    process = server.process
    if process is None:
        raise RuntimeError(f"{server.name} server was not started")
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            sys.exit(f"{server.name} server exited early:\n{server_log(server)}")
        try:
            with urllib.request.urlopen(server.url, timeout=2) as response:
                status, headers, body = response.status, response.headers, response.read()
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"{server.name} server did not answer within {timeout:.0f}s")
            time.sleep(0.1)
    missing = [h for h in server.headers if h not in headers]
    problems = []
    if status != 200:
        problems.append(f"status {status}, expected 200")
    if json.loads(body) != _apps.ITEM:
        problems.append(f"unexpected body {body!r}")
    if missing:
        problems.append(f"missing headers {missing} (got {sorted(headers.keys())})")
    if problems:
        sys.exit(f"{server.name} server: " + "; ".join(problems))


def load_wrk(url: str, args: argparse.Namespace, duration: float) -> float:
    command = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{max(1, math.ceil(duration))}s",  # wrk takes whole seconds only
        "--timeout",
        "5s",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    if done.returncode != 0:
        sys.exit(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    if match is None:
        sys.exit(f"could not read Requests/sec from wrk:\n{done.stdout}")
    for pattern in (r"Non-2xx or 3xx responses: (\d+)", r"Socket errors: (.*)"):
        problem = re.search(pattern, done.stdout)
        if problem:
            print(f"warning: {url}: {problem.group(0)}", file=sys.stderr)
    return float(match.group(1))


async def _load_python(url: str, connections: int, duration: float) -> float:
    import httpx2

    limits = httpx2.Limits(max_connections=connections, max_keepalive_connections=connections)
    counts = {"ok": 0, "failed": 0}
    async with httpx2.AsyncClient(limits=limits, timeout=5.0) as client:
        start = time.perf_counter()
        deadline = start + duration

        async def worker() -> None:
            while time.perf_counter() < deadline and counts["ok"] < MAX_PYTHON_REQUESTS:
                try:
                    response = await client.get(url)
                except httpx2.HTTPError:
                    counts["failed"] += 1
                    continue
                counts["ok" if response.status_code == 200 else "failed"] += 1

        await asyncio.wait_for(
            asyncio.gather(*(worker() for _ in range(connections))), timeout=duration + 30
        )
        elapsed = time.perf_counter() - start
    if counts["failed"]:
        print(f"warning: {url}: {counts['failed']} failed requests", file=sys.stderr)
    return counts["ok"] / elapsed


def load(url: str, args: argparse.Namespace, duration: float) -> float:
    if args.tool == "wrk":
        return load_wrk(url, args, duration)
    return asyncio.run(_load_python(url, args.connections, duration))


def describe_tool(args: argparse.Namespace) -> str:
    if args.tool == "wrk":
        return f"`wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s`"
    return (
        f"Python asyncio + httpx2 client, {args.connections} concurrent requests "
        f"for {args.duration:g} s"
    )


def describe_server() -> str:
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"uvicorn {uvicorn.__version__} (1 worker, {loop} loop, {http})"


def report(servers: list[Server], args: argparse.Namespace) -> tuple[str, str, float]:
    bare, setup = servers
    means = {s.name: statistics.mean(s.rates) for s in servers}
    ratio = means[setup.name] / means[bare.name]
    runs = max(len(s.rates) for s in servers)
    header = ["server", *(f"run {i + 1}" for i in range(runs)), "mean req/s", "vs bare"]
    rows = []
    for server in servers:
        rows.append(
            [
                server.name,
                *(f"{rate:,.0f}" for rate in server.rates),
                f"{means[server.name]:,.0f}",
                f"{means[server.name] / means[bare.name]:.2f}",
            ]
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.rjust(w) if i else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *rows]
    ]
    lines.insert(1, "-" * len(lines[0]))
    lines += ["", f"setup/bare ratio: {ratio:.2f}"]
    md = [
        "## End to end (uvicorn + load generator)",
        "",
        f"`python bench/middleware_e2e.py`: {describe_server()}, load from "
        f"{describe_tool(args)}, servers alternated {args.rounds}x (bare, setup, ...), "
        f"on the same {os.cpu_count()}-CPU machine as the server.",
        "",
        "| " + " | ".join(header) + " |",
        "| --- |" + " ---: |" * (len(header) - 1),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        f"**setup/bare: {ratio:.2f}**",
    ]
    return "\n".join(lines), "\n".join(md), ratio


def _raise_exit(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--rounds", type=int, default=2, help="times each server is loaded")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load first")
    parser.add_argument("--tool", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--no-write", action="store_true", help=f"do not update {RESULTS.name}")
    args = parser.parse_args(argv)
    if not (0 < args.duration <= 120 and 1 <= args.connections <= 256 and 1 <= args.rounds <= 5):
        parser.error("keep it bounded: 0 < --duration <= 120, --connections 1-256, --rounds 1-5")
    if args.tool == "auto":
        args.tool = "wrk" if shutil.which("wrk") else "python"

    signal.signal(signal.SIGTERM, _raise_exit)  # so that `finally` stops the servers
    servers = [
        Server("bare FastAPI", "bare", ()),
        Server(
            "fastkit.setup(app)", "with_setup", ("x-request-id", "x-process-time", "server-timing")
        ),
    ]
    with contextlib.ExitStack() as stack:
        for server in servers:
            start(server, stack.enter_context(tempfile.TemporaryFile()))
            stack.callback(stop, server)  # runs on any exit, before the log file closes
        for server in servers:
            wait_ready(server)
            if args.warmup > 0:
                load(server.url, args, args.warmup)
        print(f"{describe_server()}; load: {describe_tool(args)}", file=sys.stderr)
        for round_no in range(args.rounds):
            for server in servers:
                server.rates.append(load(server.url, args, args.duration))
                print(
                    f"round {round_no + 1}/{args.rounds} {server.name}: "
                    f"{server.rates[-1]:,.0f} req/s",
                    file=sys.stderr,
                )

    table, markdown, _ = report(servers, args)
    print(table)
    if not args.no_write:
        print(f"\nwrote {write_section('e2e', markdown)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
