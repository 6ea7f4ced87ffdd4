"""Named POSIX shared memory for books, the trade ring, the event log and the ticker
history: the writer side (used by ``Engine(shm_name=...)``) and the read-only reader side
(``fastfeed.attach``).

Segment ``/fastfeed.<name>`` (on Linux the file ``/dev/shm/fastfeed.<name>``), native byte
order, every region 64-byte aligned::

    header      512 B   ff_shm_header (_atomic.pxd): magic, layout (2), state, writer pid
                        and start time, sizes and offsets, n_symbols and the published
                        counts trade_count / event_count / ticker_count (atomic)
    symbols     max_symbols x 64 B: length u32, reserved u32, name (ASCII, <= 32 bytes)
    books       max_symbols x stride: ff_book_hdr (64 B: seq, n_bids, n_asks, version,
                recv_ns, checksum, flags (bit 0: live), stale_since)
                + bids (depth x [price, amount] f8) + asks (same)
    trades      2 x ring_capacity TRADE_DTYPE records (the mirror of fastfeed.TradeRing)
    events      2 x event_capacity EVENT_DTYPE records (64 B; Engine.events, the mirror
                of EventRing); absent (event_capacity 0, event_off 0) without event_log
    tickers     2 x ticker_capacity TICKER_DTYPE records (152 B; Engine.ticker_history,
                the mirror of TickerRing); absent (0, 0) only in a segment not made by an
                Engine

Book slot ``i`` belongs to symbol index ``i`` (``Engine.symbols[i]``); an unused slot is an
empty book (version 0). Consistency:

* books: a per-book seqlock (``seq`` odd while the writer applies a message; release /
  acquire ordering, see ``_atomic.pxd``). Readers copy, then re-check ``seq`` and retry;
  the writer never waits.
* trades, events, tickers (record rings): the writer fills a record (both mirror copies),
  then publishes the ring's count (``trade_count``, ``event_count``, ``ticker_count``)
  with a store-release. A reader copies a window, re-reads the count and accepts the copy
  only if no record in it can have been overwritten meanwhile (at most ``capacity - 1``
  records can be read consistently while the writer runs).
* symbols: the name is written first, then ``n_symbols`` is published (store-release).

Trust: a reader validates the header (read with ``pread``) before it maps anything: the
geometry within bounds, every offset exactly the layout above, the size equal to the file's
(``_check_header``); it keeps that layout and never re-reads it, and checks every count
(``n_symbols``, symbol names, row counts, the ring counts) where it reads it
(``ShmCorrupt``). The writer keeps its own layout too. See docs/shm-and-exports.md for the
one case left (a truncation racing with a read).

Lifecycle: the writer creates the segment with ``O_EXCL``, holds an exclusive ``flock`` on
it while alive and sets ``state = READY``; ``close()`` sets ``CLOSED`` and unlinks the name.
A segment left behind by a crashed writer (its lock is free: the kernel drops it with the
process) is detected by the next writer, marked ``STALE`` (so readers still attached to it
can tell) and recreated. Readers check the writer's pid and start time.
"""

cimport cython
from cpython.buffer cimport PyBUF_WRITABLE, PyBuffer_FillInfo
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.errno cimport EAGAIN, EEXIST, EINTR, EINVAL, ENOENT, ENOSPC, EOPNOTSUPP, errno
from libc.math cimport NAN
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset, strerror
from posix.fcntl cimport O_CREAT, O_EXCL, O_RDONLY, O_RDWR
from posix.mman cimport (
    MAP_FAILED,
    MAP_SHARED,
    PROT_READ,
    PROT_WRITE,
    mmap,
    munmap,
    shm_open,
    shm_unlink,
)
from posix.stat cimport fstat, struct_stat
from posix.time cimport nanosleep, timespec
from posix.unistd cimport close, ftruncate, getpid, pread

from fastfeed._atomic cimport (
    FF_BOOK_F_LIVE,
    FF_SHM_CLOSED,
    FF_SHM_F_CHECKSUM,
    FF_SHM_INIT,
    FF_SHM_LAYOUT,
    FF_SHM_MAGIC,
    FF_SHM_READY,
    FF_SHM_STALE,
    ff_book_checksum,
    ff_book_hdr,
    ff_cpu_relax,
    ff_fence_acquire,
    ff_load_acquire_i64,
    ff_load_acquire_u32,
    ff_load_acquire_u64,
    ff_load_relaxed_u64,
    ff_shm_header,
    ff_shm_symbol,
    ff_store_release_i64,
    ff_store_release_u32,
)
from fastfeed._ring cimport TradeRecord

import atexit
import collections
import os
import re
import time
import weakref

import numpy as np

cimport numpy as cnp

from fastfeed._book import book_frame
from fastfeed._ring import trades_frame
from fastfeed.errors import (
    EventsOverwritten,
    InternalError,
    ShmClosed,
    ShmCorrupt,
    ShmError,
    ShmFull,
    ShmInUse,
    ShmLayoutError,
    ShmNotFound,
    ShmOSError,
    ShmStale,
    ShmTornRead,
    TickersOverwritten,
    TradesOverwritten,
    UnknownSymbol,
)
from fastfeed.events import EVENT_DTYPE, events_to_pandas
from fastfeed.layout import TICKER_DTYPE, TRADE_DTYPE, ticker_from_row

cnp.import_array()

cdef extern from "<sys/file.h>" nogil:
    int flock(int fd, int operation)
    enum:
        LOCK_SH
        LOCK_EX
        LOCK_NB
        LOCK_UN

cdef extern from "<sched.h>" nogil:
    int sched_yield()

cdef extern from *:
    """
    #include <fcntl.h>
    /* Reserve the segment's memory now (ENOSPC here instead of SIGBUS on first touch).
       posix_fallocate is Linux/BSD; elsewhere report "not supported". */
    static int ff_reserve(int fd, off_t len) {
    #if defined(__linux__) || defined(__FreeBSD__)
        return posix_fallocate(fd, 0, len);
    #else
        (void)fd; (void)len;
        return EOPNOTSUPP;
    #endif
    }
    """
    int ff_reserve(int fd, long len) nogil

cdef extern from "<errno.h>":
    enum:
        EWOULDBLOCK

__all__ = [
    "BookSnapshot",
    "Mapping",
    "ShmBook",
    "ShmEvents",
    "ShmReader",
    "ShmRing",
    "ShmTickers",
    "ShmTrades",
    "ShmWriter",
    "STATES",
    "segment_path",
    "shm_filename",
    "unlink_segment",
    "validate_name",
]

#: Header ``state`` values by name.
STATES = {FF_SHM_INIT: "init", FF_SHM_READY: "ready", FF_SHM_CLOSED: "closed",
          FF_SHM_STALE: "stale"}

#: One consistent copy of a shared book (``ShmBook.read()``).
BookSnapshot = collections.namedtuple(
    "BookSnapshot",
    ["symbol", "bids", "asks", "version", "recv_ns", "seq", "checksum", "live", "stale_since"],
)
BookSnapshot.__doc__ = (
    "A consistent copy of a shared book: bids and asks ((n, 2) float64 arrays, best first, "
    "owned by the caller), version, recv_ns, seq (the seqlock value it was read at) and "
    "checksum (what the writer stored with this state; 0 when the writer does not "
    "compute checksums), live (a snapshot was applied since the book was created, reset or "
    "marked stale: see fastfeed.Book.live) and stale_since (ns it last went stale, 0 while "
    "live)."
)

cdef enum:
    HEADER_SIZE = 512
    SYMBOL_SLOT = 64
    BOOK_HDR = 64
    MAX_NAME = 200
    MAX_SYMBOL_NAME = 32          # the engine's symbol limit (bytes); a slot has room for 56
    TRADE_SIZE = 56               # sizeof(TradeRecord) == TRADE_DTYPE.itemsize
    EVENT_SIZE = 64               # EVENT_DTYPE.itemsize (EventRecord, _events.pxd)
    TICKER_SIZE = 152             # TICKER_DTYPE.itemsize (TickerRecord, _ticker.pxd)

_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,200}\Z")
cdef Py_ssize_t PAGE = 4096

#: Bounds on a segment's geometry: the writer refuses more (``ValueError``), a reader
#: treats more as a damaged segment (:class:`~fastfeed.errors.ShmLayoutError`).
SHM_MAX_DEPTH = 1 << 20
SHM_MAX_SYMBOLS = 1 << 20
SHM_MAX_RING = 1 << 40
cdef int64_t PID_MAX = 0x7FFFFFFF    # pid_t is a 32-bit int
cdef uint32_t FLAGS_KNOWN = FF_SHM_F_CHECKSUM


def _layout(depth, max_symbols, ring_capacity, event_capacity=0, ticker_capacity=0):
    """``(symtab_off, books_off, book_stride, ring_off, event_off, ticker_off, total_size)``
    of a segment with this geometry (``event_off`` / ``ticker_off`` 0 when that capacity is
    0: no region). Python integers, so no value can overflow; the writer creates exactly
    this layout and a reader accepts only a header that states exactly it."""
    symtab_off = HEADER_SIZE
    books_off = -(-(symtab_off + max_symbols * SYMBOL_SLOT) // 64) * 64
    stride = -(-(BOOK_HDR + 2 * depth * 2 * 8) // 64) * 64
    ring_off = -(-(books_off + max_symbols * stride) // 64) * 64
    end = ring_off + 2 * ring_capacity * TRADE_SIZE
    event_off = 0
    if event_capacity:
        event_off = -(-end // 64) * 64
        end = event_off + 2 * event_capacity * EVENT_SIZE
    ticker_off = 0
    if ticker_capacity:
        ticker_off = -(-end // 64) * 64
        end = ticker_off + 2 * ticker_capacity * TICKER_SIZE
    total = -(-end // PAGE) * PAGE
    return symtab_off, books_off, stride, ring_off, event_off, ticker_off, total


cdef int _check_geometry(str what, object depth, object max_symbols,
                         object ring_capacity, object event_capacity=0,
                         object ticker_capacity=0) except -1:
    """Raise ``ValueError`` naming the first field out of bounds."""
    if not 1 <= depth <= SHM_MAX_DEPTH:
        raise ValueError(f"{what}depth {depth} is not between 1 and {SHM_MAX_DEPTH}")
    if not 1 <= max_symbols <= SHM_MAX_SYMBOLS:
        raise ValueError(f"{what}max_symbols {max_symbols} is not between 1 and "
                         f"{SHM_MAX_SYMBOLS}")
    if not 1 <= ring_capacity <= SHM_MAX_RING or ring_capacity & (ring_capacity - 1):
        raise ValueError(f"{what}ring_capacity {ring_capacity} is not a power of two "
                         f"between 1 and {SHM_MAX_RING}")
    for field, cap in (("event_capacity", event_capacity), ("ticker_capacity", ticker_capacity)):
        if cap != 0 and (not 1 <= cap <= SHM_MAX_RING or cap & (cap - 1)):
            raise ValueError(f"{what}{field} {cap} is neither 0 nor a power of two between "
                             f"1 and {SHM_MAX_RING}")
    return 0


def validate_name(str name):
    """Check a segment name (1..200 of ``A-Z a-z 0-9 _ . -``, not starting with ``.``)."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or name.startswith("."):
        raise ValueError(
            f"shared-memory name must be 1..{MAX_NAME} characters of A-Z a-z 0-9 _ . - "
            f"(not starting with '.'): {name!r}"
        )
    return name


def shm_filename(str name):
    """The POSIX shared-memory object name of segment ``name``: ``/fastfeed.<name>``."""
    return "/fastfeed." + validate_name(name)


def segment_path(str name):
    """Where the segment lives in the file system on Linux (``/dev/shm/fastfeed.<name>``)."""
    return "/dev/shm" + shm_filename(name)


cdef object _oserror(str what, int err):
    return ShmOSError(err, f"{what}: {strerror(err).decode('utf-8', 'replace')}")


def unlink_segment(str name):
    """Remove segment ``name`` by name (its memory is freed when the last mapping goes).
    True if it existed. Administrative: a live writer keeps writing into its (now
    nameless) segment, so only use it for segments nobody writes."""
    cdef bytes cname = shm_filename(name).encode("ascii")
    if shm_unlink(cname) == 0:
        return True
    if errno == ENOENT:
        return False
    raise _oserror(f"shm_unlink({name!r})", errno)


cdef int64_t _now_ns():
    return time.time_ns()


def _proc_start(pid):
    """Start time of process ``pid`` in clock ticks since boot (Linux), else 0."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            data = f.read()
        return int(data[data.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


def _process_alive(pid, start):
    """Whether process ``pid`` (started at ``start`` ticks, 0 = unknown) still runs. A pid
    no process can have (<= 0, beyond ``pid_t``: a damaged header) is not alive."""
    if pid <= 0 or pid > PID_MAX:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OSError:
        return False
    if start:
        now = _proc_start(pid)
        if now and now != start:
            return False          # the pid was reused by another process
    return True


# --------------------------------------------------------------------------------------
# Mapping: one mmap of a segment, exported through the buffer protocol.
# --------------------------------------------------------------------------------------

@cython.final
cdef class Mapping:
    """A ``mmap`` of a shared-memory segment. numpy views of it (``np.frombuffer``) keep it
    alive; it is unmapped when the last reference (owner or view) is gone, so a view's
    memory never becomes invalid while the view exists. Read-only mappings give read-only
    views."""

    def __cinit__(self):
        self.addr = NULL
        self.size = 0
        self.fd = -1
        self.writable = False

    cdef void close_fd(self) noexcept:
        if self.fd >= 0:
            close(self.fd)        # also releases the writer's flock
            self.fd = -1

    def __getbuffer__(self, Py_buffer* buffer, int flags):
        if self.addr == NULL:
            raise ShmClosed("shared-memory mapping is closed")
        if (flags & PyBUF_WRITABLE) and not self.writable:
            raise BufferError("read-only shared-memory mapping")
        PyBuffer_FillInfo(buffer, self, self.addr, <Py_ssize_t>self.size,
                          0 if self.writable else 1, flags)

    def __releasebuffer__(self, Py_buffer* buffer):
        pass

    def __len__(self):
        return self.size

    def __dealloc__(self):
        if self.addr != NULL:
            munmap(self.addr, self.size)
            self.addr = NULL
        self.close_fd()


cdef Mapping _map(int fd, size_t size, bint writable):
    cdef void* p = mmap(NULL, size, PROT_READ | PROT_WRITE if writable else PROT_READ,
                        MAP_SHARED, fd, 0)
    if p == MAP_FAILED:
        raise _oserror("mmap of the shared-memory segment", errno)
    cdef Mapping m = Mapping.__new__(Mapping)
    m.addr = <char*>p
    m.size = size
    m.writable = writable
    return m


cdef object _array(Mapping m, size_t offset, Py_ssize_t count, object dtype):
    return np.frombuffer(m, dtype=dtype, count=count, offset=<Py_ssize_t>offset)


# --------------------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------------------

_LIVE_WRITERS = weakref.WeakSet()


@atexit.register
def _close_live_writers():
    """Unlink the segments of writers still open at interpreter exit (clean shutdown)."""
    for w in list(_LIVE_WRITERS):
        try:
            w.close()
        except Exception:  # pragma: no cover - best effort at exit
            pass


@cython.final
cdef class ShmWriter:
    """The writer side of segment ``name`` (created by ``Engine(shm_name=name)``).

    Creates ``/fastfeed.<name>`` (replacing a stale one left by a dead writer; raises
    :class:`~fastfeed.errors.ShmInUse` if a live writer has it), reserves its memory up
    front (so a full ``/dev/shm`` is an error here, never a crash later) and holds an
    exclusive ``flock`` on it. ``close()`` marks it closed and unlinks it; it also runs
    when the writer is garbage-collected and at interpreter exit (in the creating process
    only, never in a forked child).
    """

    def __cinit__(self, str name, Py_ssize_t depth, Py_ssize_t max_symbols,
                  Py_ssize_t ring_capacity, bint checksum=True, int mode=0o600,
                  Py_ssize_t event_capacity=0, Py_ssize_t ticker_capacity=0):
        cdef int fd = -1
        cdef int rc
        cdef int _attempt
        cdef int empty_seen = 0
        cdef bytes raw
        cdef ff_shm_header* h
        self.hdr = NULL
        self.closed = True
        self.owner_pid = getpid()
        _check_geometry("shared memory: ", depth, max_symbols, ring_capacity, event_capacity,
                        ticker_capacity)
        self.name = validate_name(name)
        self.cname = shm_filename(name).encode("ascii")
        self.depth = depth
        self.max_symbols = max_symbols
        self.ring_capacity = ring_capacity
        self.event_capacity = event_capacity
        self.ticker_capacity = ticker_capacity
        self.checksum = checksum
        if (sizeof(TradeRecord) != TRADE_SIZE or EVENT_DTYPE.itemsize != EVENT_SIZE
                or TICKER_DTYPE.itemsize != TICKER_SIZE):
            raise InternalError("a record dtype does not have the segment's record size")
        symtab_off, books_off, stride, ring_off, event_off, ticker_off, total = _layout(
            depth, max_symbols, ring_capacity, event_capacity, ticker_capacity)
        # The layout lives in this object, never re-read from the segment: another process
        # that can write the segment must not be able to redirect the writer's stores.
        self.symtab_off = symtab_off
        self.books_off = books_off
        self.book_stride = stride
        self.ring_off = ring_off
        self.event_off = event_off
        self.ticker_off = ticker_off

        for _attempt in range(50):
            fd = shm_open(self.cname, O_CREAT | O_EXCL | O_RDWR, mode)
            if fd >= 0:
                break
            if errno != EEXIST:
                raise _oserror(f"shm_open({self.cname.decode()!r})", errno)
            if _replace_existing(self.cname, name, empty_seen >= 3):
                empty_seen += 1
                time.sleep(0.02)
        else:
            raise ShmInUse(f"could not create shared-memory segment {name!r}: the name keeps "
                           "being taken", "in_use")
        try:
            flock(fd, LOCK_EX | LOCK_NB)   # best effort: unsupported file systems skip it
            if ftruncate(fd, total) != 0:
                raise _oserror(f"ftruncate of segment {name!r} to {total} bytes", errno)
            rc = ff_reserve(fd, total)
            if rc == ENOSPC:
                raise ShmError(
                    f"not enough shared memory for segment {name!r} ({total} bytes): "
                    "/dev/shm is full or too small", "no_space")
            if rc != 0 and rc != EINVAL and rc != EOPNOTSUPP:
                raise _oserror(f"posix_fallocate of segment {name!r}", rc)
            self.mapping = _map(fd, total, True)
            self.mapping.fd = fd
            fd = -1
        except BaseException:
            if fd >= 0:
                close(fd)
            shm_unlink(self.cname)
            raise
        self.hdr = <ff_shm_header*>self.mapping.addr
        h = self.hdr
        h.magic = FF_SHM_MAGIC
        h.layout = FF_SHM_LAYOUT
        h.header_size = HEADER_SIZE
        h.flags = FF_SHM_F_CHECKSUM if checksum else 0
        h.writer_pid = self.owner_pid
        h.writer_start = _proc_start(self.owner_pid)
        h.create_ns = _now_ns()
        h.total_size = total
        h.depth = depth
        h.max_symbols = max_symbols
        h.ring_capacity = ring_capacity
        h.symtab_off = symtab_off
        h.books_off = books_off
        h.book_stride = stride
        h.ring_off = ring_off
        h.event_capacity = event_capacity
        h.ticker_capacity = ticker_capacity
        h.event_off = event_off
        h.ticker_off = ticker_off
        raw = name.encode("ascii")
        memcpy(h.name, <char*>raw, len(raw))
        ff_store_release_i64(&h.n_symbols, 0)
        ff_store_release_i64(&h.trade_count, 0)
        ff_store_release_i64(&h.event_count, 0)
        ff_store_release_i64(&h.ticker_count, 0)
        ff_store_release_u32(&h.state, FF_SHM_READY)
        self.closed = False
        _LIVE_WRITERS.add(self)

    cdef ff_book_hdr* book_hdr(self, Py_ssize_t idx) noexcept:
        return <ff_book_hdr*>(self.mapping.addr + self.books_off + idx * self.book_stride)

    cdef object book_arrays(self, Py_ssize_t idx):
        cdef size_t off = self.books_off + idx * self.book_stride + BOOK_HDR
        cdef Py_ssize_t n = 2 * self.depth
        bids = _array(self.mapping, off, n, np.float64).reshape(self.depth, 2)
        asks = _array(self.mapping, off + n * sizeof(double), n, np.float64).reshape(self.depth, 2)
        return bids, asks

    cdef object trade_array(self):
        return _array(self.mapping, self.ring_off, 2 * self.ring_capacity, TRADE_DTYPE)

    cdef int64_t* trade_count_ptr(self) noexcept:
        return &self.hdr.trade_count

    cdef object event_array(self):
        """The event-log region (2 x event_capacity EVENT_DTYPE); ``event_capacity > 0``."""
        if not self.event_capacity:
            raise InternalError(f"segment {self.name!r} has no event log region")
        return _array(self.mapping, self.event_off, 2 * self.event_capacity, EVENT_DTYPE)

    cdef int64_t* event_count_ptr(self) noexcept:
        return &self.hdr.event_count

    cdef object ticker_array(self):
        """The ticker-history region (2 x ticker_capacity TICKER_DTYPE)."""
        if not self.ticker_capacity:
            raise InternalError(f"segment {self.name!r} has no ticker history region")
        return _array(self.mapping, self.ticker_off, 2 * self.ticker_capacity, TICKER_DTYPE)

    cdef int64_t* ticker_count_ptr(self) noexcept:
        return &self.hdr.ticker_count

    cdef int check_room(self, Py_ssize_t idx) except -1:
        if idx >= self.max_symbols:
            raise ShmFull(
                f"shared-memory segment {self.name!r} holds {self.max_symbols} symbols; "
                "raise Engine(shm_max_symbols=...)", "shm_full")
        return 0

    cdef int add_symbol(self, Py_ssize_t idx, bytes raw) except -1:
        """Publish symbol ``idx`` (the name first, then ``n_symbols``)."""
        cdef ff_shm_symbol* s
        self.check_room(idx)
        if len(raw) < 1 or len(raw) > MAX_SYMBOL_NAME:
            raise ValueError(f"symbol must be 1..{MAX_SYMBOL_NAME} bytes for the "
                             "shared-memory symbol table")
        s = <ff_shm_symbol*>(self.mapping.addr + self.symtab_off + idx * SYMBOL_SLOT)
        memset(s.name, 0, 56)
        memcpy(s.name, <char*>raw, len(raw))
        s.length = <uint32_t>len(raw)
        ff_store_release_i64(&self.hdr.n_symbols, idx + 1)
        return 0

    @property
    def path(self):
        """``/dev/shm/fastfeed.<name>`` (Linux)."""
        return segment_path(self.name)

    @property
    def size(self):
        """Bytes of the segment."""
        return self.mapping.size if self.mapping is not None else 0

    def close(self, bint unlink=True):
        """Mark the segment closed and unlink its name (readers still attached keep their
        mapping; new ``attach`` calls fail). Views of the writer's books stay valid (the
        memory is unmapped when the last one goes). Idempotent; a no-op in a forked child."""
        if self.closed:
            return
        self.closed = True
        _LIVE_WRITERS.discard(self)
        if getpid() != self.owner_pid:
            return
        if self.hdr != NULL:
            ff_store_release_u32(&self.hdr.state, FF_SHM_CLOSED)
        if unlink:
            shm_unlink(self.cname)
        if self.mapping is not None:
            self.mapping.close_fd()

    def __dealloc__(self):
        if not self.closed and getpid() == self.owner_pid:
            if self.hdr != NULL:
                ff_store_release_u32(&self.hdr.state, FF_SHM_CLOSED)
            shm_unlink(self.cname)

    def __repr__(self):
        return (f"<ShmWriter {self.name!r} depth={self.depth} symbols<={self.max_symbols} "
                f"size={self.size}{' closed' if self.closed else ''}>")


cdef inline bint _busy(int err) noexcept:
    """flock's "held by someone else" (EWOULDBLOCK, which may or may not equal EAGAIN)."""
    return (err == EWOULDBLOCK) | (err == EAGAIN)


cdef bint _replace_existing(bytes cname, str name, bint empty_is_stale) except -1:
    """``cname`` exists: raise ShmInUse if a live writer holds it, else unlink it (marking
    it STALE for readers still attached). Returns True when it was an empty file that may
    be a writer's segment in the making (the caller waits and retries)."""
    cdef int fd = shm_open(cname, O_RDWR, 0)
    cdef struct_stat st
    cdef bint locked
    cdef int err
    cdef void* p
    cdef ff_shm_header* h
    cdef int64_t pid = 0
    cdef int64_t start = 0
    if fd < 0:
        if errno == ENOENT:
            return False          # gone meanwhile: just retry the create
        raise _oserror(f"shm_open({cname.decode()!r})", errno)
    try:
        locked = flock(fd, LOCK_EX | LOCK_NB) == 0
        err = errno
        if fstat(fd, &st) != 0:
            raise _oserror("fstat of the shared-memory segment", errno)
        if st.st_size >= HEADER_SIZE:
            p = mmap(NULL, HEADER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
            if p != MAP_FAILED:
                h = <ff_shm_header*>p
                if h.magic == FF_SHM_MAGIC:
                    pid = h.writer_pid
                    start = h.writer_start
                if not locked and _busy(err):
                    munmap(p, HEADER_SIZE)
                    raise ShmInUse(
                        f"shared-memory segment {name!r} is in use by a live writer"
                        f"{f' (pid {pid})' if pid else ''}", "in_use")
                if not locked and _process_alive(pid, start):   # no flock here: pid check
                    munmap(p, HEADER_SIZE)
                    raise ShmInUse(f"shared-memory segment {name!r} is in use by pid {pid}",
                                   "in_use")
                if h.magic == FF_SHM_MAGIC:
                    ff_store_release_u32(&h.state, FF_SHM_STALE)
                munmap(p, HEADER_SIZE)
        else:
            if not locked and _busy(err):
                raise ShmInUse(f"shared-memory segment {name!r} is being created by a live "
                               "writer", "in_use")
            if not empty_is_stale:
                return True       # maybe a writer between O_EXCL and flock: wait
        if shm_unlink(cname) != 0 and errno != ENOENT:
            raise _oserror(f"shm_unlink of stale segment {name!r}", errno)
        return False
    finally:
        close(fd)


# --------------------------------------------------------------------------------------
# Reader
# --------------------------------------------------------------------------------------

cdef int _pread_header(int fd, ff_shm_header* out, str name) except -1:
    """Copy the segment's header into ``out`` with ``pread`` (a file that is too short, or
    shrinks meanwhile, gives a short read here, never a SIGBUS)."""
    cdef Py_ssize_t got
    while True:
        got = pread(fd, out, sizeof(ff_shm_header), 0)
        if got >= 0 or errno != EINTR:
            break
    if got < 0:
        raise _oserror(f"reading the header of segment {name!r}", errno)
    if got != sizeof(ff_shm_header):
        raise ShmLayoutError(f"segment {name!r}: short header ({got} of "
                             f"{sizeof(ff_shm_header)} bytes)", "layout")
    return 0


cdef int _check_header(const ff_shm_header* h, int64_t file_size, str name) except -1:
    """Validate a header copy against the file size before anything of it is used: every
    size, count and offset must be exactly what a writer of this version creates."""
    where = f"segment {name!r} ({segment_path(name)})"
    if h.magic != FF_SHM_MAGIC or h.layout != FF_SHM_LAYOUT or h.header_size != HEADER_SIZE:
        raise ShmLayoutError(f"{where} is not a fastfeed segment of layout {FF_SHM_LAYOUT}",
                             "layout")
    if h.state > FF_SHM_STALE:
        raise ShmLayoutError(f"{where}: unknown state {h.state}", "layout")
    if h.flags & ~FLAGS_KNOWN:
        raise ShmLayoutError(f"{where}: unknown flags {h.flags:#x}", "layout")
    if h.writer_pid <= 0 or h.writer_pid > PID_MAX:
        raise ShmLayoutError(f"{where}: writer pid {h.writer_pid} is not a process id",
                             "layout")
    try:
        _check_geometry(where + ": ", h.depth, h.max_symbols, h.ring_capacity,
                        h.event_capacity, h.ticker_capacity)
    except ValueError as exc:
        raise ShmLayoutError(str(exc), "layout") from None
    want = _layout(h.depth, h.max_symbols, h.ring_capacity, h.event_capacity,
                   h.ticker_capacity)
    got = (h.symtab_off, h.books_off, h.book_stride, h.ring_off, h.event_off, h.ticker_off,
           h.total_size)
    if got != want:
        raise ShmLayoutError(
            f"{where}: the header's offsets and sizes (symtab, books, stride, ring, events, "
            f"tickers, total) = {got} do not match its geometry (depth {h.depth}, "
            f"max_symbols {h.max_symbols}, ring_capacity {h.ring_capacity}, event_capacity "
            f"{h.event_capacity}, ticker_capacity {h.ticker_capacity}) = {want}", "layout")
    if <int64_t>h.total_size != file_size:
        raise ShmLayoutError(f"{where}: the file has {file_size} bytes, the header says "
                             f"{h.total_size}", "layout")
    return 0


cdef Mapping _map_reader(int fd, size_t size, str name):
    cdef void* p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0)
    if p == MAP_FAILED:
        raise ShmError(f"cannot map segment {name!r} ({size} bytes): "
                       f"{strerror(errno).decode('utf-8', 'replace')}", "map")
    cdef Mapping m = Mapping.__new__(Mapping)
    m.addr = <char*>p
    m.size = size
    m.writable = False
    return m


cdef inline void backoff(Py_ssize_t attempt) noexcept nogil:
    """Wait before retry ``attempt + 1``: spin briefly (the writer is mid-update on another
    core), then yield, then sleep (the writer was preempted mid-update: let it run)."""
    cdef timespec ts
    if attempt < 32:
        ff_cpu_relax()
    elif attempt < 128:
        sched_yield()
    else:
        ts.tv_sec = 0
        ts.tv_nsec = 50_000 if attempt < 256 else 1_000_000
        nanosleep(&ts, NULL)


@cython.final
cdef class ShmReader:
    """A read-only view of a writer's segment (``fastfeed.attach(name)``).

    ``book(symbol)`` / ``books`` give :class:`ShmBook` readers, ``trades`` a
    :class:`ShmTrades`, ``events`` a :class:`ShmEvents` (None without an event log),
    ``tickers`` a :class:`ShmTickers`, ``symbols`` the writer's symbol table (new symbols
    appear as the writer registers them). Every array handed out is read-only; zero-copy views stay
    valid (mapped) as long as they live, also after ``close()``. If the writer closes or
    dies the data stays readable but frozen: see ``state`` and ``writer_alive``.

    Nothing read from the segment is trusted: a damaged or crafted segment raises
    :class:`~fastfeed.errors.ShmLayoutError` at attach, or
    :class:`~fastfeed.errors.ShmCorrupt` when a count read later is impossible.
    """

    def __cinit__(self, str name, bint allow_stale=False, double timeout=2.0):
        cdef bytes cname = shm_filename(name).encode("ascii")
        cdef int fd = -1
        cdef struct_stat st
        cdef double deadline = time.monotonic() + timeout
        cdef ff_shm_header hc      # a private copy of the header (pread: never a SIGBUS)
        cdef const ff_shm_header* h = &hc
        cdef uint32_t state
        self.closed = True
        self.name = name
        self._symbols = []
        self._index = {}
        self._books = {}
        while True:
            fd = shm_open(cname, O_RDONLY, 0)
            if fd < 0:
                if errno == ENOENT:
                    raise ShmNotFound(
                        f"no fastfeed shared-memory segment named {name!r} "
                        f"({segment_path(name)}); start a writer with "
                        f"Engine(shm_name={name!r}) first", "not_found")
                raise _oserror(f"shm_open({name!r})", errno)
            try:
                if fstat(fd, &st) != 0:
                    raise _oserror("fstat of the shared-memory segment", errno)
                if st.st_size >= HEADER_SIZE:
                    # state last: the writer publishes the header with a release store
                    _pread_header(fd, &hc, name)
                    state = hc.state
                    if state != FF_SHM_INIT:
                        ff_fence_acquire()
                        _pread_header(fd, &hc, name)
                        break
            except BaseException:
                close(fd)
                raise
            close(fd)             # being created: wait for its size and its header
            if time.monotonic() > deadline:
                if st.st_size < HEADER_SIZE:
                    raise ShmLayoutError(
                        f"segment {name!r} has {st.st_size} bytes, less than a header "
                        f"({HEADER_SIZE}): a writer died while creating it, or it is not a "
                        "fastfeed segment", "layout")
                raise ShmLayoutError(f"segment {name!r} never became ready", "layout")
            time.sleep(0.005)
        try:
            _check_header(h, st.st_size, name)
            self.depth = h.depth
            self.max_symbols = h.max_symbols
            self.ring_capacity = h.ring_capacity
            self.symtab_off = h.symtab_off
            self.books_off = h.books_off
            self.book_stride = h.book_stride
            self.ring_off = h.ring_off
            self.event_capacity = h.event_capacity
            self.ticker_capacity = h.ticker_capacity
            self.event_off = h.event_off
            self.ticker_off = h.ticker_off
            self.writer_pid = h.writer_pid
            self.writer_start = h.writer_start
            self.checksum = (h.flags & FF_SHM_F_CHECKSUM) != 0
            self.mapping = _map_reader(fd, <size_t>h.total_size, name)
            self.mapping.fd = fd      # kept for the size checks (_check_size)
            fd = -1
        finally:
            if fd >= 0:
                close(fd)
        self.hdr = <const ff_shm_header*>self.mapping.addr
        self._check_size()
        state = ff_load_acquire_u32(&self.hdr.state)
        if state == FF_SHM_CLOSED:
            raise ShmNotFound(f"segment {name!r} was closed by its writer", "not_found")
        if not allow_stale and (state == FF_SHM_STALE
                                or not _process_alive(self.writer_pid, self.writer_start)):
            raise ShmStale(
                f"segment {name!r} is stale: its writer (pid {self.writer_pid}) is gone; "
                "pass allow_stale=True to read its frozen data", "stale")
        self.closed = False
        self._trades = ShmTrades.__new__(ShmTrades, self)
        self._events = ShmEvents.__new__(ShmEvents, self) if self.event_capacity else None
        self._tickers = ShmTickers.__new__(ShmTickers, self) if self.ticker_capacity else None
        self._refresh()

    cdef int _check_size(self) except -1:
        """Raise ShmCorrupt if the segment's file is now shorter than the mapping (touching
        the missing part would kill the process with SIGBUS). Called at attach and before
        reading a part of the segment for the first time (new symbols, books)."""
        cdef struct_stat st
        if self.mapping.fd < 0:
            return 0
        if fstat(self.mapping.fd, &st) != 0:
            raise _oserror("fstat of the shared-memory segment", errno)
        if st.st_size < <int64_t>self.mapping.size:
            raise ShmCorrupt(
                f"segment {self.name!r} was truncated to {st.st_size} bytes (mapped: "
                f"{self.mapping.size}); refusing to read it", "truncated")
        return 0

    cdef int _refresh(self) except -1:
        """Pick up the symbols published since the last call. Every slot is validated
        before it is used; the table is updated all at once or not at all."""
        cdef int64_t n = ff_load_acquire_i64(&self.hdr.n_symbols)
        cdef Py_ssize_t have = len(self._symbols)
        cdef Py_ssize_t i
        cdef Py_ssize_t j
        cdef const ff_shm_symbol* s
        cdef uint32_t length
        cdef bytes raw
        cdef const unsigned char* p
        if n < 0 or n > self.max_symbols:
            raise ShmCorrupt(f"segment {self.name!r}: n_symbols {n} is not between 0 and "
                             f"max_symbols {self.max_symbols}", "corrupt")
        if n < have:
            raise ShmCorrupt(f"segment {self.name!r}: n_symbols went back from {have} to "
                             f"{n}", "corrupt")
        if n == have:
            return 0
        self._check_size()
        names = []
        seen = set()
        for i in range(have, n):
            s = <const ff_shm_symbol*>(self.mapping.addr + self.symtab_off + i * SYMBOL_SLOT)
            length = s.length
            if length < 1 or length > MAX_SYMBOL_NAME:
                raise ShmCorrupt(f"segment {self.name!r}: symbol slot {i} has a name length "
                                 f"of {length} (not 1..{MAX_SYMBOL_NAME})", "corrupt")
            raw = PyBytes_FromStringAndSize(s.name, length)
            p = <const unsigned char*><char*>raw
            for j in range(length):
                if p[j] >= 0x80:
                    raise ShmCorrupt(f"segment {self.name!r}: symbol slot {i} is not ASCII: "
                                     f"{raw!r}", "corrupt")
            name = raw.decode("ascii")
            if name in self._index or name in seen:
                raise ShmCorrupt(f"segment {self.name!r}: symbol {name!r} appears twice "
                                 f"(slot {i})", "corrupt")
            seen.add(name)
            names.append(name)
        for i in range(len(names)):
            self._symbols.append(names[i])
            self._index[names[i]] = have + i
        return 0

    def refresh(self):
        """Pick up symbols the writer registered since; returns how many symbols exist."""
        self._refresh()
        return len(self._symbols)

    @property
    def symbols(self):
        """The writer's symbol names in index order (refreshed on each access)."""
        self._refresh()
        return list(self._symbols)

    def symbol_index(self, str symbol):
        """Index of ``symbol`` (case-insensitive); ``UnknownSymbol`` (a ``KeyError``) if the writer has not
        registered it."""
        name = symbol.upper()
        idx = self._index.get(name)
        if idx is None:
            self._refresh()
            idx = self._index.get(name)
            if idx is None:
                raise UnknownSymbol(
                    f"symbol {symbol!r} is not in shared-memory segment {self.name!r}")
        return idx

    def book(self, str symbol):
        """The :class:`ShmBook` of ``symbol`` (``UnknownSymbol``, a ``KeyError``, if the writer has no such
        symbol yet; an existing symbol without depth data is an empty book)."""
        idx = self.symbol_index(symbol)
        b = self._books.get(idx)
        if b is None:
            self._check_size()
            b = ShmBook.__new__(ShmBook, self, idx)
            self._books[idx] = b
        return b

    @property
    def books(self):
        """``{symbol: ShmBook}`` for every symbol of the writer."""
        return {s: self.book(s) for s in self.symbols}

    @property
    def trades(self):
        """The :class:`ShmTrades` reader of the writer's trade ring."""
        return self._trades

    @property
    def events(self):
        """The :class:`ShmEvents` reader of the writer's event log (``Engine.events``), or
        None when the segment has none (the writer's Engine has no ``event_log``)."""
        return self._events

    @property
    def tickers(self):
        """The :class:`ShmTickers` reader of the writer's ticker history
        (``Engine.ticker_history``; every Engine segment has one, None only for a segment
        made by a bare ``ShmWriter`` without ``ticker_capacity``)."""
        return self._tickers

    @property
    def state(self):
        """``'ready'`` (writer publishing), ``'closed'`` (writer closed cleanly) or
        ``'stale'`` (a newer writer replaced the segment after this one's writer died)."""
        return STATES.get(ff_load_acquire_u32(&self.hdr.state), "?")

    @property
    def writer_alive(self):
        """Whether the writer process still runs (and the segment was not closed)."""
        return (ff_load_acquire_u32(&self.hdr.state) == FF_SHM_READY
                and _process_alive(self.writer_pid, self.writer_start))

    @property
    def created_ns(self):
        """When the writer created the segment (ns since the epoch)."""
        return self.hdr.create_ns

    @property
    def size(self):
        return self.mapping.size

    def close(self):
        """Detach. Arrays already handed out stay valid (the mapping goes with the last)."""
        self.closed = True
        self._books.clear()
        if self.mapping is not None:
            self.mapping.close_fd()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return (f"<ShmReader {self.name!r} state={self.state} symbols={len(self._symbols)} "
                f"depth={self.depth} writer={self.writer_pid}>")


cdef inline bint _out_ok(cnp.ndarray a, Py_ssize_t n) noexcept:
    return (cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT64 and cnp.PyArray_IS_C_CONTIGUOUS(a)
            and cnp.PyArray_ISWRITEABLE(a) and cnp.PyArray_SIZE(a) >= n)


cdef object _rows(const double* src, int64_t n):
    """A new (n, 2) float64 array holding a copy of ``n`` rows at ``src``."""
    cdef cnp.npy_intp dims[2]
    dims[0] = <cnp.npy_intp>n
    dims[1] = 2
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(2, dims, cnp.NPY_FLOAT64, 0)
    memcpy(cnp.PyArray_DATA(out), src, <size_t>n * 2 * sizeof(double))
    return out


@cython.final
cdef class ShmBook:
    """A read-only book in shared memory (``ShmReader.book(symbol)``).

    ``snapshot()`` / ``read()`` / ``read_into()`` return consistent copies (seqlock: copy,
    check, retry up to ``max_retries`` times -- spinning, then yielding, then sleeping up
    to 1 ms between tries, so the default 1000 gives up after about a second -- then raise
    :class:`~fastfeed.errors.ShmTornRead`; ``retries`` counts the repeated attempts).

    ``bids`` / ``asks`` are zero-copy read-only views of the live rows, as on
    :class:`fastfeed.Book`, but the writer is another process: a view has the row count
    published when it was taken and keeps it, while the rows themselves can change (or
    be half-written) while you read them, so use them only for a quick look and
    ``snapshot()`` for anything you compute on (its copies are writable and yours). The
    views are read-only (the mapping is ``PROT_READ``: writes and
    ``flags.writeable = True`` raise ``ValueError``). Their memory stays mapped as long as
    they live (also after ``close()`` or after the writer unlinked the segment).

    Every count read from the segment is checked before use: a row count outside
    ``0..depth`` raises :class:`~fastfeed.errors.ShmCorrupt`.
    """

    def __cinit__(self, ShmReader reader, Py_ssize_t index):
        # offsets validated at attach; index < n_symbols <= max_symbols (validated)
        cdef size_t off = reader.books_off + index * reader.book_stride
        cdef Py_ssize_t n = 2 * reader.depth
        self.reader = reader
        self.mapping = reader.mapping
        self.index = index
        self.symbol = reader._symbols[index]
        self.depth = reader.depth
        self.max_retries = 1000
        self.hdr = <const ff_book_hdr*>(self.mapping.addr + off)
        self._bid_arr = _array(self.mapping, off + BOOK_HDR, n, np.float64).reshape(self.depth, 2)
        self._ask_arr = _array(self.mapping, off + BOOK_HDR + n * sizeof(double), n,
                               np.float64).reshape(self.depth, 2)
        self.bid = <const double*>cnp.PyArray_DATA(self._bid_arr)
        self.ask = <const double*>cnp.PyArray_DATA(self._ask_arr)
        self._sb = np.zeros((self.depth, 2), dtype=np.float64)
        self._sa = np.zeros((self.depth, 2), dtype=np.float64)
        self.sb = <double*>cnp.PyArray_DATA(self._sb)
        self.sa = <double*>cnp.PyArray_DATA(self._sa)

    cdef Py_ssize_t _read(self, double* out_b, double* out_a) noexcept nogil:
        """Consistent copy into ``out_b`` / ``out_a`` (``depth`` rows each) and ``r_*``.
        Returns the number of retries, -1 if none succeeded, -2 if the header is corrupt."""
        cdef const ff_book_hdr* h = self.hdr
        cdef Py_ssize_t attempt
        cdef uint64_t s1
        cdef uint64_t s2
        cdef int64_t nb
        cdef int64_t na
        cdef int64_t version
        cdef int64_t recv_ns
        cdef uint64_t checksum
        cdef uint64_t flags
        cdef int64_t stale_since
        for attempt in range(self.max_retries):
            s1 = ff_load_acquire_u64(&h.seq)
            if s1 & 1:
                backoff(attempt)
                continue
            nb = h.n_bids
            na = h.n_asks
            version = h.version
            recv_ns = h.recv_ns
            checksum = h.checksum
            flags = h.flags
            stale_since = h.stale_since
            if nb < 0 or nb > self.depth or na < 0 or na > self.depth:
                ff_fence_acquire()
                if ff_load_relaxed_u64(&h.seq) == s1:
                    return -2
                backoff(attempt)
                continue
            memcpy(out_b, self.bid, <size_t>nb * 2 * sizeof(double))
            memcpy(out_a, self.ask, <size_t>na * 2 * sizeof(double))
            ff_fence_acquire()
            s2 = ff_load_relaxed_u64(&h.seq)
            if s1 == s2:
                self.r_nb = nb
                self.r_na = na
                self.r_version = version
                self.r_recv_ns = recv_ns
                self.r_seq = s1
                self.r_checksum = checksum
                self.r_flags = flags
                self.r_stale_since = stale_since
                return attempt
            backoff(attempt)
        return -1

    cdef int _check(self, Py_ssize_t rc) except -1:
        if rc > 0:
            self.retries += rc
            return 0
        if rc == -1:
            self.retries += self.max_retries
            raise ShmTornRead(
                f"book {self.symbol!r} in segment {self.reader.name!r}: no consistent read in "
                f"{self.max_retries} attempts (the writer keeps rewriting it, or died "
                "in the middle of an update)", "torn_read")
        if rc == -2:
            raise ShmCorrupt(f"book {self.symbol!r} in segment {self.reader.name!r}: row "
                             f"counts {self.hdr.n_bids}/{self.hdr.n_asks} are not between 0 "
                             f"and depth {self.depth}", "corrupt")
        return 0

    cdef int64_t _count(self, bint bid_side) except -1:
        """The side's published row count, checked (the writer only ever publishes
        0..depth: anything else is damage, never a reason to read past the rows)."""
        cdef int64_t n = self.hdr.n_bids if bid_side else self.hdr.n_asks
        if n < 0 or n > self.depth:
            raise ShmCorrupt(f"book {self.symbol!r} in segment {self.reader.name!r}: "
                             f"{'n_bids' if bid_side else 'n_asks'} {n} is not between 0 "
                             f"and depth {self.depth}", "corrupt")
        return n

    def snapshot(self):
        """A consistent copy ``(bids, asks)``, as :meth:`fastfeed.Book.snapshot`."""
        cdef Py_ssize_t rc
        with nogil:
            rc = self._read(self.sb, self.sa)
        self._check(rc)
        return _rows(self.sb, self.r_nb), _rows(self.sa, self.r_na)

    def read(self, bint verify=False):
        """A consistent :class:`BookSnapshot` (rows, version, recv_ns, seq, checksum).
        ``verify=True`` also recomputes the checksum the writer stored (if it stores them)
        and raises :class:`~fastfeed.errors.ShmError` on a mismatch."""
        cdef Py_ssize_t rc
        with nogil:
            rc = self._read(self.sb, self.sa)
        self._check(rc)
        if verify and self.reader.checksum:
            if ff_book_checksum(self.sb, self.r_nb, self.sa, self.r_na,
                                self.r_version) != self.r_checksum:
                raise ShmError(f"book {self.symbol!r}: checksum mismatch at version "
                               f"{self.r_version}", "checksum")
        return BookSnapshot(self.symbol, _rows(self.sb, self.r_nb), _rows(self.sa, self.r_na),
                            self.r_version, self.r_recv_ns, self.r_seq, self.r_checksum,
                            bool(self.r_flags & FF_BOOK_F_LIVE), self.r_stale_since)

    def read_into(self, cnp.ndarray bids not None, cnp.ndarray asks not None):
        """Consistent copy into caller-owned writable C-contiguous float64 arrays of at
        least ``(depth, 2)`` (no allocation but the result tuple). Returns
        ``(n_bids, n_asks, version, recv_ns)``; rows past the counts are left as they were."""
        cdef Py_ssize_t rc
        cdef double* ob
        cdef double* oa
        if not (_out_ok(bids, 2 * self.depth) and _out_ok(asks, 2 * self.depth)):
            raise ValueError(f"read_into needs writable C-contiguous float64 arrays of at "
                             f"least ({self.depth}, 2)")
        ob = <double*>cnp.PyArray_DATA(bids)
        oa = <double*>cnp.PyArray_DATA(asks)
        with nogil:
            rc = self._read(ob, oa)
        self._check(rc)
        return self.r_nb, self.r_na, self.r_version, self.r_recv_ns

    def to_pandas(self):
        """A DataFrame of a consistent snapshot, as :meth:`fastfeed.Book.to_pandas`."""
        snap = self.read()
        return book_frame(snap.bids, snap.asks, self.symbol, snap.version, snap.recv_ns,
                          snap.live, snap.stale_since)

    @property
    def bids(self):
        """Zero-copy read-only view of the live bids: the rows counted now; their content
        changes as the writer updates the book (see the class doc)."""
        return self._bid_arr[:self._count(True)]

    @property
    def asks(self):
        """Zero-copy read-only view of the live asks: the rows counted now; their content
        changes as the writer updates the book (see the class doc)."""
        return self._ask_arr[:self._count(False)]

    cdef double _top(self, bint bid_side) except? -1.0:
        cdef Py_ssize_t attempt
        cdef uint64_t s1
        cdef int64_t n
        cdef double px = NAN
        for attempt in range(self.max_retries):
            s1 = ff_load_acquire_u64(&self.hdr.seq)
            if s1 & 1:
                backoff(attempt)
                continue
            n = self.hdr.n_bids if bid_side else self.hdr.n_asks
            px = (self.bid[0] if bid_side else self.ask[0]) if n > 0 else NAN
            ff_fence_acquire()
            if ff_load_relaxed_u64(&self.hdr.seq) == s1:
                if n < 0 or n > self.depth:
                    self._count(bid_side)         # raises ShmCorrupt
                return px
            backoff(attempt)
        self._check(-1)
        return px

    @property
    def best_bid(self):
        """Highest bid price (consistent), ``nan`` when the side is empty."""
        return self._top(True)

    @property
    def best_ask(self):
        """Lowest ask price (consistent), ``nan`` when the side is empty."""
        return self._top(False)

    cdef int _state(self) except -1:
        """Consistent copy of ``flags`` / ``stale_since`` into ``r_flags`` / ``r_stale_since``."""
        cdef Py_ssize_t attempt
        cdef uint64_t s1
        cdef uint64_t flags
        cdef int64_t since
        for attempt in range(self.max_retries):
            s1 = ff_load_acquire_u64(&self.hdr.seq)
            if s1 & 1:
                backoff(attempt)
                continue
            flags = self.hdr.flags
            since = self.hdr.stale_since
            ff_fence_acquire()
            if ff_load_relaxed_u64(&self.hdr.seq) == s1:
                self.r_flags = flags
                self.r_stale_since = since
                return 0
            backoff(attempt)
        self._check(-1)
        return 0

    @property
    def live(self):
        """True while the writer's book is live (:attr:`fastfeed.Book.live`): a snapshot
        was applied since it was created, reset or marked stale. False for a stale book,
        whose levels may be out of date (see ``stale_since``)."""
        self._state()
        return bool(self.r_flags & FF_BOOK_F_LIVE)

    @property
    def stale_since(self):
        """When (ns, CLOCK_REALTIME) the book last went from live to stale; 0 while live
        and for a book that never was live."""
        self._state()
        return self.r_stale_since

    @property
    def version(self):
        """The book's version (messages applied), as last published."""
        return self.hdr.version

    @property
    def recv_ns(self):
        return self.hdr.recv_ns

    @property
    def n_bids(self):
        """Rows in the bid side, as last published (unsynchronised; checked)."""
        return self._count(True)

    @property
    def n_asks(self):
        """Rows in the ask side, as last published (unsynchronised; checked)."""
        return self._count(False)

    @property
    def seq(self):
        """The seqlock counter (odd while the writer is applying a message)."""
        return ff_load_acquire_u64(&self.hdr.seq)

    def __len__(self):
        return self._count(True) + self._count(False)

    def __repr__(self):
        return (f"<ShmBook {self.symbol} bids={self.hdr.n_bids} asks={self.hdr.n_asks} "
                f"v{self.hdr.version} {'live' if self.hdr.flags & FF_BOOK_F_LIVE else 'stale'} "
                f"segment={self.reader.name!r}>")


cdef class ShmRing:
    """A read-only record ring in shared memory: the base of :class:`ShmTrades`
    (``ShmReader.trades``), :class:`ShmEvents` (``ShmReader.events``) and
    :class:`ShmTickers` (``ShmReader.tickers``); not made directly. The writer's ring is a
    :class:`fastfeed.MirrorRing` (each record at ``i`` and ``i + capacity``), its published
    count a header field stored with a store-release after each record is complete.

    ``count`` is the number of records the writer ever published (the next ``seq``); it is
    checked on every read: negative or lower than before raises
    :class:`~fastfeed.errors.ShmCorrupt`.

    ``latest(n)`` / ``since(seq)`` are zero-copy read-only views like the writer ring's: a
    view of ``n`` records stays correct until the writer stores ``capacity - n`` more,
    which (another process) can happen at any time, so its rows may change or be torn
    while you read them; its memory stays mapped as long as the view lives.
    ``snapshot(n)`` / ``snapshot_since(seq)`` return consistent copies (the caller's,
    writable): a copy is accepted only if the writer cannot have overwritten any of its
    records while it was taken, so a consistent read holds at most ``capacity - 1``
    records. ``since`` / ``snapshot_since`` raise the ring's ``...Overwritten`` error (an
    ``IndexError``: ``TradesOverwritten``, ``EventsOverwritten``, ``TickersOverwritten``)
    when record ``seq`` is (or got, while it was copied) overwritten.
    """

    def __cinit__(self, *args, **kwargs):
        if type(self) is ShmRing:
            raise TypeError("ShmRing is the base of ShmTrades, ShmEvents and ShmTickers; "
                            "get them from fastfeed.attach(name)")
        self.max_retries = 1000
        self.last_count = 0

    cdef int _setup(self, ShmReader reader, size_t offset, Py_ssize_t capacity,
                    const int64_t* count_ptr, object dtype, str what, str region,
                    str count_name, object overwritten) except -1:
        # capacity and offset validated at attach (a power of two; the region fits the file)
        self.reader = reader
        self.mapping = reader.mapping
        self.capacity = capacity
        self.mask = <uint64_t>(capacity - 1)
        self.count_ptr = count_ptr
        self.itemsize = <size_t>dtype.itemsize
        self.dtype = dtype
        self._what = what
        self._region = region
        self._count_name = count_name
        self._overwritten = overwritten
        self._arr = _array(self.mapping, offset, 2 * capacity, dtype)
        self.buf = <const char*>cnp.PyArray_DATA(self._arr)
        return 0

    cdef int64_t _count(self) except -1:
        """The published count, checked: never negative, never lower than before (the
        writer only counts up)."""
        cdef int64_t c = ff_load_acquire_i64(self.count_ptr)
        if c < self.last_count:
            raise ShmCorrupt(f"{self._region} of segment {self.reader.name!r}: "
                             f"{self._count_name} {c} "
                             f"{'is negative' if c < 0 else 'went back'} (was "
                             f"{self.last_count})", "corrupt")
        self.last_count = c
        return c

    @property
    def count(self):
        """Records ever published by the writer (the next sequence number; checked)."""
        return self._count()

    def __len__(self):
        cdef int64_t c = self._count()
        return c if c < self.capacity else self.capacity

    def latest(self, Py_ssize_t n=-1):
        """Zero-copy read-only view of the newest ``n`` records (all held if ``n < 0``),
        oldest first (may change while read: see the class doc)."""
        cdef int64_t c = self._count()
        cdef Py_ssize_t held = c if c < self.capacity else self.capacity
        cdef Py_ssize_t start
        if n < 0 or n > held:
            n = held
        start = <Py_ssize_t>(<uint64_t>(c - n) & self.mask)
        return self._arr[start:start + n]

    def since(self, int64_t seq):
        """Zero-copy read-only view of records ``>= seq`` (empty if ``seq >= count``; the
        ring's ``...Overwritten`` error if record ``seq`` is gone)."""
        cdef int64_t c = self._count()
        if seq < 0:
            raise ValueError("seq must be >= 0")
        if seq >= c:
            return self._arr[0:0]
        if c - seq > self.capacity:
            raise self._overwritten(f"{self._what} {seq} was overwritten (ring holds "
                                    f"{c - self.capacity}..{c - 1})")
        return self.latest(c - seq)

    cdef object _copy(self, int64_t seq, Py_ssize_t n, bint by_seq):
        cdef Py_ssize_t attempt
        cdef int64_t c1
        cdef int64_t c2
        cdef int64_t lo
        cdef Py_ssize_t k
        cdef cnp.ndarray out
        for attempt in range(self.max_retries):
            c1 = self._count()
            if by_seq:
                if seq >= c1:
                    return np.empty(0, dtype=self.dtype)
                if seq <= c1 - self.capacity:
                    raise self._overwritten(f"{self._what} {seq} was overwritten (a "
                                            f"consistent read can start at "
                                            f"{c1 - self.capacity + 1})")
                lo = seq
            else:
                k = n
                if k < 0 or k > c1:
                    k = c1
                if k > self.capacity - 1:
                    k = self.capacity - 1
                lo = c1 - k
            k = c1 - lo
            out = np.empty(k, dtype=self.dtype)
            memcpy(cnp.PyArray_DATA(out), self.buf + (<uint64_t>lo & self.mask) * self.itemsize,
                   k * self.itemsize)
            ff_fence_acquire()
            c2 = self._count()
            if lo >= c2 - self.capacity + 1:
                return out
            if by_seq:
                raise self._overwritten(f"{self._what} {seq} was overwritten while it was "
                                        "read")
            with nogil:
                backoff(attempt)
        raise ShmTornRead(f"{self._region} of segment {self.reader.name!r}: no consistent "
                          f"window of {n} records in {self.max_retries} attempts", "torn_read")

    def snapshot(self, Py_ssize_t n=-1):
        """A consistent copy of the newest ``n`` records (at most ``capacity - 1``; all that
        fit if ``n < 0``), oldest first."""
        return self._copy(0, n, False)

    def snapshot_since(self, int64_t seq):
        """A consistent copy of every record with sequence number ``>= seq`` (empty if
        ``seq >= count``). Raises the ring's ``...Overwritten`` error if some of them are
        (or got, while copied) overwritten."""
        if seq < 0:
            raise ValueError("seq must be >= 0")
        return self._copy(seq, 0, True)

    def __repr__(self):
        return (f"<{type(self).__name__} count={ff_load_acquire_i64(self.count_ptr)} "
                f"capacity={self.capacity}>")


@cython.final
cdef class ShmTrades(ShmRing):
    """A read-only trade ring in shared memory (``ShmReader.trades``; the writer's
    ``Engine.trades``), ``TRADE_DTYPE`` records. ``latest(n)`` / ``since(seq)`` are
    zero-copy views, ``snapshot(n)`` / ``snapshot_since(seq)`` consistent copies (at most
    ``capacity - 1`` records): see :class:`ShmRing`. ``since`` / ``snapshot_since`` raise
    :class:`~fastfeed.errors.TradesOverwritten`.
    """

    def __cinit__(self, ShmReader reader):
        self._setup(reader, reader.ring_off, reader.ring_capacity,
                    &reader.hdr.trade_count, TRADE_DTYPE, "trade", "trades", "trade_count",
                    TradesOverwritten)

    @property
    def symbols(self):
        return self.reader.symbols

    def to_pandas(self, Py_ssize_t n=-1):
        """A consistent copy of the newest ``n`` trades as a DataFrame, as
        :meth:`fastfeed.TradeRing.to_pandas`."""
        return trades_frame(self.snapshot(n), self.reader.symbols)


@cython.final
cdef class ShmEvents(ShmRing):
    """The writer's event log (``Engine.events``) in shared memory (``ShmReader.events``):
    :data:`fastfeed.events.EVENT_DTYPE` rows (``ival`` indexes ``ShmReader.symbols``).
    ``latest(n)`` / ``since(seq)`` are zero-copy views, ``snapshot(n)`` /
    ``snapshot_since(seq)`` consistent copies (at most ``capacity - 1`` rows): see
    :class:`ShmRing`. ``since`` / ``snapshot_since`` raise
    :class:`~fastfeed.errors.EventsOverwritten` (rebuild with a book snapshot then).
    """

    def __cinit__(self, ShmReader reader):
        self._setup(reader, reader.event_off, reader.event_capacity,
                    &reader.hdr.event_count, EVENT_DTYPE, "event row", "event log",
                    "event_count", EventsOverwritten)

    def to_pandas(self, Py_ssize_t n=-1):
        """A consistent copy of the newest ``n`` rows as a DataFrame
        (:func:`fastfeed.events.events_to_pandas`, symbols resolved)."""
        return events_to_pandas(self.snapshot(n), self.reader.symbols)


@cython.final
cdef class ShmTickers(ShmRing):
    """The writer's ticker history (``Engine.ticker_history``) in shared memory
    (``ShmReader.tickers``): :data:`fastfeed.layout.TICKER_DTYPE` records (``name`` holds
    the symbol; ``symbol`` indexes the writer's ``Engine.ticker_symbols``, which is not in
    the segment). ``latest(n)`` / ``since(seq)`` are zero-copy views, ``snapshot(n)`` /
    ``snapshot_since(seq)`` consistent copies (at most ``capacity - 1`` records): see
    :class:`ShmRing`. ``since`` / ``snapshot_since`` raise
    :class:`~fastfeed.errors.TickersOverwritten`.
    """

    def __cinit__(self, ShmReader reader):
        self._setup(reader, reader.ticker_off, reader.ticker_capacity,
                    &reader.hdr.ticker_count, TICKER_DTYPE, "ticker record",
                    "ticker history", "ticker_count", TickersOverwritten)

    def records(self, int64_t seq=0):
        """:class:`~fastfeed.protocol.Ticker` objects of the records with ``seq >= seq``
        that can be read consistently (a consistent copy, as ``snapshot_since``), oldest
        first; records already overwritten are left out (compare the length with
        ``count - seq``), as :meth:`fastfeed._ticker.TickerRing.records`. A record whose
        name is not ASCII (a damaged segment) raises :class:`~fastfeed.errors.ShmCorrupt`."""
        cdef Py_ssize_t _attempt
        cdef int64_t first
        if seq < 0:
            raise ValueError("seq must be >= 0")
        for _attempt in range(self.max_retries):
            first = self._count() - self.capacity + 1
            try:
                rows = self._copy(seq if seq > first else first, 0, True)
            except TickersOverwritten:
                continue          # the writer moved on meanwhile: start later
            try:
                return [ticker_from_row(row) for row in rows]
            except UnicodeDecodeError:
                raise ShmCorrupt(f"ticker history of segment {self.reader.name!r}: a record "
                                 "name is not ASCII", "corrupt") from None
        raise ShmTornRead(f"ticker history of segment {self.reader.name!r}: no consistent "
                          f"read in {self.max_retries} attempts", "torn_read")
