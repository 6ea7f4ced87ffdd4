"""Trust in the engine's data (issue 10): trade de-duplication that no id can black-hole,
live/stale books, ``book()`` that does not invent symbols, and snapshot drift checks.

Every test runs against the compiled engine and the reference (``engine_cls``); the
shared-memory tests are compiled only. Rules: docs/engine-semantics.md sections 3, 3b, 4, 5.
"""

from __future__ import annotations

import random
import struct
import time
from typing import Any

import pytest

import fastfeed
from fastfeed import events as E
from fastfeed.errors import FastfeedError, UnknownSymbol
from fastfeed.layout import DriftRecord
from fastfeed.reference import ReferenceEngine
from fastfeed.shm import attach

from helpers import assert_state_equal, compiled_engine_cls, depth_text, trade, trades_text

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native

BIG = 2**63 - 1


def ids(eng: Any, symbol: str | None = None) -> list[int]:
    rows = eng.trades.latest()
    if symbol is not None:
        rows = rows[rows["symbol"] == eng.symbol_index(symbol)]
    return rows["id"].tolist()


def push(eng: Any, clean: bool, symbol: str, tids: list[int], **kw: Any) -> None:
    """A trades push of ``tids`` (given newest first, as on the wire)."""
    assert eng.feed(trades_text(clean, symbol, [trade(t, **kw) for t in tids])) is None


def snap(
    eng: Any, symbol: str, asks: list[tuple[str, str]], bids: list[tuple[str, str]], recv_ns: int = 0
) -> None:
    assert (
        eng.feed(depth_text(True, symbol, [list(a) for a in asks], [list(b) for b in bids]), recv_ns) is None
    )


def incr(
    eng: Any,
    symbol: str,
    asks: list[tuple[str, str]] = (),
    bids: list[tuple[str, str]] = (),
    recv_ns: int = 0,
) -> None:
    assert (
        eng.feed(depth_text(False, symbol, [list(a) for a in asks], [list(b) for b in bids]), recv_ns) is None
    )


# =============================================================================================
# A. trade de-duplication (defect 5)
# =============================================================================================


def test_huge_id_does_not_silence_a_symbol(engine_cls: Any) -> None:
    eng = engine_cls()
    push(eng, False, "S", [BIG])
    push(eng, False, "S", [101, 100])
    push(eng, False, "S", [102])
    assert ids(eng) == [BIG, 100, 101, 102]
    st = eng.stats
    assert st["duplicate_trades"] == 0 and st["out_of_order_trades"] == 1
    # ... nor after reset_books (the de-duplication state survives it, the bad id too)
    eng.reset_books()
    push(eng, False, "S", [103])
    push(eng, True, "S", [103, 102, 101])  # the resubscribe replay: all already stored
    assert ids(eng) == [BIG, 100, 101, 102, 103]
    assert eng.stats["dropped_trades"] == {"replayed": 3, "duplicate": 0}


def test_ids_restart_lower_after_an_exchange_restart(engine_cls: Any) -> None:
    """The bundled exchange restarts its ids: the new trades differ in content (time), so
    they are stored, and their own replay is dropped."""
    eng = engine_cls()
    push(eng, False, "S", [1003, 1002, 1001], time=1000.0)
    push(eng, True, "S", [1003, 1002, 1001], time=1000.0)  # replay: dropped
    push(eng, False, "S", [3, 2, 1], time=2000.0)  # restart: ids reset
    push(eng, True, "S", [4, 3, 2, 1], time=2000.0)  # replay after reconnect
    push(eng, False, "S", [5], time=2000.0)
    assert ids(eng) == [1001, 1002, 1003, 1, 2, 3, 4, 5]
    st = eng.stats
    assert st["dropped_trades"] == {"replayed": 6, "duplicate": 0}
    assert st["duplicate_trades"] == 6
    assert st["out_of_order_trades"] == 1  # 1 after 1003


def test_the_same_ids_again_after_a_restart_are_new_trades(engine_cls: Any) -> None:
    """`record --demo --append` case: the same ids with other content are all stored."""
    eng = engine_cls()
    push(eng, False, "S", [12, 11, 10], time=1.0)
    push(eng, False, "S", [12, 11, 10], time=2.0)
    assert ids(eng) == [10, 11, 12, 10, 11, 12]
    assert eng.stats["duplicate_trades"] == 0


def test_backwards_ids_and_exact_replay(engine_cls: Any) -> None:
    eng = engine_cls()
    push(eng, False, "S", [10])
    push(eng, False, "S", [8])  # backwards: stored
    push(eng, False, "S", [9])  # below the highest id, never seen: stored
    push(eng, True, "S", [10, 9, 8, 7])  # replay: 7 is new, the others are stored already
    assert ids(eng) == [10, 8, 9, 7]
    st = eng.stats
    assert st["dropped_trades"] == {"replayed": 3, "duplicate": 0}
    assert st["out_of_order_trades"] == 2  # 8 after 10, 7 after 9


@pytest.mark.parametrize("field", ["price", "amount", "side", "time"])
def test_same_id_other_content_is_not_a_duplicate(engine_cls: Any, field: str) -> None:
    eng = engine_cls()
    other = {
        "price": {"price": "7"},
        "amount": {"amount": "9"},
        "side": {"side": "sell"},
        "time": {"time": 2.5},
    }[field]
    push(eng, False, "S", [5])
    push(eng, False, "S", [5], **other)
    push(eng, False, "S", [5])  # both versions are remembered: dropped
    push(eng, False, "S", [5], **other)
    assert ids(eng) == [5, 5]
    assert eng.stats["dropped_trades"] == {"replayed": 0, "duplicate": 2}
    assert eng.stats["out_of_order_trades"] == 1


def _old_fingerprint_twin(time_s: float, price: float, bit: int) -> tuple[float, float]:
    """(time, price) of a trade whose content differs from (time_s, price) but which the
    engine's former 64-bit fingerprint (time ^ rotl21(price * C1) ^ ...) matched: the price
    with one mantissa bit flipped, the time's bits XORed with the fingerprint's change."""

    def bits(x: float) -> int:
        return int(struct.unpack("<Q", struct.pack("<d", x))[0])

    def double(u: int) -> float:
        return float(struct.unpack("<d", struct.pack("<Q", u & (1 << 64) - 1))[0])

    mask = (1 << 64) - 1
    c1 = 0x9E3779B97F4A7C15

    def rot(p: float) -> int:
        v = bits(p) * c1 & mask
        return (v << 21 | v >> 43) & mask

    price2 = double(bits(price) ^ 1 << bit)
    return double(bits(time_s) ^ rot(price) ^ rot(price2)), price2


@pytest.mark.parametrize("bit", [43, 47, 50])
def test_same_id_other_content_with_a_colliding_fingerprint_is_stored(engine_cls: Any, bit: int) -> None:
    """Regression: the engine once compared an id and a 64-bit hash of the rest, so a
    different trade built to hash alike (here a price and a time) passed for a duplicate
    and was dropped. Two trades are duplicates only when every field is equal."""
    time2, price2 = _old_fingerprint_twin(1716000000.5, 11687.04, bit)
    assert price2 > 0 and 1e9 < time2 < 1e10  # a plausible trade, its time too
    eng = engine_cls()
    push(eng, False, "S", [5], price="11687.04", amount="0.1", time=1716000000.5, side="sell")
    push(eng, False, "S", [5], price=repr(price2), amount="0.1", time=time2, side="sell")
    rows = eng.trades.latest()
    assert rows["id"].tolist() == [5, 5]
    assert rows["price"].tolist() == [11687.04, price2]
    assert rows["time"].tolist() == [1716000000.5, time2]
    assert eng.stats["duplicate_trades"] == 0
    push(eng, True, "S", [5], price=repr(price2), amount="0.1", time=time2, side="sell")
    assert eng.stats["dropped_trades"] == {"replayed": 1, "duplicate": 0}


def test_equal_values_in_other_spellings_are_duplicates(engine_cls: Any) -> None:
    eng = engine_cls()
    push(eng, False, "S", [5], price="100.5", amount="0", time=0)
    push(eng, False, "S", [5], price="1.005e2", amount="-0", time="-0.0")
    assert ids(eng) == [5]
    assert eng.stats["duplicate_trades"] == 1


def test_same_trade_twice_in_one_push(engine_cls: Any) -> None:
    eng = engine_cls()
    push(eng, False, "S", [2, 2, 1])
    assert ids(eng) == [1, 2]
    assert eng.stats["dropped_trades"] == {"replayed": 0, "duplicate": 1}


def test_dedup_is_per_symbol(engine_cls: Any) -> None:
    eng = engine_cls()
    push(eng, False, "A", [2, 1])
    push(eng, True, "B", [2, 1])
    assert ids(eng, "A") == [1, 2] and ids(eng, "B") == [1, 2]
    assert eng.stats["duplicate_trades"] == 0


@pytest.mark.parametrize("window", [1, 3])
def test_window_overflow_is_the_documented_limit(engine_cls: Any, window: int) -> None:
    """Only the newest ``trade_dedup_window`` stored trades of a symbol are remembered: a
    replay reaching further back stores the older trades again (documented)."""
    eng = engine_cls(trade_dedup_window=window)
    assert eng.trade_dedup_window == window
    push(eng, False, "S", [5, 4, 3, 2, 1])
    push(eng, True, "S", list(range(5, 5 - window, -1)))  # within the window: dropped
    assert eng.trades.count == 5
    assert eng.stats["dropped_trades"]["replayed"] == window
    push(eng, True, "S", [5 - window])  # just outside: stored again
    assert ids(eng)[-1] == 5 - window
    assert eng.trades.count == 6


def test_default_window_covers_a_replay_of_512(engine_cls: Any) -> None:
    eng = engine_cls()
    assert eng.trade_dedup_window == 512
    tids = list(range(1000, 1512))
    for i in range(0, 512, 64):
        push(eng, False, "S", tids[i : i + 64][::-1])
    push(eng, True, "S", [1512] + tids[::-1])  # the replay: 512 stored ones and a new one
    assert eng.trades.count == 513 and ids(eng)[-1] == 1512
    assert eng.stats["dropped_trades"] == {"replayed": 512, "duplicate": 0}


@pytest.mark.parametrize("window", [0, -1, 2**20 + 1])
def test_window_must_be_sane(engine_cls: Any, window: int) -> None:
    with pytest.raises(ValueError):
        engine_cls(trade_dedup_window=window)


def test_dedup_matches_reference_on_id_torture() -> None:
    """Huge, reset, backwards and repeated ids through a small window, in many pushes:
    both engines store and drop exactly the same trades."""
    import random

    rng = random.Random(5)
    for window in (1, 2, 7, 64):
        comp = compiled_engine_cls()(trade_capacity=64, trade_dedup_window=window)
        ref = ReferenceEngine(trade_capacity=64, trade_dedup_window=window)
        pool = [0, 1, 2, 3, 50, 51, BIG, BIG - 1, 2**31, 7, 7]
        for i in range(600):
            n = rng.randint(0, 6)
            batch = [rng.choice(pool) if rng.random() < 0.5 else i + rng.randint(-20, 5) for _ in range(n)]
            batch = [max(0, t) for t in batch]
            kw = {"time": rng.choice([1.0, 2.0])} if rng.random() < 0.3 else {}
            text = trades_text(rng.random() < 0.3, rng.choice(["A", "b"]), [trade(t, **kw) for t in batch])
            comp.feed(text)
            ref.feed(text)
            assert_state_equal(comp, ref, f"window {window} push {i}")
        assert comp.stats["duplicate_trades"] > 0 and comp.stats["out_of_order_trades"] > 0


@pytest.mark.parametrize("where", ["private", "event_log", "shm"])
@pytest.mark.parametrize("capacity", [1, 2, 8, 64])
def test_dedup_remembers_trades_the_ring_overwrote(
    capacity: int, where: str, request: pytest.FixtureRequest
) -> None:
    """The window remembers trades by their ring records and keeps a copy of each one the
    ring overwrites while it is still in the window: with rings smaller than the windows
    and several symbols, replays of old trades are still dropped and other trades with an
    old id (corrections) still stored, exactly as by the reference (the ring private, with
    an event log, or in shared memory)."""
    rng = random.Random(capacity)
    for window in (3, 16, 512):
        kw: dict[str, Any] = {"trade_capacity": capacity, "trade_dedup_window": window}
        if where == "event_log":
            kw["event_log"] = 64
        elif where == "shm":
            kw["shm_name"] = f"{request.getfixturevalue('shm_name')}-{window}"
        comp = compiled_engine_cls()(**kw)
        request.addfinalizer(comp.close)
        ref = ReferenceEngine(trade_capacity=capacity, trade_dedup_window=window)
        sent: dict[str, list[dict[str, Any]]] = {"A": [], "B": [], "C": []}
        next_id = 1
        for i in range(400):
            sym = rng.choice("AABC")
            old = sent[sym]
            roll = rng.random()
            if old and roll < 0.35:  # a replay of earlier trades, some long overwritten
                start = rng.randrange(len(old))
                batch = old[start : start + rng.randint(1, 4)]
            elif old and roll < 0.5:  # a correction: an old id, another price
                batch = [dict(rng.choice(old), price=str(rng.randint(1, 9) + 0.25))]
            else:
                batch = [
                    trade(next_id + k, price=str(100 + rng.randint(0, 9)), time=i)
                    for k in range(rng.randint(1, 3))
                ]
                next_id += len(batch)
            old.extend(t for t in batch if t not in old)
            text = trades_text(rng.random() < 0.5, sym, batch[::-1])
            comp.feed(text)
            ref.feed(text)
            assert_state_equal(comp, ref, f"capacity {capacity} window {window} push {i}")
        stats = comp.stats
        assert stats["duplicate_trades"] > (10 if window == 3 else 80), stats
        if window > capacity:
            assert comp.trades.count > capacity  # the ring wrapped inside the windows


# =============================================================================================
# B. live / stale books (defect 12)
# =============================================================================================


def test_a_book_is_live_only_after_a_snapshot(engine_cls: Any) -> None:
    eng = engine_cls()
    incr(eng, "S", asks=[("101", "1")])
    book = eng.book("S")
    assert not book.live and book.stale_since == 0  # increments only: never live
    snap(eng, "S", [("101", "1")], [("99", "1")])
    assert book.live and book.stale_since == 0
    assert eng.book("S", create=True).live  # create=True on a known symbol


def test_mark_stale_keeps_levels_until_the_next_snapshot(engine_cls: Any) -> None:
    eng = engine_cls()
    snap(eng, "A", [("101", "1")], [("99", "1")])
    snap(eng, "B", [("11", "1")], [("9", "1")])
    a, b = eng.book("A"), eng.book("B")
    version = a.version
    assert eng.mark_stale(["a"], now_ns=123) == 1
    assert not a.live and a.stale_since == 123 and b.live
    assert a.asks.tolist() == [[101.0, 1.0]] and a.version == version  # levels kept
    incr(eng, "A", asks=[("102", "2")])  # still applied, still stale
    assert not a.live and a.stale_since == 123 and a.n_asks == 2
    assert eng.mark_stale(now_ns=456) == 1  # all: only B was live
    assert a.stale_since == 123 and b.stale_since == 456  # the first time is kept
    snap(eng, "A", [("101", "1")], [("99", "1")])
    assert a.live and a.stale_since == 0 and not b.live
    before = time.time_ns()
    assert eng.mark_stale() == 1
    assert before <= a.stale_since <= time.time_ns()  # now_ns=0: the current time


def test_mark_stale_checks_every_name_first(engine_cls: Any) -> None:
    eng = engine_cls()
    snap(eng, "A", [("101", "1")], [])
    for bad, exc in (
        ("A", TypeError),
        (b"A", TypeError),
        (["A", "NOPE"], UnknownSymbol),
        (["A", 5], TypeError),
        (["A", ""], ValueError),
    ):
        with pytest.raises(exc):
            eng.mark_stale(bad, now_ns=1)
        assert eng.book("A").live  # nothing marked
    assert eng.mark_stale([], now_ns=1) == 0
    assert "NOPE" not in eng.symbols


def test_reset_books_empties_and_marks_stale(engine_cls: Any) -> None:
    eng = engine_cls()
    snap(eng, "A", [("101", "1")], [("99", "1")])
    incr(eng, "B", asks=[("5", "1")])  # has data, never live
    eng.book("C", create=True)  # never had data: left alone
    eng.reset_books(now_ns=77)
    a, b, c = eng.book("A"), eng.book("B"), eng.book("C")
    assert (len(a), a.version, a.live, a.stale_since) == (0, 2, False, 77)
    assert (len(b), b.version, b.live, b.stale_since) == (0, 2, False, 0)
    assert (len(c), c.version, c.live, c.stale_since) == (0, 0, False, 0)


def test_stale_state_in_to_pandas(engine_cls: Any) -> None:
    eng = engine_cls()
    snap(eng, "A", [("101", "1")], [("99", "1")])
    df = eng.book("A").to_pandas()
    assert (df.attrs["live"], df.attrs["stale_since"]) == (True, 0)
    eng.mark_stale(["A"], now_ns=9)
    df = eng.book("A").to_pandas()
    assert (df.attrs["live"], df.attrs["stale_since"]) == (False, 9)


def test_mark_stale_logs_no_event_row_and_reset_logs_a_clear_at_now() -> None:
    eng = compiled_engine_cls()(event_log=64)
    snap(eng, "A", [("101", "1")], [("99", "1")], recv_ns=5)
    n0 = eng.events.count
    eng.mark_stale(now_ns=50)
    assert eng.events.count == n0  # hftbacktest has no such event
    eng.reset_books(now_ns=60)
    rows = eng.events.since(n0)
    assert E.kinds(rows).tolist() == [E.DEPTH_CLEAR_EVENT]
    assert rows["local_ts"].tolist() == [60]


def test_shm_readers_see_live_and_stale(shm_name: str) -> None:
    with compiled_engine_cls()(depth=4, shm_name=shm_name, shm_checksum=True) as eng, attach(shm_name) as r:
        eng.book("A", create=True)
        rb = r.book("A")
        assert (rb.live, rb.stale_since) == (False, 0)
        snap(eng, "A", [("101", "1")], [("99", "1")])
        s = rb.read(verify=True)
        assert (s.live, s.stale_since, rb.live, rb.stale_since) == (True, 0, True, 0)
        seq = rb.seq
        eng.mark_stale(["A"], now_ns=1234)
        assert rb.seq == seq + 2  # published under the seqlock
        s = rb.read(verify=True)  # checksum still valid
        assert (s.live, s.stale_since, rb.live, rb.stale_since) == (False, 1234, False, 1234)
        assert s.bids.tolist() == [[99.0, 1.0]]  # levels kept
        assert (rb.to_pandas().attrs["live"], rb.to_pandas().attrs["stale_since"]) == (False, 1234)
        assert "stale" in repr(rb)
        snap(eng, "A", [("101", "1")], [("99", "1")])
        assert rb.live and rb.read().stale_since == 0
        eng.reset_books(now_ns=99)
        s = rb.read(verify=True)
        assert (s.live, s.stale_since, len(s.bids)) == (False, 99, 0)


# =============================================================================================
# C. book() / symbol_index() never invent symbols (defect 10 part)
# =============================================================================================


def test_unknown_symbol_raises_and_registers_nothing(engine_cls: Any) -> None:
    eng = engine_cls()
    for call in (eng.book, eng.symbol_index):
        with pytest.raises(UnknownSymbol, match="'BTCUSDT'") as ei:
            call("btcusdt")
        assert isinstance(ei.value, KeyError) and isinstance(ei.value, FastfeedError)
        assert ei.value.reason == "unknown_symbol"
        assert str(ei.value).startswith("unknown symbol 'BTCUSDT'")
    assert eng.symbols == [] and eng.books == {}
    assert eng.symbol_index("btcusdt", create=True) == 0
    book = eng.book("BTCUSDT")
    assert book.symbol == "BTCUSDT" and len(book) == 0 and not book.live
    assert eng.book("x", create=True) is eng.book("X")
    assert eng.symbols == ["BTCUSDT", "X"]
    assert "UnknownSymbol" in fastfeed.__all__ and fastfeed.UnknownSymbol is UnknownSymbol


@pytest.mark.parametrize(
    "bad, exc",
    [
        (None, TypeError),
        (5, TypeError),
        (b"BTC", TypeError),
        (["BTC"], TypeError),
        ("", ValueError),
        ("A" * 33, ValueError),
        ("BTC\u00e9", ValueError),
        ("BTC USDT", ValueError),
        ("BTC\x00", ValueError),
        ("BTC\x7f", ValueError),
    ],
)
@pytest.mark.parametrize("create", [False, True])
def test_invalid_names_are_type_or_value_errors(engine_cls: Any, bad: Any, exc: type, create: bool) -> None:
    eng = engine_cls()
    with pytest.raises(exc):
        eng.book(bad, create=create)
    with pytest.raises(exc):
        eng.symbol_index(bad, create=create)
    assert eng.symbols == []
    assert eng.book("A" * 32, create=True).symbol == "A" * 32  # the limit itself is fine


def test_unknown_symbol_is_not_published_to_shm(shm_name: str) -> None:
    with compiled_engine_cls()(shm_name=shm_name) as eng, attach(shm_name) as r:
        with pytest.raises(UnknownSymbol):
            eng.book("BTCUSDT")
        assert r.refresh() == 0
        eng.book("BTCUSDT", create=True)
        assert r.refresh() == 1 and r.symbols == ["BTCUSDT"]


# =============================================================================================
# D. drift between a snapshot and the live book it replaces (defect 13)
# =============================================================================================

ASKS = [("101", "1"), ("102", "2"), ("103", "3")]
BIDS = [("99", "1"), ("98", "2"), ("97", "3")]


def drift(eng: Any) -> dict[str, Any]:
    return eng.stats["drift"]


def test_no_check_without_a_live_book(engine_cls: Any) -> None:
    eng = engine_cls()
    incr(eng, "S", asks=[("500", "1")])
    snap(eng, "S", ASKS, BIDS)  # the book was not live: nothing to compare
    assert drift(eng) == {"checks": 0, "drifted": 0, "by_symbol": {}}
    eng.mark_stale(now_ns=1)
    snap(eng, "S", ASKS, BIDS)  # stale: not compared either
    assert drift(eng)["checks"] == 0
    assert eng.book("S").drift_checks == 0


def test_an_agreeing_snapshot_is_no_drift(engine_cls: Any) -> None:
    eng = engine_cls()
    snap(eng, "S", ASKS, BIDS)
    incr(eng, "S", asks=[("102", "5"), ("101", "0")], bids=[("99.5", "4")])
    snap(eng, "S", [("102", "5"), ("103", "3")], [("99.5", "4"), ("99", "1"), ("98", "2"), ("97", "3")])
    assert drift(eng) == {"checks": 1, "drifted": 0, "by_symbol": {}}
    book = eng.book("S")
    assert (book.drift_checks, book.drifts, book.last_drift) == (1, 0, 0)
    assert eng.drift_log == []


def test_missing_extra_and_changed_levels_are_counted(engine_cls: Any) -> None:
    eng = engine_cls()
    snap(eng, "S", ASKS, BIDS, recv_ns=1)
    # the new snapshot: ask 102 missing from it (extra in ours), ask 101.5 new (missing from
    # ours), bid 98 with another amount, bid 97 missing from it (extra in ours)
    snap(
        eng,
        "S",
        [("101", "1"), ("101.5", "7"), ("103", "3")],
        [("99", "1"), ("98", "2.5"), ("96.5", "1")],
        recv_ns=2,
    )
    assert eng.drift_log == [DriftRecord(1, "S", 2, 1, 2, 1)]
    assert drift(eng) == {"checks": 1, "drifted": 1, "by_symbol": {"S": 1}}
    book = eng.book("S")
    assert (book.drift_checks, book.drifts, book.last_drift) == (1, 1, 4)
    snap(
        eng,
        "S",
        [("101", "1"), ("101.5", "7"), ("103", "3")],
        [("99", "1"), ("98", "2.5"), ("96.5", "1")],
        recv_ns=3,
    )
    assert (book.drift_checks, book.drifts, book.last_drift) == (2, 1, 0)


def test_only_the_window_both_cover_is_compared(engine_cls: Any) -> None:
    eng = engine_cls()
    snap(eng, "S", ASKS, BIDS)
    # deeper snapshot, same top: the levels beyond our last rows are no drift
    snap(eng, "S", ASKS + [("104", "1"), ("105", "1")], BIDS + [("96", "1"), ("95", "1")])
    # shallower snapshot: the levels beyond its last rows are no drift either
    snap(eng, "S", ASKS[:1], BIDS[:2])
    # a level ours lacks above the shallower book's last row is drift (1 per side)
    snap(eng, "S", [("100.5", "1")] + ASKS[:1], [("99.5", "1")] + BIDS[:2])
    assert [tuple(r)[3:] for r in eng.drift_log] == [(2, 0, 0)]
    assert drift(eng)["checks"] == 3


def test_an_empty_side_covers_nothing(engine_cls: Any) -> None:
    eng = engine_cls()
    snap(eng, "S", ASKS, [])
    snap(eng, "S", ASKS, BIDS)
    snap(eng, "S", [], BIDS)
    assert drift(eng) == {"checks": 2, "drifted": 0, "by_symbol": {}}


def test_drift_check_can_be_turned_off(engine_cls: Any) -> None:
    eng = engine_cls(drift_check=False)
    assert not eng.drift_check
    snap(eng, "S", ASKS, BIDS)
    snap(eng, "S", ASKS[:1], [("50", "1")])
    assert drift(eng) == {"checks": 0, "drifted": 0, "by_symbol": {}}
    assert eng.book("S").live


@pytest.mark.parametrize("size", [0, 2])
def test_drift_log_is_bounded(engine_cls: Any, size: int) -> None:
    eng = engine_cls(drift_log_size=size)
    snap(eng, "A", ASKS, BIDS)
    snap(eng, "B", ASKS, BIDS)
    for i in range(3):
        snap(eng, "A", [(str(110 + i), "1")], BIDS, recv_ns=10 + i)
    snap(eng, "B", ASKS, [("99", "9")], recv_ns=20)
    # A's asks move away: within the window (up to the lower of the two last asks) our
    # rows are extra, the new ones lie beyond it
    want = [
        DriftRecord(1, "A", 10, 0, 3, 0),
        DriftRecord(2, "A", 11, 0, 1, 0),
        DriftRecord(3, "A", 12, 0, 1, 0),
        DriftRecord(4, "B", 20, 0, 0, 1),
    ]
    assert eng.drift_log == (want[len(want) - size :] if size else [])
    assert drift(eng) == {"checks": 4, "drifted": 4, "by_symbol": {"A": 3, "B": 1}}
    with pytest.raises(ValueError):
        engine_cls(drift_log_size=-1)


@pytest.mark.parametrize("kw", [{"event_log": 256}, {"depth": 2}, {"depth": 1}])
def test_drift_same_on_every_apply_path(kw: dict[str, Any]) -> None:
    """The logged / shared-memory apply path and small depths (trimmed rows) count the same
    drift as the reference."""
    comp = compiled_engine_cls()(**kw)
    ref = ReferenceEngine(**{k: v for k, v in kw.items() if k != "event_log"})
    steps = [
        (ASKS, BIDS),
        (ASKS[::-1], BIDS[::-1]),
        (ASKS[1:], BIDS),
        ([("99.5", "1")], BIDS),
        (ASKS + [("100", "5")], [("101", "1")] + BIDS),
        (ASKS, BIDS),
    ]
    for i, (a, b) in enumerate(steps):
        for eng in (comp, ref):
            snap(eng, "S", a, b, recv_ns=i)
            incr(eng, "S", asks=[("102", str(i + 1))])
        assert_state_equal(comp, ref, f"step {i}")
    assert comp.stats["drift"]["drifted"] > 0


@pytest.mark.parametrize("depth", [200, 40, 9])
def test_drift_on_deep_books_matches_the_reference(depth: int) -> None:
    """Books deeper than a few rows: the compiled drift walk (both sides interleaved, the
    rows inside the window found by search) counts what the reference counts, whichever
    side runs out first, whichever last row bounds the window, with empty sides, and
    with increments that move more than 8 rows."""
    rng = random.Random(depth)
    comp = compiled_engine_cls()(depth=depth)
    ref = ReferenceEngine(depth=depth)

    def levels(lo: int, hi: int, n: int) -> list[tuple[str, str]]:
        prices = rng.sample(range(lo, hi), min(n, hi - lo))
        return [(f"{p / 100:.2f}", str(rng.choice([1, 2, 3]))) for p in prices]

    for i in range(400):
        na = rng.choice([0, 1, 5, 20, 45, 90])
        nb = rng.choice([0, 1, 5, 20, 45, 90])
        asks = sorted(levels(10_001, 10_001 + rng.choice([60, 120, 400]), na), key=lambda r: -float(r[0]))
        bids = sorted(levels(9_999 - rng.choice([60, 120, 400]), 10_000, nb), key=lambda r: -float(r[0]))
        for eng in (comp, ref):
            snap(eng, "S", asks, bids, recv_ns=i)
        # increments between snapshots: inserts and deletions at any row
        inc_a = levels(10_001, 10_200, rng.randrange(0, 12))
        inc_b = levels(9_800, 10_000, rng.randrange(0, 12))
        inc_a = [(p, "0" if rng.random() < 0.4 else a) for p, a in inc_a]
        inc_b = [(p, "0" if rng.random() < 0.4 else a) for p, a in inc_b]
        for eng in (comp, ref):
            incr(eng, "S", asks=inc_a, bids=inc_b, recv_ns=i)
        assert_state_equal(comp, ref, f"step {i}")
    assert comp.stats["drift"]["drifted"] > 100


def test_drift_check_on_shared_memory(shm_name: str) -> None:
    with compiled_engine_cls()(depth=4, shm_name=shm_name) as eng:
        snap(eng, "S", ASKS, BIDS)
        snap(eng, "S", ASKS, BIDS[:1] + [("98", "9")])
        assert eng.drift_log == [DriftRecord(1, "S", 0, 0, 0, 1)]
        with attach(shm_name) as r:
            assert r.book("S").read().bids.tolist() == [[99.0, 1.0], [98.0, 9.0]]


def test_drift_log_is_a_copy(engine_cls: Any) -> None:
    eng = engine_cls()
    snap(eng, "S", ASKS, BIDS)
    snap(eng, "S", ASKS[:1], BIDS[:1])
    assert eng.drift_log == []  # no drift: the window rows agree
    snap(eng, "S", [("200", "1")], BIDS[:1])
    log = eng.drift_log
    assert log == [DriftRecord(1, "S", 0, 0, 1, 0)]
    log.clear()
    assert len(eng.drift_log) == 1 and eng.book("S").best_ask == 200.0
