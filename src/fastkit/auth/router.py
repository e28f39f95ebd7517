"""A ready auth router: OAuth2 password login, refresh with rotation, logout."""

# No ``from __future__ import annotations``: FastAPI evaluates the endpoints' annotations,
# which name local variables of the functions that build them.

import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Annotated, Any, TypeVar, cast

from fastapi import APIRouter, Body, Depends, Response
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from fastkit.auth.dependencies import JWTAuth, _invalid
from fastkit.auth.tokens import TokenClaims, TokenError
from fastkit.errors import Forbidden, Unauthorized
from fastkit.responses import Envelope, ok

__all__ = ["RefreshRequest", "TokenResponse", "auth_router"]

logger = logging.getLogger("fastkit.auth")

U = TypeVar("U")

WRONG_CREDENTIALS = "Incorrect username or password"


class TokenResponse(BaseModel):
    """The standard OAuth2 token response (RFC 6749 section 5.1), not enveloped."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int
    refresh_token: str
    scope: str = ""


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=8192)


class LogoutRequest(BaseModel):
    refresh_token: str | None = Field(None, max_length=8192)


def _no_store(response: Response) -> None:
    # Tokens must not be cached by browsers or proxies (RFC 6749 section 5.1).
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


def _default_subject(user: Any) -> str:
    for attribute in ("id", "username", "email"):
        value = getattr(user, attribute, None)
        if value is not None:
            return str(value)
    raise TypeError("auth_router cannot tell the user's id; pass subject=lambda user: ...")


def auth_router(
    auth: JWTAuth[U],
    *,
    authenticate: Callable[[str, str], U | Awaitable[U | None] | None],
    user_scopes: Callable[[U], Iterable[str]] | None = None,
    subject: Callable[[U], str] = _default_subject,
    prefix: str = "/auth",
    tags: Sequence[str] = ("auth",),
) -> APIRouter:
    """``POST {prefix}/token``, ``/refresh`` and ``/logout`` for ``auth``.

    - ``/token`` takes the OAuth2 password form (as Swagger UI posts it) and answers the
      standard token JSON ``{access_token, token_type, expires_in, refresh_token, scope}``
      at the top level; wrong username or password is one 401 that does not say which.
      Requested scopes are granted only if ``user_scopes(user)`` allows them (none by
      default).
    - ``/refresh`` takes ``{"refresh_token": ...}`` and answers a new pair. The used
      refresh token is revoked (rotation); presenting it again revokes the whole login
      (reuse detection: a stolen token is then useless to both parties).
    - ``/logout`` (with the access token) revokes every token of that login.

    Args:
        auth: The `JWTAuth` whose tokens and revocation store to use.
        authenticate: ``(username, password) -> user or None``; verify the password there
            (``await hasher.averify(...)``, and ``await hasher.adummy_verify()`` for unknown
            users so that both failures take the same time). A sync function runs in the
            threadpool.
        user_scopes: The scopes a user may be granted.
        subject: The token subject for a user (default: its ``id``, ``username`` or ``email``).
        prefix: The router's path prefix.
        tags: OpenAPI tags.
    """
    router = APIRouter(prefix=prefix, tags=list(tags))
    tokens = auth.tokens

    def family_deadline() -> int:
        # Long enough to outlive any refresh token of the family, leeway included.
        return int(time.time()) + tokens.refresh_ttl + int(tokens.leeway) + 1

    async def call_authenticate(username: str, password: str) -> U | None:
        if inspect.iscoroutinefunction(authenticate):
            result: Any = await authenticate(username, password)
        else:
            result = await run_in_threadpool(authenticate, username, password)
            if inspect.isawaitable(result):
                result = await result
        return cast(U | None, result)

    def issue(user_id: str, scopes: Iterable[str], family: str | None) -> TokenResponse:
        granted = sorted(set(scopes))
        family = family or uuid.uuid4().hex  # one per login, kept through rotations
        refresh = tokens.create_refresh_token(user_id, family=family, scopes=granted)
        return TokenResponse(
            access_token=tokens.create_access_token(user_id, scopes=granted, family=family),
            expires_in=tokens.access_ttl,
            refresh_token=refresh,
            scope=" ".join(granted),
        )

    @router.post("/token", response_model=TokenResponse)
    async def login(
        form: Annotated[OAuth2PasswordRequestForm, Depends()], response: Response
    ) -> TokenResponse:
        _no_store(response)
        user = await call_authenticate(form.username, form.password)
        if user is None:
            raise Unauthorized(WRONG_CREDENTIALS)
        if auth.is_active is not None and not auth.is_active(user):
            raise Forbidden("Inactive user")
        allowed = set(user_scopes(user)) if user_scopes is not None else set()
        granted = [s for s in form.scopes if s in allowed] if form.scopes else allowed
        return issue(subject(user), granted, None)

    @router.post("/refresh", response_model=TokenResponse)
    async def refresh(body: Annotated[RefreshRequest, Body()], response: Response) -> TokenResponse:
        _no_store(response)
        try:
            claims = tokens.decode(body.refresh_token, expected_type="refresh")
        except TokenError as error:
            raise _invalid(error.reason) from None
        # Not auth.verify(): a token already used must reach the reuse check below.
        if claims.fam is None or await auth.revocation.is_revoked(f"fam:{claims.fam}"):
            raise _invalid("revoked")
        if not await auth.revocation.revoke(claims.jti, claims.exp + int(tokens.leeway) + 1):
            # Used before: someone replays a rotated token. End the whole login.
            await auth.revocation.revoke(f"fam:{claims.fam}", family_deadline())
            logger.warning("Refresh token reuse detected for subject %s", claims.sub)
            raise _invalid("reused")
        await auth.load_user(claims)  # the user may have been deleted or disabled since
        return issue(claims.sub, claims.scopes, claims.fam)

    @router.post("/logout", response_model=Envelope[None])
    async def logout(
        claims: Annotated[TokenClaims, Depends(auth.claims)],
        body: Annotated[LogoutRequest | None, Body()] = None,
    ) -> Envelope[None]:
        await auth.revocation.revoke(claims.jti, claims.exp + int(tokens.leeway) + 1)
        if claims.fam:
            await auth.revocation.revoke(f"fam:{claims.fam}", family_deadline())
        if body is not None and body.refresh_token:
            try:
                other = tokens.decode(body.refresh_token, expected_type="refresh")
            except TokenError:
                other = None
            if other is not None and other.sub == claims.sub:
                await auth.revocation.revoke(other.jti, other.exp + int(tokens.leeway) + 1)
                if other.fam:
                    await auth.revocation.revoke(f"fam:{other.fam}", family_deadline())
        return ok(None, message="Logged out")

    return router
