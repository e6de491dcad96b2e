"""The Hyperliquid-style waterfall beside dYdX's: partial market-order steps with a cooldown, the
backstop vault below 2/3 of maintenance, and auto-deleveraging of an underwater vault."""

from __future__ import annotations

import pytest

from perpdex.config.markets import load_markets
from perpdex.core.errors import ParamsError
from perpdex.core.events import BackstopTakeover, Deleveraged, Liquidated, LiquidationStalled
from perpdex.core.exchange import Exchange
from perpdex.core.handlers.liquidate import BACKSTOP_VAULT
from perpdex.core.invariants import check_invariants
from perpdex.core.liquidation import LiquidationsConfig
from perpdex.core.orders import Side, TimeInForce
from perpdex.core.state import SubaccountId
from perpdex.core.tx import Deposit, PlaceOrder
from perpdex.core.units import QUOTE
from tests.fixtures import ALICE, CAROL, btc, oracle, usd_btc

ERIN = SubaccountId("erin")
HYPERLIQUID = LiquidationsConfig(policy="hyperliquid")


def erin_long_two_btc(bid_usd: int) -> Exchange:
    """Erin: 2 BTC long at $100,000 ($200k, over the $100k partial threshold) on $4,300; carol is
    short; alice bids 2 BTC at `bid_usd`. MMR 1.2%; NC $4,200 after the $100 taker fee."""
    ex = Exchange(load_markets(), HYPERLIQUID)
    for who, usd in ((ALICE, 1_000_000), (CAROL, 1_000_000), (ERIN, 4_300)):
        ex.apply(Deposit(0, who, usd * QUOTE))
    ex.apply(oracle(0, BTC_USD=usd_btc(100_000)))
    ex.apply(PlaceOrder(0, CAROL, "BTC-USD", Side.SELL, btc(2), usd_btc(100_000)))
    ex.apply(PlaceOrder(0, ERIN, "BTC-USD", Side.BUY, btc(2), usd_btc(100_000), time_in_force=TimeInForce.IOC))
    ex.apply(PlaceOrder(0, ALICE, "BTC-USD", Side.BUY, btc(2), usd_btc(bid_usd)))
    return ex


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


def test_partial_steps_of_20_percent_with_a_cooldown():
    ex = erin_long_two_btc(bid_usd=98_000)
    # $98,900: NC $2,000 < MMR $2,373.60, above 2/3 of it: a partial step, not the backstop
    events = ex.apply(oracle(1_000, BTC_USD=usd_btc(98_900)))
    fills = of(events, Liquidated)
    assert sum(f.size_base_quantums for f in fills) == -btc(0.4)  # 20% of 2 BTC, at market
    assert all(f.insurance_fund_delta_quote_quantums == 0 for f in fills)  # no fee to a fund
    assert ex.risk(ERIN).is_liquidatable()  # sold at $98,000: still under, but cooling down
    events = ex.apply(oracle(20_000, BTC_USD=usd_btc(98_900)))
    assert of(events, LiquidationStalled)[0].reason == "partial liquidation cooldown"
    events = ex.apply(oracle(31_000, BTC_USD=usd_btc(98_900)))  # 30 s later: the next 20% (of 1.6)
    assert sum(f.size_base_quantums for f in of(events, Liquidated)) == -btc(0.32)
    check_invariants(ex)


def test_backstop_vault_takes_positions_and_margin_below_two_thirds_of_maintenance():
    ex = erin_long_two_btc(bid_usd=98_000)
    # $98,400: NC $1,000 vs MMR $2,361.60: under 2/3 -> the vault takes it all, no trade
    events = ex.apply(oracle(1_000, BTC_USD=usd_btc(98_400)))
    [takeover] = of(events, BackstopTakeover)
    assert takeover.positions == (("BTC-USD", btc(2)),) and not of(events, Liquidated)
    assert ex.subaccount(ERIN).positions == {} and ex.subaccount(ERIN).usdc_quote_quantums == 0
    assert ex.subaccount(BACKSTOP_VAULT).positions == {"BTC-USD": btc(2)}
    assert ex.risk(BACKSTOP_VAULT).net_collateral == 1_000 * QUOTE
    check_invariants(ex)


def test_an_underwater_vault_is_auto_deleveraged():
    ex = erin_long_two_btc(bid_usd=90_000)
    # $97,000: erin's NC is -$1,800: the vault inherits a loss and deleverages against carol's short
    events = ex.apply(oracle(1_000, BTC_USD=usd_btc(97_000)))
    assert of(events, BackstopTakeover)
    offsets = of(events, Deleveraged)
    assert offsets and {o.subaccount_id for o in offsets} == {BACKSTOP_VAULT}
    assert {o.offsetting_subaccount_id for o in offsets} == {CAROL}
    assert ex.risk(BACKSTOP_VAULT).net_collateral >= 0
    check_invariants(ex)


def test_unknown_policy_names_the_field():
    with pytest.raises(ParamsError) as caught:
        Exchange(load_markets(), LiquidationsConfig(policy="nope"))
    assert caught.value.field == "liquidations_config.policy"


def test_compare_replays_one_crash_under_each_policy(tmp_path):
    """The same recorded crash: dYdX liquidates erin on the book with fees to the fund; the
    Hyperliquid-style waterfall hands her to the backstop vault instead."""
    import subprocess
    import sys

    from perpdex.lab.liquidation_compare import account_class, compare
    from perpdex.store import DurableExchange
    txs = [Deposit(0, who, usd * QUOTE) for who, usd in ((ALICE, 1_000_000), (CAROL, 1_000_000), (ERIN, 4_300))]
    txs += [oracle(0, BTC_USD=usd_btc(100_000)),
            PlaceOrder(0, CAROL, "BTC-USD", Side.SELL, btc(2), usd_btc(100_000)),
            PlaceOrder(0, ERIN, "BTC-USD", Side.BUY, btc(2), usd_btc(100_000), time_in_force=TimeInForce.IOC),
            PlaceOrder(0, ALICE, "BTC-USD", Side.BUY, btc(2), usd_btc(98_300)),
            oracle(1_000, BTC_USD=usd_btc(98_400))]
    log = tmp_path / "crash.db"
    durable = DurableExchange.create(log, snapshots=False)
    durable.apply_batch(txs)
    durable.close()
    outcomes = {o.policy: o for o in compare(log)}
    assert outcomes["dydx"].liquidated_subaccounts == 1 and outcomes["dydx"].backstop_takeovers == 0
    assert outcomes["hyperliquid"].backstop_takeovers == 1 and outcomes["hyperliquid"].liquidated_subaccounts == 0
    assert outcomes["paradex"].fund_takeovers == 1 and outcomes["paradex"].liquidated_subaccounts == 0
    assert account_class("noise-00012") == "noise" and account_class("maker") == "maker"
    cli = subprocess.run([sys.executable, "-m", "perpdex.cli.main", "liquidation", "compare", str(log), "--out",
                          str(tmp_path / "cmp")], capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    assert (tmp_path / "cmp" / "compare.json").exists()


PARADEX = LiquidationsConfig(policy="paradex")


def erin_long_two_btc_paradex() -> Exchange:
    ex = Exchange(load_markets(), PARADEX)
    for who, usd in ((ALICE, 1_000_000), (CAROL, 1_000_000), (ERIN, 4_300)):
        ex.apply(Deposit(0, who, usd * QUOTE))
    ex.apply(oracle(0, BTC_USD=usd_btc(100_000)))
    ex.apply(PlaceOrder(0, CAROL, "BTC-USD", Side.SELL, btc(2), usd_btc(100_000)))
    ex.apply(PlaceOrder(0, ERIN, "BTC-USD", Side.BUY, btc(2), usd_btc(100_000), time_in_force=TimeInForce.IOC))
    return ex


def test_paradex_fund_takes_the_smallest_equal_share_that_restores_maintenance():
    from perpdex.core.events import FundTakeover
    from perpdex.core.handlers.liquidate import FUND_ACCOUNT
    ex = erin_long_two_btc_paradex()
    events = ex.apply(oracle(1_000, BTC_USD=usd_btc(98_900)))  # NC $2,000 < MMR $2,373.60: no book needed
    [takeover] = of(events, FundTakeover)
    assert 0 < takeover.share_ppm < 1_000_000 and not of(events, Liquidated)
    taken = dict(takeover.positions)["BTC-USD"]
    assert ex.subaccount(FUND_ACCOUNT).positions == {"BTC-USD": taken}
    assert ex.subaccount(ERIN).positions == {"BTC-USD": btc(2) - taken}
    assert not ex.risk(ERIN).is_liquidatable()
    assert takeover.penalty_quote_quantums > 0  # capped at erin's excess over maintenance after the cut
    check_invariants(ex)


def test_paradex_shortfall_is_socialized_and_repaid_by_withdrawal_haircuts():
    from perpdex.core.events import SocializedLoss, WithdrawalHaircut
    from perpdex.core.tx import Withdraw
    ex = erin_long_two_btc_paradex()
    events = ex.apply(oracle(1_000, BTC_USD=usd_btc(97_000)))  # erin NC -$1,800: the fund takes it all
    [loss] = of(events, SocializedLoss)
    assert loss.amount_quote_quantums == 1_800 * QUOTE and ex.socialized_loss_quote_quantums == 1_800 * QUOTE
    assert ex.subaccount(ERIN).usdc_quote_quantums == 0 and not ex.subaccount(ERIN).positions
    check_invariants(ex)
    events = ex.apply(Withdraw(2_000, ALICE, 100_000 * QUOTE))
    [haircut] = of(events, WithdrawalHaircut)
    assert 0 < haircut.haircut_quote_quantums <= 1_800 * QUOTE
    assert ex.total_withdrawn[0] == 100_000 * QUOTE - haircut.haircut_quote_quantums
    assert ex.socialized_loss_quote_quantums == 1_800 * QUOTE - haircut.haircut_quote_quantums
    check_invariants(ex)


def test_auto_deleveraging_ranks_by_unrealized_pnl_times_leverage():
    """Hyperliquid docs ("Auto-deleveraging"): the most profitable, most leveraged opposite positions go first.
    At $97,000: dave (short 1 BTC from $100,000 on $20k) scores 3,000 x 97,000 / 23,000; carol (the same short
    on $1M) 3,000 x 97,000 / 1,003,000; frank (short from $95,000) has a loss. Dave is offset first, though
    carol's id comes first (the dYdX policy's fixed walk would take carol)."""
    from tests.fixtures import DAVE

    frank = SubaccountId("frank")
    ex = Exchange(load_markets(), HYPERLIQUID)
    for who, usd in ((ALICE, 1_000_000), (CAROL, 1_000_000), (DAVE, 20_000), (frank, 20_000), (ERIN, 4_300)):
        ex.apply(Deposit(0, who, usd * QUOTE))
    ex.apply(oracle(0, BTC_USD=usd_btc(100_000)))
    ex.apply(PlaceOrder(0, frank, "BTC-USD", Side.SELL, btc(0.5), usd_btc(95_000)))
    ex.apply(PlaceOrder(0, ALICE, "BTC-USD", Side.BUY, btc(0.5), usd_btc(95_000), time_in_force=TimeInForce.IOC))
    ex.apply(PlaceOrder(0, CAROL, "BTC-USD", Side.SELL, btc(1), usd_btc(100_000)))
    ex.apply(PlaceOrder(0, DAVE, "BTC-USD", Side.SELL, btc(1), usd_btc(100_000)))
    ex.apply(PlaceOrder(0, ERIN, "BTC-USD", Side.BUY, btc(2), usd_btc(100_000), time_in_force=TimeInForce.IOC))
    ex.apply(PlaceOrder(0, ALICE, "BTC-USD", Side.BUY, btc(2), usd_btc(90_000)))
    assert ex.subaccount(DAVE).cost_basis == {"BTC-USD": -100_000 * QUOTE}  # what the short sold for
    assert ex.subaccount(frank).cost_basis == {"BTC-USD": -47_500 * QUOTE}
    events = ex.apply(oracle(1_000, BTC_USD=usd_btc(97_000)))
    assert of(events, BackstopTakeover)
    offsets = of(events, Deleveraged)
    assert offsets and offsets[0].offsetting_subaccount_id == DAVE
    assert ex.risk(BACKSTOP_VAULT).net_collateral >= 0
    check_invariants(ex)
