from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from examples.minimal import main


@pytest.fixture
def client() -> Iterator[TestClient]:
    saved = {key: item.model_copy() for key, item in main.ITEMS.items()}
    with TestClient(main.app, raise_server_exceptions=False) as client:
        yield client
    main.ITEMS.clear()
    main.ITEMS.update(saved)


def test_list_and_read(client: TestClient) -> None:
    listed = client.get("/items").json()
    assert listed["code"] == 200
    assert [item["name"] for item in listed["data"]["items"]] == ["pen", "ink"]
    assert (listed["data"]["total"], listed["data"]["pages"]) == (2, 1)
    assert client.get("/items/1").json() == {
        "code": 200,
        "message": "success",
        "data": {"id": 1, "name": "pen", "stock": 3},
    }


def test_missing_item_is_404_in_envelope(client: TestClient) -> None:
    response = client.get("/items/99")
    assert response.status_code == 404
    assert response.json() == {"code": 404, "message": "Item not found", "data": None}


def test_create_is_201_and_validated(client: TestClient) -> None:
    created = client.post("/items", json={"name": "cap", "stock": 2})
    assert created.status_code == 201
    assert created.json()["code"] == 201
    assert created.json()["data"] == {"id": 3, "name": "cap", "stock": 2}
    bad = client.post("/items", json={"name": "", "stock": -1})
    assert bad.status_code == 422
    assert [e["loc"] for e in bad.json()["data"]] == [["body", "name"], ["body", "stock"]]


def test_custom_app_error_carries_business_code(client: TestClient) -> None:
    assert client.post("/items/2/take").json() == {
        "code": 10001,
        "message": "Item is out of stock",
        "data": {"item_id": 2},
    }
    assert client.post("/items/2/take").status_code == 409
    taken = client.post("/items/1/take")
    assert taken.json()["data"]["stock"] == 2


def test_openapi_documents_the_envelope(client: TestClient) -> None:
    openapi = client.get("/openapi.json").json()
    response = openapi["paths"]["/items/{item_id}"]["get"]["responses"]["200"]
    assert response["content"]["application/json"]["schema"]["$ref"].endswith("/Envelope_Item_")


def test_list_is_paginated_and_validated(client: TestClient) -> None:
    second = client.get("/items", params={"page": 2, "page_size": 1}).json()["data"]
    assert [item["name"] for item in second["items"]] == ["ink"]
    assert (second["page"], second["page_size"], second["pages"]) == (2, 1, 2)
    bad = client.get("/items", params={"page_size": 1000})
    assert bad.status_code == 422
    assert bad.json()["data"][0]["loc"] == ["query", "page_size"]


def test_setup_headers(client: TestClient) -> None:
    response = client.get("/items/1")
    assert len(response.headers["x-request-id"]) == 32
    assert "x-process-time" in response.headers


README_ROW = re.compile(
    r"^\| `(GET|POST) (\S+)`(?: with `(\{.*?\})`)?[^|]*\| `(\d{3})`(?:, `(\{.*\})`)?"
)


def readme_rows() -> list[tuple[str, str, str | None, int, str | None]]:
    readme = Path(main.__file__).with_name("README.md").read_text(encoding="utf-8")
    rows = [m.groups() for line in readme.splitlines() if (m := README_ROW.match(line))]
    return [
        (method, path, body, int(status), answer) for method, path, body, status, answer in rows
    ]


def test_the_readme_table_is_what_the_app_answers(client: TestClient) -> None:
    rows = readme_rows()
    assert len(rows) == 4
    for method, path, body, status, answer in rows:
        response = client.request(method, path, json=None if body is None else json.loads(body))
        assert response.status_code == status, (method, path, response.text)
        if answer is not None:
            assert response.json() == json.loads(answer), (method, path)
