"""``X-Process-Time`` and ``Server-Timing`` headers, set when the response starts."""

from __future__ import annotations

from starlette.types import ASGIApp

from fastkit.middleware.observability import ObservabilityMiddleware

__all__ = ["TimingMiddleware"]


class TimingMiddleware(ObservabilityMiddleware):
    """Add the time the app took to start its response.

    ``X-Process-Time`` carries seconds (``0.001234``); ``Server-Timing: app;dur=1.234``
    carries milliseconds for browser dev tools. Both are set at ``http.response.start``,
    so streaming responses get them too (the time to the first byte). Websocket and
    lifespan scopes pass through untouched. This is `ObservabilityMiddleware`'s timing
    with the request id and access log off.

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
        super().__init__(
            app,
            request_id=False,
            access_log=False,
            timing_header=header,
            server_timing=server_timing,
        )
        self.header = header
