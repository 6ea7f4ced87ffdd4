"""``fastfeed replay``: run a capture through the Engine and summarise it."""

from __future__ import annotations

import argparse
import sys
import time

from ._common import PROG, _count, _int_range, _isatty, _open_capture, _speed
from .exitcodes import EXIT_INTERRUPTED, EXIT_OK, FileError
from .registry import command


def _fmt_time_ns(ns: int) -> str:
    if not ns:
        return "?"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ns / 1e9))


def _replay_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="a capture written by `fastfeed record`")
    p.add_argument(
        "--speed",
        type=_speed,
        default=None,
        metavar="X|max",
        help="1 = the recorded pacing, 10 = ten times faster, max = as fast as possible (default)",
    )
    p.add_argument(
        "--depth",
        type=_int_range(1, 10_000),
        default=200,
        metavar="N",
        help="engine book depth per side (default 200)",
    )
    p.add_argument(
        "--books",
        type=_count,
        default=20,
        metavar="N",
        help="symbols listed in the top-of-book summary (default 20)",
    )
    p.add_argument(
        "--skip-corrupt",
        action="store_true",
        help="skip corrupt records (resynchronising on the next valid one) instead of stopping",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )


_REPLAY_EPILOG = """\
Feeds every recorded payload through a fresh Engine (the same inflate -> parse -> book/ring
path as live) and prints a summary: frames and bytes, throughput, messages by method,
rejected frames by reason, trades stored and the final top of book per symbol. A torn last
record (an interrupted recording) is skipped with a note; any other damage exits with
status 4 and one line naming its offset, after the summary of the good part before it
(with --skip-corrupt: damaged records are skipped, listed in the summary, exit 0).

examples:
  fastfeed replay btc.ffcap
  fastfeed replay btc.ffcap --speed 1      # at the recorded pace
"""


@command("replay", "run a capture through the Engine and summarise it", epilog=_REPLAY_EPILOG)(_replay_args)
def _run_replay(args: argparse.Namespace) -> int:
    from .. import Engine
    from ..capture import CaptureError, ReplayStats, replay
    from ..live.format import _kv, fmt_bytes, fmt_count, fmt_ns
    from ..live.text import top_of_book_lines

    reader = _open_capture(args.file, "skip" if args.skip_corrupt else "raise")
    eng = Engine(depth=args.depth)
    progress = args.progress if args.progress is not None else _isatty(sys.stderr)
    damage = ""
    interrupted = False
    rs: ReplayStats | None = None
    t0 = time.perf_counter()
    try:
        rs = replay(reader, eng, speed=args.speed, progress=progress, progress_file=sys.stderr)
    except CaptureError as exc:
        damage = str(exc)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        elapsed = time.perf_counter() - t0 if rs is None else rs.elapsed
        header = reader.header
        torn = reader.torn_bytes
        damaged = list(reader.damaged)
        reader.close()
    st = eng.stats
    frames, nbytes = st["frames"], st["bytes_in"]
    from ..protocol import safe_text  # header text is the recorder's: escaped, cut

    meta = header.meta
    src = f"from {safe_text(header.url, 200)}" if header.url else ""
    by = safe_text(meta.get("created_by", ""), 80)
    print(
        f"replay {args.file}" + (" (interrupted)" if interrupted else "") + (" (damaged)" if damage else "")
    )
    print(
        f"  captured {src} at {_fmt_time_ns(header.start_ns)}"
        + (f" by {by}" if by else "")
        + (f"; symbols {safe_text(','.join(header.symbols), 300)}" if header.symbols else "")
        + (f"; {len(header.sessions)} sessions" if len(header.sessions) > 1 else "")
    )
    span = (rs.last_ns - rs.first_ns) / 1e9 if rs is not None and rs.frames else 0.0
    print(
        f"  {fmt_count(frames)} frames, {fmt_bytes(nbytes)} ({fmt_bytes(st['bytes_inflated'])} inflated)"
        + (f", recorded over {span:.1f} s" if span > 0 else "")
    )
    if elapsed > 0 and frames:
        if args.speed is None:
            fast = f", {span / elapsed:,.0f}x real time" if span > 0 else ""
            print(
                f"  fed at max speed in {elapsed:.3f} s: {frames / elapsed:,.0f} frames/s, "
                f"{fmt_bytes(nbytes / elapsed)}/s, {fmt_ns(elapsed * 1e9 / frames)}/frame{fast}"
            )
        else:
            print(f"  fed at speed x{args.speed:g} in {elapsed:.3f} s ({frames / elapsed:,.0f} frames/s)")
    msgs = {k: v for k, v in st["messages"].items() if v}
    rejects = {k: v for k, v in st["rejects"].items() if v}
    print(f"messages by method  {_kv(msgs)}")
    print(f"rejects             {_kv(rejects)}")
    dropped = {k: v for k, v in (st.get("dropped_trades") or {}).items() if v}
    print(
        f"trades stored       {fmt_count(eng.trades.count)}"
        + (f"  (dropped: {_kv(dropped)})" if dropped else "")
        + (
            f"  ({fmt_count(st['out_of_order_trades'])} stored out of id order)"
            if st.get("out_of_order_trades")
            else ""
        )
    )
    if torn:
        print(f"torn tail           {torn} bytes skipped (the recording was cut off mid-record)")
    if damaged:
        where = ", ".join(f"{n} at offset {off}" for off, n in damaged[:5]) + (
            " ..." if len(damaged) > 5 else ""
        )
        print(
            f"corrupt data        {len(damaged)} region(s), {sum(n for _, n in damaged)} bytes skipped: {where}"
        )
    print("top of book at the end:")
    for line in top_of_book_lines(eng.books, limit=args.books):
        print(line)
    sys.stdout.flush()
    if damage:
        raise FileError(damage)
    if interrupted:
        print(f"{PROG} replay: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK
