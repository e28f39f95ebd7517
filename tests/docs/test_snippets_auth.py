"""What docs/auth.md claims, run against its snippets."""

import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import anyio
import jwt
import pytest
from fastapi.testclient import TestClient

from fastkit import install_exception_handlers
from fastkit.auth import (
    JWTKey,
    MemoryRevocationStore,
    PasswordHasher,
    RedisRevocationStore,
    TokenError,
    TokenService,
)
from tests.docs._snippets import load, page

PAGE = page("auth.md")
REDIS_URL = os.environ.get("FASTKIT_TEST_REDIS_URL")

INVALID_TOKEN = {"code": 401, "message": "Invalid or expired token", "data": None}
WRONG_CREDENTIALS = {
    "code": 400,
    "message": "Incorrect username or password",
    "data": None,
    "error": "invalid_grant",
    "error_description": "Incorrect username or password",
}
NO_SCOPE = {"code": 403, "message": "Not enough permissions", "data": None}
INACTIVE = {"code": 403, "message": "Inactive user", "data": None}
LOGGED_OUT = {"code": 200, "message": "Logged out", "data": None}
REDIS_DOWN = {"code": 503, "message": "Token revocation check unavailable", "data": None}


def in_page(body: Any) -> bool:
    """True if ``body`` is printed on the page as one-line JSON."""
    return json.dumps(body) in PAGE


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


@pytest.fixture
def snippet() -> ModuleType:
    return load("auth_app")


@pytest.fixture
def c(snippet: ModuleType) -> Iterator[TestClient]:
    with TestClient(snippet.app, raise_server_exceptions=False) as client:
        yield client


def login(c: TestClient, username: str, password: str, scope: str = "") -> dict[str, Any]:
    # As Swagger UI's Authorize dialog posts it.
    response = c.post(
        "/auth/token",
        data={"grant_type": "password", "username": username, "password": password, "scope": scope},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- the router ------------------------------------------------------------------------------


def test_token_is_the_standard_oauth2_json(c: TestClient) -> None:
    response = c.post(
        "/auth/token",
        content="grant_type=password&username=alice&password=wonderland",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["access_token", "token_type", "expires_in", "refresh_token", "scope"]
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert body["scope"] == "items:read items:write"
    for key in ("token_type", "expires_in", "scope"):
        assert f'"{key}": {json.dumps(body[key])}' in PAGE

    access, refresh = claims_of(body["access_token"]), claims_of(body["refresh_token"])
    assert (access["type"], access["sub"], access["iss"]) == ("access", "1", "fastkit-demo")
    assert access["exp"] - access["iat"] == 15 * 60
    assert access["scopes"] == ["items:read", "items:write"]
    assert refresh["type"] == "refresh"
    assert refresh["exp"] - refresh["iat"] == 7 * 24 * 3600
    assert access["fam"] == refresh["fam"]
    assert access["jti"] != refresh["jti"]


def test_requested_scopes_must_be_allowed(c: TestClient) -> None:
    assert login(c, "alice", "wonderland", scope="items:read")["scope"] == "items:read"
    assert login(c, "bob", "builder")["scope"] == "items:read"
    for username, password, scope in [
        ("alice", "wonderland", "items:read admin"),
        ("bob", "builder", "items:write"),
    ]:
        response = c.post(
            "/auth/token", data={"username": username, "password": password, "scope": scope}
        )
        assert (response.status_code, response.json()["error"]) == (400, "invalid_scope")


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", "wrong"), ("nobody", "wonderland"), ("carol", "christmas")],
    ids=["wrong-password", "unknown-user", "inactive-user"],
)
def test_wrong_credentials(c: TestClient, username: str, password: str) -> None:
    # carol is disabled; the snippet's authenticate refuses her like a wrong password.
    response = c.post("/auth/token", data={"username": username, "password": password})
    assert response.status_code == 400
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == WRONG_CREDENTIALS
    assert in_page(WRONG_CREDENTIALS)


def test_token_form_missing_field_is_invalid_request(c: TestClient) -> None:
    response = c.post("/auth/token", data={"username": "alice"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_refresh_rotates(c: TestClient) -> None:
    first = login(c, "alice", "wonderland")
    second = c.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    pair = second.json()
    assert list(pair) == ["access_token", "token_type", "expires_in", "refresh_token", "scope"]
    assert pair["refresh_token"] != first["refresh_token"]
    assert pair["scope"] == "items:read items:write"
    assert claims_of(pair["refresh_token"])["fam"] == claims_of(first["refresh_token"])["fam"]
    assert c.get("/me", headers=bearer(pair["access_token"])).json() == {"username": "alice"}
    third = c.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert third.status_code == 200


def test_refresh_reuse_revokes_the_family(c: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    stolen = login(c, "alice", "wonderland")
    other_device = login(c, "alice", "wonderland")
    rotated = c.post("/auth/refresh", json={"refresh_token": stolen["refresh_token"]}).json()

    with caplog.at_level(logging.WARNING, logger="fastkit.auth"):
        reuse = c.post("/auth/refresh", json={"refresh_token": stolen["refresh_token"]})
    assert reuse.status_code == 401
    assert reuse.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert reuse.json() == INVALID_TOKEN
    assert "Refresh token reuse detected for subject 1" in caplog.messages

    # The whole login is over, for both parties ...
    for token in (stolen["access_token"], rotated["access_token"]):
        assert c.get("/me", headers=bearer(token)).status_code == 401
    again = c.post("/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert again.status_code == 401
    # ... and only that login.
    assert c.get("/me", headers=bearer(other_device["access_token"])).status_code == 200
    fresh = c.post("/auth/refresh", json={"refresh_token": other_device["refresh_token"]})
    assert fresh.status_code == 200


def test_refresh_refuses_an_access_token(c: TestClient) -> None:
    tokens = login(c, "alice", "wonderland")
    response = c.post("/auth/refresh", json={"refresh_token": tokens["access_token"]})
    assert response.status_code == 401
    assert response.json() == INVALID_TOKEN


def test_refresh_checks_the_user_again(c: TestClient, snippet: ModuleType) -> None:
    tokens = login(c, "alice", "wonderland")
    snippet.USERS["alice"].active = False
    response = c.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 403
    assert response.json() == INACTIVE


def test_logout(c: TestClient) -> None:
    tokens = login(c, "bob", "builder")
    response = c.post("/auth/logout", headers=bearer(tokens["access_token"]))
    assert response.status_code == 200
    assert response.json() == LOGGED_OUT
    assert in_page(LOGGED_OUT)
    assert c.get("/me", headers=bearer(tokens["access_token"])).json() == INVALID_TOKEN
    refresh = c.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refresh.status_code == 401
    assert c.post("/auth/logout").status_code == 401


def test_logout_with_the_refresh_token_of_another_login(c: TestClient) -> None:
    phone = login(c, "bob", "builder")
    laptop = login(c, "bob", "builder")
    response = c.post(
        "/auth/logout",
        headers=bearer(laptop["access_token"]),
        json={"refresh_token": phone["refresh_token"]},
    )
    assert response.status_code == 200
    refresh = c.post("/auth/refresh", json={"refresh_token": phone["refresh_token"]})
    assert refresh.status_code == 401


def test_swagger_authorize_is_documented(c: TestClient) -> None:
    openapi = c.get("/openapi.json").json()
    assert openapi["components"]["securitySchemes"] == {
        "OAuth2PasswordBearer": {
            "type": "oauth2",
            "flows": {
                "password": {
                    "scopes": {"items:read": "Read items", "items:write": "Create and edit items"},
                    "tokenUrl": "/auth/token",
                    "refreshUrl": "/auth/token",
                }
            },
        }
    }
    assert openapi["paths"]["/me"]["get"]["security"] == [{"OAuth2PasswordBearer": []}]
    token_schema = openapi["paths"]["/auth/token"]["post"]["responses"]["200"]["content"]
    assert token_schema["application/json"]["schema"]["$ref"].endswith("/TokenResponse")


# --- dependencies ----------------------------------------------------------------------------


def test_current_user_and_scopes(c: TestClient) -> None:
    alice = login(c, "alice", "wonderland")
    assert c.get("/me", headers=bearer(alice["access_token"])).json() == {"username": "alice"}
    created = c.post("/items", headers=bearer(alice["access_token"]))
    assert (created.status_code, created.json()) == (201, {"created_by": "alice"})

    bob = login(c, "bob", "builder")
    refused = c.post("/items", headers=bearer(bob["access_token"]))
    assert refused.status_code == 403
    header = 'Bearer error="insufficient_scope", scope="items:write"'
    assert refused.headers["www-authenticate"] == header
    assert f"`{header}`" in PAGE
    assert refused.json() == NO_SCOPE
    assert in_page(NO_SCOPE)


def forged(snippet: ModuleType, **changes: Any) -> str:
    now = int(time.time())
    payload = {
        "sub": "1",
        "iat": now,
        "nbf": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
        "type": "access",
        "iss": "fastkit-demo",
        "scopes": [],
    }
    key = changes.pop("key", snippet.tokens.keys[0].signing_key)
    payload.update(changes)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, key, algorithm="HS256")


BAD_TOKENS = {
    "garbage": (lambda m: "not-a-jwt", "malformed"),
    "expired": (lambda m: forged(m, iat=1, nbf=1, exp=2), "expired"),
    "other-secret": (lambda m: forged(m, key="x" * 32), "bad_signature"),
    "wrong-issuer": (lambda m: forged(m, iss="elsewhere"), "wrong_issuer"),
    "refresh-token": (lambda m: m.tokens.create_refresh_token("1"), "wrong_type"),
    "no-jti": (lambda m: forged(m, jti=None), "missing_jti"),
    "unknown-user": (lambda m: forged(m, sub="99"), "unknown_user"),
}


@pytest.mark.parametrize(("make", "reason"), BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_refused_tokens_are_one_401(
    c: TestClient, snippet: ModuleType, make: Any, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="fastkit.auth"):
        response = c.get("/me", headers=bearer(make(snippet)))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.json() == INVALID_TOKEN
    assert in_page(INVALID_TOKEN)
    assert f"Token refused: {reason}" in caplog.messages


def test_missing_token_is_401(c: TestClient) -> None:
    response = c.get("/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.json() == INVALID_TOKEN
    assert c.post("/items").status_code == 401


def test_inactive_user_is_403(c: TestClient, snippet: ModuleType) -> None:
    tokens = login(c, "alice", "wonderland")
    snippet.USERS["alice"].active = False
    response = c.get("/me", headers=bearer(tokens["access_token"]))
    assert response.status_code == 403
    assert "www-authenticate" not in response.headers
    assert response.json() == INACTIVE
    assert in_page(INACTIVE)


def test_optional_user(c: TestClient) -> None:
    tokens = login(c, "alice", "wonderland")
    assert c.get("/greeting").json() == "Hello, guest"
    assert c.get("/greeting", headers=bearer(tokens["access_token"])).json() == "Hello, alice"
    refused = c.get("/greeting", headers=bearer("not-a-jwt"))
    assert (refused.status_code, refused.json()) == (401, INVALID_TOKEN)


def test_problem_style_keeps_statuses_and_headers(snippet: ModuleType) -> None:
    install_exception_handlers(snippet.app, style="problem")
    with TestClient(snippet.app) as c:
        bob = login(c, "bob", "builder")
        refused = c.post("/items", headers=bearer(bob["access_token"]))
        missing = c.get("/me")
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["www-authenticate"].startswith('Bearer error="insufficient_scope"')
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer error="invalid_token"'


# --- passwords -------------------------------------------------------------------------------


def test_bcrypt_hash_is_upgraded_on_login(c: TestClient, snippet: ModuleType) -> None:
    legacy = PasswordHasher(["bcrypt"], bcrypt__rounds=4).hash("wonderland")
    snippet.USERS["alice"].password_hash = legacy
    login(c, "alice", "wonderland")
    upgraded = snippet.USERS["alice"].password_hash
    assert upgraded.startswith("$argon2id$")
    assert snippet.hasher.verify("wonderland", upgraded)
    login(c, "alice", "wonderland")
    assert snippet.USERS["alice"].password_hash == upgraded  # argon2 stays as it is


def test_passwords_as_the_page_says(snippet: ModuleType) -> None:
    hasher = snippet.hasher
    stored = hasher.hash("wonderland")
    assert stored.startswith("$argon2id$")
    assert hasher.verify_and_update("wonderland", stored) == (True, None)
    # Weaker settings than the defaults get a new hash too.
    matches, new_hash = PasswordHasher().verify_and_update("wonderland", stored)
    assert matches
    assert new_hash is not None
    assert "m=65536,t=3" in new_hash

    # argon2 reads the whole password; bcrypt only 72 bytes, and longer ones are refused.
    long = "a" * 80
    assert hasher.verify(long, hasher.hash(long))
    assert not hasher.verify("a" * 79, hasher.hash(long))
    legacy = PasswordHasher(["bcrypt"], bcrypt__rounds=4).hash("a" * 72)
    assert hasher.verify("a" * 72, legacy)
    assert not hasher.verify(long, legacy)

    with pytest.raises(ValueError, match="empty password"):
        hasher.hash("")
    assert not hasher.verify("", stored)
    assert not hasher.verify("wonderland", "not a hash")
    hasher.dummy_verify()
    assert 1 <= hasher.max_concurrency <= 4


def test_async_password_methods(snippet: ModuleType) -> None:
    hasher = snippet.hasher

    async def main() -> None:
        stored = await hasher.ahash("wonderland")
        assert await hasher.averify("wonderland", stored)
        assert await hasher.averify_and_update("nope", stored) == (False, None)
        await hasher.adummy_verify()
        with pytest.raises(ValueError, match="empty password"):
            await hasher.ahash("")

    anyio.run(main)


# --- tokens ----------------------------------------------------------------------------------


def test_token_service_as_the_page_says() -> None:
    tokens = TokenService(secret="s" * 32)
    token = tokens.create_access_token("1", scopes=["items:read"], claims={"tenant": "acme"})
    claims = tokens.decode(token)
    assert (claims.sub, claims.scopes, claims.extras) == ("1", ["items:read"], {"tenant": "acme"})
    assert (tokens.access_ttl, tokens.refresh_ttl) == (15 * 60, 7 * 24 * 3600)
    refresh = tokens.create_refresh_token("1")
    assert tokens.decode(refresh, expected_type="refresh").fam
    with pytest.raises(ValueError, match="standard claims"):
        tokens.create_access_token("1", claims={"sub": "2"})
    with pytest.raises(ValueError, match="at least 32 bytes"):
        TokenService(secret="s" * 31)
    with pytest.raises(ValueError, match="its own kid"):
        TokenService(keys=[JWTKey.hmac("a" * 32, kid="k"), JWTKey.hmac("b" * 32, kid="k")])


def test_key_rotation() -> None:
    keys = load("auth_keys")
    with TestClient(keys.app) as c:
        current = keys.tokens.create_access_token("7")
        assert jwt.get_unverified_header(current)["kid"] == "2026-06"
        assert jwt.get_unverified_header(current)["alg"] == "ES256"
        assert c.get("/whoami", headers=bearer(current)).json() == {"sub": "7"}

        # A token signed before the rotation, by the previous RS256 key.
        previous = TokenService(
            keys=[
                JWTKey.asymmetric(
                    kid="2026-01",
                    private_key=keys.previous_private,
                    public_key=keys.previous_public,
                    algorithm="RS256",
                )
            ],
            issuer="https://auth.example.com",
            audience="orders-api",
        )
        old = previous.create_access_token("8")
        assert c.get("/whoami", headers=bearer(old)).json() == {"sub": "8"}

        # A service with public keys only verifies.
        with pytest.raises(RuntimeError, match="only verify"):
            keys.verifier.create_access_token("9")

        # HS256 "signed" with the public key: algorithm confusion, refused.
        confused = jwt.encode(
            claims_of(current), "x" * 32, algorithm="HS256", headers={"kid": "2026-06"}
        )
        assert c.get("/whoami", headers=bearer(confused)).status_code == 401


def test_a_verifier_needs_the_kid() -> None:
    keys = load("auth_keys")
    lone = TokenService(
        public_key=keys.current_public,
        algorithm="ES256",
        issuer="https://auth.example.com",
        audience="orders-api",
    )
    with pytest.raises(TokenError) as refused:
        lone.decode(keys.tokens.create_access_token("7"))
    assert refused.value.reason == "unknown_kid"


def decode_refusals() -> dict[str, tuple[Any, str]]:
    return {
        "garbage": (lambda k: "x.y.z", "malformed"),
        "too-long": (lambda k: "a" * 8193, "malformed"),
        "alg-none": (
            lambda k: jwt.encode({"sub": "1"}, None, algorithm="none"),  # type: ignore[arg-type]
            "alg_none",
        ),
        "hs256": (
            lambda k: jwt.encode({"sub": "1"}, "x" * 32, algorithm="HS256"),
            "algorithm_not_allowed",
        ),
        "unknown-kid": (
            lambda k: TokenService(
                keys=[
                    JWTKey.asymmetric(
                        kid="stolen",
                        private_key=k.current_private,
                        public_key=k.current_public,
                        algorithm="ES256",
                    )
                ]
            ).create_access_token("1"),
            "unknown_kid",
        ),
        "wrong-audience": (
            lambda k: TokenService(
                keys=[k.tokens.keys[0]], issuer="https://auth.example.com", audience="other"
            ).create_access_token("1"),
            "wrong_audience",
        ),
        "wrong-issuer": (
            lambda k: TokenService(
                keys=[k.tokens.keys[0]], issuer="https://evil.example.com", audience="orders-api"
            ).create_access_token("1"),
            "wrong_issuer",
        ),
        "refresh": (lambda k: k.tokens.create_refresh_token("1"), "wrong_type"),
    }


@pytest.mark.parametrize(
    ("make", "reason"), decode_refusals().values(), ids=decode_refusals().keys()
)
def test_decode_refusals(make: Any, reason: str) -> None:
    keys = load("auth_keys")
    with pytest.raises(TokenError) as refused:
        keys.verifier.decode(make(keys))
    assert refused.value.reason == reason
    assert f"`{reason}`" in PAGE


def test_leeway_tolerates_clock_skew() -> None:
    keys = load("auth_keys")
    assert keys.tokens.leeway == 10
    now = int(time.time())
    signer = keys.tokens.keys[0]
    payload = {
        "sub": "1",
        "iat": now,
        "exp": now - 5,  # expired 5 s ago: within the 10 s leeway
        "jti": "j",
        "type": "access",
        "iss": "https://auth.example.com",
        "aud": "orders-api",
    }
    token = jwt.encode(payload, signer.signing_key, algorithm="ES256", headers={"kid": "2026-06"})
    assert keys.tokens.decode(token).sub == "1"
    with pytest.raises(TokenError, match="expired"):
        keys.verifier.decode(token)  # no leeway there


# --- revocation ------------------------------------------------------------------------------


def test_memory_store_is_the_default(snippet: ModuleType) -> None:
    assert isinstance(snippet.auth.revocation, MemoryRevocationStore)


def test_redis_store_is_built_from_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6399/3")
    snippet = load("auth_redis")
    assert isinstance(snippet.revocation, RedisRevocationStore)
    assert snippet.auth.revocation is snippet.revocation


def test_redis_down_fails_closed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens on port 1
    snippet = load("auth_redis")
    with TestClient(snippet.app, raise_server_exceptions=False) as c:
        tokens = login(c, "ann", "secret")  # no token to check yet
        with caplog.at_level(logging.ERROR, logger="fastkit.auth"):
            response = c.post("/auth/logout", headers=bearer(tokens["access_token"]))
        assert response.status_code == 503
        assert response.json() == REDIS_DOWN
        assert in_page(REDIS_DOWN)
        assert c.get("/docs").status_code == 200  # routes without auth keep working
    assert any("Redis unreachable" in message for message in caplog.messages)


@pytest.mark.skipif(REDIS_URL is None, reason="FASTKIT_TEST_REDIS_URL is not set")
def test_redis_logout_is_seen_by_every_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", str(REDIS_URL))
    monkeypatch.setenv("JWT_SECRET", "k" * 32)
    worker_a, worker_b = load("auth_redis"), load("auth_redis")
    prefix = f"fastkit-docs-{uuid.uuid4().hex}:"
    worker_a.revocation.prefix = worker_b.revocation.prefix = prefix
    with (
        TestClient(worker_a.app) as a,
        TestClient(worker_b.app, raise_server_exceptions=False) as b,
    ):
        tokens = login(a, "ann", "secret")
        assert a.post("/auth/logout", headers=bearer(tokens["access_token"])).status_code == 200
        refused = b.post("/auth/logout", headers=bearer(tokens["access_token"]))
        assert (refused.status_code, refused.json()) == (401, INVALID_TOKEN)
        refresh = b.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert refresh.status_code == 401
