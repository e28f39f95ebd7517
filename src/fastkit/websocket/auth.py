"""Websocket authentication: a JWT from a header, the subprotocol, the query or a cookie."""

# No ``from __future__ import annotations``: FastAPI evaluates the dependency's annotations.

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import WebSocket, status

from fastkit.auth.dependencies import JWTAuth
from fastkit.auth.tokens import TokenClaims
from fastkit.errors import AppError
from fastkit.websocket.refusals import WebSocketRefused

__all__ = ["WebSocketAuth", "websocket_token"]


@dataclass(frozen=True)
class WebSocketAuth:
    """A websocket's verified token: pass ``subprotocol`` to ``manager.connect``."""

    claims: TokenClaims
    user: Any
    subprotocol: str | None


_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _from_authorization(websocket: WebSocket) -> str | None:
    """The token of an ``Authorization: Bearer`` header, as non-browser clients send it."""
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def _from_subprotocols(websocket: WebSocket) -> tuple[str | None, str | None]:
    """(token, subprotocol to echo) from ``Sec-WebSocket-Protocol``.

    Browsers cannot set headers on a websocket, so clients send
    ``new WebSocket(url, ["bearer", token])`` or ``new WebSocket(url, [token])``; the server
    must echo one of the offered protocols on accept or the browser drops the connection.
    """
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",")]
    offered = [p for p in offered if p]
    for i, value in enumerate(offered):
        if value.lower() == "bearer" and i + 1 < len(offered):
            return offered[i + 1], value
    for value in offered:
        if value.count(".") == 2:  # looks like a JWT
            return value, value
    return None, None


def _origin_list(allowed_origins: Sequence[str]) -> frozenset[str]:
    """The allowed origins, checked: ``scheme://host[:port]``, as browsers send them."""
    if isinstance(allowed_origins, str):
        raise TypeError(f"allowed_origins must be a list; write [{allowed_origins!r}].")
    for origin in allowed_origins:
        parts = urlsplit(origin)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.path
            or parts.query
            or parts.fragment
            or "*" in origin
        ):
            raise ValueError(
                f"{origin!r} is not an origin; write it as a browser sends it, "
                "e.g. 'https://app.example.com' (no path, no wildcard)."
            )
    return frozenset(origin.lower() for origin in allowed_origins)


def websocket_token(
    auth: JWTAuth[Any],
    *,
    query_param: str | None = "token",
    cookie: str | None = None,
    allowed_origins: Sequence[str] = (),
) -> Callable[[WebSocket], Awaitable[WebSocketAuth]]:
    """A websocket dependency that authenticates before the socket is accepted.

    The token is read from, in order: the ``Authorization: Bearer`` header (non-browser
    clients), ``Sec-WebSocket-Protocol`` (``["bearer", token]`` or ``[token]``: browsers
    cannot set headers), the ``token`` query parameter, and, only if you name it, a
    cookie. It is verified with ``auth`` (signature, expiry, revocation, user).

    A browser sends a cookie from any site, and websockets are not covered by CORS: a
    cookie token is taken only from a handshake whose ``Origin`` is in
    ``allowed_origins``; a missing or foreign ``Origin`` is refused.

    A refused handshake raises `WebSocketRefused`: close code 1008 and HTTP 401 (with
    ``WWW-Authenticate: Bearer``) for a missing or bad token, 1008 and 403 for an inactive
    user or a foreign origin, 1011 and 503 when the revocation store is down. With fastkit's
    exception handlers the client reads why (see `refuse`).

    Args:
        auth: The app's `JWTAuth`.
        query_param: The query parameter with the token; None for none (a token in a URL
            lands in access logs).
        cookie: The cookie with the token; None (the default) for none.
        allowed_origins: Origins a cookie token is accepted from
            (``["https://app.example.com"]``); required with ``cookie``.

    Raises:
        ValueError: If ``cookie`` is set without ``allowed_origins``, or an origin is not
            ``scheme://host[:port]``.

    Example:
        ```python
        WSAuth = Annotated[WebSocketAuth, Depends(websocket_token(auth))]

        @app.websocket("/ws")
        async def ws(websocket: WebSocket, who: WSAuth) -> None:
            async with manager.connect(websocket, user_id=who.claims.sub,
                                       subprotocol=who.subprotocol) as conn: ...
        ```
    """
    origins = _origin_list(allowed_origins)
    if cookie is not None and not origins:
        raise ValueError(
            "A cookie token needs allowed_origins=['https://your.site']: browsers send "
            "cookies with websockets from any site (cross-site websocket hijacking)."
        )

    async def dependency(websocket: WebSocket) -> WebSocketAuth:
        token, subprotocol = _from_authorization(websocket), None
        if token is None:
            token, subprotocol = _from_subprotocols(websocket)
        if token is None and query_param is not None:
            token = websocket.query_params.get(query_param) or None
        if token is None and cookie is not None:
            token = websocket.cookies.get(cookie) or None
            if token is not None and websocket.headers.get("origin", "").lower() not in origins:
                raise WebSocketRefused(1008, "Origin not allowed", status_code=403)
        if not token:
            raise WebSocketRefused(1008, "Missing token", status_code=401, headers=_CHALLENGE)
        try:
            claims = await auth.verify(token)
            user = await auth.load_user(claims)
        except AppError as error:
            if error.status_code >= 500:
                raise WebSocketRefused(
                    status.WS_1011_INTERNAL_ERROR, error.message, status_code=503
                ) from None
            raise WebSocketRefused(
                status.WS_1008_POLICY_VIOLATION,
                error.message,
                status_code=error.status_code,
                headers=error.headers,
            ) from None
        return WebSocketAuth(claims=claims, user=user, subprotocol=subprotocol)

    return dependency
