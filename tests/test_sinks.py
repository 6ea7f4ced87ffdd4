"""Sinks, the per-frame hook and resync (fastfeed.sinks, Feed.on_frame / changes / resync).

Engine level: every event row carries its frame id (``fval``), ``Engine.frames`` /
``last_kind`` / ``last_symbol`` say what the last frame was (both engines), and
``events.snapshot_rows`` rebuilds the books exactly. Live, against the bundled exchange on
127.0.0.1 (port 0): a capture sink records exactly what the engine was fed (a replay of the
file rebuilds the feed's books), the hook hands out each frame's rows, and a consumer whose
rows were overwritten (a tiny event log, read late on purpose) is rebuilt by ``resync`` so
that its books equal ``feed.book(sym)`` level by level. Every wait stops on a count; the
timeouts are hang guards only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fastfeed
from fastfeed import events as E
from fastfeed.capture import CaptureReader, CaptureWriter, replay
from fastfeed.errors import EventsOverwritten, FastfeedError, UnknownSymbol
from fastfeed.exchange import Exchange, ExchangeConfig
from fastfeed.sinks import (
    CaptureSink,
    EventLogSink,
    FrameChange,
    ShmSink,
    Sink,
    push_symbols,
)

from helpers import compiled_engine_cls, depth_text, trade, trades_text

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native

SYMS = ["BTC_USDT", "ETH_USDT"]


def run(fn: Callable[[], Awaitable[Any]], timeout: float = 120.0) -> Any:
    async def main() -> Any:
        return await asyncio.wait_for(fn(), timeout)

    return asyncio.run(main())


async def until(cond: Callable[[], bool], what: str, guard: float = 60.0) -> None:
    """Poll ``cond`` (a hang guard, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + guard
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"hang guard: never {what}")
        await asyncio.sleep(0.01)


def dict_book(books: E.DictBooks, idx: int) -> tuple[list[list[float]], list[list[float]]]:
    bids, asks = books.get(idx, ({}, {}))
    return (
        [[p, q] for p, q in sorted(bids.items(), reverse=True)],
        [[p, q] for p, q in sorted(asks.items())],
    )


# --- engine: frame ids, last frame, snapshot rows ----------------------------------------------


def test_rows_carry_their_frame_id() -> None:
    eng = compiled_engine_cls()(depth=5, event_log=64)
    eng.feed(depth_text(True, "X", asks=[["101", "2"], ["100", "1"]], bids=[["99", "3"]]), recv_ns=1)
    with pytest.raises(FastfeedError):
        eng.feed(b"\x00not zlib", recv_ns=2)  # a rejected frame still takes an id
    eng.feed(depth_text(False, "X", asks=[["102", "1"]], bids=[["98", "1"]]), recv_ns=3)
    eng.feed(trades_text(False, "Y", [trade(7), trade(6)]), recv_ns=4)
    rows = eng.events.latest()
    assert E.frame_ids(rows).tolist() == [1, 1, 1, 1, 3, 3, 4, 4]
    assert eng.frames == 4
    n0 = eng.events.count
    eng.reset_books()
    assert E.frame_ids(eng.events.since(n0)).tolist() == [0]  # outside any frame
    eng.feed(depth_text(True, "X", asks=[["1", "1"]]), recv_ns=5)
    assert E.frame_ids(eng.events.latest(3)).tolist() == [0, 5, 5]  # the clear row is the frame's
    assert rows.dtype == E.EVENT_DTYPE and E.EVENT_DTYPE.itemsize == 64  # hftbacktest's layout


def test_last_frame_kind_and_symbol(engine_cls: Any) -> None:
    eng = engine_cls(depth=5)
    assert (eng.frames, eng.last_kind, eng.last_symbol) == (0, -1, -1)
    eng.book("A", create=True)
    eng.feed(depth_text(True, "B", asks=[["1", "1"]]))
    assert (eng.frames, eng.last_kind, eng.last_symbol) == (1, 1, 1)
    eng.feed(trades_text(False, "A", [trade(1)]))
    assert (eng.frames, eng.last_kind, eng.last_symbol) == (2, 2, 0)
    eng.feed('{"method":"ticker.update","params":[{"symbol":"A"}]}')
    assert (eng.last_kind, eng.last_symbol) == (3, -1)
    eng.feed('{"id":1,"result":"pong","error":null}')
    assert (eng.last_kind, eng.last_symbol) == (0, -1)
    with pytest.raises(FastfeedError):
        eng.feed('{"method":"depth.update","params":[true,{"asks":[["x","1"]]},"B"]}')
    assert (eng.frames, eng.last_kind, eng.last_symbol) == (5, -1, -1)


def test_method_codes_agree_with_the_compiled_parser() -> None:
    """``last_kind`` means the same in both engines, and the hook names it right."""
    from fastfeed import reference
    from fastfeed._parse import METHOD_NAMES
    from fastfeed.sinks import KIND_NAMES

    assert {n: i for i, n in enumerate(METHOD_NAMES)} == reference._METHOD_CODES
    assert {
        i: n.removesuffix(".update") for i, n in enumerate(METHOD_NAMES) if n not in ("reply", "unknown")
    } == KIND_NAMES


def test_snapshot_rows_rebuild_the_books(engine_cls: Any) -> None:
    eng = engine_cls(depth=3)
    eng.feed(
        depth_text(True, "X", asks=[["101", "2"], ["100", "1"]], bids=[["99", "3"], ["98", "1"]]), recv_ns=7
    )
    eng.feed(depth_text(False, "X", asks=[["100", "0"], ["103", "4"]]), recv_ns=8)
    eng.feed(depth_text(True, "Y", bids=[["5", "1"]]), recv_ns=9)
    eng.feed(trades_text(False, "Z", [trade(1)]), recv_ns=10)  # a book without levels
    eng.mark_stale(["Y"])
    rows = E.snapshot_rows(eng)
    assert rows.dtype == E.EVENT_DTYPE and rows.flags.writeable
    books = E.replay_books(rows)
    for sym in ("X", "Y", "Z"):
        b = eng.book(sym)
        assert dict_book(books, eng.symbol_index(sym)) == (b.bids.tolist(), b.asks.tolist()), sym
    x = rows[rows["ival"] == eng.symbol_index("X")]
    k = E.kinds(x).tolist()
    assert k == [E.DEPTH_CLEAR_EVENT] + [E.DEPTH_SNAPSHOT_EVENT] * 4  # live: snapshot rows
    assert E.sides(x).tolist() == [0, -1, -1, 1, 1]  # asks then bids, best first
    assert (x["local_ts"] == 8).all() and (E.frame_ids(x) == eng.frames).all()
    y = rows[rows["ival"] == eng.symbol_index("Y")]
    assert E.kinds(y).tolist() == [E.DEPTH_CLEAR_EVENT, E.DEPTH_EVENT]  # stale: not a snapshot
    assert E.snapshot_rows(eng, ["Y"]).tolist() == y.tolist()
    assert len(E.snapshot_rows(eng, [])) == 0
    with pytest.raises(UnknownSymbol):
        E.snapshot_rows(eng, ["NOPE"])


def test_snapshot_rows_continue_like_the_log() -> None:
    """Snapshot rows, then the log's rows from that point on, give the engine's books."""
    eng = compiled_engine_cls()(depth=4, event_log=1024)
    eng.feed(depth_text(True, "X", asks=[["101", "2"], ["100", "1"]], bids=[["99", "3"]]))
    snap, seq = E.snapshot_rows(eng), eng.events.count
    eng.feed(depth_text(False, "X", asks=[["100", "0"], ["99.5", "1"]], bids=[["99", "0"], ["98", "2"]]))
    eng.feed(depth_text(False, "X", bids=[["99.7", "1"]]))  # crosses 99.5 away
    books = E.replay_books([snap, eng.events.since(seq)])
    b = eng.book("X")
    assert dict_book(books, 0) == (b.bids.tolist(), b.asks.tolist())


def test_push_symbols_is_bounded_and_never_raises() -> None:
    assert push_symbols(
        {"params": [{"symbol": "btc_usdt"}, {"symbol": "BTC_USDT"}, {"currency": "usdt"}]}
    ) == ("BTC_USDT", "USDT")
    for bad in (
        None,
        5,
        {"params": 5},
        {"params": [1, "x", {"symbol": "a b"}, {"symbol": "x" * 33}, {"symbol": "\x1b[2J"}, {"symbol": 3}]},
    ):
        assert push_symbols(bad) == ()
    assert len(push_symbols({"params": [{"symbol": f"S{i}"} for i in range(20)]}, limit=5)) == 5


# --- sinks: construction ------------------------------------------------------------------------


def test_sink_arguments_are_checked() -> None:
    with pytest.raises(TypeError, match="not a sink"):
        fastfeed.Feed("ws://127.0.0.1:1/", sinks=[object()])
    with pytest.raises(TypeError, match="list of sinks"):
        fastfeed.Feed("ws://127.0.0.1:1/", sinks="capture.ffcap")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="needs a path or a writer"):
        CaptureSink()
    with pytest.raises(ValueError, match=r"engine-side sinks \(EventLogSink\)"):
        fastfeed.Feed("ws://127.0.0.1:1/", sinks=[EventLogSink(64)], engine=fastfeed.Engine())

    class AsyncSink(Sink):
        async def on_frame(self, change: FrameChange) -> None:  # type: ignore[override]
            pass

    with pytest.raises(TypeError, match="async callbacks"):
        fastfeed.Feed("ws://127.0.0.1:1/", sinks=[AsyncSink()])


def test_engine_side_sinks_configure_the_feeds_engine() -> None:
    opts = fastfeed.FeedOptions(depth=7)
    feed = fastfeed.Feed("ws://127.0.0.1:1/", options=opts, sinks=[EventLogSink(100)])
    assert feed.engine.events is not None and feed.engine.events.capacity == 128
    assert opts.event_log == 0  # the caller's options object is not changed
    asyncio.run(feed.close())
    with pytest.raises(ValueError, match="two shared-memory names"):
        fastfeed.connect("ws://127.0.0.1:1/", shm_name="a", sinks=[ShmSink("b")])


# --- live: capture sink, hook, changes, resync -----------------------------------------------


def test_capture_sink_records_exactly_what_the_engine_was_fed(tmp_path: Path) -> None:
    path = tmp_path / "live.ffcap"
    raw: list[tuple[bytes, int, int]] = []

    async def body() -> None:
        sink = CaptureSink(path, meta={"symbols": SYMS, "channels": ["depth", "trades"]})
        async with Exchange(ExchangeConfig(seed=3, symbols=SYMS, rate=2000)) as ex:
            async with fastfeed.connect(ex.url, sinks=[sink], on_raw=lambda *a: raw.append(a)) as feed:
                await feed.subscribe_depth(SYMS)
                await feed.subscribe_trades(SYMS)
                await until(lambda: sink.records >= 200, "200 records")
                url = feed.url
            assert sink.writer is not None and sink.writer.closed  # closed with the feed
            books = {s: feed.book(s).snapshot() for s in SYMS}
            ntrades = feed.trades.count
        with CaptureReader(path) as r:
            assert r.header.url == url and list(r.header.symbols) == SYMS
            recs = list(r)
            assert len(recs) == sink.records == len(raw)
            assert [(bytes(x.payload), x.recv_ns, x.msg_type) for x in recs] == raw
            eng = fastfeed.Engine()
            replay(r, eng)
        for s in SYMS:
            bids, asks = eng.book(s).snapshot()
            np.testing.assert_array_equal(bids, books[s][0])
            np.testing.assert_array_equal(asks, books[s][1])
        assert eng.trades.count == ntrades

    run(body)


def test_feed_on_raw_with_a_capture_writer(tmp_path: Path) -> None:
    """The shortest recorder: ``Feed(on_raw=writer.write)``."""
    path = tmp_path / "raw.ffcap"

    async def body() -> int:
        async with Exchange(ExchangeConfig(seed=4, symbols=SYMS, rate=1000)) as ex:
            with CaptureWriter(path, ex.url) as w:
                async with fastfeed.connect(ex.url, on_raw=w.write) as feed:
                    await feed.subscribe_depth(["BTC_USDT"])
                    await until(lambda: w.records >= 20, "20 records")
                return w.records

    n = run(body)
    with CaptureReader(path) as r:
        assert len(r) == n


def test_per_frame_hook_gives_each_frames_rows() -> None:
    seen: list[tuple[FrameChange, np.ndarray]] = []

    async def body() -> None:
        async with Exchange(ExchangeConfig(seed=5, symbols=SYMS, rate=2000)) as ex:
            feed = fastfeed.connect(
                ex.url, event_log=1 << 16, on_frame=lambda c: seen.append((c, c.rows().copy()))
            )
            async with feed:
                await feed.subscribe_depth(SYMS)
                await feed.subscribe_trades(SYMS)
                await feed.subscribe_ticker(["ETH_USDT"])
                await until(
                    lambda: {c.kind for c, _ in seen} >= {"depth", "trades", "ticker"} and len(seen) >= 100,
                    "every kind",
                )
                eng = feed.engine
                end = eng.events.count
                # the changes cover the log without gaps or overlaps, in order
                assert [c.seq for c, _ in seen[1:]] == [c.end for c, _ in seen[:-1]]
                assert seen[-1][0].end == end
                all_rows = np.concatenate([r for _, r in seen])
                assert all_rows.tolist() == eng.events.since(seen[0][0].seq).tolist()
                books = E.replay_books(all_rows)
                for s in SYMS:  # the hook's rows alone rebuild the books
                    b = feed.book(s)
                    assert dict_book(books, eng.symbol_index(s)) == (b.bids.tolist(), b.asks.tolist())

    run(body)
    assert seen[0][0].kind == "reset" and seen[0][0].frame == 0
    frames = [c.frame for c, _ in seen[1:]]
    assert frames == sorted(frames) and len(set(frames)) == len(frames)
    for c, rows in seen[1:]:
        assert len(rows) == c.n_rows
        assert (E.frame_ids(rows) == c.frame).all()
        if c.kind in ("depth", "trades"):
            assert c.symbol in SYMS and c.symbols == (c.symbol,)
            names = {
                "depth": {E.DEPTH_EVENT, E.DEPTH_CLEAR_EVENT, E.DEPTH_SNAPSHOT_EVENT},
                "trades": {E.TRADE_EVENT},
            }[c.kind]
            assert set(E.kinds(rows).tolist()) <= names
        else:
            assert c.kind == "ticker" and c.symbol is None and c.symbols == ("ETH_USDT",)
            assert len(rows) == 0


@pytest.mark.parametrize("queue_size", [10_000, 16])
def test_resync_after_an_overflow_rebuilds_the_consumer(queue_size: int) -> None:
    """A consumer of ``feed.changes()`` (as in docs/integration.md) reads late on purpose:
    the small event log has overwritten its rows (``EventsOverwritten``), and with a small
    queue the stream also dropped changes (a gap in ``seq``); ``resync`` rebuilds it, and
    from then on its books equal the feed's, level by level."""

    async def body() -> None:
        async with (
            Exchange(ExchangeConfig(seed=6, symbols=SYMS, rate=3000)) as ex,
            fastfeed.connect(ex.url, event_log=256, depth=20, queue_size=queue_size) as feed,
        ):
            changes = feed.changes()
            await feed.subscribe_depth(SYMS)
            expect, skip_to = feed.engine.events.count, -1
            await until(
                lambda: feed.engine.events.count > 256 * 20 and all(feed.book(s).live for s in SYMS),
                "an overflow",
            )
            books: E.DictBooks = {}
            resyncs = applied = compared = 0
            while applied < 300:
                c = await changes.__anext__()
                if c.end <= skip_to:
                    continue  # already in the snapshot rows
                try:
                    if c.seq != expect:
                        raise EventsOverwritten("gap")
                    rows = c.rows()
                    expect = c.end
                except EventsOverwritten:
                    snap, skip_to = feed.resync()
                    books, expect = E.replay_books(snap), skip_to
                    resyncs += 1
                else:
                    E.replay_books(rows, books)
                    applied += 1
                if len(changes) == 0:  # caught up: nothing was applied behind our back
                    for s in SYMS:
                        b = feed.book(s)
                        got = dict_book(books, feed.engine.symbol_index(s))
                        assert got == (b.bids.tolist(), b.asks.tolist()), s
                    compared += 1
            assert resyncs >= 1 and compared >= 1
            assert (changes.dropped > 0) == (queue_size == 16)

    run(body)


def test_a_raising_sink_is_counted_not_fatal() -> None:
    class Bad(Sink):
        def __init__(self) -> None:
            self.frames = 0
            self.events: list[str] = []
            self.closed = False

        def on_raw(self, payload: bytes, recv_ns: int, msg_type: int) -> None:
            raise RuntimeError("raw")

        def on_frame(self, change: FrameChange) -> None:
            self.frames += 1
            raise RuntimeError("frame")

        def on_event(self, event: Any) -> None:
            self.events.append(event.kind)

        def close(self) -> None:
            self.closed = True

    bad = Bad()

    async def body() -> None:
        async with (
            Exchange(ExchangeConfig(seed=7, symbols=SYMS, rate=1000)) as ex,
            fastfeed.connect(ex.url, sinks=[bad]) as feed,
        ):
            await feed.subscribe_depth(SYMS)
            await until(lambda: bad.frames >= 10, "10 frames")
            assert feed.stats["callback_errors"] >= 20
            assert feed.book("BTC_USDT").live  # the data path went on

    run(body)
    assert bad.closed and "connected" in bad.events and bad.events[-1] == "disconnected"


def test_record_function_is_the_client_with_a_capture_sink(tmp_path: Path) -> None:
    from fastfeed.capture import record

    async def body() -> None:
        async with Exchange(ExchangeConfig(seed=8, symbols=SYMS, rate=1000)) as ex:
            n = await record(
                ex.url,
                tmp_path / "r.ffcap",
                [("depth.subscribe", ["BTC_USDT"])],
                max_frames=50,
                meta={"symbols": ["BTC_USDT"]},
            )
            assert n == 50
            with pytest.raises(fastfeed.RequestError):  # a refused request is not silent
                await record(
                    ex.url, tmp_path / "bad.ffcap", [("depth.subscribe", ["NOPE_USDT"])], max_frames=50
                )

    run(body)
    with CaptureReader(tmp_path / "r.ffcap") as r:
        assert len(r) == 50 and list(r.header.symbols) == ["BTC_USDT"]


def test_recording_does_not_use_the_exchange() -> None:
    """The CLI's record command and the library recorder are the client plus a sink: no
    import of the bundled exchange's decoder (or anything else of it)."""
    import subprocess
    import sys

    code = (
        "import sys, fastfeed.cli.record, fastfeed.capture, fastfeed.sinks; "
        "print([m for m in sys.modules if m.startswith('fastfeed.exchange')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_frame_hook_is_off_without_consumers() -> None:
    """No consumer, no Python call per frame: the listener's hook is set only while a
    callback, a sink or an open ``changes()`` stream wants it."""

    async def body() -> None:
        async with (
            Exchange(ExchangeConfig(seed=9, symbols=SYMS, rate=1000)) as ex,
            fastfeed.connect(ex.url, event_log=1024) as feed,
        ):
            lst = feed._listener
            assert lst is not None and lst.on_frame is None and lst.on_raw is None
            changes = feed.changes()
            assert lst.on_frame is not None
            await feed.subscribe_depth(SYMS)
            first = await changes.__anext__()
            assert first.kind == "depth" and first.seq == 0
            changes.close()
            n = lst.frames
            await until(lambda: lst.frames > n + 5, "more frames")
            assert lst.on_frame is None  # switched off by the first frame after
            got: list[FrameChange] = []
            feed.on_frame = got.append  # on again: starts at the log's end
            start = feed.engine.events.count
            await until(lambda: len(got) >= 3, "3 changes")
            assert got[0].seq == start and [c.seq for c in got[1:]] == [c.end for c in got[:-1]]

    run(body)
