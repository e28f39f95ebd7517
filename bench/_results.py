"""Moved to ``bench/_driver.py``; this module re-exports it until every script has switched."""

from _driver import RESULTS, write_section

__all__ = ["RESULTS", "write_section"]
