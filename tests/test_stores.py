"""fastkit.stores: every behaviour on MemoryStore and, when its URL is set, on a real Redis.

The ``store`` fixture runs each test on both. Without ``FASTKIT_TEST_REDIS_URL`` the Redis
case skips with a reason; with it set, an unreachable server fails it (never skips). Each
Redis test has a key prefix of its own and deletes its keys afterwards. GCRA tests step a
fake clock given to both stores and never sleep; TTLs on Redis run on the server's real
time, so those tests use 0.2 s TTLs and `elapse` sleeps just past them there.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest
import redis
import redis.asyncio

from fastkit.stores import MemoryStore, RedisStore, Store, StoreError, Window
from tests.store_support import DEAD_REDIS_URL, REDIS_URL, START, FakeClock

pytestmark = pytest.mark.anyio  # every async test here; a no-op for the sync ones


async def elapse(store: Store, clock: FakeClock, seconds: float) -> None:
    """Let ``seconds`` pass for TTLs: the fake clock, plus the server's real time on Redis."""
    clock.now += seconds
    if isinstance(store, RedisStore):
        await anyio.sleep(seconds)


async def burst(store: Store, key: str, windows: list[Window], calls: int) -> list[Any]:
    """``calls`` gcra calls in a row at one instant (the clock does not move)."""
    return [await store.gcra(key, windows) for _ in range(calls)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[Store]:
    """A MemoryStore, then a RedisStore, both reading the fake clock for GCRA."""
    if request.param == "memory":
        yield MemoryStore(clock=clock)
        return
    prefix = request.getfixturevalue("redis_prefix")
    # timeout: generous for the tests that open many connections at once; on a loaded CI
    # machine a burst of connects once took over the default 1 s.
    redis_store = RedisStore(REDIS_URL, prefix=prefix, clock=clock, timeout=10.0)
    try:
        yield redis_store
    finally:
        await redis_store.aclose()


async def test_get_set_delete_exists_of_one_key_several_or_none(store: Store) -> None:
    assert await store.get("k") is None
    assert await store.exists("k") == 0
    assert await store.set("k", b"v") is True
    assert (await store.get("k"), await store.exists("k")) == (b"v", 1)
    assert await store.set("k", b"w") is True  # a plain set overwrites
    assert await store.get("k") == b"w"
    assert await store.delete("k") == 1
    assert (await store.get("k"), await store.exists("k")) == (None, 0)
    assert await store.delete("k") == 0

    await store.set("a", b"1")
    await store.set("b", b"2")
    assert (await store.exists(), await store.delete()) == (0, 0)
    assert await store.exists("a", "b", "missing") == 2
    assert await store.delete("a", "missing") == 1
    assert (await store.exists("a", "b"), await store.get("b")) == (1, b"2")


@pytest.mark.parametrize(
    "value",
    [b"", b"v", b"\xff\xfe\x00\x80", bytes(range(256)), "é✓".encode(), b"x" * 100_000],
    ids=["empty", "ascii", "non-utf8", "every-byte", "utf8", "100kB"],
)
async def test_bytes_round_trip(store: Store, value: bytes) -> None:
    assert await store.set("k", value) is True
    got = await store.get("k")
    assert (type(got), got) == (bytes, value)
    assert await store.exists("k") == 1  # b"" is a value, not an absence


async def test_set_ttl_expires(store: Store, clock: FakeClock) -> None:
    await store.set("short", b"1", ttl=0.2)
    await store.set("long", b"2")
    await store.set("cleared", b"1", ttl=0.2)
    await store.set("cleared", b"2")  # a plain set clears the earlier TTL
    assert await store.get("short") == b"1"
    await elapse(store, clock, 0.3)
    assert await store.get("short") is None
    assert await store.exists("short", "long", "cleared") == 2
    assert await store.delete("short") == 0
    assert (await store.get("long"), await store.get("cleared")) == (b"2", b"2")


async def test_set_if_absent_true_once_then_false_until_expired(
    store: Store, clock: FakeClock
) -> None:
    assert await store.set("k", b"first", ttl=0.2, if_absent=True) is True
    assert await store.set("k", b"second", if_absent=True) is False
    assert await store.set("k", b"third", ttl=60, if_absent=True) is False
    assert await store.get("k") == b"first"
    await elapse(store, clock, 0.3)  # the refused calls did not extend the first TTL
    assert await store.set("k", b"fourth", if_absent=True) is True
    assert await store.get("k") == b"fourth"


@pytest.mark.parametrize("ttl", [0, -1, -0.5], ids=["zero", "negative", "negative-float"])
async def test_ttl_must_be_positive(store: Store, ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await store.set("k", b"v", ttl=ttl)
    with pytest.raises(ValueError, match="ttl"):
        await store.incr("n", ttl=ttl)
    assert await store.exists("k", "n") == 0


@pytest.mark.parametrize("amount", [1, 5, -3, 0], ids=["one", "five", "negative", "zero"])
async def test_incr_creates_at_amount_then_adds(store: Store, amount: int) -> None:
    assert await store.incr("n", amount) == amount
    assert await store.get("n") == str(amount).encode()
    assert await store.incr("n", 10) == amount + 10
    assert await store.incr("n", -20) == amount - 10
    assert await store.get("n") == str(amount - 10).encode()
    await store.set("m", b"41")
    assert await store.incr("m") == 42


async def test_incr_ttl_applies_only_when_it_creates_the_key(
    store: Store, clock: FakeClock
) -> None:
    assert await store.incr("n", ttl=0.2) == 1
    assert await store.incr("n", ttl=100) == 2  # an existing key keeps its expiry
    if isinstance(store, RedisStore):
        assert 0 < await store.client.pttl(store.prefix + "n") <= 200
    await elapse(store, clock, 0.3)
    assert await store.get("n") is None
    assert await store.incr("n") == 1  # a new counter, without expiry
    await elapse(store, clock, 0.3)
    assert await store.get("n") == b"1"


async def test_incr_ttl_keeps_an_existing_key_without_expiry(
    store: Store, clock: FakeClock, request: pytest.FixtureRequest
) -> None:
    await store.set("n", b"5")
    assert await store.incr("n", ttl=0.2) == 6
    await elapse(store, clock, 0.3)
    assert await store.get("n") == b"6"


@pytest.mark.parametrize(
    "value",
    [b"abc", b"1.5", b"", b"\xff", b"9" * 30, b" 7", b"1_0"],
    ids=["letters", "float", "empty", "non-utf8", "past-int64", "spaces", "underscore"],
)
async def test_incr_on_a_non_integer_raises_store_error(
    store: Store, value: bytes, request: pytest.FixtureRequest
) -> None:
    await store.set("k", value)
    with pytest.raises(StoreError):
        await store.incr("k")
    assert await store.get("k") == value


async def test_a_key_of_the_other_kind_raises_store_error(
    store: Store, request: pytest.FixtureRequest
) -> None:
    await store.set("bytes", b"1")
    await store.gcra("rate", [Window(2, 10)])
    with pytest.raises(StoreError):
        await store.incr("rate")
    with pytest.raises(StoreError):
        await store.gcra("bytes", [Window(2, 10)])


async def test_namespaces_never_see_each_others_keys(store: Store) -> None:
    a, b = store.namespace("a"), store.namespace("b")
    await a.set("k", b"A")
    await b.set("k", b"B")
    await a.incr("n", 5)
    await a.gcra("rate", [Window(1, 60)])
    assert (await a.get("k"), await b.get("k"), await store.get("k")) == (b"A", b"B", None)
    assert await b.exists("n", "rate") == 0
    assert (await b.gcra("rate", [Window(1, 60)])).allowed is True  # a state of its own
    assert await b.incr("n") == 1
    assert await b.delete("k", "n") == 2
    assert await a.get("k") == b"A"
    assert await a.get("n") == b"5"


async def test_a_namespace_of_a_namespace_nests(store: Store) -> None:
    inner = store.namespace("a").namespace("b")
    assert isinstance(inner, Store)
    await inner.set("k", b"v")
    assert await store.get("a:b:k") == b"v"
    assert await store.namespace("a").get("b:k") == b"v"
    assert await store.namespace("b").get("k") is None
    if isinstance(store, RedisStore):
        real = f"{store.prefix}a:b:k"
        assert await store.client.keys(f"{store.prefix}*") == [real.encode()]
        assert await store.client.get(real) == b"v"
    if isinstance(store, MemoryStore):
        assert (len(store), len(store.namespace("a")), len(store.namespace("b"))) == (1, 1, 0)


@pytest.mark.parametrize(
    ("limit", "period"),
    [(0, 1), (1, 0), (1, -1), (1.5, 1), (-1, 1), (True, 1), (1, math.inf), (1, math.nan)],
    ids=["limit-0", "period-0", "period-negative", "limit-float", "limit-negative",
         "limit-bool", "period-inf", "period-nan"],
)  # fmt: skip
def test_window_validation(limit: Any, period: Any) -> None:
    with pytest.raises(ValueError, match="window"):
        Window(limit, period)


WINDOWS = pytest.mark.parametrize(
    "window",
    [Window(5, 10), Window(3, 1), Window(7, 10), Window(1, 1), Window(100, 60)],
    ids=["5/10s", "3/1s", "7/10s", "1/1s", "100/60s"],
)


@WINDOWS
async def test_gcra_allows_exactly_limit_then_paces(
    store: Store, clock: FakeClock, window: Window
) -> None:
    interval = window.period / window.limit
    results = await burst(store, "k", [window], window.limit)
    assert all(r.allowed for r in results)
    assert [r.remaining for r in results] == [(n,) for n in range(window.limit - 1, -1, -1)]
    assert all(r.retry_after == 0 for r in results)

    refused = await store.gcra("k", [window])
    assert (refused.allowed, refused.remaining) == (False, (0,))
    assert refused.retry_after == pytest.approx(interval, abs=1e-6)

    clock.now += interval
    one_more = await store.gcra("k", [window])
    assert (one_more.allowed, one_more.remaining) == (True, (0,))
    assert (await store.gcra("k", [window])).allowed is False

    clock.now += window.period  # the whole burst is back, and no more
    again = await burst(store, "k", [window], window.limit + 1)
    assert [r.allowed for r in again] == [True] * window.limit + [False]


@pytest.mark.parametrize("window", [Window(50, 60), Window(1000, 0.1)], ids=["50/60s", "1000/.1s"])
async def test_gcra_burst_is_exact_at_epoch_times(
    store: Store, clock: FakeClock, window: Window
) -> None:
    clock.now = 1_796_000_000.0  # what time.time() and Redis TIME read today
    results = await burst(store, "k", [window], window.limit + 1)
    assert sum(r.allowed for r in results) == window.limit


async def test_gcra_reset_is_zero_when_full(store: Store, clock: FakeClock) -> None:
    window = Window(4, 2)  # one unit back every 0.5 s
    fresh = await store.gcra("k", [window], cost=0)
    assert (fresh.allowed, fresh.remaining, fresh.reset) == (True, (4,), (0.0,))
    taken = await store.gcra("k", [window])
    assert taken.remaining == (3,)
    assert taken.reset[0] == pytest.approx(0.5, abs=1e-6)
    clock.now += 0.2
    assert (await store.gcra("k", [window], cost=0)).reset[0] == pytest.approx(0.3, abs=1e-6)
    clock.now += 0.3
    assert (await store.gcra("k", [window], cost=0)).reset == (0.0,)


async def test_gcra_refusal_by_one_window_takes_nothing_from_the_others(
    store: Store, clock: FakeClock
) -> None:
    windows = [Window(3, 1), Window(5, 60)]
    results = await burst(store, "k", windows, 3)
    assert [r.remaining for r in results] == [(2, 4), (1, 3), (0, 2)]
    for _ in range(3):  # refused by the 3/1s window: the 5/60s window keeps its 2
        refused = await store.gcra("k", windows)
        assert (refused.allowed, refused.remaining) == (False, (0, 2))
        assert refused.retry_after == pytest.approx(1 / 3, abs=1e-6)

    clock.now += 1
    assert [r.remaining for r in await burst(store, "k", windows, 2)] == [(2, 1), (1, 0)]
    for _ in range(3):  # refused by the 5/60s window: the 3/1s window keeps its 1
        refused = await store.gcra("k", windows)
        assert (refused.allowed, refused.remaining) == (False, (1, 0))
        assert refused.retry_after == pytest.approx(11, abs=1e-6)  # 12 s interval, 1 s gone
    alone = await store.gcra("k", [Window(3, 1)])
    assert (alone.allowed, alone.remaining) == (True, (0,))


@pytest.mark.parametrize("order", [1, -1], ids=["short-first", "long-first"])
async def test_gcra_retry_after_is_the_longest_wait(store: Store, order: int) -> None:
    windows = [Window(1, 1), Window(1, 10)][::order]
    assert (await store.gcra("k", windows)).allowed is True
    refused = await store.gcra("k", windows)
    assert (refused.allowed, refused.retry_after) == (False, pytest.approx(10, abs=1e-6))
    assert refused.reset == pytest.approx([1, 10][::order], abs=1e-6)


async def test_gcra_windows_given_in_separate_calls_keep_their_state(
    store: Store, clock: FakeClock, request: pytest.FixtureRequest
) -> None:
    slow, fast = Window(1, 5), Window(1, 0.2)
    assert (await store.gcra("k", [slow])).allowed is True
    assert (await store.gcra("k", [fast])).allowed is True
    await elapse(store, clock, 0.3)
    assert (await store.gcra("k", [slow])).allowed is False


async def test_gcra_cost_takes_several_units_or_none(store: Store) -> None:
    window = Window(10, 10)
    assert (await store.gcra("k", [window], cost=4)).remaining == (6,)
    refused = await store.gcra("k", [window], cost=7)
    assert (refused.allowed, refused.remaining) == (False, (6,))
    assert refused.retry_after == pytest.approx(1, abs=1e-6)  # one unit short
    taken = await store.gcra("k", [window], cost=6)
    assert (taken.allowed, taken.remaining) == (True, (0,))
    too_big = await store.gcra("fresh", [window], cost=11)
    assert (too_big.allowed, too_big.remaining) == (False, (10,))
    with pytest.raises(ValueError, match="Window"):
        await store.gcra("k", [])
    for cost in (1.5, True):
        with pytest.raises(TypeError, match="cost"):
            await store.gcra("k", [window], cost=cost)  # type: ignore[arg-type]


async def test_gcra_cost_zero_is_a_peek(store: Store, clock: FakeClock) -> None:
    window = Window(3, 3)
    for _ in range(3):
        peek = await store.gcra("k", [window], cost=0)
        assert (peek.allowed, peek.remaining) == (True, (3,))
    await burst(store, "k", [window], 3)
    assert (await store.gcra("k", [window], cost=0)).remaining == (0,)
    clock.now += 1
    assert (await store.gcra("k", [window], cost=0)).remaining == (1,)
    taken = await store.gcra("k", [window])
    assert (taken.allowed, taken.remaining) == (True, (0,))


async def test_gcra_negative_cost_gives_back_never_past_full(store: Store) -> None:
    window = Window(5, 10)
    assert (await store.gcra("k", [window], cost=3)).remaining == (2,)
    back = await store.gcra("k", [window], cost=-2)
    assert (back.allowed, back.remaining) == (True, (4,))
    assert (await store.gcra("k", [window], cost=-10)).remaining == (5,)
    results = await burst(store, "k", [window], 6)
    assert [r.allowed for r in results] == [True] * 5 + [False]


async def test_gcra_clock_going_backwards_never_allows_more(store: Store, clock: FakeClock) -> None:
    window = Window(5, 10)
    allowed = 0
    for step in [0, -1, -0.5, -5, -30, 0, -1000, 2, -3]:
        clock.now = START + min(step, 0)
        for _ in range(3):
            result = await store.gcra("k", [window])
            allowed += result.allowed
            assert 0 <= result.remaining[0] <= 5
            assert result.retry_after >= 0
            assert all(reset >= 0 for reset in result.reset)
    assert 3 <= allowed <= window.limit
    clock.now = START + 10 * 365 * 86400.0  # a huge jump forward: the full limit is back
    assert [r.allowed for r in await burst(store, "k", [window], 6)] == [True] * 5 + [False]


async def test_gcra_key_lives_as_long_as_its_state(store: Store, clock: FakeClock) -> None:
    if isinstance(store, RedisStore):
        # TTLs run on the server's clock: this test needs the store to read that clock too
        # (with a client clock the keys last a minute at least).
        store = RedisStore(client=store.client, prefix=store.prefix)
    window = Window(2, 0.2)
    await burst(store, "k", [window], 2)
    if isinstance(store, RedisStore):
        assert 100 < await store.client.pttl(store.prefix + "k") <= 200 + 3
    back = await store.gcra("k", [window], cost=-2)  # the state is empty: the key goes
    assert (back.allowed, back.remaining) == (True, (2,))
    assert await store.exists("k") == 0

    await store.gcra("k", [Window(4, 0.2)])
    if isinstance(store, RedisStore):
        assert 0 < await store.client.pttl(store.prefix + "k") <= 50 + 3  # one unit's worth
    await burst(store, "k", [window], 2)
    await elapse(store, clock, 0.25)
    assert await store.exists("k") == 0
    if isinstance(store, MemoryStore):
        assert len(store) == 0


async def test_memory_max_keys_evicts_one_key_per_new_key_closest_to_expiry_first(
    clock: FakeClock,
) -> None:
    store = MemoryStore(clock=clock, max_keys=3)
    for key in "abc":
        await store.set(key, b"1")
    await store.set("a", b"2")  # overwriting takes no room
    assert len(store) == 3
    await store.set("d", b"1")
    assert len(store) == 3
    assert await store.exists("a", "b", "c") == 2
    assert await store.get("d") == b"1"
    for n in range(20):
        await store.incr(f"n{n}")
        await store.gcra(f"g{n}", [Window(1, 60)])
        assert len(store) <= 3
    assert await store.exists("n19", "g19") == 2

    store = MemoryStore(clock=clock, max_keys=3)  # the key closest to expiry goes first
    await store.set("forever", b"1")
    await store.set("later", b"1", ttl=50)
    await store.set("soon", b"1", ttl=10)
    await store.set("new", b"1")
    assert await store.exists("forever", "later", "new") == 3
    assert await store.exists("soon") == 0


async def test_memory_max_keys_keeps_a_key_whose_ttl_was_cleared(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock, max_keys=3)
    await store.set("cleared", b"1", ttl=10)
    await store.set("cleared", b"1")  # no expiry now
    await store.set("later", b"1", ttl=50)
    await store.set("latest", b"1", ttl=60)
    await store.set("new", b"1")
    assert await store.exists("later") == 0
    assert await store.exists("cleared", "latest", "new") == 3


@pytest.mark.parametrize("max_keys", [0, -1], ids=["zero", "negative"])
def test_memory_max_keys_must_be_at_least_one(max_keys: int) -> None:
    with pytest.raises(ValueError, match="max_keys"):
        MemoryStore(max_keys=max_keys)


def test_redis_store_needs_url_or_client() -> None:
    with pytest.raises(ValueError, match="url= or client="):
        RedisStore()
    with pytest.raises(ValueError, match="url= or client="):
        RedisStore("redis://127.0.0.1:6379/0", client=object())


async def test_redis_store_with_a_ready_client(redis_prefix: str) -> None:
    assert REDIS_URL is not None
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    store = RedisStore(client=client, prefix=redis_prefix)
    try:
        assert isinstance(store, Store)
        assert store.client is client
        assert await store.set("k", b"v") is True
        assert await client.get(f"{redis_prefix}k") == b"v"
        assert (await store.gcra("rate", [Window(1, 60)])).allowed is True  # the server's TIME
        assert (await store.gcra("rate", [Window(1, 60)])).allowed is False
    finally:
        await store.aclose()


OPERATIONS: dict[str, Callable[[Store], Awaitable[object]]] = {
    "get": lambda s: s.get("k"),
    "set": lambda s: s.set("k", b"v", ttl=1),
    "set-nx": lambda s: s.set("k", b"v", if_absent=True),
    "delete": lambda s: s.delete("k"),
    "exists": lambda s: s.exists("k"),
    "incr": lambda s: s.incr("k", ttl=1),
    "gcra": lambda s: s.gcra("k", [Window(1, 1)]),
}


@pytest.mark.parametrize("operation", OPERATIONS.values(), ids=OPERATIONS.keys())
async def test_redis_outage_raises_store_error(
    operation: Callable[[Store], Awaitable[object]],
) -> None:
    store = RedisStore(DEAD_REDIS_URL, timeout=0.2)
    try:
        with pytest.raises(StoreError) as raised:
            await operation(store)
        assert not isinstance(raised.value, redis.RedisError)
        assert isinstance(raised.value.__cause__, (redis.RedisError, OSError))
    finally:
        await store.aclose()


@pytest.mark.parametrize("own_clock", [False, True], ids=["fake-clock", "store-clock"])
async def test_concurrent_gcra_allows_exactly_the_limit(
    store: Store, clock: FakeClock, own_clock: bool
) -> None:
    # Two stores race for one key; on Redis two clients, standing for two workers. With
    # own_clock, MemoryStore reads time.time() and the Lua script the server's TIME.
    if isinstance(store, RedisStore):
        timing = None if own_clock else clock
        pair = [
            RedisStore(REDIS_URL, prefix=store.prefix, clock=timing, timeout=10.0) for _ in range(2)
        ]
    else:
        pair = [MemoryStore() if own_clock else store] * 2
    try:
        window = Window(50, 60)
        results = await asyncio.gather(*(s.gcra("k", [window]) for s in pair * 100))
    finally:
        for each in pair:
            await each.aclose()
    passed = [r for r in results if r.allowed]
    assert len(passed) == 50
    assert sorted(r.remaining[0] for r in passed) == list(range(50))  # each took its own unit


async def test_redis_calls_past_the_pool_wait_for_a_connection(store: Store) -> None:
    # redis-py's default pool raised MaxConnectionsError past 100 connections in use; the
    # store's blocking pool queues the calls: 300 at once on 8 connections all answer.
    if not isinstance(store, RedisStore):
        pytest.skip("a pool of connections is Redis's")
    # timeout: generous, the point is the queue; a loaded CI machine took over the default
    # 1 s to open a connection once.
    small = RedisStore(REDIS_URL, prefix=store.prefix, max_connections=8, timeout=10.0)
    try:
        results = await asyncio.gather(*(small.gcra("k", [Window(50, 60)]) for _ in range(300)))
    finally:
        await small.aclose()
    assert sum(r.allowed for r in results) == 50


def test_redis_store_max_connections_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_connections must be at least 1"):
        RedisStore("redis://127.0.0.1:6379/0", max_connections=0)


async def test_memory_never_evicts_a_protected_namespace() -> None:
    # A revoked token forgotten to make room for rate-limit keys would work again.
    store = MemoryStore(max_keys=3)
    revoked = store.namespace("revoked", evictable=False)
    limits = store.namespace("ratelimit")
    await revoked.set("jti-1", b"1", ttl=10)  # closest to expiry, and still kept
    for n in range(5):
        await limits.set(f"k{n}", b"1", ttl=100)
    assert await revoked.exists("jti-1") == 1
    assert len(store) <= 3
    await revoked.set("jti-2", b"1", ttl=100)
    await revoked.set("jti-3", b"1", ttl=100)
    with pytest.raises(StoreError, match="raise max_keys"):
        await revoked.set("jti-4", b"1", ttl=100)  # only protected keys left: refused
    assert await revoked.exists("jti-1", "jti-2", "jti-3") == 3
