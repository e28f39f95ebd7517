"""Real OAuth2 client libraries against the todo example's token endpoint, over real HTTP.

Authlib's ``OAuth2Client`` (on httpx2; httpx on Python 3.10) and requests-oauthlib's
``OAuth2Session`` with oauthlib's ``LegacyApplicationClient`` (on requests), as they come:
no hooks, no subclasses. Each logs in with the password grant, turns a wrong password into
its own ``invalid_grant`` error, refreshes by hand (the refresh token rotates, and replaying
a used one ends the login) and, once an access token has really expired, refreshes by
itself before the next request.

The app is ``examples.todo`` behind a real uvicorn (``tests/examples/oauth_app.py``, access
tokens of ``ACCESS_TTL`` seconds); SQLite always, PostgreSQL and Redis too when
``FASTKIT_TEST_POSTGRES_URL`` and ``FASTKIT_TEST_REDIS_URL`` are set.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from oauthlib.oauth2 import InvalidGrantError, InvalidScopeError, LegacyApplicationClient
from requests_oauthlib import OAuth2Session

from tests.examples.oauth_app import ACCESS_TTL
from tests.examples.todo_support import (
    DEMO_PASSWORD,
    NO_POSTGRES,
    NO_REDIS,
    POSTGRES_URL,
    REDIS_URL,
    base_env,
    postgres_schema,
)
from tests.uvicorn_support import free_port, uvicorn_process

try:
    import httpx2 as httpx
except ImportError:  # Python 3.10: httpx2 needs 3.11+
    import httpx  # type: ignore[no-redef]

from authlib.deprecate import AuthlibDeprecationWarning

with warnings.catch_warnings():
    # Python 3.10 only: Authlib >= 1.8 runs on httpx2 (3.11+) and warns when it falls back
    # to httpx. Importing authlib.deprecate first matters: it adds an "always" filter for
    # its warnings in front of the others, and this one must come in front of that.
    warnings.filterwarnings(
        "ignore", "The httpx module is deprecated", category=AuthlibDeprecationWarning
    )
    from authlib.integrations.httpx_client import OAuth2Client, OAuthError

STARTUP_TIMEOUT = 20.0
HTTP_TIMEOUT = 10.0
USERNAME = "demo"  # the example's demo user, its password set by DEMO_PASSWORD
CLIENT_ID = "todo-cli"  # a public client: the endpoint takes and ignores client ids
SCOPES = "todos:read todos:write"  # what the demo user is granted when it asks for none
WRONG_CREDENTIALS = "Incorrect username or password"
BAD_LOGINS = [
    pytest.param(USERNAME, "not-the-password", id="wrong-password"),
    pytest.param("nobody", DEMO_PASSWORD, id="unknown-user"),
]


@dataclass
class Server:
    base_url: str

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/auth/token"


@pytest.fixture(scope="module", params=["sqlite", "postgres-redis"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("oauth-clients")
    env = {**os.environ, **base_env(workdir), "PYTHONUNBUFFERED": "1"}
    with ExitStack() as stack:
        if request.param == "postgres-redis":
            if not POSTGRES_URL:
                pytest.skip(NO_POSTGRES)
            if not REDIS_URL:
                pytest.skip(NO_REDIS)
            # A set URL with the server down fails here (it never skips).
            env.update(stack.enter_context(postgres_schema()))
            env["REDIS_URL"] = REDIS_URL
        port = free_port()
        server = Server(f"http://127.0.0.1:{port}")
        args = ["--factory", "tests.examples.oauth_app:create_app", "--host", "127.0.0.1"]
        stack.enter_context(
            uvicorn_process(
                [*args, "--port", str(port), "--log-level", "warning", "--no-access-log"],
                log_path=workdir / "out.log",
                ready_url=f"{server.base_url}/health",
                env=env,
                startup_timeout=STARTUP_TIMEOUT,
            )
        )
        yield server


def data(response: Any) -> Any:
    """The envelope's ``data`` of a 200 answer (httpx and requests responses alike)."""
    assert response.status_code == 200, response.text
    return response.json()["data"]


def wait_until_expired(token: dict[str, Any]) -> None:
    """Until the access token is past both its JWT ``exp`` and the client's ``expires_at``.

    The server still accepts it for its 5 s leeway after that; what counts is that the
    client library sees it as expired and refreshes on its own.
    """
    exp = jwt.decode(token["access_token"], options={"verify_signature": False})["exp"]
    deadline = max(exp, token["expires_at"]) + 0.1
    assert deadline - time.time() <= ACCESS_TTL + 2, "the token lives longer than ACCESS_TTL"
    time.sleep(max(deadline - time.time(), 0))


def raw_refresh(server: Server, refresh_token: str) -> httpx.Response:
    """A refresh grant with no client library, for tokens a library no longer holds."""
    return httpx.post(
        server.token_url,
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        timeout=HTTP_TIMEOUT,
    )


def test_openapi_password_flow_names_the_token_url_for_refreshes(server: Server) -> None:
    schema = httpx.get(f"{server.base_url}/openapi.json", timeout=HTTP_TIMEOUT).json()
    [scheme] = schema["components"]["securitySchemes"].values()
    flow = scheme["flows"]["password"]
    assert flow["tokenUrl"] == flow["refreshUrl"] == "/auth/token"


# --- Authlib ------------------------------------------------------------------------------------


@pytest.fixture
def authlib_client(server: Server) -> Iterator[OAuth2Client]:
    # leeway: Authlib counts a token as expired ``leeway`` seconds before ``expires_at``
    # (OAuth2Token.is_expired; 60 s by default), and then refuses to send it
    # (InvalidTokenError) unless it can refresh. Against ACCESS_TTL-second tokens the default
    # would make every token expired on arrival, so it is set below ACCESS_TTL here.
    with OAuth2Client(
        client_id=CLIENT_ID, base_url=server.base_url, timeout=HTTP_TIMEOUT, leeway=1
    ) as client:
        yield client


def test_authlib_password_grant(authlib_client: OAuth2Client, server: Server) -> None:
    token = authlib_client.fetch_token(server.token_url, username=USERNAME, password=DEMO_PASSWORD)
    assert token["token_type"].lower() == "bearer"
    assert token["scope"] == SCOPES
    assert 0 < token["expires_in"] <= ACCESS_TTL
    assert token["refresh_token"]
    assert data(authlib_client.get("/users/me"))["username"] == USERNAME
    assert isinstance(data(authlib_client.get("/todos"))["items"], list)


@pytest.mark.parametrize(("username", "password"), BAD_LOGINS)
def test_authlib_bad_login_raises_invalid_grant(
    authlib_client: OAuth2Client, server: Server, username: str, password: str
) -> None:
    with pytest.raises(OAuthError) as caught:
        authlib_client.fetch_token(server.token_url, username=username, password=password)
    assert type(caught.value) is OAuthError
    assert caught.value.error == "invalid_grant"
    assert caught.value.description == WRONG_CREDENTIALS
    assert not authlib_client.token


def test_authlib_scopes(authlib_client: OAuth2Client, server: Server) -> None:
    with pytest.raises(OAuthError) as caught:
        authlib_client.fetch_token(
            server.token_url, username=USERNAME, password=DEMO_PASSWORD, scope="admin"
        )
    assert caught.value.error == "invalid_scope"
    # A narrower scope is granted as asked, and the token is held to it.
    token = authlib_client.fetch_token(
        server.token_url, username=USERNAME, password=DEMO_PASSWORD, scope="todos:read"
    )
    assert token["scope"] == "todos:read"
    assert authlib_client.get("/todos").status_code == 200
    assert authlib_client.post("/todos", json={"title": "no"}).status_code == 403


def test_authlib_refresh_rotates_and_a_replay_ends_the_login(
    authlib_client: OAuth2Client, server: Server
) -> None:
    first = dict(
        authlib_client.fetch_token(server.token_url, username=USERNAME, password=DEMO_PASSWORD)
    )
    second = dict(authlib_client.refresh_token(server.token_url))
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["scope"] == SCOPES
    assert authlib_client.token["access_token"] == second["access_token"]
    assert data(authlib_client.get("/users/me"))["username"] == USERNAME

    # The used refresh token is refused; presenting it ends the whole login.
    with pytest.raises(OAuthError) as caught:
        authlib_client.refresh_token(server.token_url, refresh_token=first["refresh_token"])
    assert caught.value.error == "invalid_grant"
    assert authlib_client.token["access_token"] == second["access_token"]  # kept, but dead
    assert authlib_client.get("/users/me").status_code == 401
    with pytest.raises(OAuthError) as caught:
        authlib_client.refresh_token(server.token_url)
    assert caught.value.error == "invalid_grant"


def test_authlib_refreshes_an_expired_token_by_itself(server: Server) -> None:
    updates: list[tuple[dict[str, Any], str | None]] = []

    def update_token(
        token: dict[str, Any], refresh_token: str | None = None, access_token: str | None = None
    ) -> None:
        updates.append((dict(token), refresh_token))

    # token_endpoint: where Authlib refreshes an expired token before a request (a refresh
    # token and this URL are all it needs); update_token: how it tells the application.
    with OAuth2Client(
        client_id=CLIENT_ID,
        base_url=server.base_url,
        timeout=HTTP_TIMEOUT,
        leeway=1,  # see the authlib_client fixture
        token_endpoint=server.token_url,
        update_token=update_token,
    ) as client:
        first = dict(client.fetch_token(username=USERNAME, password=DEMO_PASSWORD))
        assert data(client.get("/users/me"))["username"] == USERNAME
        assert updates == []  # a live token is sent as it is

        wait_until_expired(first)
        assert isinstance(data(client.get("/todos"))["items"], list)
        [(refreshed, used)] = updates
        assert used == first["refresh_token"]
        assert refreshed["access_token"] != first["access_token"]
        assert client.token["access_token"] == refreshed["access_token"]
        assert data(client.get("/users/me"))["username"] == USERNAME
        assert len(updates) == 1  # the new token is live: no second refresh
    # The refresh went through the server's rotation: the first refresh token is spent.
    assert raw_refresh(server, first["refresh_token"]).json()["error"] == "invalid_grant"


# --- requests-oauthlib --------------------------------------------------------------------------


@pytest.fixture
def insecure_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    # oauthlib refuses http:// URLs (InsecureTransportError) unless this documented switch
    # is set; the server here is plain HTTP on loopback.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def oauthlib_session(scope: list[str] | None = None, **kwargs: Any) -> OAuth2Session:
    # The scope goes to the client: LegacyApplicationClient puts its own scope in the password
    # grant, while OAuth2Session(scope=...) is only compared with the answer and sent on
    # refreshes (the session falls back to the client's scope when it has none).
    client = LegacyApplicationClient(client_id=CLIENT_ID, scope=scope)
    return OAuth2Session(client=client, **kwargs)


@pytest.fixture
def session(insecure_transport: None) -> Iterator[OAuth2Session]:
    with oauthlib_session() as session:
        yield session


def test_requests_oauthlib_password_grant(session: OAuth2Session, server: Server) -> None:
    token = session.fetch_token(
        server.token_url, username=USERNAME, password=DEMO_PASSWORD, timeout=HTTP_TIMEOUT
    )
    assert token["token_type"].lower() == "bearer"
    assert token["scope"] == SCOPES.split()  # oauthlib hands scopes back as a list
    assert 0 < token["expires_in"] <= ACCESS_TTL
    assert token["refresh_token"]
    me = session.get(f"{server.base_url}/users/me", timeout=HTTP_TIMEOUT)
    assert data(me)["username"] == USERNAME
    todos = session.get(f"{server.base_url}/todos", timeout=HTTP_TIMEOUT)
    assert isinstance(data(todos)["items"], list)


@pytest.mark.parametrize(("username", "password"), BAD_LOGINS)
def test_requests_oauthlib_bad_login_raises_invalid_grant(
    session: OAuth2Session, server: Server, username: str, password: str
) -> None:
    with pytest.raises(InvalidGrantError) as caught:
        session.fetch_token(
            server.token_url, username=username, password=password, timeout=HTTP_TIMEOUT
        )
    assert caught.value.error == "invalid_grant"
    assert caught.value.description == WRONG_CREDENTIALS
    assert not session.authorized


def test_requests_oauthlib_scopes(insecure_transport: None, server: Server) -> None:
    with oauthlib_session(scope=["admin"]) as session, pytest.raises(InvalidScopeError):
        session.fetch_token(
            server.token_url, username=USERNAME, password=DEMO_PASSWORD, timeout=HTTP_TIMEOUT
        )
    # oauthlib raises a Warning when the granted scope differs from the one it asked for
    # (at login and at each refresh, which asks for the session's scope again).
    with oauthlib_session(scope=["todos:read"]) as session:
        token = session.fetch_token(
            server.token_url, username=USERNAME, password=DEMO_PASSWORD, timeout=HTTP_TIMEOUT
        )
        assert token["scope"] == ["todos:read"]
        assert session.refresh_token(server.token_url, timeout=HTTP_TIMEOUT)["scope"] == [
            "todos:read"
        ]
        todos = f"{server.base_url}/todos"
        assert session.get(todos, timeout=HTTP_TIMEOUT).status_code == 200
        assert session.post(todos, json={"title": "no"}, timeout=HTTP_TIMEOUT).status_code == 403


def test_requests_oauthlib_refresh_rotates_and_a_replay_ends_the_login(
    session: OAuth2Session, server: Server
) -> None:
    first = dict(
        session.fetch_token(
            server.token_url, username=USERNAME, password=DEMO_PASSWORD, timeout=HTTP_TIMEOUT
        )
    )
    second = dict(session.refresh_token(server.token_url, timeout=HTTP_TIMEOUT))
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert session.access_token == second["access_token"]
    me = f"{server.base_url}/users/me"
    assert data(session.get(me, timeout=HTTP_TIMEOUT))["username"] == USERNAME

    # The used refresh token is refused; presenting it ends the whole login.
    with pytest.raises(InvalidGrantError):
        session.refresh_token(
            server.token_url, refresh_token=first["refresh_token"], timeout=HTTP_TIMEOUT
        )
    assert session.access_token == second["access_token"]  # kept, but dead
    assert session.get(me, timeout=HTTP_TIMEOUT).status_code == 401
    with pytest.raises(InvalidGrantError):
        session.refresh_token(server.token_url, timeout=HTTP_TIMEOUT)


def test_requests_oauthlib_refreshes_an_expired_token_by_itself(
    insecure_transport: None, server: Server
) -> None:
    updates: list[dict[str, Any]] = []
    # auto_refresh_url: where to refresh when oauthlib's Client.add_token raises
    # TokenExpiredError, which it does once ``expires_at`` (its clock at the response plus
    # ``expires_in``) is in the past: no leeway. token_updater: without it requests-oauthlib
    # raises TokenUpdated instead of sending the request.
    with oauthlib_session(auto_refresh_url=server.token_url, token_updater=updates.append) as s:
        first = dict(
            s.fetch_token(
                server.token_url, username=USERNAME, password=DEMO_PASSWORD, timeout=HTTP_TIMEOUT
            )
        )
        me = f"{server.base_url}/users/me"
        assert data(s.get(me, timeout=HTTP_TIMEOUT))["username"] == USERNAME
        assert updates == []  # a live token is sent as it is

        wait_until_expired(first)
        todos = s.get(f"{server.base_url}/todos", timeout=HTTP_TIMEOUT)
        assert isinstance(data(todos)["items"], list)
        [refreshed] = updates
        assert refreshed["access_token"] != first["access_token"]
        assert refreshed["refresh_token"] != first["refresh_token"]
        assert s.access_token == refreshed["access_token"]
        assert data(s.get(me, timeout=HTTP_TIMEOUT))["username"] == USERNAME
        assert len(updates) == 1  # the new token is live: no second refresh
    assert raw_refresh(server, first["refresh_token"]).json()["error"] == "invalid_grant"
