"""Configuration of the local exchange: symbols, market model, wire options, limits."""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "DEFAULT_PATH",
    "DEFAULT_SYMBOLS",
    "ExchangeConfig",
    "SymbolSpec",
    "accounts_from_env",
]

DEFAULT_PATH = "/ws/v1/"

#: name -> (initial price, price decimals, amount decimals)
_KNOWN: dict[str, tuple[float, int, int]] = {
    "BTC_USDT": (60000.0, 2, 4),
    "ETH_USDT": (3000.0, 2, 4),
    "XRP_USDT": (0.52, 4, 1),
    "DOGE_USDT": (0.12, 5, 0),
    "SOL_USDT": (150.0, 2, 3),
    "LTC_USDT": (80.0, 2, 4),
    "ADA_USDT": (0.45, 4, 1),
    "TRX_USDT": (0.11, 5, 1),
    "DOT_USDT": (6.5, 3, 2),
    "BNB_USDT": (550.0, 2, 3),
}

#: The ten symbols simulated when no list is given.
DEFAULT_SYMBOLS: tuple[str, ...] = tuple(_KNOWN)


@dataclass(frozen=True)
class SymbolSpec:
    """One simulated market: start price, decimals of prices and amounts."""

    name: str
    price: float
    price_decimals: int
    amount_decimals: int

    @classmethod
    def for_symbol(cls, name: str) -> SymbolSpec:
        """Known defaults for common symbols; otherwise derived deterministically from
        the name (a price between 0.01 and 50 000 with about 6 significant digits)."""
        name = name.upper()
        if name in _KNOWN:
            price, pd, ad = _KNOWN[name]
            return cls(name, price, pd, ad)
        h = zlib.crc32(name.encode())
        price = (1 + (h >> 8) % 9) * 10.0 ** ((h % 7) - 2)
        digits = max(1, math.floor(math.log10(price)) + 1)
        pd = max(0, 6 - digits)
        return cls(name, price, pd, 4)

    @property
    def base(self) -> str:
        """Base currency (``BTC`` of ``BTC_USDT``)."""
        return self.name.split("_", 1)[0]

    @property
    def quote(self) -> str:
        """Quote currency (``USDT`` of ``BTC_USDT``)."""
        parts = self.name.split("_", 1)
        return parts[1] if len(parts) == 2 else "USDT"


def accounts_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{api_key: secret}`` from ``FASTFEED_API_KEY`` / ``FASTFEED_API_SECRET`` (if both set)."""
    env = os.environ if environ is None else environ
    key, secret = env.get("FASTFEED_API_KEY"), env.get("FASTFEED_API_SECRET")
    return {key: secret} if key and secret else {}


def _opt(default: Any, help: str, *, factory: Any = None, **cli: Any) -> Any:
    """A dataclass field with its command-line help in ``metadata`` (see ExchangeConfig)."""
    meta = {"help": help, **cli}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ExchangeConfig:
    """Everything the local exchange can be told. Every field has a usable default.

    Rates and modes:

    * ``rate``: market messages per second over all symbols (depth, trades, ticker pushes
      together). ``None`` = as fast as the subscribed clients drain their sockets;
      ``0`` = no automatic market traffic (tests drive it with ``Exchange.step(n)``).
    * ``pregenerate``: if > 0, build a cycle of that many market frames at start-up
      (compressed, WebSocket-framed) and loop over it instead of simulating live. This is
      the ≥ 200k msg/s mode. The cycle is as consistent as the live stream: each cycle
      starts with a snapshot of every symbol, extra snapshots (``snapshot_fraction``) equal
      the book after exactly the pushes before them, and the cycle ends with one depth push
      per symbol back to the opening books, so even the snapshots at the wrap equal the
      book before them. Trades and ticker pushes are rendered when sent: trade ids keep
      increasing across wraps (one cycle's worth of ids per wrap), times are current,
      24 h volumes accumulate. A depth subscription starts at the next snapshot of the
      symbol; a trades subscription gets no replay.
    * ``first_trade_id``: None (default) = derived from the seed and the start time
      (``market.first_trade_id``: start in ms × 1000 + a seed-dependent offset < 1000), so
      a later restart on the same seed starts above every id served before; an int fixes it.
    * ``capture``: serve this capture file (``fastfeed.capture`` format) to each client
      after its first subscribe request instead of simulating a market.
    """

    # Each field's metadata: "help" (the text of its `fastfeed exchange` flag, which is
    # generated from these fields), optionally "none" (the word that means None on the
    # command line), "zero_is_none" (0 also means None there), "alias" (an older flag name),
    # "metavar".
    host: str = _opt("127.0.0.1", "interface to bind")
    port: int = _opt(0, "TCP port, 0 = any free port")
    path: str = _opt(DEFAULT_PATH, "advertised WebSocket path (any path is answered)")
    symbols: Sequence[str] = _opt(DEFAULT_SYMBOLS, "symbols to simulate (default: ten major USDT pairs)")
    seed: int | None = _opt(None, "market seed (default: random, printed at start)")

    # --- market model
    rate: float | None = _opt(
        100.0,
        "market messages/s over all symbols; 'max' = as fast as clients read, 0 = no automatic traffic",
        none="max",
    )
    book_levels: int = _opt(30, "levels per side (1..150)")
    trade_replay: int = _opt(20, "recent trades sent after a trades subscribe")
    snapshot_interval: float | None = _opt(
        60.0, "seconds between clean=true depth snapshots, 0 or 'off' = none", none="off", zero_is_none=True
    )
    snapshot_fraction: float = _opt(0.02, "share of extra snapshots in a --pregenerate cycle (0..1)")
    first_trade_id: int | None = _opt(
        None, "first trade id (default: derived from the seed and the start time)"
    )
    number_style: Literal["plain", "padded"] = _opt(
        "plain", "'padded' sends 8-decimal numbers like some live frames"
    )
    integer_trade_time: bool = _opt(False, "send trade times as integer seconds")
    ticker_nested: bool = _opt(False, "send ticker params as [[{...}]]")
    all_ticker_interval: float = _opt(1.0, "seconds between all-symbol ticker pushes")
    pregenerate: int = _opt(
        0, "pre-generate a cycle of N frames and loop over it (the >=200k msg/s mode)", metavar="N"
    )
    batch: int = _opt(2048, "max frames per write batch")
    compress_level: int = _opt(6, "zlib level of pushed frames (0..9)")

    # --- private channels
    accounts: Mapping[str, str] = _opt(
        None,
        "an API account KEY:SECRET (repeatable); FASTFEED_API_KEY/FASTFEED_API_SECRET also add one",
        factory=dict,
        alias="--account",
    )
    auth_window: float | None = _opt(
        300.0, "max |now - auth timestamp| in seconds, 0 or 'off' = unchecked", none="off", zero_is_none=True
    )
    private_interval: float = _opt(1.0, "seconds between private simulation steps")

    # --- wire
    text_replies: bool = _opt(False, "send replies as plain TEXT frames")
    error_style: Literal["object", "string"] = _opt("object", "error field as {code, message} or as a string")
    idle_timeout: float | None = _opt(
        60.0,
        "close after this many seconds without client traffic, 0 or 'off' = never",
        none="off",
        zero_is_none=True,
    )
    max_connection_age: float | None = _opt(
        7200.0,
        "close connections older than this many seconds, 0 or 'off' = never",
        none="off",
        zero_is_none=True,
        alias="--max-age",
    )
    max_subscribe_symbols: int | None = _opt(
        30, "max symbols per subscribe request, 'off' = no limit", none="off"
    )
    max_request_size: int = _opt(64 * 1024, "max bytes of a client request")
    write_buffer_high: int = _opt(4 * 1024 * 1024, "write buffer high-water mark in bytes")
    use_aiofastnet: bool | None = _opt(None, "use aiofastnet for the listener (default: if installed)")
    send_log: bool = _opt(False, "record (first_frame, frames, time_ns) per write (benchmarks)")

    # --- capture serving
    # _opt returns a dataclasses.field(), not a shared default value
    capture: str | os.PathLike[str] | None = _opt(  # noqa: RUF009
        None, "serve this capture file instead of simulating", metavar="FILE"
    )
    capture_speed: float | None = _opt(
        None, "1 = recorded pacing, 2 = twice as fast (default: full speed)", none="max"
    )
    capture_close: bool = _opt(
        True, "close connections after the capture (--no-capture-close keeps them open)"
    )
    capture_skip_replies: bool = _opt(True, "skip the recorded replies to requests when serving a capture")

    def __post_init__(self) -> None:
        syms: list[str] = []
        for s in self.symbols:
            u = str(s).strip().upper()
            if not u or len(u) > 32 or any(not (0x21 <= ord(c) <= 0x7E) for c in u):
                raise ValueError(f"invalid symbol {s!r} (1-32 printable ASCII characters without spaces)")
            if u not in syms:
                syms.append(u)
        if not syms and self.capture is None:
            raise ValueError("at least one symbol is required")
        self.symbols = tuple(syms)
        if self.rate is not None and self.rate < 0:
            raise ValueError("rate must be >= 0 or None")
        if not 1 <= self.book_levels <= 150:
            raise ValueError("book_levels must be in 1..150 (keep it below the client's depth)")
        if self.first_trade_id is not None and (
            isinstance(self.first_trade_id, bool)
            or not isinstance(self.first_trade_id, int)
            or not 0 <= self.first_trade_id < 2**62
        ):
            raise ValueError("first_trade_id must be None or an int in 0 .. 2**62")
        if self.pregenerate < 0:
            raise ValueError("pregenerate must be >= 0")
        if self.batch < 1:
            raise ValueError("batch must be >= 1")
        if self.error_style not in ("object", "string"):
            raise ValueError("error_style must be 'object' or 'string'")
        if self.number_style not in ("plain", "padded"):
            raise ValueError("number_style must be 'plain' or 'padded'")
        if self.capture_speed is not None and self.capture_speed <= 0:
            raise ValueError("capture_speed must be > 0 or None")
        if not 0.0 <= self.snapshot_fraction <= 1.0:
            raise ValueError("snapshot_fraction must be in [0, 1]")
        for name in ("snapshot_interval", "auth_window", "idle_timeout", "max_connection_age"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a number of seconds > 0, or None (off)")
        for name in ("private_interval", "all_ticker_interval"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a number of seconds > 0")
        if self.rate is not None and not math.isfinite(self.rate):
            raise ValueError("rate must be finite (None = as fast as clients read)")
        for name, lo, hi in (
            ("port", 0, 65535),
            ("compress_level", -1, 9),
            ("trade_replay", 0, 1 << 20),
            ("max_request_size", 1, 1 << 30),
            ("write_buffer_high", 1, 1 << 40),
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"{name} must be an integer in {lo}..{hi}")
        if self.max_subscribe_symbols is not None and (
            isinstance(self.max_subscribe_symbols, bool)
            or not isinstance(self.max_subscribe_symbols, int)
            or self.max_subscribe_symbols < 1
        ):
            raise ValueError("max_subscribe_symbols must be an integer >= 1, or None (no limit)")
        if not self.path.startswith("/"):
            self.path = "/" + self.path
        if self.capture is not None:
            self.capture = Path(self.capture)
        self.accounts = dict(self.accounts)

    def specs(self) -> list[SymbolSpec]:
        """The :class:`SymbolSpec` of every configured symbol, in order."""
        return [SymbolSpec.for_symbol(s) for s in self.symbols]

    def replace(self, **changes: object) -> ExchangeConfig:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]
