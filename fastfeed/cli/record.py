"""``fastfeed record``: capture a feed to a file."""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path
from typing import Any

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
    _rate,
    _Stop,
    _symbol_list,
    _ws_url,
    _ws_url_checked,
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
    g.add_argument("--seconds", type=_positive_float, default=None, metavar="N",
                   help="stop after N seconds (default: until Ctrl-C)")
    g.add_argument("--max-messages", type=_count, default=None, metavar="N", help="stop after N messages")
    g.add_argument("--channels", type=_channels, default=list(CHANNELS), metavar="LIST",
                   help="channels to subscribe, comma-separated (default depth,trades,ticker)")
    g = p.add_argument_group("endpoint")
    g.add_argument("--url", type=_ws_url, default=None,
                   help="WebSocket endpoint (default $FASTFEED_URL or wss://openapi.digifinex.com/ws/v1/)")
    g.add_argument("--demo", action="store_true", help="record from the bundled local exchange instead")
    g.add_argument("--rate", type=_rate, default=1000.0, help="with --demo: market messages/s (default 1000)")
    g.add_argument("--seed", type=int, default=None, help="with --demo: market seed (default random)")
    g.add_argument("--connect-timeout", type=_positive_float, default=10.0, metavar="S",
                   help="give up (exit 3) if the first connection fails for S seconds (default 10)")
    g.add_argument("--no-reconnect", action="store_true", help="stop when the connection is lost")
    g = p.add_argument_group("output")
    x = g.add_mutually_exclusive_group()
    x.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    x.add_argument("--append", action="store_true",
                   help="append to FILE if it is an intact capture (a torn last record is cut off; "
                        "a corrupt file is refused, unchanged)")
    g.add_argument("--interval", type=_positive_float, default=None, metavar="S",
                   help="seconds between progress updates (default 0.25 on a terminal, else 1)")


class _RecordSession:
    """Connect, subscribe, write every payload; reconnect on loss; count for the progress line."""

    def __init__(self, args: argparse.Namespace, url: str, symbols: list[str], writer: Any, stop: _Stop) -> None:
        self.args = args
        self.url = url
        self.symbols = symbols
        self.writer = writer
        self.stop = stop
        self.messages = 0
        self.bytes = 0
        self.connects = 0
        self.connected = False
        self.last_reason = ""
        self.errors: list[str] = []
        self._pending: dict[int, tuple[str, list[str]]] = {}
        self._replied = asyncio.Event()
        self._next_id = 1

    def requests(self) -> list[tuple[str, list[str]]]:
        from .. import protocol

        out = []
        for ch in self.args.channels:
            for chunk in protocol.chunk_symbols(self.symbols):
                out.append((f"{ch}.subscribe", chunk))
        return out

    def _on_frame(self, payload: memoryview, msg_type: int) -> None:
        mx = self.args.max_messages
        if (mx is not None and self.messages >= mx) or self.writer.closed:
            return
        n = payload.nbytes
        self.writer.write(payload, time.time_ns(), msg_type)
        self.messages += 1
        self.bytes += n
        if self._pending:
            self._check_reply(payload)
        if mx is not None and self.messages >= mx:
            self.stop.set("max-messages")

    def _check_reply(self, payload: memoryview) -> None:
        from ..exchange import DecodeError, decode_payload

        try:
            msg = decode_payload(payload)
        except (DecodeError, ValueError):
            return
        if not isinstance(msg, dict) or msg.get("method") is not None:
            return
        entry = self._pending.pop(msg.get("id"), None) if isinstance(msg.get("id"), int) else None
        if entry is None:
            return
        if msg.get("error") is not None:
            from ..protocol import parse_error

            code, text = parse_error(msg["error"])
            self.errors.append(f"{entry[0]} {','.join(entry[1])} (code {code}): {text}")
        if not self._pending:
            self._replied.set()

    def _send(self, transport: Any, method: str, params: list[Any]) -> int:
        import orjson
        from picows import WSMsgType

        req_id = self._next_id
        self._next_id += 1
        transport.send(WSMsgType.TEXT, orjson.dumps({"id": req_id, "method": method, "params": params}))
        return req_id

    async def _connect(self) -> tuple[Any, asyncio.Future[None]]:
        from picows import WSListener, WSMsgType, ws_connect

        session = self
        loop = asyncio.get_running_loop()
        gone: asyncio.Future[None] = loop.create_future()
        binary, text, close, ping = WSMsgType.BINARY, WSMsgType.TEXT, WSMsgType.CLOSE, WSMsgType.PING

        class Listener(WSListener):  # type: ignore[misc]
            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                mt = frame.msg_type
                if mt is binary or mt is text:
                    session._on_frame(frame.get_payload_as_memoryview(), mt.value)
                elif mt is close:
                    session.last_reason = f"closed by server (code {frame.get_close_code()})"
                    transport.send_close(frame.get_close_code())
                    transport.disconnect()
                elif mt is ping:
                    transport.send_pong(frame.get_payload_as_bytes())

            def on_ws_disconnected(self, transport: Any) -> None:
                if not gone.done():
                    gone.set_result(None)

        transport, _ = await ws_connect(Listener, self.url, enable_auto_pong=False, enable_auto_ping=False,
                                        websocket_handshake_timeout=10.0, max_frame_size=16 << 20)
        return transport, gone

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        args = self.args
        first_deadline = loop.time() + args.connect_timeout
        attempt = 0
        while not self.stop.event.is_set():
            try:
                ok, res = await self.stop.race(asyncio.wait_for(self._connect(), args.connect_timeout))
            except (OSError, asyncio.TimeoutError, Exception) as exc:  # refused, DNS, handshake
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                self.last_reason = f"connect failed: {reason}"
                if self.connects == 0 and loop.time() >= first_deadline:
                    raise ConnectError(f"could not connect to {self.url} within {args.connect_timeout:g} s: "
                                       f"{reason}") from None
                if self.connects and args.no_reconnect:
                    return
                delay = min(30.0, 0.25 * 2 ** attempt) * random.uniform(0.8, 1.2)
                if self.connects == 0:
                    delay = min(delay, max(0.05, first_deadline - loop.time()))
                attempt += 1
                log.info("record: %s; retrying in %.2f s", self.last_reason, delay)
                await self.stop.wait(delay)
                continue
            if not ok:
                return
            transport, gone = res
            attempt = 0
            self.connects += 1
            self.connected = True
            self.last_reason = ""
            try:
                self._replied.clear()
                self._pending = {self._send(transport, m, p): (m, p) for m, p in self.requests()}
                try:
                    await self.stop.race(asyncio.wait_for(self._replied.wait(), 10.0))
                except asyncio.TimeoutError:
                    log.warning("record: no reply to %d subscribe request(s) within 10 s", len(self._pending))
                    self._pending.clear()
                if self.errors:
                    more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
                    raise CommandError(f"subscription refused: {self.errors[0]}{more}")
                stopped = asyncio.ensure_future(self.stop.event.wait())
                try:
                    while not stopped.done() and not gone.done():
                        await asyncio.wait([gone, stopped], timeout=20.0, return_when=asyncio.FIRST_COMPLETED)
                        if not gone.done() and not stopped.done():
                            self._send(transport, "server.ping", [])  # the server drops idle clients
                finally:
                    stopped.cancel()
            finally:
                self.connected = False
                if not gone.done():
                    transport.send_close()
                    transport.disconnect()
                    try:
                        await asyncio.wait_for(asyncio.shield(gone), 5.0)
                    except asyncio.TimeoutError:
                        pass
                self.writer.flush()
            if self.stop.event.is_set():
                return
            if not self.last_reason:
                self.last_reason = "connection lost"
            log.warning("record: %s", self.last_reason)
            if args.no_reconnect:
                return


def _progress_text(s: _RecordSession, path: str, elapsed: float, rate: float | None, state: str = "") -> str:
    from ..view import fmt_bytes, fmt_count

    if not state:
        state = "connected" if s.connected else ("connecting" if not s.connects else "reconnecting")
    per_s = f"{rate:,.0f} msg/s  " if rate is not None else ""
    return (f"recording {','.join(s.symbols)} -> {path}  {fmt_count(s.messages)} msgs  {fmt_bytes(s.bytes)}  "
            f"{per_s}{int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}  [{state}]")


async def _record(args: argparse.Namespace, url: str, symbols: list[str], writer: Any, note: str) -> int:
    from ..view import fmt_bytes, fmt_count

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
        print(f"recording {','.join(symbols)} ({','.join(args.channels)}) from {url} to {args.output}"
              + (f"; {note}" if note else ""), file=sys.stderr, flush=True)
    rates: list[tuple[float, int]] = [(t0, 0)]
    try:
        while not task.done():
            if stop.event.is_set():  # stopping: the session closes the connection
                await asyncio.wait([task])
                break
            await asyncio.wait([task], timeout=interval if deadline is None
                               else max(0.0, min(interval, deadline - loop.time())))
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
            live.update(Text(_progress_text(session, args.output, loop.time() - t0, None, "done" if ok else "failed")),
                        refresh=True)
            live.stop()
        stop.remove()
    el = loop.time() - t0
    print(f"recorded {fmt_count(session.messages)} messages ({fmt_bytes(session.bytes)}) in {el:.1f} s "
          f"({session.messages / el if el > 0 else 0:,.0f} msg/s) to {args.output}"
          + (" (interrupted)" if stop.interrupted else ""))
    print(f"  {session.connects} connection(s), {max(0, session.connects - 1)} reconnect(s)"
          + (f"; last: {session.last_reason}" if session.last_reason else ""))
    print(f"  replay it: fastfeed replay {args.output}", flush=True)
    if not stop.event.is_set():  # --no-reconnect and the connection went away early
        print(f"{PROG} record: error: {session.last_reason or 'connection lost'} (--no-reconnect); "
              f"the capture is complete up to there", file=sys.stderr)
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
    mode = "a" if args.append else ("w" if args.force else "x")

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
            print(f"{PROG} record: note: cut off a torn last record ({writer.truncated} bytes, an interrupted "
                  f"recording) before appending", file=sys.stderr)
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


