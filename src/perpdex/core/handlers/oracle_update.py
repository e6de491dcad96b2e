"""OracleUpdate: new index prices (median of the sources per market), then the conditional
orders those prices trigger, each placed as a follow-up step of the same transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING

from perpdex.core.errors import InvariantViolation, MalformedTxError, PerpdexError, UnknownMarketError
from perpdex.core.events import Event, OraclePriceUpdated, OrderFinished, OrderTriggered
from perpdex.core.handlers.common import settled
from perpdex.core.handlers.place_order import execute
from perpdex.core.orders import CancelReason, OrderStatus, conditional_triggers
from perpdex.core.plan import Plan
from perpdex.core.units import MAX_SUBTICKS, median_int

if TYPE_CHECKING:
    from perpdex.core.exchange import Exchange
    from perpdex.core.tx import OracleUpdate


def plan(ex: Exchange, tx: OracleUpdate) -> Plan:
    if not isinstance(tx.prices, tuple) or not tx.prices:
        raise MalformedTxError("an oracle update carries at least one market price", field="prices", value=tx.prices)
    result = Plan()
    seen: set[str] = set()
    for entry in tx.prices:
        market_id = entry.market_id
        if market_id not in ex.markets:
            raise UnknownMarketError(f"unknown market {market_id!r}", field="prices.market_id", value=market_id)
        if market_id in seen:
            raise MalformedTxError("market appears twice in one oracle update", field="prices.market_id",
                                   value=market_id)
        seen.add(market_id)
        sources = entry.source_prices_subticks
        if not isinstance(sources, tuple) or not sources:
            raise MalformedTxError("each market needs at least one source price", field="prices.source_prices_subticks",
                                   value=sources)
        for price in sources:
            if type(price) is not int or not 0 < price <= MAX_SUBTICKS:
                raise MalformedTxError("source prices are positive integers of subticks",
                                       field=f"prices[{market_id}].source_prices_subticks", value=price)
        index_price = median_int(sources)
        result.oracle_prices.append((market_id, index_price, tx.ts_ms))
        result.events.append(OraclePriceUpdated(tx.ts_ms, market_id, index_price, len(sources)))
    return result


def run_triggers(ex: Exchange, tx: OracleUpdate) -> list[Event]:
    """After the prices are committed: trigger conditional orders of the updated markets in order
    id order, and place each as its own committed step. A triggered order that fails its checks
    (margin, reduce-only, ...) is canceled; it never rejects the oracle update itself."""
    events: list[Event] = []
    for entry in tx.prices:
        market = ex.markets[entry.market_id]
        price = market.require_oracle_price()
        triggered = []
        for order_id, order in sorted(market.untriggered.items()):
            condition, trigger = order.condition, order.trigger_price_subticks
            if condition is None or trigger is None:
                raise InvariantViolation(f"untriggered order {order_id} has no condition")
            if conditional_triggers(order.is_buy, condition, trigger, price):
                triggered.append((order, trigger))
        for order, trigger in triggered:
            events.append(OrderTriggered(tx.ts_ms, order.order_id, order.market_id, price, trigger))
            step = Plan()
            try:
                owner = settled(ex, ex.subaccount(order.subaccount_id), step, tx.ts_ms)
                execute(ex, market, owner, order, order.price_subticks, tx.ts_ms, step)
            except PerpdexError as error:
                step = Plan()
                step.finished.append((order, OrderStatus.CANCELED, CancelReason.TRIGGER_REJECTED))
                step.events.append(OrderFinished(tx.ts_ms, order.order_id, order.subaccount_id, order.market_id,
                                                 OrderStatus.CANCELED, 0, order.size_base_quantums,
                                                 CancelReason.TRIGGER_REJECTED, str(error)))
            ex.commit_step(step)
            events.extend(step.events)
    return events
