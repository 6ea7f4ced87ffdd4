"""Every array handed to users is read-only; kept views keep their row count (issue 10,
defect 6).

The engine's books and rings are zero-copy numpy views; with ``shm_name`` they are the
shared segment other processes read under a seqlock. A user's ``book.bids.sort(axis=0)``
must not be able to corrupt them, also not after ``flags.writeable = True`` (numpy allows
that on a plain read-only view of a writable array). Copies (``snapshot()``) are the
user's own and stay writable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import fastfeed
from fastfeed.layout import TRADE_DTYPE, readonly
from fastfeed.shm import attach

from helpers import compiled_engine_cls, depth_text, trade, trades_text

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native

RO = r"read-only|WRITEABLE"


def writes(view: np.ndarray) -> list[tuple[str, Callable[[], Any]]]:
    """Every way an innocent user might write to ``view`` (all must raise ValueError)."""
    other = np.zeros_like(view)
    out: list[tuple[str, Callable[[], Any]]] = [
        ("setitem", lambda: view.__setitem__(0, view[-1])),
        ("slice setitem", lambda: view[:].__setitem__(slice(None), other)),
        ("copyto", lambda: np.copyto(view, other)),
        ("fill", lambda: view.fill(0)),
        ("flags.writeable", lambda: setattr(view.flags, "writeable", True)),
        ("setflags", lambda: view.setflags(write=True)),
        ("slice flags", lambda: setattr(view[:1].flags, "writeable", True)),
        ("view() flags", lambda: setattr(view.view().flags, "writeable", True)),
        ("asarray flags", lambda: setattr(np.asarray(view).flags, "writeable", True)),
        ("base flags", lambda: setattr(view.base.flags, "writeable", True)),
        (
            "ufunc out",
            lambda: np.add(view, view, out=view) if view.dtype.names is None else view.__setitem__("id", 1),
        ),
    ]
    if view.ndim == 2:
        out += [
            ("sort axis 0", lambda: view.sort(axis=0)),
            ("sort", lambda: view.sort()),
            ("transpose flags", lambda: setattr(view.T.flags, "writeable", True)),
            ("column setitem", lambda: view[:, 1].__setitem__(slice(None), 1.0)),
            ("cell", lambda: view.__setitem__((0, 0), 1.0)),
        ]
    else:
        out += [
            ("sort", lambda: view.sort(order="id")),
            ("field setitem", lambda: view["price"].__setitem__(slice(None), 1.0)),
            ("field flags", lambda: setattr(view["price"].flags, "writeable", True)),
        ]
    return out


def assert_read_only(view: np.ndarray, what: str) -> None:
    assert isinstance(view, np.ndarray) and not view.flags.writeable, what
    before = view.copy()
    for name, op in writes(view):
        with pytest.raises(ValueError, match=RO):
            op()
        assert not view.flags.writeable, (what, name)
    assert view.tolist() == before.tolist(), what


def feed_some(eng: Any) -> None:
    eng.feed(
        depth_text(
            True,
            "A_USDT",
            asks=[["101", "1"], ["102", "2"], ["103", "3"]],
            bids=[["99", "1"], ["98", "2"], ["97", "3"]],
        ),
        recv_ns=1,
    )
    eng.feed(
        trades_text(False, "A_USDT", [trade(2, "100", "1", "sell"), trade(1, "101", "2", "buy")]), recv_ns=2
    )


# --- books and the trade ring, compiled and reference -------------------------------------


def test_book_and_ring_views_are_read_only(engine_cls: type) -> None:
    eng = engine_cls(depth=5, trade_capacity=8)
    feed_some(eng)
    book = eng.book("A_USDT")
    want_b, want_a = book.snapshot()
    want_t = eng.trades.latest().copy()
    for what, view in (
        ("bids", book.bids),
        ("asks", book.asks),
        ("latest", eng.trades.latest()),
        ("latest(1)", eng.trades.latest(1)),
        ("since", eng.trades.since(0)),
    ):
        assert len(view) > 0, what
        assert_read_only(view, what)
    # nothing changed in the engine
    b, a = book.snapshot()
    assert np.array_equal(b, want_b) and np.array_equal(a, want_a)
    assert eng.trades.latest().tolist() == want_t.tolist()
    # empty views are read-only too
    for view in (
        eng.book("A_USDT").bids[:0],
        eng.trades.since(eng.trades.count),
        engine_cls(depth=3).trades.latest(),
    ):
        assert not view.flags.writeable
        with pytest.raises(ValueError, match=RO):
            view.flags.writeable = True


def test_snapshots_are_writable_copies(engine_cls: type) -> None:
    eng = engine_cls(depth=5)
    feed_some(eng)
    book = eng.book("A_USDT")
    bids, asks = book.snapshot()
    assert bids.flags.writeable and asks.flags.writeable and bids.flags.owndata
    bids[0, 0] = -1.0
    asks.sort(axis=0)
    assert book.best_bid == 99.0 and book.bids[0, 0] == 99.0
    assert book.to_pandas()["price"].tolist() == [99.0, 98.0, 97.0, 101.0, 102.0, 103.0]
    mine = book.bids.copy()
    mine[0, 0] = 5.0  # a copy of a view is the user's
    assert book.best_bid == 99.0


def test_kept_views_keep_their_row_count(engine_cls: type) -> None:
    """A view keeps the row count it was taken with; a fresh view has the new count. (The
    rows of the compiled engine's view are the book's memory: they change in place.)"""
    eng = engine_cls(depth=5, trade_capacity=8)
    feed_some(eng)
    book = eng.book("A_USDT")
    kept_bids, kept_asks = book.bids, book.asks
    kept_trades = eng.trades.latest()
    assert kept_bids.shape == (3, 2) and kept_asks.shape == (3, 2) and len(kept_trades) == 2
    eng.feed(depth_text(False, "A_USDT", bids=[["99", "0"]], asks=[["104", "4"], ["105", "5"]]))
    eng.feed(trades_text(False, "A_USDT", [trade(3, "100", "1", "sell")]))
    assert kept_bids.shape == (3, 2) and kept_asks.shape == (3, 2) and len(kept_trades) == 2
    assert book.bids.shape == (2, 2) and book.asks.shape == (5, 2)
    assert book.bids.tolist() == [[98.0, 2.0], [97.0, 3.0]]
    assert len(eng.trades.latest()) == 3
    assert kept_trades["id"].tolist() == [1, 2]
    if engine_cls is fastfeed.reference.ReferenceEngine:
        assert kept_bids.tolist() == [[99.0, 1.0], [98.0, 2.0], [97.0, 3.0]]  # a copy
    else:
        # zero-copy over a private book, whose rows sit at the END of its arrays
        # (docs/engine-semantics.md section 7): a kept view covers the places of the last
        # n rows. The bids shrank to 2: the view's first row is no longer in the book (the
        # deleted best bid, stale data), then come the book's rows; the asks grew to 5: the
        # view shows the book's last (worst) 3.
        assert kept_bids[1:].tolist() == book.bids.tolist()
        assert kept_bids[0].tolist() == [99.0, 1.0]
        assert kept_asks.tolist() == book.asks[2:].tolist()


def test_standalone_book_and_ring() -> None:
    book = fastfeed.Book("X", 4)
    ring = fastfeed.TradeRing(4)
    for view in (book.bids, book.asks, ring.latest(), ring.since(0)):
        assert not view.flags.writeable
        with pytest.raises(ValueError, match=RO):
            view.flags.writeable = True


def test_event_log_views_are_read_only() -> None:
    eng = compiled_engine_cls()(depth=5, event_log=64)
    feed_some(eng)
    want = eng.events.latest().copy()
    assert len(want) > 0
    for what, view in (
        ("latest", eng.events.latest()),
        ("since", eng.events.since(0)),
        ("latest(2)", eng.events.latest(2)),
    ):
        assert not view.flags.writeable
        for name, op in (
            ("setitem", lambda: view.__setitem__(0, view[-1])),
            ("field", lambda: view["px"].__setitem__(slice(None), 0.0)),
            ("sort", lambda: view.sort(order="px")),
            ("flags", lambda: setattr(view.flags, "writeable", True)),
            ("copyto", lambda: np.copyto(view, np.zeros_like(view))),
        ):
            with pytest.raises(ValueError, match=RO):
                op()
    assert eng.events.latest().tolist() == want.tolist()


# --- shared memory: writer side and reader side ----------------------------------------


def test_shared_memory_views_are_read_only(shm_name: str) -> None:
    """The reported corruption: with shm_name, a write through a view changed the shared
    segment without the seqlock. Neither the writer's nor a reader's views allow it."""
    with (
        compiled_engine_cls()(depth=5, trade_capacity=8, shm_name=shm_name, shm_checksum=True) as eng,
        attach(shm_name) as r,
    ):
        feed_some(eng)
        book = eng.book("A_USDT")
        rb = r.book("A_USDT")
        seq = rb.seq
        before = rb.read(verify=True)
        views = [
            ("writer bids", book.bids),
            ("writer asks", book.asks),
            ("writer latest", eng.trades.latest()),
            ("writer since", eng.trades.since(0)),
            ("reader bids", rb.bids),
            ("reader asks", rb.asks),
            ("reader latest", r.trades.latest()),
            ("reader since", r.trades.since(0)),
        ]
        for what, view in views:
            assert len(view) > 0, what
            assert_read_only(view, what)
        after = rb.read(verify=True)  # checksum still matches the rows
        assert rb.seq == seq
        assert after.bids.tolist() == before.bids.tolist()
        assert after.asks.tolist() == before.asks.tolist()
        assert r.trades.snapshot().tolist() == eng.trades.latest().tolist()
        # reader copies are the user's
        snap = rb.read()
        assert snap.bids.flags.writeable and r.trades.snapshot().flags.writeable
        # a reader's kept view keeps its count; a fresh one has the new count
        kept = rb.bids
        eng.feed(depth_text(False, "A_USDT", bids=[["99", "0"]]))
        assert kept.shape == (3, 2) and rb.bids.shape == (2, 2)


def test_readonly_helper() -> None:
    base = np.arange(10.0).reshape(5, 2)
    ro = readonly(base)
    assert np.shares_memory(ro, base) and not ro.flags.writeable
    base[0, 0] = 42.0  # the owner still writes
    assert ro[0, 0] == 42.0
    for view in (ro, ro[1:3], ro.T, ro[:, 0], ro.reshape(-1), ro[::2]):
        with pytest.raises(ValueError, match=RO):
            view.flags.writeable = True
    recs = readonly(np.zeros(3, dtype=TRADE_DTYPE))
    assert recs.dtype == TRADE_DTYPE and recs.shape == (3,)
    empty = readonly(np.zeros((0, 2)))
    assert empty.shape == (0, 2) and not empty.flags.writeable
    with pytest.raises(ValueError, match=RO):
        empty.flags.writeable = True
