"""Every kind of bad input, on both engines.

For each case: the right error class and ``.reason``, the rejection counted in
``stats["rejects"]`` (and ``frames``/``bytes_in``), books and trade ring untouched (compared
with copies taken before), and the next good frame applied.
"""

from __future__ import annotations

import json
import os
import random
import resource
import struct
import subprocess
import sys
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

import fastfeed
from fastfeed.errors import (
    FastfeedError,
    FrameError,
    FrameTooLarge,
    InflateError,
    MessageError,
    ParseError,
)
from fastfeed.reference import ReferenceEngine

from helpers import (
    BYTE_CODECS,
    CODECS,
    assert_snapshot_equal,
    assert_state_equal,
    compiled_engine_cls,
    depth_text,
    encode,
    snapshot,
    trade,
    trades_text,
)

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native

WRAPS = ("bytes", "bytearray", "memoryview")

GOOD_DEPTH = depth_text(False, "S", asks=[["101", "1"]], bids=[["99", "1"]])


def wrap(raw: bytes, how: str) -> bytes | bytearray | memoryview:
    """Hand raw bytes over as bytes, bytearray or memoryview."""
    if how == "bytes":
        return raw
    if how == "bytearray":
        return bytearray(raw)
    return memoryview(bytearray(raw))


def primed(engine_cls: Any, **kwargs: Any) -> Any:
    """An engine with two books and a few trades in its ring."""
    eng = engine_cls(depth=5, trade_capacity=8, **kwargs)
    eng.feed(depth_text(True, "S", asks=[["101", "1"], ["102", "2"]], bids=[["99", "1"], ["98", "3"]]), 11)
    eng.feed(depth_text(True, "T", asks=[["5", "1"]], bids=[["4", "1"]]), 12)
    eng.feed(zlib.compress(trades_text(True, "S", [trade(12), trade(11), trade(10)]).encode()), 13)
    return eng


def check_reject(
    eng: Any,
    payload: Any,
    exc_cls: type[FastfeedError],
    reason: str,
    inflated: int = 0,
) -> None:
    """Feed a bad payload and check error, counters, untouched state, and recovery."""
    before = snapshot(eng)
    if isinstance(payload, str):
        try:
            n_in = len(payload.encode("utf-8"))
        except UnicodeEncodeError:
            n_in = 0  # a str with no UTF-8 encoding has no payload bytes
    else:
        n_in = memoryview(payload).nbytes
    with pytest.raises(exc_cls) as info:
        eng.feed(payload, 999)
    err = info.value
    assert err.reason == reason, f"expected reason {reason!r}, got {err.reason!r}: {err}"
    after = snapshot(eng)
    expected = dict(before["stats"])
    expected["rejects"] = dict(expected["rejects"])
    expected["rejects"][reason] += 1
    expected["frames"] += 1
    expected["bytes_in"] += n_in
    expected["bytes_inflated"] += inflated
    before["stats"] = expected
    assert_snapshot_equal(before, after, f"after rejected {payload!r:.200}")
    # the next good frame is applied
    version = eng.book("S").version
    assert eng.feed(zlib.compress(GOOD_DEPTH.encode()), 1000) is None
    assert eng.book("S").version == version + 1
    assert eng.book("S").recv_ns == 1000


def check_text(eng: Any, text: str | bytes, codec: str, exc_cls: type[FastfeedError], reason: str) -> None:
    """``check_reject`` for JSON text sent with a codec."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    check_reject(eng, encode(raw, codec), exc_cls, reason, len(raw) if codec.startswith("zlib") else 0)


def test_error_hierarchy() -> None:
    assert issubclass(InflateError, FrameError) and issubclass(FrameTooLarge, FrameError)
    assert issubclass(ParseError, MessageError)
    assert issubclass(FrameError, FastfeedError) and issubclass(MessageError, FastfeedError)


# --- frame level -----------------------------------------------------------------------------

TEXT = GOOD_DEPTH.encode()
Z = zlib.compress(TEXT)


@lru_cache(maxsize=1)
def zlib_bomb() -> bytes:
    """64 MiB of zeros, compressed (about 64 KiB)."""
    return zlib.compress(bytes(64 << 20), 9)


def _fdict_stream() -> bytes:
    c = zlib.compressobj(zdict=b'{"method":"depth.update"')
    return c.compress(TEXT) + c.flush()


FRAME_CASES: list[tuple[str, bytes, type[FastfeedError], str]] = [
    ("empty", b"", InflateError, "empty"),
    ("truncated-1", Z[:-1], InflateError, "zlib_truncated"),
    ("truncated-adler", Z[:-4], InflateError, "zlib_truncated"),
    ("truncated-body", Z[: len(Z) // 2], InflateError, "zlib_truncated"),
    ("truncated-header-only", Z[:2], InflateError, "zlib_truncated"),
    ("truncated-one-byte", Z[:1], InflateError, "zlib_truncated"),
    ("bad-header-fcheck", bytes([0x78, 0x9D]) + Z[2:], InflateError, "zlib_error"),
    ("bad-header-method", bytes([0x79, 0x9C]) + Z[2:], InflateError, "zlib_error"),
    ("bad-header-text", b"hello world", InflateError, "zlib_error"),
    ("whitespace-only", b" \t\r\n ", InflateError, "zlib_error"),
    ("json-string-not-zlib", b'"abc"', InflateError, "zlib_error"),
    ("gzip-not-zlib", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", InflateError, "zlib_error"),
    ("raw-deflate-not-zlib", zlib.compress(TEXT)[2:-4], InflateError, "zlib_error"),
    ("preset-dictionary", _fdict_stream(), InflateError, "zlib_error"),
    ("reserved-block-type", b"\x78\x9c\x07\x00", InflateError, "zlib_error"),
    ("bad-adler32", Z[:-1] + bytes([Z[-1] ^ 0x01]), InflateError, "zlib_error"),
    ("bad-adler32-all", Z[:-4] + b"\x00\x00\x00\x00", InflateError, "zlib_error"),
    ("trailing-zero", Z + b"\x00", InflateError, "zlib_trailing"),
    ("trailing-space", Z + b" ", InflateError, "zlib_trailing"),
    ("trailing-second-stream", Z + Z, InflateError, "zlib_trailing"),
    ("trailing-json", Z + b"{}", InflateError, "zlib_trailing"),
]


@pytest.mark.parametrize("how", WRAPS)
@pytest.mark.parametrize(
    ("raw", "exc_cls", "reason"), [c[1:] for c in FRAME_CASES], ids=[c[0] for c in FRAME_CASES]
)
def test_frame_errors(
    engine_cls: Any, how: str, raw: bytes, exc_cls: type[FastfeedError], reason: str
) -> None:
    # bytes_inflated counts successful inflates only, so nothing is added here
    check_reject(primed(engine_cls), wrap(raw, how), exc_cls, reason)


@pytest.mark.parametrize("how", WRAPS)
def test_zlib_bomb_too_large(engine_cls: Any, how: str) -> None:
    eng = primed(engine_cls, max_frame=64 * 1024)
    bomb = zlib_bomb()
    assert len(bomb) < 128 * 1024
    check_reject(eng, wrap(bomb, how), FrameTooLarge, "too_large")
    # default cap (8 MiB) too
    eng2 = primed(engine_cls)
    check_reject(eng2, wrap(bomb, how), FrameTooLarge, "too_large")
    # a bomb with trailing garbage or a bad checksum is still too large: inflate stops at the cap
    check_reject(eng, wrap(bomb + b"junk", how), FrameTooLarge, "too_large")
    check_reject(eng, wrap(bomb[:-4] + b"\x00\x00\x00\x00", how), FrameTooLarge, "too_large")
    check_reject(eng, wrap(bomb[: len(bomb) // 2], how), FrameTooLarge, "too_large")


#: A good push larger than the frames ``primed`` feeds (so a cap just below it lets those in).
PADDED = GOOD_DEPTH[:-1] + ',"pad":"%s"}' % ("p" * 300)


@pytest.mark.parametrize("codec", CODECS)
def test_one_byte_over_max_frame(engine_cls: Any, codec: str) -> None:
    raw = PADDED.encode()
    eng = primed(engine_cls, max_frame=len(raw) - 1)
    check_reject(eng, encode(raw, codec), FrameTooLarge, "too_large")


def test_plain_too_large_counts_leading_whitespace(engine_cls: Any) -> None:
    raw = PADDED.encode()
    eng = primed(engine_cls, max_frame=len(raw) + 1)
    assert eng.feed(b" " + raw) is None
    check_reject(eng, b"  " + raw, FrameTooLarge, "too_large")


# --- JSON level ------------------------------------------------------------------------------

DEPTH_TPL = '{"method":"depth.update","params":[false,{"asks":[[%s,"1"]]},"S"]}'
TRADE_TPL = (
    '{"method":"trades.update","params":[false,[{"id":%s,"time":%s,"price":%s,"amount":%s,"type":%s}],"S"]}'
)


def trade_with(**over: str) -> str:
    """A trades.update push with one trade whose raw JSON fields can be overridden."""
    f = {"id": "1", "time": "1.5", "price": '"2"', "amount": '"3"', "type": '"buy"'}
    f.update(over)
    return TRADE_TPL % (f["id"], f["time"], f["price"], f["amount"], f["type"])


BAD_JSON_TEXT: list[tuple[str, str]] = [
    ("truncated", '{"method":"depth.update","params":[true,{'),
    ("truncated-string", '{"method":"depth.upd'),
    ("trailing-garbage", GOOD_DEPTH + " x"),
    ("two-values", GOOD_DEPTH + GOOD_DEPTH),
    ("trailing-comma-object", '{"method":"depth.update","params":[false,{},"S"],}'),
    ("trailing-comma-array", '{"method":"depth.update","params":[false,{},"S",]}'),
    ("unquoted-keys-a1", "{method: 'trades.update', params: [true, [], 'ETH_USDT'], id: null}"),
    ("single-quotes", "{'method':'depth.update'}"),
    ("control-char-in-string", '{"method":"depth.update","params":[false,{},"S\x01"]}'),
    ("raw-tab-in-string", '{"method":"depth.\tupdate"}'),
    ("raw-newline-in-key", '{"meth\nod":"x"}'),
    ("nul-in-string", '{"x":"\x00"}'),
    ("bad-escape-x", '{"method":"depth.update","params":[false,{},"\\x41"]}'),
    ("bad-escape-u", '{"x":"\\u12G4"}'),
    ("bad-escape-u-space", '{"x":"\\u 123"}'),
    ("bad-escape-u-short", '{"x":"\\u12"}'),
    ("bad-escape-quote-single", '{"x":"\\\'"}'),
    ("leading-zero", DEPTH_TPL % "01"),
    ("plus-sign", DEPTH_TPL % "+1"),
    ("leading-dot", DEPTH_TPL % ".5"),
    ("trailing-dot", DEPTH_TPL % "1."),
    ("bare-minus", DEPTH_TPL % "-"),
    ("exp-no-digits", DEPTH_TPL % "1e"),
    ("exp-sign-only", DEPTH_TPL % "1e+"),
    ("hex", DEPTH_TPL % "0x10"),
    ("NaN-literal", DEPTH_TPL % "NaN"),
    ("Infinity-literal", DEPTH_TPL % "Infinity"),
    ("minus-Infinity-literal", DEPTH_TPL % "-Infinity"),
    ("NaN-in-ignored-key", '{"method":"depth.update","x":NaN,"params":[false,{},"S"]}'),
    ("Infinity-in-reply", '{"result":Infinity,"id":1}'),
    ("nan-lowercase-literal", DEPTH_TPL % "nan"),
    ("True-capitalised", '{"method":"depth.update","params":[True,{},"S"]}'),
    ("missing-colon", '{"method" "x"}'),
    ("missing-comma", '{"a":1 "b":2}'),
    ("unclosed-array", '{"a":[1,2}'),
    ("mismatched-close", '{"a":[1,2}]'),
    ("non-json-whitespace-vt", '{"a":1\x0b}'),
    ("non-json-whitespace-nbsp", '{"a":1\u00a0}'),
    ("comment", '{"a":1 /* c */}'),
    ("deep-then-syntax-error", '{"a":[1' + "[" * 100),
    ("bom-in-str", "\ufeff" + GOOD_DEPTH),
    ("lone-object-open", "{"),
    ("only-close", "}}"),
]


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("text", [c[1] for c in BAD_JSON_TEXT], ids=[c[0] for c in BAD_JSON_TEXT])
def test_bad_json(engine_cls: Any, codec: str, text: str) -> None:
    if codec in WRAPS and text.lstrip(" \t\r\n")[:1] not in ("{", "["):
        # a plain bytes payload whose first non-blank byte is not '{' or '[' is a zlib stream
        check_reject(primed(engine_cls), encode(text, codec), InflateError, "zlib_error")
    else:
        check_text(primed(engine_cls), text, codec, ParseError, "bad_json")


BAD_UTF8: list[tuple[str, bytes]] = [
    ("ff-in-ignored-string", b'{"method":"depth.update","x":"\xff","params":[false,{},"S"]}'),
    ("ff-in-symbol", b'{"method":"depth.update","params":[false,{},"S\xff"]}'),
    ("ff-in-reply", b'{"result":"\xfe","id":1}'),
    ("overlong-slash", b'{"x":"\xc0\xaf"}'),
    ("overlong-3byte", b'{"x":"\xe0\x80\xaf"}'),
    ("encoded-surrogate", b'{"x":"\xed\xa0\x80"}'),
    ("truncated-multibyte", b'{"x":"\xe2\x82"}'),
    ("truncated-at-end", b'{"x":"a"}\xe2\x82'),
    ("above-10ffff", b'{"x":"\xf4\x90\x80\x80"}'),
    ("lone-continuation", b'{"x":"\x80"}'),
    ("high-byte-outside-string", b'{"x":1\xc3\xa9}'),
    ("latin1-key", b'{"m\xe9thod":"x"}'),
]


@pytest.mark.parametrize("codec", BYTE_CODECS)
@pytest.mark.parametrize("raw", [c[1] for c in BAD_UTF8], ids=[c[0] for c in BAD_UTF8])
def test_invalid_utf8(engine_cls: Any, codec: str, raw: bytes) -> None:
    check_text(primed(engine_cls), raw, codec, ParseError, "bad_json")


def test_str_with_lone_surrogate_is_bad_json(engine_cls: Any) -> None:
    """A str payload that is not valid Unicode text (a lone surrogate code point)."""
    check_reject(primed(engine_cls), '{"x":"\ud800"}', ParseError, "bad_json")


@pytest.mark.parametrize("text", ["", " ", "\t\r\n"])
def test_empty_str_is_bad_json(engine_cls: Any, text: str) -> None:
    check_reject(primed(engine_cls), text, ParseError, "bad_json")


def test_zlib_of_empty_text_is_bad_json(engine_cls: Any) -> None:
    check_reject(primed(engine_cls), zlib.compress(b""), ParseError, "bad_json")
    check_reject(primed(engine_cls), zlib.compress(b"   "), ParseError, "bad_json", 3)


DEEP_CASES: list[tuple[str, str]] = [
    ("array-100k", "[" * 100_000),
    ("array-100k-closed", "[" * 100_000 + "]" * 100_000),
    ("object-100k", '{"a":' * 100_000),
    ("mixed-100k", '[{"a":' * 50_000),
    ("array-65", "[" * 65 + "]" * 65),
    ("in-ignored-key-65", '{"method":"depth.update","x":%s,"params":[false,{},"S"]}' % ("[" * 64 + "]" * 64)),
    ("in-params-65", '{"method":"depth.update","params":[false,{"asks":%s},"S"]}' % ("[" * 62 + "]" * 62)),
    ("in-reply-65", '{"result":%s}' % ('{"a":' * 64 + "1" + "}" * 64)),
    ("brackets-in-strings-dont-count", '{"s":"' + "[" * 100 + '","x":' + "[" * 64 + "]" * 64 + "}"),
]


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("text", [c[1] for c in DEEP_CASES], ids=[c[0] for c in DEEP_CASES])
def test_too_deep(engine_cls: Any, codec: str, text: str) -> None:
    check_text(primed(engine_cls), text, codec, ParseError, "too_deep")


@pytest.mark.parametrize("codec", BYTE_CODECS)
def test_error_precedence_text_order(engine_cls: Any, codec: str) -> None:
    """JSON errors are reported in text order: whichever of too_deep / bad_json comes first."""
    check_text(primed(engine_cls), b'{"x":' + b"[" * 70 + b'"\xff"', codec, ParseError, "too_deep")
    check_text(primed(engine_cls), b'{"y":"\xff","x":' + b"[" * 70, codec, ParseError, "bad_json")
    check_text(primed(engine_cls), b'{"y":1 2,"x":' + b"[" * 70, codec, ParseError, "bad_json")


@pytest.mark.parametrize("codec", CODECS)
def test_brackets_in_strings_do_not_count(engine_cls: Any, codec: str) -> None:
    eng = primed(engine_cls)
    text = '{"s":"%s","method":"depth.update","params":[false,{"asks":[["7","1"]]},"S"]}' % ("[{" * 100)
    assert eng.feed(encode(text, codec)) is None
    assert eng.book("S").asks[0].tolist() == [7.0, 1.0]


# --- message level ---------------------------------------------------------------------------

LV = '{"asks":[["1","1"]]}'
BAD_MESSAGE: list[tuple[str, str]] = [
    ("top-array", "[1,2,3]"),
    ("top-empty-array", "[]"),
    ("method-number", '{"method":1,"params":[]}'),
    ("method-true", '{"method":true}'),
    ("method-array", '{"method":["depth.update"]}'),
    ("method-object", '{"method":{}}'),
    ("dup-method", '{"method":"depth.update","method":"depth.update","params":[false,%s,"S"]}' % LV),
    ("dup-method-reply", '{"method":null,"method":null}'),
    ("dup-method-escaped", '{"method":"ticker.update","\\u006dethod":"ticker.update"}'),
    ("dup-params", '{"method":"depth.update","params":[false,%s,"S"],"params":[false,%s,"S"]}' % (LV, LV)),
    ("dup-params-ticker", '{"method":"ticker.update","params":[],"params":[]}'),
    ("dup-params-reply", '{"params":1,"id":1,"params":2}'),
    ("depth-missing-params", '{"method":"depth.update","id":null}'),
    ("trades-missing-params", '{"method":"trades.update"}'),
    ("depth-params-null", '{"method":"depth.update","params":null}'),
    ("depth-params-object", '{"method":"depth.update","params":{"0":false}}'),
    ("depth-params-2", '{"method":"depth.update","params":[false,%s]}' % LV),
    ("depth-params-4", '{"method":"depth.update","params":[false,%s,"S",null]}' % LV),
    ("depth-params-empty", '{"method":"depth.update","params":[]}'),
    ("clean-number", '{"method":"depth.update","params":[0,%s,"S"]}' % LV),
    ("clean-string", '{"method":"depth.update","params":["true",%s,"S"]}' % LV),
    ("clean-null", '{"method":"depth.update","params":[null,%s,"S"]}' % LV),
    ("levels-array", '{"method":"depth.update","params":[false,[["1","1"]],"S"]}'),
    ("levels-null", '{"method":"depth.update","params":[false,null,"S"]}'),
    ("asks-object", '{"method":"depth.update","params":[false,{"asks":{"1":"1"}},"S"]}'),
    ("bids-string", '{"method":"depth.update","params":[false,{"bids":"1"},"S"]}'),
    ("asks-null", '{"method":"depth.update","params":[false,{"asks":null},"S"]}'),
    ("level-not-array", '{"method":"depth.update","params":[false,{"asks":["1"]},"S"]}'),
    ("level-object", '{"method":"depth.update","params":[false,{"asks":[{"price":"1","amount":"1"}]},"S"]}'),
    ("level-arity-1", '{"method":"depth.update","params":[false,{"asks":[["1"]]},"S"]}'),
    ("level-arity-0", '{"method":"depth.update","params":[false,{"asks":[[]]},"S"]}'),
    ("level-arity-3", '{"method":"depth.update","params":[false,{"bids":[["1","1","1"]]},"S"]}'),
    ("price-true", '{"method":"depth.update","params":[false,{"asks":[[true,"1"]]},"S"]}'),
    ("price-null", '{"method":"depth.update","params":[false,{"asks":[[null,"1"]]},"S"]}'),
    ("price-array", '{"method":"depth.update","params":[false,{"asks":[[["1"],"1"]]},"S"]}'),
    ("amount-object", '{"method":"depth.update","params":[false,{"bids":[["1",{}]]},"S"]}'),
    ("amount-false", '{"method":"depth.update","params":[false,{"bids":[["1",false]]},"S"]}'),
    ("dup-asks", '{"method":"depth.update","params":[false,{"asks":[],"asks":[]},"S"]}'),
    (
        "dup-bids",
        '{"method":"depth.update","params":[false,{"bids":[["1","1"]],"asks":[],"bids":[["1","1"]]},"S"]}',
    ),
    ("dup-bids-escaped", '{"method":"depth.update","params":[false,{"bids":[],"\\u0062ids":[]},"S"]}'),
    ("symbol-number", '{"method":"depth.update","params":[false,%s,123]}' % LV),
    ("symbol-null", '{"method":"depth.update","params":[false,%s,null]}' % LV),
    ("symbol-empty", '{"method":"depth.update","params":[false,%s,""]}' % LV),
    ("symbol-33", '{"method":"depth.update","params":[false,%s,"%s"]}' % (LV, "A" * 33)),
    ("symbol-space", '{"method":"depth.update","params":[false,%s,"BTC USDT"]}' % LV),
    ("symbol-non-ascii", '{"method":"depth.update","params":[false,%s,"BTC_USD\u00e9"]}' % LV),
    ("symbol-escaped-control", '{"method":"depth.update","params":[false,%s,"BTC\\u0001"]}' % LV),
    ("symbol-del", '{"method":"depth.update","params":[false,%s,"BTC\\u007f"]}' % LV),
    ("symbol-escaped-nonascii", '{"method":"depth.update","params":[false,%s,"\\u00c9TH"]}' % LV),
    ("trades-symbol-33", '{"method":"trades.update","params":[false,[],"%s"]}' % ("b" * 33)),
    ("trades-not-array", '{"method":"trades.update","params":[false,{},"S"]}'),
    ("trades-params-2", '{"method":"trades.update","params":[false,[]]}'),
    ("trades-clean-string", '{"method":"trades.update","params":["false",[],"S"]}'),
    ("trade-not-object", '{"method":"trades.update","params":[false,[[1,1.5,"2","3","buy"]],"S"]}'),
    (
        "trade-missing-id",
        '{"method":"trades.update","params":[false,[{"time":1,"price":"2","amount":"3","type":"buy"}],"S"]}',
    ),
    (
        "trade-missing-time",
        '{"method":"trades.update","params":[false,[{"id":1,"price":"2","amount":"3","type":"buy"}],"S"]}',
    ),
    (
        "trade-missing-price",
        '{"method":"trades.update","params":[false,[{"id":1,"time":1,"amount":"3","type":"buy"}],"S"]}',
    ),
    (
        "trade-missing-amount",
        '{"method":"trades.update","params":[false,[{"id":1,"time":1,"price":"2","type":"buy"}],"S"]}',
    ),
    (
        "trade-missing-type",
        '{"method":"trades.update","params":[false,[{"id":1,"time":1,"price":"2","amount":"3"}],"S"]}',
    ),
    (
        "trade-dup-id",
        '{"method":"trades.update","params":[false,[{"id":1,"id":2,"time":1,"price":"2","amount":"3","type":"buy"}],"S"]}',
    ),
    (
        "trade-dup-type",
        '{"method":"trades.update","params":[false,[{"id":1,"time":1,"price":"2","amount":"3","type":"buy","type":"buy"}],"S"]}',
    ),
    ("trade-type-upper", trade_with(type='"BUY"')),
    ("trade-type-bid", trade_with(type='"bid"')),
    ("trade-type-number", trade_with(type="1")),
    ("trade-type-null", trade_with(type="null")),
    ("trade-id-string", trade_with(id='"1"')),
    ("trade-id-null", trade_with(id="null")),
    ("trade-id-true", trade_with(id="true")),
    ("trade-id-float", trade_with(id="1.5")),
    ("trade-id-float-integral", trade_with(id="1.0")),
    ("trade-id-exponent", trade_with(id="1e3")),
    ("trade-id-neg-exponent", trade_with(id="-1e3")),
    ("trade-time-true", trade_with(time="true")),
    ("trade-time-null", trade_with(time="null")),
    ("trade-price-null", trade_with(price="null")),
    ("trade-amount-array", trade_with(amount="[]")),
    (
        "second-trade-bad",
        '{"method":"trades.update","params":[false,[{"id":2,"time":1,"price":"2","amount":"3","type":"buy"},{"id":1}],"S"]}',
    ),
]


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("text", [c[1] for c in BAD_MESSAGE], ids=[c[0] for c in BAD_MESSAGE])
def test_bad_message(engine_cls: Any, codec: str, text: str) -> None:
    check_text(primed(engine_cls), text, codec, ParseError, "bad_message")


@pytest.mark.parametrize("codec", ["str", "zlib-bytes", "zlib-memoryview"])
@pytest.mark.parametrize("text", ['"depth.update"', "123", "null", "true", "1.5"])
def test_top_level_scalar(engine_cls: Any, codec: str, text: str) -> None:
    """Scalars can only arrive as str or inflated text (a bytes payload would be zlib)."""
    check_text(primed(engine_cls), text, codec, ParseError, "bad_message")


def _bad_price_cases() -> list[tuple[str, str]]:
    strings = [
        "",
        "abc",
        "1.2.3",
        "1e",
        "1e+",
        "e5",
        ".",
        "+",
        "-",
        "0x10",
        " 1",
        "1 ",
        "1_000",
        "1,5",
        "nan",
        "NaN",
        "-nan",
        "inf",
        "Infinity",
        "-inf",
        "1e400",
        "-1e400",
        "1" * 400,
        "0",
        "0.0",
        "-0",
        "-1",
        "-0.0001",
        "1e-400",
        "1" + "0" * 1023 + "e-1020",
        "\u0661",
        "1d5",
        "1.5f",
        "\u00bd",
    ]
    cases = [("str-" + s[:12], json.dumps(s)) for s in strings]
    cases += [
        ("bare-1e400", "1e400"),
        ("bare-400-digits", "1" * 400),
        ("bare-zero", "0"),
        ("bare-neg-zero", "-0"),
        ("bare-negative", "-1.5"),
        ("bare-underflow", "1e-400"),
        ("bare-1025-chars", "1." + "0" * 1023),
        ("escaped-garbage", '"\\u0031x"'),
    ]
    return cases


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("price", [c[1] for c in _bad_price_cases()], ids=[c[0] for c in _bad_price_cases()])
def test_bad_price(engine_cls: Any, codec: str, price: str) -> None:
    check_text(primed(engine_cls), DEPTH_TPL % price, codec, ParseError, "bad_number")


BAD_NUMBER: list[tuple[str, str]] = [
    ("amount-negative", '{"method":"depth.update","params":[false,{"asks":[["1","-1"]]},"S"]}'),
    ("amount-tiny-negative", '{"method":"depth.update","params":[false,{"bids":[["1","-1e-300"]]},"S"]}'),
    ("amount-bare-negative", '{"method":"depth.update","params":[false,{"bids":[["1",-0.5]]},"S"]}'),
    ("amount-inf", '{"method":"depth.update","params":[false,{"bids":[["1","inf"]]},"S"]}'),
    ("amount-overflow", '{"method":"depth.update","params":[false,{"bids":[["1","1e999"]]},"S"]}'),
    ("amount-garbage", '{"method":"depth.update","params":[false,{"bids":[["1","1O"]]},"S"]}'),
    (
        "amount-1025",
        '{"method":"depth.update","params":[false,{"bids":[["1","%s"]]},"S"]}' % ("0." + "1" * 1023),
    ),
    ("second-level-bad", '{"method":"depth.update","params":[true,{"asks":[["1","1"],["2","x"]]},"S"]}'),
    (
        "bids-bad-after-good-asks",
        '{"method":"depth.update","params":[true,{"asks":[["1","1"]],"bids":[["0","1"]]},"S"]}',
    ),
    ("trade-id-negative", trade_with(id="-1")),
    ("trade-id-2^63", trade_with(id=str(2**63))),
    ("trade-id-2^64", trade_with(id=str(2**64 + 5))),
    ("trade-id-huge", trade_with(id="9" * 5000)),
    ("trade-time-garbage", trade_with(time='"abc"')),
    ("trade-time-inf", trade_with(time="1e999")),
    ("trade-time-nan-string", trade_with(time='"nan"')),
    ("trade-time-empty", trade_with(time='""')),
    ("trade-price-zero", trade_with(price='"0"')),
    ("trade-price-negative", trade_with(price="-2")),
    ("trade-price-inf", trade_with(price='"Infinity"')),
    ("trade-amount-negative", trade_with(amount='"-3"')),
    ("trade-amount-1025", trade_with(amount='"%s"' % ("1" * 1025))),
]


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("text", [c[1] for c in BAD_NUMBER], ids=[c[0] for c in BAD_NUMBER])
def test_bad_number(engine_cls: Any, codec: str, text: str) -> None:
    check_text(primed(engine_cls), text, codec, ParseError, "bad_number")


def test_rejected_message_changes_nothing_even_new_symbol(engine_cls: Any) -> None:
    """A rejected push for an unseen symbol does not create it; good levels before the bad one
    in the same message are not applied."""
    eng = primed(engine_cls)
    text = (
        '{"method":"depth.update","params":[true,{"asks":[["1","1"],["2","1"]],"bids":[["3","-1"]]},"NEW"]}'
    )
    check_text(eng, text, "zlib-bytes", ParseError, "bad_number")
    assert eng.symbols == ["S", "T"]
    text = '{"method":"trades.update","params":[false,[{"id":1,"time":1,"price":"2","amount":"3","type":"buy"},{"id":0,"time":1,"price":"2","amount":"3","type":"hold"}],"NEW2"]}'
    check_text(eng, text, "str", ParseError, "bad_message")
    assert eng.symbols == ["S", "T"]
    text = '{"method":"trades.update","params":[false,[{"id":99,"time":1,"price":"2","amount":"3","type":"buy"},{"id":98,"time":1,"price":"2","amount":"3","type":"hold"}],"S"]}'
    check_text(eng, text, "zlib-bytes", ParseError, "bad_message")
    # the rejected trades did not move the high-water mark: id 99 is still new for S
    eng.feed(trades_text(False, "S", [trade(13)]))
    assert eng.trades.latest(1)["id"].tolist() == [13]
    assert eng.stats["duplicate_trades"] == 0


def test_rejects_accumulate(engine_cls: Any) -> None:
    eng = primed(engine_cls)
    for _ in range(3):
        with pytest.raises(InflateError):
            eng.feed(b"")
        with pytest.raises(ParseError):
            eng.feed("[1]")
    st = eng.stats
    assert st["rejects"]["empty"] == 3
    assert st["rejects"]["bad_message"] == 3
    assert sum(st["rejects"].values()) == 6
    assert st["frames"] == 3 + 6


# --- named hostile inputs (the hardening list) ------------------------------------------------
# Each: a typed error counted in stats["rejects"] with books and ring untouched (check_reject),
# or acceptance with exactly the reference's result; and the next good frame applied.

ONE_GIB = 1 << 30


def zlib_zeros_stream(n_mib: int) -> bytes:
    """A valid zlib stream (RFC 1950) of ``n_mib`` MiB of zeros, built in milliseconds.

    deflate of 1 MiB of zeros followed by a full flush ends byte-aligned with an empty
    dictionary, so it is the same block whatever came before: the stream is a zlib header,
    that block ``n_mib`` times, the final empty block and the Adler-32 of ``n`` zeros
    (a = 1, b = n mod 65521). About 1 KiB per MiB: 1 GiB is ~1 MiB of input.
    """
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    tail = c.flush(zlib.Z_FINISH)
    n = n_mib << 20
    return b"\x78\xda" + block * n_mib + tail + struct.pack(">I", ((n % 65521) << 16) | 1)


@lru_cache(maxsize=1)
def zlib_bomb_1gib() -> bytes:
    """1 GiB of zeros as one zlib frame (see ``zlib_zeros_stream``)."""
    return zlib_zeros_stream(1024)


def test_zlib_bomb_1gib_is_a_real_1gib_stream() -> None:
    """The bomb really inflates (with Python's zlib) to exactly 1 GiB of zeros and ends cleanly."""
    assert zlib.decompress(zlib_zeros_stream(3)) == bytes(3 << 20)
    bomb = zlib_bomb_1gib()
    assert len(bomb) < 2 << 20
    d = zlib.decompressobj()
    zeros = bytes(4 << 20)
    total = 0
    data = bomb
    while True:
        out = d.decompress(data, len(zeros))
        assert out == zeros[: len(out)]
        total += len(out)
        data = d.unconsumed_tail
        if not out:
            break
    assert (total, d.eof, d.unused_data) == (ONE_GIB, True, b"")
    # the damaged variant: valid up to the bad block, which zlib refuses where it is met
    bad = zlib_zeros_stream_bad_block_at(3, 2)
    d = zlib.decompressobj()
    assert d.decompress(bad, (2 << 20) - 1) == bytes((2 << 20) - 1)
    with pytest.raises(zlib.error, match="invalid block type"):
        zlib.decompress(bad)


def zlib_zeros_stream_bad_block_at(n_mib: int, bad_at_mib: int) -> bytes:
    """``zlib_zeros_stream(n_mib)`` with an invalid deflate block (reserved type 3) after
    ``bad_at_mib`` MiB of output: an inflater that reads that far fails with a zlib error."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    tail = c.flush(zlib.Z_FINISH)
    n = n_mib << 20
    # blocks end byte-aligned after a full flush: 0x06 is BFINAL=0, BTYPE=11 (reserved)
    return (
        b"\x78\xda"
        + block * bad_at_mib
        + b"\x06"
        + block * (n_mib - bad_at_mib)
        + tail
        + struct.pack(">I", ((n % 65521) << 16) | 1)
    )


@pytest.mark.parametrize("how", WRAPS)
def test_zlib_bomb_1gib_too_large(engine_cls: Any, how: str) -> None:
    """1 GiB of zeros in ~1 MiB: FrameTooLarge at the cap (default 8 MiB, and 64 KiB),
    without allocating anything near 1 GiB (the peak is measured in test_zlib_bomb_1gib_memory).

    Inflate stops at the cap rather than inflating (and discarding) the rest: a bomb with an
    invalid block after 16 MiB of output is still too_large, while the same invalid block
    before the cap is a zlib error. This proves the work is bounded by the cap, on any
    machine, where a wall-clock limit would only suggest it."""
    bomb = zlib_bomb_1gib()
    maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    check_reject(primed(engine_cls), wrap(bomb, how), FrameTooLarge, "too_large")
    check_reject(primed(engine_cls, max_frame=64 * 1024), wrap(bomb, how), FrameTooLarge, "too_large")
    grew_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - maxrss0) / 1024
    assert grew_mib < 256, f"peak RSS grew by {grew_mib:.0f} MiB"
    bad_late = zlib_zeros_stream_bad_block_at(1024, 16)
    check_reject(primed(engine_cls), wrap(bad_late, how), FrameTooLarge, "too_large")
    check_reject(primed(engine_cls, max_frame=64 * 1024), wrap(bad_late, how), FrameTooLarge, "too_large")
    bad_early = zlib_zeros_stream_bad_block_at(1024, 1)  # the control: read before the cap
    check_reject(primed(engine_cls), wrap(bad_early, how), InflateError, "zlib_error")


_BOMB_PROBE = r"""
import json, resource, sys
sys.path.insert(0, sys.argv[2])
from test_bad_input import zlib_bomb_1gib
import fastfeed
from fastfeed.errors import FrameTooLarge
from fastfeed.reference import ReferenceEngine
bomb = zlib_bomb_1gib()
eng = fastfeed.Engine() if sys.argv[1] == "compiled" else ReferenceEngine()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    eng.feed(bomb)
    result = "accepted"
except FrameTooLarge as exc:
    result = exc.reason
print(json.dumps({"result": result, "base_kib": base,
                  "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "fastfeed": fastfeed.__file__}))
"""


@pytest.mark.parametrize("which", ["compiled", "reference"])
def test_zlib_bomb_1gib_memory(which: str) -> None:
    """Peak RSS of a fresh interpreter feeding the 1 GiB bomb to an engine (default 8 MiB cap)
    grows by far less than 1 GiB: inflate stops at ``max_frame + 1`` bytes."""
    import json

    env = dict(os.environ)
    pkg_root = str(Path(fastfeed.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([pkg_root, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out = subprocess.run(
        [sys.executable, "-c", _BOMB_PROBE, which, str(Path(__file__).resolve().parent)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["fastfeed"] == fastfeed.__file__  # the same build as this test process
    assert res["result"] == "too_large"
    grew_mib = (res["peak_kib"] - res["base_kib"]) / 1024
    assert grew_mib < 64, f"{which}: peak RSS grew by {grew_mib:.0f} MiB feeding the bomb"


def run_both(payloads: list[Any], **kwargs: Any) -> tuple[Any, Any, list[tuple[Any, ...]]]:
    """Feed the compiled and the reference engine the same payloads; same outcome and state
    after each. Returns both engines and the outcomes."""
    comp = compiled_engine_cls()(**kwargs)
    ref = ReferenceEngine(**kwargs)
    outcomes = []
    for i, payload in enumerate(payloads):
        res = []
        for eng in (comp, ref):
            try:
                res.append(("ok", eng.feed(payload, 100 + i)))
            except FastfeedError as exc:
                res.append(("error", type(exc).__name__, exc.reason))
        assert res[0] == res[1], f"payload {i}: compiled {res[0]!r:.200} != reference {res[1]!r:.200}"
        assert_state_equal(comp, ref, f"after payload {i}")
        outcomes.append(res[0])
    return comp, ref, outcomes


def check_next_good_frame(eng: Any) -> None:
    version = eng.book("S", create=True).version
    assert eng.feed(zlib.compress(GOOD_DEPTH.encode()), 1000) is None
    assert eng.book("S").version == version + 1


@pytest.mark.parametrize("codec", CODECS)
def test_named_deep_nesting_100k_in_hot_params(engine_cls: Any, codec: str) -> None:
    """100k levels of nesting where the hot parsers read (levels, a trade, a level's price):
    too_deep, no stack overflow, nothing applied."""
    for text in (
        '{"method":"depth.update","params":[false,{"asks":%s' % ("[" * 100_000),
        '{"method":"depth.update","params":[false,{"asks":[[%s' % ("[" * 100_000 + "]" * 100_000),
        '{"method":"trades.update","params":[false,[{"id":1,"x":%s' % ('{"a":' * 100_000),
        '{"params":%s,"method":"depth.update"}' % ("[" * 100_000 + "]" * 100_000),
    ):
        check_text(primed(engine_cls), text, codec, ParseError, "too_deep")


def _digits400(lead: str = "1") -> str:
    return lead + "1234567890" * 39 + "123456789"  # 400 digits


def test_named_400_digit_numbers() -> None:
    """400-digit numbers: accepted where finite and in range (value = Python's float of the
    text, exact like the reference), bad_number where not, exact ints in replies."""
    d400 = _digits400()
    assert len(d400) == 400
    accepted = [
        ("depth price string, finite", DEPTH_TPL % ('"%se-390"' % d400)),
        ("depth price bare, finite", DEPTH_TPL % ("%se-390" % d400)),
        (
            "depth amount 0.<399 digits>",
            '{"method":"depth.update","params":[false,{"bids":[["2","0.%s"]]},"S"]}' % d400[:399],
        ),
        ("trade time 300 digits", trade_with(time=d400[:300])),
        ("trade amount bare 400 digits, tiny", trade_with(amount="%se-420" % d400)),
        ("reply int", '{"result":%s,"id":-%s}' % (d400, d400)),
    ]
    rejected = [
        ("depth price string 400 digits (overflow)", DEPTH_TPL % ('"%s"' % d400), "bad_number"),
        ("depth price bare 400 digits (overflow)", DEPTH_TPL % d400, "bad_number"),
        (
            "depth amount 400-digit negative",
            '{"method":"depth.update","params":[false,{"bids":[["2","-%s"]]},"S"]}' % d400,
            "bad_number",
        ),
        (
            "depth price 400 zeros then 1 (underflow to 0)",
            DEPTH_TPL % ('"0.%s1"' % ("0" * 400)),
            "bad_number",
        ),
        ("trade id 400 digits", trade_with(id=d400), "bad_number"),
        ("trade time 400 digits (overflow)", trade_with(time=d400), "bad_number"),
    ]
    for name, text in accepted:
        comp, ref, outcomes = run_both(
            primed_payloads() + [text.encode(), zlib.compress(text.encode())], depth=5, trade_capacity=8
        )
        assert outcomes[-1][0] == "ok" and outcomes[-2][0] == "ok", (name, outcomes[-2:])
        check_next_good_frame(comp)
        check_next_good_frame(ref)
    for _name, text, reason in rejected:
        for eng_cls in (compiled_engine_cls(), ReferenceEngine):
            check_text(primed(eng_cls), text, "zlib-bytes", ParseError, reason)
            check_text(primed(eng_cls), text, "str", ParseError, reason)


def primed_payloads() -> list[bytes]:
    """The frames ``primed`` feeds, as payloads (for ``run_both``)."""
    return [
        depth_text(True, "S", asks=[["101", "1"], ["102", "2"]], bids=[["99", "1"], ["98", "3"]]).encode(),
        depth_text(True, "T", asks=[["5", "1"]], bids=[["4", "1"]]).encode(),
        zlib.compress(trades_text(True, "S", [trade(12), trade(11), trade(10)]).encode()),
    ]


@pytest.mark.parametrize("depth", [1, 5, 200])
def test_named_20k_levels_in_one_push(depth: int) -> None:
    """20,000 levels per side in one push: accepted, each side trimmed to ``depth`` rows at
    every step, crossing resolved, identical to the reference (also for a clean snapshot, an
    increment with deletions, and levels in random order)."""
    rng = random.Random(20_000)
    asks = [
        [f"{100 + rng.randrange(1_000_000) / 1000:.3f}", f"{rng.randrange(0, 50) / 10:.1f}"]
        for _ in range(20_000)
    ]
    bids = [
        [f"{rng.randrange(1, 101_000_000) / 1000:.3f}", f"{rng.randrange(0, 50) / 10:.1f}"]
        for _ in range(20_000)
    ]
    low_bids = [[f"{rng.randrange(1, 99_999) / 1000:.3f}", "1.5"] for _ in range(20_000)]  # below every ask
    sorted_asks = sorted(asks, key=lambda lv: float(lv[0]))
    frames = [
        depth_text(True, "BIG", asks=asks, bids=bids),  # bids reach into the asks: crossing
        depth_text(False, "BIG", asks=sorted_asks[::-1], bids=[[p, "0"] for p, _ in bids[:10_000]]),
        depth_text(True, "BIG", asks=sorted_asks, bids=low_bids),
    ]
    payloads = [
        zlib.compress(frames[0].encode()),
        zlib.compress(frames[1].encode()),
        frames[0],
        zlib.compress(frames[2].encode()),
    ]
    assert all(len(p) < 8 << 20 for p in payloads)
    comp, ref, outcomes = run_both(payloads, depth=depth, trade_capacity=8)
    assert all(o == ("ok", None) for o in outcomes)
    book = comp.book("BIG")
    assert book.version == len(payloads)
    assert len(book.asks) == depth and len(book.bids) == depth
    assert set(book.asks[:, 0].tolist()) <= {float(p) for p, _ in asks}
    assert book.best_bid < book.best_ask
    assert comp.stats["crossed_levels_removed"] > 0
    check_next_good_frame(comp)
    check_next_good_frame(ref)


NON_FINITE_AND_NEGATIVE: list[tuple[str, str, type[FastfeedError], str]] = [
    # (name, text, error class, reason)
    ("price-NaN-literal", DEPTH_TPL % "NaN", ParseError, "bad_json"),
    ("price-nan-string", DEPTH_TPL % '"nan"', ParseError, "bad_number"),
    ("price-NaN-string", DEPTH_TPL % '"NaN"', ParseError, "bad_number"),
    ("price-inf-string", DEPTH_TPL % '"inf"', ParseError, "bad_number"),
    ("price-plus-Infinity-string", DEPTH_TPL % '"+Infinity"', ParseError, "bad_number"),
    ("price-overflow-bare", DEPTH_TPL % "1e309", ParseError, "bad_number"),
    ("price-negative-overflow", DEPTH_TPL % '"-1e309"', ParseError, "bad_number"),
    ("price-negative", DEPTH_TPL % '"-101"', ParseError, "bad_number"),
    ("price-negative-zero", DEPTH_TPL % "-0.0", ParseError, "bad_number"),
    (
        "amount-NaN-literal",
        '{"method":"depth.update","params":[false,{"bids":[["1",NaN]]},"S"]}',
        ParseError,
        "bad_json",
    ),
    (
        "amount-Infinity-literal",
        '{"method":"depth.update","params":[false,{"bids":[["1",-Infinity]]},"S"]}',
        ParseError,
        "bad_json",
    ),
    (
        "amount-nan-string",
        '{"method":"depth.update","params":[false,{"bids":[["1","nan"]]},"S"]}',
        ParseError,
        "bad_number",
    ),
    (
        "amount-minus-inf-string",
        '{"method":"depth.update","params":[false,{"bids":[["1","-inf"]]},"S"]}',
        ParseError,
        "bad_number",
    ),
    (
        "amount-negative-bare",
        '{"method":"depth.update","params":[false,{"asks":[["1",-1e-9]]},"S"]}',
        ParseError,
        "bad_number",
    ),
    ("trade-time-NaN-literal", trade_with(time="NaN"), ParseError, "bad_json"),
    ("trade-time-nan-string", trade_with(time='"nan"'), ParseError, "bad_number"),
    ("trade-time-minus-inf", trade_with(time='"-inf"'), ParseError, "bad_number"),
    ("trade-price-nan", trade_with(price='"NaN"'), ParseError, "bad_number"),
    ("trade-price-negative", trade_with(price='"-2"'), ParseError, "bad_number"),
    ("trade-price-negative-zero", trade_with(price='"-0"'), ParseError, "bad_number"),
    ("trade-amount-inf", trade_with(amount="1e999"), ParseError, "bad_number"),
    ("trade-amount-negative", trade_with(amount="-3"), ParseError, "bad_number"),
    ("trade-id-negative", trade_with(id="-5"), ParseError, "bad_number"),
]


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize(
    ("text", "exc_cls", "reason"),
    [c[1:] for c in NON_FINITE_AND_NEGATIVE],
    ids=[c[0] for c in NON_FINITE_AND_NEGATIVE],
)
def test_named_nan_inf_negative(
    engine_cls: Any, codec: str, text: str, exc_cls: type[FastfeedError], reason: str
) -> None:
    check_text(primed(engine_cls), text, codec, exc_cls, reason)


def test_named_negative_zero_amount_deletes_and_negative_time_is_kept() -> None:
    """The accepted edge values: amount -0 deletes a level, a negative (finite) trade time is
    kept as sent; identical on both engines."""
    text_del = '{"method":"depth.update","params":[false,{"asks":[["101","-0.0"]],"bids":[["99",-0]]},"S"]}'
    comp, ref, outcomes = run_both(
        primed_payloads() + [text_del.encode(), trade_with(id="50", time="-1.5").encode()],
        depth=5,
        trade_capacity=8,
    )
    assert outcomes[-2:] == [("ok", None), ("ok", None)]
    assert comp.book("S").asks.tolist() == [[102.0, 2.0]]
    assert comp.book("S").bids.tolist() == [[98.0, 3.0]]
    assert comp.trades.latest(1)["time"].tolist() == [-1.5]


UNKNOWN_METHODS = [
    '{"method":"depth.updatex","params":[true,{"asks":[["1","1"]]},"S"]}',
    '{"method":"DEPTH.UPDATE","params":[true,{"asks":[["1","1"]]},"S"]}',
    '{"method":"depth.update ","params":[true,{"asks":[["1","1"]]},"S"]}',
    '{"method":"trades.Update","params":[true,[{"id":99,"time":1,"price":"1","amount":"1","type":"buy"}],"S"]}',
    '{"method":"","params":[true,{},"S"]}',
    '{"method":"depth.subscribe","params":["S"],"id":1}',
    '{"method":"server.ping","params":[],"id":2}',
    '{"method":"\\u00e9t\\u00e9","params":null}',
    '{"method":"%s","params":[]}' % ("x" * 5000),
]


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("text", UNKNOWN_METHODS, ids=[f"unknown{i}" for i in range(len(UNKNOWN_METHODS))])
def test_named_unknown_methods(engine_cls: Any, codec: str, text: str) -> None:
    """An unknown method (however close to a hot one) is returned decoded and counted under
    ``messages["unknown"]``; no book, symbol, trade or new stats key appears."""
    eng = primed(engine_cls)
    before = snapshot(eng)
    got = eng.feed(encode(text, codec), 7)
    assert got == json.loads(text)
    after = snapshot(eng)
    assert after["stats"]["messages"]["unknown"] == before["stats"]["messages"]["unknown"] + 1
    assert set(after["stats"]["messages"]) == set(before["stats"]["messages"])
    assert after["symbols"] == before["symbols"] and after["ring_count"] == before["ring_count"]
    for name in before["books"]:
        assert before["books"][name][2] == after["books"][name][2]  # versions
    check_next_good_frame(eng)


def test_named_escaped_method_is_the_hot_method(engine_cls: Any) -> None:
    """Method names compare decoded: ``depth\\u002eupdate`` IS depth.update (applied)."""
    eng = primed(engine_cls)
    assert eng.feed('{"method":"depth\\u002eupdate","params":[false,{"asks":[["100.5","1"]]},"s"]}') is None
    assert eng.book("S").asks[0].tolist() == [100.5, 1.0]


def test_named_symbols_never_seen_before(engine_cls: Any) -> None:
    """The engine keeps no subscription list: a push for a symbol nobody subscribed to creates
    that symbol (upper-cased) on first sight -- a book for a depth push; a trades push registers
    the symbol (its book exists and is empty). (Input cannot grow the table past
    ``max_symbols``: see test_limits.py.) Nothing else changes; the next good frame applies."""
    eng = primed(engine_cls)
    before = snapshot(eng)
    assert (
        eng.feed(zlib.compress(depth_text(False, "never_seen_usdt", asks=[["3", "1"]]).encode()), 5) is None
    )
    assert eng.symbols == before["symbols"] + ["NEVER_SEEN_USDT"]
    assert eng.book("NEVER_SEEN_USDT").asks.tolist() == [[3.0, 1.0]]
    assert eng.book("NEVER_SEEN_USDT").version == 1
    assert eng.feed(trades_text(False, "Trades_Only", [trade(1)])) is None
    assert eng.symbols[-1] == "TRADES_ONLY"
    assert eng.trades.latest(1)["symbol"].tolist() == [len(eng.symbols) - 1]
    assert eng.book("TRADES_ONLY").version == 0 and len(eng.book("TRADES_ONLY").asks) == 0
    for name in before["symbols"]:
        assert eng.book(name).version == before["books"][name][2]
    check_next_good_frame(eng)


def test_named_many_new_symbols_equal_reference() -> None:
    """2,000 never-seen symbols (the symbol table grows and rehashes) on both engines."""
    rng = random.Random(2000)
    payloads: list[Any] = []
    for i in range(2000):
        sym = "".join(rng.choice("ABCXYZ_0123456789abc") for _ in range(rng.randint(1, 32)))
        if rng.random() < 0.5:
            payloads.append(
                zlib.compress(depth_text(rng.random() < 0.5, sym, asks=[[str(i + 1), "1"]]).encode())
            )
        else:
            payloads.append(trades_text(False, sym, [trade(i)]))
    comp, _ref, outcomes = run_both(payloads[:300], depth=3, trade_capacity=64)
    comp2, ref2 = (
        compiled_engine_cls()(depth=3, trade_capacity=64),
        ReferenceEngine(depth=3, trade_capacity=64),
    )
    for p in payloads:
        comp2.feed(p)
        ref2.feed(p)
    assert_state_equal(comp2, ref2, "after 2000 new symbols")
    assert len(comp2.symbols) == len(set(comp2.symbols)) > 1000


def test_named_duplicate_ids_in_trades() -> None:
    """Duplicate trades: a trade already stored (same id and content, among the symbol's newest
    ``trade_dedup_window``) is dropped and counted in ``duplicate_trades`` and, by reason, in
    ``dropped_trades``; the same id with other content, or an id below the highest seen that
    was never stored, is kept; ids are per symbol."""
    pushes = [
        trades_text(False, "S", [trade(20), trade(20), trade(19)]),  # dup inside one push
        trades_text(False, "S", [trade(20), trade(19)]),  # replay: all dropped
        trades_text(True, "S", [trade(21), trade(20), trade(20)]),  # clean replay: 21 new
        trades_text(False, "T", [trade(20)]),  # other symbol: new
        trades_text(False, "S", [trade(5), trade(22), trade(5)]),  # shuffled, below: new
        trades_text(False, "S", [trade(22, price="7")]),  # reused id: new
    ]
    comp, ref, outcomes = run_both(
        primed_payloads() + [p.encode() for p in pushes], depth=5, trade_capacity=64
    )
    assert all(o == ("ok", None) for o in outcomes)
    latest = comp.trades.latest(comp.trades.count - 3)
    assert latest["id"].tolist() == [19, 20, 21, 20, 5, 22, 22]
    assert comp.stats["duplicate_trades"] == 1 + 2 + 2 + 1
    assert comp.stats["dropped_trades"] == {"replayed": 2, "duplicate": 4}
    assert comp.stats["out_of_order_trades"] == 2  # 5 after 21, 22 after 22
    check_next_good_frame(comp)
