"""DigiFinex spot WebSocket v1 protocol: requests, the auth signature, replies, errors and
typed records for the pushes that are not on the hot path.

Pure Python, no I/O: the live client, the local exchange and the tests share it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import orjson

from .errors import FastfeedError

__all__ = [
    "DIGIFINEX_URL",
    "MAX_SYMBOLS_PER_REQUEST",
    "PUBLIC_CHANNELS",
    "PRIVATE_CHANNELS",
    "RequestError",
    "RequestTimeout",
    "Secret",
    "AuthError",
    "ConnectionLost",
    "Ticker",
    "OrderUpdate",
    "OrderAlgoUpdate",
    "BalanceUpdate",
    "auth_signature",
    "auth_params",
    "encode_request",
    "chunk_symbols",
    "parse_error",
    "parse_tickers",
    "parse_orders",
    "parse_order_algos",
    "parse_balances",
]

#: The live endpoint (configurable everywhere; mirrors: openapi.digifinex.vip / .xyz).
DIGIFINEX_URL = "wss://openapi.digifinex.com/ws/v1/"

#: DigiFinex clients subscribe at most 30 symbols per request; longer lists are split.
MAX_SYMBOLS_PER_REQUEST = 30
PUBLIC_CHANNELS = ("trades", "depth", "ticker", "all_ticker")
PRIVATE_CHANNELS = ("order", "order_algo", "balance")


class RequestError(FastfeedError):
    """The server answered a request with a non-null ``error``.

    ``code`` is the integer code when the server sent ``{"code", "message"}`` (``None``
    for the plain string shape); ``message`` the text; ``method`` the request's method.
    """

    reason = "request_error"

    def __init__(self, method: str, code: int | None, message: str) -> None:
        self.method = method
        self.code = code
        self.message = message
        where = f" (code {code})" if code is not None else ""
        super().__init__(f"{method} failed{where}: {message}")


class AuthError(RequestError):
    """``server.auth`` was refused, or a private channel was asked for without auth."""

    reason = "auth_error"


class RequestTimeout(FastfeedError, TimeoutError):
    """No reply to a request within the timeout (the server may just drop requests)."""

    reason = "timeout"


class ConnectionLost(FastfeedError, ConnectionError):
    """The connection closed while a request was waiting for its reply."""

    reason = "connection_lost"


class Secret:
    """Holds an API secret so that it never shows in a repr, a log line, ``vars()`` of its
    owner or a traceback's locals: only :meth:`reveal` gives the value back."""

    __slots__ = ("__value",)

    def __init__(self, value: str | bytes) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        self.__value = value

    def reveal(self) -> str | bytes:
        return self.__value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")


def auth_signature(secret: str | bytes | Secret, timestamp_ms: str) -> str:
    """``base64(HMAC_SHA256(key=secret, msg=timestamp_ms))`` as PROTOCOL-NOTES describe."""
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


def chunk_symbols(symbols: Iterable[str], size: int = MAX_SYMBOLS_PER_REQUEST) -> Iterator[list[str]]:
    """Split a symbol list into requests of at most ``size`` symbols (upper-cased,
    de-duplicated, order kept). An empty list yields one empty list ("all symbols")."""
    seen: dict[str, None] = {}
    for s in symbols:
        seen.setdefault(s.upper() if isinstance(s, str) else str(s), None)
    items = list(seen)
    if not items:
        yield []
        return
    for i in range(0, len(items), size):
        yield items[i : i + size]


def parse_error(error: Any) -> tuple[int | None, str]:
    """``(code, message)`` from either error shape: a string or ``{"code", "message"}``."""
    if isinstance(error, dict):
        code = error.get("code")
        try:
            code = int(code) if code is not None else None
        except (TypeError, ValueError):
            code = None
        return code, str(error.get("message", error))
    return None, str(error)


def _f(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _i(v: Any, default: int = 0) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


def _records(params: Any) -> list[dict[str, Any]]:
    """Accept both ``[{..}, ..]`` (the doc) and ``[[{..}, ..]]`` (seen live)."""
    if not isinstance(params, list):
        return []
    out: list[dict[str, Any]] = []
    for item in params:
        if isinstance(item, dict):
            out.append(item)
        elif isinstance(item, list):
            out.extend(x for x in item if isinstance(x, dict))
    return out


@dataclass(frozen=True, slots=True)
class Ticker:
    """One ``ticker.update`` / ``all_ticker.update`` record (numbers as floats)."""

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

    @classmethod
    def from_dict(cls, d: dict[str, Any], recv_ns: int = 0, all_ticker: bool = False) -> Ticker:
        return cls(
            symbol=str(d.get("symbol", "")).upper(),
            last=_f(d.get("last")),
            last_qty=_f(d.get("last_qty")),
            best_bid=_f(d.get("best_bid")),
            best_bid_size=_f(d.get("best_bid_size")),
            best_ask=_f(d.get("best_ask")),
            best_ask_size=_f(d.get("best_ask_size")),
            open_24h=_f(d.get("open_24h")),
            low_24h=_f(d.get("low_24h")),
            base_volume_24h=_f(d.get("base_volume_24h")),
            quote_volume_24h=_f(d.get("quote_volume_24h")),
            timestamp=_i(d.get("timestamp")),
            recv_ns=recv_ns,
            all_ticker=all_ticker,
        )


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """One ``order.update`` record. Fills are the change in cumulative ``filled``."""

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
        return cls(
            id=str(d.get("id", "")),
            symbol=str(d.get("symbol", "")).upper(),
            side=str(d.get("side", "")),
            type=str(d.get("type", "")),
            status=_i(d.get("status"), -99),
            mode=_i(d.get("mode")),
            price=_f(d.get("price")),
            amount=_f(d.get("amount")),
            filled=_f(d.get("filled")),
            price_avg=_f(d.get("price_avg")),
            notional=_f(d.get("notional")),
            timestamp=_i(d.get("timestamp")),
            recv_ns=recv_ns,
        )


@dataclass(frozen=True, slots=True)
class OrderAlgoUpdate:
    """One ``order_algo.update`` record. status: -2 fail, -1 canceled, 0 ready,
    1 effecting, 2 success."""

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
        return cls(
            id=str(d.get("id", "")),
            symbol=str(d.get("symbol", "")).upper(),
            side=str(d.get("side", "")),
            status=_i(d.get("status"), -99),
            mode=_i(d.get("mode")),
            algo_price=_f(d.get("algo_price")),
            trigger_price=_f(d.get("trigger_price")),
            amount=_f(d.get("amount")),
            timestamp=_i(d.get("timestamp")),
            recv_ns=recv_ns,
        )


@dataclass(frozen=True, slots=True)
class BalanceUpdate:
    """One ``balance.update`` record. The decimal strings are kept exact in ``raw``."""

    currency: str
    free: float
    total: float
    used: float
    raw: tuple[str, str, str]  # (free, total, used) as sent
    recv_ns: int = 0

    @classmethod
    def from_dict(cls, d: dict[str, Any], recv_ns: int = 0) -> BalanceUpdate:
        free, total, used = (str(d.get(k, "")) for k in ("free", "total", "used"))
        return cls(
            currency=str(d.get("currency", "")).upper(),
            free=_f(free),
            total=_f(total),
            used=_f(used),
            raw=(free, total, used),
            recv_ns=recv_ns,
        )


def parse_tickers(params: Any, recv_ns: int = 0, all_ticker: bool = False) -> list[Ticker]:
    return [Ticker.from_dict(d, recv_ns, all_ticker) for d in _records(params)]


def parse_orders(params: Any, recv_ns: int = 0) -> list[OrderUpdate]:
    return [OrderUpdate.from_dict(d, recv_ns) for d in _records(params)]


def parse_order_algos(params: Any, recv_ns: int = 0) -> list[OrderAlgoUpdate]:
    return [OrderAlgoUpdate.from_dict(d, recv_ns) for d in _records(params)]


def parse_balances(params: Any, recv_ns: int = 0) -> list[BalanceUpdate]:
    return [BalanceUpdate.from_dict(d, recv_ns) for d in _records(params)]
