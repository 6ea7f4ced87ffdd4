/* Differential fuzzer for the parser fast path's level-at-a-time reader (ff_level32 in
 * fastfeed/_fastnum.h, x86-64 / SSE2) against its number-by-number path (ff_level_each)
 * and the C library's strtod (correctly rounded in glibc).
 *
 * Each iteration builds one depth level ``["P","A"]`` plus its separator from random
 * number texts (0..20 integer and fraction digits, all-zero, all-nine and leading-zero
 * digits, points or none, now and then an exponent, sign, space, quote, bracket or other
 * stray byte), after the 8 bytes ``"asks":[`` and followed by 0..39 more bytes, in a buffer
 * malloc'ed at exactly that size (AddressSanitizer sees any read before the message or
 * past its end). Whenever ff_level32 takes the level (returns k > 0):
 *   - ff_level_each takes it too, consumes the same k bytes, stores the same two doubles
 *     bit for bit and sees the same separator;
 *   - both doubles equal strtod() of the texts bit for bit.
 * ff_level32 may refuse any level (the caller then reads it number by number).
 *
 * Standalone, any C compiler on x86-64 (tests/test_fast_levels.py builds and runs it):
 *   cc -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -I fastfeed \
 *       fuzz/levels_fuzz.c -o build/levels_fuzz
 *   build/levels_fuzz SEED ITERATIONS
 * prints ``taken N refused M`` and exits 0, or prints the first disagreement and exits 1.
 */
#include "fuzz_common.h"
#include "_fastnum.h"

int main(int argc, char **argv)
{
#if FF_LEVEL32
    long iterations = argc > 2 ? atol(argv[2]) : 1000000, it, taken = 0, refused = 0;
    static unsigned char buf[256];
    seed(argc, argv);
    for (it = 0; it < iterations; it++) {
        char a[64], b[64], t1[64], t2[64];
        int la = gen_number(a, 10, 4), lb = gen_number(b, 10, 4), k = 8, end, last = 0;
        double out[2] = {0, 0}, out2[2] = {0, 0}, s1, s2;
        unsigned char *m, *p;
        const unsigned char *q;
        size_t r;
        long ql;
        memset(buf, 'x', sizeof buf);
        memcpy(buf, "\"asks\":[", 8);
        if (rnd(30) == 0)
            buf[k++] = ' ';
        buf[k++] = '[';
        buf[k++] = rnd(40) ? '"' : ' ';
        memcpy(buf + k, a, (size_t)la);
        k += la;
        buf[k++] = '"';
        buf[k++] = rnd(60) ? ',' : ';';
        buf[k++] = '"';
        memcpy(buf + k, b, (size_t)lb);
        k += lb;
        buf[k++] = '"';
        buf[k++] = ']';
        buf[k++] = rnd(2) ? ',' : (rnd(20) ? ']' : '}');
        end = k + (int)rnd(40);
        if (end - 8 < FF_LEVEL32_NEED)
            continue; /* ff_levels does not call it then */
        m = malloc((size_t)end);
        if (m == NULL)
            return 2;
        memcpy(m, buf, (size_t)end);
        p = m + 8;
        r = ff_level32(p, out);
        q = ff_level_each(p, m + end, out2, &last);
        ql = q ? (long)(q - p) : -1L;
        free(m);
        if (r == 0) {
            refused++;
            continue;
        }
        taken++;
        memcpy(t1, a, (size_t)la);
        t1[la] = 0;
        memcpy(t2, b, (size_t)lb);
        t2[lb] = 0;
        s1 = strtod(t1, NULL);
        s2 = strtod(t2, NULL);
        if (ql < 0 || (size_t)ql != r || memcmp(out, out2, sizeof out) ||
            last != (buf[8 + r - 1] == ']') || memcmp(&s1, &out[0], 8) || memcmp(&s2, &out[1], 8)) {
            printf("DISAGREE at %ld: %.*s\n  level32: k=%zu %.17g %.17g\n  each:    k=%ld %.17g %.17g\n"
                   "  strtod:  %.17g %.17g\n",
                   it, end - 8, buf + 8, r, out[0], out[1], ql, out2[0], out2[1], s1, s2);
            return 1;
        }
    }
    printf("taken %ld refused %ld\n", taken, refused);
    return 0;
#else
    (void)argc;
    (void)argv;
    printf("no level reader on this platform\n");
    return 0;
#endif
}
