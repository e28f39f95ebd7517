"""One key-value store for every stateful block: in memory for one process, Redis for many.

Revoked tokens, rate limits (and later response caches and idempotency keys) keep their
state through a `Store`: bytes under string keys, each with an optional time to live, plus
the atomic operations those blocks need (set-if-absent, counters, and the GCRA rate-limit
step). `MemoryStore` is the embedded default; `RedisStore` is the same API on Redis, shared
by every worker and machine, where each atomic operation is one round trip (a Lua script or
a single command). ``store.namespace("ratelimit")`` gives a view whose keys live under their
own prefix, so one Redis serves every block without collisions.

The store is the time authority for what it keeps: `MemoryStore` reads its ``clock``
(``time.time`` unless told), `RedisStore` the Redis server's ``TIME`` unless given a
``clock``, so workers on machines whose clocks disagree still share one timeline.
"""

from __future__ import annotations

import functools
import heapq
import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, NamedTuple, Protocol, runtime_checkable

from fastkit._compat import require

logger = logging.getLogger("fastkit.stores")

__all__ = [
    "GCRAResult",
    "MemoryStore",
    "RedisStore",
    "Store",
    "StoreError",
    "Window",
]

Clock = Callable[[], float]

# What Redis's INCRBY accepts: a decimal 64-bit integer, no sign but "-", no spaces.
_INTEGER = re.compile(rb"-?[1-9][0-9]*|0")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

# Relative slack for float rounding in the GCRA arithmetic: a burst of exactly `limit` requests
# at one instant must all pass although `limit * (period / limit)` may come out a hair above
# `period`; 1e-9 of a period is far below any clock's resolution.
_SLACK = 1e-9


class StoreError(Exception):
    """The store could not be reached or answered an error; the operation may not have run.

    Each block decides what that means for a request: revocation checks fail closed (503),
    a rate limit follows its ``on_error``.
    """


@dataclass(frozen=True)
class Window:
    """One rate-limit window: at most ``limit`` units per ``period`` seconds, GCRA-paced.

    Args:
        limit: Units the window holds (a burst of that many passes at once), at least 1.
        period: Seconds for the whole window to refill (one unit every ``period / limit``).

    Raises:
        ValueError: If ``limit`` is not a whole number of at least 1 or ``period`` is not
            a positive, finite number of seconds.
    """

    limit: int
    period: float
    # Derived once: the GCRA step reads them on every call.
    field: str = dataclass_field(init=False, repr=False, compare=False)
    interval: float = dataclass_field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.limit, int) or isinstance(self.limit, bool) or self.limit < 1:
            raise ValueError(f"A window's limit must be a whole number >= 1, got {self.limit!r}.")
        if not self.period > 0 or not math.isfinite(self.period):
            raise ValueError(f"A window's period must be positive seconds, got {self.period!r}.")
        # The window's name inside a key's state (changes when the window does).
        object.__setattr__(self, "field", f"{self.limit}/{self.period:g}")
        # Seconds for one unit to come back.
        object.__setattr__(self, "interval", self.period / self.limit)


class GCRAResult(NamedTuple):
    """The outcome of one `Store.gcra` call, window by window in the order given.

    Attributes:
        allowed: True if every window had room and the cost was taken from all of them;
            False if any window was full, and then nothing was taken from any.
        remaining: Units each window still has after this call.
        reset: Seconds until each window gets its next unit back (0 when it is full).
        retry_after: Seconds until the refused cost would pass (0 when allowed).
    """

    allowed: bool
    remaining: tuple[int, ...]
    reset: tuple[float, ...]
    retry_after: float


State = tuple[float, float]  # (when, debt): seconds of budget in use at that instant

# GCRAResult from a tuple without NamedTuple's Python-level __new__ (the hot path's).
_result: Callable[[tuple[bool, tuple[int, ...], tuple[float, ...], float]], GCRAResult] = (
    functools.partial(tuple.__new__, GCRAResult)
)


def _gcra_step(
    stored: Sequence[State | None], now: float, windows: Sequence[Window], cost: int
) -> tuple[GCRAResult, list[State]]:
    """The GCRA decision for every window at once, and each window's state afterwards.

    GCRA keeps one moment per key and window, the theoretical arrival time (TAT): the
    instant by which the units taken so far would have drained at ``limit / period``. A
    request of ``cost`` fits while ``TAT + cost * interval - period <= now``. Here the TAT
    is kept as its distance from the last call, the *debt* (``TAT - when``, at most about a
    period), beside that call's time: sums and comparisons then run on small numbers, and a
    burst of exactly ``limit`` passes whatever the clock reads (an absolute TAT near today's
    1.8e9 seconds loses 2.4e-7 s at every step, and a long burst drifts by whole units).
    A negative cost gives units back (never past a full window). The same arithmetic runs
    in `RedisStore`'s Lua script.
    """
    if len(windows) == 1:
        return _gcra_one(stored[0], now, windows[0], cost)
    allowed = True
    retry_after = 0.0
    debts: list[float] = []
    new_debts: list[float] = []
    whens: list[float] = []
    for window, previous in zip(windows, stored, strict=True):
        if previous is None:
            when, debt = now, 0.0
        else:
            when, debt = previous
            if now > when:  # the clock going back keeps the debt: never more units than due
                debt -= now - when
                if debt < 0.0:
                    debt = 0.0
                when = now
        whens.append(when)
        debts.append(debt)
        new_debt = debt + cost * window.interval
        if new_debt < 0.0:
            new_debt = 0.0
        elif cost > 0 and new_debt > window.period * (1 + _SLACK):
            allowed = False
            if new_debt - window.period > retry_after:
                retry_after = new_debt - window.period
        new_debts.append(new_debt)
    chosen = new_debts if allowed else debts
    remaining: list[int] = []
    reset: list[float] = []
    for window, debt in zip(windows, chosen, strict=True):
        interval = window.interval
        free = window.period - debt
        units = math.floor(free / interval + _SLACK)
        if units >= window.limit:
            remaining.append(window.limit)
            reset.append(0.0)
        else:
            if units < 0:
                units = 0
            remaining.append(units)
            wait = (units + 1) * interval - free
            reset.append(wait if wait > 0.0 else 0.0)
    result = GCRAResult(allowed, tuple(remaining), tuple(reset), 0.0 if allowed else retry_after)
    return result, list(zip(whens, chosen, strict=True))


def _gcra_one(
    previous: State | None, now: float, window: Window, cost: int
) -> tuple[GCRAResult, list[State]]:
    """`_gcra_step` for one window (most limits), without the per-window lists."""
    if previous is None:
        when, debt = now, 0.0
    else:
        when, debt = previous
        if now > when:
            debt -= now - when
            if debt < 0.0:
                debt = 0.0
            when = now
    period, interval, limit = window.period, window.interval, window.limit
    new_debt = debt + cost * interval
    allowed = True
    retry_after = 0.0
    if new_debt < 0.0:
        new_debt = 0.0
    elif cost > 0 and new_debt > period * (1 + _SLACK):
        allowed = False
        retry_after = new_debt - period
        new_debt = debt
    free = period - new_debt
    units = math.floor(free / interval + _SLACK)
    if units >= limit:
        units, reset = limit, 0.0
    else:
        if units < 0:
            units = 0
        reset = (units + 1) * interval - free
        if reset < 0.0:
            reset = 0.0
    return GCRAResult(allowed, (units,), (reset,), retry_after), [(when, new_debt)]


def _check_windows(windows: Sequence[Window], cost: int) -> None:
    if not windows:
        raise ValueError("gcra() needs at least one Window.")
    if type(cost) is not int:
        raise TypeError(f"cost must be an int, got {type(cost).__name__}.")


def _check_ttl(ttl: float | None) -> None:
    if ttl is not None and not ttl > 0:
        raise ValueError(f"ttl must be positive seconds or None, got {ttl!r}.")


@runtime_checkable
class Store(Protocol):
    """Bytes under string keys, with TTLs and the atomic operations fastkit's blocks need.

    Every method may raise `StoreError` when the backend cannot be reached.
    """

    def namespace(self, name: str, *, evictable: bool = True) -> Store:
        """A view of this store whose keys live under ``name:`` (same backend).

        ``evictable=False`` keeps its keys when a bounded store is full (revoked tokens
        must not be forgotten to make room for rate-limit counters).
        """
        ...

    async def get(self, key: str) -> bytes | None:
        """The value of ``key``, or None if absent or expired."""
        ...

    async def set(
        self, key: str, value: bytes, *, ttl: float | None = None, if_absent: bool = False
    ) -> bool:
        """Store ``value`` (for ``ttl`` seconds); with ``if_absent``, only if ``key`` is free.

        Returns:
            True if written; False if ``if_absent`` and the key existed.
        """
        ...

    async def delete(self, *keys: str) -> int:
        """Remove ``keys``; the number that existed."""
        ...

    async def exists(self, *keys: str) -> int:
        """How many of ``keys`` exist."""
        ...

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        """Add ``amount`` to the integer at ``key`` (0 if absent) and return it.

        ``ttl`` applies when the call creates the key; an existing key keeps its expiry.
        """
        ...

    async def gcra(self, key: str, windows: Sequence[Window], cost: int = 1) -> GCRAResult:
        """Take ``cost`` units from every window of ``key`` at once, or from none.

        Atomic across every client of the store: of concurrent calls, exactly as many pass
        as the windows allow. A negative ``cost`` gives units back.
        """
        ...

    async def aclose(self) -> None:
        """Release connections (a no-op for memory)."""
        ...


class MemoryStore:
    """A `Store` in this process's memory: one worker, tests, and the embedded default.

    Each operation runs without awaiting, so it is atomic for every coroutine of the
    process. Expired keys are dropped as time passes (a heap of deadlines, one entry per
    key); ``max_keys`` bounds memory under a flood of distinct keys (about 700 bytes each:
    100,000 keys are some 70 MB) by dropping the evictable keys closest to expiry first.
    Keys of a namespace made with ``evictable=False`` are never dropped; if only such keys
    are left, a new key raises `StoreError`.

    Args:
        clock: A function giving seconds (default: ``time.monotonic``, which a change of
            the wall clock does not move); tests pass a fake clock to step time.
        max_keys: Most keys kept at once (None: no bound).

    Raises:
        ValueError: If ``max_keys`` is below 1.
    """

    def __init__(self, *, clock: Clock = time.monotonic, max_keys: int | None = 100_000) -> None:
        if max_keys is not None and max_keys < 1:
            raise ValueError(f"max_keys must be at least 1 or None, got {max_keys}.")
        self.clock = clock
        self.max_keys = max_keys
        self._prefix = ""
        self._protected: list[str] = []  # prefixes of namespaces made with evictable=False
        self._data: dict[str, Any] = {}
        self._expires: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._scheduled: set[str] = set()
        self._gcra_calls = 0  # gcra_now's calls while a key was due to expire

    def namespace(self, name: str, *, evictable: bool = True) -> MemoryStore:
        view = object.__new__(MemoryStore)
        view.__dict__.update(self.__dict__)  # shares the same dicts, heap and clock
        view._prefix = f"{self._prefix}{name}:"
        if not evictable and view._prefix not in self._protected:
            self._protected.append(view._prefix)
        return view

    # -- expiry ---------------------------------------------------------------------------

    def _purge(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, key = heapq.heappop(heap)
            expires = self._expires.get(key)
            if expires is not None and expires > now:
                heapq.heappush(heap, (expires, key))  # extended since: look again then
                continue
            self._scheduled.discard(key)
            if expires is not None:
                del self._expires[key]
                self._data.pop(key, None)

    def _expire_at(self, key: str, deadline: float | None) -> None:
        if deadline is None:
            self._expires.pop(key, None)
            return
        self._expires[key] = deadline
        if key not in self._scheduled:
            self._scheduled.add(key)
            heapq.heappush(self._heap, (deadline, key))

    def _live(self, key: str, now: float) -> bool:
        if key not in self._data:
            return False
        expires = self._expires.get(key)
        if expires is not None and expires <= now:
            del self._data[key]
            del self._expires[key]
            return False
        return True

    def _make_room(self) -> None:
        if self.max_keys is None or len(self._data) < self.max_keys:
            return
        protected = tuple(self._protected)
        kept: list[tuple[float, str]] = []
        # Drop the evictable keys closest to their deadline (then any such key) until one fits.
        while self._heap and len(self._data) >= self.max_keys:
            deadline, key = heapq.heappop(self._heap)
            actual = self._expires.get(key)
            if actual is None or key not in self._data:
                self._scheduled.discard(key)  # its TTL was cleared, or it is gone
                continue
            if actual > deadline:
                heapq.heappush(self._heap, (actual, key))  # extended since: not this one
                continue
            if protected and key.startswith(protected):
                kept.append((deadline, key))
                continue
            self._scheduled.discard(key)
            del self._expires[key]
            del self._data[key]
        for entry in kept:
            heapq.heappush(self._heap, entry)
        if len(self._data) >= self.max_keys:
            for key in list(self._data):  # keys without a TTL: rare, so a scan is fine
                if protected and key.startswith(protected):
                    continue
                self._expires.pop(key, None)
                del self._data[key]
                if len(self._data) < self.max_keys:
                    break
        if len(self._data) >= self.max_keys:
            raise StoreError(
                f"MemoryStore is full: its {self.max_keys} keys may not be evicted; raise max_keys."
            )

    def _write(self, key: str, value: Any, deadline: float | None) -> None:
        if key not in self._data:
            self._make_room()
        self._data[key] = value
        self._expire_at(key, deadline)

    # -- operations -----------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        key = self._prefix + key
        now = self.clock()
        self._purge(now)
        if not self._live(key, now):
            return None
        value = self._data[key]
        if not isinstance(value, bytes):
            raise StoreError(f"The value at {key!r} is rate-limit state, not bytes.")
        return value

    async def set(
        self, key: str, value: bytes, *, ttl: float | None = None, if_absent: bool = False
    ) -> bool:
        _check_ttl(ttl)
        key = self._prefix + key
        now = self.clock()
        self._purge(now)
        if if_absent and self._live(key, now):
            return False
        self._write(key, bytes(value), None if ttl is None else now + ttl)
        return True

    async def delete(self, *keys: str) -> int:
        now = self.clock()
        self._purge(now)
        removed = 0
        for key in keys:
            key = self._prefix + key
            if self._live(key, now):
                del self._data[key]
                self._expires.pop(key, None)
                removed += 1
        return removed

    async def exists(self, *keys: str) -> int:
        now = self.clock()
        self._purge(now)
        return sum(1 for key in keys if self._live(self._prefix + key, now))

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        _check_ttl(ttl)
        key = self._prefix + key
        now = self.clock()
        self._purge(now)
        if self._live(key, now):
            current = self._data[key]
            if not isinstance(current, bytes) or not _INTEGER.fullmatch(current):
                raise StoreError(f"The value at {key!r} is not an integer.")
            value = int(current) + amount
            if not _INT64_MIN <= value <= _INT64_MAX:
                raise StoreError(f"Adding {amount} to {key!r} would overflow 64 bits.")
            self._data[key] = str(value).encode()
            return value
        if not _INT64_MIN <= amount <= _INT64_MAX:
            raise StoreError(f"Adding {amount} to {key!r} would overflow 64 bits.")
        self._write(key, str(amount).encode(), None if ttl is None else now + ttl)
        return amount

    async def gcra(self, key: str, windows: Sequence[Window], cost: int = 1) -> GCRAResult:
        return self.gcra_now(key, windows, cost)

    def gcra_now(self, key: str, windows: Sequence[Window], cost: int = 1) -> GCRAResult:
        """`gcra` without awaiting: a memory store's step is done in place.

        For a caller on the event loop that holds a `MemoryStore` and runs on every
        request (`fastkit.ratelimit.RateLimit` does): it saves making and awaiting a
        coroutine. Same arguments, answers and errors as `gcra`.
        """
        if len(windows) != 1 or type(cost) is not int:
            return self._gcra_many(key, windows, cost)
        # One window (most limits), on every request of a limited route: `_gcra_one` and
        # the write inlined, no call that can be avoided (each costs ~0.5 us in a request).
        key = self._prefix + key
        now = self.clock()
        heap = self._heap
        if heap and heap[0][0] <= now:
            # Expired keys go every 16th call of this view, not on every one: a key that a
            # client spends again just after its debt drained is then updated in place
            # rather than dropped and made anew (each call still reads expiry exactly).
            self._gcra_calls += 1
            if not self._gcra_calls & 15:
                self._purge(now)
        data = self._data
        state: dict[str, State] | None = data.get(key)
        window = windows[0]
        field = window.field
        when, debt = now, 0.0
        if state is not None:
            if type(state) is not dict:
                raise StoreError(f"The value at {key!r} is bytes, not rate-limit state.")
            if len(state) > 1 or field not in state:  # other windows' state too
                expires = self._expires.get(key)
                if expires is None or expires > now:
                    return self._gcra_beside(key, state, now, window, cost)
                state = None  # expired: as if absent (the write below replaces it)
            else:
                # This window's state alone, expired or not: an expired one has drained
                # (its deadline is when + debt), so the step below finds it empty.
                when, debt = state[field]
                if now > when:  # the clock going back keeps the debt (see _gcra_step)
                    debt -= now - when
                    if debt < 0.0:
                        debt = 0.0
                    when = now
        # The step itself: `_gcra_one`, line for line (the property tests hold them equal).
        period, interval, limit = window.period, window.interval, window.limit
        new_debt = debt + cost * interval
        allowed = True
        retry_after = 0.0
        if new_debt < 0.0:
            new_debt = 0.0
        elif cost > 0 and new_debt > period * (1 + _SLACK):
            allowed = False
            retry_after = new_debt - period
            new_debt = debt
        free = period - new_debt
        units = math.floor(free / interval + _SLACK)
        if units >= limit:
            units, reset = limit, 0.0
        else:
            if units < 0:
                units = 0
            reset = (units + 1) * interval - free
            if reset < 0.0:
                reset = 0.0
        result = _result((allowed, (units,), (reset,), retry_after))
        if not allowed:
            return result
        if new_debt <= 0.0:  # a full window needs no state
            if key in data:
                del data[key]
                self._expires.pop(key, None)
            return result
        deadline = when + new_debt
        if state is None:
            if key not in data:
                max_keys = self.max_keys
                if max_keys is not None and len(data) >= max_keys:
                    self._make_room()
            data[key] = {field: (when, new_debt)}
        else:
            state[field] = (when, new_debt)
        self._expires[key] = deadline
        if key not in self._scheduled:
            self._scheduled.add(key)
            heapq.heappush(heap, (deadline, key))
        return result

    def _gcra_many(self, key: str, windows: Sequence[Window], cost: int) -> GCRAResult:
        """`gcra` for several windows (a bad argument is refused here with the reason; one
        window with a valid cost never comes here)."""
        _check_windows(windows, cost)
        key = self._prefix + key
        now = self.clock()
        self._purge(now)
        state: dict[str, State] | None = self._data.get(key)
        if state is not None:
            expires = self._expires.get(key)
            if expires is not None and expires <= now:
                state = None  # expired: as if absent (the write below replaces it)
            elif not isinstance(state, dict):
                raise StoreError(f"The value at {key!r} is bytes, not rate-limit state.")
        if state is None:
            stored: list[State | None] = [None] * len(windows)
            state = {}
        else:
            stored = [state.get(window.field) for window in windows]
        result, states = _gcra_step(stored, now, windows, cost)
        if not result.allowed:
            return result
        for window, (when, debt) in zip(windows, states, strict=True):
            if debt > 0.0:
                state[window.field] = (when, debt)
            else:
                state.pop(window.field, None)  # a full window needs no state
        # The key lives until its last window's debt has drained, this call's or not.
        deadline = now
        for when, debt in state.values():
            if when + debt > deadline:
                deadline = when + debt
        if deadline > now:
            self._write(key, state, deadline)
        else:
            self._drop(key)
        return result

    def _gcra_beside(
        self, key: str, state: dict[str, State], now: float, window: Window, cost: int
    ) -> GCRAResult:
        """One window's step on a key that holds other windows' state too (a limit whose
        windows changed): the key lives until the latest of their deadlines."""
        field = window.field
        result, ((when, debt),) = _gcra_one(state.get(field), now, window, cost)
        if not result.allowed:
            return result
        state[field] = (when, debt)
        deadline = max(w + d for w, d in state.values())
        if debt <= 0.0:
            del state[field]
        if state and deadline > now:
            self._write(key, state, deadline)
        else:
            self._drop(key)
        return result

    def _drop(self, key: str) -> None:
        if key in self._data:
            del self._data[key]
            self._expires.pop(key, None)

    async def aclose(self) -> None:
        return None

    def __len__(self) -> int:
        """Live keys in this namespace (the whole store when it has no prefix)."""
        self._purge(self.clock())
        if not self._prefix:
            return len(self._data)
        return sum(1 for key in self._data if key.startswith(self._prefix))


# KEYS[1]: the key's hash. ARGV[1]: now in seconds ('' = the server's TIME); ARGV[2]: cost;
# then one (field, limit, period) triple per window. Each field holds "when debt" (see
# _gcra_step, which this mirrors). Numbers travel as strings with 17 significant digits:
# Redis would truncate a Lua number in a reply to an integer.
_GCRA_LUA = """
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[1])
end
local cost = tonumber(ARGV[2])
local slack = 1e-9
local n = (#ARGV - 2) / 3
local fields, limits, periods = {}, {}, {}
for i = 1, n do
  fields[i] = ARGV[3 * i]
  limits[i] = tonumber(ARGV[3 * i + 1])
  periods[i] = tonumber(ARGV[3 * i + 2])
end
local stored = redis.call('HMGET', KEYS[1], unpack(fields))
local whens, debts, new_debts = {}, {}, {}
local allowed = true
local retry = 0
for i = 1, n do
  local interval = periods[i] / limits[i]
  local when, debt = now, 0
  if stored[i] then
    local w, d = string.match(stored[i], '^(%S+) (%S+)$')
    w, d = tonumber(w), tonumber(d)
    if w and d then
      when = math.max(now, w)
      debt = math.max(0, d - math.max(0, now - w))
    end
  end
  whens[i], debts[i] = when, debt
  local new_debt = math.max(0, debt + cost * interval)
  if cost > 0 and new_debt > periods[i] * (1 + slack) then
    allowed = false
    if new_debt - periods[i] > retry then retry = new_debt - periods[i] end
  end
  new_debts[i] = new_debt
end
local chosen = allowed and new_debts or debts
local out = {allowed and '1' or '0', string.format('%.17g', allowed and 0 or retry)}
for i = 1, n do
  local interval = periods[i] / limits[i]
  local free = periods[i] - chosen[i]
  local units = math.floor(free / interval + slack)
  if units < 0 then units = 0 end
  if units > limits[i] then units = limits[i] end
  local reset = 0
  if units < limits[i] then reset = math.max(0, (units + 1) * interval - free) end
  out[#out + 1] = string.format('%d', units)
  out[#out + 1] = string.format('%.17g', reset)
end
if allowed then
  local set, drop, longest = {}, {}, 0
  for i = 1, n do
    if chosen[i] > 0 then
      set[#set + 1] = fields[i]
      set[#set + 1] = string.format('%.17g %.17g', whens[i], chosen[i])
      local left = whens[i] + chosen[i] - now
      if left > longest then longest = left end
    else
      drop[#drop + 1] = fields[i]  -- a full window needs no state
    end
  end
  if #drop > 0 then redis.call('HDEL', KEYS[1], unpack(drop)) end
  if #set > 0 then
    redis.call('HSET', KEYS[1], unpack(set))
    -- Only ever lengthen the key's life: other windows' fields may need longer. With a
    -- client clock (ARGV[1]) the TTL still runs on the server's, which may read anything
    -- else: keep the state a minute at least.
    local ttl_ms = math.ceil(longest * 1000) + 1
    if ARGV[1] ~= '' and ttl_ms < 60000 then ttl_ms = 60000 end
    if redis.call('PTTL', KEYS[1]) < ttl_ms then redis.call('PEXPIRE', KEYS[1], ttl_ms) end
  end
end
return out
"""

# A counter whose TTL is set by the call that creates it, in one round trip.
_INCR_LUA = """
local created = redis.call('EXISTS', KEYS[1]) == 0
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if created and ARGV[2] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
"""


class _RedisBackend:
    """The client, scripts and error types one `RedisStore` and its namespaces share."""

    def __init__(self, client: Any, redis: Any, clock: Clock | None) -> None:
        self.client = client
        self.clock = clock
        self.errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError, TimeoutError)
        self.dropped: type[BaseException] = redis.ConnectionError
        self._scripts: dict[str, Any] = {}
        # Where the server is, for error messages (never the password).
        pool = getattr(client, "connection_pool", None)
        kwargs = getattr(pool, "connection_kwargs", None) or {}
        if kwargs.get("path"):
            self.where = f"Redis at {kwargs['path']}"
        elif kwargs.get("host"):
            self.where = f"Redis at {kwargs['host']}:{kwargs.get('port', 6379)}"
        else:
            self.where = "Redis"

    def script(self, source: str) -> Any:
        """``source`` as a redis-py Script (EVALSHA, loading it on a NOSCRIPT reply)."""
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self.client.register_script(source)
        return script


class RedisStore:
    """A `Store` on Redis (redis-py asyncio), shared by every worker and machine.

    Atomic operations are one round trip each: ``SET NX PX``, and Lua scripts (sent once,
    then called by hash) for the GCRA step and for counters with a TTL. The GCRA step reads
    the Redis server's clock (``TIME``) unless a ``clock`` is given, so workers whose own
    clocks drift apart still count on one timeline.

    A read whose pooled connection was dropped (a Redis restart, ``CLIENT KILL``) is tried
    once more on a new connection; a write is not (it may have run). Any other failure
    raises `StoreError`.

    Args:
        url: ``redis://host:6379/0`` (or ``rediss://``, ``unix://``).
        client: A ready ``redis.asyncio.Redis`` client instead of ``url``.
        prefix: Prefix of every key this store writes.
        timeout: For clients made from ``url``: seconds to connect, to wait for an answer,
            and to wait for a free connection when all ``max_connections`` are busy.
        max_connections: For clients made from ``url``: connections kept open at most.
            Past them a call waits for one to free up (up to ``timeout``) instead of
            failing, so a burst of requests is counted, not let through as store errors.
        clock: Seconds for the GCRA step instead of the server's ``TIME`` (tests); the
            keys' TTLs still run on the server, so they then last a minute at least.

    Raises:
        ValueError: If neither or both of ``url`` and ``client`` are given, or
            ``max_connections`` is below 1.
        MissingDependencyError: Without the ``redis`` extra.

    Example:
        ```python
        store = RedisStore("redis://localhost:6379/0")
        limit = RateLimit("10/second", store=store)
        auth = JWTAuth(tokens, user_loader=load, revocation=RedisRevocationStore(store=store))
        ```
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        prefix: str = "fastkit:",
        timeout: float = 1.0,
        max_connections: int = 64,
        clock: Clock | None = None,
    ) -> None:
        if (url is None) == (client is None):
            raise ValueError("Give either url= or client= to RedisStore.")
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}.")
        redis = require("redis.asyncio", "redis")
        if client is None:
            # redis-py's default pool raises MaxConnectionsError past 100 connections in use:
            # under a burst, those calls would fail (and a rate limit with on_error="allow"
            # let them through). A blocking pool makes them wait their turn instead.
            pool = redis.BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=timeout,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
            )
            client = redis.Redis.from_pool(pool)  # aclose() closes the pool too
        self._backend = _RedisBackend(client, redis, clock)
        self.prefix = prefix

    @property
    def client(self) -> Any:
        """The ``redis.asyncio.Redis`` client."""
        return self._backend.client

    async def ping(self) -> bool:
        """True if Redis answers ``PING``; for `fastkit.health.health_router`'s checks.

        Never raises: a failure is logged (WARNING, with the reason) and answers False.
        """
        try:
            await self._backend.client.ping()
        except Exception as error:
            logger.warning("Redis ping failed: %r", error)
            return False
        return True

    def namespace(self, name: str, *, evictable: bool = True) -> RedisStore:
        # Eviction is the server's: with maxmemory, use maxmemory-policy noeviction (every
        # key here has a TTL, so volatile-* policies may drop revoked tokens too).
        view = object.__new__(RedisStore)
        view._backend = self._backend
        view.prefix = f"{self.prefix}{name}:"
        return view

    async def _run(self, what: str, call: Callable[[], Any], *, read: bool = False) -> Any:
        backend = self._backend
        try:
            try:
                return await call()
            except backend.dropped:
                if not read:
                    raise
                return await call()  # a read is safe to try once more, on a new connection
        except backend.errors as error:
            raise StoreError(f"{backend.where}: {what} failed: {error!r}") from error

    async def get(self, key: str) -> bytes | None:
        client = self._backend.client
        value = await self._run("GET", lambda: client.get(self.prefix + key), read=True)
        return None if value is None else bytes(value)

    async def set(
        self, key: str, value: bytes, *, ttl: float | None = None, if_absent: bool = False
    ) -> bool:
        _check_ttl(ttl)
        client = self._backend.client
        px = None if ttl is None else max(1, math.ceil(ttl * 1000))
        done = await self._run(
            "SET", lambda: client.set(self.prefix + key, value, px=px, nx=if_absent)
        )
        return bool(done)

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        client = self._backend.client
        names = [self.prefix + key for key in keys]
        return int(await self._run("DEL", lambda: client.delete(*names)))

    async def exists(self, *keys: str) -> int:
        if not keys:
            return 0
        client = self._backend.client
        names = [self.prefix + key for key in keys]
        return int(await self._run("EXISTS", lambda: client.exists(*names), read=True))

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        _check_ttl(ttl)
        script = self._backend.script(_INCR_LUA)
        px = "" if ttl is None else str(max(1, math.ceil(ttl * 1000)))
        return int(
            await self._run("INCRBY", lambda: script(keys=[self.prefix + key], args=[amount, px]))
        )

    async def gcra(self, key: str, windows: Sequence[Window], cost: int = 1) -> GCRAResult:
        _check_windows(windows, cost)
        backend = self._backend
        now = "" if backend.clock is None else repr(float(backend.clock()))
        args: list[Any] = [now, cost]
        for window in windows:
            args.extend((window.field, window.limit, repr(float(window.period))))
        script = backend.script(_GCRA_LUA)
        reply = await self._run("GCRA", lambda: script(keys=[self.prefix + key], args=args))
        values = [item.decode() if isinstance(item, bytes) else str(item) for item in reply]
        return GCRAResult(
            allowed=values[0] == "1",
            remaining=tuple(int(values[i]) for i in range(2, len(values), 2)),
            reset=tuple(float(values[i]) for i in range(3, len(values), 2)),
            retry_after=float(values[1]),
        )

    async def aclose(self) -> None:
        """Close the client's connections (shared with every namespace of this store)."""
        await self._backend.client.aclose()
