"""Engines in several threads (the compiled engine releases the GIL while it inflates and
parses): results identical to feeding one after the other, concurrent feeding of one
engine refused with EngineBusy (nothing changed, nothing counted), held buffer views
released. No timing assertions: thread joins have generous hang-guard timeouts only.

Compiled engine only: the GIL release and EngineBusy are properties of the compiled
engine (the pure-Python reference never releases the GIL).
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import fastfeed
from fastfeed._inflate import BACKENDS, Inflater, other_threads_py
from fastfeed.errors import EngineBusy, FastfeedError

from helpers import assert_state_equal, depth_text, trade, trades_text

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native

JOIN_TIMEOUT = 300.0  # hang guard only


def _stream(seed: int, symbols: list[str], n: int) -> list[bytes | str]:
    """A mixed, deterministic stream: snapshots, increments, trades, tickers, replies and a
    few bad frames; mostly zlib, some plain text."""
    rng = random.Random(seed)
    out: list[bytes | str] = []
    tid = 1000
    mid = {s: 100.0 + 10 * i for i, s in enumerate(symbols)}
    for s in symbols:
        asks = [(f"{mid[s] + 0.5 + k / 10:.2f}", "1") for k in range(30)]
        bids = [(f"{mid[s] - 0.5 - k / 10:.2f}", "2") for k in range(30)]
        out.append(zlib.compress(depth_text(True, s, asks=asks, bids=bids).encode()))
    for i in range(n):
        s = rng.choice(symbols)
        r = rng.random()
        if r < 0.55:
            side = rng.choice(("asks", "bids"))
            off = rng.randrange(1, 40) / 10
            price = mid[s] + 0.5 + off if side == "asks" else mid[s] - 0.5 - off
            amount = "0" if rng.random() < 0.3 else f"{rng.randrange(1, 500) / 100:.2f}"
            kw = {side: [(f"{price:.2f}", amount)]}
            text = depth_text(False, s, **kw)
        elif r < 0.85:
            tid += rng.randrange(1, 3)
            text = trades_text(
                False, s, [trade(tid, f"{mid[s]:.2f}", "0.5", rng.choice(("buy", "sell")), 1.5 + i)]
            )
        elif r < 0.95:
            text = json.dumps(
                {
                    "method": "ticker.update",
                    "params": [{"symbol": s, "last": str(mid[s]), "timestamp": 1700000000 + i}],
                    "id": None,
                }
            )
        elif r < 0.98:
            text = json.dumps({"error": None, "result": {"status": "success"}, "id": i})
        else:
            out.append(rng.choice((b"\x78\x9c\x00garbage", b"", zlib.compress(b"{bad json"))))
            continue
        out.append(text if rng.random() < 0.1 else zlib.compress(text.encode()))
    return out


def _feed_all(engine: Any, stream: list[bytes | str], many: bool) -> list[Any]:
    if many:
        return engine.feed_many(stream, 7)
    got = []
    for p in stream:
        try:
            got.append(engine.feed(p, 7))
        except FastfeedError as exc:
            got.append(("error", type(exc).__name__, exc.reason))
    return got


STREAMS = [_stream(1, ["BTC_USDT", "ETH_USDT"], 1500), _stream(2, ["XRP_USDT", "ADA_USDT"], 1500)]


@contextlib.contextmanager
def _thread_alive(alive: bool = True) -> Iterator[None]:
    """Run the body while another Python thread exists (blocked on an event), so that the
    engine takes its GIL-releasing paths; ``alive=False``: no extra thread."""
    if not alive:
        yield
        return
    started = threading.Event()
    release = threading.Event()
    t = threading.Thread(target=lambda: (started.set(), release.wait(JOIN_TIMEOUT)))
    t.start()
    assert started.wait(JOIN_TIMEOUT), "hang guard"
    try:
        yield
    finally:
        release.set()
        t.join(JOIN_TIMEOUT)
        assert not t.is_alive(), "hang guard"


def _other_threads_settles(want: bool) -> bool:
    """other_threads_py() == want, allowing a finished thread's state a moment to leave
    the interpreter's list (a hang guard, not a timing assertion)."""
    deadline = time.monotonic() + JOIN_TIMEOUT
    while other_threads_py() != want:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def test_other_threads_follows_the_threads() -> None:
    """The engine's cheap 'another Python thread exists?' check (its own thread state's
    neighbours in the interpreter's list): true while a thread lives, seen from either
    thread, and back to what it was once the thread has ended."""
    before = other_threads_py()
    if threading.active_count() > 1:
        assert before
    with _thread_alive():
        assert other_threads_py() is True
        seen: list[bool] = []
        t = threading.Thread(target=lambda: seen.append(other_threads_py()))
        t.start()
        t.join(JOIN_TIMEOUT)
        assert seen == [True]
    assert _other_threads_settles(before)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("many", [False, True], ids=["feed", "feed_many"])
def test_two_threads_two_engines_match_sequential(backend: str, many: bool) -> None:
    kw = {"depth": 50, "trade_capacity": 4096, "inflate_backend": backend}
    seq = [fastfeed.Engine(**kw) for _ in STREAMS]
    seq_out = [_feed_all(e, s, many) for e, s in zip(seq, STREAMS)]

    def work(
        i: int,
        start: threading.Barrier,
        par: list[Any],
        par_out: list[Any],
        errors: list[BaseException],
    ) -> None:
        try:
            start.wait(JOIN_TIMEOUT)
            par_out[i] = _feed_all(par[i], STREAMS[i], many)
        except BaseException as exc:
            errors.append(exc)

    for attempt in range(3):
        par = [fastfeed.Engine(**kw) for _ in STREAMS]
        par_out: list[Any] = [None, None]
        errors: list[BaseException] = []
        start = threading.Barrier(len(STREAMS))
        threads = [
            threading.Thread(target=work, args=(i, start, par, par_out, errors)) for i in range(len(STREAMS))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(JOIN_TIMEOUT)
            assert not t.is_alive(), "hang guard"
        assert not errors, errors
        for i in range(len(STREAMS)):
            assert par_out[i] == seq_out[i], f"attempt {attempt}, stream {i}: returned messages"
            assert_state_equal(par[i], seq[i], f"attempt {attempt}, stream {i}")


def test_reader_thread_sees_whole_frames() -> None:
    """A thread reading books while another feeds sees every book between frames: a
    snapshot (one C copy, taken with the GIL held) is always sorted and within depth, and
    its version never goes backwards."""
    eng = fastfeed.Engine(depth=50, trade_capacity=4096)
    stream = STREAMS[0]
    eng.feed(stream[0])
    done = threading.Event()
    problems: list[str] = []
    reads = [0]

    def reader() -> None:
        last = 0
        while not done.is_set():
            for name in eng.symbols:
                b = eng.book(name)
                version = b.version
                bids, asks = b.snapshot()
                if version < last and name == "BTC_USDT":
                    problems.append(f"version went back {last} -> {version}")
                if name == "BTC_USDT":
                    last = version
                if len(bids) > 50 or len(asks) > 50:
                    problems.append(f"{name}: more rows than depth")
                if np.any(np.diff(bids[:, 0]) >= 0) or np.any(np.diff(asks[:, 0]) <= 0):
                    problems.append(f"{name}: unsorted side {bids[:3]} {asks[:3]}")
                reads[0] += 1

    t = threading.Thread(target=reader)
    t.start()
    try:
        for _ in range(3):
            for p in stream[1:]:
                try:
                    eng.feed(p)
                except FastfeedError:
                    pass
    finally:
        done.set()
        t.join(JOIN_TIMEOUT)
    assert not t.is_alive(), "hang guard"
    assert not problems, problems[:5]


def test_feed_inside_feed_many_is_busy() -> None:
    """Re-entering an engine from inside its own feed_many (here: from the payload
    iterable) raises EngineBusy and changes nothing; the engine works afterwards."""
    frames = STREAMS[0][:50]
    eng = fastfeed.Engine(depth=50)
    want = fastfeed.Engine(depth=50)
    want.feed_many(frames)
    seen: list[BaseException] = []

    def payloads():
        for i, p in enumerate(frames):
            if i == 10:
                with pytest.raises(EngineBusy) as info:
                    eng.feed(frames[11])
                seen.append(info.value)
                with pytest.raises(EngineBusy):
                    eng.feed_many([frames[11]])
            yield p

    eng.feed_many(payloads())
    assert len(seen) == 1 and seen[0].reason == "busy"
    assert isinstance(seen[0], FastfeedError) and isinstance(seen[0], RuntimeError)
    assert_state_equal(eng, want, "after EngineBusy")  # nothing fed, nothing counted
    eng.feed(frames[1])  # not stuck busy
    eng.feed_many(frames[:3])


def test_feed_from_another_thread_while_busy() -> None:
    """A second thread feeding an engine that is being fed gets EngineBusy (made
    deterministic: the second thread runs, start to end, while the first is inside
    feed_many, suspended in its payload iterable)."""
    frames = STREAMS[1][:20]
    eng = fastfeed.Engine(depth=50)
    outcome: list[Any] = []

    def intruder() -> None:
        try:
            outcome.append(eng.feed(frames[5]))
        except EngineBusy as exc:
            outcome.append(exc)

    def payloads():
        for i, p in enumerate(frames):
            if i == 3:
                t = threading.Thread(target=intruder)
                t.start()
                t.join(JOIN_TIMEOUT)
                assert not t.is_alive(), "hang guard"
            yield p

    eng.feed_many(payloads())
    assert len(outcome) == 1 and isinstance(outcome[0], EngineBusy)
    want = fastfeed.Engine(depth=50)
    want.feed_many(frames)
    assert_state_equal(eng, want)


def test_inflater_busy() -> None:
    inf = Inflater()
    z = zlib.compress(b"x" * 1000)
    seen = []

    def payloads():
        yield z
        with pytest.raises(EngineBusy):
            inf.inflate(z)
        seen.append(1)
        yield memoryview(z)

    assert inf.inflate_many(payloads()) == 2000
    assert seen == [1]
    assert inf.inflate(bytearray(z)) == b"x" * 1000
    assert inf.frames == 3


@pytest.mark.parametrize("kind", ["bytearray", "memoryview_bytearray", "memoryview_bytes"])
def test_buffer_views_are_released(kind: str) -> None:
    """feed() holds a buffer view of a bytearray / memoryview payload only while it runs:
    afterwards the bytearray can be resized again (a leaked export would refuse), also
    after a rejected frame."""
    good = zlib.compress(depth_text(True, "BTC_USDT", asks=[("2", "1")], bids=[("1", "1")]).encode())
    eng = fastfeed.Engine(depth=10)
    for data in (good, b"\x78\x9c garbage", good[:5]):
        ba = bytearray(data)
        payload: Any = {
            "bytearray": ba,
            "memoryview_bytearray": memoryview(ba),
            "memoryview_bytes": memoryview(bytes(data)),
        }[kind]
        try:
            eng.feed(payload)
        except FastfeedError:
            pass
        if isinstance(payload, memoryview):
            payload.release()
        ba.extend(b"more")  # BufferError if a view were still exported
        del ba[:]
    assert eng.book("BTC_USDT").best_bid == 1.0


@pytest.mark.parametrize("beside", [False, True], ids=["alone", "beside_a_thread"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_feed_many_batches_match_feed(backend: str, beside: bool) -> None:
    """feed_many (beside another thread: runs of bytes decoded up to 16 at a time without
    the GIL, then applied; alone: frame by frame) gives exactly what feeding frame by
    frame gives: state, returned messages, counters; also with str / bytearray /
    memoryview payloads breaking the runs."""
    stream: list[Any] = list(STREAMS[0][:700]) + list(STREAMS[1][:700])
    for k in range(0, len(stream), 37):
        p = stream[k]
        stream[k] = (
            bytearray(p) if isinstance(p, bytes) and k % 2 else (memoryview(p) if isinstance(p, bytes) else p)
        )
    one = fastfeed.Engine(depth=50, inflate_backend=backend)
    msgs = [
        m
        for m in _feed_all(one, stream, False)
        if m is not None and not (isinstance(m, tuple) and m[0] == "error")
    ]
    many = fastfeed.Engine(depth=50, inflate_backend=backend)
    with _thread_alive(beside):
        assert other_threads_py() is True or not beside
        assert many.feed_many(stream, 7) == msgs
        assert_state_equal(many, one, "feed_many vs feed")
        assert many.feed_many([]) == []
        assert many.feed_many(iter(stream[:16])) == [
            m
            for m in _feed_all(fastfeed.Engine(depth=50), stream[:16], False)
            if m is not None and not (isinstance(m, tuple) and m[0] == "error")
        ]


@pytest.mark.parametrize("beside", [False, True], ids=["alone", "beside_a_thread"])
def test_feed_many_raise_errors_stops_at_the_bad_frame(beside: bool) -> None:
    good = [
        zlib.compress(depth_text(True, "BTC_USDT", asks=[(str(10 + i), "1")], bids=[("1", "1")]).encode())
        for i in range(20)
    ]
    stream = good[:5] + [b"\x78\x9c\x00broken"] + good[5:]
    eng = fastfeed.Engine(depth=10)
    with _thread_alive(beside), pytest.raises(fastfeed.InflateError):
        eng.feed_many(stream, raise_errors=True)
    want = fastfeed.Engine(depth=10)
    for p in good[:5]:
        want.feed(p)
    with pytest.raises(fastfeed.InflateError):
        want.feed(stream[5])
    assert_state_equal(eng, want, "stopped at the bad frame")
