"""``fastfeed archive``: the bus's depth and trades into a Parquet dataset (fastfeed.archive)."""

from __future__ import annotations

import argparse
import asyncio

from ._common import _positive_float, _Stop
from ._nats import NATS_HELP, nats_args, nats_kwargs
from .exitcodes import EXIT_OK, ConnectError, FileError, UsageError
from .registry import command

_ARCHIVE_EPILOG = f"""\
A durable JetStream consumer (--durable, default fastfeed-archive) reads PREFIX.depth.> and
PREFIX.trades.> and writes OUT/events/date=D/symbol=S/*.parquet and OUT/trades/... (the
columns of `fastfeed export`), acknowledging after each row group: a crash loses nothing
acknowledged, and a restart resumes where the last acknowledged message left off. OUT is
created once NATS is connected.

{NATS_HELP}

examples:
  fastfeed archive --nats nats://127.0.0.1:4222 -o history/
  fastfeed archive --nats tls://nats.example:4222 --creds archive.creds --tls-ca ca.pem -o history/
  python -c 'import pyarrow.dataset as ds; print(ds.dataset("history/events", partitioning="hive").to_table())'
"""


def _archive_args(p: argparse.ArgumentParser) -> None:
    nats_args(p)
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="dataset directory")
    p.add_argument("--stream", default="FASTFEED", help="JetStream stream name (default FASTFEED)")
    p.add_argument(
        "--prefix", default="fastfeed.digifinex", help="subject prefix (default fastfeed.digifinex)"
    )
    p.add_argument("--durable", default="fastfeed-archive", help="durable consumer name")
    p.add_argument(
        "--row-group", type=int, default=1 << 16, metavar="N", help="rows per row group (default 65536)"
    )
    p.add_argument(
        "--flush-interval",
        type=_positive_float,
        default=5.0,
        metavar="S",
        help="write and acknowledge at least every S seconds (default 5)",
    )
    p.add_argument(
        "--idle-exit",
        type=_positive_float,
        default=None,
        metavar="S",
        help="stop once no message came for S seconds (default: run until Ctrl-C)",
    )


async def _archive(args: argparse.Namespace) -> int:
    from ..archive import archive
    from ..errors import BusError

    stop = _Stop()
    stop.install()
    try:
        stats = await archive(
            args.nats,
            args.output,
            stream=args.stream,
            prefix=args.prefix,
            durable=args.durable,
            row_group=args.row_group,
            flush_interval=args.flush_interval,
            idle_exit=args.idle_exit,
            stop=stop.event,
            **nats_kwargs(args),
        )
    except BusError as exc:
        raise ConnectError(str(exc)) from None
    except OSError as exc:  # the directory, made once connected
        raise FileError(f"cannot create {args.output}: {exc.strerror or exc}") from None
    finally:
        stop.remove()
    print(
        f"archived {stats.messages:,} messages: {stats.event_rows:,} event rows, {stats.trade_rows:,} trades "
        f"in {stats.files:,} files under {args.output}"
        + (f"; {stats.rejected} rejected" if stats.rejected else ""),
        flush=True,
    )
    return EXIT_OK


@command("archive", "write the bus's book events and trades to a Parquet dataset", epilog=_ARCHIVE_EPILOG)(
    _archive_args
)
def _run_archive(args: argparse.Namespace) -> int:
    try:
        import nats  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            f"fastfeed archive needs nats-py and pyarrow: pip install 'fastfeed[nats,parquet]' "
            f"({exc.name} missing)"
        ) from None
    if args.row_group < 1:
        raise UsageError("--row-group must be >= 1")
    nats_kwargs(args)  # the TLS files load (UsageError otherwise), before any connection
    from ..archive import check_out_dir

    try:
        check_out_dir(args.output)  # made only once connected; refused before if it cannot be
    except NotADirectoryError as exc:
        raise FileError(str(exc)) from None
    return asyncio.run(_archive(args))
