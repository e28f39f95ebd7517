"""fastkit.request_context: where the request id is kept, and how one is made.

The default validator has its property test in tests/middleware/test_request_id_properties.py.
"""

from __future__ import annotations

import random
import re
import unicodedata
import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fastkit.request_context import (
    STATE_HEADER,
    STATE_ID,
    default_request_id_generator,
    escape_for_log,
    get_request_id,
    reset_request_id,
    set_request_id,
)


def test_set_publishes_the_id_and_reset_restores_the_previous_one() -> None:
    scope: dict[str, object] = {"type": "http"}
    assert get_request_id() is None
    outer = set_request_id(scope, "outer", "X-Request-ID")
    inner = set_request_id({}, "inner", "X-Trace")
    assert get_request_id() == "inner"
    reset_request_id(inner)
    assert get_request_id() == "outer"
    reset_request_id(outer)
    assert get_request_id() is None
    # Left in the scope for code outside the context (Starlette's outermost error handler).
    assert scope["state"] == {STATE_ID: "outer", STATE_HEADER: "X-Request-ID"}


def test_default_ids_are_uuid4s_from_the_random_module() -> None:
    state = random.getstate()
    try:
        random.seed(42)
        first = default_request_id_generator()
        random.seed(42)
        again = default_request_id_generator()
    finally:
        random.setstate(state)
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first == again  # predictable: never a token
    assert (uuid.UUID(first).version, uuid.UUID(first).variant) == (4, uuid.RFC_4122)
    assert default_request_id_generator() != default_request_id_generator()


def test_add_response_headers_joins_repeated_names_and_reports_no_taker() -> None:
    from fastkit.request_context import RESPONSE_HEADERS, add_response_headers

    assert add_response_headers({"type": "http"}, {"A": "1"}) is False
    scope: dict[str, Any] = {"type": "http", RESPONSE_HEADERS: {}}
    assert add_response_headers(scope, {"RateLimit": '"a";r=1'}) is True
    assert add_response_headers(scope, {"ratelimit": '"b";r=2', "X-Other": "x"}) is True
    assert scope[RESPONSE_HEADERS] == {"ratelimit": '"a";r=1, "b";r=2', "x-other": "x"}


# --- escape_for_log -----------------------------------------------------------------------


BIDI_AND_SEPARATORS = {chr(code) for code in (0x061C, 0x200E, 0x200F, 0x2028, 0x2029)} | {
    chr(code) for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))
}
ESCAPED_TOO = BIDI_AND_SEPARATORS | {"\\"}


@given(st.text())
def test_escape_for_log_gives_one_line_and_changes_only_control_characters(text: str) -> None:
    escaped = escape_for_log(text)
    assert len(escaped.splitlines()) <= 1  # every line break Python knows is gone
    assert not any(unicodedata.category(c) == "Cc" for c in escaped)
    assert not BIDI_AND_SEPARATORS & set(escaped)
    if not any(unicodedata.category(c) == "Cc" or c in ESCAPED_TOO for c in text):
        assert escaped == text


def test_escape_for_log_writes_visible_escapes() -> None:
    assert escape_for_log("/a\nINFO forged") == "/a\\x0aINFO forged"
    assert escape_for_log("\r\x1b[31m\x7f\x85\u2028") == "\\x0d\\x1b[31m\\x7f\\x85\\u2028"
    assert escape_for_log("/café/ü") == "/café/ü"
    assert escape_for_log("/\\x0aFAKE") == "/\\\\x0aFAKE"  # a literal backslash is doubled
    assert escape_for_log("/\u202enimda") == "/\\u202enimda"  # shown reversed otherwise
