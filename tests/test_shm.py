"""Shared-memory books and trades: one process (and a few short-lived children for the
lifecycle cases). The multi-process stress test is in test_shm_stress.py.

Every test uses a fresh segment name and the ``shm_name`` fixture unlinks it afterwards,
also when the test fails.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import random
import sys
import warnings
from typing import Any

import numpy as np
import pytest
from test_equivalence import MAX_FRAME, make_payload, outcome

from fastfeed.errors import (
    FastfeedError,
    ShmFull,
    ShmInUse,
    ShmLayoutError,
    ShmNotFound,
    ShmStale,
    ShmTornRead,
    TradesOverwritten,
)
from fastfeed.layout import TRADE_DTYPE
from fastfeed.reference import ReferenceEngine
from fastfeed.shm import attach, book_checksum, list_segments, segment_path

from helpers import assert_state_equal, compiled_engine_cls, depth_text, trade, trades_text

pytestmark = [
    pytest.mark.native,  # reaches compiled code: part of CI's debug and ASan runs
    pytest.mark.skipif(sys.platform != "linux", reason="POSIX shm under /dev/shm"),
]


def Engine(**kw: Any) -> Any:
    return compiled_engine_cls()(**kw)


def feed_stream(engs: list[Any], n: int, seed: int) -> None:
    rng = random.Random(seed)
    for i in range(n):
        p = make_payload(rng, i)
        for e in engs:
            try:
                e.feed(p, 10 + i)
            except FastfeedError:
                pass


# --- basics ---------------------------------------------------------------------------------


def test_books_and_ring_live_in_shared_memory(shm_name: str) -> None:
    with Engine(depth=8, trade_capacity=16, shm_name=shm_name, shm_checksum=True) as eng:
        assert eng.shm_name == shm_name
        assert os.path.exists(segment_path(shm_name))
        assert shm_name in list_segments()
        eng.feed(
            depth_text(True, "btc_usdt", asks=[["101", "2"], ["100", "1"]], bids=[["99", "3"]]), recv_ns=5
        )
        eng.feed(
            trades_text(False, "ETH_USDT", [trade(2, "7", "1", "sell"), trade(1, "6", "2", "buy")]), recv_ns=6
        )
        book = eng.book("BTC_USDT")
        assert book.shared and eng.trades.shared
        with attach(shm_name) as r:
            assert r.symbols == ["BTC_USDT", "ETH_USDT"]
            assert r.depth == 8 and r.checksum and r.state == "ready" and r.writer_alive
            assert r.writer_pid == os.getpid()
            rb = r.book("btc_usdt")
            bids, asks = rb.snapshot()
            wb, wa = book.snapshot()
            assert np.array_equal(bids, wb) and np.array_equal(asks, wa)
            assert bids.flags.writeable and bids.flags.owndata
            assert rb.bids.tolist() == book.bids.tolist() and rb.asks.tolist() == book.asks.tolist()
            assert not rb.bids.flags.writeable
            with pytest.raises(ValueError):
                rb.asks[0, 0] = 1.0
            assert (rb.best_bid, rb.best_ask) == (99.0, 100.0)
            assert (rb.version, rb.recv_ns, rb.n_bids, rb.n_asks, len(rb)) == (1, 5, 1, 2, 3)
            assert rb.seq % 2 == 0
            snap = rb.read(verify=True)
            assert (snap.symbol, snap.version, snap.recv_ns, snap.seq) == ("BTC_USDT", 1, 5, rb.seq)
            assert snap.checksum == book_checksum(snap.bids, snap.asks, snap.version) != 0
            ob, oa = np.full((8, 2), -1.0), np.full((8, 2), -1.0)
            assert rb.read_into(ob, oa) == (1, 2, 1, 5)
            assert np.array_equal(ob[:1], wb) and np.array_equal(oa[:2], wa)
            with pytest.raises(ValueError):
                rb.read_into(np.empty((7, 2)), oa)
            with pytest.raises(ValueError):
                rb.read_into(np.empty((8, 2), dtype=np.float32), oa)
            # the empty book of a symbol that only traded
            eb = r.book("ETH_USDT")
            assert eb.snapshot()[0].shape == (0, 2) and eb.version == 0
            assert np.isnan(eb.best_bid) and np.isnan(eb.best_ask)
            # trades
            t = r.trades
            assert t.capacity == 16 and t.count == 2 and len(t) == 2
            assert t.latest().tolist() == eng.trades.latest().tolist()
            assert not t.latest().flags.writeable
            assert t.snapshot().tolist() == eng.trades.latest().tolist()
            assert t.snapshot(1)["id"].tolist() == [2]
            assert t.snapshot_since(1)["id"].tolist() == [2]
            assert t.since(0)["id"].tolist() == [1, 2]
            df = t.to_pandas()
            assert df["symbol"].tolist() == ["ETH_USDT", "ETH_USDT"]
            bdf = rb.to_pandas()
            assert bdf["price"].tolist() == [99.0, 100.0, 101.0]
            assert bdf.attrs["version"] == 1
            assert set(r.books) == {"BTC_USDT", "ETH_USDT"}
            with pytest.raises(KeyError):
                r.book("NOPE")
    assert not os.path.exists(segment_path(shm_name))


def test_shm_engine_matches_reference_on_random_streams(shm_name: str) -> None:
    """Publishing changes nothing in the engine's behaviour (books, ring, stats)."""
    shm = Engine(depth=5, trade_capacity=16, max_frame=MAX_FRAME, shm_name=shm_name, shm_checksum=True)
    ref = ReferenceEngine(depth=5, trade_capacity=16, max_frame=MAX_FRAME)
    try:
        with attach(shm_name) as r:
            rng = random.Random(11)
            for i in range(1200):
                p = make_payload(rng, i, actions=True)  # also reset_books / mark_stale
                assert outcome(shm, p, 10 + i) == outcome(ref, p, 10 + i), f"message {i}"
                if i % 100 == 99:
                    assert_state_equal(shm, ref, f"message {i}")
                    assert r.symbols == ref.symbols
                    for name in ref.symbols:
                        snap = r.book(name).read(verify=True)
                        rb = ref.book(name)
                        assert snap.bids.tolist() == rb.bids.tolist()
                        assert snap.asks.tolist() == rb.asks.tolist()
                        assert snap.version == rb.version
                        assert (snap.live, snap.stale_since) == (rb.live, rb.stale_since)
                        assert (r.book(name).live, r.book(name).stale_since) == (rb.live, rb.stale_since)
                    assert r.trades.snapshot().tolist() == ref.trades.latest(ref.trades.capacity - 1).tolist()
            had = {name: b.version for name, b in shm.books.items()}
            shm.reset_books()
            for name in ref.symbols:
                snap = r.book(name).read(verify=True)
                assert len(snap.bids) == len(snap.asks) == 0
                assert snap.version == (had[name] + 1 if had.get(name, 0) > 0 else 0)
                assert not snap.live
    finally:
        shm.close()


def test_new_symbols_appear_to_attached_readers(shm_name: str) -> None:
    with Engine(shm_name=shm_name) as eng, attach(shm_name) as r:
        assert r.symbols == []
        with pytest.raises(KeyError):
            r.book("A_USDT")
        eng.feed(depth_text(True, "A_USDT", bids=[["1", "1"]]))
        assert r.symbols == ["A_USDT"]
        assert r.book("a_usdt").best_bid == 1.0
        eng.symbol_index("b_usdt", create=True)
        assert r.refresh() == 2
        assert r.symbol_index("B_USDT") == 1


def test_views_stay_valid_after_close(shm_name: str) -> None:
    eng = Engine(depth=4, shm_name=shm_name)
    eng.feed(depth_text(True, "A", bids=[["2", "1"]]))
    r = attach(shm_name)
    live = r.book("A").bids
    wview = eng.book("A").bids
    r.close()
    eng.close()
    eng.close()  # idempotent
    assert r.state == "closed" and not r.writer_alive
    assert not os.path.exists(segment_path(shm_name))
    with pytest.raises(ShmNotFound):
        attach(shm_name)
    del r
    gc.collect()
    assert live.tolist() == [[2.0, 1.0]] == wview.tolist()
    eng.feed(depth_text(True, "A", bids=[["3", "1"]]))  # the engine keeps working
    assert eng.book("A").bids.tolist() == [[3.0, 1.0]]


def test_gc_and_context_manager_unlink(shm_name: str) -> None:
    eng = Engine(shm_name=shm_name)
    assert os.path.exists(segment_path(shm_name))
    del eng
    gc.collect()
    assert not os.path.exists(segment_path(shm_name))


# --- errors ---------------------------------------------------------------------------------


def test_attach_missing_name_is_a_clear_error(shm_name: str) -> None:
    with pytest.raises(ShmNotFound, match="no fastfeed shared-memory segment named") as ei:
        attach(shm_name)
    assert ei.value.reason == "not_found"
    for bad in ("", "a/b", ".hidden", "x" * 201, "sp ace"):
        with pytest.raises(ValueError):
            attach(bad)
        with pytest.raises(ValueError):
            Engine(shm_name=bad)


def test_second_writer_is_refused(shm_name: str) -> None:
    with Engine(shm_name=shm_name) as eng:
        with pytest.raises(ShmInUse, match=str(os.getpid())):
            Engine(shm_name=shm_name)
        eng.feed(depth_text(True, "A", bids=[["1", "1"]]))
        with attach(shm_name) as r:
            assert r.book("A").best_bid == 1.0  # the first writer's segment is intact


@pytest.mark.parametrize("max_symbols", [None, 5])
def test_symbol_slots_are_bounded(shm_name: str, max_symbols: int | None) -> None:
    """A frame with a new symbol beyond the slots is a counted rejection (ShmFull, reason
    shm_full), nothing applied -- also when max_symbols would allow more."""
    with Engine(shm_name=shm_name, shm_max_symbols=2, max_symbols=max_symbols) as eng:
        eng.feed(depth_text(True, "A", bids=[["1", "1"]]))
        eng.feed(trades_text(False, "B", [trade(1, "1", "1")]))
        before = eng.stats
        with pytest.raises(ShmFull, match="shm_full: a new symbol beyond the 2 symbol slots") as ei:
            eng.feed(depth_text(True, "C", bids=[["1", "1"]]))
        assert ei.value.reason == "shm_full"
        with pytest.raises(ShmFull):
            eng.feed(trades_text(False, "C", [trade(1, "1", "1")]))
        assert eng.feed_many([depth_text(True, "D", bids=[["1", "1"]])]) == []
        stats = eng.stats
        assert stats["rejects"]["shm_full"] == 3
        assert stats["rejects"]["symbol_limit"] == 0
        assert stats["frames"] == before["frames"] + 3
        assert stats["messages"] == before["messages"]
        assert eng.trades.count == 1 and set(eng.books) == {"A"}
        with pytest.raises(ShmFull):
            eng.book("D", create=True)  # an API call: raised, not a frame rejection
        assert eng.stats["rejects"]["shm_full"] == 3
        assert eng.symbols == ["A", "B"]
        eng.feed(depth_text(False, "A", bids=[["2", "1"]]))  # known symbols still work
        with attach(shm_name) as r:
            assert r.symbols == ["A", "B"] and r.book("A").best_bid == 2.0


def test_symbol_limit_defaults_fit_the_slots(shm_name: str) -> None:
    """The default max_symbols fits the default shm slots (it used to be 10000 vs 1024)."""
    eng = Engine()
    assert eng.max_symbols == 10000 and eng.shm is None
    with Engine(shm_name=shm_name) as eng:
        assert eng.max_symbols == eng.shm.max_symbols == 1024
    with Engine(shm_name=shm_name, max_symbols=50) as eng:
        assert eng.max_symbols == eng.shm.max_symbols == 50
    with Engine(shm_name=shm_name, shm_max_symbols=3) as eng:
        assert eng.max_symbols == eng.shm.max_symbols == 3
        for s in ("A", "B", "C"):
            eng.feed(depth_text(True, s, bids=[["1", "1"]]))
        with pytest.raises(ShmFull):
            eng.feed(depth_text(True, "D", bids=[["1", "1"]]))
    with Engine(shm_name=shm_name, max_symbols=2, shm_max_symbols=3) as eng:
        assert (eng.max_symbols, eng.shm.max_symbols) == (2, 3)
        for s in ("A", "B"):
            eng.feed(depth_text(True, s, bids=[["1", "1"]]))
        with pytest.raises(FastfeedError) as ei:
            eng.feed(depth_text(True, "C", bids=[["1", "1"]]))
        assert ei.value.reason == "symbol_limit"
        assert eng.stats["rejects"]["symbol_limit"] == 1 and eng.stats["rejects"]["shm_full"] == 0


def test_not_a_fastfeed_segment(shm_name: str) -> None:
    with open(segment_path(shm_name), "wb") as f:
        f.write(b"\x01" * 4096)
    with pytest.raises(ShmLayoutError):
        attach(shm_name)


def test_torn_read_is_bounded(shm_name: str) -> None:
    """A writer that died in the middle of an update leaves seq odd: readers give up."""
    with Engine(depth=4, shm_name=shm_name) as eng:
        eng.feed(depth_text(True, "A", bids=[["1", "1"]]))
        with attach(shm_name) as r:
            rb = r.book("A")
            with open(segment_path(shm_name), "rb") as f:
                books_off = int(np.frombuffer(f.read(96), dtype="<u8")[11])
            mm = np.memmap(segment_path(shm_name), dtype="<u8", mode="r+", offset=books_off, shape=(1,))
            seq = int(mm[0])
            assert seq == rb.seq and seq % 2 == 0
            mm[0] = seq + 1
            mm.flush()
            rb.max_retries = 200
            with pytest.raises(ShmTornRead, match="no consistent read in 200 attempts"):
                rb.snapshot()
            with pytest.raises(ShmTornRead):
                rb.best_bid
            mm[0] = seq
            mm.flush()
            del mm
            assert rb.snapshot()[0].tolist() == [[1.0, 1.0]]


def test_trade_windows_detect_overwrites(shm_name: str) -> None:
    with Engine(trade_capacity=8, shm_name=shm_name) as eng, attach(shm_name) as r:
        t = r.trades
        for i in range(1, 21):
            eng.feed(trades_text(False, "A", [trade(i, str(i), "1")]), recv_ns=i)
        assert t.count == 20 and len(t) == 8
        snap = t.snapshot()
        assert snap["seq"].tolist() == list(range(13, 20))  # capacity - 1 records
        assert snap["id"].tolist() == list(range(14, 21))
        assert t.snapshot(3)["seq"].tolist() == [17, 18, 19]
        assert t.snapshot_since(15)["seq"].tolist() == [15, 16, 17, 18, 19]
        assert len(t.snapshot_since(20)) == 0
        with pytest.raises(TradesOverwritten):
            t.snapshot_since(12)  # only 13.. can be read consistently
        with pytest.raises(TradesOverwritten):
            t.since(11)
        assert t.since(12)["seq"].tolist() == list(range(12, 20))  # zero-copy: all 8 held
        assert t.snapshot().dtype == TRADE_DTYPE
        with pytest.raises(ValueError):
            t.snapshot_since(-1)


def _crash_writer(name: str, conn: Any) -> None:
    """Child: publish a book, report, then die without closing (no unlink)."""
    import fastfeed

    eng = fastfeed.Engine(depth=4, shm_name=name)
    eng.feed('{"method":"depth.update","params":[true,{"bids":[["5","1"]]},"A"],"id":null}')
    conn.send(os.getpid())
    conn.close()
    os._exit(0)


def test_stale_segment_of_a_crashed_writer(shm_name: str) -> None:
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_crash_writer, args=(shm_name, send))
    proc.start()
    send.close()
    try:
        assert recv.poll(60), "child did not start"
        pid = recv.recv()
        proc.join(120)  # a hang guard
        assert proc.exitcode == 0
    finally:
        recv.close()
        if proc.is_alive():  # pragma: no cover
            proc.kill()
            proc.join()
    assert os.path.exists(segment_path(shm_name)), "a crashed writer leaves its segment"
    with pytest.raises(ShmStale, match=f"pid {pid}"):
        attach(shm_name)
    old = attach(shm_name, allow_stale=True)
    assert old.book("A").snapshot()[0].tolist() == [[5.0, 1.0]]  # frozen, readable
    assert not old.writer_alive and old.state == "ready"
    with Engine(depth=4, shm_name=shm_name) as eng:  # detected and recreated
        assert old.state == "stale"
        eng.feed(depth_text(True, "B", bids=[["7", "1"]]))
        with attach(shm_name) as r:
            assert r.writer_pid == os.getpid() and r.symbols == ["B"]
    old.close()


def test_forked_child_does_not_unlink(shm_name: str) -> None:
    if not hasattr(os, "fork"):  # pragma: no cover
        pytest.skip("no fork")
    with Engine(shm_name=shm_name) as eng:
        eng.feed(depth_text(True, "A", bids=[["1", "1"]]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
            pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                eng.close()
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert status == 0
        assert os.path.exists(segment_path(shm_name))
        with attach(shm_name) as r:
            assert r.state == "ready"


def test_shm_hot_path_zero_allocations(shm_name: str) -> None:
    """Publishing to shared memory (seqlock, checksum, ring count) allocates nothing."""
    import gc as _gc
    import zlib

    from test_compiled import SEED, SYMBOLS, _depth, _frames

    rng = random.Random(SEED)
    next_id = [3_000_000_000]
    with Engine(depth=50, trade_capacity=4096, shm_name=shm_name, shm_checksum=True, event_log=1024) as eng:
        warm = [zlib.compress(_depth(rng, True).replace(SYMBOLS[0], s).encode()) for s in SYMBOLS]
        warm += _frames(400, "mixed", False, rng, next_id)
        measured = _frames(5000, "mixed", False, rng, next_id)
        for p in warm:
            eng.feed(p)
        feed = eng.feed
        _gc.collect()
        _gc.disable()
        try:
            b0 = sys.getallocatedblocks()
            b1 = sys.getallocatedblocks()
            before = sys.getallocatedblocks()
            for p in measured:
                feed(p)
            after = sys.getallocatedblocks()
        finally:
            _gc.enable()
        assert after - before - (b1 - b0) == 0
        assert eng.stats["rejects"] == dict.fromkeys(eng.stats["rejects"], 0)
