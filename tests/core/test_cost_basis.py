"""Each position's cost basis (average cost, `Subaccount.trade`): adding adds the trade's value, reducing keeps
the cost per unit, flipping starts the new side at the trade's price; it rides along fills on both sides."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from perpdex.core.invariants import check_invariants
from perpdex.core.orders import Side, TimeInForce
from perpdex.core.state import Subaccount, SubaccountId
from perpdex.core.tx import PlaceOrder
from perpdex.core.units import QUOTE
from tests.fixtures import ALICE, BOB, btc, funded_exchange, usd_btc


def test_adding_reducing_closing_and_flipping():
    sub = Subaccount(SubaccountId("a"))
    sub.trade("BTC-USD", btc(1), 100_000 * QUOTE, 0)
    sub.trade("BTC-USD", btc(1), 110_000 * QUOTE, 0)
    assert sub.cost_basis == {"BTC-USD": 210_000 * QUOTE}  # 2 BTC at an average $105,000
    sub.trade("BTC-USD", -btc(0.5), 120_000 * QUOTE // 2, 0)
    assert sub.cost_basis == {"BTC-USD": 157_500 * QUOTE}  # 1.5 BTC, still $105,000 each
    sub.trade("BTC-USD", -btc(2), 2 * 120_000 * QUOTE, 0)  # sells 2: closes 1.5, opens 0.5 short at $120,000
    assert sub.positions == {"BTC-USD": -btc(0.5)} and sub.cost_basis == {"BTC-USD": -60_000 * QUOTE}
    sub.trade("BTC-USD", btc(0.5), 50_000 * QUOTE, 0)
    assert sub.positions == {} and sub.cost_basis == {}


@given(st.lists(st.tuples(st.integers(-50, 50).filter(bool), st.integers(1, 200_000)), min_size=1, max_size=30))
def test_the_basis_keeps_the_positions_sign_and_never_outlives_it(trades):
    sub = Subaccount(SubaccountId("a"))
    for steps, price_usd in trades:
        delta = steps * btc(0.01)
        sub.trade("BTC-USD", delta, abs(delta) * price_usd * QUOTE // btc(1), 0)
        size = sub.positions.get("BTC-USD", 0)
        basis = sub.cost_basis.get("BTC-USD")
        assert (basis is None) == (size == 0)
        assert basis is None or basis * size >= 0


def test_fills_give_taker_and_maker_their_cost():
    ex = funded_exchange()
    ex.apply(PlaceOrder(2, BOB, "BTC-USD", Side.SELL, btc(0.2), usd_btc(101_000)))
    ex.apply(PlaceOrder(3, ALICE, "BTC-USD", Side.BUY, btc(0.2), usd_btc(101_000), time_in_force=TimeInForce.IOC))
    assert ex.subaccount(ALICE).cost_basis == {"BTC-USD": 20_200 * QUOTE}  # fees apart
    assert ex.subaccount(BOB).cost_basis == {"BTC-USD": -20_200 * QUOTE}
    check_invariants(ex)
