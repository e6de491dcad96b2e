"""PlaceOrder: validate an order, check margin for its worst-case fill, match it against the book
(price-time priority, per-fill margin checks, self-trade prevention) and plan where the rest goes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from perpdex.core.errors import (
    BelowMinOrderSizeError, DuplicateClientIdError, ExpiredOrderError, MalformedTxError, MarginError,
    MarginModeError, MissingOraclePriceError, OffStepError, OffTickError, PostOnlyWouldCrossError,
    ReduceOnlyError, StaleOracleError, UnknownMarketError,
)
from perpdex.core.events import Fill, OrderAccepted, OrderFinished, OrderRested
from perpdex.core.handlers.common import require_subaccount, settled
from perpdex.core.margin import (
    Risk, TransitionResult, check_transition, initial_margin_ppm_at, positions_risk, requirements_at,
)
from perpdex.core.orders import CancelReason, ConditionType, Order, OrderStatus, OrderType, Side, TimeInForce
from perpdex.core.params import MarketType
from perpdex.core.plan import Plan
from perpdex.core.state import MarginMode
from perpdex.core.units import MAX_ORDER_SIZE_BASE_QUANTUMS, MAX_SUBTICKS, PPM, USDC_ASSET_ID

if TYPE_CHECKING:
    from perpdex.core.exchange import Exchange
    from perpdex.core.state import MarketState, Subaccount, SubaccountId
    from perpdex.core.tx import PlaceOrder

_SUCCESS = TransitionResult.SUCCESS
_IMMEDIATE = (TimeInForce.IOC, TimeInForce.FOK)


def plan(ex: Exchange, tx: PlaceOrder) -> Plan:
    market = ex.markets.get(tx.market_id)
    if market is None:
        raise UnknownMarketError(f"unknown market {tx.market_id!r}", field="market_id", value=tx.market_id)
    stored = require_subaccount(ex, tx.subaccount_id)
    order = _validated_order(ex, market, stored, tx)
    result = Plan()
    subaccount = settled(ex, stored, result, tx.ts_ms)
    result.events.append(OrderAccepted(tx.ts_ms, order.order_id, order.subaccount_id, order.market_id,
                                       order.is_buy, order.size_base_quantums, order.price_subticks or 0,
                                       order.status, order.client_id))
    if order.status is OrderStatus.UNTRIGGERED:
        # dYdX v4 checks collateral when a conditional order triggers, not when it is placed.
        result.placed, result.placed_status = order, OrderStatus.UNTRIGGERED
        result.placed_remaining = order.size_base_quantums
        return result
    execute(ex, market, subaccount, order, order.price_subticks, tx.ts_ms, result)
    return result


def _validated_order(ex: Exchange, market: MarketState, subaccount: Subaccount, tx: PlaceOrder) -> Order:
    """Every check of the order's own fields and of who may trade this market; returns the
    order record (not yet stored)."""
    params = market.params
    if not isinstance(tx.side, Side):
        raise MalformedTxError("side must be BUY or SELL", field="side", value=tx.side)
    size = tx.size_base_quantums
    check_size(size, params.step_base_quantums)
    if size < params.min_order_base_quantums:
        raise BelowMinOrderSizeError(f"size is below the minimum {params.min_order_base_quantums}",
                                     field="size_base_quantums", value=size)
    order_type, tif = tx.order_type, tx.time_in_force
    if not isinstance(order_type, OrderType):
        raise MalformedTxError("order_type must be limit or market", field="order_type", value=order_type)
    if not isinstance(tif, TimeInForce):
        raise MalformedTxError("time_in_force must be gtt, ioc, fok or post_only", field="time_in_force", value=tif)
    price = tx.price_subticks
    if order_type is OrderType.LIMIT or price is not None:
        check_price(price, params.subticks_per_tick, "price_subticks")
    if order_type is OrderType.MARKET and tif not in _IMMEDIATE:
        raise MalformedTxError("a market order is IOC or FOK", field="time_in_force", value=tif.value)
    good_til = tx.good_til_ts_ms
    if good_til is not None:
        if type(good_til) is not int or tif in _IMMEDIATE:
            raise MalformedTxError("good_til_ts_ms is an integer, for resting (gtt, post_only) orders",
                                   field="good_til_ts_ms", value=good_til)
        if good_til <= tx.ts_ms:
            raise ExpiredOrderError("good_til_ts_ms is not after the transaction time", field="good_til_ts_ms",
                                    value=good_til)
    client_id = tx.client_id
    if client_id is not None:
        if type(client_id) is not int or not 0 <= client_id < 2**32:
            raise MalformedTxError("client_id is a uint32", field="client_id", value=client_id)
        if (tx.subaccount_id, client_id) in ex.client_ids:
            raise DuplicateClientIdError("client_id is already used by an open order of this subaccount",
                                         field="client_id", value=client_id)
    if type(tx.reduce_only) is not bool:
        raise MalformedTxError("reduce_only is a bool", field="reduce_only", value=tx.reduce_only)
    condition, trigger = tx.condition, tx.trigger_price_subticks
    if (condition is None) != (trigger is None):
        raise MalformedTxError("a conditional order needs both condition and trigger_price_subticks",
                               field="trigger_price_subticks", value=trigger)
    if condition is not None:
        if not isinstance(condition, ConditionType):
            raise MalformedTxError("condition must be stop_loss or take_profit", field="condition", value=condition)
        check_price(trigger, params.subticks_per_tick, "trigger_price_subticks")
        if tif is TimeInForce.POST_ONLY:
            raise MalformedTxError("a conditional order cannot be post-only", field="time_in_force", value=tif.value)
    check_margin_mode(subaccount, market)
    if market.oracle_price_subticks is None:
        raise MissingOraclePriceError(f"no oracle price for {params.market_id} yet", field="market_id",
                                      value=params.market_id)
    return Order(ex.next_order_id, tx.subaccount_id, params.market_id, tx.side is Side.BUY, price, size,
                 order_type, tif, tx.reduce_only, client_id, good_til, condition, trigger,
                 OrderStatus.UNTRIGGERED if condition is not None else OrderStatus.OPEN, tx.ts_ms)


def check_size(size: object, step_base_quantums: int) -> None:
    """A positive whole number of base quantums on the step grid (raises MalformedTxError, OffStepError)."""
    if type(size) is not int or not 0 < size <= MAX_ORDER_SIZE_BASE_QUANTUMS:
        raise MalformedTxError("size must be a positive integer of base quantums", field="size_base_quantums",
                               value=size)
    if size % step_base_quantums:
        raise OffStepError(f"size is not a multiple of the step size {step_base_quantums}",
                           field="size_base_quantums", value=size)


def check_price(price: object, subticks_per_tick: int, field: str) -> None:
    """A positive whole number of subticks on the tick grid (raises MalformedTxError, OffTickError)."""
    if type(price) is not int or not 0 < price <= MAX_SUBTICKS:
        raise MalformedTxError(f"{field} must be a positive integer of subticks", field=field, value=price)
    if price % subticks_per_tick:
        raise OffTickError(f"{field} is not a multiple of the tick ({subticks_per_tick} subticks)", field=field,
                           value=price)


def check_margin_mode(subaccount: Subaccount, market: MarketState) -> None:
    """An isolated subaccount trades its one market; isolated-type markets trade only there."""
    market_id = market.params.market_id
    if subaccount.margin_mode is MarginMode.ISOLATED:
        if subaccount.isolated_market_id != market_id:
            raise MarginModeError(f"subaccount is isolated to {subaccount.isolated_market_id}", field="market_id",
                                  value=market_id)
    elif market.params.market_type is MarketType.ISOLATED:
        raise MarginModeError("an isolated market trades only in a subaccount isolated to it", field="market_id",
                              value=market_id)


def check_oracle_for_change(market: MarketState, size_before: int, size_after: int, ts_ms: int) -> None:
    """A change that grows a position or flips it needs a fresh oracle price (raises StaleOracleError);
    one that only shrinks it may go through on a stale one, so a position can always be reduced."""
    if ((abs(size_after) > abs(size_before) or (size_after != 0 and (size_after > 0) != (size_before > 0)))
            and not market.oracle_is_fresh(ts_ms)):
        market_id = market.params.market_id
        raise StaleOracleError(f"oracle price of {market_id} is older than {market.params.oracle_staleness_ms} ms",
                               field="market_id", value=market_id)


def market_order_limit(market: MarketState, oracle_price_subticks: int, is_buy: bool) -> int:
    """Worst price of a market order without one: oracle +/- the market's slippage."""
    return slippage_limit_subticks(oracle_price_subticks, is_buy, market.params.market_order_slippage_ppm,
                                   market.params.subticks_per_tick)


def slippage_limit_subticks(oracle_price_subticks: int, is_buy: bool, slippage_ppm: int, subticks_per_tick: int) -> int:
    """oracle x (1 +/- slippage) on the tick grid, rounded toward the oracle so the order never
    goes beyond the stated slippage (at least one tick)."""
    tick = subticks_per_tick
    if is_buy:
        bound = oracle_price_subticks * (PPM + slippage_ppm) // PPM  # floor: toward oracle
        return max(tick, bound // tick * tick)  # floor to a tick: toward oracle
    bound = -((-oracle_price_subticks * (PPM - slippage_ppm)) // PPM)  # ceil: toward oracle
    return max(tick, -((-bound) // tick) * tick)  # ceil to a tick: toward oracle


def _with_position(rest: tuple[int, int, int], usdc: int, size: int, market: MarketState, oracle_price_subticks: int,
                   initial_margin_ppm: int) -> Risk:
    """Account risk from the other markets' part (`rest`), USDC and this market's position at
    the given initial margin fraction (the one the open interest after the change gives)."""
    own = requirements_at(size, oracle_price_subticks, market.quantum_conversion_divisor,
                          market.params.liquidity_tier, initial_margin_ppm)
    return Risk(usdc + rest[0] + own[0], rest[1] + own[1], rest[2] + own[2])


def _imf_at(market: MarketState, oracle_price_subticks: int, open_interest: int) -> int:
    """Initial fraction at a hypothetical open interest (the cached one when it is unchanged)."""
    if open_interest == market.open_interest_base_quantums:
        return market.initial_margin_ppm
    return initial_margin_ppm_at(market.params.liquidity_tier, open_interest, oracle_price_subticks,
                                 market.quantum_conversion_divisor)


def _transition(rest: tuple[int, int, int], market: MarketState, oracle_price_subticks: int, initial_margin_ppm: int,
                usdc_before: int, size_before: int, usdc_after: int, size_after: int) -> TransitionResult:
    """check_transition for a change to one market's position, computing the state before only
    when the state after misses initial margin (the common case needs one risk, not two)."""
    own = requirements_at(size_after, oracle_price_subticks, market.quantum_conversion_divisor,
                          market.params.liquidity_tier, initial_margin_ppm)
    net_collateral, initial = usdc_after + rest[0] + own[0], rest[1] + own[1]
    if net_collateral >= initial:
        return _SUCCESS
    return check_transition(_with_position(rest, usdc_before, size_before, market, oracle_price_subticks,
                                           initial_margin_ppm),
                            Risk(net_collateral, initial, rest[2] + own[2]))


def execute(ex: Exchange, market: MarketState, subaccount: Subaccount, order: Order, limit_price: int | None,
            ts_ms: int, result: Plan) -> None:
    """Check and match an order that is now live (new, or just triggered) into `result`;
    `subaccount` is the owner already settled for funding (`common.settled`).

    Raises (and plans nothing) when the order breaks reduce-only, post-only, a stale oracle or
    the margin rule for its worst-case fill: the whole size at its limit price with the taker
    fee, and open interest up by that size. Matching then checks each fill for both sides with
    the post-fill open interest (dYdX v4 x/subaccounts UpdateSubaccounts): a maker that fails is
    canceled and matching goes on; a taker that fails stops, keeping its earlier fills.
    """
    params = market.params
    market_id = params.market_id
    oracle_price = market.require_oracle_price()
    is_buy = order.is_buy
    sign = 1 if is_buy else -1
    size = order.size_base_quantums
    position = subaccount.positions.get(market_id, 0)
    if order.reduce_only and (position == 0 or (position > 0) == is_buy):
        raise ReduceOnlyError("a reduce-only order must be opposite an open position", field="reduce_only",
                              value=True)
    if not order.reduce_only:  # the worst case: the whole size fills
        check_oracle_for_change(market, position, position + sign * size, ts_ms)
    if limit_price is None:
        limit_price = market_order_limit(market, oracle_price, is_buy)
    post_only = order.time_in_force is TimeInForce.POST_ONLY
    crosses = market.book.crosses(is_buy, limit_price)  # nothing below changes the book before matching
    if post_only and crosses:
        raise PostOnlyWouldCrossError("post-only order would cross the book", field="price_subticks",
                                      value=limit_price)

    divisor = market.quantum_conversion_divisor
    open_interest = market.open_interest_base_quantums
    usdc = subaccount.collateral.get(USDC_ASSET_ID, 0)
    rest = positions_risk(subaccount.positions, ex.markets, skip_market_id=market_id)
    worst_size = min(size, abs(position)) if order.reduce_only else size
    worst_quote = worst_size * limit_price // divisor  # exact on the price and size grid
    worst_fee_ppm = max(params.maker_fee_ppm, 0) if post_only else params.taker_fee_ppm
    worst_fee = -((-worst_quote * worst_fee_ppm) // PPM)  # ceil: against trader
    tier = params.liquidity_tier
    worst_imf = (tier.initial_margin_ppm if not tier.open_interest_upper_cap_quote_quantums  # `_imf_at`, inlined
                 else _imf_at(market, oracle_price, open_interest + worst_size))
    outcome = _transition(rest, market, oracle_price, worst_imf, usdc, position,
                          usdc - sign * worst_quote - worst_fee, position + sign * worst_size)
    if outcome is not _SUCCESS:
        free = _with_position(rest, usdc, position, market, oracle_price, market.initial_margin_ppm).free_collateral
        raise MarginError(f"order fails the margin check for a full fill at its limit price ({outcome.value}):"
                          f" free collateral {free} quote quantums", field="size_base_quantums",
                          value=size, result=outcome)

    if post_only or not crosses:
        _settle_taker(result, order, size, None, limit_price, ts_ms)
        return
    remaining, stop_reason = _match(ex, market, oracle_price, subaccount, order, limit_price, rest, ts_ms, result)
    _settle_taker(result, order, remaining, stop_reason, limit_price, ts_ms)


def _match(ex: Exchange, market: MarketState, oracle_price: int, subaccount: Subaccount, order: Order,
           limit_price: int, rest: tuple[int, int, int], ts_ms: int, result: Plan) -> tuple[int, CancelReason | None]:
    """Walk the crossing side of the book; plan fills, maker cancels and subaccount drafts into
    `result`. Returns the taker's unfilled size and why it stopped early (None if it did not).
    A fill-or-kill that cannot fill entirely plans nothing and returns its whole size."""
    params = market.params
    market_id = params.market_id
    is_buy = order.is_buy
    sign = 1 if is_buy else -1
    size = order.size_base_quantums
    taker_id = order.subaccount_id
    divisor = market.quantum_conversion_divisor
    open_interest = market.open_interest_base_quantums
    taker_fee_ppm, maker_fee_ppm = params.taker_fee_ppm, params.maker_fee_ppm
    funding_index = market.funding_index
    market_open_interest, initial_margin_ppm = open_interest, market.initial_margin_ppm
    tier = params.liquidity_tier
    base_initial_margin_ppm, upper_cap = tier.initial_margin_ppm, tier.open_interest_upper_cap_quote_quantums
    taker = subaccount.copy()  # `subaccount` is already settled; this copy is what the fills change
    taker_positions, taker_collateral = taker.positions, taker.collateral
    drafts: dict[SubaccountId, tuple[Subaccount, tuple]] = {taker_id: (taker, rest)}
    remaining = size
    stop_reason: CancelReason | None = None
    fills: list[Fill] = []
    maker_fills: list[tuple[Order, int]] = []
    finished: list[tuple[Order, OrderStatus, CancelReason | None]] = []
    finished_events: list[OrderFinished] = []
    fees = 0
    open_orders = ex.open_orders
    for price, maker_order_id, maker_remaining in market.book.iter_crossing(is_buy, limit_price):
        maker_order = open_orders[maker_order_id]
        good_til = maker_order.good_til_ts_ms
        if good_til is not None and good_til <= ts_ms:
            continue  # expired: this transaction's expiry sweep takes it off
        maker_id = maker_order.subaccount_id
        if maker_id == taker_id:
            _cancel(maker_order, CancelReason.SELF_TRADE, ts_ms, finished, finished_events)
            continue
        quantity = remaining if remaining < maker_remaining else maker_remaining
        taker_position = taker_positions.get(market_id, 0)
        if order.reduce_only:
            room = -sign * taker_position  # > 0 while the taker still has a position to reduce
            if room <= 0:
                stop_reason = CancelReason.REDUCE_ONLY_RESIZE
                break
            quantity = min(quantity, room)
        draft = drafts.get(maker_id)
        if draft is None:
            stored = ex.subaccounts[maker_id]
            draft = (settled(ex, stored, result, ts_ms).copy(),
                     positions_risk(stored.positions, ex.markets, skip_market_id=market_id))
            drafts[maker_id] = draft
        maker, maker_rest = draft
        maker_position = maker.positions.get(market_id, 0)
        if maker_order.reduce_only:
            room = sign * maker_position  # the maker sells (taker buys) only out of a long
            if room <= 0:
                _cancel(maker_order, CancelReason.REDUCE_ONLY_RESIZE, ts_ms, finished, finished_events)
                continue
            quantity = min(quantity, room)
        quote = quantity * price // divisor  # exact on the grid (MarketParams.validate)
        taker_fee = -((-quote * taker_fee_ppm) // PPM)  # ceil: against trader (dYdX v4 fees round up)
        maker_fee = -((-quote * maker_fee_ppm) // PPM)  # ceil: a rebate shrinks, against trader
        taker_new = taker_position + sign * quantity
        maker_new = maker_position - sign * quantity
        new_open_interest = (open_interest + max(taker_new, 0) - max(taker_position, 0)
                             + max(maker_new, 0) - max(maker_position, 0))
        maker_usdc = maker.collateral.get(USDC_ASSET_ID, 0)
        maker_usdc_new = maker_usdc + sign * quote - maker_fee
        imf = initial_margin_ppm if new_open_interest == market_open_interest else (
            base_initial_margin_ppm if not upper_cap else  # `_imf_at`, inlined: it runs every fill
            initial_margin_ppm_at(tier, new_open_interest, oracle_price, divisor))
        if _transition(maker_rest, market, oracle_price, imf, maker_usdc, maker_position,
                       maker_usdc_new, maker_new) is not _SUCCESS:
            _cancel(maker_order, CancelReason.MAKER_UNDERCOLLATERALIZED, ts_ms, finished, finished_events)
            continue
        taker_usdc = taker_collateral.get(USDC_ASSET_ID, 0)
        taker_usdc_new = taker_usdc - sign * quote - taker_fee
        if _transition(rest, market, oracle_price, imf, taker_usdc, taker_position,
                       taker_usdc_new, taker_new) is not _SUCCESS:
            stop_reason = CancelReason.TAKER_UNDERCOLLATERALIZED
            break
        taker_collateral[USDC_ASSET_ID] = taker_usdc_new
        taker.trade(market_id, sign * quantity, quote, funding_index)
        maker.collateral[USDC_ASSET_ID] = maker_usdc_new
        maker.trade(market_id, -sign * quantity, quote, funding_index)
        open_interest = new_open_interest
        fees += taker_fee + maker_fee
        maker_fills.append((maker_order, quantity))
        fills.append(Fill(ts_ms, market_id, price, quantity, quote, is_buy, order.order_id, taker_id, taker_fee,
                          maker_order.order_id, maker_id, maker_fee))
        if quantity == maker_remaining:
            finished_events.append(OrderFinished(ts_ms, maker_order.order_id, maker_id, market_id,
                                                 OrderStatus.FILLED, maker_order.size_base_quantums, 0))
        remaining -= quantity
        if not remaining:
            break
    if order.reduce_only and remaining and stop_reason is None and -sign * taker_positions.get(market_id, 0) <= 0:
        stop_reason = CancelReason.REDUCE_ONLY_RESIZE
    if order.time_in_force is TimeInForce.FOK and remaining:
        return size, CancelReason.FOK_NOT_FILLED  # all or nothing: nothing of this walk is kept

    for subaccount_id, (draft_subaccount, _) in drafts.items():
        if not draft_subaccount.collateral.get(USDC_ASSET_ID, 1):
            del draft_subaccount.collateral[USDC_ASSET_ID]  # a zero balance is not stored
        result.subaccounts[subaccount_id] = draft_subaccount
    result.maker_fills.extend(maker_fills)
    result.finished.extend(finished)
    result.fees_delta_quote_quantums += fees
    if open_interest != market.open_interest_base_quantums:
        result.open_interest[market_id] = open_interest
    result.events.extend(fills)
    result.events.extend(finished_events)
    if fills:
        _cancel_stale_reduce_only(ex, drafts, market_id, order.order_id, ts_ms, result)
    return remaining, stop_reason


def _settle_taker(result: Plan, order: Order, remaining: int, stop_reason: CancelReason | None, limit_price: int,
                  ts_ms: int) -> None:
    """Plan the taker's end state: filled, canceled (IOC, FOK, market, stopped early) or resting."""
    size = order.size_base_quantums
    filled = size - remaining
    result.placed, result.placed_remaining = order, remaining
    events = result.events
    if not remaining:
        result.placed_status = OrderStatus.FILLED
        events.append(OrderFinished(ts_ms, order.order_id, order.subaccount_id, order.market_id,
                                    OrderStatus.FILLED, size, 0))
    elif (stop_reason is not None or order.time_in_force in _IMMEDIATE
          or order.order_type is OrderType.MARKET):
        if stop_reason is None:
            stop_reason = (CancelReason.FOK_NOT_FILLED if order.time_in_force is TimeInForce.FOK
                           else CancelReason.IOC_REMAINDER)
        result.placed_status = OrderStatus.CANCELED
        events.append(OrderFinished(ts_ms, order.order_id, order.subaccount_id, order.market_id,
                                    OrderStatus.CANCELED, filled, remaining, stop_reason))
    else:
        result.placed_status = OrderStatus.PARTIALLY_FILLED if filled else OrderStatus.OPEN
        result.placed_rests = True
        events.append(OrderRested(ts_ms, order.order_id, order.market_id, limit_price, remaining))


def _cancel(order: Order, reason: CancelReason, ts_ms: int, finished: list, finished_events: list,
            filled_now: int = 0) -> None:
    finished.append((order, OrderStatus.CANCELED, reason))
    finished_events.append(OrderFinished(ts_ms, order.order_id, order.subaccount_id, order.market_id,
                                         OrderStatus.CANCELED, order.filled_base_quantums + filled_now,
                                         order.remaining_base_quantums - filled_now, reason))


def _cancel_stale_reduce_only(ex: Exchange, drafts: dict, market_id: str, taker_order_id: int, ts_ms: int,
                              result: Plan) -> None:
    """A resting reduce-only order whose position closed or flipped has nothing left to reduce
    (dYdX v4 removes them the same way)."""
    planned = None  # the orders the walk already finishes, gathered when a stale one is first found
    open_orders = ex.open_orders
    for subaccount_id, (draft, _) in drafts.items():
        before = ex.subaccounts[subaccount_id].positions.get(market_id, 0)
        after = draft.positions.get(market_id, 0)
        if before == 0 or (after != 0 and (after > 0) == (before > 0)):
            continue
        stale = [order_id for order_id in ex.orders_by_subaccount.get(subaccount_id, ())
                 if open_orders[order_id].reduce_only]
        if not stale:
            continue
        if planned is None:
            planned = {order.order_id for order, _, _ in result.finished}
        for order_id in sorted(stale):
            resting = open_orders[order_id]
            if (resting.market_id == market_id and order_id != taker_order_id
                    and order_id not in planned and resting.status is not OrderStatus.UNTRIGGERED):
                filled_now = sum(q for o, q in result.maker_fills if o.order_id == order_id)
                if filled_now == resting.remaining_base_quantums:
                    continue  # filled completely by this walk
                _cancel(resting, CancelReason.REDUCE_ONLY_RESIZE, ts_ms, result.finished, result.events,
                        filled_now=filled_now)
