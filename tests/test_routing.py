from __future__ import annotations

import enum
from typing import Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel

from fastkit import EnvelopeRoute, OptionalSlashRouter, install_exception_handlers
from fastkit.routing import api_routes, matched_route, route_template, unique_id_from_tag


class Item(BaseModel):
    name: str
    stock: int = 0


ITEMS = [Item(name="pen", stock=3)]


def items_router(router: APIRouter, list_path: str = "") -> APIRouter:
    @router.get(list_path)
    async def list_items() -> list[Item]:
        return ITEMS

    @router.post(list_path, status_code=201)
    async def create_item(item: Item) -> Item:
        return item

    @router.get("/{item_id}")
    async def read_item(item_id: int) -> Item:
        return Item(name=f"item {item_id}")

    return router


def build_app(router: APIRouter) -> FastAPI:
    app = FastAPI()
    install_exception_handlers(app)
    app.include_router(router)
    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(
        build_app(items_router(OptionalSlashRouter(prefix="/items"))), follow_redirects=False
    )


@pytest.mark.parametrize("list_path", ["", "/"], ids=["declared-bare", "declared-slash"])
@pytest.mark.parametrize("url", ["/items", "/items/"], ids=["no-slash", "slash"])
def test_both_spellings_answer_without_redirect(list_path: str, url: str) -> None:
    router = items_router(OptionalSlashRouter(prefix="/items"), list_path)
    client = TestClient(build_app(router), follow_redirects=False)
    response = client.get(url)
    assert response.status_code == 200
    assert response.json() == [{"name": "pen", "stock": 3}]


@pytest.mark.parametrize("url", ["/items/3", "/items/3/"], ids=["no-slash", "slash"])
def test_path_parameter_route_answers_both_spellings(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 200
    assert response.json() == {"name": "item 3", "stock": 0}


@pytest.mark.parametrize("url", ["/items", "/items/"], ids=["no-slash", "slash"])
def test_post_keeps_its_body(client: TestClient, url: str) -> None:
    response = client.post(url, json={"name": "cap", "stock": 2})
    assert response.status_code == 201
    assert response.json() == {"name": "cap", "stock": 2}


@pytest.mark.parametrize("url", ["/items", "/items/"], ids=["no-slash", "slash"])
def test_validation_applies_to_both_spellings(client: TestClient, url: str) -> None:
    response = client.post(url, json={"stock": 2})
    assert response.status_code == 422
    assert response.json()["data"][0]["loc"] == ["body", "name"]


@pytest.mark.parametrize(
    ("list_path", "documented"),
    [pytest.param("", "/items", id="declared-bare"), pytest.param("/", "/items/", id="slash")],
)
def test_openapi_lists_only_the_declared_spelling(list_path: str, documented: str) -> None:
    app = build_app(items_router(OptionalSlashRouter(prefix="/items"), list_path))
    paths = TestClient(app).get("/openapi.json").json()["paths"]
    assert sorted(paths) == sorted([documented, "/items/{item_id}"])
    assert set(paths[documented]) == {"get", "post"}


def test_url_path_for_returns_the_declared_spelling() -> None:
    app = build_app(items_router(OptionalSlashRouter(prefix="/items")))
    assert app.url_path_for("list_items") == "/items"
    assert app.url_path_for("read_item", item_id=3) == "/items/3"


@pytest.mark.parametrize("url", ["/items", "/items/"], ids=["no-slash", "slash"])
def test_envelope_route_class_wraps_once_on_both_spellings(url: str) -> None:
    router = items_router(OptionalSlashRouter(prefix="/items", route_class=EnvelopeRoute))
    client = TestClient(build_app(router), follow_redirects=False)
    listed = client.get(url)
    assert listed.status_code == 200
    assert listed.json() == {
        "code": 200,
        "message": "success",
        "data": [{"name": "pen", "stock": 3}],
    }
    created = client.post(url, json={"name": "cap"})
    assert created.status_code == 201
    assert created.json() == {
        "code": 201,
        "message": "success",
        "data": {"name": "cap", "stock": 0},
    }


def test_envelope_route_class_documents_the_envelope() -> None:
    router = items_router(OptionalSlashRouter(prefix="/items", route_class=EnvelopeRoute))
    openapi = TestClient(build_app(router)).get("/openapi.json").json()
    assert list(openapi["paths"]) == ["/items", "/items/{item_id}"]
    schema = openapi["paths"]["/items"]["get"]["responses"]["200"]["content"]["application/json"]
    assert "Envelope" in schema["schema"]["$ref"]


def test_root_route_without_prefix_registers_once() -> None:
    router = OptionalSlashRouter()

    @router.get("/")
    async def home() -> dict[str, str]:
        return {"page": "home"}

    assert [route.path for route in router.routes] == ["/"]  # type: ignore[attr-defined]
    client = TestClient(build_app(router))
    assert client.get("/").json() == {"page": "home"}
    assert list(client.get("/openapi.json").json()["paths"]) == ["/"]


def test_nested_under_another_prefix() -> None:
    api = APIRouter(prefix="/v1")
    api.include_router(items_router(OptionalSlashRouter(prefix="/items")))
    client = TestClient(build_app(api), follow_redirects=False)
    assert client.get("/v1/items").status_code == 200
    assert client.get("/v1/items/").status_code == 200
    assert client.get("/v1/items/3/").json() == {"name": "item 3", "stock": 0}


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [pytest.param("GET", {}, id="get"), pytest.param("POST", {"json": {"name": "x"}}, id="post")],
)
def test_plain_api_router_redirects_for_comparison(method: str, kwargs: dict[str, Any]) -> None:
    client = TestClient(build_app(items_router(APIRouter(prefix="/items"))), follow_redirects=False)
    response = client.request(method, "/items/", **kwargs)
    assert response.status_code == 307
    assert response.headers["location"] == "http://testserver/items"


# --- route_template, api_routes ----------------------------------------------------------


def template_app() -> FastAPI:
    """Routes declared as ``/{item_id}`` in two routers, under prefixes, and a mounted app."""

    def echo(request: Request) -> dict[str, Any]:
        return {"template": route_template(request.scope)}

    app = FastAPI()
    inner = APIRouter(prefix="/inner")
    inner.get("/{item_id}")(echo)
    outer = APIRouter(prefix="/outer")
    outer.include_router(inner)
    outer.get("/{item_id}")(echo)
    app.include_router(outer, prefix="/v1")
    app.get("/top/{item_id}")(echo)
    sub = FastAPI()
    sub.get("/{item_id}")(echo)
    app.mount("/sub", sub)
    return app


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/top/7", "/top/{item_id}"),
        ("/v1/outer/7", "/v1/outer/{item_id}"),
        ("/v1/outer/inner/7", "/v1/outer/inner/{item_id}"),
        ("/sub/7", "/sub/{item_id}"),
    ],
    ids=["app-route", "included-router", "nested-routers", "mounted-app"],
)
def test_route_template_has_every_prefix_and_no_raw_values(path: str, template: str) -> None:
    with TestClient(template_app()) as client:
        assert client.get(path).json() == {"template": template}


def test_route_template_is_none_before_routing() -> None:
    assert route_template({"type": "http", "path": "/x"}) is None


def test_api_routes_lists_included_routes_with_their_prefixes_and_dependencies() -> None:
    def marker() -> None:
        return None

    router = APIRouter(prefix="/things", dependencies=[Depends(marker)])
    router.get("/{thing_id}")(lambda thing_id: thing_id)
    app = FastAPI()
    app.include_router(router, prefix="/v2")
    [route] = [r for r in api_routes(app) if r.path_format.startswith("/v2")]
    assert route.path_format == "/v2/things/{thing_id}"
    assert route.methods == {"GET"}
    assert marker in [dependency.call for dependency in route.dependant.dependencies]


def test_matched_route_is_one_object_per_route_across_requests() -> None:
    """What the body limit and rate limits key their per-route work by: the same object
    on every request of a route (included routers' too), another for another route."""
    seen: list[Any] = []

    def record(request: Request) -> dict[str, str | None]:
        seen.append(matched_route(request.scope))
        return {"template": route_template(request.scope)}

    app = FastAPI()
    router = APIRouter(prefix="/things")
    router.get("/{thing_id}")(record)
    app.include_router(router)
    app.get("/top/{item_id}")(record)
    with TestClient(app) as client:
        for path in ("/things/1", "/things/2", "/top/1", "/top/2"):
            client.get(path)
    assert seen[0] is seen[1]
    assert seen[2] is seen[3]
    assert seen[0] is not seen[2]
    assert seen[0].path_format == "/things/{thing_id}"
    assert matched_route({"type": "http", "path": "/x"}) is None


# --- unique_id_from_tag: operation ids for generated clients ---------------------------------


class Area(str, enum.Enum):
    billing = "Billing Accounts"


def operation_ids(app: FastAPI) -> dict[str, str]:
    """``"METHOD /path" -> operationId`` of the app's schema."""
    return {
        f"{method.upper()} {path}": operation["operationId"]
        for path, item in app.openapi()["paths"].items()
        for method, operation in item.items()
    }


def test_unique_id_from_tag_names_operations_tag_then_function() -> None:
    app = FastAPI(generate_unique_id_function=unique_id_from_tag)
    todos = APIRouter(prefix="/todos", tags=["todos"])

    @todos.get("")
    async def list_todos() -> list[int]:
        return []

    @todos.post("")
    async def todos_create() -> int:  # already starts with the tag: kept
        return 1

    @app.get("/ping")  # no tag: the function name
    async def ping() -> str:
        return "pong"

    @app.get("/invoices", tags=[Area.billing, "other"])  # an Enum tag, words and case
    async def invoices() -> list[int]:
        return []

    app.include_router(todos)
    assert operation_ids(app) == {
        "GET /todos": "todos_list_todos",
        "POST /todos": "todos_create",
        "GET /ping": "ping",
        "GET /invoices": "billing_accounts_invoices",
    }


def test_auth_router_has_clean_operation_ids() -> None:
    from fastkit.auth import JWTAuth, TokenService, auth_router

    auth: JWTAuth[str] = JWTAuth(
        TokenService(secret="a-routing-test-secret-of-32-bytes-0123"), user_loader=lambda c: "u"
    )
    app = FastAPI()  # FastAPI's own default for the app's routes; the auth router sets its own

    async def authenticate(username: str, password: str) -> None:
        return None

    app.include_router(auth_router(auth, authenticate=authenticate))
    assert sorted(operation_ids(app).values()) == ["auth_login", "auth_logout", "auth_refresh"]
