"""Page, limit-offset, cursor-size and sort parameters: 200 exactly inside the documented
domain, a 422 envelope naming every offending parameter outside it, never a 500.

The domain is written down here from docs/pagination.md, not read from fastkit: ``page``
1-1,000,000, ``page_size`` / ``limit`` 1-100 (or the configured maximum),
``offset`` 0-100,000,000; ``sort`` a comma-separated list of allowed fields, each at most
once, ``-`` for descending, at most 500 characters. Both ways of declaring the params
(``Depends()`` and ``Query()``) are checked.

No ``from __future__ import annotations``: FastAPI evaluates the endpoints' annotations.
"""

import re
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Query
from fastapi.testclient import TestClient
from hypothesis import event, given, settings
from hypothesis import strategies as st

from fastkit import install_exception_handlers
from fastkit.pagination import CursorParams, LimitOffsetParams, PageParams, SortParams
from tests.property_support import assert_error_envelope, examples

# --- the documented domain -------------------------------------------------------------------

# (lowest, highest, default) of each integer parameter, per endpoint.
DOMAINS: dict[str, dict[str, tuple[int, int, int]]] = {
    "page": {"page": (1, 1_000_000, 1), "page_size": (1, 100, 20)},
    "small-page": {"page": (1, 1_000_000, 1), "page_size": (1, 10, 3)},
    "limit-offset": {"limit": (1, 100, 20), "offset": (0, 100_000_000, 0)},
    "big-limit": {"limit": (1, 500, 50), "offset": (0, 100_000_000, 0)},
    "cursor": {"page_size": (1, 100, 20)},
    "small-cursor": {"page_size": (1, 30, 10)},
}
SORT_FIELDS = ("name", "score", "created_at")
SORT_DEFAULT = [("created_at", True)]  # default="-created_at"
SORT_MAX_LENGTH = 500

# How a query-string value reads as an integer (Pydantic's lax mode, which FastAPI applies):
# optional sign, ASCII digits with single underscores between them, an optional fraction of
# zeros only ("3.0"), surrounded by any Unicode White_Space. One quirk: Pydantic skips
# leading zeros together with any underscores among them, so "0__1" reads as 1.
UNICODE_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
INTEGER_TEXT = re.compile(r"([+-]?(?:0[0_]*(?=[0-9]))?[0-9]+(?:_[0-9]+)*)(?:\.0+)?")


def read_int(text: str) -> int | None:
    """The integer ``text`` stands for, or None if it is not one."""
    match = INTEGER_TEXT.fullmatch(text.strip(UNICODE_WHITESPACE))
    if match is None:
        return None
    digits = match.group(1).replace("_", "")
    if len(digits.lstrip("+-").lstrip("0")) > 30:
        return 10**30 if not digits.startswith("-") else -(10**30)  # far out of every range
    return int(digits)


def expected_int(values: list[str], domain: tuple[int, int, int]) -> int | None:
    """The parameter's value (the last one sent wins; the default if none), None if bad."""
    low, high, default = domain
    if not values:
        return default
    number = read_int(values[-1])
    return number if number is not None and low <= number <= high else None


def expected_sort(values: list[str]) -> list[tuple[str, bool]] | None:
    """``[(field, descending), ...]`` for the last ``sort`` sent, None if refused."""
    if not values or values[-1] == "":
        return SORT_DEFAULT
    value = values[-1]
    if len(value) > SORT_MAX_LENGTH:
        return None
    fields: list[tuple[str, bool]] = []
    for part in value.split(","):
        part = part.strip()  # spaces around a field are ignored: "name, -score"
        descending = part.startswith("-")
        name = part[1:] if descending else part
        if name not in SORT_FIELDS or name in [f for f, _ in fields]:
            return None
        fields.append((name, descending))
    return fields


# --- the app ---------------------------------------------------------------------------------

SmallPages = PageParams.configure(default_size=3, max_size=10)
BigLimits = LimitOffsetParams.configure(default_size=50, max_size=500)
SmallCursors = CursorParams.configure(default_size=10, max_size=30)
ItemSort = SortParams.allow(*SORT_FIELDS, default="-created_at")


def params_app() -> FastAPI:
    """Echo endpoints for each params model, under ``/depends`` and under ``/query``."""
    app = FastAPI()
    install_exception_handlers(app)
    models: dict[str, Any] = {
        "page": PageParams,
        "small-page": SmallPages,
        "limit-offset": LimitOffsetParams,
        "big-limit": BigLimits,
        "cursor": CursorParams,
        "small-cursor": SmallCursors,
        "sort": ItemSort,
    }
    for prefix, marker in (("depends", Depends), ("query", Query)):
        for name, model in models.items():
            app.get(f"/{prefix}/{name}")(echo(model, marker))
    return app


def echo(model: Any, marker: Callable[[], Any]) -> Callable[..., Any]:
    def endpoint(params: Annotated[model, marker()]) -> dict[str, Any]:
        if isinstance(params, SortParams):
            return {"fields": params.fields}
        return params.model_dump(exclude={"cursor"})

    return endpoint


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(params_app()) as client:
        yield client


# --- what clients send -------------------------------------------------------------------------


@st.composite
def decorated_ints(draw: st.DrawFn, near: st.SearchStrategy[int]) -> str:
    """An integer as people and programs write it: signs, zeros, underscores, spaces, ".0"."""
    number = draw(near)
    digits = str(abs(number)).zfill(len(str(abs(number))) + draw(st.integers(0, 3)))
    if draw(st.booleans()):  # underscores, occasionally doubled or at an end
        cut = draw(st.integers(0, len(digits)))
        digits = digits[:cut] + draw(st.sampled_from(["_", "_", "__"])) + digits[cut:]
    sign = "-" if number < 0 else draw(st.sampled_from(["", "", "+"]))
    if number < 0 and draw(st.integers(0, 5)) == 0:
        sign = draw(st.sampled_from(["--", "+-", "- "]))
    fraction = draw(st.sampled_from(["", "", ".0", ".000", ".5", ".", ".01", "e0"]))
    spaces = st.text(st.sampled_from(UNICODE_WHITESPACE + "\x1c\x1f\x00x"), max_size=2)
    return draw(spaces) + sign + digits + fraction + draw(spaces)


def int_texts(domain: tuple[int, int, int]) -> st.SearchStrategy[str]:
    low, high, _ = domain
    near = st.integers(low - 3, high + 3) | st.sampled_from([low - 1, low, high, high + 1])
    return st.one_of(
        near.map(str),
        st.integers().map(str),
        st.sampled_from([10**30, -(10**30), 2**63, 2**64, -(2**63) - 1]).map(str),
        decorated_ints(near | st.integers()),
        st.floats().map(str),
        st.text(max_size=8),
        st.sampled_from(
            ["", "\uff11", "٣", "1e3", "0x10", "0b1", "0o7", "½", "NaN", "true", "None"]
        ),
    )


def sort_parts() -> st.SearchStrategy[str]:
    name = st.one_of(
        st.sampled_from(SORT_FIELDS),
        st.sampled_from(["id", "Name", "password", "name_", "created-at", "lower(name)"]),
        st.text(max_size=6),
    )
    prefix = st.sampled_from(["", "", "-", "--", "+", " -", "- "])
    spaces = st.text(st.sampled_from(" \t\n\u3000\x1c"), max_size=2)
    return st.builds(lambda a, p, n, b: a + p + n + b, spaces, prefix, name, spaces)


SORT_TEXTS = st.one_of(
    st.lists(sort_parts(), min_size=1, max_size=4).map(",".join),
    st.text(),
    st.just(""),
    # Around the length limit: a valid sort padded with spaces to 495-505 characters.
    st.builds(
        lambda fields, width: fields.ljust(width),
        st.sampled_from(["name", "-score,name", "created_at,-name"]),
        st.integers(SORT_MAX_LENGTH - 5, SORT_MAX_LENGTH + 5),
    ),
)


def value_strategy(endpoint: str, name: str) -> st.SearchStrategy[str]:
    if name == "sort":
        return SORT_TEXTS
    if name in DOMAINS.get(endpoint, {}):
        return int_texts(DOMAINS[endpoint][name])
    return st.text(max_size=5)  # a parameter the endpoint does not take: ignored


@st.composite
def query_params(draw: st.DrawFn, endpoint: str) -> list[tuple[str, str]]:
    """Zero or more values of each parameter (repeats too) and unrelated ones, shuffled."""
    names = [*DOMAINS.get(endpoint, {"sort": None}), "unrelated", "PAGE"]
    pairs = [
        (name, draw(value_strategy(endpoint, name)))
        for name in names
        for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2, 3])))
    ]
    return draw(st.permutations(pairs))


def check_answer(response: Any, expected: dict[str, Any], bad: set[str]) -> None:
    event(f"{response.status_code}: {', '.join(sorted(bad)) or 'ok'}")
    body = response.json()
    if not bad:
        assert response.status_code == 200, response.text
        assert body == expected
        return
    assert response.status_code == 422, response.text
    assert_error_envelope(422, body)
    assert body["message"] == "Request validation failed"
    assert all(error["loc"][0] == "query" for error in body["data"]), body
    assert {error["loc"][1] for error in body["data"]} == bad, body


# --- properties ------------------------------------------------------------------------------

MARKERS = st.sampled_from(["depends", "query"])


@settings(max_examples=examples(400))
@given(data=st.data(), marker=MARKERS, endpoint=st.sampled_from(sorted(DOMAINS)))
def test_integer_params_answer_200_exactly_inside_their_bounds(
    client: TestClient, data: st.DataObject, marker: str, endpoint: str
) -> None:
    params = data.draw(query_params(endpoint))
    expected: dict[str, Any] = {}
    bad: set[str] = set()
    for name, domain in DOMAINS[endpoint].items():
        value = expected_int([v for n, v in params if n == name], domain)
        if value is None:
            bad.add(name)
        expected[name] = value
    check_answer(client.get(f"/{marker}/{endpoint}", params=params), expected, bad)


@settings(max_examples=examples(300))
@given(params=query_params("sort"), marker=MARKERS)
def test_sort_answers_200_exactly_for_allowed_fields(
    client: TestClient, params: list[tuple[str, str]], marker: str
) -> None:
    fields = expected_sort([v for n, v in params if n == "sort"])
    expected = {"fields": [list(f) for f in fields or []]}
    bad = set() if fields is not None else {"sort"}
    check_answer(client.get(f"/{marker}/sort", params=params), expected, bad)


# --- the oracle itself, on the documented examples ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("3", 3),
        (" 3\n", 3),
        ("+3", 3),
        ("-0", 0),
        ("003", 3),
        ("1_000", 1000),
        ("3.0", 3),
        ("1.5", None),  # docs/pagination.md: page=1.5 is a 422
        ("", None),  # page= is a 422
        ("x", None),
        ("1e3", None),
        ("1__0", None),
        ("_1", None),
        ("0__1", 1),
        ("0_", None),
        ("0_1__2", None),
        ("\uff11", None),
        (str(10**30), 10**30),
    ],
)
def test_read_int(text: str, number: int | None) -> None:
    assert read_int(text) == number


@pytest.mark.parametrize(
    ("sort", "fields"),
    [
        ("-score,name", [("score", True), ("name", False)]),
        ("", SORT_DEFAULT),
        ("name,name", None),
        ("name,-name", None),
        ("name,", None),
        ("--name", None),
        ("price", None),
        ("name, -score", [("name", False), ("score", True)]),
        ("name" + " " * 496, [("name", False)]),  # 500 characters
        ("name" + " " * 497, None),
    ],
)
def test_expected_sort(sort: str, fields: list[tuple[str, bool]] | None) -> None:
    assert expected_sort([sort]) == fields
