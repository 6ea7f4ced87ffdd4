"""The live view (fastfeed.live) rendered into fixed-size rich Consoles: it fits the width
(columns are dropped, numbers never cut), keeps a stable box width, says "N of M" when it
elides tickers, shows the selected book's trades, uses one precision per symbol, and leaves
its last frame on the screen."""

from __future__ import annotations

import io
import re
import time
from typing import Any

import numpy as np
import pytest

from fastfeed import Engine
from fastfeed.live import LiveDisplay, Monitor, render
from fastfeed.live.render import PANEL_CHROME
from fastfeed.protocol import Ticker

from helpers import depth_text, trade, trades_text

rich = pytest.importorskip("rich")
from rich.console import Console  # noqa: E402

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native


class FakeFeed:
    """What the views read of a Feed, over a real Engine."""

    def __init__(self, engine: Any, tickers: dict[str, Ticker]) -> None:
        self.engine = engine
        self.trades = engine.trades
        self.latest_tickers = tickers

    @property
    def stats(self) -> dict[str, Any]:
        return {"engine": self.engine.stats, "connected": True, "connects": 1, "reconnects": 0}

    def timings(self) -> np.ndarray:
        return np.zeros((0, 2), dtype=np.int64)


def _ticker(sym: str, last: float) -> Ticker:
    return Ticker(
        sym,
        last,
        1.0,
        last - 0.5,
        2.0,
        last + 0.5,
        3.0,
        last * 0.98,
        last * 0.9,
        123456.789,
        9.9e9,
        1_700_000_000_000,
    )


def make_monitor(n_tickers: int = 20, selected: int = 0) -> Monitor:
    eng = Engine(depth=50)
    now = time.time_ns()
    # BTC: long prices with 2 decimals (one level has 1), ETH: 4-decimal prices
    eng.feed(
        depth_text(
            True,
            "BTC_USDT",
            [[f"{60001.25 + i:.2f}", f"{1.5 + i / 1000:.4f}"] for i in range(20)] + [["60100.5", "2"]],
            [[f"{60000.75 - i:.2f}", f"{12.25 + i:.3f}"] for i in range(20)],
        ),
        now,
    )
    eng.feed(
        depth_text(
            True,
            "ETH_USDT",
            [[f"{3000.1234 + i:.4f}", "10"] for i in range(20)],
            [[f"{2999.5678 - i:.4f}", "7.5"] for i in range(20)],
        ),
        now,
    )
    eng.feed(
        trades_text(
            False,
            "BTC_USDT",
            [
                trade(101, "60001.25", "0.5", "buy", now / 1e9),
                trade(100, "60000.75", "0.25", "sell", now / 1e9),
            ],
        ),
        now,
    )
    eng.feed(trades_text(False, "ETH_USDT", [trade(7, "3000.1234", "3", "buy", now / 1e9)]), now + 1)
    names = ["BTC_USDT", "ETH_USDT"] + [f"C{i:02d}_USDT" for i in range(n_tickers - 2)]
    tickers = {
        s: _ticker(s, 60000.5 if s == "BTC_USDT" else 3000.25 if s == "ETH_USDT" else 1.5 + i)
        for i, s in enumerate(names[:n_tickers])
    }
    m = Monitor(["BTC_USDT", "ETH_USDT"], title="fastfeed demo", url="ws://127.0.0.1:45678/ws/v1/", depth=10)
    m.attach(FakeFeed(eng, tickers))
    m.select(selected)
    return m


def content_lines(panel: Any) -> list[str]:
    return panel.renderable.plain.split("\n")


@pytest.mark.parametrize(("width", "height"), [(80, 24), (60, 20), (100, 40), (132, 50)])
def test_view_fits_the_width_without_cutting_anything(width: int, height: int) -> None:
    m = make_monitor()
    panel = render(m, width=width, height=height)
    inner = width - PANEL_CHROME
    lines = content_lines(panel)
    assert max(len(s) for s in lines) <= inner, [s for s in lines if len(s) > inner]
    buf = io.StringIO()
    Console(file=buf, width=width, height=height, color_system=None).print(panel)
    out = buf.getvalue().splitlines()
    assert {len(s) for s in out} == {width}  # the box is exactly the terminal's width
    assert len(out) <= height  # and no taller than the terminal
    # every price shown is a whole price of the book at the symbol's precision
    shown = set(re.findall(r"\b\d+\.\d+\b", "\n".join(lines)))
    assert "60001.25" in shown and "60000.75" in shown


def test_box_width_is_stable_as_numbers_change() -> None:
    m = make_monitor()
    a = render(m, width=80, height=24)
    m.feed.engine.feed(depth_text(False, "BTC_USDT", [["60001.25", "123456.1234"]], None), time.time_ns())
    m.sample()
    b = render(m, width=80, height=24)
    widths = set()
    for panel in (a, b):
        buf = io.StringIO()
        Console(file=buf, width=80, color_system=None).print(panel)
        widths |= {len(s) for s in buf.getvalue().splitlines()}
    assert widths == {80}


def test_tickers_say_n_of_m_when_elided() -> None:
    m = make_monitor(n_tickers=20)
    text = render(m, width=100).renderable.plain
    assert "tickers (10 of 20)" in text
    text = render(make_monitor(n_tickers=5), width=100).renderable.plain
    assert "tickers\n" in text and " of " not in text.split("tickers", 1)[1].split("\n", 1)[0]
    small = render(m, width=80, height=24).renderable.plain
    assert re.search(r"tickers \((\d+) of 20\)", small)


def test_last_trades_follow_the_selected_book() -> None:
    m = make_monitor(selected=0)
    text = render(m, width=120).renderable.plain
    assert "last trades BTC_USDT" in text and "60001.25" in text
    m.select(1)
    text = render(m, width=120).renderable.plain
    assert "last trades ETH_USDT" in text
    trades_part = text.split("last trades ETH_USDT", 1)[1].split("tickers", 1)[0]
    assert "3000.1234" in trades_part
    assert "60001.25" not in trades_part and "60000.75" not in trades_part.replace("60000.7500", "")


def test_prices_use_the_symbols_precision_everywhere() -> None:
    """BTC's book has a level 60100.5 (one decimal) among 2-decimal prices: it is shown as
    60100.50, and the trade and ticker prices of BTC use 2 decimals too."""
    m = make_monitor()
    assert m.decimals("BTC_USDT")[0] == 2 and m.decimals("ETH_USDT")[0] == 4
    m.depth = 50
    text = render(m, width=160, height=200).renderable.plain
    assert "60100.50" in text and not re.search(r"60100\.5\b", text)
    assert "60000.50" in text  # the BTC ticker's last (60000.5) at 2 decimals
    m.select(1)
    text = render(m, width=160, height=200).renderable.plain
    assert "3000.2500" in text  # the ETH ticker's last (3000.25) at the book's 4 decimals


def test_final_screen_stays_after_exit() -> None:
    m = make_monitor()
    buf = io.StringIO()
    console = Console(file=buf, width=80, height=24, force_terminal=True, color_system=None)
    quit_called: list[bool] = []
    d = LiveDisplay(m, lambda: quit_called.append(True), console=console)
    import asyncio

    async def run() -> None:
        with d:
            d.update()
            d.on_key("q")

    asyncio.run(run())
    assert quit_called == [True]
    out = buf.getvalue()
    last = out.rsplit("fastfeed demo", 1)[1]
    assert "\x1b[2K" not in last and "\x1b[1A" not in last  # not erased after the last frame
    assert "keys:" in last


def test_plain_line_and_summary_use_the_symbols_precision() -> None:
    from fastfeed.live import plain_line, summary_lines, top_of_book_lines

    m = make_monitor()
    eng = m.feed.engine
    eng.feed(depth_text(False, "BTC_USDT", None, [["60000.75", "0"], ["60000.5", "1"]]), time.time_ns())
    m.sample()  # the best bid is now 60000.5 (one decimal on the wire, BTC has two)
    assert "BTC_USDT 60000.50 / 60001.25" in plain_line(m)
    text = "\n".join(summary_lines(m))
    assert "60000.50 x 1.000 | 60001.25 x 1.500" in text and "spread 0.75" in text
    # without a monitor (replay): the precision the book's levels need
    lines = top_of_book_lines(eng.books)
    assert any("60000.50 x 1.000 | 60001.25 x 1.500" in s for s in lines), lines
    assert any("2999.5678 x 7.5 | 3000.1234 x 10.0" in s for s in lines), lines


def test_fastfeed_view_is_a_compatible_alias() -> None:
    import fastfeed.live
    import fastfeed.view

    for name in fastfeed.view.__all__:
        assert getattr(fastfeed.view, name) is getattr(fastfeed.live, name), name
