"""Terminal views of a live :class:`~fastfeed.Feed` (used by ``fastfeed demo`` and ``watch``).

:class:`Monitor` samples a feed a few times a second (rates from the engine's counters,
per-frame processing time from ``Feed.timings()``, trade time -> receive latency from the
trade ring, connection events, private pushes). Three renderings read it:

* :func:`render` - the rich live view (book, trades, tickers, rates, latency), fitted to a
  given width: columns are dropped, never cut, so no number is ever shown truncated;
* :func:`plain_line` - one line per interval when stdout is not a terminal;
* :func:`summary_lines` - the one-screen summary printed at the end.

:class:`LiveDisplay` runs :func:`render` on a terminal (rich ``Live``; keys via
:class:`KeyReader`). Everything here runs on the event loop's thread; nothing is rendered
from another thread. Text that came from the network (event reasons, order fields, balance
strings, symbol names) is escaped with :func:`fastfeed.protocol.safe_text` before it is
shown; the rich view builds ``Text`` objects (never markup strings), so ``[`` in such text
is not interpreted either.
"""

from __future__ import annotations

from .format import fmt_bytes, fmt_count, fmt_ns, fmt_num
from .monitor import Event, LogHistogram, Monitor
from .render import KEYS_HELP, render
from .terminal import KeyReader, LiveDisplay
from .text import plain_line, summary_lines, top_of_book_lines

__all__ = [
    "KEYS_HELP",
    "Event",
    "KeyReader",
    "LiveDisplay",
    "LogHistogram",
    "Monitor",
    "fmt_bytes",
    "fmt_count",
    "fmt_ns",
    "fmt_num",
    "plain_line",
    "render",
    "summary_lines",
    "top_of_book_lines",
]
