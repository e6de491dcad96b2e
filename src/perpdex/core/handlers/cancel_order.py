"""CancelOrder: the owner takes one open or untriggered order off, by order id or client id."""

from __future__ import annotations

from typing import TYPE_CHECKING

from perpdex.core.errors import MalformedTxError, OrderNotOpenError, UnknownOrderError
from perpdex.core.events import OrderFinished
from perpdex.core.handlers.common import require_subaccount
from perpdex.core.orders import CancelReason, OrderStatus
from perpdex.core.plan import Plan

if TYPE_CHECKING:
    from perpdex.core.exchange import Exchange
    from perpdex.core.tx import CancelOrder


def plan(ex: Exchange, tx: CancelOrder) -> Plan:
    require_subaccount(ex, tx.subaccount_id)
    order_id, client_id = tx.order_id, tx.client_id
    if order_id is not None and client_id is None:
        field, value = "order_id", order_id
        order = ex.open_orders.get(order_id)
    elif client_id is not None and order_id is None:
        field, value = "client_id", client_id
        resting_id = ex.client_ids.get((tx.subaccount_id, client_id))
        order = None if resting_id is None else ex.open_orders.get(resting_id)
    else:
        raise MalformedTxError("give exactly one of order_id and client_id", field="order_id", value=order_id)
    if order is None or order.subaccount_id != tx.subaccount_id:
        if tx.order_id is not None and tx.order_id in ex.finished_orders and order is None:
            status = ex.finished_orders[tx.order_id][0]
            raise OrderNotOpenError(f"order is already {status.value}", field=field, value=value)
        raise UnknownOrderError("no open order with this id for this subaccount", field=field, value=value)
    if order.good_til_ts_ms is not None and order.good_til_ts_ms <= tx.ts_ms:
        raise OrderNotOpenError("order has expired", field=field, value=value)
    result = Plan()
    result.finished.append((order, OrderStatus.CANCELED, CancelReason.USER))
    result.events.append(OrderFinished(tx.ts_ms, order.order_id, order.subaccount_id, order.market_id,
                                       OrderStatus.CANCELED, order.filled_base_quantums,
                                       order.remaining_base_quantums, CancelReason.USER))
    return result
