"""Deposit: collateral arrives in a subaccount (created on first deposit, cross-margined)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from perpdex.core.errors import MalformedTxError
from perpdex.core.events import Deposited
from perpdex.core.handlers.common import check_amount, check_asset, check_subaccount_id, settled
from perpdex.core.plan import Plan
from perpdex.core.state import Subaccount
from perpdex.core.units import MAX_BALANCE_QUANTUMS

if TYPE_CHECKING:
    from perpdex.core.exchange import Exchange
    from perpdex.core.tx import Deposit


def plan(ex: Exchange, tx: Deposit) -> Plan:
    subaccount_id = check_subaccount_id(tx.subaccount_id, "subaccount_id")
    asset_id = check_asset(tx.asset_id)
    amount = check_amount(tx.amount_quantums)
    current = ex.subaccounts.get(subaccount_id)
    result = Plan()
    draft = settled(ex, current, result, tx.ts_ms).copy() if current is not None else Subaccount(subaccount_id)
    draft.collateral[asset_id] = draft.collateral.get(asset_id, 0) + amount
    if draft.collateral[asset_id] > MAX_BALANCE_QUANTUMS:
        raise MalformedTxError("balance would exceed the state tree's 63-bit bound", field="amount_quantums",
                               value=amount)
    result.subaccounts[subaccount_id] = draft
    result.deposited_delta[asset_id] = amount
    result.events.append(Deposited(tx.ts_ms, subaccount_id, asset_id, amount))
    return result
