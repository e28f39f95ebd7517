"""A table of hand-picked malformed HTTP inputs against the todo example and a bare app.

Each case is sent to the todo example or to a bare ``setup(FastAPI())`` app and must be
answered with the status the docs give for it (errors.md, pagination.md, auth.md, the todo
README), in the envelope ``{"code": <status>, "message": ..., "data": ...}``, with no
traceback, exception path, database library or server path in the body, and a fresh
``X-Request-ID`` whenever the one sent is not valid. The todo app's rows are compared before
and after every case (a refused request changes nothing) and the app must still answer a
valid request afterwards.

The case ids start with the part of the request: query, path, json, form, headers, cookies.
The websocket table is in ``test_chat_malformed.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

from tests.examples.malformed_support import (
    BAD_SIGNATURE,
    BAD_VALUE,
    BODY_PARSE,
    INACTIVE,
    INVALID_TOKEN,
    METHOD_NOT_ALLOWED,
    NEEDS_CREDENTIALS,
    NO_SCOPE,
    NOT_BASE64,
    NOT_FOUND,
    OTHER_SORT,
    PASSWORD,
    SESSION_ID,
    SIGNED_HERE,
    TAKEN,
    TODO_NOT_FOUND,
    UNREADABLE,
    UNSUPPORTED_GRANT,
    VALIDATION,
    VALUE_REJECTED,
    WRONG_CREDENTIALS,
    WRONG_TYPE,
    HTTPCase,
    TodoWorld,
    assert_clean_error,
    b64url,
    create_bare_app,
    fill,
    send,
    todo_world,
)

if TYPE_CHECKING:
    from _pytest.mark.structures import ParameterSet  # what pytest.param returns

JSON = (("Content-Type", "application/json"),)
FORM = (("Content-Type", "application/x-www-form-urlencoded"),)
BODY = ("body",)
NEW_TODO = b'{"title": "sent with the wrong content type"}'


def todo(
    case_id: str,
    method: str,
    url: str,
    status: int,
    message: str | None = None,
    *,
    auth: str | None = "@ACCESS@",
    **kwargs: Any,
) -> ParameterSet:
    """A request to the todo example, as alice unless ``auth`` says otherwise."""
    return pytest.param(
        HTTPCase("todo", method, url, status, message, auth=auth, **kwargs), id=case_id
    )


def bare(
    case_id: str, method: str, url: str, status: int, message: str | None = None, **kwargs: Any
) -> ParameterSet:
    """A request to the bare ``setup(FastAPI())`` app."""
    return pytest.param(HTTPCase("bare", method, url, status, message, **kwargs), id=case_id)


def cursor(payload: str | bytes) -> str:
    """An unsigned cursor around ``payload`` (pagination.md: base64url JSON)."""
    return b64url(payload.encode() if isinstance(payload, str) else payload)


def keys(*values: Any, order: str = "id", direction: str = "n") -> str:
    return cursor(json.dumps({"k": list(values), "o": order, "d": direction}))


# --- query -------------------------------------------------------------------------------

Q_PAGE = ("query", "page")
Q_SIZE = ("query", "page_size")
Q_SORT = ("query", "sort")
Q_DONE = ("query", "done")
Q_CURSOR = ("query", "cursor")
Q_FEED_SIZE = ("query", "page_size")

QUERY = [
    todo("query-page-zero", "GET", "/todos?page=0", 422, VALIDATION, loc=Q_PAGE),
    todo("query-page-negative", "GET", "/todos?page=-1", 422, VALIDATION, loc=Q_PAGE),
    todo("query-page-over-max", "GET", "/todos?page=1000001", 422, VALIDATION, loc=Q_PAGE),
    todo("query-page-huge", "GET", "/todos?page=" + "9" * 23, 422, VALIDATION, loc=Q_PAGE),
    todo(
        "query-page-10k-digits", "GET", "/todos?page=" + "9" * 10_000, 422, VALIDATION, loc=Q_PAGE
    ),
    todo("query-page-float", "GET", "/todos?page=1.5", 422, VALIDATION, loc=Q_PAGE),
    todo("query-page-exponent", "GET", "/todos?page=1e3", 422, VALIDATION, loc=Q_PAGE),
    todo("query-page-empty", "GET", "/todos?page=", 422, VALIDATION, loc=Q_PAGE),
    todo("query-page-word", "GET", "/todos?page=two", 422, VALIDATION, loc=Q_PAGE),
    todo("query-page-arabic-digit", "GET", "/todos?page=%D9%A1", 422, VALIDATION, loc=Q_PAGE),
    todo("query-page-nul", "GET", "/todos?page=%00", 422, VALIDATION, loc=Q_PAGE),
    todo("query-page-bad-percent", "GET", "/todos?page=%zz", 422, VALIDATION, loc=Q_PAGE),
    todo(
        "query-page-repeated-bad-last", "GET", "/todos?page=1&page=x", 422, VALIDATION, loc=Q_PAGE
    ),
    todo(
        "query-page-sql-injection",
        "GET",
        "/todos?page=1%3B%20DROP%20TABLE%20todo_items",
        422,
        VALIDATION,
        loc=Q_PAGE,
    ),
    todo("query-page-size-zero", "GET", "/todos?page_size=0", 422, VALIDATION, loc=Q_SIZE),
    todo("query-page-size-over-max", "GET", "/todos?page_size=101", 422, VALIDATION, loc=Q_SIZE),
    todo("query-page-size-negative", "GET", "/todos?page_size=-20", 422, VALIDATION, loc=Q_SIZE),
    todo("query-page-size-bool", "GET", "/todos?page_size=true", 422, VALIDATION, loc=Q_SIZE),
    todo(
        "query-page-size-repeated-bad-last",
        "GET",
        "/todos?page_size=5&page_size=abc",
        422,
        VALIDATION,
        loc=Q_SIZE,
    ),
    todo(
        "query-page-and-size-both-out-of-range",
        "GET",
        "/todos?page=0&page_size=500",
        422,
        VALIDATION,
        loc=Q_SIZE,
    ),
    todo("query-sort-unknown-field", "GET", "/todos?sort=price", 422, VALIDATION, loc=Q_SORT),
    todo(
        "query-sort-real-column-not-allowed",
        "GET",
        "/todos?sort=owner_id",
        422,
        VALIDATION,
        loc=Q_SORT,
    ),
    todo("query-sort-listed-twice", "GET", "/todos?sort=title,-title", 422, VALIDATION, loc=Q_SORT),
    todo("query-sort-dash-only", "GET", "/todos?sort=-", 422, VALIDATION, loc=Q_SORT),
    todo("query-sort-double-dash", "GET", "/todos?sort=--title", 422, VALIDATION, loc=Q_SORT),
    todo("query-sort-empty-part", "GET", "/todos?sort=title,,done", 422, VALIDATION, loc=Q_SORT),
    todo(
        "query-sort-sql-direction", "GET", "/todos?sort=title%20DESC", 422, VALIDATION, loc=Q_SORT
    ),
    todo(
        "query-sort-qualified-column",
        "GET",
        "/todos?sort=todo_items.title",
        422,
        VALIDATION,
        loc=Q_SORT,
    ),
    todo(
        "query-sort-sql-injection",
        "GET",
        "/todos?sort=title%3B%20DROP%20TABLE%20todo_items--",
        422,
        VALIDATION,
        loc=Q_SORT,
    ),
    todo(
        "query-sort-quote-injection",
        "GET",
        "/todos?sort=%27%20OR%20%271%27%3D%271",
        422,
        VALIDATION,
        loc=Q_SORT,
    ),
    todo(
        "query-sort-over-500-chars",
        "GET",
        "/todos?sort=" + "title," * 100,
        422,
        VALIDATION,
        loc=Q_SORT,
    ),
    todo("query-sort-10k-chars", "GET", "/todos?sort=" + "a" * 10_000, 422, VALIDATION, loc=Q_SORT),
    todo(
        "query-sort-cyrillic-lookalike",
        "GET",
        "/todos?sort=t%D1%96tle",
        422,
        VALIDATION,
        loc=Q_SORT,
    ),
    todo("query-sort-nul", "GET", "/todos?sort=title%00", 422, VALIDATION, loc=Q_SORT),
    todo("query-sort-on-feed-unknown", "GET", "/todos/feed?sort=id", 422, VALIDATION, loc=Q_SORT),
    todo("query-done-word", "GET", "/todos?done=maybe", 422, VALIDATION, loc=Q_DONE),
    todo("query-done-two", "GET", "/todos?done=2", 422, VALIDATION, loc=Q_DONE),
    todo("query-done-null", "GET", "/todos?done=null", 422, VALIDATION, loc=Q_DONE),
    todo("query-done-empty", "GET", "/todos?done=", 422, VALIDATION, loc=Q_DONE),
    todo(
        "query-done-repeated-bad-last",
        "GET",
        "/todos?done=true&done=perhaps",
        422,
        VALIDATION,
        loc=Q_DONE,
    ),
    todo(
        "query-done-on-feed-word", "GET", "/todos/feed?done=yes-please", 422, VALIDATION, loc=Q_DONE
    ),
    todo(
        "query-feed-size-zero", "GET", "/todos/feed?page_size=0", 422, VALIDATION, loc=Q_FEED_SIZE
    ),
    todo(
        "query-feed-size-over-max",
        "GET",
        "/todos/feed?page_size=101",
        422,
        VALIDATION,
        loc=Q_FEED_SIZE,
    ),
    todo(
        "query-feed-size-word", "GET", "/todos/feed?page_size=ten", 422, VALIDATION, loc=Q_FEED_SIZE
    ),
    todo("query-cursor-unsigned-word", "GET", "/todos/feed?cursor=abc", 400, BAD_SIGNATURE),
    todo("query-cursor-symbols", "GET", "/todos/feed?cursor=%21%21%21", 400, BAD_SIGNATURE),
    todo(
        "query-cursor-signature-not-base64", "GET", "/todos/feed?cursor=abc.%21%21", 400, NOT_BASE64
    ),
    todo("query-cursor-unicode", "GET", "/todos/feed?cursor=%C3%A9.%C3%A9", 400, NOT_BASE64),
    todo("query-cursor-nul", "GET", "/todos/feed?cursor=%00", 400, BAD_SIGNATURE),
    todo(
        "query-cursor-sql-injection",
        "GET",
        "/todos/feed?cursor=%27%20OR%201%3D1%20--",
        400,
        BAD_SIGNATURE,
    ),
    todo(
        "query-cursor-4097-chars",
        "GET",
        "/todos/feed?cursor=" + "a" * 4097,
        422,
        VALIDATION,
        loc=Q_CURSOR,
    ),
    todo(
        "query-cursor-10k-chars",
        "GET",
        "/todos/feed?cursor=" + "a" * 10_000,
        422,
        VALIDATION,
        loc=Q_CURSOR,
    ),
    todo(
        "query-cursor-tampered-payload",
        "GET",
        "/todos/feed?cursor=@CURSOR_FLIPPED@",
        400,
        BAD_SIGNATURE,
    ),
    todo(
        "query-cursor-tampered-signature",
        "GET",
        "/todos/feed?cursor=@CURSOR_SIG_FLIPPED@",
        400,
        BAD_SIGNATURE,
    ),
    todo(
        "query-cursor-signature-dropped",
        "GET",
        "/todos/feed?cursor=@CURSOR_UNSIGNED@",
        400,
        BAD_SIGNATURE,
    ),
    todo(
        "query-cursor-other-secret",
        "GET",
        "/todos/feed?cursor=@CURSOR_OTHER_SECRET@",
        400,
        BAD_SIGNATURE,
    ),
    todo("query-cursor-extra-segment", "GET", "/todos/feed?cursor=@CURSOR@.x", 400, NOT_BASE64),
    todo("query-cursor-other-sort", "GET", "/todos/feed?cursor=@CURSOR_TITLE@", 400, OTHER_SORT),
    todo(
        "query-cursor-sort-changed",
        "GET",
        "/todos/feed?sort=title&cursor=@CURSOR@",
        400,
        OTHER_SORT,
    ),
    todo(
        "query-cursor-repeated-bad-last",
        "GET",
        "/todos/feed?cursor=@CURSOR@&cursor=garbage",
        400,
        BAD_SIGNATURE,
    ),
    bare(
        "query-bare-limit-zero",
        "GET",
        "/items/window?limit=0",
        422,
        VALIDATION,
        loc=("query", "limit"),
    ),
    bare(
        "query-bare-limit-over-max",
        "GET",
        "/items/window?limit=101",
        422,
        VALIDATION,
        loc=("query", "limit"),
    ),
    bare(
        "query-bare-limit-word",
        "GET",
        "/items/window?limit=all",
        422,
        VALIDATION,
        loc=("query", "limit"),
    ),
    bare(
        "query-bare-offset-negative",
        "GET",
        "/items/window?offset=-1",
        422,
        VALIDATION,
        loc=("query", "offset"),
    ),
    bare(
        "query-bare-offset-over-max",
        "GET",
        "/items/window?offset=100000001",
        422,
        VALIDATION,
        loc=("query", "offset"),
    ),
    bare(
        "query-bare-offset-float",
        "GET",
        "/items/window?offset=0.5",
        422,
        VALIDATION,
        loc=("query", "offset"),
    ),
    bare(
        "query-bare-query-model-page-zero",
        "GET",
        "/items/query?page=0&page_size=500",
        422,
        VALIDATION,
        loc=Q_PAGE,
    ),
    bare(
        "query-bare-query-model-size-word",
        "GET",
        "/items/query?page_size=abc",
        422,
        VALIDATION,
        loc=Q_SIZE,
    ),
    bare(
        "query-bare-configured-size-over-max",
        "GET",
        "/items/small?page_size=11",
        422,
        VALIDATION,
        loc=Q_SIZE,
    ),
    bare("query-bare-sort-unknown", "GET", "/items?sort=price", 422, VALIDATION, loc=Q_SORT),
    bare("query-bare-sort-twice", "GET", "/items?sort=id,-id", 422, VALIDATION, loc=Q_SORT),
    bare("query-bare-cursor-not-base64", "GET", "/items/feed?cursor=%21%21%21", 400, NOT_BASE64),
    bare(
        "query-bare-cursor-not-json",
        "GET",
        "/items/feed?cursor=" + cursor("hello"),
        400,
        UNREADABLE,
    ),
    bare(
        "query-bare-cursor-json-list",
        "GET",
        "/items/feed?cursor=" + cursor("[1, 2]"),
        400,
        UNREADABLE,
    ),
    bare(
        "query-bare-cursor-missing-member",
        "GET",
        "/items/feed?cursor=" + cursor('{"k": [], "o": "id"}'),
        400,
        UNREADABLE,
    ),
    bare(
        "query-bare-cursor-bad-direction",
        "GET",
        "/items/feed?cursor=" + keys(["i", 1], direction="x"),
        400,
        UNREADABLE,
    ),
    bare(
        "query-bare-cursor-invalid-utf8",
        "GET",
        "/items/feed?cursor=" + cursor(b'\xff\xfe{"k"'),
        400,
        UNREADABLE,
    ),
    bare(
        "query-bare-cursor-nested-1500",
        "GET",
        "/items/feed?cursor=" + cursor("[" * 1500 + "]" * 1500),
        400,
        UNREADABLE,
    ),
    bare(
        "query-bare-cursor-int-not-int",
        "GET",
        "/items/feed?cursor=" + keys(["i", "x"]),
        400,
        BAD_VALUE,
    ),
    bare(
        "query-bare-cursor-unknown-tag",
        "GET",
        "/items/feed?cursor=" + keys(["zz", 1]),
        400,
        BAD_VALUE,
    ),
    bare(
        "query-bare-cursor-int-over-64-bits",
        "GET",
        "/items/feed?cursor=" + keys(["i", 2**70]),
        400,
        BAD_VALUE,
    ),
    bare(
        "query-bare-cursor-bad-datetime",
        "GET",
        "/items/feed?cursor=" + keys(["dt", "yesterday"]),
        400,
        BAD_VALUE,
    ),
    bare(
        "query-bare-cursor-bad-decimal",
        "GET",
        "/items/feed?cursor=" + keys(["dec", "abc"]),
        400,
        BAD_VALUE,
    ),
    bare(
        "query-bare-cursor-bad-uuid",
        "GET",
        "/items/feed?cursor=" + keys(["u", "xyz"]),
        400,
        BAD_VALUE,
    ),
    bare(
        "query-bare-cursor-text-nul",
        "GET",
        "/items/feed?cursor=" + keys(["s", "a\x00b"]),
        400,
        BAD_VALUE,
    ),
    bare(
        "query-bare-cursor-string-for-int",
        "GET",
        "/items/feed?cursor=" + keys(["s", "7"]),
        400,
        WRONG_TYPE,
    ),
    bare(
        "query-bare-cursor-bool-for-int",
        "GET",
        "/items/feed?cursor=" + keys(["b", True]),
        400,
        WRONG_TYPE,
    ),
    bare("query-bare-cursor-null-key", "GET", "/items/feed?cursor=" + keys(["n"]), 400, WRONG_TYPE),
    bare(
        "query-bare-cursor-nan",
        "GET",
        "/items/feed?cursor=" + cursor('{"k": [["f", NaN]], "o": "id", "d": "n"}'),
        400,
        WRONG_TYPE,
    ),
    bare(
        "query-bare-cursor-enum-for-int",
        "GET",
        "/items/feed?cursor=" + keys(["e", ["i", 1]]),
        400,
        WRONG_TYPE,
    ),
    bare(
        "query-bare-cursor-other-sort",
        "GET",
        "/items/feed?cursor=" + keys(["i", 1], order="name"),
        400,
        OTHER_SORT,
    ),
    bare(
        "query-bare-cursor-two-keys",
        "GET",
        "/items/feed?cursor=" + keys(["i", 1], ["i", 2]),
        400,
        OTHER_SORT,
    ),
    bare(
        "query-bare-cursor-signed-at-unsigned",
        "GET",
        "/items/feed?cursor=abc.def",
        400,
        SIGNED_HERE,
    ),
    bare(
        "query-bare-cursor-unsigned-at-signed",
        "GET",
        "/items/signed-feed?cursor=" + keys(["i", 1]),
        400,
        BAD_SIGNATURE,
    ),
    bare(
        "query-bare-cursor-4097",
        "GET",
        "/items/feed?cursor=" + "A" * 4097,
        422,
        VALIDATION,
        loc=Q_CURSOR,
    ),
    bare(
        "query-bare-transfer-amount-zero",
        "POST",
        "/transfer?amount=0",
        422,
        "The amount must be positive",
    ),
    bare(
        "query-bare-transfer-amount-word",
        "POST",
        "/transfer?amount=lots",
        422,
        VALIDATION,
        loc=("query", "amount"),
    ),
    bare(
        "query-bare-transfer-amount-missing",
        "POST",
        "/transfer",
        422,
        VALIDATION,
        loc=("query", "amount"),
    ),
]

# --- path -------------------------------------------------------------------------------

P_ID = ("path", "todo_id")

PATH = [
    todo("path-todo-word", "GET", "/todos/abc", 422, VALIDATION, loc=P_ID),
    todo("path-todo-underscored-digits", "GET", "/todos/1_000", 404, TODO_NOT_FOUND),
    todo("path-todo-someone-elses", "GET", "/todos/@BOB_TODO@", 404, TODO_NOT_FOUND),
    # The example bounds its ids to PostgreSQL's INTEGER: 422 before any query runs.
    todo("path-todo-negative", "GET", "/todos/-1", 422, VALIDATION, loc=P_ID),
    todo("path-todo-zero", "GET", "/todos/0", 422, VALIDATION, loc=P_ID),
    todo("path-todo-int32-overflow", "GET", "/todos/2147483648", 422, VALIDATION, loc=P_ID),
    todo(
        "path-todo-int64-overflow", "GET", "/todos/9223372036854775808", 422, VALIDATION, loc=P_ID
    ),
    todo(
        "path-todo-int64-underflow", "GET", "/todos/-9223372036854775809", 422, VALIDATION, loc=P_ID
    ),
    todo("path-todo-huge", "GET", "/todos/99999999999999999999999", 422, VALIDATION, loc=P_ID),
    todo("path-todo-5000-digits", "GET", "/todos/" + "9" * 5000, 422, VALIDATION, loc=P_ID),
    todo("path-todo-float", "GET", "/todos/1.5", 422, VALIDATION, loc=P_ID),
    todo("path-todo-exponent", "GET", "/todos/1e3", 422, VALIDATION, loc=P_ID),
    todo("path-todo-nul", "GET", "/todos/%00", 422, VALIDATION, loc=P_ID),
    todo("path-todo-10k-letters", "GET", "/todos/" + "x" * 10_000, 422, VALIDATION, loc=P_ID),
    todo("path-todo-unicode", "GET", "/todos/caf%C3%A9", 422, VALIDATION, loc=P_ID),
    todo("path-todo-arabic-digit", "GET", "/todos/%D9%A1", 422, VALIDATION, loc=P_ID),
    todo("path-todo-fullwidth-digit", "GET", "/todos/%EF%BC%91", 422, VALIDATION, loc=P_ID),
    todo("path-todo-emoji", "GET", "/todos/%F0%9F%92%A9", 422, VALIDATION, loc=P_ID),
    todo("path-todo-sql-or", "GET", "/todos/1%20OR%201%3D1", 422, VALIDATION, loc=P_ID),
    todo(
        "path-todo-sql-semicolon",
        "GET",
        "/todos/1%3BDROP%20TABLE%20todo_items",
        422,
        VALIDATION,
        loc=P_ID,
    ),
    todo("path-todo-bool", "GET", "/todos/true", 422, VALIDATION, loc=P_ID),
    todo("path-todo-dot-dot-encoded", "GET", "/todos/%2E%2E", 422, VALIDATION, loc=P_ID),
    todo(
        "path-todo-patch-word",
        "PATCH",
        "/todos/abc",
        422,
        VALIDATION,
        loc=P_ID,
        json={"done": True},
    ),
    todo(
        "path-todo-patch-huge",
        "PATCH",
        "/todos/99999999999999999999",
        422,
        VALIDATION,
        loc=P_ID,
        json={"done": True},
    ),
    todo(
        "path-todo-patch-someone-elses",
        "PATCH",
        "/todos/@BOB_TODO@",
        404,
        TODO_NOT_FOUND,
        json={"done": True},
    ),
    todo("path-todo-delete-word", "DELETE", "/todos/abc", 422, VALIDATION, loc=P_ID),
    todo(
        "path-todo-delete-huge", "DELETE", "/todos/99999999999999999999", 422, VALIDATION, loc=P_ID
    ),
    todo("path-todo-delete-negative", "DELETE", "/todos/-5", 422, VALIDATION, loc=P_ID),
    todo("path-todo-delete-someone-elses", "DELETE", "/todos/@BOB_TODO@", 404, TODO_NOT_FOUND),
    todo("path-unknown-route", "GET", "/nowhere", 404, NOT_FOUND),
    todo("path-todo-subpath", "GET", "/todos/@TODO@/extra", 404, NOT_FOUND),
    todo("path-users-me-subpath", "GET", "/users/me/x", 404, NOT_FOUND),
    todo("path-users-by-id", "GET", "/users/1", 404, NOT_FOUND),
    todo("path-auth-unknown", "POST", "/auth/%00", 404, NOT_FOUND),
    todo(
        "path-method-put-todo", "PUT", "/todos/@TODO@", 405, METHOD_NOT_ALLOWED, json={"title": "x"}
    ),
    todo("path-method-delete-collection", "DELETE", "/todos", 405, METHOD_NOT_ALLOWED),
    todo("path-method-get-token", "GET", "/auth/token", 405, METHOD_NOT_ALLOWED),
    todo("path-method-post-me", "POST", "/users/me", 405, METHOD_NOT_ALLOWED),
    todo("path-method-patch-feed", "PATCH", "/todos/feed", 422, VALIDATION, loc=P_ID, json={}),
    bare("path-bare-unknown-route", "GET", "/nowhere", 404, NOT_FOUND),
    bare(
        "path-bare-method-delete",
        "DELETE",
        "/health",
        405,
        METHOD_NOT_ALLOWED,
        expect_headers=(("allow", "GET"),),
    ),
    bare("path-bare-method-post-items", "POST", "/items", 405, METHOD_NOT_ALLOWED),
    # An unbounded id reaches the database, which cannot take it: fastkit.db's 400.
    bare("path-bare-note-huge", "GET", "/notes/99999999999999999999999", 400, VALUE_REJECTED),
    bare("path-bare-note-int64-overflow", "GET", "/notes/9223372036854775808", 400, VALUE_REJECTED),
    bare(
        "path-bare-note-int64-underflow", "GET", "/notes/-9223372036854775809", 400, VALUE_REJECTED
    ),
    bare("path-bare-note-word", "GET", "/notes/abc", 422, VALIDATION, loc=("path", "note_id")),
]

# --- json bodies ------------------------------------------------------------------------

B_TITLE = ("body", "title")
B_DONE = ("body", "done")
B_NAME = ("body", "username")
B_PASSWORD = ("body", "password")
B_REFRESH = ("body", "refresh_token")


def post_todo(case_id: str, status: int, message: str | None, **kwargs: Any) -> ParameterSet:
    return todo(case_id, "POST", "/todos", status, message, **kwargs)


def raw_todo(
    case_id: str, body: bytes | str, status: int, message: str | None, **kwargs: Any
) -> ParameterSet:
    return post_todo(case_id, status, message, content=body, headers=JSON, **kwargs)


def register(
    case_id: str, body: Any, status: int, message: str | None, **kwargs: Any
) -> ParameterSet:
    return todo(case_id, "POST", "/users", status, message, auth=None, json=body, **kwargs)


def refresh(
    case_id: str, body: Any, status: int, message: str | None, **kwargs: Any
) -> ParameterSet:
    return todo(case_id, "POST", "/auth/refresh", status, message, auth=None, json=body, **kwargs)


def thing(case_id: str, body: Any, loc: tuple[str | int, ...]) -> ParameterSet:
    return bare(case_id, "POST", "/things", 422, VALIDATION, json=body, loc=loc)


JSON_BODIES = [
    raw_todo("json-not-json", "hello", 422, VALIDATION, loc=BODY),
    raw_todo("json-truncated", '{"title": "a"', 422, VALIDATION, loc=BODY),
    raw_todo("json-missing-value", '{"title": }', 422, VALIDATION, loc=BODY),
    raw_todo("json-trailing-comma", '{"title": "a",}', 422, VALIDATION, loc=BODY),
    raw_todo("json-single-quotes", "{'title': 'a'}", 422, VALIDATION, loc=BODY),
    raw_todo("json-comment", '{"title": "a" /* hi */}', 422, VALIDATION, loc=BODY),
    raw_todo("json-unquoted-key", '{title: "a"}', 422, VALIDATION, loc=BODY),
    raw_todo("json-control-character", '{"title": "a\x01b"}', 422, VALIDATION, loc=BODY),
    raw_todo("json-empty-body", b"", 422, VALIDATION, loc=BODY),
    raw_todo("json-whitespace-body", "   \n ", 422, VALIDATION, loc=BODY),
    raw_todo("json-bom-only", b"\xef\xbb\xbf", 422, VALIDATION, loc=BODY),
    raw_todo("json-bom-truncated", b'\xef\xbb\xbf{"title": ', 422, VALIDATION, loc=BODY),
    raw_todo("json-bom-empty-title", b'\xef\xbb\xbf{"title": ""}', 422, VALIDATION, loc=B_TITLE),
    # Not UTF-8, nested past the parser, a 5000-digit number: FastAPI's 400.
    raw_todo("json-invalid-utf8", b'{"title": "caf\xe9"}', 400, BODY_PARSE),
    raw_todo("json-invalid-utf8-start-byte", b'\xff{"title": "a"}', 400, BODY_PARSE),
    post_todo(
        "json-latin1-charset-declared",
        400,
        BODY_PARSE,
        content=b'{"title": "caf\xe9"}',
        headers=(("Content-Type", "application/json; charset=latin-1"),),
    ),
    raw_todo("json-nested-1000-arrays", "[" * 1000 + "]" * 1000, 400, BODY_PARSE),
    raw_todo(
        "json-nested-1000-objects",
        '{"title": ' + '{"a": ' * 1000 + "1" + "}" * 1001,
        400,
        BODY_PARSE,
    ),
    raw_todo("json-nested-100k-arrays", "[" * 100_000 + "]" * 100_000, 400, BODY_PARSE),
    raw_todo(
        "json-5000-digit-number", '{"title": "a", "done": 1' + "0" * 5000 + "}", 400, BODY_PARSE
    ),
    raw_todo("json-lone-surrogate-escape", '{"title": "\\ud800"}', 422, VALIDATION, loc=B_TITLE),
    raw_todo("json-title-nan", '{"title": NaN}', 422, VALIDATION, loc=B_TITLE),
    raw_todo("json-done-infinity", '{"title": "a", "done": Infinity}', 422, VALIDATION, loc=B_DONE),
    raw_todo(
        "json-duplicate-key-bad-last", '{"title": "a", "title": ""}', 422, VALIDATION, loc=B_TITLE
    ),
    post_todo("json-title-int", 422, VALIDATION, json={"title": 5}, loc=B_TITLE),
    post_todo("json-title-bool", 422, VALIDATION, json={"title": True}, loc=B_TITLE),
    post_todo("json-title-list", 422, VALIDATION, json={"title": ["a"]}, loc=B_TITLE),
    post_todo("json-title-object", 422, VALIDATION, json={"title": {"a": 1}}, loc=B_TITLE),
    post_todo("json-title-null", 422, VALIDATION, json={"title": None}, loc=B_TITLE),
    post_todo("json-title-empty", 422, VALIDATION, json={"title": ""}, loc=B_TITLE),
    post_todo("json-title-201-chars", 422, VALIDATION, json={"title": "x" * 201}, loc=B_TITLE),
    post_todo("json-title-1mb", 422, VALIDATION, json={"title": "x" * 1_000_000}, loc=B_TITLE),
    post_todo("json-done-word", 422, VALIDATION, json={"title": "a", "done": "maybe"}, loc=B_DONE),
    post_todo("json-done-two", 422, VALIDATION, json={"title": "a", "done": 2}, loc=B_DONE),
    post_todo("json-done-list", 422, VALIDATION, json={"title": "a", "done": []}, loc=B_DONE),
    post_todo("json-missing-title", 422, VALIDATION, json={}, loc=B_TITLE),
    post_todo(
        "json-only-unknown-fields", 422, VALIDATION, json={"name": "a", "owner_id": 2}, loc=B_TITLE
    ),
    post_todo("json-array-of-objects", 422, VALIDATION, json=[{"title": "a"}], loc=BODY),
    post_todo("json-string", 422, VALIDATION, json="a title", loc=BODY),
    post_todo("json-number", 422, VALIDATION, json=42, loc=BODY),
    raw_todo("json-null", "null", 422, VALIDATION, loc=BODY),
    todo(
        "json-patch-not-json",
        "PATCH",
        "/todos/@TODO@",
        422,
        VALIDATION,
        content="nope",
        headers=JSON,
        loc=BODY,
    ),
    todo(
        "json-patch-empty-body",
        "PATCH",
        "/todos/@TODO@",
        422,
        VALIDATION,
        content=b"",
        headers=JSON,
        loc=BODY,
    ),
    todo("json-patch-array", "PATCH", "/todos/@TODO@", 422, VALIDATION, json=[], loc=BODY),
    todo(
        "json-patch-title-empty",
        "PATCH",
        "/todos/@TODO@",
        422,
        VALIDATION,
        json={"title": ""},
        loc=B_TITLE,
    ),
    todo(
        "json-patch-title-201",
        "PATCH",
        "/todos/@TODO@",
        422,
        VALIDATION,
        json={"title": "x" * 201},
        loc=B_TITLE,
    ),
    todo(
        "json-patch-title-object",
        "PATCH",
        "/todos/@TODO@",
        422,
        VALIDATION,
        json={"title": {}},
        loc=B_TITLE,
    ),
    todo(
        "json-patch-done-word",
        "PATCH",
        "/todos/@TODO@",
        422,
        VALIDATION,
        json={"done": "perhaps"},
        loc=B_DONE,
    ),
    todo(
        "json-patch-nested-1000",
        "PATCH",
        "/todos/@TODO@",
        400,
        BODY_PARSE,
        content="[" * 1000 + "]" * 1000,
        headers=JSON,
    ),
    register(
        "json-users-name-short",
        {"username": "al", "password": PASSWORD},
        422,
        VALIDATION,
        loc=B_NAME,
    ),
    register(
        "json-users-name-space",
        {"username": "a b c", "password": PASSWORD},
        422,
        VALIDATION,
        loc=B_NAME,
    ),
    register(
        "json-users-name-unicode",
        {"username": "\u00e5lice", "password": PASSWORD},
        422,
        VALIDATION,
        loc=B_NAME,
    ),
    register(
        "json-users-name-51-chars",
        {"username": "a" * 51, "password": PASSWORD},
        422,
        VALIDATION,
        loc=B_NAME,
    ),
    register(
        "json-users-name-sql-injection",
        {"username": "alice' OR '1'='1", "password": PASSWORD},
        422,
        VALIDATION,
        loc=B_NAME,
    ),
    register(
        "json-users-name-nul",
        {"username": "ali\x00ce", "password": PASSWORD},
        422,
        VALIDATION,
        loc=B_NAME,
    ),
    register(
        "json-users-name-int",
        {"username": 12345, "password": PASSWORD},
        422,
        VALIDATION,
        loc=B_NAME,
    ),
    register(
        "json-users-password-short",
        {"username": "carol", "password": "short"},
        422,
        VALIDATION,
        loc=B_PASSWORD,
    ),
    register(
        "json-users-password-1025",
        {"username": "carol", "password": "x" * 1025},
        422,
        VALIDATION,
        loc=B_PASSWORD,
    ),
    register(
        "json-users-password-null",
        {"username": "carol", "password": None},
        422,
        VALIDATION,
        loc=B_PASSWORD,
    ),
    register("json-users-password-missing", {"username": "carol"}, 422, VALIDATION, loc=B_PASSWORD),
    register("json-users-name-taken", {"username": "alice", "password": PASSWORD}, 409, TAKEN),
    refresh("json-refresh-empty-object", {}, 422, VALIDATION, loc=B_REFRESH),
    refresh("json-refresh-empty-token", {"refresh_token": ""}, 422, VALIDATION, loc=B_REFRESH),
    refresh(
        "json-refresh-8193-chars", {"refresh_token": "x" * 8193}, 422, VALIDATION, loc=B_REFRESH
    ),
    refresh("json-refresh-int", {"refresh_token": 5}, 422, VALIDATION, loc=B_REFRESH),
    refresh("json-refresh-array", ["@REFRESH@"], 422, VALIDATION, loc=BODY),
    refresh("json-refresh-garbage", {"refresh_token": "garbage"}, 401, INVALID_TOKEN),
    refresh("json-refresh-access-token", {"refresh_token": "@ACCESS@"}, 401, INVALID_TOKEN),
    refresh("json-refresh-expired", {"refresh_token": "@EXPIRED_REFRESH@"}, 401, INVALID_TOKEN),
    refresh("json-refresh-alg-none", {"refresh_token": "@ALG_NONE@"}, 401, INVALID_TOKEN),
    refresh("json-refresh-forged", {"refresh_token": "@FORGED@"}, 401, INVALID_TOKEN),
    todo(
        "json-refresh-not-json",
        "POST",
        "/auth/refresh",
        422,
        VALIDATION,
        auth=None,
        content="zz",
        headers=JSON,
        loc=BODY,
    ),
    todo(
        "json-logout-not-json",
        "POST",
        "/auth/logout",
        422,
        VALIDATION,
        content="{bad",
        headers=JSON,
        loc=BODY,
    ),
    todo("json-logout-array", "POST", "/auth/logout", 422, VALIDATION, json=[1], loc=BODY),
    todo(
        "json-logout-token-int",
        "POST",
        "/auth/logout",
        422,
        VALIDATION,
        json={"refresh_token": 5},
        loc=B_REFRESH,
    ),
    todo(
        "json-logout-token-8193",
        "POST",
        "/auth/logout",
        422,
        VALIDATION,
        json={"refresh_token": "x" * 8193},
        loc=B_REFRESH,
    ),
    thing("json-bare-unknown-field", {"name": "a", "extra": 1}, ("body", "extra")),
    thing("json-bare-kind-not-allowed", {"name": "a", "kind": "weapon"}, ("body", "kind")),
    thing("json-bare-when-garbage", {"name": "a", "when": "yesterday"}, ("body", "when")),
    thing(
        "json-bare-when-impossible-date",
        {"name": "a", "when": "2024-02-30T00:00:00"},
        ("body", "when"),
    ),
    thing("json-bare-ref-not-uuid", {"name": "a", "ref": "not-a-uuid"}, ("body", "ref")),
    thing("json-bare-tags-too-many", {"name": "a", "tags": ["t"] * 6}, ("body", "tags")),
    thing("json-bare-tags-not-list", {"name": "a", "tags": "a,b"}, ("body", "tags")),
    thing("json-bare-tags-nested", {"name": "a", "tags": [["a"]]}, ("body", "tags", 0)),
    thing("json-bare-count-fractional", {"name": "a", "count": 1.5}, ("body", "count")),
    thing("json-bare-count-negative", {"name": "a", "count": -1}, ("body", "count")),
    thing("json-bare-count-huge", {"name": "a", "count": 10**30}, ("body", "count")),
    thing("json-bare-name-missing", {"count": 1}, ("body", "name")),
    bare(
        "json-bare-xml",
        "POST",
        "/things",
        422,
        VALIDATION,
        content="<thing><name>a</name></thing>",
        headers=(("Content-Type", "application/xml"),),
        loc=BODY,
    ),
]

# --- forms ------------------------------------------------------------------------------


def login(case_id: str, status: int, message: str | None, **kwargs: Any) -> ParameterSet:
    return todo(case_id, "POST", "/auth/token", status, message, auth=None, **kwargs)


def raw_login(
    case_id: str, body: bytes | str, status: int, message: str | None, **kwargs: Any
) -> ParameterSet:
    return login(case_id, status, message, content=body, headers=FORM, **kwargs)


def contact(case_id: str, form: Any, loc: tuple[str, ...], **kwargs: Any) -> ParameterSet:
    return bare(case_id, "POST", "/contact", 422, VALIDATION, form=form, loc=loc, **kwargs)


ALICE = {"username": "alice", "password": PASSWORD}
F_AGE = ("body", "age")
F_EMAIL = ("body", "email")

FORMS = [
    login("form-token-missing-username", 400, NEEDS_CREDENTIALS, form={"password": PASSWORD}),
    login("form-token-missing-password", 400, NEEDS_CREDENTIALS, form={"username": "alice"}),
    login("form-token-no-body", 400, NEEDS_CREDENTIALS),
    raw_login("form-token-empty-body", b"", 400, NEEDS_CREDENTIALS),
    raw_login("form-token-empty-values", "username=&password=", 400, NEEDS_CREDENTIALS),
    login(
        "form-token-grant-type-client-credentials",
        400,
        UNSUPPORTED_GRANT,
        form={**ALICE, "grant_type": "client_credentials"},
    ),
    login(
        "form-token-grant-type-uppercase",
        400,
        UNSUPPORTED_GRANT,
        form={**ALICE, "grant_type": "PASSWORD"},
    ),
    login(
        "form-token-grant-type-nul",
        400,
        UNSUPPORTED_GRANT,
        form={**ALICE, "grant_type": "password\x00"},
    ),
    raw_login(
        "form-token-grant-type-repeated-bad-last",
        "grant_type=password&grant_type=implicit&username=alice&password=correct+horse",
        400,
        UNSUPPORTED_GRANT,
    ),
    raw_login(
        "form-token-username-repeated",
        "username=alice&username=nobody&password=correct+horse",
        400,
        WRONG_CREDENTIALS,
    ),
    raw_login("form-token-not-utf8", b"username=\xff\xfe&password=\xfd", 400, WRONG_CREDENTIALS),
    raw_login(
        "form-token-percent-not-utf8", b"username=%ff%fe&password=%fd", 400, WRONG_CREDENTIALS
    ),
    raw_login("form-token-bad-percent-escape", "username=%zz&password=%", 400, WRONG_CREDENTIALS),
    raw_login("form-token-no-equals", "username&password", 400, NEEDS_CREDENTIALS),
    raw_login("form-token-only-separators", "&&&=&=&", 400, NEEDS_CREDENTIALS),
    login(
        "form-token-username-10k",
        400,
        WRONG_CREDENTIALS,
        form={"username": "a" * 10_000, "password": "x"},
    ),
    login(
        "form-token-sql-injection",
        400,
        WRONG_CREDENTIALS,
        form={"username": "alice' OR '1'='1", "password": "' OR ''='"},
    ),
    # On SQLite; PostgreSQL refuses NUL in text, which fastkit.db answers 400 (database.md).
    login(
        "form-token-username-nul",
        400,
        WRONG_CREDENTIALS,
        form={"username": "ali\x00ce", "password": PASSWORD},
    ),
    login(
        "form-token-username-unicode",
        400,
        WRONG_CREDENTIALS,
        form={"username": "\u00e5lice", "password": PASSWORD},
    ),
    login(
        "form-token-password-trailing-space",
        400,
        WRONG_CREDENTIALS,
        form={"username": "alice", "password": PASSWORD + " "},
    ),
    login(
        "form-token-disabled-user",
        400,
        WRONG_CREDENTIALS,
        form={"username": "mallory", "password": PASSWORD},
    ),
    # A 2 MB form passes setup()'s 1 MiB body limit: 413 before Starlette parses a field.
    login(
        "form-token-password-2mb",
        413,
        None,
        form={"username": "alice", "password": "x" * 2_000_000},
    ),
    # Starlette's form limits (1000 fields), answered as HTTPExceptions: 400.
    raw_login(
        "form-token-1001-fields",
        "&".join(f"f{i}=1" for i in range(1001)) + "&username=a&password=b",
        400,
        None,
    ),
    login("form-token-json-instead", 400, NEEDS_CREDENTIALS, json=ALICE),
    login(
        "form-token-password-over-1024",
        422,
        VALIDATION,
        form={"username": "alice", "password": "x" * 1025},
        loc=B_PASSWORD,
    ),
    login(
        "form-token-refresh-grant-garbage",
        400,
        "Invalid or expired refresh token",
        form={"grant_type": "refresh_token", "refresh_token": "x.y.z"},
    ),
    login(
        "form-token-refresh-grant-missing",
        400,
        "The refresh grant needs a refresh_token.",
        form={"grant_type": "refresh_token"},
    ),
    login(
        "form-token-scope-not-allowed",
        400,
        "Scope not allowed for this user: admin.",
        form={**ALICE, "scope": "admin"},
    ),
    login(
        "form-token-multipart-no-boundary",
        400,
        None,
        content=b"garbage",
        headers=(("Content-Type", "multipart/form-data"),),
    ),
    login(
        "form-token-multipart-broken",
        400,
        NEEDS_CREDENTIALS,
        content=b"--xx\r\ngarbage",
        headers=(("Content-Type", "multipart/form-data; boundary=xx"),),
    ),
    login(
        "form-token-text-plain",
        400,
        NEEDS_CREDENTIALS,
        content="username=alice&password=correct+horse",
        headers=(("Content-Type", "text/plain"),),
    ),
    todo("form-todo-form-body", "POST", "/todos", 422, VALIDATION, form={"title": "x"}, loc=BODY),
    todo(
        "form-users-form-body",
        "POST",
        "/users",
        422,
        VALIDATION,
        auth=None,
        form={"username": "carol", "password": PASSWORD},
        loc=BODY,
    ),
    contact("form-bare-age-word", {"email": "a@b.c", "age": "abc"}, F_AGE),
    contact("form-bare-age-empty", {"email": "a@b.c", "age": ""}, F_AGE),
    contact("form-bare-age-negative", {"email": "a@b.c", "age": "-1"}, F_AGE),
    contact("form-bare-age-huge", {"email": "a@b.c", "age": "1" + "0" * 20}, F_AGE),
    contact("form-bare-age-float", {"email": "a@b.c", "age": "1.5"}, F_AGE),
    contact("form-bare-email-missing", {"age": "30"}, F_EMAIL),
    contact("form-bare-email-no-at", {"email": "not-an-email", "age": "30"}, F_EMAIL),
    contact("form-bare-email-300-chars", {"email": "a" * 300 + "@x.io", "age": "30"}, F_EMAIL),
    contact(
        "form-bare-age-as-file",
        {"email": "a@b.c"},
        F_AGE,
        files={"age": ("age.txt", b"30", "text/plain")},
    ),
    bare(
        "form-bare-json-instead",
        "POST",
        "/contact",
        422,
        VALIDATION,
        json={"email": "a@b.c", "age": 3},
        loc=F_EMAIL,
    ),
    bare(
        "form-bare-age-repeated-bad-last",
        "POST",
        "/contact",
        422,
        VALIDATION,
        content="email=a%40b.c&age=3&age=x",
        headers=FORM,
        loc=F_AGE,
    ),
]

# --- headers ----------------------------------------------------------------------------


def me(
    case_id: str, authorization: str | bytes | None, status: int = 401, message: str = INVALID_TOKEN
) -> ParameterSet:
    """``GET /users/me`` with this ``Authorization`` header (None: without one)."""
    headers = () if authorization is None else (("Authorization", authorization),)
    return todo(case_id, "GET", "/users/me", status, message, auth=None, headers=headers)


def bearer(
    case_id: str, token: str, status: int = 401, message: str = INVALID_TOKEN
) -> ParameterSet:
    return me(case_id, f"Bearer {token}", status, message)


def request_id(case_id: str, *values: str | bytes, url: str = "/todos/abc") -> ParameterSet:
    """A bad ``X-Request-ID``: replaced by a new id, never echoed (middleware.md)."""
    status, message, loc = (
        (422, VALIDATION, P_ID) if url == "/todos/abc" else (404, NOT_FOUND, None)
    )
    headers = tuple(("X-Request-ID", value) for value in values)
    return todo(case_id, "GET", url, status, message, headers=headers, loc=loc)


def content_type(case_id: str, value: str | None, body: bytes = NEW_TODO) -> ParameterSet:
    """``POST /todos`` with a JSON body under another media type: not read as JSON, 422."""
    headers = () if value is None else (("Content-Type", value),)
    return post_todo(case_id, 422, VALIDATION, content=body, headers=headers, loc=BODY)


def tenant(case_id: str, *values: str | bytes) -> ParameterSet:
    headers = tuple(("X-Tenant", value) for value in values)
    return bare(
        case_id, "GET", "/tenant", 422, VALIDATION, headers=headers, loc=("header", "x-tenant")
    )


HEADERS = [
    me("headers-auth-missing", None),
    me("headers-auth-bearer-without-token", "Bearer"),
    me("headers-auth-bearer-space", "Bearer "),
    me("headers-auth-bearer-spaces", "Bearer     "),
    me("headers-auth-basic", "Basic YWxpY2U6Y29ycmVjdCBob3JzZQ=="),
    me("headers-auth-token-scheme", "Token @ACCESS@"),
    me("headers-auth-no-scheme", "@ACCESS@"),
    me("headers-auth-tab-separator", "Bearer\t@ACCESS@"),
    me("headers-auth-two-tokens", "Bearer @ACCESS@ @ACCESS@"),
    me("headers-auth-two-bearers-comma", "Bearer @ACCESS@, Bearer @ACCESS@"),
    me("headers-auth-latin1-bytes", b"Bearer caf\xe9"),
    me("headers-auth-utf8-bytes", "Bearer \u00e9\u20ac".encode()),
    me("headers-auth-10k-chars", "Bearer " + "a" * 10_000),
    me("headers-auth-sql-injection", "Bearer ' OR 1=1 --"),
    todo(
        "headers-auth-two-headers-garbage-first",
        "GET",
        "/users/me",
        401,
        INVALID_TOKEN,
        auth=None,
        headers=(("Authorization", "Bearer garbage"), ("Authorization", "Bearer @ACCESS@")),
    ),
    bearer("headers-jwt-one-segment", "abc"),
    bearer("headers-jwt-two-segments", "abc.def"),
    bearer("headers-jwt-four-segments", "@ACCESS@.x"),
    bearer("headers-jwt-padding", "@ACCESS@="),
    bearer("headers-jwt-garbage-segments", "a.b.c"),
    bearer("headers-jwt-header-not-json", "bm90IGpzb24.e30.c2ln"),
    bearer("headers-jwt-header-json-array", "WzFd.e30.c2ln"),
    bearer("headers-jwt-expired", "@EXPIRED@"),
    bearer("headers-jwt-not-yet-valid", "@NOT_YET@"),
    bearer("headers-jwt-alg-none", "@ALG_NONE@"),
    bearer("headers-jwt-other-secret", "@FORGED@"),
    bearer("headers-jwt-wrong-issuer", "@WRONG_ISSUER@"),
    bearer("headers-jwt-audience", "@WITH_AUDIENCE@"),
    bearer("headers-jwt-unknown-kid", "@UNKNOWN_KID@"),
    bearer("headers-jwt-hs512", "@HS512@"),
    bearer("headers-jwt-crit-extension", "@CRIT@"),
    bearer("headers-jwt-no-jti", "@NO_JTI@"),
    bearer("headers-jwt-id-token-type", "@ID_TOKEN@"),
    bearer("headers-jwt-over-8192-chars", "@HUGE_TOKEN@"),
    bearer("headers-jwt-refresh-as-access", "@REFRESH@"),
    bearer("headers-jwt-logged-out", "@LOGGED_OUT@"),
    bearer("headers-jwt-deleted-user", "@GHOST@"),
    bearer("headers-jwt-inactive-user", "@INACTIVE@", 403, INACTIVE),
    todo("headers-jwt-expired-on-todos", "GET", "/todos", 401, INVALID_TOKEN, auth="@EXPIRED@"),
    todo("headers-jwt-refresh-on-feed", "GET", "/todos/feed", 401, INVALID_TOKEN, auth="@REFRESH@"),
    todo(
        "headers-jwt-alg-none-on-logout",
        "POST",
        "/auth/logout",
        401,
        INVALID_TOKEN,
        auth="@ALG_NONE@",
    ),
    todo(
        "headers-jwt-missing-on-create",
        "POST",
        "/todos",
        401,
        INVALID_TOKEN,
        auth=None,
        json={"title": "x"},
    ),
    todo(
        "headers-scope-read-only-create",
        "POST",
        "/todos",
        403,
        NO_SCOPE,
        auth="@READONLY@",
        json={"title": "x"},
    ),
    todo(
        "headers-scope-read-only-patch",
        "PATCH",
        "/todos/@TODO@",
        403,
        NO_SCOPE,
        auth="@READONLY@",
        json={"done": True},
    ),
    todo(
        "headers-scope-read-only-delete",
        "DELETE",
        "/todos/@TODO@",
        403,
        NO_SCOPE,
        auth="@READONLY@",
    ),
    request_id("headers-request-id-script", "<script>alert(1)</script>"),
    request_id("headers-request-id-space", "bad id"),
    request_id("headers-request-id-129-chars", "x" * 129),
    request_id("headers-request-id-latin1", b"caf\xe9"),
    request_id("headers-request-id-utf8", "\u00e9t\u00e9".encode()),
    request_id("headers-request-id-path", "../../etc/passwd"),
    request_id("headers-request-id-sql", "1;DROP TABLE todo_items"),
    request_id("headers-request-id-empty", ""),
    request_id("headers-request-id-colon", "a:b"),
    request_id("headers-request-id-json", '{"id": 1}'),
    request_id("headers-request-id-twice-bad-first", "bad id", "good-id"),
    request_id("headers-request-id-on-404", "<x>", url="/nowhere"),
    content_type("headers-content-type-missing", None),
    content_type("headers-content-type-empty", ""),
    content_type("headers-content-type-text-plain", "text/plain"),
    content_type("headers-content-type-form", "application/x-www-form-urlencoded"),
    content_type("headers-content-type-multipart", "multipart/form-data; boundary=x"),
    content_type("headers-content-type-xml", "application/xml"),
    content_type("headers-content-type-garbage", "garbage"),
    content_type("headers-content-type-json-typo", "application/jsn"),
    post_todo(
        "headers-content-type-json-suffix-still-validated",
        422,
        VALIDATION,
        content=b'{"title": ""}',
        headers=(("Content-Type", "application/problem+json"),),
        loc=B_TITLE,
    ),
    todo(
        "headers-accept-html",
        "GET",
        "/todos/abc",
        422,
        VALIDATION,
        headers=(("Accept", "text/html"),),
        loc=P_ID,
    ),
    todo(
        "headers-accept-xml",
        "GET",
        "/nowhere",
        404,
        NOT_FOUND,
        headers=(("Accept", "application/xml"),),
    ),
    tenant("headers-bare-tenant-missing"),
    tenant("headers-bare-tenant-word", "acme"),
    tenant("headers-bare-tenant-zero", "0"),
    tenant("headers-bare-tenant-huge", "9" * 30),
    tenant("headers-bare-tenant-float", "1.5"),
    tenant("headers-bare-tenant-latin1", b"\xe9"),
    tenant("headers-bare-tenant-empty", ""),
    bare(
        "headers-bare-currency-unknown",
        "POST",
        "/transfer?amount=5",
        400,
        "Unknown currency",
        headers=(("X-Currency", "XXX"),),
    ),
    bare(
        "headers-bare-currency-too-long",
        "POST",
        "/transfer?amount=5",
        422,
        VALIDATION,
        headers=(("X-Currency", "EURO"),),
        loc=("header", "x-currency"),
    ),
]

# --- cookies ----------------------------------------------------------------------------


def session_cookie(
    case_id: str, cookie: str | bytes | None, loc: tuple[str, str] = ("cookie", "session")
) -> ParameterSet:
    headers = () if cookie is None else (("Cookie", cookie),)
    return bare(case_id, "GET", "/session", 422, VALIDATION, headers=headers, loc=loc)


COOKIES = [
    # The todo API reads tokens from the Authorization header only.
    todo(
        "cookies-todo-token-in-cookie",
        "GET",
        "/users/me",
        401,
        INVALID_TOKEN,
        auth=None,
        headers=(("Cookie", "access_token=@ACCESS@"),),
    ),
    todo(
        "cookies-todo-garbage-header",
        "GET",
        "/todos/abc",
        422,
        VALIDATION,
        headers=(("Cookie", "=;;;=;=\x7f"),),
        loc=P_ID,
    ),
    todo(
        "cookies-todo-8k-cookie",
        "GET",
        "/users/me",
        401,
        INVALID_TOKEN,
        auth=None,
        headers=(("Cookie", "a=" + "x" * 8000),),
    ),
    session_cookie("cookies-session-missing", None),
    session_cookie("cookies-session-garbage", "session=garbage"),
    session_cookie("cookies-session-empty", "session="),
    session_cookie("cookies-session-uuid-plus-one", f"session={SESSION_ID}x"),
    session_cookie("cookies-session-10k-chars", "session=" + "a" * 10_000),
    session_cookie("cookies-session-percent-nul", "session=%00"),
    session_cookie("cookies-session-sql-injection", "session=' OR 1=1 --"),
    session_cookie("cookies-session-no-equals", "session"),
    session_cookie("cookies-session-only-separators", ";;;===;;"),
    session_cookie("cookies-session-latin1", b"session=caf\xe9"),
    session_cookie("cookies-session-utf8", "session=\u00e9".encode()),
    session_cookie("cookies-session-repeated-bad-last", f"session={SESSION_ID}; session=garbage"),
    session_cookie("cookies-session-quoted-garbage", 'session="not a uuid"'),
    session_cookie("cookies-session-octal-escape", 'session="\\000"'),
    session_cookie(
        "cookies-theme-unknown", f"session={SESSION_ID}; theme=blue", loc=("cookie", "theme")
    ),
    session_cookie(
        "cookies-theme-wrong-case", f"session={SESSION_ID}; theme=LIGHT", loc=("cookie", "theme")
    ),
]

HTTP_CASES = [*QUERY, *PATH, *JSON_BODIES, *FORMS, *HEADERS, *COOKIES]

# --- the apps ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def todo_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TodoWorld]:
    with todo_world(tmp_path_factory.mktemp("malformed-todo")) as world:
        yield world


@pytest.fixture(scope="module")
def bare_app() -> Iterator[TestClient]:
    with TestClient(create_bare_app(), raise_server_exceptions=False) as client:
        yield client


# --- the tests --------------------------------------------------------------------------

BLOCKS = ("query", "path", "json", "form", "headers", "cookies")


def test_the_table_is_big_unique_and_covers_every_block() -> None:
    cases = HTTP_CASES
    ids = [case.id for case in cases]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert len(cases) >= 150
    blocks = {block: sum(1 for i in ids if i.split("-", 1)[0] == block) for block in BLOCKS}
    assert all(blocks.values()), blocks
    assert sum(blocks.values()) == len(cases), "every id starts with its block"


@pytest.mark.parametrize("case", HTTP_CASES)
def test_http_case(
    case: HTTPCase,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    if case.app == "todo":
        world: TodoWorld = request.getfixturevalue("todo_app")
        client, values = world.client, world.values
        before = world.snapshot()
    else:
        client, values = request.getfixturevalue("bare_app"), {}

    response = send(client, case, values)

    sent_headers = fill(case.headers, values)
    assert_clean_error(response, case, sent_headers, tmp_path_factory.getbasetemp())
    if case.app == "todo":
        assert world.snapshot() == before, "a refused request changed the database"
        alive = client.get("/users/me", headers={"Authorization": f"Bearer {values['ACCESS']}"})
        assert alive.status_code == 200, alive.text
        assert alive.json()["data"]["username"] == "alice"
    else:
        assert client.get("/items?page_size=1").json()["items"] == [{"id": 1, "name": "item 01"}]
