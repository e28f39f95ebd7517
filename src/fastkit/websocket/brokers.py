"""Fan-out between worker processes: in memory for one process, Redis pub/sub for many."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

from fastkit._compat import require

__all__ = ["Broker", "Deliver", "MemoryBroker", "RedisBroker"]

logger = logging.getLogger("fastkit.websocket")

Deliver = Callable[[dict[str, Any]], Awaitable[None]]


@runtime_checkable
class Broker(Protocol):
    """Carries the manager's JSON messages to every process's manager (itself included)."""

    async def start(self, deliver: Deliver) -> None:
        """Begin delivering every published message to ``deliver``."""
        ...

    async def publish(self, message: dict[str, Any]) -> None:
        """Send ``message`` to every subscribed process; never raises for an outage."""
        ...

    async def stop(self) -> None:
        """Stop delivering and release connections."""
        ...


class MemoryBroker:
    """One process: a published message is delivered right away to this process only."""

    def __init__(self) -> None:
        self._deliver: Deliver | None = None

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver

    async def publish(self, message: dict[str, Any]) -> None:
        if self._deliver is not None:
            await self._deliver(message)
            # Let the writer tasks run: a tight loop of broadcasts must not fill the queues
            # of clients that read fine.
            await asyncio.sleep(0)

    async def stop(self) -> None:
        self._deliver = None


class RedisBroker:
    """Redis pub/sub: every worker delivers each message to its own local connections.

    Messages are signed (HMAC-SHA256 with a key derived from ``secret``, which every
    worker of the app shares): anyone who can publish on the channel without the secret
    cannot reach your clients; such a message is dropped and logged
    (``fastkit.websocket`` at WARNING, at most once per 10 s with a count).

    Delivery is at-most-once: while Redis is unreachable, published messages are dropped
    and logged (``fastkit.websocket`` at WARNING); the subscriber reconnects with
    exponential backoff (0.1 s up to ``max_backoff``) and resubscribes. Nothing raises into
    your handlers.

    Args:
        url: ``redis://host:6379/0``.
        secret: At least 32 bytes shared by the workers (your app's secret key will do:
            the signing key is derived from it for this use only).
        client: A ready ``redis.asyncio.Redis`` instead of ``url``.
        channel: The pub/sub channel shared by the workers of one app.
        max_backoff: Longest wait between reconnection attempts, in seconds.
        publish_timeout: Seconds a publish may take before the message is dropped.

    Raises:
        ValueError: If neither or both of ``url`` and ``client`` are given, or ``secret`` is
            shorter than 32 bytes.
        MissingDependencyError: Without the ``redis`` extra.

    Example:
        ```python
        broker = RedisBroker(os.environ["REDIS_URL"], secret=os.environ["SECRET_KEY"])
        ```
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        secret: str | bytes,
        client: Any = None,
        channel: str = "fastkit:websocket",
        max_backoff: float = 5.0,
        publish_timeout: float = 2.0,
    ) -> None:
        if (url is None) == (client is None):
            raise ValueError("Give either url= or client= to RedisBroker.")
        raw = secret.encode() if isinstance(secret, str) else secret
        if not isinstance(raw, bytes) or len(raw) < 32:
            raise ValueError(
                "RedisBroker needs secret= of at least 32 bytes, the same in every worker; "
                "generate one with secrets.token_hex(32)."
            )
        # A key of its own: the app's secret may sign tokens too, and must not sign these.
        self._key = hmac.new(raw, b"fastkit.websocket.RedisBroker", hashlib.sha256).digest()
        self._refused = 0  # messages dropped for a bad signature since the last warning
        self._refused_logged = -math.inf
        redis = require("redis.asyncio", "redis")
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._publish_errors = (*self._errors, TimeoutError, asyncio.TimeoutError)
        self._owns_client = client is None
        self.client = client if client is not None else redis.from_url(url)
        self.channel = channel
        self.max_backoff = max_backoff
        self.publish_timeout = publish_timeout
        self._task: asyncio.Task[None] | None = None
        self._deliver: Deliver | None = None
        self.subscribed = asyncio.Event()

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="fastkit-redis-broker")
        # Wait (briefly) for the first subscription so early broadcasts are not missed.
        try:
            await asyncio.wait_for(self.subscribed.wait(), 5.0)
        except (TimeoutError, asyncio.TimeoutError):
            logger.warning("Redis not subscribed after 5s; retrying in the background")

    async def publish(self, message: dict[str, Any]) -> None:
        data = self._sign(json.dumps(message, separators=(",", ":")).encode())
        try:
            # Bounded: a hung Redis must not hold up broadcast() either.
            await asyncio.wait_for(self.client.publish(self.channel, data), self.publish_timeout)
        except self._publish_errors as error:
            logger.warning("Redis unreachable: websocket message dropped (%r)", error)

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.subscribed.set()
                backoff = 0.1
                async for item in pubsub.listen():
                    await self._handle(item)
                self.subscribed.clear()  # ended without an error: resubscribe, not in a hot loop
                await asyncio.sleep(backoff)
            except asyncio.CancelledError:
                raise
            except self._errors as error:
                self.subscribed.clear()
                logger.warning("Redis subscription lost (%r); retrying in %.1fs", error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def ping(self) -> bool:
        """True if this worker is subscribed and Redis answers ``PING``: it hears the other
        workers' messages. For `fastkit.health.health_router`'s checks; never raises."""
        if not self.subscribed.is_set():
            return False
        try:
            await self.client.ping()
        except Exception as error:
            logger.warning("Redis ping failed: %r", error)
            return False
        return True

    def _sign(self, data: bytes) -> bytes:
        """``<hex HMAC-SHA256>.<data>``, what goes on the channel."""
        return hmac.new(self._key, data, hashlib.sha256).hexdigest().encode() + b"." + data

    def _verified(self, raw: Any) -> bytes | None:
        """The data of a signed message from the channel; None (and counted) if unsigned."""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "replace")
        if isinstance(raw, bytes):
            signature, dot, data = raw.partition(b".")
            expected = hmac.new(self._key, data, hashlib.sha256).hexdigest().encode()
            if dot and hmac.compare_digest(signature, expected):
                return data
        self._refused += 1
        now = time.monotonic()
        if now - self._refused_logged >= 10.0:
            logger.warning(
                "Dropped %d websocket message(s) on %s without a valid signature: something "
                "other than this app's workers (or a worker with another secret) publishes there",
                self._refused,
                self.channel,
            )
            self._refused, self._refused_logged = 0, now
        return None

    async def _handle(self, item: dict[str, Any]) -> None:
        if item.get("type") != "message" or self._deliver is None:
            return
        data = self._verified(item.get("data"))
        if data is None:
            return
        try:
            message = json.loads(data)
        except (ValueError, TypeError):
            logger.warning("Ignoring a malformed message on %s", self.channel)
            return
        if isinstance(message, dict):
            try:
                await self._deliver(message)
            except Exception:  # one bad delivery must not end the subscription
                logger.exception("Websocket delivery failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        self.subscribed.clear()
        if self._owns_client:  # a client passed in is the caller's to close
            with contextlib.suppress(Exception):
                await self.client.aclose()
