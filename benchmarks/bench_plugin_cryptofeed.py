"""The cryptofeed plugin's callback path, side by side in one run, as ratios.

Every row processes the same seeded corpus (``fastfeed.bench.corpus``: depth increments,
snapshots, trades, tickers over 10 symbols, each frame zlib-compressed as on the wire) on
one event loop, and the time is per frame over the whole corpus (the minimum of
``--rounds`` interleaved rounds). The WebSocket transport is left out of every row alike
(picows for fastfeed, websockets for the plain client): frames are handed over in chunks
of ``--chunk`` frames with one event-loop turn per chunk, as a socket read would.

===================================== ==============================================================
row                                   per frame
===================================== ==============================================================
fastfeed alone                        ``Engine.feed(zlib)``: inflate, parse, book / trade ring /
                                      ticker table, event log on (what the plugin reads)
fastfeed + per-frame hook             the same plus ``Feed``'s per-frame hook building the
                                      ``FrameChange`` (what ``FeedListener`` does after the engine)
plugin, float / Decimal               the same plus the plugin: its queue, cryptofeed's
                                      ``ConnectionHandler`` reading it, the event rows / ticker
                                      records -> ``OrderBook`` deltas and snapshots, ``Trade``,
                                      ``Ticker`` -> ``book_callback`` / ``callback`` -> no-op async
                                      callbacks for L2_BOOK, TRADES, TICKER
plain cryptofeed-style client         what a cryptofeed exchange module does: ``zlib.decompress``,
(Decimal)                             cryptofeed's JSON (msgspec, floats as Decimal), ``Decimal``
                                      per price/amount, the same ``OrderBook`` / ``Trade`` /
                                      ``Ticker`` and callbacks, through the same handler loop
===================================== ==============================================================

    python benchmarks/bench_plugin_cryptofeed.py                 # --n 50000 --rounds 5
    python benchmarks/bench_plugin_cryptofeed.py --quick
    python benchmarks/bench_plugin_cryptofeed.py --profile       # where the plugin's time goes

Needs Python >= 3.13 with cryptofeed 3.0 and the plugin installed (ci/plugin-cryptofeed.sh
makes such a venv; ``pip install ./plugins/cryptofeed``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import os
import pstats
import sys
import time
import zlib
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

_ROOT = Path(__file__).resolve().parent.parent
if any((_ROOT / "fastfeed").glob("_engine*.so")):
    sys.path.insert(0, str(_ROOT))

from cryptofeed import _json as cf_json  # noqa: E402
from cryptofeed.connection import AsyncConnection  # noqa: E402
from cryptofeed.connection_handler import ConnectionHandler  # noqa: E402
from cryptofeed.defines import ASK, BID, BUY, L2_BOOK, SELL, TICKER, TRADES  # noqa: E402
from cryptofeed.symbols import Symbols  # noqa: E402
from cryptofeed.types import OrderBook, Ticker, Trade  # noqa: E402

import fastfeed  # noqa: E402
from fastfeed.bench.corpus import make_corpus  # noqa: E402
from fastfeed.plugins.cryptofeed import DigiFinex, FastfeedConnection, std_symbol  # noqa: E402

URL = "ws://127.0.0.1:9/ws/v1/"  # never connected: frames are handed over in-process


class Counter:
    """No-op async callbacks that count what arrived."""

    def __init__(self) -> None:
        self.n = {L2_BOOK: 0, TRADES: 0, TICKER: 0}

    def callbacks(self) -> dict[str, Any]:
        async def book(obj: Any, receipt: float) -> None:
            self.n[L2_BOOK] += 1

        async def trade(obj: Any, receipt: float) -> None:
            self.n[TRADES] += 1

        async def ticker(obj: Any, receipt: float) -> None:
            self.n[TICKER] += 1

        return {L2_BOOK: book, TRADES: trade, TICKER: ticker}


# -- the contestants -------------------------------------------------------------------------


def _offline_feed(conn: FastfeedConnection) -> fastfeed.Feed:
    """A fastfeed Feed for ``conn`` that is never connected, its per-frame hook enabled as
    the live listener enables it (``Feed._update_hooks`` does so when a listener exists)."""
    feed = fastfeed.Feed(conn.address, options=conn.options, on_frame=conn._on_frame)
    feed._frame_fns = feed._frame_hooks()

    async def nothing(*args: Any, **kwargs: Any) -> None:
        return None

    for chan in ("depth", "trades", "ticker"):
        setattr(feed, f"subscribe_{chan}", nothing)  # no server: subscribing is a no-op
    conn.feed = conn.conn = feed
    return feed


async def run_fastfeed(frames: list[bytes], chunk: int, hook: bool) -> tuple[float, str]:
    feed = fastfeed.Feed(URL, options=fastfeed.FeedOptions(event_log=1 << 16))
    eng = feed.engine
    frames_seen: list[int] = [0]
    if hook:
        feed.on_frame = lambda change: frames_seen.__setitem__(0, frames_seen[0] + 1)
        feed._frame_fns = feed._frame_hooks()
    now = time.time_ns
    t0 = time.process_time()
    for i in range(0, len(frames), chunk):
        for f in frames[i : i + chunk]:
            ns = now()
            msg = eng.feed(f, ns)
            if hook:
                feed._frame_done(msg, ns)
        await asyncio.sleep(0)
    dt = time.process_time() - t0
    eng.close()
    return dt, f"hook calls {frames_seen[0]}" if hook else ""


async def run_plugin(
    frames: list[bytes], chunk: int, numeric: type, symbols: list[str], cls: type[DigiFinex] = DigiFinex
) -> tuple[float, str]:
    counter = Counter()
    Symbols.clear()
    DigiFinex._known.clear()
    dg = cls(
        symbols=symbols,
        channels=[L2_BOOK, TRADES, TICKER],
        callbacks=counter.callbacks(),
        numeric=numeric,
        url=URL,
    )
    [(conn, subscribe, handler)] = dg.connect()
    assert isinstance(conn, FastfeedConnection)
    feed = _offline_feed(conn)
    await subscribe(conn)
    ch = ConnectionHandler(conn, subscribe, handler, retries=0, timeout=-1)
    consumer = asyncio.create_task(ch._handler(conn, handler))
    eng = feed.engine
    frame_done = feed._frame_done
    now = time.time_ns
    t0 = time.process_time()
    for i in range(0, len(frames), chunk):
        for f in frames[i : i + chunk]:
            ns = now()
            frame_done(eng.feed(f, ns), ns)
        await asyncio.sleep(0)
    while conn._q:
        await asyncio.sleep(0)
    dt = time.process_time() - t0
    await conn.close()
    await consumer
    assert conn.dropped == 0 and dg.stats["resyncs"] == 0, (conn.dropped, dg.stats)
    assert cls is not DigiFinex or dg._ev_next == eng.events.count  # everything handed out
    return dt, " ".join(f"{k} {v}" for k, v in counter.n.items())


class _ListConnection(AsyncConnection):
    """The plain client's connection: yields each queued message, as websockets does."""

    def __init__(self) -> None:
        super().__init__("PLAIN.ws.0")
        self.q: list[bytes] = []
        self.open = True
        self.wake: asyncio.Future[None] | None = None

    @property
    def is_open(self) -> bool:
        return self.open

    async def read(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        while True:
            if self.q:
                batch, self.q = self.q, []
                for m in batch:
                    self.received += 1
                    self.last_message = time.time()
                    yield m
                continue
            if not self.open:
                return
            self.wake = asyncio.get_running_loop().create_future()
            await self.wake

    def push(self, msgs: list[bytes]) -> None:
        self.q += msgs
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)

    async def close(self) -> None:
        self.open = False
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)


class PlainDigiFinex(DigiFinex):
    """A DigiFinex exchange written the way cryptofeed's own exchange modules are (see e.g.
    cryptofeed/exchanges/gate.py): decompress, decode JSON with floats as Decimal, Decimal
    per value, keep the OrderBook, build Trade / Ticker, call back."""

    async def message_handler(self, msg: Any, conn: Any, timestamp: float) -> None:
        msg = cf_json.loads(zlib.decompress(msg), parse_float=Decimal)
        method = msg.get("method")
        params = msg["params"]
        if method == "depth.update":
            clean, data, sym = params
            symbol = self.exchange_symbol_to_std_symbol(sym)
            if clean or symbol not in self._l2_book:
                book = self._l2_book[symbol] = OrderBook(self.id, symbol, max_depth=self.max_depth)
                book.book.bids = {Decimal(p): Decimal(q) for p, q in data.get("bids", ())}
                book.book.asks = {Decimal(p): Decimal(q) for p, q in data.get("asks", ())}
                await self.book_callback(L2_BOOK, book, timestamp, delta=None, raw=msg)
                return
            book = self._l2_book[symbol]
            delta: dict[str, list[tuple[Decimal, Decimal]]] = {BID: [], ASK: []}
            for key, side in (("bids", BID), ("asks", ASK)):
                levels = book.book[side]
                for p, q in data.get(key, ()):
                    price, amount = Decimal(p), Decimal(q)
                    if amount == 0:
                        if price in levels:
                            del levels[price]
                            delta[side].append((price, amount))
                    else:
                        levels[price] = amount
                        delta[side].append((price, amount))
            await self.book_callback(L2_BOOK, book, timestamp, delta=delta, raw=msg)
        elif method == "trades.update":
            _clean, trades, sym = params
            symbol = self.exchange_symbol_to_std_symbol(sym)
            for t in reversed(trades):  # newest first on the wire
                trade = Trade(
                    self.id,
                    symbol,
                    BUY if t["type"] == "buy" else SELL,
                    Decimal(t["amount"]),
                    Decimal(t["price"]),
                    float(t["time"]),
                    id=str(t["id"]),
                    raw=msg,
                )
                await self.callback(TRADES, trade, timestamp)
        elif method == "ticker.update":
            for t in params:
                ticker = Ticker(
                    self.id,
                    self.exchange_symbol_to_std_symbol(t["symbol"]),
                    Decimal(t["best_bid"]),
                    Decimal(t["best_ask"]),
                    t["timestamp"] / 1000.0 if t.get("timestamp") else None,
                    raw=msg,
                )
                await self.callback(TICKER, ticker, timestamp)


async def run_plain(frames: list[bytes], chunk: int, symbols: list[str]) -> tuple[float, str]:
    counter = Counter()
    Symbols.clear()
    DigiFinex._known.clear()
    dg = PlainDigiFinex(
        symbols=symbols, channels=[L2_BOOK, TRADES, TICKER], callbacks=counter.callbacks(), url=URL
    )
    conn = _ListConnection()
    ch = ConnectionHandler(conn, dg.subscribe, dg.message_handler, retries=0, timeout=-1)
    consumer = asyncio.create_task(ch._handler(conn, dg.message_handler))
    t0 = time.process_time()
    for i in range(0, len(frames), chunk):
        conn.push(frames[i : i + chunk])
        await asyncio.sleep(0)
    while conn.q:
        await asyncio.sleep(0)
    dt = time.process_time() - t0
    await conn.close()
    await consumer
    return dt, " ".join(f"{k} {v}" for k, v in counter.n.items())


class _QueueOnly(DigiFinex):
    """Breakdown: the queue and cryptofeed's handler loop, nothing handed out."""

    async def message_handler(self, msg: Any, conn: Any, timestamp: float) -> None:
        return None


class _RowsOnly(DigiFinex):
    """Breakdown: + reading the event rows (their columns as lists); tickers are delivered in
    full here (Ticker objects and callbacks: ~6% of the frames)."""

    async def _deliver(self, *columns: Any) -> None:
        return None


class _NoDispatch(DigiFinex):
    """Breakdown: + cryptofeed's OrderBook updates, Trade and Ticker objects, but not
    cryptofeed's book_callback / callback dispatch."""

    async def book_callback(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def callback(self, data_type: Any, obj: Any, receipt_timestamp: Any) -> None:
        return None


BREAKDOWN: list[tuple[str, Callable[..., Any]]] = [
    ("  queue + cryptofeed handler loop", lambda fr, ch, sy: run_plugin(fr, ch, float, sy, _QueueOnly)),
    ("  + event rows / ticker records read", lambda fr, ch, sy: run_plugin(fr, ch, float, sy, _RowsOnly)),
    ("  + OrderBook / Trade / Ticker (float)", lambda fr, ch, sy: run_plugin(fr, ch, float, sy, _NoDispatch)),
    (
        "  + OrderBook / Trade / Ticker (Decimal)",
        lambda fr, ch, sy: run_plugin(fr, ch, Decimal, sy, _NoDispatch),
    ),
]

# -- the run ---------------------------------------------------------------------------------

ROWS: list[tuple[str, Callable[..., Any]]] = [
    ("fastfeed alone", lambda fr, ch, sy: run_fastfeed(fr, ch, hook=False)),
    ("fastfeed + per-frame hook", lambda fr, ch, sy: run_fastfeed(fr, ch, hook=True)),
    ("plugin, float", lambda fr, ch, sy: run_plugin(fr, ch, float, sy)),
    ("plugin, Decimal", lambda fr, ch, sy: run_plugin(fr, ch, Decimal, sy)),
    ("plain cryptofeed-style client, Decimal", lambda fr, ch, sy: run_plain(fr, ch, sy)),
]


def run(n: int, rounds: int, chunk: int, seed: int = 1, breakdown: bool = False) -> dict[str, Any]:
    corpus = make_corpus(n, seed=seed)
    frames = [f.zlib for f in corpus]
    symbols = sorted({std_symbol(f.symbol) for f in corpus})
    best: dict[str, float] = {}
    notes: dict[str, str] = {}
    rows = ROWS + (BREAKDOWN if breakdown else [])
    for _ in range(rounds):
        for name, fn in rows:  # interleaved: a noisy moment hits every row alike
            gc.collect()
            dt, note = asyncio.run(fn(frames, chunk, symbols))
            best[name] = min(best.get(name, float("inf")), dt)
            notes[name] = note
    return {
        "n": n,
        "chunk": chunk,
        "rounds": rounds,
        "seconds": best,
        "notes": notes,
        "rows": [r[0] for r in rows],
    }


def format_table(res: dict[str, Any]) -> str:
    n = res["n"]
    secs = res["seconds"]
    base = secs["fastfeed alone"]
    plain = secs["plain cryptofeed-style client, Decimal"]
    head = f"{n} frames, chunk {res['chunk']}, min of {res['rounds']} rounds (CPU time); "
    head += f"Python {sys.version.split()[0]}, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}"
    lines = [
        head,
        f"{'row':<40} {'us/frame':>9} {'frames/s':>10} {'x fastfeed':>11} {'plain / row':>12}",
    ]
    for name in res["rows"]:
        s = secs[name]
        lines.append(f"{name:<40} {s / n * 1e6:>9.2f} {n / s:>10,.0f} {s / base:>11.2f} {plain / s:>12.2f}")
    for name in ("plugin, float", "plugin, Decimal"):
        own = (secs[name] - secs["fastfeed + per-frame hook"]) / n * 1e6
        lines.append(f"  {name}: the plugin + cryptofeed beyond fastfeed's hook: {own:.2f} us/frame")
    lines.append("  callbacks: " + res["notes"]["plugin, Decimal"])
    return "\n".join(lines)


def profile(n: int, chunk: int, numeric: type, top: int = 25) -> str:
    corpus = make_corpus(n, seed=1)
    frames = [f.zlib for f in corpus]
    symbols = sorted({std_symbol(f.symbol) for f in corpus})
    prof = cProfile.Profile()
    prof.enable()
    asyncio.run(run_plugin(frames, chunk, numeric, symbols))
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50_000, help="frames in the corpus")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--chunk", type=int, default=16, help="frames per event-loop turn (a socket read)")
    ap.add_argument("--quick", action="store_true", help="--n 10000 --rounds 3")
    ap.add_argument("--profile", action="store_true", help="cProfile the plugin (Decimal and float)")
    ap.add_argument(
        "--breakdown",
        action="store_true",
        help="also the plugin's path cut short at each stage (where the time goes, float)",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.rounds = 10_000, 3
    if args.profile:
        for numeric in (Decimal, float):
            print(f"--- plugin, {numeric.__name__}: cProfile, by own time ---")
            print(profile(args.n, args.chunk, numeric))
        return 0
    print(format_table(run(args.n, args.rounds, args.chunk, breakdown=args.breakdown)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
