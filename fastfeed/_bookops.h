/* Row operations of fastfeed/_book.pyx's Book on an end-anchored side: a private book
 * keeps the n rows of a side at the END of its array of cap rows, best first (the
 * docstring of _book.pyx, docs/engine-semantics.md section 7). The top (best) row is
 * t = base + 2 * (cap - n); the cap - n rows before it are free.
 *
 * Included by _book.pyx (through _book.pxd) and by _engine.pyx, whose depth path calls
 * ff_apply_end directly (book_apply in _book.pxd: inlined, no call through the Book's
 * vtable into another extension module).
 *
 * A row is [price, amount]: two doubles, 16 bytes. Level arrays (fastfeed._parse.Level)
 * are read as the same (price, amount) pairs. Prices are finite and > 0, amounts finite
 * and >= 0 (the parser checks them): a level is "found" when a row's price == its price,
 * and is a deletion when its amount == 0.
 *
 * What an update costs is mostly branch mispredictions: the row it lands on, whether its
 * price is there, whether it deletes or inserts and how many rows move all change from
 * level to level. So, with more than FF_WIN free rows before the top and the row inside
 * the side (i < n, nearly every update), an update is done without a data-dependent
 * branch up to the rows it moves:
 *   - the row: one 16-row compare (ff_lower_end: a mask, a count of its low bits), a
 *     search further only for rows past 16;
 *   - the change: the FF_WIN + 1 rows t[i - FF_WIN .. i] are loaded, the first FF_WIN of
 *     them stored d rows toward the front, d = +1 (insert) / -1 (delete) / 0 (amount
 *     change, absent deletion), one row written at t[i - (d == 1)] (ff_upsert_end_win),
 *     and the rows better than the window, when there are any, moved by d with memmove.
 * The window also moves free rows before the top (what free rows hold is unspecified;
 * docs/engine-semantics.md section 7). A (nearly) full side, an update past the last row
 * and a book of fewer than 16 rows take the general path (ff_upsert_end_general, the
 * rules written out once more). Both give the same rows.
 *
 * Bounds: every row read or written is inside the array [base, base + 2 * cap): the
 * window needs cap - n > FF_WIN (checked), the 16-row compare cap >= 16 (checked; with
 * fewer than 16 rows it compares the last 16 rows of the array and masks off the free
 * ones).
 */
#ifndef FASTFEED_BOOKOPS_H
#define FASTFEED_BOOKOPS_H

#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#define FF_BK_LIKELY(x) __builtin_expect(!!(x), 1)
#define FF_BK_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define FF_BK_CTZ64(x) ((Py_ssize_t)__builtin_ctzll(x))
#else
#define FF_BK_LIKELY(x) (x)
#define FF_BK_UNLIKELY(x) (x)
static inline Py_ssize_t FF_BK_CTZ64(uint64_t x) /* x != 0 */
{
    Py_ssize_t c = 0;
    while (!(x & 1u)) {
        x >>= 1;
        c++;
    }
    return c;
}
#endif

#if defined(__GNUC__) && !defined(__clang__)
#define FF_BK_UNROLL _Pragma("GCC unroll 16")
#elif defined(__clang__)
#define FF_BK_UNROLL _Pragma("unroll")
#else
#define FF_BK_UNROLL
#endif

/* rows the branch-free update moves in registers (8 measured best: 6, 12 and 16 were
 * slower, the larger ones for their loads, stores and register spills) */
#define FF_WIN 8

/* ---- search ------------------------------------------------------------------------- */

/* Bit j: the price of row j of the 8 rows at a is better than price (below it: asks,
 * desc = 0; above it: bids, desc = 1). The better rows of a sorted side are a prefix,
 * so the first row that is not is the count of low ones. */
#if defined(__SSE2__)
static inline __m128d ff_prices2(const double *a)   /* the prices of rows 0 and 1 */
{
    return _mm_unpacklo_pd(_mm_loadu_pd(a), _mm_loadu_pd(a + 2));
}

static inline __m128i ff_cmp2(const double *a, __m128d v, int desc)
{
    __m128d p = ff_prices2(a);
    return _mm_castpd_si128(desc ? _mm_cmpgt_pd(p, v) : _mm_cmplt_pd(p, v));
}

static inline unsigned ff_better8(const double *a, double price, int desc)
{
    __m128d v = _mm_set1_pd(price);
    return (unsigned)_mm_movemask_pd(_mm_castsi128_pd(ff_cmp2(a, v, desc)))
         | (unsigned)_mm_movemask_pd(_mm_castsi128_pd(ff_cmp2(a + 4, v, desc))) << 2
         | (unsigned)_mm_movemask_pd(_mm_castsi128_pd(ff_cmp2(a + 8, v, desc))) << 4
         | (unsigned)_mm_movemask_pd(_mm_castsi128_pd(ff_cmp2(a + 12, v, desc))) << 6;
}

/* bits 2j and 2j + 1: row j of 16 better than price; eight compares of two prices each,
 * narrowed to bytes (two a row) for one movemask per 8 rows */
static inline uint64_t ff_better16(const double *a, double price, int desc)
{
    __m128d v = _mm_set1_pd(price);
    __m128i lo = _mm_packs_epi16(_mm_packs_epi32(ff_cmp2(a, v, desc), ff_cmp2(a + 4, v, desc)),
                                 _mm_packs_epi32(ff_cmp2(a + 8, v, desc), ff_cmp2(a + 12, v, desc)));
    __m128i hi = _mm_packs_epi16(_mm_packs_epi32(ff_cmp2(a + 16, v, desc), ff_cmp2(a + 20, v, desc)),
                                 _mm_packs_epi32(ff_cmp2(a + 24, v, desc), ff_cmp2(a + 28, v, desc)));
    return (uint64_t)(unsigned)_mm_movemask_epi8(lo)
         | (uint64_t)(unsigned)_mm_movemask_epi8(hi) << 16;
}
#else
static inline unsigned ff_better8(const double *a, double price, int desc)
{
    unsigned m = 0;
    int j;
    for (j = 0; j < 8; j++)
        m |= (unsigned)(desc ? a[2 * j] > price : a[2 * j] < price) << j;
    return m;
}

static inline uint64_t ff_better16(const double *a, double price, int desc)
{
    uint64_t m = 0;
    int j;
    for (j = 0; j < 16; j++)
        m |= (uint64_t)(desc ? a[2 * j] > price : a[2 * j] < price) * (3ull << (2 * j));
    return m;
}
#endif

/* First row of the n sorted rows at a whose price is not better than price: >= it
 * (ascending, desc = 0) or <= it (descending, desc = 1). Updates land near the top of the
 * book, so the first 16 rows are compared 8 at a time, then a branch-free binary
 * search. */
static inline Py_ssize_t ff_lower(const double *a, Py_ssize_t n, double price, int desc)
{
    Py_ssize_t base = 0, half, c;
    while (n >= 8 && base < 16) {
        c = FF_BK_CTZ64(~(uint64_t)ff_better8(a + 2 * base, price, desc));
        if (c < 8)
            return base + c;
        base += 8;
        n -= 8;
    }
    if (n == 0)
        return base;
    while (n > 1) {
        half = n >> 1;
        if (desc)
            base += half & -(Py_ssize_t)(a[2 * (base + half)] > price);
        else
            base += half & -(Py_ssize_t)(a[2 * (base + half)] < price);
        n -= half;
    }
    if (desc)
        return base + (a[2 * base] > price);
    return base + (a[2 * base] < price);
}

/* ff_lower for an end-anchored side of n rows, cap >= 16: one 16-row compare whatever n
 * (fewer than 16 rows: the last 16 rows of the array, the s free ones before the top
 * shifted out of the mask), so a row among the first 16 costs no data-dependent branch */
static inline Py_ssize_t ff_lower_end(const double *base, Py_ssize_t n, Py_ssize_t cap,
                                      double price, int desc)
{
    const double *top = base + 2 * (cap - n);
    Py_ssize_t s = n < 16 ? 16 - n : 0;
    uint64_t m = ff_better16(top - 2 * s, price, desc) >> (2 * s);
    Py_ssize_t c = FF_BK_CTZ64(~m) >> 1;        /* <= 16 - s: ~m has bit 32 - 2s set */
    if (FF_BK_LIKELY(c < 16))
        return c;
    return 16 + ff_lower(top + 32, n - 16, price, desc);
}

/* ---- one level ---------------------------------------------------------------------- */

/* The rules for one level at row i (ff_lower's answer) of a side of n rows, written out:
 * the price found there: amount 0 deletes (the i better rows move one row toward the end),
 * else the amount changes; not found: amount 0 is an absent deletion, else an insert (the
 * i better rows move one row toward the front), except on a full side (n == cap), which
 * discards a level past its last row and otherwise drops its last row (the rows after i
 * move back). New count. */
static inline Py_ssize_t ff_upsert_end_general(double *base, Py_ssize_t n, Py_ssize_t cap,
                                               Py_ssize_t i, double price, double amount)
{
    double *a = base + 2 * (cap - n);
    if (i < n && a[2 * i] == price) {
        if (amount == 0.0) {
            memmove(a + 2, a, (size_t)i * 2 * sizeof(double));
            return n - 1;
        }
        a[2 * i + 1] = amount;
        return n;
    }
    if (amount == 0.0 || i >= cap)
        return n;
    if (n == cap) {
        n -= 1;
        memmove(a + 2 * (i + 1), a + 2 * i, (size_t)(n - i) * 2 * sizeof(double));
    } else {
        a -= 2;
        memmove(a, a + 2, (size_t)i * 2 * sizeof(double));
    }
    a[2 * i] = price;
    a[2 * i + 1] = amount;
    return n + 1;
}

#if defined(__SSE2__)
/* ff_upsert_end_general for i < n with cap - n > FF_WIN (see the top of this file): the
 * window t[i - FF_WIN .. i] in registers, stored FF_WIN rows d rows toward the front and
 * one row at t[i - (d == 1)]: the level (insert, amount change: the price found there is
 * the same double), the row the move put there (delete) or the one that was there
 * (absent deletion). The rows better than the window, t[0 .. i - FF_WIN), move by d too:
 * after the window's loads (a deletion's move overwrites its first row), before its
 * stores (an insert's window overwrites the last row that move reads). Rows after i
 * never move. */
static inline Py_ssize_t ff_upsert_end_win(double *base, Py_ssize_t n, Py_ssize_t cap,
                                           Py_ssize_t i, double price, double amount)
{
    double *t = base + 2 * (cap - n);
    const double *src = t + 2 * (i - FF_WIN);
    __m128d r[FF_WIN + 1];
    __m128d lv = _mm_set_pd(amount, price);
    __m128d eq, found, del, v;
    Py_ssize_t code, ins, d, j;
    double *dst;
    FF_BK_UNROLL
    for (j = 0; j <= FF_WIN; j++)
        r[j] = _mm_loadu_pd(src + 2 * j);
    /* one compare: [row i's price == price (found), amount == 0 (a deletion)] */
    eq = _mm_cmpeq_pd(_mm_move_sd(lv, r[FF_WIN]), _mm_move_sd(_mm_setzero_pd(), lv));
    code = _mm_movemask_pd(eq);     /* 0 insert, 1 amount change, 2 absent, 3 delete */
    ins = code == 0;
    d = ins - (code == 3);
    dst = t + 2 * (i - FF_WIN - d);
    if (i > FF_WIN && d != 0)
        memmove(t - 2 * d, t, (size_t)(i - FF_WIN) * 2 * sizeof(double));
    FF_BK_UNROLL
    for (j = 0; j < FF_WIN; j++)
        _mm_storeu_pd(dst + 2 * j, r[j]);
    found = _mm_unpacklo_pd(eq, eq);
    del = _mm_unpackhi_pd(eq, eq);
    v = _mm_or_pd(_mm_and_pd(found, r[FF_WIN - 1]), _mm_andnot_pd(found, r[FF_WIN]));
    v = _mm_or_pd(_mm_and_pd(del, v), _mm_andnot_pd(del, lv));
    _mm_storeu_pd(t + 2 * (i - ins), v);
    return n + d;
}
#endif

/* One level at row i of an end-anchored side of n rows; new count. */
static inline Py_ssize_t ff_upsert_end(double *base, Py_ssize_t n, Py_ssize_t cap,
                                       Py_ssize_t i, double price, double amount)
{
#if defined(__SSE2__)
    if (FF_BK_LIKELY((i < n) & (cap - n > FF_WIN)))
        return ff_upsert_end_win(base, n, cap, i, price, amount);
#endif
    return ff_upsert_end_general(base, n, cap, i, price, amount);
}

/* How many of the best rows of an end-anchored side cross a new level at price on the
 * other side: bids (desc) with price >= it, asks with price <= it. */
static inline Py_ssize_t ff_crossed_end(const double *base, Py_ssize_t n, Py_ssize_t cap,
                                        double price, int desc)
{
    const double *a = base + 2 * (cap - n);
    Py_ssize_t k = ff_lower(a, n, price, desc);
    if (desc) {
        while (k < n && a[2 * k] >= price)
            k++;
    } else {
        while (k < n && a[2 * k] <= price)
            k++;
    }
    return k;
}

/* One side's levels of an increment, in message order, applied to the end-anchored side
 * (rows *pn, updated; desc: the bid side), each level that is not a deletion then removing
 * the rows of the other side (rows *po) it crosses. Returns the number removed. Inlined
 * into ff_apply_end with a constant desc. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((always_inline))
#endif
static inline Py_ssize_t ff_apply_side_end(double *side, Py_ssize_t *pn, double *other,
                                           Py_ssize_t *po, Py_ssize_t cap, const double *lv,
                                           Py_ssize_t n_lv, int desc)
{
    Py_ssize_t n = *pn, no = *po, crossed = 0, j, i, k;
    double price, amount, top;
    int scan = cap >= 16;
    for (j = 0; j < n_lv; j++) {
        price = lv[2 * j];
        amount = lv[2 * j + 1];
        i = scan ? ff_lower_end(side, n, cap, price, desc)
                 : ff_lower(side + 2 * (cap - n), n, price, desc);
        n = ff_upsert_end(side, n, cap, i, price, amount);
        /* the crossing test without a branch until it holds (rarely): & not &&, and an
         * empty side's top read as its last row */
        top = other[2 * (cap - no - (no == 0))];
        if (FF_BK_UNLIKELY((amount != 0.0) & (no > 0) & (desc ? top <= price : top >= price))) {
            k = ff_crossed_end(other, no, cap, price, !desc);
            crossed += k;
            no -= k;
        }
    }
    *pn = n;
    *po = no;
    return crossed;
}

/* One increment's levels (asks, then bids, each in message order: section 3 of
 * docs/engine-semantics.md) applied to an end-anchored book whose sides hold *pna / *pnb
 * rows (updated). Returns the number of crossed levels removed (the best k rows of an
 * end-anchored side go without a move). */
static inline Py_ssize_t ff_apply_end(double *ab, Py_ssize_t *pna, double *bb,
                                      Py_ssize_t *pnb, Py_ssize_t cap, const double *asks,
                                      Py_ssize_t n_asks, const double *bids,
                                      Py_ssize_t n_bids)
{
    Py_ssize_t na = *pna, nb = *pnb, crossed;  /* (locals: kept in registers) */
    crossed = ff_apply_side_end(ab, &na, bb, &nb, cap, asks, n_asks, 0);
    crossed += ff_apply_side_end(bb, &nb, ab, &na, cap, bids, n_bids, 1);
    *pna = na;
    *pnb = nb;
    return crossed;
}

#endif /* FASTFEED_BOOKOPS_H */
