from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import fastkit
from fastkit._compat import MissingDependencyError, require

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL_DRIVERS = ("sqlalchemy", "aiosqlite", "asyncpg", "redis")


def test_import_needs_no_extra() -> None:
    # A fresh interpreter: importing fastkit must not pull in any optional driver.
    code = (
        f"import sys, fastkit; print(','.join(m for m in {OPTIONAL_DRIVERS!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == ""


def test_public_names_resolve() -> None:
    for name in fastkit.__all__:
        assert getattr(fastkit, name) is not None, name


def test_version_is_the_packaged_one() -> None:
    from importlib.metadata import version

    assert fastkit.__version__ == version("fastkit-fastapi")  # the distribution's name


def test_py_typed_is_shipped() -> None:
    assert (Path(fastkit.__file__).parent / "py.typed").is_file()


def test_missing_dependency_names_the_extra() -> None:
    with pytest.raises(
        MissingDependencyError, match=r'pip install "fastkit-fastapi\[redis\]"'
    ) as info:
        require("fastkit_no_such_driver.asyncio", "redis")
    assert isinstance(info.value, ImportError)
    assert info.value.extra == "redis"
    assert info.value.package == "fastkit_no_such_driver"


def test_require_returns_the_module() -> None:
    assert require("json", "all") is importlib.import_module("json")


def test_the_pytest_plugin_is_registered_under_its_module_name() -> None:
    """Installed, pytest loads fastkit.testing by itself; under its module name, so that a
    conftest's ``pytest_plugins = ["fastkit.testing"]`` does not register it twice."""
    from importlib.metadata import entry_points

    [plugin] = [ep for ep in entry_points(group="pytest11") if ep.value == "fastkit.testing"]
    assert plugin.name == "fastkit.testing"
    assert plugin.dist is not None
    assert plugin.dist.name == "fastkit-fastapi"
