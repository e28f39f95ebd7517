"""The todo API through its routes: login, todos, pages, cursors, and who may see what.

Every test that uses ``db_session`` (directly or through ``user``) runs in a transaction
rolled back at its end: the next test starts without its users and todos.
"""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from examples.todo.deps import NEW_USER_SCOPES
from examples.todo.models import User
from fastkit.testing import auth_headers

from .conftest import DEMO_PASSWORD, login


def data(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == status
    return body["data"]


def test_health(client: TestClient) -> None:
    """Readiness (the database answers) and liveness, in application/health+json."""
    ready = client.get("/health")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"][0]["status"] == "pass"
    assert client.get("/health/live").json() == {"status": "pass"}


def test_the_demo_user_logs_in(client: TestClient) -> None:
    me = data(client.get("/users/me", headers=login(client, "demo", DEMO_PASSWORD)))
    assert me["username"] == "demo"


def test_a_wrong_password_is_an_oauth2_error(client: TestClient) -> None:
    response = client.post("/auth/token", data={"username": "demo", "password": "wrong"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_no_token_is_a_401(client: TestClient) -> None:
    response = client.get("/todos")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_create_read_update_delete(client: TestClient, user: dict[str, str]) -> None:
    created = data(client.post("/todos", json={"title": "write tests"}, headers=user), 201)
    assert (created["title"], created["done"]) == ("write tests", False)
    url = f"/todos/{created['id']}"
    assert data(client.get(url, headers=user))["title"] == "write tests"
    assert data(client.patch(url, json={"done": True}, headers=user))["done"] is True
    assert client.delete(url, headers=user).status_code == 204
    assert client.get(url, headers=user).status_code == 404


def test_a_page_sorted_by_title(client: TestClient, user: dict[str, str]) -> None:
    for title in ("c", "a", "b"):
        data(client.post("/todos", json={"title": title}, headers=user), 201)
    page = data(client.get("/todos", params={"page_size": 2, "sort": "title"}, headers=user))
    assert [todo["title"] for todo in page["items"]] == ["a", "b"]
    assert (page["total"], page["pages"]) == (3, 2)


def test_a_cursor_feed_walks_every_todo_once(client: TestClient, user: dict[str, str]) -> None:
    for n in range(5):
        data(client.post("/todos", json={"title": f"todo {n}"}, headers=user), 201)
    seen: list[str] = []
    params: dict[str, Any] = {"page_size": 2, "sort": "title"}
    while True:
        page = data(client.get("/todos/feed", params=params, headers=user))
        seen += [todo["title"] for todo in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == [f"todo {n}" for n in range(5)]


def test_each_test_starts_without_the_last_ones_data(
    client: TestClient, user: dict[str, str]
) -> None:
    # "ann" was registered again by the user fixture: the last test's was rolled back.
    assert data(client.get("/todos", headers=user))["total"] == 0


def test_another_users_todo_is_a_404(client: TestClient, user: dict[str, str]) -> None:
    todo = data(client.post("/todos", json={"title": "mine"}, headers=user), 201)
    data(client.post("/users", json={"username": "bob", "password": "bob's password"}), 201)
    bob = login(client, "bob", "bob's password")
    assert client.get(f"/todos/{todo['id']}", headers=bob).status_code == 404


def test_a_token_made_for_a_user_of_the_test(client: TestClient, db_session: Any) -> None:
    """No login round trip: a user arranged in the database, a real token for it."""
    services = client.app.state.services  # type: ignore[attr-defined]
    db_session.add(User(username="cy", password_hash="-", scopes=NEW_USER_SCOPES))
    client.portal.call(db_session.flush)  # the session runs on the app's event loop
    cy = client.portal.call(db_session.scalar, select(User).where(User.username == "cy"))
    headers = auth_headers(services.auth, str(cy.id), scopes=NEW_USER_SCOPES.split())
    assert data(client.get("/users/me", headers=headers))["username"] == "cy"


@pytest.mark.parametrize(
    ("params", "field"),
    [({"page": 0}, "page"), ({"page_size": 500}, "page_size"), ({"sort": "owner_id"}, "sort")],
)
def test_bad_query_parameters_are_a_422_naming_them(
    client: TestClient, user: dict[str, str], params: dict[str, Any], field: str
) -> None:
    errors = data(client.get("/todos", params=params, headers=user), 422)
    assert [error["loc"] for error in errors] == [["query", field]]


def test_a_retried_post_creates_one_todo(client: TestClient, user: dict[str, str]) -> None:
    """The client lost the answer and sends the POST again with the same Idempotency-Key."""
    headers = {**user, "Idempotency-Key": "buy-milk-1"}
    first = data(client.post("/todos", json={"title": "milk"}, headers=headers), 201)
    retry = client.post("/todos", json={"title": "milk"}, headers=headers)
    assert data(retry, 201) == first
    assert retry.headers["idempotent-replayed"] == "true"
    assert data(client.get("/todos", headers=user))["total"] == 1


def test_a_stale_update_is_refused(client: TestClient, user: dict[str, str]) -> None:
    todo = data(client.post("/todos", json={"title": "milk"}, headers=user), 201)
    etag = client.get(f"/todos/{todo['id']}", headers=user).headers["etag"]
    data(client.patch(f"/todos/{todo['id']}", json={"done": True}, headers=user))
    stale = client.patch(
        f"/todos/{todo['id']}", json={"title": "eggs"}, headers={**user, "If-Match": etag}
    )
    assert stale.status_code == 412
