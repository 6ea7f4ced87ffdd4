# C declarations of fastfeed's own small-frame zlib decoder (fastfeed/_ffinflate.h), the
# "builtin" inflate backend. See the header for its contract.

from libc.stdint cimport uint8_t


cdef extern from "_ffinflate.h":
    int FF_OK
    int FF_NOSPACE
    int FF_UNSURE

    ctypedef struct ff_tables:
        pass

    void ff_tables_init(ff_tables* t) nogil
    int ff_inflate(ff_tables* t, const uint8_t* data, size_t in_len, uint8_t* out,
                   size_t out_cap, size_t* out_len) nogil
