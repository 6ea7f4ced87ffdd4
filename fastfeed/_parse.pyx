"""Envelope scanner and depth/trade parsers over a bounded pointer cursor.

``Parser.parse(p, n)`` reads one JSON message. For ``depth.update`` and ``trades.update`` it
fills C scratch arrays (levels, trades, symbol, clean flag) without creating any Python
object; for every other message it only validates the JSON and reports the method, and the
caller decodes it with a JSON library. The rules are in docs/engine-semantics.md.

Error precedence: JSON syntax (``bad_json``/``too_deep``) wins over shape errors
(``bad_message``/``bad_number``). The hot parsers stop at the first surprise; only then is
the whole text validated once more to tell the two apart, so valid traffic is read once.

Fast path: ``parse`` first tries ``Parser._fast``, which matches the compact shape the
exchange sends (depth, trade and ticker pushes) (keys as literals in any order, decimals with SWAR, see _fastnum.h) and
reads each byte once; on any surprise it gives up without reporting anything and the
general parser above reads the message. Results are bit-identical either way
(tests/test_fastpath.py); ``set_fast_path(False)`` turns it off for later parsers.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.exc cimport PyErr_Clear, PyErr_Occurred
from libc.math cimport isfinite
from libc.stdint cimport int8_t, int64_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy

__all__ = [
    "FAST_PATH_AVAILABLE",
    "METHOD_NAMES",
    "Parser",
    "parse_batch_py",
    "parse_decimal_py",
    "parse_py",
    "parse_tickers_py",
    "set_fast_path",
    "validate_json_py",
]

cdef extern from "Python.h":
    double PyOS_string_to_double(const char* s, char** endptr, void* overflow_exception)

#: Names of the method codes, index = code. ``reply`` = no method, ``unknown`` = other.
METHOD_NAMES = (
    "reply",
    "depth.update",
    "trades.update",
    "ticker.update",
    "all_ticker.update",
    "order.update",
    "order_algo.update",
    "balance.update",
    "unknown",
)

cdef double[23] POW10 = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
]

cdef enum:
    INITIAL_LEVELS = 64
    INITIAL_TRADES = 16
    INITIAL_TICKERS = 8
    KEYBUF = 24


# ---------------------------------------------------------------------------------------
# Cursor primitives. All take [p, end) and return the new position or NULL on failure.
# ---------------------------------------------------------------------------------------

cdef inline const uchar* ws(const uchar* p, const uchar* end) noexcept nogil:
    while p < end and (p[0] == 32 or p[0] == 10 or p[0] == 13 or p[0] == 9):
        p += 1
    return p


cdef inline bint is_digit(uchar c) noexcept nogil:
    return c >= 48 and c <= 57


cdef inline int hexval(uchar c) noexcept nogil:
    if c >= 48 and c <= 57:
        return c - 48
    if c >= 97 and c <= 102:
        return c - 87
    if c >= 65 and c <= 70:
        return c - 55
    return -1


cdef inline const uchar* utf8_seq(const uchar* p, const uchar* end) noexcept nogil:
    """Validate one multi-byte UTF-8 sequence starting at p (p[0] >= 0x80)."""
    cdef uchar c = p[0]
    cdef int n
    cdef uchar lo = 0x80
    cdef uchar hi = 0xBF
    if c >= 0xC2 and c <= 0xDF:
        n = 1
    elif c >= 0xE0 and c <= 0xEF:
        n = 2
        if c == 0xE0:
            lo = 0xA0
        elif c == 0xED:
            hi = 0x9F
    elif c >= 0xF0 and c <= 0xF4:
        n = 3
        if c == 0xF0:
            lo = 0x90
        elif c == 0xF4:
            hi = 0x8F
    else:
        return NULL
    if end - p <= n:
        return NULL
    if p[1] < lo or p[1] > hi:
        return NULL
    if n >= 2 and (p[2] & 0xC0) != 0x80:
        return NULL
    if n == 3 and (p[3] & 0xC0) != 0x80:
        return NULL
    return p + n + 1


cdef uchar[256] STR_SPECIAL     # 1 for bytes that end the plain-ASCII run of a string
cdef int _i
for _i in range(256):
    STR_SPECIAL[_i] = 1 if (_i < 32 or _i == 34 or _i == 92 or _i >= 128) else 0


cdef const uchar* scan_string(const uchar* p, const uchar* end, bint* has_esc) noexcept nogil:
    """p is just after the opening quote; return just after the closing quote."""
    cdef uchar c
    has_esc[0] = False
    while True:
        while p < end and not STR_SPECIAL[p[0]]:
            p += 1
        if p >= end:
            return NULL
        c = p[0]
        if c == 34:  # "
            return p + 1
        if c == 92:  # backslash
            has_esc[0] = True
            if p + 1 >= end:
                return NULL
            c = p[1]
            if c == 117:  # u
                if end - p < 6:
                    return NULL
                if hexval(p[2]) < 0 or hexval(p[3]) < 0 or hexval(p[4]) < 0 or hexval(p[5]) < 0:
                    return NULL
                p += 6
            elif (c == 34 or c == 92 or c == 47 or c == 98 or c == 102 or c == 110
                  or c == 114 or c == 116):
                p += 2
            else:
                return NULL
        elif c < 32:
            return NULL
        else:
            p = utf8_seq(p, end)
            if p == NULL:
                return NULL


cdef extern from *:
    """
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    #define FF_SWAR 1
    #else
    #define FF_SWAR 0
    #endif
    static inline int ff_ctz64(unsigned long long x) { return __builtin_ctzll(x); }
    """
    const bint FF_SWAR
    int ff_ctz64(unsigned long long x) noexcept nogil

cdef uint64_t[9] IPOW10 = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000]

cdef extern from "_fastnum.h":
    # the fast path's number conversion (SWAR, exact or refuses): see _fastnum.h
    const bint FF_FAST_AVAILABLE
    const uchar* ff_decimal(const uchar* p, const uchar* end, int quoted, double* out) noexcept nogil
    const uchar* ff_uint(const uchar* p, const uchar* end, int64_t* out) noexcept nogil
    const uchar* ff_number(const uchar* p, const uchar* end, double* out) noexcept nogil
    const uchar* ff_number_i(const uchar* p, const uchar* end, double* out) noexcept nogil
    const uchar* ff_qdecimal(const uchar* p, const uchar* end, double* out) noexcept nogil
    int ff_ticker_key(const uchar* p, int* length) noexcept nogil
    const uchar* ff_ticker_fixed(const uchar* p, const uchar* end, double* f, int64_t* ts,
                                 uchar* sym, uint64_t* hash, int32_t* symlen) noexcept nogil
    int ff_symbol(const uchar* p, const uchar* end, uchar* out, uint64_t* hash) noexcept nogil
    uint64_t ff_symhash(const uchar* p, Py_ssize_t n) noexcept nogil
    bint ff_eq(const uchar* p, const char* lit, int n) noexcept nogil
    uint64_t ff_load8(const void* p) noexcept nogil
    const uchar* ff_levels(const uchar* p, const uchar* end, const uchar* lo, double* out,
                           Py_ssize_t cap, Py_ssize_t* count) noexcept nogil

cdef extern from "_fasttrade.h":
    # a whole trade object in the exchange's shape at once (SSE2; NULL: read it key by key)
    const int FF_TRADE_BEFORE
    const uchar* ff_trade(const uchar* p, const uchar* end, int64_t* id, double* time,
                          double* price, double* amount, int8_t* side) noexcept nogil

# ff_levels (_fastnum.h) fills a Level array as (price, amount) pairs of doubles
if sizeof(Level) != 2 * sizeof(double):
    raise ImportError("fastfeed._parse: Level is not two packed doubles")

#: Whether Parsers created from now on try the fast path first (``set_fast_path``).
cdef bint _fast_default = FF_FAST_AVAILABLE


cdef inline int digits8(const uchar* p, uint64_t* value) noexcept nogil:
    """Count the leading ASCII digits of the 8 bytes at p and return their value (SWAR:
    no per-byte branches). The caller guarantees 8 readable bytes."""
    cdef uint64_t v
    cdef uint64_t bad
    cdef uint64_t x
    cdef int k
    memcpy(&v, p, 8)
    bad = (((v & 0xF0F0F0F0F0F0F0F0ULL) ^ 0x3030303030303030ULL)
           | (((v + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) ^ 0x3030303030303030ULL))
    k = 8 if bad == 0 else (ff_ctz64(bad) >> 3)
    if k == 0:
        value[0] = 0
        return 0
    x = (v - 0x3030303030303030ULL) << (8 * (8 - k))
    x = x * 10 + (x >> 8)
    value[0] = (((x & 0x000000FF000000FFULL) * (100 + (1000000ULL << 32)))
                + (((x >> 16) & 0x000000FF000000FFULL) * (1 + (10000ULL << 32)))) >> 32
    return k


cdef inline const uchar* digit_run(const uchar* p, const uchar* end, uint64_t* mant,
                                   int* nd) noexcept nogil:
    """Append the run of digits at p to ``mant`` (``nd`` counts digits; past 19 digits
    the mantissa is no longer tracked and the caller must take the slow path)."""
    cdef uint64_t chunk
    cdef int k
    cdef unsigned int d
    if FF_SWAR:
        while end - p >= 8:
            k = digits8(p, &chunk)
            if nd[0] + k <= 19:
                mant[0] = mant[0] * IPOW10[k] + chunk
            nd[0] += k
            p += k
            if k < 8:
                return p
    while p < end:
        d = <unsigned int>p[0] - 48
        if d > 9:
            break
        if nd[0] < 19:
            mant[0] = mant[0] * 10 + d
        nd[0] += 1
        p += 1
    return p


cdef inline const uchar* decimal_fast(const uchar* p, const uchar* end, double* out,
                                      bint quoted) noexcept nogil:
    """Fast path for the usual decimals: ``"123.456"`` strings (``quoted``, p just after
    the opening quote) and bare JSON numbers like ``1597419159.123456``.

    Handles a sign, digits and an optional fraction: at most 19 digits in all and a
    mantissa <= 2**53, so the result of one exact division is correctly rounded. Returns
    the end (after the closing quote when quoted), or NULL to let the general path decide
    (exponents, long mantissas, anything unusual, and every error).
    """
    cdef uint64_t mant = 0
    cdef int nd = 0
    cdef int nint
    cdef int frac = 0
    cdef bint neg = False
    cdef const uchar* s
    cdef double v
    if p < end and (p[0] == 45 or (quoted and p[0] == 43)):
        neg = p[0] == 45
        p += 1
    s = p
    p = digit_run(p, end, &mant, &nd)
    nint = nd
    if not quoted and (nint == 0 or (nint > 1 and s[0] == 48)):
        return NULL  # JSON: a digit is required and no leading zeros
    if p < end and p[0] == 46:
        p += 1
        s = p
        p = digit_run(p, end, &mant, &nd)
        frac = nd - nint
        if not quoted and frac == 0:
            return NULL
    if nd == 0 or nd > 19 or mant > 9007199254740992ULL or p >= end:
        return NULL
    if quoted:
        if p[0] != 34:
            return NULL
        p += 1
    elif p[0] == 101 or p[0] == 69 or p[0] == 46 or (p[0] >= 48 and p[0] <= 57):
        return NULL
    v = <double>mant
    if frac and mant:
        v = v / POW10[frac]
    out[0] = -v if neg else v
    return p


cdef const uchar* decode_string(const uchar* p, const uchar* end, uchar* out,
                                Py_ssize_t cap, Py_ssize_t* outlen) noexcept nogil:
    """Validate and decode a string (p after the opening quote) into out[:cap].

    Characters outside ASCII are written as 0xFF (the callers only accept ASCII). On
    overflow ``*outlen`` is ``cap + 1``. Returns just after the closing quote, or NULL.
    """
    cdef bint esc
    cdef const uchar* q = scan_string(p, end, &esc)
    cdef Py_ssize_t n = 0
    cdef uchar c
    cdef int cp
    if q == NULL:
        return NULL
    if not esc:
        n = (q - 1) - p
        if n > cap:
            outlen[0] = cap + 1
            return q
        memcpy(out, p, n)
        outlen[0] = n
        return q
    end = q - 1
    while p < end:
        if n >= cap:
            outlen[0] = cap + 1
            return q
        c = p[0]
        if c == 92:
            c = p[1]
            if c == 117:
                cp = (hexval(p[2]) << 12) | (hexval(p[3]) << 8) | (hexval(p[4]) << 4) | hexval(p[5])
                out[n] = <uchar>cp if cp < 128 else 0xFF
                p += 6
            else:
                if c == 98:
                    c = 8
                elif c == 102:
                    c = 12
                elif c == 110:
                    c = 10
                elif c == 114:
                    c = 13
                elif c == 116:
                    c = 9
                out[n] = c
                p += 2
        else:
            out[n] = c
            p += 1
        n += 1
    outlen[0] = n
    return q


cdef enum:
    KEY_SHAPE = 1                  # read_key: no quote where a key starts, or no colon after it
    KEY_STRING = 2                 # read_key: the key is not a valid string


cdef inline const uchar* read_key(const uchar* p, const uchar* end, uchar* key,
                                  Py_ssize_t* klen, int* why, const uchar** at) noexcept nogil:
    """An object member's key (p at its opening quote, decoded into key[:KEYBUF]) and the
    colon after it: returns the value's first byte (whitespace skipped; maybe end), or
    NULL with ``why`` (KEY_SHAPE or KEY_STRING) and ``at`` (where: NULL for a bad string,
    as decode_string gives no position). Each caller names the rejection."""
    if p >= end or p[0] != 34:
        why[0] = KEY_SHAPE
        at[0] = p
        return NULL
    p = decode_string(p + 1, end, key, KEYBUF, klen)
    if p == NULL:
        why[0] = KEY_STRING
        at[0] = NULL
        return NULL
    p = ws(p, end)
    if p >= end or p[0] != 58:
        why[0] = KEY_SHAPE
        at[0] = p
        return NULL
    return ws(p + 1, end)


cdef const uchar* scan_number(const uchar* p, const uchar* end, bint* is_int) noexcept nogil:
    """A JSON number token; return its end. ``is_int``: no fraction and no exponent."""
    is_int[0] = True
    if p < end and p[0] == 45:  # -
        p += 1
    if p >= end:
        return NULL
    if p[0] == 48:  # 0
        p += 1
    elif is_digit(p[0]):
        while p < end and is_digit(p[0]):
            p += 1
    else:
        return NULL
    if p < end and p[0] == 46:  # .
        is_int[0] = False
        p += 1
        if p >= end or not is_digit(p[0]):
            return NULL
        while p < end and is_digit(p[0]):
            p += 1
    if p < end and (p[0] == 101 or p[0] == 69):  # e E
        is_int[0] = False
        p += 1
        if p < end and (p[0] == 43 or p[0] == 45):
            p += 1
        if p >= end or not is_digit(p[0]):
            return NULL
        while p < end and is_digit(p[0]):
            p += 1
    return p


cdef inline const uchar* scan_literal(const uchar* p, const uchar* end) noexcept nogil:
    if p[0] == 116:
        if end - p >= 4 and memcmp(p, b"true", 4) == 0:
            return p + 4
    elif p[0] == 102:
        if end - p >= 5 and memcmp(p, b"false", 5) == 0:
            return p + 5
    elif p[0] == 110:
        if end - p >= 4 and memcmp(p, b"null", 4) == 0:
            return p + 4
    return NULL


cdef const uchar* skip_value(const uchar* p, const uchar* end, int depth, int* err) noexcept nogil:
    """Validate and skip one JSON value starting at p (whitespace allowed before it).

    ``depth`` is the nesting level of the container holding the value. Iterative, so deep
    input cannot overflow the C stack; nesting beyond MAX_DEPTH sets ``P_TOO_DEEP``. On
    success ``*err`` is ``SKIP_BIG_INT`` if an integer token might not fit 64 bits, else 0.
    """
    cdef uchar stack[MAX_DEPTH + 2]
    cdef int sp = 0
    cdef uchar c
    cdef bint esc
    cdef bint isint
    cdef bint big = False
    cdef const uchar* q
    err[0] = P_BAD_JSON
    while True:
        # -- a value starts here
        p = ws(p, end)
        if p >= end:
            return NULL
        c = p[0]
        if c == 123 or c == 91:  # { [
            if depth + sp + 1 > MAX_DEPTH:
                err[0] = P_TOO_DEEP
                return NULL
            stack[sp] = c
            sp += 1
            p = ws(p + 1, end)
            if p >= end:
                return NULL
            if c == 123:
                if p[0] == 125:
                    sp -= 1
                    p += 1
                else:
                    if p[0] != 34:
                        return NULL
                    p = scan_string(p + 1, end, &esc)
                    if p == NULL:
                        return NULL
                    p = ws(p, end)
                    if p >= end or p[0] != 58:
                        return NULL
                    p += 1
                    continue
            else:
                if p[0] == 93:
                    sp -= 1
                    p += 1
                else:
                    continue
        elif c == 34:
            p = scan_string(p + 1, end, &esc)
        elif c == 45 or is_digit(c):
            q = scan_number(p, end, &isint)
            if q != NULL and isint and q - p > 18:
                big = True
            p = q
        else:
            p = scan_literal(p, end)
        if p == NULL:
            return NULL
        # -- after a complete value: close containers or move to the next element
        while True:
            if sp == 0:
                err[0] = SKIP_BIG_INT if big else 0
                return p
            p = ws(p, end)
            if p >= end:
                return NULL
            c = p[0]
            if c == 44:  # ,
                p = ws(p + 1, end)
                if stack[sp - 1] == 123:
                    if p >= end or p[0] != 34:
                        return NULL
                    p = scan_string(p + 1, end, &esc)
                    if p == NULL:
                        return NULL
                    p = ws(p, end)
                    if p >= end or p[0] != 58:
                        return NULL
                    p += 1
                break
            if (c == 125 and stack[sp - 1] == 123) or (c == 93 and stack[sp - 1] == 91):
                sp -= 1
                p += 1
                continue
            return NULL


cdef int parse_decimal(const uchar* s, Py_ssize_t n, double* out, char* buf) noexcept nogil:
    """Decimal text -> correctly rounded double, identical to Python's ``float(s)``.

    Grammar ``[+-]?(digits(.digits?)?|.digits)([eE][+-]?digits)?``. Fast exact path
    (Clinger) for <= 19 significant digits with mantissa <= 2**53 and |exp10| <= 22;
    everything else goes through CPython's own correctly rounded ``PyOS_string_to_double``.
    Returns 0, or -1 on a grammar error.
    """
    cdef Py_ssize_t i = 0
    cdef bint neg = False
    cdef bint eneg = False
    cdef bint any_digits = False
    cdef bint truncated = False
    cdef uint64_t mant = 0
    cdef int nd = 0
    cdef int64_t exp10 = 0
    cdef int64_t e = 0
    cdef int d
    cdef double v
    cdef char* endp
    if n <= 0 or n > MAX_NUMBER:
        return -1
    if s[0] == 43 or s[0] == 45:
        neg = s[0] == 45
        i = 1
    while i < n and is_digit(s[i]):
        any_digits = True
        d = s[i] - 48
        if nd == 0 and d == 0:
            pass
        elif nd < 19:
            mant = mant * 10 + d
            nd += 1
        else:
            exp10 += 1
            truncated = True
        i += 1
    if i < n and s[i] == 46:
        i += 1
        while i < n and is_digit(s[i]):
            any_digits = True
            d = s[i] - 48
            if nd == 0 and d == 0:
                exp10 -= 1
            elif nd < 19:
                mant = mant * 10 + d
                nd += 1
                exp10 -= 1
            else:
                truncated = True
            i += 1
    if not any_digits:
        return -1
    if i < n and (s[i] == 101 or s[i] == 69):
        i += 1
        if i < n and (s[i] == 43 or s[i] == 45):
            eneg = s[i] == 45
            i += 1
        if i >= n or not is_digit(s[i]):
            return -1
        while i < n and is_digit(s[i]):
            if e < 100000000:
                e = e * 10 + (s[i] - 48)
            i += 1
        exp10 += -e if eneg else e
    if i != n:
        return -1
    if mant == 0:
        out[0] = -0.0 if neg else 0.0
        return 0
    if not truncated and mant <= 9007199254740992ULL and -22 <= exp10 <= 22:
        v = <double>mant
        if exp10 >= 0:
            v = v * POW10[exp10]
        else:
            v = v / POW10[-exp10]
        out[0] = -v if neg else v
        return 0
    memcpy(buf, s, n)
    buf[n] = 0
    with gil:  # CPython's correctly rounded strtod (dtoa) needs the GIL; rare path
        v = PyOS_string_to_double(buf, &endp, NULL)
        if v == -1.0 and PyErr_Occurred() != NULL:
            PyErr_Clear()
            return -1
    if endp != buf + n:
        return -1
    out[0] = v
    return 0


cdef inline const uchar* number_at(Parser ps, const uchar* p, const uchar* end,
                                   double* out) noexcept nogil:
    """The usual decimals inline; anything else through ``Parser._number``."""
    cdef const uchar* q
    if p < end:
        if p[0] == 34:
            q = decimal_fast(p + 1, end, out, True)
            if q != NULL:
                return q
        elif p[0] == 45 or is_digit(p[0]):
            q = decimal_fast(p, end, out, False)
            if q != NULL:
                return q
    return ps._number(p, end, out)


cdef inline int next_item(const uchar** pp, const uchar* end, uchar close) noexcept nogil:
    """After an element of an array/object: ``,`` -> 1 (``*pp`` at the next element),
    ``close`` -> 0 (``*pp`` just past it), anything else -> -1."""
    cdef const uchar* p = ws(pp[0], end)
    if p < end:
        if p[0] == 44:
            pp[0] = ws(p + 1, end)
            return 1
        if p[0] == close:
            pp[0] = p + 1
            return 0
    pp[0] = p
    return -1


cdef inline bint key_is(const uchar* k, Py_ssize_t n, const char* name, Py_ssize_t m) noexcept nogil:
    return n == m and memcmp(k, name, m) == 0


cdef int method_code(const uchar* m, Py_ssize_t n) noexcept nogil:
    if n == 12 and memcmp(m, b"depth.update", 12) == 0:
        return M_DEPTH
    if n == 13 and memcmp(m, b"trades.update", 13) == 0:
        return M_TRADES
    if n == 13 and memcmp(m, b"ticker.update", 13) == 0:
        return M_TICKER
    if n == 17 and memcmp(m, b"all_ticker.update", 17) == 0:
        return M_ALL_TICKER
    if n == 12 and memcmp(m, b"order.update", 12) == 0:
        return M_ORDER
    if n == 17 and memcmp(m, b"order_algo.update", 17) == 0:
        return M_ORDER_ALGO
    if n == 14 and memcmp(m, b"balance.update", 14) == 0:
        return M_BALANCE
    return M_UNKNOWN


# ---------------------------------------------------------------------------------------
# ticker.update / all_ticker.update values. The rules are the Python ones of
# fastfeed.protocol.Ticker.from_dict (the reference decodes with json and calls it): each
# helper returns TKV_OK / TKV_BAD (the record is rejected: bad_field) or TKV_SLOW (only
# Python can tell exactly: the whole push is then decoded in Python).
# ---------------------------------------------------------------------------------------

cdef enum:
    TKV_OK = 0
    TKV_BAD = 1
    TKV_SLOW = 2
    TK_MAX_FIELD = 64              # protocol.MAX_FIELD_LEN
    TK_F_TIMESTAMP = 11
    TK_F_SYMBOL = 12

cdef extern from "math.h":
    const double NAN


cdef inline int ticker_key(const uchar* k, Py_ssize_t n) noexcept nogil:
    """Field number of a ticker key: 0..10 floats (TICKER_FIELDS order), 11 timestamp,
    12 symbol, -1 any other key."""
    if n == 4 and memcmp(k, b"last", 4) == 0:
        return 0
    if n == 8 and memcmp(k, b"last_qty", 8) == 0:
        return 1
    if n == 8 and memcmp(k, b"best_bid", 8) == 0:
        return 2
    if n == 13 and memcmp(k, b"best_bid_size", 13) == 0:
        return 3
    if n == 8 and memcmp(k, b"best_ask", 8) == 0:
        return 4
    if n == 13 and memcmp(k, b"best_ask_size", 13) == 0:
        return 5
    if n == 8 and memcmp(k, b"open_24h", 8) == 0:
        return 6
    if n == 7 and memcmp(k, b"low_24h", 7) == 0:
        return 7
    if n == 8 and memcmp(k, b"high_24h", 8) == 0:
        return 8
    if n == 15 and memcmp(k, b"base_volume_24h", 15) == 0:
        return 9
    if n == 16 and memcmp(k, b"quote_volume_24h", 16) == 0:
        return 10
    if n == 9 and memcmp(k, b"timestamp", 9) == 0:
        return TK_F_TIMESTAMP
    if n == 6 and memcmp(k, b"symbol", 6) == 0:
        return TK_F_SYMBOL
    return -1


cdef inline bint float_text_maybe(const uchar* s, Py_ssize_t n) noexcept nogil:
    """Could Python's ``float()`` accept this ASCII text although ``parse_decimal`` does
    not? Only with surrounding spaces, ``_`` between digits, or inf/infinity/nan."""
    cdef Py_ssize_t i
    cdef uchar c
    for i in range(n):
        c = s[i] | 0x20                       # ASCII lower case (digits/punctuation kept apart)
        if (s[i] == 32 or s[i] == 95 or c == 105 or c == 110 or c == 102 or c == 97
                or c == 116 or c == 121):     # ' ' '_' i n f a t y
            return True
    return False


cdef inline int ticker_value_end(const uchar** pp, const uchar* end, int depth) noexcept nogil:
    """Skip a value of a type the field does not take (object, array, literal): TKV_BAD,
    or TKV_SLOW when it is not valid JSON (the validator then reports it)."""
    cdef int err
    cdef const uchar* q = skip_value(pp[0], end, depth, &err)
    if q == NULL:
        return TKV_SLOW
    pp[0] = q
    return TKV_BAD


cdef int ticker_float(const uchar** pp, const uchar* end, double* out, char* numbuf,
                      int depth) noexcept nogil:
    """A float field (``protocol._f``): null/"" -> NaN; a decimal string of at most 64
    characters or a JSON number -> its correctly rounded double (what ``float()`` gives);
    non-finite, bool, object, array or a string ``float()`` refuses -> TKV_BAD."""
    cdef const uchar* p = pp[0]
    cdef const uchar* q
    cdef const uchar* s
    cdef Py_ssize_t n
    cdef Py_ssize_t i
    cdef bint esc
    cdef bint isint
    cdef uchar c = p[0]
    if c == 34:
        q = decimal_fast(p + 1, end, out, True)     # the usual "6855.12": exact, one pass
        if q != NULL:
            pp[0] = q
            return TKV_OK
        q = scan_string(p + 1, end, &esc)
        if q == NULL or esc:
            return TKV_SLOW
        s = p + 1
        n = (q - 1) - s
        pp[0] = q
        if n == 0:
            out[0] = NAN
            return TKV_OK
        for i in range(n):
            if s[i] >= 0x80:
                return TKV_SLOW               # float() takes non-ASCII digits and spaces
        if n > TK_MAX_FIELD:
            return TKV_BAD
        if parse_decimal(s, n, out, numbuf) != 0:
            return TKV_SLOW if float_text_maybe(s, n) else TKV_BAD
        return TKV_OK if isfinite(out[0]) else TKV_BAD
    if c == 45 or is_digit(c):
        q = decimal_fast(p, end, out, False)
        if q != NULL:
            pp[0] = q
            if out[0] == 0.0:
                s = p
                while s < q and s[0] != 46:
                    s += 1
                if s == q:
                    out[0] = 0.0              # an integer token: float(int("-0")) is 0.0
            return TKV_OK
        q = scan_number(p, end, &isint)
        if q == NULL or q - p > MAX_NUMBER:
            return TKV_SLOW
        if parse_decimal(p, q - p, out, numbuf) != 0:
            return TKV_SLOW
        pp[0] = q
        if isint and out[0] == 0.0:
            out[0] = 0.0                      # float(int("-0")) is 0.0, not -0.0
        return TKV_OK if isfinite(out[0]) else TKV_BAD
    if c == 110:
        q = scan_literal(p, end)
        if q == NULL:
            return TKV_SLOW
        pp[0] = q
        out[0] = NAN
        return TKV_OK
    return ticker_value_end(pp, end, depth)


cdef int ticker_int(const uchar** pp, const uchar* end, int64_t* out, char* numbuf,
                    int depth) noexcept nogil:
    """The timestamp (``protocol._i``): null -> 0; a JSON integer or a string of 1..20
    characters holding one, in int64 range; a finite JSON float below 2**63 in magnitude,
    truncated toward zero. Anything else -> TKV_BAD."""
    cdef const uchar* p = pp[0]
    cdef const uchar* q
    cdef const uchar* s
    cdef Py_ssize_t n
    cdef Py_ssize_t i
    cdef bint esc
    cdef bint isint
    cdef bint neg = False
    cdef uint64_t v = 0
    cdef double d
    cdef uchar c = p[0]
    if c == 34:
        q = scan_string(p + 1, end, &esc)
        if q == NULL or esc:
            return TKV_SLOW
        s = p + 1
        n = (q - 1) - s
        pp[0] = q
        for i in range(n):
            if s[i] >= 0x80:
                return TKV_SLOW               # int() takes non-ASCII digits and spaces
        if n == 0 or n > 20:
            return TKV_BAD
        i = 0
        if s[0] == 43 or s[0] == 45:
            neg = s[0] == 45
            i = 1
        if i == n:
            return TKV_BAD
        while i < n:
            if not is_digit(s[i]):
                for i in range(n):
                    if s[i] == 32 or s[i] == 95:
                        return TKV_SLOW       # int() strips spaces, takes "1_000"
                return TKV_BAD
            if v > 922337203685477580ULL:      # (2**63 - 1) // 10: v * 10 overflows the range
                v = 18446744073709551615ULL
            else:
                v = v * 10 + (s[i] - 48)
            i += 1
    elif c == 45 or is_digit(c):
        q = scan_number(p, end, &isint)
        if q == NULL or q - p > MAX_NUMBER:
            return TKV_SLOW
        pp[0] = q
        if not isint:
            if parse_decimal(p, q - p, &d, numbuf) != 0:
                return TKV_SLOW
            if not isfinite(d) or d >= 9223372036854775808.0 or d <= -9223372036854775808.0:
                return TKV_BAD
            out[0] = <int64_t>d               # C truncates toward zero, like int(float)
            return TKV_OK
        if p[0] == 45:
            neg = True
            p += 1
        if q - p > 19:
            return TKV_BAD
        while p < q:
            v = v * 10 + (p[0] - 48)
            p += 1
    elif c == 110:
        q = scan_literal(p, end)
        if q == NULL:
            return TKV_SLOW
        pp[0] = q
        out[0] = 0
        return TKV_OK
    else:
        return ticker_value_end(pp, end, depth)
    if neg:
        if v > 9223372036854775808ULL:
            return TKV_BAD
        out[0] = <int64_t>(0 - v)
    else:
        if v > 9223372036854775807ULL:
            return TKV_BAD
        out[0] = <int64_t>v
    return TKV_OK


cdef inline void _reset(Parser ps, const uchar* p) noexcept nogil:
    """Forget the previous message: the per-message state every parse starts from (also
    after the fast path gave up, before the general parser reads the message again)."""
    ps.err = 0
    ps.err_at = NULL
    ps.base = p
    ps.n_asks = 0
    ps.n_bids = 0
    ps.n_trades = 0
    ps.symbol_len = 0
    ps.big_int = False
    ps.n_tickers = 0
    ps.ticker_bad_shape = 0
    ps.ticker_bad_symbol = 0
    ps.ticker_bad_field = 0
    ps.ticker_slow = False


cdef int _parse_general(Parser self, const uchar* p, Py_ssize_t n) noexcept nogil:
    """``Parser.parse`` by the general parser (``self`` reset for the message): out of
    ``parse`` so that the fast path's entry keeps a small frame."""
    cdef const uchar* end = p + n
    cdef const uchar* start = p
    cdef const uchar* params_at = NULL
    cdef uchar key[KEYBUF]
    cdef uchar mbuf[MAX_METHOD]
    cdef Py_ssize_t klen
    cdef int why
    cdef const uchar* at
    cdef Py_ssize_t mlen
    cdef int method = M_REPLY
    cdef bint method_seen = False
    cdef bint hot_done = False
    cdef int err
    p = ws(p, end)
    if p >= end or p[0] != 123:
        self._fail(P_BAD_MESSAGE, p)
        return self._classify(start, end)
    p = ws(p + 1, end)
    if p < end and p[0] == 125:
        p += 1
    else:
        while True:
            p = read_key(p, end, key, &klen, &why, &at)
            if p == NULL:
                self._fail(P_BAD_JSON, at)
                return self._classify(start, end)
            if p >= end:
                self._fail(P_BAD_JSON, p)
                return self._classify(start, end)
            if key_is(key, klen, "method", 6):
                if method_seen:
                    self._fail(P_BAD_MESSAGE, p)
                    return self._classify(start, end)
                method_seen = True
                if p[0] == 34:
                    p = decode_string(p + 1, end, mbuf, MAX_METHOD, &mlen)
                    if p != NULL:
                        method = method_code(mbuf, mlen)
                elif p[0] == 110:
                    p = scan_literal(p, end)
                    method = M_REPLY
                else:
                    self._fail(P_BAD_MESSAGE, p)
                    return self._classify(start, end)
            elif key_is(key, klen, "params", 6):
                if params_at != NULL:
                    self._fail(P_BAD_MESSAGE, p)
                    return self._classify(start, end)
                params_at = p
                if method == M_DEPTH or method == M_TRADES:
                    p = self._hot_params(method, p, end)
                    hot_done = True
                elif method == M_TICKER or method == M_ALL_TICKER:
                    p = self._ticker_params(p, end)
                    hot_done = True
                else:
                    p = skip_value(p, end, 1, &err)
                    if p != NULL and err == SKIP_BIG_INT:
                        self.big_int = True
            else:
                p = skip_value(p, end, 1, &err)
                if p != NULL and err == SKIP_BIG_INT:
                    self.big_int = True
            if p == NULL:
                return self._classify(start, end)
            p = ws(p, end)
            if p >= end:
                return self._classify(start, end)
            if p[0] == 44:
                p = ws(p + 1, end)
                continue
            if p[0] == 125:
                p += 1
                break
            return self._classify(start, end)
    if ws(p, end) != end:
        return self._classify(start, end)
    if method == M_DEPTH or method == M_TRADES:
        if params_at == NULL:
            self._fail(P_BAD_MESSAGE, p)
            return self._classify(start, end)
        if not hot_done:
            # "params" came before "method": the text is valid JSON, parse it now
            self.n_asks = 0
            self.n_bids = 0
            self.n_trades = 0
            if self._hot_params(method, params_at, end) == NULL:
                return self._classify(start, end)
    elif method == M_TICKER or method == M_ALL_TICKER:
        if params_at == NULL:
            self.ticker_bad_shape = 1     # no params: one bad item, as protocol._records
        elif not hot_done:
            self._ticker_params(params_at, end)   # valid JSON: cannot fail
    return method


cdef class Parser:
    """Reusable parser; scratch buffers grow as needed and are kept between messages."""

    def __cinit__(self):
        self.asks = <Level*>malloc(INITIAL_LEVELS * sizeof(Level))
        self.bids = <Level*>malloc(INITIAL_LEVELS * sizeof(Level))
        self.trades = <Trade*>malloc(INITIAL_TRADES * sizeof(Trade))
        self.numbuf = <char*>malloc(2 * (MAX_NUMBER + 2))
        self.tickers = <TickerC*>malloc(INITIAL_TICKERS * sizeof(TickerC))
        if (self.asks == NULL or self.bids == NULL or self.trades == NULL or self.numbuf == NULL
                or self.tickers == NULL):
            raise MemoryError()
        self.cap_tickers = INITIAL_TICKERS
        self.cap_asks = INITIAL_LEVELS
        self.cap_bids = INITIAL_LEVELS
        self.cap_trades = INITIAL_TRADES
        self.fast = _fast_default

    def __dealloc__(self):
        free(self.asks)
        free(self.bids)
        free(self.trades)
        free(self.tickers)
        free(self.numbuf)

    cdef const uchar* _fail(self, int code, const uchar* at) noexcept nogil:
        if self.err == 0:
            self.err = code
            self.err_at = at
        return NULL

    cdef Py_ssize_t error_offset(self) noexcept nogil:
        if self.err_at == NULL:
            return -1
        return self.err_at - self.base

    # -- values ---------------------------------------------------------------------------

    cdef const uchar* _number(self, const uchar* p, const uchar* end, double* out) noexcept nogil:
        """A decimal string or a bare JSON number: the general path (``number_at`` tries
        the fast one first)."""
        cdef bint esc
        cdef bint isint
        cdef const uchar* q
        cdef Py_ssize_t n
        if p >= end:
            return self._fail(P_BAD_MESSAGE, p)
        if p[0] == 34:
            q = scan_string(p + 1, end, &esc)
            if q == NULL:
                return self._fail(P_BAD_JSON, p)
            if not esc:
                if parse_decimal(p + 1, (q - 1) - (p + 1), out, self.numbuf) != 0:
                    return self._fail(P_BAD_NUMBER, p)
                return q
            # decode into the second half of numbuf; the first half is parse_decimal's
            n = 0
            q = decode_string(p + 1, end, <uchar*>self.numbuf + MAX_NUMBER + 2, MAX_NUMBER, &n)
            if q == NULL:
                return self._fail(P_BAD_JSON, p)
            if n > MAX_NUMBER:
                return self._fail(P_BAD_NUMBER, p)
            if parse_decimal(<uchar*>self.numbuf + MAX_NUMBER + 2, n, out, self.numbuf) != 0:
                return self._fail(P_BAD_NUMBER, p)
            return q
        if p[0] == 45 or is_digit(p[0]):
            q = scan_number(p, end, &isint)
            if q == NULL:
                return self._fail(P_BAD_JSON, p)
            if parse_decimal(p, q - p, out, self.numbuf) != 0:
                return self._fail(P_BAD_NUMBER, p)
            return q
        return self._fail(P_BAD_MESSAGE, p)

    cdef const uchar* _symbol(self, const uchar* p, const uchar* end) noexcept nogil:
        cdef Py_ssize_t n
        cdef Py_ssize_t i
        cdef uchar c
        if p >= end or p[0] != 34:
            return self._fail(P_BAD_MESSAGE, p)
        p = decode_string(p + 1, end, self.symbol, MAX_SYMBOL, &n)
        if p == NULL:
            return self._fail(P_BAD_JSON, p)
        if n < 1 or n > MAX_SYMBOL:
            return self._fail(P_BAD_MESSAGE, p)
        for i in range(n):
            c = self.symbol[i]
            if c < 0x21 or c > 0x7E:
                return self._fail(P_BAD_MESSAGE, p)
            if c >= 97 and c <= 122:
                self.symbol[i] = c - 32
        self.symbol[n] = 0
        self.symbol_len = n
        self.symbol_hash = ff_symhash(self.symbol, n)
        return p

    cdef const uchar* _clean(self, const uchar* p, const uchar* end) noexcept nogil:
        if end - p >= 4 and memcmp(p, b"true", 4) == 0:
            self.clean = True
            return p + 4
        if end - p >= 5 and memcmp(p, b"false", 5) == 0:
            self.clean = False
            return p + 5
        return self._fail(P_BAD_MESSAGE, p)

    cdef const uchar* _levels(self, const uchar* p, const uchar* end, bint asks) noexcept nogil:
        cdef double price
        cdef double amount
        cdef Level* arr
        cdef Py_ssize_t newcap
        cdef int r
        if p >= end or p[0] != 91:
            return self._fail(P_BAD_MESSAGE, p)
        p = ws(p + 1, end)
        if p < end and p[0] == 93:
            return p + 1
        while True:
            if p >= end or p[0] != 91:
                return self._fail(P_BAD_MESSAGE, p)
            p = number_at(self, ws(p + 1, end), end, &price)
            if p == NULL:
                return NULL
            if not (isfinite(price) and price > 0.0):   # reported in text order
                return self._fail(P_BAD_NUMBER, p)
            p = ws(p, end)
            if p >= end or p[0] != 44:
                return self._fail(P_BAD_MESSAGE, p)
            p = number_at(self, ws(p + 1, end), end, &amount)
            if p == NULL:
                return NULL
            if not (isfinite(amount) and amount >= 0.0):
                return self._fail(P_BAD_NUMBER, p)
            p = ws(p, end)
            if p >= end or p[0] != 93:
                return self._fail(P_BAD_MESSAGE, p)
            if asks:
                if self.n_asks == self.cap_asks:
                    newcap = self.cap_asks * 2
                    arr = <Level*>realloc(self.asks, newcap * sizeof(Level))
                    if arr == NULL:
                        return self._fail(P_NOMEM, p)
                    self.asks = arr
                    self.cap_asks = newcap
                self.asks[self.n_asks].price = price
                self.asks[self.n_asks].amount = amount
                self.n_asks += 1
            else:
                if self.n_bids == self.cap_bids:
                    newcap = self.cap_bids * 2
                    arr = <Level*>realloc(self.bids, newcap * sizeof(Level))
                    if arr == NULL:
                        return self._fail(P_NOMEM, p)
                    self.bids = arr
                    self.cap_bids = newcap
                self.bids[self.n_bids].price = price
                self.bids[self.n_bids].amount = amount
                self.n_bids += 1
            p += 1
            r = next_item(&p, end, 93)
            if r == 0:
                return p
            if r < 0:
                return self._fail(P_BAD_MESSAGE, p)

    cdef const uchar* _params_head(self, const uchar* p, const uchar* end) noexcept nogil:
        """``[clean,`` of ``params``: returns the start of the second element."""
        if p >= end or p[0] != 91:
            return self._fail(P_BAD_MESSAGE, p)
        p = self._clean(ws(p + 1, end), end)
        if p == NULL:
            return NULL
        if next_item(&p, end, 93) != 1:
            return self._fail(P_BAD_MESSAGE, p)
        return p

    cdef const uchar* _params_tail(self, const uchar* p, const uchar* end) noexcept nogil:
        """``, symbol]`` of ``params`` (p after the second element): returns past ``]``."""
        if next_item(&p, end, 93) != 1:
            return self._fail(P_BAD_MESSAGE, p)
        p = self._symbol(p, end)
        if p == NULL:
            return NULL
        if next_item(&p, end, 93) != 0:
            return self._fail(P_BAD_MESSAGE, p)
        return p

    cdef const uchar* _depth_params(self, const uchar* p, const uchar* end) noexcept nogil:
        cdef uchar key[KEYBUF]
        cdef Py_ssize_t klen
        cdef int why
        cdef const uchar* at
        cdef bint seen_asks = False
        cdef bint seen_bids = False
        cdef int err
        cdef int r
        p = self._params_head(p, end)
        if p == NULL:
            return NULL
        if p >= end or p[0] != 123:
            return self._fail(P_BAD_MESSAGE, p)
        p = ws(p + 1, end)
        if p < end and p[0] == 125:
            p += 1
        else:
            while True:
                p = read_key(p, end, key, &klen, &why, &at)
                if p == NULL:
                    return self._fail(P_BAD_MESSAGE if why == KEY_SHAPE else P_BAD_JSON, at)
                if key_is(key, klen, "asks", 4):
                    if seen_asks:
                        return self._fail(P_BAD_MESSAGE, p)
                    seen_asks = True
                    p = self._levels(p, end, True)
                elif key_is(key, klen, "bids", 4):
                    if seen_bids:
                        return self._fail(P_BAD_MESSAGE, p)
                    seen_bids = True
                    p = self._levels(p, end, False)
                else:
                    p = skip_value(p, end, 3, &err)
                    if p == NULL:
                        return self._fail(err, p)
                if p == NULL:
                    return NULL
                r = next_item(&p, end, 125)
                if r == 0:
                    break
                if r < 0:
                    return self._fail(P_BAD_MESSAGE, p)
        return self._params_tail(p, end)

    cdef const uchar* _trade(self, const uchar* p, const uchar* end) noexcept nogil:
        cdef uchar key[KEYBUF]
        cdef uchar tbuf[8]
        cdef Py_ssize_t klen
        cdef int why
        cdef const uchar* at
        cdef Py_ssize_t tlen
        cdef int seen = 0
        cdef int err
        cdef bint isint
        cdef const uchar* q
        cdef uint64_t idv
        cdef bint neg
        cdef Trade* t
        cdef Trade* arr
        cdef Py_ssize_t newcap
        cdef int r
        if p >= end or p[0] != 123:
            return self._fail(P_BAD_MESSAGE, p)
        if self.n_trades == self.cap_trades:
            newcap = self.cap_trades * 2
            arr = <Trade*>realloc(self.trades, newcap * sizeof(Trade))
            if arr == NULL:
                return self._fail(P_NOMEM, p)
            self.trades = arr
            self.cap_trades = newcap
        t = &self.trades[self.n_trades]
        p = ws(p + 1, end)
        if p < end and p[0] == 125:
            return self._fail(P_BAD_MESSAGE, p)
        while True:
            p = read_key(p, end, key, &klen, &why, &at)
            if p == NULL:
                return self._fail(P_BAD_MESSAGE if why == KEY_SHAPE else P_BAD_JSON, at)
            if p >= end:
                return self._fail(P_BAD_MESSAGE, p)
            if key_is(key, klen, "id", 2):
                if seen & 1:
                    return self._fail(P_BAD_MESSAGE, p)
                seen |= 1
                if not (p[0] == 45 or is_digit(p[0])):
                    return self._fail(P_BAD_MESSAGE, p)
                q = scan_number(p, end, &isint)
                if q == NULL:
                    return self._fail(P_BAD_JSON, p)
                if not isint:
                    return self._fail(P_BAD_MESSAGE, p)
                neg = p[0] == 45
                if neg:
                    p += 1
                idv = 0
                if q - p > 19:
                    return self._fail(P_BAD_NUMBER, p)
                while p < q:
                    idv = idv * 10 + (p[0] - 48)
                    p += 1
                if idv > 9223372036854775807ULL or (neg and idv != 0):
                    return self._fail(P_BAD_NUMBER, p)
                t.id = <int64_t>idv
            elif key_is(key, klen, "time", 4):
                if seen & 2:
                    return self._fail(P_BAD_MESSAGE, p)
                seen |= 2
                p = number_at(self, p, end, &t.time)
                if p != NULL and not isfinite(t.time):
                    return self._fail(P_BAD_NUMBER, p)
            elif key_is(key, klen, "price", 5):
                if seen & 4:
                    return self._fail(P_BAD_MESSAGE, p)
                seen |= 4
                p = number_at(self, p, end, &t.price)
                if p != NULL and not (isfinite(t.price) and t.price > 0.0):
                    return self._fail(P_BAD_NUMBER, p)
            elif key_is(key, klen, "amount", 6):
                if seen & 8:
                    return self._fail(P_BAD_MESSAGE, p)
                seen |= 8
                p = number_at(self, p, end, &t.amount)
                if p != NULL and not (isfinite(t.amount) and t.amount >= 0.0):
                    return self._fail(P_BAD_NUMBER, p)
            elif key_is(key, klen, "type", 4):
                if seen & 16:
                    return self._fail(P_BAD_MESSAGE, p)
                seen |= 16
                if p[0] != 34:
                    return self._fail(P_BAD_MESSAGE, p)
                p = decode_string(p + 1, end, tbuf, 4, &tlen)
                if p == NULL:
                    return self._fail(P_BAD_JSON, p)
                if key_is(tbuf, tlen, "buy", 3):
                    t.side = 1
                elif key_is(tbuf, tlen, "sell", 4):
                    t.side = -1
                else:
                    return self._fail(P_BAD_MESSAGE, p)
            else:
                p = skip_value(p, end, 4, &err)
                if p == NULL:
                    return self._fail(err, p)
            if p == NULL:
                return NULL
            r = next_item(&p, end, 125)
            if r == 0:
                break
            if r < 0:
                return self._fail(P_BAD_MESSAGE, p)
        if seen != 31:
            return self._fail(P_BAD_MESSAGE, p - 1)
        self.n_trades += 1
        return p

    cdef const uchar* _trades_params(self, const uchar* p, const uchar* end) noexcept nogil:
        cdef int r
        p = self._params_head(p, end)
        if p == NULL:
            return NULL
        if p >= end or p[0] != 91:
            return self._fail(P_BAD_MESSAGE, p)
        p = ws(p + 1, end)
        if p < end and p[0] == 93:
            p += 1
        else:
            while True:
                p = self._trade(p, end)
                if p == NULL:
                    return NULL
                r = next_item(&p, end, 93)
                if r == 0:
                    break
                if r < 0:
                    return self._fail(P_BAD_MESSAGE, p)
        return self._params_tail(p, end)

    cdef const uchar* _hot_params(self, int method, const uchar* p, const uchar* end) noexcept nogil:
        if method == M_DEPTH:
            return self._depth_params(p, end)
        return self._trades_params(p, end)

    # -- ticker.update / all_ticker.update ---------------------------------------------------

    cdef const uchar* _ticker_params(self, const uchar* p, const uchar* end) noexcept nogil:
        """``params`` of a ticker push: the good records into ``tickers``, the rejected
        ones counted (``ticker_bad_symbol`` / ``ticker_bad_field``; items that are not
        ticker objects in ``ticker_bad_shape``), or, when a value needs Python's exact
        rules, ``ticker_slow`` set and the value only validated. The scratch array holds
        at most one record per ``{"symbol":"X"}`` (15 bytes of text): 136 bytes each."""
        cdef int err
        cdef const uchar* q
        self.n_tickers = 0
        self.ticker_bad_shape = 0
        self.ticker_bad_symbol = 0
        self.ticker_bad_field = 0
        self.ticker_slow = False
        q = self._tickers_fast(p, end)
        if q != NULL:
            return q
        self.n_tickers = 0
        self.ticker_bad_shape = 0
        self.ticker_bad_symbol = 0
        self.ticker_bad_field = 0
        q = skip_value(p, end, 1, &err)
        if q == NULL:
            return NULL                   # not JSON: the caller classifies (as any params)
        if err == SKIP_BIG_INT:
            self.big_int = True
        self.ticker_slow = True
        return q

    cdef const uchar* _tickers_fast(self, const uchar* p, const uchar* end) noexcept nogil:
        """``[{..}, ..]`` (the doc) or ``[[{..}, ..]]`` (seen live), like
        ``protocol._records``: anything else in ``params`` counts one ``bad_shape`` item.
        NULL on any surprise (the caller validates and takes the slow path)."""
        cdef int err
        cdef int r
        cdef const uchar* q
        if p >= end:
            return NULL
        if p[0] != 91:
            q = skip_value(p, end, 1, &err)
            if q != NULL:
                self.ticker_bad_shape += 1
            return q
        p = ws(p + 1, end)
        if p < end and p[0] == 93:
            return p + 1
        while True:
            if p >= end:
                return NULL
            if p[0] == 123:
                p = self._ticker(p, end, 3)
            elif p[0] == 91:
                p = ws(p + 1, end)
                if p < end and p[0] == 93:
                    p += 1
                else:
                    while True:
                        if p >= end:
                            return NULL
                        if p[0] == 123:
                            p = self._ticker(p, end, 4)
                        else:
                            p = skip_value(p, end, 3, &err)
                            self.ticker_bad_shape += 1
                        if p == NULL:
                            return NULL
                        r = next_item(&p, end, 93)
                        if r == 0:
                            break
                        if r < 0:
                            return NULL
            else:
                p = skip_value(p, end, 2, &err)
                self.ticker_bad_shape += 1
            if p == NULL:
                return NULL
            r = next_item(&p, end, 93)
            if r == 0:
                return p
            if r < 0:
                return NULL

    cdef const uchar* _ticker(self, const uchar* p, const uchar* end, int depth) noexcept nogil:
        """One ticker object (p at ``{``; ``depth`` its nesting level) -> ``tickers``.
        A repeated key counts with its last value (as a dict would keep it)."""
        cdef uchar key[KEYBUF]
        cdef Py_ssize_t klen
        cdef int why
        cdef const uchar* at
        cdef Py_ssize_t n
        cdef Py_ssize_t i
        cdef TickerC* t
        cdef TickerC* arr
        cdef Py_ssize_t newcap
        cdef int fid
        cdef int rc
        cdef int err
        cdef int r
        cdef uint64_t bad = 0             # bit per field: its (last) value is bad
        cdef bint sym_ok = False
        cdef uchar c
        if self.n_tickers == self.cap_tickers:
            newcap = self.cap_tickers * 2 if self.cap_tickers else 8
            arr = <TickerC*>realloc(self.tickers, newcap * sizeof(TickerC))
            if arr == NULL:
                return NULL
            self.tickers = arr
            self.cap_tickers = newcap
        t = &self.tickers[self.n_tickers]
        for i in range(TK_N_FIELDS):
            t.f[i] = NAN
        t.timestamp = 0
        t.symbol_len = 0
        p = ws(p + 1, end)
        if p < end and p[0] == 125:
            p += 1
        else:
            while True:
                p = read_key(p, end, key, &klen, &why, &at)
                if p == NULL or p >= end:
                    return NULL
                fid = ticker_key(key, klen)
                if fid < 0:
                    p = skip_value(p, end, depth, &err)
                    if p == NULL:
                        return NULL
                elif fid == TK_F_SYMBOL:
                    sym_ok = False
                    if p[0] == 34:
                        p = decode_string(p + 1, end, t.symbol, MAX_SYMBOL, &n)
                        if p == NULL:
                            return NULL
                        if 1 <= n <= MAX_SYMBOL:
                            sym_ok = True
                            for i in range(n):
                                c = t.symbol[i]
                                if c < 0x21 or c > 0x7E:
                                    sym_ok = False
                                    break
                                if c >= 97 and c <= 122:
                                    t.symbol[i] = c - 32
                            t.symbol[n] = 0
                            t.symbol_len = <int32_t>n
                            t.symbol_hash = ff_symhash(t.symbol, n)
                    else:
                        p = skip_value(p, end, depth, &err)
                        if p == NULL:
                            return NULL
                else:
                    if fid == TK_F_TIMESTAMP:
                        rc = ticker_int(&p, end, &t.timestamp, self.numbuf, depth)
                    else:
                        rc = ticker_float(&p, end, &t.f[fid], self.numbuf, depth)
                    if rc == TKV_SLOW:
                        return NULL
                    if rc == TKV_BAD:
                        bad |= (<uint64_t>1) << fid
                    else:
                        bad &= ~((<uint64_t>1) << fid)
                r = next_item(&p, end, 125)
                if r == 0:
                    break
                if r < 0:
                    return NULL
        if not sym_ok:
            self.ticker_bad_symbol += 1   # checked first, as from_dict does
        elif bad:
            self.ticker_bad_field += 1
        else:                             # kept: only good records take scratch memory
            t.status = TK_OK
            self.n_tickers += 1
        return p

    # -- envelope -------------------------------------------------------------------------

    cdef int _classify(self, const uchar* start, const uchar* end) noexcept nogil:
        """After a failure: JSON errors take precedence over shape errors."""
        cdef int err
        cdef const uchar* q = skip_value(start, end, 0, &err)
        if q == NULL:
            self.err = err
            return err
        if ws(q, end) != end:
            self.err = P_BAD_JSON
            return P_BAD_JSON
        if self.err == 0 or self.err == P_BAD_JSON:
            # a hot parser tripped on something the validator accepts: a shape error
            self.err = P_BAD_MESSAGE
        return self.err

    cdef int parse(self, const uchar* p, Py_ssize_t n) noexcept nogil:
        """Parse one message. Returns a method code (>= 0) or a rejection code (< 0)."""
        cdef int method
        _reset(self, p)
        if self.fast:
            method = self._fast(p, p + n)
            if method >= 0:
                return method
            _reset(self, p)     # a surprise: forget what the fast path filled in, parse it all again
        return _parse_general(self, p, n)

    # -- the fast path: DigiFinex's own compact shape, matched as literals ---------------------
    #
    # ``{"method":"depth.update"|"trades.update","params":[clean,body,"SYMBOL"],"id":null}``
    # (and ``{"method":"ticker.update"|"all_ticker.update","params":[{ticker},...],...}``)
    # with the keys of the envelope, of the depth object and of each trade in any order, no
    # whitespace, no escapes, decimals as strings or bare numbers without sign or exponent.
    # Every byte is read once; any surprise (another key or shape, whitespace, an escape, an
    # exponent, a long number, a full scratch array, an error of any kind) returns -1/NULL
    # with nothing reported, and ``parse`` hands the whole message to the general parser,
    # which then decides (and reports errors). What the fast path accepts, the general
    # parser accepts with bit-identical results (tests/test_fastpath.py checks this).

    cdef int _fast(self, const uchar* p, const uchar* end) noexcept nogil:
        """The whole message ``[p, end)``: the method code, or -1 to use the general parser."""
        cdef int method = -1      # from "method"
        cdef int body = -1        # from the shape of "params"
        cdef bint seen_id = False
        cdef bint after_value = False
        cdef bint clean
        cdef const uchar* q
        cdef uint64_t w
        cdef int n
        if end - p < 2 or p[0] != 123:
            return -1
        # The exchange's own shape, ``{"method":"M","params":[...],"id":null}``, straight
        # through: the method told by one 8-byte word, the envelope's literals compared as
        # words, a depth/trades body and its symbol read right here. Whatever this takes,
        # the any-order loop below takes with the same result; a failure of the params
        # (or a body of another method) fails there too (-1 at once); only a different
        # ending goes on into the loop, after the params.
        if end - p >= 48 and ff_eq(p, b'{"method":"', 11):
            w = ff_load8(p + 11)
            if w == ff_load8(b"depth.up"):
                if ff_eq(p + 19, b'date","params":[', 16):
                    method = M_DEPTH
                    q = p + 35
            elif w == ff_load8(b"trades.u") or w == ff_load8(b"ticker.u"):
                if ff_eq(p + 19, b'pdate","params":', 16) and p[35] == 91:
                    method = M_TRADES if w == ff_load8(b"trades.u") else M_TICKER
                    q = p + 36
            elif w == ff_load8(b"all_tick"):
                if ff_eq(p + 19, b'er.update","para', 16) and ff_eq(p + 35, b'ms":[', 5):
                    method = M_ALL_TICKER
                    q = p + 40
            if method == M_DEPTH or method == M_TRADES:
                # ``clean,body,"SYMBOL"]`` (q + 7 <= p + 43: readable)
                if ff_eq(q, b"false,", 6):
                    clean = False
                    q += 6
                elif ff_eq(q, b"true,", 5):
                    clean = True
                    q += 5
                else:
                    return -1
                if method == M_DEPTH and q[0] == 123:
                    q = self._fast_depth(q + 1, end)
                elif method == M_TRADES and q[0] == 91:
                    q = self._fast_trades(q + 1, end)
                else:
                    return -1
                if q == NULL or end - q < 3 or q[0] != 44 or q[1] != 34:
                    return -1
                n = ff_symbol(q + 2, end, self.symbol, &self.symbol_hash)
                if n < 0:
                    return -1
                q += n + 3
                if q >= end or q[0] != 93:
                    return -1
                q += 1
                self.symbol_len = n
                self.clean = clean
                body = method
            elif method >= 0:
                q = self._fast_params(q, end, &body)
                if q == NULL:
                    return -1
            if method >= 0:
                if end - q == 11 and ff_eq(q, b',"id":null}', 11):
                    if body == method or (body == M_TICKER and method == M_ALL_TICKER):
                        return method
                    return -1
                p = q
                after_value = True
        if not after_value:
            p += 1
        while True:
            if after_value:
                after_value = False     # the shortcut read a value: on to what follows it
            elif end - p < 10 or p[0] != 34:
                return -1
            elif p[1] == 109:   # "method":"depth.update" | "trades.update" | ...
                if method >= 0 or not ff_eq(p, b'"method":"', 10):
                    return -1
                p += 10
                if end - p >= 13 and ff_eq(p, b'depth.update"', 13):
                    method = M_DEPTH
                    p += 13
                elif end - p >= 14 and ff_eq(p, b'trades.update"', 14):
                    method = M_TRADES
                    p += 14
                elif end - p >= 14 and ff_eq(p, b'ticker.update"', 14):
                    method = M_TICKER
                    p += 14
                elif end - p >= 18 and ff_eq(p, b'all_ticker.update"', 16) and ff_eq(p + 16, b'e"', 2):
                    method = M_ALL_TICKER
                    p += 18
                else:
                    return -1
            elif p[1] == 112:   # "params":[
                if body >= 0 or not ff_eq(p, b'"params":[', 10):
                    return -1
                p = self._fast_params(p + 10, end, &body)
                if p == NULL:
                    return -1
            elif p[1] == 105:   # "id":null
                if seen_id or not ff_eq(p, b'"id":null', 9):
                    return -1
                seen_id = True
                p += 9
            else:
                return -1
            if p >= end:
                return -1
            if p[0] == 44:      # ,
                p += 1
                continue
            if p[0] == 125 and p + 1 == end:    # } ending the text
                break
            return -1
        if body == M_TICKER and method == M_ALL_TICKER:
            return method       # the same body
        if method < 0 or method != body:
            return -1
        return method

    cdef const uchar* _fast_params(self, const uchar* p, const uchar* end, int* body) noexcept nogil:
        """``clean,body,"SYMBOL"]`` (p after ``[``); ``*body`` = the method the body's shape
        belongs to. Returns the end of the array or NULL."""
        cdef bint clean
        if p < end and (p[0] == 123 or p[0] == 91):    # [{ticker},...] or [[{ticker},...]]
            body[0] = M_TICKER
            return self._fast_tickers(p, end)
        if end - p >= 5 and ff_eq(p, b"true,", 5):
            clean = True
            p += 5
        elif end - p >= 6 and ff_eq(p, b"false,", 6):
            clean = False
            p += 6
        else:
            return NULL
        if p >= end:
            return NULL
        if p[0] == 123:         # {"asks":[...],"bids":[...]}
            body[0] = M_DEPTH
            p = self._fast_depth(p + 1, end)
        elif p[0] == 91:        # [{trade},...]
            body[0] = M_TRADES
            p = self._fast_trades(p + 1, end)
        else:
            return NULL
        if p == NULL or end - p < 3 or p[0] != 44 or p[1] != 34:
            return NULL
        p = self._fast_symbol(p + 2, end)
        if p == NULL or p >= end or p[0] != 93:
            return NULL
        self.clean = clean
        return p + 1

    cdef const uchar* _fast_symbol(self, const uchar* p, const uchar* end) noexcept nogil:
        """The symbol's text (p after the quote): printable ASCII, no escape, 1..MAX_SYMBOL
        characters, upper-cased into ``self.symbol``. Returns just past the closing quote."""
        cdef int n = ff_symbol(p, end, self.symbol, &self.symbol_hash)
        if n < 0:
            return NULL
        self.symbol_len = n
        return p + n + 1

    cdef const uchar* _fast_depth(self, const uchar* p, const uchar* end) noexcept nogil:
        """``"asks":[...],"bids":[...]}`` in either order, each at most once (p after ``{``)."""
        cdef bint seen_asks = False
        cdef bint seen_bids = False
        while True:
            if end - p < 8:
                return NULL
            if ff_eq(p, b'"asks":[', 8):
                if seen_asks:
                    return NULL
                seen_asks = True
                p = self._fast_levels(p + 8, end, True)
            elif ff_eq(p, b'"bids":[', 8):
                if seen_bids:
                    return NULL
                seen_bids = True
                p = self._fast_levels(p + 8, end, False)
            else:
                return NULL
            if p == NULL or p >= end:
                return NULL
            if p[0] == 44:
                p += 1
                continue
            if p[0] == 125:
                return p + 1
            return NULL

    cdef const uchar* _fast_levels(self, const uchar* p, const uchar* end, bint asks) noexcept nogil:
        """``[price,amount],...]`` (p after the opening ``[``) into the scratch array
        (ff_levels in _fastnum.h); gives up when it is full (the general parser grows it)."""
        cdef Py_ssize_t n = 0
        if asks:
            p = ff_levels(p, end, self.base, <double*>self.asks, self.cap_asks, &n)
            self.n_asks = n
        else:
            p = ff_levels(p, end, self.base, <double*>self.bids, self.cap_bids, &n)
            self.n_bids = n
        return p

    cdef const uchar* _fast_tickers(self, const uchar* p, const uchar* end) noexcept nogil:
        """``{ticker},...]`` or ``[{ticker},...]]`` (p after the opening ``[`` of params; at
        least one ticker object): the records into ``tickers``. Returns the end of params."""
        cdef bint nested = p[0] == 91
        if nested:
            p += 1
        while True:
            p = self._fast_ticker(p, end)
            if p == NULL or end - p < 2:
                return NULL
            if p[0] == 44:
                p += 1
            elif p[0] == 93:
                p += 1
                if nested:
                    if p[0] != 93:
                        return NULL
                    p += 1
                return p
            else:
                return NULL

    cdef const uchar* _fast_ticker(self, const uchar* p, const uchar* end) noexcept nogil:
        """One ticker object (p at ``{``): each key at most once, values as the exchange
        sends them (decimal strings, an integer timestamp, a plain symbol); anything else,
        a missing symbol or a full scratch array gives up (the general parser decides).
        Fields that are absent stay NaN (timestamp 0), as in the general parser."""
        cdef TickerC* t
        cdef uint64_t seen = 0
        cdef int fid
        cdef int klen
        cdef int n
        cdef int i
        cdef const uchar* q
        if self.n_tickers == self.cap_tickers or end - p < 2 or p[0] != 123:
            return NULL
        t = &self.tickers[self.n_tickers]
        # the exchange's own key order, every key a literal (ff_ticker_fixed); any other
        # object: the any-order loop below reads it afresh
        q = ff_ticker_fixed(p, end, t.f, &t.timestamp, t.symbol, &t.symbol_hash,
                            &t.symbol_len)
        if q != NULL:
            t.status = TK_OK
            self.n_tickers += 1
            return q
        for i in range(TK_N_FIELDS):
            t.f[i] = NAN
        t.timestamp = 0
        p += 1
        while True:
            # ff_ticker_key reads up to 19 bytes; the value's first byte follows the key
            if end - p < 20 or p[0] != 34:
                return NULL
            fid = ff_ticker_key(p, &klen)
            if fid < 0 or seen & ((<uint64_t>1) << fid):
                return NULL
            seen |= (<uint64_t>1) << fid
            p += klen
            if fid < TK_N_FIELDS:
                if p[0] != 34:
                    return NULL
                p = ff_qdecimal(p, end, &t.f[fid])
            elif fid == TK_F_TIMESTAMP:
                p = ff_uint(p, end, &t.timestamp)
            else:
                if p[0] != 34:
                    return NULL
                n = ff_symbol(p + 1, end, t.symbol, &t.symbol_hash)
                if n < 0:
                    return NULL
                t.symbol_len = n
                p += n + 2
            if p == NULL or p >= end:
                return NULL
            if p[0] == 44:
                p += 1
            elif p[0] == 125:
                break
            else:
                return NULL
        if not seen & ((<uint64_t>1) << TK_F_SYMBOL):
            return NULL
        t.status = TK_OK
        self.n_tickers += 1
        return p + 1

    cdef const uchar* _fast_trades(self, const uchar* p, const uchar* end) noexcept nogil:
        """``{trade},...]`` (p after the opening ``[``): each trade in the exchange's shape
        as a unit (ff_trade, inlined here: it reads up to FF_TRADE_BEFORE bytes before p,
        and p only grows), any other key by key (``_fast_trade``)."""
        cdef Trade* t
        cdef const uchar* q
        cdef bint whole = p - self.base >= FF_TRADE_BEFORE
        if p < end and p[0] == 93:
            return p + 1
        while True:
            q = NULL
            if whole and self.n_trades < self.cap_trades:
                t = &self.trades[self.n_trades]
                q = ff_trade(p, end, &t.id, &t.time, &t.price, &t.amount, &t.side)
            if q != NULL:
                self.n_trades += 1
                p = q
            else:
                p = self._fast_trade(p, end)
            if p == NULL or p >= end:
                return NULL
            if p[0] == 44:
                p += 1
            elif p[0] == 93:
                return p + 1
            else:
                return NULL

    cdef const uchar* _fast_trade(self, const uchar* p, const uchar* end) noexcept nogil:
        """One trade object key by key (those ff_trade does not take): exactly the keys
        id, time, price, amount, type in any order."""
        cdef Trade* t
        cdef int seen = 0
        cdef uchar c
        cdef const uchar* q
        if self.n_trades == self.cap_trades or end - p < 2 or p[0] != 123:
            return NULL
        t = &self.trades[self.n_trades]
        # the exchange's order, {"id":N,"time":T,"amount":"A","price":"P","type":"buy"},
        # number by number (where ff_trade, in _fast_trades, did not take it as a unit);
        # anything else: the any-order loop below reads the object
        if end - p >= 24 and ff_eq(p, b'{"id":', 6):
            q = ff_uint(p + 6, end, &t.id)
            if q != NULL and end - q >= 24 and ff_eq(q, b',"time":', 8):
                q = ff_number_i(q + 8, end, &t.time)
                if q != NULL and end - q >= 24 and ff_eq(q, b',"amount":', 10):
                    q = ff_number(q + 10, end, &t.amount)
                    if q != NULL and end - q >= 24 and ff_eq(q, b',"price":', 9):
                        q = ff_number(q + 9, end, &t.price)
                        if q != NULL and t.price > 0.0 and end - q >= 16 and ff_eq(q, b',"type":"', 9):
                            if ff_eq(q + 9, b'buy"}', 5):
                                t.side = 1
                                self.n_trades += 1
                                return q + 14
                            if ff_eq(q + 9, b'sell"}', 6):
                                t.side = -1
                                self.n_trades += 1
                                return q + 15
        p += 1
        while True:
            if end - p < 16 or p[0] != 34:
                return NULL
            c = p[1]
            if c == 105:        # "id":
                if seen & 1 or not ff_eq(p, b'"id":', 5):
                    return NULL
                seen |= 1
                p = ff_uint(p + 5, end, &t.id)
            elif c == 116:      # "time": | "type":"
                if ff_eq(p, b'"time":', 7):
                    if seen & 2:
                        return NULL
                    seen |= 2
                    p = ff_number_i(p + 7, end, &t.time)
                elif ff_eq(p, b'"type":"', 8):
                    if seen & 16:
                        return NULL
                    seen |= 16
                    p += 8
                    if ff_eq(p, b'buy"', 4):
                        t.side = 1
                        p += 4
                    elif ff_eq(p, b'sell"', 5):
                        t.side = -1
                        p += 5
                    else:
                        return NULL
                else:
                    return NULL
            elif c == 112:      # "price":
                if seen & 4 or not ff_eq(p, b'"price":', 8):
                    return NULL
                seen |= 4
                p = ff_number(p + 8, end, &t.price)
                if p != NULL and not t.price > 0.0:
                    return NULL
            elif c == 97:       # "amount":
                if seen & 8 or not ff_eq(p, b'"amount":', 9):
                    return NULL
                seen |= 8
                p = ff_number(p + 9, end, &t.amount)
            else:
                return NULL
            if p == NULL or p >= end:
                return NULL
            if p[0] == 44:
                p += 1
            elif p[0] == 125:
                break
            else:
                return NULL
        if seen != 31:
            return NULL
        self.n_trades += 1
        return p + 1


# -- Python-level helpers (tests, the reference oracle's cross-checks) --------------------

def parse_decimal_py(s):
    """Parse a decimal string with the engine's number parser (for tests)."""
    cdef bytes b = s.encode("latin-1") if isinstance(s, str) else bytes(s)
    cdef double v
    cdef char buf[MAX_NUMBER + 2]
    if parse_decimal(<const uchar*><char*>b, len(b), &v, buf) != 0:
        raise ValueError(f"not a decimal: {s!r}")
    return v


def validate_json_py(data):
    """Return the rejection reason the validator gives ``data`` ('' if valid JSON)."""
    cdef bytes b = bytes(data)
    cdef int err
    cdef const uchar* p = <const uchar*><char*>b
    cdef const uchar* end = p + len(b)
    cdef const uchar* q = skip_value(p, end, 0, &err)
    if q == NULL:
        return "too_deep" if err == P_TOO_DEEP else "bad_json"
    if ws(q, end) != end:
        return "bad_json"
    return ""


#: Whether this build has the fast path (it needs doubles evaluated without excess
#: precision, FLT_EVAL_METHOD == 0; the SWAR digit code also wants little-endian and has a
#: byte loop elsewhere).
FAST_PATH_AVAILABLE = bool(FF_FAST_AVAILABLE)

cdef dict _REJECT_NAMES = {
    P_BAD_JSON: "bad_json",
    P_TOO_DEEP: "too_deep",
    P_BAD_MESSAGE: "bad_message",
    P_BAD_NUMBER: "bad_number",
    P_NOMEM: "nomem",
}


def set_fast_path(enabled):
    """Whether Parsers, and so Engines, created from now on try the fast path before the
    general parser; returns the previous setting. Existing ones keep theirs.

    For tests and benchmarks: the results are identical either way, only the speed differs.
    It stays off where ``FAST_PATH_AVAILABLE`` is false.
    """
    global _fast_default
    cdef bint prev = _fast_default
    _fast_default = bool(enabled) and FF_FAST_AVAILABLE
    return prev


cdef enum:
    _FAST_GAVE_UP = -1000   # _parse_path: path "fast" and the fast path gave up


cdef int _parse_path(Parser parser, const uchar[::1] view, str path) except -2000:
    """Parse ``view`` along ``path`` (parse_py, parse_tickers_py): the fast path only, the
    general parser only, or both as the Engine does; returns the parser's result code, or
    ``_FAST_GAVE_UP``. The text is read in place: its end is the end of the message."""
    cdef const uchar* p = <const uchar*>b""
    cdef Py_ssize_t n = view.shape[0]
    cdef int rc
    cdef bint was
    if n:
        p = &view[0]
    if path == "fast":
        if not FF_FAST_AVAILABLE:
            return _FAST_GAVE_UP
        _reset(parser, p)
        rc = parser._fast(p, p + n)
        return _FAST_GAVE_UP if rc < 0 else rc
    was = parser.fast
    parser.fast = path == "auto" and FF_FAST_AVAILABLE
    try:
        return parser.parse(p, n)
    finally:
        parser.fast = was


def parse_py(data, str path="auto", Parser parser=None):
    """Parse one JSON message text with the engine's parser (for tests and benchmarks).

    ``path``: ``"auto"`` the fast path, then the general parser on any surprise (what
    ``Engine`` does); ``"general"`` the general parser only; ``"fast"`` the fast path only,
    returning ``None`` when it gives up. ``data`` (bytes-like, or ``str`` encoded as UTF-8)
    is read in place: exactly its bytes, nothing past its end. ``parser``: a ``Parser`` to
    reuse (its scratch arrays keep the size they grew to), else a fresh one.

    Returns ``(outcome, clean, symbol, asks, bids, trades, error_offset)``: ``outcome`` is
    the method name (``METHOD_NAMES``) or the rejection reason (``"bad_json"``,
    ``"too_deep"``, ``"bad_message"``, ``"bad_number"``); for ``depth.update`` and
    ``trades.update`` ``clean`` (bool), ``symbol`` (upper case), ``asks``/``bids`` as lists
    of ``(price, amount)`` and ``trades`` as a list of ``(id, time, price, amount, side)``,
    in text order; for anything else ``None, None, [], [], []``. ``error_offset`` is the
    byte offset of a rejection, else -1.
    """
    cdef Py_ssize_t i
    cdef int rc
    if path not in ("auto", "general", "fast"):
        raise ValueError(f"path must be 'auto', 'general' or 'fast', not {path!r}")
    if isinstance(data, str):
        data = data.encode("utf-8")   # (kept alive here while the parser's results are read)
    if parser is None:
        parser = Parser()
    rc = _parse_path(parser, data, path)
    if rc == _FAST_GAVE_UP:
        return None
    if rc < 0:
        return (_REJECT_NAMES[rc], None, None, [], [], [], parser.error_offset())
    if rc != M_DEPTH and rc != M_TRADES:
        return (METHOD_NAMES[rc], None, None, [], [], [], -1)
    asks = [(parser.asks[i].price, parser.asks[i].amount) for i in range(parser.n_asks)]
    bids = [(parser.bids[i].price, parser.bids[i].amount) for i in range(parser.n_bids)]
    trades = [(parser.trades[i].id, parser.trades[i].time, parser.trades[i].price,
               parser.trades[i].amount, parser.trades[i].side) for i in range(parser.n_trades)]
    symbol = (<char*>parser.symbol)[:parser.symbol_len].decode("ascii")
    return (METHOD_NAMES[rc], bool(parser.clean), symbol, asks, bids, trades, -1)


def parse_tickers_py(data, str path="auto", Parser parser=None):
    """The ticker records a ``ticker.update`` / ``all_ticker.update`` push parses to (for
    tests). ``path``, ``data`` and ``parser`` as in ``parse_py`` (``"fast"``: ``None`` when
    the fast path gives up).

    Returns ``(outcome, records, bad_shape, bad_symbol, bad_field, slow)``: ``outcome`` as
    in ``parse_py``; ``records`` the kept records as ``(symbol, fields, timestamp)`` with
    ``fields`` the 11 floats in ``fastfeed.layout.TICKER_FIELDS`` order (NaN: missing);
    the counts of rejected items; ``slow``: a value needs Python's exact rules (the engine
    then decodes the push in Python and ``records`` is not used)."""
    cdef Py_ssize_t i
    cdef int rc
    cdef TickerC* t
    if path not in ("auto", "general", "fast"):
        raise ValueError(f"path must be 'auto', 'general' or 'fast', not {path!r}")
    if isinstance(data, str):
        data = data.encode("utf-8")   # (kept alive here while the parser's results are read)
    if parser is None:
        parser = Parser()
    rc = _parse_path(parser, data, path)
    if rc == _FAST_GAVE_UP:
        return None
    if rc < 0:
        return (_REJECT_NAMES[rc], [], 0, 0, 0, False)
    outcome = METHOD_NAMES[rc]
    if rc != M_TICKER and rc != M_ALL_TICKER:
        return (outcome, [], 0, 0, 0, False)
    records = []
    for i in range(parser.n_tickers):
        t = &parser.tickers[i]
        records.append(((<char*>t.symbol)[:t.symbol_len].decode("ascii"),
                        tuple([t.f[k] for k in range(TK_N_FIELDS)]), t.timestamp))
    return (outcome, records, parser.ticker_bad_shape, parser.ticker_bad_symbol,
            parser.ticker_bad_field, bool(parser.ticker_slow))


def parse_batch_py(payloads, str path="auto", Parser parser=None):
    """Parse each ``bytes`` of ``payloads`` in turn with one parser and return how many were
    accepted (not rejected); nothing else is kept. ``path`` as in ``parse_py`` (with
    ``"fast"``: how many the fast path took). For benchmarks: parse-only time without a
    Python call per message."""
    cdef Py_ssize_t ok = 0
    cdef bint was
    cdef bint fast_only = path == "fast"
    cdef object b
    if path not in ("auto", "general", "fast"):
        raise ValueError(f"path must be 'auto', 'general' or 'fast', not {path!r}")
    if parser is None:
        parser = Parser()
    was = parser.fast
    parser.fast = path == "auto" and FF_FAST_AVAILABLE
    try:
        for b in payloads:
            if type(b) is not bytes:
                raise TypeError(f"payloads must be bytes, not {type(b).__name__}")
            if fast_only:
                if not FF_FAST_AVAILABLE:
                    continue
                _reset(parser, <const uchar*>PyBytes_AS_STRING(b))
                if parser._fast(<const uchar*>PyBytes_AS_STRING(b),
                                <const uchar*>PyBytes_AS_STRING(b) + PyBytes_GET_SIZE(b)) >= 0:
                    ok += 1
            elif parser.parse(<const uchar*>PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b)) >= 0:
                ok += 1
    finally:
        parser.fast = was
    return ok
