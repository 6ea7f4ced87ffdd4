/* Number conversion for the shape-specialised fast path of fastfeed/_parse.pyx.
 *
 * SWAR (SIMD within a register): 8 digits at a time through one unaligned 64-bit load,
 * validated with mask arithmetic and combined with three multiplications. Every function
 * either returns a value that is bit-identical to the general parser's (Python's
 * ``float(s)``: correctly rounded) or reports failure, and the caller then hands the whole
 * message to the general parser. Exactness: the fast path only accepts a mantissa
 * m <= 2**53 (an exact double) with at most 19 digits in all and a fraction of f <= 18
 * digits; m / 10**f is then one correctly rounded IEEE division of two exact doubles. (A
 * larger m whose fraction ends in zeros is first reduced: the same decimal, fewer digits.)
 *
 * Portability: the SWAR digit code assumes little-endian byte order (x86-64, aarch64);
 * elsewhere a byte-by-byte loop gives the same results. FF_FAST_AVAILABLE is 0 where
 * doubles are evaluated in excess precision (FLT_EVAL_METHOD != 0, e.g. x87), since the
 * division above would then be rounded twice: the fast path is off there.
 *
 * Bounds: every read is inside [p, end); 8-byte loads are made only with 8 bytes left
 * (near the end of the buffer the byte loop is used).
 */
#ifndef FASTFEED_FASTNUM_H
#define FASTFEED_FASTNUM_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && (defined(__GNUC__) || defined(__clang__))
#define FF_SWAR_LE 1
#else
#define FF_SWAR_LE 0
#endif

#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD == 0
#define FF_FAST_AVAILABLE 1
#else
#define FF_FAST_AVAILABLE 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define FF_LIKELY(x) __builtin_expect(!!(x), 1)
#define FF_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define FF_LIKELY(x) (x)
#define FF_UNLIKELY(x) (x)
#endif

/* A digit run longer than this makes the fast path give up (ff_run returns FF_RUN_LONG). */
#define FF_RUN_MAX 16
#define FF_RUN_LONG (FF_RUN_MAX + 1)

static const uint64_t ff_pow10u[20] = {
    1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL,
    100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL,
    10000000000000ULL, 100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL,
    100000000000000000ULL, 1000000000000000000ULL, 10000000000000000000ULL,
};

static const double ff_pow10d[20] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    1e16, 1e17, 1e18, 1e19,
};

#if defined(__GNUC__) || defined(__clang__)
#define FF_INLINE static inline __attribute__((always_inline))
#define FF_NOINLINE static __attribute__((noinline, unused))
#else
#define FF_INLINE static inline
#define FF_NOINLINE static
#endif

/* Ask for the cache lines of an input (a payload, up to its first 512 bytes) after the
 * first all at once, so that their misses overlap instead of arriving one by one as the
 * reader walks the text (a frame fed from a replay list, a file or a large receive buffer
 * is often not in cache; one that is costs a few instructions). */
FF_INLINE void ff_prefetch_span(const unsigned char *p, size_t n)
{
#if defined(__GNUC__) || defined(__clang__)
    /* addresses as integers: no pointer arithmetic (p may be NULL when n is 0) */
    uintptr_t line = ((uintptr_t)p & ~(uintptr_t)63) + 64;
    uintptr_t end = (uintptr_t)p + (n < 512 ? n : 512);
    for (; line < end; line += 64)
        __builtin_prefetch((const void *)line, 0, 3);
#else
    (void)p;
    (void)n;
#endif
}

/* Unaligned loads. Comparing a load of the text with the same load of a string literal is
 * byte-order independent; compilers fold the literal's load into a constant. */
FF_INLINE uint64_t ff_load8(const void *p) { uint64_t v; memcpy(&v, p, 8); return v; }
FF_INLINE uint32_t ff_load4(const void *p) { uint32_t v; memcpy(&v, p, 4); return v; }
FF_INLINE uint16_t ff_load2(const void *p) { uint16_t v; memcpy(&v, p, 2); return v; }

/* p[0:n] == lit[0:n] for a literal of n = 1..16 bytes (n a constant: overlapping loads,
 * no branch). The caller guarantees n readable bytes at p. */
FF_INLINE int ff_eq(const unsigned char *p, const char *lit, int n)
{
    if (n >= 8)
        return ((ff_load8(p) ^ ff_load8(lit)) | (ff_load8(p + n - 8) ^ ff_load8(lit + n - 8))) == 0;
    if (n >= 4)
        return ((ff_load4(p) ^ ff_load4(lit)) | (ff_load4(p + n - 4) ^ ff_load4(lit + n - 4))) == 0;
    if (n >= 2)
        return ((ff_load2(p) ^ ff_load2(lit)) | (ff_load2(p + n - 2) ^ ff_load2(lit + n - 2))) == 0;
    return p[0] == (unsigned char)lit[0];
}

#if FF_SWAR_LE
/* Non-zero in (and only reliably up to) the first byte of v that is not an ASCII digit: a
 * byte b is a digit iff its high nibble is 3 and b + 6 keeps it 3. The + 6 can carry out
 * of a byte >= 0xFA only, which is itself flagged, so the lowest flagged byte (the first
 * in memory) is exactly the first non-digit. */
FF_INLINE uint64_t ff_nondigit(uint64_t v)
{
    return ((v & 0xF0F0F0F0F0F0F0F0ULL) ^ 0x3030303030303030ULL) |
           (((v + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) ^ 0x3030303030303030ULL);
}

/* The value of 8 digit values (0..9) in the bytes of x, the first byte most significant. */
FF_INLINE uint64_t ff_conv8(uint64_t x)
{
    x = x * 10 + (x >> 8);
    return (((x & 0x000000FF000000FFULL) * (100 + (1000000ULL << 32))) +
            (((x >> 16) & 0x000000FF000000FFULL) * (1 + (10000ULL << 32)))) >> 32;
}

/* The number of leading ASCII digits of the 8 bytes at p (0..8) and their value. */
FF_INLINE int ff_digits8(const unsigned char *p, uint64_t *value)
{
    uint64_t v = ff_load8(p);
    uint64_t bad = ff_nondigit(v);
    int k = bad ? (__builtin_ctzll(bad) >> 3) : 8;
    if (k == 0) {
        *value = 0;
        return 0;
    }
    /* the k digits to the top bytes (the first digit most significant after the shift);
     * bytes past the run, and any borrow they cause, are shifted out */
    *value = ff_conv8((v - 0x3030303030303030ULL) << (8 * (8 - k)));
    return k;
}
#endif

/* The run of ASCII digits at p: its length (0..FF_RUN_MAX) with its value in *value, or
 * FF_RUN_LONG if it is longer than FF_RUN_MAX digits (*value is then undefined).
 * ff_run_i: the same, always inlined (ff_decimal: a trade's bare "time" and "id"). */
FF_INLINE int ff_run_i(const unsigned char *p, const unsigned char *end, uint64_t *value)
{
    uint64_t v = 0;
    int n = 0;
#if FF_SWAR_LE
    if (FF_LIKELY(end - p >= 16)) {
        uint64_t lo, hi;
        int k = ff_digits8(p, &lo);
        if (k < 8) {
            *value = lo;
            return k;
        }
        k = ff_digits8(p + 8, &hi);
        if (k == 8 && (end - p == 16 || (unsigned)(p[16] - '0') <= 9u))
            return FF_RUN_LONG;
        *value = lo * ff_pow10u[k] + hi;
        return 8 + k;
    }
#endif
    while (p + n < end && (unsigned)(p[n] - '0') <= 9u) {
        if (n == FF_RUN_MAX)
            return FF_RUN_LONG;
        v = v * 10 + (unsigned)(p[n] - '0');
        n++;
    }
    *value = v;
    return n;
}

static inline int ff_run(const unsigned char *p, const unsigned char *end, uint64_t *value)
{
    return ff_run_i(p, end, value);
}

/* m / 10**nf with m beyond 2**53: the same decimal with the fraction's trailing zeros cut
 * off (e.g. "50112788096.00000000"), so that it may become exact. Returns 0 if m still
 * exceeds 2**53 (the caller gives up). */
static inline int ff_trim(uint64_t *m, int *nf)
{
    while (*m > 9007199254740992ULL && *nf > 0 && *m % 10 == 0) {
        *m /= 10;
        *nf -= 1;
    }
    return *m <= 9007199254740992ULL;
}

/* A positive decimal: ``digits ['.' digits]`` (quoted != 0: the text inside a JSON string,
 * p just after the opening quote, ``1.`` allowed and leading zeros too, as
 * ``float()`` allows them; quoted == 0: a bare JSON number, which needs a digit after the
 * point and no leading zero). No sign, no exponent. On success stores the correctly
 * rounded double and returns the end of the number: just past the closing quote when
 * quoted, else the first byte after the digits (the caller checks that byte, so an
 * exponent makes the caller give up). Returns NULL when the fast path cannot decide. */
FF_INLINE const unsigned char *ff_decimal(const unsigned char *p, const unsigned char *end,
                                              int quoted, double *out)
{
    uint64_t m, f;
    int ni, nf = 0;
    double v;
    ni = ff_run_i(p, end, &m);
    if (FF_UNLIKELY(ni == 0 || ni > FF_RUN_MAX))
        return NULL;
    if (!quoted && ni > 1 && p[0] == '0')
        return NULL; /* JSON forbids leading zeros */
    p += ni;
    if (FF_UNLIKELY(p >= end))
        return NULL;
    if (*p == '.') {
        p++;
        nf = ff_run_i(p, end, &f);
        if (FF_UNLIKELY(nf > FF_RUN_MAX))
            return NULL;
        p += nf;
        while (FF_UNLIKELY(ni + nf > 19) && nf > 0 && f % 10 == 0) { /* trailing zeros */
            f /= 10;
            nf--;
        }
        if (FF_UNLIKELY(ni + nf > 19))
            return NULL;
        if (!quoted && p[-1] == '.')
            return NULL;
        m = m * ff_pow10u[nf] + f; /* < 10**19 < 2**64 */
    }
    if (FF_UNLIKELY(m > 9007199254740992ULL) && !ff_trim(&m, &nf))
        return NULL;
    if (quoted) {
        if (FF_UNLIKELY(p >= end || *p != '"'))
            return NULL;
        p++;
    }
    v = (double)m;
    if (nf)
        v = v / ff_pow10d[nf];
    *out = v;
    return p;
}

/* A non-negative JSON integer (no sign, no leading zero) of at most FF_RUN_MAX digits:
 * stores it and returns the first byte after it, or NULL. */
static inline const unsigned char *ff_uint(const unsigned char *p, const unsigned char *end,
                                           int64_t *out)
{
    uint64_t m;
    int n = ff_run_i(p, end, &m);
    if (FF_UNLIKELY(n == 0 || n > FF_RUN_MAX || (n > 1 && p[0] == '0')))
        return NULL;
    *out = (int64_t)m; /* < 10**16 */
    return p + n;
}

#if FF_SWAR_LE
#define FF_ZEROS 0x3030303030303030ULL

/* A quoted decimal that continues past its first 8 bytes (ff_qdecimal's slow half): the
 * word w = p[0:8] was examined already (m its non-digit mask, d its first non-digit, 1..8);
 * the digits in it are used as they are and the runs continue at p + 8, so no byte of the
 * number is examined twice. Same grammar and exactness rules as ff_decimal. */
static const unsigned char *ff_qdec_long(const unsigned char *p, const unsigned char *end,
                                         uint64_t w, uint64_t m, int d, double *out)
{
    uint64_t mant, f;
    int ni, nf, k;
    const unsigned char *q;
    if (d == 8) {                             /* 8 digits so far: the integer part goes on */
        mant = ff_conv8(w - FF_ZEROS);
        k = ff_run(p + 8, end, &f);
        if (k > FF_RUN_MAX - 8)
            return NULL;
        mant = mant * ff_pow10u[k] + f;
        ni = 8 + k;
        q = p + ni;
        nf = 0;
        if (q < end && *q == '.') {
            q++;
            nf = ff_run(q, end, &f);
            if (nf > FF_RUN_MAX)
                return NULL;
            q += nf;
            while (ni + nf > 19 && nf > 0 && f % 10 == 0) { /* trailing zeros */
                f /= 10;
                nf--;
            }
            if (ni + nf > 19)
                return NULL;
            mant = mant * ff_pow10u[nf] + f;
        }
    } else {                                  /* d digits, a point, digits to the word's end */
        if (p[d] != '.' || ((m >> (8 * d)) >> 8) != 0)
            return NULL;
        ni = d;
        nf = 7 - d;
        /* the integer digits to the top (the point's borrow is shifted out) */
        mant = ff_conv8((w - FF_ZEROS) << (8 * (8 - d)));
        if (nf) { /* bytes d+1..7, already at the top: bytes 0..d become '0' */
            uint64_t low = (1ULL << (8 * (d + 1))) - 1;
            mant = mant * ff_pow10u[nf] + ff_conv8(((w & ~low) | (FF_ZEROS & low)) - FF_ZEROS);
        }
        k = ff_run(p + 8, end, &f);
        if (k > FF_RUN_MAX || ni + nf + k > 19)
            return NULL;
        mant = mant * ff_pow10u[k] + f;
        nf += k;
        q = p + 8 + k;
    }
    if (q >= end || *q != '"' || (mant > 9007199254740992ULL && !ff_trim(&mant, &nf)))
        return NULL;
    *out = (double)mant / ff_pow10d[nf];
    return q + 1;
}

/* A decimal in a JSON string, p at the opening quote: ``digits ['.' digits] '"'`` (as
 * ff_decimal with quoted = 1). The usual case, the closing quote at most 8 bytes after the
 * opening one, takes one 64-bit word and is branch-free but for the checks: the point, if
 * any, is cut out of the word and the (at most 8) digits converted at once. Longer texts
 * go on from there (ff_qdec_long). Returns just past the closing quote, or NULL. */
FF_INLINE const unsigned char *ff_qdecimal(const unsigned char *p, const unsigned char *end,
                                           double *out)
{
    uint64_t w, m, below, after, cut;
    int d, e, ed, dot, len, nf;
    p++;
    if (FF_UNLIKELY(end - p < 9))             /* near the end of the buffer */
        return ff_decimal(p, end, 1, out);
    w = ff_load8(p);
    m = ff_nondigit(w);
    d = m ? (__builtin_ctzll(m) >> 3) : 8;    /* the first non-digit (8: none in the word) */
    if (FF_UNLIKELY(d == 0))
        return NULL;
    dot = d < 8 && p[d] == '.';
    /* after a point, the first non-digit ends the fraction (8: beyond the word) */
    below = ((1ULL << (8 * (d & 7))) << 8) - 1; /* bytes 0..d (all bytes when d >= 7) */
    after = m & ~below;
    ed = after ? (__builtin_ctzll(after) >> 3) : 8;
    e = dot ? ed : d;
    if (FF_UNLIKELY(p[e] != '"'))
        return ff_qdec_long(p, end, w, m, d, out);
    len = e - dot;                            /* digits in all, 1..8 */
    nf = dot ? ed - d - 1 : 0;
    /* cut the point out (the bytes after it move down one place), digits to the top of
     * the word; what follows them, and any borrow it causes, is shifted out */
    below = (1ULL << (8 * (d & 7))) - 1;
    cut = (w & below) | ((w >> 8) & ~below);
    w = dot ? cut : w;
    w = (w - FF_ZEROS) << (8 * (8 - len));
    *out = (double)ff_conv8(w) / ff_pow10d[nf];
    return p + e + 1;
}
#else
FF_INLINE const unsigned char *ff_qdecimal(const unsigned char *p, const unsigned char *end,
                                           double *out)
{
    return ff_decimal(p + 1, end, 1, out);
}
#endif

/* A bare decimal, out of line (rare in depth levels: keeps their loop small). */
static const unsigned char *ff_bare(const unsigned char *p, const unsigned char *end, double *out)
{
    return ff_decimal(p, end, 0, out);
}

/* The fast path's decimal at p (p < end): a string or a bare number. ff_number_i: bare
 * numbers inline too (a trade's "time" is one). */
FF_INLINE const unsigned char *ff_number(const unsigned char *p, const unsigned char *end,
                                         double *out)
{
    if (*p == '"')
        return ff_qdecimal(p, end, out);
    return ff_bare(p, end, out);
}

FF_INLINE const unsigned char *ff_number_i(const unsigned char *p, const unsigned char *end,
                                           double *out)
{
    if (*p == '"')
        return ff_qdecimal(p, end, out);
    return ff_decimal(p, end, 0, out);
}

/* ---- depth levels: ``["price","amount"],...]`` ------------------------------------------
 *
 * ff_levels reads a whole levels array. The usual level, ``["P","A"]`` followed by ``,`` or
 * ``]`` and lying within 32 bytes, is matched as a unit (ff_level32, SSE2): one pass over
 * the 32 bytes gives the masks of digits and points, from which the ends of both numbers
 * follow without looking at their digits again (and with no byte load on the chain from
 * one level to the next); the punctuation is checked with three small loads; each
 * number's digits are gathered from the two 8-byte words that end at its point and at its
 * closing quote, and both mantissas are converted and divided together. Any other level
 * (bare numbers, long numbers, another shape, the end of the buffer near) is read number
 * by number with ff_qdecimal / ff_number as before, and that path decides.
 * Every number the level path accepts is ``digits ['.' digits]`` in quotes with mantissa m
 * (all its digits) <= 2**53, digit runs of <= 16 and nf <= 16 fraction digits, stored as
 * (double)m / 10**nf: the same correctly rounded double as ff_decimal and the general
 * parser give. */

/* masks of the top n bytes of a word (n = 0..8) */
static const uint64_t ff_topmask[9] = {
    0ULL, 0xFF00000000000000ULL, 0xFFFF000000000000ULL, 0xFFFFFF0000000000ULL,
    0xFFFFFFFF00000000ULL, 0xFFFFFFFFFF000000ULL, 0xFFFFFFFFFFFF0000ULL, 0xFFFFFFFFFFFFFF00ULL,
    0xFFFFFFFFFFFFFFFFULL,
};

#if FF_SWAR_LE && defined(__SSE2__) && (defined(__x86_64__) || defined(_M_X64))
#include <emmintrin.h>
#define FF_LEVEL32 1

/* Bytes ff_level32 may read: [p - 8, p + FF_LEVEL32_NEED). (Its largest read index is 32,
 * see the comments in it; its smallest is -5.) */
#define FF_LEVEL32_NEED 33

/* The digits p[a - ni .. a) then p[e - nf .. e) (ni + nf <= 8, ni >= 1; the bytes of the
 * words p[a - 8 .. a) and p[e - 8 .. e) only) as one word: the ni + nf digit characters at
 * its top, the first one lowest (the most significant, as ff_conv8 reads them), zero bytes
 * below them. */
FF_INLINE uint64_t ff_lvword(const unsigned char *p, uint64_t a, uint64_t e, uint64_t ni,
                             uint64_t nf)
{
    return ((ff_load8(p + a - 8) & ff_topmask[ni]) >> (8 * nf)) |
           (ff_load8(p + e - 8) & ff_topmask[nf]);
}

/* The values of the 64-bit lanes of x and y, words as ff_lvword makes them (digit
 * characters at the top, zero bytes below): 32-bit lanes (x0, x1, y0, y1). SSE2 only:
 * '0'..'9' -> 0..9 (the zero bytes stay 0), then pairs, quads and octets of digits. */
FF_INLINE __m128i ff_conv8x4(__m128i x, __m128i y)
{
    const __m128i zero = _mm_set1_epi8('0'), ten = _mm_set1_epi16(10), low = _mm_set1_epi16(0xFF);
    const __m128i c100 = _mm_set1_epi32(100 + (1 << 16)), c10000 = _mm_set1_epi32(10000 + (1 << 16));
    x = _mm_subs_epu8(x, zero);
    y = _mm_subs_epu8(y, zero);
    /* 16-bit lanes d0 + 256 d1 -> 10 d0 + d1 (the 2560 d1 is cut off by the mask) */
    x = _mm_and_si128(_mm_add_epi16(_mm_mullo_epi16(x, ten), _mm_srli_epi16(x, 8)), low);
    y = _mm_and_si128(_mm_add_epi16(_mm_mullo_epi16(y, ten), _mm_srli_epi16(y, 8)), low);
    x = _mm_madd_epi16(x, c100); /* 4 digits per 32 bits, <= 9999 */
    y = _mm_madd_epi16(y, c100);
    return _mm_madd_epi16(_mm_packs_epi32(x, y), c10000); /* 8 digits per 32 bits */
}

/* ff_level32 for a level with a number of 9..16 digits (nd: the mask of non-digits of
 * p[0 .. 32), bits 32..63 set): the same checks, each number's digits as two words (its last
 * 8 and those before), all four converted at once. Returns as ff_level32: 0 also for a
 * number of more than 16 digits or m > 2**53. Out of line: such levels are rare. */
FF_NOINLINE size_t ff_level32_long(const unsigned char *p, uint64_t nd, double *out)
{
    uint64_t w[4], nfs[2], s = 2, e = 0, r, a, d, ni, nf, m1, m2;
    uint32_t tail;
    __m128i y;
    int i;
    for (i = 0; i < 2; i++) {
        r = nd & (~0ULL << s);                    /* s <= 28 */
        a = (uint64_t)__builtin_ctzll(r);         /* s..32 */
        d = p[a] == '.';
        e = (uint64_t)__builtin_ctzll(r & (r - d));
        if (a == s || e > (i ? 29u : 25u))
            return 0;
        /* ``","`` after the price, ``"],`` or ``"]]`` after the amount (<= p[32]) */
        tail = ff_load4(p + e) & 0xFFFFFFu;
        if (i ? tail != (ff_load4("\"],") & 0xFFFFFFu) && tail != (ff_load4("\"]]") & 0xFFFFFFu)
              : tail != (ff_load4("\",\"") & 0xFFFFFFu))
            return 0;
        ni = a - s;
        nfs[i] = nf = e - a - d;
        /* reads p[x - 8 .. x) with x >= a - 8 + nf >= s + 1 + nf - 8 when ni + nf > 8, and
         * x = e - 8 >= a - 7 when nf >= 8: never before p - 5 */
        if (ni + nf <= 8) {
            w[2 * i] = 0;
            w[2 * i + 1] = ff_lvword(p, a, e, ni, nf);
        } else if (ni + nf > 16) {
            return 0;
        } else if (nf >= 8) { /* the fraction's last 8; the integer and the fraction's first */
            w[2 * i] = ff_lvword(p, a, e - 8, ni, nf - 8);
            w[2 * i + 1] = ff_load8(p + e - 8);
        } else { /* the integer's first ni - (8 - nf); its last 8 - nf and the fraction */
            w[2 * i] = ff_load8(p + a - (8 - nf) - 8) & ff_topmask[ni - (8 - nf)];
            w[2 * i + 1] = ff_lvword(p, a, e, 8 - nf, nf);
        }
        s = e + 3;
    }
    /* 32-bit lanes (hi1, lo1, hi2, lo2) -> 64-bit lanes hi * 10**8 + lo */
    y = ff_conv8x4(_mm_set_epi64x((long long)w[1], (long long)w[0]),
                   _mm_set_epi64x((long long)w[3], (long long)w[2]));
    y = _mm_add_epi64(_mm_mul_epu32(y, _mm_set1_epi64x(100000000)), _mm_srli_epi64(y, 32));
    m1 = (uint64_t)_mm_cvtsi128_si64(y);
    m2 = (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(y, y));
    if (m1 == 0 || m1 > 9007199254740992ULL || m2 > 9007199254740992ULL)
        return 0; /* a price of zero, or beyond this path (m > 2**53) */
    /* <= 2**53: exact doubles; each the correctly rounded m / 10**nf */
    _mm_storeu_pd(out, _mm_div_pd(_mm_set_pd((double)m2, (double)m1),
                                  _mm_set_pd(ff_pow10d[nfs[1]], ff_pow10d[nfs[0]])));
    return e + 3;
}

/* One level ``["P","A"]`` and the byte after it (',' or ']') at p, all within p[0 .. 32).
 * The caller guarantees that [p - 8, p + FF_LEVEL32_NEED) is readable. Returns the number of
 * bytes up to and including that ',' or ']', with price and amount stored in out[0], out[1];
 * or 0: another shape, a number of more than 16 digits or m > 2**53, or a price of zero (the
 * caller then reads this level number by number, and that decides). Mantissas of <= 8
 * digits here, converted and divided together; longer ones in ff_level32_long. */
FF_INLINE size_t ff_level32(const unsigned char *p, double *out)
{
    const __m128i lo = _mm_loadu_si128((const __m128i *)p);
    const __m128i hi = _mm_loadu_si128((const __m128i *)(p + 16));
    /* the digit mask is the sign bits of two adds: byte + (128 - '0') mod 256 takes
     * '0'..'9', and only them, to -128..-119 as signed bytes; adding 118 with signed
     * saturation leaves those negative (-10..-1) and takes every other (-118..127) to
     * 0..127 (checked for all 256 bytes by tests/test_fast_levels.py) */
    const __m128i shift = _mm_set1_epi8((char)(128 - '0')), bias = _mm_set1_epi8(118);
    uint32_t dlo = (uint32_t)_mm_movemask_epi8(_mm_adds_epi8(_mm_add_epi8(lo, shift), bias));
    uint32_t dhi = (uint32_t)_mm_movemask_epi8(_mm_adds_epi8(_mm_add_epi8(hi, shift), bias));
    /* non-digits of p[0 .. 32); bits 32..63 set: every search below ends by bit 32 */
    uint64_t nd = ~(uint64_t)(dlo | (dhi << 16));
    /* points of p[0 .. 32) (from the mask, not from the bytes: no load on the chain from one
     * level to the next) */
    const __m128i point = _mm_set1_epi8('.');
    uint64_t dots = (uint64_t)((uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(lo, point)) |
                               ((uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(hi, point)) << 16));
    uint64_t r, w1, w2;
    /* positions in p (64-bit: no extensions when they index) */
    uint64_t a, e, d, s2, nf1, nf2;
    uint32_t tail;
    __m128i x;
    if (ff_load2(p) != ff_load2("[\""))
        return 0;
    /* the price: digits from 2 to the first non-digit a; if that is a point (d = 1), digits
     * on to the next non-digit: e, the closing quote (e = a without a point) */
    r = nd & ~3ULL;
    a = (uint64_t)__builtin_ctzll(r);             /* 2..32 */
    d = (dots >> a) & 1;                          /* p[a] == '.' (0 for a = 32) */
    e = (uint64_t)__builtin_ctzll(r & (r - d));   /* a..33 */
    if (FF_UNLIKELY(a == 2 || e > 25))
        return 0;
    /* ``","`` (reads p[e .. e + 4) <= p[28]) */
    if ((ff_load4(p + e) & 0xFFFFFFu) != (ff_load4("\",\"") & 0xFFFFFFu))
        return 0;
    if (FF_UNLIKELY(e - 2 - d > 8))               /* ni + nf digits */
        return ff_level32_long(p, nd, out);
    /* the words: p[a - 8 .. a) and p[e - 8 .. e), a >= 3 */
    nf1 = e - a - d;
    w1 = ff_lvword(p, a, e, a - 2, nf1);
    /* the amount, from s2, the same way */
    s2 = e + 3;                                   /* <= 28 */
    r = nd & (~0ULL << s2);
    a = (uint64_t)__builtin_ctzll(r);             /* s2..32 */
    d = (dots >> a) & 1;
    e = (uint64_t)__builtin_ctzll(r & (r - d));
    if (FF_UNLIKELY(a == s2 || e > 29))
        return 0;
    /* ``"],`` or (the last level) ``"]]`` (reads p[e .. e + 4) <= p[32]) */
    tail = ff_load4(p + e) & 0xFFFFFFu;
    if (FF_UNLIKELY(tail != (ff_load4("\"],") & 0xFFFFFFu)) && tail != (ff_load4("\"]]") & 0xFFFFFFu))
        return 0;
    if (FF_UNLIKELY(e - s2 - d > 8))
        return ff_level32_long(p, nd, out);
    nf2 = e - a - d;
    w2 = ff_lvword(p, a, e, a - s2, nf2);
    /* both mantissas (<= 8 digits each) at once */
    x = ff_conv8x4(_mm_set_epi64x((long long)w2, (long long)w1), _mm_setzero_si128());
    if (FF_UNLIKELY(_mm_cvtsi128_si32(x) == 0))
        return 0;                                 /* a price of zero */
    /* both < 10**8: exact doubles; both divisions at once, each lane the correctly rounded
     * m / 10**nf */
    _mm_storeu_pd(out, _mm_div_pd(_mm_cvtepi32_pd(x), _mm_set_pd(ff_pow10d[nf2], ff_pow10d[nf1])));
    return e + 3;
}
#else
#define FF_LEVEL32 0
#endif

/* One level ``[price,amount]`` and the ',' or ']' after it, number by number (p at its
 * '['; the punctuation around the usual quoted decimals as 2-byte literals): returns just
 * past that ',' or ']', or NULL; *last = 1 after ']'. Out of line where ff_level32 is
 * (ff_levels' loop stays small): the levels that it does not take are rare. */
#if FF_LEVEL32
#define FF_LEVEL_EACH FF_NOINLINE
#else
#define FF_LEVEL_EACH FF_INLINE /* the only level reader there */
#endif
FF_LEVEL_EACH const unsigned char *ff_level_each(const unsigned char *p, const unsigned char *end,
                                                 double *out, int *last)
{
    double price, amount;
    if (end - p < 3)
        return NULL;
    if (ff_eq(p, "[\"", 2))
        p = ff_qdecimal(p + 1, end, &price);
    else if (*p == '[')
        p = ff_number(p + 1, end, &price);
    else
        return NULL;
    if (p == NULL || !(price > 0.0) || end - p < 3)
        return NULL;
    if (ff_eq(p, ",\"", 2))
        p = ff_qdecimal(p + 1, end, &amount);
    else if (*p == ',')
        p = ff_number(p + 1, end, &amount);
    else
        return NULL;
    if (p == NULL || end - p < 2)
        return NULL;
    out[0] = price;
    out[1] = amount;
    if (ff_eq(p, "],", 2)) {
        *last = 0;
        return p + 2;
    }
    if (ff_eq(p, "]]", 2)) {
        *last = 1;
        return p + 2;
    }
    return NULL;
}

/* A levels array ``[price,amount],...]`` (p just after its opening '['; lo: the start of
 * the message, for ff_level32's reads before p) into out (price, amount pairs; room for cap
 * levels): returns just past the closing ']' with *count set, or NULL when the fast path
 * cannot read it (another shape, a full array, a price <= 0, any error). */
static inline const unsigned char *ff_levels(const unsigned char *p, const unsigned char *end,
                                             const unsigned char *lo, double *out,
                                             Py_ssize_t cap, Py_ssize_t *count)
{
    Py_ssize_t n = 0;
    int last = 0;
    if (p < end && *p == ']') {
        *count = 0;
        return p + 1;
    }
#if FF_LEVEL32
    if (FF_LIKELY(p - lo >= 8)) { /* p only grows: then true for every level */
        for (;;) {
            while (FF_LIKELY(end - p >= FF_LEVEL32_NEED)) {
                size_t k;
                if (FF_UNLIKELY(n == cap))
                    return NULL;
                k = ff_level32(p, out + 2 * n);
                if (FF_UNLIKELY(k == 0))
                    break; /* this level number by number, below */
                n++;
                p += k;
                if (p[-1] == ']') {
                    *count = n;
                    return p;
                }
            }
            if (n == cap || (p = ff_level_each(p, end, out + 2 * n, &last)) == NULL)
                return NULL;
            n++;
            if (last) {
                *count = n;
                return p;
            }
        }
    }
#else
    (void)lo;
#endif
    for (;;) {
        if (n == cap || (p = ff_level_each(p, end, out + 2 * n, &last)) == NULL)
            return NULL;
        n++;
        if (last) {
            *count = n;
            return p;
        }
    }
}

static inline uint64_t ff_symhash(const unsigned char *p, Py_ssize_t n);

#define FF_SYMHASH_SEED 0x9E3779B97F4A7C15ULL
#define FF_SYMHASH_MUL 0xFF51AFD7ED558CCDULL

/* The symbol hash's last steps (see ff_symhash): the length, then MurmurHash3's finalizer. */
FF_INLINE uint64_t ff_symhash_end(uint64_t h, Py_ssize_t n)
{
    h ^= (uint64_t)n;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ULL;
    h ^= h >> 33;
    return h;
}

/* The symbol's text, p just after its opening quote: 1..32 bytes of 0x21..0x7E other than
 * '"' and '\\', then '"'. Copies it upper-cased (ASCII a-z) to out (33 bytes, NUL
 * terminated) and returns its length, or -1 (anything else: the general parser decides).
 * *hash = ff_symhash(out, length), computed from the words as they are copied. */
FF_INLINE int ff_symbol(const unsigned char *p, const unsigned char *end, unsigned char *out,
                        uint64_t *hash)
{
    int n = 0;
    unsigned c;
#if FF_LEVEL32
    /* the usual symbol, shorter than 16 bytes, with 16 readable: one SSE2 pass over them */
    if (FF_LIKELY(end - p >= 16)) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        unsigned quote = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')));
        if (FF_LIKELY(quote != 0)) {
            /* signed bytes: < 0x21 is a control byte, a space or >= 0x80 */
            unsigned bad = (unsigned)_mm_movemask_epi8(_mm_or_si128(
                _mm_cmplt_epi8(v, _mm_set1_epi8(0x21)),
                _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(0x7F)),
                             _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')))));
            __m128i lower = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('a' - 1)),
                                          _mm_cmplt_epi8(v, _mm_set1_epi8('z' + 1)));
            uint64_t h = FF_SYMHASH_SEED, w;
            n = __builtin_ctz(quote);
            if (n == 0 || (bad & ((1u << n) - 1)) != 0)
                return -1;
            v = _mm_sub_epi8(v, _mm_and_si128(lower, _mm_set1_epi8(0x20)));
            _mm_storeu_si128((__m128i *)out, v); /* out[0:16] of its 33 bytes */
            out[n] = 0;
            /* ff_symhash of out[0:n]: a whole word if n >= 8, then the zero-extended tail */
            w = (uint64_t)_mm_cvtsi128_si64(v);
            if (n >= 8) {
                h = (h ^ w) * FF_SYMHASH_MUL;
                h ^= h >> 32;
                w = (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(v, v));
            }
            if (n & 7)
                h = (h ^ (w & ((1ULL << (8 * (n & 7))) - 1))) * FF_SYMHASH_MUL;
            *hash = ff_symhash_end(h, n);
            return n;
        }
    }
#endif
#if FF_SWAR_LE
    uint64_t h = FF_SYMHASH_SEED;
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    while (n < 32 && end - (p + n) >= 8) {
        uint64_t v = ff_load8(p + n);
        uint64_t q = v ^ (ones * '"'), bs = v ^ (ones * '\\'), del = v ^ (ones * 0x7F);
        /* each mask is exact up to its first flagged byte (later ones may be spurious) */
        uint64_t quote = (q - ones) & ~q & high;
        uint64_t bad = (v & high) | ((v - ones * 0x21) & ~v & high) |
                       ((bs - ones) & ~bs & high) | ((del - ones) & ~del & high);
        /* a-z (bytes < 0x80 here) lose bit 5 */
        uint64_t lower = (v + ones * (0x80 - 'a')) & ~(v + ones * (0x80 - '{')) & high;
        uint64_t up = v ^ (lower >> 2);
        memcpy(out + n, &up, 8); /* n <= 24: within out[0:32] */
        if (quote | bad) {
            uint64_t first = (quote | bad) & (~(quote | bad) + 1); /* lowest set bit */
            int k = __builtin_ctzll(first) >> 3;
            if (!(quote & first) || n + k == 0)
                return -1;
            out[n + k] = 0;
            if (k) /* the tail: its k bytes, zero-extended (as ff_symhash reads it) */
                h = (h ^ (up & ((1ULL << (8 * k)) - 1))) * FF_SYMHASH_MUL;
            *hash = ff_symhash_end(h, n + k);
            return n + k;
        }
        h = (h ^ up) * FF_SYMHASH_MUL;
        h ^= h >> 32;
        n += 8;
    }
#endif
    for (;; n++) {
        if (p + n >= end)
            return -1;
        c = p[n];
        if (c == '"')
            break;
        if (c < 0x21 || c > 0x7E || c == '\\' || n == 32)
            return -1;
        out[n] = (unsigned char)((c >= 'a' && c <= 'z') ? c - 32 : c);
    }
    if (n == 0)
        return -1;
    out[n] = 0;
    *hash = ff_symhash(out, n);
    return n;
}

/* A ticker object's key at p (at its opening quote; the caller guarantees 19 readable
 * bytes): its field number (0..10 the floats in fastfeed.layout.TICKER_FIELDS order, 11
 * timestamp, 12 symbol) and *len, the length of the key text with its quotes and the
 * colon; -1 for any other key (the caller gives up). */
FF_INLINE int ff_ticker_key(const unsigned char *p, int *len)
{
    switch (p[1]) {
    case 'l':
        if (ff_eq(p, "\"last\":", 7)) { *len = 7; return 0; }
        if (ff_eq(p, "\"last_qty\":", 11)) { *len = 11; return 1; }
        if (ff_eq(p, "\"low_24h\":", 10)) { *len = 10; return 7; }
        return -1;
    case 'b':
        if (ff_eq(p, "\"best_bid\":", 11)) { *len = 11; return 2; }
        if (ff_eq(p, "\"best_bid_size\":", 16)) { *len = 16; return 3; }
        if (ff_eq(p, "\"best_ask\":", 11)) { *len = 11; return 4; }
        if (ff_eq(p, "\"best_ask_size\":", 16)) { *len = 16; return 5; }
        if (ff_eq(p, "\"base_volume_24h", 16) && ff_eq(p + 16, "\":", 2)) { *len = 18; return 9; }
        return -1;
    case 'o':
        if (ff_eq(p, "\"open_24h\":", 11)) { *len = 11; return 6; }
        return -1;
    case 'h':
        if (ff_eq(p, "\"high_24h\":", 11)) { *len = 11; return 8; }
        return -1;
    case 'q':
        if (ff_eq(p, "\"quote_volume_24h", 16) && ff_eq(p + 16, "h\":", 3)) { *len = 19; return 10; }
        return -1;
    case 't':
        if (ff_eq(p, "\"timestamp\":", 12)) { *len = 12; return 11; }
        return -1;
    case 's':
        if (ff_eq(p, "\"symbol\":", 9)) { *len = 9; return 12; }
        return -1;
    }
    return -1;
}

/* p[0:n] == lit[0:n] for a literal of n = 1..24 bytes (n a constant; the caller
 * guarantees n readable bytes at p). */
FF_INLINE int ff_eq24(const unsigned char *p, const char *lit, int n)
{
    if (n <= 16)
        return ff_eq(p, lit, n);
    return ff_eq(p, lit, 16) & ff_eq(p + n - 8, lit + n - 8, 8);
}

/* One ``,"key":"decimal"`` of ff_ticker_fixed: ``key`` (n = 2..24 bytes: the comma, the
 * quoted key, the colon and the value's opening quote) at p, then the quoted decimal into
 * *out. Returns just past the closing quote, or NULL (p NULL, fewer than 24 bytes left,
 * another key, a value ff_qdecimal does not take). */
FF_INLINE const unsigned char *ff_tk_dec(const unsigned char *p, const unsigned char *end,
                                         const char *key, int n, double *out)
{
    if (p == NULL || end - p < 24 || !ff_eq24(p, key, n))
        return NULL;
    return ff_qdecimal(p + n - 1, end, out);
}

/* A ticker object in the exchange's own key order (the API doc's; p at its ``{``):
 * ``{"symbol":"S","open_24h":"D"[,"high_24h":"D"],"low_24h":"D","base_volume_24h":"D",
 * "quote_volume_24h":"D","last":"D","last_qty":"D","best_bid":"D","best_bid_size":"D",
 * "best_ask":"D","best_ask_size":"D","timestamp":N}`` with nothing else: each key as a
 * literal, no key dispatch. Fills f (fastfeed.layout.TICKER_FIELDS order; high_24h NaN
 * when absent), *ts, the symbol (upper-cased, ff_symbol: sym, *hash, *symlen) and returns
 * just past the ``}``; NULL on any surprise, with the outputs partly written (the caller
 * then reads the object with its any-order loop, which starts afresh and decides). */
static inline const unsigned char *ff_ticker_fixed(const unsigned char *p,
                                                   const unsigned char *end, double *f,
                                                   int64_t *ts, unsigned char *sym,
                                                   uint64_t *hash, int32_t *symlen)
{
    int n;
    uint64_t m;
    if (end - p < 32 || !ff_eq(p, "{\"symbol\":\"", 11))
        return NULL;
    n = ff_symbol(p + 11, end, sym, hash);
    if (n < 0)
        return NULL;
    *symlen = n;
    p = ff_tk_dec(p + 12 + n, end, ",\"open_24h\":\"", 13, &f[6]);
    if (p != NULL && end - p >= 24 && ff_eq(p, ",\"high_24h\":\"", 13))
        p = ff_qdecimal(p + 12, end, &f[8]);
    else
        f[8] = NAN;
    p = ff_tk_dec(p, end, ",\"low_24h\":\"", 12, &f[7]);
    p = ff_tk_dec(p, end, ",\"base_volume_24h\":\"", 20, &f[9]);
    p = ff_tk_dec(p, end, ",\"quote_volume_24h\":\"", 21, &f[10]);
    p = ff_tk_dec(p, end, ",\"last\":\"", 9, &f[0]);
    p = ff_tk_dec(p, end, ",\"last_qty\":\"", 13, &f[1]);
    p = ff_tk_dec(p, end, ",\"best_bid\":\"", 13, &f[2]);
    p = ff_tk_dec(p, end, ",\"best_bid_size\":\"", 18, &f[3]);
    p = ff_tk_dec(p, end, ",\"best_ask\":\"", 13, &f[4]);
    p = ff_tk_dec(p, end, ",\"best_ask_size\":\"", 18, &f[5]);
    if (p == NULL || end - p < 24 || !ff_eq(p, ",\"timestamp\":", 13))
        return NULL;
    p += 13; /* ff_uint, inlined */
    n = ff_run_i(p, end, &m);
    if (n == 0 || n > FF_RUN_MAX || (n > 1 && p[0] == '0'))
        return NULL;
    *ts = (int64_t)m; /* < 10**16 */
    p += n;
    if (p >= end || *p != '}')
        return NULL;
    return p + 1;
}

/* Hash of a symbol name (1..32 bytes) for the engine's and the ticker table's open-addressing
 * tables: 8 bytes at a time (one multiply per word instead of one per byte as FNV-1a), the
 * tail assembled from independent byte loads, then the length and MurmurHash3's finalizer
 * to spread the bits over the low ones the tables use (the length last, so ff_symbol can
 * hash the words as it copies them). In-process only (never stored or shared). */
static inline uint64_t ff_symhash(const unsigned char *p, Py_ssize_t n)
{
    uint64_t h = FF_SYMHASH_SEED;
    uint64_t w;
    Py_ssize_t i;
    Py_ssize_t len = n;
    while (n >= 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * FF_SYMHASH_MUL;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    if (n > 0) {
        w = 0;
        for (i = 0; i < n; i++)
            w |= (uint64_t)p[i] << (8 * i);
        h = (h ^ w) * FF_SYMHASH_MUL;
    }
    return ff_symhash_end(h, len);
}

/* a[0:n] == b[0:n] for symbol names (n = 1..32; both buffers hold at least 32 bytes). */
FF_INLINE int ff_symeq(const unsigned char *a, const unsigned char *b, Py_ssize_t n)
{
#if FF_SWAR_LE
    uint64_t diff = 0;
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8)
        diff |= ff_load8(a + i) ^ ff_load8(b + i);
    if (i < n) /* the last partial word: its low n - i bytes */
        diff |= (ff_load8(a + i) ^ ff_load8(b + i)) & ((1ULL << (8 * (n - i))) - 1);
    return diff == 0;
#else
    return memcmp(a, b, (size_t)n) == 0;
#endif
}

#endif /* FASTFEED_FASTNUM_H */
