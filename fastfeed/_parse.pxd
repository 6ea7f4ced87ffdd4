cimport cython
from libc.stdint cimport int8_t, int32_t, int64_t, uint64_t

ctypedef unsigned char uchar

# Method codes returned by Parser.parse (>= 0) ...
cdef enum:
    M_REPLY = 0
    M_DEPTH = 1
    M_TRADES = 2
    M_TICKER = 3
    M_ALL_TICKER = 4
    M_ORDER = 5
    M_ORDER_ALGO = 6
    M_BALANCE = 7
    M_UNKNOWN = 8
    M_COUNT = 9

# ... and rejection codes (< 0).
cdef enum:
    P_BAD_JSON = -10
    P_TOO_DEEP = -11
    P_BAD_MESSAGE = -12
    P_BAD_NUMBER = -13
    P_NOMEM = -14

cdef enum:
    SKIP_BIG_INT = 1               # skip_value success flag: an integer may exceed 64 bits

cdef enum:
    MAX_DEPTH = 64
    MAX_SYMBOL = 32
    MAX_NUMBER = 1024
    MAX_METHOD = 32

cdef struct Level:
    double price
    double amount

# One ticker record of a ticker.update / all_ticker.update push (fastfeed.layout.TICKER_FIELDS
# order for ``f``; NaN = missing). ``status``: TK_OK, or why the record is rejected (such a
# record is only counted: the scratch array holds good records only).
cdef enum:
    TK_N_FIELDS = 11
    TK_OK = 0
    TK_BAD_SYMBOL = 1
    TK_BAD_FIELD = 2

cdef struct TickerC:
    double f[11]
    int64_t timestamp
    uint64_t symbol_hash           # ff_symhash(symbol, symbol_len) (_fastnum.h)
    int32_t symbol_len
    int8_t status
    uchar symbol[33]


cdef struct Trade:
    int64_t id
    double time
    double price
    double amount
    int8_t side


@cython.final
cdef class Parser:
    # scratch filled by parse() for depth.update / trades.update
    cdef Level* asks
    cdef Py_ssize_t n_asks
    cdef Py_ssize_t cap_asks
    cdef Level* bids
    cdef Py_ssize_t n_bids
    cdef Py_ssize_t cap_bids
    cdef Trade* trades
    cdef Py_ssize_t n_trades
    cdef Py_ssize_t cap_trades
    cdef bint clean
    cdef bint big_int              # a non-hot message holds an integer that may not fit int64
    cdef uchar symbol[MAX_SYMBOL + 1]
    cdef Py_ssize_t symbol_len
    cdef uint64_t symbol_hash      # ff_symhash(symbol, symbol_len) (_fastnum.h)
    # ticker.update / all_ticker.update (separate from the depth/trade scratch)
    cdef TickerC* tickers
    cdef Py_ssize_t n_tickers
    cdef Py_ssize_t cap_tickers
    cdef Py_ssize_t ticker_bad_shape  # params items that are not ticker objects
    cdef Py_ssize_t ticker_bad_symbol  # records rejected (counted, not kept in ``tickers``)
    cdef Py_ssize_t ticker_bad_field
    cdef bint ticker_slow          # a value needs Python's exact rules: decode in Python
    # error state of the last parse
    cdef int err
    cdef const uchar* err_at
    cdef const uchar* base
    cdef char* numbuf              # 2 x (MAX_NUMBER + 2): strtod copies, decoded strings
    cdef bint fast                 # try the fast path first (set_fast_path at creation)

    cdef int parse(self, const uchar* p, Py_ssize_t n) noexcept nogil
    cdef const uchar* _fail(self, int code, const uchar* at) noexcept nogil
    cdef const uchar* _number(self, const uchar* p, const uchar* end, double* out) noexcept nogil
    cdef const uchar* _symbol(self, const uchar* p, const uchar* end) noexcept nogil
    cdef const uchar* _clean(self, const uchar* p, const uchar* end) noexcept nogil
    cdef const uchar* _levels(self, const uchar* p, const uchar* end, bint asks) noexcept nogil
    cdef const uchar* _params_head(self, const uchar* p, const uchar* end) noexcept nogil
    cdef const uchar* _params_tail(self, const uchar* p, const uchar* end) noexcept nogil
    cdef const uchar* _depth_params(self, const uchar* p, const uchar* end) noexcept nogil
    cdef const uchar* _trade(self, const uchar* p, const uchar* end) noexcept nogil
    cdef const uchar* _trades_params(self, const uchar* p, const uchar* end) noexcept nogil
    cdef const uchar* _hot_params(self, int method, const uchar* p, const uchar* end) noexcept nogil
    cdef const uchar* _ticker_params(self, const uchar* p, const uchar* end) noexcept nogil
    cdef const uchar* _tickers_fast(self, const uchar* p, const uchar* end) noexcept nogil
    cdef const uchar* _ticker(self, const uchar* p, const uchar* end, int depth) noexcept nogil
    cdef int _classify(self, const uchar* start, const uchar* end) noexcept nogil
    cdef Py_ssize_t error_offset(self) noexcept nogil
    # the fast path (DigiFinex's compact shape; -1 / NULL: use the general parser)
    cdef int _fast(self, const uchar* p, const uchar* end) noexcept nogil
    cdef const uchar* _fast_params(self, const uchar* p, const uchar* end, int* body) noexcept nogil
    cdef const uchar* _fast_symbol(self, const uchar* p, const uchar* end) noexcept nogil
    cdef const uchar* _fast_depth(self, const uchar* p, const uchar* end) noexcept nogil
    cdef const uchar* _fast_levels(self, const uchar* p, const uchar* end, bint asks) noexcept nogil
    cdef const uchar* _fast_tickers(self, const uchar* p, const uchar* end) noexcept nogil
    cdef const uchar* _fast_ticker(self, const uchar* p, const uchar* end) noexcept nogil
    cdef const uchar* _fast_trades(self, const uchar* p, const uchar* end) noexcept nogil
    cdef const uchar* _fast_trade(self, const uchar* p, const uchar* end) noexcept nogil
