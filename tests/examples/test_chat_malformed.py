"""A table of hand-picked malformed websocket frames and handshakes against the chat example.

Each case must get what websocket.md documents: an error frame with the connection kept
open, or the close code (1008 refused handshake, 1009 message too big), with the server's
connection table left empty. A refused handshake is tried twice: as a client without
``Origin`` (an HTTP 401 or 422 with the envelope) and as a browser (accepted, then closed
with 1008 and the reason). The HTTP table is in ``test_todo_malformed.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from examples.chat.main import MAX_TEXT
from tests.examples.malformed_support import (
    CHAT_SHAPE_FRAME,
    INVALID_TOKEN,
    MALFORMED_FRAME,
    ChatWorld,
    FrameCase,
    HandshakeCase,
    assert_no_leak,
    chat_world,
    fill,
)

if TYPE_CHECKING:
    from _pytest.mark.structures import ParameterSet  # what pytest.param returns

# --- websocket frames and handshakes ----------------------------------------------------


def frame(
    case_id: str, payload: str | bytes, reply: dict[str, str] = MALFORMED_FRAME
) -> ParameterSet:
    """A frame answered with an error frame; the connection stays open."""
    return pytest.param(FrameCase(payload, reply=reply), id=case_id)


def too_big(case_id: str, payload: str | bytes) -> ParameterSet:
    """A frame over the manager's 64 KiB: closed with 1009."""
    return pytest.param(FrameCase(payload, close_code=1009), id=case_id)


def refused(
    case_id: str, url: str = "/ws/lobby", reason: str | None = INVALID_TOKEN, **kwargs: Any
) -> ParameterSet:
    """A handshake refused with 1008 before the socket is accepted."""
    return pytest.param(HandshakeCase(url, reason=reason, **kwargs), id=case_id)


def subprotocol(case_id: str, *offered: str, reason: str = INVALID_TOKEN) -> ParameterSet:
    return refused(case_id, subprotocols=offered, reason=reason)


def cookie(case_id: str, value: str) -> ParameterSet:
    """The chat reads no cookie (a browser would send it from any site): never a token."""
    return refused(case_id, headers=(("Cookie", value),), reason="Missing token")


def room(case_id: str, name: str) -> ParameterSet:
    """A room name outside the chat's pattern: FastAPI refuses the handshake, 1008."""
    return refused(case_id, url=f"/ws/{name}", reason=None, subprotocols=("@ACCESS@",))


WEBSOCKET = [
    frame("ws-frame-not-json", "{not json"),
    frame("ws-frame-empty-text", ""),
    frame("ws-frame-whitespace", "   \n"),
    frame("ws-frame-open-bracket", "["),
    frame("ws-frame-truncated-object", '{"text": "hi"'),
    frame("ws-frame-single-quotes", "{'text': 'hi'}"),
    frame("ws-frame-trailing-comma", '{"text": "hi",}'),
    frame("ws-frame-nul", "\x00"),
    frame("ws-frame-raw-control-in-string", '{"text": "a\x00b"}'),
    frame("ws-frame-nested-5000-arrays", "[" * 5000 + "]" * 5000),
    frame("ws-frame-nested-3000-objects", '{"a":' * 3000 + "1" + "}" * 3000),
    frame("ws-frame-5000-digit-number", "1" + "0" * 5000),
    frame("ws-binary-garbage", b"\xff\xfe\x00garbage"),
    frame("ws-binary-continuation-bytes", b"\x80\x81\x82"),
    frame("ws-binary-empty", b""),
    frame("ws-binary-invalid-utf8-json", b'{"text": "caf\xe9"}'),
    frame("ws-binary-nested-5000", b"[" * 5000 + b"]" * 5000),
    frame("ws-json-string", '"just a string"', CHAT_SHAPE_FRAME),
    frame("ws-json-number", "42", CHAT_SHAPE_FRAME),
    frame("ws-json-null", "null", CHAT_SHAPE_FRAME),
    frame("ws-json-array", "[]", CHAT_SHAPE_FRAME),
    frame("ws-json-nan", '{"text": NaN}', CHAT_SHAPE_FRAME),
    frame("ws-json-text-number", '{"text": 5}', CHAT_SHAPE_FRAME),
    frame("ws-json-wrong-key", '{"txt": "hi"}', CHAT_SHAPE_FRAME),
    frame("ws-json-text-empty", '{"text": ""}', CHAT_SHAPE_FRAME),
    frame("ws-json-text-blank", '{"text": " \\t "}', CHAT_SHAPE_FRAME),
    frame("ws-json-text-too-long", json.dumps({"text": "x" * (MAX_TEXT + 1)}), CHAT_SHAPE_FRAME),
    too_big("ws-frame-over-64k", "x" * (64 * 1024 + 1)),
    too_big(
        "ws-frame-64k-chars-over-64k-bytes",
        json.dumps({"text": "\u00e9" * 32_768}, ensure_ascii=False),
    ),
    too_big("ws-binary-over-64k", b"x" * (64 * 1024 + 1)),
    too_big("ws-frame-1mb", "[" * 1_000_000),
    refused("ws-token-missing", reason="Missing token"),
    subprotocol("ws-subprotocol-bearer-alone", "bearer", reason="Missing token"),
    subprotocol("ws-subprotocol-not-a-jwt", "not-a-token", reason="Missing token"),
    subprotocol("ws-subprotocol-bearer-garbage", "bearer", "garbage"),
    subprotocol("ws-subprotocol-garbage-jwt", "a.b.c"),
    subprotocol("ws-subprotocol-expired", "@EXPIRED@"),
    subprotocol("ws-subprotocol-refresh-token", "@REFRESH@"),
    subprotocol("ws-subprotocol-alg-none", "bearer", "@ALG_NONE@"),
    subprotocol("ws-subprotocol-other-secret", "@FORGED@"),
    subprotocol("ws-subprotocol-logged-out", "@LOGGED_OUT@"),
    subprotocol("ws-subprotocol-deleted-user", "@GHOST@"),
    subprotocol("ws-subprotocol-over-8192", "bearer", "@HUGE_TOKEN@"),
    subprotocol("ws-subprotocol-audience", "@WITH_AUDIENCE@"),
    refused(
        "ws-subprotocol-garbage-beats-valid-query",
        url="/ws/lobby?token=@ACCESS@",
        subprotocols=("bearer", "garbage"),
    ),
    refused("ws-query-empty", url="/ws/lobby?token=", reason="Missing token"),
    refused("ws-query-garbage", url="/ws/lobby?token=garbage"),
    refused("ws-query-expired", url="/ws/lobby?token=@EXPIRED@"),
    refused("ws-query-not-yet-valid", url="/ws/lobby?token=@NOT_YET@"),
    refused("ws-query-unicode", url="/ws/lobby?token=%C3%A9.%C3%A9.%C3%A9"),
    refused("ws-query-nul", url="/ws/lobby?token=%00"),
    refused("ws-query-sql-injection", url="/ws/lobby?token=%27%20OR%201%3D1%20--"),
    cookie("ws-cookie-valid-token", "access_token=@ACCESS@"),
    cookie("ws-cookie-empty", "access_token="),
    cookie("ws-cookie-garbage", "access_token=garbage"),
    cookie("ws-cookie-expired", "access_token=@EXPIRED@"),
    cookie("ws-cookie-refresh-token", "access_token=@REFRESH@"),
    cookie("ws-cookie-unknown-kid", "access_token=@UNKNOWN_KID@"),
    cookie("ws-cookie-malformed-header", "=;;access_token;=="),
    room("ws-room-space", "has%20space"),
    room("ws-room-33-chars", "x" * 33),
    room("ws-room-dots", "dots.not.allowed"),
    room("ws-room-unicode", "caf%C3%A9"),
    room("ws-room-nul", "a%00b"),
    room("ws-room-10k-chars", "r" * 10_000),
]

# --- the app ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chat() -> Iterator[ChatWorld]:
    with chat_world() as world:
        yield world


# --- the tests --------------------------------------------------------------------------


def _still_serving(chat: ChatWorld) -> None:
    """The refused or closed client is gone, and a valid client is welcomed."""
    manager = chat.client.app.state.manager  # type: ignore[attr-defined]
    assert len(manager) == 0, manager.clients()
    with chat.client.websocket_connect("/ws/lobby", subprotocols=[chat.values["ACCESS"]]) as ws:
        assert ws.receive_json() == {"type": "welcome", "room": "lobby", "user": "alice"}
    assert len(manager) == 0


@pytest.mark.parametrize("case", WEBSOCKET)
def test_websocket_case(case: FrameCase | HandshakeCase, chat: ChatWorld) -> None:
    if isinstance(case, HandshakeCase):
        url = fill(case.url, chat.values)
        kwargs: dict[str, Any] = {"headers": dict(fill(case.headers, chat.values))}
        if case.subprotocols:
            kwargs["subprotocols"] = list(fill(case.subprotocols, chat.values))
        # A client without Origin: an HTTP answer with the envelope, before accept.
        with (
            pytest.raises(WebSocketDenialResponse) as denial,
            chat.client.websocket_connect(url, **kwargs),
        ):
            pytest.fail("the handshake was accepted")
        answer = denial.value
        assert answer.status_code == (422 if case.reason is None else 401)
        assert answer.json()["code"] == answer.status_code
        if case.reason is not None:
            assert answer.json()["message"] == case.reason
        assert_no_leak(answer.text)
        _still_serving(chat)
        # A browser (Origin): accepted, then closed with the code and the reason.
        headers = {**kwargs.pop("headers"), "Origin": "http://testserver"}
        with (
            chat.client.websocket_connect(url, headers=headers, **kwargs) as ws,
            pytest.raises(WebSocketDisconnect) as refusal,
        ):
            ws.receive_text()
        assert refusal.value.code == case.code
        if case.reason is not None:
            assert refusal.value.reason == case.reason
        assert_no_leak(str(refusal.value.reason))
        _still_serving(chat)
        return

    token = chat.values["ACCESS"]
    with chat.client.websocket_connect("/ws/lobby", subprotocols=[token]) as ws:
        assert ws.receive_json()["type"] == "welcome"
        if isinstance(case.payload, bytes):
            ws.send_bytes(case.payload)
        else:
            ws.send_text(case.payload)
        if case.close_code is not None:
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            assert closed.value.code == case.close_code
        else:
            assert ws.receive_json() == case.reply
            ws.send_json({"text": "still open"})  # the connection stays
            reply = ws.receive_json()
            assert (reply["type"], reply["text"]) == ("message", "still open")
    _still_serving(chat)


def test_the_table_is_unique_and_large() -> None:
    ids = [case.id for case in WEBSOCKET]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert len(ids) >= 50
