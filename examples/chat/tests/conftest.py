"""The app under test, for fastkit.testing's ``client`` fixture (the plugin is loaded by
installing fastkit; ``pytest -p fastkit.testing`` loads it explicitly)."""

import pytest
from fastapi import FastAPI

from examples.chat.main import create_app

SECRET = "test-secret-0123456789-0123456789-0123456789"


@pytest.fixture
def app() -> FastAPI:
    # In memory (no Redis, whatever REDIS_URL says), with a fixed secret.
    return create_app(secret=SECRET)
