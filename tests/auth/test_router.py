"""fastkit.auth.router through a real app: login form, refresh rotation and reuse, logout.

No ``from __future__ import annotations``: see ``tests/auth/support.py``.
"""

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import jwt
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

import fastkit
from fastkit import ServiceUnavailable
from fastkit.auth import (
    JWTAuth,
    MemoryRevocationStore,
    PasswordHasher,
    TokenClaims,
    TokenService,
    auth_router,
)
from fastkit.auth.router import _default_subject
from tests.auth.support import (
    INVALID_TOKEN,
    INVALID_TOKEN_CHALLENGE,
    PASSWORDS,
    SECRET,
    AuthApp,
    bearer,
    build_app,
    swagger_form,
)

TOKEN_KEYS = {"access_token", "token_type", "expires_in", "refresh_token", "scope"}


@pytest.fixture(params=["async", "sync"])
def kit(request: pytest.FixtureRequest) -> AuthApp:
    """The app, with an async or a sync ``authenticate``."""
    return build_app(authenticate=request.param)


@pytest.fixture
def client(kit: AuthApp) -> Iterator[TestClient]:
    with TestClient(kit.app) as client:
        yield client


def assert_invalid_token(response: Any) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == INVALID_TOKEN
    assert response.headers["www-authenticate"] == INVALID_TOKEN_CHALLENGE


def refresh(client: TestClient, token: str) -> Any:
    return client.post("/auth/refresh", json={"refresh_token": token})


# --- /token ------------------------------------------------------------------------------


def test_login_as_swagger_ui_posts_it(kit: AuthApp, client: TestClient) -> None:
    # Byte for byte what Swagger UI's Authorize dialog sends for the password flow.
    body = urlencode(
        swagger_form("alice", "alice-password", "items:read items:write"), quote_via=quote
    )
    response = client.post(
        "/auth/token",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    token = response.json()
    # RFC 6749 5.1 at the top level: no envelope around it.
    assert set(token) == TOKEN_KEYS
    assert token["token_type"] == "bearer"
    assert token["expires_in"] == kit.tokens.access_ttl == 900
    assert token["scope"] == "items:read items:write"

    claims = kit.tokens.decode(token["access_token"])
    assert (claims.sub, claims.scopes) == ("1", ["items:read", "items:write"])
    refresh_claims = kit.tokens.decode(token["refresh_token"], expected_type="refresh")
    assert refresh_claims.sub == "1"
    assert refresh_claims.fam is not None
    assert claims.fam == refresh_claims.fam  # one family per login

    assert client.get("/me", headers=bearer(token["access_token"])).status_code == 200
    assert client.post("/items", headers=bearer(token["access_token"])).status_code == 200


def test_token_responses_are_not_cacheable(kit: AuthApp, client: TestClient) -> None:
    # RFC 6749 5.1: responses carrying tokens say Cache-Control: no-store.
    login = client.post("/auth/token", data=swagger_form("alice", "alice-password"))
    rotated = refresh(client, login.json()["refresh_token"])
    for response in (login, rotated):
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["pragma"] == "no-cache"


def assert_oauth2_error(response: Any, error: str, description: str | None = None) -> None:
    """An RFC 6749 5.2 error: 400, ``error`` and ``error_description``, not cacheable."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == error
    assert isinstance(body["error_description"], str)
    assert body["error_description"]
    if description is not None:
        assert body["error_description"] == description
    # The envelope's members beside the RFC's, for clients that read the envelope.
    assert (body["code"], body["message"], body["data"]) == (400, body["error_description"], None)
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    assert "www-authenticate" not in response.headers  # 401 is for client authentication
    assert "access_token" not in response.text


@pytest.mark.parametrize(
    ("user", "requested", "granted"),
    [
        pytest.param("alice", "", "items:read items:write", id="nothing-asked-all-allowed"),
        pytest.param("alice", "items:read", "items:read", id="subset"),
        pytest.param("alice", "items:write items:read", "items:read items:write", id="all"),
        pytest.param("bob", "", "items:read", id="bob-all-allowed"),
    ],
)
def test_granted_scopes_are_what_was_asked_and_allowed(
    kit: AuthApp, client: TestClient, user: str, requested: str, granted: str
) -> None:
    token = kit.login(client, user, scope=requested)
    assert token["scope"] == granted
    claims = kit.tokens.decode(token["access_token"])
    assert claims.scopes == granted.split()
    refresh_claims = kit.tokens.decode(token["refresh_token"], expected_type="refresh")
    assert refresh_claims.scopes == claims.scopes


@pytest.mark.parametrize(
    ("user", "requested", "denied"),
    [
        pytest.param("alice", "items:read admin", "admin", id="unknown-scope"),
        pytest.param("bob", "items:read items:write", "items:write", id="not-allowed"),
        pytest.param("bob", "items:write", "items:write", id="nothing-allowed"),
    ],
)
def test_a_scope_the_user_may_not_have_is_invalid_scope(
    client: TestClient, user: str, requested: str, denied: str
) -> None:
    response = client.post("/auth/token", data=swagger_form(user, PASSWORDS[user], requested))
    assert_oauth2_error(response, "invalid_scope")
    assert denied in response.json()["error_description"]


def test_scope_not_asked_for_is_refused_later(kit: AuthApp, client: TestClient) -> None:
    token = kit.login(client, "alice", scope="items:read")
    assert client.get("/items", headers=bearer(token["access_token"])).status_code == 200
    assert client.post("/items", headers=bearer(token["access_token"])).status_code == 403


def test_wrong_password_and_unknown_user_get_the_same_invalid_grant(client: TestClient) -> None:
    wrong_password = client.post("/auth/token", data=swagger_form("alice", "not-her-password"))
    unknown_user = client.post("/auth/token", data=swagger_form("mallory", "alice-password"))
    for response in (wrong_password, unknown_user):
        assert_oauth2_error(response, "invalid_grant", "Incorrect username or password")
    assert wrong_password.content == unknown_user.content


def test_inactive_user_gets_no_tokens(client: TestClient) -> None:
    response = client.post("/auth/token", data=swagger_form("carol", "carol-password"))
    assert_oauth2_error(response, "invalid_grant", "Inactive user")


def test_inactive_user_with_a_wrong_password_is_a_plain_invalid_grant(client: TestClient) -> None:
    # Only someone who knows the password learns that the account is disabled.
    response = client.post("/auth/token", data=swagger_form("carol", "a-guess"))
    assert_oauth2_error(response, "invalid_grant", "Incorrect username or password")


def test_legacy_bcrypt_user_logs_in_and_is_moved_to_argon2(
    kit: AuthApp, client: TestClient
) -> None:
    assert kit.users["bob"].password_hash.startswith("$2b$")
    kit.login(client, "bob")
    assert kit.users["bob"].password_hash.startswith("$argon2id$")
    kit.login(client, "bob")  # and the new hash works


@pytest.mark.parametrize(
    ("form", "error"),
    [
        pytest.param({"username": "alice"}, "invalid_request", id="no-password"),
        pytest.param({"password": "alice-password"}, "invalid_request", id="no-username"),
        pytest.param({"username": "", "password": ""}, "invalid_request", id="empty-fields"),
        pytest.param({}, "invalid_request", id="empty-form"),
        pytest.param(
            {"grant_type": "password", "password": "alice-password"},
            "invalid_request",
            id="password-grant-no-username",
        ),
        pytest.param({"grant_type": "refresh_token"}, "invalid_request", id="refresh-no-token"),
        pytest.param(
            {"grant_type": "refresh_token", "refresh_token": ""},
            "invalid_request",
            id="refresh-empty-token",
        ),
        pytest.param(
            {"grant_type": "client_credentials", "username": "alice", "password": "x"},
            "unsupported_grant_type",
            id="client-credentials",
        ),
        pytest.param(
            {"grant_type": "authorization_code", "code": "abc"},
            "unsupported_grant_type",
            id="authorization-code",
        ),
        pytest.param(
            {"grant_type": "PASSWORD", "username": "alice", "password": "alice-password"},
            "unsupported_grant_type",
            id="grant-type-case",
        ),
    ],
)
def test_incomplete_or_unsupported_token_requests(
    kit: AuthApp, client: TestClient, form: dict[str, str], error: str
) -> None:
    response = client.post("/auth/token", data=form)
    assert_oauth2_error(response, error)
    assert not [c for c in kit.calls if c[0] == "authenticate"]


def test_login_without_grant_type_is_the_password_grant(kit: AuthApp, client: TestClient) -> None:
    # FastAPI's OAuth2PasswordRequestForm has always allowed it; scripts rely on it.
    response = client.post("/auth/token", data={"username": "alice", "password": "alice-password"})
    assert response.status_code == 200, response.text
    assert kit.tokens.decode(response.json()["access_token"]).sub == "1"


def test_client_credentials_are_accepted_and_ignored(client: TestClient) -> None:
    # OAuth2 libraries send client_id (and a secret, in the body or as HTTP Basic).
    form = {**swagger_form("alice", "alice-password"), "client_id": "cli", "client_secret": "s"}
    response = client.post("/auth/token", data=form, auth=("cli", "s"))
    assert response.status_code == 200, response.text


def test_login_as_json_is_invalid_request(client: TestClient) -> None:
    response = client.post("/auth/token", json={"username": "alice", "password": "x"})
    assert_oauth2_error(response, "invalid_request")


@pytest.mark.parametrize(
    ("length", "status"),
    [
        pytest.param(1024, 400, id="at-the-cap-is-checked"),
        pytest.param(1025, 422, id="over-the-cap-is-422"),
        pytest.param(100_000, 422, id="megabytes-are-422"),
    ],
)
def test_passwords_over_the_cap_never_reach_authenticate(
    kit: AuthApp, client: TestClient, length: int, status: int
) -> None:
    response = client.post("/auth/token", data=swagger_form("alice", "p" * length))
    assert response.status_code == status, response.text
    called = [c for c in kit.calls if c[0] == "authenticate"]
    if status == 422:
        assert response.json()["data"][0]["loc"] == ["body", "password"]
        assert response.json()["data"][0]["type"] == "string_too_long"
        assert called == []
    else:
        assert_oauth2_error(response, "invalid_grant")
        assert len(called) == 1


def test_the_password_cap_is_configurable() -> None:
    kit = build_app(max_password_length=12)
    with TestClient(kit.app) as client:
        assert client.post("/auth/token", data=swagger_form("alice", "x" * 13)).status_code == 422
        assert_oauth2_error(
            client.post("/auth/token", data=swagger_form("alice", "x" * 12)), "invalid_grant"
        )
    with pytest.raises(ValueError, match="max_password_length"):
        build_app(max_password_length=0)


def test_authenticate_kinds(kit: AuthApp, client: TestClient) -> None:
    kit.login(client)
    [(function, kind, in_loop)] = [c for c in kit.calls if c[0] == "authenticate"]
    assert function == "authenticate"
    if kind == "sync":
        assert in_loop is False  # a sync authenticate runs in the threadpool
    else:
        assert in_loop is True


# --- /refresh ----------------------------------------------------------------------------


def refresh_grant(client: TestClient, token: str, scope: str | None = None) -> Any:
    form = {"grant_type": "refresh_token", "refresh_token": token}
    if scope is not None:
        form["scope"] = scope
    return client.post("/auth/token", data=form)


# The JSON /auth/refresh and the form grant of /auth/token: one rotation, two error styles.
SENDERS = {"json": refresh, "form": refresh_grant}


def assert_refused(endpoint: str, response: Any) -> None:
    if endpoint == "json":
        assert_invalid_token(response)
    else:
        assert_oauth2_error(response, "invalid_grant")


@pytest.mark.parametrize("endpoint", SENDERS)
def test_refresh_rotates_the_pair(kit: AuthApp, client: TestClient, endpoint: str) -> None:
    send = SENDERS[endpoint]
    first = kit.login(client, scope="items:read")
    response = send(client, first["refresh_token"])
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    second = response.json()
    assert set(second) == TOKEN_KEYS
    assert second["scope"] == "items:read"  # the login's scopes, not more
    assert second["access_token"] != first["access_token"]
    old = kit.tokens.decode(first["refresh_token"], expected_type="refresh")
    new = kit.tokens.decode(second["refresh_token"], expected_type="refresh")
    assert (new.fam, new.sub) == (old.fam, old.sub)
    assert new.jti != old.jti
    assert client.get("/me", headers=bearer(second["access_token"])).status_code == 200
    # Either endpoint takes what the other issued.
    other = SENDERS["form" if endpoint == "json" else "json"]
    assert other(client, second["refresh_token"]).status_code == 200


@pytest.mark.parametrize("endpoint", SENDERS)
def test_reused_refresh_token_revokes_the_whole_login(
    kit: AuthApp, client: TestClient, endpoint: str
) -> None:
    send = SENDERS[endpoint]
    first = kit.login(client)
    second = send(client, first["refresh_token"]).json()

    # The old refresh token comes back (stolen, or replayed): refuse it...
    assert_refused(endpoint, send(client, first["refresh_token"]))
    # ...and end the login for everyone holding its tokens, the legitimate user included.
    assert_invalid_token(client.get("/me", headers=bearer(second["access_token"])))
    assert_invalid_token(client.get("/me", headers=bearer(first["access_token"])))
    assert_refused(endpoint, send(client, second["refresh_token"]))

    # Other logins of the same user are not affected.
    other = kit.login(client)
    assert client.get("/me", headers=bearer(other["access_token"])).status_code == 200
    assert send(client, other["refresh_token"]).status_code == 200


@pytest.mark.parametrize("endpoint", SENDERS)
@pytest.mark.parametrize("token", ["not-a-jwt", "access", "foreign", "expired"])
def test_refresh_refuses_bad_tokens(
    kit: AuthApp, client: TestClient, endpoint: str, token: str
) -> None:
    now = int(time.time())
    tokens = {
        "access": kit.login(client)["access_token"],
        "foreign": TokenService(secret="x" * 32).create_refresh_token("1"),
        "expired": jwt.encode(
            {
                "sub": "1",
                "iat": now - 100,
                "exp": now - 1,
                "jti": "e" * 32,
                "type": "refresh",
                "fam": "f",
            },
            SECRET,
            algorithm="HS256",
        ),
    }
    assert_refused(endpoint, SENDERS[endpoint](client, tokens.get(token, token)))


def test_a_refresh_token_over_the_size_limit_is_422_before_decoding(client: TestClient) -> None:
    assert refresh_grant(client, "x" * 8193).status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="no-token"),
        pytest.param({"refresh_token": ""}, id="empty"),
        pytest.param({"refresh_token": "x" * 8193}, id="too-long"),
        pytest.param({"refresh_token": 5}, id="not-a-string"),
    ],
)
def test_refresh_body_is_validated(client: TestClient, body: dict[str, Any]) -> None:
    assert client.post("/auth/refresh", json=body).status_code == 422


def test_refresh_for_a_disabled_user_is_403(kit: AuthApp, client: TestClient) -> None:
    token = kit.login(client)
    kit.users["alice"].active = False
    response = refresh(client, token["refresh_token"])
    assert response.status_code == 403
    assert response.json()["message"] == "Inactive user"


def test_refresh_for_a_deleted_user_is_401(kit: AuthApp, client: TestClient) -> None:
    token = kit.login(client)
    del kit.users["alice"]
    assert_invalid_token(refresh(client, token["refresh_token"]))


def _leeway_kit() -> AuthApp:
    return build_app(tokens=TokenService(secret=SECRET, leeway=60))


def _expired_within_leeway(kind: str, **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "sub": "1",
        "iat": now - 100,
        "exp": now - 5,  # expired, but within the 60 s of leeway
        "jti": f"{kind}-within-leeway",
        "type": kind,
        "scopes": [],
        **claims,
    }
    return jwt.encode(payload, SECRET, algorithm="HS256")


def test_reused_refresh_token_is_caught_within_the_leeway() -> None:
    kit = _leeway_kit()
    token = _expired_within_leeway("refresh", fam="leeway-family")
    with TestClient(kit.app) as client:
        assert refresh(client, token).status_code == 200  # still accepted: leeway
        assert_invalid_token(refresh(client, token))  # replayed: must be caught


def test_logout_within_the_leeway_revokes_the_token() -> None:
    kit = _leeway_kit()
    token = _expired_within_leeway("access")  # no family: only its jti can revoke it
    with TestClient(kit.app) as client:
        assert client.get("/me", headers=bearer(token)).status_code == 200
        assert client.post("/auth/logout", headers=bearer(token)).status_code == 200
        assert_invalid_token(client.get("/me", headers=bearer(token)))


def test_logout_outlasts_the_leeway_of_the_login_refresh_token() -> None:
    # The login's refresh token is never used, so only the family revocation stops it; it
    # must last as long as that token is accepted: exp + leeway.
    kit = build_app(tokens=TokenService(secret=SECRET, access_ttl=1, refresh_ttl=1, leeway=30))
    with TestClient(kit.app) as client:
        token = kit.login(client)
        assert client.post("/auth/logout", headers=bearer(token["access_token"])).status_code == 200
        exp = kit.tokens.decode(token["refresh_token"], expected_type="refresh").exp
        time.sleep(max(0.0, exp - time.time()) + 1.1)  # past exp, well within the leeway
        assert_invalid_token(refresh(client, token["refresh_token"]))


# --- /logout -----------------------------------------------------------------------------


def test_logout_revokes_the_access_token_and_its_login(kit: AuthApp, client: TestClient) -> None:
    token = kit.login(client)
    response = client.post("/auth/logout", headers=bearer(token["access_token"]))
    assert response.status_code == 200
    assert response.json() == {"code": 200, "message": "Logged out", "data": None}

    assert_invalid_token(client.get("/me", headers=bearer(token["access_token"])))
    assert_invalid_token(refresh(client, token["refresh_token"]))
    assert_invalid_token(client.post("/auth/logout", headers=bearer(token["access_token"])))


def test_logout_after_a_refresh_ends_the_rotated_tokens_too(
    kit: AuthApp, client: TestClient
) -> None:
    first = kit.login(client)
    second = refresh(client, first["refresh_token"]).json()
    assert client.post("/auth/logout", headers=bearer(first["access_token"])).status_code == 200
    assert_invalid_token(client.get("/me", headers=bearer(second["access_token"])))
    assert_invalid_token(refresh(client, second["refresh_token"]))


def test_logout_leaves_other_logins_alone(kit: AuthApp, client: TestClient) -> None:
    phone, laptop = kit.login(client), kit.login(client)
    client.post("/auth/logout", headers=bearer(phone["access_token"]))
    assert client.get("/me", headers=bearer(laptop["access_token"])).status_code == 200
    assert refresh(client, laptop["refresh_token"]).status_code == 200


def test_logout_with_a_refresh_token_of_another_login_ends_both(
    kit: AuthApp, client: TestClient
) -> None:
    phone, laptop = kit.login(client), kit.login(client)
    response = client.post(
        "/auth/logout",
        headers=bearer(phone["access_token"]),
        json={"refresh_token": laptop["refresh_token"]},
    )
    assert response.status_code == 200
    assert_invalid_token(refresh(client, laptop["refresh_token"]))
    assert_invalid_token(client.get("/me", headers=bearer(laptop["access_token"])))


def test_logout_cannot_revoke_another_users_tokens(kit: AuthApp, client: TestClient) -> None:
    alice, bob = kit.login(client, "alice"), kit.login(client, "bob")
    response = client.post(
        "/auth/logout",
        headers=bearer(alice["access_token"]),
        json={"refresh_token": bob["refresh_token"]},
    )
    assert response.status_code == 200
    assert refresh(client, bob["refresh_token"]).status_code == 200


@pytest.mark.parametrize("token", ["none", "refresh", "garbage"])
def test_logout_needs_a_valid_access_token(kit: AuthApp, client: TestClient, token: str) -> None:
    login = kit.login(client)
    headers = {
        "none": {},
        "refresh": bearer(login["refresh_token"]),
        "garbage": bearer("not-a-jwt"),
    }[token]
    assert_invalid_token(client.post("/auth/logout", headers=headers))
    # Nothing was revoked by the refused attempt.
    assert client.get("/me", headers=bearer(login["access_token"])).status_code == 200


# --- /token with grant_type=refresh_token (RFC 6749 section 6) ------------------------------


def test_refresh_grant_may_narrow_the_scopes_but_not_widen_them(
    kit: AuthApp, client: TestClient
) -> None:
    login = kit.login(client, "alice", scope="items:read")
    wider = refresh_grant(client, login["refresh_token"], scope="items:read items:write")
    assert_oauth2_error(wider, "invalid_scope")
    # The refused request did not use the token up.
    narrower = refresh_grant(client, login["refresh_token"], scope="items:read")
    assert narrower.status_code == 200, narrower.text
    assert narrower.json()["scope"] == "items:read"
    full = kit.login(client, "alice")
    only_read = refresh_grant(client, full["refresh_token"], scope="items:read").json()
    assert kit.tokens.decode(only_read["access_token"]).scopes == ["items:read"]


@pytest.mark.parametrize("endpoint", SENDERS)
def test_a_refresh_grants_only_the_scopes_the_user_still_has(
    kit: AuthApp, client: TestClient, endpoint: str
) -> None:
    login = kit.login(client, "alice")
    assert login["scope"] == "items:read items:write"
    kit.users["alice"].scopes = ("items:read",)  # an admin cut alice's rights
    response = SENDERS[endpoint](client, login["refresh_token"])
    assert response.status_code == 200, response.text
    rotated = response.json()
    assert rotated["scope"] == "items:read"
    assert kit.tokens.decode(rotated["access_token"]).scopes == ["items:read"]
    assert kit.tokens.decode(rotated["refresh_token"], expected_type="refresh").scopes == [
        "items:read"
    ]
    assert client.post("/items", headers=bearer(rotated["access_token"])).status_code == 403
    # Given back later, a cut scope does not return by itself: the login must be renewed.
    kit.users["alice"].scopes = ("items:read", "items:write")
    again = refresh_grant(client, rotated["refresh_token"]).json()
    assert again["scope"] == "items:read"


@pytest.mark.parametrize(
    ("change", "description"),
    [
        pytest.param("disable", "Inactive user", id="disabled"),
        pytest.param("delete", "Invalid or expired token", id="deleted"),
    ],
)
def test_refresh_grant_for_a_user_who_is_gone_is_invalid_grant(
    kit: AuthApp, client: TestClient, change: str, description: str
) -> None:
    login = kit.login(client)
    if change == "disable":
        kit.users["alice"].active = False
    else:
        del kit.users["alice"]
    assert_oauth2_error(refresh_grant(client, login["refresh_token"]), "invalid_grant", description)


# --- the absolute lifetime of a login ----------------------------------------------------------


def test_rotation_never_extends_a_login_past_session_ttl() -> None:
    kit = build_app(tokens=TokenService(secret=SECRET, refresh_ttl=3600, session_ttl=3))
    with TestClient(kit.app) as client:
        login = kit.login(client)
        first = kit.tokens.decode(login["refresh_token"], expected_type="refresh")
        assert first.auth_time is not None
        end = first.auth_time + 3
        assert first.exp == end  # capped by the session, not refresh_ttl
        assert kit.tokens.decode(login["access_token"]).exp <= end
        assert 0 <= login["expires_in"] <= 3
        time.sleep(1.1)
        rotated = refresh_grant(client, login["refresh_token"]).json()
        second = kit.tokens.decode(rotated["refresh_token"], expected_type="refresh")
        assert (second.auth_time, second.exp) == (first.auth_time, end)  # not moved
        assert kit.tokens.decode(rotated["access_token"]).exp <= end
        time.sleep(max(0.0, end - time.time()) + 1.1)
        assert_oauth2_error(refresh_grant(client, rotated["refresh_token"]), "invalid_grant")
        assert_invalid_token(client.get("/me", headers=bearer(rotated["access_token"])))


def test_a_shortened_session_ttl_ends_older_logins() -> None:
    # Tokens issued under a 30-day session, checked by a service now configured for 1 s.
    before = TokenService(secret=SECRET)
    auth_time = int(time.time()) - 10
    old = before.create_refresh_token("1", family="f", auth_time=auth_time)
    assert before.decode(old, expected_type="refresh").auth_time == auth_time
    kit = build_app(tokens=TokenService(secret=SECRET, session_ttl=1))
    with TestClient(kit.app) as client:
        assert_oauth2_error(refresh_grant(client, old), "invalid_grant")
        assert_invalid_token(refresh(client, old))


def test_tokens_without_auth_time_start_their_session_at_iat(kit: AuthApp) -> None:
    # Refresh tokens made before auth_time existed still rotate, and the session then
    # counts from their iat.
    legacy = kit.tokens.create_refresh_token("1", family="legacy", scopes=["items:read"])
    with TestClient(kit.app) as client:
        response = refresh_grant(client, legacy)
        assert response.status_code == 200, response.text
        claims = kit.tokens.decode(response.json()["refresh_token"], expected_type="refresh")
        assert claims.auth_time == kit.tokens.decode(legacy, expected_type="refresh").iat


@pytest.mark.parametrize("ttl", [0, -1])
def test_session_ttl_must_be_positive(ttl: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenService(secret=SECRET, session_ttl=ttl)


# --- what fails for a while fails before the token is used up -------------------------------


class FlakyStore(MemoryRevocationStore):
    """A revocation store whose next ``fail`` calls of one method answer 503."""

    def __init__(self) -> None:
        super().__init__()
        self.fail: dict[str, int] = {}

    async def revoke(self, jti: str, expires_at: int) -> bool:
        if self.fail.get("revoke"):
            self.fail["revoke"] -= 1
            raise ServiceUnavailable("Token revocation check unavailable")
        return await super().revoke(jti, expires_at)

    async def is_revoked(self, *ids: str) -> bool:
        if self.fail.get("is_revoked"):
            self.fail["is_revoked"] -= 1
            raise ServiceUnavailable("Token revocation check unavailable")
        return await super().is_revoked(*ids)


@pytest.mark.parametrize("endpoint", SENDERS)
@pytest.mark.parametrize("failing", ["user_loader", "is_revoked", "revoke"])
def test_a_503_during_refresh_leaves_the_token_usable(endpoint: str, failing: str) -> None:
    store = FlakyStore()
    kit = build_app(revocation=store)
    original = kit.auth.user_loader
    down = {"user_loader": 0}

    async def flaky_loader(claims: TokenClaims) -> Any:
        if down["user_loader"]:
            down["user_loader"] -= 1
            raise ServiceUnavailable("Database unavailable")  # as fastkit.db answers
        return await original(claims)  # type: ignore[misc]

    kit.auth.user_loader = flaky_loader
    send = SENDERS[endpoint]
    with TestClient(kit.app) as client:
        login = kit.login(client)
        if failing == "user_loader":
            down["user_loader"] = 1
        else:
            store.fail[failing] = 1
        failed = send(client, login["refresh_token"])
        assert failed.status_code == 503, failed.text
        assert "access_token" not in failed.text
        retried = send(client, login["refresh_token"])
        assert retried.status_code == 200, retried.text  # not taken for reuse
        assert client.get("/me", headers=bearer(retried.json()["access_token"])).status_code == 200
        # And the token is used up now: a third use is reuse.
        assert send(client, login["refresh_token"]).status_code in (400, 401)


# --- users as mappings (FastAPI's tutorial) ------------------------------------------------------


def tutorial_app(users: dict[str, Any], **router_options: Any) -> Any:
    """The FastAPI tutorial's ``fake_users_db``: users are plain dicts."""
    hasher = PasswordHasher(argon2__time_cost=1, argon2__memory_cost=1024)
    hashes = {name: hasher.hash(f"{name}-password") for name in users}
    tokens = TokenService(secret=SECRET)

    async def authenticate(username: str, password: str) -> Any:
        user = users.get(username)
        if user is None:
            await hasher.adummy_verify()
            return None
        return user if await hasher.averify(password, hashes[username]) else None

    def load_user(claims: TokenClaims) -> Any:
        return next((u for u in users.values() if u.get("username") == claims.sub), None)

    auth = JWTAuth(tokens, user_loader=load_user)
    app = FastAPI()
    fastkit.setup(app)
    app.include_router(auth_router(auth, authenticate=authenticate, **router_options))

    @app.get("/users/me")
    async def me(user: Annotated[dict[str, Any], Depends(auth.current_user)]) -> dict[str, Any]:
        return user

    return app


def test_plain_dict_users_log_in() -> None:
    users = {
        "johndoe": {
            "username": "johndoe",
            "full_name": "John Doe",
            "email": "johndoe@example.com",
            "disabled": False,
        }
    }
    with TestClient(tutorial_app(users)) as client:
        login = client.post("/auth/token", data=swagger_form("johndoe", "johndoe-password"))
        assert login.status_code == 200, login.text
        me = client.get("/users/me", headers=bearer(login.json()["access_token"]))
        assert me.status_code == 200
        assert me.json()["full_name"] == "John Doe"
        assert refresh_grant(client, login.json()["refresh_token"]).status_code == 200


@pytest.mark.parametrize(
    ("user", "subject"),
    [
        pytest.param({"id": 7, "username": "x"}, "7", id="id-first"),
        pytest.param({"username": "x", "email": "x@example.com"}, "x", id="username"),
        pytest.param({"email": "x@example.com"}, "x@example.com", id="email"),
        pytest.param({"id": None, "username": "", "email": "e@x"}, "e@x", id="skips-empty"),
        pytest.param({"id": 0}, "0", id="zero-is-an-id"),
    ],
)
def test_default_subject_reads_mappings(user: dict[str, Any], subject: str) -> None:
    assert _default_subject(user) == subject


def test_a_user_without_an_id_is_a_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(TypeError, match="pass subject=lambda user"):
        _default_subject({"name": "x"})
    with pytest.raises(TypeError, match="tuple"):
        _default_subject(("x",))
    # Through the router: logged with that message, answered without internals.
    app = tutorial_app({"x": {"name": "x"}})
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/auth/token", data=swagger_form("x", "x-password"))
    assert response.status_code == 500
    assert "Traceback" not in response.text
    assert "subject=lambda user" in caplog.text


# --- a full hash queue ----------------------------------------------------------------------


def test_a_full_hash_queue_answers_503_with_retry_after() -> None:
    hasher = PasswordHasher(
        argon2__time_cost=1, argon2__memory_cost=1024, max_concurrency=1, max_waiting=0
    )
    kit = build_app(hasher=hasher)
    started, release = threading.Event(), threading.Event()
    original = hasher.context.verify_and_update

    def slow(*args: Any, **kwargs: Any) -> Any:
        started.set()
        release.wait(10)
        return original(*args, **kwargs)

    hasher.context.verify_and_update = slow
    with TestClient(kit.app) as client, ThreadPoolExecutor(1) as pool:
        first = pool.submit(
            client.post, "/auth/token", data=swagger_form("alice", "alice-password")
        )
        assert started.wait(10)
        busy = client.post("/auth/token", data=swagger_form("alice", "alice-password"))
        release.set()
        assert first.result(10).status_code == 200
    assert busy.status_code == 503
    assert int(busy.headers["retry-after"]) >= 1
    assert busy.json()["code"] == 503
    assert busy.json()["data"] is None
    assert "access_token" not in busy.text


# --- OpenAPI ----------------------------------------------------------------------------------


def test_openapi_documents_the_token_endpoint(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/auth/token"]["post"]
    form_ref = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    form = schema["components"]["schemas"][form_ref["$ref"].rsplit("/", 1)[1]]
    assert {"grant_type", "username", "password", "scope", "refresh_token"} <= set(
        form["properties"]
    )
    error_ref = operation["responses"]["400"]["content"]["application/json"]["schema"]["$ref"]
    error = schema["components"]["schemas"][error_ref.rsplit("/", 1)[1]]
    assert set(error["required"]) == {"error", "error_description"}
    assert set(error["properties"]["error"]["enum"]) == {
        "invalid_request",
        "invalid_grant",
        "unsupported_grant_type",
        "invalid_scope",
        "slow_down",  # 429: too many failed logins
        "temporarily_unavailable",  # 503: the login throttle cannot count
    }


def test_token_errors_in_the_problem_style_keep_the_rfc_members() -> None:
    kit = build_app()
    fastkit.install_exception_handlers(kit.app, style="problem")
    with TestClient(kit.app) as client:
        response = client.post("/auth/token", data=swagger_form("alice", "nope"))
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert (body["error"], body["error_description"]) == (
        "invalid_grant",
        "Incorrect username or password",
    )
    assert (body["status"], body["detail"]) == (400, "Incorrect username or password")
