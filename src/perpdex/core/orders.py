"""Orders: sides, types, time in force, conditional triggers and the order status lifecycle.
The `Order` record is what rests on the book and what the status table reports."""

from __future__ import annotations

from enum import Enum, IntEnum
from typing import TYPE_CHECKING

from perpdex.core.errors import InvariantViolation

if TYPE_CHECKING:
    from perpdex.core.state import SubaccountId


class Side(IntEnum):
    """Sign of the position change a buy or sell makes (long > 0)."""

    BUY = 1
    SELL = -1


class OrderType(str, Enum):
    LIMIT = "limit"
    MARKET = "market"  # IOC at a worst price: the order's price, else oracle +/- slippage


class TimeInForce(str, Enum):
    GTT = "gtt"  # rests until filled, canceled or `good_til_ts_ms` (None: until canceled)
    IOC = "ioc"  # fills what it can now, the rest is canceled
    FOK = "fok"  # fills entirely now or not at all
    POST_ONLY = "post_only"  # rests only; rejected if it would cross (dYdX v4 ErrPostOnlyWouldCrossMakerOrder)


class ConditionType(str, Enum):
    """dYdX v4 conditional orders, triggered by the oracle price (x/clob/types/order.go CanTrigger)."""

    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"


class OrderStatus(str, Enum):
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    UNTRIGGERED = "untriggered"
    TRIGGERED = "triggered"


class CancelReason(str, Enum):
    USER = "user"
    IOC_REMAINDER = "ioc_remainder"
    FOK_NOT_FILLED = "fok_not_filled"
    SELF_TRADE = "self_trade"  # resting order canceled by its own subaccount's taker (dYdX v4)
    MAKER_UNDERCOLLATERALIZED = "maker_undercollateralized"
    TAKER_UNDERCOLLATERALIZED = "taker_undercollateralized"
    REDUCE_ONLY_RESIZE = "reduce_only_no_position"
    TRIGGER_REJECTED = "trigger_rejected"  # a triggered order failed its placement checks


_S = OrderStatus
# NautilusTrader-style transition table (model/orders/base.pyx _ORDER_STATE_TABLE): any pair
# missing here is a bug in the exchange, never a user's fault.
ORDER_TRANSITIONS: frozenset[tuple[OrderStatus, OrderStatus]] = frozenset({
    (_S.OPEN, _S.PARTIALLY_FILLED), (_S.OPEN, _S.FILLED), (_S.OPEN, _S.CANCELED), (_S.OPEN, _S.EXPIRED),
    (_S.PARTIALLY_FILLED, _S.PARTIALLY_FILLED), (_S.PARTIALLY_FILLED, _S.FILLED),
    (_S.PARTIALLY_FILLED, _S.CANCELED), (_S.PARTIALLY_FILLED, _S.EXPIRED),
    (_S.UNTRIGGERED, _S.TRIGGERED), (_S.UNTRIGGERED, _S.CANCELED), (_S.UNTRIGGERED, _S.EXPIRED),
    (_S.TRIGGERED, _S.OPEN), (_S.TRIGGERED, _S.PARTIALLY_FILLED), (_S.TRIGGERED, _S.FILLED),
    (_S.TRIGGERED, _S.CANCELED),
})
TERMINAL_STATUSES = frozenset({_S.FILLED, _S.CANCELED, _S.EXPIRED})


def check_order_transition(current: OrderStatus, new: OrderStatus) -> None:
    """Raise InvariantViolation for a lifecycle step the table does not allow."""
    if (current, new) not in ORDER_TRANSITIONS:
        raise InvariantViolation(f"illegal order transition {current.value} -> {new.value}")


def conditional_triggers(is_buy: bool, condition: ConditionType, trigger_price_subticks: int,
                         oracle_price_subticks: int) -> bool:
    """Whether a conditional order triggers at this oracle price.

    dYdX v4 (x/clob/types/order.go, CanTrigger): take-profit buys when the price falls to the
    trigger or below and sells when it rises to it or above; stop-loss the reverse.
    """
    if (condition is ConditionType.TAKE_PROFIT) == is_buy:
        return oracle_price_subticks <= trigger_price_subticks
    return oracle_price_subticks >= trigger_price_subticks


class Order:
    """An accepted order: resting on the book, waiting for its trigger, or finished.

    Sizes in base quantums, prices in subticks. `remaining_base_quantums` falls with each fill
    and is written only by `Exchange` commits.
    """

    __slots__ = (
        "order_id", "subaccount_id", "market_id", "is_buy", "price_subticks", "size_base_quantums",
        "remaining_base_quantums", "order_type", "time_in_force", "reduce_only", "client_id",
        "good_til_ts_ms", "condition", "trigger_price_subticks", "status", "placed_ts_ms",
    )

    def __init__(self, order_id: int, subaccount_id: SubaccountId, market_id: str, is_buy: bool,
                 price_subticks: int | None,
                 size_base_quantums: int, order_type: OrderType = OrderType.LIMIT,
                 time_in_force: TimeInForce = TimeInForce.GTT, reduce_only: bool = False,
                 client_id: int | None = None, good_til_ts_ms: int | None = None,
                 condition: ConditionType | None = None, trigger_price_subticks: int | None = None,
                 status: OrderStatus = OrderStatus.OPEN, placed_ts_ms: int = 0) -> None:
        self.order_id = order_id
        self.subaccount_id = subaccount_id
        self.market_id = market_id
        self.is_buy = is_buy
        self.price_subticks = price_subticks
        self.size_base_quantums = size_base_quantums
        self.remaining_base_quantums = size_base_quantums
        self.order_type = order_type
        self.time_in_force = time_in_force
        self.reduce_only = reduce_only
        self.client_id = client_id
        self.good_til_ts_ms = good_til_ts_ms
        self.condition = condition
        self.trigger_price_subticks = trigger_price_subticks
        self.status = status
        self.placed_ts_ms = placed_ts_ms

    @property
    def book_price_subticks(self) -> int:
        """The price it rests at: only limit orders rest, so an order on the book always has one."""
        price = self.price_subticks
        if price is None:
            raise InvariantViolation(f"order {self.order_id} has no price but is on the book")
        return price

    @property
    def filled_base_quantums(self) -> int:
        return self.size_base_quantums - self.remaining_base_quantums

    def __repr__(self) -> str:
        side = "buy" if self.is_buy else "sell"
        return (f"Order(#{self.order_id} {self.market_id} {side} {self.remaining_base_quantums}/"
                f"{self.size_base_quantums} @ {self.price_subticks} {self.status.value})")
