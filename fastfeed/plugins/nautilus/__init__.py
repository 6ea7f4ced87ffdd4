"""A nautilus_trader data client for DigiFinex spot, on fastfeed (extra ``nautilus``).

::

    from nautilus_trader.live.node import TradingNode
    from fastfeed.plugins.nautilus import DIGIFINEX, DigiFinexDataClientConfig, DigiFinexLiveDataClientFactory

    config = TradingNodeConfig(data_clients={DIGIFINEX: DigiFinexDataClientConfig()}, ...)
    node = TradingNode(config)
    node.add_data_client_factory(DIGIFINEX, DigiFinexLiveDataClientFactory)
    node.build()

Instruments are ``BTC_USDT.DIGIFINEX`` (the venue's own symbol), :class:`CurrencyPair` with
the venue's price and size precisions (:mod:`.providers`). Order book deltas (L2), trade
ticks and quote ticks (from the venue's tickers) come from fastfeed's per-frame hook: the
compiled engine keeps the books, de-duplicates trades and owns the connection (reconnects,
resubscription, heartbeats); the client turns each frame's event rows into nautilus objects
(:mod:`.data`). nautilus_trader (LGPL-3.0) is used as a library; fastfeed stays MIT.

nautilus_trader needs Python >= 3.12; from a clone: ``pip install -e '.[nautilus]'``.
"""

from __future__ import annotations

try:
    import nautilus_trader  # noqa: F401
except ImportError as exc:  # pragma: no cover - only without the extra
    raise ImportError(
        "fastfeed.plugins.nautilus needs nautilus_trader (Python >= 3.12): pip install -e '.[nautilus]' (from a clone)"
    ) from exc

from .config import DIGIFINEX, DIGIFINEX_VENUE, DigiFinexDataClientConfig
from .data import DigiFinexDataClient, PrecisionGuard
from .factories import DigiFinexLiveDataClientFactory
from .providers import STATIC_PRECISIONS, DigiFinexInstrumentProvider, instrument_id, make_instrument

__all__ = [
    "DIGIFINEX",
    "DIGIFINEX_VENUE",
    "STATIC_PRECISIONS",
    "DigiFinexDataClient",
    "DigiFinexDataClientConfig",
    "DigiFinexInstrumentProvider",
    "DigiFinexLiveDataClientFactory",
    "PrecisionGuard",
    "instrument_id",
    "make_instrument",
]
