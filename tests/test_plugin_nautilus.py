"""The nautilus_trader data client (fastfeed.plugins.nautilus), offline against the bundled
exchange on 127.0.0.1 (port 0).

Each live test runs a real ``TradingNode`` built through the factory
(``add_data_client_factory("DIGIFINEX", ...)``) with an actor that subscribes order book
deltas, trade ticks and quote ticks. The exchange runs at ``rate=0`` and the tests drive it
with ``Exchange.step(n)``; ``feed.ping()`` (answered after every push sent before it) and an
empty data-engine queue say that everything sent has reached nautilus. Then nautilus's
managed order book must equal ``feed.book(sym)`` and the exchange's book level by level
(compared as exact decimals), after a burst and after forced drops and a forced resync;
every stored trade and every ticker record must arrive exactly once; values that do not fit
an instrument's precision are counted rejections, never rounded. Every wait stops on a
condition; the timeouts are hang guards only.

nautilus_trader needs Python >= 3.12 (the extra ``nautilus``; CI job
ci/plugin-nautilus.sh): elsewhere this module is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("nautilus_trader")

from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig, LoggingConfig
from nautilus_trader.live.config import TradingNodeConfig
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.data import OrderBookDeltas, QuoteTick, TradeTick
from nautilus_trader.model.enums import BookAction, RecordFlag
from nautilus_trader.model.identifiers import ClientId, InstrumentId
from nautilus_trader.model.objects import FIXED_PRECISION

from fastfeed.exchange import Exchange, ExchangeConfig
from fastfeed.plugins.nautilus import (
    DIGIFINEX,
    STATIC_PRECISIONS,
    DigiFinexDataClient,
    DigiFinexDataClientConfig,
    DigiFinexInstrumentProvider,
    DigiFinexLiveDataClientFactory,
    PrecisionGuard,
    instrument_id,
    make_instrument,
)

SYMS = ["BTC_USDT", "ETH_USDT"]


def run(fn: Callable[[], Awaitable[Any]], timeout: float = 180.0) -> Any:
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


class Recorder(Actor):  # type: ignore[misc]
    """Subscribes what ``kinds`` names for ``symbols`` on start; keeps what arrives."""

    def __init__(self, symbols: list[str], kinds: tuple[str, ...] = ("book", "trades", "quotes")) -> None:
        super().__init__(ActorConfig(component_id="RECORDER"))
        self.symbols = symbols
        self.kinds = kinds
        self.deltas: list[OrderBookDeltas] = []
        self.trades: list[TradeTick] = []
        self.quotes: list[QuoteTick] = []

    def on_start(self) -> None:
        for s in self.symbols:
            iid = instrument_id(s)
            if "book" in self.kinds:
                self.subscribe_order_book_deltas(iid)
            if "trades" in self.kinds:
                self.subscribe_trade_ticks(iid)
            if "quotes" in self.kinds:
                self.subscribe_quote_ticks(iid)

    def on_stop(self) -> None:
        pass

    def on_order_book_deltas(self, deltas: OrderBookDeltas) -> None:
        self.deltas.append(deltas)

    def on_trade_tick(self, tick: TradeTick) -> None:
        self.trades.append(tick)

    def on_quote_tick(self, tick: QuoteTick) -> None:
        self.quotes.append(tick)


class Node:
    """A running TradingNode with the DigiFinex client and a Recorder."""

    def __init__(self, node: TradingNode, rec: Recorder) -> None:
        self.node = node
        self.rec = rec
        engine = node.kernel.data_engine
        self.client: DigiFinexDataClient = engine._clients[ClientId(DIGIFINEX)]
        self.engine = engine

    @property
    def feed(self) -> Any:
        feed = self.client.feed
        assert feed is not None
        return feed

    async def settle(self) -> None:
        """Everything the exchange sent so far has reached nautilus's cache and the actor."""
        await self.feed.ping()  # the reply comes after every push sent before it
        await until(lambda: self.engine.data_qsize() == 0, "an empty data queue")
        await asyncio.sleep(0)

    def book(self, symbol: str) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """nautilus's managed book of ``symbol``: (bids, asks), best first, exact."""
        b = self.node.cache.order_book(instrument_id(symbol))
        assert b is not None
        side = lambda levels: [
            (lv.price.as_decimal(), sum((o.size.as_decimal() for o in lv.orders()), Decimal(0)))
            for lv in levels
        ]
        return side(b.bids()), side(b.asks())


def exact(levels: Any) -> list[tuple[Decimal, Decimal]]:
    """fastfeed / exchange levels (float rows) as exact decimals (``repr``: the decimal the
    double was parsed from, for every value with at most 15 significant digits)."""
    return [(Decimal(repr(p)), Decimal(repr(q))) for p, q in levels.tolist()]


def assert_books_equal(n: Node, ex: Exchange, symbols: list[str]) -> None:
    for s in symbols:
        fb = n.feed.book(s)
        ebids, easks = ex.book(s)
        nbids, nasks = n.book(s)
        assert fb.live, s
        assert len(nbids) > 5 and len(nasks) > 5, s
        assert nbids == exact(fb.bids) == exact(ebids), s
        assert nasks == exact(fb.asks) == exact(easks), s


@contextlib.asynccontextmanager
async def running_node(
    url: str,
    symbols: list[str],
    kinds: tuple[str, ...] = ("book", "trades", "quotes"),
    **client_config: Any,
) -> AsyncIterator[Node]:
    loop = asyncio.get_running_loop()
    config = TradingNodeConfig(
        trader_id="TESTER-001",
        logging=LoggingConfig(log_level="ERROR"),
        timeout_connection=60.0,
        timeout_disconnection=30.0,
        timeout_post_stop=0.0,
        data_clients={DIGIFINEX: DigiFinexDataClientConfig(url=url, **client_config)},
    )
    node = TradingNode(config, loop=loop)
    node.add_data_client_factory(DIGIFINEX, DigiFinexLiveDataClientFactory)
    node.build()
    rec = Recorder(symbols, kinds)
    node.trader.add_actor(rec)
    task = loop.create_task(node.run_async())
    try:
        n = Node(node, rec)
        want = {"book": "depth", "trades": "trades", "quotes": "ticker"}
        await until(
            lambda: (
                n.client.feed is not None
                and all(set(symbols) <= set(n.feed.subscriptions.get(want[k], ())) for k in kinds)
            ),
            "subscribed",
        )
        yield n
    finally:
        await node.stop_async()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        node.kernel.dispose()


async def snapshots(n: Node, ex: Exchange, symbols: list[str]) -> None:
    """Wait for a live book of every symbol (each subscription starts with a snapshot)."""
    await until(lambda: all(n.feed.book(s).live for s in symbols), "live books")
    await n.settle()


# --- the precision guard ------------------------------------------------------------------------


def test_precision_guard_is_exact_and_refuses_extra_digits() -> None:
    g = PrecisionGuard(2, 17_014_118_346_046.0)
    mult = 10 ** (FIXED_PRECISION - 2)
    assert g.raw(60000.12) == 6000012 * mult
    assert g.raw(0.3) == 30 * mult and g.raw(0.0) == 0
    assert g.raw(0.1 + 0.2) == 30 * mult  # one ulp off 0.3: the same decimal
    assert g.raw(17_014_118_346_046.0) == 1_701_411_834_604_600 * mult
    for bad in (60000.125, 0.001, 1e-300, -0.01, -1.0, math.nan, math.inf, -math.inf, 2e13):
        assert g.raw(bad) == -1, bad
    g0 = PrecisionGuard(0, 1e6)
    assert g0.raw(5.0) == 5 * 10**FIXED_PRECISION and g0.raw(5.5) == -1
    g8 = PrecisionGuard(8, 1e6)
    assert g8.raw(0.12345678) == 12345678 * 10 ** (FIXED_PRECISION - 8)
    assert g8.raw(0.123456789) == -1
    # every decimal with at most `precision` decimals passes, and is exact
    for p in range(9):
        gp = PrecisionGuard(p, 1e13)
        for k in (1, 7, 10**p - 1, 123456789, 987654321012):
            x = float(Decimal(k).scaleb(-p))
            assert gp.raw(x) == k * 10 ** (FIXED_PRECISION - p), (p, k)
    with pytest.raises(ValueError):
        PrecisionGuard(FIXED_PRECISION + 1, 1.0)


def test_instruments_carry_the_venues_precisions() -> None:
    p = DigiFinexInstrumentProvider({"foo_usdt": (3, 2), "BTC_USDT": (1, 6)})
    foo = p.for_symbol("FOO_USDT")
    assert foo is not None and foo.id == instrument_id("FOO_USDT")
    assert (foo.price_precision, foo.size_precision) == (3, 2)
    assert str(foo.price_increment) == "0.001" and str(foo.size_increment) == "0.01"
    btc = p.find(instrument_id("btc_usdt"))
    assert btc is not None and (btc.price_precision, btc.size_precision) == (1, 6)  # overridden
    eth = p.for_symbol("ETH_USDT")
    assert eth is not None and (eth.price_precision, eth.size_precision) == STATIC_PRECISIONS["ETH_USDT"]
    assert p.count == len(STATIC_PRECISIONS) + 1
    for bad in ((-1, 2), (2, FIXED_PRECISION + 1), (2.5, 2)):
        with pytest.raises(ValueError):
            make_instrument("X_USDT", *bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        make_instrument("BTCUSDT", 2, 2)  # not BASE_QUOTE
    with pytest.raises(ValueError):
        DigiFinexInstrumentProvider({"BTC_USDT": (2,)})  # type: ignore[dict-item]


def test_a_bad_config_is_refused_where_it_is_written() -> None:
    """The config checks its url, instruments and feed options at construction (they used
    to pass, and fail at node.build() or only in the connect task's log); a symbol spelt
    the cryptofeed / CCXT way is answered with DigiFinex's spelling."""
    with pytest.raises(ValueError, match="BTC_USDT"):
        DigiFinexDataClientConfig(instruments={"BTC-USDT": (2, 6)})
    with pytest.raises(ValueError, match="BTC_USDT"):
        DigiFinexDataClientConfig(instruments={"BTC/USDT": (2, 6)})
    with pytest.raises(ValueError, match="BASE_QUOTE"):
        DigiFinexDataClientConfig(instruments={"BTCUSDT": (2, 6)})
    with pytest.raises(ValueError, match="price_precision, size_precision"):
        DigiFinexDataClientConfig(instruments={"BTC_USDT": 2})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="size precision"):
        DigiFinexDataClientConfig(instruments={"BTC_USDT": (2, -1)})
    with pytest.raises(TypeError, match="dict"):
        DigiFinexDataClientConfig(instruments=[("BTC_USDT", (2, 6))])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        DigiFinexDataClientConfig(url="http://127.0.0.1:1/ws/v1/")
    with pytest.raises(TypeError):
        DigiFinexDataClientConfig(feed_options={"depht": 20})
    cfg = DigiFinexDataClientConfig(instruments={"foo_usdt": (3, 2)}, feed_options={"depth": 20})
    assert cfg.instruments == {"foo_usdt": (3, 2)}


# --- live, through a TradingNode ----------------------------------------------------------------


def test_books_equal_the_feeds_and_the_exchanges_after_a_burst_drops_and_a_resync() -> None:
    async def body() -> None:
        async with (
            Exchange(ExchangeConfig(seed=11, symbols=SYMS, rate=0, book_levels=30)) as ex,
            running_node(ex.url, SYMS, kinds=("book",)) as n,
        ):
            await snapshots(n, ex, SYMS)
            ex.step(3000)
            await n.settle()
            assert_books_equal(n, ex, SYMS)
            first = n.rec.deltas[0]
            assert first.is_snapshot and first.deltas[0].action == BookAction.CLEAR

            for drop in range(1, 4):
                connects = n.feed.stats["connects"]
                ex.faults.drop()
                await until(lambda c=connects: n.feed.stats["connects"] > c, "a reconnect")
                await snapshots(n, ex, SYMS)
                ex.step(500)
                await n.settle()
                assert_books_equal(n, ex, SYMS)

            # each drop: a CLEAR per book (fastfeed's reset), then CLEAR + snapshot
            clears = [d for d in n.rec.deltas if d.deltas[0].action == BookAction.CLEAR]
            assert len(clears) >= 2 + 3 * 2 * 2
            for d in n.rec.deltas:
                flags = [x.flags for x in d.deltas]
                assert flags[-1] & RecordFlag.F_LAST and not any(f & RecordFlag.F_LAST for f in flags[:-1])
                if d.deltas[0].action == BookAction.CLEAR:
                    assert all(f & RecordFlag.F_SNAPSHOT for f in flags)

            # a forced resync (as after a gap in the event rows): CLEAR + fastfeed's book
            n.client._expect = 0  # the next change does not start where the last one ended
            ex.step(200)
            await n.settle()
            assert n.client.stats["gaps"] == 1 and n.client.stats["resyncs"] >= 1
            assert_books_equal(n, ex, SYMS)
            assert n.client.stats["errors"] == 0 and n.client.stats["rejects"] == {}

            # an exception on the frame path: counted, never raised into fastfeed, and the
            # books are rebuilt from the engine (the failed frame's deltas never reached nautilus)
            real = n.client._emit_book
            failed: list[int] = []

            def fail_once(*args: Any) -> None:
                if not failed:
                    failed.append(1)
                    raise RuntimeError("injected")
                real(*args)

            n.client._emit_book = fail_once
            resyncs = n.client.stats["resyncs"]
            ex.step(200)
            await n.settle()
            assert failed and n.client.stats["errors"] == 1 and n.client.stats["resyncs"] > resyncs
            assert n.feed.stats["callback_errors"] == 0
            assert_books_equal(n, ex, SYMS)

    run(body)


def test_trades_and_quotes_arrive_exactly_once_across_drops() -> None:
    async def body() -> None:
        async with (
            Exchange(ExchangeConfig(seed=12, symbols=SYMS, rate=0, trade_replay=20)) as ex,
            running_node(ex.url, SYMS, kinds=("trades", "quotes")) as n,
        ):
            ex.step(1500)
            await n.settle()
            for _ in range(2):  # a resubscription replays recent trades: fastfeed drops them
                connects = n.feed.stats["connects"]
                ex.faults.drop()
                await until(lambda c=connects: n.feed.stats["connects"] > c, "a reconnect")
                await until(
                    lambda: all(s in n.feed.subscriptions.get("trades", ()) for s in SYMS), "resubscribed"
                )
                ex.step(500)
                await n.settle()
            eng = n.feed.engine
            assert eng.stats["duplicate_trades"] > 0  # the replays were there, and dropped

            # trades: exactly the engine's stored trades (ring holds them all), each once
            ring = eng.trades.since(0)
            want = sorted(
                (eng.symbols[r["symbol"]], int(r["id"]), Decimal(repr(float(r["price"]))))
                for r in ring
                if eng.symbols[r["symbol"]] in SYMS
            )
            got = sorted(
                (t.instrument_id.symbol.value, int(t.trade_id.value), t.price.as_decimal())
                for t in n.rec.trades
            )
            assert len(got) > 100 and got == want
            assert len({(s, i) for s, i, _ in got}) == len(got)
            for t in n.rec.trades:
                assert t.size.as_decimal() > 0

            # quotes: one per ticker record of a subscribed symbol, with its values
            hist = eng.ticker_history
            assert hist.count <= hist.capacity
            names = eng.ticker_symbols
            want_q = [
                (names[r["symbol"]], Decimal(repr(float(r["best_bid"]))), Decimal(repr(float(r["best_ask"]))))
                for r in hist.since(0)
                if names[r["symbol"]] in SYMS
            ]
            got_q = [
                (q.instrument_id.symbol.value, q.bid_price.as_decimal(), q.ask_price.as_decimal())
                for q in n.rec.quotes
            ]
            assert len(got_q) > 10 and got_q == want_q
            assert n.client.stats["trades"] == len(got) and n.client.stats["quotes"] == len(got_q)
            assert n.client.stats["rejects"] == {}

    run(body)


def test_values_beyond_the_precision_are_counted_not_rounded() -> None:
    """BTC_USDT configured with 1 price decimal and ETH_USDT with 3 size decimals while the
    venue sends 2 and 4: every value with a further decimal is refused and counted; every
    level nautilus holds is exactly a level of fastfeed's book (a level whose new size was
    refused is withdrawn, not left at its older size), every trade exactly one sent, and the
    correctly configured SOL_USDT is untouched."""
    syms = ["BTC_USDT", "ETH_USDT", "SOL_USDT"]

    async def body() -> None:
        async with (
            Exchange(ExchangeConfig(seed=13, symbols=syms, rate=0)) as ex,
            running_node(
                ex.url, syms, kinds=("book", "trades"), instruments={"BTC_USDT": (1, 4), "ETH_USDT": (2, 3)}
            ) as n,
        ):
            await until(lambda: all(n.feed.book(s).live for s in syms), "live books")
            ex.step(2000)
            await n.settle()
            rejects = n.client.stats["rejects"]
            assert rejects.get("price_precision", 0) > 10 and rejects.get("size_precision", 0) > 10
            assert set(rejects) == {"price_precision", "size_precision"}
            for sym, unit in (
                ("BTC_USDT", (Decimal("0.1"), Decimal("0.0001"))),
                ("ETH_USDT", (Decimal("0.01"), Decimal("0.001"))),
            ):
                nbids, nasks = n.book(sym)
                fb = n.feed.book(sym)
                feed_levels = set(exact(fb.bids)) | set(exact(fb.asks))
                assert nbids and nasks
                for px, qty in nbids + nasks:  # nothing rounded, nothing stale
                    assert (px, qty) in feed_levels, sym
                    assert px == px.quantize(unit[0]) and qty == qty.quantize(unit[1]), sym
            eng = n.feed.engine
            sent = {
                (eng.symbols[r["symbol"]], int(r["id"])): (
                    Decimal(repr(float(r["price"]))),
                    Decimal(repr(float(r["amount"]))),
                )
                for r in eng.trades.since(0)
            }
            assert n.rec.trades
            for t in n.rec.trades:  # each trade delivered is exactly one the venue sent
                key = (t.instrument_id.symbol.value, int(t.trade_id.value))
                assert sent[key] == (t.price.as_decimal(), t.size.as_decimal())
            assert_books_equal(n, ex, ["SOL_USDT"])

    run(body)


def test_unsubscribe_stops_the_instrument_and_unknown_instruments_are_refused() -> None:
    async def body() -> None:
        async with (
            Exchange(ExchangeConfig(seed=14, symbols=SYMS, rate=0)) as ex,
            running_node(ex.url, SYMS, kinds=("book", "trades")) as n,
        ):
            await snapshots(n, ex, SYMS)
            btc = instrument_id("BTC_USDT")
            n.rec.unsubscribe_order_book_deltas(btc)
            n.rec.unsubscribe_trade_ticks(btc)
            await until(lambda: "BTC_USDT" not in n.feed.subscriptions.get("depth", ()), "unsubscribed")
            await until(lambda: "BTC_USDT" not in n.feed.subscriptions.get("trades", ()), "unsubscribed")
            await n.settle()
            before = len(n.rec.deltas), len(n.rec.trades)
            ex.step(1000)
            await n.settle()
            assert all(d.instrument_id != btc for d in n.rec.deltas[before[0] :])
            assert all(t.instrument_id != btc for t in n.rec.trades[before[1] :])
            assert len(n.rec.deltas) > before[0]  # ETH_USDT goes on

            n.rec.subscribe_trade_ticks(instrument_id("NOPE_USDT"))  # no precisions known
            await n.settle()
            assert "NOPE_USDT" not in n.feed.subscriptions.get("trades", ())
            assert n.client.stats["refused"] == 1
            n.rec.subscribe_trade_ticks(InstrumentId.from_str("BTC-USDT.DIGIFINEX"))  # wrong form
            await n.settle()
            assert n.client.stats["refused"] == 2
            assert not any("-" in s for s in n.feed.subscriptions.get("trades", ()))

    run(body)
