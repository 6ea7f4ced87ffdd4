"""Plain-text renderings of a :class:`~fastfeed.live.Monitor`: the status line and the summary."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from ..protocol import safe_text
from .format import _decimals, _kv, fmt_bytes, fmt_count, fmt_ns, fmt_num
from .monitor import Monitor


# ---------------------------------------------------------------------------- plain text
def plain_line(m: Monitor) -> str:
    """One status line (no colour, ASCII only)."""
    st = m.stats
    eng = st.get("engine", {})
    fps, bps, _ = m.rates()
    p50, p99, p999, _mx = m.proc_window()
    w50, w99, _, _ = m.wire_window()
    rej = sum(m.rejects().values())
    parts = [
        f"[{m.elapsed:7.1f}s]",
        f"{fps:,.0f} msg/s",
        f"{fmt_bytes(bps)}/s",
        f"frames {fmt_count(eng.get('frames', 0))}",
        f"rejects {rej}",
        f"reconnects {st.get('reconnects', 0)}",
        f"| proc p50 {fmt_ns(p50)} p99 {fmt_ns(p99)} p99.9 {fmt_ns(p999)}",
        f"| trade->recv p50 {fmt_ns(w50)} p99 {fmt_ns(w99)}",
    ]
    sym = m.selected_symbol
    book = m.books().get(sym)
    if book is not None and (book.n_bids or book.n_asks):
        pd_ = m.decimals(sym)[0]
        parts.append(
            f"| {sym} {fmt_num(book.best_bid, pd_)} / {fmt_num(book.best_ask, pd_)}"
            + ("" if book.live else " STALE")
        )
    drifted = (st.get("drift") or {}).get("drifted", 0)
    if drifted:
        parts.append(f"| drift {drifted}")
    if not st.get("connected", True):
        parts.append("| DISCONNECTED")
    return "  ".join(parts)


def top_of_book_lines(
    books: dict[str, Any],
    symbols: Sequence[str] | None = None,
    limit: int = 20,
    trades: dict[str, int] | None = None,
    indent: str = "  ",
    decimals: Callable[[str], tuple[int | None, int | None]] | None = None,
) -> list[str]:
    """``SYMBOL  bid x size | ask x size  spread  levels`` per symbol (sorted). A symbol's
    prices (bid, ask, spread) share one precision: ``decimals(symbol)`` (e.g.
    :meth:`Monitor.decimals`), else the decimals its book's levels need."""
    first = [s for s in (symbols or ()) if s in books]
    names = first + sorted(s for s in books if s not in first)
    rows: list[tuple[str, ...]] = []
    for s in names[:limit]:
        b = books[s]
        pd_, ad = decimals(s) if decimals is not None else (None, None)
        if pd_ is None or ad is None:
            bids, asks = b.bids[:50], b.asks[:50]
            pd_ = _decimals(bids[:, 0].tolist() + asks[:, 0].tolist()) if pd_ is None else pd_
            ad = _decimals(bids[:, 1].tolist() + asks[:, 1].tolist()) if ad is None else ad
        bid = f"{fmt_num(b.best_bid, pd_)} x {fmt_num(float(b.bids[0, 1]), ad)}" if b.n_bids else "-"
        ask = f"{fmt_num(b.best_ask, pd_)} x {fmt_num(float(b.asks[0, 1]), ad)}" if b.n_asks else "-"
        spread = f"spread {b.best_ask - b.best_bid:.{pd_}f}" if b.n_bids and b.n_asks else ""
        extra = f"{b.n_bids}/{b.n_asks} levels"
        if trades is not None:
            extra += f", {fmt_count(trades.get(s, 0))} trades"
        rows.append((safe_text(s, 32), bid, ask, spread, extra))
    if not rows:
        return [indent + "(no books)"]
    w = [max(len(r[i]) for r in rows) for i in range(5)]
    out = [
        f"{indent}{r[0]:<{w[0]}}  {r[1]:>{w[1]}} | {r[2]:<{w[2]}}  {r[3]:<{w[3]}}  {r[4]}".rstrip()
        for r in rows
    ]
    if len(names) > limit:
        out.append(f"{indent}... and {len(names) - limit} more")
    return out


def summary_lines(m: Monitor, *, interrupted: bool = False, note: str = "") -> list[str]:
    """The end-of-run summary (plain text, fits one screen)."""
    st = m.stats
    eng = st.get("engine", {})
    el = m.elapsed
    frames = eng.get("frames", 0)
    out = [f"{m.title}: {el:.1f} s against {m.url}" + (" (interrupted)" if interrupted else "")]
    if note:
        out.append(f"  {note}")
    out.append(
        f"messages  {fmt_count(frames)} frames ({fmt_count(frames / el if el > 0 else 0)}/s), "
        f"{fmt_bytes(eng.get('bytes_in', 0))} in, {fmt_bytes(eng.get('bytes_inflated', 0))} inflated"
    )
    out.append(f"  by method  {_kv(m.messages())}")
    out.append(f"  rejects    {_kv(m.rejects())}")
    p = m.proc
    out.append(f"processing per data frame (inflate + parse + apply, recv -> done), {fmt_count(p.n)} frames:")
    out.append(
        f"  mean {fmt_ns(p.mean)}  p50 {fmt_ns(p.percentile(50))}  p99 {fmt_ns(p.percentile(99))}  "
        f"p99.9 {fmt_ns(p.percentile(99.9))}  max {fmt_ns(p.max if p.n else math.nan)}"
    )
    w = m.wire
    if w.n or w.nonpositive:
        skew = f", {w.nonpositive} negative (clock skew)" if w.nonpositive else ""
        hist = f", {fmt_count(m.history_trades)} sent on subscribe left out" if m.history_trades else ""
        out.append(
            f"trade time -> recv (exchange clock vs local clock), {fmt_count(w.n + w.nonpositive)} "
            f"live trades{skew}{hist}:"
        )
        out.append(
            f"  p50 {fmt_ns(w.percentile(50))}  p99 {fmt_ns(w.percentile(99))}  "
            f"p99.9 {fmt_ns(w.percentile(99.9))}  max {fmt_ns(w.max if w.n else math.nan)}"
        )
    reason = safe_text(st.get("last_disconnect_reason") or "-", 300)
    out.append(
        f"connection  connects {st.get('connects', 0)}  reconnects {st.get('reconnects', 0)}  "
        f"bad frames {st.get('bad_frames', 0)}  last disconnect: {reason}"
    )
    drift = st.get("drift") or {}
    if drift.get("checks"):
        by = drift.get("by_symbol") or {}
        out.append(
            f"book drift  {drift.get('drifted', 0)} of {drift['checks']} snapshots disagreed with the live book"
            + (f"  ({_kv(by)})" if by else "")
        )
    bad_pushes = st.get("bad_pushes") or {}
    if bad_pushes or st.get("callback_errors") or st.get("supervisor_errors"):
        out.append(
            f"  rejected push records  {_kv(bad_pushes)}  callback errors {st.get('callback_errors', 0)}  "
            f"supervisor errors {st.get('supervisor_errors', 0)}"
            + (f" (last: {safe_text(st['last_error'], 200)})" if st.get("last_error") else "")
        )
    if m.order_count or m.balance_count:
        out.append(f"private  {m.order_count} order updates, {m.balance_count} balance updates")
    out.append("top of book at the end:")
    out.extend(top_of_book_lines(m.books(), m.symbols, trades=dict(m.trades_by_symbol), decimals=m.decimals))
    return out
