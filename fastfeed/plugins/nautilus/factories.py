"""The factory ``TradingNode.add_data_client_factory("DIGIFINEX", ...)`` takes."""

from __future__ import annotations

import asyncio

from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus
from nautilus_trader.config import InstrumentProviderConfig
from nautilus_trader.live.factories import LiveDataClientFactory

from .config import DigiFinexDataClientConfig
from .data import DigiFinexDataClient
from .providers import DigiFinexInstrumentProvider

__all__ = ["DigiFinexLiveDataClientFactory"]


class DigiFinexLiveDataClientFactory(LiveDataClientFactory):
    """Builds a :class:`DigiFinexDataClient` (with its own static instrument provider:
    ``config.instruments`` over the static list) from a ``DigiFinexDataClientConfig``."""

    @staticmethod
    def create(  # type: ignore[override]
        loop: asyncio.AbstractEventLoop,
        name: str,
        config: DigiFinexDataClientConfig,
        msgbus: MessageBus,
        cache: Cache,
        clock: LiveClock,
    ) -> DigiFinexDataClient:
        ipc = config.instrument_provider
        if not ipc.load_all and not ipc.load_ids:  # static instruments: nothing to choose
            ipc = InstrumentProviderConfig(load_all=True, filters=ipc.filters)
        provider = DigiFinexInstrumentProvider(config.instruments, config=ipc)
        return DigiFinexDataClient(
            loop=loop,
            msgbus=msgbus,
            cache=cache,
            clock=clock,
            instrument_provider=provider,
            config=config,
            name=name,
        )
