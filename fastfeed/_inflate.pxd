from libc.stdint cimport int64_t

from fastfeed._deflate cimport libdeflate_decompressor
from fastfeed._ffinflate cimport ff_tables
from fastfeed._isal cimport inflate_state
from fastfeed._zlib cimport z_stream

cdef extern from "Python.h":
    # The calling thread's state; its ``prev`` / ``next`` link the interpreter's list of
    # thread states (cpython/pystate.h, every supported CPython).
    ctypedef struct ff_tstate "PyThreadState":
        ff_tstate* prev
        ff_tstate* next
    ff_tstate* ff_tstate_get "PyThreadState_Get"() noexcept


cdef inline bint other_threads() noexcept:
    """Does this interpreter have a Python thread besides the calling one (which holds the
    GIL)? Releasing the GIL around a frame's inflate/parse (tens of ns: a mutex and a
    condition variable each way) only pays when another thread could run meanwhile; a
    thread started later finds the GIL free again when the frame is done. Its own thread
    state has a neighbour in the interpreter's thread list iff another exists: one call
    and two loads per frame. A wrong "no" (a thread state created concurrently, without
    the GIL, by a foreign thread) only keeps the GIL for this frame: never a wrong result."""
    cdef ff_tstate* ts = ff_tstate_get()
    return ts.prev != NULL or ts.next != NULL


# Result codes of Inflater.run (0 = ok, negative = rejection).
cdef enum:
    INF_OK = 0
    INF_EMPTY = -1
    INF_ZLIB_ERROR = -2
    INF_TRUNCATED = -3
    INF_TRAILING = -4
    INF_TOO_LARGE = -5
    INF_NOMEM = -6

# Backends (Inflater.kind).
cdef enum:
    B_ZLIB = 0
    B_LIBDEFLATE = 1
    B_ISAL = 2
    B_BUILTIN = 3


cdef class Inflater:
    cdef z_stream strm
    cdef bint initialised
    cdef int kind                  # B_ZLIB, B_LIBDEFLATE or B_ISAL
    cdef libdeflate_decompressor* ld   # libdeflate's decompressor (B_LIBDEFLATE), else NULL
    cdef inflate_state* isal       # ISA-L's state (B_ISAL), else NULL
    cdef ff_tables* fft            # the builtin decoder's tables (B_BUILTIN), else NULL
    cdef unsigned char* out        # reused output buffer (grows up to max_size + 1)
    cdef size_t out_cap
    cdef size_t out_len            # bytes produced by the last successful run
    cdef bint busy                 # a Python-level call is inflating (maybe without the GIL)
    cdef readonly size_t max_size
    cdef readonly int64_t frames
    cdef readonly int64_t rejected

    cdef int run(self, const unsigned char* data, size_t size) noexcept nogil
    cdef int _run_zlib(self, const unsigned char* data, size_t size) noexcept nogil
    cdef int _run_libdeflate(self, const unsigned char* data, size_t size) noexcept nogil
    cdef int _run_isal(self, const unsigned char* data, size_t size) noexcept nogil
    cdef int _run_builtin(self, const unsigned char* data, size_t size) noexcept nogil
    cdef int _grow(self, size_t want) noexcept nogil
    cdef int _run_obj(self, object data) except? -100
    cdef int _run_buf(self, object data) except? -100
