"""Revoked token ids: in memory for one process, in Redis for many workers."""

from __future__ import annotations

import heapq
import logging
import math
import time
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from fastkit._compat import require
from fastkit.errors import ServiceUnavailable

if TYPE_CHECKING:
    from fastkit.auth.tokens import TokenClaims, TokenService

__all__ = ["MemoryRevocationStore", "RedisRevocationStore", "RevocationPolicy", "RevocationStore"]

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


class RevocationPolicy:
    """What revoking a token, a login or a used refresh token writes, and what a check reads.

    The one place that knows the store's keys (a token's ``jti``; ``fam:<family>`` for a
    login) and how long each entry must live: a token's until its ``exp`` plus the
    service's ``leeway`` (and a second); a login's until any refresh token it may still
    have has expired. `JWTAuth` and `auth_router` both go through it.

    Args:
        store: Where revoked ids are kept.
        tokens: The `TokenService` whose ``leeway`` and ``refresh_ttl`` set the deadlines.

    Example:
        ```python
        policy = RevocationPolicy(MemoryRevocationStore(), tokens)
        claims = tokens.decode(token)
        await policy.revoke_login(claims)  # this token and every token of its login
        assert await policy.is_revoked(claims)
        ```
    """

    def __init__(self, store: RevocationStore, tokens: TokenService) -> None:
        self.store = store
        self.tokens = tokens

    @staticmethod
    def _family_key(family: str) -> str:
        return f"fam:{family}"

    def _token_deadline(self, claims: TokenClaims) -> int:
        # Past it, the token is refused as expired anyway (leeway included).
        return claims.exp + int(self.tokens.leeway) + 1

    def _family_deadline(self) -> int:
        # Long enough to outlive any refresh token of the family, leeway included.
        return int(time.time()) + self.tokens.refresh_ttl + int(self.tokens.leeway) + 1

    async def is_revoked(self, claims: TokenClaims) -> bool:
        """True if the token itself or its login (``fam``) is revoked: one store call."""
        if claims.fam:
            return await self.store.is_revoked(claims.jti, self._family_key(claims.fam))
        return await self.store.is_revoked(claims.jti)

    async def is_login_revoked(self, claims: TokenClaims) -> bool:
        """True if the token's login (``fam``) is revoked, whether or not the token was used."""
        if not claims.fam:
            return False
        return await self.store.is_revoked(self._family_key(claims.fam))

    async def revoke_token(self, claims: TokenClaims) -> bool:
        """Revoke this one token; True if it was not revoked yet."""
        return await self.store.revoke(claims.jti, self._token_deadline(claims))

    async def revoke_login(self, claims: TokenClaims) -> None:
        """Revoke the token and, if it has a ``fam``, every token of its login."""
        await self.revoke_token(claims)
        if claims.fam:
            await self.store.revoke(self._family_key(claims.fam), self._family_deadline())

    async def rotate(self, claims: TokenClaims) -> bool:
        """Use up a refresh token: True the first time, False (and the login revoked) after.

        The token's id is written with SET-NX semantics, so of two racing refreshes with
        the same token exactly one wins; a token presented again is a replay (a stolen
        token, or a stolen copy already used), and its whole login is ended.
        """
        if await self.revoke_token(claims):
            return True
        if claims.fam:
            await self.store.revoke(self._family_key(claims.fam), self._family_deadline())
        return False


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
