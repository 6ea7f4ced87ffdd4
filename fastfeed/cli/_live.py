"""The live view loop shared by ``demo`` and ``watch``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import sys
from typing import Any, Callable

from ._common import (
    CHANNELS,
    PROG,
    _channels,
    _int_range,
    _isatty,
    _positive_float,
    _quiet_transport_errors,
    _SafeFormatter,
    _Stop,
)
from .exitcodes import EXIT_OK, CommandError, ConnectError, UsageError


class _KeyReader:
    """Single keys from a terminal's stdin (cbreak mode, restored on exit)."""

    def __init__(self, on_key: Callable[[str], None]) -> None:
        self.on_key = on_key
        self._fd: int | None = None
        self._saved: Any = None
        self._buf = ""

    def __enter__(self) -> "_KeyReader":
        if not _isatty(sys.stdin) or os.name != "posix":
            return self
        import termios
        import tty

        fd = sys.stdin.fileno()
        try:
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)
            asyncio.get_running_loop().add_reader(fd, self._read)
            self._fd = fd
        except Exception:  # pragma: no cover - an odd terminal: run without keys
            self._restore(fd)
        return self

    def _restore(self, fd: int) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def _read(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 64).decode(errors="ignore")
        except OSError:
            return
        self._buf += data
        while self._buf:
            for seq, key in (("\x1b[C", "right"), ("\x1b[D", "left"), ("\x1b[Z", "left")):
                if self._buf.startswith(seq):
                    self._buf = self._buf[len(seq):]
                    self.on_key(key)
                    break
            else:
                ch, self._buf = self._buf[0], self._buf[1:]
                if ch == "\x1b" and self._buf == "":
                    continue
                self.on_key(ch)

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            asyncio.get_running_loop().remove_reader(self._fd)
            self._restore(self._fd)
            self._fd = None


class _LiveDisplay:
    """The rich live view on a terminal: re-rendered from the loop (no refresh thread);
    log records go through rich so they print above the view."""

    def __init__(self, monitor: Any, stop: _Stop) -> None:
        self.m = monitor
        self.stop = stop
        self._live: Any = None
        self._handlers: list[logging.Handler] = []
        self._keys: _KeyReader | None = None

    def _on_key(self, key: str) -> None:
        m = self.m
        if key in ("q", "Q"):
            self.stop.set("key")
        elif key.isdigit() and key != "0":
            m.select(int(key) - 1)
        elif key in ("n", "l", "\t", "right", "j"):
            m.select(m.selected + 1)
        elif key in ("p", "h", "left", "k"):
            m.select(m.selected - 1)
        elif key in ("+", "="):
            m.depth = min(50, m.depth + 1)
        elif key in ("-", "_"):
            m.depth = max(1, m.depth - 1)
        else:
            return
        self.update()

    @staticmethod
    def prepare(monitor: Any) -> None:
        import io

        from rich.console import Console
        from rich.live import Live  # noqa: F401
        from rich.logging import RichHandler  # noqa: F401

        from ..view import render

        Console(file=io.StringIO(), width=120).print(render(monitor))

    def __enter__(self) -> "_LiveDisplay":
        from rich.console import Console
        from rich.live import Live
        from rich.logging import RichHandler

        from ..view import render

        console = Console()
        root = logging.getLogger()
        self._handlers = root.handlers[:]
        handler = RichHandler(console=console, show_path=False, level=root.level, markup=False)
        handler.setFormatter(_SafeFormatter("%(name)s: %(message)s"))
        root.handlers = [handler]
        self._live = Live(render(self.m), console=console, auto_refresh=False, transient=True,
                          redirect_stdout=False, redirect_stderr=False)
        self._live.start()
        self._keys = _KeyReader(self._on_key).__enter__()
        return self

    def update(self) -> None:
        from ..view import render

        if self._live is not None:
            self._live.update(render(self.m), refresh=True)

    def __exit__(self, *exc: object) -> None:
        if self._keys is not None:
            self._keys.__exit__()
        if self._live is not None:
            self._live.stop()
        logging.getLogger().handlers = self._handlers


def _live_args(p: argparse.ArgumentParser, *, demo: bool) -> None:
    g = p.add_argument_group("view")
    g.add_argument("--seconds", type=_positive_float, default=None, metavar="N",
                   help="stop after N seconds (default: run until Ctrl-C or q)")
    g.add_argument("--depth", type=_int_range(1, 50), default=10, metavar="N",
                   help="book levels and trades shown (default 10; +/- change it live)")
    g.add_argument("--book", default=None, metavar="SYMBOL",
                   help="the book shown first (default: the first symbol; 1-9 or arrows switch)")
    g.add_argument("--channels", type=_channels, default=list(CHANNELS), metavar="LIST",
                   help="public channels to subscribe, comma-separated (default depth,trades,ticker)")
    g.add_argument("--interval", type=_positive_float, default=None, metavar="S",
                   help="seconds between updates (default 0.25 on a terminal, 1 for plain lines)")
    g.add_argument("--plain", action="store_true",
                   help="plain periodic lines even on a terminal (the default when stdout is not one)")
    if not demo:
        g.add_argument("--connect-timeout", type=_positive_float, default=10.0, metavar="S",
                       help="give up (exit 3) if the first connection fails for S seconds (default 10)")


def _check_book(args: argparse.Namespace, symbols: list[str]) -> None:
    if args.book is not None and args.book.upper() not in symbols:
        raise UsageError(f"--book {args.book.upper()} is not one of the symbols ({', '.join(symbols)})")


async def _run_live(args: argparse.Namespace, *, url: str, symbols: list[str], title: str, note: str = "",
                    api_key: str | None = None, secret: str | None = None, orders: bool = False,
                    balance: list[str] | None = None) -> int:
    import fastfeed

    from ..protocol import AuthError, RequestError
    from ..view import Monitor, plain_line, summary_lines

    _quiet_transport_errors(asyncio.get_running_loop())
    live_mode = _isatty(sys.stdout) and not args.plain
    interval = args.interval or (0.25 if live_mode else 1.0)
    period = min(interval, 0.25)
    stop = _Stop()
    stop.install()
    mon = Monitor(symbols, title=title, url=url, depth=args.depth, channels=args.channels)
    if args.book is not None:
        mon.select(symbols.index(args.book.upper()))

    def say(line: str) -> None:
        print(line, flush=True)

    if live_mode:  # import and warm up the view now, not while frames queue up
        _LiveDisplay.prepare(mon)
    else:
        mon.printer = say
        say(f"{title}: connecting to {url} ({', '.join(symbols)}; {','.join(args.channels)})"
            + (f"; {note}" if note else ""))
    feed = fastfeed.connect(url, api_key, secret, timing=1 << 16,
                            connect_timeout=getattr(args, "connect_timeout", 10.0),
                            on_event=mon.on_event, on_order=mon.on_order, on_balance=mon.on_balance)
    try:
        try:
            started, _ = await stop.race(feed.start())
        except AuthError as exc:
            raise ConnectError(f"authentication refused by {url}: {exc.message}") from None
        except ConnectionError as exc:
            raise ConnectError(str(exc)) from None
        if not started:
            print(f"{PROG}: interrupted before the connection was up", file=sys.stderr)
            return EXIT_OK
        mon.attach(feed)

        async def subscribe() -> None:
            subs = {"depth": feed.subscribe_depth, "trades": feed.subscribe_trades,
                    "ticker": feed.subscribe_ticker}
            for ch in args.channels:
                await subs[ch](symbols)
            if orders:
                await feed.subscribe_orders(symbols)
            if balance is not None:
                await feed.subscribe_balance(balance)

        try:
            subscribed, _ = await stop.race(subscribe())
        except AuthError as exc:
            raise ConnectError(f"private channel refused: {exc}") from None
        except RequestError as exc:
            raise CommandError(f"subscription refused by the server: {exc}") from None
        except ConnectionError as exc:  # the connection could not be kept up to subscribe
            raise ConnectError(str(exc)) from None
        if subscribed:
            loop = asyncio.get_running_loop()
            deadline = None if args.seconds is None else loop.time() + args.seconds
            next_line = loop.time() + (period if live_mode else interval)
            display = _LiveDisplay(mon, stop) if live_mode else None
            if display is not None:
                display.__enter__()
            try:
                while True:
                    now = loop.time()
                    timeout = period if deadline is None else min(period, deadline - now)
                    if await stop.wait(timeout):
                        break
                    mon.sample()
                    now = loop.time()
                    if now >= next_line:
                        if display is not None:
                            display.update()
                        else:
                            say(plain_line(mon))
                        next_line += interval * max(1, math.floor((now - next_line) / interval) + 1)
                    if deadline is not None and now >= deadline:
                        stop.set("deadline")
                        break
            finally:
                if display is not None:
                    display.__exit__()
        mon.sample()
        mon.stop()
        mon.printer = None
    finally:
        stop.remove()
        await feed.close()
    print("\n".join(summary_lines(mon, interrupted=stop.interrupted, note=note)), flush=True)
    return EXIT_OK


