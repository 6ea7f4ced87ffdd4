from libc.stdint cimport int64_t, uint64_t

from fastfeed._atomic cimport ff_book_hdr, ff_shm_header


cdef class Mapping:
    cdef char* addr
    cdef size_t size
    cdef int fd                    # -1 once closed (the writer keeps it for its flock)
    cdef bint writable
    cdef object __weakref__

    cdef void close_fd(self) noexcept


cdef class ShmWriter:
    cdef Mapping mapping
    cdef ff_shm_header* hdr
    cdef readonly str name
    cdef bytes cname               # b"/fastfeed.<name>"
    cdef readonly Py_ssize_t depth
    cdef readonly Py_ssize_t max_symbols
    cdef readonly Py_ssize_t ring_capacity
    cdef readonly Py_ssize_t event_capacity    # 0: no event log region
    cdef readonly Py_ssize_t ticker_capacity   # 0: no ticker history region
    cdef readonly bint checksum
    cdef readonly bint closed
    cdef int64_t owner_pid
    cdef size_t symtab_off         # the layout, kept here: never re-read from the segment
    cdef size_t books_off
    cdef size_t book_stride
    cdef size_t ring_off
    cdef size_t event_off
    cdef size_t ticker_off
    cdef object __weakref__

    cdef ff_book_hdr* book_hdr(self, Py_ssize_t idx) noexcept
    cdef object book_arrays(self, Py_ssize_t idx)
    cdef object trade_array(self)
    cdef int64_t* trade_count_ptr(self) noexcept
    cdef object event_array(self)
    cdef int64_t* event_count_ptr(self) noexcept
    cdef object ticker_array(self)
    cdef int64_t* ticker_count_ptr(self) noexcept
    cdef int check_room(self, Py_ssize_t idx) except -1
    cdef int add_symbol(self, Py_ssize_t idx, bytes raw) except -1


cdef class ShmReader:
    cdef Mapping mapping
    cdef const ff_shm_header* hdr
    cdef readonly str name
    cdef readonly Py_ssize_t depth
    cdef readonly Py_ssize_t max_symbols
    cdef readonly Py_ssize_t ring_capacity
    cdef readonly Py_ssize_t event_capacity    # 0: no event log region
    cdef readonly Py_ssize_t ticker_capacity   # 0: no ticker history region
    cdef size_t symtab_off         # validated at attach, never re-read from the segment
    cdef size_t books_off
    cdef size_t book_stride
    cdef size_t ring_off
    cdef size_t event_off
    cdef size_t ticker_off
    cdef readonly int64_t writer_pid
    cdef int64_t writer_start
    cdef readonly bint checksum
    cdef list _symbols
    cdef dict _index
    cdef dict _books
    cdef object _trades
    cdef object _events            # ShmEvents or None
    cdef object _tickers           # ShmTickers or None
    cdef readonly bint closed

    cdef int _refresh(self) except -1
    cdef int _check_size(self) except -1


cdef class ShmBook:
    cdef Mapping mapping
    cdef ShmReader reader
    cdef const ff_book_hdr* hdr
    cdef const double* bid
    cdef const double* ask
    cdef object _bid_arr           # read-only (depth, 2) views of the segment
    cdef object _ask_arr
    cdef object _sb                # private scratch (depth, 2) copies
    cdef object _sa
    cdef double* sb
    cdef double* sa
    cdef readonly str symbol
    cdef readonly Py_ssize_t index
    cdef readonly Py_ssize_t depth
    cdef public Py_ssize_t max_retries
    cdef readonly int64_t retries  # torn or busy attempts over this reader's lifetime
    # result of the last consistent read
    cdef int64_t r_nb
    cdef int64_t r_na
    cdef int64_t r_version
    cdef int64_t r_recv_ns
    cdef uint64_t r_seq
    cdef uint64_t r_checksum
    cdef uint64_t r_flags
    cdef int64_t r_stale_since

    cdef Py_ssize_t _read(self, double* out_b, double* out_a) noexcept nogil
    cdef int _check(self, Py_ssize_t rc) except -1
    cdef int64_t _count(self, bint bid_side) except -1
    cdef double _top(self, bint bid_side) except? -1.0
    cdef int _state(self) except -1


cdef class ShmRing:
    # A record ring (2 x capacity records, the writer's MirrorRing) and its published count.
    cdef Mapping mapping
    cdef ShmReader reader
    cdef const int64_t* count_ptr  # the header's trade_count / event_count / ticker_count
    cdef const char* buf
    cdef size_t itemsize
    cdef object dtype
    cdef object _arr               # read-only 2 x capacity view of the region
    cdef readonly Py_ssize_t capacity
    cdef uint64_t mask
    cdef public Py_ssize_t max_retries
    cdef int64_t last_count        # highest count seen (it may only grow)
    cdef str _what                 # "trade", "event row", "ticker record"
    cdef str _region               # "trades", "event log", "ticker history"
    cdef str _count_name           # the header field, for messages
    cdef object _overwritten       # TradesOverwritten / EventsOverwritten / TickersOverwritten

    cdef int _setup(self, ShmReader reader, size_t offset, Py_ssize_t capacity,
                    const int64_t* count_ptr, object dtype, str what, str region,
                    str count_name, object overwritten) except -1
    cdef int64_t _count(self) except -1
    cdef object _copy(self, int64_t seq, Py_ssize_t n, bint by_seq)


cdef class ShmTrades(ShmRing):
    pass


cdef class ShmEvents(ShmRing):
    pass


cdef class ShmTickers(ShmRing):
    pass
