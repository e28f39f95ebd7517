"""Rate limits as FastAPI dependencies (or one ASGI middleware), on a shared store.

``RateLimit("10/second;1000/hour")`` is a dependency: put it on a route or a router
(``dependencies=[Depends(limit)]``). Each window is a GCRA (generic cell rate algorithm)
bucket: one number per key and window in the store, updated atomically (a Lua script on
Redis), so every worker counts against the same budget and concurrent requests never slip
past it. A window of ``N/period`` lets a burst of ``N`` through at once and then one request
every ``period / N`` seconds; several windows are checked together and a refused request takes
nothing from any of them.

Every limited answer carries the IETF ``RateLimit-Policy`` and ``RateLimit`` fields
(draft-ietf-httpapi-ratelimit-headers); a refusal is 429 in the app's error style with
``Retry-After``.

Keys say whose budget a request spends: `client_ip` (the default), `jwt_subject` (the
authenticated user), `api_key`, or any ``(request) -> str | None`` callable, sync or async;
None exempts the request.
"""

from __future__ import annotations

import hashlib
import inspect
import ipaddress
import logging
import math
import re
import time
import unicodedata
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastkit.errors import (
    AppError,
    ServiceUnavailable,
    TooManyRequests,
    add_error_headers,
    error_handlers_installed,
    render_error,
)
from fastkit.metrics import record
from fastkit.request_context import RESPONSE_HEADERS, add_response_headers, escape_for_log
from fastkit.routing import matched_route, route_template
from fastkit.stores import GCRAResult, MemoryStore, Store, StoreError, Window

if TYPE_CHECKING:
    from fastkit.auth.dependencies import JWTAuth

__all__ = [
    "KeyFunc",
    "LoginThrottle",
    "RateLimit",
    "RateLimitMiddleware",
    "api_key",
    "client_ip",
    "jwt_subject",
    "parse_rate",
]

logger = logging.getLogger("fastkit.ratelimit")

KeyFunc = Callable[[Request], "Awaitable[str | None] | str | None"]
"""A key function: ``(request) -> str | None``, sync or async; None exempts the request."""
OnError = Literal["allow", "deny"]

RATE_LIMITED = "Too many requests; retry after {seconds} s."
FAILED_LOGINS = "Too many failed logins; retry after {seconds} s."
UNAVAILABLE = "Rate limit check unavailable; retry later."


def _refusal(request: Request, error: AppError) -> Exception:
    """``error`` if fastkit's handlers will answer it, else the same as an ``HTTPException``.

    Without `install_exception_handlers` (or `setup`), an `AppError` would be a 500; an
    ``HTTPException`` is answered by FastAPI itself: 429 with ``Retry-After``, never a 500.
    """
    if error_handlers_installed(request.app):
        return error
    return HTTPException(error.status_code, error.message, error.headers)


_UNITS: dict[str, int] = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
}  # fmt: skip
_UNIT_NAMES = "second, minute, hour or day (s, sec, m, min, h, hr, d; plurals too)"
_WINDOW = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(\d*)\s*([a-z]+)\s*$", re.IGNORECASE)
# This request's fields so far, when no fastkit middleware sends them (see __call__).
_SENT_FIELDS = "fastkit.ratelimit.sent"
_ERROR_LOG_EVERY = 10.0  # seconds between two "store unreachable" log lines of one limit


def parse_rate(rate: str) -> tuple[Window, ...]:
    """``"10/second;1000/hour"`` as `Window` objects (also ``"5 per 10 minutes"``, ``"1/3s"``).

    Windows are separated by ``;`` or ``,``; units are s/sec/second, m/min/minute,
    h/hour, d/day (plurals too), optionally preceded by a count of them.

    Raises:
        ValueError: For anything else, an empty limit, or two windows of one period.
    """
    if not isinstance(rate, str) or not rate.strip():
        raise ValueError(f'A rate is text like "10/second;1000/hour", got {rate!r}.')
    windows: list[Window] = []
    for part in re.split(r"[;,]", rate):
        if not part.strip():
            continue
        match = _WINDOW.match(part)
        unit = _UNITS.get(match.group(3).lower()) if match else None
        if match is None or unit is None:
            raise ValueError(
                f'Cannot read the rate {part.strip()!r}; write it like "10/second", '
                f'"1000/hour" or "5/10minutes", in whole {_UNIT_NAMES}; join several '
                'with ";".'
            )
        count, multiple = int(match.group(1)), int(match.group(2) or 1)
        if count < 1:
            raise ValueError(
                f"A rate needs at least 1 request per period, got {part.strip()!r}; write it "
                'like "1/second".'
            )
        if multiple < 1:
            raise ValueError(
                f"A rate's period must be at least 1 unit long, got {part.strip()!r}; write it "
                'like "10/second" or "10/5seconds".'
            )
        windows.append(Window(count, float(multiple * unit)))
    if not windows:
        raise ValueError(f'A rate is text like "10/second;1000/hour", got {rate!r}.')
    periods = [w.period for w in windows]
    if len(set(periods)) != len(periods):
        raise ValueError(f"Two windows of {rate!r} have the same period; keep one of them.")
    return tuple(sorted(windows, key=lambda w: w.period))


# --- keys -------------------------------------------------------------------------------


def _ip_key(host: str, ipv6_prefix: int, *, trusted: bool = True) -> str | None:
    """``ip:<address>``; IPv6 cut to its ``/ipv6_prefix`` network; None if not an address.

    ``trusted``: the server's own socket address (always canonical dotted IPv4), read
    without parsing; a forwarded hop is parsed, so ``01.2.3.4`` and ``1.2.3.4`` are one.
    """
    if ":" not in host:
        if trusted and host.isascii() and host.count(".") == 3 and host.replace(".", "").isdigit():
            return "ip:" + host
        try:
            return "ip:" + str(ipaddress.IPv4Address(host))
        except ValueError:
            return None
    if host.startswith("["):  # "[2001:db8::1]:443" or "[2001:db8::1]"
        host = host[1 : host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:  # "203.0.113.7:4711": an IPv4 address with its port
        return _ip_key(host.partition(":")[0], ipv6_prefix, trusted=False)
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError:
        return None
    if address.ipv4_mapped is not None:
        return "ip:" + str(address.ipv4_mapped)
    network = ipaddress.IPv6Network((address, ipv6_prefix), strict=False)
    return f"ip:{network.network_address}/{ipv6_prefix}"


def client_ip(*, trusted_proxies: int = 0, ipv6_prefix: int = 64) -> Callable[[Request], str]:
    """Key requests by the client's address.

    ``X-Forwarded-For`` is ignored unless ``trusted_proxies`` says how many proxies of
    yours stand in front of the app: then the address that the outermost of them saw is
    used (the ``trusted_proxies``-th entry from the right), which a client cannot forge.
    If uvicorn already rewrites the client (``--proxy-headers`` with
    ``--forwarded-allow-ips``), keep ``trusted_proxies=0``.

    IPv6 clients are keyed by their ``/64`` network (``ipv6_prefix``): one host usually
    holds a whole /64, and per-address keys would give it 2**64 budgets.

    Args:
        trusted_proxies: Proxies in front of the app that append to ``X-Forwarded-For``.
        ipv6_prefix: Prefix length IPv6 addresses are grouped by (128 for each address).

    Raises:
        ValueError: If ``trusted_proxies`` is negative or ``ipv6_prefix`` not in 1-128.
    """
    if not isinstance(trusted_proxies, int) or isinstance(trusted_proxies, bool):
        raise TypeError(f"trusted_proxies is a count of proxies, got {trusted_proxies!r}.")
    if trusted_proxies < 0:
        raise ValueError(f"trusted_proxies must be 0 or more, got {trusted_proxies}.")
    if not 1 <= ipv6_prefix <= 128:
        raise ValueError(f"ipv6_prefix must be between 1 and 128, got {ipv6_prefix}.")

    known: dict[str, str] = {}  # host -> key: one per client, not one per request

    def peer(request: Request) -> str:
        client = request.scope.get("client")
        if not client:
            return "ip:unknown"
        host = client[0]
        found = known.get(host)
        if found is None:
            found = _ip_key(str(host), ipv6_prefix) or "ip:" + str(host)[:64]
            if len(known) >= 4096:  # a flood of addresses: start over
                known.clear()
            known[host] = found
        return found

    if trusted_proxies == 0:
        return peer

    def forwarded(request: Request) -> str:
        hops = [
            hop.strip()
            for value in request.headers.getlist("x-forwarded-for")
            for hop in value.split(",")
            if hop.strip()
        ]
        if hops:
            found = _ip_key(hops[max(len(hops) - trusted_proxies, 0)], ipv6_prefix, trusted=False)
            if found is not None:
                return found
        return peer(request)

    return forwarded


def jwt_subject(auth: JWTAuth[Any], *, fallback: KeyFunc | None = None) -> KeyFunc:
    """Key requests by the authenticated user (the access token's ``sub``), so a user's
    budget follows them across addresses and devices.

    The bearer token is verified (signature, expiry, type) as the limit runs, before the
    route's own dependencies; a request without a valid token spends the budget of
    ``fallback`` (its client address by default), kept apart from users' budgets.

    Args:
        auth: The `JWTAuth` whose tokens identify users.
        fallback: The key for requests without a valid token (`client_ip` by default).
    """
    from fastkit.auth.tokens import TokenError

    other = fallback if fallback is not None else client_ip()
    decode = auth.tokens.decode

    def subject(request: Request) -> Awaitable[str | None] | str | None:
        header = request.headers.get("authorization")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                try:
                    return "sub:" + decode(token.strip()).sub
                except TokenError:
                    pass
        return other(request)

    return subject


def api_key(header: str = "X-API-Key", *, fallback: KeyFunc | None = None) -> KeyFunc:
    """Key requests by an API key header (stored as a hash, never as sent).

    Args:
        header: The header holding the key.
        fallback: The key for requests without it (`client_ip` by default).
    """
    name = header.lower()
    other = fallback if fallback is not None else client_ip()

    def key(request: Request) -> Awaitable[str | None] | str | None:
        value = request.headers.get(name)
        if value:
            return "key:" + hashlib.sha256(value.encode()).hexdigest()[:32]
        return other(request)

    return key


async def _resolve(key: KeyFunc, request: Request) -> str | None:
    found = key(request)
    if type(found) is str:  # the usual answer, checked first: this runs on every request
        return found
    return await _resolve_found(found)


async def _resolve_found(found: Any) -> str | None:
    """A key function's answer that is not a plain str: awaited, None, or a mistake."""
    if inspect.isawaitable(found):
        found = await found
    if found is not None and not isinstance(found, str):
        raise TypeError(f"A rate-limit key function must return str or None, got {found!r}.")
    return found


# --- the limit --------------------------------------------------------------------------


class RateLimit:
    """A rate limit: a FastAPI dependency, or the policy behind `RateLimitMiddleware`.

    Each request takes ``cost`` units from every window of its key's bucket, or is answered
    429 (``Retry-After``, in the app's error style) and takes nothing. Answers carry the
    IETF ``RateLimit-Policy`` and ``RateLimit`` fields, one item per window, named
    ``"<name>-<seconds>s"``. 429 (and 503 with ``on_error="deny"``) appear in OpenAPI.

    By default each route the limit guards has its own buckets (``per_route``), keyed by
    the route's path template (``/todos/{todo_id}``, never the raw path) and method; with
    ``per_route=False`` one budget covers every route the limit is on.

    Args:
        rate: ``"10/second;1000/hour"`` (see `parse_rate`) or `Window` objects.
        key: Whose budget a request spends: `client_ip()` by default; `jwt_subject`,
            `api_key`, or any ``(request) -> str | None`` (sync or async; None exempts).
        store: Where the buckets live (a new `MemoryStore` by default; a `RedisStore` for
            several workers). Keys go under its ``ratelimit`` namespace.
        name: Names the buckets and the header items (``"default"``); limits that share a
            name, store and route share buckets. Required with ``per_route=False``.
        per_route: One budget per route (True) or one for all the routes (False).
        on_error: If the store fails: ``"allow"`` the request (logged) or ``"deny"`` it
            with 503.
        cost: Units one request takes.
        headers: Send the ``RateLimit*`` fields.

    Raises:
        ValueError: For an unreadable rate, a bad ``on_error`` or ``name``, a ``cost`` no
            request could pay, or ``per_route=False`` without a ``name``.
        TypeError: If ``key`` is not callable or ``store`` not a `Store`.

    The instance is the dependency (``Depends(limit)``; its ``__call__`` takes the request
    and FastAPI's response). Raises 429 (`TooManyRequests`) past the limit, in the app's
    error style, or FastAPI's ``HTTPException`` form in an app without fastkit's handlers.

    Example:
        ```python
        from fastapi import Depends
        from fastkit.ratelimit import RateLimit, jwt_subject

        writes = RateLimit("10/second;1000/hour", key=jwt_subject(auth), store=store)

        @app.post("/items", dependencies=[Depends(writes)])
        async def create_item(item: ItemIn) -> Item: ...
        ```
    """

    def __init__(
        self,
        rate: str | Sequence[Window],
        *,
        key: KeyFunc | None = None,
        store: Store | None = None,
        name: str | None = None,
        per_route: bool = True,
        on_error: OnError = "allow",
        cost: int = 1,
        headers: bool = True,
    ) -> None:
        self.windows = parse_rate(rate) if isinstance(rate, str) else tuple(rate)
        if not self.windows or not all(isinstance(w, Window) for w in self.windows):
            raise ValueError("rate must be text like '10/second' or a list of Window objects.")
        if on_error not in ("allow", "deny"):
            raise ValueError(f'on_error must be "allow" or "deny", got {on_error!r}.')
        if not isinstance(cost, int) or isinstance(cost, bool) or cost < 1:
            raise ValueError(f"cost must be a whole number of at least 1, got {cost!r}.")
        if any(w.period < 1 or w.period != int(w.period) for w in self.windows):
            raise ValueError(
                "A RateLimit's windows last whole seconds (the RateLimit header fields count "
                'in seconds): write "20/second" rather than 10 per half second.'
            )
        smallest = min(w.limit for w in self.windows)
        if cost > smallest:
            raise ValueError(
                f"cost={cost} is more than the {smallest} units a window holds, so no request "
                "could ever pass; lower the cost or raise the limit."
            )
        if name is None:
            if not per_route:
                raise ValueError(
                    "A limit shared by several routes (per_route=False) needs a name=, or two "
                    "such limits on one store would share one budget without saying so."
                )
            name = "default"
        if not name or not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
            raise ValueError(f"name must be letters, digits, '_', '-' or '.', got {name!r}.")
        if key is not None and not callable(key):
            raise TypeError(
                f"key must be a function of the request, like client_ip(), got {key!r}."
            )
        if store is not None and not isinstance(store, Store):
            hint = " (for Redis, pass RedisStore(url))" if isinstance(store, str) else ""
            raise TypeError(f"store must be a fastkit.stores.Store{hint}, got {store!r}.")
        self.rate = (
            rate
            if isinstance(rate, str)
            else ";".join(f"{w.limit}/{w.period:g}s" for w in self.windows)
        )
        self.key: KeyFunc = key if key is not None else client_ip()
        self.store: Store = (store if store is not None else MemoryStore()).namespace("ratelimit")
        self.name = name
        self.per_route = per_route
        self.on_error: OnError = on_error
        self.cost = cost
        self.headers = headers
        self._items = [f'"{name}-{_seconds(w.period)}s"' for w in self.windows]
        self._policy = ", ".join(
            f"{item};q={w.limit};w={_seconds(w.period)}"
            for item, w in zip(self._items, self.windows, strict=True)
        )
        self._gcra = self.store.gcra  # bound once: called on every request
        # A memory store's step needs no await (no coroutine made per request).
        self._gcra_now = self.store.gcra_now if isinstance(self.store, MemoryStore) else None
        self._one = len(self.windows) == 1
        self._shared_prefix = f"{name}:"
        self._warned_clash = False
        self._route_prefixes: dict[tuple[int, str], tuple[Any, str]] = {}
        self._last_error_log = -math.inf
        self._errors_unlogged = 0
        self.openapi_responses = self._openapi_responses()

    def __repr__(self) -> str:
        return f"RateLimit({self.rate!r}, name={self.name!r}, per_route={self.per_route})"

    def _bucket(self, request: Request, key: str) -> str:
        if not self.per_route:
            return self._shared_prefix + key
        scope = request.scope
        # The bucket prefix is worked out once per route object and method: FastAPI's
        # effective route (an included router's route, with its prefixes) or the matched
        # route, by id and checked by identity (routes are unhashable).
        route = matched_route(scope)
        if route is None:
            return self._route_prefix(scope) + key
        slot = (id(route), scope["method"])
        cached = self._route_prefixes.get(slot)
        if cached is None or cached[0] is not route:
            if len(self._route_prefixes) > 4096:  # routes rebuilt many times: start over
                self._route_prefixes.clear()
            cached = self._route_prefixes[slot] = (route, self._route_prefix(scope))
        return cached[1] + key

    def _route_prefix(self, scope: Scope) -> str:
        path = route_template(scope) or "*"
        if len(path) > 1 and path[-1] == "/":
            path = path[:-1]  # /items and /items/ (OptionalSlashRouter's twin) are one route
        return f"{self.name}:{scope['method']} {path}:"

    def header_fields(self, result: GCRAResult) -> dict[str, str]:
        """The ``ratelimit-policy`` and ``ratelimit`` fields for ``result``.

        Names in lower case, as HTTP/2 sends them (field names are case-insensitive).
        """
        items, remaining, reset = self._items, result.remaining, result.reset
        if len(items) == 1:  # the usual case, without the join
            state = f"{items[0]};r={remaining[0]};t={_whole(reset[0])}"
        else:
            state = ", ".join(
                f"{item};r={left};t={_whole(wait)}"
                for item, left, wait in zip(items, remaining, reset, strict=True)
            )
        return {"ratelimit-policy": self._policy, "ratelimit": state}

    async def take(self, key: str, *, cost: int | None = None) -> GCRAResult | None:
        """Take ``cost`` units from ``key``'s bucket (a full store key, without route).

        For code that limits something other than a request (a login attempt, a job).
        A negative ``cost`` gives units back.

        Returns:
            The store's answer, or None if the store failed and ``on_error="allow"``.

        Raises:
            ServiceUnavailable: If the store failed and ``on_error="deny"``.
        """
        try:
            return await self._gcra(key, self.windows, self.cost if cost is None else cost)
        except StoreError as error:
            self._log_store_error(error)
            if self.on_error == "deny":
                raise ServiceUnavailable(UNAVAILABLE) from error
            return None

    async def check(self, request: Request) -> dict[str, str] | None:
        """Spend ``request``'s units; the header fields to send, or None if not limited.

        Raises:
            TooManyRequests: 429 with ``Retry-After`` and the fields, if over the limit.
            ServiceUnavailable: If the store failed and ``on_error="deny"``.
        """
        key = await _resolve(self.key, request)
        if key is None:
            return None
        try:
            result = await self.take(self._bucket(request, key))
        except ServiceUnavailable as error:
            raise _refusal(request, error) from error.__cause__
        if result is None:
            return None
        fields = self.header_fields(result) if self.headers else {}
        if not result.allowed:
            raise self._too_many(request, result, fields)
        return fields

    async def __call__(self, request: Request, response: Response) -> None:
        """The dependency: checks the limit and puts its fields on the answer.

        `check` inlined, with the bucket and the fields of one window worked out in place
        (this runs on every request of a limited route, and each call costs).
        """
        key = self.key(request)
        if type(key) is not str:
            key = await _resolve_found(key)
            if key is None:
                return
        scope = request.scope
        if self.per_route:
            route = matched_route(scope)  # the route's bucket prefix, known (see _bucket)
            cached = self._route_prefixes.get((id(route), scope["method"]))
            if cached is not None and cached[0] is route:
                bucket = cached[1] + key
            else:
                bucket = self._bucket(request, key)
        else:
            bucket = self._shared_prefix + key
        try:
            gcra_now = self._gcra_now
            if gcra_now is not None:
                result = gcra_now(bucket, self.windows, self.cost)
            else:
                result = await self._gcra(bucket, self.windows, self.cost)
        except StoreError as error:
            self._log_store_error(error)
            if self.on_error == "deny":
                raise _refusal(request, ServiceUnavailable(UNAVAILABLE)) from error
            return
        if not self.headers:
            if not result.allowed:
                raise self._too_many(request, result, {})
            return
        allowed, remaining, reset, _ = result
        if self._one:
            wait = reset[0]
            state = f"{self._items[0]};r={remaining[0]};t={math.ceil(wait - 1e-9)}"
            fields = {"ratelimit-policy": self._policy, "ratelimit": state}
        else:
            fields = self.header_fields(result)
        if not allowed:
            raise self._too_many(request, result, fields)
        pending = scope.get(RESPONSE_HEADERS)
        if pending is not None and "ratelimit-policy" not in pending:
            pending.update(fields)  # the usual case: the first limit of this request
            return
        earlier = (pending or scope.get(_SENT_FIELDS) or {}).get("ratelimit-policy")
        if earlier and not self._warned_clash and f"{self._items[0]};" in earlier:
            self._warned_clash = True
            logger.warning(
                "Two rate limits named %r guard %s %s: their RateLimit fields share item "
                "names and clients cannot tell them apart; give each a name=.",
                self.name,
                escape_for_log(request.method),
                escape_for_log(route_template(scope) or request.url.path),
            )
        if add_response_headers(scope, fields):
            return
        # No fastkit middleware to send them: FastAPI's Response parameter carries them on
        # the answers it serializes, and the error handlers on errors.
        _merge_fields(response.headers, fields)
        sent = {name: response.headers[name] for name in fields}
        scope[_SENT_FIELDS] = sent
        add_error_headers(request, sent)

    def _too_many(self, request: Request, result: GCRAResult, fields: dict[str, str]) -> Exception:
        """The 429 for a refused ``result``, with earlier limits' fields when they need us."""
        # Earlier limits' fields go out too: with fastkit's middleware they are pending
        # there; without it, this limit's items join theirs (the error's headers win).
        sent = dict(request.scope.get(_SENT_FIELDS) or {})
        _merge_fields(sent, fields)
        return _refusal(request, _rate_limited(result, sent, self.name))

    def _log_store_error(self, error: StoreError) -> None:
        now = time.monotonic()
        if now - self._last_error_log < _ERROR_LOG_EVERY:
            self._errors_unlogged += 1
            return
        unlogged = self._errors_unlogged
        also = f" ({unlogged} more since the last report)" if unlogged else ""
        self._last_error_log, self._errors_unlogged = now, 0
        verdict = "let through" if self.on_error == "allow" else "answered 503"
        logger.error(
            "Rate limit %r (%s): store unreachable, requests %s%s: %s",
            self.name,
            self.rate,
            verdict,
            also,
            error,
        )

    def _openapi_responses(self) -> dict[int, dict[str, Any]]:
        rate = "; ".join(f"{w.limit} per {_period_text(w.period)}" for w in self.windows)
        integer = {"type": "integer"}
        responses: dict[int, dict[str, Any]] = {
            429: {
                "description": f"Rate limited ({rate}); retry after `Retry-After` seconds",
                "headers": {
                    "Retry-After": {"description": "Seconds to wait", "schema": integer},
                    "RateLimit-Policy": {
                        "description": "The limits (draft-ietf-httpapi-ratelimit-headers)",
                        "schema": {"type": "string"},
                    },
                    "RateLimit": {
                        "description": "Units left and seconds until the next one, per limit",
                        "schema": {"type": "string"},
                    },
                },
            }
        }
        if self.on_error == "deny":
            responses[503] = {"description": "Rate limit store unavailable; retry later"}
        return responses


def _rate_limited(
    result: GCRAResult, fields: Mapping[str, str], name: str, *, message: str = RATE_LIMITED
) -> TooManyRequests:
    """The 429 for a refused ``result``: ``Retry-After`` (whole seconds, at least 1) beside
    ``fields``, and ``message`` saying how long to wait. Counted for `fastkit.metrics` under
    the limit's ``name``."""
    record("ratelimit_refused", name)
    seconds = max(1, _whole(result.retry_after))
    return TooManyRequests(
        message.format(seconds=seconds), headers={**fields, "Retry-After": str(seconds)}
    )


def _whole(seconds: float) -> int:
    """Whole seconds, rounded up, ignoring float noise (1.0000000000000009 is 1)."""
    return math.ceil(seconds - 1e-9)


def _seconds(period: float) -> int:
    return max(1, round(period))


def _period_text(period: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if period >= size and period % size == 0:
            count = int(period // size)
            return unit if count == 1 else f"{count} {unit}s"
    return "second" if period == 1 else f"{period:g} seconds"


def _merge_fields(headers: Any, fields: Mapping[str, str]) -> None:
    """Add ``fields`` to ``headers``, appending list items when a limit already set them."""
    for name, value in fields.items():
        existing = headers.get(name)
        headers[name] = value if existing is None else f"{existing}, {value}"


# --- middleware -------------------------------------------------------------------------


class RateLimitMiddleware:
    """One `RateLimit` for every HTTP request, ahead of routing (pure ASGI).

    For a global budget per client that holds before any route or dependency runs (and
    so also guards 404s and bad bodies). Refusals are answered in the app's error style
    with the same fields as the dependency; websocket connections pass through.

    Args:
        app: The ASGI app to wrap.
        limit: The `RateLimit` to apply (``per_route`` does not apply here: one budget).
        exempt: Paths never limited (health checks, say).

    Example:
        ```python
        app.add_middleware(RateLimitMiddleware, limit=RateLimit("100/second", store=store))
        ```
    """

    def __init__(self, app: ASGIApp, *, limit: RateLimit, exempt: Sequence[str] = ()) -> None:
        if not isinstance(limit, RateLimit):
            raise TypeError("RateLimitMiddleware needs limit=RateLimit('...').")
        self.app = app
        self.limit = limit
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        limit = self.limit
        try:
            key = await _resolve(limit.key, request)
            fields: dict[str, str] | None = None
            if key is not None:
                result = await limit.take(f"{limit.name}:*:{key}")
                if result is not None:
                    fields = limit.header_fields(result) if limit.headers else None
                    if not result.allowed:
                        raise _rate_limited(result, fields or {}, limit.name)
        except (TooManyRequests, ServiceUnavailable) as refused:
            await render_error(request, refused)(scope, receive, send)
            return
        if not fields:
            await self.app(scope, receive, send)
            return
        raw = [(name.lower().encode(), value.encode()) for name, value in fields.items()]

        async def send_with_fields(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *raw]
            await send(message)

        await self.app(scope, receive, send_with_fields)


# --- login throttling -------------------------------------------------------------------


# Characters that show as nothing: "al\u200bice" must count as "alice".
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u180e\u200b\u200c\u200d\u2060\ufeff"))


def _username_key(username: str) -> str:
    """One budget per username however it is spelled: NFKC (a fullwidth A is an A),
    invisible characters dropped, case folded, surrounding spaces stripped.

    Coarser than most ``authenticate`` comparisons on purpose: spellings that one user
    table treats as one name never get separate budgets.
    """
    return unicodedata.normalize("NFKC", username).translate(_INVISIBLE).strip().casefold()


class LoginThrottle:
    """Failed logins per username and per client, as `auth_router` counts them.

    Every password attempt takes a unit from the username's and the client's budgets
    *before* the password is checked, so a thousand concurrent guesses cannot all pass
    a check made before any of them failed; a successful login gives both back. Over
    either budget the attempt is answered 429 with ``Retry-After``, without checking the
    password. Usernames are compared case-insensitively and stored hashed.

    A per-username limit also lets anyone slow down one user's logins by failing them on
    purpose; the defaults are generous (10 a minute, 100 an hour) for that reason.

    Args:
        per_username: Failed attempts one username may have (None: no such limit).
        per_client: Failed attempts one client may have (None: no such limit).
        client: The client key (`client_ip()` by default; set ``trusted_proxies`` there).
        store: Where the counts live (a new `MemoryStore` by default; share your
            `RedisStore` with several workers).
        on_error: If the store fails: ``"deny"`` the attempt with 503 (the default: an
            outage must not open the door to unthrottled guessing, as revocation checks
            fail closed too) or ``"allow"`` it unthrottled.

    Raises:
        ValueError: For an unreadable rate or if both limits are None.
    """

    def __init__(
        self,
        per_username: str | None = "10/minute;100/hour",
        per_client: str | None = "100/minute;1000/hour",
        *,
        client: KeyFunc | None = None,
        store: Store | None = None,
        on_error: OnError = "deny",
    ) -> None:
        if per_username is None and per_client is None:
            raise ValueError(
                "LoginThrottle needs per_username or per_client; to turn login throttling "
                "off, pass auth_router(login_throttle=None)."
            )
        shared = store if store is not None else MemoryStore()
        self.client: KeyFunc = client if client is not None else client_ip()
        self.per_username = (
            RateLimit(per_username, store=shared, name="login-user", on_error=on_error)
            if per_username is not None
            else None
        )
        self.per_client = (
            RateLimit(per_client, store=shared, name="login-client", on_error=on_error)
            if per_client is not None
            else None
        )

    async def attempt(self, request: Request, username: str) -> list[tuple[RateLimit, str]]:
        """Count one attempt; the units taken (give them back with `succeeded`).

        Raises:
            TooManyRequests: If the username or the client is over its budget.
            ServiceUnavailable: If the store failed and ``on_error="deny"``.
        """
        taken: list[tuple[RateLimit, str]] = []
        checks: list[tuple[RateLimit, str]] = []
        if self.per_client is not None:
            client = await _resolve(self.client, request)
            if client is not None:
                checks.append((self.per_client, f"login-client:{client}"))
        if self.per_username is not None:
            digest = hashlib.sha256(_username_key(username).encode()).hexdigest()[:32]
            checks.append((self.per_username, f"login-user:{digest}"))
        for limit, key in checks:
            result = await limit.take(key)
            if result is None:
                continue
            if not result.allowed:
                await self.succeeded(taken)  # this attempt did not happen
                raise _rate_limited(result, {}, limit.name, message=FAILED_LOGINS)
            taken.append((limit, key))
        return taken

    async def succeeded(self, taken: Sequence[tuple[RateLimit, str]]) -> None:
        """Give back what `attempt` took: the login succeeded (or never checked a password)."""
        for limit, key in taken:
            await limit.take(key, cost=-1)
