"""fastkit.auth.dependencies through a real app: 401/403 answers, scopes, users, OpenAPI.

No ``from __future__ import annotations``: see ``tests/auth/support.py``.
"""

import base64
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import fastkit
from fastkit import Forbidden, Unauthorized
from fastkit.auth import InvalidToken, JWTAuth, TokenService
from tests.auth.support import (
    INVALID_TOKEN,
    INVALID_TOKEN_CHALLENGE,
    SCOPES,
    SECRET,
    AuthApp,
    bearer,
    build_app,
)

OTHER_SECRET = "another-secret-of-at-least-32-bytes!!"


@pytest.fixture(params=["async", "sync"])
def kit(request: pytest.FixtureRequest) -> AuthApp:
    """The app, with an async or a sync ``user_loader``."""
    return build_app(loader=request.param)


@pytest.fixture
def client(kit: AuthApp) -> Iterator[TestClient]:
    with TestClient(kit.app) as client:
        yield client


def access(kit: AuthApp, user: str = "alice", scopes: tuple[str, ...] = ()) -> str:
    return kit.tokens.create_access_token(str(kit.users[user].id), scopes=scopes)


def _b64url_json(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": "1", "iat": now, "exp": now + 600, "jti": "j" * 32, "type": "access"}
    claims.update(overrides)
    return claims


# Each builds the Authorization header (or none) of a request that must be refused with 401.
# Tokens carry the scope /items needs, so that only the defect under test can refuse them.
READ = ("items:read",)


def _revoked(kit: AuthApp, client: TestClient) -> dict[str, str]:
    token = access(kit, scopes=READ)
    claims = kit.tokens.decode(token)
    assert client.portal is not None
    assert client.portal.call(kit.auth.revocation.revoke, claims.jti, claims.exp) is True
    return bearer(token)


def _revoked_family(kit: AuthApp, client: TestClient) -> dict[str, str]:
    # Another token of the same login is ended: this one was never revoked itself.
    other = kit.tokens.decode(kit.tokens.create_access_token("1", scopes=READ, family="fam-1"))
    assert client.portal is not None
    client.portal.call(kit.auth.revocation_policy.revoke_login, other)
    return bearer(kit.tokens.create_access_token("1", scopes=READ, family="fam-1"))


def _expired(kit: AuthApp, client: TestClient) -> dict[str, str]:
    now = int(time.time())
    claims = _claims(iat=now - 100, exp=now - 1, scopes=list(READ))
    return bearer(jwt.encode(claims, SECRET, algorithm="HS256"))


BAD_REQUESTS: dict[str, Callable[[AuthApp, TestClient], dict[str, str]]] = {
    "missing": lambda kit, client: {},
    "empty-bearer": lambda kit, client: {"Authorization": "Bearer "},
    "other-scheme": lambda kit, client: {"Authorization": "Basic YWxpY2U6cGFzc3dvcmQ="},
    "garbage": lambda kit, client: bearer("not-a-jwt"),
    "wrong-signature": lambda kit, client: bearer(
        TokenService(secret=OTHER_SECRET).create_access_token("1", scopes=READ)
    ),
    "alg-none": lambda kit, client: bearer(
        f"{_b64url_json({'alg': 'none'})}.{_b64url_json(_claims())}."
    ),
    "expired": _expired,
    "refresh-as-access": lambda kit, client: bearer(
        kit.tokens.create_refresh_token("1", scopes=READ)
    ),
    "revoked": _revoked,
    "revoked-family": _revoked_family,
    "unknown-user": lambda kit, client: bearer(kit.tokens.create_access_token("999", scopes=READ)),
}


def assert_invalid_token(response: Any) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == INVALID_TOKEN
    assert response.headers["www-authenticate"] == INVALID_TOKEN_CHALLENGE


# --- current_user / claims ---------------------------------------------------------------


def test_current_user(kit: AuthApp, client: TestClient) -> None:
    response = client.get("/me", headers=bearer(access(kit)))
    assert response.status_code == 200
    assert response.json() == {"id": 1, "username": "alice"}


def test_claims_dependency(kit: AuthApp, client: TestClient) -> None:
    token = kit.tokens.create_access_token("2", scopes=["items:read"])
    body = client.get("/claims", headers=bearer(token)).json()
    assert (body["sub"], body["type"], body["scopes"]) == ("2", "access", ["items:read"])


@pytest.mark.parametrize(
    ("path", "case"),
    [
        pytest.param(path, case, id=f"{path}-{case}")
        for path in ("/me", "/claims", "/items")
        for case in BAD_REQUESTS
        if not (path == "/claims" and case == "unknown-user")  # /claims loads no user
    ],
)
def test_refused_token_is_401_invalid_token(
    kit: AuthApp, client: TestClient, path: str, case: str
) -> None:
    assert_invalid_token(client.get(path, headers=BAD_REQUESTS[case](kit, client)))


def test_all_refusals_look_alike_and_the_reason_is_only_logged(
    kit: AuthApp, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="fastkit.auth"):
        bodies = {
            case: client.get("/me", headers=make(kit, client)).text
            for case, make in BAD_REQUESTS.items()
        }
    assert len(set(bodies.values())) == 1
    assert json.loads(bodies["expired"]) == INVALID_TOKEN
    logged = {r.getMessage() for r in caplog.records if r.name == "fastkit.auth"}
    for reason in ("expired", "revoked", "unknown_user", "bad_signature", "alg_none"):
        assert f"Token refused: {reason}" in logged


def test_invalid_token_raised_by_the_app_is_the_same_401(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = FastAPI()
    fastkit.setup(app)

    @app.get("/tenant")
    async def tenant() -> None:
        raise InvalidToken("wrong_tenant")

    with caplog.at_level(logging.INFO, logger="fastkit.auth"), TestClient(app) as client:
        response = client.get("/tenant")
    assert_invalid_token(response)
    assert "wrong_tenant" not in response.text
    assert "Token refused: wrong_tenant" in {r.getMessage() for r in caplog.records}
    error = InvalidToken("expired")
    assert isinstance(error, Unauthorized)
    assert (error.status_code, error.reason) == (401, "expired")


@pytest.mark.parametrize(
    "header",
    [{"alg": "HS256", "kid": 1}, {"alg": "HS256", "crit": ["exp"]}],
    ids=["kid-int", "crit-unsupported"],
)
def test_bad_header_parameter_is_401_not_500(kit: AuthApp, header: dict[str, Any]) -> None:
    # Anyone can send this: the header is parsed before the signature is checked.
    token = f"{_b64url_json(header)}.{_b64url_json(_claims())}.{_b64url_json('sig')}"
    with TestClient(kit.app, raise_server_exceptions=False) as client:
        assert_invalid_token(client.get("/me", headers=bearer(token)))


# --- is_active ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/me", "/items", "/maybe"])
def test_inactive_user_is_403(kit: AuthApp, client: TestClient, path: str) -> None:
    response = client.get(path, headers=bearer(access(kit, "carol", ("items:read",))))
    assert response.status_code == 403
    assert response.json() == {"code": 403, "message": "Inactive user", "data": None}


def test_user_disabled_after_login_is_403(kit: AuthApp, client: TestClient) -> None:
    token = access(kit)
    assert client.get("/me", headers=bearer(token)).status_code == 200
    kit.users["alice"].active = False
    assert client.get("/me", headers=bearer(token)).status_code == 403


def test_check_user_is_load_users_verdict_for_a_user_loaded_elsewhere(kit: AuthApp) -> None:
    alice = kit.users["alice"]
    assert kit.auth.check_user(alice) is alice
    with pytest.raises(InvalidToken) as unknown:
        kit.auth.check_user(None)
    assert unknown.value.reason == "unknown_user"
    alice.active = False
    with pytest.raises(Forbidden, match="Inactive user"):
        kit.auth.check_user(alice)


# --- scopes ------------------------------------------------------------------------------


def test_scope_present_passes(kit: AuthApp, client: TestClient) -> None:
    token = access(kit, scopes=("items:read", "items:write"))
    assert client.get("/items", headers=bearer(token)).json() == ["hammer"]
    response = client.post("/items", headers=bearer(token))
    assert (response.status_code, response.json()) == (200, {"created_by": "alice"})


@pytest.mark.parametrize(
    ("method", "path", "scopes", "required"),
    [
        pytest.param("GET", "/items", (), "items:read", id="none-of-one"),
        pytest.param("POST", "/items", ("items:read",), "items:read items:write", id="one-of-two"),
        pytest.param("POST", "/items", ("items:write",), "items:read items:write", id="other"),
    ],
)
def test_missing_scope_is_403_insufficient_scope(
    kit: AuthApp,
    client: TestClient,
    method: str,
    path: str,
    scopes: tuple[str, ...],
    required: str,
) -> None:
    response = client.request(method, path, headers=bearer(access(kit, scopes=scopes)))
    assert response.status_code == 403
    assert response.json() == {"code": 403, "message": "Not enough permissions", "data": None}
    assert response.headers["www-authenticate"] == (
        f'Bearer error="insufficient_scope", scope="{required}"'
    )


def test_bad_token_on_a_scoped_route_is_401_not_403(kit: AuthApp, client: TestClient) -> None:
    assert_invalid_token(client.post("/items", headers=bearer("not-a-jwt")))


def test_require_scopes_needs_a_scope(kit: AuthApp) -> None:
    with pytest.raises(ValueError, match="at least one scope"):
        kit.auth.require_scopes()


# --- optional_user -----------------------------------------------------------------------


def test_optional_user_is_none_without_a_token(client: TestClient) -> None:
    response = client.get("/maybe")
    assert (response.status_code, response.json()) == (200, {"user": None})


def test_optional_user_with_a_good_token(kit: AuthApp, client: TestClient) -> None:
    assert client.get("/maybe", headers=bearer(access(kit))).json() == {"user": "alice"}


@pytest.mark.parametrize("case", [c for c in BAD_REQUESTS if c not in ("missing", "other-scheme")])
def test_optional_user_with_a_bad_token_is_401(kit: AuthApp, client: TestClient, case: str) -> None:
    # A token that was sent but is not good is an error, not an anonymous visit.
    assert_invalid_token(client.get("/maybe", headers=BAD_REQUESTS[case](kit, client)))


# --- user_loader, sync and async ---------------------------------------------------------


def test_user_loader_kinds_are_both_called(kit: AuthApp, client: TestClient) -> None:
    assert client.get("/me", headers=bearer(access(kit))).status_code == 200
    [(function, kind, _)] = kit.calls
    assert function == "user_loader"
    assert kind in ("sync", "async")


def test_sync_user_loader_runs_off_the_event_loop() -> None:
    # DESIGN: "Nothing blocks the event loop"; the router already runs a sync
    # authenticate in the threadpool, a sync user_loader (a DB lookup) should be too.
    kit = build_app(loader="sync")
    with TestClient(kit.app) as client:
        assert client.get("/me", headers=bearer(access(kit))).status_code == 200
    assert kit.calls == [("user_loader", "sync", False)]


def test_default_revocation_store_is_per_jwtauth() -> None:
    tokens = TokenService(secret=SECRET)
    first = JWTAuth(tokens, user_loader=lambda claims: None)
    second = JWTAuth(tokens, user_loader=lambda claims: None)
    assert first.revocation is not second.revocation


# --- OpenAPI -----------------------------------------------------------------------------


def test_openapi_has_the_oauth2_password_flow(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"] == {
        "OAuth2PasswordBearer": {
            "type": "oauth2",
            # refreshUrl: the token endpoint also takes grant_type=refresh_token.
            "flows": {
                "password": {
                    "tokenUrl": "/auth/token",
                    "refreshUrl": "/auth/token",
                    "scopes": SCOPES,
                }
            },
        }
    }
    paths = schema["paths"]
    assert paths["/me"]["get"]["security"] == [{"OAuth2PasswordBearer": []}]
    assert paths["/maybe"]["get"]["security"] == [{"OAuth2PasswordBearer": []}]
    assert paths["/items"]["get"]["security"] == [{"OAuth2PasswordBearer": ["items:read"]}]
    assert paths["/items"]["post"]["security"] == [
        {"OAuth2PasswordBearer": ["items:read", "items:write"]}
    ]
    assert paths["/auth/logout"]["post"]["security"] == [{"OAuth2PasswordBearer": []}]
    login = paths["/auth/token"]["post"]
    assert "security" not in login
    assert list(login["requestBody"]["content"]) == ["application/x-www-form-urlencoded"]


def test_openapi_documents_401_and_403_where_tokens_and_scopes_are_required(
    client: TestClient,
) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    error = {"$ref": "#/components/schemas/ErrorResponse"}

    def documented(path: str, method: str) -> dict[str, Any]:
        responses: dict[str, Any] = paths[path][method]["responses"]
        return {
            code: answer["content"]["application/json"]["schema"]
            for code, answer in responses.items()
            if code in {"401", "403", "4XX", "5XX"}
        }

    assert documented("/me", "get") == {"401": error, "4XX": error, "5XX": error}
    assert documented("/items", "post") == {
        "401": error,
        "403": error,
        "4XX": error,
        "5XX": error,
    }
    # The login form needs no token: a wrong password is one of its 4XX answers.
    assert documented("/auth/token", "post") == {"4XX": error, "5XX": error}


def test_a_store_assigned_after_construction_is_the_one_checked(kit: AuthApp) -> None:
    # auth.revocation may be replaced (e.g. by a Redis store at startup): revocations
    # recorded there are honoured, by the dependencies and by the router's policy alike.
    from fastkit.auth import MemoryRevocationStore

    token = access(kit)
    claims = kit.tokens.decode(token)
    replacement = MemoryRevocationStore()
    kit.auth.revocation = replacement
    assert kit.auth.revocation_policy.store is replacement
    with TestClient(kit.app) as client:
        assert client.get("/me", headers=bearer(token)).status_code == 200
        client.portal.call(kit.auth.revocation_policy.revoke_token, claims)  # type: ignore[union-attr]
        assert client.get("/me", headers=bearer(token)).status_code == 401
