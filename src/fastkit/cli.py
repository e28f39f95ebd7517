"""The ``fastkit`` command: ``fastkit new {minimal,todo,chat} DIR`` writes a starter project.

A starter is one of the examples of the fastkit repository as a project of its own: the
example's package under a name of yours, its tests (plain pytest, on `fastkit.testing`), a
``pyproject.toml`` that depends on ``fastkit-fastapi`` with the extras it needs, a README
with its two commands and a ``.env.example``. The examples are the templates: the wheel
ships them as ``fastkit/_starters/<name>``, and a checkout reads them from ``examples/``.
"""

from __future__ import annotations

import argparse
import importlib.util
import keyword
import re
import shlex
import sys
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import fastkit

if TYPE_CHECKING:
    from importlib.abc import Traversable  # importlib.resources.abc from Python 3.11

__all__ = ["STARTERS", "main", "new_project"]

STARTERS = {
    "minimal": "one file: setup(), the envelope, a custom error and a paginated list",
    "todo": "a todo service: SQLAlchemy (SQLite or PostgreSQL), JWT login, pages and cursors",
    "chat": "a chat with rooms over websockets, behind a login, one page of HTML",
}

# Inside each example: files of the starter's root (placeholders filled; renamed as below,
# so that no tool of this repository reads them as its own), and its tests (to tests/).
_ROOT_FILES = "starter"
_TESTS = "tests"
_LEFT_OUT = {_ROOT_FILES, _TESTS, "README.md", "__pycache__"}
_RENAMED = {
    "env.example": ".env.example",
    "gitignore": ".gitignore",
    "pyproject.toml.in": "pyproject.toml",
}
_TEXT_SUFFIXES = {".py", ".md", ".toml", ".in", ".html", ".txt", ".example", ".cfg", ""}
# Names a package of the user's must not take: it would shadow what the starter imports.
_TAKEN = {
    "fastkit",
    "fastapi",
    "starlette",
    "pydantic",
    "pydantic_settings",
    "sqlalchemy",
    "uvicorn",
    "redis",
    "jwt",
    "passlib",
    "websockets",
    "tests",
    "test",
    "examples",
}
_PACKAGE = re.compile(r"[a-z_][a-z0-9_]*")


class StarterError(Exception):
    """A ``fastkit new`` that cannot be done; its message says what to do instead."""


def package_name(text: str) -> str:
    """The Python package name for a directory or ``--name``: lowercase, ``-`` as ``_``.

    Raises:
        StarterError: If the result is not an importable name of its own.
    """
    name = text.strip().lower().replace("-", "_").replace(".", "_")
    if not _PACKAGE.fullmatch(name) or keyword.iskeyword(name):
        raise StarterError(
            f"{text!r} is not a Python package name; pass --name with letters, digits and _ "
            "(e.g. --name my_service)."
        )
    if name in _TAKEN or name in sys.stdlib_module_names or _installed(name):
        raise StarterError(
            f"The package name {name!r} would shadow the module of that name; pass --name "
            "with another one (e.g. --name my_service)."
        )
    return name


def _installed(name: str) -> bool:
    """Whether ``import name`` finds a module already (pytest, httpx, a package of yours)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return True


def _templates(starter: str) -> Traversable:
    """The example that is the starter: in the wheel, else in this checkout's examples/."""
    shipped = resources.files(fastkit).joinpath("_starters").joinpath(starter)
    if shipped.is_dir():
        return shipped
    checkout = Path(fastkit.__file__).resolve().parent.parent.parent / "examples" / starter
    if checkout.is_dir():
        return checkout
    raise StarterError(  # pragma: no cover - a broken installation
        f"The {starter!r} starter is missing from this installation; reinstall fastkit-fastapi."
    )


def _walk(folder: Traversable, relative: Path) -> Iterator[tuple[Path, Traversable]]:
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name == "__pycache__" or entry.name.endswith((".pyc", ".pyo")):
            continue
        if entry.is_dir():
            yield from _walk(entry, relative / entry.name)
        else:
            yield relative / entry.name, entry


def _plan(starter: str, package: str) -> Iterator[tuple[Path, Traversable]]:
    """(where in the project, which template file) for every file of the starter."""
    source = _templates(starter)
    for entry in sorted(source.iterdir(), key=lambda item: item.name):
        if entry.name in _LEFT_OUT:
            continue
        if entry.is_dir():
            yield from _walk(entry, Path(package) / entry.name)
        else:
            yield Path(package) / entry.name, entry
    yield from _walk(source.joinpath(_TESTS), Path("tests"))
    for relative, entry in _walk(source.joinpath(_ROOT_FILES), Path()):
        yield Path(_RENAMED.get(relative.name, str(relative))), entry


def _render(text: str, starter: str, package: str) -> str:
    project = package.replace("_", "-")
    for old, new in (
        ("{{package}}", package),
        ("{{project}}", project),
        ("{{fastkit_version}}", fastkit.__version__),
        (f"examples.{starter}", package),  # imports and `uvicorn examples.todo.main:app`
        (f"examples/{starter}", package),
    ):
        text = text.replace(old, new)
    return text


def new_project(starter: str, directory: Path, *, name: str | None = None) -> str:
    """Write the ``starter`` project into ``directory`` (new or empty); its package name.

    Raises:
        StarterError: For an unknown starter, a non-empty directory or a bad name.
    """
    if starter not in STARTERS:
        raise StarterError(f"Unknown starter {starter!r}; choose one of {', '.join(STARTERS)}.")
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise StarterError(
            f"{directory} exists and is not an empty directory; choose a new or empty one."
        )
    package = package_name(name if name is not None else directory.resolve().name)
    plan = list(_plan(starter, package))
    for relative, entry in plan:
        target = directory / relative
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if relative.suffix in _TEXT_SUFFIXES:
                text = entry.read_text(encoding="utf-8")
                target.write_text(_render(text, starter, package), encoding="utf-8")
            else:
                target.write_bytes(entry.read_bytes())
        except OSError as error:
            raise StarterError(
                f"Cannot write {target} ({error.strerror or type(error).__name__}); "
                "choose a directory you can write to."
            ) from None
    return package


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastkit",
        description="fastkit's command line: start a FastAPI project from a fastkit starter.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    choices = "\n".join(f"  {name:<8} {about}" for name, about in STARTERS.items())
    new = commands.add_parser(
        "new",
        help="write a starter project into a new directory",
        description=(
            "Write a standalone project: its own package, tests (pytest), pyproject.toml "
            "depending on fastkit-fastapi, a README with its two commands and .env.example."
        ),
        epilog=f"starters:\n{choices}\n\nexample:\n  fastkit new todo my-service",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    new.add_argument(
        "starter", choices=list(STARTERS), metavar="STARTER", help="minimal, todo or chat"
    )
    new.add_argument("directory", type=Path, metavar="DIR", help="a new or empty directory")
    new.add_argument(
        "--name",
        help="the Python package name (default: DIR's name, lowercase, '-' as '_')",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``fastkit`` console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        package = new_project(args.starter, args.directory, name=args.name)
    except StarterError as error:
        parser.exit(1, f"fastkit: {error}\n")
    where = args.directory
    print(f"Wrote the {args.starter} starter to {where} (package {package}). Next:")
    print(f"  cd {shlex.quote(str(where))}")
    print("  python -m venv .venv && . .venv/bin/activate")
    print('  pip install -e ".[test]"')
    print("  pytest")
    print(f"  uvicorn {package}.main:app --reload")
    print("Its README.md says more (settings: .env.example).")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
