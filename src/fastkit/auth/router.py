"""A ready auth router: the OAuth2 token endpoint, refresh with rotation, logout."""

# No ``from __future__ import annotations``: FastAPI evaluates the endpoints' annotations,
# which name local variables of the functions that build them.

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal, TypeVar, cast

from fastapi import APIRouter, Body, Depends, Form, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from fastkit._concurrency import call_maybe_async
from fastkit.auth.dependencies import InvalidToken, JWTAuth
from fastkit.auth.tokens import MAX_TOKEN_LENGTH, TokenClaims, TokenError
from fastkit.errors import (
    BadRequest,
    Forbidden,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    render_error,
)
from fastkit.ratelimit import LoginThrottle
from fastkit.request_context import escape_for_log
from fastkit.responses import Envelope, ok
from fastkit.routing import unique_id_from_tag

__all__ = ["OAuth2ErrorResponse", "RefreshRequest", "TokenResponse", "auth_router"]

logger = logging.getLogger("fastkit.auth")

U = TypeVar("U")

WRONG_CREDENTIALS = "Incorrect username or password"
# Tokens and token errors must not be cached by browsers or proxies (RFC 6749 5.1, 5.2).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

OAuth2ErrorCode = Literal[
    "invalid_request",
    "invalid_grant",
    "unsupported_grant_type",
    "invalid_scope",
    "slow_down",
    "temporarily_unavailable",
]


class _Default:
    def __repr__(self) -> str:
        return "LoginThrottle()"


# auth_router's login_throttle default: a new LoginThrottle() for each router.
_DEFAULT_THROTTLE: Any = _Default()


class TokenResponse(BaseModel):
    """The standard OAuth2 token response (RFC 6749 section 5.1), not enveloped."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int
    refresh_token: str
    scope: str = ""


class OAuth2ErrorResponse(BaseModel):
    """A token-endpoint error (RFC 6749 section 5.2); the error style's members beside."""

    model_config = ConfigDict(extra="allow")

    error: OAuth2ErrorCode
    error_description: str


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=MAX_TOKEN_LENGTH)


class LogoutRequest(BaseModel):
    refresh_token: str | None = Field(None, max_length=MAX_TOKEN_LENGTH)


class _Throttled(Exception):
    """The login throttle refused (429) or could not count (503) a password attempt."""

    def __init__(self, error: TooManyRequests | ServiceUnavailable) -> None:
        super().__init__(error.message)
        self.error = error


class _Refused(Exception):
    """A grant refused with an RFC 6749 error; ``reason`` is for the log only."""

    def __init__(self, error: OAuth2ErrorCode, description: str, reason: str = "") -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.reason = reason or error


def _oauth2_error(request: Request, refused: _Refused) -> Response:
    return render_error(
        request,
        BadRequest(refused.description, headers=NO_STORE),
        extra={"error": refused.error, "error_description": refused.description},
    )


def _throttled(request: Request, error: TooManyRequests | ServiceUnavailable) -> Response:
    """429 with ``Retry-After`` (``slow_down``), or 503 when the throttle's store is down
    (``temporarily_unavailable``): an ``error`` for OAuth2 clients to raise on, not cached."""
    headers = {**NO_STORE, **(error.headers or {})}
    code = "slow_down" if isinstance(error, TooManyRequests) else "temporarily_unavailable"
    return render_error(
        request,
        type(error)(error.message, headers=headers),
        extra={"error": code, "error_description": error.message},
    )


def _default_subject(user: Any) -> str:
    """The user's ``id``, ``username`` or ``email``: an attribute, or a key of a mapping."""
    for name in ("id", "username", "email"):
        value = user.get(name) if isinstance(user, Mapping) else getattr(user, name, None)
        if value is not None and value != "":
            return str(value)
    raise TypeError(
        f"auth_router cannot tell the id of a {type(user).__name__} user (no id, username "
        "or email); pass subject=lambda user: ... to auth_router."
    )


def auth_router(
    auth: JWTAuth[U],
    *,
    authenticate: Callable[[str, str], U | Awaitable[U | None] | None],
    user_scopes: Callable[[U], Iterable[str]] | None = None,
    subject: Callable[[U], str] = _default_subject,
    prefix: str = "/auth",
    tags: Sequence[str] = ("auth",),
    max_password_length: int = 1024,
    login_throttle: LoginThrottle | None = _DEFAULT_THROTTLE,
) -> APIRouter:
    """``POST {prefix}/token``, ``/refresh`` and ``/logout`` for ``auth``.

    - ``/token`` is an OAuth2 token endpoint (RFC 6749): the password grant
      (``grant_type=password``, as Swagger UI's *Authorize* posts it; the default when
      ``grant_type`` is left out) and the refresh grant (``grant_type=refresh_token``).
      It answers the standard token JSON ``{access_token, token_type, expires_in,
      refresh_token, scope}`` at the top level, and errors as RFC 6749 section 5.2 says:
      400 with ``error`` (``invalid_grant``, ``invalid_request``, ``unsupported_grant_type``,
      ``invalid_scope``) and ``error_description``, beside the envelope's members. A wrong
      username or password is one ``invalid_grant`` that does not say which. A requested
      scope that ``user_scopes(user)`` does not allow is ``invalid_scope``.
    - ``/refresh`` takes ``{"refresh_token": ...}`` (JSON) and answers a new pair, with
      401 in the envelope for a refused token.
    - Both refreshes rotate: the used refresh token is revoked; presenting it again revokes
      the whole login (reuse detection: a stolen token is then useless to both parties). A
      refresh grants the token's scopes that ``user_scopes(user)`` still allows, and never
      past the login's absolute lifetime (``TokenService(session_ttl=...)``).
    - ``/logout`` (with the access token) revokes every token of that login.
    - Password logins are throttled (``login_throttle``): every attempt counts against
      its username and its client before the password is checked, a success gives both
      back, and past the limit the answer is 429 with ``Retry-After`` (and
      ``error=slow_down`` on ``/token``), without checking the password.

    Args:
        auth: The `JWTAuth` whose tokens and revocation store to use.
        authenticate: ``(username, password) -> user or None``; verify the password there
            (``await hasher.averify(...)``, and ``await hasher.adummy_verify()`` for unknown
            users so that both failures take the same time), and hold no database
            connection while it hashes. A sync function runs in the threadpool.
        user_scopes: The scopes a user may be granted (none without it).
        subject: The token subject for a user (default: its ``id``, ``username`` or
            ``email``, as an attribute or a mapping key).
        prefix: The router's path prefix.
        tags: OpenAPI tags.
        max_password_length: Longer passwords are answered 422 before ``authenticate``
            runs, so nobody makes the server hash megabytes.
        login_throttle: Failed-login limits (default: ``LoginThrottle()``, 10 a minute and
            100 an hour per username, 100 a minute and 1000 an hour per client, in this
            process's memory; pass ``LoginThrottle(store=redis_store)`` for several
            workers); None turns throttling off.

    Raises:
        ValueError: If ``max_password_length`` is below 1.
    """
    if max_password_length < 1:
        raise ValueError(f"max_password_length must be at least 1, got {max_password_length}.")
    # Operation ids auth_login, auth_refresh, auth_logout: clean names in generated clients.
    router = APIRouter(
        prefix=prefix, tags=list(tags), generate_unique_id_function=unique_id_from_tag
    )
    tokens = auth.tokens
    throttle = LoginThrottle() if login_throttle is _DEFAULT_THROTTLE else login_throttle

    def allowed_scopes(user: U) -> set[str]:
        return set(user_scopes(user)) if user_scopes is not None else set()

    def issue(user_id: str, scopes: Iterable[str], family: str, auth_time: int) -> TokenResponse:
        granted = sorted(set(scopes))
        access = tokens.create_access_token(
            user_id, scopes=granted, family=family, auth_time=auth_time
        )
        refresh = tokens.create_refresh_token(
            user_id, family=family, scopes=granted, auth_time=auth_time
        )
        lifetime = min(tokens.access_ttl, tokens.session_end(auth_time) - int(time.time()))
        return TokenResponse(
            access_token=access,
            expires_in=max(lifetime, 0),
            refresh_token=refresh,
            scope=" ".join(granted),
        )

    async def password_grant(
        request: Request, username: str | None, password: str | None, scope: str | None
    ) -> TokenResponse:
        if not username or not password:
            raise _Refused("invalid_request", "The password grant needs a username and password.")
        # Counted before the password is checked: concurrent guesses cannot all pass.
        try:
            taken = await throttle.attempt(request, username) if throttle is not None else []
        except ServiceUnavailable as error:  # the throttle's store is down
            raise _Throttled(error) from None
        try:
            user = cast(U | None, await call_maybe_async(authenticate, username, password))
        except BaseException:
            if throttle is not None:
                await throttle.succeeded(taken)  # nothing was checked (a 503, say)
            raise
        if user is None:
            raise _Refused("invalid_grant", WRONG_CREDENTIALS, "wrong_credentials")
        if throttle is not None:
            await throttle.succeeded(taken)  # the right password: the attempt is not held
        if auth.is_active is not None and not auth.is_active(user):
            raise _Refused("invalid_grant", "Inactive user", "inactive_user")
        allowed = allowed_scopes(user)
        requested = set(scope.split()) if scope else set()
        if not requested <= allowed:
            denied = " ".join(sorted(requested - allowed))
            raise _Refused("invalid_scope", f"Scope not allowed for this user: {denied}.")
        user_id = subject(user)
        return issue(user_id, requested or allowed, uuid.uuid4().hex, int(time.time()))

    async def refresh_grant(refresh_token: str, scope: str | None) -> TokenResponse:
        """Rotate ``refresh_token``; everything that can fail for a while runs first."""
        try:
            claims = tokens.decode(refresh_token, expected_type="refresh")
        except TokenError as error:
            raise _Refused(
                "invalid_grant", "Invalid or expired refresh token", error.reason
            ) from None
        # Not auth.verify(): a token already used must reach the reuse check below.
        if claims.fam is None or await auth.revocation_policy.is_login_revoked(claims):
            raise _Refused("invalid_grant", "Invalid or expired refresh token", "revoked")
        # The user may have been deleted or disabled, or lost scopes, since the login. A
        # 503 here (database or store down) leaves the token unused: a retry succeeds.
        user = await auth.load_user(claims)
        still_allowed = set(claims.scopes) & allowed_scopes(user)
        requested = set(scope.split()) if scope else None
        if requested is not None and not requested <= still_allowed:
            denied = " ".join(sorted(requested - still_allowed))
            raise _Refused("invalid_scope", f"Scope not granted to this login: {denied}.")
        # The one step that uses the token up: SET NX, so of two racing refreshes one wins.
        if not await auth.revocation_policy.rotate(claims):
            # Used before: someone replays a rotated token, and the whole login has ended.
            subject = escape_for_log(claims.sub)
            logger.warning("Refresh token reuse detected for subject %s", subject)
            raise _Refused("invalid_grant", "Invalid or expired refresh token", "reused")
        auth_time = claims.auth_time if claims.auth_time is not None else claims.iat
        granted = still_allowed if requested is None else requested
        return issue(claims.sub, granted, claims.fam, auth_time)

    Optional = Annotated[str | None, Form()]

    @router.post(
        "/token",
        response_model=TokenResponse,
        responses={
            400: {"model": OAuth2ErrorResponse, "description": "OAuth2 error (RFC 6749 5.2)"},
            429: {
                "model": OAuth2ErrorResponse,
                "description": "Too many failed logins (error=slow_down)",
                "headers": {
                    "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
                },
            },
            503: {
                "model": OAuth2ErrorResponse,
                "description": "Logins cannot be counted now (error=temporarily_unavailable)",
            },
        },
    )
    async def login(
        request: Request,
        response: Response,
        grant_type: Annotated[str | None, Form(examples=["password"])] = None,
        username: Optional = None,
        password: Annotated[str | None, Form(max_length=max_password_length)] = None,
        scope: Optional = None,
        refresh_token: Annotated[str | None, Form(max_length=MAX_TOKEN_LENGTH)] = None,
        client_id: Optional = None,
        client_secret: Optional = None,
    ) -> Any:
        """OAuth2 token endpoint: ``grant_type=password`` or ``grant_type=refresh_token``.

        ``client_id`` and ``client_secret`` are accepted and ignored (a public client).
        """
        try:
            if grant_type in (None, "", "password"):
                issued = await password_grant(request, username, password, scope)
            elif grant_type == "refresh_token":
                if not refresh_token:
                    raise _Refused("invalid_request", "The refresh grant needs a refresh_token.")
                try:
                    issued = await refresh_grant(refresh_token, scope)
                except (Unauthorized, Forbidden) as error:  # the user is gone or disabled
                    raise _Refused("invalid_grant", error.message, "user_refused") from None
            else:
                raise _Refused(
                    "unsupported_grant_type", "Use grant_type=password or refresh_token."
                )
        except _Refused as refused:
            logger.info("Token request refused: %s", refused.reason)
            return _oauth2_error(request, refused)
        except TooManyRequests as error:
            logger.info("Token request refused: too many failed logins")
            return _throttled(request, error)
        except _Throttled as throttled:
            logger.info("Token request refused: the login throttle cannot count attempts")
            return _throttled(request, throttled.error)
        response.headers.update(NO_STORE)
        return issued

    @router.post("/refresh", response_model=TokenResponse)
    async def refresh(body: Annotated[RefreshRequest, Body()], response: Response) -> TokenResponse:
        """``{"refresh_token": ...}`` (JSON) for a new pair; 401 for a refused token."""
        response.headers.update(NO_STORE)
        try:
            return await refresh_grant(body.refresh_token, None)
        except _Refused as refused:
            raise InvalidToken(refused.reason) from None

    @router.post("/logout", response_model=Envelope[None])
    async def logout(
        claims: Annotated[TokenClaims, Depends(auth.claims)],
        body: Annotated[LogoutRequest | None, Body()] = None,
    ) -> Envelope[None]:
        await auth.revocation_policy.revoke_login(claims)
        if body is not None and body.refresh_token:
            try:
                other = tokens.decode(body.refresh_token, expected_type="refresh")
            except TokenError:
                other = None
            if other is not None and other.sub == claims.sub:
                await auth.revocation_policy.revoke_login(other)
        return ok(None, message="Logged out")

    return router
