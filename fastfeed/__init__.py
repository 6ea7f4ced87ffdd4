"""fastfeed: a Cython-accelerated feed handler for the DigiFinex spot WebSocket v1 API."""

from __future__ import annotations

from typing import NoReturn

from .errors import (
    ConnectFailed,
    EngineBusy,
    EventsOverwritten,
    FastfeedError,
    FeedClosed,
    FrameError,
    FrameTooLarge,
    InflateError,
    MessageError,
    NotConnected,
    ParseError,
    ShmCorrupt,
    ShmError,
    ShmFull,
    ShmInUse,
    ShmLayoutError,
    ShmNotFound,
    ShmStale,
    ShmTornRead,
    TickersOverwritten,
    TradesOverwritten,
    UnknownSymbol,
)
from .events import EVENT_DTYPE
from .layout import TICKER_DTYPE, TRADE_DTYPE
from .protocol import (
    DIGIFINEX_URL,
    AuthError,
    BadReply,
    BalanceUpdate,
    ConnectionLost,
    OrderAlgoUpdate,
    OrderUpdate,
    RequestError,
    RequestTimeout,
    Ticker,
)
from .sinks import CaptureSink, FrameChange, Sink

try:
    from ._book import Book
    from ._engine import Engine
    from ._inflate import Inflater
    from ._ring import TradeRing
    from ._ticker import TickerRing
    from .client import ConnectionEvent, Feed, FeedOptions, FeedOptionsKwargs, connect
    from .shards import ShardedFeed, connect_sharded
    from .shm import attach

    COMPILED = True
    _IMPORT_ERROR: BaseException | None = None
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    COMPILED = False
    _IMPORT_ERROR = exc

__version__ = "0.1.0"

__all__ = [
    "COMPILED",
    "DIGIFINEX_URL",
    "EVENT_DTYPE",
    "TICKER_DTYPE",
    "TRADE_DTYPE",
    "AuthError",
    "BadReply",
    "BalanceUpdate",
    "Book",
    "CaptureSink",
    "ConnectFailed",
    "ConnectionEvent",
    "ConnectionLost",
    "Engine",
    "EngineBusy",
    "EventsOverwritten",
    "FastfeedError",
    "Feed",
    "FeedClosed",
    "FeedOptions",
    "FeedOptionsKwargs",
    "FrameChange",
    "FrameError",
    "FrameTooLarge",
    "InflateError",
    "Inflater",
    "MessageError",
    "NotConnected",
    "OrderAlgoUpdate",
    "OrderUpdate",
    "ParseError",
    "RequestError",
    "RequestTimeout",
    "ShardedFeed",
    "ShmCorrupt",
    "ShmError",
    "ShmFull",
    "ShmInUse",
    "ShmLayoutError",
    "ShmNotFound",
    "ShmStale",
    "ShmTornRead",
    "Sink",
    "Ticker",
    "TickerRing",
    "TickersOverwritten",
    "TradeRing",
    "TradesOverwritten",
    "UnknownSymbol",
    "attach",
    "connect",
    "connect_sharded",
]


def __getattr__(name: str) -> NoReturn:  # pragma: no cover - only when the extensions failed to load
    if name in (
        "Book",
        "Engine",
        "Inflater",
        "TradeRing",
        "TickerRing",
        "connect",
        "Feed",
        "FeedOptions",
        "FeedOptionsKwargs",
        "ConnectionEvent",
        "attach",
        "connect_sharded",
        "ShardedFeed",
    ):
        raise ImportError(
            f"fastfeed.{name} needs the compiled extensions, which failed to load: "
            f"{_IMPORT_ERROR!r}. Rebuild with `pip install -e .`."
        )
    raise AttributeError(name)
