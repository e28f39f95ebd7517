"""A small real app for the auth tests: in-memory users, ``fastkit.setup``, `JWTAuth`, router.

No ``from __future__ import annotations`` here: the endpoints are built inside a function,
and FastAPI must evaluate annotations that name its local variables (``auth``).
"""

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import bcrypt
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

import fastkit
from fastkit.auth import (
    JWTAuth,
    PasswordHasher,
    RevocationStore,
    TokenClaims,
    TokenService,
    auth_router,
)

SECRET = "fastkit-tests-secret-0123456789abcdef"
SCOPES = {"items:read": "Read items", "items:write": "Create and edit items"}
INVALID_TOKEN = {"code": 401, "message": "Invalid or expired token", "data": None}
INVALID_TOKEN_CHALLENGE = 'Bearer error="invalid_token"'

Kind = Literal["sync", "async"]


def fast_hasher() -> PasswordHasher:
    return PasswordHasher(argon2__time_cost=1, argon2__memory_cost=1024)


def in_event_loop_thread() -> bool:
    """True when called from the thread that runs the event loop (blocking would stall it)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class User:
    id: int
    username: str
    password_hash: str
    scopes: tuple[str, ...] = ()
    active: bool = True


@dataclass
class AuthApp:
    """The app and what the tests reach into: its users, tokens, auth and call log."""

    app: FastAPI
    auth: JWTAuth[User]
    tokens: TokenService
    users: dict[str, User]
    # (function, kind, ran in the event loop thread) for every user_loader/authenticate call
    calls: list[tuple[str, str, bool]] = field(default_factory=list)

    def login(
        self, client: TestClient, username: str = "alice", password: str = "", scope: str = ""
    ) -> dict[str, Any]:
        """Log in through ``/auth/token`` as Swagger UI does; returns the token JSON."""
        response = client.post(
            "/auth/token", data=swagger_form(username, password or PASSWORDS[username], scope)
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


PASSWORDS = {
    "alice": "alice-password",
    "bob": "bob-password",
    "carol": "carol-password",
}


def swagger_form(username: str, password: str, scope: str = "") -> dict[str, str]:
    """The fields Swagger UI's *Authorize* dialog posts for the OAuth2 password flow."""
    return {
        "grant_type": "password",
        "username": username,
        "password": password,
        "scope": scope,
        "client_id": "",
        "client_secret": "",
    }


def make_users(hasher: PasswordHasher) -> dict[str, User]:
    """alice (argon2, read+write), bob (legacy bcrypt hash, read), carol (disabled)."""
    legacy = bcrypt.hashpw(PASSWORDS["bob"].encode(), bcrypt.gensalt(rounds=4)).decode()
    return {
        "alice": User(1, "alice", hasher.hash(PASSWORDS["alice"]), ("items:read", "items:write")),
        "bob": User(2, "bob", legacy, ("items:read",)),
        "carol": User(3, "carol", hasher.hash(PASSWORDS["carol"]), ("items:read",), False),
    }


def build_app(
    *,
    tokens: TokenService | None = None,
    revocation: RevocationStore | None = None,
    loader: Kind = "async",
    authenticate: Kind = "async",
    hasher: PasswordHasher | None = None,
    **router_options: Any,
) -> AuthApp:
    """``fastkit.setup(app)`` plus `auth_router` and endpoints behind each dependency."""
    hasher = hasher or fast_hasher()
    tokens = tokens or TokenService(secret=SECRET)
    users = make_users(hasher)
    calls: list[tuple[str, str, bool]] = []

    def by_id(user_id: str) -> User | None:
        # Looked up each time, so that a test can delete or disable a user in ``users``.
        return next((u for u in users.values() if str(u.id) == user_id), None)

    def load_user_sync(claims: TokenClaims) -> User | None:
        calls.append(("user_loader", "sync", in_event_loop_thread()))
        return by_id(claims.sub)

    async def load_user_async(claims: TokenClaims) -> User | None:
        calls.append(("user_loader", "async", in_event_loop_thread()))
        return by_id(claims.sub)

    def authenticate_sync(username: str, password: str) -> User | None:
        calls.append(("authenticate", "sync", in_event_loop_thread()))
        user = users.get(username)
        if user is None:
            hasher.dummy_verify()  # an unknown user costs what a wrong password costs
            return None
        ok, new_hash = hasher.verify_and_update(password, user.password_hash)
        if not ok:
            return None
        if new_hash is not None:
            user.password_hash = new_hash  # bcrypt -> argon2 as the user logs in
        return user

    async def authenticate_async(username: str, password: str) -> User | None:
        calls.append(("authenticate", "async", in_event_loop_thread()))
        user = users.get(username)
        if user is None:
            await hasher.adummy_verify()
            return None
        ok, new_hash = await hasher.averify_and_update(password, user.password_hash)
        if not ok:
            return None
        if new_hash is not None:
            user.password_hash = new_hash
        return user

    def user_scopes(user: User) -> Iterable[str]:
        return user.scopes

    auth: JWTAuth[User] = JWTAuth(
        tokens,
        user_loader=load_user_sync if loader == "sync" else load_user_async,
        revocation=revocation,
        scopes=SCOPES,
        is_active=lambda user: user.active,
    )
    CurrentUser = Annotated[User, Depends(auth.current_user)]

    app = FastAPI()
    fastkit.setup(app)
    app.include_router(
        auth_router(
            auth,
            authenticate=authenticate_sync if authenticate == "sync" else authenticate_async,
            user_scopes=user_scopes,
            **router_options,
        )
    )

    @app.get("/me")
    async def me(user: CurrentUser) -> dict[str, Any]:
        return {"id": user.id, "username": user.username}

    @app.get("/items", dependencies=[auth.require_scopes("items:read")])
    async def list_items() -> list[str]:
        return ["hammer"]

    @app.post("/items")
    async def create_item(
        user: Annotated[User, auth.require_scopes("items:read", "items:write")],
    ) -> dict[str, str]:
        return {"created_by": user.username}

    @app.get("/maybe")
    async def maybe(user: Annotated[User | None, Depends(auth.optional_user)]) -> dict[str, Any]:
        return {"user": user.username if user is not None else None}

    @app.get("/claims")
    async def claims(claims: Annotated[TokenClaims, Depends(auth.claims)]) -> dict[str, Any]:
        return claims.model_dump()

    return AuthApp(app, auth, tokens, users, calls)
