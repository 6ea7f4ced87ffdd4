"""Hand-written cases for every rule of docs/engine-semantics.md, run on both engines.

Each test is parametrized over ``engine_cls`` (compiled, reference) and, where the payload
encoding could matter, over ``codec`` (plain bytes / bytearray / memoryview, the same
zlib-compressed, and str).
"""

from __future__ import annotations

import json
import math
import zlib
from typing import Any

import numpy as np
import pytest

from fastfeed.errors import REJECT_REASONS, ParseError, TradesOverwritten, UnknownSymbol
from fastfeed.layout import TRADE_DTYPE

from helpers import A1, A2, A3, A4, depth_text, encode, levels, trade, trades_text

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native

# --- live samples (docs/protocol.md, "Sample frames") ----------------------------------------

A2_ASKS = [(11699.57, 0.1029), (11700.24, 0.8716), (11702.01, 0.001)]
A2_BIDS = [(11697.89, 0.2184), (11697.13, 7.0356), (11696.79, 0.2149)]


def feed(eng: Any, text: str | bytes, codec: str, recv_ns: int = 0) -> Any:
    """Feed ``text`` encoded with ``codec``."""
    return eng.feed(encode(text, codec), recv_ns)


def assert_side(actual: Any, expected: list[tuple[float, float]]) -> None:
    """Exact comparison of a book side with the expected rows."""
    arr = np.asarray(actual)
    assert arr.dtype == np.float64
    assert arr.ndim == 2 and arr.shape[1] == 2
    assert arr.tolist() == levels(expected).tolist()


def ring_rows(eng: Any) -> list[tuple[Any, ...]]:
    """The whole ring content as (id, seq, time, recv_ns, price, amount, symbol, side)."""
    arr = eng.trades.latest(eng.trades.capacity)
    return [tuple(r.item() for r in row) for row in arr] if len(arr) else []


# --- live samples ----------------------------------------------------------------------------


def test_a2_snapshot_descending_asks(engine_cls: Any, codec: str) -> None:
    eng = engine_cls()
    assert feed(eng, A2, codec, recv_ns=123) is None
    book = eng.book("BTC_USDT")
    assert_side(book.asks, A2_ASKS)
    assert_side(book.bids, A2_BIDS)
    assert book.best_ask == 11699.57
    assert book.best_bid == 11697.89
    assert book.version == 1
    assert book.recv_ns == 123
    assert book.symbol == "BTC_USDT"
    assert eng.stats["messages"]["depth.update"] == 1


def test_a3_increment_after_a2(engine_cls: Any, codec: str) -> None:
    eng = engine_cls()
    feed(eng, A2, codec, 1)
    feed(eng, A3, codec, 2)
    book = eng.book("BTC_USDT")
    assert_side(
        book.asks,
        [(11699.57, 0.1029), (11699.92, 0.008), (11700.24, 0.8716), (11702.01, 0.001), (11702.81, 0.001)],
    )
    assert_side(
        book.bids,
        [(11697.89, 0.2184), (11697.13, 7.0356), (11696.79, 0.2149), (11642.72, 13.1172), (11627.05, 2.1258)],
    )
    assert book.version == 2
    assert book.recv_ns == 2
    assert eng.stats["crossed_levels_removed"] == 0


def test_a4_zero_padded(engine_cls: Any, codec: str) -> None:
    eng = engine_cls()
    feed(eng, A4, codec)
    book = eng.book("btc_usdt")
    assert_side(book.asks, [(10249.67, 0.0011), (10249.68, 0.002)])
    assert_side(book.bids, [(10249.61, 0.8657), (10248.44, 1.0019)])


def test_a1_trade(engine_cls: Any, codec: str) -> None:
    eng = engine_cls()
    assert feed(eng, A1, codec, recv_ns=77) is None
    arr = eng.trades.latest(10)
    assert arr.dtype == TRADE_DTYPE
    assert len(arr) == 1
    rec = arr[0]
    assert rec["id"] == 3282939928
    assert rec["seq"] == 0
    assert rec["time"] == 1597419159.0
    assert rec["recv_ns"] == 77
    assert rec["price"] == 11687.04
    assert rec["amount"] == 0.1
    assert rec["side"] == -1
    assert rec["symbol"] == eng.symbols.index("ETH_USDT") == 0
    assert eng.trades.count == 1
    assert eng.stats["messages"]["trades.update"] == 1


# --- depth rules -----------------------------------------------------------------------------


def test_snapshot_replaces_book(engine_cls: Any, codec: str) -> None:
    eng = engine_cls()
    feed(eng, A2, codec)
    feed(eng, depth_text(True, "BTC_USDT", asks=[["200", "1"]], bids=[["100", "2"]]), codec)
    book = eng.book("BTC_USDT")
    assert_side(book.asks, [(200.0, 1.0)])
    assert_side(book.bids, [(100.0, 2.0)])
    feed(eng, depth_text(True, "BTC_USDT"), codec)  # clean with no sides: empty book
    assert_side(book.asks, [])
    assert_side(book.bids, [])
    assert math.isnan(book.best_bid) and math.isnan(book.best_ask)
    assert book.version == 3


def test_snapshot_only_bids_clears_asks(engine_cls: Any, codec: str) -> None:
    eng = engine_cls()
    feed(eng, A2, codec)
    feed(eng, depth_text(True, "BTC_USDT", bids=[["5", "1"]]), codec)
    book = eng.book("BTC_USDT")
    assert_side(book.asks, [])
    assert_side(book.bids, [(5.0, 1.0)])


@pytest.mark.parametrize(
    "zero", ['"0"', '"0.00000000"', '"-0"', "0", "-0", "0.0", '"0e5"', '"-0.0E-3"', '"1e-400"']
)
def test_zero_amount_deletes(engine_cls: Any, codec: str, zero: str) -> None:
    eng = engine_cls()
    feed(eng, A2, codec)
    text = (
        '{"method":"depth.update","params":[false,{"asks":[["11700.24",%s]],'
        '"bids":[["11697.13",%s]]},"BTC_USDT"]}' % (zero, zero)
    )
    feed(eng, text, codec)
    book = eng.book("BTC_USDT")
    assert_side(book.asks, [A2_ASKS[0], A2_ASKS[2]])
    assert_side(book.bids, [A2_BIDS[0], A2_BIDS[2]])
    assert book.version == 2


def test_absent_deletion_is_noop(engine_cls: Any, codec: str) -> None:
    eng = engine_cls()
    feed(eng, A2, codec)
    feed(eng, depth_text(False, "BTC_USDT", asks=[["11700.25", "0"]], bids=[["1", "0"]]), codec, 9)
    book = eng.book("BTC_USDT")
    assert_side(book.asks, A2_ASKS)
    assert_side(book.bids, A2_BIDS)
    assert book.version == 2  # still a message
    assert book.recv_ns == 9
    # deleting from an empty book of a new symbol creates it, empty
    feed(eng, depth_text(False, "NEW_SYM", asks=[["1", "0"]]), codec)
    assert eng.symbols == ["BTC_USDT", "NEW_SYM"]
    assert_side(eng.book("NEW_SYM").asks, [])
    assert eng.book("NEW_SYM").version == 1


def test_upsert_replaces_amount(engine_cls: Any, codec: str) -> None:
    eng = engine_cls()
    feed(eng, A2, codec)
    feed(eng, depth_text(False, "BTC_USDT", asks=[["11700.240000", "5"]], bids=[["11697.13", "0.5"]]), codec)
    book = eng.book("BTC_USDT")
    assert_side(book.asks, [A2_ASKS[0], (11700.24, 5.0), A2_ASKS[2]])
    assert_side(book.bids, [A2_BIDS[0], (11697.13, 0.5), A2_BIDS[2]])


def test_levels_applied_in_message_order(engine_cls: Any, codec: str) -> None:
    """The same price twice in one message: the later level wins (upsert then delete etc.)."""
    eng = engine_cls()
    feed(
        eng,
        depth_text(
            False,
            "X",
            asks=[["10", "1"], ["10", "2"], ["11", "1"], ["11", "0"]],
            bids=[["5", "0"], ["5", "3"]],
        ),
        codec,
    )
    book = eng.book("X")
    assert_side(book.asks, [(10.0, 2.0)])
    assert_side(book.bids, [(5.0, 3.0)])


def test_trim_to_depth(engine_cls: Any, codec: str) -> None:
    eng = engine_cls(depth=3)
    asks = [["105", "1"], ["101", "2"], ["104", "3"], ["102", "4"], ["103", "5"]]
    bids = [["95", "1"], ["99", "2"], ["96", "3"], ["98", "4"], ["97", "5"]]
    feed(eng, depth_text(True, "S", asks=asks, bids=bids), codec)
    book = eng.book("S")
    assert book.depth == 3
    assert_side(book.asks, [(101.0, 2.0), (102.0, 4.0), (103.0, 5.0)])
    assert_side(book.bids, [(99.0, 2.0), (98.0, 4.0), (97.0, 5.0)])


def test_full_side_discard_and_drop_last(engine_cls: Any, codec: str) -> None:
    eng = engine_cls(depth=2)
    feed(
        eng, depth_text(True, "S", asks=[["101", "1"], ["102", "1"]], bids=[["99", "1"], ["98", "1"]]), codec
    )
    book = eng.book("S")
    # sorts after the last row of a full side: discarded
    feed(eng, depth_text(False, "S", asks=[["103", "1"]], bids=[["97", "1"]]), codec)
    assert_side(book.asks, [(101.0, 1.0), (102.0, 1.0)])
    assert_side(book.bids, [(99.0, 1.0), (98.0, 1.0)])
    # existing price on a full side: amount replaced
    feed(eng, depth_text(False, "S", asks=[["102", "7"]], bids=[["98", "7"]]), codec)
    assert_side(book.asks, [(101.0, 1.0), (102.0, 7.0)])
    assert_side(book.bids, [(99.0, 1.0), (98.0, 7.0)])
    # sorts inside: last row dropped
    feed(eng, depth_text(False, "S", asks=[["101.5", "2"]], bids=[["98.5", "2"]]), codec)
    assert_side(book.asks, [(101.0, 1.0), (101.5, 2.0)])
    assert_side(book.bids, [(99.0, 1.0), (98.5, 2.0)])
    # dropped rows are gone: deleting the new last row leaves one row
    feed(eng, depth_text(False, "S", asks=[["101.5", "0"]], bids=[["98.5", "0"]]), codec)
    assert_side(book.asks, [(101.0, 1.0)])
    assert_side(book.bids, [(99.0, 1.0)])
    assert eng.stats["crossed_levels_removed"] == 0


def test_depth_one(engine_cls: Any, codec: str) -> None:
    eng = engine_cls(depth=1)
    feed(eng, depth_text(False, "S", asks=[["103", "1"], ["101", "1"], ["102", "1"]]), codec)
    assert_side(eng.book("S").asks, [(101.0, 1.0)])


def test_crossing_bid_removes_asks(engine_cls: Any, codec: str) -> None:
    eng = engine_cls()
    feed(
        eng, depth_text(True, "S", asks=[["101", "1"], ["102", "1"], ["103", "1"]], bids=[["99", "1"]]), codec
    )
    feed(eng, depth_text(False, "S", bids=[["102", "5"]]), codec)
    book = eng.book("S")
    assert_side(book.asks, [(103.0, 1.0)])
    assert_side(book.bids, [(102.0, 5.0), (99.0, 1.0)])
    assert eng.stats["crossed_levels_removed"] == 2


def test_crossing_ask_removes_bids(engine_cls: Any, codec: str) -> None:
    eng = engine_cls()
    feed(
        eng, depth_text(True, "S", asks=[["101", "1"]], bids=[["100", "1"], ["99", "1"], ["98", "1"]]), codec
    )
    feed(eng, depth_text(False, "S", asks=[["98.5", "4"]]), codec)
    book = eng.book("S")
    assert_side(book.asks, [(98.5, 4.0), (101.0, 1.0)])
    assert_side(book.bids, [(98.0, 1.0)])
    assert eng.stats["crossed_levels_removed"] == 2
    # equal price crosses too
    feed(eng, depth_text(False, "S", bids=[["98.5", "1"]]), codec)
    assert_side(book.asks, [(101.0, 1.0)])
    assert_side(book.bids, [(98.5, 1.0), (98.0, 1.0)])
    assert eng.stats["crossed_levels_removed"] == 3


def test_crossing_within_one_message_asks_first(engine_cls: Any, codec: str) -> None:
    """Asks are applied before bids whatever the key order, so the bid wins here."""
    eng = engine_cls()
    text = '{"method":"depth.update","params":[false,{"bids":[["100","2"]],"asks":[["100","1"]]},"S"]}'
    feed(eng, text, codec)
    book = eng.book("S")
    assert_side(book.asks, [])
    assert_side(book.bids, [(100.0, 2.0)])
    assert eng.stats["crossed_levels_removed"] == 1


def test_deletion_does_not_cross(engine_cls: Any, codec: str) -> None:
    eng = engine_cls()
    feed(eng, depth_text(True, "S", asks=[["101", "1"]], bids=[["99", "1"]]), codec)
    feed(eng, depth_text(False, "S", bids=[["105", "0"]], asks=[["90", "0"]]), codec)
    book = eng.book("S")
    assert_side(book.asks, [(101.0, 1.0)])
    assert_side(book.bids, [(99.0, 1.0)])
    assert eng.stats["crossed_levels_removed"] == 0


def test_version_and_recv_ns(engine_cls: Any, codec: str) -> None:
    eng = engine_cls()
    book = eng.book("S", create=True)
    assert book.version == 0 and book.recv_ns == 0
    for i in range(1, 5):
        feed(eng, depth_text(False, "S", asks=[[str(100 + i), "1"]]), codec, recv_ns=1000 * i)
        assert book.version == i
        assert book.recv_ns == 1000 * i
    feed(eng, trades_text(False, "S", [trade(1)]), codec, recv_ns=99999)  # trades: no effect
    assert book.version == 4 and book.recv_ns == 4000
    with pytest.raises(ParseError):
        feed(eng, depth_text(False, "S", asks=[["-1", "1"]]), codec, recv_ns=5)
    assert book.version == 4 and book.recv_ns == 4000


def test_recv_ns_large(engine_cls: Any, codec: str) -> None:
    eng = engine_cls()
    ns = 1_732_000_000_123_456_789
    feed(eng, depth_text(False, "S", asks=[["1", "1"]]), codec, recv_ns=ns)
    feed(eng, trades_text(False, "S", [trade(1)]), codec, recv_ns=ns + 1)
    assert eng.book("S").recv_ns == ns
    assert eng.trades.latest(1)[0]["recv_ns"] == ns + 1


def test_symbol_upper_casing_and_index(engine_cls: Any, codec: str) -> None:
    eng = engine_cls()
    feed(eng, depth_text(False, "btc_usdt", asks=[["1", "1"]]), codec)
    feed(eng, depth_text(False, "Btc_Usdt", asks=[["2", "1"]]), codec)
    feed(eng, trades_text(False, "eth_usdt", [trade(1)]), codec)
    assert eng.symbols == ["BTC_USDT", "ETH_USDT"]
    assert eng.book("btc_usdt").symbol == "BTC_USDT"
    assert_side(eng.book("BTC_USDT").asks, [(1.0, 1.0), (2.0, 1.0)])
    assert eng.book("bTc_UsDt").version == 2
    # trades-only symbol has an (empty) book; book() of an unknown symbol raises and
    # registers nothing, unless create=True
    assert eng.book("ETH_USDT").version == 0
    assert eng.trades.latest(1)[0]["symbol"] == 1
    with pytest.raises(UnknownSymbol, match="XRP_USDT"):
        eng.book("xrp_usdt")
    with pytest.raises(KeyError):
        eng.symbol_index("xrp_usdt")
    assert eng.symbols == ["BTC_USDT", "ETH_USDT"]
    b = eng.book("xrp_usdt", create=True)
    assert b.symbol == "XRP_USDT" and b.version == 0
    assert eng.symbols == ["BTC_USDT", "ETH_USDT", "XRP_USDT"]
    feed(eng, trades_text(False, "XRP_USDT", [trade(1)]), codec)
    assert eng.trades.latest(1)[0]["symbol"] == 2
    assert eng.book("XRP_USDT") is not None


def test_symbol_printable_ascii_edges(engine_cls: Any, codec: str) -> None:
    eng = engine_cls()
    sym = "!" + "~" * 30 + "a"  # 32 bytes, the edges of 0x21..0x7E
    feed(eng, depth_text(False, sym, asks=[["1", "1"]]), codec)
    assert eng.symbols == [sym.upper()]
    assert eng.symbols[0].endswith("~A")


def test_any_key_order_and_whitespace(engine_cls: Any) -> None:
    """Key order and whitespace (space, tab, CR, LF) do not matter."""
    compact = depth_text(True, "S", asks=[["101", "1"]], bids=[["99", "2"]])
    spaced = (
        ' \t\r\n{ \n"id"\t:\rnull , "params" :[ \ttrue\n, {\r"bids" : [ [ "99" , "2" ] ] ,'
        ' "asks":[["101" ,"1"]] } , "S" ]\n, "method"  :  "depth.update"\r\n}\t \n'
    )
    results = []
    for text in (compact, spaced):
        for codec in ("bytes", "zlib-bytes", "str", "memoryview"):
            eng = engine_cls()
            assert feed(eng, text, codec) is None
            results.append((eng.book("S").asks.tolist(), eng.book("S").bids.tolist()))
    assert all(r == results[0] for r in results)
    assert results[0] == ([[101.0, 1.0]], [[99.0, 2.0]])


def test_escaped_keys_and_values(engine_cls: Any, codec: str) -> None:
    eng = engine_cls()
    text = (
        '{"\\u006dethod":"depth\\u002eupdate","p\\u0061rams":[false,{"\\u0061sks":'
        '[["\\u0031\\u0030\\u0031","\\u0032"]],"b\\u0069ds":[["9\\u0039.5","1"]]},"btc\\u005Fusdt"]}'
    )
    feed(eng, text, codec)
    book = eng.book("BTC_USDT")
    assert_side(book.asks, [(101.0, 2.0)])
    assert_side(book.bids, [(99.5, 1.0)])
    trades = (
        '{"method":"trades\\u002Eupdate","params":[false,[{"\\u0069d":7,"t\\u0069me":"1\\u002e5",'
        '"pr\\u0069ce":"2","amount":"3","typ\\u0065":"b\\u0075y"}],"btc_usdt"]}'
    )
    feed(eng, trades, codec)
    rec = eng.trades.latest(1)[0]
    assert (rec["id"], rec["time"], rec["price"], rec["amount"], rec["side"]) == (7, 1.5, 2.0, 3.0, 1)
    assert eng.stats["messages"]["trades.update"] == 1


def test_solidus_escape_and_unicode_in_ignored_keys(engine_cls: Any, codec: str) -> None:
    eng = engine_cls()
    text = (
        '{"method":"depth.update","note":"a\\/b \\"q\\" \\\\ \\b\\f\\n\\r\\t \u00e9\u4e2d\U0001f600 \\ud83d\\ude00",'
        '"params":[false,{"asks":[["1","1"]],"other":{"x":[1,2.5e-3,true,null,"\\ud800"]}},"S"]}'
    )
    feed(eng, text, codec)
    assert_side(eng.book("S").asks, [(1.0, 1.0)])


def test_bare_json_numbers(engine_cls: Any, codec: str) -> None:
    eng = engine_cls()
    text = (
        '{"method":"depth.update","params":[false,{"asks":[[101.25,2],[1.0125E2,0.5e1]],'
        '"bids":[[99,1.5],[9.8e+1,"2"]]},"S"]}'
    )
    feed(eng, text, codec)
    book = eng.book("S")
    assert_side(book.asks, [(101.25, 5.0)])
    assert_side(book.bids, [(99.0, 1.5), (98.0, 2.0)])
    trades = '{"method":"trades.update","params":[false,[{"id":1,"time":1.5e9,"price":2.5,"amount":0,"type":"sell"}],"S"]}'
    feed(eng, trades, codec)
    rec = eng.trades.latest(1)[0]
    assert (rec["time"], rec["price"], rec["amount"], rec["side"]) == (1.5e9, 2.5, 0.0, -1)


LONG_DECIMALS = [
    "0.1000000000000000055511151231257827021181583404541015625",
    "1.00000000000000011102230246251565404236316680908203125",  # halfway: ties to even -> 1.0
    "1.00000000000000011102230246251565404236316680908203126",  # just above halfway
    "1.00000000000000011102230246251565404236316680908203124",  # just below halfway
    "9007199254740993",  # 2**53 + 1
    "9007199254740993.000000000000000000000000000001",
    "2.2250738585072011e-308",
    "2.2250738585072012e-308",
    "4.9406564584124654e-324",
    "1.7976931348623157e308",
    str(2**1024 - 2**970 - 1),  # just below the overflow halfway point: DBL_MAX
    str(2**1024 - 2**970 - 1) + ".99999999999999999999",
    "0.000000000000000000000000000000000000000000000000000000000000000000000000000000001234567890123456789",
    "123456789012345678901234567890e-20",
    "00000000000000000000000000000000011687.04000000000000000000000000",
    "+11687.04",
    "11687.",
    ".5",
    "1e0",
    "1E+2",
    "5e-1",
    "3.14159265358979323846264338327950288419716939937510582097494459",
    "1" + "0" * 22 + "1" + "e-23",
]


@pytest.mark.parametrize("text", LONG_DECIMALS)
def test_long_decimals_equal_python_float(engine_cls: Any, text: str) -> None:
    eng = engine_cls()
    expected = float(text)
    assert math.isfinite(expected) and expected > 0
    toks = [json.dumps(text)] + ([text] if _is_json_number(text) else [])
    for tok in toks:
        feed(
            eng, '{"method":"depth.update","params":[true,{"asks":[[%s,%s]]},"S"]}' % (tok, tok), "zlib-bytes"
        )
        assert eng.book("S").asks.tolist() == [[expected, expected]]
        feed(eng, '{"method":"depth.update","params":[true,{"bids":[[%s,%s]]},"S"]}' % (tok, tok), "str")
        assert eng.book("S").bids.tolist() == [[expected, expected]]
        assert eng.book("S").asks.shape == (0, 2)


def _is_json_number(s: str) -> bool:
    import re

    return re.fullmatch(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?", s) is not None


def test_decimal_1024_chars_accepted(engine_cls: Any, codec: str) -> None:
    eng = engine_cls()
    price = "1." + "0" * 1017 + "12345"  # 1024 characters
    amount = "0." + "3" * 1022  # 1024 characters
    assert len(price) == len(amount) == 1024
    feed(eng, depth_text(False, "S", asks=[[price, amount]]), codec)
    assert eng.book("S").asks.tolist() == [[float(price), float(amount)]]
    bare = "0." + "7" * 1022  # a bare JSON number of 1024 characters
    feed(eng, '{"method":"depth.update","params":[false,{"bids":[[%s,%s]]},"S"]}' % (bare, bare), codec)
    assert eng.book("S").bids.tolist() == [[float(bare), float(bare)]]


def test_nesting_64_accepted(engine_cls: Any, codec: str) -> None:
    """Depth 64 (the top-level object counts as 1) is accepted in ignored keys."""
    eng = engine_cls()
    deep = "[" * 63 + "]" * 63
    text = '{"method":"depth.update","x":%s,"params":[false,{"asks":[["1","1"]]},"S"]}' % deep
    feed(eng, text, codec)
    assert eng.book("S").version == 1
    deep_obj = '{"a":' * 63 + "1" + "}" * 63
    assert feed(eng, '{"result":%s,"id":1}' % deep_obj, codec) == json.loads(
        '{"result":%s,"id":1}' % deep_obj
    )


# --- trades rules ----------------------------------------------------------------------------


def test_trades_stored_oldest_first(engine_cls: Any, codec: str) -> None:
    eng = engine_cls()
    trades = [
        trade(5, "105", "0.5", "sell", 1005.25),
        trade(4, "104", "0.4", "buy", 1004),
        trade(3, "103", "0.3", "buy", "1003.5"),
    ]
    feed(eng, trades_text(False, "S", trades), codec, recv_ns=42)
    assert ring_rows(eng) == [
        (3, 0, 1003.5, 42, 103.0, 0.3, 0, 1),
        (4, 1, 1004.0, 42, 104.0, 0.4, 0, 1),
        (5, 2, 1005.25, 42, 105.0, 0.5, 0, -1),
    ]
    assert eng.trades.count == 3


def test_duplicate_trades_dropped_across_clean_replay(engine_cls: Any, codec: str) -> None:
    eng = engine_cls()
    feed(eng, trades_text(False, "A", [trade(3), trade(2), trade(1)]), codec)
    feed(eng, trades_text(True, "A", [trade(4), trade(3), trade(2), trade(1)]), codec)  # replay
    assert [r[0] for r in ring_rows(eng)] == [1, 2, 3, 4]
    assert eng.stats["duplicate_trades"] == 3
    assert eng.stats["dropped_trades"] == {"replayed": 3, "duplicate": 0}
    # per symbol: the same ids on another symbol are new
    feed(eng, trades_text(True, "B", [trade(2), trade(1)]), codec)
    assert [r[0] for r in ring_rows(eng)] == [1, 2, 3, 4, 1, 2]
    assert [r[6] for r in ring_rows(eng)] == [0, 0, 0, 0, 1, 1]
    # a trade is dropped only if it is already stored: new ids stored, even out of order
    feed(eng, trades_text(False, "A", [trade(6), trade(9), trade(5), trade(4)]), codec)
    assert [r[0] for r in ring_rows(eng)][6:] == [5, 9, 6]
    assert eng.stats["duplicate_trades"] == 4
    assert eng.stats["dropped_trades"] == {"replayed": 3, "duplicate": 1}
    assert eng.stats["out_of_order_trades"] == 1  # 6 after 9
    # 7 and 8 were never stored: kept although below the highest id (9)
    feed(eng, trades_text(False, "A", [trade(10), trade(8), trade(7)]), codec)
    assert [r[0] for r in ring_rows(eng)][9:] == [7, 8, 10]
    assert eng.stats["duplicate_trades"] == 4
    # the same trade twice in one message is stored once
    feed(eng, trades_text(False, "A", [trade(11), trade(11)]), codec)
    assert [r[0] for r in ring_rows(eng)][12:] == [11]
    assert eng.stats["duplicate_trades"] == 5
    assert eng.stats["messages"]["trades.update"] == 6
    assert eng.trades.count == 13


def test_all_duplicates_and_empty_still_count(engine_cls: Any, codec: str) -> None:
    eng = engine_cls()
    feed(eng, trades_text(False, "A", [trade(1)]), codec)
    feed(eng, trades_text(True, "A", [trade(1)]), codec)
    feed(eng, trades_text(False, "A", []), codec)
    assert eng.trades.count == 1
    assert eng.stats["duplicate_trades"] == 1
    assert eng.stats["messages"]["trades.update"] == 3
    feed(eng, trades_text(False, "EMPTY", []), codec)
    assert eng.symbols == ["A", "EMPTY"]  # an accepted empty push still registers the symbol


def test_trade_id_zero_and_first_trade(engine_cls: Any, codec: str) -> None:
    """hwm starts at -1, so id 0 is stored; -0 is the integer 0."""
    eng = engine_cls()
    feed(eng, trades_text(False, "A", [trade(0)]), codec)
    feed(
        eng,
        '{"method":"trades.update","params":[false,[{"id":-0,"time":1,"price":"1","amount":"1","type":"buy"}],"B"]}',
        codec,
    )
    assert [r[0] for r in ring_rows(eng)] == [0, 0]
    assert eng.stats["duplicate_trades"] == 0


def test_int64_ids(engine_cls: Any, codec: str) -> None:
    eng = engine_cls()
    ids = [2**31 - 1, 2**31, 3282939928, 2**53 + 1, 2**63 - 1]
    for i in ids:
        feed(eng, trades_text(False, "A", [trade(i)]), codec)
    assert [r[0] for r in ring_rows(eng)] == ids


@pytest.mark.parametrize(
    ("time_json", "expected"),
    [
        ("1597419159", 1597419159.0),
        ("1523339279.761838", 1523339279.761838),
        ('"1523339279.761838"', 1523339279.761838),
        ('"1597419159"', 1597419159.0),
        ("1.5e9", 1.5e9),
        ("0", 0.0),
        ("-1.25", -1.25),
        ('"1523339279.7618380000000000000000001"', 1523339279.761838),
    ],
)
def test_trade_times(engine_cls: Any, codec: str, time_json: str, expected: float) -> None:
    eng = engine_cls()
    text = (
        '{"method":"trades.update","params":[false,[{"type":"buy","amount":"1","price":"2",'
        '"time":%s,"id":1}],"S"]}' % time_json
    )
    feed(eng, text, codec)
    assert eng.trades.latest(1)[0]["time"] == expected


def test_trade_extra_keys_ignored(engine_cls: Any, codec: str) -> None:
    eng = engine_cls()
    text = (
        '{"method":"trades.update","params":[false,[{"id":1,"time":1,"price":"2","amount":"3",'
        '"type":"sell","symbol":"IGNORED","extra":{"id":"x","type":[1]},"fee":null}],"S"]}'
    )
    feed(eng, text, codec)
    assert ring_rows(eng) == [(1, 0, 1.0, 0, 2.0, 3.0, 0, -1)]


def test_ring_capacity_power_of_two(engine_cls: Any) -> None:
    for requested, expected in [(1, 1), (2, 2), (3, 4), (5, 8), (8, 8), (1000, 1024)]:
        assert engine_cls(trade_capacity=requested).trades.capacity == expected
    assert engine_cls().trades.capacity == 65536


def test_latest_and_since_wraparound(engine_cls: Any, codec: str) -> None:
    eng = engine_cls(trade_capacity=3)
    ring = eng.trades
    assert ring.capacity == 4
    assert len(ring.latest(10)) == 0 and len(ring.since(0)) == 0
    for i in range(10):  # 10 pushes of one trade each, ids 100..109
        feed(eng, trades_text(False, "S", [trade(100 + i, price=str(1 + i))]), codec, recv_ns=i)
    assert ring.count == 10
    latest = ring.latest(100)
    assert latest.dtype == TRADE_DTYPE
    assert latest["seq"].tolist() == [6, 7, 8, 9]
    assert latest["id"].tolist() == [106, 107, 108, 109]
    assert latest["price"].tolist() == [7.0, 8.0, 9.0, 10.0]
    assert latest["recv_ns"].tolist() == [6, 7, 8, 9]
    assert ring.latest(2)["seq"].tolist() == [8, 9]
    assert len(ring.latest(0)) == 0
    assert ring.since(7)["seq"].tolist() == [7, 8, 9]
    assert ring.since(6)["id"].tolist() == [106, 107, 108, 109]
    assert len(ring.since(10)) == 0
    assert len(ring.since(11)) == 0
    with pytest.raises(TradesOverwritten):
        ring.since(5)
    with pytest.raises(IndexError):  # TradesOverwritten is an IndexError
        ring.since(0)
    with pytest.raises(ValueError):
        ring.since(-1)
    assert ring.latest()["seq"].tolist() == [6, 7, 8, 9]  # n < 0 (the default): all held
    assert ring.latest(-5)["seq"].tolist() == [6, 7, 8, 9]
    assert len(ring) == 4
    # one push of 5 trades wraps the ring inside a single message
    feed(eng, trades_text(False, "S", [trade(i) for i in range(205, 200, -1)]), codec)
    assert ring.count == 15
    assert ring.latest(4)["id"].tolist() == [202, 203, 204, 205]
    assert ring.latest(4)["seq"].tolist() == [11, 12, 13, 14]


def test_since_before_wrap(engine_cls: Any, codec: str) -> None:
    eng = engine_cls(trade_capacity=8)
    feed(eng, trades_text(False, "S", [trade(3), trade(2), trade(1)]), codec)
    assert eng.trades.since(0)["id"].tolist() == [1, 2, 3]
    assert eng.trades.since(2)["id"].tolist() == [3]
    assert eng.trades.latest(2)["id"].tolist() == [2, 3]
    assert len(eng.trades) == 3
    assert eng.trades.latest()["id"].tolist() == [1, 2, 3]


# --- other messages --------------------------------------------------------------------------

NON_HOT = [
    ('{"error":null,"result":"pong","id":1620432002431491}', "reply"),
    ('{"error":null,"result":{"status":"success"},"id":2}', "reply"),
    ('{"error":"Rate limit exceeded","result":null,"id":3}', "reply"),
    ('{"error":{"code":200005,"message":"Rate limit exceeded"},"result":null,"id":4}', "reply"),
    ('{"method":null,"error":null,"result":1599999999,"id":5}', "reply"),
    ('{"error":null,"result":"pong","id":5234567890.1234567}', "reply"),
    (
        '{"method":"order.update","params":[{"amount":"0.0001","filled":"0","id":"1d8e4c9a2b8f4a6e9c0f1e2d3c4b5a69",'
        '"mode":1,"notional":"","price":"9000","price_avg":"0","side":"buy","status":0,"symbol":"BTC_USDT",'
        '"timestamp":1585633640544,"type":"limit"}],"id":null}',
        "order.update",
    ),
    (
        '{"method":"order_algo.update","params":[{"status":-2,"symbol":"BTC_USDT"}],"id":null}',
        "order_algo.update",
    ),
    (
        '{"method":"balance.update","params":[{"currency":"USDT","free":"99944652.8478545303601106","total":"1","used":"0"}],"id":null}',
        "balance.update",
    ),
    ('{"method":"foo.update","params":[1,2,3],"id":null}', "unknown"),
    ('{"method":"","params":[]}', "unknown"),
    ('{"method":"reply","id":1}', "unknown"),
    ('{"method":"Depth.update","params":[true,{},"S"]}', "unknown"),
    ('{"method":"depth.update ","params":5}', "unknown"),
    ("{}", "reply"),
    ('{"id":1,"id":2,"error":null}', "reply"),
    ('{"result":[1e400,-0.0,123456789012345678901234567890,"\\ud800"],"id":1}', "reply"),
    ('{"error":null,"result":123456789012345678901234567890,"id":18446744073709551616}', "reply"),
    ('{"method":"balance.update","params":[{"free":-98765432109876543210987654321}]}', "balance.update"),
]


@pytest.mark.parametrize(("text", "key"), NON_HOT)
def test_non_hot_messages_returned_and_counted(engine_cls: Any, codec: str, text: str, key: str) -> None:
    eng = engine_cls()
    eng.feed(encode(depth_text(False, "S", asks=[["1", "1"]]), codec))
    before = eng.stats
    got = feed(eng, text, codec)
    assert isinstance(got, dict)
    assert got == json.loads(text)
    after = eng.stats
    expected_messages = dict(before["messages"])
    expected_messages[key] += 1
    assert after["messages"] == expected_messages
    assert after["rejects"] == before["rejects"]
    assert eng.symbols == ["S"]
    assert eng.book("S").version == 1
    assert eng.trades.count == 0


def test_non_hot_huge_integer_exact(engine_cls: Any, codec: str) -> None:
    """Valid JSON of any size is decoded like ``json.loads``: ints stay exact ints, even past
    Python's 4300-digit str-to-int limit."""
    eng = engine_cls()
    got = feed(eng, '{"result":%s,"id":-%s}' % ("9" * 5000, "1" + "0" * 30), codec)
    assert got == {"result": 10**5000 - 1, "id": -(10**30)}
    assert type(got["result"]) is int and type(got["id"]) is int
    assert eng.stats["messages"]["reply"] == 1


def test_hot_push_ignores_id_and_other_keys(engine_cls: Any, codec: str) -> None:
    eng = engine_cls()
    text = (
        '{"id":1620432002431491,"x":{"a":[1,{"b":null}],"c":"\\u0000"},"method":"depth.update",'
        '"error":{"code":1},"params":[false,{"asks":[["1","1"]],"foo":[[1,2,3]],"bids":[]},"S"],"y":[]}'
    )
    assert feed(eng, text, codec) is None
    assert_side(eng.book("S").asks, [(1.0, 1.0)])


# --- counters --------------------------------------------------------------------------------


def test_stats_shape(engine_cls: Any) -> None:
    eng = engine_cls()
    st = eng.stats
    assert set(st) == {
        "frames",
        "bytes_in",
        "bytes_inflated",
        "messages",
        "rejects",
        "crossed_levels_removed",
        "duplicate_trades",
        "dropped_trades",
        "out_of_order_trades",
        "drift",
        "tickers",
    }
    assert st["messages"] == dict.fromkeys(
        [
            "depth.update",
            "trades.update",
            "ticker.update",
            "all_ticker.update",
            "order.update",
            "order_algo.update",
            "balance.update",
            "reply",
            "unknown",
        ],
        0,
    )
    assert st["rejects"] == dict.fromkeys(REJECT_REASONS, 0)
    assert all(
        st[k] == 0
        for k in (
            "frames",
            "bytes_in",
            "bytes_inflated",
            "crossed_levels_removed",
            "duplicate_trades",
            "out_of_order_trades",
        )
    )
    assert st["dropped_trades"] == {"replayed": 0, "duplicate": 0}
    assert st["drift"] == {"checks": 0, "drifted": 0, "by_symbol": {}}
    assert st["tickers"] == {
        "records": 0,
        "rejects": {"bad_shape": 0, "bad_symbol": 0, "bad_field": 0},
        "dropped_symbols": 0,
    }


def test_stats_bytes(engine_cls: Any, codec: str) -> None:
    eng = engine_cls()
    text = '{"error":null,"result":"caf\u00e9","id":1}'
    payload = encode(text, codec)
    eng.feed(payload)
    eng.feed(payload)
    raw = text.encode("utf-8")
    n_in = len(raw) if codec in ("str", "bytes", "bytearray", "memoryview") else len(zlib.compress(raw))
    st = eng.stats
    assert st["frames"] == 2
    assert st["bytes_in"] == 2 * n_in
    assert st["bytes_inflated"] == (2 * len(raw) if codec.startswith("zlib") else 0)
    assert st["messages"]["reply"] == 2


def test_unknown_methods_do_not_grow_messages(engine_cls: Any) -> None:
    eng = engine_cls()
    for i in range(20):
        eng.feed('{"method":"m%d","params":[]}' % i)
    assert len(eng.stats["messages"]) == 9
    assert eng.stats["messages"]["unknown"] == 20


# --- payload handling ------------------------------------------------------------------------


def test_plain_bytes_with_leading_whitespace(engine_cls: Any) -> None:
    eng = engine_cls()
    text = b" \t\r\n" + depth_text(False, "S", asks=[["1", "1"]]).encode()
    for payload in (text, bytearray(text), memoryview(text)):
        assert eng.feed(payload) is None
    assert eng.book("S").version == 3
    assert eng.stats["bytes_inflated"] == 0
    assert eng.stats["bytes_in"] == 3 * len(text)


def test_memoryview_slice_of_larger_buffer(engine_cls: Any) -> None:
    eng = engine_cls()
    z = zlib.compress(depth_text(False, "S", asks=[["1", "1"]]).encode())
    buf = bytearray(b"JUNK" + z + b"MORE")
    assert eng.feed(memoryview(buf)[4 : 4 + len(z)]) is None
    plain = bytearray(b"xx" + A1.encode() + b"yy")
    assert eng.feed(memoryview(plain)[2:-2]) is None
    assert eng.book("S").version == 1
    assert eng.trades.count == 1


def test_zlib_levels_and_strategies(engine_cls: Any) -> None:
    """Any valid zlib stream inflates: stored blocks, fixed/dynamic Huffman, small windows."""
    text = A2.encode()
    streams = [zlib.compress(text, level) for level in (0, 1, 6, 9)]
    for wbits in (9, 12, 15):
        c = zlib.compressobj(6, zlib.DEFLATED, wbits)
        streams.append(c.compress(text) + c.flush())
    c = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_FIXED)
    streams.append(c.compress(text) + c.flush())
    c = zlib.compressobj()  # a sync flush in the middle of the stream
    streams.append(c.compress(text[:50]) + c.flush(zlib.Z_SYNC_FLUSH) + c.compress(text[50:]) + c.flush())
    eng = engine_cls()
    for z in streams:
        assert eng.feed(z) is None
    assert eng.book("BTC_USDT").version == len(streams)
    assert_side(eng.book("BTC_USDT").asks, A2_ASKS)
    assert eng.stats["bytes_inflated"] == len(streams) * len(text)


def test_frame_exactly_max_frame(engine_cls: Any, codec: str) -> None:
    text = depth_text(False, "S", asks=[["1", "1"]])
    eng = engine_cls(max_frame=len(text.encode()))
    assert feed(eng, text, codec) is None
    assert eng.book("S").version == 1


def test_book_arrays_layout(engine_cls: Any) -> None:
    eng = engine_cls()
    eng.feed(A2)
    book = eng.book("BTC_USDT")
    for arr in (book.bids, book.asks):
        assert isinstance(arr, np.ndarray)
        assert arr.dtype == np.float64 and arr.shape == (3, 2)
        assert arr.flags.c_contiguous
    empty = eng.book("EMPTY", create=True)
    assert empty.bids.shape == (0, 2) and empty.asks.shape == (0, 2)
    assert math.isnan(empty.best_bid) and math.isnan(empty.best_ask)
    assert empty.depth == 200


def test_bad_payload_type(engine_cls: Any) -> None:
    eng = engine_cls()
    for bad in (None, 12345, ["{}"]):
        with pytest.raises((TypeError, ValueError)):
            eng.feed(bad)
    assert eng.stats["rejects"] == dict.fromkeys(REJECT_REASONS, 0)
