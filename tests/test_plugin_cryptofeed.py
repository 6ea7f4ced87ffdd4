"""The cryptofeed plugin (``plugins/cryptofeed``, the ``fastfeed-cryptofeed`` package):
``fastfeed.plugins.cryptofeed.DigiFinex`` run by cryptofeed's ``FeedHandler`` against the
bundled exchange on 127.0.0.1 port 0.

cryptofeed 3.0 needs Python >= 3.13: these tests skip where it is not installed (the main
venv) and run in CI's plugin job (ci/plugin-cryptofeed.sh, which sets
FASTFEED_REQUIRE_CRYPTOFEED=1 so that a missing cryptofeed fails instead of skipping).
Verdicts are counts and states; timeouts are hang guards only.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fastfeed.exchange import Exchange, ExchangeConfig

from helpers import run_guarded, until

ROOT = Path(__file__).resolve().parent.parent
SYMS = ["BTC_USDT", "ETH_USDT"]
STD = ["BTC-USDT", "ETH-USDT"]
#: cryptofeed's FeedHandler logs to ./feedhandler.log unless told not to
CF_CONFIG = {"log": {"disabled": True}, "uvloop": False}

run = functools.partial(run_guarded, no_tasks_left=True)


def test_the_plugin_is_not_part_of_the_mit_wheel() -> None:
    """fastfeed's package list (the MIT wheel) leaves the AGPL plugin out; the plugin's own
    project is AGPL-3.0-or-later, installs only fastfeed.plugins.cryptofeed and pins
    cryptofeed to one minor version."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    main = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pkgs = main["tool"]["setuptools"]["packages"]
    assert not any("cryptofeed" in p for p in pkgs)
    assert not (ROOT / "fastfeed" / "plugins" / "cryptofeed").exists()
    assert not any(
        "cryptofeed" in d for deps in main["project"]["optional-dependencies"].values() for d in deps
    )
    plugin = tomllib.loads((ROOT / "plugins" / "cryptofeed" / "pyproject.toml").read_text())
    assert plugin["project"]["license"] == "AGPL-3.0-or-later"
    assert plugin["tool"]["setuptools"]["packages"] == ["fastfeed.plugins.cryptofeed"]
    assert "cryptofeed==3.0.*" in plugin["project"]["dependencies"]
    lic = (ROOT / "plugins" / "cryptofeed" / "LICENSE").read_text()
    assert "GNU AFFERO GENERAL PUBLIC LICENSE" in lic and "Bryant Moscon" in lic


def test_a_plugin_installed_outside_fastfeeds_tree_is_found(tmp_path: Path) -> None:
    """A plugin package installs into site-packages/fastfeed/plugins/NAME; with fastfeed
    imported from another directory (an editable install, the source tree) that directory
    is outside fastfeed's package, and ``pkgutil.extend_path`` alone (it searches only the
    parent package's path) does not find it. fastfeed.plugins looks on sys.path too."""
    plug = tmp_path / "fastfeed" / "plugins" / "fakeplug"
    plug.mkdir(parents=True)
    (plug / "__init__.py").write_text("NAME = 'fakeplug'\n")
    code = (
        "import fastfeed, fastfeed.plugins.fakeplug as p; "
        "assert fastfeed.__file__.startswith(%r), fastfeed.__file__; print(p.NAME)" % str(ROOT)
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp_path)]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "fakeplug"


#: a child process where ``fastfeed`` is what an editable install plus the plugin give a
#: program started outside the clone: SITE (first on the path) holds only
#: fastfeed/plugins/cryptofeed, so ``import fastfeed`` finds a namespace package, and fastfeed
#: itself is reachable only through a finder after PathFinder (as setuptools' editable one)
_SHADOWED = """
import os, sys
from importlib.machinery import PathFinder
ROOT, SITE = sys.argv[1], sys.argv[2]
def regular(p):  # holds a regular fastfeed package (the clone, an installed fastfeed)
    return os.path.isfile(os.path.join(p or os.curdir, "fastfeed", "__init__.py"))

sys.path[:] = [SITE] + [p for p in sys.path if not regular(p)]
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]

class Editable:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name == "fastfeed" or name.startswith("fastfeed."):
            return PathFinder.find_spec(name, [os.path.join(ROOT, *name.split(".")[:-1])])
        return None

sys.meta_path.append(Editable)
"""


def _shadowed_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    shutil.copytree(
        ROOT / "plugins" / "cryptofeed" / "src" / "fastfeed" / "plugins" / "cryptofeed",
        site / "fastfeed" / "plugins" / "cryptofeed",
    )
    return site


def _run_shadowed(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    site = _shadowed_site(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-c", _SHADOWED + code, str(ROOT), str(site)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_plugin_hiding_an_editable_fastfeed_says_what_to_do(tmp_path: Path) -> None:
    """With fastfeed editable and the plugin in site-packages/fastfeed, a program outside the
    clone gets a namespace ``fastfeed``: importing the plugin says so and what to do (it
    used to import, and fail later with "module 'fastfeed' has no attribute 'Feed'" inside
    cryptofeed's connection handler)."""
    out = _run_shadowed(
        tmp_path,
        "import fastfeed\nassert getattr(fastfeed, '__file__', None) is None, fastfeed\n"
        "try:\n    import fastfeed.plugins.cryptofeed\nexcept ImportError as exc:\n    print(exc)\n",
    )
    assert out.returncode == 0, out.stderr
    msg = out.stdout
    assert "empty namespace package" in msg and "editable" in msg, msg
    assert "pip install . ./plugins/cryptofeed" in msg and "PYTHONPATH" in msg, msg


def test_the_fastfeed_command_says_what_to_do_when_a_plugin_hides_it(tmp_path: Path) -> None:
    """The same state breaks the ``fastfeed`` command (its script runs outside the clone):
    one line saying why and what to do, not an ImportError traceback."""
    out = _run_shadowed(tmp_path, "from fastfeed.cli import main\nsys.exit(main(['--version']))\n")
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    assert "empty namespace package" in out.stderr and "pip install . ./plugins/cryptofeed" in out.stderr


@pytest.fixture
def cf() -> Iterator[Any]:
    """The plugin module (skips without cryptofeed, unless the CI job requires it), with
    cryptofeed's process-wide symbol table cleared before and after the test."""
    if os.environ.get("FASTFEED_REQUIRE_CRYPTOFEED") == "1":
        import cryptofeed  # noqa: F401  # the plugin job must really run these tests
    else:
        pytest.importorskip("cryptofeed")
    from cryptofeed.symbols import Symbols

    import fastfeed.plugins.cryptofeed as plugin

    Symbols.clear()
    plugin.DigiFinex._known.clear()
    yield plugin
    Symbols.clear()
    plugin.DigiFinex._known.clear()


# -- helpers ---------------------------------------------------------------------------------


class Recorder:
    """Async callbacks for L2_BOOK, TRADES and TICKER that keep what arrived, and a book per
    symbol rebuilt only from the callbacks (snapshot when ``delta is None``, else the
    delta): it checks the deltas, not only cryptofeed's shared OrderBook object."""

    def __init__(self) -> None:
        self.books: dict[str, tuple[dict[Any, Any], dict[Any, Any]]] = {}
        self.snapshots: collections.Counter[str] = collections.Counter()
        self.deltas = 0
        self.trades: list[Any] = []
        self.tickers: list[Any] = []
        self.values: list[Any] = []  # every price and amount handed out
        self.gate = asyncio.Event()
        self.gate.set()

    async def book(self, book: Any, receipt: float) -> None:
        from cryptofeed.defines import ASK, BID

        await self.gate.wait()
        if book.delta is None:
            self.snapshots[book.symbol] += 1
            self.books[book.symbol] = (book.book.bids.to_dict(), book.book.asks.to_dict())
            self.values += [*self.books[book.symbol][0].items(), *self.books[book.symbol][1].items()]
            return
        self.deltas += 1
        bids, asks = self.books[book.symbol]
        for side, levels in ((BID, bids), (ASK, asks)):
            for px, qty in book.delta[side]:
                self.values.append((px, qty))
                if qty == 0:
                    del levels[px]
                else:
                    levels[px] = qty

    async def trade(self, trade: Any, receipt: float) -> None:
        await self.gate.wait()
        self.trades.append(trade)
        self.values.append((trade.price, trade.amount))

    async def ticker(self, ticker: Any, receipt: float) -> None:
        await self.gate.wait()
        self.tickers.append(ticker)
        self.values.append((ticker.bid, ticker.ask))

    def callbacks(self) -> dict[str, Any]:
        from cryptofeed.defines import L2_BOOK, TICKER, TRADES

        return {L2_BOOK: self.book, TRADES: self.trade, TICKER: self.ticker}


def sorted_levels(levels: dict[Any, Any], bids: bool) -> list[tuple[float, float]]:
    return sorted(((float(p), float(q)) for p, q in levels.items()), reverse=bids)


def check_books(dg: Any, rec: Recorder, ex: Exchange) -> None:
    """cryptofeed's books (the feed's OrderBook and the one rebuilt from the callbacks)
    equal fastfeed's and the exchange's, level by level."""
    feed = dg.fastfeed
    for sym, std in zip(SYMS, STD):
        ff_bids, ff_asks = (a.tolist() for a in feed.book(sym).snapshot())
        ex_bids, ex_asks = (a.tolist() for a in ex.book(sym))
        assert ff_bids == ex_bids and ff_asks == ex_asks, sym
        ob = dg._l2_book[std].book
        assert [(float(p), float(q)) for p, q in ob.bids.to_list()] == [tuple(x) for x in ff_bids]
        assert [(float(p), float(q)) for p, q in ob.asks.to_list()] == [tuple(x) for x in ff_asks]
        bids, asks = rec.books[std]
        assert sorted_levels(bids, True) == [tuple(x) for x in ff_bids], std
        assert sorted_levels(asks, False) == [tuple(x) for x in ff_asks], std


def check_trades_once(dg: Any, rec: Recorder) -> None:
    """Every trade fastfeed stored reached cryptofeed exactly once, in order."""
    feed = dg.fastfeed
    ring = feed.trades.latest()
    names = feed.engine.symbols
    stored = [
        (names[s].replace("_", "-"), str(i)) for s, i in zip(ring["symbol"].tolist(), ring["id"].tolist())
    ]
    got = [(t.symbol, t.id) for t in rec.trades]
    assert len(set(got)) == len(got), "a trade arrived twice"
    assert got == stored
    assert all(t.exchange == "DIGIFINEX" and t.side in ("buy", "sell") for t in rec.trades)


def check_tickers_once(dg: Any, rec: Recorder) -> None:
    feed = dg.fastfeed
    hist = feed.engine.ticker_history.latest()
    names = feed.engine.ticker_symbols
    stored = [
        (names[s].replace("_", "-"), b, a)
        for s, b, a in zip(hist["symbol"].tolist(), hist["best_bid"].tolist(), hist["best_ask"].tolist())
    ]
    got = [(t.symbol, float(t.bid), float(t.ask)) for t in rec.tickers]
    assert got == stored


def caught_up(dg: Any) -> bool:
    """The plugin has handed out everything fastfeed applied."""
    feed, conn = dg.fastfeed, dg._conn
    if feed is None or conn is None:
        return False
    return (
        not conn._q
        and dg._ev_next == feed.engine.events.count
        and dg._tk_next == feed.engine.ticker_history.count
    )


def books_equal_exchange(dg: Any, ex: Exchange) -> bool:
    feed = dg.fastfeed
    for sym in SYMS:
        if sym not in feed.engine.books or not feed.book(sym).live:
            return False
        ours, theirs = feed.book(sym).snapshot(), ex.book(sym)
        if any(a.tolist() != b.tolist() for a, b in zip(ours, theirs)):
            return False
    return True


def subscribed(dg: Any) -> bool:
    """The server acknowledged every subscription of the feed."""
    feed = dg.fastfeed
    return (
        feed is not None
        and feed.connected
        and all(set(syms) <= feed._acked[ch] for ch, syms in dg.subscription.items())
    )


async def with_feed(dg: Any, body: Callable[[], Awaitable[None]]) -> None:
    """Run ``dg`` under cryptofeed's FeedHandler (its life cycle: backends start and stop
    with the feed) around ``body``."""
    from cryptofeed import FeedHandler

    fh = FeedHandler(config=CF_CONFIG)
    fh.add_feed(dg)
    task = asyncio.create_task(fh.run_async(install_signal_handlers=False))
    try:
        await until(lambda: task.done() or subscribed(dg), "connected and subscribed")
        if task.done():
            task.result()
        await body()
    finally:
        fh.request_stop()
        await task


def exchange(**kw: Any) -> Exchange:
    cfg: dict[str, Any] = dict(symbols=SYMS, seed=5, rate=0.0, snapshot_interval=None)
    cfg.update(kw)
    return Exchange(ExchangeConfig(**cfg))


def make_feed(cf: Any, url: str, rec: Recorder, **kw: Any) -> Any:
    from cryptofeed.defines import L2_BOOK, TICKER, TRADES

    return cf.DigiFinex(
        symbols=STD, channels=[L2_BOOK, TRADES, TICKER], callbacks=rec.callbacks(), url=url, **kw
    )


def check_numeric(rec: Recorder, numeric: type) -> None:
    assert rec.values
    assert all(type(v) is numeric for pair in rec.values for v in pair)
    if numeric is Decimal:  # Decimal(repr(float)): the shortest decimal, as sent
        assert all(v == Decimal(repr(float(v))) for pair in rec.values for v in pair)


# -- tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("numeric", [Decimal, float])
def test_books_trades_tickers_after_a_burst(cf: Any, numeric: type) -> None:
    rec = Recorder()

    async def body() -> None:
        async with exchange() as ex:
            dg = make_feed(cf, ex.url, rec, numeric=numeric)

            async def burst() -> None:
                await until(lambda: books_equal_exchange(dg, ex), "snapshots")
                for _ in range(4):
                    ex.step(500)
                    await asyncio.sleep(0)
                await until(lambda: books_equal_exchange(dg, ex), "fastfeed's books equal the exchange's")
                await until(lambda: caught_up(dg), "the plugin caught up")
                check_books(dg, rec, ex)
                check_trades_once(dg, rec)
                check_tickers_once(dg, rec)

            await with_feed(dg, burst)
            assert dg._conn is None and dg.stats["resyncs"] == 0

    run(body)
    assert rec.deltas > 100 and len(rec.trades) > 50 and rec.tickers
    assert rec.snapshots == {"BTC-USDT": 1, "ETH-USDT": 1}
    check_numeric(rec, numeric)


def test_forced_drops_resnapshot_and_trades_arrive_once(cf: Any) -> None:
    """fastfeed reconnects (one layer); each new connection empties the books silently and
    the server's snapshot is a cryptofeed snapshot; the trades the server replays after a
    resubscribe are not delivered again."""
    rec = Recorder()
    drops = 3

    async def body() -> None:
        async with exchange(trade_replay=20) as ex:
            from fastfeed import FeedOptions

            dg = make_feed(cf, ex.url, rec, options=FeedOptions(backoff_initial=0.05, backoff_max=0.2))

            async def burst() -> None:
                feed = dg.fastfeed
                await until(lambda: books_equal_exchange(dg, ex), "snapshots")
                for k in range(drops):
                    ex.step(400)
                    await until(lambda: books_equal_exchange(dg, ex), "books before the drop")
                    ex.faults.drop()
                    want = k + 2
                    await until(lambda: feed.stats["connects"] == want, "reconnected")  # noqa: B023
                    await until(lambda: books_equal_exchange(dg, ex), "books after the drop")
                ex.step(400)
                await until(lambda: books_equal_exchange(dg, ex), "books at the end")
                await until(lambda: caught_up(dg), "the plugin caught up")
                check_books(dg, rec, ex)
                check_trades_once(dg, rec)
                check_tickers_once(dg, rec)
                assert feed.stats["connects"] == drops + 1
                assert feed.engine.stats["duplicate_trades"] > 0  # the server did replay trades

            await with_feed(dg, burst)
            # cryptofeed's handler saw one connection: fastfeed kept it through the drops
            assert dg.stats["resyncs"] == 0

    run(body)
    assert rec.snapshots == {"BTC-USDT": drops + 1, "ETH-USDT": drops + 1}


def test_a_reader_that_falls_behind_the_queue_reads_the_rows_back(cf: Any) -> None:
    """The queue of changes drops the oldest past queue_size: the rows come back from the
    event log, so books, trades and tickers are still complete and exactly once."""
    rec = Recorder()

    async def body() -> None:
        async with exchange() as ex:
            from fastfeed import FeedOptions

            dg = make_feed(cf, ex.url, rec, options=FeedOptions(queue_size=4))

            async def burst() -> None:
                await until(lambda: books_equal_exchange(dg, ex), "snapshots")
                rec.gate.clear()  # the callbacks block: cryptofeed's handler stops reading
                ex.step(300)
                await until(lambda: books_equal_exchange(dg, ex), "fastfeed went on")
                assert dg._conn.dropped > 0
                rec.gate.set()
                await until(lambda: caught_up(dg), "the plugin caught up")
                check_books(dg, rec, ex)
                check_trades_once(dg, rec)
                check_tickers_once(dg, rec)

            await with_feed(dg, burst)
            assert dg.stats["gap_fills"] > 0 and dg.stats["resyncs"] == 0

    run(body)


def test_a_reader_that_falls_behind_the_event_log_resyncs_every_book(cf: Any) -> None:
    """The event log overwrote rows the reader had not read: every book is rebuilt from
    feed.resync() and delivered as a snapshot; cryptofeed's books equal fastfeed's again,
    no trade arrives twice, the lost rows are counted."""
    rec = Recorder()

    async def body() -> None:
        async with exchange() as ex:
            from fastfeed import FeedOptions

            dg = make_feed(cf, ex.url, rec, options=FeedOptions(event_log=256, queue_size=64))

            async def burst() -> None:
                await until(lambda: books_equal_exchange(dg, ex), "snapshots")
                before = sum(rec.snapshots.values())
                rec.gate.clear()
                ex.step(1500)
                await until(lambda: books_equal_exchange(dg, ex), "fastfeed went on")
                rec.gate.set()
                await until(lambda: caught_up(dg), "the plugin caught up")
                check_books(dg, rec, ex)
                got = [(t.symbol, t.id) for t in rec.trades]
                assert len(set(got)) == len(got)
                assert sum(rec.snapshots.values()) >= before + len(SYMS)
                # small steps the reader keeps up with go on as deltas
                deltas, resyncs = rec.deltas, dg.stats["resyncs"]
                for _ in range(10):
                    ex.step(5)
                    await until(lambda: books_equal_exchange(dg, ex), "after the resync")
                    await until(lambda: caught_up(dg), "caught up again")
                assert dg.stats["resyncs"] == resyncs
                check_books(dg, rec, ex)
                assert rec.deltas > deltas

            await with_feed(dg, burst)
            assert dg.stats["resyncs"] >= 1 and dg.stats["lost_rows"] > 0

    run(body)


def test_an_exception_in_a_callback_is_counted_and_the_connection_restarts(cf: Any) -> None:
    """A callback that raises: counted in stats["callback_errors"]; cryptofeed's handler
    restarts the connection (retries allowing): a new fastfeed feed, fresh snapshots, books
    equal the exchange's again. With the default retries=0 the feed stops with
    ExhaustedRetries instead of going on silently."""
    from cryptofeed.exceptions import ExhaustedRetries

    rec = Recorder()
    raised = []
    book_cb = rec.book

    async def flaky_book(book: Any, receipt: float) -> None:
        if book.delta is not None and not raised:
            raised.append(book.symbol)
            raise RuntimeError("a bug in the user's callback")
        await book_cb(book, receipt)

    rec.book = flaky_book  # type: ignore[method-assign]

    async def body() -> None:
        async with exchange() as ex:
            dg = make_feed(cf, ex.url, rec, retries=2)

            async def flow() -> None:
                first = dg.fastfeed
                await until(lambda: books_equal_exchange(dg, ex), "snapshots")
                ex.step(200)
                await until(lambda: dg.stats["callback_errors"] == 1, "the callback raised")
                await until(lambda: dg.fastfeed is not None and dg.fastfeed is not first, "restarted")
                await until(lambda: subscribed(dg), "subscribed again")
                ex.step(200)
                await until(lambda: books_equal_exchange(dg, ex), "books after the restart")
                await until(lambda: caught_up(dg), "the plugin caught up")
                check_books(dg, rec, ex)
                assert first.closed

            await with_feed(dg, flow)
            assert dg.stats["callback_errors"] == 1

            # retries=0 (the default): the first exception stops the feed, loudly
            raised.clear()
            dg0 = make_feed(cf, ex.url, rec)
            from cryptofeed import FeedHandler

            fh = FeedHandler(config=CF_CONFIG)
            fh.add_feed(dg0)
            task = asyncio.create_task(fh.run_async(install_signal_handlers=False))
            await until(lambda: task.done() or subscribed(dg0), "connected")
            ex.step(200)
            await until(lambda: task.done(), "the feed stopped")
            with pytest.raises(BaseException) as info:
                task.result()
            exc = info.value  # FeedHandler's TaskGroup wraps it in an ExceptionGroup
            while len(getattr(exc, "exceptions", ())) == 1:
                exc = exc.exceptions[0]  # type: ignore[attr-defined]
            assert isinstance(exc, ExhaustedRetries), info.value
            assert dg0.stats["callback_errors"] == 1

    run(body)
    assert raised


def test_backends_start_and_stop_with_the_feed(cf: Any) -> None:
    """cryptofeed's Feed._run life cycle is kept: a backend's stop() runs at shutdown and
    the fastfeed connection is closed with the feed."""
    from cryptofeed.defines import TRADES

    class Backend:
        def __init__(self) -> None:
            self.stopped = 0
            self.items: list[Any] = []

        async def __call__(self, obj: Any, receipt: float) -> None:
            self.items.append(obj)

        async def stop(self) -> bool:
            self.stopped += 1
            return False

    backend = Backend()
    holder: dict[str, Any] = {}

    async def body() -> None:
        async with exchange() as ex:
            dg = cf.DigiFinex(
                symbols=["BTC-USDT"], channels=[TRADES], callbacks={TRADES: backend}, url=ex.url
            )

            async def flow() -> None:
                holder["feed"] = dg.fastfeed
                ex.step(300)
                await until(lambda: len(backend.items) > 0, "trades")

            await with_feed(dg, flow)

    run(body)
    assert backend.stopped == 1
    assert holder["feed"].closed


def test_symbols_normalise_both_ways_offline(
    cf: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptofeed.defines import L2_BOOK
    from cryptofeed.exceptions import UnsupportedSymbol
    from cryptofeed.symbols import Symbols

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cf.exchange_symbol("BTC-USDT") == "BTC_USDT"
    assert cf.exchange_symbol("btc_usdt") == "BTC_USDT"
    assert cf.std_symbol("BTC_USDT") == "BTC-USDT"
    assert cf.std_symbol("eth-usdt") == "ETH-USDT"
    for bad in ("BTCUSDT", "BTC-", "-USDT", "BTC-USDT-PERP", "BTC USDT-X", ""):
        with pytest.raises(ValueError):
            cf.exchange_symbol(bad)
    with pytest.raises(TypeError):
        cf.exchange_symbol(b"BTC_USDT")

    async def noop(obj: Any, receipt: float) -> None:
        pass

    # either spelling in symbols=; the subscription holds DigiFinex's names
    dg = cf.DigiFinex(symbols=["BTC-USDT", "eth_usdt"], channels=[L2_BOOK], callbacks={L2_BOOK: noop})
    assert dg.subscription == {"depth": ["BTC_USDT", "ETH_USDT"]}
    assert dg.std_symbol_to_exchange_symbol("ETH-USDT") == "ETH_USDT"
    assert dg.exchange_symbol_to_std_symbol("BTC_USDT") == "BTC-USDT"
    with pytest.raises(UnsupportedSymbol):
        dg.std_symbol_to_exchange_symbol("SOL-USDT")  # not in the static instrument list
    # instruments= widens the static list; the class lists every known symbol, no REST
    cf.DigiFinex(
        symbols=["BTC-USDT"], channels=[L2_BOOK], callbacks={L2_BOOK: noop}, instruments=["SOL_USDT"]
    )
    assert sorted(cf.DigiFinex.symbols()) == ["BTC-USDT", "ETH-USDT", "SOL-USDT"]
    # a cleared process-wide symbol table is filled again when the feed starts
    Symbols.clear()
    asyncio.run(dg._setup())
    assert dg.subscription == {"depth": ["BTC_USDT", "ETH_USDT"]}
    assert not (tmp_path / "cryptofeed").exists()  # no symbol cache written


def test_bad_arguments_are_refused_at_once(cf: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptofeed.defines import L2_BOOK

    async def noop(obj: Any, receipt: float) -> None:
        pass

    kw: dict[str, Any] = dict(symbols=["BTC-USDT"], channels=[L2_BOOK], callbacks={L2_BOOK: noop})
    with pytest.raises(ValueError, match="numeric"):
        cf.DigiFinex(numeric=int, **kw)
    with pytest.raises(ValueError):
        cf.DigiFinex(url="http://127.0.0.1/", **kw)
    with pytest.raises(TypeError):
        cf.DigiFinex(options={"depth": 5}, **kw)
    with pytest.raises(TypeError):
        cf.DigiFinex(instruments="BTC_USDT", **kw)
    with pytest.raises(TypeError):
        cf.DigiFinex(symbols="BTC-USDT", channels=[L2_BOOK], callbacks={L2_BOOK: noop})
    with pytest.raises(ValueError):
        cf.DigiFinex(symbols=["BTCUSDT"], channels=[L2_BOOK], callbacks={L2_BOOK: noop})
    monkeypatch.setattr(cf._digifinex, "COMPILED_WITH_ASSERTIONS", True)
    with pytest.raises(ValueError, match="assert"):
        cf.DigiFinex(numeric=float, **kw)
    cf.DigiFinex(numeric=Decimal, **kw)  # Decimal is always accepted
