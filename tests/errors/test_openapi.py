"""fastkit.errors.openapi: OpenAPI describes the error bodies really sent."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from fastkit.errors import install_exception_handlers


class Signup(BaseModel):
    username: str = Field(min_length=3)


def client_for(style: str) -> TestClient:
    app = FastAPI()
    install_exception_handlers(app, style=style)  # type: ignore[arg-type]

    @app.get("/typed")
    async def typed(page: int) -> dict[str, int]:
        return {"page": page}

    @app.post("/signup")
    async def signup(body: Signup) -> dict[str, str]:
        return {"username": body.username}

    return TestClient(app)


@pytest.fixture
def client() -> TestClient:
    return client_for("envelope")


@pytest.fixture
def problem() -> TestClient:
    return client_for("problem")


def test_openapi_documents_envelope_validation_body(client: TestClient) -> None:
    openapi = client.get("/openapi.json").json()
    schemas = openapi["components"]["schemas"]
    assert set(schemas["HTTPValidationError"]["properties"]) == {"code", "message", "data"}
    assert set(schemas["ValidationError"]["properties"]) == {"loc", "msg", "type"}
    responses = openapi["paths"]["/typed"]["get"]["responses"]
    assert "application/json" in responses["422"]["content"]


def test_openapi_documents_problem_validation_body(problem: TestClient) -> None:
    openapi = problem.get("/openapi.json").json()
    schemas = openapi["components"]["schemas"]
    assert "errors" in schemas["HTTPValidationError"]["properties"]
    content = openapi["paths"]["/signup"]["post"]["responses"]["422"]["content"]
    assert list(content) == ["application/problem+json"]
    # asking twice returns the same (cached) document
    assert problem.get("/openapi.json").json() == openapi


@pytest.mark.parametrize("style", ["envelope", "problem"])
def test_openapi_documents_the_error_body_of_every_operation(style: str) -> None:
    app = FastAPI()
    install_exception_handlers(app, style=style)  # type: ignore[arg-type]

    @app.get("/plain")
    async def plain() -> dict[str, int]:
        return {"n": 1}

    @app.get("/own", responses={404: {"description": "No such thing"}})
    async def own() -> dict[str, int]:
        return {"n": 1}

    openapi = TestClient(app).get("/openapi.json").json()
    body = openapi["components"]["schemas"]["ErrorResponse"]
    required = {"code", "message", "data"} if style == "envelope" else {"type", "title", "status"}
    assert set(body["required"]) == required
    media = "application/json" if style == "envelope" else "application/problem+json"
    for path in ("/plain", "/own"):
        responses = openapi["paths"][path]["get"]["responses"]
        for code in ("4XX", "5XX"):
            assert responses[code]["content"] == {
                media: {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}
            }
        assert "401" not in responses  # no token required
    own_404 = openapi["paths"]["/own"]["get"]["responses"]["404"]
    assert own_404 == {"description": "No such thing"}  # what the app wrote stays
