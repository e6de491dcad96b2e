"""FundingTick: each market whose funding interval has ended gets its rate from its model (dYdX v4
by default, or another venue's) and its funding index moves by rate x interval x oracle price.
Markets with finalized funding are left out: their intervals close on `FundingFinalize` (funding_finalize.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from perpdex.core.errors import TxError
from perpdex.core.events import FundingRateComputed
from perpdex.core.funding import (
    DydxFundingModel, book_premium_ppm, funding_index_delta_from_accrual, impact_price_subticks,
    premium_ppm_from_impact_prices,
)
from perpdex.core.params import FundingFinality
from perpdex.core.plan import Plan

if TYPE_CHECKING:
    from perpdex.core.exchange import Exchange
    from perpdex.core.state import MarketState
    from perpdex.core.tx import FundingTick


class FundingNotDueError(TxError):
    code = "funding.not_due"


def plan(ex: Exchange, tx: FundingTick) -> Plan:
    """Raises FundingNotDueError (changing nothing) when no market's interval has ended yet."""
    result = Plan()
    for market_id, market in ex.markets.items():
        state = market.funding_state
        if state is None or market.oracle_price_subticks is None:
            continue  # no observation yet: nothing to close
        if market.params.funding_finality is FundingFinality.FINALIZED:
            continue  # its intervals close once proven (FundingFinalize)
        model = market.funding_model
        if tx.ts_ms < market.funding_interval_start_ms + model.interval_ms(state):
            continue
        new_state, index, start_ms, event = close_interval(market, state, market.funding_index, tx.ts_ms, tx.ts_ms,
                                                           market.oracle_price_subticks)
        result.funding_updates.append((market_id, index, new_state, start_ms))
        result.events.append(event)
    if not result.funding_updates:
        raise FundingNotDueError("no market's funding interval has ended", field="ts_ms", value=tx.ts_ms)
    return result


def close_interval(market: MarketState, state, index: int, close_ms: int, event_ts_ms: int,
                   price_subticks: int) -> tuple[object, int, int, FundingRateComputed]:
    """Close the market's funding interval at `close_ms` from model state `state`: the rate, the index moved by
    rate x interval x price, the next interval's start (on its grid) and the event (stamped `event_ts_ms`).
    Returns (new model state, new index, next start ms, event); pure, shared with FundingFinalize."""
    model = market.funding_model
    params = market.params
    rate, new_state = model.rate_for_interval(state, close_ms)
    delta = funding_index_delta_from_accrual(rate.accrual_ppm_ms, price_subticks, params.quantum_conversion_exponent)
    index += delta
    interval = model.interval_ms(new_state)
    event = FundingRateComputed(event_ts_ms, params.market_id, params.funding_model, rate.funding_rate_8h_ppm,
                                rate.premium_ppm, rate.sample_count, rate.clamp_hit, rate.interval_ms, price_subticks,
                                delta, index)
    return new_state, index, close_ms - close_ms % interval, event


def observe(ex: Exchange, market: MarketState, ts_ms: int) -> None:
    """Feed the market's model one premium observation of the book against the index (called by
    `Exchange.apply` when a transaction's time crosses the market's observation cadence).

    No fresh index price, no observation (dYdX skips markets without a valid price). dYdX's premium
    is one-sided (`book_premium_ppm`); the other venues' is the two-sided impact-price form.
    """
    price = market.oracle_price_subticks
    if price is None or not market.oracle_is_fresh(ts_ms):
        return
    model = market.funding_model
    if market.funding_state is None:
        market.funding_state = model.initial_state(ts_ms)
        # intervals sit on a grid of their length (dYdX epochs are aligned the same way)
        market.funding_interval_start_ms = ts_ms - ts_ms % model.interval_ms(market.funding_state)
    book = market.book
    bids = ((level_price, sum(level.values())) for level_price, level in book.levels(True))
    asks = ((level_price, sum(level.values())) for level_price, level in book.levels(False))
    notional = market.params.liquidity_tier.impact_notional_quote_quantums
    divisor = market.quantum_conversion_divisor
    if isinstance(model, DydxFundingModel):
        premium = book_premium_ppm(bids, asks, price, notional, divisor, model.max_abs_premium_vote_ppm)
    else:
        premium = premium_ppm_from_impact_prices(impact_price_subticks(bids, notional, divisor),
                                                 impact_price_subticks(asks, notional, divisor), price)
    long_open_interest, short_open_interest = _trader_open_interest(ex, market, model)
    if market.params.funding_finality is FundingFinality.FINALIZED:
        # held until a FundingFinalize says the batch holding this transaction is accepted on L1
        market.funding_observations.append((ts_ms, premium, long_open_interest, short_open_interest))
        return
    lag = market.params.funding_lag_ms
    if not lag:
        market.funding_state = model.observe(market.funding_state, ts_ms, premium,
                                             long_open_interest=long_open_interest,
                                             short_open_interest=short_open_interest)
        return
    # A delayed view: the model sees what was observed `lag` ago (stamped with its own time), as a
    # venue that computes funding from its last proven state would.
    pending = market.funding_observations
    pending.append((ts_ms, premium, long_open_interest, short_open_interest))
    while pending and pending[0][0] <= ts_ms - lag:
        seen_ms, seen_premium, seen_long, seen_short = pending.popleft()
        market.funding_state = model.observe(market.funding_state, seen_ms, seen_premium,
                                             long_open_interest=seen_long, short_open_interest=seen_short)


def _trader_open_interest(ex: Exchange, market: MarketState, model) -> tuple[int, int]:
    """(long, short) open interest in base quantums. The whole book is balanced; a model with a
    pool (OpenInterestImbalanceFundingParams.pool_owner_prefix) sees only the other traders'."""
    open_interest = market.open_interest_base_quantums
    prefix = getattr(getattr(model, "params", None), "pool_owner_prefix", "")
    if not prefix:
        return open_interest, open_interest
    market_id = market.params.market_id
    pool_long = pool_short = 0
    for holder in ex.holders[market_id]:
        if holder.owner.startswith(prefix):
            size = ex.subaccounts[holder].positions[market_id]
            if size > 0:
                pool_long += size
            else:
                pool_short -= size
    return open_interest - pool_long, open_interest - pool_short
