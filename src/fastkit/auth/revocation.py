"""Revoked token ids, kept in a `fastkit.stores` store: memory for one process, Redis for many."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from fastkit.errors import ServiceUnavailable
from fastkit.stores import MemoryStore, RedisStore, Store, StoreError

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


class _StoreRevocation:
    """Revoked ids as keys of a `Store` namespace, each living until its token expires."""

    store: Store

    async def revoke(self, jti: str, expires_at: int) -> bool:
        left = expires_at - time.time()
        try:
            if left <= 0:  # expired tokens are refused anyway
                return not await self.store.exists(jti)
            # Exactly as long as the token (stores round up to whole milliseconds).
            return await self.store.set(jti, b"1", ttl=left, if_absent=True)
        except StoreError as error:
            logger.error("Revocation store unreachable while revoking a token: %s", error)
            raise ServiceUnavailable(REVOCATION_UNAVAILABLE) from error

    async def is_revoked(self, *ids: str) -> bool:
        if not ids:
            return False
        try:
            return await self.store.exists(*ids) > 0
        except StoreError as error:
            logger.error("Revocation store unreachable while checking a token: %s", error)
            raise ServiceUnavailable(REVOCATION_UNAVAILABLE) from error

    async def aclose(self) -> None:
        """Close the store's connections."""
        await self.store.aclose()


class MemoryRevocationStore(_StoreRevocation):
    """Revoked ids in this process's memory, each forgotten once its token has expired.

    Fine for one process (and tests); with several workers, use `RedisRevocationStore`.

    Args:
        store: The `MemoryStore` to keep them in (its ``revoked`` namespace); a new one
            by default.
    """

    def __init__(self, store: MemoryStore | None = None) -> None:
        if store is not None and not isinstance(store, MemoryStore):
            raise TypeError(
                f"MemoryRevocationStore keeps ids in a MemoryStore, got {store!r}; for Redis, "
                "use RedisRevocationStore(store=...)."
            )
        # Never evicted to make room for other blocks' keys (a forgotten id is a logged-out
        # token working again): a full store refuses new keys instead (503).
        self.store = (store if store is not None else MemoryStore()).namespace(
            "revoked", evictable=False
        )

    def __len__(self) -> int:
        """How many revoked ids are kept (for tests and metrics)."""
        return len(cast(MemoryStore, self.store))


class RedisRevocationStore(_StoreRevocation):
    """Revoked ids in Redis (``SET key 1 NX PX ttl``), shared by every worker and machine.

    Checks **fail closed**: if Redis cannot be reached, `is_revoked` and `revoke` raise
    `ServiceUnavailable` (503) instead of letting a possibly revoked token through. A check
    whose pooled connection was dropped (a Redis restart, ``CLIENT KILL``) is tried once more
    on a new connection first; a revocation is not (a retried ``SET NX`` could misreport).

    Args:
        url: ``redis://host:6379/0`` (or ``rediss://``).
        client: A ready ``redis.asyncio.Redis`` client instead of ``url``.
        store: A `RedisStore` to share with the other blocks (rate limits...) instead of
            ``url``; its ``revoked`` namespace holds the ids.
        prefix: Key prefix (with ``url`` or ``client``).
        timeout: Socket timeout in seconds for clients made from ``url``.

    Raises:
        ValueError: Unless exactly one of ``url``, ``client`` and ``store`` is given.
        MissingDependencyError: Without the ``redis`` extra.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        store: RedisStore | None = None,
        prefix: str = "fastkit:revoked:",
        timeout: float = 2.0,
    ) -> None:
        if sum(given is not None for given in (url, client, store)) != 1:
            raise ValueError("Give either url= or client= (or store=) to RedisRevocationStore.")
        if url is not None and not isinstance(url, str):
            raise TypeError(
                f"RedisRevocationStore's first argument is a URL, got {url!r}; pass a store "
                "as RedisRevocationStore(store=...)."
            )
        if store is not None and not isinstance(store, RedisStore):
            raise TypeError(f"store= takes a RedisStore, got {store!r}.")
        if store is not None:
            self.store = store.namespace("revoked")
        else:
            self.store = RedisStore(url, client=client, prefix=prefix, timeout=timeout)

    @property
    def client(self) -> Any:
        """The ``redis.asyncio.Redis`` client."""
        return cast(RedisStore, self.store).client
