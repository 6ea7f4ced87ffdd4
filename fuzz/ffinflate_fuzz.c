/* Differential fuzzer for fastfeed's builtin inflate (fastfeed/_ffinflate.h) against zlib.
 *
 * Each input is run through ff_inflate() with several out_caps (0, 1, 7, the zlib output
 * size -1/+0/+1, 300, 64 KiB), each output buffer malloc'ed at exactly out_cap bytes so
 * that AddressSanitizer sees any write or read beyond it, and compared with zlib's
 * one-call inflate (windowBits 15, the frame's full output):
 *   - FF_OK      => zlib accepts the whole input (Z_STREAM_END, no byte left over) with
 *                   byte-identical output, and out_len <= out_cap;
 *   - FF_NOSPACE => not (zlib accepts and its output fits out_cap);
 *   - never a sanitizer report, never a hang (libFuzzer -timeout).
 *
 * Input: byte 0 picks the mode.
 *   0 mod 4: raw mode, bytes 1.. are the frame as is;
 *   2 mod 4: built mode, bytes 1.. choose HLIT, HDIST, the code lengths (as the
 *         code-length symbols 0..18, with repeats) and then the symbols of one dynamic
 *         block, which the harness encodes; the Adler-32 trailer is that of zlib's raw
 *         inflate of it, so odd codes (long, incomplete, over-subscribed) reach the clean
 *         path;
 *   odd:  structured mode, bytes 1..4 are zlib settings (level, strategy, windowBits,
 *         memLevel) and a mutation count k, then k (position, xor) byte pairs (positions
 *         are 16-bit), then the payload; the payload is zlib-compressed with those
 *         settings, and the k mutations are applied to the compressed frame.
 *
 * Build (libFuzzer, see docs/fuzzing.md):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *       -I fastfeed fuzz/ffinflate_fuzz.c -lz -o build/ffinflate_fuzz
 * Standalone (any C compiler; a fixed-seed random run, used by tests/test_ffinflate_fuzz.py):
 *   cc -DFF_FUZZ_STANDALONE -O1 -fsanitize=address,undefined -I fastfeed \
 *       fuzz/ffinflate_fuzz.c -lz -o build/ffinflate_fuzz_sa
 *   build/ffinflate_fuzz_sa SEED ITERATIONS [CORPUS_FILE...]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "_ffinflate.h"

/* MemorySanitizer (clang -fsanitize=memory, catches a decode that reads a table entry or an
 * output byte never written): zlib itself is not instrumented, so what it writes is marked
 * initialised by hand */
#if defined(__has_feature)
#if __has_feature(memory_sanitizer)
#include <sanitizer/msan_interface.h>
#define FF_UNPOISON(p, n) __msan_unpoison((p), (n))
#endif
#endif
#ifndef FF_UNPOISON
#define FF_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define REF_CAP (1u << 20)

static ff_tables *g_tables;
static uint8_t *g_ref;
static unsigned long g_stat_ok, g_stat_nospace, g_stat_unsure, g_stat_zok;

static void die(const char *what, const uint8_t *in, size_t n, size_t cap)
{
    size_t i;
    fprintf(stderr, "ffinflate_fuzz: %s (in_len %zu, out_cap %zu)\ninput:", what, n, cap);
    for (i = 0; i < n; i++)
        fprintf(stderr, "%02x", in[i]);
    fprintf(stderr, "\n");
    abort();
}

/* zlib's verdict: 1 and *out_len when the whole input is one accepted zlib stream */
static int ref_inflate(const uint8_t *in, size_t n, size_t *out_len)
{
    z_stream s;
    int rc;
    memset(&s, 0, sizeof(s));
    if (inflateInit2(&s, 15) != Z_OK)
        abort();
    s.next_in = (Bytef *)in;
    s.avail_in = (uInt)n;
    s.next_out = g_ref;
    s.avail_out = REF_CAP;
    FF_UNPOISON(&s, sizeof(s));
    rc = inflate(&s, Z_FINISH);
    FF_UNPOISON(&s, sizeof(s));
    *out_len = REF_CAP - s.avail_out;
    FF_UNPOISON(g_ref, *out_len);
    inflateEnd(&s);
    return rc == Z_STREAM_END && s.avail_in == 0;
}

static void check(const uint8_t *in, size_t n)
{
    size_t ref_len = 0, caps[8], i;
    int zok;
    if (!g_tables) {
        g_tables = (ff_tables *)malloc(sizeof(ff_tables));
        g_ref = (uint8_t *)malloc(REF_CAP);
        if (!g_tables || !g_ref)
            abort();
        ff_tables_init(g_tables);
    }
    zok = ref_inflate(in, n, &ref_len);
    g_stat_zok += zok;
    caps[0] = 0;
    caps[1] = 1;
    caps[2] = 7;
    caps[3] = ref_len ? ref_len - 1 : 2;
    caps[4] = ref_len;
    caps[5] = ref_len + 1;
    caps[6] = 300;
    caps[7] = 1 << 16;
    for (i = 0; i < 8; i++) {
        size_t cap = caps[i], out_len = (size_t)-1;
        /* exactly cap bytes (malloc(0) may return NULL; ff_inflate must not touch it) */
        uint8_t *out = (uint8_t *)malloc(cap ? cap : 1);
        uint8_t *buf = cap ? out : out + 1;
        int r;
        if (!out)
            abort();
        r = ff_inflate(g_tables, in, n, cap ? out : buf, cap, &out_len);
        if (r == FF_OK) {
            g_stat_ok++;
            if (!zok)
                die("FF_OK but zlib rejects", in, n, cap);
            if (out_len != ref_len || out_len > cap)
                die("FF_OK with another output length than zlib", in, n, cap);
            if (out_len && memcmp(out, g_ref, out_len) != 0)
                die("FF_OK with other output bytes than zlib", in, n, cap);
        } else if (r == FF_NOSPACE) {
            g_stat_nospace++;
            if (zok && ref_len <= cap)
                die("FF_NOSPACE but zlib's output fits", in, n, cap);
        } else if (r == FF_UNSURE) {
            g_stat_unsure++;
        } else {
            die("unknown return code", in, n, cap);
        }
        free(out);
    }
}

/* structured mode: compress the payload with the given settings, then mutate */
static void structured(const uint8_t *data, size_t size)
{
    z_stream s;
    int level, strategy, wbits, memlevel;
    size_t k, i, plen, bound;
    const uint8_t *muts, *payload;
    uint8_t *comp;
    if (size < 5)
        return;
    level = data[0] % 11 - 1;                      /* -1..9 */
    strategy = data[1] % 5;                        /* Z_DEFAULT .. Z_FIXED */
    wbits = 9 + data[2] % 7;                       /* 9..15 */
    memlevel = 1 + data[3] % 9;                    /* 1..9 */
    k = data[4] % 8;
    data += 5;
    size -= 5;
    if (size < 3 * k)
        k = size / 3;
    muts = data;
    payload = data + 3 * k;
    plen = size - 3 * k;
    memset(&s, 0, sizeof(s));
    if (deflateInit2(&s, level, Z_DEFLATED, wbits, memlevel, strategy) != Z_OK)
        return;
    /* deflateBound() is not an upper bound for every memLevel/windowBits pair */
    bound = deflateBound(&s, (uLong)plen) * 2 + 1024;
    comp = (uint8_t *)malloc(bound);
    if (!comp)
        abort();
    s.next_in = (Bytef *)payload;
    s.avail_in = (uInt)plen;
    s.next_out = comp;
    s.avail_out = (uInt)bound;
    FF_UNPOISON(&s, sizeof(s));
    if (deflate(&s, Z_FINISH) != Z_STREAM_END)
        abort();
    FF_UNPOISON(&s, sizeof(s));
    bound = s.total_out;
    FF_UNPOISON(comp, bound);
    deflateEnd(&s);
    for (i = 0; i < k; i++) {
        size_t pos = ((size_t)muts[3 * i] << 8 | muts[3 * i + 1]) % bound;
        comp[pos] ^= muts[3 * i + 2];
    }
    check(comp, bound);
    free(comp);
}

/* built mode: one dynamic block whose code lengths the input chooses directly */
typedef struct {
    uint8_t *buf;
    size_t cap, n;
    uint64_t acc;
    unsigned cnt;
} bitw;

static void put(bitw *w, uint32_t v, unsigned nbits)
{
    w->acc |= (uint64_t)(v & ((1u << nbits) - 1)) << w->cnt;
    w->cnt += nbits;
    while (w->cnt >= 8) {
        if (w->n < w->cap)
            w->buf[w->n++] = (uint8_t)w->acc;
        w->acc >>= 8;
        w->cnt -= 8;
    }
}

/* canonical codes (RFC 1951 3.2.2), bit-reversed for LSB-first output; garbage but
 * bounded for over-subscribed lengths */
static void canon(const uint8_t *lens, unsigned n, uint16_t *codes)
{
    unsigned count[16] = {0}, next[16], s, l, c = 0;
    for (s = 0; s < n; s++)
        count[lens[s]]++;
    count[0] = 0;
    for (l = 1; l < 16; l++) {
        c = (c + count[l - 1]) << 1;
        next[l] = c;
    }
    for (s = 0; s < n; s++) {
        uint32_t code, r = 0;
        if (!lens[s])
            continue;
        code = next[lens[s]]++;
        for (l = 0; l < lens[s]; l++)
            r |= ((code >> l) & 1) << (lens[s] - 1 - l);
        codes[s] = (uint16_t)r;
    }
}

static void put_sym(bitw *w, const uint8_t *lens, const uint16_t *codes, unsigned s, uint8_t raw)
{
    if (lens[s])
        put(w, codes[s], lens[s]);
    else
        put(w, raw, 1 + raw % 9);              /* no code: some bits instead */
}

static void built(const uint8_t *d, size_t size)
{
    /* code-length code: complete, 13 lengths of 4 and 6 of 5 (or one changed by d[2]) */
    static const uint8_t cl_order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13,
                                         2, 14, 1, 15};
    uint8_t cl_lens[19], lens[320], out[65536 + 8];
    uint16_t cl_codes[19], codes[320];
    unsigned hlit, hdist, i, k, n;
    size_t p = 3;
    bitw w;
    z_stream z;
    if (size < 3)
        return;
    hlit = 257 + d[0] % 32;
    hdist = 1 + d[1] % 32;
    for (i = 0; i < 19; i++)
        cl_lens[i] = i < 13 ? 4 : 5;
    if (d[2] & 0x80)
        cl_lens[d[2] % 19] = (uint8_t)((d[2] >> 3) & 7);
    canon(cl_lens, 19, cl_codes);
    memset(lens, 0, sizeof(lens));
    memset(codes, 0, sizeof(codes));
    w.buf = out + 2;
    w.cap = 65536;
    w.n = 0;
    w.acc = 0;
    w.cnt = 0;
    out[0] = 0x78;
    out[1] = 0x9C;
    put(&w, 1, 1);                             /* BFINAL */
    put(&w, 2, 2);                             /* dynamic */
    put(&w, hlit - 257, 5);
    put(&w, hdist - 1, 5);
    put(&w, 15, 4);                            /* HCLEN: 19 */
    for (i = 0; i < 19; i++)
        put(&w, cl_lens[cl_order[i]], 3);
    n = hlit + hdist;
    for (i = 0; i < n && p < size;) {
        uint8_t v = d[p++];
        unsigned sym, extra = 0, ebits = 0, rep = 0;
        if (v >= 0xF0) {
            sym = 16, extra = v & 3, ebits = 2, rep = 3 + extra;
        } else if (v >= 0xE8) {
            sym = 17, extra = v & 7, ebits = 3, rep = 3 + extra;
        } else if (v >= 0xE0) {
            sym = 18, extra = (v & 7) * 17, ebits = 7, rep = 11 + extra;
        } else {
            sym = v % 16;
        }
        put_sym(&w, cl_lens, cl_codes, sym, v);
        if (ebits)
            put(&w, extra, ebits);
        if (sym < 16) {
            lens[i++] = (uint8_t)sym;
        } else {
            uint8_t val = sym == 16 && i ? lens[i - 1] : 0;
            for (k = 0; k < rep && i < 320; k++)
                lens[i++] = val;
        }
    }
    canon(lens, hlit < 320 ? hlit : 320, codes);
    if (hlit < 320)
        canon(lens + hlit, hdist <= 320 - hlit ? hdist : 320 - hlit, codes + hlit);
    /* symbols: 2 bytes each (which, and extra bits); a length also takes a distance byte */
    while (p + 2 <= size && w.n < 60000) {
        unsigned s = (d[p] << 8 | d[p + 1]) % hlit;
        uint8_t e = d[p + 1];
        p += 2;
        put_sym(&w, lens, codes, s, e);
        if (s > 256 && s < 286 && p < size) {
            static const uint8_t lext[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                             2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
            unsigned ds = d[p] % hdist, de = d[p] >> 1;
            p++;
            put(&w, e, lext[s - 257]);
            put_sym(&w, lens + hlit, codes + hlit, ds, d[p - 1]);
            if (ds < 30)
                put(&w, de | (unsigned)e << 7, ds < 4 ? 0 : ds / 2 - 1);
        }
    }
    if (256 < hlit)
        put_sym(&w, lens, codes, 256, 0);
    put(&w, 0, 7);                             /* flush to a byte */
    n = (unsigned)w.n + 2;
    /* trailer: the Adler-32 of what zlib makes of it, so that a clean decode is possible */
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, -15) != Z_OK)
        abort();
    z.next_in = out + 2;
    z.avail_in = n - 2;
    z.next_out = g_ref;
    z.avail_out = REF_CAP;
    FF_UNPOISON(&z, sizeof(z));
    inflate(&z, Z_FINISH);
    FF_UNPOISON(&z, sizeof(z));
    FF_UNPOISON(g_ref, REF_CAP - z.avail_out);
    {
        uLong a = adler32(1, g_ref, (uInt)(REF_CAP - z.avail_out));
        n = 2 + (unsigned)(z.total_in);        /* cut at zlib's end (or where it stopped) */
        out[n++] = (uint8_t)(a >> 24);
        out[n++] = (uint8_t)(a >> 16);
        out[n++] = (uint8_t)(a >> 8);
        out[n++] = (uint8_t)a;
    }
    inflateEnd(&z);
    {
        uint8_t *copy = (uint8_t *)malloc(n);
        if (!copy)
            abort();
        memcpy(copy, out, n);
        check(copy, n);
        free(copy);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy;
    if (size == 0)
        return 0;
    if (data[0] & 1) {
        structured(data + 1, size - 1);
        return 0;
    }
    if (data[0] & 2) {
        built(data + 1, size - 1);
        return 0;
    }
    /* an exact-size copy, so that a read past the frame's end is caught */
    copy = (uint8_t *)malloc(size - 1 ? size - 1 : 1);
    if (!copy)
        abort();
    memcpy(copy, data + 1, size - 1);
    check(copy, size - 1);
    free(copy);
    return 0;
}

#ifdef FF_FUZZ_STANDALONE
/* A fixed-seed random run without libFuzzer: seeds (zlib frames of random text and bytes
 * with random settings, plus any corpus files given) mutated by bit flips, byte changes,
 * insertions, deletions, truncation, trailing bytes and splicing. Deterministic for a given seed. */
static uint64_t rng_state;
static uint32_t rnd(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}

static size_t compress_random(uint8_t *dst, size_t cap)
{
    static uint8_t payload[60000];
    /* mostly frame-sized; one in 16 up to 60000 bytes with copies from up to 32 KiB back
     * (the longest distances, outputs beyond the 64 KiB capacity) */
    size_t plen = rnd() % (rnd() % 16 ? 4096 : sizeof(payload)), i, alpha = 1 + rnd() % 64;
    size_t far = plen > 4096 ? 32768 : 8;
    z_stream s;
    for (i = 0; i < plen; i++) {
        if (i >= far && rnd() % 64 == 0) {     /* a run copied from far back */
            size_t from = i - 1 - rnd() % far, k = 3 + rnd() % 300;
            for (; k && i < plen; k--)
                payload[i++] = payload[from++];
            i--;
        } else {
            payload[i] = (uint8_t)((rnd() % 4 == 0 && i >= 8) ? payload[i - 1 - rnd() % 8]
                                                              : 32 + rnd() % alpha);
        }
    }
    memset(&s, 0, sizeof(s));
    if (deflateInit2(&s, (int)(rnd() % 11) - 1, Z_DEFLATED, 9 + (int)(rnd() % 7),
                     1 + (int)(rnd() % 9), (int)(rnd() % 5)) != Z_OK)
        abort();
    s.next_in = payload;
    s.avail_in = (uInt)plen;
    s.next_out = dst;
    s.avail_out = (uInt)cap;
    FF_UNPOISON(&s, sizeof(s));
    if (deflate(&s, Z_FINISH) != Z_STREAM_END)     /* sizeof(payload) * 2 < cap */
        abort();
    FF_UNPOISON(&s, sizeof(s));
    i = s.total_out;
    FF_UNPOISON(dst, i);
    deflateEnd(&s);
    return i;
}

/* FF_FUZZ_DUMP=DIR: also write every input to DIR (seeds for the libFuzzer build) */
static void dump(const uint8_t *p, size_t n, unsigned long it)
{
    const char *dir = getenv("FF_FUZZ_DUMP");
    char path[4096];
    FILE *f;
    if (!dir)
        return;
    snprintf(path, sizeof(path), "%s/sa-%lu", dir, it);
    f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n)
        abort();
    fclose(f);
}

/* lens[0..n): a random complete code (a random binary tree's leaf depths <= 15) over a
 * random subset of the symbols that includes `must` */
static void random_code(uint8_t *lens, unsigned n, unsigned must)
{
    uint8_t depth[320];
    unsigned leaves = 1, want = 2 + rnd() % (n - 1 < 2 ? 1 : n - 1), i, tries = 0;
    depth[0] = 0;
    if (want > n)
        want = n;
    while (leaves < want && tries++ < 100000) {
        i = rnd() % 2 ? leaves - 1 : rnd() % leaves;   /* deep chains too: long codes */
        if (depth[i] >= 15)
            continue;
        depth[i]++;
        depth[leaves++] = depth[i];
    }
    memset(lens, 0, n);
    for (i = 0; i < leaves; i++) {
        unsigned s = i == 0 ? must : rnd() % n;
        while (lens[s])
            s = (s + 1) % n;
        lens[s] = depth[i] ? depth[i] : 1;
    }
}

int main(int argc, char **argv)
{
    static uint8_t buf[140000], other[140000];
    unsigned long iters, it;
    int a;
    if (argc < 3) {
        fprintf(stderr, "usage: %s SEED ITERATIONS [FILE...]\n", argv[0]);
        return 2;
    }
    rng_state = strtoull(argv[1], NULL, 10) * 2654435761u + 1;
    iters = strtoul(argv[2], NULL, 10);
    for (a = 3; a < argc; a++) {               /* replay files as libFuzzer inputs */
        FILE *f = fopen(argv[a], "rb");
        size_t n;
        if (!f) {
            perror(argv[a]);
            return 2;
        }
        n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        LLVMFuzzerTestOneInput(buf, n);
    }
    for (it = 0; it < iters; it++) {
        size_t n, m, j, muts;
        if (it % 4 == 3) {                     /* built mode: random complete codes */
            unsigned hl = rnd() % 30, hd = rnd() % 30;
            buf[0] = 2;
            buf[1] = (uint8_t)hl;
            buf[2] = (uint8_t)hd;
            buf[3] = (uint8_t)(rnd() % 8 ? 0 : rnd());
            n = 3;
            random_code(buf + 1 + n, 257 + hl, 256);
            n += 257 + hl;
            random_code(buf + 1 + n, 1 + hd, 0);
            n += 1 + hd;
            if (rnd() % 8 == 0)                /* and sometimes a broken length */
                buf[4 + rnd() % (n - 3)] = (uint8_t)(rnd() % 16);
            for (m = 2 * (rnd() % 300); m; m--)
                buf[1 + n++] = (uint8_t)rnd();
            dump(buf, n + 1, it);
            LLVMFuzzerTestOneInput(buf, n + 1);
            continue;
        }
        n = compress_random(buf + 1, sizeof(buf) - 1 - 64);
        buf[0] = 0;
        muts = rnd() % 4;
        for (j = 0; j < muts; j++) {
            uint32_t op = rnd() % 8, pos = (uint32_t)(n ? rnd() % n : 0);
            switch (op) {
            case 0: case 1:
                buf[1 + pos] ^= (uint8_t)(1u << (rnd() % 8));
                break;
            case 2:
                buf[1 + pos] = (uint8_t)rnd();
                break;
            case 3:
                if (n) n = rnd() % n;
                break;
            case 4:
                if (n + 8 < sizeof(buf) - 1) {
                    memmove(buf + 2 + pos, buf + 1 + pos, n - pos);
                    buf[1 + pos] = (uint8_t)rnd();
                    n++;
                }
                break;
            case 5:
                if (n) {
                    memmove(buf + 1 + pos, buf + 2 + pos, n - pos - 1);
                    n--;
                }
                break;
            case 6:                            /* trailing bytes */
                m = 1 + rnd() % 8;
                if (n + m < sizeof(buf) - 1) {
                    while (m--)
                        buf[1 + n++] = (uint8_t)rnd();
                }
                break;
            default:                           /* splice: a prefix + another frame's tail */
                m = compress_random(other, sizeof(other));
                if (m) {
                    size_t from = rnd() % m, take = m - from;
                    if (pos + take > sizeof(buf) - 1)
                        take = sizeof(buf) - 1 - pos;
                    memcpy(buf + 1 + pos, other + from, take);
                    n = pos + take;
                }
                break;
            }
        }
        dump(buf, n + 1, it);
        LLVMFuzzerTestOneInput(buf, n + 1);
    }
    printf("iterations %lu ff_ok %lu ff_nospace %lu ff_unsure %lu zlib_ok %lu\n", iters,
           g_stat_ok, g_stat_nospace, g_stat_unsure, g_stat_zok);
    return 0;
}
#endif
