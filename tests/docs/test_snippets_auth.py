"""docs/auth.md's snippets: what each one configures and shows.

The behaviour of the blocks themselves (every refusal, rotation, logout, the stores) is
tested in tests/auth/; here only what the snippets add: their users, scopes, endpoints,
keys and settings.
"""

import logging
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

from fastkit.auth import JWTKey, PasswordHasher, RedisRevocationStore, TokenError, TokenService
from tests.docs._snippets import load

INVALID_TOKEN = {"code": 401, "message": "Invalid or expired token", "data": None}
INACTIVE = {"code": 403, "message": "Inactive user", "data": None}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


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


# --- auth_app --------------------------------------------------------------------------------


def test_each_user_logs_in_with_their_scopes(c: TestClient) -> None:
    alice = login(c, "alice", "wonderland")
    assert (alice["scope"], alice["expires_in"]) == ("items:read items:write", 900)
    claims = jwt.decode(alice["access_token"], options={"verify_signature": False})
    assert (claims["sub"], claims["iss"]) == ("1", "fastkit-demo")
    assert login(c, "bob", "builder")["scope"] == "items:read"


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", "wrong"), ("nobody", "wonderland"), ("carol", "christmas")],
    ids=["wrong-password", "unknown-user", "inactive-user"],
)
def test_authenticate_refuses_alike(c: TestClient, username: str, password: str) -> None:
    # carol is disabled: the snippet's authenticate refuses her like a wrong password.
    response = c.post("/auth/token", data={"username": username, "password": password})
    assert response.status_code == 400
    assert response.json()["error_description"] == "Incorrect username or password"


def test_me_items_and_greeting(c: TestClient) -> None:
    alice = bearer(login(c, "alice", "wonderland")["access_token"])
    bob = bearer(login(c, "bob", "builder")["access_token"])
    assert c.get("/me", headers=alice).json() == {"username": "alice"}
    created = c.post("/items", headers=alice)
    assert (created.status_code, created.json()) == (201, {"created_by": "alice"})
    refused = c.post("/items", headers=bob)  # bob has items:read only
    assert refused.status_code == 403
    assert refused.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="items:write"'
    )
    assert c.get("/greeting").json() == "Hello, guest"
    assert c.get("/greeting", headers=bob).json() == "Hello, bob"
    assert (c.get("/me").status_code, c.get("/me").json()) == (401, INVALID_TOKEN)


def test_a_user_disabled_after_login_is_403(c: TestClient, snippet: ModuleType) -> None:
    tokens = login(c, "alice", "wonderland")
    snippet.USERS["alice"].active = False
    response = c.get("/me", headers=bearer(tokens["access_token"]))
    assert (response.status_code, response.json()) == (403, INACTIVE)


def test_a_bcrypt_hash_is_upgraded_on_login(c: TestClient, snippet: ModuleType) -> None:
    legacy = PasswordHasher(["bcrypt"], bcrypt__rounds=4).hash("wonderland")
    snippet.USERS["alice"].password_hash = legacy
    login(c, "alice", "wonderland")
    upgraded = snippet.USERS["alice"].password_hash
    assert upgraded.startswith("$argon2id$")
    login(c, "alice", "wonderland")
    assert snippet.USERS["alice"].password_hash == upgraded  # argon2 stays as it is


# --- auth_keys -------------------------------------------------------------------------------


def test_key_rotation() -> None:
    keys = load("auth_keys")
    with TestClient(keys.app) as c:
        current = keys.tokens.create_access_token("7")
        header = jwt.get_unverified_header(current)
        assert (header["kid"], header["alg"]) == ("2026-06", "ES256")
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
    with pytest.raises(RuntimeError, match="only verify"):
        keys.verifier.create_access_token("9")


def test_leeway_tolerates_clock_skew() -> None:
    keys = load("auth_keys")
    now = int(time.time())
    payload = {
        "sub": "1",
        "iat": now,
        "exp": now - 5,  # expired 5 s ago: within the signer's 10 s leeway
        "jti": "j",
        "type": "access",
        "iss": "https://auth.example.com",
        "aud": "orders-api",
    }
    signer = keys.tokens.keys[0]
    token = jwt.encode(payload, signer.signing_key, algorithm="ES256", headers={"kid": "2026-06"})
    assert keys.tokens.decode(token).sub == "1"
    with pytest.raises(TokenError, match="expired"):
        keys.verifier.decode(token)  # no leeway there


# --- auth_redis ------------------------------------------------------------------------------


def test_redis_store_is_built_from_redis_url(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens on port 1
    snippet = load("auth_redis")
    assert isinstance(snippet.revocation, RedisRevocationStore)
    assert snippet.auth.revocation is snippet.revocation
    with TestClient(snippet.app, raise_server_exceptions=False) as c:
        tokens = login(c, "ann", "secret")  # the snippet's authenticate
        with caplog.at_level(logging.ERROR, logger="fastkit.auth"):
            response = c.post("/auth/logout", headers=bearer(tokens["access_token"]))
    assert response.status_code == 503  # that store, failing closed
