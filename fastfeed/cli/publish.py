"""``fastfeed publish``: run the feed and publish it on NATS JetStream (fastfeed.bus)."""

from __future__ import annotations

import argparse
import asyncio
import random
import ssl
import sys
from typing import Any

from ._bundled import _BundledExchange
from ._common import (
    CHANNELS,
    _channels,
    _default_url,
    _demo_exchange_config,
    _positive_float,
    _Stop,
    _symbol_list,
    _ws_url_checked,
    endpoint_args,
)
from ._nats import NATS_HELP, nats_args, nats_kwargs
from .exitcodes import EXIT_OK, CommandError, ConnectError, UsageError
from .registry import command

_PUBLISH_EPILOG = f"""\
Books, trades and tickers go to one JetStream stream (created if missing) as flat binary
records in fastfeed's own dtypes (docs/bus.md): PREFIX.depth.SYM (every applied change),
PREFIX.book.SYM (snapshots), PREFIX.trades.SYM, PREFIX.ticker.SYM, PREFIX.status. Rebuild the
books anywhere with fastfeed.bus.subscribe(NATS_URL, symbols=[...]).

{NATS_HELP}

examples:
  nats-server -js &
  fastfeed publish BTC_USDT ETH_USDT --nats nats://127.0.0.1:4222 --demo
  fastfeed publish BTC_USDT ETH_USDT SOL_USDT XRP_USDT --nats nats://127.0.0.1:4222 --shards 2
  fastfeed publish BTC_USDT --nats tls://nats.example:4222 --creds feed.creds --tls-ca ca.pem
"""


def _publish_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("symbols", nargs="+", metavar="SYMBOL", help="symbols to publish (commas also work)")
    nats_args(p)
    g = p.add_argument_group("what and how long")
    g.add_argument(
        "--channels",
        type=_channels,
        default=list(CHANNELS),
        metavar="LIST",
        help=f"channels to subscribe, comma-separated (default {','.join(CHANNELS)})",
    )
    g.add_argument(
        "--seconds",
        type=_positive_float,
        default=None,
        metavar="N",
        help="stop after N seconds (default: until Ctrl-C)",
    )
    g = endpoint_args(p, demo="publish the bundled local exchange instead")
    g = p.add_argument_group("bus")
    g.add_argument("--stream", default="FASTFEED", help="JetStream stream name (default FASTFEED)")
    g.add_argument(
        "--prefix", default="fastfeed.digifinex", help="subject prefix (default fastfeed.digifinex)"
    )
    g.add_argument(
        "--snapshot-interval",
        type=_positive_float,
        default=5.0,
        metavar="S",
        help="seconds between full book snapshots (default 5)",
    )
    g.add_argument(
        "--storage", choices=["file", "memory"], default="file", help="stream storage (default file)"
    )
    g.add_argument(
        "--shards",
        type=int,
        default=1,
        metavar="N",
        help="split the symbols over N connections, each in its own process publishing its "
        "own symbols (default 1; status records say which shard)",
    )
    g.add_argument(
        "--publisher",
        choices=["process", "thread"],
        default="process",
        help="where the NATS client runs: a process of its own that reads the feed's shared "
        "memory and shares no GIL or core with the feed, or a thread of the feed's process "
        "(default process)",
    )
    g.add_argument(
        "--interval",
        type=_positive_float,
        default=1.0,
        metavar="S",
        help="seconds between progress lines on stderr (default 1)",
    )


async def _publish(args: argparse.Namespace, url: str, symbols: list[str], note: str) -> int:
    import fastfeed

    from ..bus import NatsSink
    from ..errors import BusError, FeedClosed
    from ..protocol import RequestError

    sharded = args.shards > 1
    try:
        sink = NatsSink(
            args.nats,
            stream=args.stream,
            prefix=args.prefix,
            snapshot_interval=args.snapshot_interval,
            storage=args.storage,
            publisher=args.publisher,
            **nats_kwargs(args),
        )
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"TLS files: {exc}") from None
    stop = _Stop()
    stop.install()
    feed: Any
    if sharded:
        feed = fastfeed.connect_sharded(
            url, args.shards, symbols=symbols, connect_timeout=args.connect_timeout, sinks=[sink]
        )
    else:
        feed = fastfeed.connect(url, connect_timeout=args.connect_timeout, sinks=[sink])

    def stats() -> dict[str, int]:
        return feed.sink_stats[0] if sharded else sink.stats

    loop = asyncio.get_running_loop()
    t0 = loop.time()
    try:
        try:
            started, _ = await stop.race(feed.start())
        except BusError as exc:
            raise ConnectError(str(exc)) from None
        except (ConnectionError, FeedClosed) as exc:
            raise ConnectError(str(exc)) from None
        if not started:
            return EXIT_OK
        print(
            f"publishing {','.join(symbols)} ({','.join(args.channels)}) from {url} to {sink.url} "
            f"stream {args.stream} prefix {args.prefix}"
            + (f" from {args.shards} shard processes" if sharded else "")
            + (f"; {note}" if note else ""),
            file=sys.stderr,
            flush=True,
        )
        try:
            for ch in args.channels:
                ok, _ = await stop.race(getattr(feed, f"subscribe_{ch}")(symbols))
                if not ok:
                    break
        except RequestError as exc:
            raise CommandError(f"subscription refused: {exc}") from None
        deadline = None if args.seconds is None else t0 + args.seconds
        while not stop.event.is_set():
            wait = args.interval if deadline is None else max(0.0, min(args.interval, deadline - loop.time()))
            await stop.wait(wait)
            if deadline is not None and loop.time() >= deadline:
                stop.set("deadline")
            st = stats()
            print(
                f"published {st['messages']:,} msgs {st['records']:,} records, acked {st['acked']:,}, "
                f"dropped {st['dropped_messages']:,}, errors {st['publish_errors']:,}  "
                f"[{'connected' if feed.connected else 'reconnecting'}]",
                file=sys.stderr,
                flush=True,
            )
    finally:
        await feed.close()
        stop.remove()
    st = stats()
    print(
        f"published {st['messages']:,} messages ({st['records']:,} records, {st['snapshots']:,} snapshots) "
        f"in {loop.time() - t0:.1f} s; acked {st['acked']:,}, dropped {st['dropped_messages']:,}, "
        f"publish errors {st['publish_errors']:,}",
        flush=True,
    )
    return EXIT_OK


@command("publish", "run the feed and publish books and trades on NATS JetStream", epilog=_PUBLISH_EPILOG)(
    _publish_args
)
def _run_publish(args: argparse.Namespace) -> int:
    try:
        import nats  # noqa: F401
    except ImportError:
        raise UsageError("fastfeed publish needs nats-py: pip install 'fastfeed[nats]'") from None
    symbols = _symbol_list(args.symbols)
    if not symbols:
        raise UsageError("at least one symbol is required")
    if args.demo and args.url:
        raise UsageError("--demo and --url exclude each other")
    nats_kwargs(args)  # the TLS files load (UsageError otherwise), before any connection
    if not 1 <= args.shards <= 64:
        raise UsageError("--shards must be 1..64")
    if args.demo:
        seed = args.seed if args.seed is not None else random.randrange(1 << 31)
        cfg = _demo_exchange_config(symbols, args.rate, seed)
        with _BundledExchange(cfg) as ex:
            return asyncio.run(_publish(args, ex.url, symbols, f"bundled exchange, seed {seed}"))
    return asyncio.run(_publish(args, args.url or _ws_url_checked(_default_url()), symbols, ""))
