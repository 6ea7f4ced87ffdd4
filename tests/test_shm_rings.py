"""The event log and the ticker history in shared memory (segment layout 2).

``Engine(shm_name=..., event_log=N)`` keeps ``Engine.events`` in the segment and every
shared Engine keeps ``Engine.ticker_history`` there; ``fastfeed.attach(name)`` reads them as
``ShmReader.events`` / ``ShmReader.tickers`` (:class:`~fastfeed.shm.ShmRing` readers, the
semantics of ``ShmReader.trades``). Covered: copies equal to the writer's rings row for row,
overwrite detection, a segment without an event log, damaged headers and counts (typed
errors, never a crash), and a reader in another process that never accepts a torn row.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import random
import struct
import sys
import time
from typing import Any

import numpy as np
import pytest
from test_shm_hostile import FIELDS, assert_layout_error, image, isolated, put, rings_layout, write

from fastfeed.errors import EventsOverwritten, ShmCorrupt, ShmLayoutError, TickersOverwritten
from fastfeed.events import EVENT_DTYPE
from fastfeed.layout import TICKER_DTYPE
from fastfeed.shm import ShmEvents, ShmRing, ShmTickers, ShmTrades, attach, segment_path

from helpers import compiled_engine_cls, depth_text, trade, trades_text

pytestmark = [
    pytest.mark.native,  # reaches compiled code: part of CI's debug and ASan runs
    pytest.mark.skipif(sys.platform != "linux", reason="POSIX shm under /dev/shm"),
]

SYMBOLS = ["A_USDT", "B_USDT", "C_USDT"]


def ticker_text(symbol: str, last: str, ts: int, method: str = "ticker.update") -> str:
    rec = {"symbol": symbol.lower(), "last": last, "best_bid": last, "timestamp": ts}
    return json.dumps({"method": method, "params": [rec], "id": None})


def frame(i: int) -> str:
    """Frame ``i`` of a deterministic mixed stream: depth snapshots and increments, trades
    and tickers over SYMBOLS (every frame different, so a torn row never equals a real one)."""
    rng = random.Random(i)
    sym = SYMBOLS[i % len(SYMBOLS)]
    kind = i % 5
    if kind == 0:
        bids = [[f"{100 - k - rng.random():.4f}", f"{rng.randint(1, 9)}"] for k in range(3)]
        asks = [[f"{101 + k + rng.random():.4f}", f"{rng.randint(1, 9)}"] for k in range(3)]
        return depth_text(True, sym, asks=asks, bids=bids)
    if kind in (1, 2):
        px = f"{100 - rng.randint(0, 5) - rng.random():.4f}"
        return depth_text(
            False, sym, bids=[[px, str(rng.randint(0, 3))]], asks=[[f"{101 + rng.random():.4f}", "2"]]
        )
    if kind == 3:
        return trades_text(
            False, sym, [trade(1_000_000 + i, f"{100 + rng.random():.4f}", str(rng.randint(1, 5)))]
        )
    method = "all_ticker.update" if i % 2 else "ticker.update"
    return ticker_text(sym, f"{100 + rng.random():.6f}", 1_700_000_000_000 + i, method)


def feed(eng: Any, lo: int, hi: int) -> None:
    for i in range(lo, hi):
        eng.feed(frame(i), recv_ns=1_000 + i)


def same_rows(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# --- the writer's rings and the reader's copies ------------------------------------------


def test_events_and_tickers_equal_the_writer_rings(shm_name: str) -> None:
    Engine = compiled_engine_cls()
    with Engine(depth=8, shm_name=shm_name, event_log=4096, ticker_capacity=64) as eng:
        assert eng.events.shared and eng.ticker_history.shared and eng.trades.shared
        with attach(shm_name) as r:
            ev, tk = r.events, r.tickers
            assert (
                isinstance(ev, ShmEvents) and isinstance(tk, ShmTickers) and isinstance(r.trades, ShmTrades)
            )
            assert isinstance(ev, ShmRing) and isinstance(tk, ShmRing)
            assert (ev.capacity, tk.capacity) == (4096, 64)
            assert (r.event_capacity, r.ticker_capacity) == (4096, 64)
            assert ev.count == 0 and tk.count == 0 and len(ev.snapshot()) == 0
            feed(eng, 0, 200)
            assert ev.count == eng.events.count > 200 and tk.count == eng.ticker_history.count == 40
            assert len(ev) == ev.count and len(tk) == 40
            for k in range(ev.count + 1):
                got = ev.snapshot_since(k)
                assert got.dtype == EVENT_DTYPE and got.flags.writeable
                assert same_rows(got, eng.events.since(k)), k
                assert same_rows(ev.since(k), eng.events.since(k)), k
            for k in range(tk.count + 1):
                got = tk.snapshot_since(k)
                assert got.dtype == TICKER_DTYPE
                assert same_rows(got, eng.ticker_history.since(k)), k
                assert got["seq"].tolist() == list(range(k, tk.count))
            for n in (-1, 0, 1, 7, 63, 64, 1000):
                assert same_rows(tk.snapshot(n), eng.ticker_history.latest(n))  # 40 < capacity
                assert same_rows(ev.snapshot(n), eng.events.latest(n))
                assert same_rows(tk.latest(n), eng.ticker_history.latest(n))
                assert same_rows(ev.latest(n), eng.events.latest(n))
            assert not ev.latest().flags.writeable and not tk.since(0).flags.writeable
            for seq in (0, 25, 40):
                mine, theirs = tk.records(seq), eng.ticker_history.records(seq)
                assert [(t.symbol, t.last, t.timestamp, t.all_ticker) for t in mine] == [
                    (t.symbol, t.last, t.timestamp, t.all_ticker) for t in theirs
                ]
                assert len(mine) == 40 - seq
            df = ev.to_pandas(10)
            assert len(df) == 10 and set(df["symbol"]) <= set(SYMBOLS)
            # the trade ring reader is unchanged
            assert same_rows(r.trades.snapshot_since(0), eng.trades.since(0))


def test_segment_without_an_event_log(shm_name: str) -> None:
    Engine = compiled_engine_cls()
    with Engine(depth=4, shm_name=shm_name, ticker_capacity=16) as eng, attach(shm_name) as r:
        assert eng.events is None and eng.ticker_history.shared
        assert r.events is None and r.event_capacity == 0
        feed(eng, 0, 50)
        assert same_rows(r.tickers.snapshot_since(0), eng.ticker_history.since(0))
    with Engine(depth=4) as private:
        assert not private.ticker_history.shared and not private.trades.shared
    with Engine(depth=4, event_log=8) as private:
        assert not private.events.shared


def test_segment_sizes(shm_name: str) -> None:
    """The sizes the Engine docstring and docs/shm-and-exports.md state."""
    Engine = compiled_engine_cls()
    with Engine(shm_name=shm_name) as eng:
        assert round(eng.shm.size / 1e6, 1) == 16.5
        assert eng.shm.ticker_capacity == 8192 and eng.shm.event_capacity == 0
    with Engine(shm_name=shm_name, event_log=65536) as eng:
        assert eng.shm.size - 16_519_168 == 65536 * 128
        assert eng.shm.event_capacity == 65536


def test_overwrites_are_detected(shm_name: str) -> None:
    Engine = compiled_engine_cls()
    with Engine(depth=8, shm_name=shm_name, event_log=8, ticker_capacity=4) as eng, attach(shm_name) as r:
        ev, tk = r.events, r.tickers
        feed(eng, 0, 100)
        c = ev.count
        assert c > 50
        assert same_rows(ev.snapshot(), eng.events.latest(7))  # capacity - 1 rows
        assert same_rows(ev.snapshot_since(c - 7), eng.events.since(c - 7))
        with pytest.raises(EventsOverwritten, match=rf"event row {c - 8} was overwritten"):
            ev.snapshot_since(c - 8)  # held, but not readable consistently
        assert same_rows(ev.since(c - 8), eng.events.since(c - 8))  # zero-copy: all 8 held
        with pytest.raises(EventsOverwritten):
            ev.since(c - 9)
        with pytest.raises(EventsOverwritten):
            ev.snapshot_since(0)
        t = tk.count
        assert t == 20
        assert tk.snapshot()["seq"].tolist() == [17, 18, 19]
        # records(): what can be read consistently; overwritten ones left out
        assert [t.timestamp for t in tk.records()] == [t.timestamp for t in eng.ticker_history.records(17)]
        assert [t.timestamp for t in tk.records(18)] == [t.timestamp for t in eng.ticker_history.records(18)]
        assert len(tk.records(20)) == 0
        with pytest.raises(TickersOverwritten, match="ticker record 16 was overwritten"):
            tk.snapshot_since(16)
        with pytest.raises(TickersOverwritten):
            tk.since(15)
        assert len(ev.snapshot_since(c)) == 0 and len(tk.since(t)) == 0
        with pytest.raises(ValueError):
            ev.snapshot_since(-1)
        with pytest.raises(ValueError):
            tk.since(-1)


def test_ring_reader_base_is_not_made_directly() -> None:
    with pytest.raises(TypeError, match="ShmRing is the base"):
        ShmRing()


# --- damaged segments ---------------------------------------------------------------------

EV, TK = 8, 4


def rings_probe(name: str) -> Any:
    def probe() -> Any:
        r = attach(name, timeout=0.05)
        out: list[Any] = []
        for ring in (r.events, r.tickers):
            if ring is None:
                out.append(None)
                continue
            views = (ring.snapshot(), ring.latest(), ring.since(0))
            out.append((ring.count, len(ring), *(v.tolist() for v in views)))
        return out

    return probe


def test_valid_image_with_rings_attaches(shm_name: str) -> None:
    write(shm_name, image(g_events=EV, g_tickers=TK))
    assert isolated(rings_probe(shm_name)) == ("ok", [(0, 0, [], [], []), (0, 0, [], [], [])])
    write(shm_name, image(g_tickers=TK))
    assert isolated(rings_probe(shm_name)) == ("ok", [None, (0, 0, [], [], [])])


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"event_capacity": 6}, "event_capacity 6 is neither 0 nor a power of two"),
        ({"event_capacity": -8}, "event_capacity -8 is neither"),
        ({"event_capacity": 1 << 62}, "event_capacity 4611686018427387904 is neither"),
        ({"ticker_capacity": 3}, "ticker_capacity 3 is neither"),
        ({"ticker_capacity": -1}, "ticker_capacity -1 is neither"),
        ({"event_capacity": EV * 2}, "do not match its geometry"),  # would overrun the file
        ({"ticker_capacity": TK * 64}, "do not match its geometry"),
        ({"event_capacity": 0}, "do not match its geometry"),  # offset left behind
        ({"ticker_capacity": 0}, "do not match its geometry"),
        ({"event_off": 0}, "do not match its geometry"),
        ({"event_off": 64}, "do not match its geometry"),  # into the header / symbols
        ({"ticker_off": 2**64 - 64}, "do not match its geometry"),
        ({"ticker_off": 1 << 40}, "do not match its geometry"),
    ],
)
def test_bad_ring_geometry(shm_name: str, fields: dict[str, int], match: str) -> None:
    buf = image(g_events=EV, g_tickers=TK)
    for k, v in fields.items():
        put(buf, k, v)
    write(shm_name, buf)
    assert_layout_error(isolated(rings_probe(shm_name)), match)


def test_event_offset_shifted_by_one_record(shm_name: str) -> None:
    """An event region moved by 64 bytes (still inside the file) is refused too."""
    buf = image(g_events=EV, g_tickers=TK)
    ev_off, tk_off, total = rings_layout(4, 4, 8, EV, TK)
    put(buf, "event_off", ev_off + 64)
    write(shm_name, buf)
    assert_layout_error(isolated(rings_probe(shm_name)), "do not match its geometry")
    buf = image(g_events=EV, g_tickers=TK)
    put(buf, "ticker_off", ev_off)  # overlapping the event log
    write(shm_name, buf)
    assert_layout_error(isolated(rings_probe(shm_name)), "do not match its geometry")
    assert tk_off < total


@pytest.mark.parametrize("field", ["event_count", "ticker_count"])
@pytest.mark.parametrize("count", [-1, -(1 << 62)])
def test_negative_ring_counts(shm_name: str, field: str, count: int) -> None:
    write(shm_name, image(g_events=EV, g_tickers=TK, **{field: count}))

    def probe() -> Any:
        r = attach(shm_name)
        ring = r.events if field == "event_count" else r.tickers
        out = []
        for call in (
            lambda: ring.count,
            lambda: len(ring),
            lambda: ring.latest(),
            lambda: ring.since(0),
            lambda: ring.snapshot(),
            lambda: ring.snapshot_since(0),
        ):
            try:
                call()
                out.append("no error")
            except ShmCorrupt as exc:
                out.append((exc.reason, field in str(exc) and "is negative" in str(exc)))
        return out

    assert isolated(probe) == ("ok", [("corrupt", True)] * 6)


@pytest.mark.parametrize("field", ["event_count", "ticker_count", "trade_count"])
def test_ring_count_going_back(shm_name: str, field: str) -> None:
    write(shm_name, image(g_events=EV, g_tickers=TK, **{field: 5}))
    off = FIELDS[field][0]

    def probe() -> Any:
        r = attach(shm_name)
        ring = {"event_count": r.events, "ticker_count": r.tickers, "trade_count": r.trades}[field]
        first = (ring.count, len(ring.snapshot()))
        with open(segment_path(shm_name), "r+b") as f:
            f.seek(off)
            f.write(struct.pack("<q", 3))
        try:
            ring.snapshot()
        except ShmCorrupt as exc:
            return first, exc.reason, str(exc)
        return first, "no error", ""

    kind, (first, reason, message) = isolated(probe)
    capacity = {"event_count": EV, "ticker_count": TK, "trade_count": 8}[field]
    assert kind == "ok" and first == (5, min(5, capacity - 1))
    assert reason == "corrupt" and f"{field} 3 went back (was 5)" in message


def test_ticker_record_with_a_non_ascii_name(shm_name: str) -> None:
    buf = image(g_events=EV, g_tickers=TK, ticker_count=1)
    ticker_off = rings_layout(4, 4, 8, EV, TK)[1]
    name_at = TICKER_DTYPE.fields["name"][1]
    buf[ticker_off + name_at : ticker_off + name_at + 3] = b"\xff\xfeA"
    write(shm_name, buf)

    def probe() -> Any:
        t = attach(shm_name).tickers
        rows = t.snapshot()
        try:
            t.records()
        except ShmCorrupt as exc:
            return rows["name"].tolist(), exc.reason, str(exc)
        return rows["name"].tolist(), "no error", ""

    assert isolated(probe) == (
        "ok",
        ([b"\xff\xfeA"], "corrupt", f"ticker history of segment {shm_name!r}: a record name is not ASCII"),
    )


def test_huge_event_count_stays_in_the_ring(shm_name: str) -> None:
    write(shm_name, image(g_events=EV, g_tickers=TK, event_count=(1 << 63) - 1, ticker_count=(1 << 63) - 1))

    def probe() -> Any:
        r = attach(shm_name)
        return [
            (len(x.latest()), len(x.snapshot()), len(x.since((1 << 63) - 3))) for x in (r.events, r.tickers)
        ]

    assert isolated(probe) == ("ok", [(EV, EV - 1, 2), (TK, TK - 1, 2)])


def test_old_layout_is_refused(shm_name: str) -> None:
    write(shm_name, image(layout=1))
    with pytest.raises(ShmLayoutError, match="is not a fastfeed segment of layout 2"):
        attach(shm_name)


# --- a reader in another process -------------------------------------------------------

HANG_GUARD = 300.0  # seconds: stops a run that cannot progress, never a verdict
MIN_FRAMES = 3000
MIN_CHUNKS = 100  # non-empty copies the reader takes while the writer feeds (or MAX_FRAMES)
MAX_FRAMES = 20_000  # <= 7 event rows a frame: the oracle's 2**18 rows hold them all


def _remote_reader(name: str, accepted: Any, done: Any, conn: Any) -> None:
    """Child: read the event log and the ticker history by sequence number while the writer
    feeds; on an overwrite, skip ahead. Sends back every chunk it accepted."""
    from fastfeed.errors import EventsOverwritten, TickersOverwritten
    from fastfeed.shm import attach

    r = attach(name)
    conn.send("attached")
    chunks: dict[str, list[tuple[int, bytes]]] = {"events": [], "tickers": []}
    pos = {"events": 0, "tickers": 0}
    rings = {"events": r.events, "tickers": r.tickers}
    skipped = 0
    deadline = time.monotonic() + HANG_GUARD
    while True:
        last = done.is_set()
        for key, ring in rings.items():
            while True:  # once the writer is done, until caught up
                try:
                    rows = ring.snapshot_since(pos[key])
                except (EventsOverwritten, TickersOverwritten):
                    pos[key] = max(pos[key], ring.count - ring.capacity // 2)
                    skipped += 1
                    if last:
                        continue
                    break
                if len(rows):
                    chunks[key].append((pos[key], rows.tobytes()))
                    pos[key] += len(rows)
                    with accepted.get_lock():
                        accepted.value += 1
                break
        if last or time.monotonic() > deadline:
            break
    conn.send((chunks, pos, skipped))
    conn.close()
    r.close()


def test_reader_in_another_process_never_accepts_a_torn_row(shm_name: str) -> None:
    Engine = compiled_engine_cls()
    ctx = mp.get_context("spawn")
    accepted = ctx.Value("q", 0)
    done = ctx.Event()
    recv, send = ctx.Pipe(duplex=False)
    # small rings that wrap constantly; the oracle keeps every row
    eng = Engine(depth=8, shm_name=shm_name, event_log=256, ticker_capacity=32)
    oracle = Engine(depth=8, event_log=1 << 18, ticker_capacity=1 << 13)
    proc = ctx.Process(target=_remote_reader, args=(shm_name, accepted, done, send))
    proc.start()
    send.close()
    try:
        assert recv.poll(HANG_GUARD) and recv.recv() == "attached"
        i = 0
        deadline = time.monotonic() + HANG_GUARD
        while i < MAX_FRAMES and (i < MIN_FRAMES or accepted.value < MIN_CHUNKS):
            eng.feed(frame(i), recv_ns=1_000 + i)
            oracle.feed(frame(i), recv_ns=1_000 + i)
            i += 1
            assert time.monotonic() < deadline, "hang guard"
        done.set()
        assert recv.poll(HANG_GUARD), "the reader did not report"
        chunks, pos, _skipped = recv.recv()
        proc.join(HANG_GUARD)
        assert proc.exitcode == 0
        assert (
            oracle.events.count == eng.events.count
            and oracle.ticker_history.count == eng.ticker_history.count
        )
        # after the writer stopped, the reader caught up with both rings
        assert pos == {"events": eng.events.count, "tickers": eng.ticker_history.count}
        for key, truth in (("events", oracle.events.since(0)), ("tickers", oracle.ticker_history.since(0))):
            dtype = EVENT_DTYPE if key == "events" else TICKER_DTYPE
            got = 0
            for start, raw in chunks[key]:
                rows = np.frombuffer(raw, dtype=dtype)
                assert same_rows(rows, truth[start : start + len(rows)]), (key, start)
                got += len(rows)
            assert got > 0
            if key == "tickers":
                seqs = np.concatenate([np.frombuffer(raw, dtype=dtype)["seq"] for _, raw in chunks[key]])
                assert (np.diff(seqs) > 0).all()
    finally:
        done.set()
        proc.join(10)
        if proc.is_alive():  # pragma: no cover
            proc.kill()
            proc.join()
        recv.close()
        eng.close()
        oracle.close()
