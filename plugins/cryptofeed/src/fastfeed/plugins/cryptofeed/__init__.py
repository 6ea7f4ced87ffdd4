"""DigiFinex for cryptofeed, on fastfeed (the ``fastfeed-cryptofeed`` package, AGPL-3.0-or-later).

::

    from cryptofeed import FeedHandler
    from cryptofeed.defines import L2_BOOK, TICKER, TRADES
    from fastfeed.plugins.cryptofeed import DigiFinex

    fh = FeedHandler()
    fh.add_feed(DigiFinex(symbols=["BTC-USDT"], channels=[L2_BOOK, TRADES, TICKER], callbacks={...}))
    fh.run()

:class:`DigiFinex` is a cryptofeed ``Feed``: cryptofeed's ``Feed._run`` life cycle, its
``ConnectionHandler``, callbacks and backends are unchanged. The connection it hands to
cryptofeed (:class:`FastfeedConnection`) is a :class:`fastfeed.Feed`: fastfeed's picows
transport (``ws://`` and ``wss://``), heartbeat, watchdog, reconnects with backoff and
resubscription, its compiled parser and books. Book deltas, snapshots and trades come from
fastfeed's event log through the per-frame hook; tickers from its ticker history.

This product includes software developed by Bryant Moscon (https://github.com/bmoscon/cryptofeed).
"""

from __future__ import annotations

import fastfeed as _fastfeed

if getattr(_fastfeed, "__file__", None) is None:
    # ``import fastfeed`` found only namespace portions, e.g. site-packages/fastfeed/plugins/
    # cryptofeed (this package): fastfeed is not installed, or it is an editable install,
    # whose finder Python asks only after the path's namespace portions. fastfeed's __init__
    # never ran: ``fastfeed.Feed`` would fail later, deep in cryptofeed's connection handler.
    raise ImportError(
        f"fastfeed resolved to an empty namespace package ({', '.join(_fastfeed.__path__)}): "
        "either fastfeed is not installed, or it is installed in editable mode (pip install -e) "
        "and this plugin, installed into fastfeed's namespace (with or without -e), hides it "
        "outside the clone's root. Install both without -e (from the clone: pip install . "
        "./plugins/cryptofeed), or put the clone first on the path (PYTHONPATH=/path/to/clone)"
    )

from ._digifinex import DIGIFINEX, DigiFinex, FastfeedConnection, exchange_symbol, std_symbol

__all__ = ["DIGIFINEX", "DigiFinex", "FastfeedConnection", "exchange_symbol", "std_symbol"]
