"""Helpers for optional integrations: a clear error naming the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingDependencyError", "require"]


class MissingDependencyError(ImportError):
    """An optional integration was used without its extra installed.

    The message names the extra, e.g. ``pip install "fastkit-fastapi[redis]"``.
    """

    def __init__(self, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{package!r} is not installed; install it with: "
            f'pip install "fastkit-fastapi[{extra}]".'
        )


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise `MissingDependencyError` naming ``extra``.

    Args:
        module: The importable module name, e.g. ``"redis.asyncio"``.
        extra: The fastkit extra that provides it, e.g. ``"redis"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(module.partition(".")[0], extra) from exc
