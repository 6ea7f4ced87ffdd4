"""Configuration of the DigiFinex data client."""

from __future__ import annotations

from typing import Any

from nautilus_trader.config import LiveDataClientConfig
from nautilus_trader.model.identifiers import Venue

from ...protocol import DIGIFINEX_URL

__all__ = ["DIGIFINEX", "DIGIFINEX_VENUE", "DigiFinexDataClientConfig"]

#: The venue / client name (``TradingNode.add_data_client_factory(DIGIFINEX, ...)``).
DIGIFINEX = "DIGIFINEX"
DIGIFINEX_VENUE = Venue(DIGIFINEX)


class DigiFinexDataClientConfig(LiveDataClientConfig, frozen=True):  # type: ignore[call-arg]
    """Configuration of :class:`~fastfeed.plugins.nautilus.DigiFinexDataClient`.

    ``url``: the WebSocket URL (default the live venue; ``ws://127.0.0.1:PORT/ws/v1/`` for
    the bundled exchange). ``instruments``: ``{"BTC_USDT": (price_precision,
    size_precision)}``, the venue's precisions (DigiFinex REST ``/v3/markets``:
    ``price_precision``, ``volume_precision``); added to, and overriding,
    :data:`~fastfeed.plugins.nautilus.STATIC_PRECISIONS`. A price or size with more
    decimals than its instrument's precision is never rounded: it is counted in the
    client's ``stats["rejects"]`` and logged. ``feed_options``: keyword arguments of
    :class:`fastfeed.client.FeedOptions` (``depth``, ``ping_interval``, ...).
    ``event_log``: the engine's event-log capacity (the per-frame rows the client reads;
    at least a frame's worth of rows). ``connect_timeout``: seconds for the first
    connection; later drops are fastfeed's own reconnects (one reconnect layer).
    """

    url: str = DIGIFINEX_URL
    instruments: dict[str, tuple[int, int]] | None = None
    feed_options: dict[str, Any] | None = None
    event_log: int = 1 << 16
    connect_timeout: float = 30.0

    def __post_init__(self) -> None:
        """Refuse a bad ``url``, ``instruments`` or ``feed_options`` here, where the user
        wrote them (``ValueError`` / ``TypeError``), not later at ``node.build()`` or in the
        connect task's log."""
        from ...client import FeedOptions, _check_url
        from .providers import check_precisions

        _check_url(self.url)
        if self.instruments is not None:
            check_precisions(self.instruments)
        if self.feed_options is not None:
            FeedOptions(**self.feed_options)
