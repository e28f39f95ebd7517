"""schemathesis against the todo example's OpenAPI: every operation, bounded, authenticated.

Each generated case is sent with a fresh access token from a real login of the demo user
(one login per case, so that a generated ``/auth/logout`` revokes only that case's token), and
checked for: no 5xx, a documented status code, the documented content type, and a body that
matches the documented schema (the ``{code, message, data}`` envelope included). A stateful
run follows the OpenAPI links (create a todo, then read, patch and delete it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from examples.todo.main import create_app
from examples.todo.settings import Settings
from tests.examples.todo_support import DEMO_PASSWORD, base_env

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Bounded for CI: every operation gets this many examples (positive and negative data).
EXAMPLES = int(os.environ.get("FASTKIT_SCHEMATHESIS_EXAMPLES", "40"))


DATA_DIR = Path(tempfile.mkdtemp(prefix="fastkit-schemathesis-"))
# Built at import: schemathesis' pytest integration reads the schema at collection time.
# Without rate limits: they make answers depend on how many requests came before, which
# Hypothesis cannot replay (its stateful runs fail as FlakyStrategyDefinition); the limits
# have their own tests (test_todo_ratelimit.py).
UNLIMITED = {"write_rate_limit": None, "register_rate_limit": None, "login_throttle": False}
APP = create_app(
    Settings(
        **{key.lower(): value for key, value in base_env(DATA_DIR).items()},
        **UNLIMITED,
        _env_file=None,
    )
)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


AUTHED_STATUSES: defaultdict[str, set[int]] = defaultdict(set)  # what the token run got
CLIENTS: list[TestClient] = []  # the running app's client, while the module's tests run


@pytest.fixture(scope="module", autouse=True)
def todo_app() -> Iterator[FastAPI]:
    with TestClient(APP) as client:  # runs the lifespan: tables and the demo user
        CLIENTS.append(client)
        yield APP
        CLIENTS.clear()
    shutil.rmtree(DATA_DIR, ignore_errors=True)


def auth_headers(app: FastAPI) -> dict[str, str]:
    """A fresh access token from a real login of the demo user (the OAuth2 password form).

    One login per case, so that a generated ``/auth/logout`` revokes only its own token.
    """
    login = CLIENTS[0].post("/auth/token", data={"username": "demo", "password": DEMO_PASSWORD})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_operation_conforms_to_its_schema(case: Any, todo_app: FastAPI) -> None:
    response = case.call_and_validate(headers=auth_headers(todo_app), checks=CHECKS)
    if case.method.upper() == case.operation.method.upper():  # not a 405 probe
        AUTHED_STATUSES[f"{case.method.upper()} {case.path}"].add(response.status_code)


@schema.parametrize()
@settings(
    max_examples=max(5, EXAMPLES // 4),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_operation_without_a_token_conforms_to_its_schema(case: Any) -> None:
    # Protected operations answer 401 in the envelope, as documented in their responses.
    case.call_and_validate(checks=CHECKS)


class TodoWorkflow(schema.as_state_machine()):  # type: ignore[misc]
    """Stateful: schemathesis chains operations through the links it finds or infers
    (a created todo's id into read, patch and delete)."""

    def get_call_kwargs(self, case: Any) -> dict[str, Any]:
        return {"headers": auth_headers(APP)}

    def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
        case.validate_response(response, checks=CHECKS)


TestTodoWorkflow = TodoWorkflow.TestCase
TestTodoWorkflow.settings = settings(
    max_examples=max(5, EXAMPLES // 2),
    stateful_step_count=6,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def test_the_token_run_got_past_authentication() -> None:
    # Not vacuous: with a real login's token, generated requests reached a success on the
    # operations where any valid input succeeds (ids and credentials are random elsewhere).
    if not AUTHED_STATUSES:
        pytest.skip("run together with test_every_operation_conforms_to_its_schema")
    for operation in (
        "GET /users/me",
        "GET /todos",
        "POST /todos",
        "GET /todos/feed",
        "POST /auth/logout",
    ):
        assert any(s < 300 for s in AUTHED_STATUSES[operation]), (operation, AUTHED_STATUSES)
