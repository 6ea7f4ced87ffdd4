"""Deprecated: the terminal views moved to :mod:`fastfeed.live`; this module re-exports
them under the old names (``from fastfeed.view import Monitor, render, ...`` keeps working)."""

from __future__ import annotations

from .live.format import (  # noqa: F401
    _clock,
    _decimals,
    _duration,
    _kv,
    fmt_bytes,
    fmt_count,
    fmt_ns,
    fmt_num,
)
from .live.monitor import Event, LogHistogram, Monitor, _pcts  # noqa: F401
from .live.render import KEYS_HELP, render  # noqa: F401
from .live.text import plain_line, summary_lines, top_of_book_lines

__all__ = [
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
