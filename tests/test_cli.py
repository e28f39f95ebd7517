"""``fastkit new {minimal,todo,chat} DIR``: what it writes, what it refuses, and that each
starter's own tests pass with plain pytest outside this repository.

The starters are the examples (one source): ``examples/<name>`` is the package, its
``tests/`` the starter's tests and its ``starter/`` the project's root files. The wheel's
copy is tried in ``tests/test_starters_from_wheel.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fastkit
from fastkit.cli import STARTERS, main, package_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest's own dependency on Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def new(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Runs ``fastkit *args``; (exit status, stdout, stderr)."""
    try:
        status = main(list(args))
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return status, out, err


def files(directory: Path) -> set[str]:
    return {
        path.relative_to(directory).as_posix() for path in directory.rglob("*") if path.is_file()
    }


def test_help_lists_the_starters(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = new(capsys, "new", "--help")
    assert status == 0
    for name, about in STARTERS.items():
        assert name in out
        assert about in out
    assert "a new or empty directory" in out
    assert "--name" in out
    status, out, _ = new(capsys, "--help")
    assert (status, "new" in out) == (0, True)


@pytest.mark.parametrize("starter", list(STARTERS))
def test_writes_a_standalone_project(
    starter: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "my-service"
    status, out, err = new(capsys, "new", starter, str(target))
    assert (status, err) == (0, "")
    assert "package my_service" in out
    assert "uvicorn my_service.main:app" in out

    written = files(target)
    example = ROOT / "examples" / starter
    package_files = {
        f"my_service/{path}"
        for path in files(example)
        if not path.startswith(("starter/", "tests/", "__pycache__/"))
        and "/__pycache__/" not in path
        and path != "README.md"
        and not path.endswith(".pyc")
    }
    test_files = {path for path in files(example) if path.startswith("tests/")}
    test_files = {path for path in test_files if "__pycache__" not in path}
    root_files = {"pyproject.toml", "README.md", ".env.example", ".gitignore"}
    assert written == package_files | test_files | root_files

    for path in written:
        text = (target / path).read_text(encoding="utf-8")
        assert "examples." not in text, path  # imports renamed to the package
        assert "examples/" not in text, path
        assert re.search(r"\{\{[a-z_]+\}\}", text) is None, path  # every placeholder filled

    project = tomllib.loads((target / "pyproject.toml").read_text())
    assert project["project"]["name"] == "my-service"
    needs = project["project"]["dependencies"]
    assert needs[0].startswith("fastkit-fastapi")
    assert needs[0].endswith(f">={fastkit.__version__}")
    assert "pytest>=8" in project["project"]["optional-dependencies"]["test"]
    assert project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["my_service"]
    readme = (target / "README.md").read_text()
    assert "uvicorn my_service.main:app" in readme
    assert "\npytest" in readme


def test_todo_starter_extras_and_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert new(capsys, "new", "todo", str(tmp_path / "svc"))[0] == 0
    project = tomllib.loads((tmp_path / "svc" / "pyproject.toml").read_text())
    assert project["project"]["dependencies"][0].startswith("fastkit-fastapi[sqlalchemy]")
    extras = project["project"]["optional-dependencies"]
    assert extras["postgres"][0].startswith("fastkit-fastapi[postgres]")
    assert extras["redis"][0].startswith("fastkit-fastapi[redis]")
    # Every setting the app reads is in .env.example.
    from examples.todo.settings import Settings

    example = (tmp_path / "svc" / ".env.example").read_text()
    for field in Settings.model_fields:
        assert f"{field.upper()}=" in example, field


def test_an_existing_empty_directory_is_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    assert new(capsys, "new", "minimal", str(tmp_path / "empty"))[0] == 0
    assert (tmp_path / "empty" / "empty" / "main.py").is_file()


def test_name_sets_the_package(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, _ = new(capsys, "new", "minimal", str(tmp_path / "x"), "--name", "shop_api")
    assert status == 0
    assert (tmp_path / "x" / "shop_api" / "main.py").is_file()
    assert "shop-api" in (tmp_path / "x" / "pyproject.toml").read_text()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param("file-inside", "is not an empty directory", id="non-empty"),
        pytest.param("hidden-file", "is not an empty directory", id="only-a-dotfile"),
        pytest.param("a-file", "is not an empty directory", id="a-file"),
    ],
)
def test_refuses_a_directory_that_is_not_empty(
    make: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "taken"
    if make == "a-file":
        target.write_text("mine")
    else:
        target.mkdir()
        (target / ("notes.txt" if make == "file-inside" else ".git")).write_text("mine")
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    status, out, err = new(capsys, "new", "todo", str(target))
    assert status == 1
    assert out == ""
    assert err == f"fastkit: {target} exists and {message}; choose a new or empty one.\n"
    after = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    assert after == before  # nothing written, nothing changed


@pytest.mark.parametrize(
    ("directory", "name", "message"),
    [
        pytest.param("my app", None, "is not a Python package name", id="space"),
        pytest.param("2fast", None, "is not a Python package name", id="digit-first"),
        pytest.param("class", None, "is not a Python package name", id="keyword"),
        pytest.param("json", None, "would shadow the module", id="stdlib"),
        pytest.param("ok", "fastapi", "would shadow the module", id="fastapi"),
        pytest.param("ok", "tests", "would shadow the module", id="tests"),
        pytest.param("pytest", None, "would shadow the module", id="installed-pytest"),
        pytest.param("ok", "httpx", "would shadow the module", id="installed-httpx"),
        pytest.param("ok", "Ü", "is not a Python package name", id="non-ascii"),
    ],
)
def test_refuses_a_package_name_that_cannot_work(
    directory: str,
    name: str | None,
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["new", "minimal", str(tmp_path / directory)]
    if name is not None:
        args += ["--name", name]
    status, _, err = new(capsys, *args)
    assert status == 1
    assert message in err
    assert "--name" in err  # what to do instead
    assert not (tmp_path / directory).exists()


def test_refuses_an_unknown_starter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = new(capsys, "new", "blog", str(tmp_path / "x"))
    assert status == 2
    assert "invalid choice: 'blog'" in err
    assert not (tmp_path / "x").exists()


def test_a_directory_that_cannot_be_written_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    status, _, err = new(capsys, "new", "minimal", str(tmp_path / "a-file" / "inside"))
    assert status == 1
    assert err.startswith(f"fastkit: Cannot write {tmp_path / 'a-file' / 'inside'}")
    assert "Traceback" not in err


def test_next_steps_quote_a_path_with_spaces(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = new(capsys, "new", "minimal", str(tmp_path / "my shop"), "--name", "shop")
    assert status == 0
    assert f"  cd '{tmp_path / 'my shop'}'" in out


def test_package_names() -> None:
    assert package_name("My-Service") == "my_service"
    assert package_name("shop.api") == "shop_api"


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "fastkit"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "new" in result.stdout


@pytest.mark.parametrize("starter", list(STARTERS))
def test_each_starters_tests_pass_with_plain_pytest_outside_the_repository(
    starter: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The generated project's own tests, in a pytest of their own (its pyproject's settings,
    warnings as errors), from the project's directory, with fastkit as installed here."""
    target = tmp_path / f"{starter}-svc"
    assert new(capsys, "new", starter, str(target))[0] == 0
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
    env.pop("PYTHONPATH", None)  # this repository is not on the path
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"],
        cwd=target,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
    assert "error" not in result.stdout.splitlines()[-1]
