"""fastkit.auth.passwords: argon2 hashing, bcrypt migration, and async work off the event loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import bcrypt
import pytest

from fastkit.auth import PasswordHasher, PasswordHasherBusy

PASSWORD = "correct horse battery staple"


def fast_hasher(**options: Any) -> PasswordHasher:
    # The cheapest argon2 parameters: the tests check behaviour, not strength.
    return PasswordHasher(argon2__time_cost=1, argon2__memory_cost=1024, **options)


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return fast_hasher()


@pytest.fixture(scope="module")
def stored(hasher: PasswordHasher) -> str:
    return hasher.hash(PASSWORD)


def legacy_bcrypt_hash(password: str) -> str:
    """A hash as an older app stored it: bcrypt straight from the ``bcrypt`` module."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


# --- hash and verify ---------------------------------------------------------------------


def test_hash_verify_round_trip(hasher: PasswordHasher, stored: str) -> None:
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert hasher.verify(PASSWORD, stored) is True


def test_hashes_are_salted(hasher: PasswordHasher, stored: str) -> None:
    again = hasher.hash(PASSWORD)
    assert again != stored
    assert hasher.verify(PASSWORD, again) is True


@pytest.mark.parametrize(
    "attempt",
    [
        pytest.param("correct horse battery stapl", id="prefix"),
        pytest.param("correct horse battery staple ", id="trailing-space"),
        pytest.param("Correct horse battery staple", id="case"),
        pytest.param("x", id="other"),
    ],
)
def test_wrong_password_is_false(hasher: PasswordHasher, stored: str, attempt: str) -> None:
    assert hasher.verify(attempt, stored) is False
    assert hasher.verify_and_update(attempt, stored) == (False, None)


@pytest.mark.parametrize(
    "hashed",
    [
        pytest.param("", id="empty"),
        pytest.param("not-a-hash", id="plain-text"),
        pytest.param(PASSWORD, id="the-password-itself"),
        pytest.param("$argon2id$garbage", id="argon2-garbage"),
        pytest.param("$argon2id$v=19$m=1024,t=1,p=1$", id="argon2-truncated"),
        pytest.param("$2b$04$short", id="bcrypt-truncated"),
        pytest.param("$1$abcdefgh$0123456789abcdefghijkl", id="md5-crypt-not-configured"),
        pytest.param("$unknown$scheme$value", id="unknown-scheme"),
        pytest.param("\x00", id="nul"),
        pytest.param("héllo wörld", id="non-ascii"),
    ],
)
def test_malformed_or_unknown_hash_is_false(hasher: PasswordHasher, hashed: str) -> None:
    assert hasher.verify(PASSWORD, hashed) is False
    assert hasher.verify_and_update(PASSWORD, hashed) == (False, None)


def test_empty_password_never_verifies(hasher: PasswordHasher, stored: str) -> None:
    assert hasher.verify("", stored) is False
    assert hasher.verify_and_update("", stored) == (False, None)
    assert hasher.verify("", "") is False


def test_empty_password_is_refused_at_hash(hasher: PasswordHasher) -> None:
    with pytest.raises(ValueError, match="empty password"):
        hasher.hash("")


@pytest.mark.anyio
async def test_empty_password_is_refused_at_ahash(hasher: PasswordHasher) -> None:
    with pytest.raises(ValueError, match="empty password"):
        await hasher.ahash("")


def test_password_longer_than_72_bytes_works_with_argon2(hasher: PasswordHasher) -> None:
    # bcrypt looks at 72 bytes only; argon2 must use all of them.
    password = "é" * 50  # 100 bytes of UTF-8
    assert len(password.encode()) == 100
    stored = hasher.hash(password)
    assert hasher.verify(password, stored) is True
    assert hasher.verify("é" * 36, stored) is False  # the first 72 bytes alone
    assert hasher.verify(password[:-1] + "e", stored) is False  # differs after byte 72


# --- bcrypt -> argon2 migration ----------------------------------------------------------


def test_old_bcrypt_hash_verifies_and_is_upgraded_to_argon2(hasher: PasswordHasher) -> None:
    old = legacy_bcrypt_hash("legacy password")
    assert old.startswith("$2b$04$")
    assert hasher.verify("legacy password", old) is True

    ok, new_hash = hasher.verify_and_update("legacy password", old)
    assert ok is True
    assert new_hash is not None
    assert new_hash.startswith("$argon2id$")
    assert hasher.verify("legacy password", new_hash) is True
    assert hasher.verify_and_update("legacy password", new_hash) == (True, None)


def test_old_bcrypt_hash_with_wrong_password_is_not_upgraded(hasher: PasswordHasher) -> None:
    assert hasher.verify_and_update("guess", legacy_bcrypt_hash("legacy password")) == (
        False,
        None,
    )


def test_current_argon2_hash_needs_no_update(hasher: PasswordHasher, stored: str) -> None:
    assert hasher.verify_and_update(PASSWORD, stored) == (True, None)


@pytest.mark.anyio
async def test_averify_and_update_upgrades_bcrypt(hasher: PasswordHasher) -> None:
    ok, new_hash = await hasher.averify_and_update("legacy", legacy_bcrypt_hash("legacy"))
    assert ok is True
    assert new_hash is not None
    assert new_hash.startswith("$argon2id$")
    assert await hasher.averify("legacy", new_hash) is True


# --- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"schemes": []}, "non-empty", id="empty-list"),
        pytest.param({"schemes": ()}, "non-empty", id="empty-tuple"),
        pytest.param({"schemes": "argon2"}, "non-empty list", id="a-string"),
        pytest.param({"schemes": ["md5_crypt"]}, "Unknown password scheme", id="unknown"),
        pytest.param({"schemes": ["argon2", "rot13"]}, "rot13", id="one-unknown"),
        pytest.param({"max_concurrency": 0}, "max_concurrency", id="concurrency-0"),
        pytest.param({"max_concurrency": -1}, "max_concurrency", id="concurrency-negative"),
        pytest.param({"max_waiting": -1}, "max_waiting", id="waiting-negative"),
    ],
)
def test_invalid_configuration_raises_value_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fast_hasher(**kwargs)


def test_bcrypt_first_hashes_with_bcrypt() -> None:
    hasher = PasswordHasher(["bcrypt"], bcrypt__rounds=4)
    stored = hasher.hash(PASSWORD)
    assert stored.startswith("$2b$04$")
    assert hasher.verify(PASSWORD, stored) is True


# --- async: off the event loop, bounded ----------------------------------------------------


def record_threads(hasher: PasswordHasher, method: str, threads: set[int]) -> None:
    """Wrap ``hasher.context.<method>`` to note the thread each call runs in."""
    original: Callable[..., Any] = getattr(hasher.context, method)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        threads.add(threading.get_ident())
        return original(*args, **kwargs)

    setattr(hasher.context, method, wrapper)


@pytest.mark.anyio
async def test_async_methods_run_off_the_event_loop_thread() -> None:
    hasher = fast_hasher()
    threads: set[int] = set()
    # averify and averify_and_update go through context.verify_and_update; adummy_verify
    # through context.verify; ahash through context.hash.
    for method in ("hash", "verify", "verify_and_update"):
        record_threads(hasher, method, threads)
    loop_thread = threading.get_ident()

    stored = await hasher.ahash(PASSWORD)
    assert await hasher.averify(PASSWORD, stored) is True
    assert await hasher.averify("wrong", stored) is False
    assert await hasher.averify_and_update(PASSWORD, stored) == (True, None)
    await hasher.adummy_verify()

    assert threads  # the wrappers saw the calls
    assert loop_thread not in threads


@pytest.mark.anyio
async def test_averify_never_runs_more_than_max_concurrency_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hasher = fast_hasher(max_concurrency=2)
    stored = hasher.hash(PASSWORD)
    original = hasher.context.verify
    lock = threading.Lock()
    active = peak = calls = 0

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal active, peak, calls
        with lock:
            active += 1
            calls += 1
            peak = max(peak, active)
        try:
            time.sleep(0.05)  # long enough for the others to pile up if they could
            return original(*args, **kwargs)
        finally:
            with lock:
                active -= 1

    # averify -> verify -> context.verify
    monkeypatch.setattr(hasher.context, "verify", counting)
    results: list[bool] = []

    async def one() -> None:
        results.append(await hasher.averify(PASSWORD, stored))

    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(one)

    assert results == [True] * 8
    assert calls == 8
    assert peak == 2


@pytest.mark.anyio
async def test_one_hasher_serves_several_event_loops() -> None:
    # The limiter is created lazily; a hasher made at import time must work in any loop.
    hasher = fast_hasher()
    stored = await hasher.ahash(PASSWORD)

    async def in_another_loop() -> bool:
        return await hasher.averify(PASSWORD, stored)

    assert await anyio.to_thread.run_sync(anyio.run, in_another_loop) is True


# --- dummy_verify ------------------------------------------------------------------------


def _best_of(runs: int, call: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def test_dummy_verify_costs_about_one_real_verify() -> None:
    # Parameters heavy enough that the hash dominates the measurement, light enough to be
    # quick; best-of-N on both sides and a loose 3x bound keep this stable on a busy machine.
    hasher = PasswordHasher(argon2__time_cost=2, argon2__memory_cost=8192)
    stored = hasher.hash(PASSWORD)
    real = _best_of(5, lambda: hasher.verify("wrong password", stored))
    dummy = _best_of(5, hasher.dummy_verify)
    assert real / 3 < dummy < real * 3, (real, dummy)


def count_dummy_verifications(hasher: PasswordHasher) -> list[str]:
    """Wrap ``hasher.context.verify`` to note each verification against the dummy hash."""
    seen: list[str] = []
    original = hasher.context.verify

    def spying(secret: Any, hashed: Any, *args: Any, **kwargs: Any) -> Any:
        if hashed == hasher._dummy_hash:
            seen.append("dummy")
        return original(secret, hashed, *args, **kwargs)

    hasher.context.verify = spying
    return seen


# Every way verify() refuses without verifying: each must spend one verification anyway.
REFUSALS = [
    pytest.param("x" * 4097, "argon2", id="over-passlib-4096-bytes"),
    pytest.param("", "argon2", id="empty-password"),
    pytest.param(PASSWORD, "", id="empty-hash"),
    pytest.param("a" * 73, "bcrypt", id="over-bcrypt-72-bytes"),
    pytest.param("nul\x00byte", "bcrypt", id="nul-in-bcrypt-password"),
    pytest.param(PASSWORD, "$argon2id$garbage", id="corrupt-hash"),
    pytest.param(PASSWORD, "$unknown$scheme$value", id="unknown-scheme"),
    pytest.param(PASSWORD, "not-a-hash", id="plain-text-hash"),
]


@pytest.mark.parametrize(("password", "hashed"), REFUSALS)
@pytest.mark.parametrize("method", ["verify", "verify_and_update"])
def test_every_refusal_spends_one_verification(password: str, hashed: str, method: str) -> None:
    hasher = fast_hasher()
    stored = {"argon2": hasher.hash(PASSWORD), "bcrypt": legacy_bcrypt_hash(PASSWORD)}.get(
        hashed, hashed
    )
    seen = count_dummy_verifications(hasher)
    result = getattr(hasher, method)(password, stored)
    assert result in (False, (False, None))
    assert seen == ["dummy"]


def test_a_wrong_password_spends_no_extra_verification(hasher: PasswordHasher) -> None:
    stored = hasher.hash(PASSWORD)
    local = fast_hasher()
    seen = count_dummy_verifications(local)
    assert local.verify("wrong", stored) is False
    assert seen == []  # the real verification was the time spent


def test_an_over_long_password_costs_about_one_real_verify() -> None:
    # Before, passlib refused 4,097 bytes in microseconds while a wrong password took a
    # whole hash: the time told an attacker the request had reached the hash check.
    hasher = PasswordHasher(argon2__time_cost=2, argon2__memory_cost=8192)
    stored = hasher.hash(PASSWORD)
    real = _best_of(5, lambda: hasher.verify("wrong password", stored))
    long = _best_of(5, lambda: hasher.verify("x" * 4097, stored))
    assert real / 3 < long < real * 3, (real, long)


def test_argon2_hashes_use_one_lane_and_older_lane_counts_are_upgraded() -> None:
    hasher = fast_hasher()
    assert ",p=1$" in hasher.hash("correct horse")
    four_lanes = fast_hasher(argon2__parallelism=4).hash("correct horse")
    assert ",p=4$" in four_lanes
    ok, new_hash = hasher.verify_and_update("correct horse", four_lanes)
    assert ok
    assert new_hash is not None
    assert ",p=1$" in new_hash
    assert hasher.verify("correct horse", new_hash)


@pytest.mark.parametrize(("cpus", "expected"), [(None, 1), (1, 1), (2, 1), (4, 3), (16, 4)])
def test_default_concurrency_leaves_a_core_for_the_event_loop(
    monkeypatch: pytest.MonkeyPatch, cpus: int | None, expected: int
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: cpus)
    assert fast_hasher().max_concurrency == expected
    assert fast_hasher(max_concurrency=8).max_concurrency == 8


def test_verify_does_not_spend_a_second_hash_on_an_old_scheme(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hasher = fast_hasher()
    old = bcrypt.hashpw(b"correct horse", bcrypt.gensalt(rounds=4)).decode()
    calls: list[str] = []
    original = hasher.context.hash
    monkeypatch.setattr(
        hasher.context, "hash", lambda *a, **k: calls.append("hash") or original(*a, **k)
    )
    assert hasher.verify("correct horse", old)
    assert not hasher.verify("wrong", old)
    assert calls == []  # verify_and_update is the one that re-hashes
    ok, new_hash = hasher.verify_and_update("correct horse", old)
    assert ok
    assert new_hash is not None
    assert new_hash.startswith("$argon2id$")


# --- the bounded queue ---------------------------------------------------------------------


@pytest.mark.parametrize(("cpus", "expected"), [(2, 16), (5, 64)])
def test_default_queue_is_sixteen_per_slot(
    monkeypatch: pytest.MonkeyPatch, cpus: int, expected: int
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: cpus)
    assert fast_hasher().max_waiting == expected
    assert fast_hasher(max_waiting=0).max_waiting == 0


@pytest.mark.anyio
@pytest.mark.parametrize("max_waiting", [0, 2])
async def test_beyond_max_waiting_calls_are_refused_without_queueing(max_waiting: int) -> None:
    hasher = fast_hasher(max_concurrency=1, max_waiting=max_waiting)
    stored = hasher.hash(PASSWORD)
    release = threading.Event()
    started = threading.Event()
    calls = 0
    original = hasher.context.verify

    def blocking(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        started.set()
        release.wait(10)
        return original(*args, **kwargs)

    hasher.context.verify = blocking
    results: list[bool] = []

    async def one() -> None:
        results.append(await hasher.averify(PASSWORD, stored))

    async with anyio.create_task_group() as group:
        group.start_soon(one)  # runs, and blocks its worker thread
        await anyio.to_thread.run_sync(started.wait, 10)
        for _ in range(max_waiting):
            group.start_soon(one)  # wait for the slot
        await anyio.wait_all_tasks_blocked()
        for method, args in [
            ("averify", (PASSWORD, stored)),
            ("averify_and_update", (PASSWORD, stored)),
            ("adummy_verify", ()),
            ("ahash", (PASSWORD,)),
        ]:
            with pytest.raises(PasswordHasherBusy) as refused:
                await getattr(hasher, method)(*args)
            assert refused.value.status_code == 503
            assert refused.value.headers is not None
            assert int(refused.value.headers["Retry-After"]) >= 1
        assert calls == 1  # the refused calls queued no work
        release.set()

    assert results == [True] * (1 + max_waiting)
    # Drained: the next call is served again.
    assert await hasher.averify(PASSWORD, stored) is True


@pytest.mark.anyio
async def test_retry_after_grows_with_the_queue_and_the_hash_time() -> None:
    hasher = fast_hasher(max_concurrency=1, max_waiting=0)
    hasher._seconds_per_hash = 2.5  # as measured on a slow server
    release = threading.Event()
    started = threading.Event()

    def blocking() -> None:
        started.set()
        release.wait(10)

    async with anyio.create_task_group() as group:
        group.start_soon(hasher._run, blocking)
        await anyio.to_thread.run_sync(started.wait, 10)
        with pytest.raises(PasswordHasherBusy) as refused:
            await hasher.adummy_verify()
        release.set()
    assert refused.value.headers == {"Retry-After": "3"}
