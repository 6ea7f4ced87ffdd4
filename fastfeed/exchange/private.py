"""Private simulation of one authenticated account: limit and market orders that fill over
time, algo (trigger) orders, and balances that move with them.

Each :meth:`AccountSim.step` returns the pushes it caused as ``(channel, name, payload)``
where channel is ``"order"``, ``"order_algo"`` or ``"balance"``, name is the symbol (orders)
or the currency (balances) used for subscription filtering, and payload the JSON bytes.
Amounts are :class:`decimal.Decimal` internally, strings on the wire.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

import orjson

from .config import SymbolSpec

__all__ = ["AccountSim", "PrivatePush"]

#: (channel, symbol-or-currency, JSON payload)
PrivatePush = tuple[str, str, bytes]

_BAL_Q = Decimal("0.0000000001")


def _q(value: Decimal, decimals: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_DOWN)


def _s(value: Decimal) -> str:
    s = format(value, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s or "0"


@dataclass
class _Order:
    id: str
    spec: SymbolSpec
    side: str
    type: str
    price: Decimal
    amount: Decimal
    filled: Decimal = Decimal(0)
    notional: Decimal = Decimal(0)
    status: int = 0
    mode: int = 1
    timestamp: int = 0

    def wire(self) -> dict[str, Any]:
        avg = self.notional / self.filled if self.filled else Decimal(0)
        return {
            "amount": _s(self.amount),
            "filled": _s(self.filled),
            "id": self.id,
            "mode": self.mode,
            "notional": _s(_q(self.notional, 8)),
            "price": _s(self.price),
            "price_avg": _s(_q(avg, self.spec.price_decimals + 2)),
            "side": self.side,
            "status": self.status,
            "symbol": self.spec.name,
            "timestamp": self.timestamp,
            "type": self.type,
        }


@dataclass
class _Algo:
    id: str
    spec: SymbolSpec
    side: str
    trigger_price: Decimal
    algo_price: Decimal
    amount: Decimal
    status: int = 0
    mode: int = 1
    timestamp: int = 0

    def wire(self) -> dict[str, Any]:
        return {
            "algo_price": _s(self.algo_price),
            "amount": _s(self.amount),
            "id": self.id,
            "mode": self.mode,
            "side": self.side,
            "status": self.status,
            "symbol": self.spec.name,
            "timestamp": self.timestamp,
            "trigger_price": _s(self.trigger_price),
        }


class AccountSim:
    """Orders, algo orders and balances of one account.

    ``price_of(symbol)`` gives the current reference price (the market's mid)."""

    def __init__(
        self,
        api_key: str,
        specs: Sequence[SymbolSpec],
        price_of: Callable[[str], float],
        rng: random.Random,
        quote_balance: Decimal = Decimal(1_000_000),
    ) -> None:
        self.api_key = api_key
        self.specs = list(specs)
        self.price_of = price_of
        self.rng = rng
        #: currency -> [free, used]
        self.balances: dict[str, list[Decimal]] = {}
        for spec in self.specs:
            self.balances.setdefault(spec.quote, [quote_balance, Decimal(0)])
            base = _q(Decimal(100_000) / Decimal(repr(spec.price)), spec.amount_decimals)
            self.balances.setdefault(spec.base, [base, Decimal(0)])
        self.orders: dict[str, _Order] = {}
        self.algos: dict[str, _Algo] = {}
        self.steps = 0

    # ------------------------------------------------------------------ helpers
    def _id(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def _price(self, spec: SymbolSpec, factor: float) -> Decimal:
        p = _q(Decimal(repr(self.price_of(spec.name) * factor)), spec.price_decimals)
        return max(p, Decimal(1).scaleb(-spec.price_decimals))

    def balance(self, currency: str) -> dict[str, str]:
        """The wire object of one balance."""
        free, used = self.balances.get(currency, [Decimal(0), Decimal(0)])
        return {
            "currency": currency,
            "free": format(free.quantize(_BAL_Q), "f"),
            "total": format((free + used).quantize(_BAL_Q), "f"),
            "used": format(used.quantize(_BAL_Q), "f"),
        }

    @staticmethod
    def _push(method: str, obj: dict[str, Any]) -> bytes:
        return orjson.dumps({"method": method, "params": [obj], "id": None})

    def _order_push(self, o: _Order, out: list[PrivatePush]) -> None:
        out.append(("order", o.spec.name, self._push("order.update", o.wire())))

    def _balance_push(self, currencies: Sequence[str], out: list[PrivatePush]) -> None:
        for c in dict.fromkeys(currencies):
            out.append(("balance", c, self._push("balance.update", self.balance(c))))

    # ------------------------------------------------------------------ actions
    def _new_order(
        self,
        now_ms: int,
        out: list[PrivatePush],
        spec: SymbolSpec | None = None,
        side: str | None = None,
        price: Decimal | None = None,
    ) -> bool:
        rng = self.rng
        spec = spec or rng.choice(self.specs)
        side = side or rng.choice(("buy", "sell"))
        market = price is None and rng.random() < 0.15
        ref = self._price(spec, 1.0)
        if price is None:
            off = 1 - rng.uniform(0, 0.001) if side == "buy" else 1 + rng.uniform(0, 0.001)
            price = self._price(spec, off)
        notional = Decimal(repr(rng.uniform(50, 2000)))
        amount = _q(notional / price, spec.amount_decimals)
        if amount <= 0:
            amount = Decimal(1).scaleb(-spec.amount_decimals)
        qb, bb = self.balances[spec.quote], self.balances[spec.base]
        cost = amount * (ref if market else price)
        if (side == "buy" and qb[0] < cost) or (side == "sell" and bb[0] < amount):
            return False
        o = _Order(
            self._id(),
            spec,
            side,
            "market" if market else "limit",
            Decimal(0) if market else price,
            amount,
            timestamp=now_ms,
        )
        if market:
            o.filled, o.notional, o.status = amount, amount * ref, 2
            if side == "buy":
                qb[0] -= o.notional
                bb[0] += amount
            else:
                bb[0] -= amount
                qb[0] += o.notional
        else:
            if side == "buy":
                qb[0] -= cost
                qb[1] += cost
            else:
                bb[0] -= amount
                bb[1] += amount
            self.orders[o.id] = o
        self._order_push(o, out)
        self._balance_push((spec.quote, spec.base), out)
        return True

    def _progress(self, o: _Order, now_ms: int, out: list[PrivatePush]) -> None:
        rng = self.rng
        spec = o.spec
        qb, bb = self.balances[spec.quote], self.balances[spec.base]
        remaining = o.amount - o.filled
        o.timestamp = now_ms
        if rng.random() < 0.08:  # cancel, release what is still locked
            if o.side == "buy":
                qb[1] -= remaining * o.price
                qb[0] += remaining * o.price
            else:
                bb[1] -= remaining
                bb[0] += remaining
            o.status = 3 if o.filled == 0 else 4
            del self.orders[o.id]
        else:
            if rng.random() < 0.4:
                fill = remaining
            else:
                fill = _q(remaining * Decimal(repr(rng.uniform(0.1, 0.9))), spec.amount_decimals)
                if fill <= 0:
                    fill = remaining
            o.filled += fill
            o.notional += fill * o.price
            if o.side == "buy":
                qb[1] -= fill * o.price
                bb[0] += fill
            else:
                bb[1] -= fill
                qb[0] += fill * o.price
            if o.filled >= o.amount:
                o.status = 2
                del self.orders[o.id]
            else:
                o.status = 1
        self._order_push(o, out)
        self._balance_push((spec.quote, spec.base), out)

    def _new_algo(self, now_ms: int, out: list[PrivatePush]) -> None:
        rng = self.rng
        spec = rng.choice(self.specs)
        side = rng.choice(("buy", "sell"))
        trigger = self._price(spec, 1 + rng.uniform(-0.002, 0.002))
        amount = _q(Decimal(repr(rng.uniform(50, 1000))) / trigger, spec.amount_decimals)
        if amount <= 0:
            amount = Decimal(1).scaleb(-spec.amount_decimals)
        a = _Algo(self._id(), spec, side, trigger, trigger, amount, timestamp=now_ms)
        self.algos[a.id] = a
        out.append(("order_algo", spec.name, self._push("order_algo.update", a.wire())))

    def _progress_algo(self, a: _Algo, now_ms: int, out: list[PrivatePush]) -> None:
        rng = self.rng
        a.timestamp = now_ms
        r = rng.random()
        if r < 0.05:
            a.status = -1
        elif a.status == 0:
            a.status = 1
        else:
            created: list[PrivatePush] = []
            ok = self._new_order(now_ms, created, a.spec, a.side, a.algo_price)
            a.status = 2 if ok else -2
            out.append(("order_algo", a.spec.name, self._push("order_algo.update", a.wire())))
            out.extend(created)  # the order the trigger placed, with its balance changes
            del self.algos[a.id]
            return
        if a.status < 0:
            del self.algos[a.id]
        out.append(("order_algo", a.spec.name, self._push("order_algo.update", a.wire())))

    def step(self, now: float | None = None) -> list[PrivatePush]:
        """Advance the account by one tick: maybe place orders, fill or cancel some, move
        algo orders along; return the resulting pushes in order."""
        now_ms = int((time.time() if now is None else now) * 1000)
        rng = self.rng
        out: list[PrivatePush] = []
        for o in list(self.orders.values()):
            if rng.random() < 0.4:
                self._progress(o, now_ms, out)
        for a in list(self.algos.values()):
            if rng.random() < 0.4:
                self._progress_algo(a, now_ms, out)
        if len(self.orders) < 5 and (rng.random() < 0.7 or not out):
            self._new_order(now_ms, out)
        if len(self.algos) < 3 and rng.random() < 0.3:
            self._new_algo(now_ms, out)
        self.steps += 1
        return out
