"""Load the snippets under docs/snippets/ the way the pages show them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from fastapi.testclient import TestClient

DOCS = Path(__file__).resolve().parents[2] / "docs"
SNIPPETS = DOCS / "snippets"


def load(name: str) -> ModuleType:
    """Import ``docs/snippets/<name>.py`` as a fresh module."""
    module_name = f"docs_snippets_{name}"
    spec = importlib.util.spec_from_file_location(module_name, SNIPPETS / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"Cannot import docs/snippets/{name}.py.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def client(name: str, **kwargs: object) -> TestClient:
    """A client for the snippet's ``app`` that returns 500s instead of raising."""
    return TestClient(load(name).app, raise_server_exceptions=False, **kwargs)  # type: ignore[arg-type]


def page(name: str) -> str:
    """The text of ``docs/<name>``."""
    return (DOCS / name).read_text(encoding="utf-8")
