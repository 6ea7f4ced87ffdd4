"""The local exchange on its own event loop in a daemon thread.

The market simulation then does not share the client's event loop (or its GIL-bound
timing), which is what ``fastfeed demo`` and ``fastfeed record --demo`` want::

    with ThreadedExchange(ExchangeConfig(rate=1000, seed=1)) as ex:
        feed = fastfeed.connect(ex.url)
        ...

``with`` (or :meth:`ThreadedExchange.start` / :meth:`ThreadedExchange.stop`) starts and
stops it; the exchange is closed and the thread joined on exit.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from .config import ExchangeConfig
from .server import Exchange

__all__ = ["ThreadedExchange"]


class ThreadedExchange:
    """An :class:`Exchange` served from a daemon thread with its own event loop.

    ``setup(exchange)``, if given, runs on the exchange's loop once it listens (e.g. to
    arm faults: ``lambda ex: ex.faults.every(5, "drop")``). :meth:`start` waits up to
    ``start_timeout`` seconds for the exchange to listen; an error while starting (a port
    in use, a capture that cannot be read, a failing ``setup``) is re-raised in the
    calling thread as it was raised; a start that takes longer raises ``TimeoutError``.
    After start, :attr:`url` and :attr:`seed` (the market's seed; None when serving a
    capture) are set. The :class:`Exchange` object itself lives on the other thread:
    do not call into it from outside.
    """

    def __init__(
        self,
        config: ExchangeConfig,
        *,
        setup: Callable[[Exchange], None] | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        self.config = config
        self.setup = setup
        self.start_timeout = start_timeout
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
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        ex = Exchange(self.config)
        await ex.start()
        try:
            self.url = ex.url
            self.seed = ex.market.seed if ex.market is not None else None
            if self.setup is not None:
                self.setup(ex)
            self._ready.set()
            await self._stop.wait()
        finally:
            await ex.close()

    def start(self) -> ThreadedExchange:
        """Start the thread and wait until the exchange listens (see the class docs)."""
        self._thread.start()
        if not self._ready.wait(self.start_timeout):
            self.stop()
            raise TimeoutError(f"the local exchange did not start within {self.start_timeout:g} s")
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close the exchange and join its thread (waits up to ``timeout`` seconds)."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and self._thread.is_alive():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # loop already closed
                pass
        if self._thread.is_alive():
            self._thread.join(timeout)

    def __enter__(self) -> ThreadedExchange:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
