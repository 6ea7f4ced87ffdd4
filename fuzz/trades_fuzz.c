/* Differential fuzzer for the parser fast path's trade-at-a-time reader (ff_trade in
 * fastfeed/_fasttrade.h, x86-64 / SSE2) against the number-by-number readers of
 * fastfeed/_fastnum.h (ff_uint, ff_number_i, ff_number) and the C library's strtod
 * (correctly rounded in glibc), with the JSON grammar checked here on its own.
 *
 * Each iteration builds one trade object
 *     {"id":I,"time":T,"amount":"A","price":"P","type":"buy"}
 * (amount and price in either order, buy or sell) from random number texts (half of them
 * as the exchange sends them; the others with 0..20 integer and fraction digits, all-zero,
 * all-nine and leading-zero digits, points or none, now and then an exponent, sign, space,
 * quote or other stray byte), now and then one byte of the object replaced, after 16 bytes
 * of the envelope and followed by 0..39 more bytes,
 * in a buffer malloc'ed at exactly that size (AddressSanitizer sees any read before the
 * message or past its end). Whenever ff_trade takes the object (returns non-NULL):
 *   - it returns just past the object's '}';
 *   - the object is exactly what was generated, with no stray byte, and every number's
 *     text is valid JSON for its place (a bare integer id of <= 16 digits without a leading
 *     zero, a bare time, quoted decimals ``digits ['.' digits]``) and the price is not 0;
 *   - the key-by-key readers take each number too and store the same values bit for bit,
 *     and the doubles equal strtod() of the texts bit for bit.
 * ff_trade may refuse any object (the caller then reads it key by key).
 *
 * Standalone, any C compiler on x86-64 (tests/test_fast_trades.py builds and runs it):
 *   cc -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -I fastfeed \
 *       fuzz/trades_fuzz.c -o build/trades_fuzz
 *   build/trades_fuzz SEED ITERATIONS
 * prints ``taken N refused M`` and exits 0, or prints the first disagreement and exits 1.
 */
#include "fuzz_common.h"
#include "_fasttrade.h"

/* a number text into o (at most 60 bytes); returns its length: half of them as the
 * exchange sends them (1..10 integer digits without a leading zero, 0..8 fraction digits),
 * the others from gen_number */
static int gen_num(char *o, unsigned point_odds)
{
    int ni, nf, k = 0, i;
    if (rnd(2))
        return gen_number(o, 12, point_odds);
    ni = 1 + (int)rnd(10);
    nf = (int)rnd(9);
    o[k++] = (char)('1' + rnd(9));
    for (i = 1; i < ni; i++)
        o[k++] = (char)('0' + rnd(10));
    if (nf && rnd(point_odds)) {
        o[k++] = '.';
        for (i = 0; i < nf; i++)
            o[k++] = (char)('0' + rnd(10));
    }
    return k;
}

static int digits(const char *s, int n)
{
    int i;
    for (i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* ``digits ['.' digits]``: bare (JSON: no leading zero, a digit after the point) or quoted
 * (float(): ``1.`` and leading zeros too); at most 16 digits in all (the reader's limit) */
static int valid_num(const char *s, int n, int bare)
{
    const char *dot = memchr(s, '.', (size_t)n);
    int ni = dot ? (int)(dot - s) : n, nf = dot ? n - ni - 1 : 0;
    if (ni == 0 || !digits(s, ni) || (dot && !digits(dot + 1, nf)) || ni + nf > 16)
        return 0;
    if (bare && ((ni > 1 && s[0] == '0') || (dot && nf == 0)))
        return 0;
    return 1;
}

static int same(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

int main(int argc, char **argv)
{
#if FF_TRADE
    static const char pre[] = "\"params\":[true,[";  /* 16 bytes of the envelope */
    long iterations = argc > 2 ? atol(argv[2]) : 1000000, it, taken = 0, refused = 0;
    static unsigned char buf[512];
    seed(argc, argv);
    for (it = 0; it < iterations; it++) {
        char idt[64], tt[64], at[64], pt[64], t[64];
        int li, lt, la, lp, k = 16, end, start, amount_first = (int)rnd(4) != 0, buy = (int)rnd(2);
        int stray = rnd(8) == 0, obj_end, ok, a_off, p_off;
        int64_t id = -1, id2 = -1;
        double time = -1, price = -1, amount = -1, v, v2;
        int8_t side = 0;
        unsigned char *m, *p;
        const unsigned char *q, *r;
        li = gen_num(idt, 8);
        lt = gen_num(tt, 2);
        la = gen_num(at, 3);
        lp = gen_num(pt, 3);
        if (rnd(3) == 0) { /* ids as the exchange sends them: 10 digits */
            for (li = 0; li < 10; li++)
                idt[li] = (char)('1' + rnd(9));
        }
        memset(buf, 'x', sizeof buf);
        memcpy(buf, pre, 16);
        start = k;
#define PUT(s, n) (memcpy(buf + k, (s), (size_t)(n)), k += (n))
        PUT("{\"id\":", 6);
        PUT(idt, li);
        PUT(",\"time\":", 8);
        PUT(tt, lt);
        if (amount_first) {
            PUT(",\"amount\":\"", 11);
            PUT(at, la);
            PUT("\",\"price\":\"", 11);
            PUT(pt, lp);
        } else {
            PUT(",\"price\":\"", 10);
            PUT(pt, lp);
            PUT("\",\"amount\":\"", 12);
            PUT(at, la);
        }
        if (buy)
            PUT("\",\"type\":\"buy\"}", 15);
        else
            PUT("\",\"type\":\"sell\"}", 16);
#undef PUT
        obj_end = k;
        a_off = amount_first ? 14 + li + lt + 11 : 14 + li + lt + 10 + lp + 12;
        p_off = amount_first ? 14 + li + lt + 11 + la + 11 : 14 + li + lt + 10;
        buf[k++] = rnd(2) ? ',' : ']';
        if (stray) {
            /* one byte of the object replaced: inside a number's text, that text changes
             * (the checks below judge the new one); elsewhere stray stays set if the byte
             * changed (then nothing may be taken) */
            int at_ = start + (int)rnd((unsigned)(obj_end - start)), rel;
            unsigned char was = buf[at_];
            buf[at_] = (unsigned char)"x0.\"{},:9 e-"[rnd(12)];
            rel = at_ - start;
            stray = 0;
            if (rel >= 6 && rel < 6 + li)
                idt[rel - 6] = (char)buf[at_];
            else if (rel >= 14 + li && rel < 14 + li + lt)
                tt[rel - 14 - li] = (char)buf[at_];
            else if (rel >= a_off && rel < a_off + la)
                at[rel - a_off] = (char)buf[at_];
            else if (rel >= p_off && rel < p_off + lp)
                pt[rel - p_off] = (char)buf[at_];
            else
                stray = buf[at_] != was;
        }
        end = k + (int)rnd(40);
        m = malloc((size_t)end);
        if (m == NULL)
            return 2;
        memcpy(m, buf, (size_t)end);
        p = m + start;
        q = ff_trade(p, m + end, &id, &time, &price, &amount, &side);
        if (q == NULL) {
            free(m);
            refused++;
            continue;
        }
        taken++;
        /* what was taken: the object as generated, valid numbers, a price above 0 */
        ok = q == m + obj_end && !stray && valid_num(idt, li, 1) && !memchr(idt, '.', (size_t)li) &&
             valid_num(tt, lt, 1) && valid_num(at, la, 0) && valid_num(pt, lp, 0) &&
             side == (buy ? 1 : -1);
        /* the key-by-key readers on the same bytes, and strtod */
        if (ok) {
            r = ff_uint(p + 6, m + end, &id2);
            ok = r == p + 6 + li && id2 == id;
        }
        if (ok) {
            memcpy(t, idt, (size_t)li);
            t[li] = 0;
            ok = (int64_t)strtoll(t, NULL, 10) == id;
        }
        if (ok) {
            r = ff_number_i(p + 14 + li, m + end, &v);
            memcpy(t, tt, (size_t)lt);
            t[lt] = 0;
            v2 = strtod(t, NULL);
            ok = r == p + 14 + li + lt && same(v, time) && same(v2, time);
        }
        if (ok) {
            r = ff_number(p + a_off - 1, m + end, &v);
            memcpy(t, at, (size_t)la);
            t[la] = 0;
            v2 = strtod(t, NULL);
            ok = r == p + a_off + la + 1 && same(v, amount) && same(v2, amount);
            if (ok) {
                r = ff_number(p + p_off - 1, m + end, &v);
                memcpy(t, pt, (size_t)lp);
                t[lp] = 0;
                v2 = strtod(t, NULL);
                ok = r == p + p_off + lp + 1 && same(v, price) && same(v2, price) && price > 0.0;
            }
        }
        if (!ok) {
            printf("DISAGREE at %ld: %.*s\n  taken: end %ld (object %d) id %lld time %.17g amount %.17g "
                   "price %.17g side %d\n",
                   it, end - start, buf + start, (long)(q - p), obj_end - start, (long long)id, time,
                   amount, price, side);
            free(m);
            return 1;
        }
        free(m);
    }
    printf("taken %ld refused %ld\n", taken, refused);
    return 0;
#else
    (void)argc;
    (void)argv;
    printf("no trade reader on this platform\n");
    return 0;
#endif
}
