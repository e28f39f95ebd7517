"""Moved to ``bench/_driver.py``; this module re-exports it until every script has switched."""

from _driver import BENCH_DIR, HOST, free_port, read_log, stop_process, uvicorn_command

__all__ = ["BENCH_DIR", "HOST", "free_port", "read_log", "stop_process", "uvicorn_command"]
