"""Opt-in: the system tests stop and restart the PostgreSQL and Redis of ``.ci/run``.

``hatch test`` skips this directory unless ``FASTKIT_SYSTEM_TESTS=1``; opted in, a service
that cannot be reached or restarted fails the tests (it never skips them).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

OPT_IN = "FASTKIT_SYSTEM_TESTS"
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(OPT_IN) == "1":
        return
    skip = pytest.mark.skip(
        reason=f"system test: it stops and restarts PostgreSQL and Redis; set {OPT_IN}=1 "
        "(as root) to run it"
    )
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(skip)
