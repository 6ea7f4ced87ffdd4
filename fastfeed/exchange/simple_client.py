"""A deliberately small picows client for tests and tools (not the production client).

It sends requests with auto-incrementing ids and matches replies, decodes every payload
(zlib BINARY or plain JSON, as the engine does), optionally feeds an engine and records
a capture, and lets a test wait for a condition without sleeping.
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
from picows import WSCloseCode, WSListener, WSMsgType, WSTransport, ws_connect

from ..errors import ConnectionLost, DecodeError, FastfeedError  # DecodeError importable from here too
from .wire import encode_json

__all__ = ["DecodeError", "SimpleClient", "decode_payload"]

_WS = b" \t\r\n"


def decode_payload(
    payload: bytes | bytearray | memoryview, max_frame: int = 8 << 20, raw: bool = False
) -> Any:
    """Decode one payload like the engine's section 1+2: plain JSON if the first
    non-whitespace byte is ``{``/``[``, otherwise one complete zlib stream.
    ``raw=True`` returns the JSON text (bytes) instead of the decoded value."""
    data = bytes(payload)
    if not data:
        raise DecodeError("empty")
    head = data.lstrip(_WS)[:1]
    if head in (b"{", b"["):
        text = data
        if len(text) > max_frame:
            raise DecodeError("too_large")
    else:
        d = zlib.decompressobj()
        try:
            text = d.decompress(data, max_frame + 1)
        except zlib.error as exc:
            raise DecodeError("zlib_error", str(exc)) from None
        if len(text) > max_frame:
            raise DecodeError("too_large")
        if not d.eof:
            raise DecodeError("zlib_truncated")
        if d.unused_data:
            raise DecodeError("zlib_trailing")
    if raw:
        return text
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise DecodeError("bad_json", str(exc)) from None


class _Listener(WSListener):
    def __init__(self, client: SimpleClient) -> None:
        super().__init__()
        self.client = client

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        self.client._on_frame(transport, frame)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.client._on_disconnected()


class SimpleClient:
    """Minimal WebSocket client of the DigiFinex v1 protocol.

    ``engine``: anything with ``feed(payload, recv_ns)`` (``fastfeed.Engine``, the
    reference engine), fed every data frame; its ``FastfeedError`` reasons land in
    ``errors``. ``capture``: a :class:`fastfeed.capture.CaptureWriter` receiving every data
    frame. ``keep``: decode every frame and keep pushes in ``messages``.
    """

    def __init__(
        self, *, engine: Any = None, capture: Any = None, keep: bool = True, max_frame: int = 8 << 20
    ) -> None:
        self.engine = engine
        self.capture = capture
        self.keep = keep
        self.max_frame = max_frame
        self.transport: WSTransport | None = None
        self.messages: list[Any] = []
        self.replies: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.frames = 0
        self.frame_types: Counter[str] = Counter()
        self.methods: Counter[str] = Counter()
        self.close_code: int | None = None
        self.close_reason = ""
        self.disconnected = asyncio.Event()
        self._pending: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._next_id = 1

    @classmethod
    async def connect(cls, url: str, *, timeout: float = 30.0, **kwargs: Any) -> SimpleClient:
        """Open a connection to ``url`` (keyword arguments go to the constructor)."""
        self = cls(**kwargs)
        self.transport, _ = await asyncio.wait_for(
            ws_connect(lambda: _Listener(self), url, max_frame_size=64 << 20), timeout
        )
        return self

    # ------------------------------------------------------------------ sending
    def send(self, message: Any, *, binary: bool = False) -> None:
        """Send raw ``str``/``bytes`` as is, anything else JSON-encoded, as TEXT (or BINARY)."""
        assert self.transport is not None
        data = message if isinstance(message, (bytes, bytearray, str)) else encode_json(message)
        self.transport.send(WSMsgType.BINARY if binary else WSMsgType.TEXT, data)

    def next_id(self) -> int:
        """Reserve the next request id."""
        i = self._next_id
        self._next_id += 1
        return i

    async def request(
        self, method: str, params: list[Any] | None = None, *, timeout: float = 30.0, req_id: Any = None
    ) -> dict[str, Any]:
        """Send ``{"id", "method", "params"}`` and return the reply with that id."""
        if self.disconnected.is_set():
            raise ConnectionLost("disconnected")
        if req_id is None:
            req_id = self.next_id()
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        try:
            self.send({"id": req_id, "method": method, "params": [] if params is None else params})
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(req_id, None)

    async def ping(self, timeout: float = 30.0) -> dict[str, Any]:
        """``server.ping``; once the pong is here, every earlier push has been processed."""
        return await self.request("server.ping", timeout=timeout)

    # ------------------------------------------------------------------ waiting
    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        """Wait until ``predicate()`` is true (checked after every frame)."""
        if predicate():
            return
        if self.disconnected.is_set():
            raise ConnectionLost("disconnected")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, fut)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(fut, timeout)
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    async def wait_closed(self, timeout: float = 30.0) -> None:
        """Wait until the connection is gone."""
        await asyncio.wait_for(self.disconnected.wait(), timeout)

    async def close(self) -> None:
        """Close politely (CLOSE 1000) and wait for the disconnect."""
        t = self.transport
        if t is None:
            return
        if not t.is_disconnected:
            if not t.is_close_frame_sent:
                t.send_close(WSCloseCode.OK)
            t.disconnect()
        await t.wait_disconnected()

    @property
    def closed(self) -> bool:
        return self.disconnected.is_set()

    # ------------------------------------------------------------------ receiving
    def _on_frame(self, transport: WSTransport, frame: Any) -> None:
        mt = frame.msg_type
        if mt is WSMsgType.BINARY or mt is WSMsgType.TEXT:
            recv_ns = time.time_ns()
            payload = frame.get_payload_as_bytes()
            self.frames += 1
            self.frame_types[mt.name] += 1
            if self.capture is not None:
                self.capture.write(payload, recv_ns, mt.value)
            msg: Any = None
            if self.engine is not None:
                try:
                    msg = self.engine.feed(payload, recv_ns)
                except FastfeedError as exc:
                    self.errors.append(exc.reason)
            if self.keep or self.engine is None:
                try:
                    msg = decode_payload(payload, self.max_frame)
                except DecodeError as exc:
                    if self.engine is None:
                        self.errors.append(exc.reason)
                    msg = None
            if isinstance(msg, dict):
                method = msg.get("method")
                if method is None and "id" in msg:
                    if msg["id"] not in self._pending and isinstance(msg["id"], float):
                        try:  # orjson turns integers beyond 64 bits into floats
                            msg = json.loads(decode_payload(payload, self.max_frame, raw=True))
                        except (DecodeError, ValueError):
                            pass
                    self.replies.append(msg)
                    fut = self._pending.get(msg["id"])
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                else:
                    self.methods[str(method)] += 1
                    if self.keep:
                        self.messages.append(msg)
            self._check_waiters()
        elif mt is WSMsgType.CLOSE:
            try:
                self.close_code = frame.get_close_code().value
            except ValueError:
                self.close_code = -1
            self.close_reason = frame.get_close_reason() or ""
            if not transport.is_close_frame_sent:
                transport.send_close(WSCloseCode.OK)
            transport.disconnect()

    def _check_waiters(self) -> None:
        if not self._waiters:
            return
        for pred, fut in list(self._waiters):
            if not fut.done() and pred():
                fut.set_result(None)

    def _on_disconnected(self) -> None:
        self.disconnected.set()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("disconnected"))
        for pred, waiter in self._waiters:
            if not waiter.done():
                if pred():
                    waiter.set_result(None)
                else:
                    waiter.set_exception(ConnectionError("disconnected"))

    # ------------------------------------------------------------------ helpers for tests
    def pushes(self, method: str, symbol: str | None = None) -> list[dict[str, Any]]:
        """Kept pushes of ``method`` (and of ``symbol`` for per-symbol channels)."""
        out = []
        for m in self.messages:
            if m.get("method") != method:
                continue
            if symbol is not None:
                p = m.get("params")
                if not (isinstance(p, list) and len(p) == 3 and p[2] == symbol):
                    continue
            out.append(m)
        return out
