"""Security headers for an API, with a policy under which ``/docs`` and ``/redoc`` still work.

`SecurityHeadersMiddleware` (which `fastkit.setup` installs) adds to every HTTP response
the headers a scanner or a browser expects of an API, leaving alone any the app set itself:

- ``X-Content-Type-Options: nosniff``: browsers never guess a type (a JSON answer that
  looks like HTML is not run as a page).
- ``Referrer-Policy: no-referrer``: URLs (with their ids and tokens) do not leak onward.
- ``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'``: no other site frames the
  API or its docs (clickjacking).
- ``Cross-Origin-Opener-Policy: same-origin``.
- ``Strict-Transport-Security`` when the request came over https (or when told).
- ``Content-Security-Policy``: ``default-src 'none'`` for API answers (JSON, text...): a
  response that a browser renders runs nothing and loads nothing. HTML the app serves (a
  single-page app) gets only ``frame-ancestors 'none'``: its own policy is the app's to
  write. The docs pages get a policy that lets Swagger UI and ReDoc load from their CDN (or
  from this app) and run FastAPI's inline script, allowed by its hash, not by
  ``'unsafe-inline'``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "API_CONTENT_SECURITY_POLICY",
    "DOCS_CONTENT_SECURITY_POLICY",
    "HTML_CONTENT_SECURITY_POLICY",
    "SecurityHeadersMiddleware",
]

API_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'"
"""For everything but HTML: nothing runs, nothing loads, nobody frames it."""

HTML_CONTENT_SECURITY_POLICY = "frame-ancestors 'none'"
"""For the app's own HTML (a single-page app): no framing; the rest is the app's policy."""

DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
    "script-src 'self' https://cdn.jsdelivr.net{script_hashes}; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src 'self' https://fonts.gstatic.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "connect-src 'self'; worker-src 'self' blob:"
)
"""For Swagger UI and ReDoc pages: their assets from the app or jsDelivr (FastAPI's
default CDN), Google Fonts for ReDoc, and the page's inline scripts by their SHA-256
(``{script_hashes}`` is filled in per page). Styles may be inline: both tools set them."""

_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL | re.IGNORECASE)
_DOCS_PAGE_LIMIT = 1024 * 1024  # a docs page larger than this is passed on unhashed


_FIELD_VALUE = re.compile(r"[\x21-\x7e]([\t \x21-\x7e]*[\x21-\x7e])?")  # RFC 9110 5.5


def _header_value(value: str, name: str) -> bytes:
    if not isinstance(value, str) or not _FIELD_VALUE.fullmatch(value):
        raise ValueError(
            f"{name} must be a header value of visible ASCII characters and spaces, got {value!r}."
        )
    return value.encode("latin-1")


class SecurityHeadersMiddleware:
    """Add security headers to every HTTP response (the app's own are kept).

    Pure ASGI; websockets and lifespan pass through. Each option is a header value, or None
    to leave that header out.

    Args:
        app: The ASGI app.
        hsts: ``Strict-Transport-Security``: None (the default) sends it on requests that
            came over https (``scope["scheme"]``; behind a proxy, run uvicorn with
            ``--proxy-headers``), True on every response, False never.
        hsts_max_age: Seconds browsers keep to https (two years by default).
        hsts_include_subdomains: Add ``includeSubDomains``.
        hsts_preload: Add ``preload`` (for the browsers' preload lists; hard to undo).
        content_security_policy: For non-HTML answers.
        html_content_security_policy: For HTML answers other than the docs pages.
        docs_paths: Paths of the Swagger UI, ReDoc and OAuth2 redirect pages.
        docs_content_security_policy: For the docs pages; ``{script_hashes}`` in it is
            replaced by the hashes of each page's inline scripts.
        frame_options: ``X-Frame-Options``.
        referrer_policy: ``Referrer-Policy``.
        cross_origin_opener_policy: ``Cross-Origin-Opener-Policy``.
        content_type_options: ``X-Content-Type-Options``.

    Raises:
        ValueError: If a value is empty or spans lines, or ``hsts_max_age`` is negative.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        hsts: bool | None = None,
        hsts_max_age: int = 63_072_000,
        hsts_include_subdomains: bool = True,
        hsts_preload: bool = False,
        content_security_policy: str | None = API_CONTENT_SECURITY_POLICY,
        html_content_security_policy: str | None = HTML_CONTENT_SECURITY_POLICY,
        docs_paths: Sequence[str] = ("/docs", "/docs/oauth2-redirect", "/redoc"),
        docs_content_security_policy: str | None = DOCS_CONTENT_SECURITY_POLICY,
        frame_options: str | None = "DENY",
        referrer_policy: str | None = "no-referrer",
        cross_origin_opener_policy: str | None = "same-origin",
        content_type_options: str | None = "nosniff",
    ) -> None:
        if isinstance(hsts_max_age, bool) or not isinstance(hsts_max_age, int) or hsts_max_age < 0:
            raise ValueError(f"hsts_max_age must be whole seconds >= 0, got {hsts_max_age!r}.")
        if isinstance(docs_paths, str):
            raise TypeError(f"docs_paths must be a list of paths; write [{docs_paths!r}].")
        self.app = app
        self.hsts = hsts
        always = {
            b"x-content-type-options": content_type_options,
            b"referrer-policy": referrer_policy,
            b"x-frame-options": frame_options,
            b"cross-origin-opener-policy": cross_origin_opener_policy,
        }
        self._always = [
            (name, _header_value(value, name.decode()))
            for name, value in always.items()
            if value is not None
        ]
        hsts_value = f"max-age={hsts_max_age}"
        if hsts_include_subdomains:
            hsts_value += "; includeSubDomains"
        if hsts_preload:
            hsts_value += "; preload"
        self._hsts = (b"strict-transport-security", hsts_value.encode("latin-1"))
        self._api_csp = (
            _header_value(content_security_policy, "content_security_policy")
            if content_security_policy is not None
            else None
        )
        self._html_csp = (
            _header_value(html_content_security_policy, "html_content_security_policy")
            if html_content_security_policy is not None
            else None
        )
        self._docs_csp = (
            _header_value(docs_content_security_policy, "docs_content_security_policy")
            if docs_content_security_policy is not None
            else None
        )
        self.docs_paths = frozenset(docs_paths)
        # Every header this middleware may send (lowercase), to tell whether the app set one.
        self.header_names = frozenset(
            [name for name, _ in self._always] + [self._hsts[0], b"content-security-policy"]
        )
        self._with_hsts = (
            self._headers_for(True, self._api_csp),
            self._headers_for(True, self._html_csp),
        )
        self._without_hsts = (
            self._headers_for(False, self._api_csp),
            self._headers_for(False, self._html_csp),
        )

    def _headers_for(self, hsts: bool, csp: bytes | None) -> list[tuple[bytes, bytes]]:
        headers = list(self._always)
        if hsts:
            headers.append(self._hsts)
        if csp is not None:
            headers.append((b"content-security-policy", csp))
        return headers

    def is_docs(self, scope: Scope) -> bool:
        """Whether ``scope`` asks for one of the docs pages (they get the docs policy)."""
        paths = self.docs_paths
        if not paths or self._docs_csp is None:
            return False
        path = scope["path"]
        if path in paths:
            return True
        root_path: str = scope.get("root_path") or ""
        return bool(root_path) and path.startswith(root_path) and path[len(root_path) :] in paths

    def add_headers(self, scope: Scope, headers: list[tuple[bytes, bytes]]) -> None:
        """Add the headers for an answer to ``scope`` (not a docs page) to ``headers``.

        The app's own headers win: one it set is not added again.
        """
        names = self.header_names
        is_html = app_set_ours = False
        for name, value in headers:
            name = name.lower()  # ASGI allows any case
            if name in names:
                app_set_ours = True
            elif name == b"content-type" and value[:9].lower() == b"text/html":
                is_html = True
        self.extend_headers(scope, headers, is_html=is_html, app_set_ours=app_set_ours)

    def extend_headers(
        self,
        scope: Scope,
        headers: list[tuple[bytes, bytes]],
        *,
        is_html: bool,
        app_set_ours: bool,
    ) -> None:
        """`add_headers` for a caller that has looked at ``headers`` already.

        `ObservabilityMiddleware` calls this when it wraps this middleware, instead of a
        layer of its own, from the one loop over the response headers it makes anyway.

        Args:
            scope: The request's scope.
            headers: The response headers, extended in place.
            is_html: The answer's ``Content-Type`` is ``text/html``.
            app_set_ours: The app set one of these headers itself (it wins).
        """
        hsts = self.hsts if self.hsts is not None else scope.get("scheme") == "https"
        # The headers of an API answer and of an HTML one, worked out once (see __init__).
        api, html = self._with_hsts if hsts else self._without_hsts
        if app_set_ours:  # the slow way: only the others
            self._add(headers, api, html)
        else:
            headers.extend(html if is_html else api)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.is_docs(scope):
            await self._docs_page(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers")
                if type(headers) is not list:
                    headers = message["headers"] = list(headers or ())
                self.add_headers(scope, headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _add(
        self,
        headers: list[tuple[bytes, bytes]],
        api: list[tuple[bytes, bytes]],
        html: list[tuple[bytes, bytes]],
    ) -> None:
        """The slow way, when the app set some of these headers itself: only the others."""
        present = {name.lower() for name, _ in headers}
        is_html = any(
            name.lower() == b"content-type" and value[:9].lower() == b"text/html"
            for name, value in headers
        )
        headers.extend(h for h in (html if is_html else api) if h[0] not in present)

    async def _docs_page(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A docs page: held until its body is complete, to hash its inline scripts."""
        hsts = self.hsts if self.hsts is not None else scope.get("scheme") == "https"
        start: Message | None = None
        body: list[bytes] = []
        size = 0
        passing = False  # too large, or streamed: sent as it comes, with the plain policy

        async def send_hashed(message: Message) -> None:
            nonlocal start, size, passing
            if passing:
                await send(message)
                return
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunk = message.get("body", b"")
            body.append(chunk)
            size += len(chunk)
            if message.get("more_body") and size <= _DOCS_PAGE_LIMIT:
                return
            assert self._docs_csp is not None
            whole = b"".join(body)
            hashes = "".join(
                f" 'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
                for script in _INLINE_SCRIPT.findall(whole)
            )
            policy = self._docs_csp.replace(b"{script_hashes}", hashes.encode("latin-1"))
            headers = start["headers"] = list(start.get("headers") or ())
            ours = self._headers_for(hsts, policy)
            self._add(headers, ours, ours)
            await send(start)
            passing = bool(message.get("more_body"))
            await send({**message, "body": whole})

        await self.app(scope, receive, send_hashed)
