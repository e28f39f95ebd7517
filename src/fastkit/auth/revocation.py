"""Revoked token ids: in memory for one process, in Redis for many workers."""

from __future__ import annotations

import heapq
import logging
import math
import time
from typing import Any, Protocol, runtime_checkable

from fastkit._compat import require
from fastkit.errors import ServiceUnavailable

__all__ = ["MemoryRevocationStore", "RedisRevocationStore", "RevocationStore"]

logger = logging.getLogger("fastkit.auth")

REVOCATION_UNAVAILABLE = "Token revocation check unavailable"


@runtime_checkable
class RevocationStore(Protocol):
    """Where revoked token ids (``jti``, or a refresh family) are kept until they expire."""

    async def revoke(self, jti: str, expires_at: int) -> bool:
        """Revoke ``jti`` until ``expires_at`` (Unix time); True if it was not revoked yet."""
        ...

    async def is_revoked(self, *ids: str) -> bool:
        """True if any of ``ids`` is revoked."""
        ...


class MemoryRevocationStore:
    """Revoked ids in this process's memory, each forgotten once its token has expired.

    Fine for one process (and tests); with several workers, use `RedisRevocationStore`.
    """

    def __init__(self) -> None:
        self._revoked: dict[str, int] = {}
        self._expiry: list[tuple[int, str]] = []

    def _purge(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            expires_at, jti = heapq.heappop(self._expiry)
            if self._revoked.get(jti) == expires_at:
                del self._revoked[jti]

    async def revoke(self, jti: str, expires_at: int) -> bool:
        now = time.time()
        self._purge(now)
        if expires_at <= now:
            return jti not in self._revoked  # expired tokens are refused anyway
        if jti in self._revoked:
            return False
        self._revoked[jti] = expires_at
        heapq.heappush(self._expiry, (expires_at, jti))
        return True

    async def is_revoked(self, *ids: str) -> bool:
        self._purge(time.time())
        return any(jti in self._revoked for jti in ids)

    def __len__(self) -> int:
        self._purge(time.time())
        return len(self._revoked)


class RedisRevocationStore:
    """Revoked ids in Redis (``SET key 1 NX EX ttl``), shared by every worker and machine.

    Checks **fail closed**: if Redis cannot be reached, `is_revoked` and `revoke` raise
    `ServiceUnavailable` (503) instead of letting a possibly revoked token through. A check
    whose pooled connection was dropped (a Redis restart, ``CLIENT KILL``) is tried once more
    on a new connection first; a revocation is not (a retried ``SET NX`` could misreport).

    Args:
        url: ``redis://host:6379/0`` (or ``rediss://``).
        client: A ready ``redis.asyncio.Redis`` client instead of ``url``.
        prefix: Key prefix.
        timeout: Socket timeout in seconds for clients made from ``url``.

    Raises:
        ValueError: If neither or both of ``url`` and ``client`` are given.
        MissingDependencyError: Without the ``redis`` extra.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        prefix: str = "fastkit:revoked:",
        timeout: float = 2.0,
    ) -> None:
        if (url is None) == (client is None):
            raise ValueError("Give either url= or client= to RedisRevocationStore.")
        redis = require("redis.asyncio", "redis")
        self._errors: tuple[type[BaseException], ...] = (
            redis.RedisError,
            OSError,
            TimeoutError,
        )
        self._dropped: type[BaseException] = redis.ConnectionError
        if client is None:
            client = redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self.client = client
        self.prefix = prefix

    async def revoke(self, jti: str, expires_at: int) -> bool:
        ttl = max(1, math.ceil(expires_at - time.time()))  # never shorter than the token
        try:
            created = await self.client.set(self.prefix + jti, b"1", ex=ttl, nx=True)
        except self._errors as error:
            logger.error("Redis unreachable while revoking a token: %r", error)
            raise ServiceUnavailable(REVOCATION_UNAVAILABLE) from error
        return bool(created)

    async def is_revoked(self, *ids: str) -> bool:
        if not ids:
            return False
        keys = [self.prefix + jti for jti in ids]
        try:
            try:
                found = await self.client.exists(*keys)
            except self._dropped:
                # A pooled connection that Redis dropped (restart, failover, CLIENT KILL,
                # idle timeout) fails its next command: a read is safe to try once more,
                # on a new connection, before answering 503.
                found = await self.client.exists(*keys)
        except self._errors as error:
            logger.error("Redis unreachable while checking a token: %r", error)
            raise ServiceUnavailable(REVOCATION_UNAVAILABLE) from error
        return bool(found)

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self.client.aclose()
