"""Frames/s through the nautilus_trader plugin's callback path, beside fastfeed alone.

The seeded corpus (``fastfeed.bench.corpus``: depth increments and snapshots, trades,
tickers over 10 symbols, zlib frames as on the wire) is fed offline, frame by frame, the
way the live listener does it (``Engine.feed`` then the feed's per-frame hook), to five
contestants, interleaved in every round, each on a fresh engine (and nautilus engine):

1. ``fastfeed alone``: the engine with its event log (what the plugin needs), no consumer;
2. ``+ per-frame hook``: the feed's ``FrameChange`` per frame to a no-op callback;
3. ``+ plugin, constructors stubbed``: ``DigiFinexDataClient``'s hot path with nautilus's
   constructors (``OrderBookDelta.from_raw``, ``OrderBookDeltas``, ``TradeTick.from_raw``,
   ``TradeId``, ``QuoteTick.from_raw``) replaced by a no-op: the plugin's own Python;
4. ``+ plugin, no bus``: the real nautilus objects, handed to a no-op;
5. ``+ plugin -> DataEngine``: the same into nautilus's ``DataEngine`` with managed L2 books,
   trades and quotes subscribed (what a TradingNode's data engine does with each item).

The table gives frames/s, µs/frame and each as a ratio of fastfeed alone (medians of the
rounds); the breakdown under it is the differences between consecutive contestants, i.e.
where a frame's µs go. ``--profile`` adds a cProfile of contestant 5 (top functions).

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_plugin_nautilus.py              # --n 50000 --rounds 5
    python benchmarks/bench_plugin_nautilus.py --quick --profile

Needs the ``nautilus`` extra (Python >= 3.12).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # no spinning BLAS threads on 2 cores

import argparse
import asyncio
import contextlib
import cProfile
import gc
import importlib.util
import io
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
if any((_ROOT / "fastfeed").glob("_engine*.so")) or importlib.util.find_spec("fastfeed") is None:
    sys.path.insert(0, str(_ROOT))

from fastfeed.bench.corpus import SYMBOLS, make_corpus  # noqa: E402
from fastfeed.client import Feed, FeedOptions  # noqa: E402

EVENT_LOG = 1 << 16
URL = "ws://127.0.0.1:9/ws/v1/"  # never connected: frames are fed offline


def _hooked_feed(on_frame: Callable[[Any], None]) -> Feed:
    """A feed whose per-frame hook is on, as the listener sets it up on connect."""
    feed = Feed(URL, options=FeedOptions(event_log=EVENT_LOG), on_frame=on_frame)
    feed._frame_fns = feed._frame_hooks()
    return feed


def _runner(feed: Feed, hook: bool) -> Callable[[Sequence[bytes]], int]:
    eng = feed.engine
    feed_fn = eng.feed
    done = feed._frame_done

    def run(payloads: Sequence[bytes]) -> int:
        ns = 1_700_000_000_000_000_000
        t0 = time.perf_counter_ns()
        if hook:
            for p in payloads:
                ns += 1000
                done(feed_fn(p, ns), ns)
        else:
            for p in payloads:
                ns += 1000
                feed_fn(p, ns)
        return time.perf_counter_ns() - t0

    return run


async def _plugin(bus: bool) -> tuple[Any, Feed]:
    """A DigiFinexDataClient on a fresh feed; ``bus``: into a DataEngine with managed books."""
    from nautilus_trader.cache.cache import Cache
    from nautilus_trader.common.component import LiveClock, MessageBus
    from nautilus_trader.core.uuid import UUID4
    from nautilus_trader.data.engine import DataEngine
    from nautilus_trader.data.messages import SubscribeOrderBook, SubscribeQuoteTicks, SubscribeTradeTicks
    from nautilus_trader.model.data import OrderBookDelta
    from nautilus_trader.model.enums import BookType
    from nautilus_trader.model.identifiers import TraderId

    from fastfeed.plugins.nautilus import (
        DIGIFINEX_VENUE,
        DigiFinexDataClient,
        DigiFinexDataClientConfig,
        DigiFinexInstrumentProvider,
        instrument_id,
    )

    precisions = {s.symbol: (s.tick_dp, s.amount_dp) for s in SYMBOLS}
    clock = LiveClock()
    msgbus = MessageBus(TraderId("BENCH-001"), clock)
    cache = Cache()
    engine = DataEngine(msgbus, cache, clock)
    provider = DigiFinexInstrumentProvider(precisions)
    client = DigiFinexDataClient(
        asyncio.get_running_loop(),
        msgbus,
        cache,
        clock,
        provider,
        DigiFinexDataClientConfig(url=URL, instruments=precisions, event_log=EVENT_LOG),
    )
    engine.register_client(client)
    engine.start()
    for inst in provider.list_all():
        cache.add_instrument(inst)
    for s in precisions:
        iid = instrument_id(s)
        args = (client.id, DIGIFINEX_VENUE, UUID4(), clock.timestamp_ns())
        engine.execute(SubscribeOrderBook(iid, OrderBookDelta, BookType.L2_MBP, *args, managed=True))
        engine.execute(SubscribeTradeTicks(iid, *args))
        engine.execute(SubscribeQuoteTicks(iid, *args))
    for _ in range(5):  # the client's subscribe tasks run
        await asyncio.sleep(0)
    assert len(client._books) == len(client._trade_targets) == len(client._quote_targets) == len(precisions)
    if not bus:
        client._handle_data = lambda _data: None
    feed = _hooked_feed(client._on_frame)
    client.feed = feed
    return client, feed


CONTESTANTS = (
    "fastfeed alone (engine + event log)",
    "+ per-frame hook (no-op consumer)",
    "+ plugin, nautilus constructors stubbed",
    "+ plugin: nautilus objects, no bus",
    "+ plugin -> DataEngine (managed books)",
)

#: the nautilus constructors the plugin's hot path calls (module globals of its data.py)
_CONSTRUCTORS = ("_delta", "_trade", "_quote", "OrderBookDeltas", "TradeId")


class _Made:
    """What a stubbed constructor returns (``flags``: the plugin reads the last delta's)."""

    flags = 0xFF


_MADE = _Made()


def _stub(*_args: Any) -> _Made:
    return _MADE


@contextlib.contextmanager
def _stubbed(on: bool) -> Iterator[None]:
    """Contestant 3: the plugin's hot path with nautilus's constructors replaced by a no-op
    (what is left is the plugin's own Python)."""
    from fastfeed.plugins.nautilus import data

    saved = {name: getattr(data, name) for name in _CONSTRUCTORS}
    if on:
        for name in _CONSTRUCTORS:
            setattr(data, name, _stub)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(data, name, fn)


async def _make(i: int) -> tuple[Callable[[Sequence[bytes]], int], Any]:
    if i == 0:
        return _runner(Feed(URL, options=FeedOptions(event_log=EVENT_LOG)), hook=False), None
    if i == 1:
        return _runner(_hooked_feed(lambda _c: None), hook=True), None
    client, feed = await _plugin(bus=i == 4)
    return _runner(feed, hook=True), client


def _counts(payloads: Sequence[bytes], client: Any) -> dict[str, float]:
    """nautilus objects per frame (a pass of its own, not timed)."""
    from nautilus_trader.model.data import OrderBookDeltas, QuoteTick, TradeTick

    c = {"deltas": 0, "batches": 0, "trades": 0, "quotes": 0}

    def count(data: Any) -> None:
        if isinstance(data, OrderBookDeltas):
            c["batches"] += 1
            c["deltas"] += len(data.deltas)
        elif isinstance(data, TradeTick):
            c["trades"] += 1
        elif isinstance(data, QuoteTick):
            c["quotes"] += 1

    client._handle_data = count
    _runner(client.feed, hook=True)(payloads)
    return {k: v / len(payloads) for k, v in c.items()}


async def bench(n: int, rounds: int, seed: int, profile: bool) -> dict[str, Any]:
    frames = make_corpus(n, seed=seed)
    payloads = [f.zlib for f in frames]
    times: list[list[int]] = [[] for _ in CONTESTANTS]
    stats: dict[str, Any] = {}
    for _ in range(rounds):
        for i in range(len(CONTESTANTS)):
            run, client = await _make(i)
            gc.collect()
            gc.disable()
            try:
                with _stubbed(i == 2):
                    times[i].append(run(payloads))
            finally:
                gc.enable()
            if client is not None and i != 2:
                stats[CONTESTANTS[i]] = client.stats
    out: dict[str, Any] = {"n": len(payloads), "rounds": rounds, "seed": seed, "results": []}
    out["plugin_stats"] = stats
    base = statistics.median(times[0])
    us = []
    for name, ts in zip(CONTESTANTS, times):
        med = statistics.median(ts)
        us.append(med / len(payloads) / 1e3)
        out["results"].append(
            {
                "contestant": name,
                "frames_per_s": len(payloads) / med * 1e9,
                "us_per_frame": us[-1],
                "x": med / base,
            }
        )
    _client, _feed = await _plugin(bus=False)
    per = _counts(payloads, _client)
    out["breakdown"] = [
        ("fastfeed engine: inflate, parse, books, event log", us[0]),
        ("fastfeed per-frame hook: FrameChange, callback dispatch", us[1] - us[0]),
        ("plugin's own Python: event rows to tuples, exact precision check, assembly", us[2] - us[1]),
        (
            (
                f"nautilus constructors beyond a no-op call: {per['deltas']:.2f} OrderBookDelta in "
                f"{per['batches']:.2f} OrderBookDeltas, {per['trades']:.2f} TradeTick (+TradeId), "
                f"{per['quotes']:.3f} QuoteTick a frame"
            ),
            us[3] - us[2],
        ),
        ("nautilus DataEngine: managed book apply, msgbus publish", us[4] - us[3]),
    ]
    if profile:
        run, _client = await _make(4)
        prof = cProfile.Profile()
        prof.enable()
        run(payloads)
        prof.disable()
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(15)
        out["profile_top"] = s.getvalue()
    return out


def format_table(res: dict[str, Any]) -> str:
    lines = [
        (
            f"nautilus plugin callback path: {res['n']} corpus frames (seed {res['seed']}), "
            f"median of {res['rounds']} rounds, one process, interleaved"
        ),
        "",
        f"| {'contestant':<40} | {'frames/s':>10} | {'µs/frame':>8} | {'× fastfeed alone':>16} |",
        f"| {'-' * 40} | {'-' * 10}:| {'-' * 8}:| {'-' * 16}:|",
    ]
    for r in res["results"]:
        lines.append(
            f"| {r['contestant']:<40} | {r['frames_per_s']:>10,.0f} | {r['us_per_frame']:>8.2f} | {r['x']:>16.2f} |"
        )
    for name, st in res["plugin_stats"].items():
        lines.append(f"\n{name}: {st}")
    lines.append("\nwhere the µs of a frame through '+ plugin -> DataEngine' go:")
    total = sum(v for _, v in res["breakdown"])
    for k, v in res["breakdown"]:
        lines.append(f"  {v:6.2f} µs  {100 * v / total:4.0f} %  {k}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000, help="corpus frames (default 50000)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds, median reported (default 5)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="--n 10000 --rounds 3")
    ap.add_argument(
        "--profile", action="store_true", help="also cProfile the full plugin path (top functions)"
    )
    a = ap.parse_args(argv)
    if a.quick:
        a.n, a.rounds = 10_000, 3
    try:
        import nautilus_trader  # noqa: F401
    except ImportError:
        print(
            "needs nautilus_trader (Python >= 3.12): pip install -e '.[nautilus]' (from a clone)",
            file=sys.stderr,
        )
        return 2
    res = asyncio.run(bench(a.n, a.rounds, a.seed, a.profile))
    print(format_table(res))
    if a.profile:
        print(res["profile_top"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
