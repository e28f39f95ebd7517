"""The example apps in a real browser: headless Debian Chromium driven by Playwright.

Outside CI these tests skip when Chromium (``apt-get install chromium``) or Playwright
(``pip install playwright``) is missing; with ``CI`` set they fail instead. Playwright's own
browser downloads are never used: the tests launch ``/usr/bin/chromium``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.examples.test_chat_e2e import Server, start

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("FASTKIT_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 10_000
# FastAPI's /docs loads Swagger UI from this CDN, which a test machine may not reach.
SWAGGER_CDN = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/"


def missing_or_fail(reason: str) -> None:
    """Skip on a developer's machine; in CI (``CI`` set) a missing browser is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so the browser tests must run)")
    pytest.skip(reason)


def swagger_assets() -> Path | None:
    """A local copy of Swagger UI 5 (swagger-ui-bundle.js, swagger-ui.css), if installed."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        return None
    static = Path(spec.origin).parent / "static"
    return static if (static / "swagger-ui-bundle.js").is_file() else None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not (os.path.isfile(CHROMIUM) or shutil.which(CHROMIUM)):
        missing_or_fail(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_or_fail("Playwright is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start(tmp_path_factory.mktemp("chat-browser"), "uvicorn", {"REDIS_URL": ""})
    yield server
    server.stop()


def open_page(browser: Browser) -> Page:
    # One context per user: separate storage, as two people on two machines.
    page = browser.new_context().new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return page


def chat_login(page: Page, base_url: str, username: str, password: str, room: str) -> None:
    from playwright.sync_api import expect

    page.goto(base_url)
    page.fill("#username", username)
    page.fill("#password", password)
    page.fill("#room", room)
    page.click("#login button[type=submit]")
    expect(page.get_by_test_id("status")).to_have_text(f"{username} in room {room}")
    expect(page.locator("#chat")).to_be_visible()


def say(page: Page, text: str) -> None:
    page.fill("#text", text)
    page.click("#send button[type=submit]")


def test_two_pages_chat(browser: Browser, chat_server: Server) -> None:
    from playwright.sync_api import expect

    alice, bob = open_page(browser), open_page(browser)
    try:
        chat_login(alice, chat_server.base_url, "alice", "wonderland", "lobby")
        chat_login(bob, chat_server.base_url, "bob", "builder", "lobby")
        expect(alice.locator("#log li.notice")).to_have_text(["bob joined"])

        say(bob, "hello <b>alice</b>")
        for page in (alice, bob):
            line = page.locator("#log li.message").last
            expect(line).to_have_text("bobhello <b>alice</b>")  # as text, not markup
            expect(line.locator(".user")).to_have_text("bob")
            expect(line.locator("b")).to_have_count(0)

        say(alice, "hi bob")
        for page in (alice, bob):
            expect(page.locator("#log li.message")).to_have_text(
                ["bobhello <b>alice</b>", "alicehi bob"]
            )

        bob.click("#leave")
        expect(bob.locator("#login")).to_be_visible()
        expect(alice.locator("#log li.notice")).to_have_text(["bob joined", "bob left"])
    finally:
        alice.context.close()
        bob.context.close()


def test_wrong_password_shows_an_error(browser: Browser, chat_server: Server) -> None:
    from playwright.sync_api import expect

    page = open_page(browser)
    try:
        page.goto(chat_server.base_url)
        page.fill("#username", "alice")
        page.fill("#password", "nope")
        page.click("#login button[type=submit]")
        expect(page.get_by_test_id("status")).to_have_text(
            "Login failed: Incorrect username or password"
        )
        expect(page.locator("#chat")).to_be_hidden()
    finally:
        page.context.close()


REFUSED_JS = """async ([url, protocols]) => await new Promise((resolve) => {
  const socket = new WebSocket(url, protocols);
  socket.addEventListener("close", (event) =>
    resolve({code: event.code, reason: event.reason, opened: socket.protocol}));
})"""


@pytest.mark.parametrize(
    ("protocols", "reason"),
    [
        pytest.param([], "Missing token", id="no-token"),
        pytest.param(["bearer", "not.a.jwt"], "Invalid or expired token", id="bad-token"),
        pytest.param(["not.a.jwt"], "Invalid or expired token", id="bad-token-alone"),
    ],
)
def test_a_refused_websocket_tells_the_page_why(
    browser: Browser, chat_server: Server, protocols: list[str], reason: str
) -> None:
    """The CloseEvent has 1008 and the reason, not the 1006 of a failed handshake."""
    page = open_page(browser)
    try:
        page.goto(chat_server.base_url)
        url = chat_server.base_url.replace("http://", "ws://") + "/ws/lobby"
        closed = page.evaluate(REFUSED_JS, [url, protocols])
    finally:
        page.context.close()
    assert (closed["code"], closed["reason"]) == (1008, reason)


def test_the_page_reconnects_after_a_server_restart(browser: Browser, tmp_path: Path) -> None:
    """uvicorn closes the socket with 1012 when it stops; the page comes back on its own
    once the server is up again (same secret, so the token still holds)."""
    from playwright.sync_api import expect

    env = {"REDIS_URL": "", "JWT_SECRET": "a-browser-restart-secret-of-32-bytes-0123"}
    first = start(tmp_path, "before", env)
    page = open_page(browser)
    try:
        chat_login(page, first.base_url, "alice", "wonderland", "lobby")
        first.stop()
        expect(page.get_by_test_id("status")).to_contain_text("reconnecting")
        expect(page.get_by_test_id("status")).to_contain_text("code 1012")
        second = start(tmp_path, "after", env, port=first.port)
        try:
            expect(page.get_by_test_id("status")).to_have_text(
                "alice in room lobby", timeout=20_000
            )
            expect(page.locator("#chat")).to_be_visible()
            say(page, "back again")
            expect(page.locator("#log li.message").last).to_have_text("aliceback again")
        finally:
            second.stop()
    finally:
        page.context.close()


# --- Swagger UI's Authorize flow ---------------------------------------------------------------

TODO_USER = ("browser", "browser-password-123")


@pytest.fixture(scope="module")
def docs_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, tuple[str, str]]]:
    """The todo example when it exists (its demo user set by env), else the chat example."""
    tmp = tmp_path_factory.mktemp("docs-browser")
    if (ROOT / "examples" / "todo" / "main.py").is_file():
        env = {
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'todo.db'}",
            "REDIS_URL": "",
            "JWT_SECRET": "browser-test-secret-0123456789abcdef0123456789",
            "DEMO_USERNAME": TODO_USER[0],
            "DEMO_PASSWORD": TODO_USER[1],
            "PASSWORD_HASH_TIME_COST": "1",
            "PASSWORD_HASH_MEMORY_KIB": "1024",
        }
        server = start(tmp, "todo", env, app="examples.todo.main:app")
        credentials = TODO_USER
    else:
        server = start(tmp, "chat", {"REDIS_URL": ""})
        credentials = ("alice", "wonderland")
    yield server, credentials
    server.stop()


REDOC_CDN = "https://cdn.jsdelivr.net/npm/redoc@2/bundles/"


def watch_csp(page: Page) -> list[str]:
    """The page's Content-Security-Policy refusals, as the browser reports them."""
    refused: list[str] = []
    page.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return refused


def assert_docs_policy(response: Any, *, inline_scripts: bool = True) -> None:
    """The docs page came with fastkit's docs policy: scripts by source and hash only."""
    assert response is not None
    policy = response.headers["content-security-policy"]
    script_src = next(p for p in policy.split(";") if p.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script_src
    assert "'unsafe-eval'" not in script_src
    assert ("'sha256-" in script_src) is inline_scripts  # Swagger UI's page has one, ReDoc's none
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"


def serve_swagger_locally(page: Page) -> None:
    """Answer requests for FastAPI's CDN Swagger UI from a local copy of the same files."""
    assets = swagger_assets()
    if assets is None:
        missing_or_fail("no local Swagger UI 5 assets (pip install fastapi-offline)")
    assert assets is not None

    def fulfill(route: Route) -> None:
        name = route.request.url.removeprefix(SWAGGER_CDN).split("?")[0]
        path = assets / name
        if path.is_file() and path.parent == assets:
            route.fulfill(path=path)
        else:
            route.fulfill(status=404)

    page.route(f"{SWAGGER_CDN}**", fulfill)
    page.route("https://fastapi.tiangolo.com/**", lambda route: route.fulfill(status=404))


def test_swagger_ui_authorize_gets_a_token(
    browser: Browser, docs_app: tuple[Server, tuple[str, str]]
) -> None:
    from playwright.sync_api import expect

    server, (username, password) = docs_app
    page = open_page(browser)
    errors: list[Any] = []
    page.on("pageerror", lambda error: errors.append(error))
    refused = watch_csp(page)
    try:
        serve_swagger_locally(page)
        assert_docs_policy(page.goto(f"{server.base_url}/docs"))
        expect(page.locator(".swagger-ui .info .title")).to_be_visible()
        page.click("button.authorize")
        page.fill("#oauth_username", username)
        page.fill("#oauth_password", password)
        with page.expect_response(lambda r: r.url.endswith("/auth/token")) as answered:
            page.click(".auth-btn-wrapper button.authorize")
        response = answered.value
        assert response.status == 200, response.text()
        body = response.json()
        assert body["token_type"] == "bearer"
        assert body["access_token"].count(".") == 2
        # Swagger UI shows the login as done, with a Logout button.
        expect(page.locator(".auth-btn-wrapper button", has_text="Logout")).to_be_visible()
        assert errors == []
        assert refused == []  # the docs policy let Swagger UI do all of that
    finally:
        page.context.close()


def test_swagger_ui_authorize_shows_the_token_endpoint_error(
    browser: Browser, docs_app: tuple[Server, tuple[str, str]]
) -> None:
    """A wrong password: the dialog shows the RFC 6749 error; then the right one authorizes."""
    from playwright.sync_api import expect

    server, (username, password) = docs_app
    page = open_page(browser)
    errors: list[Any] = []
    page.on("pageerror", lambda error: errors.append(error))
    try:
        serve_swagger_locally(page)
        page.goto(f"{server.base_url}/docs")
        expect(page.locator(".swagger-ui .info .title")).to_be_visible()
        page.click("button.authorize")
        page.fill("#oauth_username", username)
        page.fill("#oauth_password", "not-the-password")
        with page.expect_response(lambda r: r.url.endswith("/auth/token")) as answered:
            page.click(".auth-btn-wrapper button.authorize")
        refused = answered.value
        assert refused.status == 400, refused.text()
        body = refused.json()
        assert body["error"] == "invalid_grant"
        # Swagger UI reads error and error_description from the body (RFC 6749 5.2) and
        # shows them in the dialog: "..., error: invalid_grant, description: ...".
        shown = page.locator(".auth-container .errors")
        expect(shown).to_contain_text("error: invalid_grant")
        expect(shown).to_contain_text(f"description: {body['error_description']}")
        expect(page.locator(".auth-btn-wrapper button", has_text="Logout")).to_have_count(0)

        page.fill("#oauth_password", password)
        with page.expect_response(lambda r: r.url.endswith("/auth/token")) as answered:
            page.click(".auth-btn-wrapper button.authorize")
        assert answered.value.status == 200, answered.value.text()
        expect(page.locator(".auth-btn-wrapper button", has_text="Logout")).to_be_visible()
        expect(page.locator(".auth-container .errors")).to_have_count(0)
        assert errors == []
    finally:
        page.context.close()


def test_redoc_renders_under_the_docs_policy(
    browser: Browser, docs_app: tuple[Server, tuple[str, str]]
) -> None:
    from playwright.sync_api import expect

    server, _ = docs_app
    assets = swagger_assets()
    if assets is None or not (assets / "redoc.standalone.js").is_file():
        missing_or_fail("no local ReDoc assets (pip install fastapi-offline)")
    assert assets is not None
    page = open_page(browser)
    errors: list[Any] = []
    page.on("pageerror", lambda error: errors.append(error))
    refused = watch_csp(page)
    page.route(f"{REDOC_CDN}**", lambda route: route.fulfill(path=assets / "redoc.standalone.js"))
    page.route("https://fonts.googleapis.com/**", lambda route: route.fulfill(status=404))
    page.route("https://fastapi.tiangolo.com/**", lambda route: route.fulfill(status=404))
    try:
        assert_docs_policy(page.goto(f"{server.base_url}/redoc"), inline_scripts=False)
        # ReDoc fetched /openapi.json (connect-src) and drew the API's operations.
        expect(page.locator("h1").first).to_be_visible()
        expect(page.get_by_text("/auth/token").first).to_be_attached()
        assert errors == []
        assert refused == []
    finally:
        page.context.close()


def test_docs_work_offline_with_the_local_assets(
    browser: Browser, docs_app: tuple[Server, tuple[str, str]]
) -> None:
    """The example serves Swagger UI and ReDoc itself (offline-docs extra): with every
    request outside the app refused, both pages render under the docs policy."""
    from playwright.sync_api import expect

    if swagger_assets() is None:
        missing_or_fail("no local Swagger UI assets (pip install fastapi-offline)")
    server, _ = docs_app
    page = open_page(browser)
    errors: list[Any] = []
    page.on("pageerror", lambda error: errors.append(error))
    refused = watch_csp(page)
    outside: list[str] = []

    def refuse(route: Route) -> None:
        outside.append(route.request.url)
        route.abort()

    page.route(lambda url: not url.startswith(server.base_url), refuse)
    try:
        assert_docs_policy(page.goto(f"{server.base_url}/docs"))
        expect(page.locator(".swagger-ui .info .title")).to_be_visible()
        expect(page.locator("button.authorize")).to_be_visible()
        assert_docs_policy(page.goto(f"{server.base_url}/redoc"), inline_scripts=False)
        expect(page.get_by_text("/auth/token").first).to_be_attached()
        # Only ReDoc's "powered by" logo is asked of the outside (an image built into its
        # bundle; offline it is simply not shown): no script, style or font.
        assert [url for url in outside if not url.startswith("https://cdn.redoc.ly/")] == []
        assert errors == []
        assert refused == []
    finally:
        page.context.close()
