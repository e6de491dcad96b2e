"""Events: what each applied transaction did, with the numbers that justified it.
Frozen records; reports, the store and the API read them instead of recomputing."""

from __future__ import annotations

from dataclasses import dataclass

from perpdex.core.orders import CancelReason, OrderStatus
from perpdex.core.state import MarginMode, SubaccountId


@dataclass(frozen=True, slots=True)
class Deposited:
    ts_ms: int
    subaccount_id: SubaccountId
    asset_id: int
    amount_quantums: int


@dataclass(frozen=True, slots=True)
class Withdrawn:
    ts_ms: int
    subaccount_id: SubaccountId
    asset_id: int
    amount_quantums: int
    free_collateral_after_quote_quantums: int


@dataclass(frozen=True, slots=True)
class Transferred:
    ts_ms: int
    sender: SubaccountId
    recipient: SubaccountId
    asset_id: int
    amount_quantums: int


@dataclass(frozen=True, slots=True)
class MarginModeSet:
    ts_ms: int
    subaccount_id: SubaccountId
    margin_mode: MarginMode
    isolated_market_id: str | None


@dataclass(frozen=True, slots=True)
class OrderAccepted:
    """An order entered the exchange: `status` is OPEN (it may fill at once) or UNTRIGGERED."""

    ts_ms: int
    order_id: int
    subaccount_id: SubaccountId
    market_id: str
    is_buy: bool
    size_base_quantums: int
    price_subticks: int
    status: OrderStatus
    client_id: int | None


@dataclass(frozen=True, slots=True)
class Fill:
    """One match at the maker's price. Fees are positive when paid, negative for a rebate."""

    ts_ms: int
    market_id: str
    price_subticks: int
    size_base_quantums: int
    quote_quantums: int
    taker_is_buy: bool
    taker_order_id: int
    taker_subaccount_id: SubaccountId
    taker_fee_quote_quantums: int
    maker_order_id: int
    maker_subaccount_id: SubaccountId
    maker_fee_quote_quantums: int


@dataclass(frozen=True, slots=True)
class OrderFinished:
    """An order left the book or the trigger list: filled, canceled (with why) or expired."""

    ts_ms: int
    order_id: int
    subaccount_id: SubaccountId
    market_id: str
    status: OrderStatus
    filled_base_quantums: int
    remaining_base_quantums: int
    reason: CancelReason | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class OrderRested:
    """The unfilled part of an order now rests on the book."""

    ts_ms: int
    order_id: int
    market_id: str
    price_subticks: int
    remaining_base_quantums: int


@dataclass(frozen=True, slots=True)
class OrderTriggered:
    ts_ms: int
    order_id: int
    market_id: str
    oracle_price_subticks: int
    trigger_price_subticks: int


@dataclass(frozen=True, slots=True)
class OraclePriceUpdated:
    ts_ms: int
    market_id: str
    price_subticks: int
    source_count: int


Event = (Deposited | Withdrawn | Transferred | MarginModeSet | OrderAccepted | Fill | OrderFinished
         | OrderRested | OrderTriggered | OraclePriceUpdated)
