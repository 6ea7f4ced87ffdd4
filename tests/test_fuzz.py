"""Fuzzing of inflate + parse + apply: hypothesis-driven mutation of real frames.

Seeds are real frames (the live samples A1-A4 of docs/protocol.md, the API doc's pushes,
frames in the live server's shape, replies and tickers). Mutations: bit flips, byte
insert/delete, truncation, repetition of a chunk, splicing two frames (as text and as
compressed bytes); number mutations (digits, signs, exponents, huge and long numbers, the
edges of every number rule); structural mutations of the JSON (dropped/duplicated/swapped
brackets, commas, colons, quotes); string mutations (keys, methods, symbols, escapes,
invalid UTF-8); whitespace; and mutations of the compressed frame (zlib header, deflate
data, Adler-32, trailing bytes). Payloads are fed as bytes, bytearray, memoryview (plain
JSON or zlib) and str.

This module also holds what the atheris harness (tests/test_fuzz_atheris.py) shares: the
seed corpus, the mutators, and the per-input oracle ``Pair.feed``, which feeds one payload to
the compiled ``fastfeed.Engine`` and to ``fastfeed.reference.ReferenceEngine`` and checks
every property.

Properties checked after EVERY payload (``Pair.feed``):

* the compiled engine does not crash: it returns, or raises a ``fastfeed.FastfeedError``
  whose ``reason`` is one of ``REJECT_REASONS`` (any other exception fails the test);
* it does not hang: one ``feed`` takes less than ``HANG_SECONDS`` (a hang guard, far above
  any real feed; a real infinite loop in C is caught by the faulthandler watchdog that
  ``run_budget`` arms);
* a rejection is counted (``stats["rejects"][reason] += 1``, ``frames += 1``,
  ``bytes_in += len``) and leaves books, versions, the trade ring and every other counter
  byte-for-byte unchanged;
* book invariants: each side sorted strictly best-first (bids descending, asks ascending),
  never crossed (best bid < best ask when both exist), at most ``depth`` rows, prices finite
  and > 0, amounts finite and > 0 (a zero amount deletes), ``best_bid``/``best_ask`` agree
  with the rows; trade ring records finite with price > 0, amount >= 0, side +-1, a known
  symbol index and consecutive sequence numbers;
* the compiled outcome (returned value, or error class and reason) and the whole resulting
  state (books, ring, symbols, stats) equal the reference engine's.

Budget: ``FASTFEED_FUZZ_CHUNKS`` (default 6) runs of 40 examples per test, so the verdict
is the same on a fast and on a busy machine; ``FASTFEED_FUZZ_SECONDS`` (for long runs by
hand) makes it a time budget instead, 70% streams, 30% numbers. ``FASTFEED_FUZZ_SEED`` picks
other seeds (derandomized by default; the ``random`` hypothesis
profile draws a random one, printed); a failure prints its chunk seed and
``FASTFEED_FUZZ_REPLAY=<seed>`` replays just that chunk. docs/fuzzing.md has the long run.
"""

from __future__ import annotations

import faulthandler
import math
import os
import random
import re
import struct
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hyp_seed
from hypothesis import strategies as st

from fastfeed._inflate import BACKENDS
from fastfeed.errors import REJECT_REASONS, FastfeedError
from fastfeed.reference import ReferenceEngine

import helpers
from helpers import assert_snapshot_equal, compiled_engine_cls, snapshot

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native

#: One ``feed`` of the compiled engine slower than this is reported as a hang (a hang guard:
#: the largest fuzz payloads take milliseconds; a busy machine or a sanitizer build must
#: never trip it).
HANG_SECONDS = 60.0

# --- seed corpus: real frames -----------------------------------------------------------------
# A1-A4: frames captured from the live server (docs/protocol.md, "Sample frames"; A1
# normalized to strict JSON, A2-A4 verbatim with their whitespace); DOC_*: the official API
# doc's push examples; the rest are compact pushes in the live server's shape (as the
# benchmark corpus generator writes them) and the reply/ticker shapes seen in client code.

A1, A2, A3, A4 = (s.encode() for s in (helpers.A1, helpers.A2, helpers.A3, helpers.A4))
DOC_TRADES = (
    b'{"method": "trades.update", "params": [true, [{"id": 7172173, "time": 1523339279.761838, '
    b'"price": "398.59", "amount": "0.027", "type": "buy"}], "ETH_USDT"], "id": null}'
)
DOC_DEPTH = (
    b'{"method": "depth.update", "params": [true, {"asks": [["8000.00", "9.6250"]], '
    b'"bids": [["8000.00", "9.6250"]]}, "EOS_USDT"], "id": null}'
)
INCREMENT = (
    b'{"method":"depth.update","params":[false,{"asks":[["11700.5","0.25"],["11703.1","0"]],'
    b'"bids":[["11698.2","1.5"],["11690","0"]]},"BTC_USDT"],"id":null}'
)
INCREMENT_BARE = (
    b'{"method":"depth.update","params":[false,{"asks":[[0.1234,5e2]],"bids":[[0.1201,1000.5],'
    b'[0.12,0]]},"xrp_usdt"],"id":null}'
)
SNAPSHOT_ETH = (
    b'{"method":"depth.update","params":[true,{"asks":['
    + b",".join(b'["%d.%02d","%d.%04d"]' % (3010 + i, i * 7 % 100, i + 1, i * 37 % 10000) for i in range(30))
    + b'],"bids":['
    + b",".join(
        b'["%d.%02d","%d.%04d"]' % (3009 - i, i * 13 % 100, 2 * i + 1, i * 91 % 10000) for i in range(30)
    )
    + b']},"ETH_USDT"],"id":null}'
)
#: More levels per side (70) and more trades (20) than the parser's initial scratch arrays
#: hold (64 levels, 16 trades): every example that feeds these grows them.
SNAPSHOT_70 = (
    b'{"method":"depth.update","params":[true,{"asks":['
    + b",".join(b'["0.%04d","%d"]' % (5000 + 3 * i, 10 + i) for i in range(70))
    + b'],"bids":['
    + b",".join(b"[0.%04d,%d.5]" % (4999 - 2 * i, i) for i in range(70))
    + b']},"DOGE_USDT"],"id":null}'
)
TRADES_20 = (
    b'{"method":"trades.update","params":[false,['
    + b",".join(
        b'{"id":%d,"time":%d.%03d,"price":"0.%04d","amount":"%d","type":"%s"}'
        % (900 - i, 1597419200 - i, i, 5000 + i, i + 1, b"buy" if i % 3 else b"sell")
        for i in range(20)
    )
    + b'],"DOGE_USDT"],"id":null}'
)
TRADES_3 = (
    b'{"method":"trades.update","params":[false,[{"id":3282939931,"time":1597419160.25,'
    b'"price":"11688.5","amount":"0.02","type":"buy"},{"id":3282939930,"time":1597419160.1,'
    b'"price":"11688.1","amount":"1.5","type":"sell"},{"id":3282939929,"time":"1597419159.9",'
    b'"price":11687.9,"amount":0.004,"type":"buy"}],"BTC_USDT"],"id":null}'
)
TICKER = (
    b'{"method":"ticker.update","params":[{"symbol":"BTC_USDT","open_24h":"6823.78","low_24h":"6700",'
    b'"base_volume_24h":"1","high_24h":"6999","last":"6855.12","quote_volume_24h":"2",'
    b'"best_bid":"6855.1","best_ask":"6855.2","best_bid_size":"0.1","best_ask_size":"0.2",'
    b'"change_24h":"0.46","timestamp":1586762545336}],"id":null}'
)
TICKER_NESTED = b'{"method":"ticker.update","params":[[{"symbol":"BTC_USDT","last":"1"},{"symbol":"ETH_USDT","last":"2"}]]}'
PONG = b'{"error":null,"result":"pong","id":1620432002431491}'
ACK = b'{"error": null, "result": {"status": "success"}, "id": 12312}'
ERROR_REPLY = b'{"error":{"code":200005,"message":"Rate limit exceeded"},"result":null,"id":7}'
BALANCE = b'{"method":"balance.update","params":[{"currency":"USDT","free":"99944652.8478545303601106","total":"1","used":"0"}],"id":null}'

SEEDS: tuple[bytes, ...] = (
    A1,
    A2,
    A3,
    A4,
    DOC_TRADES,
    DOC_DEPTH,
    INCREMENT,
    INCREMENT_BARE,
    SNAPSHOT_ETH,
    SNAPSHOT_70,
    TRADES_3,
    TRADES_20,
    TICKER,
    TICKER_NESTED,
    PONG,
    ACK,
    ERROR_REPLY,
    BALANCE,
)
#: Fed (zlib-compressed) to every fresh engine pair so that books and the ring are not empty.
PRIME: tuple[bytes, ...] = (A2, A4, SNAPSHOT_ETH, DOC_DEPTH, INCREMENT_BARE, A1, TRADES_3)

# --- mutations ----------------------------------------------------------------------------------

#: Bytes that matter to the JSON scanner, the UTF-8 validator and the number parser.
INTERESTING_BYTES = b'{}[],:"\\ \t\n\r0123456789-+.eEutfnl' + bytes(
    [0, 1, 0x0B, 0x1F, 0x7F, 0x80, 0xBF, 0xC0, 0xC2, 0xE0, 0xED, 0xF0, 0xF4, 0xFF]
)

#: Replacements for a number token (inside a string or bare): edges of every number rule.
SPECIAL_NUMBERS: tuple[bytes, ...] = (
    b"0",
    b"-0",
    b"0.0",
    b"-0.0",
    b"00",
    b"01",
    b"+1",
    b".5",
    b"1.",
    b"-",
    b"1e",
    b"1e+",
    b"1E5",
    b"1e-7",
    b"-1",
    b"-0.001",
    b"-1e-300",
    b"1e308",
    b"1.7976931348623157e308",
    b"1.7976931348623159e308",
    b"1e309",
    b"1e400",
    b"-1e400",
    b"1e-400",
    b"4.9e-324",
    b"2.2250738585072011e-308",
    b"2.4703282292062327e-324",
    b"2.4703282292062328e-324",
    b"9007199254740993",
    b"9007199254740992",
    b"18014398509481985",
    b"0.1000000000000000055511151231257827",
    b"123456789012345678901234567890",
    b"1e999999999999",
    b"0e999999999999",
    b"1e-999999999999",
    b"9223372036854775807",
    b"9223372036854775808",
    b"18446744073709551616",
    b"-9223372036854775808",
    b"NaN",
    b"nan",
    b"Infinity",
    b"-Infinity",
    b"inf",
    b"0x10",
    b"1_0",
    b"1,5",
    b" 1",
    b"1" * 19,
    b"1" * 20,
    b"9" * 309,
    b"1" * 400,
    b"0." + b"0" * 400 + b"1",
    b"1" * 400 + b"e-390",
    b"1." + b"0" * 1022,
    b"1." + b"0" * 1023,
    b"1" * 1025,
)

#: Replacements for a string token's contents: keys, methods, symbols, escapes, bad text.
SPECIAL_STRINGS: tuple[bytes, ...] = (
    b"",
    b"method",
    b"params",
    b"id",
    b"asks",
    b"bids",
    b"price",
    b"amount",
    b"time",
    b"type",
    b"depth.update",
    b"trades.update",
    b"ticker.update",
    b"balance.update",
    b"DEPTH.UPDATE",
    b"depth.update ",
    b"\\u0064epth.update",
    b"\\u0062ids",
    b"\\u0061sks",
    b"m\\u0065thod",
    b"buy",
    b"sell",
    b"BUY",
    b"bu\\u0079",
    b"BTC_USDT",
    b"btc_usdt",
    b"NEW_SYM",
    b"A" * 32,
    b"A" * 33,
    b"BTC USDT",
    b"BTC\\u0001",
    b"\\u00e9",
    b"\xc3\xa9",
    b"\xff",
    b"\xed\xa0\x80",
    b"\\ud800",
    b"\\ud83d\\ude00",
    b"\\u0000",
    b"\\/",
    b"\\x41",
    b"\\u12G4",
    b"\\",
    b"\t",
    b"nan",
    b"inf",
    b"-1",
    b"1e400",
    b" 1",
    b"0x1",
)

#: Structural bytes a structural mutation targets.
STRUCTURAL = b'{}[],:"'

_NUMBER_RE = re.compile(rb"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_STRING_RE = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_STRUCT_RE = re.compile(rb'[{}\[\],:"]')

#: Text-level mutation kinds (see ``mutate_text``).
TEXT_OPS = (
    "flip",
    "insert",
    "delete",
    "truncate",
    "dup",
    "splice",
    "number",
    "digit",
    "exp",
    "sign",
    "nest",
    "struct",
    "string",
    "ws",
)
#: Frame-level (compressed bytes) mutation kinds (see ``mutate_frame``).
FRAME_OPS = ("flip", "insert", "delete", "truncate", "append", "splice", "adler", "header")

#: Upper bound on a mutated JSON text (``dup`` can grow it).
MAX_TEXT = 1 << 20


def _nth(regex: re.Pattern[bytes], data: bytes, k: int) -> re.Match[bytes] | None:
    matches = list(regex.finditer(data))
    if not matches:
        return None
    return matches[k % len(matches)]


def mutate_text(text: bytes, op: str, a: int, b: int, c: int, blob: bytes) -> bytes:
    """Apply one JSON-aware or byte-level mutation to JSON text.

    ``a``, ``b``, ``c`` are small non-negative integers (positions are taken modulo the
    length), ``blob`` the replacement bytes where one is needed. Deterministic.
    """
    n = len(text)
    pos = a % (n + 1)
    if op == "flip":
        if n == 0:
            return text
        i = a % n
        return text[:i] + bytes([text[i] ^ (1 << (b % 8))]) + text[i + 1 :]
    if op == "insert":
        return text[:pos] + (blob or bytes([INTERESTING_BYTES[b % len(INTERESTING_BYTES)]])) + text[pos:]
    if op == "delete":
        return text[:pos] + text[pos + 1 + b % 16 :]
    if op == "truncate":
        return text[:pos]
    if op == "dup":
        # repeat a chunk (a level, a trade, brackets...) up to a few thousand times
        ln = 1 + b % 64
        chunk = text[pos : pos + ln]
        return (text[:pos] + chunk * (1 + c % 4096) + text[pos:])[:MAX_TEXT]
    if op == "splice":
        other = SEEDS[c % len(SEEDS)]
        return text[:pos] + other[b % (len(other) + 1) :]
    if op in ("number", "digit", "exp", "sign", "nest"):
        m = _nth(_NUMBER_RE, text, b)
        if m is None:
            return text
        tok = m.group()
        if op == "number":
            new = blob or SPECIAL_NUMBERS[c % len(SPECIAL_NUMBERS)]
        elif op == "digit":
            digits = [i for i, ch in enumerate(tok) if 48 <= ch <= 57]
            i = digits[c % len(digits)]
            new = tok[:i] + bytes([48 + (c // len(digits)) % 10]) + tok[i + 1 :]
        elif op == "exp":
            base = tok.split(b"e")[0].split(b"E")[0]
            exps = (
                b"e5",
                b"E-7",
                b"e+308",
                b"e308",
                b"e309",
                b"e-324",
                b"e-400",
                b"e400",
                b"e",
                b"e+",
                b"e0",
                b"E+00",
                b"e999999999999",
                b"e-999999999999",
            )
            new = base + (blob or exps[c % len(exps)])
        elif op == "nest":
            # wrap the number in k arrays or objects: around the nesting limit of 64
            k = 1 + c % 130
            if b % 2:
                new = b'{"k":' * k + tok + b"}" * k
            else:
                new = b"[" * k + tok + b"]" * k
        else:
            signs = (b"-", b"+", b"--", b"-0", b"")
            new = signs[c % len(signs)] + tok.lstrip(b"-")
        return text[: m.start()] + new + text[m.end() :]
    if op == "struct":
        m = _nth(_STRUCT_RE, text, b)
        if m is None:
            return text
        i = m.start()
        how = c % 3
        if how == 0:
            return text[:i] + text[i + 1 :]  # drop
        if how == 1:
            return text[:i] + text[i : i + 1] * 2 + text[i + 1 :]  # duplicate
        return text[:i] + bytes([STRUCTURAL[(c // 3) % len(STRUCTURAL)]]) + text[i + 1 :]  # swap
    if op == "string":
        m = _nth(_STRING_RE, text, b)
        if m is None:
            return text
        new = blob or SPECIAL_STRINGS[c % len(SPECIAL_STRINGS)]
        return text[: m.start() + 1] + new + text[m.end() - 1 :]
    if op == "ws":
        spaces = (b" ", b"\t", b"\n", b"\r", b"\x0b", b"\x0c", b"\xc2\xa0", b"\x00", b"\xef\xbb\xbf")
        return text[:pos] + spaces[c % len(spaces)] * (1 + b % 3) + text[pos:]
    raise ValueError(op)


def mutate_frame(raw: bytes, op: str, a: int, b: int, c: int, blob: bytes) -> bytes:
    """Apply one mutation to a compressed frame (zlib header, deflate data, Adler-32)."""
    n = len(raw)
    pos = a % (n + 1)
    if op == "flip":
        if n == 0:
            return raw
        i = a % n
        return raw[:i] + bytes([raw[i] ^ (1 << (b % 8))]) + raw[i + 1 :]
    if op == "insert":
        return raw[:pos] + (blob or bytes([b % 256])) + raw[pos:]
    if op == "delete":
        return raw[:pos] + raw[pos + 1 + b % 16 :]
    if op == "truncate":
        return raw[:pos]
    if op == "append":
        return raw + (blob or bytes([b % 256]) * (1 + c % 8))
    if op == "splice":
        other = zlib.compress(SEEDS[c % len(SEEDS)])
        return raw[:pos] + other[b % (len(other) + 1) :]
    if op == "adler":
        if n < 4:
            return raw
        return raw[:-4] + struct.pack(">I", (struct.unpack(">I", raw[-4:])[0] ^ (1 + b)) & 0xFFFFFFFF)
    if op == "header":
        headers = (
            b"\x78\x01",
            b"\x78\x5e",
            b"\x78\x9c",
            b"\x78\xda",
            b"\x08\x1d",
            b"\x78\x9d",
            b"\x79\x9c",
            b"\x1f\x8b",
            b"\x78\xbb",
            b"",
        )
        return headers[c % len(headers)] + raw[2:]
    raise ValueError(op)


# --- the oracle -------------------------------------------------------------------------------


def payload_nbytes(payload: Any) -> int:
    """What ``bytes_in`` grows by for this payload."""
    if isinstance(payload, str):
        try:
            return len(payload.encode("utf-8"))
        except UnicodeEncodeError:
            return 0
    return memoryview(payload).nbytes


def inflated_nbytes(payload: Any) -> int:
    """How many bytes of JSON text a (valid) zlib payload inflates to; 0 for plain JSON."""
    if isinstance(payload, str):
        return 0
    data = bytes(payload)
    if data.lstrip(b" \t\r\n")[:1] in (b"{", b"["):
        return 0
    return len(zlib.decompress(data))


def _outcome(eng: Any, payload: Any, recv_ns: int) -> tuple[Any, ...]:
    try:
        return ("ok", eng.feed(payload, recv_ns))
    except FastfeedError as exc:
        return ("error", type(exc).__name__, exc.reason)


def check_invariants(snap: dict[str, Any], depth: int, capacity: int, where: str = "") -> None:
    """Book and ring invariants of one engine snapshot (see the module docstring)."""
    for name, (bids, asks, _version, _recv_ns, best_bid, best_ask, _state) in snap["books"].items():
        w = f"{where} book {name}"
        for side, arr in (("bids", bids), ("asks", asks)):
            assert arr.ndim == 2 and arr.shape[1] == 2, f"{w} {side} shape {arr.shape}"
            assert arr.shape[0] <= depth, f"{w} {side}: {arr.shape[0]} rows > depth {depth}"
            assert np.isfinite(arr).all(), f"{w} {side} not finite: {arr!r}"
            assert (arr[:, 0] > 0).all(), f"{w} {side} price <= 0: {arr!r}"
            assert (arr[:, 1] > 0).all(), f"{w} {side} amount <= 0: {arr!r}"
        assert (np.diff(bids[:, 0]) < 0).all(), f"{w} bids not strictly descending: {bids!r}"
        assert (np.diff(asks[:, 0]) > 0).all(), f"{w} asks not strictly ascending: {asks!r}"
        if len(bids) and len(asks):
            assert bids[0, 0] < asks[0, 0], f"{w} crossed: bid {bids[0, 0]} >= ask {asks[0, 0]}"
        assert math.isnan(best_bid) if not len(bids) else best_bid == bids[0, 0], f"{w} best_bid"
        assert math.isnan(best_ask) if not len(asks) else best_ask == asks[0, 0], f"{w} best_ask"
    ring = snap["ring"]
    count = snap["ring_count"]
    assert len(ring) == min(count, capacity), f"{where} ring rows {len(ring)} (count {count})"
    if len(ring):
        assert np.isfinite(ring["time"]).all() and np.isfinite(ring["price"]).all(), f"{where} ring"
        assert np.isfinite(ring["amount"]).all(), f"{where} ring amount"
        assert (ring["price"] > 0).all() and (ring["amount"] >= 0).all(), f"{where} ring values"
        assert np.isin(ring["side"], (1, -1)).all(), f"{where} ring side"
        assert (ring["id"] >= 0).all(), f"{where} ring id"
        assert ((ring["symbol"] >= 0) & (ring["symbol"] < len(snap["symbols"]))).all(), f"{where} ring symbol"
        assert (ring["seq"] == np.arange(count - len(ring), count)).all(), f"{where} ring seq"


class KnownBug(Exception):
    """The compiled engine diverged from the reference in a way that an ``xfail(strict=True)``
    test of this module already reports (``KNOWN_BUGS``); the fuzzer ends the current stream
    (the two engines' counters differ from here on) and keeps looking for new bugs."""


def _inflate_reason(payload: Any, cap: int, backend: str) -> str:
    from fastfeed._inflate import Inflater

    try:
        Inflater(cap, backend=backend).inflate(bytes(payload))
    except FastfeedError as exc:
        return exc.reason
    return "ok"


def known_bug(pair: Pair, payload: Any, got: tuple[Any, ...], expected: tuple[Any, ...]) -> str | None:
    """Name the open bug that explains ``got != expected``, or None (a new bug). No bug is
    open: BUG-1 and BUG-2 (below) are fixed."""
    return None


class Pair:
    """A compiled engine and a reference engine fed the same payloads."""

    def __init__(
        self,
        depth: int = 5,
        capacity: int = 16,
        max_frame: int = 1 << 16,
        prime: bool = True,
        backend: str = "auto",
        max_symbols: int = 10000,
    ) -> None:
        self.depth = depth
        self.max_frame = max_frame
        kwargs: dict[str, Any] = {"depth": depth, "trade_capacity": capacity, "max_frame": max_frame}
        if max_symbols != 10000:
            kwargs["max_symbols"] = max_symbols
        self.ref = ReferenceEngine(**kwargs)
        if backend != "auto":
            kwargs["inflate_backend"] = backend
        self.comp = compiled_engine_cls()(**kwargs)
        self.backend = getattr(self.comp, "inflate_backend", "zlib")
        self.capacity = int(self.comp.trades.capacity)
        self.n = 0
        self.snap = snapshot(self.comp)
        if prime:  # good frames: fed without the per-payload checks, compared once
            for text in PRIME:
                if len(text) <= max_frame:
                    frame = zlib.compress(text)
                    self.n += 1
                    assert self.comp.feed(frame, self.n) is None
                    assert self.ref.feed(frame, self.n) is None
            self.snap = snapshot(self.comp)
            check_invariants(self.snap, depth, self.capacity, "after priming")
            assert_snapshot_equal(self.snap, snapshot(self.ref), "after priming")

    def feed(self, payload: Any) -> tuple[Any, ...]:
        """Feed both engines, check every property; return the compiled outcome. Raises
        ``KnownBug`` (after checking the rejection left the compiled state unchanged) for a
        divergence that ``known_bug`` names."""
        self.n += 1
        recv_ns = 1_700_000_000_000_000_000 + 1_000_003 * self.n
        before = self.snap
        t0 = time.perf_counter()
        got = _outcome(self.comp, payload, recv_ns)  # anything but a FastfeedError propagates
        dt = time.perf_counter() - t0
        shown = payload if isinstance(payload, str) else bytes(payload)
        where = (
            f"payload #{self.n} ({type(payload).__name__}, {payload_nbytes(payload)} bytes): {shown!r:.300}"
        )
        assert dt < HANG_SECONDS, f"{where}: compiled feed took {dt:.1f} s"
        expected = _outcome(self.ref, payload, recv_ns)
        bug = known_bug(self, payload, got, expected) if got != expected else None
        if bug is None:
            assert got == expected, f"{where}\ncompiled: {got!r:.300}\nreference: {expected!r:.300}"
        after = snapshot(self.comp)
        if got[0] == "error":
            reason = got[2]
            assert reason in REJECT_REASONS, f"{where}: unknown reason {reason!r}"
            stats = dict(before["stats"])
            stats["rejects"] = dict(stats["rejects"])
            stats["rejects"][reason] += 1
            stats["frames"] += 1
            stats["bytes_in"] += payload_nbytes(payload)
            if got[1] == "ParseError":
                stats["bytes_inflated"] += inflated_nbytes(payload)  # the inflate itself succeeded
            assert_snapshot_equal(
                dict(before, stats=stats), after, f"{where}: rejected ({reason}) but state changed"
            )
        check_invariants(after, self.depth, self.capacity, where)
        if bug is not None:
            raise KnownBug(f"{bug}: {where}")
        assert_snapshot_equal(after, snapshot(self.ref), f"{where}: compiled != reference")
        self.snap = after
        return got


# ============================================================================================
# The tests: hypothesis drives the mutations; each test runs for a time budget
# ============================================================================================

#: Runs of ``CHUNK`` examples per fuzz test: a fixed amount of work (the same inputs, the
#: same verdict, however fast the machine is).
FUZZ_CHUNKS = int(os.environ.get("FASTFEED_FUZZ_CHUNKS", "6"))
#: If set: total seconds of fuzzing in this module instead (split between the tests below),
#: for long runs by hand; how many chunks run then depends on the machine.
FUZZ_SECONDS = float(os.environ["FASTFEED_FUZZ_SECONDS"]) if os.environ.get("FASTFEED_FUZZ_SECONDS") else None
#: A compiled ``feed`` that does not return within this many seconds kills the process with
#: a traceback of every thread (faulthandler), so a hang in C cannot stall CI silently.
WATCHDOG_SECONDS = float(os.environ.get("FASTFEED_FUZZ_WATCHDOG", "120"))
#: Where the input being fed is written before each compiled ``feed`` (read it after a hang
#: or a hard crash: the seed line says how to replay the run).
LAST_INPUT = Path(
    os.environ.get("FASTFEED_FUZZ_LAST_INPUT") or Path(tempfile.gettempdir()) / "fastfeed-fuzz-last-input"
)
#: Examples per hypothesis run; the budget loop starts new runs with the next seed.
CHUNK = 40


def _base_seed() -> int:
    env = os.environ.get("FASTFEED_FUZZ_SEED")
    if env:
        return int(env)
    if os.environ.get("FASTFEED_HYPOTHESIS_PROFILE") == "random":
        return random.SystemRandom().randrange(2**32)
    return 0  # derandomized by default


BASE_SEED = _base_seed()

_small = st.integers(0, 1 << 16)
_text_op = st.tuples(
    st.sampled_from(TEXT_OPS),
    _small,
    _small,
    _small,
    st.one_of(
        st.just(b""),
        st.sampled_from(SPECIAL_NUMBERS),
        st.sampled_from(SPECIAL_STRINGS),
        st.binary(min_size=1, max_size=8),
    ),
)
_frame_op = st.tuples(
    st.sampled_from(FRAME_OPS),
    _small,
    _small,
    _small,
    st.one_of(st.just(b""), st.binary(min_size=1, max_size=8)),
)


@st.composite
def payloads(draw: st.DrawFn, mutate: bool = True) -> Any:
    """One payload: a seed frame, text mutations, an encoding, frame mutations, a wrapper."""
    text = draw(st.sampled_from(SEEDS))
    if mutate:
        for op in draw(st.lists(_text_op, max_size=4)):
            text = mutate_text(text, *op)
    enc = draw(st.sampled_from(("zlib", "zlib", "zlib", "plain", "str")))
    if enc == "str":
        return text.decode("utf-8", "surrogateescape")  # invalid UTF-8 -> lone surrogates
    if enc == "zlib":
        raw = zlib.compress(text, draw(st.sampled_from((1, 6, 9))))
        if mutate:
            for op in draw(st.lists(_frame_op, max_size=3)):
                raw = mutate_frame(raw, *op)
    else:
        raw = text
    how = draw(st.sampled_from(("bytes", "bytearray", "memoryview")))
    if how == "bytearray":
        return bytearray(raw)
    if how == "memoryview":
        return memoryview(bytearray(raw))
    return raw


class _LastInput:
    """Keeps ``LAST_INPUT.bin`` = the payload being fed (one pwrite per payload) and
    ``LAST_INPUT.txt`` = which test, seed and step it is (after a hard crash or a hang)."""

    def __init__(self) -> None:
        self.fd = os.open(LAST_INPUT.with_suffix(".bin"), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self.note = ""

    def save(self, payload: Any, note: str) -> None:
        data = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else bytes(payload)
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)
        if note != self.note:
            self.note = note
            LAST_INPUT.with_suffix(".txt").write_text(f"{note}\n")

    def close(self) -> None:
        os.close(self.fd)


def run_budget(label: str, share: float, make_test: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Run ``make_test()`` (a fresh hypothesis test) in chunks of ``CHUNK`` examples, each
    chunk with the next seed: ``FUZZ_CHUNKS`` chunks, or, if ``FUZZ_SECONDS`` is set, until
    ``share`` of it has passed (at least one chunk).

    Seeds are ``BASE_SEED * 1_000_003 + chunk``: the same on every run unless
    ``FASTFEED_FUZZ_SEED`` is set or the ``random`` hypothesis profile is loaded. On failure
    the chunk seed is printed with the command that replays it; hypothesis prints the
    shrunk example and a ``@reproduce_failure`` blob.
    """
    with capsys.disabled():
        real_stderr = os.fdopen(os.dup(2), "w")
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True, file=real_stderr)
    deadline = None if FUZZ_SECONDS is None else time.monotonic() + FUZZ_SECONDS * share
    chunk = 0
    examples = 0
    try:
        while True:
            seed = BASE_SEED * 1_000_003 + chunk
            test, counter = make_test(seed)
            try:
                test()
            except BaseException:
                print(
                    f"\n{label}: failed in chunk {chunk}, hypothesis seed {seed} "
                    f"(FASTFEED_FUZZ_SEED={BASE_SEED}); replay this chunk with "
                    f"FASTFEED_FUZZ_REPLAY={seed} python -m pytest -q tests/test_fuzz.py -k {label}"
                )
                raise
            examples += counter[0]
            chunk += 1
            faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True, file=real_stderr)
            done = chunk >= FUZZ_CHUNKS if deadline is None else time.monotonic() >= deadline
            if done or os.environ.get("FASTFEED_FUZZ_REPLAY"):
                break
    finally:
        faulthandler.cancel_dump_traceback_later()
        real_stderr.close()
    print(f"{label}: {examples} examples in {chunk} chunks, base seed {BASE_SEED}")


def _hyp_settings(seed: int) -> Any:
    return settings(
        max_examples=CHUNK,
        derandomize=False,
        database=None,
        deadline=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
    )


def _seed_for(seed: int) -> int:
    replay = os.environ.get("FASTFEED_FUZZ_REPLAY")
    return int(replay) if replay else seed


def _has_max_symbols() -> bool:
    """Whether both engines take ``max_symbols`` (the symbol limit, docs/engine-semantics.md)."""
    try:
        compiled_engine_cls()(max_symbols=5)
        ReferenceEngine(max_symbols=5)  # type: ignore[call-arg]
    except TypeError:
        return False
    return True


@pytest.mark.slow
def test_fuzz_streams(capsys: pytest.CaptureFixture[str]) -> None:
    """Streams of mutated real frames: every property of ``Pair.feed`` after every payload."""

    def make(seed: int) -> Any:
        counter = [0]

        @hyp_seed(_seed_for(seed))
        @_hyp_settings(seed)
        @given(
            depth=st.sampled_from((1, 2, 3, 5, 8, 200)),
            capacity=st.sampled_from((1, 4, 16, 64)),
            max_frame=st.sampled_from((600, 4096, 1 << 16, 8 << 20)),
            backend=st.sampled_from(BACKENDS),
            max_symbols=st.sampled_from((4, 5, 10000) if _has_max_symbols() else (10000,)),
            steps=st.lists(st.one_of(payloads(), payloads(mutate=False)), min_size=1, max_size=8),
        )
        def test(
            depth: int, capacity: int, max_frame: int, backend: str, max_symbols: int, steps: list[Any]
        ) -> None:
            counter[0] += 1
            pair = Pair(depth, capacity, max_frame, backend=backend, max_symbols=max_symbols)
            for payload in steps:
                last.save(payload, f"test_fuzz_streams, hypothesis seed {seed} (FASTFEED_FUZZ_REPLAY={seed})")
                try:
                    pair.feed(payload)
                except KnownBug as exc:
                    known[str(exc).split(":")[0]] = known.get(str(exc).split(":")[0], 0) + 1
                    return

        return test, counter

    last = _LastInput()
    known: dict[str, int] = {}
    try:
        run_budget("test_fuzz_streams", 0.7, make, capsys)
    finally:
        last.close()
    if known:
        print(f"known bugs hit (each has an xfail test): {known}")


_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

_number_texts = st.one_of(
    st.from_regex(_DECIMAL, fullmatch=True),
    st.builds(
        lambda sign, ip, fp, ex: sign + ip + fp + ex,
        st.sampled_from(("", "-", "+")),
        st.one_of(
            st.text("0123456789", max_size=25),
            st.builds(lambda d, n: d * n, st.sampled_from("0159"), st.integers(1, 1100)),
        ),
        st.one_of(
            st.just(""),
            st.just("."),
            st.builds(lambda s: "." + s, st.text("0123456789", min_size=1, max_size=30)),
        ),
        st.one_of(
            st.just(""),
            st.builds(
                lambda e, s, n: e + s + str(n),
                st.sampled_from("eE"),
                st.sampled_from(("", "+", "-")),
                st.integers(0, 10**13),
            ),
        ),
    ),
    st.sampled_from([s.decode() for s in SPECIAL_NUMBERS]),
    st.text("0123456789+-.eE", max_size=30),
)


@pytest.mark.slow
def test_fuzz_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    """Number texts: ``parse_decimal_py`` equals Python's ``float`` (bit for bit, sign of zero
    included) on the decimal grammar (<= 1024 chars) and refuses everything else; the same
    text as a quoted and as a bare price/amount gives the same outcome and book on both
    engines (this reaches the inline fast path and the general path)."""
    from fastfeed._parse import parse_decimal_py

    def make(seed: int) -> Any:
        counter = [0]

        @hyp_seed(_seed_for(seed))
        @_hyp_settings(seed)
        @given(
            s=_number_texts,
            bare=st.booleans(),
            side=st.sampled_from(("asks", "bids")),
            slot=st.sampled_from((0, 1)),
        )
        def test(s: str, bare: bool, side: str, slot: int) -> None:
            counter[0] += 1
            valid = _DECIMAL.fullmatch(s) is not None and len(s) <= 1024
            if valid:
                got = parse_decimal_py(s)
                assert struct.pack("<d", got) == struct.pack("<d", float(s)), (
                    f"{s!r}: {got!r} != {float(s)!r}"
                )
            else:
                with pytest.raises(ValueError):
                    parse_decimal_py(s)
            tok = s if bare else f'"{s}"'
            level = f'[{tok},"2"]' if slot == 0 else f'["3",{tok}]'
            text = '{"method":"depth.update","params":[false,{"%s":[%s]},"N"]}' % (side, level)
            pair = Pair(depth=3, capacity=4, prime=False)
            pair.feed(text.encode())
            pair.feed(zlib.compress(text.encode()))

        return test, counter

    run_budget("test_fuzz_numbers", 0.3, make, capsys)


def test_seeds_are_accepted() -> None:
    """Every seed frame is valid and accepted by both engines (plain and compressed)."""
    pair = Pair(prime=False)
    for text in SEEDS:
        assert pair.feed(text)[0] == "ok"
        assert pair.feed(zlib.compress(text))[0] == "ok"


#: Every reason one frame can be rejected for on its own (``symbol_limit`` needs state).
FRAME_REASONS = {
    "empty",
    "zlib_error",
    "zlib_truncated",
    "zlib_trailing",
    "too_large",
    "bad_json",
    "too_deep",
    "bad_message",
    "bad_number",
}


def test_mutators_are_deterministic_and_reach_every_reason() -> None:
    """The mutators are pure functions of their arguments, and a small seeded sweep over
    them already produces every rejection reason (so the fuzzer explores them all)."""
    rng = random.Random(5)
    reasons: set[str] = set()
    pair = Pair(depth=3, capacity=8, max_frame=4096)
    for _ in range(1500):
        text = rng.choice(SEEDS)
        for _ in range(rng.randint(1, 3)):
            op = (
                rng.choice(TEXT_OPS),
                rng.randrange(1 << 16),
                rng.randrange(1 << 16),
                rng.randrange(1 << 16),
                b"",
            )
            assert mutate_text(text, *op) == mutate_text(text, *op)
            text = mutate_text(text, *op)
        raw = zlib.compress(text)
        if rng.random() < 0.3:
            op = (
                rng.choice(FRAME_OPS),
                rng.randrange(1 << 16),
                rng.randrange(1 << 16),
                rng.randrange(1 << 16),
                b"",
            )
            raw = mutate_frame(raw, *op)
        if rng.random() < 0.01:
            raw = b""
        try:
            got = pair.feed(raw)
        except KnownBug:
            pair = Pair(depth=3, capacity=8, max_frame=4096)
            continue
        if got[0] == "error":
            reasons.add(got[2])
    assert reasons >= FRAME_REASONS, FRAME_REASONS - reasons


def test_fuzzing_the_expected_build() -> None:
    """The compiled modules under test sit next to the imported ``fastfeed`` package (no mix
    of builds); with ``FASTFEED_EXPECT_BUILD_DIR`` set (CI's debug and ASan steps) the package
    must come from that directory."""
    import fastfeed
    from fastfeed import _engine, _inflate, _parse

    pkg = Path(fastfeed.__file__).resolve().parent
    for mod in (_engine, _inflate, _parse):
        assert Path(mod.__file__).resolve().parent == pkg, (mod.__file__, pkg)
    expect = os.environ.get("FASTFEED_EXPECT_BUILD_DIR")
    if expect:
        assert pkg == Path(expect).resolve() / "fastfeed", (pkg, expect)


# ============================================================================================
# Bugs the fuzzer found in the compiled code, fixed; these tests keep them fixed. (While a
# bug is open, mark its test xfail(strict=True) and name it in ``known_bug`` so the fuzzer
# keeps exploring.)
# ============================================================================================

#: BUG-1, minimal: a zlib stream whose first deflate symbol is a match reaching before the
#: start of the output ("invalid distance too far back"; zlib produces 0 bytes and fails).
BUG1_CORRUPT = b"\x78\xda\x23\x02\x00\x00\x33\x00\x33"
#: BUG-1 as the fuzzer first met it: the live sample A2, mutated (zlib fails after 178 bytes).
BUG1_CORRUPT_FOUND = (
    b"x\x9c[\xa0\xa0P\xcd\xa5\x00\x06J\xb9\xa9%\x19\xf9)JV\nJ)\xa9\x05%\x19z\xa5\x05)\x89%\xa9J:0y"
    b"\xa0L4\x94\xad\xa0PRT\x9a\n\x95QD\x98\x01V\x97X\x9c]\x8c\xa2\x16\x04\xa2\x95\x18\x18\x18&L\\"
    b"\xb3CIGA\xc9@\xcf\xc0\xc0P)V\x07M\x85\xa1\xa1\xb9\x81\x81\x9e\x91\tD\x89\x85\xb9\xa1\x1964f"
    b"\x96\x96z\xa6\xe6\x105\x86\x06F\x96J\xb1HJP\xd4+%e\xa6`s\t\xc8\x0cs=\x0bK\x88\x19F\x86\x16&"
    b"\xd8\xed1\xd734\x06\xa91\xd7306\xc5\xe1\x163=s\xb89&hn\x81\xb3k\x11:\x95\x9cB\x9c\xe3C\x83]"
    b"B\x94\xb8\xd0\\\xac\x94\t\n\xfb\xbc\xd2\x9c\x1c\xb0@-\x00.\x8bL|"
)
#: BUG-1, truncated variant (found by the fuzzer, seed 7000115): a spliced, mutated frame whose
#: input ends after 349 bytes of output; libdeflate decodes past the end of the input.
BUG1_TRUNCATED = (
    b"x\x9c\xed\xd8M\n\x830\x10\x05\xe0\xbb\xccZ\xa4\x8aX\xc9\xb2?\xe0\xbe\xe9\xaa\x14IM@ib\x82"
    b"\x89\x0b\x11\xef\xde)=E\xe1\xad\xbea\xde;\xc1\xdb\xc9\x994xM\x82\xd2\xd8\xbf\xcd\x9c/A\xabd("
    b'\xa3\xa0f\xe5"\x89\xc7Fqu/o\xb9s\x92\xe7\xee~\xbbH\x8e}0SWV\x03\x7f\xeb\xa6\xec\r[\x14us\xcc'
    b"\x0f\x15\xa7i\r\x00"
)


@pytest.mark.parametrize(
    ("frame", "caps", "reason"),
    [
        (BUG1_CORRUPT, (1, 8, 64, 600), "zlib_error"),
        (BUG1_CORRUPT_FOUND, (200, 600, 760), "zlib_error"),
        (BUG1_TRUNCATED, (400, 600), "zlib_truncated"),
    ],
    ids=["corrupt-minimal", "corrupt-found", "truncated-found"],
)
def test_bug1_libdeflate_bad_frame_at_cap_keeps_its_reason(
    frame: bytes, caps: tuple[int, ...], reason: str
) -> None:
    """BUG-1: the libdeflate inflate backend reports a corrupt or truncated frame as
    FrameTooLarge ('too_large') instead of InflateError ('zlib_error' / 'zlib_truncated') when
    libdeflate runs out of output space at the max_frame cap before it notices the problem:
    ``Inflater._run_libdeflate`` returns INF_TOO_LARGE on LIBDEFLATE_INSUFFICIENT_SPACE at the
    cap instead of letting zlib classify the frame (zlib, and the reference, reach the bad
    symbol / the end of the input first). Fix: at the cap, ``return self._run_zlib(data,
    size)`` (zlib says too_large for a frame that really is too large)."""
    for cap in caps:  # zlib meets the problem before producing `cap` bytes
        assert _inflate_reason(frame, cap, "zlib") == reason, cap
        for backend in BACKENDS:
            assert _inflate_reason(frame, cap, backend) == reason, (backend, cap)
        pair = Pair(max_frame=cap, prime=False)
        assert pair.feed(frame) == ("error", "InflateError", reason)


#: BUG-2, found by the atheris harness within seconds (the live sample A2 with a level cut to
#: ``[     "0"]``), then minimised.
BUG2_LEVELS = ['["0"]', '["0",true]', '["-1","1","2"]', '["1e999"]', '["1","-1","x"]', '[0,"1",1]']


@pytest.mark.parametrize("level", BUG2_LEVELS)
def test_bug2_level_range_error_reported_in_text_order(level: str) -> None:
    """BUG-2: error precedence inside a depth level. A price/amount out of range (price <= 0,
    amount < 0, not finite) is bad_number where it is met (text order, as the reference and its
    docstring say), but ``Parser._levels`` checks the range only after the level's closing
    ']', so a level that also has the wrong arity or a bad amount type (``["0"]``,
    ``["0",true]``, ``["-1","1","2"]``) is bad_message instead of bad_number. Both reject and
    change nothing; only the reason differs. Fix: check the price right after parsing it and
    the amount right after parsing it."""
    text = '{"method":"depth.update","params":[false,{"asks":[["1","1"],%s]},"S"]}' % level
    pair = Pair(prime=False)
    pair.feed(text.encode())
