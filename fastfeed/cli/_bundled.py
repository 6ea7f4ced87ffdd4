"""The bundled exchange on its own thread (demo, record --demo)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from .exitcodes import CommandError


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
        from ..exchange import Exchange

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


