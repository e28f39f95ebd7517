"""Shared fixtures, and the Hypothesis settings of the property tests (``*_properties.py``).

The property tests are bounded, reproducible and keep no example database.

The ``ci`` profile (loaded unless ``HYPOTHESIS_PROFILE`` names another) derandomizes the
runs, so every run tries the same examples and a failure reproduces as is, and keeps no
example database. ``HYPOTHESIS_PROFILE=explore`` draws fresh random examples, ten times as
many per test (see `tests.property_support.examples`), to hunt for new failures locally.

Each test sets its own ``max_examples`` through ``examples()``, which scales with the
profile, so that all of them run in well under a minute on two cores.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from hypothesis import settings

from tests.store_support import NO_REDIS, REDIS_URL, FakeClock

settings.register_profile(
    "ci", max_examples=100, deadline=None, database=None, derandomize=True, print_blob=True
)
settings.register_profile(
    "explore", max_examples=1000, deadline=None, database=None, derandomize=False
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

AccessRecords = Callable[[], list[logging.LogRecord]]


@pytest.fixture
def access_records(caplog: pytest.LogCaptureFixture) -> Iterator[AccessRecords]:
    """Capture ``fastkit.access`` at INFO; call the fixture to get the records so far."""
    with caplog.at_level(logging.INFO, logger="fastkit.access"):
        yield lambda: [r for r in caplog.records if r.name == "fastkit.access"]


@pytest.fixture
def clock() -> FakeClock:
    """A clock for ``MemoryStore(clock=...)`` and ``RedisStore(clock=...)`` to step by hand."""
    return FakeClock()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own; its keys are deleted afterwards.

    Skips without ``FASTKIT_TEST_REDIS_URL``; with it set, an unreachable server fails the
    test (no try/skip around the server).
    """
    if not REDIS_URL:
        pytest.skip(NO_REDIS)
    prefix = f"fastkit-test:{uuid.uuid4().hex}:"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()  # before the test: an unreachable server fails here, not later
        yield prefix
        leftovers = list(client.scan_iter(match=f"{prefix}*"))
        if leftovers:
            client.delete(*leftovers)
        assert list(client.scan_iter(match=f"{prefix}*")) == []
    finally:
        client.close()
