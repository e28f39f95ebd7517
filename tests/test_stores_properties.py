"""GCRA on a store: whatever the calls (costs, give-backs, peeks, a clock that jumps either
way, keys that expire between calls), every store answers as the reference step does.

`MemoryStore` runs one window's step inlined (its hot path on every limited request) and
`RedisStore` runs it in Lua; the reference is the module's ``_gcra_step``, applied to a
model of one key that drops its state once the debt has drained. Redis examples run when
``FASTKIT_TEST_REDIS_URL`` is set (and fail if it is set and the server is down).
"""

from __future__ import annotations

import asyncio
import math
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastkit.stores import GCRAResult, MemoryStore, RedisStore, State, Window, _gcra_step
from tests.property_support import examples
from tests.store_support import NO_REDIS, REDIS_URL, START, FakeClock

WINDOWS = st.sampled_from(
    [Window(1, 1), Window(3, 1), Window(5, 60), Window(10, 2), Window(1000, 3600)]
)
# (seconds the clock moves, cost): forward by any amount, sometimes back; costs from a
# give-back to more than a small window holds.
CALLS = st.lists(
    st.tuples(
        st.one_of(
            st.floats(0, 5, allow_nan=False),
            st.floats(-2, 0, allow_nan=False),
            st.sampled_from([0.0, 0.1, 1.0, 60.0]),
        ),
        st.integers(-3, 4),
    ),
    min_size=1,
    max_size=40,
)
# Forward only, for Redis: its keys expire on the server's own time, so a key whose debt
# drained by the fake clock is still there if that clock then goes back (and keeps its debt).
FORWARD_CALLS = st.lists(
    st.tuples(
        st.one_of(st.floats(0, 5, allow_nan=False), st.sampled_from([0.0, 0.1, 1.0, 60.0])),
        st.integers(-3, 4),
    ),
    min_size=1,
    max_size=40,
)


class Model:
    """One key under the reference step: its state, dropped at its deadline."""

    def __init__(self) -> None:
        self.state: State | None = None

    def step(self, now: float, window: Window, cost: int) -> GCRAResult:
        if self.state is not None and sum(self.state) <= now:
            self.state = None  # the debt drained: the key has expired
        result, ((when, debt),) = _gcra_step([self.state], now, [window], cost)
        if result.allowed:
            self.state = (when, debt) if debt > 0.0 else None
        return result


def same(actual: GCRAResult, expected: GCRAResult, *, exact: bool) -> None:
    assert actual.allowed == expected.allowed
    assert actual.remaining == expected.remaining
    if exact:
        assert actual == expected
    else:  # Redis sends numbers as 17-digit text
        assert math.isclose(actual.retry_after, expected.retry_after, abs_tol=1e-9)
        assert all(
            math.isclose(a, e, abs_tol=1e-9)
            for a, e in zip(actual.reset, expected.reset, strict=True)
        )


@settings(max_examples=examples(300), deadline=None)
@given(window=WINDOWS, calls=CALLS, sync=st.booleans())
def test_memory_store_one_window_answers_as_the_reference_step(
    window: Window, calls: list[tuple[float, int]], sync: bool
) -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock).namespace("ratelimit")
    model = Model()
    for seconds, cost in calls:
        clock.now += seconds
        expected = model.step(clock.now, window, cost)
        if sync:
            actual = store.gcra_now("k", [window], cost)  # type: ignore[attr-defined]
        else:
            actual = asyncio.run(store.gcra("k", [window], cost))
        same(actual, expected, exact=True)
        assert (len(store) == 1) == (model.state is not None)  # the key lives with its debt


@pytest.mark.skipif(REDIS_URL is None, reason=NO_REDIS)
@settings(max_examples=examples(40), deadline=None)
@given(window=WINDOWS, calls=FORWARD_CALLS)
def test_redis_store_answers_as_the_reference_step(
    window: Window, calls: list[tuple[float, int]]
) -> None:
    assert REDIS_URL is not None

    async def run() -> None:
        clock = FakeClock(START)
        prefix = f"fastkit-test-{uuid.uuid4().hex[:12]}:"
        store = RedisStore(REDIS_URL, prefix=prefix, clock=clock, timeout=10.0)
        model = Model()
        try:
            for seconds, cost in calls:
                clock.now += seconds
                expected = model.step(clock.now, window, cost)
                same(await store.gcra("k", [window], cost), expected, exact=False)
        finally:
            client: Any = store.client
            keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
            if keys:
                await client.delete(*keys)
            await store.aclose()

    asyncio.run(run())
