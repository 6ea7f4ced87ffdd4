"""``fastfeed export``: a capture to npz, parquet or csv."""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

from ._common import (
    PROG,
    SYMBOLS_HELP,
    _int_range,
    _isatty,
    _open_capture,
    _safe,
    _symbol_list,
)
from .exitcodes import EXIT_OK, CommandError, FileError, UsageError
from .registry import command

_EXPORT_EPILOG = """\
npz      hftbacktest event rows (fastfeed.events.EVENT_DTYPE) with np.savez_compressed:
         np.load(OUT)["data"], plus "symbols" (the names `ival` indexes)
parquet  the event rows (or --what trades: the stored trades), one row group per ~1M rows;
         needs pyarrow (pip install pyarrow)
csv      the same rows as text: events (local_ts, exch_ts, symbol, kind, side, price, qty,
         trade_id) or trades (recv_ns, time, symbol, id, side, price, amount)

--to defaults to OUT's suffix. OUT is overwritten. A corrupt capture exits 4 naming the
offset, leaving no OUT (with --skip-corrupt: damaged records are skipped and reported).

examples:
  fastfeed export btc.ffcap --to npz -o btc.npz --symbols BTC_USDT
  fastfeed export btc.ffcap --to parquet --what trades -o trades.parquet
  fastfeed export btc.ffcap -o events.csv
"""


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="a capture written by `fastfeed record`")
    p.add_argument(
        "--to",
        choices=["npz", "parquet", "csv"],
        default=None,
        help="output format (default: from OUT's suffix)",
    )
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output file")
    p.add_argument(
        "--what",
        choices=["events", "trades"],
        default="events",
        help="book+trade events (default) or trades only (parquet, csv)",
    )
    p.add_argument(
        "--symbols",
        nargs="+",
        default=None,
        metavar="SYMBOL",
        help=f"keep only these symbols, {SYMBOLS_HELP}",
    )
    p.add_argument(
        "--depth",
        type=_int_range(1, 10_000),
        default=200,
        metavar="N",
        help="engine book depth per side (default 200)",
    )
    p.add_argument(
        "--skip-corrupt",
        action="store_true",
        help="skip corrupt records (resynchronising on the next valid one) instead of failing",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )


@command("export", "convert a capture to npz (hftbacktest), parquet or csv", epilog=_EXPORT_EPILOG)(
    _export_args
)
def _run_export(args: argparse.Namespace) -> int:
    from ..capture import CaptureError
    from ..live.format import _kv, fmt_bytes, fmt_count

    out = Path(args.output)
    fmt = args.to
    if fmt is None:
        fmt = {".npz": "npz", ".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}.get(out.suffix.lower())
        if fmt is None:
            raise UsageError(f"cannot tell the format from {out.name!r}: pass --to npz|parquet|csv")
    if fmt == "npz" and args.what != "events":
        raise UsageError("npz holds hftbacktest event rows only; --what trades is for parquet or csv")
    if fmt == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise UsageError("--to parquet needs pyarrow, which is not installed (pip install pyarrow)")
    symbols = _symbol_list(args.symbols) if args.symbols else None
    _open_capture(args.file).close()  # bad input -> exit 4 before anything is written
    on_corrupt = "skip" if args.skip_corrupt else "raise"
    if out.is_dir():
        raise FileError(f"{out} is a directory")
    if not out.parent.exists():
        raise FileError(f"{out.parent}: no such directory")
    progress = args.progress if args.progress is not None else _isatty(sys.stderr)
    t0 = time.perf_counter()
    written = out if fmt != "npz" or out.suffix == ".npz" else out.with_name(out.name + ".npz")
    try:
        from ..export import capture_to_csv, capture_to_npz, capture_to_parquet

        common: dict[str, Any] = dict(
            symbols=symbols,
            depth=args.depth,
            progress=progress,
            progress_file=sys.stderr,
            on_corrupt=on_corrupt,
        )
        if fmt == "npz":
            st = capture_to_npz(args.file, out, **common)
        elif fmt == "parquet":
            st = capture_to_parquet(args.file, out, what=args.what, **common)
        else:
            st = capture_to_csv(args.file, out, what=args.what, **common)
        frames, rows, rejects, damaged = st.frames, st.rows, st.rejects, st.damaged
        written = Path(st.path or written)
    except CaptureError as exc:
        written.unlink(missing_ok=True)
        raise FileError(str(exc)) from None
    except KeyboardInterrupt:
        written.unlink(missing_ok=True)
        raise
    except OSError as exc:
        written.unlink(missing_ok=True)
        raise FileError(f"cannot write {written}: {exc.strerror or exc}") from None
    el = time.perf_counter() - t0
    if symbols and len(st.unmatched) == len(symbols):  # nothing matched: no empty file left behind
        written.unlink(missing_ok=True)
        seen = ", ".join(st.symbols[:20]) + (" ..." if len(st.symbols) > 20 else "") if st.symbols else "none"
        raise CommandError(
            f"no data for {', '.join(symbols)} in {args.file} (nothing written); its symbols: {_safe(seen)}"
        )
    if st.unmatched:
        print(f"{PROG} export: note: no data for {', '.join(st.unmatched)} in {args.file}", file=sys.stderr)
    size = written.stat().st_size if written.exists() else 0
    what = "event rows" if args.what == "events" else "trades"
    print(
        f"exported {fmt_count(rows)} {what} from {fmt_count(frames)} frames to {written} "
        f"({fmt}, {fmt_bytes(size)}) in {el:.2f} s" + (f"; symbols {','.join(symbols)}" if symbols else "")
    )
    print(f"  rejected frames: {_kv(rejects)}")
    if damaged:
        print(
            f"  corrupt data skipped: {len(damaged)} region(s), {sum(n for _, n in damaged)} bytes, "
            f"first at offset {damaged[0][0]}"
        )
    return EXIT_OK
