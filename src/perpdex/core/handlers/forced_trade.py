"""ForcedTrade: a trade two subaccounts agreed to, settled directly between them at the agreed price with no
book and no fee (StarkEx perpetual's forced trade, `ForcedTrades.sol` / `transactions/forced_trade.cairo`).

The rollup serves an L1 forced-trade request with it, so an honest operator can always execute (or provably
reject) the request whatever the book holds. Both parties pass the same checks an order would: the market's
margin mode, a fresh oracle when their risk grows, and dYdX v4's transition rule (x/subaccounts
UpdateSubaccounts) on the account after the trade; open interest follows the positions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from perpdex.core.errors import (
    MalformedTxError,
    MarginError,
    MissingOraclePriceError,
    UnknownMarketError,
)
from perpdex.core.events import ForcedTradeExecuted
from perpdex.core.handlers.common import check_subaccount_id, require_subaccount, settled
from perpdex.core.handlers.place_order import (
    _cancel_stale_reduce_only, check_margin_mode, check_oracle_for_change, check_price, check_size,
)
from perpdex.core.margin import TransitionResult, account_risk, check_transition
from perpdex.core.plan import Plan
from perpdex.core.units import MAX_BALANCE_QUANTUMS, div_floor

if TYPE_CHECKING:
    from perpdex.core.exchange import Exchange
    from perpdex.core.state import MarketState, Subaccount
    from perpdex.core.tx import ForcedTrade


def plan(ex: Exchange, tx: ForcedTrade) -> Plan:
    market = ex.markets.get(tx.market_id)
    if market is None:
        raise UnknownMarketError(f"unknown market {tx.market_id!r}", field="market_id", value=tx.market_id)
    params = market.params
    size, price = tx.size_base_quantums, tx.price_subticks
    check_size(size, params.step_base_quantums)
    check_price(price, params.subticks_per_tick, "price_subticks")
    seller_id = check_subaccount_id(tx.seller, "seller")
    if seller_id == tx.buyer:
        raise MalformedTxError("buyer and seller are the same subaccount", field="seller", value=str(seller_id))
    if market.oracle_price_subticks is None:
        raise MissingOraclePriceError(f"no oracle price for {tx.market_id}", field="market_id", value=tx.market_id)
    # floor, in the buyer's favour by under one quantum (exact on the shipped markets' grids); the buyer pays
    # and the seller receives this same amount, so collateral is conserved whichever way it rounds
    quote = div_floor(size * price, market.quantum_conversion_divisor)
    result = Plan()
    buyer = _party(ex, market, require_subaccount(ex, tx.buyer, "buyer"), "buyer", size, -quote, tx.ts_ms, result)
    seller = _party(ex, market, require_subaccount(ex, seller_id, "seller"), "seller", -size, quote, tx.ts_ms,
                    result)
    market_id = params.market_id
    open_interest = market.open_interest_base_quantums
    for before, after in (buyer, seller):
        open_interest += max(after.positions.get(market_id, 0), 0) - max(before.positions.get(market_id, 0), 0)
    if open_interest != market.open_interest_base_quantums:
        result.open_interest[market_id] = open_interest
    result.subaccounts[tx.buyer] = buyer[1]
    result.subaccounts[seller_id] = seller[1]
    result.events.append(ForcedTradeExecuted(tx.ts_ms, market_id, tx.buyer, seller_id, size, price, quote))
    _cancel_stale_reduce_only(ex, {tx.buyer: (buyer[1], None), seller_id: (seller[1], None)}, market_id, -1,
                              tx.ts_ms, result)
    return result


def _party(ex: Exchange, market: MarketState, stored: Subaccount, field: str, delta_base_quantums: int,
           quote_delta_quantums: int, ts_ms: int, result: Plan) -> tuple[Subaccount, Subaccount]:
    """(settled before, after) for one side; raises if the trade is not allowed for it."""
    market_id = market.params.market_id
    check_margin_mode(stored, market)
    before = settled(ex, stored, result, ts_ms)
    position = before.positions.get(market_id, 0)
    after_position = position + delta_base_quantums
    check_oracle_for_change(market, position, after_position, ts_ms)
    after = before.copy()
    after.add_usdc(quote_delta_quantums)
    if after.usdc_quote_quantums > MAX_BALANCE_QUANTUMS:
        raise MalformedTxError(f"{field} balance would exceed the 63-bit bound", field=field, value=str(stored))
    after.trade(market_id, delta_base_quantums, abs(quote_delta_quantums), market.funding_index)
    outcome = check_transition(account_risk(before.usdc_quote_quantums, before.positions, ex.markets),
                               account_risk(after.usdc_quote_quantums, after.positions, ex.markets))
    if outcome is not TransitionResult.SUCCESS:
        raise MarginError(f"the forced trade fails the {field}'s margin check ({outcome.value})", field=field,
                          value=str(before.subaccount_id), result=outcome)
    return before, after
