"""The rich live view of a :class:`~fastfeed.live.Monitor` (:func:`render`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..protocol import safe_text
from .format import _clock, _duration, fmt_bytes, fmt_count, fmt_ns, fmt_num
from .monitor import Monitor

KEYS_HELP = "keys: 1-9 / <- -> / n p select book   + - levels   q quit   (Ctrl-C also stops)"
KEYS_HELP_SHORT = "keys: 1-9 <- -> book  + - levels  q quit"

Cell = tuple[str, str]  # (text, rich style)
GAP = 4  #: columns between side-by-side blocks
#: columns a rich Panel takes around its content (border and padding, both sides)
PANEL_CHROME = 4


class _Table:
    """A table as fixed-width styled cells, built by hand: rich's Table measures every cell
    twice, ~50x slower, and the view is redrawn on the event loop that also processes the
    frames. ``drop`` lists the column indices (or tuples of them, dropped together) that may
    be left out to fit a width, in the order they go; a column is shown whole or not at all, so no number is ever cut."""

    def __init__(
        self,
        title: str,
        headers: Sequence[str],
        rows: Sequence[Sequence[Cell]],
        right: Sequence[bool],
        drop: Sequence[int | tuple[int, ...]] = (),
    ) -> None:
        self.title = title
        self.headers = list(headers)
        self.rows = rows
        self.right = list(right)
        self.drop = [d if isinstance(d, tuple) else (d,) for d in drop]
        self.widths = [len(h) for h in headers]
        for r in rows:
            for i, (text, _) in enumerate(r):
                self.widths[i] = max(self.widths[i], len(text))
        self.dropped = 0
        self.title_max = 24  #: a longer title is cut (with "…") unless there is room

    def columns(self) -> list[int]:
        gone = {i for group in self.drop[: self.dropped] for i in group}
        return [i for i in range(len(self.headers)) if i not in gone]

    def table_width(self) -> int:
        cols = self.columns()
        return sum(self.widths[i] for i in cols) + 2 * (len(cols) - 1) if cols else 0

    def width(self) -> int:
        return max(self.table_width(), min(len(self.title), self.title_max))

    def can_drop(self) -> bool:
        return self.dropped < len(self.drop)

    def fit(self, width: int) -> bool:
        """Drop columns until the table fits ``width``; False if it cannot."""
        while self.width() > width and self.can_drop():
            self.dropped += 1
        return self.width() <= width

    def lines(self) -> list[list[Cell]]:
        cols = self.columns()
        w = self.width()

        def cell(i: int, text: str) -> str:
            return text.rjust(self.widths[i]) if self.right[i] else text.ljust(self.widths[i])

        out: list[list[Cell]] = []
        if self.title:
            out.append([(_crop(self.title, w), "bold cyan")])
        out.append([(cell(i, self.headers[i]), "bold") for i in cols])
        out += [[(cell(i, r[i][0]), r[i][1]) for i in cols] for r in self.rows]
        return out


def _crop(text: str, width: int) -> str:
    """Text (never a number on its own) cut to ``width`` with a visible ellipsis."""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def _line_width(line: list[Cell]) -> int:
    return sum(len(t) for t, _ in line) + 2 * (len(line) - 1)


def _emit(text: Any, tables: Sequence[_Table], width: int | None) -> None:
    """Append tables side by side to a rich Text; with a ``width``, columns are dropped
    (right-most table first) until they fit, else the tables are stacked, each fitted."""
    tables = [tb for tb in tables if tb is not None]
    if width is not None:

        def total() -> int:
            return sum(tb.width() for tb in tables) + GAP * (len(tables) - 1)

        while total() > width:
            shrinkable = [tb for tb in tables if tb.can_drop()]
            if not shrinkable:
                break
            shrinkable[-1].dropped += 1
        if len(tables) > 1 and total() > width:  # stack them
            for tb in tables:
                tb.dropped = 0
            for k, tb in enumerate(tables):
                if k:
                    text.append("\n")
                _emit(text, [tb], width)
            return
        for tb in tables:
            tb.fit(width)
        extra = width - total()
        for tb in tables:  # room left: give it to titles that were cut
            give = min(len(tb.title) - tb.width(), extra)
            if give > 0:
                tb.title_max = tb.width() + give
                extra -= give
    blocks = [tb.lines() for tb in tables]
    widths = [tb.width() for tb in tables]
    height = max((len(b) for b in blocks), default=0)
    for y in range(height):
        for j, b in enumerate(blocks):
            used = 0
            if y < len(b):
                for k, (t, style) in enumerate(b[y]):
                    if k:
                        text.append("  ")
                        used += 2
                    text.append(t, style=style or None)
                    used += len(t)
            if j < len(blocks) - 1:
                text.append(" " * (widths[j] - used + GAP))
        text.append("\n")


def _flow(text: Any, parts: Sequence[Cell], width: int | None, sep: str = "   ") -> None:
    """Append ``parts`` on one line, wrapping between parts (never inside one) at ``width``."""
    used = 0
    for k, (t, style) in enumerate(parts):
        if width is not None and len(t) > width:
            t = _crop(t, width)
        if k and width is not None and used + len(sep) + len(t) > width:
            text.append("\n")
            used = 0
        elif k:
            text.append(sep)
            used += len(sep)
        text.append(t, style=style or None)
        used += len(t)
    text.append("\n")


def _fmt(v: float, decimals: int | None) -> str:
    return fmt_num(v, decimals)


def render(m: Monitor, width: int | None = None, height: int | None = None) -> Any:
    """The rich live view of ``m`` (a renderable).

    With ``width`` (the terminal's columns) the view is exactly that wide (a stable box)
    and fits it: table columns that do not fit are left out (a number is shown whole or
    not at all) and header items wrap between items. With ``height`` (rows) the book and
    ticker tables are shortened to fit. Prices and amounts of a symbol use one precision
    everywhere (:meth:`Monitor.decimals`)."""
    from rich.panel import Panel
    from rich.text import Text

    inner = None if width is None else max(20, width - PANEL_CHROME)
    st = m.stats
    eng = st.get("engine", {})
    fps, bps, ibps = m.rates()
    p50, p99, p999, pmax = m.proc_window()
    w50, w99, w999, wmax = m.wire_window()
    connected = st.get("connected", False)
    rej = sum(m.rejects().values())
    mu = "µs"
    feed = m.feed
    sym = m.selected_symbol
    pdec, adec = m.decimals(sym)

    t = Text(no_wrap=True, overflow="crop")
    # a short terminal: no blank lines between sections, one event line
    compact = height is not None and height < 32
    n_events = min(len(m.events), 1 if compact else 3)

    def gap() -> None:
        if not compact:
            t.append("\n")

    _flow(
        t,
        [
            (f" {m.title} ", "bold reverse"),
            (m.url, ""),
            ("connected" if connected else "DISCONNECTED", "green" if connected else "bold red"),
            (_duration(m.elapsed), ""),
        ],
        inner,
        sep="  ",
    )
    _flow(
        t,
        [
            (f"{fps:,.0f} msg/s", "bold"),
            (f"in {fmt_bytes(bps)}/s", ""),
            (f"({fmt_bytes(ibps)}/s inflated)", ""),
            (f"frames {fmt_count(eng.get('frames', 0))}", ""),
        ],
        inner,
    )
    drifted = (st.get("drift") or {}).get("drifted", 0)
    parts: list[Cell] = [
        (f"rejects {rej}", "bold red" if rej else ""),
        (f"reconnects {st.get('reconnects', 0)}", "bold yellow" if st.get("reconnects") else ""),
        (f"drift {drifted}", "bold yellow" if drifted else ""),
    ]
    if st.get("stale_books"):
        parts.append((f"stale books {st['stale_books']}", "bold yellow"))
    parts += [
        (f"trades {fmt_count(m.trades_seen)}", ""),
        (f"tickers {len(feed.latest_tickers) if feed is not None else 0}", ""),
    ]
    _flow(t, parts, inner)
    gap()
    lat = _Table(
        "",
        ["last 2 s", "p50", "p99", "p99.9", "max"],
        [
            [
                ("inflate+parse+apply / frame", ""),
                (fmt_ns(p50, mu), ""),
                (fmt_ns(p99, mu), ""),
                (fmt_ns(p999, mu), ""),
                (fmt_ns(pmax, mu), ""),
            ],
            [
                ("trade time -> recv", ""),
                (fmt_ns(w50, mu), ""),
                (fmt_ns(w99, mu), ""),
                (fmt_ns(w999, mu), ""),
                (fmt_ns(wmax, mu), ""),
            ],
        ],
        [False, True, True, True, True],
        drop=[3, 4, 2],
    )
    _emit(t, [lat], inner)
    gap()

    # the other sections first, to know how many rows the book may have
    tickers = feed.latest_tickers if feed is not None else {}
    names = [s for s in m.symbols if s in tickers] + sorted(set(tickers) - set(m.symbols))
    book_rows = m.depth
    ticker_rows = min(len(names), 10)
    if height is not None:
        gaps = 0 if compact else 1
        above = t.plain.count("\n")  # header and latency lines, as wrapped to the width
        fixed = 2 + above + 2 + ((2 + gaps) if names else 0) + n_events + (gaps if m.events else 0) + 1 + gaps
        if m.order_count or m.balance_count:
            fixed += 2 + gaps + min(6, max(len(m.orders), min(8, len(m.balances))))
        room = max(0, height - fixed)
        ticker_rows = min(ticker_rows, max(2, room // 3))
        book_rows = min(m.depth, max(3, room - ticker_rows))

    # book | last trades of the same symbol
    book = m.books().get(sym)
    rows: list[list[Cell]] = []
    if book is not None:
        bids = np.array(book.bids[:book_rows])
        asks = np.array(book.asks[:book_rows])
        for i in range(max(len(bids), len(asks))):
            row: list[Cell] = []
            row += (
                [(_fmt(bids[i, 1], adec), ""), (_fmt(bids[i, 0], pdec), "green")]
                if i < len(bids)
                else [("", ""), ("", "")]
            )
            row += (
                [(_fmt(asks[i, 0], pdec), "red"), (_fmt(asks[i, 1], adec), "")]
                if i < len(asks)
                else [("", ""), ("", "")]
            )
            rows.append(row)
        title = f"{sym} book v{book.version} {book.n_bids}x{book.n_asks}"
        title += (
            " live"
            if book.live
            else (
                f" STALE since {_clock(book.stale_since)}" if book.stale_since else " STALE (no snapshot yet)"
            )
        )
        if book.drifts:
            title += f" drift {book.drifts}"
    else:
        title = f"{sym} book (none yet)"
    bt = _Table(title, ["bid size", "bid", "ask", "ask size"], rows, [True] * 4, drop=[(0, 3)])

    trows: list[list[Cell]] = []
    if feed is not None and feed.trades.count and sym in feed.engine.symbols:
        si = feed.engine.symbols.index(sym)
        recent = np.array(feed.trades.latest(min(4096, feed.trades.count)))
        mine = recent[recent["symbol"] == si][-book_rows:][::-1]
        for r in mine:
            buy = r["side"] > 0
            trows.append(
                [
                    (_clock(int(r["recv_ns"])), "dim"),
                    ("buy" if buy else "sell", "green" if buy else "red"),
                    (_fmt(float(r["price"]), pdec), ""),
                    (_fmt(float(r["amount"]), adec), ""),
                ]
            )
    tt = _Table(
        f"last trades {sym}",
        ["time", "side", "price", "amount"],
        trows,
        [False, False, True, True],
        drop=[0, 1, 3],
    )
    _emit(t, [bt, tt], inner)

    if names:
        shown = names[:ticker_rows]
        krows: list[list[Cell]] = []
        for s in shown:
            tk = tickers[s]
            kp, _ = m.decimals(s)
            chg = (tk.last - tk.open_24h) / tk.open_24h * 100 if tk.open_24h else math.nan
            if s == sym:
                mark = ">"
            elif s in m.symbols and m.symbols.index(s) < 9:
                mark = str(m.symbols.index(s) + 1)
            else:
                mark = ""
            krows.append(
                [
                    (mark, "bold"),
                    (safe_text(s, 32), "bold" if s == sym else ""),
                    (_fmt(tk.last, kp), ""),
                    (_fmt(tk.best_bid, kp), "green"),
                    (_fmt(tk.best_ask, kp), "red"),
                    (f"{chg:+.2f}%" if chg == chg else "-", "green" if chg >= 0 else "red"),
                    (fmt_num(tk.base_volume_24h), ""),
                ]
            )
        ktitle = "tickers" + (f" ({len(shown)} of {len(names)})" if len(shown) < len(names) else "")
        gap()
        _emit(
            t,
            [
                _Table(
                    ktitle,
                    ["", "symbol", "last", "bid", "ask", "24h", "24h volume"],
                    krows,
                    [False, False, True, True, True, True, True],
                    drop=[6, 3, 4, 5],
                )
            ],
            inner,
        )

    if m.order_count or m.balance_count:
        orows = [
            [
                (_clock(o.recv_ns), "dim"),
                (safe_text(o.symbol, 32), ""),
                (safe_text(o.side, 12), "green" if o.side == "buy" else "red"),
                (safe_text(str(o.status), 16), ""),
                (_fmt(o.price, m.decimals(o.symbol)[0]), ""),
                (_fmt(o.amount, m.decimals(o.symbol)[1]), ""),
                (_fmt(o.filled, m.decimals(o.symbol)[1]), ""),
            ]
            for o in reversed(m.orders)
        ]
        ot = _Table(
            f"orders ({m.order_count} updates)",
            ["time", "symbol", "side", "status", "price", "amount", "filled"],
            orows,
            [False, False, False, True, True, True, True],
            drop=[0, 6, 3],
        )
        brows = [
            [
                (safe_text(c, 32), ""),
                (safe_text(m.balances[c].raw[0], 24), ""),
                (safe_text(m.balances[c].raw[2], 24), ""),
                (safe_text(m.balances[c].raw[1], 24), ""),
            ]
            for c in sorted(m.balances)[:8]
        ]
        btab = _Table(
            f"balances ({m.balance_count} updates)",
            ["currency", "free", "used", "total"],
            brows,
            [False, True, True, True],
            drop=[2, 3],
        )
        gap()
        _emit(t, [ot, btab], inner)

    if m.events:
        gap()
        for e in list(m.events)[len(m.events) - n_events :]:
            line = f"{_clock(e.time_ns)} {safe_text(e.kind, 40)}" + (
                f": {safe_text(e.reason, 300)}" if e.reason else ""
            )
            t.append((line if inner is None else _crop(line, inner)) + "\n", style="dim")
    keys = KEYS_HELP if inner is None or len(KEYS_HELP) <= inner else _crop(KEYS_HELP_SHORT, inner)
    gap()
    t.append(keys, style="dim")
    if width is None:
        return Panel(t, expand=False, border_style="blue")
    return Panel(t, width=width, border_style="blue")
