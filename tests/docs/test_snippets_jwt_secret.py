"""The snippets that sign tokens read JWT_SECRET, and have no fixed secret to fall back on.

Without it each one makes a random secret and logs a WARNING: two workers (two loads of the
snippet) then refuse each other's tokens. With it, the given secret signs, with no warning.
"""

from __future__ import annotations

import logging

import jwt
import pytest
from fastapi.testclient import TestClient

from fastkit.auth import TokenError
from tests.docs._snippets import load

SECRET = "a-docs-test-secret-of-at-least-32-bytes-0123"
WARNING = (
    "JWT_SECRET is not set: using a random secret. Tokens stop working at restart "
    "and other workers refuse them; set JWT_SECRET (at least 32 bytes) in production."
)
# Each snippet, and one of its routes that needs a valid token.
SIGNING_SNIPPETS = [
    pytest.param("auth_app", "GET", "/me", id="auth_app"),
    pytest.param("auth_redis", "POST", "/auth/logout", id="auth_redis"),
    pytest.param("websocket_auth", "POST", "/users/2/poke", id="websocket_auth"),
]


@pytest.fixture(autouse=True)
def no_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    # auth_redis: nothing listens on port 1, and a bad signature is refused before any lookup.
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")


def secret_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "JWT_SECRET" in r.getMessage()]


@pytest.mark.parametrize(("name", "method", "path"), SIGNING_SNIPPETS)
def test_without_jwt_secret_a_random_one_is_warned_about(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    name: str,
    method: str,
    path: str,
) -> None:
    monkeypatch.delenv("JWT_SECRET", raising=False)
    with caplog.at_level(logging.WARNING):
        worker_a, worker_b = load(name), load(name)
    warnings = secret_warnings(caplog)
    assert [(r.levelno, r.getMessage()) for r in warnings] == [(logging.WARNING, WARNING)] * 2
    assert warnings[0].name == worker_a.__name__  # the snippet's own logger

    token = worker_a.tokens.create_access_token("1")
    assert worker_a.tokens.decode(token).sub == "1"
    with pytest.raises(TokenError):
        worker_b.tokens.decode(token)
    with TestClient(worker_b.app, raise_server_exceptions=False) as b:
        refused = b.request(method, path, headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401


@pytest.mark.parametrize(("name", "method", "path"), SIGNING_SNIPPETS)
def test_jwt_secret_signs_and_is_not_warned_about(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    name: str,
    method: str,
    path: str,
) -> None:
    monkeypatch.setenv("JWT_SECRET", SECRET)
    with caplog.at_level(logging.WARNING):
        worker_a, worker_b = load(name), load(name)
    assert secret_warnings(caplog) == []
    token = worker_a.tokens.create_access_token("1")
    assert jwt.decode(token, SECRET, algorithms=["HS256"])["sub"] == "1"
    assert worker_b.tokens.decode(token).sub == "1"  # every worker accepts it
