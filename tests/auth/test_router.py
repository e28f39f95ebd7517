"""fastkit.auth.router through a real app: login form, refresh rotation and reuse, logout.

No ``from __future__ import annotations``: see ``tests/auth/support.py``.
"""

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import jwt
import pytest
from fastapi.testclient import TestClient

from fastkit.auth import TokenService
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
    response = client.post(
        "/auth/token", data={"username": "alice", "password": "alice-password"}
    )
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


def test_refresh_rotates_the_pair(kit: AuthApp, client: TestClient) -> None:
    first = kit.login(client, scope="items:read")
    response = refresh(client, first["refresh_token"])
    assert response.status_code == 200, response.text
    second = response.json()
    assert set(second) == TOKEN_KEYS
    assert second["scope"] == "items:read"  # the login's scopes, not more
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]

    old = kit.tokens.decode(first["refresh_token"], expected_type="refresh")
    new = kit.tokens.decode(second["refresh_token"], expected_type="refresh")
    assert new.fam == old.fam
    assert new.jti != old.jti

    assert client.get("/me", headers=bearer(second["access_token"])).status_code == 200
    third = refresh(client, second["refresh_token"])
    assert third.status_code == 200


def test_reused_refresh_token_revokes_the_whole_login(kit: AuthApp, client: TestClient) -> None:
    first = kit.login(client)
    second = refresh(client, first["refresh_token"]).json()

    # The old refresh token comes back (stolen, or replayed): refuse it...
    assert_invalid_token(refresh(client, first["refresh_token"]))
    # ...and end the login for everyone holding its tokens, the legitimate user included.
    assert_invalid_token(client.get("/me", headers=bearer(second["access_token"])))
    assert_invalid_token(client.get("/me", headers=bearer(first["access_token"])))
    assert_invalid_token(refresh(client, second["refresh_token"]))

    # Other logins of the same user are not affected.
    other = kit.login(client)
    assert client.get("/me", headers=bearer(other["access_token"])).status_code == 200
    assert refresh(client, other["refresh_token"]).status_code == 200


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("not-a-jwt", id="garbage"),
        pytest.param("access", id="access-token"),
        pytest.param("foreign", id="other-secret"),
        pytest.param("expired", id="expired"),
    ],
)
def test_refresh_refuses_bad_tokens(kit: AuthApp, client: TestClient, token: str) -> None:
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
    assert_invalid_token(refresh(client, tokens.get(token, token)))


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
