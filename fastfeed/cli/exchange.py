"""``fastfeed exchange``: run the local DigiFinex-compatible exchange."""

from __future__ import annotations

import argparse
import asyncio
import collections.abc
import dataclasses
import math
import signal
import typing
from collections.abc import Callable, Mapping
from typing import Any

from ._common import (
    PROG,
    SYMBOLS_HELP,
    _account,
    _count,
    _open_capture,
    _port,
    _positive_float,
    _symbol_list,
)
from .exitcodes import FileError, UsageError
from .registry import command

#: CLI defaults that differ from ExchangeConfig's (a fixed port is handier from the shell)
_CLI_DEFAULTS: dict[str, Any] = {"port": 8765}
#: the help group that starts at each field (fields keep ExchangeConfig's order)
_GROUPS = {
    "host": "listening",
    "rate": "market",
    "accounts": "private channels",
    "text_replies": "wire",
    "capture": "capture",
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _none_or(parse: Callable[[str], Any], word: str, zero_is_none: bool) -> Callable[[str], Any]:
    words = {word, "none", "off"} if word else {"none", "off"}

    def convert(text: str) -> Any:
        if text.strip().lower() in words:
            return None
        v = parse(text)
        return None if zero_is_none and v == 0 else v

    convert.__name__ = parse.__name__
    return convert


def _number(kind: type) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"not {'an integer' if kind is int else 'a number'}: {text!r}"
            ) from None
        if kind is float and not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
        return v

    convert.__name__ = kind.__name__
    return convert


def config_flags(p: argparse.ArgumentParser) -> dict[str, str]:
    """Add one flag per :class:`~fastfeed.exchange.ExchangeConfig` field (name, type,
    default and help from the dataclass field and its metadata). Returns ``{field: dest}``."""
    from ..exchange import ExchangeConfig

    hints = typing.get_type_hints(ExchangeConfig)
    dests: dict[str, str] = {}
    group: Any = p
    for f in dataclasses.fields(ExchangeConfig):
        if f.name in _GROUPS:
            group = p.add_argument_group(_GROUPS[f.name])
        meta = f.metadata
        tp = hints[f.name]
        args = typing.get_args(tp)
        optional = type(None) in args
        base = next((a for a in args if a is not type(None)), tp) if optional else tp
        default = _CLI_DEFAULTS.get(f.name, f.default if f.default is not dataclasses.MISSING else None)
        names = [_flag(f.name)] + ([meta["alias"]] if "alias" in meta else [])
        help_text = meta["help"]
        kw: dict[str, Any] = {"dest": f"cfg_{f.name}"}
        if base is not bool and typing.get_origin(base) is not typing.Literal:
            kw["metavar"] = meta.get("metavar") or {int: "N", float: "X"}.get(base, f.name.upper())
        if f.name == "port":
            kw.update(type=_port, default=default)
        elif f.name == "symbols":
            kw.update(nargs="+", default=None, metavar="SYMBOL")
            help_text += "; " + SYMBOLS_HELP
        elif base is bool and not optional and default is False:
            kw.update(action="store_true", default=False)
        elif base is bool:
            kw.update(action=argparse.BooleanOptionalAction, default=default)
        elif typing.get_origin(base) is typing.Literal:
            kw.update(choices=list(typing.get_args(base)), default=default)
        elif typing.get_origin(base) in (Mapping, collections.abc.Mapping):
            kw.update(type=_account, action="append", default=[], metavar="KEY:SECRET")
        elif base in (int, float):
            conv = _number(base)
            if optional:
                conv = _none_or(conv, meta.get("none", ""), bool(meta.get("zero_is_none")))
            kw.update(type=conv, default=default)
        else:  # str, a path
            kw.update(default=default)
        if "action" not in kw and "(default" not in help_text:
            if default is not None:
                help_text += (
                    f" (default {default:g})" if isinstance(default, float) else f" (default {default})"
                )
            elif "none" in meta:
                help_text += f" (default {meta['none']})"
        group.add_argument(*names, help=help_text, **kw)
        dests[f.name] = kw["dest"]
    return dests


def _exchange_args(p: argparse.ArgumentParser) -> None:
    config_flags(p)
    g = p.add_argument_group("private channels (more)")
    g.add_argument("--api-key", default=None, help="API key of one account (with --api-secret)")
    g.add_argument("--api-secret", default=None, help="API secret of one account (with --api-key)")
    p.add_argument(
        "--capture-keep-open", dest="cfg_capture_close", action="store_false", help=argparse.SUPPRESS
    )  # the older spelling of --no-capture-close
    g = p.add_argument_group("faults")
    g.add_argument("--shuffle-levels", action="store_true", help="send depth levels in random order")
    g.add_argument("--duplicate-trades", action="store_true", help="send every trades push twice")
    g.add_argument(
        "--reject-handshakes",
        type=_count,
        default=0,
        metavar="N",
        help="answer the first N upgrades with HTTP 502",
    )
    for name, help_text in (
        ("drop", "drop every connection"),
        ("garbage", "send a garbage frame"),
        ("truncate", "send a truncated zlib frame"),
        ("oversize", "send an oversized frame"),
        ("stall", "stall every connection (see --stall-for)"),
    ):
        g.add_argument(
            f"--{name}-every",
            type=_positive_float,
            default=None,
            metavar="S",
            help=f"{help_text} every S seconds",
        )
    g.add_argument(
        "--stall-for", type=_positive_float, default=5.0, metavar="S", help="length of each stall (default 5)"
    )


def _exchange_config(args: argparse.Namespace) -> Any:
    from ..exchange import ExchangeConfig, accounts_from_env

    accounts = accounts_from_env()
    if (args.api_key is None) != (args.api_secret is None):
        raise UsageError(f"{PROG} exchange: error: --api-key and --api-secret go together")
    if args.api_key is not None:
        accounts[args.api_key] = args.api_secret
    accounts.update(dict(args.cfg_accounts))
    kwargs: dict[str, Any] = {
        f.name: getattr(args, f"cfg_{f.name}") for f in dataclasses.fields(ExchangeConfig)
    }
    kwargs["accounts"] = accounts
    if kwargs["symbols"] is None:
        del kwargs["symbols"]
    else:
        kwargs["symbols"] = _symbol_list(kwargs["symbols"])
    if kwargs["capture"] is not None:
        _open_capture(kwargs["capture"]).close()  # missing, unreadable, not a capture: exit 4 now
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
    for line in _start_lines(ex):
        print(line, flush=True)
    t0 = loop.time()
    try:
        await stop.wait()
    finally:
        await ex.close()
    for line in _summary_lines(ex, loop.time() - t0):
        print(line, flush=True)
    return 0


def _start_lines(ex: Any) -> list[str]:
    """What the exchange serves: URL, then seed and symbols (or the capture)."""
    cfg = ex.config
    lines = [f"fastfeed exchange listening on {ex.url}"]
    if ex.market is not None:
        rate = "max" if cfg.rate is None else f"{cfg.rate:g} msg/s"
        lines.append(f"  seed {ex.market.seed}  rate {rate}  symbols {','.join(cfg.symbols)}")
    else:
        lines.append(f"  serving capture {cfg.capture}")
    if cfg.accounts:
        lines.append(f"  {len(cfg.accounts)} API account(s) for private channels")
    lines.append("  Ctrl-C stops it and prints a summary")
    return lines


def _summary_lines(ex: Any, elapsed: float) -> list[str]:
    st = ex.stats
    seed = f", seed {ex.market.seed}" if ex.market is not None else ""
    return [
        f"fastfeed exchange stopped after {elapsed:.1f} s{seed}",
        f"  {st['connections_total']} connection(s), {st['requests']} request(s) "
        f"({st['error_replies']} answered with an error), {st['market_frames']} market frames",
    ]


@command(
    "exchange",
    "run the local DigiFinex-compatible exchange (WebSocket v1)",
    epilog="Every ExchangeConfig field (fastfeed.exchange.ExchangeConfig) has a flag here.",
)(_exchange_args)
def _run_exchange(args: argparse.Namespace) -> int:
    from ..capture import CaptureError

    cfg = _exchange_config(args)
    try:
        return asyncio.run(_serve_exchange(cfg, args))
    except CaptureError as exc:  # --capture FILE is not a readable capture: exit 4
        raise FileError(str(exc)) from None
