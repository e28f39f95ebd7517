"""The todo example's OpenAPI, generated into a typed Python client by openapi-python-client,
drives a real uvicorn: log in, create, list a page, read a 404 as a typed error.

What it proves: every operation and model generates without a warning (``--fail-on-warning``),
operation ids read ``<tag>_<function>`` (``fastkit.routing.unique_id_from_tag``), and the
envelope's ``code``, ``message`` and ``data`` are required fields, so the client needs no
``Unset`` narrowing to read them.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.examples.todo_support import DEMO_PASSWORD, base_env
from tests.uvicorn_support import free_port, uvicorn_process

try:
    import httpx2 as httpx
except ImportError:  # Python 3.10: httpx2 needs 3.11+
    import httpx  # type: ignore[no-redef]

PACKAGE = "todo_client"


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("todo-generated")
    env = {**os.environ, **base_env(workdir)}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with uvicorn_process(
        ["examples.todo.main:app", "--host", "127.0.0.1", "--port", str(port)],
        log_path=workdir / "out.log",
        ready_url=f"{url}/health",
        env=env,
        startup_timeout=20.0,
    ):
        yield url


@pytest.fixture(scope="module")
def client_package(base_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Generates the client from the running app's /openapi.json; yields its import name."""
    workdir = tmp_path_factory.mktemp("generated-client")
    schema = workdir / "openapi.json"
    schema.write_text(json.dumps(httpx.get(f"{base_url}/openapi.json").json()))
    config = workdir / "config.json"
    # post_hooks: none, so the generator does not need ruff on PATH.
    config.write_text(json.dumps({"package_name_override": PACKAGE, "post_hooks": []}))
    generator = shutil.which("openapi-python-client", path=str(Path(sys.executable).parent))
    assert generator is not None, "openapi-python-client is in the test environment"
    result = subprocess.run(
        [
            generator,
            "generate",
            "--path",
            str(schema),
            "--config",
            str(config),
            "--meta",
            "none",
            "--output-path",
            str(workdir / PACKAGE),
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sys.path.insert(0, str(workdir))
    try:
        yield PACKAGE
    finally:
        sys.path.remove(str(workdir))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def module(package: str, name: str) -> ModuleType:
    return importlib.import_module(f"{package}.{name}")


def test_operation_ids_are_tag_and_function(client_package: str) -> None:
    for name in ("auth.auth_login", "todos.todos_list_todos", "todos.todos_read_todo"):
        assert hasattr(module(client_package, f"api.{name}"), "sync_detailed"), name


def test_generated_client_logs_in_lists_a_page_and_reads_a_404(
    client_package: str, base_url: str
) -> None:
    client_module = module(client_package, "client")
    models = module(client_package, "models")
    login = module(client_package, "api.auth.auth_login")
    create = module(client_package, "api.todos.todos_create_todo")
    list_todos = module(client_package, "api.todos.todos_list_todos")
    read_todo = module(client_package, "api.todos.todos_read_todo")

    with client_module.Client(base_url=base_url) as anonymous:
        token: Any = login.sync(
            client=anonymous,
            body=models.BodyAuthLogin(
                grant_type="password", username="demo", password=DEMO_PASSWORD
            ),
        )
        assert isinstance(token, models.TokenResponse), token
        assert token.token_type.lower() == "bearer"

        # A wrong password: a typed OAuth2 error (RFC 6749), not an untyped dict.
        refused = login.sync(
            client=anonymous,
            body=models.BodyAuthLogin(grant_type="password", username="demo", password="wrong"),
        )
        assert isinstance(refused, models.OAuth2ErrorResponse), refused
        assert str(refused.error) == "invalid_grant"

    with client_module.AuthenticatedClient(base_url=base_url, token=token.access_token) as user:
        for title in ("first", "second", "third"):
            created: Any = create.sync(client=user, body=models.TodoCreate(title=title))
            assert isinstance(created, models.EnvelopeTodoOut), created
            # code, message and data: required in the schema, so plain attributes here.
            assert (created.code, created.message, created.data.title) == (201, "success", title)

        page: Any = list_todos.sync(client=user, page=1, page_size=2, sort="title")
        assert isinstance(page, models.EnvelopePageTodoOut), page
        assert page.code == 200
        assert [todo.title for todo in page.data.items] == ["first", "second"]
        assert (page.data.page, page.data.page_size) == (1, 2)
        assert page.data.total is not None
        assert page.data.total >= 3

        missing = read_todo.sync_detailed(client=user, todo_id=999_999)
        assert missing.status_code == 404
        assert isinstance(missing.parsed, models.ErrorResponse), missing.parsed
        assert missing.parsed.code == 404
        assert "not found" in missing.parsed.message.lower()

        # A bad query parameter: FastAPI's 422, typed too.
        invalid = list_todos.sync_detailed(client=user, page=0)
        assert invalid.status_code == 422
        assert isinstance(invalid.parsed, models.ErrorResponse | models.HTTPValidationError)
