"""Portfolio files: the shipped example loads; bad files raise PortfolioError naming the field; a
portfolio read off an Exchange rebuilds exactly the exchange's accounts."""

from __future__ import annotations

import pytest

from perpdex.core.orders import Side, TimeInForce
from perpdex.core.tx import PlaceOrder
from perpdex.core.units import QUOTE
from perpdex.risk.portfolio import (
    MarginMode,
    PortfolioError,
    load_portfolio,
    parse_portfolio,
    portfolio_from_exchange,
)
from tests.fixtures import ALICE, BOB, CAROL, btc, funded_exchange, usd_btc

GOOD = """
name = "desk"
cross_collateral_usd = 10000
[prices]
"BTC-USD" = 100000
[[positions]]
market = "BTC-USD"
size = 0.5
entry_price = 90000
[[positions]]
market = "ETH-USD"
size = -2
entry_price = 3000
margin_mode = "isolated"
leverage = 10
"""


def test_the_shipped_example_loads_with_cross_and_isolated_positions():
    portfolio = load_portfolio()
    modes = {p.margin_mode for p in portfolio.positions}
    assert modes == {MarginMode.CROSS, MarginMode.ISOLATED}
    assert portfolio.accounts()[0].label == "cross"
    assert portfolio.equity_usd() > 0


def test_accounts_hold_collateral_minus_the_entry_cost_so_net_collateral_is_collateral_plus_pnl():
    portfolio = parse_portfolio(GOOD)
    cross, isolated = portfolio.accounts()
    # cross: $10,000 - 0.5 x $90,000 paid; at $100,000: NC = 10,000 + 0.5 x 10,000 = $15,000
    assert cross.usdc_quote_quantums == (10_000 - 45_000) * QUOTE
    assert portfolio.risk(cross).net_collateral == 15_000 * QUOTE
    # isolated ETH short at 10x: collateral = 2 x 3,000 / 10 = $600; the short received $6,000
    assert isolated.collateral_quote_quantums == 600 * QUOTE
    assert isolated.usdc_quote_quantums == 6_600 * QUOTE
    assert portfolio.risk(isolated).net_collateral == 600 * QUOTE  # mark = entry without a [prices] entry


BAD = [
    ("positions[0].market", GOOD.replace('market = "BTC-USD"', 'market = "FOO-USD"')),
    ("cross_collateral_usd", GOOD.replace("cross_collateral_usd = 10000", "cross_collateral_usd = -1")),
    ("positions[1].isolated_collateral_usd", GOOD.replace("leverage = 10", "isolated_collateral_usd = -5")),
    ("positions[0].size", GOOD.replace("size = 0.5\n", "")),
    ("positions[0].entry_price", GOOD.replace("entry_price = 90000\n", "")),
    ("positions", 'name = "x"\ncross_collateral_usd = 5\n'),
    ("positions[1].isolated_collateral_usd", GOOD.replace("leverage = 10\n", "")),
    ("positions[1].leverage", GOOD.replace("leverage = 10", "leverage = 60")),
    ("positions[0].size", GOOD.replace("size = 0.5", "size = 0.00000000001")),
    ("positions[0].size", GOOD.replace("size = 0.5", "size = 0")),
    ("positions[0].entry_price", GOOD.replace("entry_price = 90000", "entry_price = -3")),
    ("positions[0].margin_mode", GOOD.replace('size = 0.5\n', 'size = 0.5\nmargin_mode = "portfolio"\n')),
    ("positions[0].colour", GOOD.replace('size = 0.5\n', 'size = 0.5\ncolour = "red"\n')),
    ("prices.SOL-USD", GOOD.replace('"BTC-USD" = 100000', '"SOL-USD" = 100')),
    ("positions[0].isolated_collateral_usd", GOOD.replace("size = 0.5\n", "size = 0.5\nisolated_collateral_usd = 5\n")),
    ("file", "name = [unclosed"),
]


@pytest.mark.parametrize(("field", "text"), BAD, ids=[
    "an unknown market names positions[0].market", "negative cross collateral names cross_collateral_usd",
    "negative isolated collateral names that field", "a missing size names positions[0].size",
    "a missing entry price names positions[0].entry_price", "no positions names positions",
    "an isolated position without collateral or leverage names isolated_collateral_usd",
    "leverage above the market's maximum names leverage", "a size finer than one base quantum names size",
    "a zero size names size", "a negative entry price names entry_price", "an unknown margin mode names margin_mode",
    "an unknown key names itself", "a price for a market without a position names prices.<market>",
    "isolated collateral on a cross position names that field", "broken TOML names the file"])
def test_bad_portfolio_files_raise_portfolio_error_naming_the_field(field, text):
    with pytest.raises(PortfolioError) as caught:
        parse_portfolio(text, "desk.toml")
    assert caught.value.field == field
    assert "desk.toml" in str(caught.value) and caught.value.code == "risk.bad_portfolio"


def test_an_isolated_market_cannot_be_held_in_cross():
    text = GOOD.replace('market = "ETH-USD"', 'market = "EIGEN-USD"').replace('margin_mode = "isolated"\n', "")
    text = text.replace("leverage = 10\n", "")
    with pytest.raises(PortfolioError) as caught:
        parse_portfolio(text)
    assert caught.value.field == "positions[1].margin_mode"


def test_a_missing_file_is_a_portfolio_error_naming_the_file(tmp_path):
    with pytest.raises(PortfolioError) as caught:
        load_portfolio(tmp_path / "nope.toml")
    assert caught.value.field == "file" and "nope.toml" in str(caught.value)


def test_a_portfolio_read_off_the_exchange_has_the_exchange_risk():
    ex = funded_exchange()
    ex.apply(PlaceOrder(3, CAROL, "BTC-USD", Side.SELL, btc(0.5), usd_btc(100_000)))
    ex.apply(PlaceOrder(3, BOB, "BTC-USD", Side.BUY, btc(0.5), usd_btc(100_000), time_in_force=TimeInForce.IOC))
    portfolio = portfolio_from_exchange(ex, "bob")
    assert portfolio.risk(portfolio.account("cross")) == ex.risk(BOB)
    with pytest.raises(PortfolioError) as caught:
        portfolio_from_exchange(ex, "alice")  # alice holds no positions
    assert caught.value.field == "positions"
    with pytest.raises(PortfolioError):
        portfolio_from_exchange(ex, "nobody")
    assert ALICE in ex.subaccounts
