"""Withdraw: collateral leaves a subaccount, only while initial margin stays met afterwards."""

from __future__ import annotations

from typing import TYPE_CHECKING

from perpdex.core.errors import WithdrawalExceedsFreeCollateralError
from perpdex.core.events import Withdrawn
from perpdex.core.handlers.common import (
    check_amount, check_asset, require_fresh_prices, require_subaccount, settled,
)
from perpdex.core.margin import account_risk
from perpdex.core.plan import Plan

if TYPE_CHECKING:
    from perpdex.core.exchange import Exchange
    from perpdex.core.state import Subaccount
    from perpdex.core.tx import Withdraw


def debit_collateral(ex: Exchange, subaccount: Subaccount, amount: int, ts_ms: int, result: Plan) -> Subaccount:
    """The subaccount, funding settled (into `result`), less `amount` USDC; raises unless it still
    meets initial margin afterwards."""
    require_fresh_prices(ex, subaccount, ts_ms)
    draft = settled(ex, subaccount, result, ts_ms).copy()
    free = account_risk(draft.usdc_quote_quantums, draft.positions, ex.markets).free_collateral
    draft.add_usdc(-amount)
    after = account_risk(draft.usdc_quote_quantums, draft.positions, ex.markets)
    if not after.is_initial_collateralized():
        raise WithdrawalExceedsFreeCollateralError(
            f"amount exceeds free collateral of {max(free, 0)} quote quantums", field="amount_quantums", value=amount)
    return draft


def plan(ex: Exchange, tx: Withdraw) -> Plan:
    subaccount = require_subaccount(ex, tx.subaccount_id)
    asset_id = check_asset(tx.asset_id)
    amount = check_amount(tx.amount_quantums)
    result = Plan()
    draft = debit_collateral(ex, subaccount, amount, tx.ts_ms, result)
    free_after = account_risk(draft.usdc_quote_quantums, draft.positions, ex.markets).free_collateral
    result.subaccounts[tx.subaccount_id] = draft
    result.withdrawn_delta[asset_id] = amount
    result.events.append(Withdrawn(tx.ts_ms, tx.subaccount_id, asset_id, amount, free_after))
    return result
