/* The parser fast path's trade-at-a-time reader (fastfeed/_parse.pyx, Parser._fast_trades).
 *
 * ff_trade reads one trade object of a trades.update push in the exchange's fixed shape,
 *     {"id":I,"time":T,"amount":"A","price":"P","type":"buy"}    (live order)
 *     {"id":I,"time":T,"price":"P","amount":"A","type":"sell"}   (the documented order)
 * as a unit (x86-64, SSE2): one pass over 48 bytes from the '{' gives the mask of digits,
 * from which the ends of the id and of the time follow (a point: one byte compare); one pass
 * over 48 bytes from the first quoted decimal gives those of amount and price; the keys and
 * punctuation between them are checked as literals (overlapping 8-byte loads). Each
 * number's digits (at most 16) are gathered into one vector from the 16 bytes that end at
 * its last digit and the 16 that end just before its fraction, and the four numbers are
 * converted two at a time (SSE2: digit pairs, quads, octets, then high * 10**8 + low).
 *
 * What it takes, exactly as ff_uint / ff_decimal / ff_qdecimal (and so the general parser
 * and float()) would read it:
 *   - id: a bare JSON integer of 1..16 digits, no leading zero (but "0");
 *   - time: a bare JSON number ``digits ['.' digits]`` (no leading zero, a digit after the
 *     point), 1..16 digits in all, mantissa m <= 2**53;
 *   - amount, price: ``"digits ['.' digits]"`` (leading zeros and ``1.`` allowed, as
 *     float() allows them), 1..16 digits in all, m <= 2**53; the price not zero;
 * each stored as (double)m / 10**nf (nf <= 15 fraction digits): one correctly rounded IEEE
 * division of two exact doubles, the same double as float(text). Anything else (another key
 * order or shape, whitespace, a sign, an exponent, more digits, m > 2**53, a zero price, the
 * end of the buffer near) returns NULL and the caller reads the trade key by key (the
 * existing path, which then decides, or gives the message to the general parser).
 *
 * Bounds: the caller guarantees that [p - FF_TRADE_BEFORE, end) is readable (the message: a
 * trade object is never its first bytes). Reads: p[0 .. 49) when end - p >= 49 (checked
 * here); each number's 16-byte loads end at its last digit and at the byte before its
 * fraction, so reach at most 16 bytes before its end (p - 9 for the id, inside the key
 * before it for the others); the second window w[0 .. 49) and everything after it only once
 * end - w >= 49 is checked; the closing ``","type":"sell"}`` only when 16 bytes are left
 * from its first byte. tests/test_fast_trades.py places trades against PROT_NONE
 * pages on both sides; fuzz/trades_fuzz.c checks exact-size heap buffers under ASan.
 */
#ifndef FASTFEED_FASTTRADE_H
#define FASTFEED_FASTTRADE_H

#include "_fastnum.h"

#if FF_SWAR_LE && defined(__SSE2__) && (defined(__x86_64__) || defined(_M_X64))
#include <emmintrin.h>
#define FF_TRADE 1

/* Bytes ff_trade may read before p (the id's 16-byte load ends at its last digit). */
#define FF_TRADE_BEFORE 16

/* 16 zero bytes then 16 0xFF: loadu(ff_tr_ones + n) has its top n bytes set (n = 0..16). */
static const unsigned char ff_tr_ones[32] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
};

/* The non-digits of p[0 .. 48), and bits 48..63 set: every search below ends by bit 48. */
FF_INLINE uint64_t ff_tr_nondigits48(const unsigned char *p)
{
    const __m128i zero = _mm_set1_epi8('0'), nine = _mm_set1_epi8(9);
    __m128i a = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)p), zero);
    __m128i b = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)(p + 16)), zero);
    __m128i c = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)(p + 32)), zero);
    /* a byte is a digit iff (byte - '0') mod 256 <= 9 */
    uint64_t da = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(a, nine), a));
    uint64_t db = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(b, nine), b));
    uint64_t dc = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(c, nine), c));
    return ~(da | (db << 16) | (dc << 32));
}

/* The number at w[s] (s < 48) in a window with non-digit mask nd: its first non-digit *a,
 * *d = 1 if that is a point, and its end: the first non-digit after the fraction's digits,
 * or *a without a point (<= 49: 48 or 49 when the number runs to the window's end, which
 * the caller refuses). Reads w[*a] (<= 48: the caller guarantees 49 readable bytes). */
FF_INLINE uint64_t ff_tr_span(const unsigned char *w, uint64_t nd, uint64_t s, uint64_t *a,
                              uint64_t *d)
{
    uint64_t r = nd & (~0ULL << s);
    uint64_t x = (uint64_t)__builtin_ctzll(r);            /* s..48 */
    uint64_t y = w[x] == '.';
    *a = x;
    *d = y;
    return (uint64_t)__builtin_ctzll(r & (r - y));        /* x..49 */
}

/* The k = ni + nf digits (1..16) of a number whose point, if any (d = 1), is followed by
 * nf digits up to its end e, as one vector with the digit characters at its top, the first
 * (the most significant) lowest, zero bytes below them, as ff_tr_conv16x2 reads it: the
 * fraction from the 16 bytes that end at e, the integer digits from the 16 that end at the
 * byte before the fraction (w[e - 17 .. e - 1) with a point: it sits where the fraction
 * begins in the other vector). Reads w[e - 16 - d .. e) only. */
FF_INLINE __m128i ff_tr_gather(const unsigned char *w, uint64_t e, uint64_t d, uint64_t nf,
                               uint64_t k)
{
    __m128i ip = _mm_loadu_si128((const __m128i *)(w + e - 16 - d));
    __m128i fp = _mm_loadu_si128((const __m128i *)(w + e - 16));
    __m128i frac = _mm_loadu_si128((const __m128i *)(ff_tr_ones + nf)); /* top nf bytes */
    __m128i all = _mm_loadu_si128((const __m128i *)(ff_tr_ones + k));   /* top k bytes */
    return _mm_or_si128(_mm_and_si128(frac, fp), _mm_andnot_si128(frac, _mm_and_si128(all, ip)));
}

/* The values of two numbers of <= 16 digits given as ff_tr_gather makes them: 64-bit lanes
 * (x, y). SSE2 only: '0'..'9' -> 0..9 (the zero bytes stay 0), then pairs, quads and octets
 * of digits, then the two octets of each number (high * 10**8 + low). */
FF_INLINE __m128i ff_tr_conv16x2(__m128i x, __m128i y)
{
    /* 8 digits per 32 bits: (x high, x low, y high, y low), as for levels (ff_conv8x4) */
    __m128i v = ff_conv8x4(x, y);
    return _mm_add_epi64(_mm_mul_epu32(v, _mm_set1_epi64x(100000000)), _mm_srli_epi64(v, 32));
}

/* One trade object at p (at its '{'), see the top of this file: stores its fields and
 * returns just past its '}', or NULL (nothing meaningful stored then). */
FF_INLINE const unsigned char *ff_trade(const unsigned char *p, const unsigned char *end,
                                        int64_t *id, double *time, double *price,
                                        double *amount, int8_t *side)
{
    uint64_t nd, n1, a, d, e, s, nft, a1, d1, e1, nf1, a2, d2, e2, nf2, s2, mt, m1, m2;
    const unsigned char *w;
    __m128i v, gid, gt, g1;
    int amount_first;
    if (FF_UNLIKELY(end - p < 49))
        return NULL;
    nd = ff_tr_nondigits48(p);
    if (!ff_eq(p, "{\"id\":", 6))
        return NULL;
    /* the id: digits from 6 to the first non-digit n1, then ``,"time":`` */
    n1 = (uint64_t)__builtin_ctzll(nd & ~0x3FULL);       /* 6..48 */
    if (FF_UNLIKELY(n1 - 7 > 15 || (p[6] == '0' && n1 > 7)))  /* 1..16 digits */
        return NULL;
    if (!ff_eq(p + n1, ",\"time\":", 8))
        return NULL;
    gid = ff_tr_gather(p, n1, 0, 0, n1 - 6);             /* reads from p - 9 */
    /* the time: a bare number from s = n1 + 8 (<= 30) to e; then ``,"amount":"`` or
     * ``,"price":"`` and the second window from the first decimal */
    s = n1 + 8;
    e = ff_tr_span(p, nd, s, &a, &d);
    nft = e - a - d;
    /* (then e <= 30 + 17 < 48: the byte after the time is in the window) */
    if (FF_UNLIKELY(a == s || e - s - d > 16 || (d && nft == 0) || (p[s] == '0' && a - s > 1)))
        return NULL;
    gt = ff_tr_gather(p, e, d, nft, e - s - d);
    if (FF_UNLIKELY(end - (p + e) < 12 + 49))
        return NULL;
    if (ff_eq(p + e, ",\"amount\":\"", 11)) {
        amount_first = 1;
        w = p + e + 11;
    } else if (ff_eq(p + e, ",\"price\":\"", 10)) {
        amount_first = 0;
        w = p + e + 10;
    } else {
        return NULL;
    }
    nd = ff_tr_nondigits48(w);
    /* the first decimal: from 0 to e1, then ``","price":"`` or ``","amount":"`` */
    e1 = ff_tr_span(w, nd, 0, &a1, &d1);
    nf1 = e1 - a1 - d1;
    if (FF_UNLIKELY(a1 == 0 || e1 > 36 || e1 - d1 > 16))
        return NULL;
    if (amount_first) {
        if (!ff_eq(w + e1, "\",\"price\":\"", 11))
            return NULL;
        s2 = e1 + 11;
    } else {
        if (!ff_eq(w + e1, "\",\"amount\":\"", 12))
            return NULL;
        s2 = e1 + 12;
    }
    g1 = ff_tr_gather(w, e1, d1, nf1, e1 - d1);          /* reads from w - 15 */
    /* the second decimal: from s2 (<= 48) to e2, then ``","type":"buy"}`` or "sell" */
    e2 = ff_tr_span(w, nd, s2, &a2, &d2);
    nf2 = e2 - a2 - d2;
    if (FF_UNLIKELY(a2 == s2 || e2 >= 48 || e2 - s2 - d2 > 16 || end - (w + e2) < 16))
        return NULL;
    /* the id and the time; the two decimals */
    v = ff_tr_conv16x2(gid, gt);
    *id = (int64_t)_mm_cvtsi128_si64(v);                 /* < 10**16 */
    mt = (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(v, v));
    v = ff_tr_conv16x2(g1, ff_tr_gather(w, e2, d2, nf2, e2 - s2 - d2));
    m1 = (uint64_t)_mm_cvtsi128_si64(v);
    m2 = (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(v, v));
    if (FF_UNLIKELY((mt | m1 | m2) > 9007199254740992ULL &&
                    (mt > 9007199254740992ULL || m1 > 9007199254740992ULL ||
                     m2 > 9007199254740992ULL)))
        return NULL;                                     /* beyond exact doubles */
    if (FF_UNLIKELY((amount_first ? m2 : m1) == 0))
        return NULL;                                     /* a price of zero */
    w += e2;
    if (ff_eq(w, "\",\"type\":\"buy\"}", 15)) {
        *side = 1;
        w += 15;
    } else if (ff_eq(w, "\",\"type\":\"sell\"}", 16)) {
        *side = -1;
        w += 16;
    } else {
        return NULL;
    }
    /* each the correctly rounded m / 10**nf of two exact doubles */
    *time = (double)(int64_t)mt / ff_pow10d[nft];
    {
        __m128d q = _mm_div_pd(_mm_set_pd((double)(int64_t)m2, (double)(int64_t)m1),
                               _mm_set_pd(ff_pow10d[nf2], ff_pow10d[nf1]));
        if (amount_first) {
            _mm_store_sd(amount, q);
            _mm_storeh_pd(price, q);
        } else {
            _mm_store_sd(price, q);
            _mm_storeh_pd(amount, q);
        }
    }
    return w;
}
#else
#define FF_TRADE 0
#define FF_TRADE_BEFORE 16
/* no SSE2 reader here: the caller reads every trade key by key */
FF_INLINE const unsigned char *ff_trade(const unsigned char *p, const unsigned char *end,
                                        int64_t *id, double *time, double *price,
                                        double *amount, int8_t *side)
{
    (void)p; (void)end; (void)id; (void)time; (void)price; (void)amount; (void)side;
    return NULL;
}
#endif

#endif /* FASTFEED_FASTTRADE_H */
