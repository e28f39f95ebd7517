"""The todo example with seconds-long access tokens, for tests/examples/test_oauth_clients.py.

``uvicorn --factory tests.examples.oauth_app:create_app`` in a subprocess; the settings come
from the environment as for ``examples.todo.main:app``. The example's own settings count
access tokens in whole minutes (``ACCESS_TOKEN_MINUTES`` >= 1), and a client library's
automatic refresh is only seen once a token has expired, so this server-side setup shortens
the lifetime after the app is built. The client libraries under test are not touched.
"""

from __future__ import annotations

from fastapi import FastAPI

from examples.todo.main import create_app as create_todo_app
from examples.todo.settings import Settings

# Seconds. Long enough for a login and two requests, short enough to wait for in a test.
ACCESS_TTL = 3


def create_app() -> FastAPI:
    app = create_todo_app(Settings())
    app.state.services.tokens.access_ttl = ACCESS_TTL
    return app
