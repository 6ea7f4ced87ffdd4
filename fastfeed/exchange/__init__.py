"""A local DigiFinex-compatible exchange (spot WebSocket v1) for tests, demos and benchmarks.

Start it in-process::

    async with Exchange(ExchangeConfig(rate=1000, seed=1)) as ex:
        print(ex.url)               # ws://127.0.0.1:<port>/ws/v1/
        ex.faults.shuffle_levels = True
        bids, asks = ex.book("BTC_USDT")

on its own thread (``with ThreadedExchange(cfg) as ex: ...``, see :mod:`.runner`),
or from the shell: ``python -m fastfeed exchange --port 8765``.
"""

from __future__ import annotations

from .book import BookSet, SimBook
from .config import DEFAULT_PATH, DEFAULT_SYMBOLS, ExchangeConfig, SymbolSpec, accounts_from_env
from .market import CHANNELS, Market
from .private import AccountSim
from .runner import ThreadedExchange
from .server import PRIVATE_CHANNELS, Connection, Exchange, Faults
from .simple_client import DecodeError, SimpleClient, decode_payload
from .wire import ErrorCode, auth_params, sign_auth, ws_frame, zlib_compress

__all__ = [
    "CHANNELS",
    "DEFAULT_PATH",
    "DEFAULT_SYMBOLS",
    "PRIVATE_CHANNELS",
    "AccountSim",
    "BookSet",
    "Connection",
    "DecodeError",
    "ErrorCode",
    "Exchange",
    "ExchangeConfig",
    "Faults",
    "Market",
    "SimBook",
    "SimpleClient",
    "SymbolSpec",
    "ThreadedExchange",
    "accounts_from_env",
    "auth_params",
    "decode_payload",
    "sign_auth",
    "ws_frame",
    "zlib_compress",
]
