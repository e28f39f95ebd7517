"""Request ids: whatever ``X-Request-ID`` a client sends, the id echoed back is well-formed,
and it is the client's own exactly when that one is valid (1-128 of ``[A-Za-z0-9._-]``).

Through ``fastkit.setup(app)``, with raw ASGI calls for header bytes no HTTP client sends
(control characters, non-ASCII), and with the TestClient for what clients do send.

No ``from __future__ import annotations``: FastAPI evaluates the endpoints' annotations.
"""

import json
import re
import string
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import event, given, settings
from hypothesis import strategies as st

import fastkit
from fastkit import get_request_id
from fastkit.request_context import default_request_id_validator
from tests.property_support import call_asgi, examples

ID_CHARACTERS = string.ascii_letters + string.digits + "._-"
GENERATED = re.compile(r"[0-9a-f]{32}")


def is_valid_id(value: bytes) -> bool:
    """The documented rule, written out: 1-128 bytes, each a letter, digit, '.', '_' or '-'."""
    return 1 <= len(value) <= 128 and all(chr(b) in ID_CHARACTERS for b in value)


def id_app() -> FastAPI:
    app = FastAPI()
    fastkit.setup(app)

    @app.get("/id")
    async def current_id() -> dict[str, str | None]:
        return {"request_id": get_request_id()}

    return app


APP = id_app()


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(APP) as client:
        yield client


VALID_IDS = st.text(ID_CHARACTERS, min_size=1, max_size=128)
# Valid ids changed a little: too long, a character off the list, a line break after
# (``$`` in a regular expression would let that one through), padding.
NEAR_MISSES = st.one_of(
    st.text(ID_CHARACTERS, min_size=129, max_size=140),
    st.builds(
        lambda head, c, tail: head + c + tail,
        st.text(ID_CHARACTERS, max_size=64),
        st.characters(exclude_categories=["Cs"], exclude_characters=ID_CHARACTERS),
        st.text(ID_CHARACTERS, max_size=63),
    ),
    VALID_IDS.map(lambda v: v + "\n"),
    VALID_IDS.map(lambda v: " " + v),
    st.just(""),
)
HEADER_BYTES = st.one_of(
    st.binary(max_size=200),
    st.text().map(lambda t: t.encode("utf-8")),
    VALID_IDS.map(str.encode),
    NEAR_MISSES.map(lambda t: t.encode("utf-8")),
    st.sampled_from([b"\x00", b"abc\r\nSet-Cookie: x=1", b"caf\xe9", b"\xff" * 10, b"a" * 128]),
)


def check_echo(sent_value: bytes | None, echoed: list[bytes], seen_by_app: str | None) -> None:
    assert len(echoed) == 1, echoed
    [value] = echoed
    # Well-formed whatever came in: no control characters, nothing to split a header on.
    assert is_valid_id(value), value
    assert seen_by_app == value.decode("ascii")  # the id the app's code saw, echoed
    if sent_value is not None and is_valid_id(sent_value):
        event("kept")
        assert value == sent_value
    else:
        event("replaced")
        assert value != sent_value
        assert GENERATED.fullmatch(value.decode("ascii")), value


@settings(max_examples=examples(300))
@given(value=HEADER_BYTES)
def test_any_header_bytes_give_a_well_formed_id(value: bytes) -> None:
    sent = call_asgi(APP, "/id", headers=[(b"x-request-id", value)])
    assert sent.status == 200
    check_echo(value, sent.header("x-request-id"), _json_id(sent.body))


@settings(max_examples=examples(100))
@given(values=st.lists(HEADER_BYTES, min_size=2, max_size=3))
def test_repeated_headers_give_one_well_formed_id(values: list[bytes]) -> None:
    sent = call_asgi(APP, "/id", headers=[(b"x-request-id", v) for v in values])
    assert sent.status == 200
    [echoed] = sent.header("x-request-id")
    assert is_valid_id(echoed)
    # One of the client's valid ids, or a fresh one: never a mix, never an invalid one.
    assert echoed in [v for v in values if is_valid_id(v)] or GENERATED.fullmatch(
        echoed.decode("ascii")
    )


@settings(max_examples=examples(50))
@given(path=st.sampled_from(["/id", "/missing"]), value=HEADER_BYTES)
def test_error_answers_carry_a_well_formed_id_too(path: str, value: bytes) -> None:
    sent = call_asgi(APP, path, headers=[(b"x-request-id", value)])
    assert sent.status in (200, 404)
    [echoed] = sent.header("x-request-id")
    assert is_valid_id(echoed)
    assert (echoed == value) is is_valid_id(value)


# What HTTP clients send: visible ASCII and spaces (httpx refuses the rest).
CLIENT_TEXT = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=150),
    VALID_IDS,
    st.text(ID_CHARACTERS, min_size=125, max_size=131),
)


@settings(max_examples=examples(150))
@given(value=st.none() | CLIENT_TEXT)
def test_any_client_header_gives_a_well_formed_id(client: TestClient, value: str | None) -> None:
    headers = {} if value is None else {"X-Request-ID": value}
    response = client.get("/id", headers=headers)
    assert response.status_code == 200
    sent = None if value is None else value.encode("ascii")
    echoed = [v.encode("latin-1") for v in response.headers.get_list("x-request-id")]
    check_echo(sent, echoed, response.json()["request_id"])


@settings(max_examples=examples(300))
@given(value=st.one_of(st.text(), VALID_IDS, NEAR_MISSES))
def test_default_validator_is_the_documented_rule(value: str) -> None:
    expected = 1 <= len(value) <= 128 and all(c in ID_CHARACTERS for c in value)
    assert default_request_id_validator(value) is expected


def _json_id(body: bytes) -> str | None:
    value = json.loads(body)["request_id"]
    assert value is None or isinstance(value, str)
    return value
