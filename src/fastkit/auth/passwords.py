"""Password hashing that never blocks the event loop: argon2 by default, bcrypt verified."""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from functools import partial
from typing import Any

import anyio
import anyio.to_thread
from passlib.context import CryptContext
from passlib.exc import UnknownHashError

__all__ = ["PasswordHasher"]

_KNOWN_SCHEMES = frozenset({"argon2", "bcrypt", "bcrypt_sha256", "pbkdf2_sha256", "scrypt"})


class PasswordHasher:
    """Hash and verify passwords with passlib's ``CryptContext`` (the ``libpass`` fork).

    The first scheme hashes new passwords; the others are still verified, and
    `verify_and_update` returns a new hash for them so that old bcrypt hashes move to
    argon2 as users log in. The ``a``-prefixed methods run the hashing in a worker thread,
    at most ``max_concurrency`` at once, so a burst of logins cannot stall the event loop or
    exhaust memory (argon2 uses 64 MiB per hash).

    Args:
        schemes: passlib scheme names; the first is the default.
        max_concurrency: Hashes computed at once by the async methods (default: one less
            than the CPU count, at least 1 and at most 4, so a core stays free for the event
            loop).
        **context_options: Passed to ``CryptContext`` (e.g. ``argon2__time_cost=3``).
            argon2 defaults to one lane (``argon2__parallelism=1``) and passlib's other
            costs (64 MiB, 3 passes).

    Raises:
        ValueError: If ``schemes`` is empty or names an unknown scheme, or
            ``max_concurrency`` is below 1.

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
        if "argon2" in schemes:
            # One lane: argon2 runs a thread per lane, so passlib's 4 lanes per hash would
            # take every core of a small server and starve the event loop's thread. The
            # other costs stay (64 MiB, 3 passes); existing p=4 hashes still verify and are
            # re-hashed on login by verify_and_update.
            context_options.setdefault("argon2__parallelism", 1)
        self.context = CryptContext(schemes=list(schemes), deprecated="auto", **context_options)
        # One core stays free for the event loop.
        self.max_concurrency = max_concurrency or max(1, min(4, (os.cpu_count() or 1) - 1))
        self._limiter: anyio.CapacityLimiter | None = None
        # A real hash of a random password, for dummy_verify().
        self._dummy_hash = self.context.hash(secrets.token_urlsafe(16))

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
        if not password or not hashed:
            return False
        try:
            return bool(self.context.verify(password, hashed))
        except (UnknownHashError, ValueError, TypeError):
            # Unknown or corrupt hash, or bcrypt's 72-byte limit: a mismatch, not a crash.
            return False

    def verify_and_update(self, password: str, hashed: str) -> tuple[bool, str | None]:
        """Verify, and return a new hash when ``hashed`` uses a deprecated scheme.

        Returns:
            ``(matches, new_hash)``; store ``new_hash`` when it is not None.
        """
        if not password or not hashed:
            return False, None
        try:
            ok, new_hash = self.context.verify_and_update(password, hashed)
        except (UnknownHashError, ValueError, TypeError):
            # Unknown or corrupt hash, or bcrypt's 72-byte limit: a mismatch, not a crash.
            return False, None
        return bool(ok), new_hash

    def dummy_verify(self) -> None:
        """Spend the time of one verification, so an unknown user looks like a wrong password."""
        self.context.verify("not the password", self._dummy_hash)

    async def ahash(self, password: str) -> str:
        """`hash` in a worker thread."""
        if not password:
            raise ValueError("Refusing to hash an empty password; ask the user for one.")
        return await anyio.to_thread.run_sync(self.hash, password, limiter=self.limiter)

    async def averify(self, password: str, hashed: str) -> bool:
        """`verify` in a worker thread."""
        return await anyio.to_thread.run_sync(
            partial(self.verify, password, hashed), limiter=self.limiter
        )

    async def averify_and_update(self, password: str, hashed: str) -> tuple[bool, str | None]:
        """`verify_and_update` in a worker thread."""
        return await anyio.to_thread.run_sync(
            partial(self.verify_and_update, password, hashed), limiter=self.limiter
        )

    async def adummy_verify(self) -> None:
        """`dummy_verify` in a worker thread."""
        await anyio.to_thread.run_sync(self.dummy_verify, limiter=self.limiter)
