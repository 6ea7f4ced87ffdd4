"""Helpers shared by the commands: argument types, the symbol and channel lists, the stop
signal, terminal-safe text and log formatting, opening a capture."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import re
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .. import channels as _channel_table
from ..protocol import MAX_SYMBOL_LEN, is_valid_symbol
from .exitcodes import FileError, UsageError

PROG = "fastfeed"

DEMO_SYMBOLS = ("BTC_USDT", "ETH_USDT", "SOL_USDT", "XRP_USDT")
#: The public channels the CLI subscribes (--channels choices of demo, watch and record):
#: the per-symbol public channels a command can subscribe (``--channels``), from the one
#: channel table: ``Feed.subscribe_<name>`` exists for each.
CHANNELS: tuple[str, ...] = tuple(c.name for c in _channel_table.SUBSCRIBABLE if c.route == "market")

log = logging.getLogger("fastfeed.cli")


def _safe(text: str) -> str:
    """One line of text safe for a terminal (escape sequences and other control characters
    from the network are shown escaped)."""
    from ..protocol import safe_text

    return safe_text(text, 1000)


class _SafeFormatter(logging.Formatter):
    """Every log line the command prints: control characters in the message (network text,
    or a library's multi-line message) are escaped so that one record is one line, a log
    call with bad arguments or a broken traceback is shown as such instead of the stdlib's
    "--- Logging error ---" dump, and tracebacks (DEBUG level only, see _run_live) are kept."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            msg = record.getMessage()
        except Exception:  # a log call whose arguments do not match its format
            msg = f"{record.msg!s} {record.args!r} (bad log call)"
        record.message = _safe(msg)
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        s = self.formatMessage(record)
        if record.exc_info:
            try:
                exc_text = self.formatException(record.exc_info)
            except Exception:  # e.g. an exception class instead of an instance
                exc_text = f"(unprintable exception: {_safe(repr(record.exc_info[1]))})"
            s = f"{s}\n{exc_text}"
        elif record.exc_text:
            s = f"{s}\n{record.exc_text}"
        if record.stack_info:
            s = f"{s}\n{self.formatStack(record.stack_info)}"
        return s


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


# ---------------------------------------------------------------------------- helpers
def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0 or not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return v


def _seconds_or_off(text: str) -> float | None:
    """Seconds; 0 or 'off' disables."""
    if text.lower() in ("off", "none", "0"):
        return None
    return _positive_float(text)


def _rate(text: str) -> float | None:
    if text.lower() in ("max", "unlimited"):
        return None
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a rate: {text!r} (a number of messages/s or 'max')") from None
    if v < 0 or not math.isfinite(v):
        raise argparse.ArgumentTypeError("rate must be >= 0")
    return v


def _speed(text: str) -> float | None:
    if text.lower() in ("max", "inf", "unlimited"):
        return None
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a speed: {text!r} (a factor like 1, 10, or 'max')") from None
    if not v > 0 or not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"speed must be > 0 (or 'max'): {text!r}")
    return v


def _account(text: str) -> tuple[str, str]:
    key, sep, secret = text.partition(":")
    if not sep or not key or not secret:
        raise argparse.ArgumentTypeError("expected KEY:SECRET")
    return key, secret


def _port(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port: {text!r}") from None
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {v}")
    return v


def _count(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return v


def _int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be in {lo}..{hi}: {v}")
        return v

    return parse


def _ws_url(text: str) -> str:
    """A ws:// or wss:// URL with a host (checked before any connection attempt)."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad URL {text!r}: {exc}") from None
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"not a WebSocket URL: {text!r} (expected ws://HOST[:PORT]/PATH or wss://...)"
        )
    return text


#: how every command's symbol list is written (one rule, parsed by _symbol_list)
SYMBOLS_HELP = "separate arguments and/or comma-separated (BTC_USDT ETH_USDT or BTC_USDT,ETH_USDT)"


def _symbol_list(values: Sequence[str], what: str = "symbol") -> list[str]:
    """The one parser of symbol lists in every command: one or more arguments, each holding
    symbols separated by commas and/or whitespace; upper-cased, deduplicated, in order.
    A name the client would refuse (:func:`fastfeed.protocol.is_valid_symbol`, the one symbol
    rule: 1-32 printable ASCII characters without spaces; commas separate names here) is a
    UsageError saying which part of the rule it breaks."""
    out: list[str] = []
    for v in values:
        for s in re.split(r"[,\s]+", v):
            s = s.strip().upper()
            if not s:
                continue
            if not is_valid_symbol(s):
                why = (
                    f"{len(s)} characters, at most {MAX_SYMBOL_LEN}"
                    if len(s) > MAX_SYMBOL_LEN
                    else "only printable ASCII characters, no spaces"
                )
                raise UsageError(f"invalid {what} {s!r} ({why})")
            if s not in out:
                out.append(s)
    return out


def endpoint_args(p: argparse.ArgumentParser, demo: str | None = None) -> Any:
    """The "endpoint" argument group every connecting command shares: ``--url``, and with
    ``demo`` (the ``--demo`` help text) ``--demo``, ``--rate``, ``--seed`` and
    ``--connect-timeout``. Returns the group (a command adds its own options to it)."""
    g = p.add_argument_group("endpoint")
    g.add_argument(
        "--url",
        type=_ws_url,
        default=None,
        help="WebSocket endpoint (default $FASTFEED_URL or wss://openapi.digifinex.com/ws/v1/)",
    )
    if demo is not None:
        g.add_argument("--demo", action="store_true", help=demo)
        g.add_argument(
            "--rate", type=_rate, default=1000.0, help="with --demo: market messages/s (default 1000)"
        )
        g.add_argument("--seed", type=int, default=None, help="with --demo: market seed (default random)")
        g.add_argument(
            "--connect-timeout",
            type=_positive_float,
            default=10.0,
            metavar="S",
            help="give up (exit 3) if the first connection fails for S seconds (default 10)",
        )
    return g


def _channels(text: str) -> list[str]:
    chans = [c.strip().lower() for c in text.split(",") if c.strip()]
    bad = [c for c in chans if c not in CHANNELS]
    if bad or not chans:
        raise argparse.ArgumentTypeError(f"channels are a comma-separated subset of {','.join(CHANNELS)}")
    return list(dict.fromkeys(chans))


def _default_url() -> str:
    from ..protocol import DIGIFINEX_URL

    return os.environ.get("FASTFEED_URL") or DIGIFINEX_URL


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class _Stop:
    """Why and when a streaming command stops: Ctrl-C / SIGTERM, a key, or its deadline."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.reason = ""
        self._signals: list[int] = []

    def set(self, reason: str) -> None:
        if not self.event.is_set():
            self.reason = reason
            self.event.set()

    @property
    def interrupted(self) -> bool:
        return self.reason == "signal"

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s; True once stopped."""
        if self.event.is_set():
            return True
        try:
            await asyncio.wait_for(self.event.wait(), max(0.0, timeout))
        except asyncio.TimeoutError:
            pass
        return self.event.is_set()

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.set, "signal")
                self._signals.append(sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
                pass

    def remove(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)
        self._signals.clear()

    async def race(self, aw: Any) -> tuple[bool, Any]:
        """Await ``aw`` unless stopped first: ``(True, result)`` or ``(False, None)`` (then
        ``aw`` is cancelled)."""
        task = asyncio.ensure_future(aw)
        waiter = asyncio.ensure_future(self.event.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if task.done():
            return True, task.result()
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
        return False, None


def _demo_exchange_config(symbols: Sequence[str], rate: float | None, seed: int | None, port: int = 0) -> Any:
    from ..exchange import ExchangeConfig

    try:
        return ExchangeConfig(symbols=list(symbols), rate=rate, seed=seed, port=port)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _quiet_transport_errors(loop: asyncio.AbstractEventLoop) -> None:
    """The event loop reports transport failures (a failed TLS handshake, a reset) to its
    exception handler, which by default logs them at ERROR with a traceback. The feed
    reports those itself (a connection event, the exit-3 line with its hint), so here they
    go to DEBUG as one line; anything else stays one ERROR line."""

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        name = (exc.__name__ if isinstance(exc, type) else type(exc).__name__) if exc is not None else ""
        text = _safe(str(context.get("message", "")))
        if exc is not None and not isinstance(exc, type):
            detail = _safe(str(exc))
            name += f": {detail}" if detail else ""
        line = f"event loop: {text}" + (f" ({name})" if name else "")
        if "transport" in context or "protocol" in context:
            log.debug("%s", line)
        else:
            log.error("%s", line)

    loop.set_exception_handler(handler)


def _ws_url_checked(url: str) -> str:
    try:
        return _ws_url(url)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"FASTFEED_URL: {exc}") from None


def _open_capture(path: str, on_corrupt: str = "raise") -> Any:
    """A CaptureReader, or FileError (missing, unreadable, not a capture)."""
    from ..capture import CaptureError, CaptureReader

    p = Path(path)
    if not p.exists():
        raise FileError(f"{path}: no such file")
    if p.is_dir():
        raise FileError(f"{path}: is a directory")
    try:
        return CaptureReader(p, on_corrupt=on_corrupt)  # type: ignore[arg-type]
    except CaptureError as exc:
        raise FileError(str(exc)) from None
    except (OSError, ValueError) as exc:
        raise FileError(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None
