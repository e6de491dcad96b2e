"""Transfer: collateral between two subaccounts; the sender must still meet initial margin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from perpdex.core.errors import MalformedTxError
from perpdex.core.events import Transferred
from perpdex.core.handlers.common import (
    check_amount, check_asset, check_subaccount_id, require_subaccount, settled,
)
from perpdex.core.handlers.withdraw import debit_collateral
from perpdex.core.plan import Plan
from perpdex.core.state import Subaccount
from perpdex.core.units import MAX_BALANCE_QUANTUMS

if TYPE_CHECKING:
    from perpdex.core.exchange import Exchange
    from perpdex.core.tx import Transfer


def plan(ex: Exchange, tx: Transfer) -> Plan:
    sender = require_subaccount(ex, tx.sender, "sender")
    recipient_id = check_subaccount_id(tx.recipient, "recipient")
    if recipient_id == tx.sender:
        raise MalformedTxError("sender and recipient are the same subaccount", field="recipient",
                               value=str(recipient_id))
    asset_id = check_asset(tx.asset_id)
    amount = check_amount(tx.amount_quantums)
    result = Plan()
    sender_draft = debit_collateral(ex, sender, amount, tx.ts_ms, result)
    current = ex.subaccounts.get(recipient_id)
    recipient_draft = (settled(ex, current, result, tx.ts_ms).copy() if current is not None
                       else Subaccount(recipient_id))
    recipient_draft.add_usdc(amount)
    if recipient_draft.usdc_quote_quantums > MAX_BALANCE_QUANTUMS:
        raise MalformedTxError("recipient balance would exceed the 63-bit bound", field="amount_quantums",
                               value=amount)
    result.subaccounts[tx.sender] = sender_draft
    result.subaccounts[recipient_id] = recipient_draft
    result.events.append(Transferred(tx.ts_ms, tx.sender, recipient_id, asset_id, amount))
    return result
