"""The live view on a terminal: :class:`LiveDisplay` (rich ``Live``, redrawn from the event
loop, no refresh thread) and :class:`KeyReader` (single keys from stdin in cbreak mode)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from .monitor import Monitor


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class KeyReader:
    """Single keys from a terminal's stdin (cbreak mode, restored on exit); arrows are
    reported as ``"left"`` / ``"right"``. Does nothing when stdin is not a terminal."""

    def __init__(self, on_key: Callable[[str], None]) -> None:
        self.on_key = on_key
        self._fd: int | None = None
        self._saved: Any = None
        self._buf = ""

    def __enter__(self) -> KeyReader:
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
                    self._buf = self._buf[len(seq) :]
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


class LiveDisplay:
    """The rich live view of a :class:`Monitor` on a terminal: re-rendered by :meth:`update`
    from the event loop (no refresh thread); log records go through rich so they print
    above the view. The last frame stays on the screen after exit. Keys: 1-9 / arrows /
    n p pick the book, + - change the levels, q calls ``on_quit``.

    ``console`` defaults to a rich ``Console()`` on stdout; ``log_formatter`` formats the
    log records shown above the view."""

    def __init__(
        self,
        monitor: Monitor,
        on_quit: Callable[[], None],
        *,
        console: Any = None,
        log_formatter: logging.Formatter | None = None,
    ) -> None:
        self.m = monitor
        self.on_quit = on_quit
        self.console = console
        self.log_formatter = log_formatter
        self._live: Any = None
        self._handlers: list[logging.Handler] = []
        self._keys: KeyReader | None = None

    def on_key(self, key: str) -> None:
        m = self.m
        if key in ("q", "Q"):
            self.on_quit()
            return
        if key.isdigit() and key != "0":
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
    def prepare(monitor: Monitor) -> None:
        """Import and warm up rich and the view (before frames start to queue up)."""
        import io

        from rich.console import Console
        from rich.live import Live  # noqa: F401
        from rich.logging import RichHandler  # noqa: F401

        from .render import render

        Console(file=io.StringIO(), width=120).print(render(monitor, width=120))

    def _render(self) -> Any:
        from .render import render

        return render(self.m, width=self.console.size.width, height=self.console.size.height)

    def __enter__(self) -> LiveDisplay:
        from rich.console import Console
        from rich.live import Live
        from rich.logging import RichHandler

        if self.console is None:
            self.console = Console()
        root = logging.getLogger()
        self._handlers = root.handlers[:]
        handler = RichHandler(console=self.console, show_path=False, level=root.level, markup=False)
        if self.log_formatter is not None:
            handler.setFormatter(self.log_formatter)
        root.handlers = [handler]
        # transient=False: the last frame stays on the screen when the view stops
        self._live = Live(
            self._render(),
            console=self.console,
            auto_refresh=False,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
            vertical_overflow="ellipsis",
        )
        self._live.start()
        self._keys = KeyReader(self.on_key).__enter__()
        return self

    def update(self) -> None:
        if self._live is not None:
            self._live.update(self._render(), refresh=True)

    def __exit__(self, *exc: object) -> None:
        if self._keys is not None:
            self._keys.__exit__()
            self._keys = None
        if self._live is not None:
            self._live.update(self._render(), refresh=True)
            self._live.stop()
            self._live = None
        logging.getLogger().handlers = self._handlers
