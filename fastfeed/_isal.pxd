# C declarations of ISA-L's igzip inflater (Debian: libisal-dev). When fastfeed is built
# without ISA-L (FASTFEED_HAVE_ISAL=0) the same names are stubs that are never called.

from libc.stdint cimport int32_t, uint8_t, uint32_t, uint64_t

cdef extern from *:
    """
    #ifndef FASTFEED_HAVE_ISAL
    #define FASTFEED_HAVE_ISAL 0
    #endif
    #if FASTFEED_HAVE_ISAL
    #include <isa-l/igzip_lib.h>
    #else
    #include <stdint.h>
    enum isal_block_state { ISAL_BLOCK_NEW_HDR, ISAL_BLOCK_FINISH = 5 };
    struct inflate_state {
        uint8_t *next_out; uint32_t avail_out; uint32_t total_out; uint8_t *next_in;
        uint64_t read_in; uint32_t avail_in; int32_t read_in_length;
        enum isal_block_state block_state; uint32_t crc_flag; uint32_t hist_bits;
    };
    #define ISAL_ZLIB 3
    #define ISAL_DECOMP_OK 0
    #define ISAL_NEED_DICT 6
    static inline void isal_inflate_init(struct inflate_state *s) { (void)s; }
    static inline void isal_inflate_reset(struct inflate_state *s) { (void)s; }
    static inline int isal_inflate(struct inflate_state *s) { (void)s; return -1; }
    #endif
    """
    const bint FASTFEED_HAVE_ISAL

    cdef enum isal_block_state:
        ISAL_BLOCK_FINISH

    cdef struct inflate_state:
        uint8_t* next_out
        uint32_t avail_out
        uint32_t total_out
        uint8_t* next_in
        uint64_t read_in
        uint32_t avail_in
        int32_t read_in_length
        isal_block_state block_state
        uint32_t crc_flag
        uint32_t hist_bits

    int ISAL_ZLIB
    int ISAL_DECOMP_OK
    int ISAL_NEED_DICT

    void isal_inflate_init(inflate_state* state) nogil
    void isal_inflate_reset(inflate_state* state) nogil
    int isal_inflate(inflate_state* state) nogil
