"""The live view loop shared by ``demo`` and ``watch``."""

from __future__ import annotations

import argparse
import asyncio
import math
import sys

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


def _live_args(p: argparse.ArgumentParser, *, demo: bool) -> None:
    g = p.add_argument_group("view")
    g.add_argument(
        "--seconds",
        type=_positive_float,
        default=None,
        metavar="N",
        help="stop after N seconds (default: run until Ctrl-C or q)",
    )
    g.add_argument(
        "--depth",
        type=_int_range(1, 50),
        default=10,
        metavar="N",
        help="book levels and trades shown (default 10; +/- change it live)",
    )
    g.add_argument(
        "--book",
        default=None,
        metavar="SYMBOL",
        help="the book shown first (default: the first symbol; 1-9 or arrows switch)",
    )
    g.add_argument(
        "--channels",
        type=_channels,
        default=list(CHANNELS),
        metavar="LIST",
        help=f"public channels to subscribe, comma-separated (default {','.join(CHANNELS)})",
    )
    g.add_argument(
        "--interval",
        type=_positive_float,
        default=None,
        metavar="S",
        help="seconds between updates (default 0.25 on a terminal, 1 for plain lines)",
    )
    g.add_argument(
        "--plain",
        action="store_true",
        help="plain periodic lines even on a terminal (the default when stdout is not one)",
    )
    if not demo:
        g.add_argument(
            "--connect-timeout",
            type=_positive_float,
            default=10.0,
            metavar="S",
            help="give up (exit 3) if the first connection fails for S seconds (default 10)",
        )


def _check_book(args: argparse.Namespace, symbols: list[str]) -> None:
    if args.book is not None and args.book.upper() not in symbols:
        raise UsageError(f"--book {args.book.upper()} is not one of the symbols ({', '.join(symbols)})")


async def _run_live(
    args: argparse.Namespace,
    *,
    url: str,
    symbols: list[str],
    title: str,
    note: str = "",
    api_key: str | None = None,
    secret: str | None = None,
    orders: bool = False,
    balance: list[str] | None = None,
) -> int:
    import fastfeed

    from ..live import LiveDisplay, Monitor, plain_line, summary_lines
    from ..protocol import AuthError, RequestError

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
        LiveDisplay.prepare(mon)
    else:
        mon.printer = say
        say(
            f"{title}: connecting to {url} ({', '.join(symbols)}; {','.join(args.channels)})"
            + (f"; {note}" if note else "")
        )
    feed = fastfeed.connect(
        url,
        api_key,
        secret,
        timing=1 << 16,
        connect_timeout=getattr(args, "connect_timeout", 10.0),
        on_event=mon.on_event,
        on_order=mon.on_order,
        on_balance=mon.on_balance,
    )
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
            for ch in args.channels:  # a name of CHANNELS: Feed.subscribe_<name>
                await getattr(feed, f"subscribe_{ch}")(symbols)
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
            display = (
                LiveDisplay(
                    mon, lambda: stop.set("key"), log_formatter=_SafeFormatter("%(name)s: %(message)s")
                )
                if live_mode
                else None
            )
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
