"""Run every snippet under docs/snippets/ and check what its page says about it.

Each snippet is imported by file path and its ``app`` driven with a TestClient, so a page
cannot drift from the code. The expected bodies here are the ones printed on the pages.
"""

from __future__ import annotations

import http
import logging
import re
from typing import Any

import pytest
import yaml
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from fastkit import (
    EnvelopeRoute,
)
from tests.docs._snippets import DOCS, SNIPPETS, client, load

SNIPPET_NAMES = [
    # index.md
    "quickstart",
    # responses.md
    "responses_ok",
    "responses_envelope_route",
    "responses_passthrough",
    # errors.md
    "errors_raise",
    "errors_custom",
    "errors_handlers",
    "errors_problem",
    "errors_request_id",
    "errors_own_handler",
    # middleware.md (tested in test_snippets_middleware.py)
    "middleware_stack",
    "request_id",
    "request_id_logging",
    "access_log",
    "cors",
    "body_limit",
    # setup.md (tested in test_snippets_middleware.py)
    "setup_app",
    "spa",
    "slash_router",
    # database.md (tested in test_snippets_database.py)
    "database_app",
    "database_typed",
    "database_background",
    "database_sync",
    # pagination.md (tested in test_snippets_pagination.py)
    "pagination_memory",
    "pagination_sql",
    "pagination_signed",
    "pagination_raw",
    # auth.md (tested in test_snippets_auth.py)
    "auth_app",
    "auth_keys",
    "auth_redis",
    # ratelimit.md (tested in test_snippets_ratelimit.py)
    "ratelimit_route",
    "ratelimit_user",
    "ratelimit_middleware",
    # websocket.md (tested in test_snippets_websocket.py)
    "websocket_chat",
    "websocket_auth",
    "websocket_redis",
    # caching.md (tested in test_snippets_caching.py)
    "caching_app",
    # operations.md (tested in test_snippets_operations.py)
    "operations_app",
    "operations_tracing",
    # testing.md (run as a project of their own in tests/test_testing.py)
    "testing_conftest",
    "testing_test_notes",
]
NOT_APPS = {"testing_conftest", "testing_test_notes"}  # a conftest and a test file
PROBLEM_JSON = "application/problem+json"


def schema_ref(openapi: dict[str, Any], path: str, method: str, status: str = "200") -> str:
    content = openapi["paths"][path][method]["responses"][status]["content"]
    ref: str = content["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[-1]


# --- every snippet is tested and shown -------------------------------------------------


def test_every_snippet_file_is_covered() -> None:
    assert sorted(path.stem for path in SNIPPETS.glob("*.py")) == sorted(SNIPPET_NAMES)


def test_every_snippet_is_included_in_a_page() -> None:
    pages = "\n".join(page.read_text(encoding="utf-8") for page in DOCS.glob("*.md"))
    included = set(re.findall(r'^--8<-- "([^"]+)\.py"$', pages, flags=re.MULTILINE))
    assert included == set(SNIPPET_NAMES)


def _nav_pages(entries: list[dict[str, Any]]) -> list[str]:
    """The pages of a mkdocs ``nav``, sections (a list instead of a page) flattened."""
    pages: list[str] = []
    for entry in entries:
        for value in entry.values():
            pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_every_page_is_in_the_nav() -> None:
    config = yaml.safe_load((DOCS.parent / "mkdocs.yml").read_text(encoding="utf-8"))
    pages = [path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md")]
    assert sorted(_nav_pages(config["nav"])) == sorted(
        page for page in pages if not page.startswith("snippets/")
    )


@pytest.mark.parametrize("name", [name for name in SNIPPET_NAMES if name not in NOT_APPS])
def test_snippet_defines_a_fastapi_app(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # What a snippet reads from the environment, as the page tells the reader to set it.
    monkeypatch.setenv("SECRET_KEY", "a-snippet-test-secret-of-32-bytes-0123456789")
    assert isinstance(load(name).app, FastAPI)


# --- index.md: quickstart ----------------------------------------------------------------


def test_quickstart() -> None:
    with client("quickstart") as c:
        found = c.get("/items/1")
        assert found.status_code == 200
        assert found.json() == {"code": 200, "message": "success", "data": {"id": 1, "name": "pen"}}

        missing = c.get("/items/9")
        assert missing.status_code == 404
        assert missing.json() == {"code": 404, "message": "Item not found", "data": None}

        invalid = c.get("/items/x")
        assert invalid.status_code == 422
        assert invalid.json() == {
            "code": 422,
            "message": "Request validation failed",
            "data": [
                {
                    "loc": ["path", "item_id"],
                    "msg": "Input should be a valid integer, unable to parse string as an integer",
                    "type": "int_parsing",
                }
            ],
        }

        listed = c.get("/items").json()
        assert listed["data"] == [{"id": 1, "name": "pen"}, {"id": 2, "name": "ink"}]
        openapi = c.get("/openapi.json").json()
        assert schema_ref(openapi, "/items/{item_id}", "get") == "Envelope_Item_"
        envelope = openapi["components"]["schemas"]["Envelope_Item_"]
        assert {"$ref": "#/components/schemas/Item"} in envelope["properties"]["data"]["anyOf"]


# --- responses.md ------------------------------------------------------------------------


def test_responses_ok() -> None:
    with client("responses_ok") as c:
        one = c.get("/items/3")
        assert one.status_code == 200
        assert one.json() == {"code": 200, "message": "success", "data": {"id": 3, "name": "pen"}}

        many = c.get("/items")
        assert many.json() == {
            "code": 200,
            "message": "2 items",
            "data": [{"id": 1, "name": "pen"}, {"id": 2, "name": "ink"}],
        }

        created = c.post("/items", json={"id": 5, "name": "cap"})
        assert created.status_code == 201
        assert created.json() == {
            "code": 201,
            "message": "created",
            "data": {"id": 5, "name": "cap"},
        }

        openapi = c.get("/openapi.json").json()
        assert schema_ref(openapi, "/items/{item_id}", "get") == "Envelope_Item_"
        assert schema_ref(openapi, "/items", "get") == "Envelope_list_Item__"
        assert schema_ref(openapi, "/items", "post", "201") == "Envelope_Item_"
        envelope = openapi["components"]["schemas"]["Envelope_Item_"]
        assert set(envelope["properties"]) == {"code", "message", "data"}


def test_envelope_defaults() -> None:
    module = load("responses_ok")
    assert module.Envelope[module.Item]().model_dump() == {
        "code": 200,
        "message": "success",
        "data": None,
    }


def test_responses_envelope_route() -> None:
    with client("responses_envelope_route") as c:
        read = c.get("/items/1")
        assert read.status_code == 200
        assert read.json() == {
            "code": 200,
            "message": "success",
            "data": {"id": 1, "name": "pen", "supplier_email": "sales@example.com"},
        }

        created = c.post("/items", json={"name": "cap"})
        assert created.status_code == 201
        assert created.json() == {
            "code": 201,
            "message": "success",
            "data": {"id": 2, "name": "cap", "supplier_email": "unknown@example.com"},
        }

        public = c.get("/items/1/public")
        assert public.json() == {
            "code": 200,
            "message": "success",
            "data": {"id": 1, "name": "pen"},
        }

        listed = c.get("/items")
        assert listed.json()["data"] == [
            {"id": 1, "name": "pen", "supplier_email": "sales@example.com"}
        ]

        # Errors are not wrapped by the route; the handlers answer them in the same shape.
        missing = c.get("/items/9")
        assert missing.status_code == 404
        assert missing.json() == {"code": 404, "message": "Item not found", "data": None}

        openapi = c.get("/openapi.json").json()
        assert schema_ref(openapi, "/items", "get") == "Envelope_list_Item__"
        assert schema_ref(openapi, "/items", "post", "201") == "Envelope_Item_"
        assert schema_ref(openapi, "/items/{item_id}", "get") == "Envelope_Item_"


def test_app_wide_route_class() -> None:
    app = FastAPI()
    app.router.route_class = EnvelopeRoute

    @app.get("/ping")
    async def ping() -> str:
        return "pong"

    assert TestClient(app).get("/ping").json() == {
        "code": 200,
        "message": "success",
        "data": "pong",
    }


class NotedItem(BaseModel):
    id: int
    note: str | None = None


def test_exclude_none_and_defaults_apply_to_the_envelope() -> None:
    router = APIRouter(route_class=EnvelopeRoute)

    @router.get("/items/{item_id}", response_model_exclude_none=True)
    async def read_item(item_id: int) -> NotedItem | None:
        return None if item_id == 0 else NotedItem(id=item_id)

    @router.get("/ping", response_model_exclude_defaults=True)
    async def ping() -> str:
        return "pong"

    app = FastAPI()
    app.include_router(router)
    c = TestClient(app)
    assert c.get("/items/0").json() == {"code": 200, "message": "success"}
    assert c.get("/items/1").json() == {"code": 200, "message": "success", "data": {"id": 1}}
    assert c.get("/ping").json() == {"data": "pong"}


def test_responses_passthrough() -> None:
    with client("responses_passthrough") as c:
        featured = c.get("/featured")
        assert featured.json() == {
            "code": 20001,
            "message": "featured today",
            "data": {"id": 1, "name": "pen"},
        }

        text = c.get("/items/1/label", params={"text": True})
        assert text.status_code == 200
        assert text.headers["content-type"].startswith("text/plain")
        assert text.text == "item 1: pen"
        wrapped = c.get("/items/1/label")
        assert wrapped.json() == {
            "code": 200,
            "message": "success",
            "data": {"id": 1, "name": "pen"},
        }

        csv = c.get("/export.csv")
        assert csv.headers["content-type"].startswith("text/csv")
        assert csv.text == "id,name\n1,pen\n"

        stream = c.get("/items/stream")
        assert stream.headers["content-type"] == "application/jsonl"
        assert stream.text == '{"id":1,"name":"pen"}\n{"id":2,"name":"ink"}\n'

        deleted = c.delete("/items/3")
        assert (deleted.status_code, deleted.content) == (204, b"")

        page = c.get("/hello")
        assert page.headers["content-type"].startswith("text/html")
        assert page.text == "<h1>Hello</h1>"


# --- errors.md -----------------------------------------------------------------------------


def test_errors_raise() -> None:
    with client("errors_raise") as c:
        missing = c.get("/items/3")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/json"
        assert missing.json() == {"code": 404, "message": "Item 3 not found", "data": None}

        taken = c.post("/users")
        assert taken.status_code == 409
        assert taken.json() == {
            "code": 40901,
            "message": "Username taken",
            "data": {"field": "username"},
        }

        anonymous = c.get("/me")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert anonymous.json() == {"code": 401, "message": "Not authenticated", "data": None}

        limited = c.get("/search")
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "30"
        assert limited.json() == {"code": 429, "message": "Too Many Requests", "data": None}


def test_errors_custom() -> None:
    with client("errors_custom") as c:
        refused = c.post("/payments", params={"amount": 5})
        assert refused.status_code == 402
        assert refused.json() == {
            "code": 10001,
            "message": "Insufficient funds",
            "data": {"balance": 3},
        }
        assert c.post("/payments", params={"amount": 2}).json() == {"balance": 1}

        gone = c.get("/legacy")
        assert gone.status_code == 410
        assert gone.json() == {"code": 410, "message": "Gone", "data": None}


SIGNUP_ERRORS = [
    {
        "loc": ["body", "username"],
        "msg": "String should have at least 3 characters",
        "type": "string_too_short",
    },
    {
        "loc": ["body", "password"],
        "msg": "String should have at least 8 characters",
        "type": "string_too_short",
    },
]


ORIGIN = "https://app.example.com"


def test_errors_request_id(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="fastkit.errors"), client("errors_request_id") as c:
        crash = c.get("/crash", headers={"X-Request-ID": "req-42", "Origin": ORIGIN})
        generated = c.get("/crash")
    assert crash.status_code == 500
    assert crash.headers["x-request-id"] == "req-42"
    assert crash.headers["access-control-allow-origin"] == ORIGIN
    assert crash.json() == {
        "code": 500,
        "message": "Internal Server Error",
        "data": None,
        "request_id": "req-42",
    }
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["x-request-id"])
    assert generated.json()["request_id"] == generated.headers["x-request-id"]
    assert len([r for r in caplog.records if r.name == "fastkit.errors"]) == 2  # once each


def test_errors_problem() -> None:
    with client("errors_problem") as c:
        taken = c.post("/signup", json={"username": "admin", "password": "long enough"})
        assert taken.status_code == 409
        assert taken.headers["content-type"] == PROBLEM_JSON
        assert taken.json() == {
            "type": "about:blank",
            "title": "Conflict",
            "status": 409,
            "detail": "Username taken",
            "instance": "/signup",
            "code": 40901,
            "data": {"field": "username"},
        }

        invalid = c.post("/signup", json={"username": "al"})
        assert invalid.status_code == 422
        assert invalid.headers["content-type"] == PROBLEM_JSON
        assert invalid.json() == {
            "type": "about:blank",
            "title": http.HTTPStatus(422).phrase,  # see the note on the page
            "status": 422,
            "detail": "Request validation failed",
            "instance": "/signup",
            "errors": [
                SIGNUP_ERRORS[0],
                {"loc": ["body", "password"], "msg": "Field required", "type": "missing"},
            ],
        }

        crash = c.get("/crash")
        assert crash.status_code == 500
        assert crash.headers["content-type"] == PROBLEM_JSON
        assert crash.json() == {
            "type": "about:blank",
            "title": "Internal Server Error",
            "status": 500,
            "detail": "Internal Server Error",
            "instance": "/crash",
        }

        expired = c.get("/token")
        assert expired.status_code == 401
        assert expired.headers["content-type"] == PROBLEM_JSON
        assert expired.headers["www-authenticate"] == "Bearer"
        assert expired.json() == {
            "type": "about:blank",
            "title": "Unauthorized",
            "status": 401,
            "detail": "Token expired",
            "instance": "/token",
        }

        missing = c.get("/nowhere")
        assert (missing.status_code, missing.headers["content-type"]) == (404, PROBLEM_JSON)
        assert missing.json()["detail"] == "Not Found"

        wrong = c.delete("/token")
        assert (wrong.status_code, wrong.headers["content-type"]) == (405, PROBLEM_JSON)
        assert wrong.headers["allow"] == "GET"
        assert wrong.json()["title"] == "Method Not Allowed"


def test_errors_own_handler() -> None:
    with client("errors_own_handler") as c:
        checkout = c.post("/checkout")
        assert checkout.status_code == 503
        assert checkout.json() == {"code": 50301, "message": "Payments are down", "data": None}

        refund = c.post("/refund")
        assert refund.status_code == 503
        assert refund.headers["retry-after"] == "60"
        assert refund.json() == {
            "code": 503,
            "message": "Payments are down, retry later",
            "data": None,
        }
