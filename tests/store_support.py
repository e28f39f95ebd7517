"""What the store, rate-limit and revocation tests share: Redis settings and a fake clock.

The ``clock`` and ``redis_prefix`` fixtures built on these live in tests/conftest.py.
"""

from __future__ import annotations

import os

__all__ = ["DEAD_REDIS_URL", "NO_REDIS", "REDIS_URL", "START", "FakeClock"]

REDIS_URL = os.environ.get("FASTKIT_TEST_REDIS_URL")
NO_REDIS = "FASTKIT_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0)"
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
START = 1_000_000.0  # the fake clock's first reading


class FakeClock:
    """Seconds that move only when a test moves them."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
