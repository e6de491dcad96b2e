"""InsuranceFundDeposit: USDC from a subaccount into the insurance fund, checked like a withdrawal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from perpdex.core.events import InsuranceFundChanged
from perpdex.core.handlers.common import check_amount, require_subaccount
from perpdex.core.handlers.withdraw import debit_collateral
from perpdex.core.plan import Plan

if TYPE_CHECKING:
    from perpdex.core.exchange import Exchange
    from perpdex.core.tx import InsuranceFundDeposit


def plan(ex: Exchange, tx: InsuranceFundDeposit) -> Plan:
    subaccount = require_subaccount(ex, tx.subaccount_id)
    amount = check_amount(tx.amount_quantums)
    result = Plan()
    result.subaccounts[tx.subaccount_id] = debit_collateral(ex, subaccount, amount, tx.ts_ms, result)
    result.insurance_delta_quote_quantums = amount
    result.events.append(InsuranceFundChanged(tx.ts_ms, amount, ex.insurance_fund_quote_quantums + amount,
                                              tx.subaccount_id))
    return result
