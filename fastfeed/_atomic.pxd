# C declarations shared by the compiled modules that touch shared memory: memory-ordered
# loads/stores (GCC/Clang ``__atomic`` builtins), a CPU pause hint, the layout of the
# shared-memory segment and the book checksum. Declarations only: no module of its own.
#
# Seqlock protocol (one writer, any number of readers, per book):
#   writer:  s = seq;  store_relaxed(seq, s + 1);  fence_release();
#            ... plain stores to the rows and counts ...
#            store_release(seq, s + 2)
#   reader:  s1 = load_acquire(seq);  (odd: writer busy, retry)
#            ... plain loads (copy) ...
#            fence_acquire();  s2 = load_relaxed(seq);  s1 == s2: the copy is consistent.
# (H.-J. Boehm, "Can seqlocks get along with programming language memory models?", 2012.)

from libc.stdint cimport int64_t, uint32_t, uint64_t

cdef extern from *:
    """
    #ifndef FASTFEED_ATOMIC_H
    #define FASTFEED_ATOMIC_H
    #include <stdint.h>
    #include <stddef.h>
    #if !defined(__GNUC__) && !defined(__clang__)
    #error "fastfeed's shared-memory support needs GCC or Clang __atomic builtins"
    #endif

    static inline uint64_t ff_load_acquire_u64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
    static inline uint64_t ff_load_relaxed_u64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
    static inline void ff_store_release_u64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
    static inline void ff_store_relaxed_u64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
    static inline int64_t ff_load_acquire_i64(const int64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
    static inline void ff_store_release_i64(int64_t *p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
    static inline uint32_t ff_load_acquire_u32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
    static inline void ff_store_release_u32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
    static inline void ff_fence_acquire(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
    static inline void ff_fence_release(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
    static inline void ff_cpu_relax(void) {
    #if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
    #elif defined(__aarch64__) || defined(__arm__)
        __asm__ __volatile__("yield" ::: "memory");
    #else
        __asm__ __volatile__("" ::: "memory");
    #endif
    }

    /* ---- shared-memory segment layout (version 2, native byte order) ---------------- */
    #define FF_SHM_MAGIC 0x0031764d48534646ULL   /* "FFSHMv1\\0" little-endian */
    #define FF_SHM_LAYOUT 2u                     /* 2: + event log and ticker history */
    #define FF_SHM_INIT 0u
    #define FF_SHM_READY 1u
    #define FF_SHM_CLOSED 2u
    #define FF_SHM_STALE 3u
    #define FF_SHM_F_CHECKSUM 1u
    #define FF_BOOK_F_LIVE 1ULL                  /* ff_book_hdr.flags */

    typedef struct {
        uint64_t magic;           /*   0 FF_SHM_MAGIC */
        uint32_t layout;          /*   8 FF_SHM_LAYOUT */
        uint32_t header_size;     /*  12 sizeof(ff_shm_header) */
        uint32_t state;           /*  16 INIT -> READY -> CLOSED | STALE (atomic) */
        uint32_t flags;           /*  20 FF_SHM_F_* */
        int64_t writer_pid;       /*  24 */
        int64_t writer_start;     /*  32 writer's start time (clock ticks since boot), 0 unknown */
        int64_t create_ns;        /*  40 CLOCK_REALTIME at creation */
        uint64_t total_size;      /*  48 bytes of the whole segment */
        int64_t depth;            /*  56 rows per book side */
        int64_t max_symbols;      /*  64 symbol slots */
        int64_t ring_capacity;    /*  72 trade ring capacity (records; buffer holds 2x) */
        uint64_t symtab_off;      /*  80 */
        uint64_t books_off;       /*  88 */
        uint64_t book_stride;     /*  96 */
        uint64_t ring_off;        /* 104 */
        int64_t event_capacity;   /* 112 event log capacity (records; 2x held), 0 = none */
        int64_t ticker_capacity;  /* 120 ticker history capacity (records; 2x held), 0 = none */
        int64_t n_symbols;        /* 128 symbols published (atomic, release) */
        uint64_t event_off;       /* 136 event log region (0 when event_capacity == 0) */
        uint64_t ticker_off;      /* 144 ticker history region (0 when ticker_capacity == 0) */
        uint64_t reserved1[5];    /* 152 */
        int64_t trade_count;      /* 192 trades published (atomic, release) */
        int64_t event_count;      /* 200 event rows published (atomic, release) */
        int64_t ticker_count;     /* 208 ticker records published (atomic, release) */
        uint64_t reserved2[5];    /* 216 */
        char name[256];           /* 256 segment name, NUL-terminated */
    } ff_shm_header;              /* 512 bytes */

    typedef struct {
        uint32_t length;          /* bytes of name */
        uint32_t reserved;
        char name[56];
    } ff_shm_symbol;              /* 64 bytes */

    typedef struct {
        uint64_t seq;             /* seqlock: odd while the writer applies a message */
        int64_t n_bids;
        int64_t n_asks;
        int64_t version;
        int64_t recv_ns;
        uint64_t checksum;        /* ff_book_checksum of this state (FF_SHM_F_CHECKSUM) */
        uint64_t flags;           /* FF_BOOK_F_*: bit 0 live (0: stale / never live) */
        int64_t stale_since;      /* CLOCK_REALTIME ns the book last went stale, 0 while live */
    } ff_book_hdr;                /* 64 bytes, followed by bids then asks: depth x [price, amount] */

    _Static_assert(sizeof(ff_shm_header) == 512, "ff_shm_header size");
    /* the offsets are the documented file format (docs/shm-and-exports.md, tests) */
    _Static_assert(offsetof(ff_shm_header, state) == 16, "state offset");
    _Static_assert(offsetof(ff_shm_header, writer_pid) == 24, "writer_pid offset");
    _Static_assert(offsetof(ff_shm_header, total_size) == 48, "total_size offset");
    _Static_assert(offsetof(ff_shm_header, depth) == 56, "depth offset");
    _Static_assert(offsetof(ff_shm_header, ring_capacity) == 72, "ring_capacity offset");
    _Static_assert(offsetof(ff_shm_header, ring_off) == 104, "ring_off offset");
    _Static_assert(offsetof(ff_shm_header, n_symbols) == 128, "n_symbols offset");
    _Static_assert(offsetof(ff_shm_header, trade_count) == 192, "trade_count offset");
    _Static_assert(offsetof(ff_shm_header, event_capacity) == 112, "event_capacity offset");
    _Static_assert(offsetof(ff_shm_header, ticker_capacity) == 120, "ticker_capacity offset");
    _Static_assert(offsetof(ff_shm_header, event_off) == 136, "event_off offset");
    _Static_assert(offsetof(ff_shm_header, ticker_off) == 144, "ticker_off offset");
    _Static_assert(offsetof(ff_shm_header, event_count) == 200, "event_count offset");
    _Static_assert(offsetof(ff_shm_header, ticker_count) == 208, "ticker_count offset");
    _Static_assert(offsetof(ff_shm_header, name) == 256, "name offset");
    _Static_assert(sizeof(ff_shm_symbol) == 64, "ff_shm_symbol size");
    _Static_assert(offsetof(ff_shm_symbol, name) == 8, "ff_shm_symbol name offset");
    _Static_assert(sizeof(ff_book_hdr) == 64, "ff_book_hdr size");
    _Static_assert(offsetof(ff_book_hdr, flags) == 48, "ff_book_hdr flags offset");

    /* Order-sensitive checksum of a book state: four Fletcher-style lanes over the 64-bit
       words [n_bids, n_asks, version, bid rows..., ask rows...] (rows as IEEE bit patterns),
       word i feeding lane i % 4: a[l] += w; b[l] += a[l] (mod 2**64). Result:
       XOR over l of (a[l] * K1 + b[l] * K2) * (2 * l + 1).  fastfeed.shm.book_checksum is the
       same in numpy. */
    /* One stretch of words into the four lanes; k = index of the next word overall. */
    static inline void ff_fletcher4(const uint64_t *w, int64_t n, uint64_t *a, uint64_t *b,
                                    int64_t *k) {
        int64_t i = 0, i0;
        uint64_t a0, a1, a2, a3, b0, b1, b2, b3;
        for (; i < n && (*k & 3); i++, (*k)++) { a[*k & 3] += w[i]; b[*k & 3] += a[*k & 3]; }
        i0 = i;
        a0 = a[0]; a1 = a[1]; a2 = a[2]; a3 = a[3]; b0 = b[0]; b1 = b[1]; b2 = b[2]; b3 = b[3];
        for (; i + 4 <= n; i += 4) {
            a0 += w[i]; a1 += w[i + 1]; a2 += w[i + 2]; a3 += w[i + 3];
            b0 += a0; b1 += a1; b2 += a2; b3 += a3;
        }
        *k += i - i0;
        a[0] = a0; a[1] = a1; a[2] = a2; a[3] = a3; b[0] = b0; b[1] = b1; b[2] = b2; b[3] = b3;
        for (; i < n; i++, (*k)++) { a[*k & 3] += w[i]; b[*k & 3] += a[*k & 3]; }
    }

    /* Order-sensitive checksum of a book state: four Fletcher-style lanes over the 64-bit
       words [n_bids, n_asks, version, bid rows..., ask rows...] (rows as IEEE bit patterns),
       word i feeding lane i % 4: a[l] += w; b[l] += a[l] (mod 2**64). Result:
       XOR over l of (a[l] * K1 + b[l] * K2) * (2 * l + 1).  fastfeed.shm.book_checksum is the
       same in numpy. */
    static inline uint64_t ff_book_checksum(const double *bid, int64_t nb, const double *ask,
                                            int64_t na, int64_t version) {
        uint64_t a[4] = {0, 0, 0, 0}, b[4] = {0, 0, 0, 0};
        uint64_t head[3] = {(uint64_t)nb, (uint64_t)na, (uint64_t)version};
        uint64_t out = 0;
        int64_t k = 0;
        int l;
        ff_fletcher4(head, 3, a, b, &k);
        ff_fletcher4((const uint64_t *)bid, 2 * nb, a, b, &k);
        ff_fletcher4((const uint64_t *)ask, 2 * na, a, b, &k);
        for (l = 0; l < 4; l++)
            out ^= (a[l] * 0x9E3779B97F4A7C15ULL + b[l] * 0xC2B2AE3D27D4EB4FULL) * (uint64_t)(2 * l + 1);
        return out;
    }
    #endif
    """
    uint64_t ff_load_acquire_u64(const uint64_t* p) noexcept nogil
    uint64_t ff_load_relaxed_u64(const uint64_t* p) noexcept nogil
    void ff_store_release_u64(uint64_t* p, uint64_t v) noexcept nogil
    void ff_store_relaxed_u64(uint64_t* p, uint64_t v) noexcept nogil
    int64_t ff_load_acquire_i64(const int64_t* p) noexcept nogil
    void ff_store_release_i64(int64_t* p, int64_t v) noexcept nogil
    uint32_t ff_load_acquire_u32(const uint32_t* p) noexcept nogil
    void ff_store_release_u32(uint32_t* p, uint32_t v) noexcept nogil
    void ff_fence_acquire() noexcept nogil
    void ff_fence_release() noexcept nogil
    void ff_cpu_relax() noexcept nogil

    uint64_t FF_SHM_MAGIC
    uint32_t FF_SHM_LAYOUT
    uint32_t FF_SHM_INIT
    uint32_t FF_SHM_READY
    uint32_t FF_SHM_CLOSED
    uint32_t FF_SHM_STALE
    uint32_t FF_SHM_F_CHECKSUM
    uint64_t FF_BOOK_F_LIVE

    ctypedef struct ff_shm_header:
        uint64_t magic
        uint32_t layout
        uint32_t header_size
        uint32_t state
        uint32_t flags
        int64_t writer_pid
        int64_t writer_start
        int64_t create_ns
        uint64_t total_size
        int64_t depth
        int64_t max_symbols
        int64_t ring_capacity
        uint64_t symtab_off
        uint64_t books_off
        uint64_t book_stride
        uint64_t ring_off
        int64_t event_capacity
        int64_t ticker_capacity
        int64_t n_symbols
        uint64_t event_off
        uint64_t ticker_off
        int64_t trade_count
        int64_t event_count
        int64_t ticker_count
        char name[256]

    ctypedef struct ff_shm_symbol:
        uint32_t length
        char name[56]

    ctypedef struct ff_book_hdr:
        uint64_t seq
        int64_t n_bids
        int64_t n_asks
        int64_t version
        int64_t recv_ns
        uint64_t checksum
        uint64_t flags
        int64_t stale_since

    uint64_t ff_book_checksum(const double* bid, int64_t nb, const double* ask, int64_t na,
                              int64_t version) noexcept nogil
