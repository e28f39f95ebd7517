"""Unpadded base64url with one spelling per value: what cursors and JWTs are made of."""

from __future__ import annotations

import base64

__all__ = ["b64url_decode", "b64url_encode"]


def b64url_encode(raw: bytes) -> str:
    """``raw`` as unpadded base64url text."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """The bytes of unpadded base64url ``text``.

    Only the exact spelling ``b64url_encode`` gives is read: padding, whitespace, the
    standard alphabet and unused trailing bits set (another string for the same bytes,
    e.g. a changed signature that still verifies) are refused.

    Raises:
        ValueError: If ``text`` is anything else.
    """
    # The lenient decoder skips foreign characters; re-encoding catches every spelling
    # that is not the canonical one.
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url_encode(raw) != text:
        raise ValueError("not canonical unpadded base64url")
    return raw
