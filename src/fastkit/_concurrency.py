"""One adapter for user callbacks that may be ``def`` or ``async def``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

__all__ = ["call_maybe_async"]


async def call_maybe_async(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)``: awaited if async, in the threadpool if sync (it may do I/O).

    A sync function that returns an awaitable (a lambda around a coroutine function) has
    that awaited too.
    """
    if inspect.iscoroutinefunction(function):
        return await function(*args)
    result = await run_in_threadpool(function, *args)
    if inspect.isawaitable(result):
        result = await result
    return result
