"""Wire helpers of the local exchange: WebSocket framing, zlib encoding, reply envelopes,
error codes and the ``server.auth`` signature.

Server-to-client WebSocket frames are never masked (RFC 6455 5.1), so a complete frame is
just a 2/4/10-byte header followed by the payload. The exchange builds whole frames once
(``ws_frame``) and writes batches of them to the socket in one call, which is what makes
the high-rate modes cheap.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
import sys
import time
import zlib
from enum import IntEnum
from typing import Any

import orjson

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONTINUATION",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "ErrorCode",
    "auth_params",
    "close_payload",
    "encode_json",
    "error_envelope",
    "reply_envelope",
    "sign_auth",
    "ws_frame",
    "zlib_compress",
]

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_H2 = struct.Struct("!BB")
_H4 = struct.Struct("!BBH")
_H10 = struct.Struct("!BBQ")


class ErrorCode(IntEnum):
    """Error codes of the reply envelope. 1..6 follow the ViaBTC-style accessws catalogue
    the v1 envelope appears to derive from (an inference, see docs/protocol.md);
    ``RATE_LIMIT`` is the only code seen in a live client's catalogue."""

    INVALID_ARGUMENT = 1
    INTERNAL_ERROR = 2
    SERVICE_UNAVAILABLE = 3
    METHOD_NOT_FOUND = 4
    TIMEOUT = 5
    REQUIRE_AUTH = 6
    RATE_LIMIT = 200005


def ws_frame(opcode: int, payload: bytes | bytearray | memoryview) -> bytes:
    """Return one complete, unmasked, final WebSocket frame (header + payload)."""
    n = len(payload)
    b0 = 0x80 | opcode
    if n < 126:
        header = _H2.pack(b0, n)
    elif n < 65536:
        header = _H4.pack(b0, 126, n)
    else:
        header = _H10.pack(b0, 127, n)
    if not isinstance(payload, bytes):
        payload = bytes(payload)
    return header + payload


def close_payload(code: int, reason: str = "") -> bytes:
    """Payload of a CLOSE frame: 2-byte big-endian status code + UTF-8 reason (≤ 123 bytes)."""
    return struct.pack("!H", code) + reason.encode()[:123]


def _fix_header(stream: bytes) -> bytes:
    # CMF 0x78 = deflate, 32 KiB window; keep FLEVEL from the original FLG and recompute
    # FCHECK so that (CMF*256 + FLG) % 31 == 0.
    flg = stream[1] & 0xC0
    flg |= 31 - ((0x78 * 256 + flg) % 31)
    return b"\x78" + bytes((flg,)) + stream[2:]


_MIN_LOOKAHEAD = 262  # zlib's MAX_MATCH + MIN_MATCH + 1


def zlib_compress(data: bytes, level: int = 6) -> bytes:
    """Compress ``data`` into one complete zlib stream (RFC 1950) with a ``0x78`` header.

    Payloads under 16000 bytes are deflated with the smallest window that still holds the
    whole input within zlib's match distance (``2**wbits - 262 >= len``, ``wbits`` 9..14)
    and the header is rewritten to announce the standard 32 KiB window. For such inputs
    no match can reach further back than the input, so the output is byte-identical to
    ``zlib.compress(data, level)``, while avoiding the much more expensive set-up of a
    32 KiB-window stream (2-3x faster for small frames).
    """
    n = len(data)
    if n < 16000:
        wbits = 9
        while n > (1 << wbits) - _MIN_LOOKAHEAD:
            wbits += 1
        if sys.version_info >= (3, 11):
            return _fix_header(zlib.compress(data, level, wbits))
        c = zlib.compressobj(level, zlib.DEFLATED, wbits)  # 3.10: compress() has no wbits
        return _fix_header(c.compress(data) + c.flush())
    return zlib.compress(data, level)


def encode_json(obj: Any) -> bytes:
    """Compact JSON bytes. Falls back to the stdlib for values orjson refuses
    (integers beyond 64 bits, which a client may legally use as request ids)."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def reply_envelope(req_id: Any, result: Any) -> dict[str, Any]:
    """A success reply: ``{"error": null, "result": ..., "id": N}``."""
    return {"error": None, "result": result, "id": req_id}


def error_envelope(req_id: Any, code: int, message: str, style: str = "object") -> dict[str, Any]:
    """An error reply. ``style="object"``: ``{"code", "message"}``; ``"string"``: the message."""
    err: Any = {"code": int(code), "message": message} if style == "object" else message
    return {"error": err, "result": None, "id": req_id}


def sign_auth(secret: str, timestamp_ms: str) -> str:
    """``base64(HMAC_SHA256(key=secret, msg=timestamp_ms))`` as used by ``server.auth``."""
    digest = hmac.new(secret.encode(), timestamp_ms.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def auth_params(api_key: str, secret: str, timestamp_ms: int | None = None) -> list[str]:
    """The ``params`` of a ``server.auth`` request: ``[api_key, ts_ms, signature]``."""
    ts = str(int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms))
    return [api_key, ts, sign_auth(secret, ts)]
