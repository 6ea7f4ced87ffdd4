# C declarations of the parts of zlib's API that fastfeed uses (inflate only).

cdef extern from "zlib.h" nogil:
    ctypedef unsigned char Bytef
    ctypedef unsigned int uInt
    ctypedef unsigned long uLong
    ctypedef void* voidpf

    ctypedef struct z_stream:
        const Bytef* next_in
        uInt avail_in
        uLong total_in
        Bytef* next_out
        uInt avail_out
        uLong total_out
        const char* msg
        voidpf zalloc
        voidpf zfree
        voidpf opaque
        int data_type
        uLong adler

    ctypedef z_stream* z_streamp

    int Z_OK
    int Z_STREAM_END
    int Z_NEED_DICT
    int Z_ERRNO
    int Z_STREAM_ERROR
    int Z_DATA_ERROR
    int Z_MEM_ERROR
    int Z_BUF_ERROR
    int Z_NO_FLUSH
    int Z_SYNC_FLUSH
    int Z_FINISH
    int MAX_WBITS

    const char* ZLIB_VERSION
    const char* zlibVersion()
    int inflateInit2(z_streamp strm, int windowBits)
    int inflate(z_streamp strm, int flush)
    int inflateReset(z_streamp strm)
    int inflateEnd(z_streamp strm)
