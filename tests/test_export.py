"""Research exports: the engine's event log (hftbacktest layout), the capture converters
(npz, Parquet) and the pandas views.

The event log is checked three ways: hand-written cases with the exact expected rows; on
random streams (the equivalence generator, invalid frames included) the engine with the log
on stays identical to the reference engine and replaying its rows rebuilds every book
exactly; and the capture converters round-trip (the npz holds exactly EVENT_DTYPE and the
rows the engine logged; Parquet columns equal them).
"""

from __future__ import annotations

import io
import json
import random
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_equivalence import MAX_FRAME, make_payload, outcome

import fastfeed
from fastfeed import events as E
from fastfeed.capture import CaptureWriter
from fastfeed.errors import FastfeedError
from fastfeed.export import capture_events, capture_to_npz, capture_to_parquet
from fastfeed.layout import TRADE_DTYPE
from fastfeed.reference import ReferenceEngine

from helpers import assert_state_equal, compiled_engine_cls, depth_text, trade, trades_text

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native

XL = E.EXCH_EVENT | E.LOCAL_EVENT


def rows_of(eng: Any) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in eng.events.latest().tolist()]


def new_engine(**kw: Any) -> Any:
    return compiled_engine_cls()(**kw)


# --- the layout -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["_events", "_shm"])
def test_new_extensions_are_compiled(name: str) -> None:
    import importlib

    compiled_engine_cls()
    mod = importlib.import_module(f"fastfeed.{name}")
    assert (getattr(mod, "__file__", "") or "").endswith((".so", ".pyd"))


def test_event_dtype_is_hftbacktests() -> None:
    expected = np.dtype(
        [
            ("ev", "u8"),
            ("exch_ts", "i8"),
            ("local_ts", "i8"),
            ("px", "f8"),
            ("qty", "f8"),
            ("order_id", "u8"),
            ("ival", "i8"),
            ("fval", "f8"),
        ],
        align=True,
    )
    assert expected == E.EVENT_DTYPE
    assert E.EVENT_DTYPE.itemsize == 64
    assert (E.EXCH_EVENT, E.LOCAL_EVENT, E.BUY_EVENT, E.SELL_EVENT) == (1 << 31, 1 << 30, 1 << 29, 1 << 28)
    assert (E.DEPTH_EVENT, E.TRADE_EVENT, E.DEPTH_CLEAR_EVENT, E.DEPTH_SNAPSHOT_EVENT) == (1, 2, 3, 4)


def test_event_log_is_off_by_default() -> None:
    eng = new_engine()
    assert eng.events is None
    with pytest.raises(ValueError):
        new_engine(event_log=-1)


# --- exact rows -----------------------------------------------------------------------------


def test_snapshot_rows() -> None:
    eng = new_engine(depth=5, event_log=64)
    eng.feed(depth_text(True, "btc_usdt", asks=[["101", "2"], ["100", "1"]], bids=[["99", "3"]]), recv_ns=7)
    clr, snap = XL | E.DEPTH_CLEAR_EVENT, XL | E.DEPTH_SNAPSHOT_EVENT
    assert rows_of(eng) == [
        (clr, 7, 7, 0.0, 0.0, 0, 0, 1.0),
        (snap | E.SELL_EVENT, 7, 7, 101.0, 2.0, 0, 0, 1.0),
        (snap | E.SELL_EVENT, 7, 7, 100.0, 1.0, 0, 0, 1.0),
        (snap | E.BUY_EVENT, 7, 7, 99.0, 3.0, 0, 0, 1.0),
    ]
    assert eng.events.count == 4


def test_increment_rows_update_delete_insert_and_noops() -> None:
    eng = new_engine(depth=5, event_log=64)
    eng.feed(depth_text(True, "X", asks=[["100", "1"], ["101", "1"]], bids=[["99", "1"]]), recv_ns=1)
    n0 = eng.events.count
    eng.feed(
        depth_text(
            False,
            "X",
            asks=[["100", "5"], ["101", "0"], ["107", "0"], ["102", "2"]],
            bids=[["98", "0"], ["97", "4"]],
        ),
        recv_ns=2,
    )
    dep = XL | E.DEPTH_EVENT
    got = [tuple(r) for r in eng.events.since(n0).tolist()]
    assert got == [
        (dep | E.SELL_EVENT, 2, 2, 100.0, 5.0, 0, 0, 2.0),  # update
        (dep | E.SELL_EVENT, 2, 2, 101.0, 0.0, 0, 0, 2.0),  # delete
        # 107 is absent: no row
        (dep | E.SELL_EVENT, 2, 2, 102.0, 2.0, 0, 0, 2.0),  # insert
        # bid 98 is absent: no row
        (dep | E.BUY_EVENT, 2, 2, 97.0, 4.0, 0, 0, 2.0),  # insert
    ]


def test_trim_and_discard_rows() -> None:
    eng = new_engine(depth=2, event_log=64)
    eng.feed(depth_text(True, "X", asks=[["100", "1"], ["101", "1"]]), recv_ns=1)
    n0 = eng.events.count
    # 99.5 sorts inside a full side: 101 falls off; 105 sorts after a full side: discarded
    eng.feed(depth_text(False, "X", asks=[["99.5", "3"], ["105", "1"]]), recv_ns=2)
    dep = XL | E.DEPTH_EVENT | E.SELL_EVENT
    assert [tuple(r) for r in eng.events.since(n0).tolist()] == [
        (dep, 2, 2, 101.0, 0.0, 0, 0, 2.0),
        (dep, 2, 2, 99.5, 3.0, 0, 0, 2.0),
    ]
    assert eng.book("X").asks.tolist() == [[99.5, 3.0], [100.0, 1.0]]


def test_crossing_rows() -> None:
    eng = new_engine(depth=5, event_log=64)
    eng.feed(
        depth_text(True, "X", asks=[["100", "1"], ["101", "1"], ["102", "1"]], bids=[["99", "1"]]), recv_ns=1
    )
    n0 = eng.events.count
    eng.feed(depth_text(False, "X", bids=[["101", "7"]]), recv_ns=2)  # crosses asks 100 and 101
    dep = XL | E.DEPTH_EVENT
    assert [tuple(r) for r in eng.events.since(n0).tolist()] == [
        (dep | E.BUY_EVENT, 2, 2, 101.0, 7.0, 0, 0, 2.0),
        (dep | E.SELL_EVENT, 2, 2, 100.0, 0.0, 0, 0, 2.0),
        (dep | E.SELL_EVENT, 2, 2, 101.0, 0.0, 0, 0, 2.0),
    ]
    assert eng.stats["crossed_levels_removed"] == 2


def test_trade_rows() -> None:
    eng = new_engine(event_log=64)
    eng.book("OTHER", create=True)  # symbol index 0, so the trades' ival is 1
    eng.feed(
        trades_text(
            False,
            "eth_usdt",
            [
                trade(11, "10.5", "2", "sell", 1700000000.123456),
                trade(10, "10.25", "1", "buy", "1700000000.1"),
            ],
        ),
        recv_ns=99,
    )
    eng.feed(
        trades_text(False, "ETH_USDT", [trade(11, "10.5", "2", "sell", 1700000000.123456)]), recv_ns=100
    )  # duplicate (same id and content): no row
    tr = XL | E.TRADE_EVENT
    assert rows_of(eng) == [
        (tr | E.BUY_EVENT, int(np.rint(1700000000.1 * 1e9)), 99, 10.25, 1.0, 10, 1, 1.0),
        (tr | E.SELL_EVENT, int(np.rint(1700000000.123456 * 1e9)), 99, 10.5, 2.0, 11, 1, 1.0),
    ]
    assert eng.stats["duplicate_trades"] == 1


def test_reset_books_logs_a_clear_per_book() -> None:
    eng = new_engine(event_log=64)
    eng.feed(depth_text(True, "A", asks=[["1", "1"]]))
    eng.symbol_index("NO_BOOK", create=True)
    eng.feed(depth_text(True, "B", bids=[["1", "1"]]))
    n0 = eng.events.count
    eng.reset_books()
    got = eng.events.since(n0)
    assert got["ev"].tolist() == [XL | E.DEPTH_CLEAR_EVENT] * 2
    assert got["ival"].tolist() == [0, 2]
    assert (got["local_ts"] > 1_600_000_000 * 10**9).all()
    assert E.replay_books(eng.events.latest()) == {0: ({}, {}), 2: ({}, {})}


def test_rejected_frames_log_nothing() -> None:
    eng = new_engine(event_log=64)
    with pytest.raises(FastfeedError):
        eng.feed(depth_text(True, "A", asks=[["1", "1"], ["2", "-1"]]))
    with pytest.raises(FastfeedError):
        eng.feed(b"\x78\x9c garbage")
    eng.feed('{"method":"ticker.update","params":[],"id":null}')
    assert eng.events.count == 0


# --- the ring -------------------------------------------------------------------------------


def test_event_ring_views_and_overwrite() -> None:
    eng = new_engine(event_log=5)  # rounded up to 8
    ring = eng.events
    assert ring.capacity == 8
    for i in range(6):
        eng.feed(depth_text(False, "A", bids=[[str(10 + i), "1"]]), recv_ns=i)
    assert len(ring) == 6 and ring.count == 6
    v = ring.latest(3)
    assert v["px"].tolist() == [13.0, 14.0, 15.0]
    assert ring.since(4)["local_ts"].tolist() == [4, 5]
    assert len(ring.since(6)) == 0
    for i in range(6, 12):
        eng.feed(depth_text(False, "A", bids=[[str(10 + i), "1"]]), recv_ns=i)
    with pytest.raises(IndexError, match="overwritten"):
        ring.since(3)
    assert ring.since(4)["local_ts"].tolist() == list(range(4, 12))
    with pytest.raises(ValueError):
        ring.since(-1)
    df = ring.to_pandas(2, symbols=eng.symbols)
    assert df["symbol"].tolist() == ["A", "A"]
    assert df["kind"].tolist() == ["depth", "depth"]
    assert df["side"].tolist() == [1, 1]
    assert df["local_dt"].tolist() == [
        pd.Timestamp(10, unit="ns", tz="UTC"),
        pd.Timestamp(11, unit="ns", tz="UTC"),
    ]


# --- random streams: semantics unchanged, rows rebuild the books ----------------------------


def books_of(eng: Any) -> dict[int, tuple[list[list[float]], list[list[float]]]]:
    out = {}
    for name, book in eng.books.items():
        out[eng.symbol_index(name)] = (book.bids.tolist(), book.asks.tolist())
    return out


def replayed(
    rows: np.ndarray, depth_books: dict[int, Any]
) -> dict[int, tuple[list[list[float]], list[list[float]]]]:
    books = E.replay_books(rows)
    out = {}
    for idx in depth_books:
        bids, asks = books.get(idx, ({}, {}))
        out[idx] = (
            [[p, q] for p, q in sorted(bids.items(), reverse=True)],
            [[p, q] for p, q in sorted(asks.items())],
        )
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_stream_log_rebuilds_books(seed: int) -> None:
    rng = random.Random(seed)
    depth = rng.choice([1, 3, 5])
    logged = new_engine(depth=depth, trade_capacity=16, max_frame=MAX_FRAME, event_log=1 << 16)
    ref = ReferenceEngine(depth=depth, trade_capacity=16, max_frame=MAX_FRAME)
    stored = 0
    for i in range(1500):
        payload = make_payload(rng, i, actions=True)  # also reset_books / mark_stale
        res = [outcome(eng, payload, 1000 + i) for eng in (logged, ref)]
        assert res[0] == res[1], f"message {i}"
        if i % 50 == 0:
            assert_state_equal(logged, ref, f"message {i}")
        stored = ref.trades.count
    assert_state_equal(logged, ref, "end")
    rows = logged.events.latest()
    assert logged.events.count == len(rows), "ring large enough for the whole stream"
    assert replayed(rows, books_of(logged)) == books_of(logged)
    trades = rows[E.kinds(rows) == E.TRADE_EVENT]
    assert len(trades) == stored
    ring = ref.trades.latest()
    tail = trades[len(trades) - len(ring) :]
    assert tail["order_id"].astype(np.int64).tolist() == ring["id"].tolist()
    assert tail["px"].tolist() == ring["price"].tolist()
    assert tail["ival"].tolist() == ring["symbol"].tolist()
    assert E.sides(tail).tolist() == ring["side"].tolist()
    assert tail["exch_ts"].tolist() == np.rint(ring["time"] * 1e9).astype(np.int64).tolist()


# --- capture converters ---------------------------------------------------------------------


def make_stream(n: int, seed: int = 5) -> list[tuple[int, bytes]]:
    """Valid depth/trade/ticker pushes over 3 symbols, zlib-compressed, with receive times."""
    rng = random.Random(seed)
    out = []
    tid = 1000
    mids = {"AAA_USDT": 100.0, "BBB_USDT": 5.0, "CCC_USDT": 0.01}
    for i in range(n):
        sym = rng.choice(list(mids))
        mid = mids[sym] = mids[sym] * (1 + rng.uniform(-0.001, 0.001))
        r = rng.random()
        if r < 0.1:
            lv = {
                "asks": [
                    [f"{mid * (1 + 0.001 * k):.6g}", f"{rng.uniform(0.1, 9):.3f}"] for k in range(1, 31)
                ],
                "bids": [
                    [f"{mid * (1 - 0.001 * k):.6g}", f"{rng.uniform(0.1, 9):.3f}"] for k in range(1, 31)
                ],
            }
            text = json.dumps({"method": "depth.update", "params": [True, lv, sym], "id": None})
        elif r < 0.65:

            def side(sign: int) -> list[list[str]]:
                return [
                    [
                        f"{mid * (1 + sign * 0.001 * rng.randint(1, 40)):.6g}",
                        "0" if rng.random() < 0.3 else f"{rng.uniform(0.1, 9):.3f}",
                    ]
                    for _ in range(rng.randint(0, 3))
                ]

            text = json.dumps(
                {
                    "method": "depth.update",
                    "params": [False, {"asks": side(1), "bids": side(-1)}, sym],
                    "id": None,
                }
            )
        elif r < 0.93:
            ts = []
            for _ in range(rng.randint(1, 3)):
                tid += 1
                ts.append(
                    {
                        "id": tid,
                        "time": 1.7e9 + i / 100,
                        "price": f"{mid:.6g}",
                        "amount": f"{rng.uniform(0.01, 3):.4f}",
                        "type": rng.choice(["buy", "sell"]),
                    }
                )
            text = json.dumps({"method": "trades.update", "params": [False, ts[::-1], sym], "id": None})
        else:
            text = json.dumps(
                {"method": "ticker.update", "params": [{"symbol": sym, "last": str(mid)}], "id": None}
            )
        out.append((1_700_000_000_000_000_000 + 1_000_000 * i, zlib.compress(text.encode())))
    return out


@pytest.fixture(scope="module")
def stream() -> list[tuple[int, bytes]]:
    return make_stream(3000)


@pytest.fixture()
def capture(tmp_path: Path, stream: list[tuple[int, bytes]]) -> Path:
    path = tmp_path / "feed.ffcap"
    with CaptureWriter(path, "ws://127.0.0.1/ws/v1/") as w:
        for recv_ns, payload in stream:
            w.write(payload, recv_ns)
        w.write(b"not zlib and not json", 1_800_000_000_000_000_000)  # rejected, counted
    return path


def engine_rows(stream: list[tuple[int, bytes]], depth: int = 200) -> tuple[np.ndarray, Any]:
    eng = new_engine(depth=depth, event_log=1 << 20)
    for recv_ns, payload in stream:
        eng.feed(payload, recv_ns)
    assert eng.events.count == len(eng.events)
    return eng.events.latest().copy(), eng


def test_capture_to_npz_round_trip(tmp_path: Path, capture: Path, stream: list[tuple[int, bytes]]) -> None:
    out = tmp_path / "events.npz"
    stats = capture_to_npz(capture, out, progress=False)
    expected, eng = engine_rows(stream)
    assert stats.frames == len(stream) + 1
    assert stats.rejects == {"zlib_error": 1}
    assert stats.rows == len(expected)
    assert stats.symbols == eng.symbols
    assert stats.path == str(out)
    with np.load(out) as z:
        assert sorted(z.files) == ["data", "symbols"]
        data = z["data"]
        assert data.dtype == E.EVENT_DTYPE
        assert data.dtype.descr == E.EVENT_DTYPE.descr
        assert np.array_equal(data, expected)
        assert z["symbols"].tolist() == eng.symbols
    assert replayed(data, books_of(eng)) == books_of(eng)
    kinds = set(E.kinds(data).tolist())
    assert kinds == {E.DEPTH_EVENT, E.TRADE_EVENT, E.DEPTH_CLEAR_EVENT, E.DEPTH_SNAPSHOT_EVENT}
    assert (data["ev"] & np.uint64(XL) == np.uint64(XL)).all()


def test_capture_to_npz_one_symbol_small_ring_no_symbols(
    tmp_path: Path, capture: Path, stream: list[tuple[int, bytes]]
) -> None:
    out = tmp_path / "bbb"  # numpy appends .npz
    stats = capture_to_npz(
        capture, out, symbols="bbb_usdt", ring=1024, depth=7, include_symbols=False, progress=False
    )
    expected, eng = engine_rows(stream, depth=7)
    idx = eng.symbol_index("BBB_USDT")
    expected = expected[expected["ival"] == idx]
    assert stats.path == str(out) + ".npz"
    with np.load(stats.path) as z:
        assert z.files == ["data"]
        assert np.array_equal(z["data"], expected)
    assert stats.rows == len(expected) > 0


def test_capture_events_from_pairs_and_progress(stream: list[tuple[int, bytes]]) -> None:
    sink = io.StringIO()
    rows, stats = capture_events(iter(stream[:500]), progress=True, progress_file=sink)
    expected, _ = engine_rows(stream[:500])
    assert np.array_equal(rows, expected)
    assert stats.frames == 500 and stats.rejects == {}
    assert "100.0%" in sink.getvalue()


def test_capture_events_ring_overflow_is_a_clear_error(stream: list[tuple[int, bytes]]) -> None:
    with pytest.raises(ValueError, match="ring"):
        capture_events(stream[:50], ring=4)


def test_capture_to_parquet_events_and_trades(
    tmp_path: Path, capture: Path, stream: list[tuple[int, bytes]]
) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    expected, eng = engine_rows(stream)
    out = tmp_path / "events.parquet"
    stats = capture_to_parquet(capture, out, progress=False)
    assert stats.rows == len(expected)
    table = pq.read_table(out)
    for name in E.EVENT_DTYPE.names:
        col = table.column(name).to_numpy()
        assert col.dtype == E.EVENT_DTYPE[name]
        assert np.array_equal(col, expected[name]), name
    assert table.column("kind").to_numpy().tolist() == E.kinds(expected).tolist()
    assert table.column("side").to_numpy().tolist() == E.sides(expected).tolist()
    names = np.array(eng.symbols, dtype=object)[expected["ival"]]
    assert table.column("symbol").to_pylist() == names.tolist()
    assert table.column("local_time").cast("int64").to_numpy().tolist() == expected["local_ts"].tolist()

    tout = tmp_path / "trades.parquet"
    tstats = capture_to_parquet(capture, tout, what="trades", symbols=["AAA_USDT"], progress=False)
    ring = eng.trades.latest()
    ring = ring[ring["symbol"] == eng.symbol_index("AAA_USDT")]
    t = pq.read_table(tout)
    assert tstats.rows == t.num_rows == len(ring) > 0
    for name in ("seq", "id", "price", "amount", "time", "recv_ns", "side"):
        assert t.column(name).to_numpy().tolist() == ring[name].tolist(), name
    assert set(t.column("symbol").to_pylist()) == {"AAA_USDT"}

    empty = tmp_path / "none.parquet"
    assert capture_to_parquet(capture, empty, symbols="NOPE", progress=False).rows == 0
    assert pq.read_table(empty).num_rows == 0


# --- pandas views ---------------------------------------------------------------------------


def test_book_to_pandas_equals_views() -> None:
    eng = new_engine(depth=10)
    eng.feed(
        depth_text(True, "btc_usdt", asks=[["101", "2"], ["100", "1"]], bids=[["99", "3"], ["98", "4"]]),
        recv_ns=1_700_000_000_123_456_789,
    )
    book = eng.book("BTC_USDT")
    df = book.to_pandas()
    assert list(df.columns) == ["side", "level", "price", "amount"]
    assert df["side"].tolist() == ["bid", "bid", "ask", "ask"]
    assert df["level"].tolist() == [0, 1, 0, 1]
    np.testing.assert_array_equal(df[["price", "amount"]].to_numpy(), np.concatenate([book.bids, book.asks]))
    assert df.attrs["symbol"] == "BTC_USDT"
    assert df.attrs["version"] == 1
    assert df.attrs["recv_ns"] == 1_700_000_000_123_456_789
    assert df.attrs["recv_dt"] == pd.Timestamp(1_700_000_000_123_456_789, unit="ns", tz="UTC")
    ref = ReferenceEngine(depth=10)
    ref.feed(depth_text(True, "btc_usdt", asks=[["101", "2"], ["100", "1"]], bids=[["99", "3"], ["98", "4"]]))
    pd.testing.assert_frame_equal(df, ref.book("BTC_USDT").to_pandas(), check_dtype=False)
    empty = eng.book("NONE", create=True).to_pandas()
    assert len(empty) == 0 and list(empty.columns) == ["side", "level", "price", "amount"]


def test_trade_ring_to_pandas_equals_view() -> None:
    eng = new_engine(trade_capacity=4)
    ref = ReferenceEngine(trade_capacity=4)
    for e in (eng, ref):
        e.feed(
            trades_text(
                False,
                "aaa",
                [trade(3, "1.5", "2", "sell", 1700000000.25), trade(2, "1.25", "1", "buy", "1700000000.5")],
            ),
            recv_ns=5,
        )
        e.feed(trades_text(False, "bbb", [trade(9, "7", "1", "buy", 1700000001)]), recv_ns=6)
    df = eng.trades.to_pandas()
    view = eng.trades.latest()
    assert df["symbol"].tolist() == ["AAA", "AAA", "BBB"]
    for name in ("seq", "id", "side", "price", "amount", "time", "recv_ns"):
        assert df[name].tolist() == view[name].tolist(), name
    assert df["exch_dt"].tolist() == [
        pd.Timestamp("2023-11-14 22:13:20.500000", tz="UTC"),
        pd.Timestamp("2023-11-14 22:13:20.250000", tz="UTC"),
        pd.Timestamp("2023-11-14 22:13:21", tz="UTC"),
    ]
    assert df["recv_dt"].tolist() == [pd.Timestamp(5, unit="ns", tz="UTC")] * 2 + [
        pd.Timestamp(6, unit="ns", tz="UTC")
    ]
    pd.testing.assert_frame_equal(df, ref.trades.to_pandas(), check_dtype=False)
    assert len(eng.trades.to_pandas(1)) == 1
    assert eng.trades.latest().dtype == TRADE_DTYPE


def test_events_to_pandas_rejects_other_dtypes() -> None:
    with pytest.raises(TypeError):
        E.events_to_pandas(np.zeros(2, dtype=TRADE_DTYPE))


def test_event_log_overflow_raises_its_own_type() -> None:
    """An event-log overflow is ``EventsOverwritten`` (an ``IndexError``), not the trade
    ring's ``TradesOverwritten``."""
    from fastfeed.errors import EventsOverwritten, TradesOverwritten

    eng = fastfeed.Engine(event_log=4)
    for i in range(3):
        eng.feed(
            json.dumps(
                {
                    "method": "depth.update",
                    "id": None,
                    "params": [
                        True,
                        {"bids": [[f"{100 + i}", "1"], ["99", "1"]], "asks": [["200", "1"]]},
                        "BTC_USDT",
                    ],
                }
            )
        )
    assert eng.events.count > 4
    with pytest.raises(EventsOverwritten) as ei:
        eng.events.since(0)
    assert isinstance(ei.value, IndexError) and not isinstance(ei.value, TradesOverwritten)
    assert fastfeed.EventsOverwritten is EventsOverwritten


def test_a_zero_ring_is_a_clear_value_error() -> None:
    """``ring=0`` made an engine without an event log and then failed with an
    ``AttributeError`` on ``None``; it is a ``ValueError`` naming the argument."""
    with pytest.raises(ValueError, match="ring must be positive, not 0"):
        capture_events([(1, b'{"method":"server.ping","params":[],"id":1}')], ring=0)
