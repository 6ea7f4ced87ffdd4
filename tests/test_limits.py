"""Input cannot grow the engine without bound: the symbol table is capped (max_symbols)."""

from __future__ import annotations

from typing import Any

import pytest

from fastfeed.errors import ParseError, UnknownSymbol

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native


def _depth(sym: str) -> bytes:
    return (
        b'{"method":"depth.update","params":[true,{"asks":[["1.5","1"]],"bids":[]},"%s"],"id":null}'
        % sym.encode()
    )


def _trades(sym: str, tid: int) -> bytes:
    return (
        b'{"method":"trades.update","params":[false,[{"id":%d,"time":1,"price":"1","amount":"1",'
        b'"type":"buy"}],"%s"],"id":null}' % (tid, sym.encode())
    )


def test_symbol_limit(engine_cls: Any) -> None:
    eng = engine_cls(max_symbols=3)
    for s in ("A", "B", "C"):
        eng.feed(_depth(s))
    before = (eng.symbols, eng.trades.count, eng.stats["messages"])
    for payload in (_depth("D"), _trades("E", 1)):
        with pytest.raises(ParseError) as ei:
            eng.feed(payload)
        assert ei.value.reason == "symbol_limit"
    assert (eng.symbols, eng.trades.count, eng.stats["messages"]) == before
    assert eng.stats["rejects"]["symbol_limit"] == 2
    eng.feed(_trades("A", 7))  # known symbols keep working
    assert eng.trades.count == 1
    with pytest.raises(UnknownSymbol):  # asking registers nothing...
        eng.book("Z")
    assert "Z" not in eng.symbols
    assert eng.book("Z", create=True).version == 0  # ...but the user may register any book
    assert "Z" in eng.symbols


def test_max_symbols_must_be_positive(engine_cls: Any) -> None:
    with pytest.raises(ValueError):
        engine_cls(max_symbols=0)
