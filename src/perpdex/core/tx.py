"""Transactions: one immutable record (NamedTuple) per type, the only inputs that change the exchange.
Each carries `ts_ms`; amounts are quantums, prices subticks (decimal parsing happens in the shells)."""

from __future__ import annotations

from typing import NamedTuple

from perpdex.core.orders import ConditionType, OrderType, Side, TimeInForce
from perpdex.core.state import MarginMode, SubaccountId
from perpdex.core.units import USDC_ASSET_ID


class Deposit(NamedTuple):
    ts_ms: int
    subaccount_id: SubaccountId
    amount_quantums: int
    asset_id: int = USDC_ASSET_ID


class Withdraw(NamedTuple):
    ts_ms: int
    subaccount_id: SubaccountId
    amount_quantums: int
    asset_id: int = USDC_ASSET_ID


class Transfer(NamedTuple):
    """Collateral between two subaccounts (any owners, as dYdX v4 MsgCreateTransfer)."""

    ts_ms: int
    sender: SubaccountId
    recipient: SubaccountId
    amount_quantums: int
    asset_id: int = USDC_ASSET_ID


class SetMarginMode(NamedTuple):
    """Make a subaccount cross, or isolated to one market; only with no positions and no orders."""

    ts_ms: int
    subaccount_id: SubaccountId
    margin_mode: MarginMode
    isolated_market_id: str | None = None


class PlaceOrder(NamedTuple):
    """A limit or market order, optionally conditional (stop-loss / take-profit on the oracle).

    `price_subticks` is the limit price; for a market order it is the worst price and may be
    None (then oracle +/- the market's slippage). `good_til_ts_ms` ends a GTT order (None: until
    canceled). `client_id` must be unique among the subaccount's open orders.
    """

    ts_ms: int
    subaccount_id: SubaccountId
    market_id: str
    side: Side
    size_base_quantums: int
    price_subticks: int | None = None
    order_type: OrderType = OrderType.LIMIT
    time_in_force: TimeInForce = TimeInForce.GTT
    reduce_only: bool = False
    client_id: int | None = None
    good_til_ts_ms: int | None = None
    condition: ConditionType | None = None
    trigger_price_subticks: int | None = None


class CancelOrder(NamedTuple):
    """Cancel one open or untriggered order by exchange order id or by client id."""

    ts_ms: int
    subaccount_id: SubaccountId
    order_id: int | None = None
    client_id: int | None = None


class OraclePrice(NamedTuple):
    """One market's prices from several sources (subticks); the index is their median."""

    market_id: str
    source_prices_subticks: tuple[int, ...]


class OracleUpdate(NamedTuple):
    ts_ms: int
    prices: tuple[OraclePrice, ...]


class FundingTick(NamedTuple):
    """Close every market's funding interval that has ended by `ts_ms`: compute its rate with the
    market's model and move its funding index (positions settle lazily, when next touched)."""

    ts_ms: int


class FundingFinalize(NamedTuple):
    """Premium observations made at or before `up_to_ms` are now proven (their batch was accepted on
    L1): markets with finalized funding feed them to their funding model and close every interval
    whose observations are all proven. The rollup node sends one per accepted batch, `up_to_ms` being
    the last moment that batch covers (its last transaction's time, or just before the time it
    closed at when it closed by age); `up_to_ms` may not lie after `ts_ms`."""

    ts_ms: int
    up_to_ms: int


class InsuranceFundDeposit(NamedTuple):
    """Move USDC from a subaccount into the exchange's insurance fund (seeding or topping it up);
    the subaccount must still meet initial margin afterwards, as for a withdrawal."""

    ts_ms: int
    subaccount_id: SubaccountId
    amount_quantums: int


class Liquidate(NamedTuple):
    """Ask the exchange to liquidate a subaccount below maintenance margin; anyone may submit it
    (rejected, changing nothing, when the subaccount is not liquidatable)."""

    ts_ms: int
    subaccount_id: SubaccountId


class ForcedTrade(NamedTuple):
    """A trade both parties agreed to, settled directly at `price_subticks` with no book and no fee: the
    rollup serves an L1 forced-trade request with it (StarkEx perpetual forced trade). `buyer` buys
    `size_base_quantums` of `market_id` from `seller`; each must pass the margin rule afterwards."""

    ts_ms: int
    buyer: SubaccountId
    seller: SubaccountId
    market_id: str
    size_base_quantums: int
    price_subticks: int


Tx = (Deposit | Withdraw | Transfer | SetMarginMode | PlaceOrder | CancelOrder | OracleUpdate
      | FundingTick | InsuranceFundDeposit | Liquidate | FundingFinalize | ForcedTrade)
