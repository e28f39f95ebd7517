"""``X-Process-Time`` and ``Server-Timing`` headers, set when the response starts."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastkit.middleware._headers import set_header

__all__ = ["TimingMiddleware"]


class TimingMiddleware:
    """Add the time the app took to start its response.

    ``X-Process-Time`` carries seconds (``0.001234``); ``Server-Timing: app;dur=1.234``
    carries milliseconds for browser dev tools. Both are set at ``http.response.start``,
    so streaming responses get them too (the time to the first byte). Websocket and
    lifespan scopes pass through untouched.

    Args:
        app: The ASGI app to wrap.
        header: The header for the elapsed seconds; ``None`` to send only ``Server-Timing``.
        server_timing: Also send ``Server-Timing``.

    Raises:
        ValueError: If both headers are turned off.

    Example:
        ```python
        app.add_middleware(TimingMiddleware)
        ```
    """

    def __init__(
        self, app: ASGIApp, *, header: str | None = "X-Process-Time", server_timing: bool = True
    ) -> None:
        if not header and not server_timing:
            raise ValueError("TimingMiddleware has nothing to send; set header or server_timing.")
        self.app = app
        self.header = header
        self.server_timing = server_timing
        self._header_key = header.lower().encode("latin-1") if header else b""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        start = time.perf_counter()

        async def send_with_timing(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.stamp(message, time.perf_counter() - start)
            await send(message)

        await self.app(scope, receive, send_with_timing)

    def stamp(self, message: Message, elapsed: float) -> None:
        """Put ``elapsed`` seconds on an ``http.response.start`` message."""
        if self._header_key:
            set_header(message, self._header_key, b"%.6f" % elapsed)
        if self.server_timing:
            # Appended: Server-Timing may carry other metrics already.
            headers = message.setdefault("headers", [])
            if not isinstance(headers, list):
                headers = message["headers"] = list(headers)
            headers.append((b"server-timing", b"app;dur=%.3f" % (elapsed * 1000)))
