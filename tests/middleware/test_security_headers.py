"""SecurityHeadersMiddleware, through setup(app) (on by default) and on its own.

The browser proof that Swagger UI and ReDoc work under the docs policy is in
tests/examples/test_browser.py.

No ``from __future__ import annotations``: FastAPI evaluates the endpoints' annotations.
"""

import base64
import hashlib
import re
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response, WebSocket
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient

import fastkit
from fastkit.middleware import SecurityHeadersMiddleware
from fastkit.middleware.security_headers import (
    API_CONTENT_SECURITY_POLICY,
    HTML_CONTENT_SECURITY_POLICY,
)

ALWAYS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}
HSTS = "max-age=63072000; includeSubDomains"


def build(**setup_options: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/page", response_class=HTMLResponse)
    async def page() -> str:
        return "<html><body>hi</body></html>"

    @app.get("/framed")
    async def framed(response: Response) -> dict[str, bool]:
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
        response.headers["Content-Security-Policy"] = "frame-ancestors https://partner.example"
        return {"ok": True}

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("boom")

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    return fastkit.setup(app, **setup_options)


def client(app: FastAPI, *, https: bool = False) -> TestClient:
    base = "https://testserver" if https else "http://testserver"
    return TestClient(app, base_url=base, raise_server_exceptions=False)


def test_api_answers_get_every_header_and_the_api_policy() -> None:
    response = client(build()).get("/items/1")
    assert response.status_code == 200
    for name, value in ALWAYS.items():
        assert response.headers[name] == value
    assert response.headers["content-security-policy"] == API_CONTENT_SECURITY_POLICY
    assert "strict-transport-security" not in response.headers  # plain http


@pytest.mark.parametrize(("path", "status"), [("/items/x", 422), ("/nope", 404), ("/crash", 500)])
def test_error_answers_carry_them_too(path: str, status: int) -> None:
    response = client(build()).get(path)
    assert response.status_code == status
    for name, value in ALWAYS.items():
        assert response.headers[name] == value
    assert response.headers["content-security-policy"] == API_CONTENT_SECURITY_POLICY


def test_a_body_limit_413_carries_them() -> None:
    app = build(max_body_size=10)

    @app.post("/echo")
    async def echo(request: Request) -> int:
        return len(await request.body())

    response = client(app).post("/echo", content=b"x" * 11)
    assert response.status_code == 413
    assert response.headers["x-content-type-options"] == "nosniff"


def test_hsts_on_https_only_unless_told() -> None:
    secure = client(build(), https=True).get("/items/1")
    assert secure.headers["strict-transport-security"] == HSTS
    always = client(build(hsts=True)).get("/items/1")
    assert always.headers["strict-transport-security"] == HSTS
    never = client(build(hsts=False), https=True).get("/items/1")
    assert "strict-transport-security" not in never.headers


def test_html_gets_only_the_framing_policy() -> None:
    response = client(build()).get("/page")
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == HTML_CONTENT_SECURITY_POLICY


def test_the_apps_own_headers_win_and_are_not_repeated() -> None:
    response = client(build()).get("/framed")
    assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert response.headers.get_list("content-security-policy") == [
        "frame-ancestors https://partner.example"
    ]
    assert response.headers["x-content-type-options"] == "nosniff"


async def raw_asgi(scope: Any, receive: Any, send: Any) -> None:
    """A mounted ASGI app that sends header names in mixed case, as ASGI allows."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"Content-Type", b"text/html; charset=utf-8"),
                (b"X-Frame-Options", b"SAMEORIGIN"),
                (b"X-Request-ID", b"from-the-app"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"<p>raw</p>"})


@pytest.mark.parametrize("own_layer", [False, True], ids=["setup", "own layer"])
def test_a_raw_asgi_apps_mixed_case_headers_are_recognised(own_layer: bool) -> None:
    """Its X-Frame-Options wins, its Content-Type makes the HTML policy, and its own
    X-Request-ID is replaced by the request's id: nothing is sent twice."""
    app = FastAPI()
    app.mount("/raw", raw_asgi)
    if own_layer:
        app.add_middleware(SecurityHeadersMiddleware)
    else:
        fastkit.setup(app)
    response = client(app).get("/raw/page", headers={"X-Request-ID": "abc-1"})
    assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert response.headers["content-security-policy"] == HTML_CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    if not own_layer:
        assert response.headers.get_list("x-request-id") == ["abc-1"]


def script_hashes(html: str) -> list[str]:
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in scripts
    ]


@pytest.mark.parametrize("path", ["/docs", "/docs/oauth2-redirect"])
def test_docs_pages_allow_their_inline_scripts_by_hash(path: str) -> None:
    response = client(build()).get(path)
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    script_src = next(p.strip() for p in policy.split(";") if p.strip().startswith("script-src"))
    hashes = script_hashes(response.text)
    assert hashes  # FastAPI's pages have inline scripts
    assert script_src == "script-src 'self' https://cdn.jsdelivr.net " + " ".join(hashes)
    assert "'unsafe-inline'" not in script_src
    assert "frame-ancestors 'none'" in policy
    assert int(response.headers["content-length"]) == len(response.content)


def test_docs_paths_follow_the_apps_settings() -> None:
    app = FastAPI(docs_url="/api-docs", redoc_url=None)
    fastkit.setup(app)
    docs = client(app).get("/api-docs")
    assert (
        "script-src 'self' https://cdn.jsdelivr.net 'sha256-"
        in docs.headers["content-security-policy"]
    )
    assert client(app).get("/docs").headers["content-security-policy"] == (
        API_CONTENT_SECURITY_POLICY  # /docs is a plain 404 here
    )


def test_setup_can_leave_them_out() -> None:
    response = client(build(security_headers=False)).get("/items/1")
    assert not set(ALWAYS) & set(response.headers)
    assert "content-security-policy" not in response.headers


def test_each_header_can_be_left_out_or_changed() -> None:
    app = FastAPI()
    app.get("/items")(lambda: [1])
    app.add_middleware(
        SecurityHeadersMiddleware,
        frame_options=None,
        referrer_policy="strict-origin-when-cross-origin",
        content_security_policy=None,
        hsts=True,
        hsts_max_age=600,
        hsts_include_subdomains=False,
        hsts_preload=True,
    )
    response = client(app).get("/items")
    assert "x-frame-options" not in response.headers
    assert "content-security-policy" not in response.headers
    assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert response.headers["strict-transport-security"] == "max-age=600; preload"


def test_websockets_pass_through() -> None:
    with client(build()).websocket_connect("/ws") as websocket:
        assert websocket.receive_text() == "hi"


@pytest.mark.parametrize(
    "options",
    [
        {"frame_options": "DENY\r\nSet-Cookie: x=1"},
        {"referrer_policy": "no-referrer\x0bX: y"},
        {"referrer_policy": " no-referrer"},
        {"cross_origin_opener_policy": "same-origin\x85"},
        {"content_security_policy": ""},
        {"hsts_max_age": -1},
        {"hsts_max_age": True},
    ],
)
def test_bad_values_are_refused_at_construction(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        SecurityHeadersMiddleware(FastAPI(), **options)


def test_the_same_headers_as_a_layer_of_its_own() -> None:
    """With the observability layer off, the middleware adds its headers itself."""
    app = build(request_id=False, access_log=False, timing=False)
    api = client(app, https=True).get("/items/1")
    assert api.headers["content-security-policy"] == API_CONTENT_SECURITY_POLICY
    assert api.headers["strict-transport-security"] == HSTS
    crash = client(app).get("/crash")
    assert (crash.status_code, crash.headers["x-frame-options"]) == (500, "DENY")
    docs = client(app).get("/docs")
    assert script_hashes(docs.text)[0] in docs.headers["content-security-policy"]
