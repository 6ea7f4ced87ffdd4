"""DigiFinex spot WebSocket v1 protocol: requests, the auth signature, replies, errors and
typed records for the pushes that are not on the hot path.

Pure Python, no I/O: the live client, the local exchange and the tests share it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import orjson

from .errors import (  # the request errors live in errors.py; importable from here too
    AuthError,
    BadReply,
    ConnectionLost,
    ParseError,
    RequestError,
    RequestTimeout,
)

__all__ = [
    "DIGIFINEX_URL",
    "MAX_FIELD_LEN",
    "MAX_SYMBOLS_PER_REQUEST",
    "MAX_SYMBOL_LEN",
    "PRIVATE_CHANNELS",
    "PUBLIC_CHANNELS",
    "AuthError",
    "BadReply",
    "BalanceUpdate",
    "ConnectionLost",
    "Field",
    "OrderAlgoUpdate",
    "OrderUpdate",
    "RequestError",
    "RequestTimeout",
    "Secret",
    "Ticker",
    "auth_params",
    "auth_signature",
    "check_auth_result",
    "check_secret",
    "chunk_symbols",
    "encode_request",
    "is_valid_symbol",
    "parse_balances",
    "parse_error",
    "parse_order_algos",
    "parse_orders",
    "parse_pong",
    "parse_records",
    "parse_server_time",
    "parse_tickers",
    "reply_id",
    "safe_text",
    "validate_symbols",
]

#: The live endpoint (configurable everywhere; mirrors: openapi.digifinex.vip / .xyz).
DIGIFINEX_URL = "wss://openapi.digifinex.com/ws/v1/"

#: DigiFinex clients subscribe at most 30 symbols per request; longer lists are split.
MAX_SYMBOLS_PER_REQUEST = 30
# PUBLIC_CHANNELS / PRIVATE_CHANNELS (the subscribable channel names) are derived from the
# channel table, fastfeed.channels (see __getattr__ at the end of this module).
#: Longest symbol (and currency) name in bytes: the engine's limit (``_parse.MAX_SYMBOL``).
MAX_SYMBOL_LEN = 32
#: Longest text kept from a string field of a push (ids, sides, decimal strings): a longer
#: value rejects the record (counted), so no push can pin more memory than this per field.
MAX_FIELD_LEN = 64


class Secret:
    """Holds an API secret so that it never shows in a repr, a log line, ``vars()`` of its
    owner or a traceback's locals: only :meth:`reveal` gives the value back."""

    __slots__ = ("__value",)

    def __init__(self, value: str | bytes) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        check_secret(value)
        self.__value = value

    def reveal(self) -> str | bytes:
        return self.__value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")


def auth_signature(secret: str | bytes | Secret, timestamp_ms: str) -> str:
    """``base64(HMAC_SHA256(key=secret, msg=timestamp_ms))`` (docs/protocol.md, server.auth)."""
    if isinstance(secret, Secret):
        secret = secret.reveal()
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, timestamp_ms.encode("ascii"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def auth_params(api_key: str, secret: str | bytes | Secret, timestamp_ms: int) -> list[str]:
    """The ``params`` of a ``server.auth`` request."""
    ts = str(int(timestamp_ms))
    return [api_key, ts, auth_signature(secret, ts)]


def encode_request(req_id: int, method: str, params: list[Any] | None = None) -> bytes:
    """One request as compact JSON text (requests go out as TEXT frames)."""
    return orjson.dumps({"id": req_id, "method": method, "params": params if params else []})


def check_secret(secret: Any) -> None:
    """Raise ``TypeError`` unless ``secret`` is a ``str``/``bytes`` (the value is never put
    in the message) and ``ValueError`` if it is empty."""
    if isinstance(secret, Secret):
        return
    if not isinstance(secret, (str, bytes)):
        raise TypeError(f"secret must be str or bytes, not {type(secret).__name__}")
    if not secret:
        raise ValueError("secret is empty")


def chunk_symbols(symbols: Iterable[str], size: int = MAX_SYMBOLS_PER_REQUEST) -> Iterator[list[str]]:
    """Split a symbol list into requests of at most ``size`` symbols (checked and upper-cased
    by :func:`validate_symbols`, de-duplicated, order kept). An empty list yields one empty
    list ("all symbols")."""
    items = validate_symbols(symbols)
    if not items:
        yield []
        return
    for i in range(0, len(items), size):
        yield items[i : i + size]


# -- text from the network ---------------------------------------------------------------


_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def safe_text(value: Any, limit: int = 200) -> str:
    """``value`` as text that is safe for a terminal, a log line or an exception message.

    Control characters (C0 including ESC, DEL, C1), bidi overrides and every other
    non-printable character are escaped like ``repr`` does (``\\x1b``, ``\\u202e``); the text
    is cut to ``limit`` characters (``...`` marks the cut). Non-``str`` values are shown via
    ``repr`` (bounded the same way). Every place where text from the network reaches a log
    line, an event reason, an exception message or the terminal view goes through this."""
    if not isinstance(value, str):
        if isinstance(value, (bytes, bytearray, memoryview)):
            value = bytes(value[: limit + 1]).decode("utf-8", "replace")
        elif isinstance(value, (dict, list, tuple)):
            # never build the full repr of something huge
            try:
                value = orjson.dumps(value).decode()[: limit + 1]
            except (TypeError, orjson.JSONEncodeError):
                value = f"<{type(value).__name__}>"
        else:
            try:
                value = str(value)
            except Exception:  # a hostile __str__
                value = f"<{type(value).__name__}>"
    text: str = value
    cut = len(text) > limit
    if cut:
        text = text[:limit]
    if not text.isprintable():
        out = []
        for c in text:
            if c.isprintable():
                out.append(c)
            elif c in _SHORT_ESCAPES:
                out.append(_SHORT_ESCAPES[c])
            else:
                o = ord(c)
                out.append(f"\\x{o:02x}" if o < 0x100 else (f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"))
        text = "".join(out)
    return text + "..." if cut else text


# -- symbols -------------------------------------------------------------------------------


def is_valid_symbol(name: Any) -> bool:
    """The engine's symbol rule: a ``str`` of 1..32 printable ASCII characters, no space or
    other whitespace (``0x21..0x7e``). Case is not checked (names are upper-cased)."""
    if not isinstance(name, str) or not 0 < len(name) <= MAX_SYMBOL_LEN:
        return False
    for c in name:
        if not "!" <= c <= "~":
            return False
    return True


def _upper(name: str) -> str:
    return name.upper()  # ASCII only (checked by is_valid_symbol), so this is exact


def validate_symbols(symbols: Iterable[str] | None, what: str = "symbol") -> list[str]:
    """Check and normalise the names given to a ``subscribe_*``/``unsubscribe_*`` call
    (symbols, or currencies for balance): the ONE place where the client's symbol rules
    live, the same as the engine's (:func:`is_valid_symbol`).

    ``None`` or an empty iterable -> ``[]`` ("all"). Returns the names upper-cased,
    de-duplicated, order kept. Raises ``TypeError`` for a single ``str``/``bytes`` (pass a
    list: a string would be split into letters), a non-iterable, or a name that is not a
    ``str``; ``ValueError`` for an empty, too long, non-ASCII or whitespace-containing name.
    Nothing is sent when this raises."""
    if symbols is None:
        return []
    if isinstance(symbols, (str, bytes, bytearray, memoryview)):
        raise TypeError(
            f"expected a list of {what} names, got a single {type(symbols).__name__} "
            f"{safe_text(symbols, 40)!r}: pass a list, e.g. [{safe_text(symbols, 40)!r}]"
            if isinstance(symbols, str)
            else f"expected a list of {what} names, got {type(symbols).__name__}"
        )
    try:
        items = list(symbols)
    except TypeError:
        raise TypeError(f"expected a list of {what} names, got {type(symbols).__name__}") from None
    out: dict[str, None] = {}
    for s in items:
        if not isinstance(s, str):
            raise TypeError(f"{what} names must be str, got {type(s).__name__} {safe_text(s, 40)}")
        if not is_valid_symbol(s):
            raise ValueError(
                f"invalid {what} name {safe_text(s, 40)!r}: expected 1..{MAX_SYMBOL_LEN} "
                "printable ASCII characters without spaces"
            )
        out.setdefault(_upper(s), None)
    return list(out)


# -- replies -------------------------------------------------------------------------------


def reply_id(msg: dict[str, Any]) -> int | None:
    """The request id of a reply: only a JSON integer counts (``true`` is not request 1,
    ``"7"`` is not 7)."""
    rid = msg.get("id")
    if type(rid) is int:
        return rid
    return None


def _code(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else None
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() and abs(value) < 2**63 else None
    if isinstance(value, str) and 0 < len(value) <= 20:
        try:
            v = int(value)
        except ValueError:
            return None
        return v if -(2**63) <= v < 2**63 else None
    return None


def parse_error(error: Any) -> tuple[int | None, str]:
    """``(code, message)`` from either error shape: a string or ``{"code", "message"}``.
    Never raises: a code that is not an integer (``1e400``, ``true``, text) is ``None``;
    the message is made safe for terminals and logs (:func:`safe_text`)."""
    if isinstance(error, dict):
        code = _code(error.get("code"))
        message = error.get("message", error)
        return code, safe_text(message)
    return None, safe_text(error)


def parse_pong(result: Any) -> str:
    """The result of ``server.ping`` (``"pong"``); anything but a short string is a
    :class:`BadReply`."""
    if not isinstance(result, str) or len(result) > MAX_FIELD_LEN:
        raise BadReply("server.ping", f"expected a string, got {safe_text(result, 60)}")
    return result


def parse_server_time(result: Any) -> int:
    """The result of ``server.time``: integer seconds since the epoch (an integral number
    or a decimal string of one). Anything else is a :class:`BadReply`."""
    v: int | None = None
    if isinstance(result, bool):
        v = None
    elif isinstance(result, int):
        v = result
    elif isinstance(result, float) and math.isfinite(result):
        v = int(result)
    elif isinstance(result, str) and 0 < len(result) <= 20:
        try:
            v = int(result)
        except ValueError:
            v = None
    if v is None or not 0 <= v < 2**40:
        raise BadReply("server.time", f"expected integer seconds, got {safe_text(result, 60)}")
    return v


def check_auth_result(result: Any) -> None:
    """``server.auth`` succeeded only with ``{"status": "success"}``; any other result is an
    :class:`AuthError`."""
    if isinstance(result, dict) and result.get("status") == "success":
        return
    raise AuthError("server.auth", None, f"unexpected result {safe_text(result, 60)}")


# -- pushes --------------------------------------------------------------------------------


def _bad(reason: str, what: str) -> ParseError:
    return ParseError(f"{reason}: {what}", reason)


def _f(v: Any, name: str) -> float:
    """A number field: a JSON number or a decimal string. Missing/null/"" -> NaN; anything
    else that is not a finite number rejects the record."""
    if v is None or v == "":
        return math.nan
    if isinstance(v, bool):
        raise _bad("bad_field", f"{name}: expected a number")
    if isinstance(v, str):
        if len(v) > MAX_FIELD_LEN:
            raise _bad("bad_field", f"{name}: longer than {MAX_FIELD_LEN} characters")
        try:
            x = float(v)
        except ValueError:
            raise _bad("bad_field", f"{name}: not a number") from None
    elif isinstance(v, (int, float)):
        try:
            x = float(v)
        except OverflowError:
            raise _bad("bad_field", f"{name}: out of range") from None
    else:
        raise _bad("bad_field", f"{name}: expected a number")
    if not math.isfinite(x):
        raise _bad("bad_field", f"{name}: not finite")
    return x


def _i(v: Any, name: str, default: int = 0) -> int:
    """An integer field (64-bit range): an integer, an integral float or a string of one.
    Missing/null -> ``default``; anything else rejects the record."""
    if v is None:
        return default
    if isinstance(v, bool):
        raise _bad("bad_field", f"{name}: expected an integer")
    x: int
    if isinstance(v, int):
        x = v
    elif isinstance(v, float):
        if not math.isfinite(v):
            raise _bad("bad_field", f"{name}: not finite")
        if abs(v) >= 2**63:
            raise _bad("bad_field", f"{name}: out of range")
        x = int(v)
    elif isinstance(v, str) and 0 < len(v) <= 20:
        try:
            x = int(v)
        except ValueError:
            raise _bad("bad_field", f"{name}: not an integer") from None
    else:
        raise _bad("bad_field", f"{name}: expected an integer")
    if not -(2**63) <= x < 2**63:
        raise _bad("bad_field", f"{name}: out of range")
    return x


def _s(v: Any, name: str) -> str:
    """A short text field (ids, sides, types): a string of at most ``MAX_FIELD_LEN``
    characters, or an integer (ids). Missing/null -> ``""``."""
    if v is None:
        return ""
    if isinstance(v, str):
        if len(v) > MAX_FIELD_LEN:
            raise _bad("bad_field", f"{name}: longer than {MAX_FIELD_LEN} characters")
        return v
    if isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**64:
        return str(v)
    raise _bad("bad_field", f"{name}: expected a string")


def _dec(v: Any, name: str) -> str:
    """A decimal kept as sent (balances): a string of at most ``MAX_FIELD_LEN`` characters
    or a JSON number (its shortest text). Missing/null -> ``""``."""
    if v is None:
        return ""
    if isinstance(v, str):
        if len(v) > MAX_FIELD_LEN:
            raise _bad("bad_field", f"{name}: longer than {MAX_FIELD_LEN} characters")
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        text = repr(v) if isinstance(v, float) else (str(v) if abs(v) < 10**MAX_FIELD_LEN else "")
        if text and len(text) <= MAX_FIELD_LEN:
            return text
    raise _bad("bad_field", f"{name}: expected a decimal string")


def _sym(v: Any, name: str = "symbol") -> str:
    if not is_valid_symbol(v):
        raise _bad("bad_symbol", f"{name}: expected 1..{MAX_SYMBOL_LEN} printable ASCII characters")
    return _upper(v)


def _records(params: Any, rejects: dict[str, int] | None) -> list[dict[str, Any]]:
    """Accept both ``[{..}, ..]`` (the doc) and ``[[{..}, ..]]`` (seen live). Anything else
    in ``params`` is counted under ``bad_shape``."""
    out: list[dict[str, Any]] = []
    bad = 0
    if not isinstance(params, list):
        bad = 1
    else:
        for item in params:
            if isinstance(item, dict):
                out.append(item)
            elif isinstance(item, list):
                for x in item:
                    if isinstance(x, dict):
                        out.append(x)
                    else:
                        bad += 1
            else:
                bad += 1
    if bad and rejects is not None:
        rejects["bad_shape"] = rejects.get("bad_shape", 0) + bad
    return out


# -- records: one declarative field map per record type -------------------------------------
#
# A record type is a frozen dataclass whose ``FIELDS`` map says, for each attribute read
# from the push, which converter reads it (and from which wire key when that differs from
# the attribute name). Fields are read in map order: the first bad one rejects the record
# with its reason. ``recv_ns`` and fixed per-channel values (``all_ticker``) are not read
# from the wire. :func:`parse_records` turns a push's ``params`` into records for any of
# them; the channel table (:mod:`fastfeed.channels`) says which record each push makes.


@dataclass(frozen=True, slots=True)
class Field:
    """How one record attribute is read from a push record (a dict): ``conv(value, key)``
    for the value under ``key`` (default: the attribute's name); with a tuple of keys,
    the attribute is the tuple of ``conv`` over each. ``conv`` raises
    :class:`~fastfeed.errors.ParseError` for a value that rejects the record."""

    conv: Callable[[Any, str], Any]
    key: str | tuple[str, ...] | None = None


def _status(v: Any, name: str) -> int:
    return _i(v, name, -99)


def _decimal_number(v: Any, name: str) -> float:
    return _f(_dec(v, name), name)


#: The field kinds a record map is written with.
NUMBER = Field(_f)  #: a JSON number or decimal string -> float (missing: NaN)
INTEGER = Field(_i)  #: an integer (64-bit), integral float or string of one (missing: 0)
STATUS = Field(_status)  #: an integer status (missing: -99)
TEXT = Field(_s)  #: a short string (or an integer id) (missing: "")
SYMBOL = Field(_sym)  #: a symbol / currency name, upper-cased (missing or bad: rejected)
DECIMAL_NUMBER = Field(_decimal_number)  #: a decimal kept exact elsewhere, read as float


def _fields(**fields: Field) -> tuple[tuple[str, str | tuple[str, ...], Callable[[Any, str], Any]], ...]:
    """A record's field map (attribute -> :class:`Field`), in read order, as
    ``(attribute, wire key(s), converter)`` triples."""
    return tuple((attr, f.key if f.key is not None else attr, f.conv) for attr, f in fields.items())


_BUILDERS: dict[type, Callable[[dict[str, Any], dict[str, Any]], Any]] = {}


def _builder(cls: Any) -> Callable[[dict[str, Any], dict[str, Any]], Any]:
    """``build(d, extra)`` for record type ``cls``: its ``FIELDS`` map turned once into
    straight-line code (as fast as a hand-written ``from_dict``), cached per type."""
    fn = _BUILDERS.get(cls)
    if fn is not None:
        return fn
    ns: dict[str, Any] = {"cls": cls}
    lines = []
    for i, (attr, key, conv) in enumerate(cls.FIELDS):
        if not attr.isidentifier() or not all(
            isinstance(k, str) for k in (key if isinstance(key, tuple) else (key,))
        ):
            raise TypeError(f"{cls.__name__}.FIELDS: bad entry {attr!r}")  # pragma: no cover - a coding error
        ns[f"c{i}"] = conv
        if isinstance(key, str):
            lines.append(f"    {attr} = c{i}(get({key!r}), {key!r})")
        else:
            lines.append(f"    {attr} = ({''.join(f'c{i}(get({k!r}), {k!r}), ' for k in key)})")
    args = ", ".join(f"{attr}={attr}" for attr, _key, _conv in cls.FIELDS)
    src = (
        "def build(d, extra):\n    get = d.get\n" + "\n".join(lines) + f"\n    return cls({args}, **extra)\n"
    )
    exec(src, ns)
    fn = _BUILDERS[cls] = ns["build"]
    return fn  # type: ignore[no-any-return]


def _build(cls: Any, d: dict[str, Any], extra: dict[str, Any]) -> Any:
    return _builder(cls)(d, extra)


@dataclass(frozen=True, slots=True)
class Ticker:
    """One ``ticker.update`` / ``all_ticker.update`` record (numbers as floats; a missing
    number is NaN)."""

    FIELDS: ClassVar[tuple[Any, ...]] = _fields(
        symbol=SYMBOL,
        last=NUMBER,
        last_qty=NUMBER,
        best_bid=NUMBER,
        best_bid_size=NUMBER,
        best_ask=NUMBER,
        best_ask_size=NUMBER,
        open_24h=NUMBER,
        low_24h=NUMBER,
        base_volume_24h=NUMBER,
        quote_volume_24h=NUMBER,
        timestamp=INTEGER,
        high_24h=NUMBER,
    )

    symbol: str
    last: float
    last_qty: float
    best_bid: float
    best_bid_size: float
    best_ask: float
    best_ask_size: float
    open_24h: float
    low_24h: float
    base_volume_24h: float
    quote_volume_24h: float
    timestamp: int  # exchange time, ms
    recv_ns: int = 0
    all_ticker: bool = False
    high_24h: float = math.nan

    @classmethod
    def from_dict(cls, d: dict[str, Any], recv_ns: int = 0, all_ticker: bool = False) -> Ticker:
        """Raises :class:`~fastfeed.errors.ParseError` (reason ``bad_symbol`` or
        ``bad_field``) for a record that must be rejected."""
        return _build(cls, d, {"recv_ns": recv_ns, "all_ticker": all_ticker})  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """One ``order.update`` record. Fills are the change in cumulative ``filled``."""

    FIELDS: ClassVar[tuple[Any, ...]] = _fields(
        id=TEXT,
        symbol=SYMBOL,
        side=TEXT,
        type=TEXT,
        status=STATUS,
        mode=INTEGER,
        price=NUMBER,
        amount=NUMBER,
        filled=NUMBER,
        price_avg=NUMBER,
        notional=NUMBER,
        timestamp=INTEGER,
    )

    id: str
    symbol: str
    side: str  # "buy" / "sell"
    type: str  # "limit" / "market"
    status: int  # 0 unfilled, 1 partial, 2 filled, 3 canceled, 4 canceled partially filled
    mode: int  # 1 spot, 2 margin
    price: float
    amount: float
    filled: float
    price_avg: float
    notional: float
    timestamp: int  # ms
    recv_ns: int = 0

    @classmethod
    def from_dict(cls, d: dict[str, Any], recv_ns: int = 0) -> OrderUpdate:
        """Raises :class:`~fastfeed.errors.ParseError` for a record that must be rejected."""
        return _build(cls, d, {"recv_ns": recv_ns})  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class OrderAlgoUpdate:
    """One ``order_algo.update`` record. status: -2 fail, -1 canceled, 0 ready,
    1 effecting, 2 success."""

    FIELDS: ClassVar[tuple[Any, ...]] = _fields(
        id=TEXT,
        symbol=SYMBOL,
        side=TEXT,
        status=STATUS,
        mode=INTEGER,
        algo_price=NUMBER,
        trigger_price=NUMBER,
        amount=NUMBER,
        timestamp=INTEGER,
    )

    id: str
    symbol: str
    side: str
    status: int
    mode: int
    algo_price: float
    trigger_price: float
    amount: float
    timestamp: int
    recv_ns: int = 0

    @classmethod
    def from_dict(cls, d: dict[str, Any], recv_ns: int = 0) -> OrderAlgoUpdate:
        """Raises :class:`~fastfeed.errors.ParseError` for a record that must be rejected."""
        return _build(cls, d, {"recv_ns": recv_ns})  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class BalanceUpdate:
    """One ``balance.update`` record. The decimal strings are kept exact in ``raw``."""

    FIELDS: ClassVar[tuple[Any, ...]] = _fields(
        raw=Field(_dec, ("free", "total", "used")),
        currency=Field(_sym, "currency"),
        free=DECIMAL_NUMBER,
        total=DECIMAL_NUMBER,
        used=DECIMAL_NUMBER,
    )

    currency: str
    free: float
    total: float
    used: float
    raw: tuple[str, str, str]  # (free, total, used) as sent
    recv_ns: int = 0

    @classmethod
    def from_dict(cls, d: dict[str, Any], recv_ns: int = 0) -> BalanceUpdate:
        """Raises :class:`~fastfeed.errors.ParseError` for a record that must be rejected."""
        return _build(cls, d, {"recv_ns": recv_ns})  # type: ignore[no-any-return]


R = TypeVar("R")


def parse_records(
    record: type[R], params: Any, recv_ns: int = 0, rejects: dict[str, int] | None = None, **extra: Any
) -> list[R]:
    """The records of type ``record`` (a type with a ``FIELDS`` map) in a push's
    ``params``. Never raises: a record with a bad symbol or field is left out and counted
    in ``rejects`` (by reason: ``bad_shape``, ``bad_symbol``, ``bad_field``) when a dict is
    given. ``extra`` are fixed attribute values (``all_ticker=True``)."""
    out = []
    fixed = {"recv_ns": recv_ns, **extra}
    build = _builder(record)
    for d in _records(params, rejects):
        try:
            out.append(build(d, fixed))
        except ParseError as exc:
            if rejects is not None:
                rejects[exc.reason] = rejects.get(exc.reason, 0) + 1
    return out


def parse_tickers(
    params: Any, recv_ns: int = 0, all_ticker: bool = False, rejects: dict[str, int] | None = None
) -> list[Ticker]:
    """The records of a ``ticker.update``/``all_ticker.update`` push. Never raises: a
    record with a bad symbol or field is left out and counted in ``rejects`` (by reason:
    ``bad_shape``, ``bad_symbol``, ``bad_field``) when a dict is given. The same holds for
    the other ``parse_*`` functions."""
    return parse_records(Ticker, params, recv_ns, rejects, all_ticker=all_ticker)


def parse_orders(params: Any, recv_ns: int = 0, rejects: dict[str, int] | None = None) -> list[OrderUpdate]:
    return parse_records(OrderUpdate, params, recv_ns, rejects)


def parse_order_algos(
    params: Any, recv_ns: int = 0, rejects: dict[str, int] | None = None
) -> list[OrderAlgoUpdate]:
    return parse_records(OrderAlgoUpdate, params, recv_ns, rejects)


def parse_balances(
    params: Any, recv_ns: int = 0, rejects: dict[str, int] | None = None
) -> list[BalanceUpdate]:
    return parse_records(BalanceUpdate, params, recv_ns, rejects)


if TYPE_CHECKING:
    #: names of the subscribable public / private channels (from :mod:`fastfeed.channels`)
    PUBLIC_CHANNELS: tuple[str, ...]
    PRIVATE_CHANNELS: tuple[str, ...]
else:

    def __getattr__(name: str) -> Any:
        # PUBLIC_CHANNELS / PRIVATE_CHANNELS come from the channel table (fastfeed.channels),
        # which imports this module: resolved on first use. Hidden from type checkers, so a
        # misspelt name is still an error for them.
        if name in ("PUBLIC_CHANNELS", "PRIVATE_CHANNELS"):
            from . import channels

            return getattr(channels, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
