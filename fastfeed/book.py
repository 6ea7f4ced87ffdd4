"""The order-book rules of docs/engine-semantics.md (sections 3 and 3b), in pure Python, once.

The compiled engine has the same rules once more in Cython (``fastfeed/_book.pyx``); every
engine test runs against both, and tests/test_equivalence.py (with tests/test_book_rules.py
for the shared book itself) keeps the two the same. Users of this module:

* :class:`fastfeed.reference.ReferenceBook`, the reference engine's book (the test oracle);
* :class:`fastfeed.exchange.SimBook`, the bundled exchange's copy of the book a client holds;
* :func:`fastfeed.events.replay_books`, which applies event rows (``BookSide.set``).

tests/test_exchange_oracle.py deliberately does not use it: its naive book checks the
exchange's stream independently of these rules.

Written for clarity, not speed (Python lists and ``bisect``).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable

import numpy as np

__all__ = ["BookSide", "LevelBook", "drift_counts"]


class BookSide:
    """One side of a book: ``[price, amount]`` levels kept sorted best first (bids
    descending, asks ascending) through a signed key (bids ``-price``, asks ``+price``), so
    that both sides sort ascending by key."""

    __slots__ = ("amounts", "keys", "sign")

    def __init__(self, bids: bool) -> None:
        self.sign = -1.0 if bids else 1.0
        self.keys: list[float] = []
        self.amounts: list[float] = []

    def __len__(self) -> int:
        return len(self.keys)

    def clear(self) -> None:
        self.keys.clear()
        self.amounts.clear()

    @property
    def best(self) -> float:
        """The best price, ``nan`` when the side is empty."""
        return self.sign * self.keys[0] if self.keys else math.nan

    def _find(self, price: float) -> tuple[int, bool]:
        """(row where ``price`` is or would go, whether it is there)."""
        key = self.sign * price
        i = bisect_left(self.keys, key)
        return i, i < len(self.keys) and self.keys[i] == key

    def set(self, price: float, amount: float) -> None:
        """Set one level as given, no capacity and no crossing (event-row replay): amount
        0 removes the level at ``price`` if present, anything else replaces or inserts it."""
        i, present = self._find(price)
        if amount == 0.0:
            if present:
                del self.keys[i]
                del self.amounts[i]
        elif present:
            self.amounts[i] = amount
        else:
            self.keys.insert(i, self.sign * price)
            self.amounts.insert(i, amount)

    def upsert(self, price: float, amount: float, depth: int) -> None:
        """Rules 3 and 4 for one level: amount 0 removes the level at exactly ``price`` (absent:
        no-op); otherwise replace its amount or insert it. A full side (``depth`` rows)
        discards a new price that sorts after its last row, and drops its last row to make
        room for one that sorts inside."""
        i, present = self._find(price)
        if amount == 0.0:
            if present:
                del self.keys[i]
                del self.amounts[i]
            return
        if present:
            self.amounts[i] = amount
            return
        if len(self.keys) >= depth:
            if i >= len(self.keys):
                return  # sorts after the last row of a full side: discarded
            self.keys.pop()
            self.amounts.pop()
        self.keys.insert(i, self.sign * price)
        self.amounts.insert(i, amount)

    def remove_crossed(self, price: float) -> int:
        """Rule 5 seen from this side: remove the levels a new level at ``price`` on the
        other side crosses (bids ``>= price``, asks ``<= price``, i.e. every key up to and
        including ``sign * price``). Returns how many were removed (all at the top)."""
        n = bisect_right(self.keys, self.sign * price)
        if n:
            del self.keys[:n]
            del self.amounts[:n]
        return n

    def levels(self) -> dict[float, float]:
        """``{price: amount}`` (a copy)."""
        return {self.sign * k: a for k, a in zip(self.keys, self.amounts)}

    def array(self) -> np.ndarray:
        """A new writable ``(n, 2)`` float64 array of ``[price, amount]``, best first."""
        out = np.empty((len(self.keys), 2), dtype=np.float64)
        if self.keys:
            out[:, 0] = self.keys
            out[:, 0] *= self.sign
            out[:, 1] = self.amounts
        return out


class LevelBook:
    """Both sides of one symbol's book (``depth`` rows a side at most) and the rules for
    applying a depth message to them (docs/engine-semantics.md section 3, steps 1-5)."""

    def __init__(self, depth: int) -> None:
        if depth < 1:
            raise ValueError("depth must be >= 1")
        self.depth = depth
        self.bid_side = BookSide(bids=True)
        self.ask_side = BookSide(bids=False)

    def clear(self) -> None:
        """Step 1 (``clean``): empty both sides."""
        self.bid_side.clear()
        self.ask_side.clear()

    def apply_level(self, bid: bool, price: float, amount: float) -> int:
        """Steps 3-5 for one level of the bid (``bid``) or ask side. Returns the number of
        levels of the other side removed by crossing (newer wins)."""
        side, other = (self.bid_side, self.ask_side) if bid else (self.ask_side, self.bid_side)
        side.upsert(price, amount, self.depth)
        if amount == 0.0:
            return 0
        # A discarded level (worse than a full side) crosses nothing: the book is never
        # crossed, so the other side's best is beyond this side's worst.
        return other.remove_crossed(price)

    def apply_levels(
        self, clean: bool, asks: Iterable[tuple[float, float]], bids: Iterable[tuple[float, float]]
    ) -> int:
        """Steps 1-5 for one message: clear if ``clean``, then the asks, then the bids, each
        in message order (levels are ``(price, amount)`` floats, already validated).
        Returns the number of crossed levels removed."""
        if clean:
            self.clear()
        crossed = 0
        for price, amount in asks:
            crossed += self.apply_level(False, price, amount)
        for price, amount in bids:
            crossed += self.apply_level(True, price, amount)
        return crossed

    @property
    def n_bids(self) -> int:
        """Number of bid levels."""
        return len(self.bid_side)

    @property
    def n_asks(self) -> int:
        """Number of ask levels."""
        return len(self.ask_side)

    @property
    def best_bid(self) -> float:
        """Highest bid price, ``nan`` when there are no bids."""
        return self.bid_side.best

    @property
    def best_ask(self) -> float:
        """Lowest ask price, ``nan`` when there are no asks."""
        return self.ask_side.best

    def levels(self) -> tuple[dict[float, float], dict[float, float]]:
        """``({bid price: amount}, {ask price: amount})`` (copies), for :func:`drift_counts`."""
        return self.bid_side.levels(), self.ask_side.levels()

    def __len__(self) -> int:
        return self.n_bids + self.n_asks


def drift_counts(
    old: tuple[dict[float, float], dict[float, float]], new: tuple[dict[float, float], dict[float, float]]
) -> tuple[int, int, int]:
    """The drift check (docs/engine-semantics.md section 3b): ``(missing, extra, changed)``
    between the book a snapshot replaced (``old``) and the new book, both as
    :meth:`LevelBook.levels`, per side over the prices both cover."""
    missing = extra = changed = 0
    for bids, o, n in ((True, old[0], new[0]), (False, old[1], new[1])):
        if not o or not n:
            continue  # an empty side covers nothing
        if bids:
            low = max(min(o), min(n))
            o = {p: a for p, a in o.items() if p >= low}
            n = {p: a for p, a in n.items() if p >= low}
        else:
            high = min(max(o), max(n))
            o = {p: a for p, a in o.items() if p <= high}
            n = {p: a for p, a in n.items() if p <= high}
        missing += len(n.keys() - o.keys())
        extra += len(o.keys() - n.keys())
        changed += sum(1 for p in o.keys() & n.keys() if o[p] != n[p])
    return missing, extra, changed
