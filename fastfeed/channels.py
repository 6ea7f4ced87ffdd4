"""The channel table: every channel of the DigiFinex spot WebSocket v1 API, in one place.

Each :class:`Channel` row says what the channel is called, which methods it has on the
wire, whether it needs ``server.auth`` (private), whether its pushes are parsed in Cython
on the hot path, which record type it produces and which function turns a decoded push
(or a reply) into that. Everything that used to keep its own list of channels is driven
from :data:`CHANNELS`:

- the client (:mod:`fastfeed.client`): ``Feed.subscribe_<client>`` /
  ``Feed.unsubscribe_<client>`` are generated from the rows with a ``client`` name, the
  subscription registry has one entry per subscribable row, and a non-hot push is routed
  by its ``update`` method to the row's ``parser`` and ``stream``;
- the local exchange (:mod:`fastfeed.exchange.server`): its method handlers are built
  from the rows' ``route``;
- the reference engine (:mod:`fastfeed.reference`): ``MESSAGE_KEYS`` (the keys of
  ``stats["messages"]``) and the hot methods it parses itself;
- ``protocol.PUBLIC_CHANNELS`` / ``protocol.PRIVATE_CHANNELS``.

The compiled parser's method table (``METHOD_NAMES`` in ``_parse.pyx`` and the ``M_*``
codes in ``_parse.pxd``) is hand-written for speed; ``tests/test_channels.py`` checks it
against this table.

Adding a channel: add a row here and, if it produces a new kind of record, the record type
(a dataclass with a ``FIELDS`` map, in :mod:`fastfeed.protocol`); if it is hot, its Cython
parser (and the reference twin's). The local exchange serves a new public per-symbol
channel only once its market simulation (``exchange/market.py``) generates it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import protocol
from .errors import UnknownChannel
from .protocol import BalanceUpdate, OrderAlgoUpdate, OrderUpdate, Ticker

__all__ = [
    "BY_METHOD",
    "BY_NAME",
    "BY_UPDATE",
    "CHANNELS",
    "HOT_UPDATES",
    "PRIVATE_CHANNELS",
    "PUBLIC_CHANNELS",
    "PUSH_METHODS",
    "REQUEST_METHODS",
    "STREAMS",
    "SUBSCRIBABLE",
    "Channel",
    "get",
]

#: A non-hot push parser: ``parser(params, recv_ns, rejects) -> list of records`` (never
#: raises; bad records are left out and counted in ``rejects``). For a request channel
#: (``server.*``): ``parser(result)`` -> the checked result (raises ``BadReply`` /
#: ``AuthError``).
Parser = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Channel:
    """One channel of the API.

    ``name``: the channel (``"trades"``) or, for a plain request, the method
    (``"server.ping"``). ``request`` / ``subscribe`` / ``unsubscribe`` / ``query`` /
    ``update``: its method names as on the wire (``None`` when it has no such method).
    ``private``: needs ``server.auth``. ``hot``: its pushes are parsed and applied by the
    compiled engine (and by the reference twin), not by a Python parser. ``record``: the
    type of what it produces (``None`` for depth and trades, whose data lands in the
    engine's books / trade ring, and for requests; ``Ticker`` for the hot ticker channels,
    whose rows land in the engine's ticker table and history and become ``Ticker``
    objects only when asked for). ``parser``: see :data:`Parser` (for the hot ticker
    channels: the exact Python path the engine falls back to on a value only Python
    judges exactly, and the tests' oracle).
    ``names``: what a subscribe request lists (``"symbol"``, ``"currency"``) or ``None``
    when it takes no names (``all_ticker``). ``client``: the suffix of the ``Feed``
    methods (``subscribe_orders`` -> ``"orders"``). ``stream``: the ``Feed`` stream and
    callback kind its records go to (``all_ticker`` shares ``"ticker"``). ``route``: how
    the local exchange serves it: ``"request"``, ``"market"`` (per-symbol routing of the
    simulated market), ``"broadcast"`` (to every subscriber), ``"private"`` (per account).
    """

    name: str
    route: str
    private: bool = False
    hot: bool = False
    record: type | None = None
    parser: Parser | None = None
    request: str | None = None
    subscribe: str | None = None
    unsubscribe: str | None = None
    query: str | None = None
    update: str | None = None
    names: str | None = "symbol"
    client: str | None = None
    stream: str | None = None

    @property
    def public(self) -> bool:
        return not self.private

    @property
    def methods(self) -> tuple[str, ...]:
        """Every method name of this channel on the wire."""
        return tuple(
            m for m in (self.request, self.subscribe, self.unsubscribe, self.query, self.update) if m
        )

    @property
    def subscribable(self) -> bool:
        return self.subscribe is not None


def _request(method: str, parser: Parser) -> Channel:
    return Channel(method, "request", request=method, parser=parser, names=None)


def _channel(
    name: str,
    route: str,
    *,
    private: bool = False,
    hot: bool = False,
    record: type | None = None,
    names: str | None = "symbol",
    client: str | None = None,
    stream: str | None = None,
    **fixed: Any,
) -> Channel:
    parser = functools.partial(protocol.parse_records, record, **fixed) if record is not None else None
    return Channel(
        name,
        route,
        private=private,
        hot=hot,
        record=record,
        parser=parser,
        subscribe=f"{name}.subscribe",
        unsubscribe=f"{name}.unsubscribe",
        update=f"{name}.update",
        names=names,
        client=client or name,
        stream=stream,
    )


#: The table. The subscribable rows are in the order of ``protocol.PUBLIC_CHANNELS`` /
#: ``PRIVATE_CHANNELS`` (and of the client's subscription registry).
CHANNELS: tuple[Channel, ...] = (
    _request("server.ping", protocol.parse_pong),
    _request("server.time", protocol.parse_server_time),
    _request("server.auth", protocol.check_auth_result),
    _channel("trades", "market", hot=True),
    _channel("depth", "market", hot=True),
    _channel("ticker", "market", hot=True, record=Ticker, stream="ticker", all_ticker=False),
    _channel(
        "all_ticker", "broadcast", hot=True, record=Ticker, names=None, stream="ticker", all_ticker=True
    ),
    _channel("order", "private", private=True, record=OrderUpdate, client="orders", stream="order"),
    _channel("order_algo", "private", private=True, record=OrderAlgoUpdate, stream="order_algo"),
    _channel("balance", "private", private=True, record=BalanceUpdate, names="currency", stream="balance"),
)

#: name -> row.
BY_NAME: dict[str, Channel] = {c.name: c for c in CHANNELS}
#: every wire method -> its row.
BY_METHOD: dict[str, Channel] = {m: c for c in CHANNELS for m in c.methods}
#: push method (``"ticker.update"``) -> row.
BY_UPDATE: dict[str, Channel] = {c.update: c for c in CHANNELS if c.update}
#: the subscribable rows.
SUBSCRIBABLE: tuple[Channel, ...] = tuple(c for c in CHANNELS if c.subscribable)
#: names of the public / private subscribable channels (``protocol.PUBLIC_CHANNELS``...).
PUBLIC_CHANNELS: tuple[str, ...] = tuple(c.name for c in SUBSCRIBABLE if not c.private)
PRIVATE_CHANNELS: tuple[str, ...] = tuple(c.name for c in SUBSCRIBABLE if c.private)
#: push methods, in table order; the hot ones (parsed by the engine).
PUSH_METHODS: tuple[str, ...] = tuple(BY_UPDATE)
HOT_UPDATES: tuple[str, ...] = tuple(c.update for c in CHANNELS if c.hot and c.update)
#: the plain request methods (``server.*``).
REQUEST_METHODS: tuple[str, ...] = tuple(c.request for c in CHANNELS if c.request)
#: stream kinds of the non-hot records (``Feed.tickers()``, ``orders()``...), in table order.
STREAMS: tuple[str, ...] = tuple(dict.fromkeys(c.stream for c in CHANNELS if c.stream))


def get(name: str) -> Channel:
    """The row of channel ``name``; :class:`~fastfeed.errors.UnknownChannel` (a
    ``KeyError``) naming the known channels otherwise."""
    try:
        return BY_NAME[name]
    except (KeyError, TypeError):
        raise UnknownChannel(f"unknown channel {name!r}: expected one of {', '.join(BY_NAME)}") from None
