/* What the differential fuzzers of the parser's fast readers share (levels_fuzz.c,
 * trades_fuzz.c): the headers' environment outside Python, a seeded xorshift generator and
 * the random number texts. */
#ifndef FASTFEED_FUZZ_COMMON_H
#define FASTFEED_FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
typedef ssize_t Py_ssize_t;

static unsigned long long state;

/* the generator seeded from argv[1] (default 1) */
static void seed(int argc, char **argv)
{
    state = 0x9E3779B97F4A7C15ULL ^ (unsigned long long)(argc > 1 ? atoll(argv[1]) : 1);
}

/* 0 .. n-1 */
static unsigned rnd(unsigned n)
{
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (unsigned)(state % n);
}

/* A random number text into o (at most 60 bytes); returns its length: 0..max_int-1 (now
 * and then up to 20) integer digits, a point with odds 1 - 1/point_odds, then 0..9 (now
 * and then up to 20) fraction digits; all-zero, all-nine and leading-zero digits; now and
 * then a stray exponent, sign, space, quote, bracket or other byte appended or put in. */
static int gen_number(char *o, unsigned max_int, unsigned point_odds)
{
    int ni = rnd(4) ? (int)rnd(max_int) : (int)rnd(21), nf = rnd(3) ? (int)rnd(10) : (int)rnd(21);
    int k = 0, i, kind = (int)rnd(5);
    for (i = 0; i < ni; i++)
        o[k++] = kind == 0 ? '0' : kind == 1 ? '9' : (i == 0 && rnd(3) == 0) ? '0' : (char)('0' + rnd(10));
    if (rnd(point_odds)) {
        o[k++] = '.';
        for (i = 0; i < nf; i++)
            o[k++] = kind == 0 ? (rnd(4) ? '0' : (char)('0' + rnd(10))) : kind == 1 ? '9' : (char)('0' + rnd(10));
    }
    if (rnd(50) == 0)
        o[k++] = "eE+-.x \"1"[rnd(9)];
    if (rnd(80) == 0 && k)
        o[rnd((unsigned)k)] = "eE+-.x \"\\[],"[rnd(12)];
    return k;
}

#endif
