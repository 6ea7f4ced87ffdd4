"""FeedListener: the picows listener that hands each payload straight to the Engine.

``on_ws_frame`` passes picows' ``payload_ptr`` / ``payload_size`` to ``Engine.feed_ptr``
(no ``bytes`` object for depth, trade and ticker frames), stamps ``recv_ns`` once per frame
and routes every decoded non-hot message (replies, private pushes) to the facade. Ticker
records (stored by the engine in its ticker table and history ring) are handed on, as
``on_tickers(first_seq, recv_ns)``, only while the feed has a ticker callback or stream:
without one a ticker frame costs no Python object here either.
Two optional hooks serve the sinks (:mod:`fastfeed.sinks`): ``on_raw(payload, recv_ns,
msg_type)`` sees every complete data payload before the engine (a ``bytes`` copy; ``msg_type``
1 text, 2 binary), ``on_frame(message, recv_ns)``
runs after a frame was applied (``message`` None for depth/trades/tickers, else the decoded one).

No exception leaves ``on_ws_frame``/``on_ws_disconnected`` (picows would drop the link):
a callback that raises is counted in ``callback_errors`` and logged on one line (the first
of each kind with its traceback at DEBUG level), and reassembly of fragmented messages is
bounded by the engine's ``max_frame`` before anything is appended.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport int64_t
from posix.time cimport CLOCK_REALTIME, clock_gettime, timespec

from picows.picows cimport WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport

from fastfeed._engine cimport Engine
from fastfeed._parse cimport uchar

import numpy as np

cimport numpy as cnp

cnp.import_array()

import logging

from fastfeed.errors import FastfeedError, FrameTooLarge

__all__ = ["FeedListener", "now_ns"]

_log = logging.getLogger("fastfeed.listener")


cdef _report(FeedListener self, str where, exc):
    """Last-resort guard: count, and log one line for the 1st, 2nd, 4th, 8th... error
    (bounded logging under a flood; never raises)."""
    self.callback_errors += 1
    cdef int64_t n = self.callback_errors
    if n & (n - 1):
        return
    try:
        from fastfeed.protocol import safe_text

        _log.error("%s raised %s: %s (%d so far on this connection, counted; the connection stays up)",
                   where, type(exc).__name__, safe_text(str(exc)), n,
                   exc_info=exc if n == 1 and _log.isEnabledFor(logging.DEBUG) else None)
    except Exception:
        pass


cdef inline int64_t _now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


def now_ns():
    """Wall-clock time in ns, the clock ``recv_ns`` stamps use (like ``time.time_ns``)."""
    return _now_ns()


cdef class FeedListener(WSListener):
    """Feeds every BINARY/TEXT payload to ``engine``; see the module docstring."""

    def __init__(self, Engine engine, on_message, on_frame_error, on_disconnected=None,
                 on_raw=None, on_frame=None):
        self.engine = engine
        self.on_message = on_message
        self.on_frame_error = on_frame_error
        self.on_disconnected = on_disconnected
        self.on_raw = on_raw
        self.on_frame = on_frame
        self._frag = None
        self.on_tickers = None
        self.ticker_streams = None
        self.ticker_callback = False
        self.close_code = None
        self.close_reason = ""

    def enable_timing(self, Py_ssize_t capacity=1 << 16):
        """Record ``[recv_ns, done_ns]`` of every data frame (done = books/ring updated) in
        a ring of ``capacity`` rows (a power of two); read it with :meth:`timings`."""
        cdef Py_ssize_t cap = 1
        while cap < capacity:
            cap <<= 1
        self._lat_arr = np.zeros((cap, 2), dtype=np.int64)
        self._lat = <int64_t*>cnp.PyArray_DATA(self._lat_arr)
        self._lat_mask = cap - 1
        self.timed_frames = 0

    def timings(self):
        """``(n, 2)`` int64 copy of the recorded ``[recv_ns, done_ns]`` rows, oldest first
        (at most the ring's capacity; empty when timing is off)."""
        if self._lat_arr is None:
            return np.zeros((0, 2), dtype=np.int64)
        cap = self._lat_mask + 1
        n = min(self.timed_frames, cap)
        start = (self.timed_frames - n) & self._lat_mask
        idx = (np.arange(n) + start) & self._lat_mask
        return self._lat_arr[idx]

    cdef _deliver(self, const unsigned char* ptr, Py_ssize_t size, bint text, int64_t now):
        cdef int64_t* row
        cdef int64_t t0 = self.engine.ticker_history.count
        if self.on_raw is not None:
            # the payload as received, before the engine sees it (a capture records rejected
            # frames too); a bytes copy, so nothing the hook keeps can outlive picows' buffer
            try:
                self.on_raw(PyBytes_FromStringAndSize(<const char*>ptr, size), now,
                            1 if text else 2)
            except Exception as exc:
                _report(self, "on_raw", exc)
        try:
            msg = self.engine.feed_ptr(ptr, size, now, text)
        except FastfeedError as exc:
            self.bad_frames += 1
            try:
                self.on_frame_error(exc)
            except Exception as exc2:
                _report(self, "on_frame_error", exc2)
            return
        if self._lat != NULL:
            row = self._lat + 2 * (self.timed_frames & self._lat_mask)
            row[0] = now
            row[1] = _now_ns()
            self.timed_frames += 1
        if msg is not None:
            try:
                self.on_message(msg, now)
            except Exception as exc:
                _report(self, "on_message", exc)
        elif (self.engine.ticker_history.count != t0 and self.on_tickers is not None
              and (self.ticker_callback
                   or (self.ticker_streams is not None and len(self.ticker_streams) > 0))):
            try:
                self.on_tickers(t0, now)
            except Exception as exc:
                _report(self, "on_tickers", exc)
        if self.on_frame is not None:
            try:
                self.on_frame(msg, now)
            except Exception as exc:
                _report(self, "on_frame", exc)

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        cdef int64_t now = _now_ns()
        cdef WSMsgType mt = frame.msg_type
        cdef bytearray buf
        self.frames += 1
        self.last_recv_ns = now
        if mt == WSMsgType.BINARY or mt == WSMsgType.TEXT:
            if frame.fin:
                self._deliver(<const uchar*>frame.payload_ptr, frame.payload_size,
                              mt == WSMsgType.TEXT, now)
            elif <size_t>frame.payload_size > self.engine.max_frame:
                self._frag = None
                self.bad_frames += 1
                try:
                    self.on_frame_error(FrameTooLarge("fragmented message exceeds the cap", "too_large"))
                except Exception as exc:
                    _report(self, "on_frame_error", exc)
            else:
                self._frag = bytearray(frame.get_payload_as_memoryview())
                self._frag_text = mt == WSMsgType.TEXT
        elif mt == WSMsgType.CONTINUATION:
            if self._frag is None:
                self.bad_frames += 1
                return
            if <size_t>(len(self._frag) + frame.payload_size) > self.engine.max_frame:
                self._frag = None  # checked before appending: never more than max_frame held
                self.bad_frames += 1
                try:
                    self.on_frame_error(FrameTooLarge("fragmented message exceeds the cap", "too_large"))
                except Exception as exc:
                    _report(self, "on_frame_error", exc)
                return
            self._frag += frame.get_payload_as_memoryview()
            if frame.fin:
                buf = self._frag
                self._frag = None
                self._deliver(<const uchar*><char*>buf, len(buf), self._frag_text, now)
        elif mt == WSMsgType.CLOSE:
            code = None
            try:
                code = frame.get_close_code()
                self.close_code = int(code)
            except Exception:  # a close code outside the enum: keep the raw number if any
                code = None
                self.close_code = None
            try:
                # network text: kept raw here, escaped (fastfeed.protocol.safe_text) wherever shown
                self.close_reason = (frame.get_close_message().decode("utf-8", "replace")
                                     if frame.payload_size > 2 else "")
            except Exception:
                self.close_reason = ""
            try:
                if code is not None:
                    transport.send_close(code)
                else:
                    transport.send_close(WSCloseCode.PROTOCOL_ERROR)
            except Exception as exc:
                _report(self, "send_close", exc)
            transport.disconnect()

    cpdef on_ws_disconnected(self, WSTransport transport):
        if self.on_disconnected is not None:
            try:
                self.on_disconnected(self.close_code, self.close_reason)
            except Exception as exc:
                _report(self, "on_disconnected", exc)
