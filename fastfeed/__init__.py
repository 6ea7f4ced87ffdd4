"""fastfeed: a Cython-accelerated feed handler for the DigiFinex spot WebSocket v1 API."""

from __future__ import annotations

from .errors import (
    ConnectFailed,
    EngineBusy,
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
    TradesOverwritten,
    EventsOverwritten,
    UnknownSymbol,
)
from .events import EVENT_DTYPE
from .layout import TRADE_DTYPE
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

try:
    from ._book import Book
    from ._engine import Engine
    from ._inflate import Inflater
    from ._ring import TradeRing

    from .client import ConnectionEvent, Feed, FeedOptions, connect
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
    "TRADE_DTYPE",
    "AuthError",
    "BadReply",
    "BalanceUpdate",
    "Book",
    "ConnectFailed",
    "ConnectionEvent",
    "ConnectionLost",
    "Engine",
    "EngineBusy",
    "FastfeedError",
    "Feed",
    "FeedClosed",
    "FeedOptions",
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
    "ShmCorrupt",
    "ShmError",
    "ShmFull",
    "ShmInUse",
    "ShmLayoutError",
    "ShmNotFound",
    "ShmStale",
    "ShmTornRead",
    "Ticker",
    "TradeRing",
    "TradesOverwritten",
    "EventsOverwritten",
    "UnknownSymbol",
    "attach",
    "connect",
]


def __getattr__(name: str):  # pragma: no cover - only when the extensions failed to load
    if name in ("Book", "Engine", "Inflater", "TradeRing", "connect", "Feed", "FeedOptions",
                "ConnectionEvent", "attach"):
        raise ImportError(
            f"fastfeed.{name} needs the compiled extensions, which failed to load: "
            f"{_IMPORT_ERROR!r}. Rebuild with `pip install -e .`."
        )
    raise AttributeError(name)
