"""JSON decoding for the messages that leave the hot path (replies, tickers, private
pushes): orjson when it is exact, the stdlib otherwise."""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["int_from_token", "loads_exact", "loads"]


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


def loads(text: bytes, big_ints: bool = False) -> Any:
    """orjson (fast) unless the text holds integers beyond 64 bits (orjson turns those into
    floats) or something orjson refuses (lone surrogates): then :func:`loads_exact`."""
    if not big_ints:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return loads_exact(text)
