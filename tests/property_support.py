"""Shared pieces of the property tests: budgets, mutations, envelopes, a raw ASGI caller."""

from __future__ import annotations

import asyncio
import string
from collections.abc import Iterator, Sequence
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from starlette.types import ASGIApp, Message

BASE64URL = string.ascii_letters + string.digits + "-_"
# What a client may put in a token or cursor by mistake: the base64url alphabet, the
# separators and padding of neighbouring formats, whitespace, and a few non-ASCII letters.
EDIT_ALPHABET = BASE64URL + ".=+/ %\t\n\x00é€\U0001f600"
# Any character a URL or header can carry as UTF-8: everything but lone surrogates.
LETTERS = st.characters(exclude_categories=["Cs"])


def examples(count: int) -> int:
    """``count`` examples under the ``ci`` profile (100 a test), scaled with the profile."""
    return max(1, count * settings.default.max_examples // 100)


# --- mutations ---------------------------------------------------------------------------


def single_edits(text: str, alphabet: str = EDIT_ALPHABET) -> Iterator[str]:
    """Every string one edit away from ``text``: each character replaced by each letter of
    ``alphabet``, each character deleted, each letter inserted at each position."""
    seen = {text}
    for i in range(len(text) + 1):
        candidates = [text[:i] + letter + text[i:] for letter in alphabet]
        if i < len(text):
            candidates.append(text[:i] + text[i + 1 :])
            candidates += [text[:i] + letter + text[i + 1 :] for letter in alphabet]
        for candidate in candidates:
            if candidate not in seen:
                seen.add(candidate)
                yield candidate


def _boundaries(text: str) -> list[int]:
    """Indexes where encodings go wrong first: the ends of the string and of its segments."""
    cuts = [-1, len(text)] + [i for i, c in enumerate(text) if c == "."]
    spots = {i + d for i in cuts for d in (-2, -1, 1, 2)}
    return sorted(i for i in spots if 0 <= i < len(text)) or [0]


@st.composite
def mutations(draw: st.DrawFn, original: str) -> str:
    """``original`` changed by one to three random edits (never ``original`` itself).

    Edits: a character replaced, flipped by one bit of its base64 value, deleted or
    inserted (anywhere, or at a segment boundary, where padding bits live), the string
    truncated, junk appended or prepended, or a segment dropped or duplicated.
    """
    text = original
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(
                ["replace", "bitflip", "delete", "insert", "truncate", "append", "prepend", "dots"]
            )
        )
        if not text:
            kind = "append"
        index = draw(
            st.one_of(st.integers(0, len(text) - 1), st.sampled_from(_boundaries(text)))
            if text
            else st.just(0)
        )
        letter = draw(st.one_of(st.sampled_from(EDIT_ALPHABET), LETTERS))
        junk = draw(st.one_of(st.text(BASE64URL, min_size=1), st.text(min_size=1)))
        if kind == "replace":
            text = text[:index] + letter + text[index + 1 :]
        elif kind == "bitflip":
            old = text[index]
            if old in BASE64URL:
                new = BASE64URL[BASE64URL.index(old) ^ (1 << draw(st.integers(0, 5)))]
            else:
                new = chr(ord(old) ^ 1)
            text = text[:index] + new + text[index + 1 :]
        elif kind == "delete":
            text = text[:index] + text[index + 1 :]
        elif kind == "insert":
            text = text[:index] + letter + text[index:]
        elif kind == "truncate":
            text = text[:index]
        elif kind == "append":
            text += junk
        elif kind == "prepend":
            text = junk + text
        else:  # "dots": drop, duplicate or swap the dot-separated segments
            parts = text.split(".")
            parts = draw(st.permutations(parts + draw(st.lists(st.sampled_from(parts)))))
            drop = draw(st.integers(0, len(parts) - 1))
            text = ".".join(parts[:drop] + parts[drop + 1 :] if len(parts) > 1 else parts)
    if text == original:
        text += draw(st.sampled_from(EDIT_ALPHABET))
    return text


# --- responses ---------------------------------------------------------------------------


def assert_error_envelope(status: int, body: Any) -> None:
    """A fastkit error answer: ``{code, message, data}`` (and the request id, if any)."""
    assert isinstance(body, dict), body
    assert {"code", "message", "data"} <= set(body) <= {"code", "message", "data", "request_id"}
    assert body["code"] == status, body
    assert isinstance(body["message"], str), body
    assert body["message"], body


# --- raw ASGI ----------------------------------------------------------------------------


class Sent:
    """What an ASGI app sent for one HTTP request."""

    def __init__(self, messages: list[Message]) -> None:
        self.messages = messages
        [start] = [m for m in messages if m["type"] == "http.response.start"]
        self.status: int = start["status"]
        self.headers: list[tuple[bytes, bytes]] = [tuple(h) for h in start.get("headers", [])]
        self.body = b"".join(
            m.get("body", b"") for m in messages if m["type"] == "http.response.body"
        )

    def header(self, name: str) -> list[bytes]:
        """Every value of response header ``name`` (case-insensitive), in order."""
        key = name.lower().encode("latin-1")
        return [value for k, value in self.headers if k.lower() == key]


def call_asgi(
    app: ASGIApp,
    path: str = "/",
    *,
    headers: Sequence[tuple[bytes, bytes]] = (),
    query_string: bytes = b"",
) -> Sent:
    """GET ``path`` with a hand-built scope, for header bytes no HTTP client would send.

    Runs in a new event loop; the app must need no lifespan.
    """
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("ascii"),
        "root_path": "",
        "query_string": query_string,
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    messages: list[Message] = []

    async def run() -> None:
        done = asyncio.Event()
        delivered = False

        async def receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            messages.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                done.set()

        await app(scope, receive, send)

    asyncio.run(run())
    return Sent(messages)
