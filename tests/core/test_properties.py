"""Hypothesis properties over random transaction sequences: invariants after every tx, rejected
txs change nothing, no account pushed below maintenance by a non-oracle tx, replay is bit-identical."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perpdex.config.markets import load_markets
from perpdex.core.errors import PerpdexError
from perpdex.core.exchange import Exchange
from perpdex.core.invariants import check_invariants
from perpdex.core.orders import ConditionType, OrderType, Side, TimeInForce
from perpdex.core.state import MarginMode, SubaccountId
from perpdex.core.tx import (
    CancelOrder, Deposit, FundingTick, OraclePrice, OracleUpdate, PlaceOrder, SetMarginMode, Transfer, Withdraw,
)
from perpdex.core.units import QUOTE

# one-minute funding intervals (dYdX model, 20 s samples) and a default rate, so funding ticks land
# inside a sequence and move the index (settlement and its dust get exercised)
MARKETS = [replace(m, funding_overrides=(("funding_tick_interval_ms", 60_000), ("sample_interval_ms", 20_000),
                                          ("default_funding_ppm", 150)))
           for m in load_markets() if m.market_id in ("BTC-USD", "ETH-USD")]
TICK = {m.market_id: m.subticks_per_tick for m in MARKETS}
STEP = {m.market_id: m.step_base_quantums for m in MARKETS}
BASE_PRICE_TICKS = {"BTC-USD": 100_000, "ETH-USD": 30_000}  # $100,000 and $3,000.0
OWNERS = [SubaccountId(name, number) for name in ("a", "b", "c", "d") for number in (0, 1)]

op = st.tuples(
    st.sampled_from(["order", "order", "order", "order", "order", "order", "oracle", "oracle", "deposit",
                     "withdraw", "transfer", "cancel", "mode", "funding"]),
    st.integers(0, len(OWNERS) - 1), st.integers(0, len(OWNERS) - 1),
    st.sampled_from(["BTC-USD", "ETH-USD"]),
    st.integers(-40, 40),      # price offset in ticks (x 10 for oracle moves)
    st.integers(1, 400),       # size in steps / amount in dollars x 10
    st.integers(0, 11),        # order flavour
    st.integers(0, 9),         # time step in seconds (the oracle goes stale after 60 s)
)


def build_tx(ex: Exchange, spec, ts_ms: int, oracle_ticks: dict[str, int]):
    kind, i, j, market_id, offset, amount, flavour, _ = spec
    who, other = OWNERS[i], OWNERS[j]
    if kind == "deposit":
        return Deposit(ts_ms, who, amount * 100 * QUOTE)
    if kind == "withdraw":
        return Withdraw(ts_ms, who, amount * 10 * QUOTE)
    if kind == "transfer":
        return Transfer(ts_ms, who, other, amount * 10 * QUOTE)
    if kind == "funding":
        return FundingTick(ts_ms)
    if kind == "cancel":
        return CancelOrder(ts_ms, who, order_id=max(1, ex.next_order_id - 1 - amount % 5))
    if kind == "oracle":
        oracle_ticks[market_id] = max(1, oracle_ticks[market_id] + offset * 10)
        price = oracle_ticks[market_id] * TICK[market_id]
        return OracleUpdate(ts_ms, (OraclePrice(market_id, (price, price + offset % 3 * TICK[market_id])),))
    if kind == "mode":
        if flavour % 2:
            return SetMarginMode(ts_ms, who, MarginMode.ISOLATED, market_id)
        return SetMarginMode(ts_ms, who, MarginMode.CROSS)
    side = Side.BUY if flavour % 2 else Side.SELL
    price = max(1, oracle_ticks[market_id] + offset) * TICK[market_id]
    size = amount * STEP[market_id]
    kwargs: dict = {}
    if flavour in (2, 3):
        kwargs["time_in_force"] = TimeInForce.IOC
    elif flavour == 4:
        kwargs["time_in_force"] = TimeInForce.FOK
    elif flavour == 5:
        kwargs["time_in_force"] = TimeInForce.POST_ONLY
    elif flavour == 6:
        kwargs.update(order_type=OrderType.MARKET, time_in_force=TimeInForce.IOC)
        price = None
    elif flavour == 7:
        kwargs["reduce_only"] = True
    elif flavour == 8:
        kwargs["good_til_ts_ms"] = ts_ms + 20_000
    elif flavour in (9, 10):
        kwargs.update(condition=ConditionType.STOP_LOSS if flavour == 9 else ConditionType.TAKE_PROFIT,
                      trigger_price_subticks=max(1, oracle_ticks[market_id] - offset) * TICK[market_id])
    elif flavour == 11:
        kwargs["client_id"] = amount % 4
    return PlaceOrder(ts_ms, who, market_id, side, size, price, **kwargs)


def run_sequence(specs):
    ex = Exchange(MARKETS)
    oracle_ticks = dict(BASE_PRICE_TICKS)
    ts_ms = 1
    applied = []
    opening = [Deposit(1, who, 20_000 * QUOTE) for who in OWNERS[:6]]
    opening.append(OracleUpdate(1, tuple(OraclePrice(m, (t * TICK[m],)) for m, t in oracle_ticks.items())))
    for tx in opening:
        ex.apply(tx)
        applied.append(tx)
    for spec in specs:
        ts_ms += spec[-1] * 1_000
        tx = build_tx(ex, spec, ts_ms, oracle_ticks)
        before_digest = ex.digest()
        healthy_before = {sid for sid in ex.subaccounts if ex.risk(sid).is_maintenance_collateralized()}
        try:
            ex.apply(tx)
        except PerpdexError:
            assert ex.digest() == before_digest, f"rejected {tx} changed state"
            continue
        applied.append(tx)
        check_invariants(ex)
        if not isinstance(tx, (OracleUpdate, FundingTick)):
            for sid in healthy_before:
                assert ex.risk(sid).is_maintenance_collateralized(), f"{tx} pushed {sid} below maintenance"
    return ex, applied


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=20, max_size=80))
def test_random_sequences_keep_invariants_and_replay_identically(specs):
    ex, applied = run_sequence(specs)
    replayed = Exchange(MARKETS)
    for tx in applied:
        replayed.apply(tx)
    assert replayed.digest() == ex.digest()


def test_a_busy_sequence_actually_trades():
    """Guard against a vacuous property: the generator's flow produces fills and positions."""
    specs = [("deposit", i, 0, "BTC-USD", 0, 300, 0, 1) for i in range(len(OWNERS))]
    specs += [("order", i % 8, 0, "BTC-USD", (i % 7) - 3, 1 + i % 9, i % 2, 1) for i in range(200)]
    ex, _ = run_sequence(specs)
    assert ex.market("BTC-USD").open_interest_base_quantums > 0
    assert ex.fees_collected_quote_quantums > 0
