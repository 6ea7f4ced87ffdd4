"""``fastfeed record``: capture a feed to a file."""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from pathlib import Path
from typing import Any, Literal

from ._bundled import _BundledExchange
from ._common import (
    CHANNELS,
    PROG,
    _channels,
    _count,
    _default_url,
    _demo_exchange_config,
    _isatty,
    _positive_float,
    _Stop,
    _symbol_list,
    _ws_url_checked,
    endpoint_args,
    log,
)
from .exitcodes import (
    EXIT_CONNECT,
    EXIT_OK,
    CommandError,
    ConnectError,
    FileError,
    UsageError,
)
from .registry import command

_RECORD_EPILOG = """\
Every payload is stored exactly as received (zlib or text) with its receive time, in the
fastfeed capture format (fastfeed.capture). Records are flushed to the file once a second,
so Ctrl-C, SIGTERM or even a kill leaves a readable capture (a torn last record is skipped
by the reader). Lost connections are re-established and re-subscribed (unless
--no-reconnect); the server's snapshots after a resubscribe keep replayed books correct.
--append first checks the whole file: a torn last record (an interrupted recording) is cut
off, any other damage refuses the append (exit 4, the file unchanged); the new session's
symbols and start time join the capture's header.

examples:
  fastfeed record BTC_USDT ETH_USDT -o btc-eth.ffcap --seconds 3600
  fastfeed record BTC_USDT -o local.ffcap --url ws://127.0.0.1:8765/ws/v1/
  fastfeed record BTC_USDT ETH_USDT --demo -o demo.ffcap --seconds 5
  fastfeed replay btc-eth.ffcap
"""


def _record_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("symbols", nargs="+", metavar="SYMBOL", help="symbols to record (commas also work)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="capture file to write")
    g = p.add_argument_group("what and how long")
    g.add_argument(
        "--seconds",
        type=_positive_float,
        default=None,
        metavar="N",
        help="stop after N seconds (default: until Ctrl-C)",
    )
    g.add_argument("--max-messages", type=_count, default=None, metavar="N", help="stop after N messages")
    g.add_argument(
        "--channels",
        type=_channels,
        default=list(CHANNELS),
        metavar="LIST",
        help=f"channels to subscribe, comma-separated (default {','.join(CHANNELS)})",
    )
    g = endpoint_args(p, demo="record from the bundled local exchange instead")
    g.add_argument("--no-reconnect", action="store_true", help="stop when the connection is lost")
    g = p.add_argument_group("output")
    x = g.add_mutually_exclusive_group()
    x.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    x.add_argument(
        "--append",
        action="store_true",
        help="append to FILE if it is an intact capture (a torn last record is cut off; "
        "a corrupt file is refused, unchanged)",
    )
    g.add_argument(
        "--interval",
        type=_positive_float,
        default=None,
        metavar="S",
        help="seconds between progress updates (default 0.25 on a terminal, else 1)",
    )


class _RecordSession:
    """The recorder: the real client (``fastfeed.Feed``) with a capture sink
    (:class:`fastfeed.sinks.CaptureSink`) - it connects, subscribes, reconnects with
    backoff and resubscribes; this only keeps what the progress line and the summary show."""

    def __init__(
        self, args: argparse.Namespace, url: str, symbols: list[str], writer: Any, stop: _Stop
    ) -> None:
        from ..sinks import CaptureSink

        self.args = args
        self.url = url
        self.symbols = symbols
        self.stop = stop
        self.last_reason = ""
        self.connects = 0
        self.sink = CaptureSink(
            writer=writer, max_records=args.max_messages, on_full=lambda: stop.set("max-messages")
        )
        self.feed: Any = None

    @property
    def messages(self) -> int:
        return self.sink.records

    @property
    def bytes(self) -> int:
        return self.sink.bytes

    @property
    def connected(self) -> bool:
        return self.feed is not None and self.feed.connected

    def _on_event(self, ev: Any) -> None:
        if ev.kind in ("disconnected", "reconnecting") and ev.reason and ev.reason != "closed by client":
            self.last_reason = ev.reason
            if ev.kind == "disconnected":
                log.warning("record: %s", ev.reason)
        elif ev.kind == "connected":
            self.connects += 1
            self.last_reason = ""
        if ev.kind == "disconnected" and self.args.no_reconnect:
            self.stop.set("connection-lost")

    async def run(self) -> None:
        import fastfeed

        from ..protocol import AuthError, RequestError

        args = self.args
        self.feed = feed = fastfeed.connect(
            self.url,
            connect_timeout=args.connect_timeout,
            trade_capacity=1024,
            on_event=self._on_event,
            sinks=[self.sink],
        )
        try:
            try:
                started, _ = await self.stop.race(feed.start())
            except AuthError as exc:
                raise ConnectError(f"authentication refused by {self.url}: {exc.message}") from None
            except ConnectionError as exc:  # ConnectFailed: "could not connect to URL within N s: why"
                raise ConnectError(str(exc)) from None
            if not started:
                return

            async def subscribe() -> None:
                for ch in args.channels:
                    await getattr(feed, f"subscribe_{ch}")(self.symbols)

            try:
                await self.stop.race(subscribe())
            except RequestError as exc:
                raise CommandError(f"subscription refused: {exc}") from None
            except ConnectionError as exc:  # the connection could not be kept up to subscribe
                raise ConnectError(str(exc)) from None
            await self.stop.event.wait()
        finally:
            await feed.close()  # flushes the capture (the writer stays open: the caller owns it)


def _progress_text(s: _RecordSession, path: str, elapsed: float, rate: float | None, state: str = "") -> str:
    from ..live.format import fmt_bytes, fmt_count

    if not state:
        state = "connected" if s.connected else ("connecting" if not s.connects else "reconnecting")
    per_s = f"{rate:,.0f} msg/s  " if rate is not None else ""
    return (
        f"recording {','.join(s.symbols)} -> {path}  {fmt_count(s.messages)} msgs  {fmt_bytes(s.bytes)}  "
        f"{per_s}{int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}  [{state}]"
    )


async def _record(args: argparse.Namespace, url: str, symbols: list[str], writer: Any, note: str) -> int:
    from ..live.format import fmt_bytes, fmt_count

    stop = _Stop()
    stop.install()
    session = _RecordSession(args, url, symbols, writer, stop)
    tty = _isatty(sys.stderr)
    interval = args.interval or (0.25 if tty else 1.0)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    deadline = None if args.seconds is None else t0 + args.seconds
    task = asyncio.ensure_future(session.run())
    live: Any = None
    if tty:
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        live = Live(Text(""), console=Console(stderr=True), auto_refresh=False, transient=False)
        live.start()
    else:
        print(
            f"recording {','.join(symbols)} ({','.join(args.channels)}) from {url} to {args.output}"
            + (f"; {note}" if note else ""),
            file=sys.stderr,
            flush=True,
        )
    rates: list[tuple[float, int]] = [(t0, 0)]
    try:
        while not task.done():
            if stop.event.is_set():  # stopping: the session closes the connection
                await asyncio.wait([task])
                break
            await asyncio.wait(
                [task],
                timeout=interval if deadline is None else max(0.0, min(interval, deadline - loop.time())),
            )
            now = loop.time()
            writer.flush()
            if deadline is not None and now >= deadline:
                stop.set("deadline")
            if task.done() or stop.event.is_set():
                continue
            rates.append((now, session.messages))
            while len(rates) > 2 and now - rates[1][0] >= 2.0:
                rates.pop(0)
            dt = rates[-1][0] - rates[0][0]
            rate = (rates[-1][1] - rates[0][1]) / dt if dt > 0 else 0.0
            line = _progress_text(session, args.output, now - t0, rate)
            if live is not None:
                from rich.text import Text

                live.update(Text(line), refresh=True)
            else:
                print(line, file=sys.stderr, flush=True)
        task.result()
    finally:
        if not task.done():
            stop.set("error")
            await asyncio.gather(task, return_exceptions=True)
        if live is not None:
            from rich.text import Text

            ok = task.done() and not task.cancelled() and task.exception() is None
            live.update(
                Text(
                    _progress_text(session, args.output, loop.time() - t0, None, "done" if ok else "failed")
                ),
                refresh=True,
            )
            live.stop()
        stop.remove()
    el = loop.time() - t0
    print(
        f"recorded {fmt_count(session.messages)} messages ({fmt_bytes(session.bytes)}) in {el:.1f} s "
        f"({session.messages / el if el > 0 else 0:,.0f} msg/s) to {args.output}"
        + (" (interrupted)" if stop.interrupted else "")
    )
    print(
        f"  {session.connects} connection(s), {max(0, session.connects - 1)} reconnect(s)"
        + (f"; last: {session.last_reason}" if session.last_reason else "")
    )
    print(f"  replay it: fastfeed replay {args.output}", flush=True)
    if stop.reason == "connection-lost":  # --no-reconnect and the connection went away early
        print(
            f"{PROG} record: error: {session.last_reason or 'connection lost'} (--no-reconnect); "
            f"the capture is complete up to there",
            file=sys.stderr,
        )
        return EXIT_CONNECT
    return EXIT_OK


@command("record", "capture a feed to a file (safe to interrupt)", epilog=_RECORD_EPILOG)(_record_args)
def _run_record(args: argparse.Namespace) -> int:
    from ..capture import CaptureError, CaptureWriter

    symbols = _symbol_list(args.symbols)
    if not symbols:
        raise UsageError("at least one symbol is required")
    if args.demo and args.url:
        raise UsageError("--demo and --url exclude each other")
    out = Path(args.output)
    if out.exists() and out.is_dir():
        raise FileError(f"{out} is a directory")
    if out.exists() and not (args.force or args.append):
        raise FileError(f"{out} exists (pass --force to overwrite or --append to add to it)")
    mode: Literal["x", "w", "a"] = "a" if args.append else ("w" if args.force else "x")

    def go(url: str, note: str) -> int:
        meta = {"symbols": symbols, "channels": args.channels}
        created = not (args.append and out.exists())
        try:
            writer = CaptureWriter(out, url, meta=meta, mode=mode)
        except CaptureError as exc:  # corrupt (nothing was changed), not a capture, in use
            raise FileError(f"cannot append: {exc}" if mode == "a" else str(exc)) from None
        except OSError as exc:
            raise FileError(f"cannot write {out}: {exc.strerror or exc}") from None
        if writer.truncated:
            print(
                f"{PROG} record: note: cut off a torn last record ({writer.truncated} bytes, an interrupted "
                f"recording) before appending",
                file=sys.stderr,
            )
        try:
            return asyncio.run(_record(args, url, symbols, writer, note))
        except CommandError:  # could not connect, subscription refused: leave no new file or session behind
            writer.discard()
            if created:
                out.unlink(missing_ok=True)
            raise
        finally:
            writer.close()

    if args.demo:
        seed = args.seed if args.seed is not None else random.randrange(1 << 31)
        cfg = _demo_exchange_config(symbols, args.rate, seed)
        with _BundledExchange(cfg) as ex:
            return go(ex.url, f"bundled exchange, seed {seed}")
    return go(args.url or _ws_url_checked(_default_url()), "")
