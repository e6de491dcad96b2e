"""FundingFinalize: premium observations up to a proven time reach the funding model of each market
with finalized funding, and every funding interval whose observations are all proven closes.

Finalized funding (`MarketParams.funding_finality`) is what a venue that sets funding from its last
proven state does: `observe` holds each observation in `market.funding_observations`; when a batch
is accepted on L1 the rollup node sends `FundingFinalize(ts_ms, up_to_ms)`: every observation
stamped <= up_to_ms is in an accepted batch. Those are fed to the model in order, with their own
times, and an interval [start, end) closes as soon as all its observations are proven, i.e. when
end - 1 <= up_to_ms (and before feeding any observation stamped >= end). So each interval's rate is
the one the model computes from exactly that interval's observations, as with soft funding, only
set later: the funding index moves when the interval is proven, at the oracle price of that moment,
and positions held then settle it.
A FundingFinalize with nothing to release is accepted and changes only the exchange's clock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from perpdex.core.errors import MalformedTxError
from perpdex.core.events import Event
from perpdex.core.handlers.funding_tick import close_interval
from perpdex.core.params import FundingFinality
from perpdex.core.plan import Plan

if TYPE_CHECKING:
    from perpdex.core.exchange import Exchange
    from perpdex.core.state import MarketState
    from perpdex.core.tx import FundingFinalize


class FinalizesTheFutureError(MalformedTxError):
    code = "funding.finalizes_the_future"


def plan(ex: Exchange, tx: FundingFinalize) -> Plan:
    """Raises MalformedTxError for a bad `up_to_ms` (not an int, negative) and FinalizesTheFutureError
    when it lies after `ts_ms`; both change nothing."""
    up_to_ms = tx.up_to_ms
    if type(up_to_ms) is not int or up_to_ms < 0:
        raise MalformedTxError("up_to_ms must be a non-negative integer", field="up_to_ms", value=up_to_ms)
    if up_to_ms > tx.ts_ms:
        raise FinalizesTheFutureError(f"up_to_ms {up_to_ms} lies after the transaction's time {tx.ts_ms}",
                                      field="up_to_ms", value=up_to_ms)
    result = Plan()
    for market_id, market in ex.markets.items():
        if market.params.funding_finality is not FundingFinality.FINALIZED or market.funding_state is None:
            continue  # not finalized, or no observation yet
        price = market.oracle_price_subticks
        if price is None:
            continue
        _plan_market(market_id, market, price, tx, result)
    return result


def _plan_market(market_id: str, market: MarketState, price: int, tx: FundingFinalize, result: Plan) -> None:
    """Fold the released observations into a copy of the model state (models are pure), closing
    intervals on the way at the oracle price now; one funding update carries the end state."""
    model = market.funding_model
    state = market.funding_state
    start_ms = market.funding_interval_start_ms
    index = market.funding_index
    events: list[Event] = result.events
    changed = False

    def close_through(limit_ms: int) -> None:
        """Close every interval ending at or before `limit_ms` (no observation it lacks can come)."""
        nonlocal state, start_ms, index, changed
        while start_ms + model.interval_ms(state) <= limit_ms:
            state, index, start_ms, event = close_interval(market, state, index, start_ms + model.interval_ms(state),
                                                           tx.ts_ms, price)
            events.append(event)
            changed = True

    for seen_ms, premium, long_open_interest, short_open_interest in market.funding_observations:
        if seen_ms > tx.up_to_ms:
            break
        close_through(seen_ms)
        state = model.observe(state, seen_ms, premium, long_open_interest=long_open_interest,
                              short_open_interest=short_open_interest)
        changed = True
    close_through(tx.up_to_ms + 1)  # observations are whole ms: all those < up_to + 1 are proven
    if changed:
        result.funding_updates.append((market_id, index, state, start_ms))


def release(ex: Exchange, tx: FundingFinalize) -> list[Event]:
    """After the plan is committed (its model states already include them): drop the released
    observations from each finalized market's pending queue."""
    for market in ex.markets.values():
        if market.params.funding_finality is FundingFinality.FINALIZED:
            pending = market.funding_observations
            while pending and pending[0][0] <= tx.up_to_ms:
                pending.popleft()
    return []
