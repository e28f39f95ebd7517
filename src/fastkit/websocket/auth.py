"""Websocket authentication: a JWT from the subprotocol header, a query parameter or a cookie."""

# No ``from __future__ import annotations``: FastAPI evaluates the dependency's annotations.

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import WebSocket, WebSocketException, status

from fastkit.auth.dependencies import JWTAuth
from fastkit.auth.tokens import TokenClaims
from fastkit.errors import AppError

__all__ = ["WebSocketAuth", "websocket_token"]


@dataclass(frozen=True)
class WebSocketAuth:
    """A websocket's verified token: pass ``subprotocol`` to ``manager.connect``."""

    claims: TokenClaims
    user: Any
    subprotocol: str | None


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


def websocket_token(
    auth: JWTAuth[Any], *, query_param: str = "token", cookie: str = "access_token"
) -> Callable[[WebSocket], Awaitable[WebSocketAuth]]:
    """A websocket dependency that authenticates before the socket is accepted.

    The token is read from ``Sec-WebSocket-Protocol`` (``["bearer", token]`` or
    ``[token]``), then the ``token`` query parameter, then the ``access_token`` cookie,
    and verified with ``auth`` (signature, expiry, revocation, user). On failure the
    handshake is refused with close code 1008 (1011 if the revocation store is down).

    Example:
        ```python
        WSAuth = Annotated[WebSocketAuth, Depends(websocket_token(auth))]

        @app.websocket("/ws")
        async def ws(websocket: WebSocket, who: WSAuth) -> None:
            async with manager.connect(websocket, client_id=who.claims.sub,
                                       subprotocol=who.subprotocol) as conn: ...
        ```
    """

    async def dependency(websocket: WebSocket) -> WebSocketAuth:
        token, subprotocol = _from_subprotocols(websocket)
        if token is None:
            token = websocket.query_params.get(query_param) or websocket.cookies.get(cookie)
        if not token:
            raise WebSocketException(status.WS_1008_POLICY_VIOLATION, reason="Missing token")
        try:
            claims = await auth.verify(token)
            user = await auth.load_user(claims)
        except AppError as error:
            code = (
                status.WS_1011_INTERNAL_ERROR
                if error.status_code >= 500
                else status.WS_1008_POLICY_VIOLATION
            )
            raise WebSocketException(code, reason=error.message) from None
        return WebSocketAuth(claims=claims, user=user, subprotocol=subprotocol)

    return dependency
