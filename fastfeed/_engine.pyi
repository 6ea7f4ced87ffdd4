from collections.abc import Iterable
from types import TracebackType
from typing import Any

import numpy as np

from ._book import Book
from .layout import DriftRecord
from ._events import EventRing
from ._ring import TradeRing
from ._shm import ShmWriter
from ._ticker import TickerRing
from .protocol import Ticker

__all__ = ["Engine"]

Payload = bytes | bytearray | memoryview | str

class Engine:
    depth: int
    max_symbols: int
    max_frame: int
    trades: TradeRing
    events: EventRing | None
    ticker_history: TickerRing
    trade_dedup_window: int
    drift_check: bool
    drift_log_size: int
    frames: int
    last_kind: int
    last_symbol: int
    def __init__(
        self,
        depth: int = 200,
        trade_capacity: int = 65536,
        max_frame: int = 8388608,
        shm_name: str | None = None,
        event_log: int = 0,
        shm_max_symbols: int | None = None,
        shm_checksum: bool = False,
        inflate_backend: str = "auto",
        max_symbols: int | None = None,
        trade_dedup_window: int = 512,
        drift_check: bool = True,
        drift_log_size: int = 256,
        ticker_capacity: int = 8192,
        max_ticker_symbols: int = 10000,
    ) -> None: ...
    @property
    def inflate_backend(self) -> str: ...
    def feed(self, payload: Payload, recv_ns: int = 0) -> Any | None: ...
    def feed_many(
        self, payloads: Iterable[Payload], recv_ns: int = 0, raise_errors: bool = False
    ) -> list[Any]: ...
    def book(self, symbol: str, *, create: bool = False) -> Book: ...
    def mark_stale(self, symbols: Iterable[str] | None = None, now_ns: int = 0) -> int: ...
    def reset_books(self, now_ns: int = 0) -> None: ...
    @property
    def drift_log(self) -> list[DriftRecord]: ...
    @property
    def books(self) -> dict[str, Book]: ...
    @property
    def symbols(self) -> list[str]: ...
    def symbol_index(self, symbol: str, *, create: bool = False) -> int: ...
    @property
    def tickers(self) -> np.ndarray: ...
    def ticker(self, symbol: str) -> Ticker: ...
    @property
    def ticker_symbols(self) -> list[str]: ...
    @property
    def max_ticker_symbols(self) -> int: ...
    @property
    def stats(self) -> dict[str, Any]: ...
    @property
    def shm_name(self) -> str | None: ...
    @property
    def shm(self) -> ShmWriter | None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Engine: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
