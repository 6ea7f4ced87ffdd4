"""Book: one symbol's order book in two fixed-capacity sorted float64 arrays.

Each side is a C-contiguous ``(depth, 2)`` float64 array of ``[price, amount]`` rows kept
sorted best-first (bids descending, asks ascending) plus a live row count. Updates are a
binary search and a ``memmove``. The rules (deletions, trimming, crossing) are in
docs/engine-semantics.md.
"""

from libc.math cimport NAN
from libc.stdint cimport int64_t
from libc.string cimport memmove

import numpy as np

cimport numpy as cnp

cnp.import_array()

__all__ = ["Book"]


cdef inline Py_ssize_t lower_asc(const double* a, Py_ssize_t n, double price) noexcept nogil:
    """First row whose price >= price (ascending side).

    Most updates land near the top of the book, so the first 8 rows are compared at once
    (independent loads, no branches); deeper positions use a branch-free binary search.
    """
    cdef Py_ssize_t base = 0
    cdef Py_ssize_t half
    cdef Py_ssize_t c
    if n >= 8:
        c = ((a[0] < price) + (a[2] < price) + (a[4] < price) + (a[6] < price)
             + (a[8] < price) + (a[10] < price) + (a[12] < price) + (a[14] < price))
        if c < 8:
            return c
        base = 8
        n -= 8
    if n == 0:
        return base
    while n > 1:
        half = n >> 1
        base += half & -(<Py_ssize_t>(a[2 * (base + half)] < price))
        n -= half
    return base + (a[2 * base] < price)


cdef inline Py_ssize_t lower_desc(const double* a, Py_ssize_t n, double price) noexcept nogil:
    """First row whose price <= price (descending side); see ``lower_asc``."""
    cdef Py_ssize_t base = 0
    cdef Py_ssize_t half
    cdef Py_ssize_t c
    if n >= 8:
        c = ((a[0] > price) + (a[2] > price) + (a[4] > price) + (a[6] > price)
             + (a[8] > price) + (a[10] > price) + (a[12] > price) + (a[14] > price))
        if c < 8:
            return c
        base = 8
        n -= 8
    if n == 0:
        return base
    while n > 1:
        half = n >> 1
        base += half & -(<Py_ssize_t>(a[2 * (base + half)] > price))
        n -= half
    return base + (a[2 * base] > price)


cdef inline Py_ssize_t upsert(double* a, Py_ssize_t n, Py_ssize_t cap, Py_ssize_t i,
                              double price, double amount) noexcept nogil:
    """Set ``amount`` at row i (which holds ``price``) or insert a row there. New count."""
    if i < n and a[2 * i] == price:
        if amount == 0.0:
            memmove(a + 2 * i, a + 2 * (i + 1), (n - i - 1) * 2 * sizeof(double))
            return n - 1
        a[2 * i + 1] = amount
        return n
    if amount == 0.0 or i >= cap:
        return n            # absent deletion, or worse than a full side: discarded
    if n == cap:
        n -= 1              # the worst row falls off
    memmove(a + 2 * (i + 1), a + 2 * i, (n - i) * 2 * sizeof(double))
    a[2 * i] = price
    a[2 * i + 1] = amount
    return n + 1


cdef inline Py_ssize_t drop_front(double* a, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    memmove(a, a + 2 * k, (n - k) * 2 * sizeof(double))
    return n - k


cdef class Book:
    """The order book of one symbol.

    ``bids`` / ``asks`` are zero-copy numpy views ``(n, 2)`` of ``[price, amount]`` rows,
    best first. A view shares memory with the book: its rows change in place on the next
    applied update and its row count is fixed when it is taken, so read it before feeding
    the engine again (or ``.copy()`` it). The memory stays valid as long as the view lives.
    """

    def __cinit__(self, str symbol, Py_ssize_t depth=200):
        if depth < 1:
            raise ValueError("depth must be >= 1")
        self.symbol = symbol
        self.depth = depth
        self._bid_arr = np.zeros((depth, 2), dtype=np.float64)
        self._ask_arr = np.zeros((depth, 2), dtype=np.float64)
        self.bid = <double*>cnp.PyArray_DATA(self._bid_arr)
        self.ask = <double*>cnp.PyArray_DATA(self._ask_arr)
        self.n_bids = 0
        self.n_asks = 0
        self.version = 0
        self.recv_ns = 0

    cdef void clear(self) noexcept:
        self.n_bids = 0
        self.n_asks = 0

    cdef Py_ssize_t apply(self, const Level* asks, Py_ssize_t n_asks, const Level* bids,
                          Py_ssize_t n_bids, bint clean, int64_t recv_ns) noexcept:
        """Apply one parsed depth message. Returns the number of crossed levels removed."""
        cdef Py_ssize_t i
        cdef Py_ssize_t k
        cdef Py_ssize_t crossed = 0
        cdef Py_ssize_t cap = self.depth
        cdef double price
        cdef double amount
        if clean:
            self.n_bids = 0
            self.n_asks = 0
        for i in range(n_asks):
            price = asks[i].price
            amount = asks[i].amount
            k = lower_asc(self.ask, self.n_asks, price)
            self.n_asks = upsert(self.ask, self.n_asks, cap, k, price, amount)
            if amount != 0.0 and self.n_bids > 0 and self.bid[0] >= price:
                k = lower_desc(self.bid, self.n_bids, price)
                while k < self.n_bids and self.bid[2 * k] >= price:
                    k += 1
                crossed += k
                self.n_bids = drop_front(self.bid, self.n_bids, k)
        for i in range(n_bids):
            price = bids[i].price
            amount = bids[i].amount
            k = lower_desc(self.bid, self.n_bids, price)
            self.n_bids = upsert(self.bid, self.n_bids, cap, k, price, amount)
            if amount != 0.0 and self.n_asks > 0 and self.ask[0] <= price:
                k = lower_asc(self.ask, self.n_asks, price)
                while k < self.n_asks and self.ask[2 * k] <= price:
                    k += 1
                crossed += k
                self.n_asks = drop_front(self.ask, self.n_asks, k)
        self.version += 1
        self.recv_ns = recv_ns
        return crossed

    @property
    def bids(self):
        """Zero-copy ``(n, 2)`` float64 view of the bids, best (highest) first."""
        return self._bid_arr[:self.n_bids]

    @property
    def asks(self):
        """Zero-copy ``(n, 2)`` float64 view of the asks, best (lowest) first."""
        return self._ask_arr[:self.n_asks]

    @property
    def best_bid(self):
        """Highest bid price, ``nan`` when the side is empty."""
        return self.bid[0] if self.n_bids > 0 else NAN

    @property
    def best_ask(self):
        """Lowest ask price, ``nan`` when the side is empty."""
        return self.ask[0] if self.n_asks > 0 else NAN

    def snapshot(self):
        """A copy ``(bids, asks)`` that later updates do not change."""
        return self._bid_arr[:self.n_bids].copy(), self._ask_arr[:self.n_asks].copy()

    def to_pandas(self):
        """A DataFrame of both sides: columns side ('bid'/'ask'), level, price, amount."""
        import pandas as pd

        bids = self._bid_arr[:self.n_bids]
        asks = self._ask_arr[:self.n_asks]
        return pd.DataFrame(
            {
                "side": np.array(["bid"] * len(bids) + ["ask"] * len(asks), dtype=object),
                "level": np.concatenate([np.arange(len(bids)), np.arange(len(asks))]),
                "price": np.concatenate([bids[:, 0], asks[:, 0]]),
                "amount": np.concatenate([bids[:, 1], asks[:, 1]]),
            }
        )

    def __len__(self):
        return self.n_bids + self.n_asks

    def __repr__(self):
        return (
            f"<Book {self.symbol} bids={self.n_bids} asks={self.n_asks} "
            f"best={self.best_bid}/{self.best_ask} v{self.version}>"
        )
