"""The exchange state machine: `Exchange.apply(tx) -> list[Event]` is the only way state changes.
Handlers plan each step without writing; `apply` commits plans whole, so a rejected tx changes nothing."""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable, Iterable
from typing import Any

from perpdex.core import handlers
from perpdex.core.errors import (
    InvariantViolation, MalformedTxError, ParamsError, TimestampError, UnknownMarketError, UnknownOrderError,
    UnknownSubaccountError, UnknownTxTypeError,
)
from perpdex.core.events import Event, OrderFinished
from perpdex.core.funding import FundingRateResult, funding_index_delta_from_accrual
from perpdex.core.margin import Risk, account_risk
from perpdex.core.orders import TERMINAL_STATUSES, Order, OrderStatus, check_order_transition
from perpdex.core.params import MarketParams
from perpdex.core.plan import Plan
from perpdex.core.state import MarketState, Subaccount, SubaccountId
from perpdex.core.liquidation import LiquidationsConfig
from perpdex.core.screen import ExchangeScreen
from perpdex.core.tx import (
    CancelOrder, Deposit, ForcedTrade, FundingFinalize, FundingTick, InsuranceFundDeposit, Liquidate, OracleUpdate,
    PlaceOrder, SetMarginMode, Transfer, Tx, Withdraw,
)
from perpdex.core.units import MAX_TIMESTAMP_MS, PPM, div_floor

# each tx type maps to the handler of that type (a dict keyed by type cannot say so to a type checker)
Handler = Callable[["Exchange", Any], Plan]


class Exchange:
    """The whole exchange: markets, subaccounts, orders and the collateral ledger.

    Read freely; write only through `apply`. Totals kept for the conservation invariant:
    deposited - withdrawn = sum of balances + fees collected + insurance fund, per asset.
    """

    def __init__(self, markets: Iterable[MarketParams], liquidations_config: LiquidationsConfig | None = None) -> None:
        self.liquidations_config = liquidations_config or LiquidationsConfig()
        self.liquidations_config.validate()
        self.markets: dict[str, MarketState] = {}
        for params in markets:
            params.validate()
            if params.market_id in self.markets:
                raise ParamsError("duplicate market", field="market_id", value=params.market_id)
            self.markets[params.market_id] = MarketState(params)
        self.subaccounts: dict[SubaccountId, Subaccount] = {}
        self.open_orders: dict[int, Order] = {}  # resting and untriggered orders
        self.finished_orders: dict[int, tuple[OrderStatus, int]] = {}  # id -> (status, filled base quantums)
        self.client_ids: dict[tuple[SubaccountId, int], int] = {}  # open orders' client ids
        self.orders_by_subaccount: dict[SubaccountId, set[int]] = {}
        self.expiries: list[tuple[int, int]] = []  # heap of (good_til_ts_ms, order_id)
        self.next_order_id = 1
        self.last_ts_ms = 0
        self.tx_count = 0
        self.fees_collected_quote_quantums = 0  # taker fees less maker rebates
        self.insurance_fund_quote_quantums = 0
        self.funding_dust_ppm = 0  # funding rounding kept by the exchange (settlement floors per subaccount)
        self.funding_epoch = 0  # derived: rises whenever any funding index moves (see Subaccount.funding_epoch)
        self.next_funding_observation_ms = 0
        self.liquidation_cooldowns: dict[SubaccountId, int] = {}  # last partial liquidation (hyperliquid policy)
        self.socialized_loss_quote_quantums = 0  # paradex policy: shortfalls owed by all, repaid by haircuts
        self.total_deposited: dict[int, int] = {}
        self.total_withdrawn: dict[int, int] = {}
        self.screen = ExchangeScreen()  # derived from state, for the liquidation step; not in the digest
        self.holders: dict[str, set[SubaccountId]] = {market_id: set() for market_id in self.markets}  # derived

    # --- the one mutator -------------------------------------------------------------------
    def apply(self, tx: Tx) -> list[Event]:
        """Validate and apply one transaction; returns its events or raises a PerpdexError
        (then nothing changed)."""
        handler = _HANDLERS.get(type(tx))
        if handler is None:
            raise UnknownTxTypeError(f"unknown transaction type {type(tx).__name__}", field="type",
                                     value=type(tx).__name__)
        ts_ms = tx.ts_ms
        if type(ts_ms) is not int or not 0 <= ts_ms <= MAX_TIMESTAMP_MS:
            raise MalformedTxError("ts_ms must be a non-negative integer", field="ts_ms", value=ts_ms)
        if ts_ms < self.last_ts_ms:
            raise TimestampError(f"ts_ms goes back in time (last applied {self.last_ts_ms})",
                                 field="ts_ms", value=ts_ms)
        plan = handler(self, tx)
        self._commit(plan)
        events = plan.events
        follow_up = _FOLLOW_UPS.get(type(tx))
        if follow_up is not None:
            events.extend(follow_up(self, tx))
        expiries = self.expiries
        if expiries and expiries[0][0] <= ts_ms:
            self._expire(ts_ms, events)
        if ts_ms >= self.next_funding_observation_ms:
            self._observe_funding(ts_ms)
        self.last_ts_ms = ts_ms
        self.tx_count += 1
        return events

    def commit_step(self, plan: Plan) -> None:
        """Commit a follow-up step of the current transaction (a triggered order, a liquidation
        fill or offset); handlers call it only after the transaction itself passed every check."""
        self._commit(plan)

    def _commit(self, plan: Plan) -> None:
        # Every section is guarded by a truth test: most plans (a resting order, a cancel) fill one
        # or two of them, and an empty section should cost a test, not a loop.
        if plan.subaccounts:
            touch = self.screen.touch
            subaccounts = self.subaccounts
            for subaccount_id, subaccount in plan.subaccounts.items():
                old = subaccounts.get(subaccount_id)
                old_markets = old.positions.keys() if old is not None else ()
                if old_markets != subaccount.positions.keys():
                    for market_id in set(old_markets) - subaccount.positions.keys():
                        self.holders[market_id].discard(subaccount_id)
                    for market_id in subaccount.positions.keys() - set(old_markets):
                        self.holders[market_id].add(subaccount_id)
                subaccount.funding_epoch = self.funding_epoch  # handlers commit only settled versions
                subaccounts[subaccount_id] = subaccount
                touch(subaccount_id)
        if plan.fees_delta_quote_quantums:
            self.fees_collected_quote_quantums += plan.fees_delta_quote_quantums
        if plan.insurance_delta_quote_quantums:
            self.insurance_fund_quote_quantums += plan.insurance_delta_quote_quantums
        if plan.funding_dust_ppm:
            self.funding_dust_ppm += plan.funding_dust_ppm
        if plan.liquidation_cooldowns:
            self.liquidation_cooldowns.update(plan.liquidation_cooldowns)
        if plan.socialized_loss_delta:
            self.socialized_loss_quote_quantums += plan.socialized_loss_delta
        if plan.funding_updates:
            self.funding_epoch += 1
            touch = self.screen.touch
            for market_id, funding_index, funding_state, start_ms in plan.funding_updates:
                market = self.markets[market_id]
                market.funding_index = funding_index
                market.funding_state = funding_state
                market.funding_interval_start_ms = start_ms
                for holder in self.holders[market_id]:
                    touch(holder)  # their unsettled funding moved: the screen refreshes them
        if plan.deposited_delta:
            for asset_id, amount in plan.deposited_delta.items():
                self.total_deposited[asset_id] = self.total_deposited.get(asset_id, 0) + amount
        if plan.withdrawn_delta:
            for asset_id, amount in plan.withdrawn_delta.items():
                self.total_withdrawn[asset_id] = self.total_withdrawn.get(asset_id, 0) + amount
        markets = self.markets
        if plan.open_interest:
            for market_id, open_interest in plan.open_interest.items():
                market = markets[market_id]
                market.open_interest_base_quantums = open_interest
                market.refresh_initial_margin()
        if plan.oracle_prices:
            for market_id, price_subticks, ts_ms in plan.oracle_prices:
                market = markets[market_id]
                market.oracle_price_subticks = price_subticks
                market.oracle_ts_ms = ts_ms
                market.refresh_initial_margin()
        if plan.maker_fills:
            for order, fill_base_quantums in plan.maker_fills:
                remaining = markets[order.market_id].book.fill(order.order_id, order.is_buy, order.book_price_subticks,
                                                               fill_base_quantums)
                order.remaining_base_quantums = remaining
                if remaining:
                    if order.status is not OrderStatus.PARTIALLY_FILLED:
                        check_order_transition(order.status, OrderStatus.PARTIALLY_FILLED)
                        order.status = OrderStatus.PARTIALLY_FILLED
                else:
                    self._finish(order, OrderStatus.FILLED, on_book=False)
        if plan.finished:
            open_orders = self.open_orders
            for order, status, _reason in plan.finished:
                if order.order_id in open_orders:  # a maker may be both filled and finished
                    self._finish(order, status, on_book=True)
        placed = plan.placed
        if placed is not None:
            self._commit_placed(placed, plan)

    def _commit_placed(self, order: Order, plan: Plan) -> None:
        """Record the order a step placed: new (OPEN or UNTRIGGERED) or just triggered."""
        market = self.markets[order.market_id]
        status = plan.placed_status
        if status is None:
            raise InvariantViolation(f"plan placed order {order.order_id} without a status")
        is_new = order.order_id >= self.next_order_id
        if is_new:
            self.next_order_id = order.order_id + 1
        elif order.status is OrderStatus.UNTRIGGERED:
            del market.untriggered[order.order_id]
            check_order_transition(OrderStatus.UNTRIGGERED, OrderStatus.TRIGGERED)
            order.status = OrderStatus.TRIGGERED
        if status is not order.status:
            check_order_transition(order.status, status)
        order.status = status
        order.remaining_base_quantums = plan.placed_remaining
        if status in TERMINAL_STATUSES:
            if not is_new:
                self._retire(order)
            else:
                self.finished_orders[order.order_id] = (status, order.filled_base_quantums)
            return
        if is_new:
            self._register(order)
        if status is OrderStatus.UNTRIGGERED:
            market.untriggered[order.order_id] = order
        elif plan.placed_rests:
            market.book.add(order.order_id, order.is_buy, order.book_price_subticks, order.remaining_base_quantums)

    def _register(self, order: Order) -> None:
        self.open_orders[order.order_id] = order
        if order.client_id is not None:
            self.client_ids[(order.subaccount_id, order.client_id)] = order.order_id
        owned = self.orders_by_subaccount.get(order.subaccount_id)
        if owned is None:
            owned = self.orders_by_subaccount[order.subaccount_id] = set()
        owned.add(order.order_id)
        if order.good_til_ts_ms is not None:
            heapq.heappush(self.expiries, (order.good_til_ts_ms, order.order_id))

    def _finish(self, order: Order, status: OrderStatus, *, on_book: bool) -> None:
        """Move an open or untriggered order to a terminal status, off the book or trigger list."""
        check_order_transition(order.status, status)
        market = self.markets[order.market_id]
        if order.status is OrderStatus.UNTRIGGERED:
            del market.untriggered[order.order_id]
        elif on_book:
            market.book.remove(order.order_id, order.is_buy, order.book_price_subticks)
        order.status = status
        self._retire(order)

    def _retire(self, order: Order) -> None:
        self.open_orders.pop(order.order_id, None)
        if order.client_id is not None:
            self.client_ids.pop((order.subaccount_id, order.client_id), None)
        owned = self.orders_by_subaccount.get(order.subaccount_id)
        if owned is not None:
            owned.discard(order.order_id)
            if not owned:
                del self.orders_by_subaccount[order.subaccount_id]
        self.finished_orders[order.order_id] = (order.status, order.filled_base_quantums)

    def _observe_funding(self, ts_ms: int) -> None:
        """Premium observations for every market whose cadence came due (transaction time)."""
        next_due = None
        for market in self.markets.values():
            if ts_ms >= market.next_funding_observation_ms:
                handlers.funding_tick.observe(self, market, ts_ms)
                cadence = market.funding_observation_ms
                market.next_funding_observation_ms = ts_ms - ts_ms % cadence + cadence
            due = market.next_funding_observation_ms
            next_due = due if next_due is None or due < next_due else next_due
        self.next_funding_observation_ms = next_due if next_due is not None else ts_ms + 1

    def _expire(self, ts_ms: int, events: list[Event]) -> None:
        """Expire every order whose good-til time has come (alive while ts < good_til)."""
        expiries = self.expiries
        while expiries and expiries[0][0] <= ts_ms:
            _, order_id = heapq.heappop(expiries)
            order = self.open_orders.get(order_id)
            if order is None:
                continue
            self._finish(order, OrderStatus.EXPIRED, on_book=True)
            events.append(OrderFinished(ts_ms, order_id, order.subaccount_id, order.market_id,
                                        OrderStatus.EXPIRED, order.filled_base_quantums,
                                        order.remaining_base_quantums))

    # --- views ----------------------------------------------------------------------------
    def liquidation_candidates(self) -> list[SubaccountId]:
        """Subaccounts the screen flags as possibly below maintenance (a superset of those that are)."""
        return self.screen.candidates(self)

    def market(self, market_id: str) -> MarketState:
        market = self.markets.get(market_id)
        if market is None:
            raise UnknownMarketError(f"unknown market {market_id!r}", field="market_id", value=market_id)
        return market

    def subaccount(self, subaccount_id: SubaccountId) -> Subaccount:
        subaccount = self.subaccounts.get(subaccount_id)
        if subaccount is None:
            raise UnknownSubaccountError(f"unknown subaccount {subaccount_id}", field="subaccount_id",
                                         value=str(subaccount_id))
        return subaccount

    def predicted_funding(self, market_id: str) -> FundingRateResult | None:
        """The rate the current interval would close at now (the model run on a copy of its state;
        nothing is written), or None before the market's first observation."""
        market = self.market(market_id)
        if market.funding_state is None:
            return None
        result, _ = market.funding_model.rate_for_interval(market.funding_state, self.last_ts_ms)
        return result

    def predicted_funding_payments(self, subaccount_id: SubaccountId) -> dict[str, int]:
        """Per position, what it would pay (quote quantums; negative: receive) if the open funding
        interval closed now at the rate so far (`predicted_funding`), at the current oracle price.
        A forecast for views: settlement itself floors once per subaccount, against the trader."""
        payments = {}
        for market_id, size in self.subaccount(subaccount_id).positions.items():
            market = self.markets[market_id]
            predicted = self.predicted_funding(market_id)
            if predicted is None:
                continue
            delta = funding_index_delta_from_accrual(predicted.accrual_ppm_ms, market.require_oracle_price(),
                                                     market.params.quantum_conversion_exponent)
            payments[market_id] = -div_floor(-delta * size, PPM)  # ceil of what is paid: a forecast that never flatters
        return payments

    def settled_view(self, subaccount_id: SubaccountId) -> Subaccount:
        """The subaccount as if its funding were settled now (a copy; nothing is written)."""
        return handlers.common.settled(self, self.subaccount(subaccount_id))

    def risk(self, subaccount_id: SubaccountId) -> Risk:
        """Net collateral (unsettled funding included), initial and maintenance requirement at
        current oracle prices."""
        view = self.settled_view(subaccount_id)
        return account_risk(view.usdc_quote_quantums, view.positions, self.markets)

    def free_collateral(self, subaccount_id: SubaccountId) -> int:
        return self.risk(subaccount_id).free_collateral

    def order_status(self, order_id: int) -> tuple[OrderStatus, int, int]:
        """(status, filled, remaining) in base quantums of any order this exchange accepted."""
        order = self.open_orders.get(order_id)
        if order is not None:
            return order.status, order.filled_base_quantums, order.remaining_base_quantums
        finished = self.finished_orders.get(order_id)
        if finished is None:
            raise UnknownOrderError(f"unknown order {order_id}", field="order_id", value=order_id)
        return finished[0], finished[1], 0

    def digest(self) -> str:
        """Canonical hash of the whole state: equal states give equal digests, whatever the
        order in which dicts were filled (every collection is hashed sorted)."""
        h = hashlib.blake2b(digest_size=32)
        put = h.update
        put(b"v1|ts=%d|next=%d|fees=%d|ins=%d|dust=%d|loss=%d|" % (
            self.last_ts_ms, self.next_order_id, self.fees_collected_quote_quantums,
            self.insurance_fund_quote_quantums, self.funding_dust_ppm, self.socialized_loss_quote_quantums))
        for name, ledger in (("dep", self.total_deposited), ("wd", self.total_withdrawn)):
            put(f"{name}={sorted(ledger.items())}|".encode())
        for market_id in sorted(self.markets):
            market = self.markets[market_id]
            put(f"M{market_id}:{market.oracle_price_subticks}:{market.oracle_ts_ms}:"
                f"{market.open_interest_base_quantums}:{market.book.checksum()}:"
                f"{sorted(market.untriggered)}:{market.funding_index}:{market.funding_interval_start_ms}:"
                f"{market.next_funding_observation_ms}:{market.funding_state!r}:"
                f"{list(market.funding_observations)}|".encode())
        for subaccount_id in sorted(self.subaccounts):
            sub = self.subaccounts[subaccount_id]
            put(f"S{subaccount_id.owner}/{subaccount_id.number}:{sub.margin_mode.value}:"
                f"{sub.isolated_market_id}:{sorted(sub.collateral.items())}:"
                f"{sorted(sub.positions.items())}:{sorted(sub.funding_entries.items())}:"
                f"{sorted(sub.cost_basis.items())}|".encode())
        for order_id in sorted(self.open_orders):
            o = self.open_orders[order_id]
            put(f"O{order_id}:{o.subaccount_id.owner}/{o.subaccount_id.number}:{o.market_id}:{int(o.is_buy)}:"
                f"{o.price_subticks}:{o.size_base_quantums}:{o.remaining_base_quantums}:{o.order_type.value}:"
                f"{o.time_in_force.value}:{int(o.reduce_only)}:{o.client_id}:{o.good_til_ts_ms}:"
                f"{o.condition.value if o.condition else None}:{o.trigger_price_subticks}:"
                f"{o.status.value}|".encode())
        put(f"C{sorted((str(sid), ts) for sid, ts in self.liquidation_cooldowns.items())}|".encode())
        for order_id in sorted(self.finished_orders):
            status, filled = self.finished_orders[order_id]
            put(b"F%d:%s:%d|" % (order_id, status.value.encode(), filled))
        return h.hexdigest()


_HANDLERS: dict[type, Handler] = {
    Deposit: handlers.deposit.plan,
    Withdraw: handlers.withdraw.plan,
    Transfer: handlers.transfer.plan,
    SetMarginMode: handlers.set_margin_mode.plan,
    PlaceOrder: handlers.place_order.plan,
    CancelOrder: handlers.cancel_order.plan,
    OracleUpdate: handlers.oracle_update.plan,
    InsuranceFundDeposit: handlers.insurance_fund_deposit.plan,
    FundingTick: handlers.funding_tick.plan,
    Liquidate: handlers.liquidate.plan,
    FundingFinalize: handlers.funding_finalize.plan,
    ForcedTrade: handlers.forced_trade.plan,
}


def _after_oracle_update(ex: Exchange, tx: OracleUpdate) -> list[Event]:
    """New prices first trigger conditional orders, then the liquidation step runs."""
    events = handlers.oracle_update.run_triggers(ex, tx)
    events.extend(handlers.liquidate.run_step(ex, tx.ts_ms))
    return events


# Work a transaction does after its own plan is committed: steps that each plan and commit, and
# can no longer reject the transaction (it passed every check already).
_FOLLOW_UPS: dict[type, Callable[[Exchange, Any], list[Event]]] = {
    OracleUpdate: _after_oracle_update,
    Liquidate: handlers.liquidate.run_requested,
    FundingFinalize: handlers.funding_finalize.release,
}
