"""The app under test, for fastkit.testing's ``client`` fixture (the plugin is loaded by
installing fastkit; ``pytest -p fastkit.testing`` loads it explicitly)."""

import copy

import pytest
from fastapi import FastAPI

from examples.minimal import main


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    # Each test gets the starting items: what one test adds or takes, the next one does not see.
    monkeypatch.setattr(main, "ITEMS", copy.deepcopy(main.ITEMS))
    return main.app
