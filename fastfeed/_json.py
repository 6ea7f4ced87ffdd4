"""Exact JSON decoding for the messages that leave the hot path when orjson cannot be
exact (integers beyond 64 bits) or refuses valid JSON (lone surrogates): the stdlib's
decoder with integers of any size. The engine uses orjson otherwise."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["int_from_token", "loads_exact"]


def int_from_token(s: str) -> int:
    """``int(s)`` for a JSON integer token, without Python's str-to-int digit limit."""
    if len(s) <= 4000:
        return int(s)
    if s[0] == "-":
        return -int_from_token(s[1:])
    low = len(s) // 2
    return int_from_token(s[:-low]) * 10**low + int_from_token(s[-low:])


def loads_exact(text: bytes | str) -> Any:
    """Decode already validated JSON with ``json.loads``, integers kept exact at any size."""
    return json.loads(text, parse_int=int_from_token)
