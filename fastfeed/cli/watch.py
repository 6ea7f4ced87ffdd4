"""``fastfeed watch``: the live view of a real endpoint."""

from __future__ import annotations

import argparse
import asyncio
import os

from ._common import SYMBOLS_HELP, _default_url, _symbol_list, _ws_url_checked, endpoint_args
from ._live import _check_book, _live_args, _run_live
from .exitcodes import UsageError
from .registry import command

_WATCH_EPILOG = """\
Connects to a real endpoint (default: the DigiFinex URL, or $FASTFEED_URL) and shows the
same view as `fastfeed demo`. Private channels need FASTFEED_API_KEY and
FASTFEED_API_SECRET in the environment (keys are never taken from the command line here).

examples:
  fastfeed watch BTC_USDT ETH_USDT
  fastfeed watch BTC_USDT --url ws://127.0.0.1:8765/ws/v1/ --depth 20
  FASTFEED_API_KEY=... FASTFEED_API_SECRET=... fastfeed watch BTC_USDT --orders --balance
"""


def _watch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("symbols", nargs="+", metavar="SYMBOL", help=f"symbols, {SYMBOLS_HELP}")
    g = endpoint_args(p)
    g.add_argument("--orders", action="store_true", help="also subscribe order updates (needs API keys)")
    g.add_argument(
        "--balance",
        nargs="?",
        const="",
        default=None,
        metavar="CUR,...",
        help="also subscribe balance updates: all currencies, or these (needs API keys)",
    )
    _live_args(p, demo=False)


def _keys_from_env(what: str) -> tuple[str, str]:
    key, secret = os.environ.get("FASTFEED_API_KEY"), os.environ.get("FASTFEED_API_SECRET")
    if not key or not secret:
        raise UsageError(f"{what} needs FASTFEED_API_KEY and FASTFEED_API_SECRET in the environment")
    return key, secret


@command("watch", "live view of a real endpoint (default: DigiFinex)", epilog=_WATCH_EPILOG)(_watch_args)
def _run_watch(args: argparse.Namespace) -> int:
    symbols = _symbol_list(args.symbols)
    if not symbols:
        raise UsageError("at least one symbol is required")
    _check_book(args, symbols)
    url = args.url or _ws_url_checked(_default_url())
    key = secret = None
    balance = None if args.balance is None else _symbol_list([args.balance], "currency")
    if args.orders or balance is not None:
        key, secret = _keys_from_env("--orders" if args.orders else "--balance")
    return asyncio.run(
        _run_live(
            args,
            url=url,
            symbols=symbols,
            title="fastfeed watch",
            api_key=key,
            secret=secret,
            orders=args.orders,
            balance=balance,
        )
    )
