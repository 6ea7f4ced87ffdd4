"""The compiled per-frame hook (``fastfeed._hook``: ``FrameHook``, ``FrameChange``).

``Feed`` installs a ``FrameHook`` as the listener's ``on_frame(msg, recv_ns)`` when some
consumer wants frames. Its changes are compared field by field (and row by row) with the
Python hook the feed used before (``OldHook`` below, the oracle) on a mixed stream: corpus
depth / trades / tickers, all_ticker pushes larger than the ticker history, private pushes
(order, order_algo, balance), replies, unknown methods, rejected frames and ``reset``
changes. Then: a raising or async consumer is counted and logged and never stops the
others; no consumer means no hook; the streams' bounded queue; ``rows()`` against the
ring's own ``since``; FrameChange's repr / pickling / attributes. Offline: the feed is never
connected, the listener is a stand-in with the two attributes ``_update_hooks`` sets.
"""

from __future__ import annotations

import gc
import json
import logging
import pickle
import weakref
import zlib
from typing import Any

import numpy as np
import pytest

import fastfeed
from fastfeed._hook import FrameChange, FrameHook
from fastfeed.bench.corpus import make_corpus
from fastfeed.errors import EventsOverwritten, FastfeedError
from fastfeed.events import EVENT_DTYPE
from fastfeed.sinks import KIND_NAMES, Sink, push_symbols

from helpers import trade, trades_text

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native

URL = "ws://127.0.0.1:1/"


class Listener:
    """What ``Feed._update_hooks`` configures on the live ``FeedListener``."""

    on_raw: Any = None
    on_frame: Any = None


def _ticker_symbols(eng: Any, first: int) -> tuple[str, ...]:
    hist = eng.ticker_history
    first = max(first, hist.count - hist.capacity, 0)
    idx = hist.since(first)["symbol"]
    names = eng.ticker_symbols
    return tuple(names[i] for i in dict.fromkeys(idx.tolist()) if 0 <= i < len(names))


class OldHook:
    """The oracle: the per-frame hook as ``Feed._frame_done`` / ``_change`` built it in
    Python before it was compiled. ``out``: one tuple per change (its rows copied)."""

    def __init__(self, eng: Any) -> None:
        self.eng = eng
        ring = eng.events
        self.ev_seen = ring.count if ring is not None else 0
        self.tk_seen = eng.ticker_history.count
        self.out: list[tuple[Any, ...]] = []

    def __call__(self, msg: Any, recv_ns: int) -> None:
        eng = self.eng
        kind = KIND_NAMES.get(eng.last_kind)
        tk_first, self.tk_seen = self.tk_seen, eng.ticker_history.count
        if kind is None:
            return
        idx = eng.last_symbol
        if idx >= 0:
            symbol: str | None = eng.symbols[idx]
            symbols: tuple[str, ...] = (eng.symbols[idx],)
        elif kind in ("ticker", "all_ticker"):
            symbol, symbols = None, _ticker_symbols(eng, tk_first)
        else:
            symbol, symbols = None, push_symbols(msg)
        self.change(eng.frames, recv_ns, kind, symbol, symbols)

    def change(
        self, frame: int, recv_ns: int, kind: str, symbol: str | None, symbols: tuple[str, ...]
    ) -> None:
        ring = self.eng.events
        end = ring.count if ring is not None else 0
        seq, self.ev_seen = self.ev_seen, end
        rows = (
            ring.since(seq)[: end - seq].copy()
            if ring is not None and end != seq
            else np.zeros(0, EVENT_DTYPE)
        )
        self.out.append((frame, recv_ns, kind, symbol, symbols, seq, end, rows.tobytes()))


def snap(c: FrameChange) -> tuple[Any, ...]:
    return (c.frame, c.recv_ns, c.kind, c.symbol, c.symbols, c.seq, c.end, c.rows().tobytes())


def push(method: str, params: Any) -> str:
    return json.dumps({"method": method, "params": params, "id": None})


def mixed_stream(n: int = 3000) -> list[bytes | str]:
    """Corpus frames with every other kind of frame mixed in."""
    out: list[bytes | str] = [f.zlib for f in make_corpus(n, seed=7)]
    extra: list[bytes | str] = [
        push(
            "order.update",
            [{"id": "1", "symbol": "btc_usdt", "status": 0}, {"id": "2", "symbol": "ETH_USDT"}],
        ),
        push("order.update", [{"id": "3", "symbol": "BTC_USDT"}, {"id": "4", "symbol": "btc_usdt"}, "junk"]),
        push("order_algo.update", [{"symbol": "SOL_USDT", "id": "a"}]),
        push("order_algo.update", {"symbol": "XRP_USDT"}),  # one record, not a list
        push("balance.update", [{"currency": "usdt", "free": "1"}, {"currency": "BTC", "free": "2"}]),
        push("balance.update", [{"currency": "not a name"}, {"currency": "x" * 40}]),  # named nothing
        '{"id":7,"result":"pong","error":null}',  # a reply: no change
        push("foo.update", [{"symbol": "BTC_USDT"}]),  # an unknown method: no change
        push("ticker.update", [{"symbol": "NEW_USDT", "last": "1.5", "timestamp": 1}]),
        push(
            "all_ticker.update",  # more records than the ticker history holds, repeated names
            [{"symbol": f"T{i % 13}_USDT", "last": "2", "timestamp": 2} for i in range(40)],
        ),
        push(
            "ticker.update",
            [
                {"symbol": "A_USDT", "last": "1", "timestamp": 3},
                {"symbol": "B_USDT", "last": "1", "timestamp": 3},
            ]
            + [{"symbol": "A_USDT", "last": "2", "timestamp": 4}],
        ),
        zlib.compress(
            b'{"method":"depth.update","params":[true,{"asks":[["x","1"]]},"BTC_USDT"]}'
        ),  # rejected
        b"\x00not zlib",  # rejected
        '{"method":"trades.update","params":[false,[],"EMPTY_USDT"]}',  # a trades push with no trade
    ]
    for i, e in enumerate(extra * 3):
        out.insert(200 + i * 61, e)
    return out


def feed_through(feed: fastfeed.Feed, lst: Listener, oracle: OldHook, stream: list[bytes | str]) -> None:
    """Each payload as the listener hands it on: ``Engine.feed``, then ``on_frame`` (not for
    a rejected frame); a ``reset`` change (what a new connection emits) every 1000 frames."""
    eng = feed.engine
    for i, payload in enumerate(stream):
        ns = 1_700_000_000_000_000_000 + i
        try:
            msg = eng.feed(payload, ns)
        except FastfeedError:
            continue
        oracle(msg, ns)
        if lst.on_frame is not None:
            lst.on_frame(msg, ns)
        if i % 1000 == 999:
            eng.reset_books()
            books = tuple(eng.books)
            oracle.change(0, ns + 1, "reset", None, books)
            feed._change(0, ns + 1, "reset", None, books)


@pytest.mark.parametrize("event_log", [0, 1 << 16])
def test_changes_equal_the_python_hook(event_log: int) -> None:
    eng = fastfeed.Engine(event_log=event_log, ticker_capacity=16)
    got: list[tuple[Any, ...]] = []
    feed = fastfeed.Feed(URL, engine=eng, on_frame=lambda c: got.append(snap(c)))
    lst = Listener()
    feed._update_hooks(lst)  # type: ignore[arg-type]
    assert isinstance(lst.on_frame, FrameHook) and lst.on_frame is feed._frame_done
    oracle = OldHook(eng)
    feed_through(feed, lst, oracle, mixed_stream())
    assert got == oracle.out
    kinds = {c[2] for c in got}
    assert kinds == {"depth", "trades", "ticker", "all_ticker", "order", "order_algo", "balance", "reset"}
    by_kind = {c[2]: c for c in reversed(got)}  # the first of each kind
    assert by_kind["order"][3:5] == (None, ("BTC_USDT", "ETH_USDT"))
    # records 24..39 of 40 are still held (history of 16): their names in order, each once
    assert by_kind["all_ticker"][4] == tuple(f"T{(24 + i) % 13}_USDT" for i in range(13))
    assert any(c[2] == "balance" and c[4] == () for c in got)
    assert any(c[2] == "trades" and c[3] == "EMPTY_USDT" and c[5] == c[6] for c in got)
    if event_log:
        assert sum(c[6] - c[5] for c in got) == eng.events.count  # every row in exactly one change


def test_changes_stream_and_sinks_get_the_same_changes() -> None:
    """A sink's on_frame runs before the feed's own, and a ``changes()`` stream gets the
    same objects; the stream's bounded queue drops the oldest and counts it."""
    order: list[str] = []
    seen: list[FrameChange] = []

    class S(Sink):
        def on_frame(self, change: FrameChange) -> None:
            order.append("sink")
            seen.append(change)

    eng = fastfeed.Engine(event_log=1 << 12)
    feed = fastfeed.Feed(URL, engine=eng, sinks=[S()], on_frame=lambda c: order.append("feed"))
    feed.options.queue_size = 5
    lst = Listener()
    feed._update_hooks(lst)  # type: ignore[arg-type]
    st = feed.changes()
    oracle = OldHook(eng)
    stream = [f.zlib for f in make_corpus(40, seed=3)]
    feed_through(feed, lst, oracle, stream)
    assert order == ["sink", "feed"] * len(seen) and len(seen) == len(oracle.out) == 40
    assert len(st) == 5 and st.dropped == 35
    assert list(st._q) == seen[-5:]  # the same objects, the newest kept


def test_a_raising_or_async_consumer_is_counted_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []

    def bad(change: FrameChange) -> None:
        raise RuntimeError("consumer bug")

    async def coro() -> None:
        return None

    class S(Sink):
        def on_frame(self, change: FrameChange) -> None:
            bad(change)

    class A(Sink):
        def on_frame(self, change: FrameChange) -> Any:  # a sync function handing back a coroutine
            return coro()

    for sinks, what in (([S()], "consumer bug"), ([A()], "returned an awaitable")):
        calls.clear()
        caplog.clear()
        eng = fastfeed.Engine(event_log=1 << 10)
        feed = fastfeed.Feed(URL, engine=eng, sinks=sinks, on_frame=lambda c: calls.append(c.frame))
        lst = Listener()
        feed._update_hooks(lst)  # type: ignore[arg-type]
        st = feed.changes()
        with caplog.at_level(logging.ERROR, logger="fastfeed"):
            feed_through(feed, lst, OldHook(eng), [f.zlib for f in make_corpus(20, seed=5)])
        assert calls == list(range(1, 21))  # the feed's own callback ran for every frame
        assert len(st) == 20
        assert feed.stats["callback_errors"] == 20
        # logged once (rate-limited); an awaitable was closed: no "never awaited" warning
        assert "on_frame callback raised" in caplog.text and what in caplog.text


def test_no_consumer_no_hook_and_the_last_one_switches_it_off() -> None:
    eng = fastfeed.Engine(event_log=64)
    feed = fastfeed.Feed(URL, engine=eng)
    lst = Listener()
    feed._listener = lst  # type: ignore[assignment]
    feed._update_hooks()
    assert lst.on_frame is None  # nothing wants frames: the listener calls nothing
    got: list[FrameChange] = []
    feed.on_frame = got.append
    assert lst.on_frame is feed._frame_done
    hook = lst.on_frame
    eng.feed('{"method":"depth.update","params":[true,{"asks":[["1","1"]]},"X"]}', 5)
    hook(None, 5)
    assert [(c.kind, c.symbol, c.n_rows) for c in got] == [("depth", "X", 2)]
    feed._frame_fns.clear()  # the consumer went away behind the feed's back
    feed._on_frame = None
    eng.feed('{"method":"depth.update","params":[false,{"asks":[["2","1"]]},"X"]}', 6)
    hook(None, 6)  # hands out nothing, switches itself off
    assert len(got) == 1 and lst.on_frame is None
    feed.on_frame = got.append  # on again: starts at the event log's end
    assert lst.on_frame is hook and hook.ev_seen == eng.events.count
    eng.feed('{"method":"depth.update","params":[false,{"asks":[["3","1"]]},"X"]}', 7)
    hook(None, 7)
    assert got[-1].seq == got[0].end + 1 and got[-1].n_rows == 1


def test_frame_hook_calls_update_hooks_only_without_consumers() -> None:
    eng = fastfeed.Engine(event_log=64)
    updates: list[int] = []
    failed: list[tuple[str, BaseException]] = []
    returned: list[Any] = []
    streams: list[Any] = []
    hook = FrameHook(
        eng,
        KIND_NAMES,
        push_symbols,
        streams,
        lambda k, e: failed.append((k, e)),
        lambda k, r: returned.append(r),
        lambda: updates.append(1),
    )
    eng.feed('{"method":"depth.update","params":[true,{"asks":[["1","1"]]},"X"]}', 1)
    hook(None, 1)
    assert updates == [1] and hook.ev_seen == 0
    hook.fns = [lambda c: 42, lambda c: 1 / 0]
    hook.start()
    eng.feed(trades_text(False, "Y", [trade(1)]), 2)
    hook(None, 2)
    assert updates == [1] and returned == [42]
    assert [k for k, _ in failed] == ["on_frame"] and isinstance(failed[0][1], ZeroDivisionError)
    with pytest.raises(TypeError):
        FrameHook(eng, {1: 5}, push_symbols, [], print, print, print)  # type: ignore[dict-item]


def test_rows_is_the_rings_since_and_raises_once_overwritten() -> None:
    """``rows()`` (one slice of the mirror ring) equals ``since(seq)[:n_rows]`` while the
    rows are held, across the ring's wrap, and raises EventsOverwritten after."""
    eng = fastfeed.Engine(event_log=64)
    feed = fastfeed.Feed(URL, engine=eng)
    kept: list[FrameChange] = []
    feed.on_frame = kept.append
    lst = Listener()
    feed._update_hooks(lst)  # type: ignore[arg-type]
    ring = eng.events
    for i, f in enumerate(make_corpus(300, seed=11)):
        msg = eng.feed(f.zlib, i)
        lst.on_frame(msg, i)
        for c in kept[-12:]:
            if not c.n_rows:
                assert len(c.rows()) == 0
            elif ring.count - c.seq > ring.capacity:
                with pytest.raises(EventsOverwritten):
                    c.rows()
            else:
                want = ring.since(c.seq)[: c.n_rows]
                got = c.rows()
                assert got.tobytes() == want.tobytes() and not got.flags.writeable
    assert ring.count > 3 * ring.capacity and len(kept) == 300


def test_frame_change_object() -> None:
    c = FrameChange(3, 9, "order", None, ("A_USDT", "B_USDT", "C_USDT", "D_USDT"), 5, 5, None)
    assert repr(c) == "<FrameChange frame=3 order A_USDT,B_USDT,C_USDT... rows 5..5>"
    assert c.n_rows == 0 and c.rows().dtype == EVENT_DTYPE and len(c.rows()) == 0
    d = pickle.loads(pickle.dumps(c))
    assert snap(d) == snap(c) and repr(d) == repr(c)
    d.symbol = "A_USDT"  # attributes stay assignable, as on the Python class
    d.end = 7
    assert repr(d) == "<FrameChange frame=3 order A_USDT rows 5..7>" and d.n_rows == 2
    eng = fastfeed.Engine(event_log=16)
    with pytest.raises(TypeError):
        pickle.dumps(FrameChange(1, 1, "depth", "X", ("X",), 0, 1, eng.events))  # the ring is not picklable
    assert fastfeed.FrameChange is FrameChange and fastfeed.sinks.FrameChange is FrameChange


def test_a_feed_and_its_hook_make_no_reference_cycle() -> None:
    """The hook holds the feed's methods weakly: an unused feed is freed by its reference
    count alone (as before the hook was compiled), and a hook outliving its feed (an old
    listener's) still hands out changes but skips the feed's methods instead of keeping
    the feed alive."""
    gc.collect()
    gc.disable()
    try:
        feed = fastfeed.Feed(URL, engine=fastfeed.Engine(event_log=64))
        ref = weakref.ref(feed)
        eng, hook = feed.engine, feed._frame_done
        got: list[FrameChange] = []
        hook.fns = [got.append, lambda c: 1 / 0, lambda c: 42]
        del feed
        assert ref() is None
    finally:
        gc.enable()
    eng.feed('{"method":"depth.update","params":[true,{"asks":[["1","1"]]},"X"]}', 1)
    hook(None, 1)  # raises nothing: the feed that counted errors is gone
    assert [(c.kind, c.symbol, c.n_rows) for c in got] == [("depth", "X", 2)]
    hook.fns = []
    hook(None, 2)  # no consumer: the feed that would switch the hook off is gone
    assert len(got) == 1
