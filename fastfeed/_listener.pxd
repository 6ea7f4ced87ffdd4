from libc.stdint cimport int64_t
from picows.picows cimport WSFrame, WSListener, WSTransport

from fastfeed._engine cimport Engine


cdef class FeedListener(WSListener):
    cdef Engine engine
    cdef object on_message          # callable(message: dict, recv_ns: int)
    cdef object on_frame_error      # callable(exc: FastfeedError)
    cdef object on_disconnected     # callable(close_code: int | None, reason: str)
    cdef public object on_raw       # callable(payload: bytes, recv_ns: int, msg_type: int) or None
    cdef public object on_frame     # callable(message | None, recv_ns: int) or None: after apply
    cdef bytearray _frag            # reassembly of fragmented messages (rare)
    cdef bint _frag_text
    cdef readonly int64_t frames
    cdef readonly int64_t bad_frames
    cdef readonly int64_t callback_errors  # callbacks that raised (caught: never out of a picows callback)
    cdef readonly int64_t last_recv_ns
    cdef object _lat_arr            # optional timing ring: numpy int64 (capacity, 2)
    cdef int64_t* _lat
    cdef int64_t _lat_mask
    cdef readonly int64_t timed_frames
    cdef public object on_tickers   # callable(first_seq: int, recv_ns: int) or None
    cdef public list ticker_streams # the feed's ticker streams (the same list object)
    cdef public bint ticker_callback  # the feed has an on_ticker callback
    cdef readonly object close_code
    cdef readonly str close_reason

    cdef _deliver(self, const unsigned char* ptr, Py_ssize_t size, bint text, int64_t now)
