"""Raw ASGI header edits, cheaper than ``MutableHeaders`` on the hot path."""

from __future__ import annotations

from starlette.types import Message

__all__ = ["set_header"]


def set_header(message: Message, key: bytes, value: bytes) -> None:
    """Set header ``key`` (lowercase bytes) on an ``http.response.start`` message.

    Replaces any existing values, so the header is sent exactly once.
    """
    headers = message.get("headers")
    if headers is None:
        message["headers"] = [(key, value)]
        return
    if not isinstance(headers, list):
        headers = message["headers"] = list(headers)
    size = len(key)
    for name, _ in headers:
        # Length first: most names differ in length, and lower() allocates.
        if len(name) == size and name.lower() == key:
            break
    else:  # the usual case: not there yet
        headers.append((key, value))
        return
    headers[:] = [h for h in headers if len(h[0]) != size or h[0].lower() != key]
    headers.append((key, value))
