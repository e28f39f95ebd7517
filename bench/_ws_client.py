"""The client side of ``bench/websocket.py``: many websocket clients in one asyncio process.

Run by ``websocket.py`` in a subprocess, never by hand (though it works by hand against a
running ``_ws_app`` server). It

1. raises its open-file limit if ``--clients`` needs it (``resource.setrlimit``);
2. opens ``--clients`` connections to ``ws://HOST:PORT/ws`` (``websockets`` library, no
   compression, no client pings), ``--connect-concurrency`` at a time; ``--stalled`` of
   them, spread evenly over the connection order, never read: ``max_queue=1`` and a small
   ``SO_RCVBUF``, so the library stops reading after a message or two and the kernel
   buffers fill, as with a client that has gone to sleep;
3. starts the server's broadcast run (``POST /broadcast``) and lets every live client read
   until it has all ``--broadcasts`` messages, or until ``--timeout`` seconds have passed;
4. asks the server for ``/status`` (with the stalled clients still connected), then aborts
   every connection and prints one line of JSON: counts, delivered messages/s, and the
   delivery latency percentiles of the live clients.

A message that never arrived counts as an infinite latency, so a percentile that falls on
one is reported as ``null`` with ``censored`` set: it was later than the timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import resource
import socket
import sys
import time
import urllib.request
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

HEADER_LEN = 29  # same as _ws_app.HEADER_LEN: "<seq:08d>:<time_ns:019d>:"
STALLED_RCVBUF = 4096  # bytes; the kernel doubles it


def raise_nofile(needed: int) -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft < needed:
        sys.exit(f"need {needed} open files, the hard limit is {hard}: lower --clients")
    return soft, hard


def stalled_indices(clients: int, stalled: int) -> set[int]:
    """``stalled`` indices spread evenly over ``range(clients)``, the first not at 0."""
    if stalled <= 0:
        return set()
    step = clients / stalled
    return {int(step * k + step / 2) for k in range(stalled)}


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100) of an ascending list; inf stays inf."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def http(method: str, url: str, timeout: float = 10.0) -> dict[str, Any]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


class Client:
    def __init__(self, index: int, stalled: bool) -> None:
        self.index = index
        self.stalled = stalled
        self.ws: ClientConnection | None = None
        self.latencies_ns: list[int] = []
        self.last_recv_ns = 0
        self.close_code: int | None = None  # set if the server closed a live client early
        self.bad = 0  # messages out of order or malformed


async def open_client(client: Client, uri: str, host: str, port: int, size: int) -> None:
    kwargs: dict[str, Any] = {
        "compression": None,
        "ping_interval": None,
        "max_size": max(2 * size, 1 << 20),
        "open_timeout": 30,
        "close_timeout": 1,
    }
    if client.stalled:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RCVBUF)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
        except BaseException:
            sock.close()
            raise
        kwargs.update(sock=sock, max_queue=1)
    client.ws = await connect(uri, **kwargs)


async def read_until(client: Client, expected: int) -> None:
    ws = client.ws
    assert ws is not None
    next_seq = 0
    try:
        while next_seq < expected:
            data = await ws.recv(decode=False)
            now = time.time_ns()
            try:
                seq = int(data[:8])
                sent = int(data[9 : HEADER_LEN - 1])
            except ValueError:
                client.bad += 1
                continue
            if seq != next_seq:
                client.bad += 1
            next_seq = seq + 1
            client.latencies_ns.append(now - sent)
            client.last_recv_ns = now
    except ConnectionClosed as closed:
        client.close_code = closed.rcvd.code if closed.rcvd is not None else 1006


async def run(args: argparse.Namespace) -> dict[str, Any]:
    base = f"http://{args.host}:{args.port}"
    uri = f"ws://{args.host}:{args.port}/ws"
    stalled = stalled_indices(args.clients, args.stalled)
    clients = [Client(i, i in stalled) for i in range(args.clients)]
    result: dict[str, Any] = {"clients": args.clients, "stalled": len(stalled)}

    # Connect, a bounded number at a time, in index order (the seed manager's list order
    # follows the order in which the server accepts them).
    t0 = time.perf_counter()
    semaphore = asyncio.Semaphore(args.connect_concurrency)

    async def guarded(client: Client) -> None:
        async with semaphore:
            await open_client(client, uri, args.host, args.port, args.size)

    try:
        await asyncio.wait_for(
            asyncio.gather(*(guarded(c) for c in clients)), timeout=args.connect_timeout
        )
    except (OSError, asyncio.TimeoutError, TimeoutError) as error:
        connected = sum(c.ws is not None for c in clients)
        await abort_all(clients)
        raise SystemExit(
            f"only {connected}/{args.clients} clients connected ({error!r}); lower --clients"
        ) from None
    result["connect_s"] = time.perf_counter() - t0
    before = await asyncio.to_thread(http, "GET", f"{base}/status")
    result["server_clients_before"] = before["clients"]
    if before["clients"] != args.clients:
        print(
            f"warning: server has {before['clients']} clients, expected {args.clients}",
            file=sys.stderr,
        )

    live = [c for c in clients if not c.stalled]
    readers = [asyncio.create_task(read_until(c, args.broadcasts)) for c in live]
    await asyncio.sleep(0)
    started = await asyncio.to_thread(
        http,
        "POST",
        f"{base}/broadcast?n={args.broadcasts}&size={args.size}&interval={args.interval}",
    )
    if "started" not in started:
        raise SystemExit(f"server refused the broadcast run: {started}")
    begin = time.monotonic()
    _, pending = await asyncio.wait(readers, timeout=args.timeout)
    timed_out = bool(pending)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    phase_end_ns = time.time_ns()
    result["phase_s"] = time.monotonic() - begin
    result["timed_out"] = timed_out

    # Let the server finish its bookkeeping (fastkit closes stalled clients within
    # send_timeout + 1 s), then look while the stalled clients are still connected.
    await asyncio.sleep(args.settle)
    after = await asyncio.to_thread(http, "GET", f"{base}/status")
    await abort_all(clients)

    run_state = after.get("run") or {}
    start_ns = run_state.get("start_ns") or 0
    expected = len(live) * args.broadcasts
    latencies = sorted(x / 1e6 for c in live for x in c.latencies_ns)
    delivered = len(latencies)
    complete = delivered == expected
    end_ns = max((c.last_recv_ns for c in live), default=0) if complete else phase_end_ns
    window_s = (end_ns - start_ns) / 1e9 if start_ns and end_ns > start_ns else math.nan
    padded = latencies + [math.inf] * (expected - delivered)
    stats = {}
    for name, q in (("p50", 50), ("p99", 99), ("max", 100)):
        value = percentile(padded, q)
        stats[name] = None if math.isinf(value) else value
    result.update(
        live=len(live),
        expected=expected,
        delivered=delivered,
        window_s=window_s,
        msgs_per_s=delivered / window_s if window_s == window_s and window_s > 0 else None,
        latency_ms=stats,
        censored_after_s=args.timeout,
        live_closed=sum(c.close_code is not None for c in live),
        live_close_codes=sorted({c.close_code for c in live if c.close_code is not None}),
        live_incomplete=sum(len(c.latencies_ns) < args.broadcasts for c in live),
        out_of_order=sum(c.bad for c in live),
        server_clients_after=after["clients"],
        server_handlers_after=after["handlers"],
        broadcasts_done=run_state.get("done"),
        broadcasts_failed=run_state.get("failed"),
        broadcast_error=run_state.get("last_error"),
        broadcast_lag_max_ms=run_state.get("lag_max_ms"),
        server_cpu_s=after["cpu"] - run_state.get("cpu_start", after["cpu"]),
        client_cpu_s=time.process_time(),
    )
    return result


async def abort_all(clients: list[Client]) -> None:
    for client in clients:
        if client.ws is not None:
            with contextlib.suppress(Exception):
                client.ws.transport.abort()
    await asyncio.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description="websocket clients for bench/websocket.py")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--stalled", type=int, default=0)
    parser.add_argument("--broadcasts", type=int, default=100)
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--connect-timeout", type=float, default=60.0)
    parser.add_argument("--connect-concurrency", type=int, default=50)
    parser.add_argument("--settle", type=float, default=2.5)
    args = parser.parse_args()
    if args.host not in {"127.0.0.1", "localhost", "::1"}:
        parser.error("loopback only")
    if not (
        1 <= args.clients <= 5000
        and 0 <= args.stalled < args.clients
        and 1 <= args.broadcasts <= 10_000
        and 0 < args.timeout <= 120
        and 0 < args.connect_timeout <= 120
    ):
        parser.error("out of bounds")
    raise_nofile(args.clients + 256)
    result = asyncio.run(run(args))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
