"""``fastfeed exchange``: run the local DigiFinex-compatible exchange."""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from ._common import (
    PROG,
    _account,
    _count,
    _port,
    _positive_float,
    _rate,
    _seconds_or_off,
)
from .exitcodes import FileError, UsageError
from .registry import command


def _exchange_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("listening")
    g.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    g.add_argument("--port", type=_port, default=8765, help="TCP port, 0 = any free port (default 8765)")
    g.add_argument("--path", default="/ws/v1/", help="advertised WebSocket path (any path is answered)")
    g = p.add_argument_group("market")
    g.add_argument("--symbols", default=None, help="comma-separated symbols (default: ten major USDT pairs)")
    g.add_argument("--seed", type=int, default=None, help="random seed (default: random, logged)")
    g.add_argument("--rate", type=_rate, default=100.0,
                   help="market messages/s over all symbols; 'max' = as fast as clients read (default 100)")
    g.add_argument("--book-levels", type=int, default=30, help="levels per side (default 30)")
    g.add_argument("--snapshot-interval", type=_seconds_or_off, default=60.0,
                   help="seconds between clean=true depth snapshots, 0 = off (default 60)")
    g.add_argument("--pregenerate", type=_count, default=0,
                   help="pre-generate a cycle of N frames and loop over it (the >=200k msg/s mode)")
    g.add_argument("--batch", type=int, default=2048, help="max frames per write batch (default 2048)")
    g.add_argument("--number-style", choices=["plain", "padded"], default="plain",
                   help="'padded' sends 8-decimal numbers like some live frames")
    g.add_argument("--ticker-nested", action="store_true", help="send ticker params as [[{...}]]")
    g.add_argument("--integer-trade-time", action="store_true", help="send trade times as integer seconds")
    g = p.add_argument_group("private channels")
    g.add_argument("--account", type=_account, action="append", default=[], metavar="KEY:SECRET",
                   help="an API account (repeatable); FASTFEED_API_KEY/FASTFEED_API_SECRET also add one")
    g.add_argument("--api-key", default=None, help="API key of one account (with --api-secret)")
    g.add_argument("--api-secret", default=None, help="API secret of one account (with --api-key)")
    g.add_argument("--auth-window", type=_seconds_or_off, default=300.0,
                   help="max |now - auth timestamp| in seconds, 0 = unchecked (default 300)")
    g.add_argument("--private-interval", type=_positive_float, default=1.0,
                   help="seconds between private simulation steps (default 1)")
    g = p.add_argument_group("wire")
    g.add_argument("--text-replies", action="store_true", help="send replies as plain TEXT frames")
    g.add_argument("--error-style", choices=["object", "string"], default="object",
                   help="error field as {code, message} or as a string (default object)")
    g.add_argument("--idle-timeout", type=_seconds_or_off, default=60.0,
                   help="close after this many seconds without client traffic, 0 = off (default 60)")
    g.add_argument("--max-age", type=_seconds_or_off, default=7200.0,
                   help="close connections older than this many seconds, 0 = off (default 7200)")
    g = p.add_argument_group("capture")
    g.add_argument("--capture", default=None, metavar="FILE", help="serve this capture instead of simulating")
    g.add_argument("--capture-speed", type=_positive_float, default=None,
                   help="1 = recorded pacing, 2 = twice as fast (default: full speed)")
    g.add_argument("--capture-keep-open", action="store_true", help="keep connections open after the capture")
    g = p.add_argument_group("faults")
    g.add_argument("--shuffle-levels", action="store_true", help="send depth levels in random order")
    g.add_argument("--duplicate-trades", action="store_true", help="send every trades push twice")
    g.add_argument("--reject-handshakes", type=_count, default=0, help="answer the first N upgrades with HTTP 502")
    for name, help_text in (("drop", "drop every connection"), ("garbage", "send a garbage frame"),
                            ("truncate", "send a truncated zlib frame"), ("oversize", "send an oversized frame"),
                            ("stall", "stall every connection (see --stall-for)")):
        g.add_argument(f"--{name}-every", type=_positive_float, default=None, metavar="S",
                       help=f"{help_text} every S seconds")
    g.add_argument("--stall-for", type=_positive_float, default=5.0, metavar="S",
                   help="length of each stall (default 5)")


def _exchange_config(args: argparse.Namespace) -> Any:
    from ..exchange import ExchangeConfig, accounts_from_env

    accounts = accounts_from_env()
    if (args.api_key is None) != (args.api_secret is None):
        raise UsageError(f"{PROG} exchange: error: --api-key and --api-secret go together")
    if args.api_key is not None:
        accounts[args.api_key] = args.api_secret
    accounts.update(dict(args.account))
    kwargs: dict[str, Any] = dict(
        host=args.host, port=args.port, path=args.path, seed=args.seed, rate=args.rate,
        book_levels=args.book_levels, snapshot_interval=args.snapshot_interval,
        pregenerate=args.pregenerate, batch=args.batch, number_style=args.number_style,
        ticker_nested=args.ticker_nested, integer_trade_time=args.integer_trade_time,
        accounts=accounts, auth_window=args.auth_window, private_interval=args.private_interval,
        text_replies=args.text_replies, error_style=args.error_style, idle_timeout=args.idle_timeout,
        max_connection_age=args.max_age, capture=args.capture, capture_speed=args.capture_speed,
        capture_close=not args.capture_keep_open,
    )
    if args.symbols is not None:
        kwargs["symbols"] = [s for s in args.symbols.split(",") if s.strip()]
    try:
        return ExchangeConfig(**kwargs)
    except ValueError as exc:
        raise UsageError(f"{PROG} exchange: error: {exc}") from None


async def _serve_exchange(cfg: Any, args: argparse.Namespace) -> int:
    from ..exchange import Exchange

    ex = Exchange(cfg)
    await ex.start()
    ex.faults.shuffle_levels = args.shuffle_levels
    ex.faults.duplicate_trades = args.duplicate_trades
    ex.faults.reject_handshakes = args.reject_handshakes
    if args.drop_every:
        ex.faults.every(args.drop_every, "drop")
    if args.garbage_every:
        ex.faults.every(args.garbage_every, "send_garbage")
    if args.truncate_every:
        ex.faults.every(args.truncate_every, "send_truncated")
    if args.oversize_every:
        ex.faults.every(args.oversize_every, "send_oversized")
    if args.stall_every:
        ex.faults.every(args.stall_every, "stall", seconds=args.stall_for)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
            pass
    print(f"fastfeed exchange listening on {ex.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await ex.close()
    return 0


@command("exchange", "run the local DigiFinex-compatible exchange (WebSocket v1)")(_exchange_args)
def _run_exchange(args: argparse.Namespace) -> int:
    from ..capture import CaptureError

    cfg = _exchange_config(args)
    try:
        return asyncio.run(_serve_exchange(cfg, args))
    except CaptureError as exc:  # --capture FILE is not a readable capture: exit 4
        raise FileError(str(exc)) from None
