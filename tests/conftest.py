from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest

AccessRecords = Callable[[], list[logging.LogRecord]]


@pytest.fixture
def access_records(caplog: pytest.LogCaptureFixture) -> Iterator[AccessRecords]:
    """Capture ``fastkit.access`` at INFO; call the fixture to get the records so far."""
    with caplog.at_level(logging.INFO, logger="fastkit.access"):
        yield lambda: [r for r in caplog.records if r.name == "fastkit.access"]
