"""FastAPI dependencies for JWT bearer auth: claims, current user, optional user, scopes."""

# No ``from __future__ import annotations``: FastAPI evaluates the endpoints' annotations,
# which name local variables of the functions that build them.

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any, Generic, TypeVar, cast

from fastapi import Depends, Security
from fastapi.params import Security as SecurityParam
from fastapi.security import OAuth2PasswordBearer, SecurityScopes

from fastkit._concurrency import call_maybe_async
from fastkit.auth.revocation import MemoryRevocationStore, RevocationPolicy, RevocationStore
from fastkit.auth.tokens import TokenClaims, TokenError, TokenService
from fastkit.errors import Forbidden, Unauthorized

__all__ = ["InvalidToken", "JWTAuth"]

logger = logging.getLogger("fastkit.auth")

U = TypeVar("U")

INVALID_TOKEN = "Invalid or expired token"
INVALID_TOKEN_HEADER = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class InvalidToken(Unauthorized):
    """401 for a token that is not accepted: missing, malformed, expired, revoked, unknown user.

    Every refusal answers the same body (``Invalid or expired token``) and
    ``WWW-Authenticate: Bearer error="invalid_token"`` (RFC 6750 3.1). The ``reason``
    (a `TokenError` reason, ``revoked``, ``unknown_user``, ``missing`` ...) is logged at
    INFO on the ``fastkit.auth`` logger and never sent to the client.

    Args:
        reason: Why the token was refused, for the log.

    Example:
        ```python
        if claims.extras.get("tenant") != tenant:
            raise InvalidToken("wrong_tenant")
        ```
    """

    message = INVALID_TOKEN

    def __init__(self, reason: str = "invalid") -> None:
        logger.info("Token refused: %s", reason)
        super().__init__(headers=INVALID_TOKEN_HEADER)
        self.reason = reason


class JWTAuth(Generic[U]):
    """Bearer-token authentication for FastAPI routes.

    Dependencies (use them in signatures or ``dependencies=[...]``):

    - ``claims``: the verified `TokenClaims` (signature, expiry, type, revocation);
    - ``current_user``: the user from ``user_loader(claims)``;
    - ``optional_user``: the user, or None when no token is sent;
    - ``require_scopes(*scopes)``: the current user, if the token has every scope.

    OpenAPI gets an OAuth2 password flow pointing at ``token_url`` with ``scopes``, so
    Swagger UI's *Authorize* button logs in.

    Failures answer 401 (``WWW-Authenticate: Bearer error="invalid_token"``) for a
    missing, invalid, expired or revoked token or an unknown user; 403 for a disabled user
    (``is_active``) or a missing scope (``error="insufficient_scope"``).

    Args:
        tokens: The `TokenService` that signs and verifies tokens.
        user_loader: ``claims -> user or None``, sync or async.
        token_url: Where clients get tokens (``auth_router``'s ``/token``).
        revocation: Where revoked tokens are kept (default: in this process's memory).
        scopes: Scope names and descriptions, for OpenAPI.
        is_active: ``user -> bool``; False answers 403.

    Example:
        ```python
        auth = JWTAuth(tokens, user_loader=load_user, scopes={"items:write": "Edit items"})
        CurrentUser = Annotated[User, Depends(auth.current_user)]

        @app.post("/items", dependencies=[auth.require_scopes("items:write")])
        async def create_item(user: CurrentUser) -> Item: ...
        ```
    """

    def __init__(
        self,
        tokens: TokenService,
        *,
        user_loader: Callable[[TokenClaims], U | Awaitable[U | None] | None],
        token_url: str = "/auth/token",
        revocation: RevocationStore | None = None,
        scopes: Mapping[str, str] | None = None,
        is_active: Callable[[U], bool] | None = None,
    ) -> None:
        self.tokens = tokens
        self.user_loader = user_loader
        self.revocation: RevocationStore = (
            revocation if revocation is not None else MemoryRevocationStore()
        )
        self._policy = RevocationPolicy(self.revocation, tokens)
        self.is_active = is_active
        self.scheme = OAuth2PasswordBearer(
            # The token endpoint also takes grant_type=refresh_token (auth_router).
            tokenUrl=token_url,
            refreshUrl=token_url,
            scopes=dict(scopes or {}),
            auto_error=False,
        )
        self.claims = self._claims_dependency()
        self.current_user = self._user_dependency(optional=False)
        self.optional_user = self._user_dependency(optional=True)

    @property
    def revocation_policy(self) -> RevocationPolicy:
        """How tokens and logins are revoked in ``revocation`` (used by `auth_router`).

        Follows ``revocation``: a store assigned after construction is the one used.
        """
        if self._policy.store is not self.revocation:
            self._policy = RevocationPolicy(self.revocation, self.tokens)
        return self._policy

    async def verify(self, token: str, *, expected_type: Any = "access") -> TokenClaims:
        """Decode ``token`` and check it is not revoked; raise `InvalidToken` (401) if not ok."""
        try:
            claims = self.tokens.decode(token, expected_type=expected_type)
        except TokenError as error:
            raise InvalidToken(error.reason) from None
        if await self.revocation_policy.is_revoked(claims):
            raise InvalidToken("revoked")
        return claims

    async def load_user(self, claims: TokenClaims) -> U:
        """The user for ``claims``; 401 if unknown, 403 if ``is_active`` says no."""
        return self.check_user(cast(U | None, await call_maybe_async(self.user_loader, claims)))

    def check_user(self, user: U | None) -> U:
        """``user`` if it may use the API: `InvalidToken` (401) if None, 403 if inactive.

        For a dependency that loads the user itself (e.g. through the request's own
        database session) instead of ``user_loader``.
        """
        if user is None:
            raise InvalidToken("unknown_user")
        if self.is_active is not None and not self.is_active(user):
            raise Forbidden("Inactive user")
        return user

    async def _checked(self, security_scopes: SecurityScopes, token: str | None) -> TokenClaims:
        if token is None:
            raise InvalidToken("missing")
        verified = await self.verify(token)
        missing = [s for s in security_scopes.scopes if s not in verified.scopes]
        if missing:
            raise Forbidden(
                "Not enough permissions",
                headers={
                    "WWW-Authenticate": (
                        f'Bearer error="insufficient_scope", scope="{security_scopes.scope_str}"'
                    )
                },
            )
        return verified

    def _claims_dependency(self) -> Callable[..., Awaitable[TokenClaims]]:
        scheme = self.scheme

        async def claims(
            security_scopes: SecurityScopes,
            token: Annotated[str | None, Depends(scheme)],
        ) -> TokenClaims:
            return await self._checked(security_scopes, token)

        return claims

    def _user_dependency(self, *, optional: bool) -> Callable[..., Awaitable[Any]]:
        scheme = self.scheme

        if optional:

            async def optional_user(
                token: Annotated[str | None, Depends(scheme)],
            ) -> U | None:
                if token is None:
                    return None
                return await self.load_user(await self.verify(token))

            return optional_user

        # One dependency level rather than current_user -> claims -> scheme: each level
        # FastAPI resolves costs about as much as verifying the token.
        async def current_user(
            security_scopes: SecurityScopes,
            token: Annotated[str | None, Depends(scheme)],
        ) -> U:
            return await self.load_user(await self._checked(security_scopes, token))

        return current_user

    def require_scopes(self, *scopes: str) -> SecurityParam:
        """A dependency for the current user, requiring every scope in ``scopes``.

        Example:
            ```python
            @app.delete("/items/{id}")
            async def delete(user: Annotated[User, auth.require_scopes("items:write")]): ...
            ```
        """
        if not scopes:
            raise ValueError("require_scopes needs at least one scope, e.g. 'items:write'.")
        return cast(SecurityParam, Security(self.current_user, scopes=list(scopes)))
