"""The compiled book's row operations at every position near the top, against a naive book.

A private book updates its first rows with a branch-free fixed-size move and finds a
level's row with one 16-row compare (fastfeed/_bookops.h); deeper rows, a side with few
free rows before its top (nearly full, full) and books of fewer than 16 rows take the
general path. Each case here is checked against a dict book written from the rules of
docs/engine-semantics.md section 3 alone: an insert, a deletion, an amount change and an
absent deletion at every row 0..20, on sides of every size around those limits, on both
sides, in the private (end-anchored), logged and shared-memory (front-anchored) books.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from helpers import compiled_engine_cls, depth_text

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native

SYM = "X_USDT"


class NaiveBook:
    """Section 3 of docs/engine-semantics.md with two dicts: clear on a snapshot; per
    level (asks first, then bids, in message order) amount 0 deletes, anything else sets,
    a side over ``depth`` levels drops its worst; a kept level removes the levels of the
    other side it crosses (asks <= a bid, bids >= an ask)."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.crossed = 0

    def _set(self, side: dict[float, float], price: float, amount: float, worst: Any) -> bool:
        if amount == 0.0:
            side.pop(price, None)
            return False
        side[price] = amount
        if len(side) > self.depth:
            del side[worst(side)]
        return price in side

    def apply(self, clean: bool, asks: list[tuple[float, float]], bids: list[tuple[float, float]]) -> None:
        if clean:
            self.bids.clear()
            self.asks.clear()
        for p, a in asks:
            if self._set(self.asks, p, a, max):
                gone = [b for b in self.bids if b >= p]
                for b in gone:
                    del self.bids[b]
                self.crossed += len(gone)
        for p, a in bids:
            if self._set(self.bids, p, a, min):
                gone = [x for x in self.asks if x <= p]
                for x in gone:
                    del self.asks[x]
                self.crossed += len(gone)

    def rows(self) -> tuple[list[list[float]], list[list[float]]]:
        bids = [[p, self.bids[p]] for p in sorted(self.bids, reverse=True)]
        asks = [[p, self.asks[p]] for p in sorted(self.asks)]
        return bids, asks


def _text(clean: bool, asks: list[tuple[float, float]], bids: list[tuple[float, float]]) -> str:
    return depth_text(
        clean, SYM, asks=[[repr(p), repr(a)] for p, a in asks], bids=[[repr(p), repr(a)] for p, a in bids]
    )


def _check(eng: Any, naive: NaiveBook, what: str) -> None:
    book = eng.book(SYM)
    bids, asks = naive.rows()
    assert book.bids.tolist() == bids, what
    assert book.asks.tolist() == asks, what
    assert [book.best_bid, book.best_ask] == [
        bids[0][0] if bids else pytest.approx(math.nan, nan_ok=True),
        asks[0][0] if asks else pytest.approx(math.nan, nan_ok=True),
    ], what
    assert eng.stats["crossed_levels_removed"] == naive.crossed, what


def _engines(shm_name: str, depth: int) -> list[Any]:
    cls = compiled_engine_cls()
    kw: dict[str, Any] = dict(depth=depth, trade_capacity=8)
    return [cls(**kw), cls(event_log=1 << 12, **kw), cls(shm_name=shm_name, **kw)]


# row counts around the limits of the fast paths (16-row compare; window of 8 rows with
# more than 8 free rows before the top) and of the array (full side)
def _sizes(depth: int) -> list[int]:
    return sorted({n for n in (*range(23), *range(depth - 10, depth + 1)) if 0 <= n <= depth})


@pytest.mark.parametrize("depth", [8, 16, 17, 20, 26, 40])
def test_every_operation_at_every_row_near_the_top(shm_name: str, depth: int) -> None:
    """A snapshot of n rows a side, then one level on one side: inserted before row i (or
    after the last), deleting row i, changing row i's amount, or deleting a price between
    rows (absent), for every row i and n around every limit; asks 1000, 1002, ..., bids
    998, 996, ... (an odd price falls between two rows)."""
    engines = _engines(shm_name, depth)
    try:
        for n in _sizes(depth):
            asks = [(1000.0 + 2 * k, 1.0 + k) for k in range(n)]
            bids = [(998.0 - 2 * k, 1.0 + k) for k in range(n)]
            for i in range(n + 1):
                cases: list[tuple[str, float, float]] = [
                    ("insert", 2 * i - 1, 7.5),
                    ("absent", 2 * i - 1, 0.0),
                ]
                if i < n:
                    cases += [("delete", 2 * i, 0.0), ("amount", 2 * i, 9.25)]
                for op, off, amount in cases:
                    for ask_side in (True, False):
                        level = [((1000.0 + off) if ask_side else (998.0 - off), amount)]
                        msgs = [(True, asks, bids), (False, level, []) if ask_side else (False, [], level)]
                        for eng in engines:
                            naive = NaiveBook(depth)
                            naive.crossed = eng.stats["crossed_levels_removed"]
                            for clean, a, b in msgs:
                                eng.feed(_text(clean, a, b))
                                naive.apply(clean, a, b)
                            _check(eng, naive, f"depth {depth} n {n} row {i} {op} asks={ask_side}")
    finally:
        for eng in engines:
            eng.close()


@pytest.mark.parametrize("depth", [16, 20, 24, 33, 64])
def test_random_streams_near_the_top(shm_name: str, depth: int) -> None:
    """Increments of several levels a side at rows drawn mostly near the top (sides
    filling up and emptying, full sides, crossing levels), the three kinds of book
    against the naive one after every message."""
    rng = random.Random(depth)
    engines = _engines(shm_name, depth)
    naives = [NaiveBook(depth) for _ in engines]
    mid = 5000.0

    def levels(sign: float) -> list[tuple[float, float]]:
        out = []
        for _ in range(rng.randint(0, 6)):
            off = 1 + int(rng.expovariate(1 / 9))
            if rng.random() < 0.03:
                off = -rng.randint(0, 6)  # through the other side: crosses
            amount = 0.0 if rng.random() < 0.35 else float(rng.randint(1, 99))
            out.append((mid + sign * off, amount))
        return out

    try:
        for step in range(2500):
            if step % 500 == 0:
                msg = (True, [(mid + k, 1.0) for k in range(1, 40)], [(mid - k, 1.0) for k in range(1, 40)])
            else:
                msg = (False, levels(1.0), levels(-1.0))
            if rng.random() < 0.01:
                mid += rng.choice((-3.0, 3.0))
            for eng, naive in zip(engines, naives):
                eng.feed(_text(*msg))
                naive.apply(*msg)
                _check(eng, naive, f"depth {depth} step {step}")
    finally:
        for eng in engines:
            eng.close()
