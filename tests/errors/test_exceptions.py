"""fastkit.errors.exceptions: the AppError tree."""

from __future__ import annotations

import pytest

from fastkit.errors import AppError, NotFound, Unauthorized


def test_app_error_defaults_and_overrides() -> None:
    err = NotFound()
    assert (err.status_code, err.message, err.code, err.data, err.headers) == (
        404,
        "Not Found",
        None,
        None,
        None,
    )
    assert str(NotFound("Item 3 not found")) == "Item 3 not found"
    teapot = AppError(status_code=418)
    assert (teapot.status_code, teapot.message) == (418, "I'm a Teapot")
    assert AppError("x", status_code=599).status_code == 599


@pytest.mark.parametrize("status_code", [200, 302, 399, 600, -1], ids=str)
def test_app_error_rejects_non_error_status(status_code: int) -> None:
    with pytest.raises(ValueError, match="between 400 and 599"):
        AppError("x", status_code=status_code)


def test_subclass_keeps_its_own_default_message() -> None:
    class OutOfStock(AppError):
        status_code = 409
        message = "Out of stock"

    assert OutOfStock().message == "Out of stock"
    assert OutOfStock(status_code=410).message == "Out of stock"


def test_unauthorized_headers_are_replaced_not_merged() -> None:
    assert Unauthorized(headers={"X-Reason": "expired"}).headers == {"X-Reason": "expired"}
