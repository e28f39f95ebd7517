"""The items API: pages, the envelope on errors, a business error with its own code."""

from fastapi.testclient import TestClient


def test_lists_a_page_of_items(client: TestClient) -> None:
    response = client.get("/items", params={"page": 1, "page_size": 1})
    assert response.status_code == 200
    assert response.json() == {
        "code": 200,
        "message": "success",
        "data": {
            "items": [{"id": 1, "name": "pen", "stock": 3}],
            "total": 2,
            "page": 1,
            "page_size": 1,
            "pages": 2,
        },
    }
    assert "x-request-id" in response.headers


def test_a_bad_page_size_is_a_422_in_the_envelope(client: TestClient) -> None:
    response = client.get("/items", params={"page_size": 1000})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == 422
    assert [error["loc"] for error in body["data"]] == [["query", "page_size"]]


def test_a_missing_item_is_a_404(client: TestClient) -> None:
    response = client.get("/items/9")
    assert response.status_code == 404
    assert response.json() == {"code": 404, "message": "Item not found", "data": None}


def test_creates_then_takes_an_item(client: TestClient) -> None:
    created = client.post("/items", json={"name": "cap", "stock": 1})
    assert created.status_code == 201
    item = created.json()["data"]
    assert item == {"id": 3, "name": "cap", "stock": 1}

    taken = client.post(f"/items/{item['id']}/take")
    assert taken.json()["data"]["stock"] == 0
    again = client.post(f"/items/{item['id']}/take")
    assert again.status_code == 409
    assert again.json() == {
        "code": 10001,
        "message": "Item is out of stock",
        "data": {"item_id": item["id"]},
    }


def test_each_test_starts_from_the_same_items(client: TestClient) -> None:
    assert client.get("/items").json()["data"]["total"] == 2


def test_an_empty_name_is_refused(client: TestClient) -> None:
    response = client.post("/items", json={"name": ""})
    assert response.status_code == 422
    assert response.json()["data"][0]["loc"] == ["body", "name"]
