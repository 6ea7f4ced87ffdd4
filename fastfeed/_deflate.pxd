# C declarations of libdeflate's zlib decompressor. When fastfeed is built without
# libdeflate (FASTFEED_HAVE_LIBDEFLATE=0) the same names are stubs that are never called.

cdef extern from *:
    """
    #ifndef FASTFEED_HAVE_LIBDEFLATE
    #define FASTFEED_HAVE_LIBDEFLATE 0
    #endif
    #if FASTFEED_HAVE_LIBDEFLATE
    #include <libdeflate.h>
    #else
    struct libdeflate_decompressor;
    enum libdeflate_result {
        LIBDEFLATE_SUCCESS = 0, LIBDEFLATE_BAD_DATA = 1,
        LIBDEFLATE_SHORT_OUTPUT = 2, LIBDEFLATE_INSUFFICIENT_SPACE = 3
    };
    static inline struct libdeflate_decompressor *libdeflate_alloc_decompressor(void) { return NULL; }
    static inline void libdeflate_free_decompressor(struct libdeflate_decompressor *d) { (void)d; }
    static inline enum libdeflate_result libdeflate_zlib_decompress_ex(
        struct libdeflate_decompressor *d, const void *in, size_t in_n, void *out,
        size_t out_avail, size_t *in_used, size_t *out_n) {
        (void)d; (void)in; (void)in_n; (void)out; (void)out_avail; (void)in_used; (void)out_n;
        return LIBDEFLATE_BAD_DATA;
    }
    #endif
    """
    const bint FASTFEED_HAVE_LIBDEFLATE

    cdef struct libdeflate_decompressor:
        pass

    cdef enum libdeflate_result:
        LIBDEFLATE_SUCCESS
        LIBDEFLATE_BAD_DATA
        LIBDEFLATE_SHORT_OUTPUT
        LIBDEFLATE_INSUFFICIENT_SPACE

    libdeflate_decompressor* libdeflate_alloc_decompressor() nogil
    void libdeflate_free_decompressor(libdeflate_decompressor* d) nogil
    libdeflate_result libdeflate_zlib_decompress_ex(
        libdeflate_decompressor* d, const void* inp, size_t in_nbytes, void* out,
        size_t out_nbytes_avail, size_t* actual_in_nbytes_ret,
        size_t* actual_out_nbytes_ret) nogil
