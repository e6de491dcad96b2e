"""Invariants of the exchange state: collateral conserved, positions zero-sum, open interest
and the book consistent with the order table. Run after every apply in tests and debug runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from perpdex.core.errors import InvariantViolation
from perpdex.core.margin import initial_margin_ppm_at
from perpdex.core.orders import OrderStatus
from perpdex.core.funding import funding_settlement_ppm
from perpdex.core.units import PPM, USDC_ASSET_ID

if TYPE_CHECKING:
    from perpdex.core.exchange import Exchange

_RESTING = (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)


def check_invariants(ex: Exchange) -> None:
    """Raise InvariantViolation naming the first broken invariant."""
    _check_collateral(ex)
    _check_positions(ex)
    _check_orders(ex)


def _check_collateral(ex: Exchange) -> None:
    """deposited - withdrawn = balances + fees collected + insurance fund, per asset; for USDC in
    ppm, with funding: credited funding x 1e6 + the exchange's rounding dust + every position's
    unsettled settlement = 0 (funding is zero-sum up to the dust, which the exchange keeps)."""
    assets = set(ex.total_deposited) | set(ex.total_withdrawn)
    for sub in ex.subaccounts.values():
        assets.update(sub.collateral)
    for asset_id in assets:
        held = sum(sub.collateral.get(asset_id, 0) for sub in ex.subaccounts.values())
        net_in = ex.total_deposited.get(asset_id, 0) - ex.total_withdrawn.get(asset_id, 0)
        if asset_id != USDC_ASSET_ID:
            if held != net_in:
                raise InvariantViolation(f"asset {asset_id}: held {held} != deposited - withdrawn {net_in}")
            continue
        # a socialized loss was credited to a bankrupt account with no collateral behind it: it is
        # owed by everyone until withdrawal haircuts repay it
        held += ex.fees_collected_quote_quantums + ex.insurance_fund_quote_quantums - ex.socialized_loss_quote_quantums
        unsettled_ppm = sum(funding_settlement_ppm(size, sub.funding_entries[market_id],
                                                   ex.markets[market_id].funding_index)
                            for sub in ex.subaccounts.values() for market_id, size in sub.positions.items())
        if (held - net_in) * PPM + ex.funding_dust_ppm + unsettled_ppm != 0:
            raise InvariantViolation(f"USDC: held {held} vs deposited - withdrawn {net_in}, funding dust "
                                     f"{ex.funding_dust_ppm} ppm, unsettled {unsettled_ppm} ppm do not balance")
        if ex.socialized_loss_quote_quantums < 0:
            raise InvariantViolation("socialized loss repaid beyond what was owed")
        if ex.funding_dust_ppm < 0:
            raise InvariantViolation("funding dust must never favour traders")


def _check_positions(ex: Exchange) -> None:
    """Every market's positions sum to zero and its open interest is the total long size."""
    for market_id, market in ex.markets.items():
        longs = shorts = 0
        for sub in ex.subaccounts.values():
            size = sub.positions.get(market_id, 0)
            if size > 0:
                longs += size
            elif size < 0:
                shorts -= size
        if longs != shorts:
            raise InvariantViolation(f"{market_id}: longs {longs} != shorts {shorts}")
        if market.open_interest_base_quantums != longs:
            raise InvariantViolation(f"{market_id}: open interest {market.open_interest_base_quantums} != longs {longs}")
        if market.oracle_price_subticks is not None and market.initial_margin_ppm != initial_margin_ppm_at(
                market.params.liquidity_tier, longs, market.oracle_price_subticks, market.quantum_conversion_divisor):
            raise InvariantViolation(f"{market_id}: cached initial margin fraction is stale")
    for market_id, holders in ex.holders.items():
        if holders != {sid for sid, sub in ex.subaccounts.items() if market_id in sub.positions}:
            raise InvariantViolation(f"{market_id}: holders index disagrees with the positions")
    for sub in ex.subaccounts.values():
        if sub.funding_entries.keys() != sub.positions.keys():
            raise InvariantViolation(f"{sub.subaccount_id}: funding entries do not match its positions")
        if sub.funding_epoch == ex.funding_epoch and any(
                entry != ex.markets[market_id].funding_index for market_id, entry in sub.funding_entries.items()):
            raise InvariantViolation(f"{sub.subaccount_id}: stamped as settled with funding still due")
        if sub.cost_basis.keys() != sub.positions.keys() or any(
                sub.cost_basis[market_id] * size < 0 for market_id, size in sub.positions.items()):
            raise InvariantViolation(f"{sub.subaccount_id}: cost basis does not match its positions")
        if 0 in sub.positions.values():
            raise InvariantViolation(f"{sub.subaccount_id}: zero-size position stored")
        if sub.isolated_market_id is not None and set(sub.positions) - {sub.isolated_market_id}:
            raise InvariantViolation(f"{sub.subaccount_id}: isolated subaccount holds another market")


def _check_orders(ex: Exchange) -> None:
    """The book, the trigger lists and the order table describe the same open orders."""
    seen: set[int] = set()
    for market_id, market in ex.markets.items():
        for is_buy in (True, False):
            for price, level in market.book.levels(is_buy):
                if not level:
                    raise InvariantViolation(f"{market_id}: empty level {price} kept")
                for order_id, remaining in level.items():
                    order = ex.open_orders.get(order_id)
                    if (order is None or order.market_id != market_id or order.is_buy != is_buy
                            or order.price_subticks != price or order.remaining_base_quantums != remaining
                            or order.status not in _RESTING or remaining <= 0):
                        raise InvariantViolation(f"{market_id}: book entry {order_id} disagrees with {order!r}")
                    seen.add(order_id)
        best_bid, best_ask = market.book.best_bid(), market.book.best_ask()
        if best_bid is not None and best_ask is not None and best_bid >= best_ask:
            raise InvariantViolation(f"{market_id}: book is crossed")
        for order_id, order in market.untriggered.items():
            if order.status is not OrderStatus.UNTRIGGERED or ex.open_orders.get(order_id) is not order:
                raise InvariantViolation(f"{market_id}: untriggered entry {order_id} disagrees with {order!r}")
            seen.add(order_id)
    if seen != set(ex.open_orders):
        raise InvariantViolation(f"open orders not on a book or trigger list: {sorted(set(ex.open_orders) - seen)}")
    if set(ex.open_orders) & set(ex.finished_orders):
        raise InvariantViolation("an order is both open and finished")
    for (subaccount_id, _client_id), order_id in ex.client_ids.items():
        if ex.open_orders[order_id].subaccount_id != subaccount_id:
            raise InvariantViolation(f"client id index points {subaccount_id} at another's order {order_id}")
    indexed = {order_id for owned in ex.orders_by_subaccount.values() for order_id in owned}
    if indexed != set(ex.open_orders):
        raise InvariantViolation("orders_by_subaccount disagrees with the open orders")
