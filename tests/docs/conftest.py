from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


def _loggers() -> list[logging.Logger]:
    named = logging.Logger.manager.loggerDict.values()
    return [logging.getLogger(), *(lg for lg in named if isinstance(lg, logging.Logger))]


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Undo the logging setup snippets do at import: their handlers, levels and propagation.

    Only handlers added during the test are removed, so pytest's own capture handlers
    (added and removed around each test phase) are left to pytest.
    """
    saved = {
        logger: (list(logger.handlers), logger.level, logger.propagate) for logger in _loggers()
    }
    yield
    for logger in _loggers():
        handlers, level, propagate = saved.get(logger, ([], logging.NOTSET, True))
        for handler in [h for h in logger.handlers if h not in handlers]:
            logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
