"""The parser's fast path against its general parser (and against Python's own float()).

``Parser.parse`` first tries the fast path (``Parser._fast`` in fastfeed/_parse.pyx): the
compact shape of DigiFinex's ``depth.update`` / ``trades.update`` pushes, keys matched as
literals in any order, decimals converted 8 digits at a time (fastfeed/_fastnum.h). On any
surprise it gives up and the general parser reads the message. Properties checked here:

* every frame of the benchmark corpus (benchmarks/corpus.py) is taken by the fast path, and
  its output (method, clean, symbol, every level and trade) is bit-identical to the general
  parser's and to ``float()`` of the decimal text;
* on the fuzzers' inputs (tests/test_fuzz.py mutators over its seeds and over compact
  frames, the equivalence generator's messages, every prefix and every one-byte change of
  compact frames) the fast path either gives up or agrees bit for bit with the general
  parser, and ``parse`` with the fast path (what ``Engine`` runs) gives the same outcome,
  values and rejection reason and offset as the general parser alone;
* nothing past the end of the message is read (messages placed against a PROT_NONE page);
* engines created with the fast path off (``set_fast_path(False)``) end in the same state
  as engines with it on, and as the reference engine.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import platform
import random
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path
from typing import Any

import pytest

from fastfeed.reference import ReferenceEngine

from helpers import assert_state_equal, compiled_engine_cls

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native

ROOT = Path(__file__).resolve().parent.parent


def _parse_module() -> Any:
    compiled_engine_cls()  # fails (never skips) when the extensions did not load
    from fastfeed import _parse

    return _parse


def _corpus_module() -> Any:
    spec = importlib.util.spec_from_file_location("ff_bench_corpus", ROOT / "benchmarks" / "corpus.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("ff_bench_corpus", mod)
    spec.loader.exec_module(mod)
    return mod


def bits(x: Any) -> Any:
    """Floats replaced by their IEEE bit patterns, recursively (so -0.0 != 0.0, exact)."""
    if isinstance(x, float):
        return ("f", struct.pack("<d", x).hex())
    if isinstance(x, (list, tuple)):
        return tuple(bits(v) for v in x)
    return x


def check_text(text: bytes, parser: Any = None) -> Any:
    """The fast path gives up or agrees with the general parser bit for bit; ``parse`` with
    the fast path (auto) equals the general parser in everything, rejections included.
    Returns the fast path's result (None: it gave up)."""
    _parse = _parse_module()
    general = _parse.parse_py(text, "general")
    auto = _parse.parse_py(text, "auto", parser)
    fast = _parse.parse_py(text, "fast", parser)
    assert bits(auto) == bits(general), f"{text!r:.400}\nauto:    {auto!r:.300}\ngeneral: {general!r:.300}"
    if fast is not None:
        assert bits(fast) == bits(general), (
            f"{text!r:.400}\nfast:    {fast!r:.300}\ngeneral: {general!r:.300}"
        )
        assert fast[0] in HOT
    # ticker pushes: the records (and rejection counts) too
    t_general = _parse.parse_tickers_py(text, "general")
    t_auto = _parse.parse_tickers_py(text, "auto", parser)
    t_fast = _parse.parse_tickers_py(text, "fast", parser)
    assert bits(t_auto) == bits(t_general), (
        f"{text!r:.400}\nauto:    {t_auto!r:.300}\ngeneral: {t_general!r:.300}"
    )
    assert (t_fast is None) == (fast is None)
    if t_fast is not None:
        assert bits(t_fast) == bits(t_general), (
            f"{text!r:.400}\nfast:    {t_fast!r:.300}\ngeneral: {t_general!r:.300}"
        )
        if fast[0] in TICKER_METHODS:
            # the fast path keeps only good records and never needs Python's rules
            assert t_fast[1] and t_fast[2:] == (0, 0, 0, False)
    return fast


TICKER_METHODS = ("ticker.update", "all_ticker.update")
#: what the fast path takes
HOT = ("depth.update", "trades.update", *TICKER_METHODS)

# --- compact frames in the live shape -------------------------------------------------------

DEPTH = (
    b'{"method":"depth.update","params":[false,{"asks":[["11700.5","0.25"],["11703.1","0"]],'
    b'"bids":[["11698.2","1.5"],["11690","0"]]},"BTC_USDT"],"id":null}'
)
TRADES = (
    b'{"method":"trades.update","params":[false,[{"id":3282939930,"time":1716000000.123456,'
    b'"amount":"0.1","price":"11687.04","type":"sell"},{"id":3282939929,"time":1716000000.1,'
    b'"amount":"2","price":"11687","type":"buy"}],"ETH_USDT"],"id":null}'
)
SNAPSHOT = (
    b'{"method":"depth.update","params":[true,{"asks":['
    + b",".join(
        b'["%d.%02d","%d.%06d"]' % (3010 + i, i * 7 % 100, i + 1, i * 37 % 1000000) for i in range(30)
    )
    + b'],"bids":['
    + b",".join(b'["0.%08d","%d"]' % (99999999 - 1234 * i, 10**i % 99999989) for i in range(30))
    + b']},"pepe_usdt"],"id":null}'
)
TICKER = (
    b'{"method":"ticker.update","params":[{"symbol":"btc_usdt","open_24h":"60000.12","low_24h":"59000",'
    b'"high_24h":"61000.5","base_volume_24h":"251.20954400","quote_volume_24h":"15072612.60213639",'
    b'"last":"60012.79","last_qty":"0.058238","best_bid":"60009.18","best_bid_size":"0.236036",'
    b'"best_ask":"60012.79","best_ask_size":"0.165058","timestamp":1716000000371}],"id":null}'
)
#: the exchange's own key order (the API doc's, no high_24h): read with literal keys
#: (ff_ticker_fixed), not the any-order loop
TICKER_DOC = (
    b'{"method":"ticker.update","params":[{"symbol":"XRP_usdt","open_24h":"0.52341","low_24h":"0.52335",'
    b'"base_volume_24h":"5000000.00000000","quote_volume_24h":"2617050.00000000","last":"0.52341",'
    b'"last_qty":"2216.4","best_bid":"0.52338","best_bid_size":"10265.5","best_ask":"0.52343",'
    b'"best_ask_size":"6533.4","timestamp":1716000000116}],"id":null}'
)
COMPACT = (DEPTH, TRADES, SNAPSHOT, TICKER, TICKER_DOC)
COMPACT_IDS = ("depth", "trades", "snapshot", "ticker", "ticker_doc")


def test_fast_path_is_built_where_expected() -> None:
    _parse = _parse_module()
    if platform.machine().lower() in ("x86_64", "amd64", "aarch64", "arm64"):
        assert _parse.FAST_PATH_AVAILABLE


@pytest.mark.parametrize("text", COMPACT, ids=COMPACT_IDS)
def test_compact_frames_take_the_fast_path(text: bytes) -> None:
    fast = check_text(text)
    assert fast is not None
    obj = json.loads(text)
    if obj["method"] in TICKER_METHODS:
        assert _expected_tickers(text) == bits(_parse_module().parse_tickers_py(text, "fast"))
        return
    clean, body, symbol = obj["params"]
    assert fast[1] is clean and fast[2] == symbol.upper() and fast[6] == -1
    if obj["method"] == "depth.update":
        for got, side in ((fast[3], "asks"), (fast[4], "bids")):
            assert bits(got) == bits([(float(p), float(a)) for p, a in body[side]])
    else:
        want = [
            (
                t["id"],
                float(t["time"]),
                float(t["price"]),
                float(t["amount"]),
                1 if t["type"] == "buy" else -1,
            )
            for t in body
        ]
        assert bits(fast[5]) == bits(want)


# --- the benchmark corpus ----------------------------------------------------------------------


def _expected_tickers(frame_plain: bytes) -> Any:
    """What the parser must produce for a ticker push, from json + float()."""
    from fastfeed.layout import TICKER_FIELDS

    obj = json.loads(frame_plain)
    items = obj["params"]
    if items and isinstance(items[0], list):
        items = items[0]
    records = [
        (
            t["symbol"].upper(),
            tuple(float(t[k]) if k in t else float("nan") for k in TICKER_FIELDS),
            t.get("timestamp", 0),
        )
        for t in items
    ]
    return bits((obj["method"], records, 0, 0, 0, False))


def _expected(frame_plain: bytes) -> tuple[Any, ...]:
    """What the parser must produce for a corpus frame, from json + float()."""
    obj = json.loads(frame_plain)
    clean, body, symbol = obj["params"]
    if obj["method"] == "depth.update":
        return (
            obj["method"],
            clean,
            symbol.upper(),
            [(float(p), float(a)) for p, a in body["asks"]],
            [(float(p), float(a)) for p, a in body["bids"]],
            [],
            -1,
        )
    return (
        obj["method"],
        clean,
        symbol.upper(),
        [],
        [],
        [
            (
                t["id"],
                float(t["time"]),
                float(t["price"]),
                float(t["amount"]),
                1 if t["type"] == "buy" else -1,
            )
            for t in body
        ],
        -1,
    )


@pytest.mark.parametrize("seed", (1, 2, 3))
def test_corpus_frames_fast_and_bit_identical(seed: int) -> None:
    _parse = _parse_module()
    corpus = _corpus_module()
    frames = corpus.make_corpus(4000, seed=seed)
    parser = _parse.Parser()
    hot = 0
    for f in frames:
        fast = check_text(f.plain, parser)
        assert fast is not None, f"fast path gave up on a corpus frame: {f.plain!r:.300}"
        if f.method in TICKER_METHODS:
            assert bits(_parse.parse_tickers_py(f.plain, "fast")) == _expected_tickers(f.plain)
        else:
            assert bits(fast) == bits(_expected(f.plain)), f"{f.plain!r:.300}"
        hot += 1
    assert hot > 3000
    # the batch helper the benchmarks time agrees
    plain = [f.plain for f in frames]
    assert _parse.parse_batch_py(plain, "fast") == hot
    assert _parse.parse_batch_py(plain, "auto") == _parse.parse_batch_py(plain, "general") == len(frames)


def _engine_pair_states(frames: list[Any], payload: str) -> None:
    _parse = _parse_module()
    cls = compiled_engine_cls()
    kw: dict[str, Any] = {"depth": 25, "trade_capacity": 512, "trade_dedup_window": 64}
    prev = _parse.set_fast_path(False)
    try:
        general = cls(**kw)
        assert _parse.set_fast_path(True) is False
        fast = cls(**kw)
    finally:
        _parse.set_fast_path(prev)
    ref = ReferenceEngine(**kw)
    for i, f in enumerate(frames):
        data = getattr(f, payload)
        outs = []
        for eng in (fast, general, ref):
            try:
                outs.append(("ok", eng.feed(data, 1_000 + i)))
            except Exception as exc:
                outs.append(("error", type(exc).__name__, str(exc)))
        assert outs[0] == outs[1] == outs[2], f"frame {i}: {outs!r:.400}"
        if i % 997 == 0:
            assert_state_equal(fast, general, f"frame {i} (fast vs general)")
    assert_state_equal(fast, general, "end (fast vs general)")
    assert_state_equal(fast, ref, "end (fast vs reference)")


@pytest.mark.parametrize("payload", ("plain", "zlib"))
def test_corpus_engines_fast_general_reference_agree(payload: str) -> None:
    frames = _corpus_module().make_corpus(3000, seed=7)
    _engine_pair_states(frames, payload)


def test_set_fast_path_returns_previous_and_applies_to_new_parsers() -> None:
    _parse = _parse_module()
    prev = _parse.set_fast_path(False)
    try:
        p_off = _parse.Parser()
        assert _parse.set_fast_path(True) is False
        p_on = _parse.Parser()
        assert _parse.set_fast_path(True) is True
    finally:
        _parse.set_fast_path(prev)
    # "auto" follows the call, not the parser's default; the batch helper counts fast hits
    assert _parse.parse_batch_py([DEPTH, TRADES], "fast", p_off) == 2
    assert _parse.parse_batch_py([DEPTH, TRADES], "fast", p_on) == 2
    with pytest.raises(ValueError):
        _parse.parse_py(DEPTH, "quick")
    with pytest.raises(TypeError):
        _parse.parse_batch_py([bytearray(DEPTH)])


# --- surprises: each must send the message to the general parser ------------------------------


def _sub(text: bytes, old: bytes, new: bytes, count: int = 1) -> bytes:
    assert old in text, old
    return text.replace(old, new, count)


#: Variants of the compact frames the fast path must hand to the general parser (valid or not).
SURPRISES: dict[str, bytes] = {
    "leading space": b" " + DEPTH,
    "trailing space": DEPTH + b" ",
    "trailing newline": DEPTH + b"\n",
    "trailing garbage": DEPTH + b"}",
    "space after colon": _sub(DEPTH, b'"method":', b'"method": '),
    "space after comma": _sub(DEPTH, b'],["', b'], ["'),
    "newline in levels": _sub(DEPTH, b'[["11700.5"', b'[\n["11700.5"'),
    "escaped key": _sub(DEPTH, b'"asks"', b'"\\u0061sks"'),
    "escaped method": _sub(DEPTH, b'"depth.update"', b'"depth\\u002eupdate"'),
    "escaped symbol": _sub(DEPTH, b'"BTC_USDT"', b'"BTC\\u005fUSDT"'),
    "escaped number": _sub(DEPTH, b'"11700.5"', b'"11700\\u002e5"'),
    "unknown envelope key": _sub(DEPTH, b'"id":null', b'"id":null,"ts":1'),
    "unknown depth key": _sub(DEPTH, b'{"asks"', b'{"ts":1,"asks"'),
    "unknown trade key": _sub(TRADES, b'"type":"sell"', b'"type":"sell","x":0'),
    "missing trade key": _sub(TRADES, b'"amount":"0.1",', b""),
    "duplicate trade key": _sub(TRADES, b'"amount":"0.1",', b'"amount":"0.1","amount":"0.2",'),
    "duplicate asks": _sub(DEPTH, b'"bids"', b'"asks"'),
    "duplicate params": _sub(DEPTH, b',"id":null', b',"params":[false,{},"X"]'),
    "duplicate method": _sub(DEPTH, b',"id":null', b',"method":"depth.update"'),
    "duplicate id": _sub(DEPTH, b',"id":null', b',"id":null,"id":null'),
    "id not null": _sub(DEPTH, b'"id":null', b'"id":5'),
    "no method": _sub(DEPTH, b'"method":"depth.update",', b""),
    "no params": b'{"method":"depth.update","id":null}',
    "other method": _sub(DEPTH, b"depth.update", b"ticker.update"),
    "method/body mismatch": _sub(DEPTH, b"depth.update", b"trades.update"),
    "body/method mismatch": _sub(TRADES, b"trades.update", b"depth.update"),
    "empty depth object": b'{"method":"depth.update","params":[false,{},"BTC_USDT"],"id":null}',
    "clean not bool": _sub(DEPTH, b"[false,", b"[0,"),
    "exponent": _sub(DEPTH, b'"11700.5"', b'"1.17005e4"'),
    "bare exponent": _sub(TRADES, b"1716000000.1,", b"1.7160000001e9,"),
    "sign plus": _sub(DEPTH, b'"11700.5"', b'"+11700.5"'),
    "sign minus amount": _sub(DEPTH, b'"0.25"', b'"-0"'),
    "negative time": _sub(TRADES, b"1716000000.1,", b"-1716000000.1,"),
    "leading point": _sub(DEPTH, b'"0.25"', b'".25"'),
    "bare leading zero": _sub(TRADES, b"1716000000.1,", b"01716000000.1,"),
    "bare trailing point": _sub(TRADES, b"1716000000.1,", b"1716000000.,"),
    "zero price": _sub(DEPTH, b'"11700.5"', b'"0.000"'),
    "17 integer digits": _sub(DEPTH, b'"11700.5"', b'"11700000000000000"'),
    "20 digits": _sub(DEPTH, b'"11700.5"', b'"11700.500000000000001"'),
    "beyond 2**53, fraction of zeros": _sub(DEPTH, b'"0.25"', b'"9007199254740993.0000"'),
    "mantissa above 2**53": _sub(DEPTH, b'"11700.5"', b'"9007199254740993"'),
    "long fraction": _sub(DEPTH, b'"0.25"', b'"0.2500000000000000001"'),
    "17 fraction digits": _sub(DEPTH, b'"0.25"', b'"0.25000000000000001"'),
    "float id": _sub(TRADES, b'"id":3282939930', b'"id":3282939930.0'),
    "negative id": _sub(TRADES, b'"id":3282939930', b'"id":-1'),
    "id leading zero": _sub(TRADES, b'"id":3282939930', b'"id":03282939930'),
    "19-digit id": _sub(TRADES, b'"id":3282939930', b'"id":9223372036854775807'),
    "id beyond int64": _sub(TRADES, b'"id":3282939930', b'"id":9223372036854775808'),
    "string id": _sub(TRADES, b'"id":3282939930', b'"id":"3282939930"'),
    "type BUY": _sub(TRADES, b'"type":"buy"', b'"type":"BUY"'),
    "type other": _sub(TRADES, b'"type":"buy"', b'"type":"bid"'),
    "symbol too long": _sub(DEPTH, b'"BTC_USDT"', b'"' + b"A" * 33 + b'"'),
    "symbol empty": _sub(DEPTH, b'"BTC_USDT"', b'""'),
    "symbol with space": _sub(DEPTH, b'"BTC_USDT"', b'"BTC USDT"'),
    "symbol non-ascii": _sub(DEPTH, b'"BTC_USDT"', '"BTC_\u00e9"'.encode()),
    "symbol not a string": _sub(DEPTH, b'"BTC_USDT"', b"7"),
    "params extra element": _sub(DEPTH, b'"BTC_USDT"]', b'"BTC_USDT",1]'),
    "level of three": _sub(DEPTH, b'["11700.5","0.25"]', b'["11700.5","0.25","1"]'),
    "level of one": _sub(DEPTH, b'["11700.5","0.25"]', b'["11700.5"]'),
    "levels not array": _sub(DEPTH, b'"bids":[["11698.2","1.5"],["11690","0"]]', b'"bids":{}'),
    "trade not object": _sub(TRADES, b'[{"id":3282939930', b'[[{"id":3282939930', 1),
    "ticker unknown key": _sub(TICKER, b'"last":', b'"x":1,"last":'),
    "ticker duplicate key": _sub(TICKER, b'"last":"60012.79",', b'"last":"60012.79","last":"1",'),
    "ticker duplicate symbol": _sub(TICKER, b'"timestamp"', b'"symbol":"X","timestamp"'),
    "ticker no symbol": _sub(TICKER, b'"symbol":"btc_usdt",', b""),
    "ticker symbol null": _sub(TICKER, b'"btc_usdt"', b"null"),
    "ticker symbol escaped": _sub(TICKER, b'"btc_usdt"', b'"btc\\u005fusdt"'),
    "ticker symbol too long": _sub(TICKER, b'"btc_usdt"', b'"' + b"A" * 33 + b'"'),
    "ticker null value": _sub(TICKER, b'"60012.79",', b"null,", 1),
    "ticker empty value": _sub(TICKER, b'"60012.79",', b'"",', 1),
    "ticker bare value": _sub(TICKER, b'"60012.79",', b"60012.79,", 1),
    "ticker negative value": _sub(TICKER, b'"60012.79",', b'"-60012.79",', 1),
    "ticker exponent value": _sub(TICKER, b'"60012.79",', b'"6.001279e4",', 1),
    "ticker nan value": _sub(TICKER, b'"60012.79",', b'"nan",', 1),
    "ticker spaced value": _sub(TICKER, b'"60012.79",', b'" 60012.79",', 1),
    "ticker bool value": _sub(TICKER, b'"60012.79",', b"true,", 1),
    "ticker string timestamp": _sub(TICKER, b"1716000000371", b'"1716000000371"'),
    "ticker float timestamp": _sub(TICKER, b"1716000000371", b"1716000000371.5"),
    "ticker negative timestamp": _sub(TICKER, b"1716000000371", b"-1716000000371"),
    "ticker null timestamp": _sub(TICKER, b"1716000000371", b"null"),
    "ticker huge timestamp": _sub(TICKER, b"1716000000371", b"17160000003710000000000"),
    "ticker empty object": b'{"method":"ticker.update","params":[{}],"id":null}',
    "ticker empty params": b'{"method":"ticker.update","params":[],"id":null}',
    "ticker item not object": _sub(TICKER, b'"params":[{', b'"params":[1,{'),
    "ticker params object": b'{"method":"ticker.update","params":{"symbol":"A"},"id":null}',
    "ticker two nested lists": _sub(TICKER, b'"params":[{', b'"params":[[],[{').replace(
        b'}],"id"', b'}]],"id"'
    ),
    "ticker nested unclosed": _sub(TICKER, b'"params":[{', b'"params":[[{'),
    "ticker with clean": _sub(TICKER, b'"params":[{', b'"params":[false,{'),
    "ticker space": _sub(TICKER, b'"last":', b'"last": '),
    "ticker method on depth body": _sub(DEPTH, b"depth.update", b"all_ticker.update"),
    "depth method on ticker body": _sub(TICKER, b"ticker.update", b"depth.update"),
    "ticker truncated": TICKER[:-1],
    # the exchange's key order (ff_ticker_fixed), then something its any-order loop refuses
    "doc ticker duplicate last key": _sub(TICKER_DOC, b'"timestamp"', b'"last":"1","timestamp"'),
    "doc ticker extra key": _sub(TICKER_DOC, b'"timestamp"', b'"x":"1","timestamp"'),
    "doc ticker bad value": _sub(TICKER_DOC, b'"2216.4"', b'"2216.4e0"'),
    "doc ticker bad timestamp": _sub(TICKER_DOC, b"1716000000116", b"01716000000116"),
    "doc ticker bad symbol": _sub(TICKER_DOC, b'"XRP_usdt"', b'"XRP usdt"'),
    "doc ticker no closing brace": _sub(TICKER_DOC, b"116}]", b"116]"),
    "doc ticker space": _sub(TICKER_DOC, b'"best_ask":', b'"best_ask": '),
    "doc ticker truncated": TICKER_DOC[:-20],
    "truncated": DEPTH[:-1],
    "nul after": DEPTH + b"\x00",
}


@pytest.mark.parametrize("name", sorted(SURPRISES))
def test_surprises_go_to_the_general_parser(name: str) -> None:
    assert check_text(SURPRISES[name]) is None


#: Variants the fast path takes (still bit-identical to the general parser: check_text).
TAKEN: dict[str, bytes] = {
    "params first": b'{"params":[false,{"asks":[["1.5","2"]]},"x"],"id":null,"method":"depth.update"}',
    "id first": b'{"id":null,"method":"trades.update","params":[true,[],"A"]}',
    "no id": b'{"method":"depth.update","params":[true,{"bids":[],"asks":[]},"A"]}',
    "bids only": b'{"method":"depth.update","params":[true,{"bids":[["0.5","0"]]},"a_b"]}',
    "bare numbers": _sub(_sub(DEPTH, b'"11700.5"', b"11700.5"), b'"0.25"', b"0.25"),
    "bare integer": _sub(DEPTH, b'"11700.5"', b"11700"),
    "quoted time": _sub(TRADES, b"1716000000.1,", b'"1716000000.1",'),
    "integer time": _sub(TRADES, b"1716000000.1,", b"1716000000,"),
    "zero time": _sub(TRADES, b"1716000000.1,", b"0,"),
    "quoted leading zeros": _sub(DEPTH, b'"11700.5"', b'"0011700.50"'),
    "quoted trailing point": _sub(DEPTH, b'"11700.5"', b'"11700."'),
    "16 integer digits": _sub(DEPTH, b'"11700.5"', b'"1170000000000000"'),
    "2**53": _sub(DEPTH, b'"11700.5"', b'"9007199254740992"'),
    "19 digits": _sub(DEPTH, b'"11700.5"', b'"000.9007199254740992"'),
    "16 fraction digits": _sub(DEPTH, b'"0.25"', b'"0.2500000000000001"'),
    "20 digits, trailing zeros": _sub(DEPTH, b'"0.25"', b'"240451360095.00000000"'),
    "trailing zeros beyond 2**53": _sub(DEPTH, b'"0.25"', b'"64435670105.00000000"'),
    "bare trailing zeros beyond 2**53": _sub(TRADES, b"1716000000.1,", b"1716000000.1000000000,"),
    "tiny": _sub(DEPTH, b'"0.25"', b'"0.0000000000000001"'),
    "zero id": _sub(TRADES, b'"id":3282939930', b'"id":0'),
    "16-digit id": _sub(TRADES, b'"id":3282939930', b'"id":1234567890123456'),
    "trade keys reordered": _sub(
        TRADES, b'{"id":3282939930,"time":1716000000.123456,', b'{"time":1716000000.123456,"id":3282939930,'
    ),
    "32-char symbol": _sub(DEPTH, b'"BTC_USDT"', b'"' + b"~!#$%&'()*+,-./:;<=>?@[]^_`{|}az" + b'"'),
    "empty trades": b'{"method":"trades.update","params":[false,[],"BTC_USDT"],"id":null}',
    "all_ticker": _sub(TICKER, b'"ticker.update"', b'"all_ticker.update"'),
    "ticker nested": _sub(TICKER, b'"params":[{', b'"params":[[{').replace(b'}],"id"', b'}]],"id"'),
    "two tickers": _sub(TICKER, b'}],"id"', b'},{"symbol":"E","last":"1"}],"id"'),
    "ticker keys reordered": _sub(
        TICKER, b'{"symbol":"btc_usdt","open_24h":"60000.12",', b'{"open_24h":"60000.12","symbol":"btc_usdt",'
    ),
    "ticker symbol only": b'{"method":"ticker.update","params":[{"symbol":"A"}],"id":null}',
    "ticker zero timestamp": _sub(TICKER, b"1716000000371", b"0"),
    "ticker volume zeros": _sub(TICKER, b'"251.20954400"', b'"240451360095.00000000"'),
    "ticker id first": b'{"id":null,"params":[{"symbol":"A","last":"1.5"}],"method":"ticker.update"}',
    # the exchange's key order (ff_ticker_fixed) and near misses the any-order loop reads
    "doc ticker": TICKER_DOC,
    "doc all_ticker": _sub(TICKER_DOC, b'"ticker.update"', b'"all_ticker.update"'),
    "doc ticker nested": _sub(TICKER_DOC, b'"params":[{', b'"params":[[{').replace(b'}],"id"', b'}]],"id"'),
    "doc tickers, two": _sub(TICKER_DOC, b'}],"id"', b"}," + TICKER_DOC[36:-11] + b',"id"'),
    "doc ticker with high_24h (local exchange)": _sub(
        TICKER_DOC, b'"low_24h"', b'"high_24h":"0.53","low_24h"'
    ),
    "doc ticker high_24h last": _sub(TICKER_DOC, b'"timestamp"', b'"high_24h":"0.53","timestamp"'),
    "doc ticker without last_qty": _sub(TICKER_DOC, b'"last_qty":"2216.4",', b""),
    "doc ticker timestamp first": _sub(
        _sub(TICKER_DOC, b',"timestamp":1716000000116', b""),
        b'{"symbol"',
        b'{"timestamp":1716000000116,"symbol"',
    ),
    "doc ticker lower-case symbol": _sub(TICKER_DOC, b'"XRP_usdt"', b'"' + b"a" * 32 + b'"'),
    "doc ticker short decimals": _sub(TICKER_DOC, b'"5000000.00000000"', b'"5"'),
    "doc ticker zero timestamp": _sub(TICKER_DOC, b"1716000000116", b"0"),
}


@pytest.mark.parametrize("name", sorted(TAKEN))
def test_valid_variants_take_the_fast_path(name: str) -> None:
    fast = check_text(TAKEN[name])
    assert fast is not None and fast[6] == -1


NUMBERS = (
    "0",
    "00",
    "0.0",
    "1",
    "1.",
    "01",
    "1.5",
    "0.1",
    "0.3",
    "2.675",
    "9.999999999999999",
    "0.30000000000000004",
    "123456789.0123456789",
    "1234567890123456",
    "12345678901234567",
    "9007199254740992",
    "9007199254740993",
    "9007199254740991.5",
    "4503599627370497.5",
    "0.000000000000000001",
    "0.0000000000000000001",
    "99999999.99999999",
    "1716000000.123456",
    "60000.12",
    "0.00001734",
    "0.0001234",
    "40000",
    "50000000",
    "12345678",
    "123456789",
    "1234567.8",
    "12345678.9",
    "0.12345678",
    "0.123456789",
    "8.01",
    "80.1",
    "0.00000001",
    "1e5",
    "1E-5",
    "-1",
    "+1",
    ".5",
    "",
    "1.2.3",
    "1..2",
    "١",
)


def test_numbers_in_every_slot() -> None:
    """Every number text as a quoted and a bare price, amount, time and id: the fast path
    gives up or agrees with the general parser, which agrees with float()."""
    _parse = _parse_module()
    taken = 0
    for s in NUMBERS:
        for tok in (f'"{s}"', s):
            texts = [
                '{"method":"depth.update","params":[false,{"asks":[[%s,"2"]]},"N"],"id":null}' % tok,
                '{"method":"depth.update","params":[false,{"bids":[["3",%s]]},"N"],"id":null}' % tok,
                '{"method":"trades.update","params":[false,[{"id":1,"time":%s,"price":"1","amount":"1","type":"buy"}],"N"]}'
                % tok,
                '{"method":"trades.update","params":[false,[{"id":1,"time":1,"price":%s,"amount":"1","type":"buy"}],"N"]}'
                % tok,
                '{"method":"trades.update","params":[false,[{"id":1,"time":1,"price":"1","amount":%s,"type":"buy"}],"N"]}'
                % tok,
                '{"method":"trades.update","params":[false,[{"id":%s,"time":1,"price":"1","amount":"1","type":"buy"}],"N"]}'
                % tok,
            ]
            for slot, text in enumerate(texts):
                fast = check_text(text.encode())
                if fast is None:
                    continue
                taken += 1
                if slot == 5:
                    assert fast[5][0][0] == int(s), f"{text}: {fast}"
                else:
                    # slots: ask price, bid amount, trade time, price, amount
                    got = (
                        (fast[3] + [(0.0, 0.0)])[0][0]
                        if slot == 0
                        else (fast[4][0][1] if slot == 1 else fast[5][0][slot - 1])
                    )
                    assert bits(got) == bits(float(s)), f"{text}: {fast}"
    assert taken > 100


def test_decimal_shapes() -> None:
    """Quoted and bare decimals of every shape up to 20 digits (integer digits x fraction
    digits, point or not; random, zero-heavy and nine-heavy digits) in a price slot, an
    amount slot and the time slot: bit-identical to float(), and taken whenever the fast
    path's documented limits allow (digit runs <= 16, <= 19 digits, mantissa <= 2**53)."""
    rng = random.Random(99)
    taken = 0
    for ni in range(18):
        for nf in list(range(18)) + [None]:
            for kind in ("random", "zeros", "nines", "lead0"):
                digits = {"random": "0123456789", "zeros": "0000000001", "nines": "9999999998"}.get(
                    kind, "0123456789"
                )
                ip = "".join(rng.choice(digits) for _ in range(ni))
                if kind == "lead0" and ni:
                    ip = "0" + ip[1:]
                fp = None if nf is None else "".join(rng.choice(digits) for _ in range(nf))
                s = ip if fp is None else f"{ip}.{fp}"
                if not s or s == ".":
                    continue
                mant = int((ip + (fp or "")) or "0")
                within = 1 <= ni <= 16 and (nf or 0) <= 16 and ni + (nf or 0) <= 19 and mant <= 2**53
                texts = [
                    '{"method":"depth.update","params":[false,{"asks":[["%s","2"]]},"N"],"id":null}' % s,
                    '{"id":null,"method":"depth.update","params":[false,{"bids":[["3","%s"]]},"N"]}' % s,
                    '{"method":"trades.update","params":[false,[{"id":1,"time":%s,"price":"1","amount":"1","type":"buy"}],"N"]}'
                    % s,
                ]
                for slot, text in enumerate(texts):
                    fast = check_text(text.encode())
                    bare = slot == 2
                    json_ok = not (ip == "" or (nf is not None and nf == 0) or (len(ip) > 1 and ip[0] == "0"))
                    if within and (not bare or json_ok) and (slot != 0 or float(s) > 0):
                        assert fast is not None, f"not taken: {text}"
                    if fast is None:
                        continue
                    taken += 1
                    got = fast[3][0][0] if slot == 0 else (fast[4][0][1] if slot == 1 else fast[5][0][1])
                    assert bits(got) == bits(float(s)), f"{text}: {got!r} != {float(s)!r}"
    assert taken > 1000


# --- fuzzers' inputs ----------------------------------------------------------------------------


def _fuzz_seeds() -> tuple[bytes, ...]:
    import test_fuzz

    corpus = _corpus_module()
    compact = tuple(f.plain for f in corpus.make_corpus(40, seed=11))
    return tuple(test_fuzz.SEEDS) + COMPACT + compact


def test_fuzz_mutations_agree() -> None:
    """test_fuzz's text mutators (1, 2 or 4 per input) over its seeds and compact frames."""
    import test_fuzz

    seeds = _fuzz_seeds()
    rng = random.Random(20240613)
    _parse = _parse_module()
    parser = _parse.Parser()
    taken = 0
    n = 6000
    for _ in range(n):
        text = rng.choice(seeds)
        for _ in range(rng.choice((1, 1, 1, 2, 4))):
            op = rng.choice(test_fuzz.TEXT_OPS)
            blob = rng.choice(
                (
                    b"",
                    rng.choice(test_fuzz.SPECIAL_NUMBERS),
                    rng.choice(test_fuzz.SPECIAL_STRINGS),
                    bytes(rng.randrange(256) for _ in range(rng.randint(1, 8))),
                )
            )
            text = test_fuzz.mutate_text(
                text, op, rng.randrange(1 << 16), rng.randrange(1 << 16), rng.randrange(1 << 16), blob
            )
        if check_text(text[: 1 << 16], parser) is not None:
            taken += 1
    assert taken > n // 30, f"only {taken} of {n} mutated inputs reached the end of the fast path"


def test_equivalence_generator_messages_agree() -> None:
    """The equivalence test's message generator (random key order, whitespace, escapes,
    bare and padded numbers, exponents, violations): compact ones exercise the fast path."""
    import test_equivalence

    rng = random.Random(1729)
    taken = 0
    for i in range(3000):
        payload = test_equivalence.make_payload(rng, i)
        raw = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else bytes(payload)
        if raw.lstrip(b" \t\r\n")[:1] not in (b"{", b"["):
            try:
                raw = zlib.decompress(raw)
            except zlib.error:
                continue
        if check_text(raw) is not None:
            taken += 1
    assert taken > 100  # most of its messages have whitespace, escapes or exotic numbers


@pytest.mark.parametrize("text", COMPACT, ids=COMPACT_IDS)
def test_every_prefix_and_every_byte_change(text: bytes) -> None:
    import test_fuzz

    for k in range(len(text) + 1):
        check_text(text[:k])
        check_text(text[k:])
    for i in range(len(text)):
        for c in test_fuzz.INTERESTING_BYTES[:: 3 if len(text) > 600 else 1]:
            check_text(text[:i] + bytes([c]) + text[i + 1 :])
        check_text(text[:i] + text[i + 1 :])


#: The child of parse_at_guard_pages: each text parsed by every path, placed so that it ends
#: at a PROT_NONE page ("end") or starts right after one ("start").
GUARD_SCRIPT = textwrap.dedent(
    """
    import ctypes, mmap, sys
    from fastfeed._parse import parse_py
    side = sys.argv[1]
    texts = [bytes.fromhex(h[1:]) for h in sys.stdin.read().split()]
    page = mmap.PAGESIZE
    m = mmap.mmap(-1, 3 * page)
    buf = (ctypes.c_char * (3 * page)).from_buffer(m)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    guard = 2 * page if side == "end" else 0
    if libc.mprotect(ctypes.addressof(buf) + guard, page, 0) != 0:
        sys.exit("mprotect failed")
    n = 0
    for t in texts:
        t = t[:page]
        at = 2 * page - len(t) if side == "end" else page
        m[at:at + len(t)] = t
        view = memoryview(m)[at:at + len(t)]
        for path in ("fast", "auto", "general"):
            parse_py(view, path)
        view.release()
        n += 1
    print("parsed", n)
    """
)


def parse_at_guard_pages(texts: list[bytes]) -> None:
    """Parse every text by every path in a child process, once ending at a PROT_NONE page
    and once starting right after one: a read outside the message kills the child."""
    for side in ("end", "start"):
        proc = subprocess.run(
            [sys.executable, "-c", GUARD_SCRIPT, side],
            input="\n".join("x" + t.hex() for t in texts),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, f"{side}: child died ({proc.returncode}): {proc.stderr[-2000:]}"
        assert proc.stdout.split() == ["parsed", str(len(texts))]


@pytest.mark.skipif(sys.platform != "linux", reason="mprotect guard page via ctypes: Linux only")
def test_nothing_read_outside_the_message() -> None:
    """Every prefix (and one-byte changes) of compact frames, placed against a PROT_NONE
    page after the message and before it: a read outside the message kills the child."""
    _parse_module()
    import test_fuzz

    texts: list[bytes] = []
    for text in COMPACT:
        texts += [text[:k] for k in range(len(text) + 1)]
        texts += [text[:i] + bytes([c]) for i in range(len(text)) for c in b'"0.,]}\\']
    texts += list(test_fuzz.SEEDS)
    parse_at_guard_pages(texts)


def test_symbol_hash_agrees_between_paths() -> None:
    """The fast path hashes the symbol while copying it (ff_symbol), the general parser and
    the engine's table with ff_symhash: a symbol of any length (1..32, lower case too)
    reached through both paths is one symbol of the engine."""
    cls = compiled_engine_cls()
    eng = cls(depth=10)
    names = ["A", "ab", "BTC_USDT", "eth_usdt9", "x" * 15, "Y_" * 8, "z" * 17, "~" * 24, "q" * 31, "a" * 32]
    for i, name in enumerate(names):
        fast = DEPTH.replace(b'"BTC_USDT"', b'"' + name.encode() + b'"')
        general = b" " + fast  # leading whitespace: the general parser reads it
        assert check_text(fast) is not None and check_text(general) is None
        eng.feed(fast, 1)
        eng.feed(general, 2)
        assert len(eng.symbols) == i + 1, (name, eng.symbols)
        assert eng.symbols[-1] == name.upper()


def test_ticker_symbol_rows_agree_between_paths() -> None:
    """The ticker table looks a name up by the hash its parser computed (ff_symbol on the
    fast paths, ff_symhash in the general parser and the Python fallback): every path to a
    name (any length 1..32, lower case too) reaches the same row, with the same record."""
    cls = compiled_engine_cls()
    eng = cls(depth=10)
    names = ["A", "ab", "XRP_USDT", "eth_usdt9", "x" * 15, "Y_" * 8, "z" * 17, "~" * 24, "q" * 31, "a" * 32]
    for i, name in enumerate(names):
        fixed = TICKER_DOC.replace(b'"XRP_usdt"', b'"' + name.encode() + b'"')
        loop = _sub(fixed, b'"last_qty":"2216.4",', b"")
        general = b" " + fixed  # leading whitespace: the general parser reads it
        slow = _sub(fixed, b'"2216.4"', b'" 2216.4"')  # only Python's float() takes it
        assert check_text(fixed) is not None and check_text(loop) is not None
        assert check_text(general) is None and check_text(slow) is None
        slow_before = eng._ticker_slow_frames
        rows = []
        for k, text in enumerate((fixed, loop, general, slow)):
            eng.feed(text, k)
            assert eng.ticker_symbols == [n.upper() for n in names[: i + 1]], name
            rows.append(eng.ticker(name))
        assert eng._ticker_slow_frames == slow_before + 1
        full = [bits(dataclasses.astuple(dataclasses.replace(r, recv_ns=0))) for r in rows]
        assert full[0] == full[2] == full[3]
        assert full[1] == bits(
            dataclasses.astuple(dataclasses.replace(rows[0], recv_ns=0, last_qty=math.nan))
        )
        assert [r.recv_ns for r in rows] == [0, 1, 2, 3]
