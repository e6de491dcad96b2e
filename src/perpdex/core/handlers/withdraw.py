"""Withdraw: collateral leaves a subaccount, only while initial margin stays met afterwards."""

from __future__ import annotations

from typing import TYPE_CHECKING

from perpdex.core.errors import WithdrawalExceedsFreeCollateralError
from perpdex.core.events import WithdrawalHaircut, Withdrawn
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
    haircut = _haircut(ex, amount)
    result.withdrawn_delta[asset_id] = amount - haircut
    result.events.append(Withdrawn(tx.ts_ms, tx.subaccount_id, asset_id, amount, free_after))
    if haircut:
        result.socialized_loss_delta = -haircut
        result.events.append(WithdrawalHaircut(tx.ts_ms, tx.subaccount_id, haircut,
                                               ex.socialized_loss_quote_quantums - haircut))
    return result


def _haircut(ex: Exchange, amount: int) -> int:
    """While a socialized loss is outstanding (paradex policy), a withdrawal leaves its share of it
    behind: amount x loss / all USDC held in subaccounts, rounded up (against the withdrawer, so the
    loss is repaid, never overpaid: capped at what is owed)."""
    loss = ex.socialized_loss_quote_quantums
    if not loss:
        return 0
    held = sum(max(sub.usdc_quote_quantums, 0) for sub in ex.subaccounts.values())
    if held <= 0:
        return min(loss, amount)
    return min(loss, amount, -((-amount * loss) // held))  # ceil: against the withdrawer
