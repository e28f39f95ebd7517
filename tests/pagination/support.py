"""Helpers shared by the pagination tests."""

from typing import Any


def assert_422(response: Any, field: str, error_type: str, msg: str = "") -> None:
    """A 422 in the envelope, naming the query parameter: never clamped, never a 500."""
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == 422
    assert body["message"] == "Request validation failed"
    [error] = body["data"]
    assert error["loc"] == ["query", field]
    assert error["type"] == error_type
    assert msg in error["msg"]
