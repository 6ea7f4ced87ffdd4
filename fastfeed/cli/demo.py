"""``fastfeed demo``: the live view of the bundled local exchange."""

from __future__ import annotations

import argparse
import asyncio
import random

from ._bundled import _BundledExchange
from ._common import (
    DEMO_SYMBOLS,
    SYMBOLS_HELP,
    _demo_exchange_config,
    _port,
    _positive_float,
    _rate,
    _symbol_list,
)
from ._live import _check_book, _live_args, _run_live
from .exitcodes import UsageError
from .registry import command

_DEMO_EPILOG = """\
The bundled exchange simulates a DigiFinex v1 market on 127.0.0.1 (a random free port);
the real client (picows + the compiled engine) connects to it and subscribes depth,
trades and ticker. On a terminal this is a live view (keys: 1-9 or arrows pick the book,
+/- levels, q quits); otherwise one status line per --interval. The summary at the end
shows messages by method, processing time per frame (recv -> book/ring updated),
trade time -> receive latency, reconnects and the final top of book.

examples:
  fastfeed demo --seconds 10
  fastfeed demo --symbols BTC_USDT ETH_USDT --rate 5000
  fastfeed demo --drop-every 5          # the exchange drops the connection every 5 s
"""


def _demo_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("bundled exchange")
    g.add_argument(
        "--symbols",
        nargs="+",
        default=list(DEMO_SYMBOLS),
        metavar="SYMBOL",
        help=f"symbols to simulate and subscribe, {SYMBOLS_HELP} (default {' '.join(DEMO_SYMBOLS)})",
    )
    g.add_argument(
        "--rate",
        type=_rate,
        default=1000.0,
        help="market messages/s over all symbols, or 'max' (default 1000)",
    )
    g.add_argument("--seed", type=int, default=None, help="market seed (default: random, shown)")
    g.add_argument("--port", type=_port, default=0, help="exchange port (default 0: any free port)")
    g.add_argument(
        "--drop-every",
        type=_positive_float,
        default=None,
        metavar="S",
        help="the exchange drops the connection every S seconds (shows reconnects)",
    )
    _live_args(p, demo=True)


@command(
    "demo",
    "live view of the bundled local exchange (start here)",
    epilog=_DEMO_EPILOG,
    description="Start the bundled exchange on loopback, connect the real client and show "
    "the live view; a summary is printed at the end.",
)(_demo_args)
def _run_demo(args: argparse.Namespace) -> int:
    symbols = _symbol_list(args.symbols)
    if not symbols:
        raise UsageError("--symbols needs at least one symbol")
    _check_book(args, symbols)
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    cfg = _demo_exchange_config(symbols, args.rate, seed, args.port)
    with _BundledExchange(cfg, drop_every=args.drop_every) as ex:
        rate = "max" if args.rate is None else f"{args.rate:g}/s"
        note = f"bundled exchange: {len(symbols)} symbols, rate {rate}, seed {seed}"
        if args.drop_every:
            note += f", drops every {args.drop_every:g} s"
        return asyncio.run(_run_live(args, url=ex.url, symbols=symbols, title="fastfeed demo", note=note))
