"""Password hashing that never blocks the event loop: argon2 by default, bcrypt verified."""

from __future__ import annotations

import math
import os
import secrets
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from passlib.context import CryptContext
from passlib.exc import UnknownHashError

from fastkit.errors import ServiceUnavailable

__all__ = ["PasswordHasher", "PasswordHasherBusy"]

T = TypeVar("T")

# A refused input: unknown or corrupt hash, passlib's 4096-byte limit, bcrypt's 72 bytes or NUL.
_REFUSED = (UnknownHashError, ValueError, TypeError)


class PasswordHasherBusy(ServiceUnavailable):
    """503: more hashes are waiting than ``max_waiting``; the client should retry later.

    Carries ``Retry-After`` (seconds), estimated from the queue and recent hash times.
    """

    message = "Too many logins at once; try again in a moment."


_KNOWN_SCHEMES = frozenset({"argon2", "bcrypt", "bcrypt_sha256", "pbkdf2_sha256", "scrypt"})


class PasswordHasher:
    """Hash and verify passwords with passlib's ``CryptContext`` (the ``libpass`` fork).

    The first scheme hashes new passwords; the others are still verified, and
    `verify_and_update` returns a new hash for them so that old bcrypt hashes move to
    argon2 as users log in. The ``a``-prefixed methods run the hashing in a worker thread,
    at most ``max_concurrency`` at once, so a burst of logins cannot stall the event loop or
    exhaust memory (argon2 uses 64 MiB per hash); beyond ``max_waiting`` queued calls they
    raise `PasswordHasherBusy` (503 with ``Retry-After``) at once instead of queueing more.

    Every refusal (empty or over-long password, NUL byte, corrupt or unknown hash) spends
    the time of a real verification, so timing tells nothing about the stored hash.

    Args:
        schemes: passlib scheme names; the first is the default.
        max_concurrency: Hashes computed at once by the async methods (default: one less
            than the CPU count, at least 1 and at most 4, so a core stays free for the event
            loop).
        max_waiting: Calls of the async methods allowed to wait for a free slot (default:
            16 per slot of ``max_concurrency``); one more raises `PasswordHasherBusy`.
        **context_options: Passed to ``CryptContext`` (e.g. ``argon2__time_cost=3``).
            argon2 defaults to one lane (``argon2__parallelism=1``) and passlib's other
            costs (64 MiB, 3 passes).

    Raises:
        ValueError: If ``schemes`` is empty or names an unknown scheme, or
            ``max_concurrency`` is below 1 or ``max_waiting`` below 0.

    Example:
        ```python
        hasher = PasswordHasher()
        stored = await hasher.ahash("correct horse battery staple")
        ok, new_hash = await hasher.averify_and_update(password, stored)
        ```
    """

    def __init__(
        self,
        schemes: Sequence[str] = ("argon2", "bcrypt"),
        *,
        max_concurrency: int | None = None,
        max_waiting: int | None = None,
        **context_options: Any,
    ) -> None:
        if isinstance(schemes, str) or not schemes:
            raise ValueError("schemes must be a non-empty list, e.g. ('argon2', 'bcrypt').")
        unknown = [s for s in schemes if s not in _KNOWN_SCHEMES]
        if unknown:
            raise ValueError(
                f"Unknown password scheme(s) {unknown}; use some of {sorted(_KNOWN_SCHEMES)}."
            )
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}.")
        if max_waiting is not None and max_waiting < 0:
            raise ValueError(f"max_waiting must be 0 or more, got {max_waiting}.")
        if "argon2" in schemes:
            # One lane: argon2 runs a thread per lane, so passlib's 4 lanes per hash would
            # take every core of a small server and starve the event loop's thread. The
            # other costs stay (64 MiB, 3 passes); existing p=4 hashes still verify and are
            # re-hashed on login by verify_and_update.
            context_options.setdefault("argon2__parallelism", 1)
        self.context = CryptContext(schemes=list(schemes), deprecated="auto", **context_options)
        # One core stays free for the event loop.
        self.max_concurrency = max_concurrency or max(1, min(4, (os.cpu_count() or 1) - 1))
        self.max_waiting = 16 * self.max_concurrency if max_waiting is None else max_waiting
        self._limiter: anyio.CapacityLimiter | None = None
        self._in_flight = 0  # async calls running or waiting for the limiter
        # A real hash of a random password, for dummy_verify(); its time starts the moving
        # average of hash times that Retry-After is estimated from.
        started = time.perf_counter()
        self._dummy_hash = self.context.hash(secrets.token_urlsafe(16))
        self._seconds_per_hash = time.perf_counter() - started

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        # Created lazily: a CapacityLimiter belongs to the event loop that first uses it.
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.max_concurrency)
        return self._limiter

    def hash(self, password: str) -> str:
        """Hash ``password`` with the default scheme.

        Raises:
            ValueError: If the password is empty.
        """
        if not password:
            raise ValueError("Refusing to hash an empty password; ask the user for one.")
        return str(self.context.hash(password))

    def verify(self, password: str, hashed: str) -> bool:
        """True if ``password`` matches ``hashed``; False for any malformed input.

        Unlike `verify_and_update`, never computes a new hash for an old scheme.
        """
        if password and hashed:
            try:
                return bool(self.context.verify(password, hashed))
            except _REFUSED:
                pass
        self.dummy_verify()  # a refusal costs what a verification costs
        return False

    def verify_and_update(self, password: str, hashed: str) -> tuple[bool, str | None]:
        """Verify, and return a new hash when ``hashed`` uses a deprecated scheme.

        Returns:
            ``(matches, new_hash)``; store ``new_hash`` when it is not None.
        """
        if password and hashed:
            try:
                ok, new_hash = self.context.verify_and_update(password, hashed)
            except _REFUSED:
                pass
            else:
                return bool(ok), new_hash
        self.dummy_verify()  # a refusal costs what a verification costs
        return False, None

    def dummy_verify(self) -> None:
        """Spend the time of one verification, so an unknown user looks like a wrong password."""
        self.context.verify("not the password", self._dummy_hash)

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in a worker thread, in the bounded queue."""
        waiting = self._in_flight - self.max_concurrency + 1
        if waiting > self.max_waiting:
            # Full: refuse now rather than queue work whose caller will have given up.
            wait = waiting * self._seconds_per_hash / self.max_concurrency
            raise PasswordHasherBusy(headers={"Retry-After": str(max(1, math.ceil(wait)))})
        self._in_flight += 1
        try:
            return await anyio.to_thread.run_sync(
                partial(self._timed, function, *args), limiter=self.limiter
            )
        finally:
            self._in_flight -= 1

    def _timed(self, function: Callable[..., T], *args: Any) -> T:
        started = time.perf_counter()
        try:
            return function(*args)
        finally:
            elapsed = time.perf_counter() - started
            self._seconds_per_hash += (elapsed - self._seconds_per_hash) / 8

    async def ahash(self, password: str) -> str:
        """`hash` in a worker thread.

        Raises:
            PasswordHasherBusy: If ``max_waiting`` calls are already waiting.
        """
        if not password:
            raise ValueError("Refusing to hash an empty password; ask the user for one.")
        return await self._run(self.hash, password)

    async def averify(self, password: str, hashed: str) -> bool:
        """`verify` in a worker thread (`PasswordHasherBusy` when the queue is full)."""
        return await self._run(self.verify, password, hashed)

    async def averify_and_update(self, password: str, hashed: str) -> tuple[bool, str | None]:
        """`verify_and_update` in a worker thread (`PasswordHasherBusy` when the queue is full)."""
        return await self._run(self.verify_and_update, password, hashed)

    async def adummy_verify(self) -> None:
        """`dummy_verify` in a worker thread (`PasswordHasherBusy` when the queue is full)."""
        await self._run(self.dummy_verify)
