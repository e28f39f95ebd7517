"""The shared pieces (database, hasher, tokens, auth), made once per app from the settings.

`Services` is built by ``create_app(settings)`` and handed to each router's factory, so a
test can build a fresh app with its own database and secret.
"""

# No ``from __future__ import annotations``: FastAPI evaluates the annotations of the
# current_user dependency made in Services, which name its local variables.

import functools
import hashlib
import logging
import os
import secrets
import sys
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from fastapi import Security
from sqlalchemy import select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fastkit import Conflict
from fastkit.auth import (
    JWTAuth,
    MemoryRevocationStore,
    PasswordHasher,
    RedisRevocationStore,
    RevocationStore,
    TokenClaims,
    TokenService,
)
from fastkit.caching import Idempotency
from fastkit.db import Database
from fastkit.health import HealthCheck
from fastkit.pagination import CursorParams, SortParams
from fastkit.ratelimit import LoginThrottle, RateLimit, client_ip, jwt_subject
from fastkit.stores import MemoryStore, RedisStore, Store

from .models import Todo, User
from .settings import Settings

logger = logging.getLogger("todo")

SCOPES = {"todos:read": "Read your todos", "todos:write": "Create, edit and delete your todos"}
NEW_USER_SCOPES = " ".join(SCOPES)

# ?sort=-created_at, ?sort=done,title ... any other field is answered 422.
TodoSort = SortParams.allow("created_at", "title", "done", default="-created_at")
# The only names that reach SQL; Todo.id ends every ORDER BY as the tie-breaker.
TODO_SORT_COLUMNS = {"created_at": Todo.created_at, "title": Todo.title, "done": Todo.done}


def worker_count(
    environ: Mapping[str, str] | None = None, argv: Sequence[str] | None = None
) -> int:
    """How many worker processes serve the app, as far as this process can tell; 1 if unsure.

    From ``--workers N``, ``--workers=N``, ``-w N`` or ``-wN`` in ``argv`` (default:
    ``sys.argv``), else ``WEB_CONCURRENCY`` in ``environ`` (default: ``os.environ``), which
    uvicorn and gunicorn read as their worker count when the command line has none. Their
    workers see the command line too: gunicorn forks them, and uvicorn starts them with
    multiprocessing's spawn, which gives the child the parent's ``sys.argv``. A count set
    elsewhere (``workers =`` in a gunicorn config file) is not seen.
    """
    environ = os.environ if environ is None else environ
    argv = sys.argv if argv is None else argv
    from_argv: str | None = None
    args = list(argv[1:])
    for i, arg in enumerate(args):
        if arg in ("--workers", "-w"):
            from_argv = args[i + 1] if i + 1 < len(args) else ""
        elif arg.startswith("--workers="):
            from_argv = arg.removeprefix("--workers=")
        elif arg.startswith("-w") and not arg.startswith("--"):
            from_argv = arg[2:]
    for value in (from_argv, environ.get("WEB_CONCURRENCY")):
        if value is None:
            continue
        try:
            return max(int(value.strip()), 1)
        except ValueError:
            continue  # garbage: the server would refuse it, or read it as one worker
    return 1


class Services:
    """Everything the routers share. ``await services.aclose()`` at shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

        engine_kwargs: dict[str, Any] = {}
        if settings.database_schema and settings.database_url.startswith("postgresql"):
            engine_kwargs["connect_args"] = {
                "server_settings": {"search_path": settings.database_schema}
            }
        self.db = Database(settings.database_url, **engine_kwargs)

        self.hasher = PasswordHasher(
            argon2__time_cost=settings.password_hash_time_cost,
            argon2__memory_cost=settings.password_hash_memory_kib,
        )

        self.random_secret = settings.jwt_secret is None
        secret = (
            secrets.token_hex(32)
            if settings.jwt_secret is None
            else settings.jwt_secret.get_secret_value()
        )
        self.tokens = TokenService(
            secret=secret,
            issuer="fastkit-todo",
            access_ttl=settings.access_token_minutes * 60,
            refresh_ttl=settings.refresh_token_days * 86400,
            leeway=5,
        )
        # One store for every piece of shared state: revoked tokens and rate limits.
        self.store: Store = (
            RedisStore(settings.redis_url, prefix=settings.redis_prefix)
            if settings.redis_url
            else MemoryStore()
        )
        self.revocation: RevocationStore = (
            RedisRevocationStore(store=self.store)
            if isinstance(self.store, RedisStore)
            else MemoryRevocationStore(self.store)
        )
        self.auth: JWTAuth[User] = JWTAuth(
            self.tokens,
            user_loader=self.load_user,
            revocation=self.revocation,
            scopes=SCOPES,
            is_active=lambda user: user.is_active,
        )
        self.current_user = self._current_user_dependency()
        # Rate limits: writes per user (the token's subject; without a valid token, the
        # client address), sign-ups and failed logins per client address.
        client = client_ip(trusted_proxies=settings.trusted_proxies)
        self.write_limit = (
            RateLimit(
                settings.write_rate_limit,
                key=jwt_subject(self.auth, fallback=client),
                store=self.store,
                name="todo-writes",
                per_route=False,  # one budget for creating, editing and deleting
            )
            if settings.write_rate_limit
            else None
        )
        self.register_limit = (
            RateLimit(settings.register_rate_limit, key=client, store=self.store, name="sign-up")
            if settings.register_rate_limit
            else None
        )
        self.login_throttle = (
            LoginThrottle(client=client, store=self.store) if settings.login_throttle else None
        )
        # Signed cursors: a client cannot forge one to read past the keys it was given.
        # The key is derived from the JWT secret, so it is the same in every worker too.
        cursor_secret = hashlib.sha256(b"todo-cursor:" + secret.encode()).hexdigest()
        self.TodoCursor = CursorParams.configure(
            default_size=20, max_size=100, secret=cursor_secret
        )

    def _current_user_dependency(self) -> Any:
        """The signed-in user, read through the request's own ``db.Session``.

        FastAPI resolves a dependency once per request, so the endpoint that also asks for
        a session gets this same one: an authenticated request holds one pooled connection,
        not one for the user and one for the endpoint. Use it as
        ``Security(services.current_user, scopes=[...])``; the scopes reach ``auth.claims``.
        """
        auth = self.auth
        Session = Annotated[AsyncSession, self.db.depends]

        async def current_user(
            claims: Annotated[TokenClaims, Security(auth.claims)], session: Session
        ) -> User:
            # 401 if the user was deleted since the login, 403 if disabled.
            return auth.check_user(await session.get(User, int(claims.sub)))

        return current_user

    async def load_user(self, claims: TokenClaims) -> User | None:
        """The user a verified token names, or None if it was deleted (answered 401).

        For ``auth_router``'s refresh, which has no endpoint session; requests use
        `current_user`.
        """
        async with self.db.session_scope() as session:
            return await session.get(User, int(claims.sub))

    async def authenticate(self, username: str, password: str) -> User | None:
        """The user for a login form, or None; as slow for unknown users as for known ones.

        The hash (0.1 s and more of argon2) runs with no session open: a session holds a
        pooled connection, and a flood of logins holding them would drain the pool and
        starve every other request (``/health`` included).
        """
        async with self.db.session_scope() as session:
            user = await session.scalar(select(User).where(User.username == username))
        if user is None:
            await self.hasher.adummy_verify()
            return None
        stored = user.password_hash
        matches, new_hash = await self.hasher.averify_and_update(password, stored)
        if not matches or not user.is_active:  # is_active is not checked at login
            return None
        if new_hash is not None:  # weaker settings or an old scheme: store the upgrade
            async with self.db.session_scope() as session:
                # Only over the hash just verified: a password changed meanwhile stays changed.
                await session.execute(
                    update(User)
                    .where(User.id == user.id, User.password_hash == stored)
                    .values(password_hash=new_hash)
                )
        return user

    async def create_user(self, username: str, password: str) -> User | None:
        """A new user with the usual scopes, or None if the username is taken."""
        password_hash = await self.hasher.ahash(password)
        try:
            async with self.db.session_scope() as session:
                user = User(username=username, password_hash=password_hash, scopes=NEW_USER_SCOPES)
                session.add(user)
        except Conflict:  # the unique username; another worker may have just made it
            return None
        return user

    async def create_schema(self) -> None:
        """PostgreSQL: create ``DATABASE_SCHEMA`` if it is missing (tables go there)."""
        schema = self.settings.database_schema
        if not schema or self.db.engine.dialect.name != "postgresql":
            return
        try:
            async with self.db.engine.begin() as connection:
                # The name is checked by Settings (letters, digits, _): safe to quote.
                await connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        except IntegrityError:
            pass  # another worker created it at the same moment
        except DBAPIError as error:  # no CREATE privilege on the database, typically
            raise RuntimeError(
                f"DATABASE_SCHEMA {schema!r} does not exist and could not be created "
                f"({type(error.orig).__name__}); create it, or grant CREATE to the app's user."
            ) from None

    async def create_demo_user(self) -> None:
        """On first start, a demo user to try the API with, its password in the log."""
        username = self.settings.demo_username
        if username is None:
            return
        async with self.db.session_scope() as session:
            if await session.scalar(select(User.id).where(User.username == username)):
                logger.info(
                    "The demo user %r exists: its password was logged by the start that "
                    "created it (or is DEMO_PASSWORD). %s",
                    username,
                    self._start_over_hint(),
                )
                return
        given = self.settings.demo_password
        password = secrets.token_urlsafe(12) if given is None else given.get_secret_value()
        if await self.create_user(username, password) is None:
            # Several workers started at once, and another one inserted it first.
            logger.info(
                "The demo user %r was created by another worker starting at the same time; "
                "its password is %s.",
                username,
                "in that worker's log" if given is None else "DEMO_PASSWORD",
            )
            return
        shown = password if given is None else "(DEMO_PASSWORD)"
        logger.info("Created the demo user: username %r, password %s", username, shown)

    def _start_over_hint(self) -> str:
        url = make_url(self.settings.database_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            return f"Lost it? Stop the app and delete {url.database} to start over."
        return "Lost it? Delete that user from the database, and a new one is made."

    def warn_about_settings(self) -> None:
        if self.random_secret:
            logger.warning(
                "JWT_SECRET is not set: using a random secret. Tokens stop working at restart "
                "and other workers refuse them; set JWT_SECRET (at least 32 bytes) in production."
            )
        if self.settings.redis_url is None:
            workers = worker_count()
            if workers > 1:
                logger.warning(
                    "REDIS_URL is not set and %d workers serve the app: each keeps its own "
                    "logouts, so a token logged out in one is still accepted by the others; "
                    "set REDIS_URL.",
                    workers,
                )
            else:
                logger.info("REDIS_URL is not set: logouts are kept in this process only.")

    @functools.cached_property
    def idempotency(self) -> Idempotency:
        """Idempotency-Key on POST /todos: answers kept a day, in the shared store."""
        # Per user (the token's subject): a retry after a token refresh is the same user's.
        return Idempotency(store=self.store, identity=jwt_subject(self.auth))

    def health_checks(self) -> dict[str, HealthCheck]:
        """What the readiness route checks: the database, and Redis when it is used."""
        checks: dict[str, HealthCheck] = {"database": self.db.ping}
        if isinstance(self.store, RedisStore):
            checks["redis"] = self.store.ping
        return checks

    async def aclose(self) -> None:
        await self.store.aclose()
        await self.db.dispose()
