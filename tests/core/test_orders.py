"""Conditional triggers and the order status lifecycle of `perpdex.core.orders`.

Trigger tables follow dYdX v4 (dydxprotocol/v4-chain @84d4664, paths under `protocol/`); the
lifecycle follows NautilusTrader's transition table (model/orders/base.pyx _ORDER_STATE_TABLE).
"""

from __future__ import annotations

import itertools

import pytest

from perpdex.core.errors import InvariantViolation
from perpdex.core.orders import (
    ORDER_TRANSITIONS,
    TERMINAL_STATUSES,
    ConditionType,
    OrderStatus,
    check_order_transition,
    conditional_triggers,
)

SL = ConditionType.STOP_LOSS
TP = ConditionType.TAKE_PROFIT
BUY, SELL = True, False
S = OrderStatus

# --- conditional triggers ---------------------------------------------------------------------

# dYdX v4 protocol/x/clob/types/order.go (*Order).CanTrigger: both comparisons are inclusive.
# Take-profit buys and stop-loss sells trigger at or below the trigger price; take-profit sells
# and stop-loss buys at or above it. Our own sentence cases at, above and below a trigger of
# $100,000 on BTC-USD (10_000_000_000 subticks, one subtick either side).
TRIGGER = 10_000_000_000
TRIGGER_CASES = {
    "a stop-loss buy triggers when the oracle price is at the trigger": (BUY, SL, TRIGGER, True),
    "a stop-loss buy triggers when the oracle price is above the trigger": (BUY, SL, TRIGGER + 1, True),
    "a stop-loss buy waits while the oracle price is below the trigger": (BUY, SL, TRIGGER - 1, False),
    "a stop-loss sell triggers when the oracle price is at the trigger": (SELL, SL, TRIGGER, True),
    "a stop-loss sell waits while the oracle price is above the trigger": (SELL, SL, TRIGGER + 1, False),
    "a stop-loss sell triggers when the oracle price is below the trigger": (SELL, SL, TRIGGER - 1, True),
    "a take-profit buy triggers when the oracle price is at the trigger": (BUY, TP, TRIGGER, True),
    "a take-profit buy waits while the oracle price is above the trigger": (BUY, TP, TRIGGER + 1, False),
    "a take-profit buy triggers when the oracle price is below the trigger": (BUY, TP, TRIGGER - 1, True),
    "a take-profit sell triggers when the oracle price is at the trigger": (SELL, TP, TRIGGER, True),
    "a take-profit sell triggers when the oracle price is above the trigger": (SELL, TP, TRIGGER + 1, True),
    "a take-profit sell waits while the oracle price is below the trigger": (SELL, TP, TRIGGER - 1, False),
}


@pytest.mark.parametrize(("is_buy", "condition", "oracle_price_subticks", "expected"), TRIGGER_CASES.values(),
                         ids=TRIGGER_CASES.keys())
def test_conditional_triggers(is_buy: bool, condition: ConditionType, oracle_price_subticks: int,
                              expected: bool) -> None:
    assert conditional_triggers(is_buy, condition, TRIGGER, oracle_price_subticks) is expected


# dYdX v4 protocol/x/clob/keeper/untriggered_conditional_orders_test.go TestPollTriggeredConditionalOrders,
# the cases with a whole-subtick price (the two "Pessimistically rounds ..." cases feed a rational
# price that dYdX rounds before CanTrigger; our oracle prices are whole subticks already). The
# eight orders are named as in protocol/testutil/constants (ConditionalOrder_Alice_Num0_...).
CONDITIONAL_ORDERS = {
    "Id0_Buy5_Price20_StopLoss20": (BUY, SL, 20),
    "Id1_Buy15_Price25_StopLoss25": (BUY, SL, 25),
    "Id2_Sell20_Price20_TakeProfit20": (SELL, TP, 20),
    "Id3_Buy25_Price25_StopLoss25": (BUY, SL, 25),
    "Id0_Buy5_Price10_TakeProfit10": (BUY, TP, 10),
    "Id1_Buy15_Price10_TakeProfit5": (BUY, TP, 5),
    "Id2_Buy20_Price10_TakeProfit10": (BUY, TP, 10),
    "Id3_Sell25_Price10_StopLoss10": (SELL, SL, 10),
}
POLL_TRIGGERED_CASES = {
    "No conditional orders triggered": (15, set()),
    "Trigger GTE orders": (20, {"Id0_Buy5_Price20_StopLoss20", "Id2_Sell20_Price20_TakeProfit20"}),
    "Trigger LTE orders": (10, {"Id0_Buy5_Price10_TakeProfit10", "Id2_Buy20_Price10_TakeProfit10",
                                "Id3_Sell25_Price10_StopLoss10"}),
    "Trigger all LTE orders": (0, {"Id0_Buy5_Price10_TakeProfit10", "Id1_Buy15_Price10_TakeProfit5",
                                   "Id2_Buy20_Price10_TakeProfit10", "Id3_Sell25_Price10_StopLoss10"}),
    "Trigger all GTE orders": (50, {"Id0_Buy5_Price20_StopLoss20", "Id1_Buy15_Price25_StopLoss25",
                                    "Id2_Sell20_Price20_TakeProfit20", "Id3_Buy25_Price25_StopLoss25"}),
}


@pytest.mark.parametrize(("oracle_price_subticks", "expected"), POLL_TRIGGERED_CASES.values(),
                         ids=POLL_TRIGGERED_CASES.keys())
def test_poll_triggered_conditional_orders(oracle_price_subticks: int, expected: set[str]) -> None:
    triggered = {name for name, (is_buy, condition, trigger) in CONDITIONAL_ORDERS.items()
                 if conditional_triggers(is_buy, condition, trigger, oracle_price_subticks)}
    assert triggered == expected


# --- order status lifecycle -------------------------------------------------------------------

# Our own cases: every path a resting or conditional order can take, step by step.
LIFECYCLE_PATHS = {
    "a resting order fills in one match": [S.OPEN, S.FILLED],
    "a resting order fills in several matches": [S.OPEN, S.PARTIALLY_FILLED, S.PARTIALLY_FILLED, S.FILLED],
    "a resting order is canceled by its owner": [S.OPEN, S.CANCELED],
    "a resting order expires at its good-til time": [S.OPEN, S.EXPIRED],
    "a partly filled order is canceled": [S.OPEN, S.PARTIALLY_FILLED, S.CANCELED],
    "a partly filled order expires": [S.OPEN, S.PARTIALLY_FILLED, S.EXPIRED],
    "a conditional order triggers, rests and fills": [S.UNTRIGGERED, S.TRIGGERED, S.OPEN, S.FILLED],
    "a conditional order triggers and fills at once": [S.UNTRIGGERED, S.TRIGGERED, S.FILLED],
    "a triggered IOC order fills partly and its remainder is canceled": [
        S.UNTRIGGERED, S.TRIGGERED, S.PARTIALLY_FILLED, S.CANCELED],
    "a triggered order that fails its checks is canceled": [S.UNTRIGGERED, S.TRIGGERED, S.CANCELED],
    "an untriggered order is canceled by its owner": [S.UNTRIGGERED, S.CANCELED],
    "an untriggered order expires before its trigger": [S.UNTRIGGERED, S.EXPIRED],
}


@pytest.mark.parametrize("path", LIFECYCLE_PATHS.values(), ids=LIFECYCLE_PATHS.keys())
def test_order_transitions_allow_lifecycle_path(path: list[OrderStatus]) -> None:
    for current, new in itertools.pairwise(path):
        assert (current, new) in ORDER_TRANSITIONS
        check_order_transition(current, new)  # does not raise
    assert path[-1] in TERMINAL_STATUSES


# Our own cases: steps the exchange must never take; each is a bug (InvariantViolation).
ILLEGAL_TRANSITIONS = {
    "a filled order cannot reopen": (S.FILLED, S.OPEN),
    "a filled order cannot fill again": (S.FILLED, S.FILLED),
    "a canceled order cannot reopen": (S.CANCELED, S.OPEN),
    "an expired order cannot fill": (S.EXPIRED, S.FILLED),
    "a partly filled order cannot go back to open": (S.PARTIALLY_FILLED, S.OPEN),
    "a triggered order cannot be untriggered": (S.TRIGGERED, S.UNTRIGGERED),  # dYdX e2e conditional_orders_test.go
    "a resting order cannot become conditional": (S.OPEN, S.UNTRIGGERED),
    "a resting order cannot trigger": (S.OPEN, S.TRIGGERED),
    "an untriggered order cannot fill before it triggers": (S.UNTRIGGERED, S.FILLED),
    "an untriggered order cannot rest before it triggers": (S.UNTRIGGERED, S.OPEN),
    "an open order cannot stay open by a transition": (S.OPEN, S.OPEN),
}


@pytest.mark.parametrize(("current", "new"), ILLEGAL_TRANSITIONS.values(), ids=ILLEGAL_TRANSITIONS.keys())
def test_check_order_transition_raises_on_illegal_pair(current: OrderStatus, new: OrderStatus) -> None:
    assert (current, new) not in ORDER_TRANSITIONS
    with pytest.raises(InvariantViolation, match=f"{current.value} -> {new.value}"):
        check_order_transition(current, new)


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATUSES, key=lambda status: status.value),
                         ids=lambda status: f"a {status.value} order is final")
def test_terminal_statuses_have_no_way_out(terminal: OrderStatus) -> None:
    for new in OrderStatus:
        assert (terminal, new) not in ORDER_TRANSITIONS
        with pytest.raises(InvariantViolation):
            check_order_transition(terminal, new)


def test_invariant_violation_is_not_a_user_error() -> None:
    # core/errors.py: InvariantViolation is our bug, never a PerpdexError a user can cause.
    from perpdex.core.errors import PerpdexError

    assert not issubclass(InvariantViolation, PerpdexError)
