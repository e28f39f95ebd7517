"""Conditional requests, response caching and idempotency keys, on the shared store.

- **ETags** (RFC 9110): `CachingMiddleware` (``setup(app, caching=True)``) gives GET answers
  with a JSON body a strong ETag, the hash of the body (the same in every worker, after
  every restart), and answers ``If-None-Match`` with 304. For writes, `check_if_match`
  answers 412 when the client's ``If-Match`` names an older version (`etag_of` makes an
  ETag from what the handler knows: a version column, ``updated_at``).
- **Caching**: ``Depends(ResponseCache(ttl=30, tags=["todos"]))`` on a GET route serves the
  stored answer while it is fresh. The key is the route, the query and the caller (the
  ``Authorization`` and ``Cookie`` headers, hashed): one user's answer never reaches
  another. ``await cache.invalidate("todos")`` after writes. One computation per key at a
  time.
- **Idempotency keys** (draft-ietf-httpapi-idempotency-key-header):
  ``Depends(Idempotency())`` on POST/PATCH routes: a retry with the same ``Idempotency-Key``
  and body gets the first answer again (``Idempotent-Replayed: true``) without running the
  handler; the same key with another body is 422; a retry while the first still runs is
  409. Keys are scoped per caller.

The dependencies need `CachingMiddleware`, which stores answers as they go out; they raise
`RuntimeError` at the first request without it.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastkit.errors import AppError, Conflict, UnprocessableEntity
from fastkit.errors.exceptions import BadRequest
from fastkit.stores import MemoryStore, Store

__all__ = [
    "CachingMiddleware",
    "Idempotency",
    "Identity",
    "PreconditionFailed",
    "ResponseCache",
    "StoredResponse",
    "cache",
    "check_if_match",
    "etag_of",
    "install_caching",
]

_LAYER = "fastkit.caching"  # scope key: the middleware runs; what to store on the way out
_STORE = "fastkit.caching.store"
_MAX_BODY = 1024 * 1024  # answers above this are neither hashed for an ETag nor stored
_JSON_TYPES = (b"application/json", b"application/problem+json", b"application/health+json")
_KEY_CHARS = frozenset(range(0x21, 0x7F))  # visible ASCII
# ETags and 304s: GET, and HEAD where a route allows it (Starlette sends a HEAD's body too;
# the server drops it), so both get the same tag.
_READS = ("GET", "HEAD")


class PreconditionFailed(AppError):
    """412: ``If-Match`` names a version of the resource that is no longer current."""

    status_code = 412
    message = "Precondition Failed"


class StoredResponse(Exception):  # raised to answer, not an error
    """Raised by `ResponseCache` and `Idempotency` to answer with a stored response; the
    handler `install_caching` registers sends it."""

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.headers = headers
        self.body = body


def etag_of(*parts: object) -> str:
    """A strong, quoted ETag from what identifies a version: ``etag_of(todo.id, todo.version)``.

    The same parts give the same ETag in every process (a cryptographic hash of their JSON,
    not Python's per-process ``hash()``).
    """
    raw = json.dumps(parts, default=str, separators=(",", ":"), sort_keys=True).encode()
    return f'"{hashlib.blake2b(raw, digest_size=16).hexdigest()}"'


def _body_etag(body: bytes) -> bytes:
    return b'"' + hashlib.blake2b(body, digest_size=16).hexdigest().encode() + b'"'


def _tags_in(header: bytes | str) -> list[tuple[bool, bytes]]:
    """The entity tags of an ``If-Match`` / ``If-None-Match`` value: (weak, opaque tag)."""
    raw = header.encode("latin-1") if isinstance(header, str) else header
    tags = []
    for part in raw.split(b","):
        part = part.strip()
        weak = part.startswith(b"W/")
        tags.append((weak, part[2:] if weak else part))
    return tags


def _none_match(header: bytes, etag: bytes) -> bool:
    """``If-None-Match`` (weak comparison): True when the client's copy is current."""
    opaque = etag[2:] if etag.startswith(b"W/") else etag
    return any(tag == b"*" or tag == opaque for _, tag in _tags_in(header))


def check_if_match(request: Request, current: str | None) -> None:
    """Refuse a write (412) whose ``If-Match`` does not name ``current``, the ETag of the
    resource as it is now (None: it does not exist). No ``If-Match``: nothing to check.

    Strong comparison (RFC 9110 13.1.1): a weak tag never matches; ``*`` matches any
    existing version.

    Raises:
        PreconditionFailed: If the header names another version, or ``*`` and there is none.
    """
    header = request.headers.get("if-match")
    if header is None:
        return
    for weak, tag in _tags_in(header):
        if tag == b"*" and current is not None:
            return
        if not weak and current is not None and tag == current.encode("latin-1"):
            return
    raise PreconditionFailed(
        "The resource changed since you read it; read it again and retry with its new ETag."
    )


def _caller(request: Request) -> str:
    """Who is asking, as a hash of the headers that carry credentials (``Authorization``,
    ``Cookie``, ``X-API-Key``): one caller's cached or replayed answer never reaches another.
    An app that authenticates otherwise (a query token, mTLS) passes ``identity=``."""
    digest = hashlib.blake2b(digest_size=16)
    for name in (b"authorization", b"cookie", b"x-api-key"):
        for key, value in request.scope["headers"]:
            if key == name:
                digest.update(name + b"=" + value + b"\n")
    return digest.hexdigest()


Identity = Callable[[Request], "Awaitable[str | None] | str | None"]
"""Who is asking, for cache and idempotency scopes: ``fastkit.ratelimit.jwt_subject(auth)``
(the token's subject), or a function of yours; None falls back to the credentials."""


async def _who(identity: Identity | None, request: Request) -> str:
    if identity is not None:
        found = identity(request)
        if inspect.isawaitable(found):
            found = await found
        if found is not None:
            return f"id:{found}"
    return _caller(request)


def _layer(request: Request) -> dict[str, Any]:
    layer = request.scope.get(_LAYER)
    if layer is None:
        raise RuntimeError(
            "ResponseCache and Idempotency need CachingMiddleware; use "
            "setup(app, caching=True) or install_caching(app)."
        )
    return layer  # type: ignore[no-any-return]


def _encode(status: int, headers: list[tuple[str, str]], body: bytes, **extra: Any) -> bytes:
    head = json.dumps({"status": status, "headers": headers, **extra}).encode()
    return len(head).to_bytes(4, "big") + head + body


def _decode(raw: bytes) -> tuple[dict[str, Any], bytes]:
    size = int.from_bytes(raw[:4], "big")
    return json.loads(raw[4 : 4 + size]), raw[4 + size :]


# --- response caching ----------------------------------------------------------------------


class ResponseCache:
    """``Depends(ResponseCache(ttl=30))`` on a GET route: serve its stored answer while fresh.

    Args:
        ttl: Seconds an answer is served from the store.
        tags: Names to invalidate the answers by (`invalidate`); every answer cached under a
            tag is dropped at once, in every worker.
        store: Where answers live (a `RedisStore` to share them between workers; a new
            `MemoryStore` by default).
        shared: The answer is the same for every caller (public data): one entry for all,
            ``Cache-Control: public``. By default each caller has its own entries.
        lock_timeout: Seconds other requests for the same key wait for the one computing it
            before computing it themselves.
        identity: Who the caller is (see `Identity`), e.g. ``jwt_subject(auth)``: a user's
            entries then survive a token refresh. By default, a hash of the
            ``Authorization`` and ``Cookie`` headers.

    Only 200 answers of GET requests are stored, with their headers (but ``Set-Cookie``);
    the answer says ``X-Cache: hit`` or ``miss``.

    Raises:
        ValueError: If ``ttl`` or ``lock_timeout`` is not positive, or a tag is empty.
    """

    def __init__(
        self,
        ttl: float = 60.0,
        *,
        tags: Sequence[str] = (),
        store: Store | None = None,
        shared: bool = False,
        lock_timeout: float = 5.0,
        identity: Identity | None = None,
    ) -> None:
        if not ttl > 0 or not lock_timeout > 0:
            raise ValueError("ttl and lock_timeout must be positive numbers of seconds.")
        if isinstance(tags, str) or not all(isinstance(t, str) and t for t in tags):
            raise ValueError("tags must be a list of non-empty names, e.g. ['todos'].")
        self.ttl = ttl
        self.tags = tuple(tags)
        self.store: Store = (store if store is not None else MemoryStore()).namespace("cache")
        self.shared = shared
        self.lock_timeout = lock_timeout
        self.identity = identity

    async def invalidate(self, *tags: str) -> None:
        """Drop every answer cached under any of ``tags`` (all of this cache's when none)."""
        for tag in tags or self.tags:
            await self.store.incr(f"tag:{tag}")

    async def _key(self, request: Request) -> str:
        versions = [await self.store.get(f"tag:{tag}") or b"0" for tag in self.tags]
        digest = hashlib.blake2b(digest_size=20)
        parts = [
            request.url.path,  # the path itself: /items/1 and /items/2 are two answers
            "&".join(sorted(request.url.query.split("&"))),
            "*" if self.shared else await _who(self.identity, request),
            ",".join(f"{t}={v.decode()}" for t, v in zip(self.tags, versions, strict=True)),
        ]
        digest.update("\n".join(parts).encode())
        return f"entry:{digest.hexdigest()}"

    async def __call__(self, request: Request) -> None:
        layer = _layer(request)
        if request.method != "GET":
            return
        key = await self._key(request)
        stored = await self.store.get(key)
        lock = f"lock:{key}"
        token = os.urandom(8)  # this request's claim on the lock: only it releases it
        # One computation per key: the first takes the lock; the others wait for its answer,
        # or for the lock to go (the first answered something not stored: one of them then
        # takes it), at most lock_timeout, then compute without it.
        owner = False
        deadline = time.monotonic() + self.lock_timeout
        while stored is None:
            if await self.store.set(lock, token, ttl=self.lock_timeout, if_absent=True):
                owner = True
                break
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.02)
            stored = await self.store.get(key)
        if stored is not None:
            meta, body = _decode(stored)
            headers = [(k, v) for k, v in meta["headers"]] + [("x-cache", "hit")]
            raise StoredResponse(meta["status"], headers, body)
        visibility = "public" if self.shared else "private"
        layer["cache"] = (self, key, lock, token if owner else None)
        layer["headers"] = [
            ("cache-control", f"{visibility}, max-age={int(self.ttl)}"),
            ("x-cache", "miss"),
            *(() if self.shared else (("vary", "Authorization, Cookie"),)),
        ]

    async def _save(
        self,
        key: str,
        lock: str,
        token: bytes | None,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> None:
        try:
            if status == 200:
                kept = [(k, v) for k, v in headers if k not in ("set-cookie", "x-cache", "date")]
                await self.store.set(key, _encode(status, kept, body), ttl=self.ttl)
        finally:
            await self._release(lock, token)

    async def _release(self, lock: str, token: bytes | None) -> None:
        """Free the lock if this request holds it (not one another request took since)."""
        if token is not None and await self.store.get(lock) == token:
            await self.store.delete(lock)


def cache(
    ttl: float = 60.0,
    *,
    tags: Sequence[str] = (),
    store: Store | None = None,
    shared: bool = False,
    identity: Identity | None = None,
) -> ResponseCache:
    """``Depends(cache(ttl=30, tags=["todos"]))``: a `ResponseCache` for one route or router.

    Make it once, at import (each call has its own entries), and keep it to call
    ``invalidate`` on after writes.
    """
    return ResponseCache(ttl, tags=tags, store=store, shared=shared, identity=identity)


# --- idempotency keys ----------------------------------------------------------------------


class Idempotency:
    """``Depends(Idempotency())`` on a POST or PATCH route: run it once per ``Idempotency-Key``.

    - The first request with a key runs; its answer (status, headers, body) is kept for
      ``ttl`` seconds with a fingerprint of the request (method, route, body).
    - A retry with the same key and body gets that answer again, marked
      ``Idempotent-Replayed: true``; the handler does not run.
    - The same key with another body: 422. A retry while the first still runs: 409 with
      ``Retry-After``.
    - An answer of 500 or more is not kept: the key is freed, and a retry runs again (the
      first attempt may have failed before or after its work; make the handler's writes
      safe to repeat, or let the database refuse a duplicate).
    - Keys are scoped per caller (the ``Authorization`` and ``Cookie`` headers): two users
      may use the same key.

    Args:
        ttl: Seconds a key's answer is kept (a day by default).
        store: Where keys live (`RedisStore` for several workers; a new `MemoryStore` by
            default).
        required: Answer 400 to requests without the header, instead of running them.
        running_timeout: Seconds a key stays reserved for a request that never finishes
            (its worker died) before a retry may run.
        identity: Who the caller is (see `Identity`), e.g. ``jwt_subject(auth)``: keys are
            then per user, across token refreshes. By default, a hash of the
            ``Authorization`` and ``Cookie`` headers.

    Raises:
        ValueError: If ``ttl`` or ``running_timeout`` is not positive.
    """

    header = "Idempotency-Key"

    def __init__(
        self,
        *,
        ttl: float = 86400.0,
        store: Store | None = None,
        required: bool = False,
        running_timeout: float = 60.0,
        identity: Identity | None = None,
    ) -> None:
        if not ttl > 0 or not running_timeout > 0:
            raise ValueError("ttl and running_timeout must be positive numbers of seconds.")
        self.ttl = ttl
        self.store: Store = (store if store is not None else MemoryStore()).namespace("idempotency")
        self.required = required
        self.running_timeout = running_timeout
        self.identity = identity

    async def __call__(self, request: Request) -> None:
        layer = _layer(request)
        value = request.headers.get(self.header)
        if value is None:
            if self.required:
                raise BadRequest(f"Send an {self.header} header (1 to 255 visible characters).")
            return
        raw = value.encode("latin-1", "replace")
        if not 1 <= len(raw) <= 255 or not set(raw) <= _KEY_CHARS:
            raise BadRequest(f"{self.header} must be 1 to 255 visible ASCII characters.")
        # The path itself (PATCH /items/1 and /items/2 are two operations), per caller.
        route = request.url.path
        digest = hashlib.blake2b(digest_size=20)
        digest.update(f"{await _who(self.identity, request)}\n{route}\n".encode() + raw)
        key = f"key:{digest.hexdigest()}"
        body = await request.body()
        fingerprint = hashlib.blake2b(
            request.method.encode() + b"\n" + route.encode() + b"\n" + body, digest_size=20
        ).hexdigest()
        owner = os.urandom(8).hex()  # this request's reservation: only it saves or frees it
        running = _encode(0, [], b"", fingerprint=fingerprint, owner=owner)
        if await self.store.set(key, running, ttl=self.running_timeout, if_absent=True):
            layer["idempotency"] = (self, key, fingerprint, owner)
            return
        stored = await self.store.get(key)
        if stored is None:  # expired meanwhile: a retry of a request that never finished
            raise Conflict(
                f"A request with this {self.header} is still being processed; retry later.",
                headers={"Retry-After": "1"},
            )
        meta, content = _decode(stored)
        if meta.get("fingerprint") != fingerprint:
            raise UnprocessableEntity(
                f"This {self.header} was used with another request; use a new key."
            )
        if meta["status"] == 0:
            raise Conflict(
                f"A request with this {self.header} is still being processed; retry later.",
                headers={"Retry-After": "1"},
            )
        headers = [(k, v) for k, v in meta["headers"]] + [("idempotent-replayed", "true")]
        raise StoredResponse(meta["status"], headers, content)

    async def _owns(self, key: str, owner: str) -> bool:
        """Whether ``key`` still holds this request's reservation (it may have expired past
        ``running_timeout`` and been taken by a retry)."""
        stored = await self.store.get(key)
        return stored is not None and _decode(stored)[0].get("owner") == owner

    async def _save(
        self,
        key: str,
        fingerprint: str,
        owner: str,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> None:
        if not await self._owns(key, owner):
            return  # expired and taken by a retry: its answer is the one to keep
        if status >= 500:
            await self.store.delete(key)  # not kept: a retry runs again
            return
        kept = [(k, v) for k, v in headers if k not in ("set-cookie", "date")]
        await self.store.set(
            key, _encode(status, kept, body, fingerprint=fingerprint), ttl=self.ttl
        )


# --- the layer -----------------------------------------------------------------------------


class CachingMiddleware:
    """ETags for GET answers, and the storing end of `ResponseCache` and `Idempotency`.

    Pure ASGI. For a GET answered 200 with a JSON body (up to 1 MiB) it adds a strong
    ETag, the hash of the body, unless the app set one; a request whose ``If-None-Match``
    names it is answered 304 without a body (the ETag, ``Cache-Control`` and ``Vary``
    kept). Answers the dependencies asked to store are stored as they go out.

    Args:
        app: The ASGI app.
        etags: Add ETags and answer ``If-None-Match``.
    """

    def __init__(self, app: ASGIApp, *, etags: bool = True) -> None:
        self.app = app
        self.etags = etags

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        layer: dict[str, Any] = {}
        scope[_LAYER] = layer
        conditional = None
        if self.etags and scope["method"] in _READS:
            for key, value in scope["headers"]:
                if key == b"if-none-match":
                    conditional = value
                    break
        hold: Message | None = None  # the response start, held until the body is known
        chunks: list[bytes] = []
        size = 0

        async def send_wrapped(message: Message) -> None:
            nonlocal hold, size
            kind = message["type"]
            if kind == "http.response.start":
                if not self._wanted(scope, layer, message):
                    extra = layer.get("headers") if message["status"] == 200 else None
                    await send(_with(message, extra))
                    return
                hold = message
                return
            if kind != "http.response.body" or hold is None:
                await send(message)
                return
            more = message.get("more_body", False)
            if not more and not chunks and len(message.get("body", b"")) <= _MAX_BODY:
                # The usual answer: its whole body at once.
                start, hold = hold, None
                await self._finish(scope, layer, start, message.get("body", b""), conditional, send)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if more and size <= _MAX_BODY:
                return
            start, hold = hold, None
            body = b"".join(chunks)
            if more or size > _MAX_BODY:  # too large: out as it is, nothing stored
                await _abandon(layer)
                await send(_with(start, layer.get("headers") if start["status"] == 200 else None))
                await send({"type": "http.response.body", "body": body, "more_body": more})
                return
            await self._finish(scope, layer, start, body, conditional, send)

        try:
            await self.app(scope, receive, send_wrapped)
        except StoredResponse as stored:
            # No handler for it below (install_caching registers one): answer it here.
            response = await _answer_stored(Request(scope), stored)
            await response(scope, receive, send_wrapped)
        finally:
            await _abandon(layer)  # no answer went out through here (an exception): free it

    def _wanted(self, scope: Scope, layer: dict[str, Any], start: Message) -> bool:
        """Whether to hold this answer's start until its body is known."""
        if "cache" in layer or "idempotency" in layer:
            return True
        if not self.etags or scope["method"] not in _READS or start["status"] != 200:
            return False
        for key, value in start.get("headers", ()):
            if key == b"content-type":
                return value.split(b";")[0].strip().lower() in _JSON_TYPES
        return False

    async def _finish(
        self,
        scope: Scope,
        layer: dict[str, Any],
        start: Message,
        body: bytes,
        conditional: bytes | None,
        send: Send,
    ) -> None:
        status = start["status"]
        # One pass over the app's headers: the ETag it set, whether the body is JSON.
        headers = []
        etag = None
        is_json = False
        for name, value in start.get("headers", ()):
            if name == b"content-length":
                continue
            if name == b"etag":
                etag = value
            elif name == b"content-type":
                is_json = value.split(b";", 1)[0].strip().lower() in _JSON_TYPES
            headers.append((name, value))
        if etag is None and status == 200 and is_json and self.etags and scope["method"] in _READS:
            etag = _body_etag(body)
            headers.append((b"etag", etag))
        extra = layer.get("headers") if status == 200 else None
        if extra:
            headers = _merged(headers, extra)
        if "cache" in layer or "idempotency" in layer:
            text = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
            if "cache" in layer:
                cache, key, lock, token = layer.pop("cache")
                await cache._save(key, lock, token, status, text, body)
            if "idempotency" in layer:
                idempotency, key, fingerprint, owner = layer.pop("idempotency")
                await idempotency._save(key, fingerprint, owner, status, text, body)
        if (
            conditional is not None
            and etag is not None
            and status == 200
            and _none_match(conditional, etag)
        ):
            kept = (
                b"etag",
                b"cache-control",
                b"vary",
                b"expires",
                b"content-location",
                b"date",
            )
            headers = [(k, v) for k, v in headers if k in kept or k.startswith(b"x-")]
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        headers.append((b"content-length", b"%d" % len(body)))
        start["headers"] = headers
        await send(start)
        await send({"type": "http.response.body", "body": body})


async def _abandon(layer: dict[str, Any]) -> None:
    """Free what a dependency reserved when its answer cannot be stored: the cache's lock,
    and the idempotency key (a retry then runs again, as after a 5xx)."""
    if "cache" in layer:
        cache, _, lock, token = layer.pop("cache")
        await cache._release(lock, token)
    if "idempotency" in layer:
        idempotency, key, _, owner = layer.pop("idempotency")
        if await idempotency._owns(key, owner):
            await idempotency.store.delete(key)


def _merged(
    headers: list[tuple[bytes, bytes]], extra: Iterable[tuple[str, str]]
) -> list[tuple[bytes, bytes]]:
    """``headers`` with the cache's: the app's own win, but ``Vary`` lists both."""
    names = {k for k, _ in headers}
    for name, value in extra:
        key = name.encode()
        if key == b"vary" and key in names:
            headers = [
                (k, v + b", " + value.encode()) if k == b"vary" else (k, v) for k, v in headers
            ]
        elif key not in names:
            headers.append((key, value.encode()))
    return headers


def _with(start: Message, extra: Iterable[tuple[str, str]] | None) -> Message:
    if not extra:
        return start
    return {**start, "headers": _merged(list(start.get("headers", ())), extra)}


async def _answer_stored(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StoredResponse)
    response = Response(exc.body, status_code=exc.status)
    response.raw_headers = [
        (k.encode("latin-1"), v.encode("latin-1"))
        for k, v in exc.headers
        if k.lower() != "content-length"
    ] + [(b"content-length", str(len(exc.body)).encode())]
    return response


def install_caching(app: Any, *, etags: bool = True) -> None:
    """Add `CachingMiddleware` and the handler that answers stored responses.

    ``setup(app, caching=True)`` does this in its place in the stack; call it yourself for
    an app without ``setup``.
    """
    app.add_middleware(CachingMiddleware, etags=etags)
    app.add_exception_handler(StoredResponse, _answer_stored)
