"""Sharded feeds (``fastfeed.connect_sharded``): N connections, each on its own thread and
engine, against the bundled exchange on 127.0.0.1 port 0. Every wait is on counts or
state; timeouts are hang guards only."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fastfeed
from fastfeed.exchange import Exchange, ExchangeConfig
from fastfeed.shards import ShardedReader, ShardEvent, plan_shards, shard_segment_name

from helpers import run_guarded, until

#: reaches compiled code (shards run the compiled engine and listener)
pytestmark = pytest.mark.native

SYMS = ["BTC_USDT", "ETH_USDT", "SOL_USDT", "XRP_USDT", "DOGE_USDT", "LTC_USDT"]
run = functools.partial(run_guarded, no_tasks_left=True)
FAST = dict(backoff_initial=0.05, backoff_max=0.2)


def exchange(**kw: Any) -> Exchange:
    cfg: dict[str, Any] = dict(symbols=SYMS, seed=11, rate=3000.0)
    cfg.update(kw)
    return Exchange(ExchangeConfig(**cfg))


def assert_books_equal_exchange(feed: Any, ex: Exchange, symbols: list[str]) -> None:
    for s in symbols:
        bids, asks = ex.book(s)
        book = feed.book(s)
        assert book.live, s
        np.testing.assert_array_equal(book.bids, bids[: book.depth], err_msg=f"{s} bids")
        np.testing.assert_array_equal(book.asks, asks[: book.depth], err_msg=f"{s} asks")


def conn_of(ex: Exchange, symbol: str, channel: str = "depth") -> Any:
    """The exchange's connection that receives ``channel`` pushes of ``symbol`` (exactly one)."""
    conns = [c for c in ex.connections if c.subscribed(channel, symbol)]
    assert len(conns) == 1, (symbol, conns)
    return conns[0]


# -- planning ------------------------------------------------------------------------------


def test_plan_balances_by_weight_and_is_deterministic() -> None:
    assert plan_shards(SYMS, 2) == [
        ["BTC_USDT", "SOL_USDT", "DOGE_USDT"],
        ["ETH_USDT", "XRP_USDT", "LTC_USDT"],
    ]
    # one heavy symbol gets a shard of its own
    plan = plan_shards(SYMS, 2, {"BTC_USDT": 5.0})
    assert plan == [["BTC_USDT"], ["ETH_USDT", "SOL_USDT", "XRP_USDT", "DOGE_USDT", "LTC_USDT"]]
    assert plan_shards(["btc_usdt", "BTC_USDT"], 3) == [["BTC_USDT"], [], []]  # upper-cased, deduplicated
    assert plan_shards(SYMS, 1) == [SYMS]


@pytest.mark.parametrize(
    ("args", "exc"),
    [
        ((SYMS, 0), ValueError),
        ((SYMS, 65), ValueError),
        ((SYMS, True), TypeError),
        ((SYMS, 2.0), TypeError),
        ((SYMS, 2, {"BTC_USDT": -1}), ValueError),
        ((SYMS, 2, {"BTC_USDT": float("nan")}), ValueError),
        ((SYMS, 2, {"BTC USDT": 1}), ValueError),
        (("BTC_USDT", 2), TypeError),
    ],
)
def test_plan_rejects_bad_arguments(args: tuple[Any, ...], exc: type[BaseException]) -> None:
    with pytest.raises(exc):
        plan_shards(*args)


def test_bad_options_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="engine"):
        fastfeed.connect_sharded("ws://127.0.0.1:1", shards=2, engine=fastfeed.Engine())
    with pytest.raises(ValueError, match="cannot be sharded"):  # only for_shard sinks (NatsSink)
        fastfeed.connect_sharded("ws://127.0.0.1:1", shards=2, sinks=[fastfeed.CaptureSink("x.ffcap")])
    with pytest.raises(TypeError, match="unknown option"):
        fastfeed.connect_sharded("ws://127.0.0.1:1", shards=2, depht=5)
    with pytest.raises(ValueError):
        fastfeed.connect_sharded("http://127.0.0.1:1", shards=2)

    async def cb(ev: Any) -> None: ...

    with pytest.raises(TypeError, match="plain function"):
        fastfeed.connect_sharded("ws://127.0.0.1:1", shards=2, on_event=cb)
    with pytest.raises(ValueError):
        fastfeed.connect_sharded("ws://127.0.0.1:1", shards=2, shm_name=".bad")


def test_segment_names() -> None:
    assert shard_segment_name("md", 1, 4) == "md.shard1-of4"
    with pytest.raises(ValueError):
        shard_segment_name("bad name", 0, 2)


# -- live ---------------------------------------------------------------------------------------

MODES = ["process", "thread"]


def shard_stats(feed: Any, i: int) -> dict[str, Any]:
    return feed.stats["shards"][i]


@pytest.mark.parametrize("mode", MODES)
def test_books_equal_the_exchange_and_an_unsharded_feed(mode: str) -> None:
    async def body() -> None:
        async with exchange() as ex:
            async with (
                fastfeed.connect_sharded(ex.url, shards=2, symbols=SYMS, mode=mode, **FAST) as feed,
                fastfeed.connect(ex.url, **FAST) as single,
            ):
                assert feed.connected and feed.mode == mode
                assert len(feed.feeds) == (2 if mode == "thread" else 0)
                await feed.subscribe_depth(SYMS)
                await feed.subscribe_trades(SYMS)
                await single.subscribe_depth(SYMS)
                await until(lambda: all(feed.book(s).live for s in SYMS), what="sharded books")
                await until(lambda: feed.trades.count >= 50, what="trades")
                ex.pause()
                await feed.ping()
                await single.ping()
                assert_books_equal_exchange(feed, ex, SYMS)
                assert_books_equal_exchange(single, ex, SYMS)
                for s in SYMS:
                    a, b = feed.book(s).snapshot(), single.book(s).snapshot()
                    np.testing.assert_array_equal(a[0], b[0])
                    np.testing.assert_array_equal(a[1], b[1])

                # routing: each symbol lives on its planned shard, only there
                plan = plan_shards(SYMS, 2)
                assert feed.assignment == {0: plan[0], 1: plan[1]}
                for i, part in enumerate(plan):
                    assert shard_stats(feed, i)["subscriptions"] == {
                        "depth": sorted(part),
                        "trades": sorted(part),
                    }
                    assert set(feed.trades.rings[i].symbols) == set(part)
                    for s in part:
                        assert feed.shard_of(s) == i
                # (trades: only the sharded feed subscribed them)
                conns = {id(conn_of(ex, s, "trades")) for s in SYMS}
                assert len(conns) == 2
                for part in plan:
                    assert len({id(conn_of(ex, s, "trades")) for s in part}) == 1
                assert feed.subscriptions == {"depth": sorted(SYMS), "trades": sorted(SYMS)}

                # trades: per shard rings and a merged copy with renumbered symbol ids
                merged = feed.trades.latest()
                assert len(merged) == sum(len(r) for r in feed.trades.rings) == len(feed.trades)
                assert np.all(np.diff(merged["recv_ns"]) >= 0)
                names = feed.trades.symbols
                for s in SYMS:
                    ring = feed.trades.ring_of(s)
                    own = ring.symbols
                    rows = ring.latest()
                    assert int(np.sum([names[i] == s for i in merged["symbol"]])) == int(
                        np.sum([own[i] == s for i in rows["symbol"]])
                    )
                assert len(feed.trades.latest(5)) == 5

                # stats: summed over shards
                st = feed.stats
                per = st["shards"]
                assert len(per) == 2 and st["n_shards"] == 2
                assert st["connects"] == 2 == sum(p["connects"] for p in per)
                for key in ("frames", "bytes_in", "bytes_inflated"):
                    assert st["engine"][key] == sum(p["engine"][key] for p in per) > 0
                for key in ("depth.update", "trades.update"):
                    assert st["engine"]["messages"][key] == sum(p["engine"]["messages"][key] for p in per) > 0
                assert st["connected"] is True
                assert st["assignment"] == feed.assignment

                with pytest.raises(fastfeed.UnknownSymbol):
                    feed.book("NOPE_USDT")
                with pytest.raises(ValueError, match="named symbols"):
                    await feed.subscribe_depth([])
        assert not feed.connected and feed.closed
        with pytest.raises(fastfeed.FeedClosed):
            await feed.subscribe_depth(["BTC_USDT"])

    run(body)


@pytest.mark.parametrize("mode", MODES)
def test_new_symbols_go_to_the_lightest_shard(mode: str) -> None:
    async def body() -> None:
        async with (
            exchange() as ex,
            fastfeed.connect_sharded(ex.url, shards=2, symbols=SYMS[:3], mode=mode) as feed,
        ):
            assert feed.assignment == {0: ["BTC_USDT", "SOL_USDT"], 1: ["ETH_USDT"]}
            await feed.subscribe_depth(["xrp_usdt", "DOGE_USDT"])
            assert feed.shard_of("XRP_USDT") == 1  # the lighter shard then
            assert feed.shard_of("DOGE_USDT") == 0  # tie: the lower index
            await until(lambda: feed.book("XRP_USDT").live and feed.book("DOGE_USDT").live, what="books")
            assert shard_stats(feed, 1)["subscriptions"] == {"depth": ["XRP_USDT"]}
            await feed.unsubscribe_depth(["XRP_USDT"])
            await feed.ping()
            assert feed.subscriptions == {"depth": ["DOGE_USDT"]}
            assert not conn_of(ex, "DOGE_USDT").subscribed("depth", "XRP_USDT")

    run(body)


@pytest.mark.parametrize("mode", MODES)
def test_one_shard_dropped_the_others_keep_their_connection(mode: str) -> None:
    events: list[ShardEvent] = []

    async def body() -> None:
        async with exchange() as ex:
            async with fastfeed.connect_sharded(
                ex.url, shards=3, symbols=SYMS, mode=mode, on_event=events.append, **FAST
            ) as feed:
                await feed.subscribe_depth(SYMS)
                await until(lambda: all(feed.book(s).live for s in SYMS), what="books")
                victim = feed.assignment[1]
                before = {k: shard_stats(feed, k)["engine"]["frames"] for k in (0, 2)}
                ex.faults.drop(conn_of(ex, victim[0]))
                await until(
                    lambda: shard_stats(feed, 1)["connects"] == 2 and feed.connected, what="reconnect"
                )
                await until(lambda: all(feed.book(s).live for s in victim), what="books rebuilt")
                # the other shards kept their connection and kept receiving
                await until(
                    lambda: all(shard_stats(feed, k)["engine"]["frames"] > before[k] for k in (0, 2)),
                    what="other shards still receiving",
                )
                ex.pause()
                await feed.ping()
                for k in (0, 2):
                    assert shard_stats(feed, k)["connects"] == 1
                    assert shard_stats(feed, k)["disconnects"] == 0
                assert_books_equal_exchange(feed, ex, SYMS)
                st = feed.stats
                assert st["connects"] == 4 and st["reconnects"] == 1 and st["disconnects"] == 1
                assert st["connected"] is True
                await until(lambda: sum(e.kind == "connected" for e in events) == 4, what="events")
                seen = list(events)
                assert list(feed.events) == seen
        dropped = [e for e in seen if e.kind == "disconnected"]
        assert dropped and {e.shard for e in dropped} == {1}
        assert sorted(e.shard for e in seen if e.kind == "connected") == [0, 1, 1, 2]
        assert all(isinstance(e.event, fastfeed.ConnectionEvent) for e in seen)

    run(body)


ATTACH_SCRIPT = """
import json, sys
import fastfeed
with fastfeed.attach(sys.argv[1]) as rd:
    out = {"type": type(rd).__name__, "symbols": sorted(rd.symbols), "books": {}}
    for s in sys.argv[2:]:
        bids, asks = rd.book(s).snapshot()
        out["books"][s] = [bids.tolist(), asks.tolist()]
print(json.dumps(out))
"""


@pytest.mark.parametrize("mode", MODES)
def test_attach_from_another_process_sees_every_symbol(mode: str) -> None:
    name = f"ffshardtest{os.getpid()}{mode}"

    async def body() -> None:
        async with exchange() as ex:
            async with fastfeed.connect_sharded(
                ex.url, shards=2, symbols=SYMS, shm_name=name, mode=mode
            ) as feed:
                assert feed.segment_names == (f"{name}.shard0-of2", f"{name}.shard1-of2")
                await feed.subscribe_depth(SYMS)
                await until(lambda: all(feed.book(s).live for s in SYMS), what="books")
                ex.pause()
                await feed.ping()
                env = dict(os.environ, PYTHONPATH=str(Path(fastfeed.__file__).parent.parent))
                proc = subprocess.run(
                    [sys.executable, "-c", ATTACH_SCRIPT, name, *SYMS],
                    capture_output=True,
                    text=True,
                    timeout=120,
                    env=env,
                )
                assert proc.returncode == 0, proc.stderr
                got = json.loads(proc.stdout)
                assert got["type"] == "ShardedReader"
                assert got["symbols"] == sorted(SYMS)
                for s in SYMS:
                    bids, asks = feed.book(s).snapshot()
                    assert got["books"][s] == [bids.tolist(), asks.tolist()], s
                with fastfeed.attach(name) as rd:  # in-process too
                    assert isinstance(rd, ShardedReader) and len(rd.readers) == 2
                    assert rd.name == name
        with pytest.raises(fastfeed.ShmNotFound):  # closed: every shard segment unlinked
            fastfeed.attach(name, timeout=0.1)

    run(body)


def test_process_mode_refuses_frame_path_callbacks() -> None:
    with pytest.raises(ValueError, match="mode='thread'"):
        fastfeed.connect_sharded("ws://127.0.0.1:1", shards=2, on_frame=lambda ch: None)
    fastfeed.connect_sharded("ws://127.0.0.1:1", shards=2, mode="thread", on_frame=lambda ch: None)
    with pytest.raises(ValueError, match="mode"):
        fastfeed.connect_sharded("ws://127.0.0.1:1", shards=2, mode="fork")


def test_a_shard_that_cannot_connect_fails_start_and_stops_the_others() -> None:
    async def body() -> None:
        feed = fastfeed.connect_sharded("ws://127.0.0.1:9/ws/v1/", shards=2, connect_timeout=0.5)
        with pytest.raises(fastfeed.ConnectFailed):
            await feed.start()
        assert feed.closed and not any(sh.proc.is_alive() for sh in feed._shards)

    run(body)


@pytest.mark.parametrize("mode", MODES)
def test_a_refused_subscribe_raises_the_same_error_in_both_modes(mode: str) -> None:
    """A server refusal is a ``RequestError`` with its fields, also from a shard process
    (``RequestError`` does not unpickle by default: it is rebuilt in the parent)."""

    async def body() -> None:
        async with exchange() as ex, fastfeed.connect_sharded(ex.url, shards=2, mode=mode) as feed:
            with pytest.raises(fastfeed.RequestError) as ei:
                await feed.subscribe_depth(["NOPE_USDT"])
            assert ei.value.method == "depth.subscribe" and ei.value.message
            assert ei.value.reason == "request_error"
            await feed.subscribe_depth(["BTC_USDT"])  # the shard is fine afterwards
            assert feed.subscriptions == {"depth": ["BTC_USDT"]}

    run(body)


def test_a_dead_shard_process_is_reported_and_the_others_go_on() -> None:
    name = f"ffshardkill{os.getpid()}"

    async def body() -> None:
        async with exchange() as ex:
            async with fastfeed.connect_sharded(ex.url, shards=2, symbols=SYMS, shm_name=name) as feed:
                await feed.subscribe_depth(SYMS)
                await until(lambda: all(feed.book(s).live for s in SYMS), what="books")
                feed._shards[1].proc.kill()  # test instrumentation: a crashed shard
                await until(lambda: not feed.connected, what="the dead shard noticed")
                with pytest.raises(fastfeed.FeedClosed):
                    await feed.subscribe_trades(feed.assignment[1][:1])
                with pytest.raises(fastfeed.FeedClosed):
                    await feed.ping()
                await feed.subscribe_trades(feed.assignment[0])  # the live shard goes on
                before = shard_stats(feed, 0)["engine"]["frames"]
                await until(lambda: shard_stats(feed, 0)["engine"]["frames"] > before, what="shard 0 data")
        # closed: the dead shard's segment is removed too
        assert not any(s.startswith(name) for s in fastfeed.shm.list_segments())

    run(body)


def test_attach_needs_exactly_one_complete_set_of_shard_segments() -> None:
    name = f"ffshardset{os.getpid()}"
    with fastfeed.Engine(shm_name=f"{name}.shard0-of2") as e0:
        e0.book("BTC_USDT", create=True)
        with pytest.raises(fastfeed.ShmLayoutError, match="1 of 2"):  # incomplete
            fastfeed.attach(name)
        with fastfeed.Engine(shm_name=f"{name}.shard1-of2") as e1:
            e1.book("ETH_USDT", create=True)
            with fastfeed.attach(name) as rd:
                assert isinstance(rd, ShardedReader)
                assert sorted(rd.symbols) == ["BTC_USDT", "ETH_USDT"]
                assert rd.book("ETH_USDT").symbol == "ETH_USDT"
                with pytest.raises(fastfeed.UnknownSymbol):
                    rd.book("SOL_USDT")
            with fastfeed.Engine(shm_name=f"{name}.shard0-of1"):  # a second complete set
                with pytest.raises(fastfeed.ShmLayoutError, match="complete set"):
                    fastfeed.attach(name)
    with pytest.raises(fastfeed.ShmNotFound):
        fastfeed.attach(name, timeout=0.1)
