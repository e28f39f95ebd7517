"""The apps, tokens and checks behind ``tests/test_malformed_inputs.py`` (issue #9).

Three real apps are driven in process: the todo example (SQLite in a temporary directory),
the chat example (websockets), and a bare ``setup(FastAPI())`` app for the pagination params,
headers, cookies, forms and ``fastkit.errors`` that the examples do not use.

No ``from __future__ import annotations``: the bare app's endpoints are defined in a function,
and FastAPI evaluates their annotations.
"""

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import re
import sqlite3
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import fastapi
import jwt
from fastapi import Cookie, Depends, FastAPI, Form, Header, Query
from fastapi.testclient import TestClient
from jwt.warnings import InsecureKeyLengthWarning
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from examples.chat.main import create_app as create_chat_app
from examples.todo.main import create_app as create_todo_app
from examples.todo.settings import Settings
from fastkit import BadRequest, NotFound, UnprocessableEntity, setup
from fastkit.db import Database
from fastkit.pagination import (
    CursorParams,
    LimitOffsetPage,
    LimitOffsetParams,
    Page,
    PageParams,
    SortParams,
    decode_cursor,
    paginate,
)
from tests.examples.todo_support import JWT_SECRET, base_env

try:
    import httpx2 as httpx
except ImportError:  # Python 3.10: httpx2 needs 3.11+
    import httpx  # type: ignore[no-redef]

# --- what the docs say the answers are ------------------------------------------------------

VALIDATION = "Request validation failed"  # errors.md: every validation failure, 422
BODY_PARSE = "There was an error parsing the body"  # FastAPI's 400 HTTPException (errors.md)
INVALID_TOKEN = "Invalid or expired token"  # auth.md: 401, WWW-Authenticate invalid_token
# auth.md: /auth/token answers RFC 6749 errors, 400 with ``error`` beside the envelope.
WRONG_CREDENTIALS = "Incorrect username or password"
NEEDS_CREDENTIALS = "The password grant needs a username and password."
UNSUPPORTED_GRANT = "Use grant_type=password or refresh_token."
OAUTH2_ERRORS = {"invalid_request", "invalid_grant", "unsupported_grant_type", "invalid_scope"}
NO_SCOPE = "Not enough permissions"  # auth.md: 403, insufficient_scope
INACTIVE = "Inactive user"  # auth.md: 403
NOT_FOUND = "Not Found"  # errors.md: unknown route
METHOD_NOT_ALLOWED = "Method Not Allowed"  # errors.md: wrong method, with Allow
TODO_NOT_FOUND = "Todo not found"  # examples/todo: not yours, or no such id
TAKEN = "Username already taken"  # examples/todo: POST /users, 409
VALUE_REJECTED = "A value is out of range or invalid for the database"  # database.md, 400
MALFORMED_FRAME = {"type": "error", "error": "Malformed JSON"}  # websocket.md
CHAT_SHAPE_FRAME = {"type": "error", "error": 'Send {"text": "..."}, 1 to 1000 characters'}

# pagination.md, "Bad cursors: 400"
NOT_BASE64 = "Invalid cursor: not base64url."
UNREADABLE = "Invalid cursor: cannot be read."
BAD_VALUE = "Invalid cursor: a value cannot be read."
WRONG_TYPE = "Invalid cursor: a value has the wrong type."
OTHER_SORT = "Invalid cursor: it was made for another sort order; start over."
BAD_SIGNATURE = "Invalid cursor: the signature does not match."
SIGNED_HERE = "Invalid cursor: it is signed, but this endpoint does not sign them."

CHAT_SECRET = "chat-malformed-inputs-secret-0123456789abcdef"
OTHER_SECRET = "another-secret-of-at-least-32-bytes-0123456789"
BARE_CURSOR_SECRET = "bare-app-cursor-secret-0123456789abcdef-xyz"
PASSWORD = "correct horse"
SESSION_ID = "3f2b9c1e-8d4a-4c6e-9b1f-2a7d5e8c0b13"

# --- the cases ------------------------------------------------------------------------------

UNSET: Any = type("Unset", (), {"__repr__": lambda self: "UNSET"})()


@dataclass(frozen=True)
class HTTPCase:
    """One request and the documented answer.

    Strings may name a prepared value as ``@NAME@`` (a token, a todo id, a cursor), filled
    in when the request is sent: see `TodoWorld.values`.
    """

    app: Literal["todo", "bare"]
    method: str
    url: str
    status: int
    message: str | None = None  # the exact message, where the docs give it
    loc: tuple[str | int, ...] | None = None  # a 422 must report an error at this loc
    json: Any = UNSET
    content: bytes | str | None = None
    form: Any = None
    files: Any = None
    headers: tuple[tuple[str, str | bytes], ...] = ()
    auth: str | None = None  # a bearer token, unless ``headers`` has an Authorization
    expect_headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class FrameCase:
    """A frame sent on an open chat connection: an error frame back and the socket stays,
    or the connection is closed with ``close_code``."""

    payload: str | bytes
    reply: dict[str, str] | None = None
    close_code: int | None = None


@dataclass(frozen=True)
class HandshakeCase:
    """A websocket handshake the chat must refuse with ``code`` (and ``reason``)."""

    url: str
    subprotocols: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    code: int = 1008
    reason: str | None = None


_PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")


def fill(value: Any, values: dict[str, str]) -> Any:
    """``value`` with every ``@NAME@`` in its strings replaced by ``values[NAME]``."""
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], value)
    if isinstance(value, tuple):
        return tuple(fill(v, values) for v in value)
    if isinstance(value, list):
        return [fill(v, values) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, values) for k, v in value.items()}
    return value


def send(client: TestClient, case: HTTPCase, values: dict[str, str]) -> httpx.Response:
    headers: list[tuple[str, str | bytes]] = list(fill(case.headers, values))
    if case.auth is not None and not any(k.lower() == "authorization" for k, _ in headers):
        headers.append(("Authorization", f"Bearer {fill(case.auth, values)}"))
    kwargs: dict[str, Any] = {}
    if case.json is not UNSET:
        kwargs["json"] = fill(case.json, values)
    if case.content is not None:
        kwargs["content"] = fill(case.content, values)
    if case.form is not None:
        kwargs["data"] = fill(case.form, values)
    if case.files is not None:
        kwargs["files"] = case.files
    return client.request(case.method, fill(case.url, values), headers=headers, **kwargs)


# --- the checks -----------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
SITE_PACKAGES = Path(fastapi.__file__).resolve().parents[1]
_LEAK_WORDS = ("Traceback", 'File "', "sqlalchemy", "asyncpg", "aiosqlite", "sqlite3")
# "json.decoder.JSONDecodeError: ..." or a line starting "OverflowError: ...".
_MODULE_ERROR = re.compile(r"\b[A-Za-z_]\w*(\.[A-Za-z_]\w*)+(Error|Exception)\b")
_ERROR_LINE = re.compile(r"(?m)^\s*[A-Za-z_][\w.]*(Error|Exception):")
_GENERATED_ID = re.compile(r"[0-9a-f]{32}")
_VALID_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def assert_no_leak(text: str, *paths: Path) -> None:
    """No traceback, exception path, database library or server file path in ``text``."""
    for word in _LEAK_WORDS:
        assert word not in text, f"{word!r} leaked: {text[:500]}"
    assert _MODULE_ERROR.search(text) is None, text[:500]
    assert _ERROR_LINE.search(text) is None, text[:500]
    for path in (REPO, SITE_PACKAGES, *paths):
        assert str(path) not in text, f"server path {path} leaked: {text[:500]}"


def assert_clean_error(
    response: httpx.Response,
    case: HTTPCase,
    sent_headers: tuple[tuple[str, Any], ...],
    *paths: Path,
) -> None:
    """The documented 4xx, in the envelope, with nothing of the server's insides."""
    assert response.status_code == case.status, response.text[:500]
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"] == "application/json", response.headers
    text = response.text
    assert len(response.content) < 4096, f"{len(response.content)} bytes: {text[:300]}"
    assert_no_leak(text, *paths)
    body = response.json()
    assert isinstance(body, dict), body
    if "error" in body:
        # auth.md: a token-endpoint error, RFC 6749 5.2, with the envelope's members beside.
        assert set(body) == {"code", "message", "data", "error", "error_description"}, body
        assert body["error"] in OAUTH2_ERRORS, body
        assert body["error_description"] == body["message"], body
        assert response.headers.get("cache-control") == "no-store", response.headers
    else:
        assert set(body) == {"code", "message", "data"}, body
    assert body["code"] == case.status
    assert isinstance(body["message"], str), body
    assert body["message"].strip(), body
    if case.message is not None:
        assert body["message"] == case.message, body
    if case.status == 422 and case.message == VALIDATION:
        # errors.md: data lists {"loc", "msg", "type"}; the input is never echoed.
        assert isinstance(body["data"], list), body
        assert body["data"], body
        for error in body["data"]:
            assert set(error) == {"loc", "msg", "type"}, error
        if case.loc is not None:
            locs = [tuple(error["loc"][: len(case.loc)]) for error in body["data"]]
            assert case.loc in locs, body["data"]
    else:
        assert case.loc is None, "loc is only checked on validation failures"
    # auth.md and errors.md: the headers that go with these answers.
    challenge = response.headers.get("www-authenticate")
    if body["message"] == INVALID_TOKEN:
        assert challenge == 'Bearer error="invalid_token"'
    if body["message"] == WRONG_CREDENTIALS:
        assert challenge is None  # RFC 6749: 401 and a challenge are for client auth only
        assert body["error"] == "invalid_grant"
    if body["message"] == NO_SCOPE:
        assert challenge is not None
        assert challenge.startswith('Bearer error="insufficient_scope"'), challenge
    if case.status == 405:
        assert response.headers.get("allow"), response.headers
    for name, value in case.expect_headers:
        assert response.headers.get(name) == value, response.headers
    assert_request_id(response, sent_headers)


def assert_request_id(response: httpx.Response, sent_headers: tuple[tuple[str, Any], ...]) -> None:
    """middleware.md: a valid incoming id is kept; anything else is replaced, never echoed."""
    answered = response.headers.get_list("x-request-id")
    assert len(answered) == 1, response.headers
    sent = [v for k, v in sent_headers if k.lower() == "x-request-id"]
    first = sent[0] if sent else None
    if isinstance(first, str) and _VALID_ID.fullmatch(first):
        assert answered == [first]
        return
    assert _GENERATED_ID.fullmatch(answered[0]), answered
    for value in sent:
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        assert answered[0] != text


# --- tokens -----------------------------------------------------------------------------


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def craft_token(
    secret: str | None,
    *,
    sub: str,
    issuer: str | None = None,
    exp_in: int = 600,
    typ: str = "access",
    header: dict[str, Any] | None = None,
    algorithm: str = "HS256",
    drop: tuple[str, ...] = (),
    **extra: Any,
) -> str:
    """A JWT with the claims fastkit's tokens carry; ``secret=None`` for ``"alg": "none"``."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "iat": now - 3600,
        "nbf": now - 3600,
        "exp": now + exp_in,
        "jti": uuid.uuid4().hex,
        "type": typ,
        "scopes": ["todos:read", "todos:write"],
        **extra,
    }
    if issuer is not None:
        claims["iss"] = issuer
    for name in drop:
        claims.pop(name)
    if secret is None:
        head = {"alg": "none", "typ": "JWT", **(header or {})}
        payload = json.dumps(claims, separators=(",", ":")).encode()
        return f"{b64url(json.dumps(head).encode())}.{b64url(payload)}."
    with warnings.catch_warnings():  # HS512 with a 43-byte key: the point of the token
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims, secret, algorithm=algorithm, headers=header)


def hostile_tokens(secret: str, *, sub: str, issuer: str | None) -> dict[str, str]:
    """Tokens an app using ``secret`` and ``issuer`` must refuse (401 / 1008)."""
    return {
        "EXPIRED": craft_token(secret, sub=sub, issuer=issuer, exp_in=-3600),
        "NOT_YET": craft_token(secret, sub=sub, issuer=issuer, nbf=int(time.time()) + 3600),
        "ALG_NONE": craft_token(None, sub=sub, issuer=issuer),
        "FORGED": craft_token(OTHER_SECRET, sub=sub, issuer=issuer),
        "GHOST": craft_token(secret, sub="999999", issuer=issuer),
        "WRONG_ISSUER": craft_token(secret, sub=sub, issuer="someone-else"),
        "WITH_AUDIENCE": craft_token(secret, sub=sub, issuer=issuer, aud="another-api"),
        "UNKNOWN_KID": craft_token(secret, sub=sub, issuer=issuer, header={"kid": "k2"}),
        "HS512": craft_token(secret, sub=sub, issuer=issuer, algorithm="HS512"),
        "CRIT": craft_token(secret, sub=sub, issuer=issuer, header={"crit": ["exp"]}),
        "NO_JTI": craft_token(secret, sub=sub, issuer=issuer, drop=("jti",)),
        "ID_TOKEN": craft_token(secret, sub=sub, issuer=issuer, typ="id"),
        "HUGE_TOKEN": craft_token(secret, sub=sub, issuer=issuer, pad="x" * 9000),
    }


# --- the todo example -------------------------------------------------------------------


@dataclass
class TodoWorld:
    client: TestClient
    db_path: Path
    values: dict[str, str] = field(default_factory=dict)

    def snapshot(self) -> tuple[list[Any], list[Any]]:
        """Every user and todo row, read past the app: a failed request changes none."""
        with contextlib.closing(sqlite3.connect(self.db_path)) as db:
            users = db.execute("SELECT * FROM todo_users ORDER BY id").fetchall()
            todos = db.execute("SELECT * FROM todo_items ORDER BY id").fetchall()
        return users, todos

    def login(self, username: str, **form: str) -> dict[str, Any]:
        response = self.client.post(
            "/auth/token", data={"username": username, "password": PASSWORD, **form}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def _register(client: TestClient, username: str) -> int:
    response = client.post("/users", json={"username": username, "password": PASSWORD})
    assert response.status_code == 201, response.text
    user_id: int = response.json()["data"]["id"]
    return user_id


def _todo(client: TestClient, token: str, title: str) -> int:
    response = client.post(
        "/todos", json={"title": title}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 201, response.text
    todo_id: int = response.json()["data"]["id"]
    return todo_id


def _next_cursor(client: TestClient, token: str, query: str) -> str:
    response = client.get(
        f"/todos/feed?page_size=1{query}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    cursor: str = response.json()["data"]["next_cursor"]
    return cursor


@contextlib.contextmanager
def todo_world(tmp: Path) -> Iterator[TodoWorld]:
    """The todo example on SQLite in ``tmp``: alice (3 todos), bob (1), mallory (disabled)."""
    env = base_env(tmp)
    settings = Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})  # type: ignore[call-arg]
    db_path = tmp / "todo.db"
    with TestClient(create_todo_app(settings), raise_server_exceptions=False) as client:
        world = TodoWorld(client, db_path)
        alice = _register(client, "alice")
        _register(client, "bob")
        _register(client, "mallory")
        tokens = world.login("alice")
        access = tokens["access_token"]
        bob = world.login("bob")["access_token"]
        mallory = world.login("mallory")["access_token"]
        with contextlib.closing(sqlite3.connect(db_path)) as db, db:
            db.execute("UPDATE todo_users SET is_active = 0 WHERE username = 'mallory'")
        logged_out = world.login("alice")["access_token"]
        response = client.post("/auth/logout", headers={"Authorization": f"Bearer {logged_out}"})
        assert response.status_code == 200, response.text
        todo = _todo(client, access, "buy milk")
        _todo(client, access, "walk the dog")
        _todo(client, access, "call mum")
        cursor = _next_cursor(client, access, "")
        payload, _, signature = cursor.partition(".")
        middle = len(payload) // 2  # not the last character, whose low bits may be unused
        flipped = (
            payload[:middle] + ("B" if payload[middle] == "A" else "A") + payload[middle + 1 :]
        )
        other_signature = hmac.new(
            hashlib.sha256(b"todo-cursor:" + OTHER_SECRET.encode()).hexdigest().encode(),
            payload.encode(),
            hashlib.sha256,
        ).digest()
        world.values = {
            "ACCESS": access,
            "REFRESH": tokens["refresh_token"],
            "READONLY": world.login("alice", scope="todos:read")["access_token"],
            "INACTIVE": mallory,
            "LOGGED_OUT": logged_out,
            "TODO": str(todo),
            "BOB_TODO": str(_todo(client, bob, "bob's secret")),
            "CURSOR": cursor,
            "CURSOR_TITLE": _next_cursor(client, access, "&sort=title"),
            "CURSOR_UNSIGNED": payload,
            "CURSOR_FLIPPED": f"{flipped}.{signature}",
            "CURSOR_SIG_FLIPPED": f"{payload}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}",
            "CURSOR_OTHER_SECRET": f"{payload}.{b64url(other_signature)}",
            "EXPIRED_REFRESH": craft_token(
                JWT_SECRET,
                sub=str(alice),
                issuer="fastkit-todo",
                typ="refresh",
                exp_in=-3600,
                fam=uuid.uuid4().hex,
            ),
            **hostile_tokens(JWT_SECRET, sub=str(alice), issuer="fastkit-todo"),
        }
        yield world


# --- the chat example -------------------------------------------------------------------


@dataclass
class ChatWorld:
    client: TestClient
    values: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def chat_world() -> Iterator[ChatWorld]:
    with TestClient(create_chat_app(secret=CHAT_SECRET)) as client:
        world = ChatWorld(client)

        def login() -> dict[str, Any]:
            response = client.post(
                "/auth/token", data={"username": "alice", "password": "wonderland"}
            )
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body

        tokens = login()
        logged_out = login()["access_token"]
        response = client.post("/auth/logout", headers={"Authorization": f"Bearer {logged_out}"})
        assert response.status_code == 200, response.text
        world.values = {
            "ACCESS": tokens["access_token"],
            "REFRESH": tokens["refresh_token"],
            "LOGGED_OUT": logged_out,
            **hostile_tokens(CHAT_SECRET, sub="1", issuer=None),
        }
        yield world


# --- the bare app -------------------------------------------------------------------------


class Thing(BaseModel):
    """A body with one field of each common type; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=50)
    count: int = Field(0, ge=0, le=1000)
    kind: Literal["tool", "part"] = "tool"
    when: dt.datetime | None = None
    ref: uuid.UUID | None = None
    tags: list[str] = Field(default_factory=list, max_length=5)


class NoteBase(DeclarativeBase):
    pass


class Note(NoteBase):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(100))


ITEMS = [{"id": i, "name": f"item {i:02d}"} for i in range(1, 26)]


def create_bare_app() -> FastAPI:
    """``setup(FastAPI())`` with pagination params, headers, cookies, a form, AppErrors, and
    an in-memory database behind an id the app does not bound."""
    db = Database("sqlite+aiosqlite://")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await db.create_all(NoteBase.metadata)
        try:
            yield
        finally:
            await db.dispose()

    app = FastAPI(lifespan=lifespan)
    setup(app)
    small_pages = PageParams.configure(default_size=3, max_size=10)
    item_sort = SortParams.allow("id", "name", default="id")
    signed_cursor = CursorParams.configure(secret=BARE_CURSOR_SECRET)

    def after(cursor: str | None, secret: bytes | None) -> list[dict[str, Any]]:
        start = 0
        if cursor:
            [start], _ = decode_cursor(cursor, "id", secret=secret, types=[int])
        return [item for item in ITEMS if item["id"] > start]

    @app.get("/health")
    def health() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/items")
    def list_items(
        params: Annotated[PageParams, Depends()],
        sort: Annotated[SortParams, Depends(item_sort)],
    ) -> Page[dict[str, Any]]:
        ordered = list(ITEMS)
        for name, descending in reversed(sort.fields):
            ordered.sort(key=lambda item: item[name], reverse=descending)
        return paginate(ordered, params)

    @app.get("/items/query")
    def query_items(params: Annotated[PageParams, Query()]) -> Page[dict[str, Any]]:
        return paginate(ITEMS, params)

    @app.get("/items/small")
    def small_items(params: Annotated[PageParams, Depends(small_pages)]) -> Page[dict[str, Any]]:
        return paginate(ITEMS, params)

    @app.get("/items/window")
    def window(
        params: Annotated[LimitOffsetParams, Depends()],
    ) -> LimitOffsetPage[dict[str, Any]]:
        return paginate(ITEMS, params)

    @app.get("/items/feed")
    def feed(params: Annotated[CursorParams, Depends()]) -> list[dict[str, Any]]:
        return after(params.cursor, None)[: params.size]

    @app.get("/items/signed-feed")
    def signed_feed(params: Annotated[CursorParams, Depends(signed_cursor)]) -> list[Any]:
        return after(params.cursor, signed_cursor.cursor_secret)[: params.size]

    @app.get("/notes/{note_id}")
    async def read_note(
        note_id: int, session: Annotated[AsyncSession, db.depends]
    ) -> dict[str, Any]:
        note = await session.get(Note, note_id)
        if note is None:
            raise NotFound("Note not found")
        return {"id": note.id, "text": note.text}

    @app.post("/things", status_code=201)
    def create_thing(thing: Thing) -> Thing:
        return thing

    @app.get("/tenant")
    def tenant(x_tenant: Annotated[int, Header(ge=1, le=1_000_000)]) -> dict[str, int]:
        return {"tenant": x_tenant}

    @app.get("/session")
    def session(
        session: Annotated[uuid.UUID, Cookie()],
        theme: Annotated[Literal["light", "dark"] | None, Cookie()] = None,
    ) -> dict[str, str | None]:
        return {"session": str(session), "theme": theme}

    @app.post("/contact")
    def contact(
        email: Annotated[str, Form(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")],
        age: Annotated[int, Form(ge=0, le=150)],
    ) -> dict[str, Any]:
        return {"email": email, "age": age}

    @app.post("/transfer")
    def transfer(
        amount: int, x_currency: Annotated[str, Header(max_length=3)] = "EUR"
    ) -> dict[str, Any]:
        if x_currency not in ("EUR", "USD"):
            raise BadRequest("Unknown currency")
        if amount <= 0:
            raise UnprocessableEntity("The amount must be positive", data={"field": "amount"})
        return {"amount": amount, "currency": x_currency}

    return app
