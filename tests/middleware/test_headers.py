from __future__ import annotations

from typing import Any

import pytest

from fastkit.middleware._headers import set_header


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param(None, [(b"x-id", b"new")], id="no-headers"),
        pytest.param([], [(b"x-id", b"new")], id="empty"),
        pytest.param(
            [(b"content-type", b"text/plain")],
            [(b"content-type", b"text/plain"), (b"x-id", b"new")],
            id="absent",
        ),
        pytest.param(
            [(b"x-id", b"old"), (b"content-type", b"a"), (b"X-ID", b"older")],
            [(b"content-type", b"a"), (b"x-id", b"new")],
            id="replaces-every-spelling",
        ),
        pytest.param(
            ((b"x-idx", b"keep"), (b"x-i", b"keep")),
            [(b"x-idx", b"keep"), (b"x-i", b"keep"), (b"x-id", b"new")],
            id="tuple-and-near-names",
        ),
    ],
)
def test_set_header(headers: Any, expected: list[tuple[bytes, bytes]]) -> None:
    message: dict[str, Any] = {"type": "http.response.start", "status": 200}
    if headers is not None:
        message["headers"] = headers
    set_header(message, b"x-id", b"new")
    assert message["headers"] == expected
