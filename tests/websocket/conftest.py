"""Fixtures for the websocket tests: the anyio backend (asyncio, as uvicorn runs)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
