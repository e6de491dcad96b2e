"""Liquidation prices agree exactly with the core: an Exchange built through transactions is moved
to the reported price (liquidatable there) and to one subtick before it (not liquidatable)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perpdex.config.markets import load_markets
from perpdex.core.events import Liquidated, LiquidationStalled
from perpdex.core.exchange import Exchange
from perpdex.core.handlers.liquidate import NotLiquidatableError
from perpdex.core.orders import Side, TimeInForce
from perpdex.core.state import MarginMode as CoreMarginMode
from perpdex.core.state import SubaccountId
from perpdex.core.tx import Deposit, Liquidate, PlaceOrder, SetMarginMode, Transfer
from perpdex.core.units import QUOTE
from perpdex.risk.liquidation_prices import (
    account_liquidation_prices,
    liquidation_price_subticks,
    liquidation_prices,
    liquidation_surface,
)
from perpdex.risk.portfolio import parse_portfolio, portfolio_from_exchange
from tests.fixtures import BTC_DOLLAR, ETH_DOLLAR, btc, oracle, usd_btc

BOB, BOB_ISO, CAROL = SubaccountId("bob"), SubaccountId("bob", 1), SubaccountId("carol")
BUY, SELL = Side.BUY, Side.SELL
ETH_UNIT = 10**9


def eth(amount: float) -> int:
    return round(amount * ETH_UNIT)


def exchange_with_counterparty(bob_usdc: int) -> Exchange:
    """bob holds `bob_usdc`, carol 10M USDC to take the other side; BTC $100,000, ETH $3,000 at ts 1."""
    ex = Exchange(load_markets())
    ex.apply(Deposit(1, BOB, bob_usdc))
    ex.apply(Deposit(1, CAROL, 10_000_000 * QUOTE))
    ex.apply(oracle(1, BTC_USD=usd_btc(100_000), ETH_USD=3_000 * ETH_DOLLAR))
    return ex


def trade(ex: Exchange, ts: int, who: SubaccountId, market: str, side: Side, size: int, price: int) -> None:
    """carol rests the other side at `price`; `who` takes it IOC (so the book is empty afterwards)."""
    ex.apply(PlaceOrder(ts, CAROL, market, Side(-side), size, price))
    ex.apply(PlaceOrder(ts, who, market, side, size, price, time_in_force=TimeInForce.IOC))


def isolated_exchange(market: str, side: Side, size: int, price: int, collateral_usd: int) -> Exchange:
    ex = exchange_with_counterparty(100_000 * QUOTE)
    ex.apply(SetMarginMode(2, BOB_ISO, CoreMarginMode.ISOLATED, market))
    ex.apply(Transfer(2, BOB, BOB_ISO, collateral_usd * QUOTE))
    trade(ex, 3, BOB_ISO, market, side, size, price)
    return ex


def cross_exchange() -> Exchange:
    """bob's cross account: long 1 BTC at $100,000 and short 10 ETH at $3,000 on $5,000."""
    ex = exchange_with_counterparty(5_000 * QUOTE)
    trade(ex, 3, BOB, "BTC-USD", BUY, btc(1), usd_btc(100_000))
    trade(ex, 3, BOB, "ETH-USD", SELL, eth(10), 3_000 * ETH_DOLLAR)
    return ex


def move(ex: Exchange, ts: int, market: str, price: int):
    return ex.apply(oracle(ts, **{market.replace("-", "_"): price}))


def stalled_or_liquidated(events, subaccount_id) -> bool:
    return any(isinstance(e, (LiquidationStalled, Liquidated)) and e.subaccount_id == subaccount_id for e in events)


def assert_exact_in_exchange(build, subaccount_id: SubaccountId, market: str, price: int, safe: int, tick: int) -> None:
    """One subtick before `price` (and one tick before) the exchange leaves the account alone and
    rejects a Liquidate; at `price` its liquidation step takes it up (the book is empty: stalled)."""
    ex = build()
    events = move(ex, 10, market, safe)
    assert not stalled_or_liquidated(events, subaccount_id)
    assert not ex.risk(subaccount_id).is_liquidatable()
    with pytest.raises(NotLiquidatableError):
        ex.apply(Liquidate(11, subaccount_id))
    events = move(ex, 12, market, safe + (tick if safe > price else -tick))
    assert not stalled_or_liquidated(events, subaccount_id)
    events = move(ex, 13, market, price)
    assert stalled_or_liquidated(events, subaccount_id)
    assert ex.risk(subaccount_id).is_liquidatable()


@pytest.mark.parametrize(("market", "side", "size", "entry", "collateral_usd", "tick"), [
    ("BTC-USD", BUY, btc(1), usd_btc(100_000), 3_000, BTC_DOLLAR),
    ("BTC-USD", SELL, btc(0.5), usd_btc(100_000), 2_000, BTC_DOLLAR),
    ("ETH-USD", SELL, eth(10), 3_000 * ETH_DOLLAR, 1_500, ETH_DOLLAR // 10),
], ids=["an isolated 1 BTC long on $3,000 is liquidated at its reported price and not a subtick above",
        "an isolated 0.5 BTC short on $2,000 is liquidated at its reported price and not a subtick below",
        "an isolated 10 ETH short on $1,500 is liquidated at its reported price and not a subtick below"])
def test_isolated_liquidation_price_is_exact_in_the_exchange(market, side, size, entry, collateral_usd, tick):
    def build():
        return isolated_exchange(market, side, size, entry, collateral_usd)

    ex = build()
    portfolio = portfolio_from_exchange(ex, "bob", subaccount_numbers=[1])
    account = portfolio.accounts()[-1]
    assert portfolio.risk(account) == ex.risk(BOB_ISO)  # the rebuilt account is the exchange's
    (result,) = account_liquidation_prices(portfolio, account)
    price, safe = result.liquidation_price_subticks, result.last_safe_price_subticks
    assert result.mode == "isolated" and not result.already_liquidatable
    assert safe == (price + 1 if side is BUY else price - 1)
    # the core's margin at integer prices: liquidatable at the price, not one subtick before
    assert portfolio.risk(account, {market: price}).is_liquidatable()
    assert not portfolio.risk(account, {market: safe}).is_liquidatable()
    # Binance's closed form (no rounding; the entry fee is in the collateral) lands within a cent
    assert result.closed_form_price == pytest.approx(result.liquidation_price, abs=0.01)
    assert_exact_in_exchange(build, BOB_ISO, market, price, safe, tick)


@pytest.mark.parametrize(("market", "tick"), [("BTC-USD", BTC_DOLLAR), ("ETH-USD", ETH_DOLLAR // 10)],
                         ids=["the cross BTC price holding ETH fixed is exact in the exchange",
                              "the cross ETH price holding BTC fixed is exact in the exchange"])
def test_cross_single_asset_liquidation_price_is_exact_in_the_exchange(market, tick):
    ex = cross_exchange()
    portfolio = portfolio_from_exchange(ex, "bob")
    cross = portfolio.account("cross")
    assert portfolio.risk(cross) == ex.risk(BOB)
    result = next(p for p in account_liquidation_prices(portfolio, cross) if p.market_id == market)
    price, safe = result.liquidation_price_subticks, result.last_safe_price_subticks
    assert result.mode == "cross" and price is not None
    assert portfolio.risk(cross, {market: price}).is_liquidatable()
    assert not portfolio.risk(cross, {market: safe}).is_liquidatable()
    # BTC long: NC 5,000 - fees; falls with BTC; ETH short: liquidated on a rise
    assert (price < portfolio.mark_prices_subticks[market]) == (market == "BTC-USD")
    assert_exact_in_exchange(cross_exchange, BOB, market, price, safe, tick)


PORTFOLIO = """
name = "t"
cross_collateral_usd = {cross}
[[positions]]
market = "BTC-USD"
size = {btc}
entry_price = 60000
[[positions]]
market = "ETH-USD"
size = {eth}
entry_price = 3000
[[positions]]
market = "SOL-USD"
size = {sol}
entry_price = 150
margin_mode = "isolated"
isolated_collateral_usd = {iso}
"""


@settings(max_examples=40, deadline=None)
@given(cross=st.integers(500, 50_000), btc_size=st.sampled_from(["-2", "-0.5", "0.0001", "0.3", "1.5"]),
       eth_size=st.sampled_from(["-20", "-1", "0.001", "4", "25"]), sol=st.sampled_from(["-300", "-1", "2", "500"]),
       iso=st.integers(50, 20_000))
def test_every_reported_price_is_the_exact_boundary_of_the_core_margin(cross, btc_size, eth_size, sol, iso):
    portfolio = parse_portfolio(PORTFOLIO.format(cross=cross, btc=btc_size, eth=eth_size, sol=sol, iso=iso))
    for account in portfolio.accounts():
        for result in account_liquidation_prices(portfolio, account):
            price = result.liquidation_price_subticks
            if price is None or result.already_liquidatable:
                continue
            assert portfolio.risk(account, {result.market_id: price}).is_liquidatable()
            assert not portfolio.risk(account, {result.market_id: result.last_safe_price_subticks}).is_liquidatable()


def test_a_long_whose_collateral_covers_a_fall_to_zero_has_no_liquidation_price():
    portfolio = parse_portfolio(PORTFOLIO.format(cross=200_000, btc="1", eth="1", sol="1", iso=1_000))
    for result in account_liquidation_prices(portfolio, portfolio.account("cross")):
        assert result.liquidation_price_subticks is None and result.last_safe_price_subticks is None


def test_an_account_below_maintenance_reports_its_current_price_as_already_liquidatable():
    portfolio = parse_portfolio(PORTFOLIO.format(cross=0, btc="1", eth="1", sol="1", iso=1)
                                .replace("entry_price = 60000", "entry_price = 70000"))
    btc_price, already = liquidation_price_subticks(portfolio, portfolio.account("cross"), "BTC-USD")
    assert already and btc_price == portfolio.mark_prices_subticks["BTC-USD"]


def test_the_surface_flags_exactly_the_cells_below_maintenance_and_its_boundary_is_exact():
    portfolio = parse_portfolio(PORTFOLIO.format(cross=8_000, btc="1", eth="-10", sol="1", iso=100))
    surface = liquidation_surface(portfolio)
    assert (surface.x_market, surface.y_market) == ("BTC-USD", "ETH-USD")  # $60,000 and $30,000 notional
    marks = portfolio.mark_prices_subticks
    cross = portfolio.account("cross")
    for row_cushion, row_flags in zip(surface.cushion_usd, surface.liquidatable):
        for cushion, flag in zip(row_cushion, row_flags):
            assert flag == (cushion < 0)
    for x_move, y_move in zip(surface.moves, surface.boundary_y_move):
        if y_move is None:
            continue
        x_price = max(1, round(marks["BTC-USD"] * (1 + x_move)))
        y_price = round(marks["ETH-USD"] * (1 + y_move))
        assert portfolio.risk(cross, {"BTC-USD": x_price, "ETH-USD": y_price}).is_liquidatable()
        assert not portfolio.risk(cross, {"BTC-USD": x_price, "ETH-USD": y_price - 1}).is_liquidatable()
    report = liquidation_prices(portfolio)
    assert [p.market_id for p in report.isolated] == ["SOL-USD"] and len(report.cross) == 2
