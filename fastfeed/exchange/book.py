"""The exchange's view of the book a client holds: :class:`fastfeed.book.LevelBook` (the
rules of ``docs/engine-semantics.md`` section 3, shared with the reference engine) fed with
decoded ``depth.update`` messages. The exchange uses it to rebuild the book a client holds
after a given stream of pushes (pre-generated cycles, captures); tests use it to compare
the engine's books with. (tests/test_exchange_oracle.py checks the exchange's stream with a
naive book of its own, independent of these rules.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..book import LevelBook

__all__ = ["BookSet", "SimBook"]


class SimBook(LevelBook):
    """Order book of one symbol with the engine's rules: clean replaces, asks then bids in
    message order, amount 0 deletes, insert by price, capacity ``depth`` per side (worst
    level dropped), crossing levels removed (newer level wins)."""

    def __init__(self, depth: int = 200) -> None:
        super().__init__(depth)
        self.version = 0
        self.crossed_levels_removed = 0

    def apply(
        self,
        clean: bool,
        asks: Iterable[Sequence[Any]],
        bids: Iterable[Sequence[Any]],
    ) -> None:
        """Apply one ``depth.update``; levels are ``[price, amount]`` (strings or numbers)."""
        pa = [(float(p), float(a)) for p, a in asks]
        pb = [(float(p), float(a)) for p, a in bids]
        self.crossed_levels_removed += self.apply_levels(clean, pa, pb)
        self.version += 1

    def apply_message(self, msg: dict[str, Any]) -> None:
        """Apply a decoded ``depth.update`` message (``params = [clean, levels, symbol]``)."""
        clean, levels, _ = msg["params"]
        self.apply(bool(clean), levels.get("asks", ()), levels.get("bids", ()))

    @property
    def bids(self) -> np.ndarray:
        """``(n, 2)`` float64 ``[price, amount]``, best (highest) first. A fresh copy."""
        return self.bid_side.array()

    @property
    def asks(self) -> np.ndarray:
        """``(n, 2)`` float64 ``[price, amount]``, best (lowest) first. A fresh copy."""
        return self.ask_side.array()


class BookSet:
    """Books by (upper-cased) symbol, fed with decoded messages; non-depth messages are
    ignored. ``feed`` returns True if the message was a depth update."""

    def __init__(self, depth: int = 200) -> None:
        self.depth = depth
        self.books: dict[str, SimBook] = {}

    def feed(self, msg: Any) -> bool:
        if not isinstance(msg, dict) or msg.get("method") != "depth.update":
            return False
        sym = str(msg["params"][2]).upper()
        book = self.books.get(sym)
        if book is None:
            book = self.books[sym] = SimBook(self.depth)
        book.apply_message(msg)
        return True

    def __getitem__(self, symbol: str) -> SimBook:
        return self.books[symbol.upper()]

    def __contains__(self, symbol: object) -> bool:
        return isinstance(symbol, str) and symbol.upper() in self.books
