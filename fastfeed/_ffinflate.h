/* fastfeed's own zlib (RFC 1950/1951) decoder for small, independent frames: the
 * "builtin" inflate backend (fastfeed/_inflate.pyx).
 *
 * Why: a DigiFinex frame is ~150 bytes of deflate, most of it one dynamic-Huffman block
 * whose header (~40 bytes) differs from frame to frame. General inflaters (zlib, ISA-L,
 * libdeflate) spend most of such a frame building large decode tables (ISA-L: ~2/3 of its
 * instructions). Here the tables are sized to the code actually sent: the main table has
 * 2^min(longest code, 10) entries (litlen; 2^min(longest, 8) for distances), longer codes
 * go to second-level tables, and the fixed-Huffman tables are built once.
 *
 * Contract: ff_inflate() decides only the clean case. It returns FF_OK when the input is
 * exactly one complete zlib stream (zlib's header rules with a 32 KiB window, no preset
 * dictionary; complete Huffman codes; every distance within the output; the Adler-32
 * trailer matching; no byte after it) whose output fits in out_cap; FF_NOSPACE when the
 * output did not fit (the caller may retry with a larger buffer); FF_UNSURE for anything
 * else (corrupt, truncated, trailing data, stored blocks, incomplete codes that zlib may
 * accept, ...): the caller then hands the frame to zlib, which names the reason. So the
 * results (output and every rejection) are zlib's by construction, as for the other
 * backends.
 *
 * Memory safety: every read is bounded by the input end (bytes past it read as zero and
 * are counted; a stream that consumes any of them is refused), every write by out_cap,
 * every table index by the table sizes below, every back-reference by the output so far.
 */
#ifndef FASTFEED_FFINFLATE_H
#define FASTFEED_FFINFLATE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FF_OK 0
#define FF_NOSPACE 1
#define FF_UNSURE 2

#define FF_LIT_BITS 10     /* main-table bits, litlen */
#define FF_DIST_BITS 8     /* main-table bits, distances */
#define FF_MAXLEN 15
#define FF_NLIT 288
#define FF_NDIST 32
/* second-level space: each prefix gets 2^(longest - main bits) entries; at most one prefix
 * per symbol longer than the main bits */
#define FF_LIT_SIZE ((1 << FF_LIT_BITS) + FF_NLIT * (1 << (FF_MAXLEN - FF_LIT_BITS)))
#define FF_DIST_SIZE ((1 << FF_DIST_BITS) + FF_NDIST * (1 << (FF_MAXLEN - FF_DIST_BITS)))

/* output room for the decode loop's fast path: 2 literals, or a match (<= 258 bytes)
 * copied 8 bytes at a time (<= 7 beyond) */
#define FF_FAST_ROOM (258 + 8 + 8)

/* table entry: bits 0-7 code length (0: no code), bit 8 second-level pointer,
 * bits 12-15 second-level index bits, bits 16-31 symbol or second-level start */
#define FF_SUB 0x100u

typedef struct {
    uint32_t lit[FF_LIT_SIZE];
    uint32_t dist[FF_DIST_SIZE];
    uint32_t fixed_lit[1 << 9];
    uint32_t fixed_dist[1 << 5];
    unsigned lit_bits, dist_bits;   /* main-table bits of the current dynamic tables */
} ff_tables;

static const uint16_t ff_len_base[29] = {
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
    35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t ff_len_extra[29] = {
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
    3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t ff_dist_base[30] = {
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193,
    257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t ff_dist_extra[30] = {
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6,
    7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
static const uint8_t ff_cl_order[19] = {
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};

#define FF_R2(n) n, n + 2 * 64, n + 1 * 64, n + 3 * 64
#define FF_R4(n) FF_R2(n), FF_R2(n + 2 * 16), FF_R2(n + 1 * 16), FF_R2(n + 3 * 16)
#define FF_R6(n) FF_R4(n), FF_R4(n + 2 * 4), FF_R4(n + 1 * 4), FF_R4(n + 3 * 4)
static const uint8_t ff_rev8[256] = {FF_R6(0), FF_R6(2), FF_R6(1), FF_R6(3)};
#undef FF_R2
#undef FF_R4
#undef FF_R6

/* the low len (1..15) bits of code, reversed */
static inline uint32_t ff_rev(uint32_t code, unsigned len)
{
    uint32_t r = ((uint32_t)ff_rev8[code & 0xFF] << 8) | ff_rev8[(code >> 8) & 0xFF];
    return r >> (16 - len);
}

/* Build a decode table for lens[0..n) into table (main bits: min(longest, max_bits);
 * capacity cap entries). Only complete codes are accepted (zlib's encoder never sends
 * anything else for these frames; an incomplete or over-subscribed code -> 0, and the
 * caller defers to zlib). Returns the main-table bits, 0 on refusal. */
static inline int ff_build(uint32_t *table, size_t cap, const uint8_t *lens, unsigned n,
                           unsigned max_bits, const unsigned *counts)
{
    unsigned count[FF_MAXLEN + 1];
    unsigned offs[FF_MAXLEN + 2];
    uint16_t sorted[2 * FF_NLIT];       /* used symbols, then a scratch area for unused ones */
    unsigned s, len, longest = 0, bits, sub_bits;
    int left = 1;
    if (counts) {
        memcpy(count, counts, sizeof(count));
    } else {
        memset(count, 0, sizeof(count));
        for (s = 0; s < n; s++)
            count[lens[s]]++;
    }
    for (len = 1; len <= FF_MAXLEN; len++) {
        left = (left << 1) - (int)count[len];
        if (left < 0)
            return 0;                  /* over-subscribed */
        if (count[len])
            longest = len;
    }
    if (left != 0)
        return 0;                      /* incomplete (or empty): zlib decides */
    bits = longest < max_bits ? longest : max_bits;
    sub_bits = longest - bits;
    offs[1] = 0;
    for (len = 1; len <= FF_MAXLEN; len++)
        offs[len + 1] = offs[len] + count[len];
    /* unused symbols (length 0) are sorted into a scratch area after the used ones, so the
     * loop has no data-dependent branch but the 8-zeros skip (most symbols are unused) */
    offs[0] = FF_NLIT;
    for (s = 0; s + 8 <= n; s += 8) {
        uint64_t w;
        unsigned k;
        memcpy(&w, lens + s, 8);
        if (w == 0)
            continue;
        for (k = s; k < s + 8; k++)
            sorted[offs[lens[k]]++] = (uint16_t)k;
    }
    for (; s < n; s++)
        sorted[offs[lens[s]]++] = (uint16_t)s;
    /* offs[len] is now the end of length len's run; walk the codes in canonical order */
    {
        uint32_t code = 0;             /* canonical code, MSB-first */
        unsigned i = 0;
        size_t next_sub = (size_t)1 << bits;
        /* codes of length <= bits: each stored once in a table of 2^len entries, which is
         * doubled (copied onto its upper half) before the next length; so after length
         * `bits` every entry holds the code its low bits begin with, or (entries no code
         * of <= bits covers; a complete code makes each the prefix of longer codes) is
         * overwritten below by a second-level pointer */
        for (len = 1; len <= bits; len++) {
            unsigned end = offs[len];
            for (; i < end; i++, code++)
                table[ff_rev(code, len)] = ((uint32_t)sorted[i] << 16) | len;
            if (len < bits) {
                memcpy(table + ((size_t)1 << len), table, sizeof(uint32_t) << len);
                code <<= 1;
            }
        }
        {
            uint32_t cur_prefix = 0xFFFFFFFFu;
            size_t sub_start = 0;
            for (len = bits + 1; len <= longest; len++) {
                unsigned end = offs[len];
                code <<= 1;
                for (; i < end; i++, code++) {
                    uint32_t r, step, j, entry = ((uint32_t)sorted[i] << 16) | len;
                    uint32_t prefix = code >> (len - bits);   /* the first `bits` bits */
                    if (prefix != cur_prefix) {
                        cur_prefix = prefix;
                        sub_start = next_sub;
                        next_sub += (size_t)1 << sub_bits;
                        if (next_sub > cap || sub_start > 0xFFFF)
                            return 0;  /* cannot happen within the sizes above */
                        table[ff_rev(prefix, bits)] =
                            ((uint32_t)sub_start << 16) | (sub_bits << 12) | FF_SUB | bits;
                    }
                    /* the remaining len - bits bits, reversed, replicated over sub_bits */
                    r = ff_rev(code & ((1u << (len - bits)) - 1), len - bits);
                    step = 1u << (len - bits);
                    for (j = r; j < (1u << sub_bits); j += step)
                        table[sub_start + j] = entry;
                }
            }
        }
    }
    return (int)bits;
}

static inline void ff_tables_init(ff_tables *t)
{
    uint8_t lens[FF_NLIT];
    unsigned i;
    for (i = 0; i < 144; i++) lens[i] = 8;
    for (; i < 256; i++) lens[i] = 9;
    for (; i < 280; i++) lens[i] = 7;
    for (; i < 288; i++) lens[i] = 8;
    ff_build(t->fixed_lit, 1 << 9, lens, 288, 9, NULL);
    for (i = 0; i < 32; i++) lens[i] = 5;
    ff_build(t->fixed_dist, 1 << 5, lens, 32, 5, NULL);
    t->lit_bits = t->dist_bits = 0;
}

static inline uint32_t ff_adler32(const uint8_t *p, size_t n)
{
    uint32_t a = 1, b = 0;
    while (n) {
        size_t k = n < 5552 ? n : 5552;
        n -= k;
        while (k >= 4) {
            a += p[0]; b += a;
            a += p[1]; b += a;
            a += p[2]; b += a;
            a += p[3]; b += a;
            p += 4;
            k -= 4;
        }
        while (k--) {
            a += *p++;
            b += a;
        }
        a %= 65521;
        b %= 65521;
    }
    return (b << 16) | a;
}

/* bit reader state (locals of ff_inflate) */
#define FF_REFILL()                                                                    \
    do {                                                                               \
        if ((size_t)(in_end - in_next) >= 8) {                                         \
            uint64_t w_;                                                               \
            memcpy(&w_, in_next, 8);                                                   \
            bitbuf |= w_ << bitcount;   /* little-endian hosts only (checked below) */ \
            in_next += (63 - bitcount) >> 3;                                           \
            bitcount |= 56;                                                            \
        } else {                                                                       \
            while (bitcount < 56) {                                                    \
                if (in_next < in_end)                                                  \
                    bitbuf |= (uint64_t)(*in_next++) << bitcount;                      \
                else if (++overrun > 8)                                                \
                    return FF_UNSURE;  /* the stream reads past its end */             \
                bitcount += 8;                                                         \
            }                                                                          \
        }                                                                              \
    } while (0)
#define FF_BITS(n) ((uint32_t)(bitbuf & ((1ull << (n)) - 1)))
#define FF_DROP(n) (bitbuf >>= (n), bitcount -= (n))

/* Inflate one zlib stream: see the contract at the top. out_len: bytes written (FF_OK). */
static inline int ff_inflate(ff_tables *t, const uint8_t *in, size_t in_len, uint8_t *out,
                      size_t out_cap, size_t *out_len)
{
    const uint8_t *in_next, *in_end = in + in_len;
    uint8_t *out_next = out, *out_end = out + out_cap;
    uint64_t bitbuf = 0;
    unsigned bitcount = 0, overrun = 0;
    unsigned bfinal = 0;
    size_t used;
    uint32_t want;
    {   /* little-endian check (compile-time constant) */
        const uint16_t one = 1;
        if (*(const uint8_t *)&one != 1)
            return FF_UNSURE;
    }
    if (in_len < 2 + 2 + 4)
        return FF_UNSURE;
    /* zlib's header rules (windowBits 15): deflate, window <= 32K, check bits, no dict */
    if ((in[0] & 0x0F) != 8 || (in[0] >> 4) > 7 || ((in[0] << 8) | in[1]) % 31 != 0
        || (in[1] & 0x20))
        return FF_UNSURE;
    in_next = in + 2;
    do {
        const uint32_t *lt, *dt;
        unsigned lbits, dbits;
        uint32_t lmask, dmask;
        FF_REFILL();
        bfinal = FF_BITS(1);
        FF_DROP(1);
        switch (FF_BITS(2)) {
        case 1:
            FF_DROP(2);
            lt = t->fixed_lit;
            dt = t->fixed_dist;
            lbits = 9;
            dbits = 5;
            break;
        case 2: {
            uint8_t lens[FF_NLIT + FF_NDIST];
            uint8_t cl_lens[19];
            uint32_t cl_table[1 << 7];
            unsigned lcount[FF_MAXLEN + 1], dcount[FF_MAXLEN + 1];
            unsigned hlit, hdist, hclen, i, n, cl_bits;
            FF_DROP(2);
            hlit = FF_BITS(5) + 257;
            FF_DROP(5);
            hdist = FF_BITS(5) + 1;
            FF_DROP(5);
            hclen = FF_BITS(4) + 4;
            FF_DROP(4);
            if (hlit > 286 || hdist > 30)
                return FF_UNSURE;
            memset(cl_lens, 0, sizeof(cl_lens));
            for (i = 0; i < hclen; i++) {
                if (bitcount < 3)
                    FF_REFILL();
                cl_lens[ff_cl_order[i]] = (uint8_t)FF_BITS(3);
                FF_DROP(3);
            }
            cl_bits = (unsigned)ff_build(cl_table, 1 << 7, cl_lens, 19, 7, NULL);
            if (cl_bits == 0)
                return FF_UNSURE;
            n = hlit + hdist;
            i = 0;
            memset(lcount, 0, sizeof(lcount));
            memset(dcount, 0, sizeof(dcount));
            memset(lens, 0, sizeof(lens));     /* runs of zeros (17, 18) only move i */
            while (i < n) {
                uint32_t e, sym, rep;
                uint8_t val;
                if (bitcount < 7 + 7)
                    FF_REFILL();
                e = cl_table[FF_BITS(cl_bits)];
                FF_DROP(e & 0xFF);
                sym = e >> 16;
                if (sym < 16) {
                    if (i < hlit)
                        lcount[sym]++;
                    else
                        dcount[sym]++;
                    lens[i++] = (uint8_t)sym;
                    continue;
                }
                if (sym == 16) {
                    if (i == 0)
                        return FF_UNSURE;
                    val = lens[i - 1];
                    rep = 3 + FF_BITS(2);
                    FF_DROP(2);
                } else if (sym == 17) {
                    val = 0;
                    rep = 3 + FF_BITS(3);
                    FF_DROP(3);
                } else {
                    val = 0;
                    rep = 11 + FF_BITS(7);
                    FF_DROP(7);
                }
                if (rep > n - i)
                    return FF_UNSURE;
                if (val)
                    memset(lens + i, val, rep);
                if (i + rep <= hlit) {
                    lcount[val] += rep;
                } else if (i >= hlit) {
                    dcount[val] += rep;
                } else {               /* a run across the litlen/distance boundary */
                    lcount[val] += hlit - i;
                    dcount[val] += i + rep - hlit;
                }
                i += rep;
            }
            if (lens[256] == 0)
                return FF_UNSURE;      /* no end-of-block code */
            lbits = (unsigned)ff_build(t->lit, FF_LIT_SIZE, lens, hlit, FF_LIT_BITS, lcount);
            if (lbits == 0)
                return FF_UNSURE;
            dbits = (unsigned)ff_build(t->dist, FF_DIST_SIZE, lens + hlit, hdist, FF_DIST_BITS,
                                       dcount);
            if (dbits == 0)
                return FF_UNSURE;
            lt = t->lit;
            dt = t->dist;
            break;
        }
        default:                       /* stored blocks (rare here) and btype 3: zlib */
            return FF_UNSURE;
        }
        lmask = (1u << lbits) - 1;
        dmask = (1u << dbits) - 1;
        for (;;) {
            uint32_t e, sym, length, dist;
            uint8_t *src;
            if ((size_t)(in_end - in_next) >= 8 && (size_t)(out_end - out_next) >= FF_FAST_ROOM) {
                /* fast: 8 input bytes to refill from without checks (>= 56 bits), room for
                 * two literals or a longest match with the 8-byte copy's slack */
                uint64_t w;
                memcpy(&w, in_next, 8);
                bitbuf |= w << bitcount;
                in_next += (63 - bitcount) >> 3;
                bitcount |= 56;
                e = lt[bitbuf & lmask];
                if (e & FF_SUB)
                    e = lt[(e >> 16) + ((uint32_t)(bitbuf >> lbits) & ((1u << ((e >> 12) & 15)) - 1))];
                FF_DROP(e & 0xFF);
                sym = e >> 16;
                if (sym < 256) {
                    *out_next++ = (uint8_t)sym;
                    /* >= 41 bits left: a second literal needs no refill */
                    e = lt[bitbuf & lmask];
                    if (e & FF_SUB)
                        e = lt[(e >> 16) + ((uint32_t)(bitbuf >> lbits) & ((1u << ((e >> 12) & 15)) - 1))];
                    if ((e >> 16) < 256) {
                        FF_DROP(e & 0xFF);
                        *out_next++ = (uint8_t)(e >> 16);
                    }
                    continue;
                }
                /* a length/distance pair below needs <= 33 of the >= 41 bits left */
            } else {
                if (bitcount < 15)
                    FF_REFILL();       /* a litlen code */
                e = lt[bitbuf & lmask];
                if (e & FF_SUB)
                    e = lt[(e >> 16) + ((uint32_t)(bitbuf >> lbits) & ((1u << ((e >> 12) & 15)) - 1))];
                FF_DROP(e & 0xFF);
                sym = e >> 16;
                if (sym < 256) {
                    if (out_next == out_end)
                        return FF_NOSPACE;
                    *out_next++ = (uint8_t)sym;
                    continue;
                }
            }
            if (sym == 256)
                break;
            sym -= 257;
            if (sym >= 29)
                return FF_UNSURE;      /* length symbols 286, 287 */
            if (bitcount < 5 + 15 + 13)
                FF_REFILL();           /* the rest of a length/distance pair */
            length = ff_len_base[sym] + FF_BITS(ff_len_extra[sym]);
            FF_DROP(ff_len_extra[sym]);
            e = dt[bitbuf & dmask];
            if (e & FF_SUB)
                e = dt[(e >> 16) + ((uint32_t)(bitbuf >> dbits) & ((1u << ((e >> 12) & 15)) - 1))];
            FF_DROP(e & 0xFF);
            sym = e >> 16;
            if (sym >= 30)
                return FF_UNSURE;      /* distance symbols 30, 31 */
            dist = ff_dist_base[sym] + FF_BITS(ff_dist_extra[sym]);
            FF_DROP(ff_dist_extra[sym]);
            if (dist > (size_t)(out_next - out))
                return FF_UNSURE;      /* reaches before the frame's output */
            if (length > (size_t)(out_end - out_next))
                return FF_NOSPACE;
            src = out_next - dist;
            if (dist >= 8 && (size_t)(out_end - out_next) >= length + 8) {
                uint8_t *stop = out_next + length;
                do {                   /* 8 bytes at a time, may write up to 7 beyond */
                    uint64_t w;
                    memcpy(&w, src, 8);
                    memcpy(out_next, &w, 8);
                    src += 8;
                    out_next += 8;
                } while (out_next < stop);
                out_next = stop;
            } else {
                do {
                    *out_next++ = *src++;
                } while (--length);
            }
        }
    } while (!bfinal);
    /* to a byte boundary; bytes fed to the bit buffer and not consumed go back */
    FF_DROP(bitcount & 7);
    used = (size_t)(in_next - in) + overrun - (bitcount >> 3);
    if (used + 4 != in_len)
        return FF_UNSURE;              /* truncated, or trailing bytes: zlib names it */
    want = ((uint32_t)in[used] << 24) | ((uint32_t)in[used + 1] << 16)
           | ((uint32_t)in[used + 2] << 8) | in[used + 3];
    if (ff_adler32(out, (size_t)(out_next - out)) != want)
        return FF_UNSURE;
    *out_len = (size_t)(out_next - out);
    return FF_OK;
}

#undef FF_REFILL
#undef FF_BITS
#undef FF_DROP

#endif
