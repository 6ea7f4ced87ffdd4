# cython: freethreading_compatible = False
"""Inflater: one decompressor kept alive for every frame, inflating into one reused,
size-capped output buffer.

Every DigiFinex server frame is an independent zlib stream (RFC 1950). Up to four
backends give identical results (output, and the reason of every rejection): fastfeed's
own small-frame decoder (``builtin``, fastfeed/_ffinflate.h: decode tables sized to the
codes each frame sends, the fixed-Huffman tables built once; always built); zlib's
``z_stream`` (reset per frame, never set up again); when the build found them, ISA-L's
igzip inflater (streaming, reset per frame) and libdeflate's whole-buffer decompressor,
both of which decode the per-frame Huffman tables faster than zlib. The builtin decoder,
ISA-L and libdeflate hand any frame they do not accept cleanly to zlib, which names the
reason, so the rejections are zlib's by construction. ``FASTFEED_INFLATE`` at build time chooses what is
compiled in; ``Inflater(backend=...)`` chooses at run time; the default is the fastest
backend built, in the order of ``PREFERENCE`` (measured per frame on the benchmark corpus:
ISA-L 2.30 ~0.8x zlib's time, libdeflate 1.14 ~0.9x; ``benchmarks/bench_engine.py``
prints the per-backend rows).

Threads: the Python-level ``inflate*`` methods release the GIL while inflating a ``bytes``
payload (or a memoryview of one; other buffers are inflated with the GIL held, since
another thread could write into them). One Inflater is used by one thread at a time: a
second thread calling in while it inflates gets :class:`~fastfeed.errors.EngineBusy`.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memset

from fastfeed._deflate cimport (
    FASTFEED_HAVE_LIBDEFLATE,
    LIBDEFLATE_INSUFFICIENT_SPACE,
    LIBDEFLATE_SUCCESS,
    libdeflate_alloc_decompressor,
    libdeflate_free_decompressor,
    libdeflate_zlib_decompress_ex,
    libdeflate_result,
)

from fastfeed._ffinflate cimport FF_NOSPACE, FF_OK, ff_inflate, ff_tables, ff_tables_init
from fastfeed._isal cimport (
    FASTFEED_HAVE_ISAL,
    ISAL_BLOCK_FINISH,
    ISAL_DECOMP_OK,
    ISAL_ZLIB,
    inflate_state,
    isal_inflate,
    isal_inflate_init,
    isal_inflate_reset,
)
from fastfeed._zlib cimport (
    MAX_WBITS,
    Z_BUF_ERROR,
    Z_MEM_ERROR,
    Z_NO_FLUSH,
    Z_OK,
    Z_STREAM_END,
    inflate,
    inflateEnd,
    inflateInit2,
    inflateReset,
    zlibVersion,
)

cdef extern from "_fastnum.h":
    void ff_prefetch_span(const unsigned char* p, size_t n) noexcept nogil

from fastfeed.errors import EngineBusy, FrameTooLarge, InflateError

__all__ = ["BACKENDS", "PREFERENCE", "Inflater", "ZLIB_RUNTIME_VERSION", "raise_inflate_error"]

ZLIB_RUNTIME_VERSION = zlibVersion().decode("ascii")
#: Every backend fastfeed knows, fastest first (per frame on the benchmark corpus).
PREFERENCE = ("builtin", "isal", "libdeflate", "zlib")
_BUILT = {"builtin": True, "isal": FASTFEED_HAVE_ISAL, "libdeflate": FASTFEED_HAVE_LIBDEFLATE,
          "zlib": True}
#: The inflate backends compiled into this build, the default (fastest) first.
BACKENDS = tuple(b for b in PREFERENCE if _BUILT[b])
cdef dict _KIND = {"zlib": B_ZLIB, "libdeflate": B_LIBDEFLATE, "isal": B_ISAL,
                   "builtin": B_BUILTIN}
cdef tuple _NAME = ("zlib", "libdeflate", "isal", "builtin")

cdef size_t INITIAL_OUT = 64 * 1024
cdef size_t UINT_MAX_SIZE = 0xFFFFFFFFUL

_REASONS = {
    INF_EMPTY: ("empty", "empty frame"),
    INF_ZLIB_ERROR: ("zlib_error", "corrupt zlib stream (bad header, data or Adler-32)"),
    INF_TRUNCATED: ("zlib_truncated", "truncated zlib stream"),
    INF_TRAILING: ("zlib_trailing", "trailing bytes after the end of the zlib stream"),
    INF_TOO_LARGE: ("too_large", "frame inflates past the size cap"),
    INF_NOMEM: ("zlib_error", "out of memory while inflating"),
}


def other_threads_py():
    """``other_threads()`` as the hot paths see it: whether this interpreter has a Python
    thread besides the calling one (tests)."""
    return other_threads()


def reason_of(int code):
    """The rejection reason string of an Inflater result code."""
    return _REASONS[code][0]


def raise_inflate_error(int code, size_t cap=0):
    """Raise the typed error for a negative Inflater result code."""
    reason, text = _REASONS[code]
    if code == INF_TOO_LARGE:
        raise FrameTooLarge(f"{text} ({cap} bytes)", reason)
    if code == INF_NOMEM:
        raise MemoryError(text)
    raise InflateError(text, reason)


cdef inline bint _immutable(object data):
    """Can the memory of ``data`` neither change nor go away while we hold a buffer view
    and the GIL is released? (``bytes``, or a memoryview of ``bytes``.)"""
    return type(data) is bytes or (type(data) is memoryview and type(data.obj) is bytes)


cdef class Inflater:
    """Inflate zlib frames into one reused buffer capped at ``max_size`` bytes.

    ``inflate(data)`` returns a ``bytes`` copy of the output; ``inflate_len(data)`` only
    inflates into the internal buffer and returns the length (the benchmark floor).
    Errors: :class:`~fastfeed.errors.InflateError` (``empty``, ``zlib_error``,
    ``zlib_truncated``, ``zlib_trailing``) and :class:`~fastfeed.errors.FrameTooLarge`;
    :class:`~fastfeed.errors.EngineBusy` if another thread is inflating with this object.
    """

    def __cinit__(self, size_t max_size=8 * 1024 * 1024, str backend="auto"):
        if max_size < 1 or max_size >= UINT_MAX_SIZE:
            raise ValueError("max_size must be between 1 and 4 GiB")
        if backend == "auto":
            backend = BACKENDS[0]
        if backend not in BACKENDS:
            raise ValueError(f"inflate backend {backend!r} is not in this build {BACKENDS}")
        self.max_size = max_size
        self.kind = _KIND[backend]
        if self.kind == B_LIBDEFLATE:
            self.ld = libdeflate_alloc_decompressor()
            if self.ld == NULL:
                raise MemoryError("libdeflate_alloc_decompressor failed")
        elif self.kind == B_ISAL:
            self.isal = <inflate_state*>malloc(sizeof(inflate_state))
            if self.isal == NULL:
                raise MemoryError("out of memory for ISA-L's inflate state")
            isal_inflate_init(self.isal)
        elif self.kind == B_BUILTIN:
            self.fft = <ff_tables*>malloc(sizeof(ff_tables))
            if self.fft == NULL:
                raise MemoryError("out of memory for the builtin inflater's tables")
            ff_tables_init(self.fft)
        memset(&self.strm, 0, sizeof(self.strm))
        if inflateInit2(&self.strm, MAX_WBITS) != Z_OK:
            raise MemoryError("inflateInit2 failed")
        self.initialised = True
        self.out_cap = INITIAL_OUT if INITIAL_OUT < max_size + 1 else max_size + 1
        self.out = <unsigned char*>malloc(self.out_cap)
        if self.out == NULL:
            raise MemoryError()
        self.out_len = 0

    def __dealloc__(self):
        if self.initialised:
            inflateEnd(&self.strm)
        if self.ld != NULL:
            libdeflate_free_decompressor(self.ld)
        free(self.isal)
        free(self.fft)
        free(self.out)

    @property
    def backend(self):
        """``"builtin"``, ``"isal"``, ``"libdeflate"`` or ``"zlib"``."""
        return _NAME[self.kind]

    cdef int _grow(self, size_t want) noexcept nogil:
        cdef unsigned char* p = <unsigned char*>realloc(self.out, want)
        if p == NULL:
            return -1
        self.out = p
        self.out_cap = want
        return 0

    cdef int run(self, const unsigned char* data, size_t size) noexcept nogil:
        """Inflate one complete zlib stream. 0 on success (output in out[:out_len])."""
        cdef int rc
        self.frames += 1
        self.out_len = 0
        ff_prefetch_span(data, size)
        if size == 0:
            rc = INF_EMPTY
        elif self.kind == B_BUILTIN:
            rc = self._run_builtin(data, size)
        elif self.kind == B_ISAL:
            rc = self._run_isal(data, size)
        elif self.kind == B_LIBDEFLATE:
            rc = self._run_libdeflate(data, size)
        else:
            rc = self._run_zlib(data, size)
        if rc < 0:
            self.rejected += 1
        return rc

    cdef int _run_builtin(self, const unsigned char* data, size_t size) noexcept nogil:
        """fastfeed's own decoder (_ffinflate.h) decides the clean case: one complete zlib
        stream, within the cap. Output that does not fit grows the buffer (up to
        ``max_size + 1``) and the frame is decoded again; anything else it does not accept
        (corrupt, truncated, trailing, stored blocks, codes zlib may accept and it does
        not, too large) is handed to zlib, which names the reason."""
        cdef size_t limit = self.max_size + 1
        cdef size_t out_n = 0
        cdef size_t want
        cdef int r
        while True:
            r = ff_inflate(self.fft, data, size, self.out, self.out_cap, &out_n)
            if r == FF_OK and out_n <= self.max_size:
                self.out_len = out_n
                return INF_OK
            if r != FF_NOSPACE or self.out_cap >= limit:
                return self._run_zlib(data, size)
            want = self.out_cap * 2
            if want > limit:
                want = limit
            if self._grow(want) != 0:
                return INF_NOMEM

    cdef int _run_libdeflate(self, const unsigned char* data, size_t size) noexcept nogil:
        """libdeflate decodes the whole frame in one call; the output buffer grows (and the
        frame is decoded again) until it fits or reaches ``max_size + 1``. Corrupt input is
        handed to zlib, so that both backends report the same reason."""
        cdef size_t limit = self.max_size + 1
        cdef size_t in_used = 0
        cdef size_t out_n = 0
        cdef size_t want
        cdef libdeflate_result r
        while True:
            r = libdeflate_zlib_decompress_ex(self.ld, data, size, self.out, self.out_cap,
                                              &in_used, &out_n)
            if r == LIBDEFLATE_SUCCESS:
                if out_n > self.max_size or in_used != size:
                    # too large / trailing bytes: zlib tells which, in the order the stream
                    # reveals it (libdeflate may have decoded past a symbol zlib refuses)
                    return self._run_zlib(data, size)
                self.out_len = out_n
                return INF_OK
            if r != LIBDEFLATE_INSUFFICIENT_SPACE or self.out_cap >= limit:
                # corrupt, or too large (or corrupt after the cap): zlib tells which, in the
                # order the stream reveals it, as the zlib backend would
                return self._run_zlib(data, size)
            want = self.out_cap * 2
            if want > limit:
                want = limit
            if self._grow(want) != 0:
                return INF_NOMEM

    cdef int _run_isal(self, const unsigned char* data, size_t size) noexcept nogil:
        """ISA-L inflates the frame as a stream into the output buffer, which grows up to
        ``max_size + 1``. Only a clean success (the whole input used, Adler-32 checked by
        ISA-L, within the cap) is decided here; anything else (a header zlib would refuse,
        corrupt, truncated or trailing input, the size cap reached) is handed to zlib, so
        that every backend reports the same reason (ISA-L may write output beyond a bad
        symbol that zlib stops at, so even "too large" is zlib's call)."""
        cdef inflate_state* st = self.isal
        cdef size_t limit = self.max_size + 1
        cdef size_t produced = 0
        cdef size_t want
        cdef int r
        cdef unsigned int cmf
        cdef unsigned int flg
        if size < 2 or size >= UINT_MAX_SIZE:
            return self._run_zlib(data, size)
        cmf = data[0]
        flg = data[1]
        # zlib's header rules (windowBits 15): deflate, window <= 32K, check bits, no
        # preset dictionary. ISA-L is laxer about the window size: leave those to zlib.
        if (cmf & 0x0F) != 8 or (cmf >> 4) > 7 or ((cmf << 8) | flg) % 31 != 0 or flg & 0x20:
            return self._run_zlib(data, size)
        isal_inflate_reset(st)
        st.crc_flag = ISAL_ZLIB
        st.hist_bits = 0                    # the default: 15 (32 KiB)
        st.next_in = <unsigned char*>data
        st.avail_in = <unsigned int>size
        while True:
            st.next_out = self.out + produced
            st.avail_out = <unsigned int>(self.out_cap - produced)
            r = isal_inflate(st)
            produced = self.out_cap - st.avail_out
            if r != ISAL_DECOMP_OK:
                return self._run_zlib(data, size)
            if st.block_state == ISAL_BLOCK_FINISH:
                if produced > self.max_size or st.avail_in != 0 or st.read_in_length >= 8:
                    return self._run_zlib(data, size)   # too large, trailing: zlib says
                self.out_len = produced
                return INF_OK
            if st.avail_out == 0:
                if self.out_cap >= limit:
                    # at the cap: ISA-L may have written past a corruption zlib stops at
                    # (it checks some symbols late), so zlib decides too_large vs corrupt
                    return self._run_zlib(data, size)
                want = self.out_cap * 2
                if want > limit:
                    want = limit
                if self._grow(want) != 0:
                    return INF_NOMEM
                continue
            return self._run_zlib(data, size)           # input used up: truncated

    cdef int _run_zlib(self, const unsigned char* data, size_t size) noexcept nogil:
        cdef int ret
        cdef size_t produced = 0
        cdef size_t limit = self.max_size + 1
        cdef size_t want
        self.out_len = 0
        if size >= UINT_MAX_SIZE:
            return INF_TOO_LARGE
        inflateReset(&self.strm)
        self.strm.next_in = data
        self.strm.avail_in = <unsigned int>size
        while True:
            if produced == self.out_cap:
                if self.out_cap >= limit:
                    return INF_TOO_LARGE
                want = self.out_cap * 2
                if want > limit:
                    want = limit
                if self._grow(want) != 0:
                    return INF_NOMEM
            self.strm.next_out = self.out + produced
            self.strm.avail_out = <unsigned int>(self.out_cap - produced)
            ret = inflate(&self.strm, Z_NO_FLUSH)
            produced = self.out_cap - self.strm.avail_out
            if ret == Z_STREAM_END:
                if produced > self.max_size:
                    return INF_TOO_LARGE
                if self.strm.avail_in != 0:
                    return INF_TRAILING
                self.out_len = produced
                return INF_OK
            if ret == Z_OK:
                if self.strm.avail_out != 0 and self.strm.avail_in == 0:
                    return INF_TRUNCATED
                continue
            if ret == Z_BUF_ERROR:
                if self.strm.avail_in == 0:
                    return INF_TRUNCATED
                if self.strm.avail_out == 0:
                    continue
                return INF_ZLIB_ERROR
            if ret == Z_MEM_ERROR:
                return INF_NOMEM
            return INF_ZLIB_ERROR

    cdef int _run_obj(self, object data) except? -100:
        """Inflate a buffer object, refusing a second thread (``EngineBusy``)."""
        if self.busy:
            raise EngineBusy("this Inflater is in use by another thread", "busy")
        self.busy = True
        try:
            return self._run_buf(data)
        finally:
            self.busy = False

    cdef int _run_buf(self, object data) except? -100:
        """Inflate a buffer object: a view is held for the whole run (so it can neither be
        freed nor resized); the GIL is released when its memory is immutable and another
        Python thread exists (``other_threads``)."""
        cdef Py_buffer view
        cdef int rc
        cdef bint release = _immutable(data) and other_threads()
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            if release:
                with nogil:
                    rc = self.run(<const unsigned char*>view.buf, <size_t>view.len)
            else:
                rc = self.run(<const unsigned char*>view.buf, <size_t>view.len)
        finally:
            PyBuffer_Release(&view)
        return rc

    def inflate(self, data):
        """Inflate one zlib frame and return the output as ``bytes`` (a copy)."""
        cdef int rc = self._run_obj(data)
        if rc < 0:
            raise_inflate_error(rc, self.max_size)
        return PyBytes_FromStringAndSize(<const char*>self.out, self.out_len)

    def inflate_len(self, data):
        """Inflate one zlib frame into the internal buffer; return the output length."""
        cdef int rc = self._run_obj(data)
        if rc < 0:
            raise_inflate_error(rc, self.max_size)
        return self.out_len

    def inflate_many(self, payloads):
        """Inflate every frame of an iterable of ``bytes`` into the reused buffer (the
        benchmark floor, with no Python call per frame; ``bytes`` are inflated with the GIL
        held). Returns the total output size. The Inflater is busy until this returns."""
        cdef size_t total = 0
        cdef int rc
        if self.busy:
            raise EngineBusy("this Inflater is in use by another thread", "busy")
        self.busy = True
        try:
            for data in payloads:
                if type(data) is bytes:
                    rc = self.run(<const unsigned char*>PyBytes_AS_STRING(data),
                                  <size_t>PyBytes_GET_SIZE(data))
                else:
                    rc = self._run_buf(data)
                if rc < 0:
                    raise_inflate_error(rc, self.max_size)
                total += self.out_len
        finally:
            self.busy = False
        return total

    @property
    def buffer_size(self):
        """Current size of the reused output buffer (grows up to ``max_size + 1``)."""
        return self.out_cap
