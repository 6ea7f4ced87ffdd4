"""Offline tests of the local exchange's building blocks: market simulation, book oracle,
private simulation, wire helpers and configuration. No sockets."""

from __future__ import annotations

import random
import zlib
from collections import Counter
from decimal import Decimal

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastfeed.exchange import (
    AccountSim,
    BookSet,
    ExchangeConfig,
    Market,
    SimBook,
    SymbolSpec,
    accounts_from_env,
    auth_params,
    sign_auth,
    ws_frame,
    zlib_compress,
)
from fastfeed.exchange.market import CH_DEPTH, CH_TICKER, CH_TRADES, TRADE_IDS_PER_MS, _fmt, first_trade_id
from fastfeed.exchange.wire import encode_json, error_envelope

SEED = 20240501


def _feed_all(market: Market, frames: list, books: BookSet) -> Counter:
    methods: Counter = Counter()
    for _key, _clean, payload in frames:
        msg = orjson.loads(payload)
        methods[msg["method"]] += 1
        books.feed(msg)
    return methods


def _start_books(market: Market) -> BookSet:
    books = BookSet(depth=200)
    for i in range(market.nsym):
        books.feed(orjson.loads(market.snapshot(i)[2]))
    return books


@pytest.mark.parametrize("seed", [SEED, SEED + 1])
def test_market_pushes_rebuild_the_exchange_book_exactly(seed: int) -> None:
    print("seed", seed)
    m = Market(ExchangeConfig(seed=seed))
    books = _start_books(m)
    frames = m.generate(20000, now=1_700_000_000.0)
    methods = _feed_all(m, frames, books)
    total = sum(methods.values())
    assert methods["depth.update"] / total > 0.6
    assert 0.15 < methods["trades.update"] / total < 0.35
    assert 0.02 < methods["ticker.update"] / total < 0.1
    for sym in m.symbols:
        bids, asks = m.book(sym)
        assert bids.shape == asks.shape == (m.levels, 2)
        np.testing.assert_array_equal(bids, books[sym].bids)
        np.testing.assert_array_equal(asks, books[sym].asks)
        assert bids[0, 0] < asks[0, 0]
        assert np.all(np.diff(bids[:, 0]) < 0) and np.all(np.diff(asks[:, 0]) > 0)
        assert np.all(bids[:, 1] > 0) and np.all(asks[:, 1] > 0) and np.all(bids[:, 0] > 0)
        # a realistic book: tight spread around the mid
        mid = m.mid_price(m.index[sym])
        assert bids[0, 0] < mid < asks[0, 0]
        assert (asks[0, 0] - bids[0, 0]) / mid < 0.002


def test_market_is_deterministic_for_a_seed_and_start_time() -> None:
    a = Market(ExchangeConfig(seed=SEED), start_time=1_700_000_000.0).generate(500, now=1.0)
    b = Market(ExchangeConfig(seed=SEED), start_time=1_700_000_000.0).generate(500, now=1.0)
    c = Market(ExchangeConfig(seed=SEED + 1), start_time=1_700_000_000.0).generate(500, now=1.0)
    d = Market(ExchangeConfig(seed=SEED, first_trade_id=5), start_time=1.0).generate(500, now=1.0)
    e = Market(ExchangeConfig(seed=SEED, first_trade_id=5), start_time=2.0).generate(500, now=1.0)
    assert a == b and d == e
    assert a != c


def test_first_trade_id_grows_with_the_start_time_and_depends_on_the_seed() -> None:
    t0 = 1_700_000_000.0
    for seed in (0, 1, SEED, 2**40):
        m = Market(ExchangeConfig(seed=seed), start_time=t0)
        assert m.first_trade_id == first_trade_id(seed, t0) == m.next_trade_id
        assert int(t0 * 1000) * TRADE_IDS_PER_MS <= m.first_trade_id < (int(t0 * 1000) + 1) * TRADE_IDS_PER_MS
        # a run that served fewer than TRADE_IDS_PER_MS ids per millisecond, restarted later
        # on the same seed, starts above all of them
        for later_ms in (1, 2, 1000):
            served = later_ms * TRADE_IDS_PER_MS - 1
            assert first_trade_id(seed, t0 + later_ms / 1000) > m.first_trade_id + served - 1
    assert len({first_trade_id(s, t0) for s in range(50)}) > 40  # the seed moves the start
    assert first_trade_id(1, 4_000_000_000.0) < 2**53  # exact as a double for a long time
    m = Market(ExchangeConfig(seed=1, first_trade_id=3_282_939_928))
    assert m.next_trade_id == 3_282_939_928
    for bad in (-1, 2**62, 1.5, True, "7"):
        with pytest.raises(ValueError):
            ExchangeConfig(first_trade_id=bad)  # type: ignore[arg-type]


def test_routing_keys_and_shapes() -> None:
    m = Market(ExchangeConfig(seed=SEED, symbols=["BTC_USDT", "eth_usdt"]))
    assert m.symbols == ("BTC_USDT", "ETH_USDT")
    for key, clean, payload in m.generate(2000, now=1_700_000_000.5):
        msg = orjson.loads(payload)
        ch, i = divmod(key, m.nsym)
        assert msg["id"] is None and not clean
        if ch == CH_DEPTH:
            assert msg["method"] == "depth.update"
            flag, levels, sym = msg["params"]
            assert flag is False and sym == m.symbols[i]
            assert set(levels) == {"asks", "bids"}
            for px, amt in levels["asks"] + levels["bids"]:
                assert isinstance(px, str) and isinstance(amt, str)
                assert float(px) > 0 and float(amt) >= 0
        elif ch == CH_TRADES:
            flag, trades, sym = msg["params"]
            assert flag is False and sym == m.symbols[i] and 1 <= len(trades) <= 3
            for t in trades:
                assert set(t) == {"id", "time", "price", "amount", "type"}
                assert t["type"] in ("buy", "sell") and t["id"] > 2**31
                assert t["time"] == 1_700_000_000.5
        else:
            assert ch == CH_TICKER and msg["method"] == "ticker.update"
            (ticker,) = msg["params"]
            assert ticker["symbol"] == m.symbols[i]
            assert set(ticker) == {
                "symbol",
                "open_24h",
                "high_24h",
                "low_24h",
                "base_volume_24h",
                "quote_volume_24h",
                "last",
                "last_qty",
                "best_bid",
                "best_bid_size",
                "best_ask",
                "best_ask_size",
                "timestamp",
            }
            assert ticker["timestamp"] == 1_700_000_000_500
            assert float(ticker["best_bid"]) < float(ticker["best_ask"])
            assert Decimal(ticker["high_24h"]) >= Decimal(ticker["last"]) >= Decimal(ticker["low_24h"])
            assert Decimal(ticker["high_24h"]) >= Decimal(ticker["open_24h"]) >= Decimal(ticker["low_24h"])


def test_trade_ids_increase_and_pushes_are_newest_first() -> None:
    m = Market(ExchangeConfig(seed=SEED, symbols=["BTC_USDT"], trade_replay=5))
    last = -1
    seen = []
    for _key, _clean, payload in m.generate(3000, now=1.0):
        msg = orjson.loads(payload)
        if msg["method"] != "trades.update":
            continue
        ids = [t["id"] for t in msg["params"][1]]
        assert ids == sorted(ids, reverse=True)
        assert ids[-1] == last + 1 or last == -1
        last = ids[0]
        seen.extend(reversed(msg["params"][1]))
    replay = m.recent_trades("BTC_USDT")
    assert [t["id"] for t in replay] == [t["id"] for t in reversed(seen[-5:])]
    _key, clean, payload = m.trades_snapshot(0)
    msg = orjson.loads(payload)
    assert clean and msg["params"][0] is True and msg["params"][1] == replay


def test_trades_walk_the_book() -> None:
    m = Market(ExchangeConfig(seed=SEED, symbols=["ETH_USDT"]))
    books = _start_books(m)
    checked = 0
    for _key, _clean, payload in m.generate(4000, now=1.0):
        msg = orjson.loads(payload)
        if msg["method"] == "trades.update":
            book = books["ETH_USDT"]
            trades = list(reversed(msg["params"][1]))  # execution order
            side = book.asks if trades[0]["type"] == "buy" else book.bids
            for j, t in enumerate(trades):  # each trade at the next level, best first
                assert float(t["price"]) == side[j, 0]
                assert float(t["amount"]) <= side[j, 1]
            checked += 1
        books.feed(msg)
    assert checked > 100


def test_live_level_order_and_shuffle() -> None:
    m = Market(ExchangeConfig(seed=SEED, symbols=["BTC_USDT"]))
    snap = orjson.loads(m.snapshot(0)[2])["params"][1]
    ask_px = [float(p) for p, _ in snap["asks"]]
    assert ask_px == sorted(ask_px, reverse=True)  # like live A2/A4: asks descending
    for _k, _c, payload in m.generate(200, now=1.0):
        msg = orjson.loads(payload)
        if msg["method"] != "depth.update":
            continue
        for side in ("asks", "bids"):
            levels = msg["params"][1][side]
            ups = [float(p) for p, a in levels if float(a) > 0]
            dels = [float(p) for p, a in levels if float(a) == 0]
            assert [float(p) for p, _ in levels] == ups + dels  # upserts first (A3)
            assert ups == sorted(ups, reverse=True) and dels == sorted(dels, reverse=True)
    m.shuffle_levels = True
    books = _start_books(m)
    unordered = 0
    for _k, _c, payload in [m.snapshot(0)] + m.generate(300, now=1.0):
        msg = orjson.loads(payload)
        books.feed(msg)
        if msg["method"] == "depth.update":
            px = [float(p) for p, _ in msg["params"][1]["asks"]]
            unordered += px not in (sorted(px), sorted(px, reverse=True))
    assert unordered > 5
    bids, asks = m.book("BTC_USDT")
    np.testing.assert_array_equal(bids, books["BTC_USDT"].bids)
    np.testing.assert_array_equal(asks, books["BTC_USDT"].asks)


@pytest.mark.parametrize("shuffle", [False, True])
def test_restore_book_returns_to_a_saved_book_without_crossing(shuffle: bool) -> None:
    m = Market(ExchangeConfig(seed=SEED, symbols=["BTC_USDT", "XRP_USDT"], book_levels=20))
    m.shuffle_levels = shuffle
    saved = [m.book_state(i) for i in range(2)]
    opening = [m.book(s) for s in m.symbols]
    books = _start_books(m)
    _feed_all(m, m.generate(3000, now=1.0), books)
    for i, sym in enumerate(m.symbols):
        assert not np.array_equal(m.book(sym)[0], opening[i][0])  # the market moved
        pushes = m.restore_book(i, saved[i])
        assert 1 <= len(pushes) <= 2
        for key, clean, payload in pushes:
            assert key == CH_DEPTH * m.nsym + i and not clean
            msg = orjson.loads(payload)
            levels = msg["params"][1]
            assert sum(bool(levels[side]) for side in ("asks", "bids")) == 1  # one side a push
            if not shuffle:  # deletions first, so a side never grows past book_levels
                for side in ("asks", "bids"):
                    amounts = [Decimal(a) for _, a in levels[side]]
                    assert amounts == sorted(amounts, key=lambda a: a != 0)
            books.feed(msg)
            bids, asks = books[sym].bids, books[sym].asks
            assert 0 < len(bids) <= 20 and 0 < len(asks) <= 20 and bids[0, 0] < asks[0, 0]
        for got, want in zip((books[sym].bids, books[sym].asks), opening[i]):
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(m.book(sym)[0], opening[i][0])
        assert books[sym].crossed_levels_removed == 0
        assert m.restore_book(i, saved[i]) == []  # nothing left to change


def test_tickers_follow_the_market() -> None:
    m = Market(ExchangeConfig(seed=SEED, symbols=["ETH_USDT"]))
    books = _start_books(m)
    seen = []
    for _k, _c, payload in m.generate(3000, now=1.0):
        msg = orjson.loads(payload)
        books.feed(msg)
        if msg["method"] == "ticker.update":
            (t,) = msg["params"]
            seen.append(t)
            assert Decimal(t["high_24h"]) >= Decimal(t["last"]) >= Decimal(t["low_24h"])
            bids, asks = books["ETH_USDT"].bids, books["ETH_USDT"].asks  # the book a client holds
            assert float(t["best_bid"]) == bids[0, 0] and float(t["best_ask"]) == asks[0, 0]
    assert books["ETH_USDT"].crossed_levels_removed == 0
    assert len(seen) > 50
    for field in ("last", "best_bid", "best_ask", "base_volume_24h"):
        assert len({t[field] for t in seen}) > 2, field
    assert len({(t["high_24h"], t["low_24h"]) for t in seen}) > 1  # a new high or low
    vols = [Decimal(t["base_volume_24h"]) for t in seen]
    assert vols == sorted(vols) and vols[-1] > vols[0]


def test_number_styles() -> None:
    assert _fmt(1168704, 2, 2) == "11687.04"
    assert _fmt(800000, 2, 2) == "8000.00"
    assert _fmt(1000, 4, None) == "0.1"
    assert _fmt(50000, 4, None) == "5"
    assert _fmt(0, 4, None) == "0"
    assert _fmt(1024968, 2, 8) == "10249.68000000"
    assert _fmt(7, 0, None) == "7" and _fmt(7, 0, 8) == "7.00000000"
    m = Market(ExchangeConfig(seed=SEED, symbols=["BTC_USDT"], number_style="padded"))
    levels = orjson.loads(m.snapshot(0)[2])["params"][1]
    for p, a in levels["asks"] + levels["bids"]:
        assert len(p.split(".")[1]) == 8 and len(a.split(".")[1]) == 8


def test_integer_trade_time_and_nested_tickers() -> None:
    m = Market(ExchangeConfig(seed=SEED, symbols=["BTC_USDT"], integer_trade_time=True, ticker_nested=True))
    kinds = set()
    for _k, _c, payload in m.generate(500, now=1597419159.75):
        msg = orjson.loads(payload)
        kinds.add(msg["method"])
        if msg["method"] == "trades.update":
            assert all(t["time"] == 1597419159 for t in msg["params"][1])
        if msg["method"] == "ticker.update":
            assert isinstance(msg["params"][0], list) and msg["params"][0][0]["symbol"] == "BTC_USDT"
    assert {"trades.update", "ticker.update"} <= kinds
    all_t = orjson.loads(m.all_ticker_payload())
    assert all_t["method"] == "all_ticker.update" and isinstance(all_t["params"][0], list)


def test_simbook_engine_rules() -> None:
    b = SimBook(depth=3)
    b.apply(
        True,
        [["11702.01", "0.001"], ["11700.24", "0.8716"], ["11699.57", "0.1029"]],
        [["11697.89", "0.2184"], ["11697.13", "7.0356"], ["11696.79", "0.2149"]],
    )
    assert b.asks[:, 0].tolist() == [11699.57, 11700.24, 11702.01]
    assert b.bids[:, 0].tolist() == [11697.89, 11697.13, 11696.79]
    b.apply(False, [["11650", "1"]], [])  # sorts before the last ask: last dropped; crosses bids
    assert b.asks[:, 0].tolist() == [11650.0, 11699.57, 11700.24]
    assert b.bids.shape == (0, 2) and b.crossed_levels_removed == 3
    b.apply(False, [["11800", "1"]], [])  # full side, worse than the last: discarded
    assert b.asks[:, 0].tolist() == [11650.0, 11699.57, 11700.24]
    b.apply(False, [["11699.57", "0"], ["1", "0"]], [["11649", "2"]])  # delete, absent no-op
    assert b.asks[:, 0].tolist() == [11650.0, 11700.24]
    b.apply(False, [], [["11700", "5"]])  # bid crossing asks <= 11700
    assert b.asks[:, 0].tolist() == [11700.24] and b.bids[0].tolist() == [11700.0, 5.0]
    b.apply(True, [], [])
    assert b.bids.shape == b.asks.shape == (0, 2)
    assert b.version == 6
    with pytest.raises(ValueError):
        SimBook(0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.lists(st.tuples(st.integers(1, 40), st.integers(0, 3)), max_size=6),
            st.lists(st.tuples(st.integers(1, 40), st.integers(0, 3)), max_size=6),
        ),
        max_size=30,
    )
)
def test_simbook_invariants(updates: list) -> None:
    b = SimBook(depth=5)
    for clean, asks, bids in updates:
        b.apply(clean, [[str(p), str(a)] for p, a in asks], [[str(p), str(a)] for p, a in bids])
        a, bd = b.asks, b.bids
        assert len(a) <= 5 and len(bd) <= 5
        assert np.all(np.diff(a[:, 0]) > 0) and np.all(np.diff(bd[:, 0]) < 0)
        assert np.all(a[:, 1] > 0) and np.all(bd[:, 1] > 0)
        if len(a) and len(bd):
            assert bd[0, 0] < a[0, 0]


def test_private_simulation_flows_and_balances_stay_consistent() -> None:
    cfg = ExchangeConfig(symbols=["BTC_USDT", "ETH_USDT"])
    prices = {"BTC_USDT": 60000.0, "ETH_USDT": 3000.0}
    acct = AccountSim("key", cfg.specs(), prices.__getitem__, random.Random(SEED))
    start = {c: v[0] + v[1] for c, v in acct.balances.items()}
    seen: Counter = Counter()
    statuses: set = set()
    algo_statuses: set = set()
    for _ in range(400):
        for ch, name, payload in acct.step(now=1_700_000_000.0):
            msg = orjson.loads(payload)
            seen[ch] += 1
            (obj,) = msg["params"]
            assert msg["method"] == f"{ch}.update" and msg["id"] is None
            if ch == "order":
                assert obj["symbol"] == name and len(obj["id"]) == 32
                int(obj["id"], 16)
                assert obj["mode"] == 1 and obj["timestamp"] == 1_700_000_000_000
                assert Decimal(obj["filled"]) <= Decimal(obj["amount"])
                statuses.add(obj["status"])
            elif ch == "order_algo":
                algo_statuses.add(obj["status"])
                assert set(obj) >= {"algo_price", "trigger_price", "amount", "side", "status", "symbol"}
            else:
                assert obj["currency"] == name
                assert Decimal(obj["free"]) + Decimal(obj["used"]) == Decimal(obj["total"])
                assert Decimal(obj["free"]) >= 0 and Decimal(obj["used"]) >= 0
    assert seen["order"] > 50 and seen["balance"] > 50 and seen["order_algo"] > 10
    assert {0, 1, 2} <= statuses and statuses & {3, 4}
    assert {0, 1, 2} <= algo_statuses
    # value moves between currencies but locked funds always equal the open orders
    for ccy, (free, used) in acct.balances.items():
        assert free >= 0 and used >= 0
    locked_quote = sum((o.amount - o.filled) * o.price for o in acct.orders.values() if o.side == "buy")
    assert acct.balances["USDT"][1] == locked_quote
    assert set(start) == set(acct.balances)


def test_wire_helpers() -> None:
    payload = b'{"method":"depth.update","params":[true,{"asks":[],"bids":[]},"BTC_USDT"],"id":null}'
    z = zlib_compress(payload)
    assert z[0] == 0x78 and zlib.decompress(z) == payload
    assert z == zlib.compress(payload)  # byte-identical to the default for small frames
    big = b"[" + b"1," * 20000 + b"1]"
    assert zlib.decompress(zlib_compress(big)) == big
    assert ws_frame(2, b"ab") == b"\x82\x02ab"
    f = ws_frame(1, b"x" * 300)
    assert f[:4] == b"\x81\x7e\x01\x2c" and len(f) == 304
    f = ws_frame(2, memoryview(b"y" * 70000))
    assert f[:2] == b"\x82\x7f" and int.from_bytes(f[2:10], "big") == 70000
    # the doc's example signature input / output format
    sig = sign_auth("secret", "1583135616239")
    assert len(sig) == 44 and sig.endswith("=")
    key, ts, sig2 = auth_params("k", "secret", 1583135616239)
    assert (key, ts, sig2) == ("k", "1583135616239", sig)
    assert encode_json({"id": 2**70}) == b'{"id":1180591620717411303424}'
    assert error_envelope(1, 4, "x", "string") == {"error": "x", "result": None, "id": 1}
    assert error_envelope(1, 4, "x")["error"] == {"code": 4, "message": "x"}


@pytest.mark.parametrize("level", [1, 6, 9])
def test_zlib_compress_is_byte_identical_to_zlib_at_every_window_boundary(level: int) -> None:
    rng = random.Random(level)
    sizes = list(range(300)) + [s + d for s in (250, 762, 1786, 3834, 7930, 16000) for d in (-1, 0, 1)]
    sizes += [rng.randrange(300, 20000) for _ in range(40)]
    for size in sizes:
        alphabet = b'{}[]":,.0123456789abcdef' if size % 3 else bytes(range(256))
        data = bytes(rng.choice(alphabet) for _ in range(size))
        z = zlib_compress(data, level)
        assert z == zlib.compress(data, level), size
        assert z[0] == 0x78 and zlib.decompress(z) == data


def test_config_validation_and_specs() -> None:
    cfg = ExchangeConfig(symbols=["btc_usdt", "BTC_USDT", "foo_bar"], path="ws")
    assert cfg.symbols == ("BTC_USDT", "FOO_BAR") and cfg.path == "/ws"
    spec = SymbolSpec.for_symbol("foo_bar")
    assert spec == SymbolSpec.for_symbol("FOO_BAR") and spec.price > 0
    assert (spec.base, spec.quote) == ("FOO", "BAR")
    for bad in (
        dict(symbols=[]),
        dict(symbols=["A B"]),
        dict(rate=-1),
        dict(book_levels=0),
        dict(book_levels=151),
        dict(error_style="x"),
        dict(capture_speed=0),
        dict(pregenerate=-1),
    ):
        with pytest.raises(ValueError):
            ExchangeConfig(**bad)  # type: ignore[arg-type]
    assert accounts_from_env({"FASTFEED_API_KEY": "k", "FASTFEED_API_SECRET": "s"}) == {"k": "s"}
    assert accounts_from_env({"FASTFEED_API_KEY": "k"}) == {}
