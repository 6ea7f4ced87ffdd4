"""Pure-Python reference implementation of the fastfeed engine: the test oracle.

``ReferenceEngine`` follows ``docs/engine-semantics.md`` to the letter and has the same public
API as the compiled :class:`fastfeed.Engine`. It is written for clarity, not speed: tests feed
the same payloads to both engines and compare books, trade rings, counters and errors after
every message.

Where the contract leaves a choice open, this module makes the following one (the compiled
engine is expected to do the same):

* Error precedence inside one frame (when a frame has several violations, the first one a
  single left-to-right pass meets is reported):
  frame errors (``empty``, ``zlib_*``, ``too_large``) first; then JSON errors in text order
  (the first of ``bad_json`` / ``too_deep``; invalid UTF-8 is ``bad_json`` at the position of
  the bad byte); then the top-level pairs in text order: a duplicated ``method``/``params``
  key or a non-string ``method`` fails where it is met, and ``params`` of a depth/trades push
  is checked where it is met if ``method`` came before it, else after the whole top-level
  object (a missing ``params`` fails there too). Inside ``params`` everything is checked in
  text order: each scalar's type (``bad_message``) then grammar/length/finiteness/range
  (``bad_number``); an array with too many elements fails at its first extra element, one
  with too few at its end; a duplicated key fails at its second occurrence, a missing key at
  the end of its object.
* The 1024-character limit applies to the text of a bare JSON number as well as to a decimal
  string.
* A trade ``id`` that is not a JSON integer token (a string, a number with a fraction or an
  exponent such as ``1.0`` or ``1e3``) is ``bad_message`` (a type violation); a negative
  integer or one ``>= 2**63`` is ``bad_number`` (sign/range). ``-0`` is the integer 0.
* ``bytes_in`` counts the UTF-8 length of a ``str`` payload; ``bytes_inflated`` counts the
  output of successful inflates only; ``frames`` and ``bytes_in`` count rejected frames too.
  A payload of an unsupported type raises ``TypeError`` and counts nothing.
* A ``str`` payload that cannot be encoded as UTF-8 (lone surrogates) is ``bad_json`` and adds
  0 to ``bytes_in`` (it has no UTF-8 bytes); an empty ``str`` is ``bad_json`` (``empty`` is
  for empty bytes-like payloads only).
"""

from __future__ import annotations

import json
import math
import re
import time as _time
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, cast

import numpy as np

from . import channels as _channels
from ._json import loads_exact
from .book import LevelBook, drift_counts
from .errors import (
    REJECT_REASONS,
    FrameTooLarge,
    InflateError,
    ParseError,
    TickersOverwritten,
    TradesOverwritten,
    UnknownSymbol,
)
from .layout import (
    SIDE_BUY,
    SIDE_SELL,
    TICKER_DTYPE,
    TICKER_FIELDS,
    TRADE_DTYPE,
    DriftRecord,
    readonly,
    ticker_from_row,
    trades_frame,
)
from .protocol import Ticker, parse_tickers

__all__ = [
    "MAX_DEPTH",
    "MAX_NUMBER_LEN",
    "MAX_SYMBOL_LEN",
    "MESSAGE_KEYS",
    "ReferenceBook",
    "ReferenceEngine",
    "ReferenceRing",
    "ReferenceTickerRing",
    "ReferenceTradeRing",
]

#: Keys of ``stats["messages"]``: the push methods of the channel table, then replies and
#: unknown methods.
MESSAGE_KEYS: tuple[str, ...] = (*_channels.PUSH_METHODS, "reply", "unknown")
#: Method code of each message key, as the compiled parser numbers them (``Engine.last_kind``;
#: ``_parse.METHOD_NAMES`` order, checked by tests/test_sinks.py).
_METHOD_CODES: dict[str, int] = {
    "reply": 0,
    "depth.update": 1,
    "trades.update": 2,
    "ticker.update": 3,
    "all_ticker.update": 4,
    "order.update": 5,
    "order_algo.update": 6,
    "balance.update": 7,
    "unknown": 8,
}
#: Deepest accepted nesting of arrays/objects (the top-level object counts as 1).
MAX_DEPTH = 64
#: Longest accepted decimal string or bare number text, in characters.
MAX_NUMBER_LEN = 1024
#: Longest accepted symbol, in bytes.
MAX_SYMBOL_LEN = 32

_JSON_WS = b" \t\n\r"
_DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# One JSON string (possibly unterminated) or one bracket; used by the nesting pre-scan.
_DEPTH_TOKEN_RE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)
_INT64_LIMIT = 2**63


# --------------------------------------------------------------------------------------------
# JSON decoding helpers
# --------------------------------------------------------------------------------------------


class _Obj:
    """A decoded JSON object that keeps every (key, value) pair in text order."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs


class _Num:
    """A bare JSON number kept as its token text."""

    __slots__ = ("is_int", "text")

    def __init__(self, text: str, is_int: bool) -> None:
        self.text = text
        self.is_int = is_int


def _reject_constant(name: str) -> Any:
    """The non-standard ``NaN`` / ``Infinity`` / ``-Infinity`` literals are invalid JSON."""
    raise _parse_error("bad_json", "invalid JSON text")


def _raw_loads(text: str) -> Any:
    """Decode JSON text keeping pair order, duplicates and number token texts."""
    return json.loads(
        text,
        object_pairs_hook=_Obj,
        parse_int=lambda s: _Num(s, True),
        parse_float=lambda s: _Num(s, False),
        parse_constant=_reject_constant,
    )


def _plain_loads(text: str) -> Any:
    """Decode (already validated) JSON text into ordinary Python objects."""
    return loads_exact(text)


def _parse_error(reason: str, message: str) -> ParseError:
    return ParseError(message, reason)


def _first_too_deep(data: bytes) -> int:
    """Offset of the first bracket that opens nesting level ``MAX_DEPTH + 1``, or -1.

    Strings are skipped so brackets inside them do not count. The scan is only exact for text
    that is valid JSON up to the returned offset; the caller checks that.
    """
    if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
        return -1
    depth = 0
    for m in _DEPTH_TOKEN_RE.finditer(data):
        c = data[m.start()]
        if c == 0x22:  # '"'
            continue
        if c in (0x5B, 0x7B):  # '[' '{'
            depth += 1
            if depth > MAX_DEPTH:
                return m.start()
        else:
            depth -= 1
    return -1


def _decode_json(data: bytes) -> Any:
    """Validate JSON text (UTF-8 bytes) and return the raw tree; raise ParseError."""
    deep_at = _first_too_deep(data)
    if deep_at >= 0:
        # Too deep iff the text before the offending bracket is a valid JSON prefix ending
        # where a value is expected; otherwise an earlier (or this) token is a syntax error.
        prefix = data[:deep_at]
        stack = []
        for m in _DEPTH_TOKEN_RE.finditer(prefix):
            c = prefix[m.start()]
            if c == 0x5B:
                stack.append(b"]")
            elif c == 0x7B:
                stack.append(b"}")
            elif c in (0x5D, 0x7D) and stack:
                stack.pop()
        probe = prefix + b" 0" + b"".join(reversed(stack))
        try:
            _raw_loads(probe.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise _parse_error("bad_json", "invalid JSON text") from None
        raise _parse_error("too_deep", f"JSON nesting deeper than {MAX_DEPTH}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _parse_error("bad_json", "invalid UTF-8 in JSON text") from None
    try:
        return _raw_loads(text)
    except (ValueError, RecursionError):
        raise _parse_error("bad_json", "invalid JSON text") from None


# --------------------------------------------------------------------------------------------
# Scalar validation
# --------------------------------------------------------------------------------------------


def _number_text(value: Any, what: str) -> str:
    """The decimal text of a JSON string or bare number; ``bad_message`` for other types."""
    if isinstance(value, _Num):
        text = value.text
    elif isinstance(value, str):
        text = value
        if not _DECIMAL_RE.fullmatch(text):
            raise _parse_error("bad_number", f"{what}: not a decimal: {text[:40]!r}")
    else:
        raise _parse_error("bad_message", f"{what}: expected a decimal string or number")
    if len(text) > MAX_NUMBER_LEN:
        raise _parse_error("bad_number", f"{what}: longer than {MAX_NUMBER_LEN} characters")
    return text


def _finite(value: Any, what: str) -> float:
    x = float(_number_text(value, what))
    if not math.isfinite(x):
        raise _parse_error("bad_number", f"{what}: not finite")
    return x


def _price(value: Any) -> float:
    x = _finite(value, "price")
    if not x > 0.0:
        raise _parse_error("bad_number", "price: must be > 0")
    return x


def _amount(value: Any) -> float:
    x = _finite(value, "amount")
    if x < 0.0:
        raise _parse_error("bad_number", "amount: must be >= 0")
    return x + 0.0  # -0.0 -> 0.0


def _trade_id(value: Any) -> int:
    if not isinstance(value, _Num):
        raise _parse_error("bad_message", "id: expected a JSON integer")
    text = value.text
    if not value.is_int:
        raise _parse_error("bad_message", "id: not a JSON integer")
    if text.startswith("-"):
        if text != "-0":
            raise _parse_error("bad_number", "id: negative")
        return 0
    if len(text) > 19 or int(text) >= _INT64_LIMIT:
        raise _parse_error("bad_number", "id: >= 2**63")
    return int(text)


def _clean(value: Any) -> bool:
    if value is True or value is False:
        return value
    raise _parse_error("bad_message", "clean: expected true or false")


def _symbol(value: Any) -> str:
    if not isinstance(value, str):
        raise _parse_error("bad_message", "symbol: expected a string")
    if not 1 <= len(value) <= MAX_SYMBOL_LEN or any(not 0x21 <= ord(c) <= 0x7E for c in value):
        raise _parse_error("bad_message", f"symbol: expected 1..{MAX_SYMBOL_LEN} printable ASCII")
    return _upper(value)


def _upper(symbol: str) -> str:
    """ASCII upper-casing (non-ASCII characters are left alone)."""
    return "".join(chr(ord(c) - 32) if "a" <= c <= "z" else c for c in symbol)


def _symbol_name(symbol: Any) -> str:
    """A name given to ``book()`` / ``symbol_index()`` / ``mark_stale()``: the same rules as
    a pushed symbol, but TypeError (not a str) / ValueError (not 1..32 printable ASCII)."""
    if not isinstance(symbol, str):
        raise TypeError(f"symbol must be a str, not {type(symbol).__name__}")
    if not 1 <= len(symbol) <= MAX_SYMBOL_LEN or any(not 0x21 <= ord(c) <= 0x7E for c in symbol):
        raise ValueError(
            f"symbol must be 1..{MAX_SYMBOL_LEN} printable ASCII characters (0x21..0x7E): {symbol[:40]!r}"
        )
    return _upper(symbol)


def _walk_array(value: Any, n: int, what: str, handlers: list[Callable[[Any], Any]]) -> list[Any]:
    """Check an array of exactly ``n`` elements in text order, each with its handler."""
    if not isinstance(value, list):
        raise _parse_error("bad_message", f"{what}: expected an array")
    out = []
    for i, elem in enumerate(value):
        if i >= n:
            raise _parse_error("bad_message", f"{what}: more than {n} elements")
        out.append(handlers[i](elem))
    if len(value) < n:
        raise _parse_error("bad_message", f"{what}: fewer than {n} elements")
    return out


def _levels_list(value: Any, side: str) -> list[tuple[float, float]]:
    if not isinstance(value, list):
        raise _parse_error("bad_message", f"{side}: expected an array")
    return [tuple(_walk_array(lv, 2, f"{side} level", [_price, _amount])) for lv in value]


def _levels(value: Any) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    if not isinstance(value, _Obj):
        raise _parse_error("bad_message", "levels: expected an object")
    sides: dict[str, list[tuple[float, float]]] = {}
    for key, val in value.pairs:
        if key in ("asks", "bids"):
            if key in sides:
                raise _parse_error("bad_message", f"levels: duplicated {key!r}")
            sides[key] = _levels_list(val, key)
    return sides.get("asks", []), sides.get("bids", [])


_Trade = tuple[int, float, float, float, int]  # id, time, price, amount, side


def _side(value: Any) -> int:
    if value == "buy":
        return SIDE_BUY
    if value == "sell":
        return SIDE_SELL
    raise _parse_error("bad_message", "type: expected 'buy' or 'sell'")


_TRADE_FIELDS: dict[str, Callable[[Any], Any]] = {
    "id": _trade_id,
    "time": lambda v: _finite(v, "time"),
    "price": _price,
    "amount": _amount,
    "type": _side,
}


def _trade(value: Any) -> _Trade:
    if not isinstance(value, _Obj):
        raise _parse_error("bad_message", "trade: expected an object")
    got: dict[str, Any] = {}
    for key, val in value.pairs:
        handler = _TRADE_FIELDS.get(key)
        if handler is None:
            continue
        if key in got:
            raise _parse_error("bad_message", f"trade: duplicated {key!r}")
        got[key] = handler(val)
    for key in _TRADE_FIELDS:
        if key not in got:
            raise _parse_error("bad_message", f"trade: missing {key!r}")
    return got["id"], got["time"], got["price"], got["amount"], got["type"]


def _trades_list(value: Any) -> list[_Trade]:
    if not isinstance(value, list):
        raise _parse_error("bad_message", "trades: expected an array")
    return [_trade(t) for t in value]


_Depth = tuple[bool, tuple[list[tuple[float, float]], list[tuple[float, float]]], str]
_Trades = tuple[bool, list[_Trade], str]


def _parse_depth(params: Any) -> _Depth:
    """Validate depth.update params: ``(clean, (asks, bids), SYMBOL)``."""
    return cast(_Depth, tuple(_walk_array(params, 3, "depth params", [_clean, _levels, _symbol])))


def _parse_trades(params: Any) -> _Trades:
    """Validate trades.update params: ``(clean, trades newest first, SYMBOL)``."""
    return cast(_Trades, tuple(_walk_array(params, 3, "trades params", [_clean, _trades_list, _symbol])))


#: The reference twin of each hot channel's Cython parser, and the engine method applying
#: its result, by channel name; a hot row of the channel table without one fails here.
_HOT_IMPL: dict[str, tuple[Callable[[Any], Any], str]] = {
    "depth": (_parse_depth, "_apply_depth"),
    "trades": (_parse_trades, "_apply_trades"),
}
#: The hot ticker channels (stored in the ticker table and history by ``_apply_tickers``),
#: by name: whether it is ``all_ticker``.
_TICKER_IMPL: dict[str, bool] = {"ticker": False, "all_ticker": True}
#: hot push method -> (parse, apply method name), from the channel table.
_HOT: dict[str, tuple[Callable[[Any], Any], str]] = {
    c.update: _HOT_IMPL[c.name]
    for c in _channels.CHANNELS
    if c.hot and c.update and c.name not in _TICKER_IMPL
}
#: hot ticker push method -> whether it is all_ticker, from the channel table.
_TICKER_METHODS: dict[str, bool] = {
    c.update: _TICKER_IMPL[c.name]
    for c in _channels.CHANNELS
    if c.hot and c.update and c.name in _TICKER_IMPL
}


# --------------------------------------------------------------------------------------------
# Book and trade ring
# --------------------------------------------------------------------------------------------


class ReferenceBook(LevelBook):
    """One symbol's order book: per side up to ``depth`` levels, best first. The rules are
    :class:`fastfeed.book.LevelBook`'s; this adds the engine's per-book state and the
    compiled ``Book``'s read API."""

    def __init__(self, symbol: str, depth: int) -> None:
        super().__init__(depth)
        self.symbol = symbol
        self.version = 0
        self.recv_ns = 0
        #: True once a clean=true snapshot was applied since creation / reset / mark_stale.
        self.live = False
        #: ns the book last went from live to stale; 0 while live and if never live.
        self.stale_since = 0
        #: Snapshots compared with the live book they replaced; those that differed; the
        #: levels that differed in the last comparison.
        self.drift_checks = 0
        self.drifts = 0
        self.last_drift = 0

    @property
    def bids(self) -> np.ndarray:
        """Bid levels ``[price, amount]``, best (highest) first. Read-only, like the compiled
        book's zero-copy view (here a copy taken now: it keeps its rows and count)."""
        return readonly(self.bid_side.array())

    @property
    def asks(self) -> np.ndarray:
        """Ask levels ``[price, amount]``, best (lowest) first. Read-only, like the compiled
        book's zero-copy view (here a copy taken now: it keeps its rows and count)."""
        return readonly(self.ask_side.array())

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """A copy ``(bids, asks)`` that later updates do not change (writable, the caller's)."""
        return self.bid_side.array(), self.ask_side.array()

    def to_pandas(self) -> Any:
        """A DataFrame of both sides: columns side ('bid'/'ask'), level, price, amount;
        ``df.attrs``: symbol, version, recv_ns, live, stale_since."""
        import pandas as pd

        bids, asks = self.bids, self.asks
        df = pd.DataFrame(
            {
                "side": np.array(["bid"] * len(bids) + ["ask"] * len(asks), dtype=object),
                "level": np.concatenate([np.arange(len(bids)), np.arange(len(asks))]),
                "price": np.concatenate([bids[:, 0], asks[:, 0]]),
                "amount": np.concatenate([bids[:, 1], asks[:, 1]]),
            }
        )
        df.attrs.update(
            symbol=self.symbol,
            version=self.version,
            recv_ns=self.recv_ns,
            live=self.live,
            stale_since=self.stale_since,
        )
        return df

    def __repr__(self) -> str:
        return (
            f"ReferenceBook({self.symbol!r}, version={self.version}, "
            f"bids={self.n_bids}, asks={self.n_asks}, live={self.live})"
        )

    # --- mutation (engine only) -------------------------------------------------------------

    def _go_stale(self, now_ns: int) -> bool:
        if not self.live:
            return False
        self.live = False
        self.stale_since = now_ns
        return True


class ReferenceRing:
    """The compiled ``MirrorRing``'s API in Python (the base of the reference's trade and
    ticker rings): the newest ``capacity`` records (a power of two) of a numpy dtype, with
    read-only copies where the compiled ring gives views."""

    _what = "record"
    _overwritten: type[IndexError] = IndexError

    def __init__(self, capacity: int, max_log2: int, dtype: np.dtype) -> None:
        if not 1 <= capacity <= 1 << max_log2:
            raise ValueError(f"capacity must be between 1 and 2**{max_log2}")
        cap = 1
        while cap < capacity:
            cap <<= 1
        self.capacity = cap
        self._data = np.zeros(cap, dtype=dtype)
        self._count = 0

    @property
    def count(self) -> int:
        """Records ever stored (the next sequence number)."""
        return self._count

    def __len__(self) -> int:
        """Number of records currently held (at most ``capacity``)."""
        return min(self._count, self.capacity)

    def _gather(self, first: int) -> np.ndarray:
        """Records ``first..count-1`` as a read-only array (like the compiled ring's views)."""
        seqs = np.arange(first, self._count, dtype=np.int64)
        return readonly(self._data[seqs & (self.capacity - 1)])

    def latest(self, n: int = -1) -> np.ndarray:
        """The last ``min(n, count, capacity)`` records (all held if ``n < 0``), oldest
        first (a read-only copy)."""
        held = min(self._count, self.capacity)
        k = held if n < 0 else min(n, held)
        return self._gather(self._count - k)

    def since(self, seq: int) -> np.ndarray:
        """Records with sequence number ``>= seq``, oldest first (a read-only copy).

        Raises ``ValueError`` if ``seq < 0`` and the ring's ``...Overwritten`` error (an
        ``IndexError``) if ``seq < count - capacity``; ``seq >= count`` gives no records.
        """
        if seq < 0:
            raise ValueError("seq must be >= 0")
        if seq >= self._count:
            return self._gather(self._count)
        if seq < self._count - self.capacity:
            raise self._overwritten(
                f"{self._what} {seq} was overwritten (ring holds "
                f"{self._count - self.capacity}..{self._count - 1})"
            )
        return self._gather(seq)

    def _store(self, row: tuple[Any, ...]) -> None:
        self._data[self._count & (self.capacity - 1)] = row
        self._count += 1

    def __repr__(self) -> str:
        return f"{type(self).__name__}(capacity={self.capacity}, count={self._count})"


class ReferenceTradeRing(ReferenceRing):
    """All symbols' trades in one ring of ``capacity`` records (a power of two)."""

    _what = "trade"
    _overwritten = TradesOverwritten

    def __init__(self, capacity: int = 65536, symbols: list[str] | None = None) -> None:
        super().__init__(capacity, 40, TRADE_DTYPE)
        #: Symbol names by index (shared with the engine), used by ``to_pandas``.
        self.symbols: list[str] = symbols if symbols is not None else []

    def to_pandas(self, n: int = -1) -> Any:
        """The newest ``n`` trades as a DataFrame (symbol names resolved, ``exch_dt`` and
        ``recv_dt`` as UTC datetimes)."""
        return trades_frame(self.latest(n), self.symbols)

    def _append(self, trade: _Trade, recv_ns: int, symbol: int) -> None:
        tid, time, price, amount, side = trade
        self._store((tid, self._count, time, recv_ns, price, amount, symbol, side))


class ReferenceTickerRing(ReferenceRing):
    """Every stored ticker record in one ring of ``capacity`` records (a power of two);
    the compiled ``TickerRing``'s API, with read-only copies instead of views."""

    _what = "ticker record"
    _overwritten = TickersOverwritten

    def __init__(self, capacity: int = 8192, symbols: list[str] | None = None) -> None:
        super().__init__(capacity, 32, TICKER_DTYPE)
        self.symbols: list[str] = symbols if symbols is not None else []

    def records(self, seq: int = 0) -> list[Ticker]:
        """Ticker objects of the records with ``seq >= seq`` still held, oldest first."""
        first = max(seq, self._count - self.capacity, 0)
        return [ticker_from_row(r, self.symbols) for r in self._gather(first)]

    def _append(self, row: tuple[Any, ...]) -> None:
        self._store(row)


class _TradeWindow:
    """One symbol's de-duplication state: the newest stored trades, and the last id."""

    __slots__ = ("entries", "last")

    def __init__(self, size: int) -> None:
        self.entries: deque[_Trade] = deque(maxlen=size)
        self.last = -1


# --------------------------------------------------------------------------------------------
# Engine
# --------------------------------------------------------------------------------------------


class ReferenceEngine:
    """Pure-Python engine: inflate -> parse -> books/trades, per docs/engine-semantics.md."""

    def __init__(
        self,
        depth: int = 200,
        trade_capacity: int = 65536,
        max_frame: int = 8 * 1024 * 1024,
        max_symbols: int = 10000,
        trade_dedup_window: int = 512,
        drift_check: bool = True,
        drift_log_size: int = 256,
        ticker_capacity: int = 8192,
        max_ticker_symbols: int = 10000,
    ) -> None:
        if not 1 <= max_ticker_symbols <= 1 << 24:
            raise ValueError("max_ticker_symbols must be 1..16777216")
        self.max_ticker_symbols = max_ticker_symbols
        self._ticker_names: list[str] = []
        self._ticker_index: dict[str, int] = {}
        self._ticker_rows: list[tuple[Any, ...]] = []
        self._ticker_history = ReferenceTickerRing(ticker_capacity, self._ticker_names)
        self._ticker_records = 0
        self._ticker_rejects = {"bad_shape": 0, "bad_symbol": 0, "bad_field": 0}
        self._ticker_dropped_symbols = 0
        if depth < 1:
            raise ValueError("depth must be >= 1")
        if not 1 <= trade_dedup_window <= 1 << 20:
            raise ValueError("trade_dedup_window must be 1..1048576")
        if drift_log_size < 0:
            raise ValueError("drift_log_size must be >= 0")
        self.trade_dedup_window = trade_dedup_window
        self.drift_check = bool(drift_check)
        self._drift_log: deque[DriftRecord] = deque(maxlen=drift_log_size)
        self._drift_checks = 0
        self._drifted = 0
        if max_symbols < 1:
            raise ValueError("max_symbols must be >= 1")
        self.max_symbols = max_symbols
        if trade_capacity < 1:
            raise ValueError("trade_capacity must be >= 1")
        if max_frame < 1:
            raise ValueError("max_frame must be >= 1")
        self.depth = depth
        self.max_frame = max_frame
        self._index: dict[str, int] = {}
        self._names: list[str] = []
        self._trades = ReferenceTradeRing(trade_capacity, self._names)
        self._books: dict[str, ReferenceBook] = {}
        self._windows: dict[str, _TradeWindow] = {}
        self._frames = 0
        #: the last frame fed, as ``Engine.last_kind`` / ``Engine.last_symbol``: its method
        #: code (index into ``_parse.METHOD_NAMES``; -1 if rejected) and the symbol index of
        #: a depth / trades frame (else -1)
        self.last_kind = -1
        self.last_symbol = -1
        self._bytes_in = 0
        self._bytes_inflated = 0
        self._messages = dict.fromkeys(MESSAGE_KEYS, 0)
        self._rejects = dict.fromkeys(REJECT_REASONS, 0)
        self._crossed = 0
        self._duplicates = 0
        self._replayed = 0
        self._out_of_order = 0

    # --- public read API --------------------------------------------------------------------

    @property
    def frames(self) -> int:
        """Frames fed, rejected ones included (the id of the last one), as ``Engine.frames``."""
        return self._frames

    @property
    def trades(self) -> ReferenceTradeRing:
        """The trade ring shared by all symbols."""
        return self._trades

    @property
    def symbols(self) -> list[str]:
        """Known symbols in index order."""
        return list(self._names)

    @property
    def books(self) -> dict[str, ReferenceBook]:
        """``{symbol: book}`` of every known symbol."""
        return dict(self._books)

    def symbol_index(self, symbol: str, *, create: bool = False) -> int:
        """The index of ``symbol`` (upper-cased) in ``symbols``; the rule of :meth:`book`."""
        return self._index[self._lookup(symbol, create)]

    def _lookup(self, symbol: Any, create: bool) -> str:
        name = _symbol_name(symbol)
        if name not in self._index:
            if not create:
                raise UnknownSymbol(
                    f"unknown symbol {name!r}: not seen in data and not registered "
                    "(book(symbol, create=True) registers it)",
                    "unknown_symbol",
                )
            self._book(name)
        return name

    # --- tickers ------------------------------------------------------------------------------

    @property
    def tickers(self) -> np.ndarray:
        """The latest ticker row per symbol (``TICKER_DTYPE``, row ``i`` for
        ``ticker_symbols[i]``; a read-only copy)."""
        return readonly(np.array(self._ticker_rows, dtype=TICKER_DTYPE))

    def ticker(self, symbol: str) -> Ticker:
        """The latest Ticker of ``symbol``; UnknownSymbol if it has none."""
        name = _symbol_name(symbol)
        idx = self._ticker_index.get(name)
        if idx is None:
            raise UnknownSymbol(f"no ticker for {name!r}", "unknown_symbol")
        row = np.array([self._ticker_rows[idx]], dtype=TICKER_DTYPE)[0]
        t: Ticker = ticker_from_row(row, self._ticker_names)
        return t

    @property
    def ticker_symbols(self) -> list[str]:
        return list(self._ticker_names)

    @property
    def ticker_history(self) -> ReferenceTickerRing:
        return self._ticker_history

    def _apply_tickers(self, params: Any, all_ticker: bool, recv_ns: int) -> None:
        """Section 6: ``protocol.parse_tickers``' records, the latest per symbol in the
        table (at most ``max_ticker_symbols`` symbols), every one in the history."""
        rejects: dict[str, int] = {}
        got = parse_tickers(params, recv_ns, all_ticker, rejects)
        for reason, n in rejects.items():
            self._ticker_rejects[reason] += n
        for t in got:
            idx = self._ticker_index.get(t.symbol)
            if idx is None:
                if len(self._ticker_names) < self.max_ticker_symbols:
                    idx = self._ticker_index[t.symbol] = len(self._ticker_names)
                    self._ticker_names.append(t.symbol)
                    self._ticker_rows.append(())
                else:
                    idx = -1
                    self._ticker_dropped_symbols += 1
            row = (
                (self._ticker_history.count, recv_ns, t.timestamp)
                + tuple(getattr(t, f) for f in TICKER_FIELDS)
                + (t.symbol.encode("ascii"), idx, int(all_ticker))
            )
            self._ticker_history._append(row)
            if idx >= 0:
                self._ticker_rows[idx] = row
            self._ticker_records += 1

    @property
    def drift_log(self) -> list[DriftRecord]:
        """The newest ``drift_log_size`` drift records, oldest first (a copy)."""
        return list(self._drift_log)

    def mark_stale(self, symbols: Iterable[str] | None = None, now_ns: int = 0) -> int:
        """Mark the live books of ``symbols`` (None: all) stale, keeping their levels; see
        ``Engine.mark_stale``. Returns the number of books that went stale."""
        if isinstance(symbols, (str, bytes, bytearray)):
            raise TypeError(
                f"symbols must be an iterable of names (or None), not a single {type(symbols).__name__}"
            )
        now_ns = now_ns or _time.time_ns()
        names = list(self._names) if symbols is None else [self._lookup(s, False) for s in symbols]
        return sum(self._books[name]._go_stale(now_ns) for name in names)

    def reset_books(self, now_ns: int = 0) -> None:
        """Empty every book (``version`` += 1) and make it stale; see ``Engine.reset_books``.
        Trade de-duplication state is kept."""
        now_ns = now_ns or _time.time_ns()
        for name in self._names:
            book = self._books[name]
            if book.version == 0:
                continue  # never had data: empty and not live already
            book.clear()
            book.version += 1
            book._go_stale(now_ns)

    @property
    def stats(self) -> dict[str, Any]:
        """Counters (a fresh dict), see docs/engine-semantics.md section 5."""
        return {
            "frames": self._frames,
            "bytes_in": self._bytes_in,
            "bytes_inflated": self._bytes_inflated,
            "messages": dict(self._messages),
            "rejects": dict(self._rejects),
            "crossed_levels_removed": self._crossed,
            "duplicate_trades": self._duplicates,
            "dropped_trades": {"replayed": self._replayed, "duplicate": self._duplicates - self._replayed},
            "out_of_order_trades": self._out_of_order,
            "drift": {
                "checks": self._drift_checks,
                "drifted": self._drifted,
                "by_symbol": {n: self._books[n].drifts for n in self._names if self._books[n].drifts},
            },
            "tickers": {
                "records": self._ticker_records,
                "rejects": dict(self._ticker_rejects),
                "dropped_symbols": self._ticker_dropped_symbols,
            },
        }

    def book(self, symbol: str, *, create: bool = False) -> ReferenceBook:
        """The book of ``symbol`` (upper-cased) if known (seen in data or registered), else
        :class:`~fastfeed.errors.UnknownSymbol`; ``create=True`` registers it."""
        return self._books[self._lookup(symbol, create)]

    def _book(self, name: str) -> ReferenceBook:
        book = self._books.get(name)
        if book is None:
            book = self._books[name] = ReferenceBook(name, self.depth)
            self._index[name] = len(self._names)
            self._names.append(name)
        return book

    # --- feeding -----------------------------------------------------------------------------

    def feed(self, payload: bytes | bytearray | memoryview | str, recv_ns: int = 0) -> Any:
        """Process one WebSocket payload. Returns None for depth/trade/ticker pushes, else
        the dict."""
        data = self._payload_bytes(payload)
        self._frames += 1
        self.last_kind = self.last_symbol = -1
        try:
            if data is None:
                raise _parse_error("bad_json", "str payload is not encodable as UTF-8")
            self._bytes_in += len(data)
            text = self._text(data, isinstance(payload, str))
            return self._message(text, recv_ns)
        except (InflateError, FrameTooLarge, ParseError) as exc:
            self._rejects[exc.reason] += 1
            raise

    @staticmethod
    def _payload_bytes(payload: Any) -> bytes | None:
        """The payload's bytes; None for a str that has no UTF-8 encoding."""
        if isinstance(payload, str):
            try:
                return payload.encode("utf-8")
            except UnicodeEncodeError:
                return None
        if isinstance(payload, (bytes, bytearray)):
            return bytes(payload)
        if isinstance(payload, memoryview):
            if not payload.c_contiguous or payload.itemsize != 1:
                raise TypeError("memoryview payload must be C-contiguous with itemsize 1")
            return payload.tobytes()
        raise TypeError(f"payload must be bytes, bytearray, memoryview or str, not {type(payload).__name__}")

    def _text(self, data: bytes, is_str: bool) -> bytes:
        """Payload bytes -> JSON text bytes (section 1)."""
        if not is_str:
            stripped = data.lstrip(_JSON_WS)
            if not data:
                raise InflateError("empty payload", "empty")
            if not stripped or stripped[0] not in b"{[":
                return self._inflate(data)
        if len(data) > self.max_frame:
            raise FrameTooLarge(f"plain payload larger than {self.max_frame} bytes", "too_large")
        return data

    def _inflate(self, data: bytes) -> bytes:
        d = zlib.decompressobj()
        try:
            out = d.decompress(data, self.max_frame + 1)
        except zlib.error as exc:
            raise InflateError(f"zlib error: {exc}", "zlib_error") from None
        if len(out) > self.max_frame:
            raise FrameTooLarge(f"frame inflates past {self.max_frame} bytes", "too_large")
        if not d.eof:
            raise InflateError("zlib stream truncated", "zlib_truncated")
        if d.unused_data:
            raise InflateError("bytes after the end of the zlib stream", "zlib_trailing")
        self._bytes_inflated += len(out)
        return out

    def _message(self, data: bytes, recv_ns: int) -> Any:
        """JSON text -> message, applied or returned (sections 2-4)."""
        tree = _decode_json(data)
        if not isinstance(tree, _Obj):
            raise _parse_error("bad_message", "top-level JSON value is not an object")
        # One left-to-right pass over the top-level pairs: a duplicated key or a non-string
        # method fails where it is met; params is checked where it is met if the method came
        # before it, otherwise once the whole object has been read.
        method: Any = None
        params: Any = None
        parsed: Any = None
        seen_method = seen_params = False
        for key, val in tree.pairs:
            if key == "method":
                if seen_method:
                    raise _parse_error("bad_message", "duplicated 'method'")
                seen_method, method = True, val
                if method is not None and not isinstance(method, str):
                    raise _parse_error("bad_message", "'method' is not a string")
            elif key == "params":
                if seen_params:
                    raise _parse_error("bad_message", "duplicated 'params'")
                seen_params, params = True, val
                if method in _HOT:
                    parsed = _HOT[method][0](params)
        if method in _HOT:
            if not seen_params:
                raise _parse_error("bad_message", "missing 'params'")
            parse, apply = _HOT[method]
            if parsed is None:
                parsed = parse(params)
            getattr(self, apply)(parsed, recv_ns)
            self._messages[method] += 1
            self.last_kind = _METHOD_CODES[method]
            self.last_symbol = self._index[parsed[2]]
            return None
        obj = _plain_loads(data.decode("utf-8"))
        if method in _TICKER_METHODS:
            self._apply_tickers(obj.get("params"), _TICKER_METHODS[method], recv_ns)
            self._messages[method] += 1
            self.last_kind = _METHOD_CODES[method]
            return None
        if method is None:
            key = "reply"
        elif method in self._messages and method != "reply" and method != "unknown":
            key = method
        else:
            key = "unknown"
        self._messages[key] += 1
        self.last_kind = _METHOD_CODES[key]
        return obj

    def _check_symbol_limit(self, symbol: str) -> None:
        """Input may not grow the symbol table past ``max_symbols`` (calls to ``book()`` may)."""
        if symbol not in self._index and len(self._names) >= self.max_symbols:
            raise _parse_error("symbol_limit", f"a new symbol beyond max_symbols={self.max_symbols}")

    def _apply_depth(self, parsed: _Depth, recv_ns: int) -> None:
        clean, (asks, bids), symbol = parsed
        self._check_symbol_limit(symbol)
        book = self._book(symbol)
        check = clean and book.live and self.drift_check
        old = book.levels() if check else None
        if clean:
            book.live = True
            book.stale_since = 0
        self._crossed += book.apply_levels(clean, asks, bids)
        book.version += 1
        book.recv_ns = recv_ns
        if old is not None:
            missing, extra, changed = drift_counts(old, book.levels())
            self._drift_checks += 1
            book.drift_checks += 1
            book.last_drift = missing + extra + changed
            if book.last_drift:
                book.drifts += 1
                self._drifted += 1
                self._drift_log.append(DriftRecord(self._drifted, symbol, recv_ns, missing, extra, changed))

    def _apply_trades(self, parsed: _Trades, recv_ns: int) -> None:
        clean, trades, symbol = parsed
        self._check_symbol_limit(symbol)
        self._book(symbol)
        index = self._index[symbol]
        window = self._windows.get(symbol)
        if window is None:
            window = self._windows[symbol] = _TradeWindow(self.trade_dedup_window)
        for trade in reversed(trades):  # oldest first
            # A duplicate: the same id and content among the newest stored trades.
            if trade in window.entries:
                self._duplicates += 1
                if clean:
                    self._replayed += 1
                continue
            if trade[0] <= window.last:
                self._out_of_order += 1
            self._trades._append(trade, recv_ns, index)
            window.entries.append(trade)
            window.last = trade[0]
