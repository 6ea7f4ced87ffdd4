"""A small pure-Python order book with exactly the update rules of
``docs/engine-semantics.md`` (section 3). The exchange uses it to rebuild the book a client
holds after a given stream of pushes (pre-generated cycles, captures), and tests use it as
an oracle that does not depend on the compiled engine.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = ["SimBook", "BookSet"]


class _Side:
    """One side, kept sorted best-first through a signed key (asks +price, bids -price)."""

    __slots__ = ("keys", "amounts", "sign")

    def __init__(self, sign: float) -> None:
        self.keys: list[float] = []
        self.amounts: list[float] = []
        self.sign = sign

    def clear(self) -> None:
        self.keys.clear()
        self.amounts.clear()

    def remove(self, price: float) -> None:
        key = self.sign * price
        i = bisect_left(self.keys, key)
        if i < len(self.keys) and self.keys[i] == key:
            del self.keys[i]
            del self.amounts[i]

    def upsert(self, price: float, amount: float, depth: int) -> None:
        key = self.sign * price
        keys = self.keys
        i = bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            self.amounts[i] = amount
            return
        if len(keys) >= depth:
            if i >= len(keys):
                return
            keys.pop()
            self.amounts.pop()
        keys.insert(i, key)
        self.amounts.insert(i, amount)

    def drop_best(self, n: int) -> None:
        if n:
            del self.keys[:n]
            del self.amounts[:n]

    def array(self) -> np.ndarray:
        out = np.empty((len(self.keys), 2), dtype=np.float64)
        if self.keys:
            out[:, 0] = self.keys
            out[:, 0] *= self.sign
            out[:, 1] = self.amounts
        return out


class SimBook:
    """Order book of one symbol with the engine's rules: clean replaces, asks then bids in
    message order, amount 0 deletes, insert by price, capacity ``depth`` per side (worst
    level dropped), crossing levels removed (newer level wins)."""

    def __init__(self, depth: int = 200) -> None:
        if depth < 1:
            raise ValueError("depth must be >= 1")
        self.depth = depth
        self._asks = _Side(1.0)
        self._bids = _Side(-1.0)
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
        if clean:
            self._asks.clear()
            self._bids.clear()
        depth = self.depth
        for price, amount in pa:
            if amount == 0.0:
                self._asks.remove(price)
            else:
                self._asks.upsert(price, amount, depth)
                n = bisect_right(self._bids.keys, -price)  # bids with price >= p
                self.crossed_levels_removed += n
                self._bids.drop_best(n)
        for price, amount in pb:
            if amount == 0.0:
                self._bids.remove(price)
            else:
                self._bids.upsert(price, amount, depth)
                n = bisect_right(self._asks.keys, price)  # asks with price <= p
                self.crossed_levels_removed += n
                self._asks.drop_best(n)
        self.version += 1

    def apply_message(self, msg: dict[str, Any]) -> None:
        """Apply a decoded ``depth.update`` message (``params = [clean, levels, symbol]``)."""
        clean, levels, _ = msg["params"]
        self.apply(bool(clean), levels.get("asks", ()), levels.get("bids", ()))

    @property
    def bids(self) -> np.ndarray:
        """``(n, 2)`` float64 ``[price, amount]``, best (highest) first. A fresh copy."""
        return self._bids.array()

    @property
    def asks(self) -> np.ndarray:
        """``(n, 2)`` float64 ``[price, amount]``, best (lowest) first. A fresh copy."""
        return self._asks.array()


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
