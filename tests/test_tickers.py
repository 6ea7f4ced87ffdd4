"""Tickers in C: ``ticker.update`` / ``all_ticker.update`` pushes into the ticker table
(latest per symbol, ``Engine.tickers``) and the history ring (``Engine.ticker_history``).

The oracle for every value is the Python path the engine replaced: the push decoded with
``json`` (integers exact) and passed to ``fastfeed.protocol.parse_tickers``. Both engines
(``engine_cls``) must store exactly its records, bit for bit, and count exactly its
rejections; the compiled and reference engines must agree after every frame.
"""

from __future__ import annotations

import json
import math
import random
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fastfeed import protocol
from fastfeed._json import loads_exact
from fastfeed.errors import TickersOverwritten, UnknownSymbol
from fastfeed.layout import TICKER_DTYPE, TICKER_FIELDS, ticker_from_row
from fastfeed.reference import ReferenceEngine

from helpers import assert_state_equal, compiled_engine_cls, encode

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native

FULL = (
    '{"method":"ticker.update","params":[{"symbol":"btc_usdt","open_24h":"6823.78","low_24h":"6700",'
    '"base_volume_24h":"1","high_24h":"6999","last":"6855.12","quote_volume_24h":"2","best_bid":"6855.1",'
    '"best_ask":"6855.2","best_bid_size":"0.1","best_ask_size":"0.2","change_24h":"0.46",'
    '"timestamp":1586762545336}],"id":null}'
)
NESTED = (
    '{"method":"ticker.update","params":[[{"symbol":"BTC_USDT","last":"1"},'
    '{"symbol":"ETH_USDT","last":"2"}]],"id":null}'
)
ALL = '{"method":"all_ticker.update","params":[{"symbol":"A_B","last":"1","timestamp":1}],"id":null}'


def python_path(text: str, recv_ns: int = 0) -> tuple[list[protocol.Ticker], dict[str, int]]:
    """What the client did with a ticker push before tickers moved to C."""
    msg = loads_exact(text)
    rejects: dict[str, int] = {}
    got = protocol.parse_tickers(msg.get("params"), recv_ns, msg["method"] == "all_ticker.update", rejects)
    return got, rejects


def same_ticker(a: protocol.Ticker, b: protocol.Ticker) -> bool:
    """Field by field, floats bit for bit (NaN equal to NaN, -0.0 not equal to 0.0)."""
    for f in a.__dataclass_fields__:
        x, y = getattr(a, f), getattr(b, f)
        if isinstance(x, float):
            if not (isinstance(y, float) and np.float64(x).tobytes() == np.float64(y).tobytes()):
                return False
        elif x != y or type(x) is not type(y):
            return False
    return True


def check_against_python_path(eng: Any, text: str, recv_ns: int = 7) -> None:
    """Feed ``text`` and check the new records and counters against the Python path."""
    before = eng.stats["tickers"]
    n0 = eng.ticker_history.count
    assert eng.feed(text, recv_ns) is None
    want, rejects = python_path(text, recv_ns)
    got = eng.ticker_history.records(n0)
    assert len(got) == len(want), f"{text!r}: {got} != {want}"
    for g, w in zip(got, want):
        assert same_ticker(g, w), f"{text!r}:\n{g}\n!=\n{w}"
    after = eng.stats["tickers"]
    assert after["records"] - before["records"] == len(want)
    for reason in ("bad_shape", "bad_symbol", "bad_field"):
        assert after["rejects"][reason] - before["rejects"][reason] == rejects.get(reason, 0), (text, reason)
    for w in want:  # the table holds the latest record per symbol
        assert same_ticker(eng.ticker(w.symbol), [g for g in got if g.symbol == w.symbol][-1])


def push(records: Any, method: str = "ticker.update") -> str:
    return json.dumps({"method": method, "params": records, "id": None})


def raw_push(field: str, raw: str, symbol: str = '"BTC_USDT"') -> str:
    return '{"method":"ticker.update","params":[{"symbol":%s,"%s":%s}],"id":null}' % (symbol, field, raw)


# --- the documented and live shapes ------------------------------------------------------------


def test_ticker_push_applied_not_returned(engine_cls: Any, codec: str) -> None:
    eng = engine_cls()
    assert eng.feed(encode(FULL, codec), 11) is None
    t = eng.ticker("BTC_usdt")
    assert same_ticker(
        t,
        protocol.Ticker(
            symbol="BTC_USDT",
            last=6855.12,
            last_qty=math.nan,
            best_bid=6855.1,
            best_bid_size=0.1,
            best_ask=6855.2,
            best_ask_size=0.2,
            open_24h=6823.78,
            low_24h=6700.0,
            base_volume_24h=1.0,
            quote_volume_24h=2.0,
            timestamp=1586762545336,
            recv_ns=11,
            all_ticker=False,
            high_24h=6999.0,
        ),
    )
    assert same_ticker(t, python_path(FULL, 11)[0][0])
    assert eng.feed(encode(NESTED, codec), 12) is None
    assert eng.feed(encode(ALL, codec), 13) is None
    assert eng.ticker_symbols == ["BTC_USDT", "ETH_USDT", "A_B"]
    st = eng.stats
    assert st["messages"]["ticker.update"] == 2 and st["messages"]["all_ticker.update"] == 1
    assert st["tickers"] == {
        "records": 4,
        "rejects": {"bad_shape": 0, "bad_symbol": 0, "bad_field": 0},
        "dropped_symbols": 0,
    }
    view = eng.tickers
    assert view.dtype == TICKER_DTYPE and view.shape == (3,)
    assert view["name"].tolist() == [b"BTC_USDT", b"ETH_USDT", b"A_B"]
    assert view["symbol"].tolist() == [0, 1, 2] and view["all_ticker"].tolist() == [0, 0, 1]
    assert view["last"].tolist() == [1.0, 2.0, 1.0] and view["seq"].tolist() == [1, 2, 3]
    assert view["recv_ns"].tolist() == [12, 12, 13] and view["timestamp"].tolist() == [0, 0, 1]
    hist = eng.ticker_history
    assert hist.count == 4 and len(hist) == 4
    assert hist.latest()["seq"].tolist() == [0, 1, 2, 3]
    assert [t.symbol for t in hist.records()] == ["BTC_USDT", "BTC_USDT", "ETH_USDT", "A_B"]
    assert [t.all_ticker for t in hist.records(3)] == [True]
    assert same_ticker(ticker_from_row(hist.latest(1)[0], eng.ticker_symbols), hist.records(3)[0])
    # depth/trade state untouched: ticker symbols are not book symbols
    assert eng.symbols == [] and eng.trades.count == 0


@pytest.mark.parametrize(
    "params",
    [
        "[]",
        "[[]]",
        "[[],[]]",
        "{}",
        "null",
        "5",
        '"x"',
        "[5]",
        '[null, {"symbol":"A"}]',
        '[[{"symbol":"A"}, 5, [1], {"symbol":"B"}], {"symbol":"C"}, "s", [[{"symbol":"D"}]]]',
        '[{"symbol":"A"},[{"symbol":"B"}]]',
        "[{}]",
        "[[{}]]",
    ],
)
def test_params_shapes(engine_cls: Any, params: str) -> None:
    """Flat (documented) and nested (live) lists, anything else counted as bad_shape."""
    eng = engine_cls()
    check_against_python_path(eng, '{"method":"ticker.update","params":%s,"id":null}' % params)
    check_against_python_path(eng, '{"params":%s,"method":"all_ticker.update"}' % params)


def test_missing_params_is_one_bad_shape(engine_cls: Any) -> None:
    eng = engine_cls()
    check_against_python_path(eng, '{"method":"ticker.update","id":null}')
    assert eng.stats["tickers"]["rejects"]["bad_shape"] == 1
    assert eng.stats["messages"]["ticker.update"] == 1


def test_bad_json_ticker_frame_is_rejected_whole(engine_cls: Any) -> None:
    eng = engine_cls()
    for text, reason in (
        ('{"method":"ticker.update","params":[{"symbol":"A","last":"1"}', "bad_json"),
        ('{"method":"ticker.update","params":[{"symbol":"A","last":01}]}', "bad_json"),
        ('{"method":"ticker.update","params":[],"params":[]}', "bad_message"),
        ('{"method":"ticker.update","params":[{"symbol":"A","last":NaN}]}', "bad_json"),
    ):
        with pytest.raises(Exception) as info:
            eng.feed(text)
        assert getattr(info.value, "reason", None) == reason
    assert eng.ticker_history.count == 0 and eng.ticker_symbols == []


# --- per-record rules: the Python path's, value by value ---------------------------------------

SYMBOLS = [
    '"A"',
    '"a_b"',
    '""',
    '"%s"' % ("A" * 32),
    '"%s"' % ("A" * 33),
    '"A B"',
    '"\\u00e9"',
    '"\\u0041B"',
    '"\u00e9"',
    '"A\\u0000"',
    "5",
    "null",
    "true",
    '["A"]',
    '{"a":1}',
    '"\\ud83d\\ude00"',
]
FLOATS = [
    '"1"',
    '"-1.5"',
    '""',
    "null",
    "true",
    "false",
    "[]",
    '{"a":[1]}',
    '"abc"',
    '"1,5"',
    '"0x10"',
    '"1e400"',
    '"-1e400"',
    '"inf"',
    '"-Infinity"',
    '"nan"',
    '"NaN"',
    '" 1.5 "',
    '"1_000.5"',
    '"1__0"',
    '"_1"',
    '"\\u0031"',
    '"\u0661\u0662"',
    '"+.5"',
    '"5."',
    '"."',
    '"-"',
    '"e5"',
    '"1e"',
    '"1e+5"',
    '"%s"' % ("1" * 64),
    '"%s"' % ("1" * 65),
    '"0.%s"' % ("1" * 62),
    "1",
    "-0",
    "-0.0",
    "0",
    "1.5e3",
    "1e400",
    "-1e400",
    "1e-400",
    "-1e-400",
    "123456789012345678901234567890",
    "9" * 309,
    "9" * 400,
    "1" * 1025,
    "0." + "0" * 1030 + "1",
    "1e999999999999",
    "18446744073709551616",
    '"tiny"',
]
TIMESTAMPS = [
    "1586762545336",
    "0",
    "-0",
    "-1",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "1" * 30,
    "1.9",
    "-1.9",
    "1e3",
    "1e18",
    "9.2e18",
    "9.3e18",
    "-9.2233720368547758e18",
    "1e400",
    "4.9e-324",
    "null",
    "true",
    "[]",
    "{}",
    '"12"',
    '"-0"',
    '"+5"',
    '"007"',
    '""',
    '" 12 "',
    '"1_000"',
    '"1.5"',
    '"12a"',
    '"%s"' % ("1" * 20),
    '"%s"' % ("1" * 21),
    '"-%s"' % ("9" * 19),
    '"-9223372036854775808"',
    '"9223372036854775808"',
    '"\u0661"',
    '"\\u0031"',
    '"+"',
    '"-"',
    '"99999999999999999999"',
    "1" * 1025 + ".5",
]


@pytest.mark.parametrize("raw", SYMBOLS)
def test_symbol_values(engine_cls: Any, raw: str) -> None:
    check_against_python_path(engine_cls(), raw_push("last", '"1"', symbol=raw))


@pytest.mark.parametrize("raw", FLOATS)
@pytest.mark.parametrize("field", ["last", "high_24h", "quote_volume_24h"])
def test_float_values(engine_cls: Any, field: str, raw: str) -> None:
    check_against_python_path(engine_cls(), raw_push(field, raw))


@pytest.mark.parametrize("raw", TIMESTAMPS)
def test_timestamp_values(engine_cls: Any, raw: str) -> None:
    check_against_python_path(engine_cls(), raw_push("timestamp", raw))


def test_values_beyond_exact_float_range(engine_cls: Any) -> None:
    """Long mantissas round correctly (the nearest double, ties to even, as ``float()``),
    overflow rejects the record (bad_field), underflow gives (signed) zero; the compiled
    engine does all of this in C, without the Python fallback."""
    eng = engine_cls()
    cases = {
        '"0.1000000000000000055511151231257827"': 0.1000000000000000055511151231257827,
        '"0.1000000000000000055511151231257828"': float("0.1000000000000000055511151231257828"),
        '"9007199254740993"': 9007199254740992.0,  # tie: to even
        '"9007199254740995"': 9007199254740996.0,
        "9007199254740993": 9007199254740992.0,
        '"123456789012345678901234567890.123456789"': 1.2345678901234568e29,
        "123456789012345678901234567890": 1.2345678901234568e29,
        '"1.7976931348623157e308"': 1.7976931348623157e308,
        '"2.4703282292062328e-324"': 5e-324,  # just above half the smallest: rounds up
        '"2.4703282292062327e-324"': 0.0,
        '"1e-400"': 0.0,
        '"-1e-400"': -0.0,
        "-0": 0.0,  # the JSON integer -0 is 0
        "-0.0": -0.0,
        "9" * 308: float("9" * 308),
    }
    for raw, want in cases.items():
        before = eng.ticker_history.count
        check_against_python_path(eng, raw_push("last", raw))
        got = eng.ticker_history.records(before)[0].last
        assert np.float64(got).tobytes() == np.float64(want).tobytes(), (raw, got, want)
    for raw in ('"1.7976931348623159e308"', '"1e400"', "1e400", '"-1e309"', "9" * 400, "1e999999999999"):
        before = eng.stats["tickers"]["rejects"]["bad_field"]
        check_against_python_path(eng, raw_push("last", raw))
        assert eng.stats["tickers"]["rejects"]["bad_field"] == before + 1, raw
    if engine_cls is not ReferenceEngine:
        assert eng._ticker_slow_frames == 0


LONG_NUMBER = "1" + "0" * 300 + "." + "0" * 723  # 1025 characters: past the C parser's limit
assert len(LONG_NUMBER) == 1025


def test_python_only_values_take_the_exact_fallback() -> None:
    """Text only ``float()``/``int()`` can judge (spaces, ``_``, non-ASCII digits, escapes,
    numbers past 1024 characters) goes through Python, with the same result."""
    eng = compiled_engine_cls()()
    for field, raw, want in (
        ("last", '" 1.5 "', 1.5),
        ("last", '"1_000.5"', 1000.5),
        ("last", '"\u0661\u0662"', 12.0),
        ("last", '"\\u0031"', 1.0),
        ("timestamp", '" 12 "', 12),
        ("timestamp", '"1_000"', 1000),
        ("last", LONG_NUMBER, 1e300),
    ):
        before = eng.ticker_history.count
        check_against_python_path(eng, raw_push(field, raw))
        assert getattr(eng.ticker_history.records(before)[0], field) == want
    assert eng._ticker_slow_frames == 7


@pytest.mark.parametrize(
    "record",
    [
        '{"symbol":"A","last":"1","last":"2"}',
        '{"symbol":"A","last":true,"last":"2"}',
        '{"symbol":"A","last":"2","last":true}',
        '{"symbol":"","symbol":"A","last":"1"}',
        '{"symbol":"A","symbol":5}',
        '{"symbol":"A","timestamp":"x","timestamp":5}',
        '{"symbol":"A","timestamp":5,"timestamp":[]}',
        '{"\\u0073ymbol":"A","l\\u0061st":"3"}',
        '{"symbol":"A","lastx":"x","last_qty ":true,"":null,"change_24h":{"a":[1,{"b":2}]}}',
        '{"symbol":5,"last":true}',
        '{"last":"1"}',
        '{"symbol":"A","last":"1","x":"\\ud800"}',
    ],
)
def test_record_keys(engine_cls: Any, record: str) -> None:
    """A repeated key counts with its last value (like the dict the Python path read);
    unknown keys are ignored; the symbol is judged first (bad_symbol before bad_field)."""
    check_against_python_path(engine_cls(), '{"method":"ticker.update","params":[%s],"id":null}' % record)


# --- table, history, limits --------------------------------------------------------------------


def test_table_keeps_latest_and_history_keeps_all(engine_cls: Any) -> None:
    eng = engine_cls(ticker_capacity=4)
    for i in range(10):
        eng.feed(push([{"symbol": "S%d" % (i % 3), "last": str(i), "timestamp": i}]), 100 + i)
    assert eng.ticker_symbols == ["S0", "S1", "S2"]
    assert eng.tickers["last"].tolist() == [9.0, 7.0, 8.0]
    assert eng.tickers["seq"].tolist() == [9, 7, 8]
    hist = eng.ticker_history
    assert hist.capacity == 4 and hist.count == 10 and len(hist) == 4
    assert hist.latest()["timestamp"].tolist() == [6, 7, 8, 9]
    assert hist.since(8)["seq"].tolist() == [8, 9]
    assert hist.since(10).shape == (0,)
    with pytest.raises(TickersOverwritten):
        hist.since(5)
    with pytest.raises(ValueError):
        hist.since(-1)
    assert [t.timestamp for t in hist.records(0)] == [6, 7, 8, 9]  # the older ones are gone
    assert [t.recv_ns for t in hist.records(9)] == [109]
    assert eng.ticker("s1").last == 7.0


def test_max_ticker_symbols(engine_cls: Any) -> None:
    """Symbols beyond the limit get no row; their records still reach the history (symbol
    -1, the name kept) and are counted."""
    eng = engine_cls(max_ticker_symbols=2)
    eng.feed(push([[{"symbol": s, "last": "1"} for s in ("A", "B", "C", "A", "C")]]))
    assert eng.ticker_symbols == ["A", "B"] and eng.tickers.shape == (2,)
    assert eng.stats["tickers"]["dropped_symbols"] == 2
    hist = eng.ticker_history.latest()
    assert hist["symbol"].tolist() == [0, 1, -1, 0, -1]
    assert hist["name"].tolist() == [b"A", b"B", b"C", b"A", b"C"]
    assert [t.symbol for t in eng.ticker_history.records()] == ["A", "B", "C", "A", "C"]
    with pytest.raises(UnknownSymbol):
        eng.ticker("C")


def test_ticker_lookup_errors(engine_cls: Any) -> None:
    eng = engine_cls()
    with pytest.raises(UnknownSymbol):
        eng.ticker("BTC_USDT")
    with pytest.raises(KeyError):
        eng.ticker("BTC_USDT")
    with pytest.raises(TypeError):
        eng.ticker(b"BTC_USDT")
    with pytest.raises(ValueError):
        eng.ticker("BTC USDT")
    with pytest.raises(ValueError):
        engine_cls(max_ticker_symbols=0)
    with pytest.raises(ValueError):
        engine_cls(ticker_capacity=0)


def test_tickers_view_is_zero_copy_and_read_only() -> None:
    eng = compiled_engine_cls()()
    eng.feed(push([{"symbol": "A", "last": "1"}]))
    view = eng.tickers
    eng.feed(push([{"symbol": "A", "last": "2"}]))
    assert view["last"][0] == 2.0  # the same memory, updated in place
    with pytest.raises(ValueError):
        view["last"][0] = 5.0
    with pytest.raises(ValueError):
        view.flags.writeable = True
    hist = eng.ticker_history.latest()
    with pytest.raises(ValueError):
        hist["last"][0] = 5.0
    del eng
    assert view["last"][0] == 2.0  # the memory outlives the engine


# --- equivalence: corpus and fuzzed ticker frames ----------------------------------------------


def _corpus(n: int) -> list[Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    try:
        from corpus import make_corpus
    finally:
        sys.path.pop(0)
    return make_corpus(n, seed=3)


def test_corpus_tickers_equivalent() -> None:
    """The benchmark corpus (its ticker frames in the documented shape) through both
    engines: the same tickers, and the compiled one never needs the Python fallback."""
    frames = _corpus(4000)
    comp, ref = compiled_engine_cls()(ticker_capacity=64), ReferenceEngine(ticker_capacity=64)
    n_tickers = 0
    for i, f in enumerate(frames):
        payload = f.zlib if i % 2 else f.plain
        assert comp.feed(payload, i) == ref.feed(payload, i)
        if f.method == "ticker.update":
            n_tickers += 1
            assert_state_equal(comp, ref, f"frame {i}")
            got, _ = python_path(f.plain.decode(), i)
            assert same_ticker(comp.ticker(got[0].symbol), got[0])
    assert n_tickers > 100
    assert_state_equal(comp, ref, "end")
    assert comp._ticker_slow_frames == 0
    assert comp.stats["tickers"]["records"] == n_tickers


#: Values a fuzzed ticker field takes: usual decimals, edges of every rule, wrong types.
VALUE_POOL = (
    FLOATS
    + TIMESTAMPS[:30]
    + ['"6855.12"', '"0.00012300"', '"10249.68000000"', "6855.12", "1586762545336"]
    + ['"%d.%d"' % (i, i * 7) for i in range(5)]
)
KEY_POOL = list(TICKER_FIELDS) + ["timestamp", "symbol", "change_24h", "x", "\\u006cast", "Last"]


def _fuzz_record(rng: random.Random) -> str:
    pairs = []
    if rng.random() < 0.9:
        pairs.append(
            '"symbol":'
            + (
                rng.choice(SYMBOLS)
                if rng.random() < 0.1
                else '"%s"' % rng.choice(["btc_usdt", "ETH_USDT", "A_B", "x" * 32])
            )
        )
    for _ in range(rng.randint(0, 14)):
        key = rng.choice(KEY_POOL)
        value = (
            rng.choice(VALUE_POOL) if rng.random() < 0.5 else '"%s"' % rng.choice(["1", "2.5", "0.001", "77"])
        )
        if key == "symbol":
            value = rng.choice(SYMBOLS)
        pairs.append('"%s":%s' % (key, value))
    rng.shuffle(pairs)
    sep = rng.choice([",", ", ", " ,\n"])
    return "{" + sep.join(pairs) + "}"


def _fuzz_frame(rng: random.Random) -> str:
    items = []
    for _ in range(rng.randint(0, 4)):
        r = rng.random()
        if r < 0.75:
            items.append(_fuzz_record(rng))
        elif r < 0.9:
            items.append(
                "["
                + ",".join(
                    _fuzz_record(rng) if rng.random() < 0.8 else rng.choice(["1", "[]", "null"])
                    for _ in range(rng.randint(0, 3))
                )
                + "]"
            )
        else:
            items.append(rng.choice(["5", '"x"', "null", "{}", "[[]]"]))
    params = "[" + ",".join(items) + "]"
    method = rng.choice(["ticker.update", "all_ticker.update"])
    parts = ['"method":"%s"' % method, '"params":%s' % params, '"id":null']
    rng.shuffle(parts)
    return "{" + ",".join(parts) + "}"


def test_fuzzed_ticker_frames_match_the_python_path() -> None:
    """Seeded random ticker frames: random key order, repeated and unknown keys, every kind
    of value; both engines store exactly the Python path's records and agree after every
    frame."""
    rng = random.Random(20261126)
    comp, ref = compiled_engine_cls()(ticker_capacity=32), ReferenceEngine(ticker_capacity=32)
    for i in range(1500):
        text = _fuzz_frame(rng)
        payload = text if i % 3 else zlib.compress(text.encode())
        for eng in (comp, ref):
            before = eng.ticker_history.count
            assert eng.feed(payload, i) is None, text
            want, _ = python_path(text, i)
            got = eng.ticker_history.records(before)
            assert len(got) == len(want) and all(same_ticker(g, w) for g, w in zip(got, want)), text
        assert_state_equal(comp, ref, f"frame {i}: {text!r:.400}")
    assert comp._ticker_slow_frames > 0  # the pools reach the fallback too
