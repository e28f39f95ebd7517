import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize("text", ["one", "two"])
def test_each_test_starts_empty(client: TestClient, db_session: object, text: str) -> None:
    assert client.get("/notes").json() == []
    assert client.post(f"/notes/{text}").status_code == 201
    assert client.get("/notes").json() == [text]
