"""A seeded synthetic transaction stream for the rollup's tests and benchmark: many funded subaccounts trading
BTC-USD and ETH-USD around a drifting oracle price, with cancels, transfers, withdrawals and funding ticks.

Deterministic from its seed (one `random.Random` instance, no global state); every transaction is plausible
for the core (most are accepted); callers skip the rejected ones as any client would.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from perpdex.core.orders import Side, TimeInForce
from perpdex.core.state import SubaccountId
from perpdex.core.tx import (
    CancelOrder,
    Deposit,
    FundingTick,
    OraclePrice,
    OracleUpdate,
    PlaceOrder,
    Transfer,
    Withdraw,
)
from perpdex.core.units import QUOTE

BTC_DOLLAR = 100_000  # subticks per $1 of BTC-USD (atomic resolution -10, qce -9)
ETH_DOLLAR = 1_000_000  # subticks per $1 of ETH-USD (atomic resolution -9, qce -9)
STEP = 1_000_000  # base quantums of one order-size step in both shipped markets


def subaccount(i: int) -> SubaccountId:
    return SubaccountId(f"trader{i:06d}")


def genesis(n_accounts: int, *, ts_ms: int = 1, usdc: int = 50_000 * QUOTE) -> list[Any]:
    """A deposit for every subaccount, then an oracle price for both markets."""
    txs: list[Any] = [Deposit(ts_ms, subaccount(i), usdc) for i in range(n_accounts)]
    txs.append(OracleUpdate(ts_ms, (OraclePrice("BTC-USD", (100_000 * BTC_DOLLAR,)),
                                    OraclePrice("ETH-USD", (3_000 * ETH_DOLLAR,)))))
    return txs


def trading(n_accounts: int, n_txs: int, *, seed: int = 7, start_ts_ms: int = 2, tx_interval_ms: int = 20,
            oracle_every: int = 200) -> Iterator[Any]:
    """`n_txs` trading transactions after `genesis`: about 45% resting limit orders near the price, 35% takers
    (IOC), 8% cancels, 5% transfers, 4% withdrawals, an oracle update every `oracle_every` transactions (a
    small random walk) and a funding tick each hour of transaction time."""
    rng = random.Random(seed)
    btc, eth = 100_000 * BTC_DOLLAR, 3_000 * ETH_DOLLAR
    ts = start_ts_ms
    next_funding = 3_600_000
    for n in range(n_txs):
        ts += tx_interval_ms
        if n % oracle_every == oracle_every - 1:
            btc = max(btc + rng.randint(-200, 200) * BTC_DOLLAR, 1_000 * BTC_DOLLAR)
            eth = max(eth + rng.randint(-10, 10) * ETH_DOLLAR, 100 * ETH_DOLLAR)
            yield OracleUpdate(ts, (OraclePrice("BTC-USD", (btc,)), OraclePrice("ETH-USD", (eth,))))
            continue
        if ts >= next_funding:
            next_funding += 3_600_000
            yield FundingTick(ts)
            continue
        who = subaccount(rng.randrange(n_accounts))
        roll = rng.random()
        market, price, dollar = ("BTC-USD", btc, BTC_DOLLAR) if rng.random() < 0.7 else ("ETH-USD", eth, ETH_DOLLAR)
        tick = dollar if market == "BTC-USD" else dollar // 10
        if roll < 0.45:
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            offset = rng.randint(1, 20) * tick
            limit = price - offset if side is Side.BUY else price + offset
            yield PlaceOrder(ts, who, market, side, rng.randint(1, 20) * STEP, limit, client_id=n)
        elif roll < 0.80:
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            limit = price + 25 * tick if side is Side.BUY else price - 25 * tick
            yield PlaceOrder(ts, who, market, side, rng.randint(1, 10) * STEP, limit, time_in_force=TimeInForce.IOC)
        elif roll < 0.88:
            yield CancelOrder(ts, who, client_id=rng.randrange(max(n, 1)))
        elif roll < 0.93:
            yield Transfer(ts, who, subaccount(rng.randrange(n_accounts)), rng.randint(1, 100) * QUOTE)
        elif roll < 0.97:
            yield Withdraw(ts, who, rng.randint(1, 100) * QUOTE)
        else:
            yield Deposit(ts, who, rng.randint(1, 1_000) * QUOTE)
