"""Checks shared by several handlers: ids, amounts, assets and fresh oracle prices.
Each raises the typed error naming the field at fault."""

from __future__ import annotations

from typing import TYPE_CHECKING

from perpdex.core.errors import (
    MalformedTxError, MissingOraclePriceError, StaleOracleError, UnknownAssetError, UnknownSubaccountError,
)
from perpdex.core.events import FundingPaid
from perpdex.core.funding import funding_settlement_ppm, settle_subaccount_funding
from perpdex.core.state import Subaccount, SubaccountId
from perpdex.core.units import MAX_BALANCE_QUANTUMS, USDC_ASSET_ID

if TYPE_CHECKING:
    from perpdex.core.exchange import Exchange
    from perpdex.core.plan import Plan

MAX_SUBACCOUNT_NUMBER = 127  # dYdX v4 subaccount numbers are 0..127


def check_subaccount_id(subaccount_id: object, field: str) -> SubaccountId:
    if (type(subaccount_id) is not SubaccountId or not isinstance(subaccount_id.owner, str)
            or not subaccount_id.owner or type(subaccount_id.number) is not int
            or not 0 <= subaccount_id.number <= MAX_SUBACCOUNT_NUMBER):
        raise MalformedTxError("subaccount id must be SubaccountId(owner: non-empty str, number: 0..127)",
                               field=field, value=subaccount_id)
    return subaccount_id


def require_subaccount(ex: Exchange, subaccount_id: SubaccountId, field: str = "subaccount_id") -> Subaccount:
    subaccount = ex.subaccounts.get(subaccount_id)
    if subaccount is None:
        check_subaccount_id(subaccount_id, field)
        raise UnknownSubaccountError(f"no subaccount {subaccount_id}", field=field, value=str(subaccount_id))
    return subaccount


def check_amount(amount: object, field: str = "amount_quantums") -> int:
    if type(amount) is not int or not 0 < amount <= MAX_BALANCE_QUANTUMS:
        raise MalformedTxError(f"{field} must be a positive integer of quantums", field=field, value=amount)
    return amount


def check_asset(asset_id: object) -> int:
    """Only USDC (asset 0) is collateral today; collateral is a per-asset map so more can come."""
    if asset_id != USDC_ASSET_ID or type(asset_id) is not int:
        raise UnknownAssetError("only USDC (asset 0) is accepted as collateral", field="asset_id", value=asset_id)
    return asset_id


def require_fresh_prices(ex: Exchange, subaccount: Subaccount, ts_ms: int) -> None:
    """A margin check on stale prices could let collateral out that a position needs."""
    for market_id in subaccount.positions:
        market = ex.markets[market_id]
        if market.oracle_price_subticks is None:
            raise MissingOraclePriceError(f"no oracle price for {market_id}", field="market_id", value=market_id)
        if not market.oracle_is_fresh(ts_ms):
            raise StaleOracleError(f"oracle price of {market_id} is older than {market.params.oracle_staleness_ms} ms",
                                   field="market_id", value=market_id)


def settled(ex: Exchange, subaccount: Subaccount, plan: Plan | None = None, ts_ms: int = 0) -> Subaccount:
    """A copy of the subaccount with its funding settled, as dYdX settles before any update (x/subaccounts
    GetSettledSubaccountWithPerpetuals): USDC gets floor(sum of each position's -(index - entry) x size
    / 1e6), against the trader, and every entry moves to its market's current index.

    With a `plan`, the copy is registered in it (so the settlement commits even if nothing else changes),
    with a FundingPaid event per position and the rounding dust. Without a plan it is a view
    (`Exchange.risk`). With nothing to settle the stored subaccount itself comes back: treat the
    result as read-only and copy it before changing it.
    """
    if subaccount.funding_epoch == ex.funding_epoch:
        return subaccount  # committed since the last index move: nothing can be due
    markets = ex.markets
    entries = subaccount.funding_entries
    settlements = []
    changed = []
    for market_id, size in subaccount.positions.items():
        index = markets[market_id].funding_index
        entry = entries[market_id]
        if index != entry:
            settlements.append(funding_settlement_ppm(size, entry, index))
            changed.append((market_id, size, entry, index))
    if not settlements:
        return subaccount
    copy = subaccount.copy()
    for market_id, _, _, index in changed:
        copy.funding_entries[market_id] = index
    funding = settle_subaccount_funding(settlements)
    copy.add_usdc(funding.collateral_delta_quote_quantums)
    if plan is not None:
        plan.subaccounts[subaccount.subaccount_id] = copy
        plan.funding_dust_ppm += funding.dust_ppm
        for (market_id, size, entry, index), ppm, paid in zip(changed, settlements,
                                                              funding.position_payments_quote_quantums):
            plan.events.append(FundingPaid(ts_ms, subaccount.subaccount_id, market_id, size, entry, index, paid, ppm))
    return copy
