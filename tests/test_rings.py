"""The one record ring (``MirrorRing``) under the trade ring, the event log and the ticker
history, and its pure-Python twin (``ReferenceRing``): the same capacity rule, the same
``latest``/``since`` windows and the same typed ``...Overwritten`` error in all of them."""

from __future__ import annotations

import pytest

from fastfeed._events import EventRing
from fastfeed._ring import MirrorRing, TradeRing
from fastfeed._ticker import TickerRing
from fastfeed.errors import EventsOverwritten, TickersOverwritten, TradesOverwritten
from fastfeed.reference import ReferenceRing, ReferenceTickerRing, ReferenceTradeRing

from helpers import compiled_engine_cls, trade, trades_text

pytestmark = pytest.mark.native

RINGS = [
    pytest.param(TradeRing, TradesOverwritten, "trade", 40, id="TradeRing"),
    pytest.param(EventRing, EventsOverwritten, "event row", 36, id="EventRing"),
    pytest.param(TickerRing, TickersOverwritten, "ticker record", 32, id="TickerRing"),
]


def test_the_base_is_not_made_directly():
    with pytest.raises(TypeError, match="base of the record rings"):
        MirrorRing()
    assert all(issubclass(c, MirrorRing) for c in (TradeRing, EventRing, TickerRing))
    assert all(issubclass(c, ReferenceRing) for c in (ReferenceTradeRing, ReferenceTickerRing))


@pytest.mark.parametrize(("cls", "exc", "what", "max_log2"), RINGS)
def test_capacity_rule(cls, exc, what, max_log2):
    assert cls(5).capacity == 8
    assert cls(1).capacity == 1
    for bad in (0, -1, (1 << max_log2) + 1):
        with pytest.raises(ValueError, match=rf"between 1 and 2\*\*{max_log2}"):
            cls(bad)


@pytest.mark.parametrize(("cls", "exc", "what", "max_log2"), RINGS)
def test_empty_ring_windows(cls, exc, what, max_log2):
    ring = cls(4)
    assert len(ring) == 0 and ring.count == 0
    assert ring.latest().shape == (0,) and ring.latest(3).shape == (0,)
    assert ring.since(0).shape == (0,) and ring.since(10).shape == (0,)
    with pytest.raises(ValueError, match="seq must be >= 0"):
        ring.since(-1)
    assert not ring.latest().flags.writeable
    assert repr(ring) == f"<{cls.__name__} count=0 capacity=4>"


def _trade_msg(i: int) -> str:
    return trades_text(False, "BTC_USDT", [trade(100 + i, price=f"1.{i}", time=1700000000 + i)])


def _ticker_msg(i: int) -> str:
    return (
        '{"method":"ticker.update","params":[{"symbol":"btc_usdt","last":"%d",'
        '"timestamp":%d}],"id":null}' % (i + 1, 1700000000000 + i)
    )


def test_trade_windows_and_overwritten_error(engine_cls):
    """Compiled and reference trade rings: the same windows and the same error text once
    the ring wrapped (10 trades into a ring of 4)."""
    eng = engine_cls(trade_capacity=4)
    for i in range(10):
        eng.feed(_trade_msg(i))
    ring = eng.trades
    assert ring.count == 10 and len(ring) == 4
    assert list(ring.latest()["seq"]) == [6, 7, 8, 9]
    assert list(ring.latest(2)["seq"]) == [8, 9]
    assert list(ring.latest(99)["seq"]) == [6, 7, 8, 9]
    assert list(ring.since(7)["seq"]) == [7, 8, 9]
    assert list(ring.latest()["id"]) == [106, 107, 108, 109]
    assert ring.since(10).shape == (0,)
    with pytest.raises(TradesOverwritten, match=r"^trade 5 was overwritten \(ring holds 6\.\.9\)$"):
        ring.since(5)


def test_ticker_windows_and_overwritten_error(engine_cls):
    eng = engine_cls(ticker_capacity=4)
    for i in range(10):
        eng.feed(_ticker_msg(i))
    ring = eng.ticker_history
    assert ring.count == 10 and len(ring) == 4
    assert list(ring.latest()["seq"]) == [6, 7, 8, 9]
    assert [t.last for t in ring.records(8)] == [9.0, 10.0]
    with pytest.raises(TickersOverwritten, match=r"^ticker record 2 was overwritten \(ring holds 6\.\.9\)$"):
        ring.since(2)


def test_event_rows_windows_and_overwritten_error():
    """The event log (compiled only): its error names the remedy."""
    eng = compiled_engine_cls()(event_log=4)
    for i in range(10):
        eng.feed(_trade_msg(i))
    ring = eng.events
    assert isinstance(ring, EventRing) and ring.count == 10 and len(ring) == 4
    assert ring.latest(3).shape == (3,) and not ring.latest().flags.writeable
    with pytest.raises(EventsOverwritten, match=r"^event row 0 was overwritten .*larger event_log"):
        ring.since(0)
