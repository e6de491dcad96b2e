"""SetMarginMode: a subaccount becomes cross, or isolated to one market (dYdX v4 isolated
subaccounts, Hyperliquid isolated margin); only with no positions and no open orders."""

from __future__ import annotations

from typing import TYPE_CHECKING

from perpdex.core.errors import MalformedTxError, MarginModeError, UnknownMarketError
from perpdex.core.events import MarginModeSet
from perpdex.core.handlers.common import check_subaccount_id
from perpdex.core.plan import Plan
from perpdex.core.state import MarginMode, Subaccount

if TYPE_CHECKING:
    from perpdex.core.exchange import Exchange
    from perpdex.core.tx import SetMarginMode


def plan(ex: Exchange, tx: SetMarginMode) -> Plan:
    subaccount_id = check_subaccount_id(tx.subaccount_id, "subaccount_id")
    if not isinstance(tx.margin_mode, MarginMode):
        raise MalformedTxError("margin_mode must be cross or isolated", field="margin_mode", value=tx.margin_mode)
    market_id = tx.isolated_market_id
    if tx.margin_mode is MarginMode.ISOLATED:
        if market_id not in ex.markets:
            raise UnknownMarketError(f"unknown market {market_id!r}", field="isolated_market_id", value=market_id)
    elif market_id is not None:
        raise MalformedTxError("a cross subaccount names no market", field="isolated_market_id", value=market_id)
    current = ex.subaccounts.get(subaccount_id)
    if current is not None and current.positions:
        raise MarginModeError("margin mode cannot change while positions are open", field="margin_mode",
                              value=tx.margin_mode.value)
    if ex.orders_by_subaccount.get(subaccount_id):
        raise MarginModeError("margin mode cannot change while orders are open", field="margin_mode",
                              value=tx.margin_mode.value)
    draft = current.copy() if current is not None else Subaccount(subaccount_id)
    draft.margin_mode = tx.margin_mode
    draft.isolated_market_id = market_id
    result = Plan()
    result.subaccounts[subaccount_id] = draft
    result.events.append(MarginModeSet(tx.ts_ms, subaccount_id, tx.margin_mode, market_id))
    return result
