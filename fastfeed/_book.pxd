from libc.stdint cimport int64_t

from fastfeed._parse cimport Level


cdef class Book:
    cdef readonly str symbol
    cdef readonly Py_ssize_t depth
    cdef object _bid_arr           # numpy float64 (depth, 2), rows [price, amount]
    cdef object _ask_arr
    cdef double* bid               # data pointers of the arrays above
    cdef double* ask
    cdef readonly Py_ssize_t n_bids
    cdef readonly Py_ssize_t n_asks
    cdef readonly int64_t version
    cdef readonly int64_t recv_ns

    cdef void clear(self) noexcept
    cdef Py_ssize_t apply(self, const Level* asks, Py_ssize_t n_asks, const Level* bids,
                          Py_ssize_t n_bids, bint clean, int64_t recv_ns) noexcept
