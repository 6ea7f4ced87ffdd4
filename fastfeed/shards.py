"""One feed over N connections: symbol shards, each on its own core (a process or a thread).

::

    async with fastfeed.connect_sharded(url, shards=2, symbols=SYMS) as feed:
        await feed.subscribe_depth(SYMS)      # each symbol goes to the shard that owns it
        feed.book("BTC_USDT")                 # the owning shard's book (snapshot(), bids...)
        feed.stats["connects"]                # summed over shards; feed.stats["shards"]: each

Design (docs/architecture.md, "Shards"): each shard is an ordinary :class:`~fastfeed.Feed`
(own picows connection, own :class:`~fastfeed.Engine`, own asyncio event loop). In
``mode="process"`` (the default) it runs in its own process and writes its own
shared-memory segment; the parent reads books and trades from the segments and talks to the
shard over a pipe (subscriptions, ping, stats, events). In ``mode="thread"`` it runs in a
thread of this process; the engine releases the GIL around inflate + parse, but the rest
of a frame's path (picows framing, the event loop, applying the parsed frame, one GIL
hand-off per frame) holds it, so two busy threads gain much less than two processes
(benchmarks/bench_shards.py measures both): threads are for the in-process API (zero-copy
``Book``s, frame-path callbacks), processes for throughput.

Symbols are assigned to shards once, by :func:`plan_shards` (balanced by a per-symbol
weight, default equal) for the ``symbols=`` given at construction, and a symbol first seen
in a later ``subscribe_*`` goes to the lightest shard then. The assignment never changes
while the feed lives, so one symbol's data always comes from one connection (in order).

Threads and memory: ``on_event`` runs on a helper thread (process mode: the shard's pipe
reader) or the shard's thread; in thread mode ``feed.book()``, ``feed.trades`` and
``feed.stats`` may be read from the caller's thread at any time (engine methods run with the
GIL, between two frames' applies: docs/engine-semantics.md section 8). Either way a kept
view's rows change in place with later frames: ``book.snapshot()`` is a consistent copy.
Views of a segment stay valid (frozen) after the feed closes, see :mod:`fastfeed.shm`.

Shared memory: with ``shm_name=NAME`` shard ``i`` of ``n`` publishes segment
``NAME.shard<i>-of<n>``; :func:`fastfeed.attach` (``NAME``) finds them and returns a
:class:`ShardedReader` that sees every symbol whatever the shard.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from . import channels, protocol
from .client import ConnectionEvent, Feed, FeedOptions, _check_callback, _check_url
from .errors import FeedClosed, ShmLayoutError, ShmNotFound, UnknownSymbol

__all__ = [
    "ShardEvent",
    "ShardedFeed",
    "ShardedReader",
    "ShardedTrades",
    "attach_shards",
    "connect_sharded",
    "plan_shards",
    "shard_segment_name",
]

#: callbacks that are handed to every shard's Feed (run on the shard's thread)
_PASSED_CALLBACKS = ("on_ticker", "on_raw", "on_frame")
#: how long close() waits for a shard thread to finish (a hang guard)
_JOIN_TIMEOUT = 30.0


def plan_shards(
    symbols: Iterable[str], shards: int, weights: Mapping[str, float] | None = None
) -> list[list[str]]:
    """Split ``symbols`` into ``shards`` lists balanced by weight (``weights[sym]``,
    default 1.0 each): heaviest first, each to the shard with the least weight so far (ties:
    fewer symbols, then the lower index). Deterministic; names are checked and upper-cased
    (``protocol.validate_symbols``). A shard may stay empty when there are fewer symbols
    than shards. Raises ``ValueError`` for ``shards < 1`` or a negative / non-finite weight."""
    n = _check_shards(shards)
    syms = protocol.validate_symbols(symbols)
    w = _weights(weights)
    order = sorted(range(len(syms)), key=lambda i: (-w.get(syms[i], 1.0), i))
    out: list[list[str]] = [[] for _ in range(n)]
    load = [0.0] * n
    for i in order:
        k = min(range(n), key=lambda j: (load[j], len(out[j]), j))
        out[k].append(syms[i])
        load[k] += w.get(syms[i], 1.0)
    return out


def _check_shards(shards: Any) -> int:
    if isinstance(shards, bool) or not isinstance(shards, int):
        raise TypeError(f"shards must be an int, not {type(shards).__name__}")
    if not 1 <= shards <= 64:
        raise ValueError(f"shards must be 1..64, not {shards}")
    return shards


def _weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    if weights is None:
        return {}
    if not isinstance(weights, Mapping):
        raise TypeError("weights must be a mapping symbol -> weight")
    out: dict[str, float] = {}
    for k, v in weights.items():
        (sym,) = protocol.validate_symbols([k])
        f = float(v)
        if not (f >= 0.0 and f < float("inf")):
            raise ValueError(f"weight of {sym} must be a finite number >= 0, not {v!r}")
        out[sym] = f
    return out


def shard_segment_name(name: str, shard: int, shards: int) -> str:
    """The shared-memory segment name of shard ``shard`` of ``shards``: ``NAME.shard<i>-of<n>``."""
    from .shm import validate_name

    return validate_name(f"{validate_name(name)}.shard{shard}-of{shards}")


@dataclasses.dataclass(frozen=True, slots=True)
class ShardEvent:
    """A connection event of one shard: ``shard`` (its index) and the shard Feed's
    :class:`~fastfeed.ConnectionEvent`."""

    shard: int
    event: ConnectionEvent

    @property
    def kind(self) -> str:
        return self.event.kind


class _Shard:
    """One shard: a Feed on its own thread and event loop."""

    def __init__(self, index: int, make_feed: Callable[[], Feed]) -> None:
        self.index = index
        self._make_feed = make_feed
        self.feed: Feed | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, name=f"fastfeed-shard-{index}", daemon=True)
        self.started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._stop: asyncio.Event | None = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            self.feed = self._make_feed()
            await self.feed.start()
        except BaseException as exc:
            if self.feed is not None:
                await self.feed.close()
            self.started.set_exception(exc)
            return
        self.started.set_result(None)
        try:
            await self._stop.wait()
        finally:
            await self.feed.close()

    def call(self, coro_fn: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        """Run ``coro_fn()`` on the shard's loop; a future for its result."""
        if not self.thread.is_alive():
            raise FeedClosed(f"shard {self.index} is not running")
        if self.loop is None or self.loop.is_closed():
            raise FeedClosed(f"shard {self.index} is not running")
        return asyncio.run_coroutine_threadsafe(coro_fn(), self.loop)

    def stop(self) -> None:
        loop, ev = self.loop, self._stop
        if loop is not None and ev is not None:
            try:
                loop.call_soon_threadsafe(ev.set)
            except RuntimeError:  # loop already closed
                pass


def _sink_stats(feed: Feed) -> list[dict[str, Any]]:
    return [dict(getattr(sk, "stats", {})) for sk in feed.sinks]


def _report(feed: Feed) -> dict[str, Any]:
    """A shard's stats as the parent keeps them: the Feed's, its subscriptions, its sinks'."""
    return {**feed.stats, "subscriptions": feed.subscriptions, "sinks": _sink_stats(feed)}


def _proc_main(
    url: str, options: dict[str, Any], segment: str, conn: Any, sinks: tuple[Any, ...] = ()
) -> None:
    """A shard process: one Feed writing segment ``segment`` with ``sinks`` (built here
    from their pickled configuration); commands and results over ``conn`` (see
    :class:`_ProcShard`)."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    send_lock = threading.Lock()

    def send(msg: Any) -> None:
        with send_lock:
            try:
                conn.send(msg)
            except (OSError, ValueError):  # the parent is gone: nothing to tell
                pass

    async def main() -> None:
        loop = asyncio.get_running_loop()
        feed = Feed(
            url,
            options=FeedOptions(**options, shm_name=segment),
            on_event=lambda ev: send(("event", ev)),
            sinks=sinks,
        )
        try:
            await feed.start()
        except BaseException as exc:  # the parent re-raises it
            await feed.close()
            send(("started", _picklable(exc)))
            return
        send(("stats", _report(feed)))
        send(("started", None))
        inbox: asyncio.Queue[Any] = asyncio.Queue()

        def readable() -> None:
            try:
                inbox.put_nowait(conn.recv())
            except (EOFError, OSError):
                loop.remove_reader(conn.fileno())
                inbox.put_nowait(("stop",))

        async def call(cid: int, method: str, args: tuple[Any, ...]) -> None:
            try:
                result = await getattr(feed, method)(*args)
                if method == "subscribe_depth":  # books exist (and are in the segment) at once
                    for sym in args[0]:
                        feed.book(sym)
                ok = True
            except Exception as exc:
                result, ok = _picklable(exc), False
            send(("stats", _report(feed)))
            send(("reply", cid, ok, result))

        async def push_stats() -> None:
            while True:
                await asyncio.sleep(_STATS_INTERVAL)
                send(("stats", _report(feed)))

        loop.add_reader(conn.fileno(), readable)
        tasks = {asyncio.create_task(push_stats())}
        try:
            while True:
                msg = await inbox.get()
                if msg[0] != "call":
                    break
                t = asyncio.create_task(call(*msg[1:]))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
        finally:
            loop.remove_reader(conn.fileno())
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await feed.close()
            send(("stats", _report(feed)))

    asyncio.run(main())
    send(("stopped",))


def _picklable(exc: BaseException) -> Any:
    """``exc`` itself if it survives pickling, else ``("exc", class, args, attributes)`` that
    :func:`_rebuild` turns back into the same class in the parent (an exception whose
    ``__init__`` takes other arguments than ``args``, such as ``RequestError``, does not
    unpickle by default), or a ``RuntimeError`` naming it as a last resort."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        pass
    try:
        spec = ("exc", type(exc), exc.args, dict(vars(exc)))
        pickle.loads(pickle.dumps(spec))
        return spec
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _rebuild(obj: Any) -> BaseException:
    if isinstance(obj, BaseException):
        return obj
    _, cls, args, attrs = obj
    exc: BaseException = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(attrs)
    return exc


#: how often a shard process sends its stats to the parent (and after every call)
_STATS_INTERVAL = 0.1


class _ProcShard:
    """One shard in its own process (``mode="process"``): a Feed writing its own shared-memory
    segment; the parent reads books from the segment and talks to the Feed over a pipe (one
    reader thread per shard dispatches replies, events and stats)."""

    def __init__(self, index: int, owner: ShardedFeed, segment: str) -> None:
        import multiprocessing as mp

        self.index = index
        self.owner = owner
        self.segment = segment
        self.feed = None  # the Feed lives in the child
        self.stats: dict[str, Any] = {}
        self.reader: Any = None
        self.started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._calls: dict[int, concurrent.futures.Future[Any]] = {}
        self._next = 0
        self._lock = threading.Lock()
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=_proc_main,
            args=(owner.url, dict(owner._options), segment, child, owner.shard_sinks[index]),
            name=f"fastfeed-shard-{index}",
            daemon=True,
        )
        self._child = child
        self.thread = threading.Thread(target=self._read, name=f"fastfeed-shard-{index}-pipe", daemon=True)
        self.alive = False

    def start(self) -> None:
        self.proc.start()
        self._child.close()
        self.alive = True
        self.thread.start()

    def _read(self) -> None:
        while True:
            try:
                msg = self._conn.recv()
            except (EOFError, OSError):
                break
            kind = msg[0]
            if kind == "stats":
                self.stats = msg[1]
            elif kind == "event":
                self.owner._event(self.index, msg[1])
            elif kind == "started":
                if msg[1] is None:
                    self.started.set_result(None)
                else:
                    self.started.set_exception(_rebuild(msg[1]))
            elif kind == "reply":
                with self._lock:
                    fut = self._calls.pop(msg[1], None)
                if fut is not None and not fut.done():
                    if msg[2]:
                        fut.set_result(msg[3])
                    else:
                        fut.set_exception(_rebuild(msg[3]))
            elif kind == "stopped":
                break
        self.alive = False
        err = FeedClosed(f"shard process {self.index} ended")
        if not self.started.done():
            self.started.set_exception(err)
        with self._lock:
            calls, self._calls = self._calls, {}
        for fut in calls.values():
            if not fut.done():
                fut.set_exception(err)

    def call(self, method: str, *args: Any) -> concurrent.futures.Future[Any]:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            if not self.alive:
                raise FeedClosed(f"shard process {self.index} is not running")
            self._next += 1
            self._calls[self._next] = fut
            self._conn.send(("call", self._next, method, args))
        return fut

    def stop(self, timeout: float) -> None:
        """(blocking) Ask the child to close its feed, wait for it, kill it if it hangs."""
        with self._lock:
            try:
                self._conn.send(("stop",))
            except (OSError, ValueError):
                pass
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        if self.proc.exitcode != 0:  # died or killed: its segment was never unlinked
            from .shm import unlink_segment

            unlink_segment(self.segment)
        self.thread.join(timeout)
        if self.reader is not None:
            self.reader.close()
        self._conn.close()


class ShardedTrades:
    """The trades of every shard. Each shard has its own trade ring (``rings[i]``: the
    engine's :class:`~fastfeed.TradeRing` in thread mode, the segment's
    :class:`~fastfeed.shm.ShmTrades` in process mode; ``ring_of(symbol)`` is the one holding
    a symbol's trades, with that shard's symbol ids). :meth:`latest` is a merged copy: the
    newest ``n`` trades of all shards, ordered by ``recv_ns`` (ties: shard order), with
    ``symbol`` renumbered into :attr:`symbols`."""

    def __init__(self, feed: ShardedFeed) -> None:
        self._feed = feed

    @property
    def rings(self) -> tuple[Any, ...]:
        return tuple(ring for ring, _ in self._feed._trade_sources())

    def ring_of(self, symbol: str) -> Any:
        return self._feed._trade_sources()[self._feed.shard_of(symbol)][0]

    @property
    def count(self) -> int:
        """Trades stored so far, summed over shards."""
        return sum(r.count for r in self.rings)

    def __len__(self) -> int:
        return sum(len(r) for r in self.rings)

    @property
    def symbols(self) -> list[str]:
        """The symbol names :meth:`latest`'s ``symbol`` ids index (a snapshot: it grows)."""
        out: list[str] = []
        for _, names in self._feed._trade_sources():
            out.extend(names)
        return out

    def latest(self, n: int = -1) -> npt.NDArray[np.void]:
        """A copy of the newest ``n`` trades over all shards (``-1``: all kept), oldest
        first by ``recv_ns``; ``symbol`` indexes :attr:`symbols` as it was at the call."""
        parts = []
        offset = 0
        for ring, names in self._feed._trade_sources():
            if hasattr(ring, "snapshot"):  # a segment: a consistent copy
                rows = ring.snapshot(n)
            else:
                rows = np.array(ring.latest(n), copy=True)
            rows["symbol"] += offset
            offset += len(names)
            parts.append(rows)
        if not parts:
            from .layout import TRADE_DTYPE

            return np.zeros(0, dtype=TRADE_DTYPE)
        allrows = np.concatenate(parts)
        allrows = allrows[np.argsort(allrows["recv_ns"], kind="stable")]
        return allrows if n < 0 else allrows[len(allrows) - min(n, len(allrows)) :]


_MODES = ("process", "thread")
_auto_names = iter(range(1 << 62))


class ShardedFeed:
    """A feed over ``shards`` connections (use :func:`connect_sharded`).

    ``mode="process"`` (default): each shard is a process running a :class:`~fastfeed.Feed`
    that writes its own shared-memory segment; ``feed.book(sym)`` is that segment's
    :class:`~fastfeed.shm.ShmBook` (read-only; ``snapshot()`` is a consistent copy, the
    same API as ``Book`` for ``bids``/``asks``/``best_bid``/``best_ask``/``version``/
    ``live``); stats arrive from the shards every 0.1 s and after every call.
    ``mode="thread"``: each shard is a thread with its own event loop, and
    ``feed.book(sym)`` is the owning shard's :class:`~fastfeed.Book` (zero-copy, as
    :meth:`Feed.book`); the shards' callbacks (``on_ticker``, ``on_raw``, ``on_frame``) run on
    the shard's thread. Threads scale less (the GIL, see docs/architecture.md, "Shards").

    Both: ``feed.trades`` is a :class:`ShardedTrades` (per-shard rings and a merged copy);
    ``feed.stats`` sums the counters over shards, ``connected`` is true when every shard is,
    ``shards`` lists each shard's own ``Feed.stats``; ``feed.events`` keeps the newest
    connection events of all shards (:class:`ShardEvent`), and ``on_event`` gets each one
    (on a helper thread). ``subscribe_depth`` / ``subscribe_trades`` / ``subscribe_ticker``
    (and ``unsubscribe_*``) take named symbols and send each to its shard;
    ``subscribe_all_ticker`` goes to shard 0. A shard's reconnect is that shard's business:
    the others keep their connections and books.

    Sinks: ``sinks=[NatsSink(...)]`` (any sink with a ``for_shard(shard, shards)`` method)
    gives each shard its own copy (:attr:`shard_sinks`), built and opened in the shard's
    process or thread, so a shard publishes its own symbols from its own loop;
    :attr:`sink_stats` sums their stats. Other sinks and private channels (api keys) are not
    sharded: use :func:`fastfeed.connect`.
    A shard process that dies (killed, crashed) is not restarted: ``connected`` turns
    False, calls to it raise :class:`~fastfeed.errors.FeedClosed`, its books keep their last
    state (the segment's writer is gone); close the feed and connect again.
    """

    def __init__(
        self,
        url: str = protocol.DIGIFINEX_URL,
        shards: int = 2,
        *,
        symbols: Iterable[str] = (),
        weights: Mapping[str, float] | None = None,
        mode: str = "process",
        on_event: Callable[[ShardEvent], None] | None = None,
        event_history: int = 1000,
        **options: Any,
    ) -> None:
        self.n_shards = _check_shards(shards)
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {', '.join(_MODES)}, not {mode!r}")
        self.mode = mode
        self._weights = _weights(weights)
        for bad in ("engine", "api_key", "secret"):
            if bad in options:
                raise ValueError(
                    f"{bad}= is not supported by a sharded feed (each shard owns its engine; "
                    "private channels need fastfeed.connect)"
                )
        sinks = options.pop("sinks", ())
        if isinstance(sinks, (str, bytes)) or not isinstance(sinks, Iterable):
            raise TypeError("sinks must be a list of sinks (see fastfeed.sinks)")
        self._sink_templates: tuple[Any, ...] = tuple(sinks)
        for sk in self._sink_templates:
            if not callable(getattr(sk, "for_shard", None)):
                raise ValueError(
                    f"{type(sk).__name__} cannot be sharded: a sharded feed takes sinks with a "
                    "for_shard(shard, shards) method (fastfeed.bus.NatsSink); others need "
                    "fastfeed.connect"
                )
        _check_callback("on_event", on_event)
        callbacks = {k: options.pop(k) for k in _PASSED_CALLBACKS if k in options}
        if callbacks and mode == "process":
            raise ValueError(
                f"{', '.join(callbacks)} cannot run in shard processes: use mode='thread' "
                "or read the books and trades"
            )
        shm_name = options.pop("shm_name", None)
        unknown = set(options) - set(FeedOptions.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
        FeedOptions(**options)  # type errors now, not on a shard thread
        for k, cb in callbacks.items():
            _check_callback(k, cb)
        self.url = _check_url(url)
        if shm_name is None and mode == "process":  # the parent reads books from segments
            shm_name = f"fastfeed-sharded-{os.getpid()}-{next(_auto_names)}"
        self.shm_name = shm_name
        self.segment_names: tuple[str, ...] = (
            tuple(shard_segment_name(shm_name, i, self.n_shards) for i in range(self.n_shards))
            if shm_name is not None
            else ()
        )
        self._options = options
        self._callbacks = callbacks
        self._on_event = on_event
        self.events: deque[ShardEvent] = deque(maxlen=max(1, int(event_history)))
        self._owner: dict[str, int] = {}
        self._load = [0.0] * self.n_shards
        self._count = [0] * self.n_shards
        for i, part in enumerate(plan_shards(symbols, self.n_shards, self._weights)):
            for s in part:
                self._assign(s, i)
        #: each shard's own sinks (``for_shard`` of each of ``sinks``); in process mode
        #: these are unopened configurations, the shard process builds and opens its own
        self.shard_sinks: tuple[tuple[Any, ...], ...] = tuple(
            tuple(sk.for_shard(i, self.n_shards) for sk in self._sink_templates) for i in range(self.n_shards)
        )
        if mode == "process" and self._sink_templates:
            import pickle

            try:
                pickle.dumps(self.shard_sinks)
            except Exception as exc:
                raise ValueError(f"sinks cannot go to shard processes: {exc}") from None
        self._lock = threading.Lock()
        self._shards: list[Any] = (
            [_ProcShard(i, self, self.segment_names[i]) for i in range(self.n_shards)]
            if mode == "process"
            else [_Shard(i, self._factory(i)) for i in range(self.n_shards)]
        )
        self._started = False
        self._closed = False
        self.trades = ShardedTrades(self)

    def _factory(self, i: int) -> Callable[[], Feed]:
        def make() -> Feed:
            opts = dict(self._options)
            if self.segment_names:
                opts["shm_name"] = self.segment_names[i]
            return Feed(
                self.url,
                options=FeedOptions(**opts),
                on_event=lambda ev: self._event(i, ev),
                sinks=self.shard_sinks[i],
                **self._callbacks,
            )

        return make

    def _event(self, shard: int, ev: ConnectionEvent) -> None:
        se = ShardEvent(shard, ev)
        self.events.append(se)  # deque.append is atomic
        if self._on_event is not None:
            try:
                self._on_event(se)
            except Exception:  # a callback's error never stops a shard
                logging.getLogger(__name__).exception("on_event raised")

    def _assign(self, sym: str, shard: int) -> None:
        self._owner[sym] = shard
        self._load[shard] += self._weights.get(sym, 1.0)
        self._count[shard] += 1

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> ShardedFeed:
        """Start every shard (thread and loop, or process; its connection) and return once
        all are ready. If one fails, the others are closed and its exception is raised
        (:class:`~fastfeed.errors.ConnectFailed`...)."""
        if self._closed:
            raise FeedClosed("feed is closed: create a new one to connect again")
        if self._started:
            return self
        self._started = True
        try:
            for sh in self._shards:
                if self.mode == "process":
                    sh.start()
                else:
                    sh.thread.start()
            for sh in self._shards:
                await asyncio.wrap_future(sh.started)
            if self.mode == "process":
                from .shm import ShmReader

                for sh in self._shards:
                    sh.reader = ShmReader(sh.segment, False, 10.0)
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        """Close every shard (its connection, streams, engine, segment) and wait for its
        thread or process to end. Idempotent."""
        self._closed = True
        loop = asyncio.get_running_loop()
        if self.mode == "process":
            started = [sh for sh in self._shards if sh.proc.pid is not None]
            await asyncio.gather(*(loop.run_in_executor(None, sh.stop, _JOIN_TIMEOUT) for sh in started))
            return
        for sh in self._shards:
            sh.stop()
        for sh in self._shards:
            if sh.thread.is_alive():
                await loop.run_in_executor(None, sh.thread.join, _JOIN_TIMEOUT)

    async def __aenter__(self) -> ShardedFeed:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("connected" if self.connected else "disconnected")
        return f"<ShardedFeed {self.url} shards={self.n_shards} mode={self.mode} {state}>"

    @property
    def connected(self) -> bool:
        """True when every shard is connected."""
        if self.mode == "process":
            return all(sh.alive and sh.stats.get("connected", False) for sh in self._shards)
        feeds = self._feeds()
        return len(feeds) == self.n_shards and all(f.connected for f in feeds)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- routing -----------------------------------------------------------------------------

    @property
    def feeds(self) -> tuple[Feed, ...]:
        """Thread mode: the shards' :class:`~fastfeed.Feed` objects (each lives on its own
        thread and loop: call its coroutines through this feed, not directly). Process
        mode: ``()`` (the Feeds live in the shard processes)."""
        return self._feeds()

    def _feeds(self) -> tuple[Feed, ...]:
        return tuple(sh.feed for sh in self._shards if sh.feed is not None)

    def _trade_sources(self) -> list[tuple[Any, list[str]]]:
        if self.mode == "process":
            return [(sh.reader.trades, sh.reader.symbols) for sh in self._shards if sh.reader is not None]
        return [(f.trades, f.engine.symbols) for f in self._feeds()]

    def shard_of(self, symbol: str) -> int:
        """The index of the shard that owns ``symbol`` (``UnknownSymbol`` if none does yet)."""
        try:
            (sym,) = protocol.validate_symbols([symbol])
        except (TypeError, ValueError):
            raise UnknownSymbol(f"not a symbol: {symbol!r}", "unknown_symbol") from None
        try:
            return self._owner[sym]
        except KeyError:
            raise UnknownSymbol(f"{sym} is not assigned to a shard", "unknown_symbol") from None

    @property
    def assignment(self) -> dict[int, list[str]]:
        """Shard index -> the symbols it owns."""
        out: dict[int, list[str]] = {i: [] for i in range(self.n_shards)}
        for s, i in self._owner.items():
            out[i].append(s)
        return out

    def _route(self, symbols: Iterable[str] | None) -> dict[int, list[str]]:
        syms = protocol.validate_symbols(symbols)
        if not syms:
            raise ValueError(
                "a sharded feed subscribes named symbols (an empty list means 'all', which "
                "every shard would receive)"
            )
        out: dict[int, list[str]] = {}
        with self._lock:
            for s in syms:
                if s not in self._owner:
                    k = min(range(self.n_shards), key=lambda j: (self._load[j], self._count[j], j))
                    self._assign(s, k)
                out.setdefault(self._owner[s], []).append(s)
        return out

    def _invoke(self, i: int, method: str, *args: Any) -> concurrent.futures.Future[Any]:
        """Call ``Feed.<method>(*args)`` of shard ``i`` on its loop / in its process."""
        if self._closed:
            raise FeedClosed("feed closed")
        if not self._started:
            raise FeedClosed("the feed is not started: use async with / await feed.start()")
        sh = self._shards[i]
        fut: concurrent.futures.Future[Any]
        if self.mode == "process":
            fut = sh.call(method, *args)
        else:
            feed = sh.feed
            if feed is None:
                raise FeedClosed(f"shard {i} is not running")
            fut = sh.call(lambda: getattr(feed, method)(*args))
        return fut

    async def _on_shards(self, calls: dict[int, tuple[Any, ...]]) -> list[Any]:
        futs = [asyncio.wrap_future(self._invoke(i, *call)) for i, call in calls.items()]
        results = await asyncio.gather(*futs, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return results

    async def _sub(self, method: str, symbols: Iterable[str] | None) -> None:
        routes = self._route(symbols)
        await self._on_shards({i: (method, syms) for i, syms in routes.items()})

    async def subscribe_all_ticker(self) -> None:
        """``all_ticker`` on shard 0 (one connection is enough for the whole market)."""
        await self._on_shards({0: ("subscribe_all_ticker",)})

    async def unsubscribe_all_ticker(self) -> None:
        await self._on_shards({0: ("unsubscribe_all_ticker",)})

    async def ping(self) -> list[str]:
        """``server.ping`` on every shard's connection (their answers, in shard order):
        after it returns, every frame sent before the pong on each connection is applied
        (and, in process mode, ``stats`` are those of that moment or later)."""
        return await self._on_shards(dict.fromkeys(range(self.n_shards), ("ping",)))

    # -- data --------------------------------------------------------------------------------

    def book(self, symbol: str) -> Any:
        """The owning shard's book of ``symbol``: thread mode, its :class:`~fastfeed.Book`
        (see :meth:`Feed.book`; zero-copy views whose rows change in place as the shard's
        thread applies frames); process mode, the segment's
        :class:`~fastfeed.shm.ShmBook` (read-only views, valid as long as the array lives).
        Either way ``snapshot()`` is a consistent copy. A symbol no shard owns, or one not
        subscribed yet, raises ``UnknownSymbol``."""
        i = self.shard_of(symbol)
        sh = self._shards[i]
        if self.mode == "process":
            if sh.reader is None:
                raise FeedClosed("the feed is not started")
            return sh.reader.book(symbol.upper())
        if sh.feed is None:
            raise FeedClosed("the feed is not started")
        return sh.feed.book(symbol)

    @property
    def subscriptions(self) -> dict[str, list[str]]:
        """Channel -> subscribed symbols over all shards."""
        out: dict[str, set[str]] = {}
        for st in self._shard_stats():
            for ch, syms in st.get("subscriptions", {}).items():
                out.setdefault(ch, set()).update(syms)
        return {ch: sorted(s) for ch, s in out.items()}

    def _shard_stats(self) -> list[dict[str, Any]]:
        if self.mode == "process":
            return [sh.stats for sh in self._shards if sh.stats]
        return [_report(f) for f in self._feeds()]

    @property
    def sink_stats(self) -> list[dict[str, Any]]:
        """Per sink given as ``sinks=``: its shards' ``stats`` summed (each shard's own are
        in ``stats["shards"][i]["sinks"]``; process mode: as of the shard's last report)."""
        per = [st.get("sinks", []) for st in self._shard_stats()]
        return [_sum_stats([p[j] for p in per if j < len(p)]) for j in range(len(self._sink_templates))]

    @property
    def stats(self) -> dict[str, Any]:
        """Every numeric counter of :attr:`Feed.stats` summed over the shards (nested
        dicts too, e.g. ``engine``, ``dropped``), ``connected`` (all shards),
        ``last_error`` / ``last_disconnect_reason`` (the last non-empty in shard order),
        ``shards`` (the list of each shard's own stats, with its ``subscriptions``) and
        ``assignment`` (symbols per shard)."""
        per = self._shard_stats()
        out: dict[str, Any] = _sum_stats([{k: v for k, v in p.items() if k != "subscriptions"} for p in per])
        out["connected"] = self.connected
        out["n_shards"] = self.n_shards
        out["shards"] = per
        out["assignment"] = self.assignment
        return out


def _sum_stats(items: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for d in items:
        for k, v in d.items():
            if isinstance(v, bool):
                continue
            if isinstance(v, (int, float)):
                out[k] = out.get(k, 0) + v
            elif isinstance(v, dict):
                out[k] = _sum_stats([out.get(k, {}), v]) if k in out else _sum_stats([v])
            elif isinstance(v, str) and (v or k not in out):
                out[k] = v
    return out


def _install_channel_methods() -> None:
    for ch in channels.SUBSCRIBABLE:
        if ch.client is None or ch.private or ch.names != "symbol":
            continue
        for verb in ("subscribe", "unsubscribe"):
            name = f"{verb}_{ch.client}"

            async def method(self: ShardedFeed, symbols: Iterable[str] = (), _name: str = name) -> None:
                await self._sub(_name, symbols)

            method.__name__ = name
            method.__qualname__ = f"ShardedFeed.{name}"
            method.__doc__ = (
                f"``Feed.{name}`` on the shards that own ``symbols`` (named symbols only; a "
                "symbol no shard owns yet is given to the lightest shard first)."
            )
            setattr(ShardedFeed, name, method)


_install_channel_methods()


def connect_sharded(
    url: str = protocol.DIGIFINEX_URL,
    shards: int = 2,
    *,
    symbols: Iterable[str] = (),
    weights: Mapping[str, float] | None = None,
    mode: str = "process",
    **options: Any,
) -> ShardedFeed:
    """``async with fastfeed.connect_sharded(url, shards=N, symbols=[...]) as feed: ...``

    A :class:`ShardedFeed`, unconnected (not a coroutine). ``symbols`` (and their
    ``weights``, default 1 each) plan the split (:func:`plan_shards`); ``mode`` is
    ``"process"`` (default: one process per shard, books read from its shared-memory
    segment; scales with cores) or ``"thread"`` (one thread and event loop per shard, the
    engine's zero-copy ``Book``s and frame-path callbacks; limited by the GIL). ``options``
    are those of :func:`fastfeed.connect` (each shard gets them) except ``engine`` and
    keys; ``sinks`` take only shardable sinks (``NatsSink``: one per shard, see
    :class:`ShardedFeed`); ``on_event`` receives :class:`ShardEvent`; ``shm_name=NAME`` names
    the segments (``NAME.shard<i>-of<n>``; process mode picks a private name otherwise),
    read back as one by ``fastfeed.attach(NAME)``."""
    return ShardedFeed(url, shards, symbols=symbols, weights=weights, mode=mode, **options)


# -- shared memory: one reader over the shards' segments ----------------------------------------

_SEG_RE = re.compile(r"^(?P<base>.+)\.shard(?P<i>\d+)-of(?P<n>\d+)$")


def _shard_segments(name: str) -> list[str]:
    """The complete set of shard segments of ``name`` on this machine, in shard order.
    Raises ``ShmNotFound`` if there is none, ``ShmLayoutError`` if incomplete sets of
    several shard counts make the choice ambiguous."""
    from .shm import list_segments

    found: dict[int, set[int]] = {}
    for seg in list_segments():
        m = _SEG_RE.match(seg)
        if m and m["base"] == name:
            found.setdefault(int(m["n"]), set()).add(int(m["i"]))
    complete = [n for n, idx in found.items() if idx == set(range(n))]
    if not found:
        raise ShmNotFound(f"no shared-memory segment {name!r} (nor shard segments {name}.shard*)")
    if len(complete) != 1:
        raise ShmLayoutError(
            f"shard segments of {name!r} do not form one complete set: "
            + ", ".join(f"{len(idx)} of {n}" for n, idx in sorted(found.items()))
        )
    n = complete[0]
    return [f"{name}.shard{i}-of{n}" for i in range(n)]


class ShardedReader:
    """Read-only view of a sharded feed's segments (``fastfeed.attach(NAME)``): ``book(sym)``
    finds the shard segment that holds ``sym`` (a :class:`~fastfeed.shm.ShmBook`, same
    consistency and memory-validity rules as one segment's), ``symbols`` is the union,
    ``readers`` the per-shard :class:`~fastfeed.shm.ShmReader` objects (``readers[i].trades``
    is shard ``i``'s trade ring)."""

    def __init__(self, readers: list[Any]) -> None:
        self.readers = tuple(readers)

    @property
    def name(self) -> str:
        m = _SEG_RE.match(self.readers[0].name)
        return m["base"] if m else self.readers[0].name

    @property
    def symbols(self) -> list[str]:
        out: list[str] = []
        for r in self.readers:
            out.extend(r.symbols)
        return out

    def book(self, symbol: str) -> Any:
        for r in self.readers:
            if symbol in r.symbols:
                return r.book(symbol)
        return self.readers[0].book(symbol)  # raises the reader's own error

    def close(self) -> None:
        for r in self.readers:
            r.close()

    def __enter__(self) -> ShardedReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ShardedReader {self.name} shards={len(self.readers)}>"


def attach_shards(name: str, *, allow_stale: bool = False, timeout: float = 2.0) -> ShardedReader:
    """Attach to every shard segment of ``name`` (see :class:`ShardedReader`)."""
    from .shm import ShmReader, validate_name

    segs = _shard_segments(validate_name(name))
    readers: list[Any] = []
    try:
        for s in segs:
            readers.append(ShmReader(s, allow_stale, timeout))
    except BaseException:
        for r in readers:
            r.close()
        raise
    return ShardedReader(readers)
