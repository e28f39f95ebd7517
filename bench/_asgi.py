"""Moved to ``bench/_driver.py``; this module re-exports it until every script has switched."""

from _driver import CLOCKS, Exchange, drive, make_scope, one_request

__all__ = ["CLOCKS", "Exchange", "drive", "make_scope", "one_request"]
