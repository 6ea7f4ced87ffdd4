"""Number, size, time and duration formatting for the terminal views."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

import numpy as np


# ---------------------------------------------------------------------------- formatting
def fmt_ns(ns: float, micro: str = "us") -> str:
    """``850 ns``, ``12.3 us``, ``1.23 ms``, ``2.50 s`` (``micro`` is the µ spelling)."""
    if ns != ns:  # NaN
        return "-"
    a = abs(ns)
    if a < 1e3:
        return f"{ns:.0f} ns"
    if a < 1e6:
        v = ns / 1e3
        return f"{v:.1f} {micro}" if abs(v) < 100 else f"{v:.0f} {micro}"
    if a < 1e9:
        v = ns / 1e6
        return f"{v:.2f} ms" if abs(v) < 10 else (f"{v:.1f} ms" if abs(v) < 100 else f"{v:.0f} ms")
    return f"{ns / 1e9:.2f} s"


def fmt_count(n: float) -> str:
    return f"{n:,.0f}"


def fmt_bytes(n: float) -> str:
    """Decimal units: ``512 B``, ``12.3 kB``, ``4.56 MB``, ``1.20 GB``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            v = n / scale
            return f"{v:.2f} {unit}" if v < 100 else f"{v:.0f} {unit}"
    return f"{n:.0f} B"


def _decimals(values: Iterable[float], cap: int = 10) -> int:
    """The number of decimals needed to print every value exactly (at most ``cap``)."""
    best = 0
    for v in values:
        if not math.isfinite(v):
            continue
        s = np.format_float_positional(v, trim="-", precision=cap)
        if "." in s:
            best = max(best, len(s) - s.index(".") - 1)
    return min(best, cap)


def fmt_num(v: float, decimals: int | None = None) -> str:
    """A price or amount: exact shortest form, or ``decimals`` fixed digits."""
    if not math.isfinite(v):
        return "-"
    if decimals is None:
        return np.format_float_positional(v, trim="-", precision=10)
    return f"{v:.{decimals}f}"


def _clock(ns: int) -> str:
    t = ns / 1e9
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(ns // 1_000_000 % 1000):03d}"


def _duration(s: float) -> str:
    s = max(0, int(s))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _kv(d: dict[str, int]) -> str:
    return "  ".join(f"{k} {fmt_count(v)}" for k, v in d.items()) if d else "none"
