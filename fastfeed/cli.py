"""The ``fastfeed`` command line (also ``python -m fastfeed``).

Subcommands register themselves with :func:`command`; each gets an argparse sub-parser and
a ``run(args) -> int``. Commands: ``demo``, ``watch``, ``record``, ``replay``, ``export``,
``bench``, ``exchange``.

Exit status: 0 success; 1 other runtime error; 2 bad arguments; 3 connection failure;
4 bad file; 130 Ctrl-C during ``replay``/``export``/``bench`` (Ctrl-C is the normal way to
stop ``demo``, ``watch``, ``record`` and ``exchange``: they print their summary and exit 0).
Expected failures print one line on stderr (``fastfeed CMD: error: ...``), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import math
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, NoReturn, Sequence
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ._events import EventRing
    from ._ring import TradeRing

__all__ = [
    "main",
    "build_parser",
    "command",
    "CommandError",
    "UsageError",
    "ConnectError",
    "FileError",
    "EXIT_OK",
    "EXIT_ERROR",
    "EXIT_USAGE",
    "EXIT_CONNECT",
    "EXIT_FILE",
    "EXIT_INTERRUPTED",
]

PROG = "fastfeed"

EXIT_OK = 0
EXIT_ERROR = 1  #: any other runtime error
EXIT_USAGE = 2  #: bad arguments (or a missing optional dependency for the asked-for output)
EXIT_CONNECT = 3  #: could not connect / handshake / authenticate
EXIT_FILE = 4  #: missing, unreadable, corrupt or not-a-capture file; output that may not be overwritten
EXIT_INTERRUPTED = 130  #: Ctrl-C during replay, export or bench

DEMO_SYMBOLS = ("BTC_USDT", "ETH_USDT", "SOL_USDT", "XRP_USDT")
CHANNELS = ("depth", "trades", "ticker")

log = logging.getLogger("fastfeed.cli")


class CommandError(Exception):
    """An expected failure: one line on stderr and exit status ``code``."""

    code = EXIT_ERROR

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class UsageError(CommandError):
    """Bad command-line arguments (exit status 2)."""

    code = EXIT_USAGE


class ConnectError(CommandError):
    """Could not connect, complete the handshake or authenticate (exit status 3)."""

    code = EXIT_CONNECT


class FileError(CommandError):
    """A missing, unreadable or corrupt file (exit status 4)."""

    code = EXIT_FILE


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message}")


Runner = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Runner, str, str]] = {}


def command(name: str, help: str, *, description: str = "", epilog: str = "") -> Callable[
        [Callable[[argparse.ArgumentParser], None]], Callable[[Runner], Runner]]:
    """Register a subcommand: ``@command(name, help)`` on the function adding its
    arguments returns a decorator for its ``run(args) -> int``."""

    def with_args(add_arguments: Callable[[argparse.ArgumentParser], None]) -> Callable[[Runner], Runner]:
        def with_run(run: Runner) -> Runner:
            _COMMANDS[name] = (help, add_arguments, run, description, epilog)
            return run

        return with_run

    return with_args


_TOP_EPILOG = """\
exit status:
  0    success; also Ctrl-C in demo, watch, record and exchange (the summary is printed)
  1    other runtime error (a port in use, a subscription refused, missed bench targets)
  2    bad arguments (also: an optional dependency the output needs is missing)
  3    connection failure (unreachable endpoint, handshake or authentication refused)
  4    bad file (missing, unreadable, not a capture, corrupt; record output exists)
  130  Ctrl-C during replay, export or bench (replay prints its partial summary)

environment:
  FASTFEED_URL          default endpoint of watch and record (else the DigiFinex URL)
  FASTFEED_API_KEY      API key for private channels (watch --orders/--balance) and an
  FASTFEED_API_SECRET   account of the local exchange; used only when both are set
  NO_COLOR, COLUMNS     honoured by the terminal view (rich)

Run `fastfeed COMMAND --help` for a command's flags. Start with `fastfeed demo`.
"""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    from . import __version__

    common = _Parser(add_help=False)
    g = common.add_argument_group("logging (stdlib logging on stderr)")
    g.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                   help="more log output (-v INFO, -vv DEBUG)")
    g.add_argument("-q", "--quiet", action="count", default=argparse.SUPPRESS,
                   help="less log output (-q ERROR, -qq CRITICAL)")
    g.add_argument("--log-level", default=argparse.SUPPRESS, choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="set the level directly (default WARNING)")
    parser = _Parser(prog=PROG, description="fastfeed: DigiFinex spot WebSocket v1 feed handler tools",
                     parents=[common], epilog=_TOP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (help_text, add_arguments, run, description, epilog) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=description or help_text, epilog=epilog or None,
                           parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter)
        add_arguments(p)
        p.set_defaults(_run=run)
    return parser


def _log_level(args: argparse.Namespace) -> int:
    if hasattr(args, "log_level"):
        return int(getattr(logging, args.log_level))
    level = logging.WARNING - 10 * getattr(args, "verbose", 0) + 10 * getattr(args, "quiet", 0)
    return max(logging.DEBUG, min(logging.CRITICAL, level))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fastfeed`` command; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            raise UsageError(f"{PROG}: error: a command is required (one of: {', '.join(_COMMANDS)})")
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    handler = logging.StreamHandler()
    handler.setFormatter(_SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=_log_level(args), handlers=[handler])
    try:
        return int(args._run(args))
    except CommandError as exc:
        msg = _safe(str(exc))
        if not msg.startswith(PROG):
            msg = f"{PROG} {args.command}: error: {msg}"
        print(msg, file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `fastfeed ... | head`: the reader is gone, which is fine
        _silence_stdout()
        return EXIT_OK
    except Exception as exc:  # one line, no traceback, for operational errors
        log.debug("unexpected error", exc_info=True)
        print(f"{PROG} {args.command}: error: {_safe(str(exc)) or type(exc).__name__}", file=sys.stderr)
        return EXIT_ERROR


def _safe(text: str) -> str:
    """One line of text safe for a terminal (escape sequences and other control characters
    from the network are shown escaped)."""
    from .protocol import safe_text

    return safe_text(text, 1000)


class _SafeFormatter(logging.Formatter):
    """Every log line the command prints: control characters in the message (network text,
    or a library's multi-line message) are escaped so that one record is one line, a log
    call with bad arguments or a broken traceback is shown as such instead of the stdlib's
    "--- Logging error ---" dump, and tracebacks (DEBUG level only, see _run_live) are kept."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            msg = record.getMessage()
        except Exception:  # a log call whose arguments do not match its format
            msg = f"{record.msg!s} {record.args!r} (bad log call)"
        record.message = _safe(msg)
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        s = self.formatMessage(record)
        if record.exc_info:
            try:
                exc_text = self.formatException(record.exc_info)
            except Exception:  # e.g. an exception class instead of an instance
                exc_text = f"(unprintable exception: {_safe(repr(record.exc_info[1]))})"
            s = f"{s}\n{exc_text}"
        elif record.exc_text:
            s = f"{s}\n{record.exc_text}"
        if record.stack_info:
            s = f"{s}\n{self.formatStack(record.stack_info)}"
        return s


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


# ---------------------------------------------------------------------------- helpers
def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0 or not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return v


def _seconds_or_off(text: str) -> float | None:
    """Seconds; 0 or 'off' disables."""
    if text.lower() in ("off", "none", "0"):
        return None
    return _positive_float(text)


def _rate(text: str) -> float | None:
    if text.lower() in ("max", "unlimited"):
        return None
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a rate: {text!r} (a number of messages/s or 'max')") from None
    if v < 0 or not math.isfinite(v):
        raise argparse.ArgumentTypeError("rate must be >= 0")
    return v


def _speed(text: str) -> float | None:
    if text.lower() in ("max", "inf", "unlimited"):
        return None
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a speed: {text!r} (a factor like 1, 10, or 'max')") from None
    if not v > 0 or not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"speed must be > 0 (or 'max'): {text!r}")
    return v


def _account(text: str) -> tuple[str, str]:
    key, sep, secret = text.partition(":")
    if not sep or not key or not secret:
        raise argparse.ArgumentTypeError("expected KEY:SECRET")
    return key, secret


def _port(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port: {text!r}") from None
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {v}")
    return v


def _count(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return v


def _int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be in {lo}..{hi}: {v}")
        return v

    return parse


def _ws_url(text: str) -> str:
    """A ws:// or wss:// URL with a host (checked before any connection attempt)."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad URL {text!r}: {exc}") from None
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"not a WebSocket URL: {text!r} (expected ws://HOST[:PORT]/PATH or wss://...)")
    return text


def _symbol_list(values: Sequence[str], what: str = "symbol") -> list[str]:
    """Symbols given as separate arguments and/or comma-separated; upper-cased, deduplicated."""
    out: list[str] = []
    for v in values:
        for s in v.split(","):
            s = s.strip().upper()
            if not s:
                continue
            if len(s) > 32 or not s.isascii() or any(not (c.isalnum() or c in "_-.") for c in s):
                raise UsageError(f"invalid {what} {s!r}")
            if s not in out:
                out.append(s)
    return out


def _channels(text: str) -> list[str]:
    chans = [c.strip().lower() for c in text.split(",") if c.strip()]
    bad = [c for c in chans if c not in CHANNELS]
    if bad or not chans:
        raise argparse.ArgumentTypeError(f"channels are a comma-separated subset of {','.join(CHANNELS)}")
    return list(dict.fromkeys(chans))


def _default_url() -> str:
    from .protocol import DIGIFINEX_URL

    return os.environ.get("FASTFEED_URL") or DIGIFINEX_URL


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class _Stop:
    """Why and when a streaming command stops: Ctrl-C / SIGTERM, a key, or its deadline."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.reason = ""
        self._signals: list[int] = []

    def set(self, reason: str) -> None:
        if not self.event.is_set():
            self.reason = reason
            self.event.set()

    @property
    def interrupted(self) -> bool:
        return self.reason == "signal"

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s; True once stopped."""
        if self.event.is_set():
            return True
        try:
            await asyncio.wait_for(self.event.wait(), max(0.0, timeout))
        except asyncio.TimeoutError:
            pass
        return self.event.is_set()

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.set, "signal")
                self._signals.append(sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
                pass

    def remove(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)
        self._signals.clear()

    async def race(self, aw: Any) -> tuple[bool, Any]:
        """Await ``aw`` unless stopped first: ``(True, result)`` or ``(False, None)`` (then
        ``aw`` is cancelled)."""
        task = asyncio.ensure_future(aw)
        waiter = asyncio.ensure_future(self.event.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if task.done():
            return True, task.result()
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
        return False, None


# ---------------------------------------------------------------------------- bundled exchange
class _BundledExchange:
    """The local exchange on its own event loop in a daemon thread (so its market
    simulation does not share the client's loop). ``with`` starts and stops it."""

    def __init__(self, cfg: Any, drop_every: float | None = None) -> None:
        self.cfg = cfg
        self.drop_every = drop_every
        self.url = ""
        self.seed: int | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="fastfeed-exchange", daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        from .exchange import Exchange

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        ex = Exchange(self.cfg)
        await ex.start()
        try:
            self.url = ex.url
            self.seed = ex.market.seed if ex.market is not None else None
            if self.drop_every:
                ex.faults.every(self.drop_every, "drop")
            self._ready.set()
            await self._stop.wait()
        finally:
            await ex.close()

    def __enter__(self) -> "_BundledExchange":
        self._thread.start()
        if not self._ready.wait(15.0):
            raise CommandError("the bundled exchange did not start within 15 s")
        if self._error is not None:
            raise CommandError(f"the bundled exchange failed to start: {self._error}")
        return self

    def __exit__(self, *exc: object) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and self._thread.is_alive():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # loop already closed
                pass
        self._thread.join(10.0)


def _demo_exchange_config(symbols: Sequence[str], rate: float | None, seed: int | None, port: int = 0) -> Any:
    from .exchange import ExchangeConfig

    try:
        return ExchangeConfig(symbols=list(symbols), rate=rate, seed=seed, port=port)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


# ---------------------------------------------------------------------------- live view (demo, watch)
class _KeyReader:
    """Single keys from a terminal's stdin (cbreak mode, restored on exit)."""

    def __init__(self, on_key: Callable[[str], None]) -> None:
        self.on_key = on_key
        self._fd: int | None = None
        self._saved: Any = None
        self._buf = ""

    def __enter__(self) -> "_KeyReader":
        if not _isatty(sys.stdin) or os.name != "posix":
            return self
        import termios
        import tty

        fd = sys.stdin.fileno()
        try:
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)
            asyncio.get_running_loop().add_reader(fd, self._read)
            self._fd = fd
        except Exception:  # pragma: no cover - an odd terminal: run without keys
            self._restore(fd)
        return self

    def _restore(self, fd: int) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def _read(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 64).decode(errors="ignore")
        except OSError:
            return
        self._buf += data
        while self._buf:
            for seq, key in (("\x1b[C", "right"), ("\x1b[D", "left"), ("\x1b[Z", "left")):
                if self._buf.startswith(seq):
                    self._buf = self._buf[len(seq):]
                    self.on_key(key)
                    break
            else:
                ch, self._buf = self._buf[0], self._buf[1:]
                if ch == "\x1b" and self._buf == "":
                    continue
                self.on_key(ch)

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            asyncio.get_running_loop().remove_reader(self._fd)
            self._restore(self._fd)
            self._fd = None


class _LiveDisplay:
    """The rich live view on a terminal: re-rendered from the loop (no refresh thread);
    log records go through rich so they print above the view."""

    def __init__(self, monitor: Any, stop: _Stop) -> None:
        self.m = monitor
        self.stop = stop
        self._live: Any = None
        self._handlers: list[logging.Handler] = []
        self._keys: _KeyReader | None = None

    def _on_key(self, key: str) -> None:
        m = self.m
        if key in ("q", "Q"):
            self.stop.set("key")
        elif key.isdigit() and key != "0":
            m.select(int(key) - 1)
        elif key in ("n", "l", "\t", "right", "j"):
            m.select(m.selected + 1)
        elif key in ("p", "h", "left", "k"):
            m.select(m.selected - 1)
        elif key in ("+", "="):
            m.depth = min(50, m.depth + 1)
        elif key in ("-", "_"):
            m.depth = max(1, m.depth - 1)
        else:
            return
        self.update()

    @staticmethod
    def prepare(monitor: Any) -> None:
        import io

        from rich.console import Console
        from rich.live import Live  # noqa: F401
        from rich.logging import RichHandler  # noqa: F401

        from .view import render

        Console(file=io.StringIO(), width=120).print(render(monitor))

    def __enter__(self) -> "_LiveDisplay":
        from rich.console import Console
        from rich.live import Live
        from rich.logging import RichHandler

        from .view import render

        console = Console()
        root = logging.getLogger()
        self._handlers = root.handlers[:]
        handler = RichHandler(console=console, show_path=False, level=root.level, markup=False)
        handler.setFormatter(_SafeFormatter("%(name)s: %(message)s"))
        root.handlers = [handler]
        self._live = Live(render(self.m), console=console, auto_refresh=False, transient=True,
                          redirect_stdout=False, redirect_stderr=False)
        self._live.start()
        self._keys = _KeyReader(self._on_key).__enter__()
        return self

    def update(self) -> None:
        from .view import render

        if self._live is not None:
            self._live.update(render(self.m), refresh=True)

    def __exit__(self, *exc: object) -> None:
        if self._keys is not None:
            self._keys.__exit__()
        if self._live is not None:
            self._live.stop()
        logging.getLogger().handlers = self._handlers


def _live_args(p: argparse.ArgumentParser, *, demo: bool) -> None:
    g = p.add_argument_group("view")
    g.add_argument("--seconds", type=_positive_float, default=None, metavar="N",
                   help="stop after N seconds (default: run until Ctrl-C or q)")
    g.add_argument("--depth", type=_int_range(1, 50), default=10, metavar="N",
                   help="book levels and trades shown (default 10; +/- change it live)")
    g.add_argument("--book", default=None, metavar="SYMBOL",
                   help="the book shown first (default: the first symbol; 1-9 or arrows switch)")
    g.add_argument("--channels", type=_channels, default=list(CHANNELS), metavar="LIST",
                   help="public channels to subscribe, comma-separated (default depth,trades,ticker)")
    g.add_argument("--interval", type=_positive_float, default=None, metavar="S",
                   help="seconds between updates (default 0.25 on a terminal, 1 for plain lines)")
    g.add_argument("--plain", action="store_true",
                   help="plain periodic lines even on a terminal (the default when stdout is not one)")
    if not demo:
        g.add_argument("--connect-timeout", type=_positive_float, default=10.0, metavar="S",
                       help="give up (exit 3) if the first connection fails for S seconds (default 10)")


def _quiet_transport_errors(loop: asyncio.AbstractEventLoop) -> None:
    """The event loop reports transport failures (a failed TLS handshake, a reset) to its
    exception handler, which by default logs them at ERROR with a traceback. The feed
    reports those itself (a connection event, the exit-3 line with its hint), so here they
    go to DEBUG as one line; anything else stays one ERROR line."""

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        name = (exc.__name__ if isinstance(exc, type) else type(exc).__name__) if exc is not None else ""
        text = _safe(str(context.get("message", "")))
        if exc is not None and not isinstance(exc, type):
            detail = _safe(str(exc))
            name += f": {detail}" if detail else ""
        line = f"event loop: {text}" + (f" ({name})" if name else "")
        if "transport" in context or "protocol" in context:
            log.debug("%s", line)
        else:
            log.error("%s", line)

    loop.set_exception_handler(handler)


def _check_book(args: argparse.Namespace, symbols: list[str]) -> None:
    if args.book is not None and args.book.upper() not in symbols:
        raise UsageError(f"--book {args.book.upper()} is not one of the symbols ({', '.join(symbols)})")


async def _run_live(args: argparse.Namespace, *, url: str, symbols: list[str], title: str, note: str = "",
                    api_key: str | None = None, secret: str | None = None, orders: bool = False,
                    balance: list[str] | None = None) -> int:
    import fastfeed
    from .protocol import AuthError, RequestError
    from .view import Monitor, plain_line, summary_lines

    _quiet_transport_errors(asyncio.get_running_loop())
    live_mode = _isatty(sys.stdout) and not args.plain
    interval = args.interval or (0.25 if live_mode else 1.0)
    period = min(interval, 0.25)
    stop = _Stop()
    stop.install()
    mon = Monitor(symbols, title=title, url=url, depth=args.depth, channels=args.channels)
    if args.book is not None:
        mon.select(symbols.index(args.book.upper()))

    def say(line: str) -> None:
        print(line, flush=True)

    if live_mode:  # import and warm up the view now, not while frames queue up
        _LiveDisplay.prepare(mon)
    else:
        mon.printer = say
        say(f"{title}: connecting to {url} ({', '.join(symbols)}; {','.join(args.channels)})"
            + (f"; {note}" if note else ""))
    feed = fastfeed.connect(url, api_key, secret, timing=1 << 16,
                            connect_timeout=getattr(args, "connect_timeout", 10.0),
                            on_event=mon.on_event, on_order=mon.on_order, on_balance=mon.on_balance)
    try:
        try:
            started, _ = await stop.race(feed.start())
        except AuthError as exc:
            raise ConnectError(f"authentication refused by {url}: {exc.message}") from None
        except ConnectionError as exc:
            raise ConnectError(str(exc)) from None
        if not started:
            print(f"{PROG}: interrupted before the connection was up", file=sys.stderr)
            return EXIT_OK
        mon.attach(feed)

        async def subscribe() -> None:
            subs = {"depth": feed.subscribe_depth, "trades": feed.subscribe_trades,
                    "ticker": feed.subscribe_ticker}
            for ch in args.channels:
                await subs[ch](symbols)
            if orders:
                await feed.subscribe_orders(symbols)
            if balance is not None:
                await feed.subscribe_balance(balance)

        try:
            subscribed, _ = await stop.race(subscribe())
        except AuthError as exc:
            raise ConnectError(f"private channel refused: {exc}") from None
        except RequestError as exc:
            raise CommandError(f"subscription refused by the server: {exc}") from None
        except ConnectionError as exc:  # the connection could not be kept up to subscribe
            raise ConnectError(str(exc)) from None
        if subscribed:
            loop = asyncio.get_running_loop()
            deadline = None if args.seconds is None else loop.time() + args.seconds
            next_line = loop.time() + (period if live_mode else interval)
            display = _LiveDisplay(mon, stop) if live_mode else None
            if display is not None:
                display.__enter__()
            try:
                while True:
                    now = loop.time()
                    timeout = period if deadline is None else min(period, deadline - now)
                    if await stop.wait(timeout):
                        break
                    mon.sample()
                    now = loop.time()
                    if now >= next_line:
                        if display is not None:
                            display.update()
                        else:
                            say(plain_line(mon))
                        next_line += interval * max(1, math.floor((now - next_line) / interval) + 1)
                    if deadline is not None and now >= deadline:
                        stop.set("deadline")
                        break
            finally:
                if display is not None:
                    display.__exit__()
        mon.sample()
        mon.stop()
        mon.printer = None
    finally:
        stop.remove()
        await feed.close()
    print("\n".join(summary_lines(mon, interrupted=stop.interrupted, note=note)), flush=True)
    return EXIT_OK


# ---------------------------------------------------------------------------- demo
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
    g.add_argument("--symbols", nargs="+", default=list(DEMO_SYMBOLS), metavar="SYMBOL",
                   help=f"symbols to simulate and subscribe (default {' '.join(DEMO_SYMBOLS)})")
    g.add_argument("--rate", type=_rate, default=1000.0,
                   help="market messages/s over all symbols, or 'max' (default 1000)")
    g.add_argument("--seed", type=int, default=None, help="market seed (default: random, shown)")
    g.add_argument("--port", type=_port, default=0, help="exchange port (default 0: any free port)")
    g.add_argument("--drop-every", type=_positive_float, default=None, metavar="S",
                   help="the exchange drops the connection every S seconds (shows reconnects)")
    _live_args(p, demo=True)


@command("demo", "live view of the bundled local exchange (start here)", epilog=_DEMO_EPILOG,
         description="Start the bundled exchange on loopback, connect the real client and show "
                     "the live view; a summary is printed at the end.")(_demo_args)
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


# ---------------------------------------------------------------------------- watch
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
    p.add_argument("symbols", nargs="+", metavar="SYMBOL", help="symbols (e.g. BTC_USDT; commas also work)")
    g = p.add_argument_group("endpoint")
    g.add_argument("--url", type=_ws_url, default=None,
                   help="WebSocket endpoint (default $FASTFEED_URL or wss://openapi.digifinex.com/ws/v1/)")
    g.add_argument("--orders", action="store_true", help="also subscribe order updates (needs API keys)")
    g.add_argument("--balance", nargs="?", const="", default=None, metavar="CUR,...",
                   help="also subscribe balance updates: all currencies, or these (needs API keys)")
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
    return asyncio.run(_run_live(args, url=url, symbols=symbols, title="fastfeed watch", api_key=key,
                                 secret=secret, orders=args.orders, balance=balance))


def _ws_url_checked(url: str) -> str:
    try:
        return _ws_url(url)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"FASTFEED_URL: {exc}") from None


# ---------------------------------------------------------------------------- record
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
        from . import protocol

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
        from .exchange import DecodeError, decode_payload

        try:
            msg = decode_payload(payload)
        except (DecodeError, ValueError):
            return
        if not isinstance(msg, dict) or msg.get("method") is not None:
            return
        mid = msg.get("id")
        entry = self._pending.pop(mid, None) if isinstance(mid, int) else None
        if entry is None:
            return
        if msg.get("error") is not None:
            from .protocol import parse_error

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

        class Listener(WSListener):
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
    from .view import fmt_bytes, fmt_count

    if not state:
        state = "connected" if s.connected else ("connecting" if not s.connects else "reconnecting")
    per_s = f"{rate:,.0f} msg/s  " if rate is not None else ""
    return (f"recording {','.join(s.symbols)} -> {path}  {fmt_count(s.messages)} msgs  {fmt_bytes(s.bytes)}  "
            f"{per_s}{int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}  [{state}]")


async def _record(args: argparse.Namespace, url: str, symbols: list[str], writer: Any, note: str) -> int:
    from .view import fmt_bytes, fmt_count

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
    from .capture import CaptureError, CaptureWriter

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


# ---------------------------------------------------------------------------- replay
def _open_capture(path: str, on_corrupt: str = "raise") -> Any:
    """A CaptureReader, or FileError (missing, unreadable, not a capture)."""
    from .capture import CaptureError, CaptureReader

    p = Path(path)
    if not p.exists():
        raise FileError(f"{path}: no such file")
    if p.is_dir():
        raise FileError(f"{path}: is a directory")
    try:
        return CaptureReader(p, on_corrupt=on_corrupt)  # type: ignore[arg-type]
    except CaptureError as exc:
        raise FileError(str(exc)) from None
    except (OSError, ValueError) as exc:
        raise FileError(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None


def _fmt_time_ns(ns: int) -> str:
    if not ns:
        return "?"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ns / 1e9))


def _replay_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="a capture written by `fastfeed record`")
    p.add_argument("--speed", type=_speed, default=None, metavar="X|max",
                   help="1 = the recorded pacing, 10 = ten times faster, max = as fast as possible (default)")
    p.add_argument("--depth", type=_int_range(1, 10_000), default=200, metavar="N",
                   help="engine book depth per side (default 200)")
    p.add_argument("--books", type=_count, default=20, metavar="N",
                   help="symbols listed in the top-of-book summary (default 20)")
    p.add_argument("--skip-corrupt", action="store_true",
                   help="skip corrupt records (resynchronising on the next valid one) instead of stopping")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")


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
    from . import Engine
    from .capture import CaptureError, ReplayStats, replay
    from .view import _kv, fmt_bytes, fmt_count, fmt_ns, top_of_book_lines

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
    from .protocol import safe_text  # header text is the recorder's: escaped, cut

    meta = header.meta
    src = f"from {safe_text(header.url, 200)}" if header.url else ""
    by = safe_text(meta.get("created_by", ""), 80)
    print(f"replay {args.file}" + (" (interrupted)" if interrupted else "") + (" (damaged)" if damage else ""))
    print(f"  captured {src} at {_fmt_time_ns(header.start_ns)}" + (f" by {by}" if by else "")
          + (f"; symbols {safe_text(','.join(header.symbols), 300)}" if header.symbols else "")
          + (f"; {len(header.sessions)} sessions" if len(header.sessions) > 1 else ""))
    span = (rs.last_ns - rs.first_ns) / 1e9 if rs is not None and rs.frames else 0.0
    print(f"  {fmt_count(frames)} frames, {fmt_bytes(nbytes)} ({fmt_bytes(st['bytes_inflated'])} inflated)"
          + (f", recorded over {span:.1f} s" if span > 0 else ""))
    if elapsed > 0 and frames:
        if args.speed is None:
            fast = f", {span / elapsed:,.0f}x real time" if span > 0 else ""
            print(f"  fed at max speed in {elapsed:.3f} s: {frames / elapsed:,.0f} frames/s, "
                  f"{fmt_bytes(nbytes / elapsed)}/s, {fmt_ns(elapsed * 1e9 / frames)}/frame{fast}")
        else:
            print(f"  fed at speed x{args.speed:g} in {elapsed:.3f} s ({frames / elapsed:,.0f} frames/s)")
    msgs = {k: v for k, v in st["messages"].items() if v}
    rejects = {k: v for k, v in st["rejects"].items() if v}
    print(f"messages by method  {_kv(msgs)}")
    print(f"rejects             {_kv(rejects)}")
    dropped = {k: v for k, v in (st.get("dropped_trades") or {}).items() if v}
    print(f"trades stored       {fmt_count(eng.trades.count)}"
          + (f"  (dropped: {_kv(dropped)})" if dropped else "")
          + (f"  ({fmt_count(st['out_of_order_trades'])} stored out of id order)"
             if st.get("out_of_order_trades") else ""))
    if torn:
        print(f"torn tail           {torn} bytes skipped (the recording was cut off mid-record)")
    if damaged:
        where = ", ".join(f"{n} at offset {off}" for off, n in damaged[:5]) + (" ..." if len(damaged) > 5 else "")
        print(f"corrupt data        {len(damaged)} region(s), {sum(n for _, n in damaged)} bytes skipped: {where}")
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


# ---------------------------------------------------------------------------- export
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
    p.add_argument("--to", choices=["npz", "parquet", "csv"], default=None,
                   help="output format (default: from OUT's suffix)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output file")
    p.add_argument("--what", choices=["events", "trades"], default="events",
                   help="book+trade events (default) or trades only (parquet, csv)")
    p.add_argument("--symbols", nargs="+", default=None, metavar="SYMBOL", help="keep only these symbols")
    p.add_argument("--depth", type=_int_range(1, 10_000), default=200, metavar="N",
                   help="engine book depth per side (default 200)")
    p.add_argument("--skip-corrupt", action="store_true",
                   help="skip corrupt records (resynchronising on the next valid one) instead of failing")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")


def _export_csv(source: str, out: Path, what: str, symbols: list[str] | None, depth: int,
                on_corrupt: str = "raise") -> tuple[int, int, dict[str, int], list[tuple[int, int]]]:
    """Stream a capture's event rows or trades to CSV. Returns (frames, rows, rejects,
    corrupt regions skipped)."""
    import csv

    import numpy as np

    from . import Engine
    from .capture import CaptureReader
    from .errors import FastfeedError
    from .events import KIND_NAMES, kinds, sides
    from .export import iter_source

    ring = 1 << 18
    buf: EventRing | TradeRing | None
    if what == "events":
        eng = Engine(depth=depth, trade_capacity=1024, event_log=ring)
        buf = eng.events
        header = ["local_ts", "exch_ts", "symbol", "kind", "side", "price", "qty", "trade_id"]
    else:
        eng = Engine(depth=depth, trade_capacity=ring)
        buf = eng.trades
        header = ["recv_ns", "time", "symbol", "id", "side", "price", "amount"]
    assert buf is not None  # event_log > 0 always makes an event ring
    wanted = set(symbols) if symbols else None
    kind_names = [KIND_NAMES.get(i, "?") for i in range(256)]
    frames = rows = 0
    rejects: dict[str, int] = {}
    pos = 0
    reader = CaptureReader(source, on_corrupt=on_corrupt)  # type: ignore[arg-type]
    with reader, open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)

        def drain() -> None:
            nonlocal pos, rows
            chunk = buf.since(pos)
            pos = buf.count
            if not len(chunk):
                return
            table = eng.symbols
            if what == "events":
                idx = chunk["ival"]
            else:
                idx = chunk["symbol"]
            if wanted is not None:
                keep = np.isin(idx, [i for i, s in enumerate(table) if s in wanted])
                chunk = chunk[keep]
                idx = idx[keep]
            names = [table[i] if 0 <= i < len(table) else "" for i in idx.tolist()]
            if what == "events":
                w.writerows(zip(chunk["local_ts"].tolist(), chunk["exch_ts"].tolist(), names,
                                [kind_names[k] for k in kinds(chunk).tolist()], sides(chunk).tolist(),
                                chunk["px"].tolist(), chunk["qty"].tolist(), chunk["order_id"].tolist()))
            else:
                w.writerows(zip(chunk["recv_ns"].tolist(), chunk["time"].tolist(), names,
                                chunk["id"].tolist(),
                                ["buy" if s > 0 else "sell" for s in chunk["side"].tolist()],
                                chunk["price"].tolist(), chunk["amount"].tolist()))
            rows += len(chunk)

        for recv_ns, payload in iter_source(reader):
            try:
                eng.feed(payload, recv_ns)
            except FastfeedError as exc:
                reason = getattr(exc, "reason", type(exc).__name__)
                rejects[reason] = rejects.get(reason, 0) + 1
            frames += 1
            if buf.count - pos >= ring // 2:
                drain()
        drain()
        damaged = list(reader.damaged)
    return frames, rows, rejects, damaged


@command("export", "convert a capture to npz (hftbacktest), parquet or csv", epilog=_EXPORT_EPILOG)(_export_args)
def _run_export(args: argparse.Namespace) -> int:
    from .capture import CaptureError
    from .view import _kv, fmt_bytes, fmt_count

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
        if fmt == "csv":
            frames, rows, rejects, damaged = _export_csv(args.file, out, args.what, symbols, args.depth, on_corrupt)
        else:
            from .export import capture_to_npz, capture_to_parquet

            if fmt == "npz":
                st = capture_to_npz(args.file, out, symbols=symbols, depth=args.depth, progress=progress,
                                    progress_file=sys.stderr, on_corrupt=on_corrupt)
            else:
                st = capture_to_parquet(args.file, out, what=args.what, symbols=symbols, depth=args.depth,
                                        progress=progress, progress_file=sys.stderr, on_corrupt=on_corrupt)
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
    size = written.stat().st_size if written.exists() else 0
    what = "event rows" if args.what == "events" else "trades"
    print(f"exported {fmt_count(rows)} {what} from {fmt_count(frames)} frames to {written} "
          f"({fmt}, {fmt_bytes(size)}) in {el:.2f} s" + (f"; symbols {','.join(symbols)}" if symbols else ""))
    print(f"  rejected frames: {_kv(rejects)}")
    if damaged:
        print(f"  corrupt data skipped: {len(damaged)} region(s), {sum(n for _, n in damaged)} bytes, "
              f"first at offset {damaged[0][0]}")
    return EXIT_OK


# ---------------------------------------------------------------------------- bench
_BENCH_EPILOG = """\
Runs benchmarks/bench_engine.py from the source checkout: fastfeed's inflate-only floor,
parse+apply and full pipeline beside zlib+json/orjson/msgspec dict-book clients, on one
seeded corpus, in interleaved rounds; prints ns/message, msgs/s, the ratios and their
targets. --quick takes a few seconds. Absolute numbers vary between machines and runs;
ratios from one run are what to compare.
"""


def _bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="small corpus (5000 frames), 3 rounds: a few seconds")
    p.add_argument("--n", type=_int_range(1, 100_000_000), default=None, help="corpus frames (default 100000)")
    p.add_argument("--rounds", type=_int_range(1, 1000), default=None, help="interleaved rounds (default 7)")
    p.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    p.add_argument("--stat", choices=["min", "median"], default="min", help="statistic over rounds (default min)")
    p.add_argument("--no-alloc", action="store_true", help="skip the allocation check")
    p.add_argument("--no-by-kind", action="store_true", help="skip the per-kind breakdown")
    p.add_argument("--json", metavar="OUT", default=None, help="also write the raw result as JSON")
    p.add_argument("--check", action="store_true", help="exit 1 if a target ratio is missed")


def _load_bench() -> Any:
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_engine.py"
    if not path.is_file():
        raise CommandError(f"the benchmark needs a source checkout: {path} not found "
                           "(clone the repository and `pip install -e .`)")
    name = "fastfeed_bench_engine"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[name]
        raise
    return mod


@command("bench", "run the side-by-side engine benchmark and print the table", epilog=_BENCH_EPILOG)(_bench_args)
def _run_bench(args: argparse.Namespace) -> int:
    import json

    bench = _load_bench()
    base = bench.QUICK if args.quick else bench.DEFAULT
    n = args.n if args.n is not None else base["n"]
    rounds = args.rounds if args.rounds is not None else base["rounds"]

    def progress(msg: str) -> None:
        print(f"# {msg}", file=sys.stderr, flush=True)

    result = bench.run(n, args.seed, rounds, stat=args.stat, alloc_check=not args.no_alloc,
                       by_kind=not args.no_by_kind, progress=progress)
    print(bench.format_table(result), flush=True)
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(result, indent=2, default=str))
        except OSError as exc:
            raise FileError(f"cannot write {args.json}: {exc.strerror or exc}") from None
    if args.check:
        missed = [q["name"] for q in result["ratios"] if q["ok"] is False]
        if missed or result.get("problems"):
            raise CommandError("targets missed: " + ", ".join(missed) if missed else "sanity check failed")
    return EXIT_OK


# ---------------------------------------------------------------------------- exchange
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
    from .exchange import ExchangeConfig, accounts_from_env

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
    from .exchange import Exchange

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
    from .capture import CaptureError

    cfg = _exchange_config(args)
    try:
        return asyncio.run(_serve_exchange(cfg, args))
    except CaptureError as exc:  # --capture FILE is not a readable capture: exit 4
        raise FileError(str(exc)) from None
