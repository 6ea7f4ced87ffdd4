"""The bundled exchange for ``demo`` and ``record --demo``: :class:`fastfeed.exchange.ThreadedExchange`
with its start-up failures turned into one-line command errors."""

from __future__ import annotations

from typing import Any

from .exitcodes import CommandError, FileError


class _BundledExchange:
    """``with _BundledExchange(cfg, drop_every=S) as ex:`` - ``ex.url``, ``ex.seed``."""

    def __init__(self, cfg: Any, drop_every: float | None = None) -> None:
        from ..exchange import ThreadedExchange

        setup = None
        if drop_every:

            def setup(ex: Any) -> None:
                ex.faults.every(drop_every, "drop")

        self._runner = ThreadedExchange(cfg, setup=setup)

    @property
    def url(self) -> str:
        return self._runner.url

    @property
    def seed(self) -> int | None:
        return self._runner.seed

    def __enter__(self) -> _BundledExchange:
        from ..errors import CaptureError

        try:
            self._runner.start()
        except TimeoutError:
            raise CommandError("the bundled exchange did not start within 15 s") from None
        except CaptureError as exc:
            raise FileError(str(exc)) from None
        except Exception as exc:
            raise CommandError(f"the bundled exchange failed to start: {exc}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        self._runner.stop()
