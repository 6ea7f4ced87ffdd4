"""The channel table (fastfeed/channels.py) and everything driven from it: the client's
subscribe/unsubscribe methods and push dispatch, the exchange's method handlers, the
reference engine's method table - and the hand-written Cython method table checked
against it."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import inspect
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from fastfeed import channels, protocol
from fastfeed.client import Feed
from fastfeed.errors import UnknownChannel
from fastfeed.exchange import Exchange, ExchangeConfig
from fastfeed.exchange.market import CHANNELS as MARKET_CHANNELS
from fastfeed.reference import MESSAGE_KEYS, ReferenceEngine

from helpers import compiled_engine_cls, depth_text, trade, trades_text

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native

PKG = Path(channels.__file__).parent
ROUTES = {"request", "market", "broadcast", "private"}


# -- the table itself ---------------------------------------------------------------------------


def test_table_rows_are_consistent() -> None:
    names = [c.name for c in channels.CHANNELS]
    assert len(names) == len(set(names))
    methods = [m for c in channels.CHANNELS for m in c.methods]
    assert len(methods) == len(set(methods)), "a wire method belongs to one channel"
    assert {c.name for c in channels.CHANNELS} == {
        "server.ping",
        "server.time",
        "server.auth",
        "trades",
        "depth",
        "ticker",
        "all_ticker",
        "order",
        "order_algo",
        "balance",
    }
    for c in channels.CHANNELS:
        assert c.route in ROUTES, c
        if c.route == "request":
            assert c.request == c.name and not c.subscribable and c.update is None and c.parser is not None
            continue
        assert (c.subscribe, c.unsubscribe, c.update) == (
            f"{c.name}.subscribe",
            f"{c.name}.unsubscribe",
            f"{c.name}.update",
        )
        assert c.client is not None and c.names in ("symbol", "currency", None)
        assert c.private == (c.route == "private"), c
        if c.hot and c.record is None:  # depth, trades: books and the trade ring
            assert c.parser is None and c.stream is None, "hot rows are parsed in Cython"
        elif c.hot:  # the tickers: a table and a history in C, records built on demand
            assert c.stream == "ticker" and c.parser is not None and hasattr(c.record, "FIELDS"), c
        else:
            assert c.record is not None and c.parser is not None and c.stream is not None, c
            assert hasattr(c.record, "FIELDS"), "a record type carries its field map"


def test_derived_lists_keep_their_public_values() -> None:
    assert protocol.PUBLIC_CHANNELS == ("trades", "depth", "ticker", "all_ticker")
    assert protocol.PRIVATE_CHANNELS == ("order", "order_algo", "balance")
    from fastfeed.exchange import PRIVATE_CHANNELS

    assert PRIVATE_CHANNELS == protocol.PRIVATE_CHANNELS
    assert channels.HOT_UPDATES == ("trades.update", "depth.update", "ticker.update", "all_ticker.update")


def test_unknown_channel_is_a_typed_key_error() -> None:
    assert channels.get("depth").update == "depth.update"
    with pytest.raises(UnknownChannel, match="unknown channel 'dpeth'") as info:
        channels.get("dpeth")
    assert isinstance(info.value, KeyError) and info.value.reason == "unknown_channel"
    with pytest.raises(KeyError):
        channels.get(["not", "hashable"])  # type: ignore[arg-type]


# -- the Cython method table against the table ------------------------------------------------


def test_compiled_method_names_match_the_table() -> None:
    from fastfeed._parse import METHOD_NAMES

    assert METHOD_NAMES[0] == "reply" and METHOD_NAMES[-1] == "unknown"
    assert sorted(METHOD_NAMES[1:-1]) == sorted(channels.PUSH_METHODS)
    # the M_* codes of _parse.pxd: one per name, in the same order, and M_COUNT
    pxd = (PKG / "_parse.pxd").read_text()
    codes = dict((name, int(v)) for name, v in re.findall(r"^\s*(M_[A-Z_]+)\s*=\s*(\d+)", pxd, re.M))
    assert codes.pop("M_COUNT") == len(METHOD_NAMES)
    expected = {"M_" + n.replace(".update", "").upper(): i for i, n in enumerate(METHOD_NAMES)}
    assert codes == expected


def test_reference_method_table_comes_from_the_table() -> None:
    assert (*channels.PUSH_METHODS, "reply", "unknown") == MESSAGE_KEYS
    compiled = compiled_engine_cls()()
    assert set(compiled.stats["messages"]) == set(ReferenceEngine().stats["messages"])


def _push(ch: channels.Channel) -> bytes:
    if ch.name == "depth":
        return depth_text(True, "BTC_USDT", asks=[["2", "1"]], bids=[["1", "1"]]).encode()
    if ch.name == "trades":
        return trades_text(False, "BTC_USDT", [trade(1)]).encode()
    return orjson.dumps({"method": ch.update, "params": [_record_dict(ch.record)], "id": None})


@pytest.mark.parametrize("ch", [c for c in channels.CHANNELS if c.update], ids=lambda c: c.name)
def test_each_push_method_is_recognised_by_both_engines(engine_cls: Any, ch: channels.Channel) -> None:
    """The hand-written memcmp table in _parse.pyx knows every push of the table: a hot
    push is applied (feed returns None), any other is returned decoded; each is counted
    under its own method."""
    eng = engine_cls()
    out = eng.feed(_push(ch), 1)
    if ch.hot:
        assert out is None
    else:
        assert isinstance(out, dict) and out["method"] == ch.update
    counts = eng.stats["messages"]
    assert counts[ch.update] == 1
    assert sum(counts.values()) == 1


# -- records: the field maps --------------------------------------------------------------------


_SAMPLE = {
    protocol.SYMBOL.conv: "btc_usdt",
    protocol.NUMBER.conv: "1.5",
    protocol.INTEGER.conv: 7,
    protocol.STATUS.conv: 1,
    protocol.TEXT.conv: "x1",
    protocol.DECIMAL_NUMBER.conv: "2.25",
}


def _record_dict(record: Any) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for _attr, key, conv in record.FIELDS:
        for k in key if isinstance(key, tuple) else (key,):
            d.setdefault(k, _SAMPLE.get(conv, "3"))
    return d


@pytest.mark.parametrize(
    "record",
    sorted({c.record for c in channels.CHANNELS if c.record}, key=lambda r: r.__name__),
    ids=lambda r: r.__name__,
)
def test_field_map_covers_the_record(record: Any) -> None:
    attrs = [a for a, _k, _c in record.FIELDS]
    fields = [f.name for f in dataclasses.fields(record)]
    assert len(attrs) == len(set(attrs)) and set(attrs) <= set(fields)
    # every dataclass field is read from the wire except the receive time and fixed values
    assert set(fields) - set(attrs) <= {"recv_ns", "all_ticker"}
    rec = record.from_dict(_record_dict(record), 5)
    assert rec.recv_ns == 5
    assert getattr(rec, "symbol", getattr(rec, "currency", None)) == "BTC_USDT"


def test_field_map_reads_in_order_and_rejects_with_the_first_bad_field() -> None:
    rejects: dict[str, int] = {}
    good = _record_dict(protocol.Ticker)
    bad_symbol_and_field = dict(good, symbol="", last="abc")
    out = protocol.parse_tickers([good, bad_symbol_and_field, 5], 9, True, rejects)
    assert [t.all_ticker for t in out] == [True] and out[0].recv_ns == 9
    assert rejects == {"bad_symbol": 1, "bad_shape": 1}  # symbol is read first
    b = protocol.BalanceUpdate.from_dict({"currency": "usdt", "free": 1.5, "total": "2", "used": None})
    assert b.raw == ("1.5", "2", "") and b.free == 1.5 and b.total == 2.0 and b.used != b.used


# -- the client --------------------------------------------------------------------------------


def _client_methods() -> dict[str, inspect.Signature]:
    out = {}
    for ch in channels.SUBSCRIBABLE:
        for verb in ("subscribe", "unsubscribe"):
            name = f"{verb}_{ch.client}"
            out[name] = inspect.signature(getattr(Feed, name))
    return out


def test_client_methods_are_generated_for_every_subscribable_channel() -> None:
    methods = _client_methods()
    assert set(methods) == {
        "subscribe_trades",
        "subscribe_depth",
        "subscribe_ticker",
        "subscribe_all_ticker",
        "subscribe_orders",
        "subscribe_order_algo",
        "subscribe_balance",
        "unsubscribe_trades",
        "unsubscribe_depth",
        "unsubscribe_ticker",
        "unsubscribe_all_ticker",
        "unsubscribe_orders",
        "unsubscribe_order_algo",
        "unsubscribe_balance",
    }
    assert str(methods["subscribe_trades"]) == "(self, symbols: 'Iterable[str]' = ()) -> 'None'"
    assert str(methods["unsubscribe_balance"]) == "(self, currencies: 'Iterable[str]' = ()) -> 'None'"
    assert str(methods["subscribe_all_ticker"]) == "(self) -> 'None'"
    for name in methods:
        fn = getattr(Feed, name)
        assert inspect.iscoroutinefunction(fn) and fn.__name__ == name and fn.__doc__


def test_type_checking_declarations_match_the_generated_methods() -> None:
    """client.py declares the generated methods for type checkers; they must say exactly
    what the table generates (add the line this names when adding a channel)."""
    tree = ast.parse((PKG / "client.py").read_text())
    feed = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Feed")
    declared: dict[str, str] = {}
    for node in feed.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for fn in node.body:
                if isinstance(fn, ast.AsyncFunctionDef):
                    declared[fn.name] = ", ".join(a.arg for a in fn.args.args)
    expected = {name: ", ".join(sig.parameters) for name, sig in _client_methods().items()}
    assert declared == expected


def _feed() -> Feed:
    return Feed("ws://127.0.0.1:9/", "key", "secret")


def test_generated_methods_send_the_table_methods() -> None:
    async def main() -> list[tuple[str, list[str]]]:
        feed = _feed()
        sent: list[tuple[str, list[str]]] = []

        async def fake(method: str, params: list[Any]) -> Any:
            sent.append((method, params))
            return {"status": "success"}

        feed._request_when_ready = fake  # type: ignore[method-assign]
        feed._transport = object()  # an unsubscribe talks to a connected server only
        for ch in channels.SUBSCRIBABLE:
            args = () if ch.names is None else (["btc_usdt"],)
            await getattr(feed, f"subscribe_{ch.client}")(*args)
            assert feed.subscriptions[ch.name] == (["*"] if ch.names is None else ["BTC_USDT"])
            await getattr(feed, f"unsubscribe_{ch.client}")(*args)
            assert ch.name not in feed.subscriptions
        with pytest.raises(TypeError):
            await feed.subscribe_all_ticker(["BTC_USDT"])  # type: ignore[call-arg]
        await feed.subscribe_balance(currencies=["usdt"])  # keyword form
        feed._transport = None
        await feed.close()
        return sent

    sent = asyncio.run(main())
    expected = []
    for ch in channels.SUBSCRIBABLE:
        params = [] if ch.names is None else ["BTC_USDT"]
        expected += [(ch.subscribe, params), (ch.unsubscribe, params)]
    assert sent == expected + [("balance.subscribe", ["USDT"])]


def test_private_channels_need_keys() -> None:
    async def main() -> None:
        feed = Feed("ws://127.0.0.1:9/")
        for ch in channels.SUBSCRIBABLE:
            if ch.private:
                with pytest.raises(protocol.AuthError):
                    await getattr(feed, f"subscribe_{ch.client}")()
        await feed.close()

    asyncio.run(main())


@pytest.mark.parametrize("ch", [c for c in channels.CHANNELS if c.parser and c.update], ids=lambda c: c.name)
def test_dispatch_routes_each_push_to_its_stream(ch: channels.Channel) -> None:
    async def main() -> None:
        feed = _feed()
        got: list[Any] = []
        setattr(feed, f"on_{ch.stream}", got.append)
        stream = feed._stream(ch.stream)
        if ch.hot:  # the tickers: stored by the engine, handed on as the listener does
            feed._feed_payload(_push(ch), 42)
        else:
            feed._on_message(orjson.loads(_push(ch)), 42)
        assert len(got) == 1 and type(got[0]) is ch.record and got[0].recv_ns == 42
        assert len(stream) == 1
        for other in channels.STREAMS:
            if other != ch.stream:
                assert not feed._streams[other] or all(len(s) == 0 for s in feed._streams[other])
        if ch.stream == "ticker":
            assert feed.latest_tickers["BTC_USDT"] == got[0]
            assert got[0].all_ticker == (ch.name == "all_ticker")
        assert feed.stats["unknown_pushes"] == 0 and feed.stats["bad_pushes"] == {}
        feed._on_message({"method": "nope.update", "params": []}, 1)
        assert feed.stats["unknown_pushes"] == 1
        await feed.close()

    asyncio.run(main())


# -- the exchange --------------------------------------------------------------------------------


def test_exchange_handlers_come_from_the_table() -> None:
    ex = Exchange(ExchangeConfig(symbols=["BTC_USDT"], rate=0, seed=1))
    expected = set()
    for c in channels.CHANNELS:
        if c.route == "request":
            expected.add(c.request)
        elif c.route != "market" or c.name in MARKET_CHANNELS:
            expected |= {c.subscribe, c.unsubscribe}
    assert set(ex._handlers) == expected
    # every public per-symbol channel of the table is one the market simulates
    assert {c.name for c in channels.CHANNELS if c.route == "market"} == set(MARKET_CHANNELS)


def test_cli_channel_choices_come_from_the_table() -> None:
    from fastfeed.cli._common import CHANNELS as CLI_CHANNELS
    from fastfeed.client import Feed

    assert set(CLI_CHANNELS) == {c.name for c in channels.SUBSCRIBABLE if c.route == "market"}
    for name in CLI_CHANNELS:  # the live loop subscribes through Feed.subscribe_<name>
        assert callable(getattr(Feed, f"subscribe_{name}"))
