"""One set of book rules, two layouts, three Python users.

* The compiled book keeps a private book's rows at the END of its arrays (end-anchored,
  docs/engine-semantics.md section 7) and a shared-memory book's rows at the start (the
  segment's layout). Both must hold exactly the reference's levels after every message,
  log the same events, and hand out best-first, C-contiguous, read-only, zero-copy views.
* fastfeed.book's rules are used by the reference engine, the exchange's ``SimBook`` and
  ``events.replay_books``; each must agree with the compiled engine.
"""

from __future__ import annotations

import os
import random
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from test_equivalence import make_payload

from fastfeed import events as E
from fastfeed.book import BookSide, LevelBook
from fastfeed.errors import FastfeedError
from fastfeed.exchange import BookSet, SimBook
from fastfeed.reference import ReferenceEngine
from fastfeed.shm import attach, unlink_segment

from helpers import assert_state_equal, compiled_engine_cls, depth_text

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native


@pytest.fixture()
def shm_name() -> Iterator[str]:
    if sys.platform != "linux":  # pragma: no cover
        pytest.skip("POSIX shm under /dev/shm")
    name = f"test-layout-{os.getpid()}-{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        unlink_segment(name)


def _feed(eng: Any, payload: Any, recv_ns: int) -> tuple[Any, ...]:
    try:
        if hasattr(payload, "name"):  # an Action of test_equivalence (mark_stale, reset_books)
            return ("ok", getattr(eng, payload.name)(*payload.args))
        return ("ok", eng.feed(payload, recv_ns))
    except FastfeedError as exc:
        return ("error", type(exc).__name__, exc.reason)


def _check_view(view: np.ndarray, want: np.ndarray) -> None:
    assert view.tolist() == want.tolist()
    assert view.dtype == np.float64 and view.ndim == 2 and view.shape[1] == 2
    assert view.flags.c_contiguous and not view.flags.writeable


@pytest.mark.parametrize("depth", [1, 2, 3, 5, 8])
def test_private_and_shared_layouts_match_the_reference(shm_name: str, depth: int) -> None:
    """The same stream into a private book (end-anchored), a shared-memory book (front-
    anchored) and the reference: same levels, counters and event rows after every message;
    a reader of the segment sees the same rows, with a valid checksum."""
    rng = random.Random(4242 + depth)
    kw = dict(depth=depth, trade_capacity=16, max_frame=4096, drift_log_size=4)
    cls = compiled_engine_cls()
    ref = ReferenceEngine(**kw)
    with (
        cls(event_log=1 << 16, **kw) as private,
        cls(event_log=1 << 16, shm_name=shm_name, shm_checksum=True, **kw) as shared,
        attach(shm_name) as reader,
    ):
        for i in range(700):
            p = make_payload(rng, i, True)
            recv_ns = 1_700_000_000_000_000_000 + 1_000_003 * i
            got = [_feed(e, p, recv_ns) for e in (private, shared, ref)]
            assert got[0] == got[1] == got[2], f"message {i}: {got}"
            where = f"message {i}"
            assert_state_equal(private, ref, where)
            assert_state_equal(shared, ref, where)
            for name in ref.symbols:
                want = ref.book(name)
                for eng in (private, shared):
                    book = eng.book(name)
                    _check_view(book.bids, want.bids)
                    _check_view(book.asks, want.asks)
                    for got_px, want_px in ((book.best_bid, want.best_bid), (book.best_ask, want.best_ask)):
                        assert got_px == want_px or (np.isnan(got_px) and np.isnan(want_px))
                    b, a = book.snapshot()
                    assert b.tolist() == want.bids.tolist() and a.tolist() == want.asks.tolist()
                snap = reader.book(name).read(verify=True)
                assert snap.bids.tolist() == want.bids.tolist(), where
                assert snap.asks.tolist() == want.asks.tolist(), where
        assert private.events.latest().tolist() == shared.events.latest().tolist()
        assert private.book(ref.symbols[0]).shared is False
        assert shared.book(ref.symbols[0]).shared is True


def _levels(rows: list[tuple[float, float]]) -> list[list[str]]:
    return [[repr(p), repr(a)] for p, a in rows]


@pytest.mark.parametrize("shared", [False, True])
def test_layout_edges(shm_name: str, shared: bool) -> None:
    """Directed cases at the edges of both layouts: a full side (insert at the top, in the
    middle, at the bottom, beyond the end), deletions of the best, the worst and a middle
    row, crossings removing several best rows, and the snapshot fast path in both orders
    with more levels than the depth."""
    cls = compiled_engine_cls()
    kw: dict[str, Any] = dict(depth=4, trade_capacity=8)
    if shared:
        kw.update(shm_name=shm_name)
    steps = [
        (
            True,
            [(105.0, 1.0), (104.0, 1.0), (103.0, 1.0), (102.0, 1.0), (101.0, 1.0), (106.0, 1.0)],
            [(90.0, 1.0), (95.0, 1.0), (92.0, 1.0)],
        ),  # not monotonic
        (
            True,
            [(106.0, 1.0), (105.0, 1.0), (104.0, 1.0), (103.0, 1.0), (102.0, 1.0), (101.0, 1.0)],
            [(90.0, 2.0), (91.0, 2.0), (92.0, 2.0), (93.0, 2.0), (94.0, 2.0)],
        ),  # fast path, > depth
        (False, [(100.5, 3.0)], [(93.5, 3.0)]),  # full sides: insert at the top
        (False, [(102.5, 4.0)], [(92.5, 4.0)]),  # full: in the middle
        (False, [(110.0, 5.0)], [(80.0, 5.0)]),  # full: beyond the end, discarded
        (False, [(100.5, 0.0)], [(93.5, 0.0)]),  # delete the best
        (False, [(103.0, 0.0)], [(92.5, 0.0)]),  # delete the worst / a middle row
        (False, [(99.0, 6.0)], []),  # not full: insert at the top
        (False, [(101.5, 6.0)], [(93.0, 0.0), (91.5, 7.0)]),
        (False, [(91.0, 1.0)], []),  # crosses: removes several bids
        (False, [], [(105.0, 2.0)]),  # crosses: removes every ask
        (False, [(105.0, 0.0), (106.0, 1.0), (107.0, 1.0), (108.0, 1.0), (109.0, 1.0)], []),
        (True, [(101.0, 1.0), (102.0, 1.0)], [(101.5, 1.0), (100.0, 1.0)]),  # crossed snapshot
        (True, [], []),
        (False, [(0.5, 1.0)], [(0.25, 1.0)]),
    ]
    ref = ReferenceEngine(**{k: v for k, v in kw.items() if k != "shm_name"})
    with cls(**kw) as eng:
        for i, (clean, asks, bids) in enumerate(steps):
            text = depth_text(clean, "X_USDT", bids=_levels(bids), asks=_levels(asks))
            eng.feed(text, i + 1)
            ref.feed(text, i + 1)
            assert_state_equal(eng, ref, f"step {i}")
            book, want = eng.book("X_USDT"), ref.book("X_USDT")
            _check_view(book.bids, want.bids)
            _check_view(book.asks, want.asks)
            assert book.shared is shared


def test_views_are_zero_copy_and_best_first() -> None:
    """A view is the book's memory: a later view overlaps an earlier one, and a change
    near the top of the book shows in a view that covers it."""
    eng = compiled_engine_cls()(depth=6)
    eng.feed(
        depth_text(
            True, "A_USDT", bids=[["99", "1"], ["98", "2"], ["97", "3"]], asks=[["101", "1"], ["102", "2"]]
        )
    )
    book = eng.book("A_USDT")
    first = book.bids
    eng.feed(depth_text(False, "A_USDT", bids=[["99", "5"]]))
    assert np.shares_memory(first, book.bids)
    assert first[0].tolist() == [99.0, 5.0]  # updated in place
    assert book.bids[0, 0] == book.best_bid == 99.0
    assert book.asks[0, 0] == book.best_ask == 101.0
    assert book.bids[:, 0].tolist() == sorted(book.bids[:, 0].tolist(), reverse=True)
    assert book.asks[:, 0].tolist() == sorted(book.asks[:, 0].tolist())


# --- the one Python book and its users --------------------------------------------------------


def test_book_side_rules() -> None:
    bids, asks = BookSide(bids=True), BookSide(bids=False)
    for p in (3.0, 1.0, 2.0):
        bids.upsert(p, p, depth=2)
        asks.upsert(p, p, depth=2)
    assert bids.array().tolist() == [[3.0, 3.0], [2.0, 2.0]]  # 1.0 dropped when 2.0 came in
    assert asks.array().tolist() == [[1.0, 1.0], [2.0, 2.0]]  # 3.0 fell off the end
    asks.upsert(5.0, 1.0, depth=2)  # beyond a full side
    assert asks.levels() == {1.0: 1.0, 2.0: 2.0}
    assert bids.remove_crossed(2.0) == 2 and len(bids) == 0  # bids >= 2.0
    assert asks.remove_crossed(1.5) == 1 and asks.best == 2.0  # asks <= 1.5
    asks.set(9.0, 1.0)
    asks.set(8.0, 1.0)
    asks.set(7.0, 1.0)  # set: no capacity
    assert len(asks) == 4
    asks.set(8.0, 0.0)
    asks.set(42.0, 0.0)  # absent: nothing
    assert asks.levels() == {2.0: 2.0, 7.0: 1.0, 9.0: 1.0}
    assert np.isnan(bids.best)
    with pytest.raises(ValueError):
        LevelBook(0)


def _depth_messages(rng: random.Random, n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):

        def lv(lo: int, hi: int) -> list[list[str]]:
            return [
                [str(rng.randint(lo, hi)), "0" if rng.random() < 0.3 else str(rng.randint(1, 9))]
                for _ in range(rng.randint(0, 6))
            ]

        out.append(
            {
                "method": "depth.update",
                "params": [
                    rng.random() < 0.1,
                    {"asks": lv(98, 110), "bids": lv(90, 102)},
                    rng.choice(["a_usdt", "B_USDT"]),
                ],
            }
        )
    return out


@pytest.mark.parametrize("depth", [1, 3, 200])
def test_exchange_simbook_matches_the_compiled_engine(depth: int) -> None:
    """The exchange's BookSet (fastfeed.book's rules) holds the engine's books and counts
    the same crossed levels."""
    import json

    eng = compiled_engine_cls()(depth=depth)
    books = BookSet(depth=depth)
    for msg in _depth_messages(random.Random(depth), 600):
        eng.feed(json.dumps(msg))
        assert books.feed(msg)
    crossed = 0
    for sym in ("A_USDT", "B_USDT"):
        sim: SimBook = books[sym]
        assert sim.bids.tolist() == eng.book(sym).bids.tolist()
        assert sim.asks.tolist() == eng.book(sym).asks.tolist()
        assert sim.version == eng.book(sym).version
        assert sim.bids.flags.writeable  # SimBook hands out its own copies
        crossed += sim.crossed_levels_removed
    assert crossed == eng.stats["crossed_levels_removed"]


def test_replay_books_rebuilds_the_engine_books_and_continues_in_place() -> None:
    """Event rows replayed (in two chunks, the second continuing the first's dict books)
    give the engine's books; the dicts passed in are the ones updated."""
    import json

    eng = compiled_engine_cls()(depth=3, event_log=1 << 16)
    msgs = _depth_messages(random.Random(7), 400)
    for msg in msgs[:200]:
        eng.feed(json.dumps(msg))
    first = eng.events.latest().copy()
    books = E.replay_books(first)
    kept = books[0]
    for msg in msgs[200:]:
        eng.feed(json.dumps(msg))
    rest = eng.events.since(len(first)).copy()
    assert E.replay_books([rest], books) is books and books[0] is kept
    for ival, sym in enumerate(eng.symbols):
        bids, asks = books[ival]
        assert list(bids.items()) == [tuple(r) for r in eng.book(sym).bids.tolist()]
        assert list(asks.items()) == [tuple(r) for r in eng.book(sym).asks.tolist()]
