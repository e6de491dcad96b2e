"""Golden tables for `perpdex.core.liquidation`: config, bankruptcy and fillable price, the order
price on the tick grid, insurance fund delta, per-window limits, deleveraging and Binance's example.

Every table ports a dYdX v4 test (dydxprotocol/v4-chain @84d4664, paths under `protocol/`) and keeps
its case names as ids, unless a comment says the cases are our own. Keeper state (subaccounts,
prices) becomes plain numbers: USDC balance, signed position sizes and an account `Risk`.

Units. dYdX's test BTC perpetual (testutil/constants/perpetuals.go BtcUsd_*) has atomic resolution
-8 (1 BTC = 1e8 base quantums) and price 5_000_000_000 at exponent -5 ($50,000, testutil/constants/
prices.go); its ClobPair_Btc has qce -8, step 5, subticks per tick 5 (testutil/constants/clob_pair.go).
dYdX's subticks = price x 10^(exponent - qce + AR + 6) = price x 10, so $50,000 is 50_000_000_000
subticks here, and 1 base quantum at $50,000 is worth 500 quote quantums. ETH: AR -9, price
3_000_000_000 at exponent -6 ($3,000), ClobPair_Eth qce -9, step 1000: subticks = price. These markets
fail perpdex's `MarketParams.validate` (one step at one tick is a fraction of a quote quantum) and
are built without it, as dYdX's test constants are.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cmp_to_key

import pytest

from perpdex.core.errors import InvariantViolation, ParamsError
from perpdex.core.liquidation import (
    NO_LIQUIDATIONS,
    DeleveragingCandidate,
    InvalidFillAmountError,
    InvalidPositionDeltaError,
    LiquidationError,
    LiquidationsConfig,
    MarketAlreadyLiquidatedError,
    MaxInsuranceLostError,
    MaxNotionalLiquidatedError,
    SubaccountLiquidationInfo,
    bankruptcy_price_quote_quantums,
    bankruptcy_price_subticks,
    binance_isolated_liquidation_price,
    can_deleverage,
    check_fill_against_subaccount_block_limits,
    deleveraging_offset_base_quantums,
    deleveraging_order,
    fillable_price,
    fillable_price_to_subticks,
    insurance_fund_delta,
    is_valid_insurance_fund_delta,
    liquidatable_position_size_delta,
    maybe_position_to_liquidate,
    order_liquidation_candidates,
    position_maintenance_risk,
    position_notional_liquidatable_bounds,
    quote_to_base_quantums,
    subaccount_max_insurance_lost,
    subaccount_max_notional_liquidatable,
    validate_deleveraging_delta,
)
from perpdex.core.margin import Risk, TransitionResult, check_transition
from perpdex.core.params import LiquidityTier, MarketParams
from perpdex.core.state import SubaccountId
from perpdex.core.units import MAX_SUBTICKS, QUOTE, base_to_quote_quantums
from tests.fixtures import BTC_USD_IMF_20PCT_MMF_10PCT, make_market

DOLLAR = QUOTE  # quote quantums in $1 (dYdX constants.QuoteBalance_OneDollar)
MAX_UINT64 = 2**64 - 1
SUCCESS = TransitionResult.SUCCESS


def btc(amount: str) -> int:
    """BTC to base quantums of dYdX's test BTC perpetual (AR -8): btc("0.1") = 10_000_000."""
    return int(Fraction(amount) * 10**8)


def eth(amount: str) -> int:
    """ETH to base quantums of dYdX's test ETH perpetual (AR -9): eth("0.1") = 100_000_000."""
    return int(Fraction(amount) * 10**9)


# testutil/constants/perpetuals.go LiquidityTiers[0]: 100% initial, maintenance 100% of it.
TEST_TIER_100PCT = LiquidityTier(tier_id=0, name="0", initial_margin_ppm=1_000_000,
                                 maintenance_fraction_ppm=1_000_000, impact_notional_quote_quantums=500 * DOLLAR)


def dydx_test_market(market_id: str, *, atomic_resolution: int, qce: int, step: int, subticks_per_tick: int,
                     tier: LiquidityTier) -> MarketParams:
    """A market built field by field from dYdX's test constants (not validated: see the module docstring)."""
    return replace(make_market("BTC-USD"), market_id=market_id, atomic_resolution=atomic_resolution,
                   quantum_conversion_exponent=qce, step_base_quantums=step, subticks_per_tick=subticks_per_tick,
                   min_order_base_quantums=step, liquidity_tier=tier)


# BtcUsd_20PercentInitial_10PercentMaintenance on ClobPair_Btc; EthUsd_20PercentInitial_10PercentMaintenance on ClobPair_Eth.
BTC_20_10 = dydx_test_market("BTC-USD", atomic_resolution=-8, qce=-8, step=5, subticks_per_tick=5,
                             tier=BTC_USD_IMF_20PCT_MMF_10PCT)
ETH_20_10 = dydx_test_market("ETH-USD", atomic_resolution=-9, qce=-9, step=1000, subticks_per_tick=1000,
                             tier=BTC_USD_IMF_20PCT_MMF_10PCT)
# BtcUsd_100PercentMarginRequirement / EthUsd_100PercentMarginRequirement (liquidity tier 0).
BTC_100 = replace(BTC_20_10, liquidity_tier=TEST_TIER_100PCT)
ETH_100 = replace(ETH_20_10, liquidity_tier=TEST_TIER_100PCT)
BTC3 = replace(BTC_20_10, step_base_quantums=10, subticks_per_tick=100, min_order_base_quantums=10)  # ClobPair_Btc3

BTC_50K = 50_000 * 10**6  # $50,000 in subticks (dYdX price 5_000_000_000 at exponent -5, x10)
ETH_3K = 3_000 * 10**6  # $3,000 in subticks (dYdX price 3_000_000_000 at exponent -6)
PRICES = {"BTC-USD": BTC_50K, "ETH-USD": ETH_3K}

# x/clob/types/liquidations_config_keeper.go LiquidationsConfig_Default: what dYdX keeper tests
# run with unless they set one (module default, not mainnet genesis).
DYDX_DEFAULT = LiquidationsConfig(
    max_liquidation_fee_ppm=5_000, min_position_notional_liquidated_quote_quantums=1_000,
    max_position_portion_liquidated_ppm=1_000_000, max_notional_liquidated_quote_quantums=10**14,
    max_insurance_lost_quote_quantums=10**14, bankruptcy_adjustment_ppm=1_000_000,
    spread_to_maintenance_margin_ratio_ppm=100_000)
# testutil/constants/liquidation_configs.go LiquidationsConfig_No_Limit.
NO_LIMIT = replace(DYDX_DEFAULT, min_position_notional_liquidated_quote_quantums=1,
                   max_notional_liquidated_quote_quantums=MAX_UINT64, max_insurance_lost_quote_quantums=MAX_UINT64)


def account_risk_of(usdc: int, positions: dict[str, int], markets: dict[str, MarketParams],
                    prices: dict[str, int] = PRICES) -> Risk:
    """NC / IMR / MMR of a subaccount: USDC plus each position at its oracle price."""
    net, initial, maintenance = usdc, 0, 0
    for market_id, size in positions.items():
        risk = position_maintenance_risk(size, markets[market_id], prices[market_id])
        net += risk.net_collateral
        initial += risk.initial_requirement
        maintenance += risk.maintenance_requirement
    return Risk(net, initial, maintenance)


# =============================================================================================
# LiquidationsConfig
# =============================================================================================
def test_defaults_are_dydx_mainnet_genesis() -> None:
    # protocol/testing/mainnet/genesis.json "liquidations_config" (same in sample_pregenesis.json)
    config = LiquidationsConfig()
    assert config.max_liquidation_fee_ppm == 15_000
    assert config.min_position_notional_liquidated_quote_quantums == 1_000_000_000  # $1,000
    assert config.max_position_portion_liquidated_ppm == 100_000
    assert config.max_notional_liquidated_quote_quantums == 100_000_000_000  # $100,000
    assert config.max_insurance_lost_quote_quantums == 1_000_000_000_000  # $1,000,000
    assert config.bankruptcy_adjustment_ppm == 1_000_000
    assert config.spread_to_maintenance_margin_ratio_ppm == 1_500_000
    config.validate()


# x/clob/types/genesis_test.go TestGenesisState_Validate, the LiquidationsConfig cases (validation
# lives in x/clob/types/liquidations_config.go; there is no liquidations_config_test.go). Unset
# parts are constants.PositionBlockLimits_Default / SubaccountBlockLimits_Default / FillablePriceConfig_Default.
_GENESIS_BASE = LiquidationsConfig(
    max_liquidation_fee_ppm=10_000, min_position_notional_liquidated_quote_quantums=1_000,
    max_position_portion_liquidated_ppm=1_000_000, max_notional_liquidated_quote_quantums=10**14,
    max_insurance_lost_quote_quantums=10**14, bankruptcy_adjustment_ppm=1_000_000,
    spread_to_maintenance_margin_ratio_ppm=100_000)
CONFIG_CASES = [
    ("default is valid", DYDX_DEFAULT, None),
    ("valid genesis state",
     replace(_GENESIS_BASE, bankruptcy_adjustment_ppm=1_000_001, spread_to_maintenance_margin_ratio_ppm=1), None),
    ("spread to maintenance margin ratio of 0 is invalid",
     replace(_GENESIS_BASE, spread_to_maintenance_margin_ratio_ppm=0), "spread_to_maintenance_margin_ratio_ppm"),
    ("spread to maintenance margin ratio of greater than one million is valid",
     replace(_GENESIS_BASE, spread_to_maintenance_margin_ratio_ppm=1_000_001), None),
    ("bankruptcy adjustment ppm of 0 is invalid",
     replace(_GENESIS_BASE, bankruptcy_adjustment_ppm=0, spread_to_maintenance_margin_ratio_ppm=1_000_000),
     "bankruptcy_adjustment_ppm"),
    ("bankruptcy adjustment ppm of less than one million is invalid",
     replace(_GENESIS_BASE, bankruptcy_adjustment_ppm=999_999, spread_to_maintenance_margin_ratio_ppm=1_000_000),
     "bankruptcy_adjustment_ppm"),
    ("max liquidation fee ppm of zero is invalid", replace(_GENESIS_BASE, max_liquidation_fee_ppm=0),
     "max_liquidation_fee_ppm"),
    ("max liquidation fee ppm of greater than one million is invalid",
     replace(_GENESIS_BASE, max_liquidation_fee_ppm=1_000_001), "max_liquidation_fee_ppm"),
    ("max position portion liquidated ppm of 0 is invalid",
     replace(_GENESIS_BASE, max_liquidation_fee_ppm=1_000_000, max_position_portion_liquidated_ppm=0),
     "max_position_portion_liquidated_ppm"),
    ("max position portion liquidated ppm of greater than one million is invalid",
     replace(_GENESIS_BASE, max_liquidation_fee_ppm=1_000_000, max_position_portion_liquidated_ppm=1_000_001),
     "max_position_portion_liquidated_ppm"),
    ("max notional liquidated of 0 is invalid",
     replace(_GENESIS_BASE, max_liquidation_fee_ppm=1_000_000, max_notional_liquidated_quote_quantums=0),
     "max_notional_liquidated_quote_quantums"),
    ("max quantums insurance lost of 0 is invalid",
     replace(_GENESIS_BASE, max_liquidation_fee_ppm=1_000_000, max_insurance_lost_quote_quantums=0),
     "max_insurance_lost_quote_quantums"),
    # our own: dYdX's fields are unsigned, so a negative minimum notional cannot exist there
    ("our own: negative min position notional is invalid",
     replace(_GENESIS_BASE, min_position_notional_liquidated_quote_quantums=-1),
     "min_position_notional_liquidated_quote_quantums"),
]


@pytest.mark.parametrize(("config", "bad_field"), [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES])
def test_liquidations_config_validate(config: LiquidationsConfig, bad_field: str | None) -> None:
    if bad_field is None:
        config.validate()
        return
    with pytest.raises(ParamsError) as raised:
        config.validate()
    assert raised.value.field == f"liquidations_config.{bad_field}"
    assert raised.value.value == getattr(config, bad_field)


# =============================================================================================
# Liquidatable? (margin.Risk.is_liquidatable, reused)
# =============================================================================================
# x/clob/keeper/liquidations_test.go TestIsLiquidatable (BTC 20%/10%, 0.1 BTC = $5,000 notional)
IS_LIQUIDATABLE_CASES = [
    ("Subaccount with no open positions but positive net collateral is not liquidatable", 1 * DOLLAR, 0, False),
    ("Subaccount with no open positions but negative net collateral is not liquidatable", -1 * DOLLAR, 0, False),
    ("Subaccount at initial margin requirements is not liquidatable", -4_000 * DOLLAR, btc("0.1"), False),
    ("Subaccount below initial but at maintenance margin requirements is not liquidatable",
     -4_500 * DOLLAR, btc("0.1"), False),
    ("Subaccount below maintenance margin requirements is liquidatable", -4_501 * DOLLAR, btc("0.1"), True),
]


@pytest.mark.parametrize(("usdc", "size", "expected"), [c[1:] for c in IS_LIQUIDATABLE_CASES],
                         ids=[c[0] for c in IS_LIQUIDATABLE_CASES])
def test_is_liquidatable(usdc: int, size: int, expected: bool) -> None:
    positions = {"BTC-USD": size} if size else {}
    assert account_risk_of(usdc, positions, {"BTC-USD": BTC_20_10}).is_liquidatable() is expected


# =============================================================================================
# Bankruptcy price
# =============================================================================================
MARKETS_20_10 = {"BTC-USD": BTC_20_10, "ETH-USD": ETH_20_10}

# x/clob/keeper/liquidations_test.go TestGetBankruptcyPriceInQuoteQuantums.
# (id, market, delta, usdc, positions, expected quote quantums)
BANKRUPTCY_CASES = [
    (("Can calculate bankruptcy price in quote quantums for a subaccount that is fully closing one long position "
     "that is slightly below maintenance margin requirements"),
     "BTC-USD", -btc("0.1"), -4_501 * DOLLAR, {"BTC-USD": btc("0.1")}, 4_501 * DOLLAR),  # sell 0.1 BTC for >= $4,501
    (("Can calculate bankruptcy price in quote quantums for a subaccount that is fully closing one short position "
     "that is slightly below maintenance margin requirements"),
     "BTC-USD", btc("0.1"), 5_499 * DOLLAR, {"BTC-USD": -btc("0.1")}, -5_499 * DOLLAR),  # buy for <= $5,499
    (("Can calculate bankruptcy price in quote quantums for a subaccount that is fully closing one long position "
     "that is at the bankruptcy price"),
     "BTC-USD", -btc("0.1"), -5_000 * DOLLAR, {"BTC-USD": btc("0.1")}, 5_000 * DOLLAR),
    (("Can calculate bankruptcy price in quote quantums for a subaccount that is partially closing one long position "
     "that is at the bankruptcy price"),
     "BTC-USD", -btc("0.05"), -5_000 * DOLLAR, {"BTC-USD": btc("0.1")}, 2_500 * DOLLAR),
    (("Can calculate bankruptcy price in quote quantums for a subaccount that is partially closing one short position "
     "that is at the bankruptcy price"),
     "BTC-USD", btc("0.05"), 5_000 * DOLLAR, {"BTC-USD": -btc("0.1")}, -2_500 * DOLLAR),
    (("Can calculate bankruptcy price in quote quantums for a subaccount that is fully closing one short position "
     "that is at the bankruptcy price"),
     "BTC-USD", btc("0.1"), 5_000 * DOLLAR, {"BTC-USD": -btc("0.1")}, -5_000 * DOLLAR),
    (("Can calculate bankruptcy price in quote quantums for a subaccount that is fully closing one long position "
     "that is below the bankruptcy price"),
     "BTC-USD", -btc("0.1"), -5_100 * DOLLAR, {"BTC-USD": btc("0.1")}, 5_100 * DOLLAR),
    (("Can calculate bankruptcy price in quote quantums for a subaccount that is fully closing one short position "
     "that is below the bankruptcy price"),
     "BTC-USD", btc("0.1"), 4_900 * DOLLAR, {"BTC-USD": -btc("0.1")}, -4_900 * DOLLAR),
    # 0.004 BTC ($200, MMR $20) + 0.1 ETH ($300, MMR $30), USDC -$490: TNC $10, TMMR $50;
    # 300 - 10 x 30 / 50 = $294
    (("Can calculate bankruptcy price in quote quantums for a subaccount that is fully closing one long position "
     "and has multiple long positions"),
     "ETH-USD", -eth("0.1"), -490 * DOLLAR, {"BTC-USD": btc("0.004"), "ETH-USD": eth("0.1")}, 294 * DOLLAR),
    (("Can calculate bankruptcy price in quote quantums for a subaccount that is fully closing one short position "
     "and has multiple short positions"),
     "ETH-USD", eth("0.1"), 510 * DOLLAR, {"BTC-USD": -btc("0.004"), "ETH-USD": -eth("0.1")}, -306 * DOLLAR),
    (("Can calculate bankruptcy price in quote quantums for a subaccount that is fully closing one short position "
     "and has a long and short position"),
     "ETH-USD", eth("0.1"), 110 * DOLLAR, {"BTC-USD": btc("0.004"), "ETH-USD": -eth("0.1")}, -306 * DOLLAR),
    # 2,775.11 quote quantums rounded up to 2,776 ($0.002776 for 0.00021347 BTC)
    (("Rounds up bankruptcy price in quote quantums for a subaccount that is partially closing one long position "
     "that is slightly below maintenance margin requirements"),
     "BTC-USD", -21_347, -13 * DOLLAR, {"BTC-USD": btc("1")}, 2_776),
    # -2,775.11 rounded up (toward +inf) to -2,775
    (("Rounds up bankruptcy price in quote quantums for a subaccount that is partially closing one short position "
     "that is below the bankruptcy price"),
     "BTC-USD", 21_347, 13 * DOLLAR, {"BTC-USD": -btc("1")}, -2_775),
    # -$1: the long could be sold for nothing and still leave the account solvent
    (("Account with a long position that cannot be liquidated at a loss has a negative bankruptcy price in quote "
     "quantums"),
     "BTC-USD", -btc("1"), 1 * DOLLAR, {"BTC-USD": btc("1")}, -1 * DOLLAR),
]


@pytest.mark.parametrize(("market_id", "delta", "usdc", "positions", "expected"), [c[1:] for c in BANKRUPTCY_CASES],
                         ids=[c[0] for c in BANKRUPTCY_CASES])
def test_bankruptcy_price_quote_quantums(market_id: str, delta: int, usdc: int, positions: dict[str, int],
                                         expected: int) -> None:
    risk = account_risk_of(usdc, positions, MARKETS_20_10)
    quote = bankruptcy_price_quote_quantums(positions[market_id], delta, params=MARKETS_20_10[market_id],
                                            oracle_price_subticks=PRICES[market_id], account_risk=risk)
    assert quote == expected
    # dYdX then checks CanUpdateSubaccounts(USDC += quote, position += delta) succeeds.
    after = account_risk_of(usdc + quote, {**positions, market_id: positions[market_id] + delta}, MARKETS_20_10)
    assert check_transition(risk, after) is SUCCESS


BANKRUPTCY_ERROR_CASES = [
    ("Returns error when deltaQuantums is zero", 0, btc("1")),
    ("Returns error when subaccount does not have an open position for perpetual id", -btc("0.1"), 0),
    ("Returns error when delta quantums and perpetual position have the same sign", btc("0.1"), btc("1")),
    ("Returns error when abs delta quantums is greater than position size", -100_000_001, btc("1")),
]


@pytest.mark.parametrize(("delta", "position"), [c[1:] for c in BANKRUPTCY_ERROR_CASES],
                         ids=[c[0] for c in BANKRUPTCY_ERROR_CASES])
def test_bankruptcy_price_rejects_invalid_delta(delta: int, position: int) -> None:
    # same four cases in TestGetBankruptcyPriceInQuoteQuantums and TestGetFillablePrice
    risk = account_risk_of(-4_501 * DOLLAR, {"BTC-USD": position} if position else {}, MARKETS_20_10)
    with pytest.raises(InvalidPositionDeltaError):
        bankruptcy_price_quote_quantums(position, delta, params=BTC_20_10, oracle_price_subticks=BTC_50K,
                                        account_risk=risk)
    with pytest.raises(InvalidPositionDeltaError):
        fillable_price(position, delta, params=BTC_20_10, oracle_price_subticks=BTC_50K, account_risk=risk,
                       config=DYDX_DEFAULT)


def test_bankruptcy_price_needs_a_maintenance_requirement() -> None:
    # our own: dYdX divides by TMMR (and would panic on 0); a zero-margin market cannot be liquidated
    no_margin = replace(BTC_20_10, liquidity_tier=replace(TEST_TIER_100PCT, initial_margin_ppm=0))
    with pytest.raises(LiquidationError):
        bankruptcy_price_quote_quantums(btc("1"), -btc("1"), params=no_margin, oracle_price_subticks=BTC_50K,
                                        account_risk=Risk(-DOLLAR, 0, 0))


# our own: the bankruptcy amount as a price in subticks, for events (dYdX BTC test market, qce -8)
BANKRUPTCY_SUBTICKS_CASES = [
    ("closing 0.1 BTC long for >= $4,501 is a sell at >= $45,010", 4_501 * DOLLAR, -btc("0.1"), 45_010 * 10**6),
    ("closing 0.1 BTC short for <= $5,499 is a buy at <= $54,990", -5_499 * DOLLAR, btc("0.1"), 54_990 * 10**6),
    # 2,776 quote for 21,347 base = 0.13004... quote per base = 13,004,169.20 subticks: a sell rounds up
    ("a sell's bankruptcy price rounds up", 2_776, -21_347, 13_004_170),
    ("a buy's bankruptcy price rounds down", -2_775, 21_347, 12_999_484),
    ("an account that can close at any price has a negative bankruptcy price", -1 * DOLLAR, -btc("1"), -1 * 10**6),
]


@pytest.mark.parametrize(("quote", "delta", "expected"), [c[1:] for c in BANKRUPTCY_SUBTICKS_CASES],
                         ids=[c[0] for c in BANKRUPTCY_SUBTICKS_CASES])
def test_bankruptcy_price_subticks(quote: int, delta: int, expected: int) -> None:
    assert bankruptcy_price_subticks(quote, delta, BTC_20_10.quantum_conversion_exponent) == expected


# =============================================================================================
# Fillable price
# =============================================================================================
# x/clob/keeper/liquidations_test.go TestGetFillablePrice; config LiquidationsConfig_Default unless set.
# Result in quote quantums per base quantum: 49_999/100 at AR -8 is $49,999 per BTC.
FILLABLE_CASES = [
    # TNC $499, TMMR $500: ABR 1/500; spread 10% x $500 = $50; ($5,000 - $0.1) / 0.1 BTC = $49,999
    (("Can calculate fillable price for a subaccount with one long position that is slightly below maintenance "
     "margin requirements"),
     "BTC-USD", -btc("0.1"), -4_501 * DOLLAR, {"BTC-USD": btc("0.1")}, DYDX_DEFAULT, Fraction(49_999, 100)),
    ("Can calculate fillable price for a subaccount with one long position when bankruptcyAdjustmentPpm is 2_000_000",
     "BTC-USD", -btc("0.1"), -4_501 * DOLLAR, {"BTC-USD": btc("0.1")},
     replace(NO_LIMIT, bankruptcy_adjustment_ppm=2_000_000), Fraction(49_998, 100)),
    (("Can calculate fillable price for a subaccount with one long position when spreadToMaintenanceMarginRatioPpm "
     "is 200_000"),
     "BTC-USD", -btc("0.1"), -4_501 * DOLLAR, {"BTC-USD": btc("0.1")},
     replace(NO_LIMIT, spread_to_maintenance_margin_ratio_ppm=200_000), Fraction(49_998, 100)),
    (("Can calculate fillable price for a subaccount with one short position that is slightly below maintenance "
     "margin requirements"),
     "BTC-USD", btc("0.1"), 5_499 * DOLLAR, {"BTC-USD": -btc("0.1")}, DYDX_DEFAULT, Fraction(50_001, 100)),
    (("Can calculate fillable price for a subaccount with one short position when bankruptcyAdjustmentPpm is "
     "2_000_000"),
     "BTC-USD", btc("0.1"), 5_499 * DOLLAR, {"BTC-USD": -btc("0.1")},
     replace(NO_LIMIT, bankruptcy_adjustment_ppm=2_000_000), Fraction(50_002, 100)),
    (("Can calculate fillable price for a subaccount with one short position when SpreadToMaintenanceMarginRatioPpm "
     "is 200_000"),
     "BTC-USD", btc("0.1"), 5_499 * DOLLAR, {"BTC-USD": -btc("0.1")},
     replace(NO_LIMIT, spread_to_maintenance_margin_ratio_ppm=200_000), Fraction(50_002, 100)),
    # TNC 0: ABR 1, the full $50 spread: $4,950 for 0.1 BTC = $49,500
    ("Can calculate fillable price for a subaccount with one long position at the bankruptcy price",
     "BTC-USD", -btc("0.1"), -5_000 * DOLLAR, {"BTC-USD": btc("0.1")}, DYDX_DEFAULT, Fraction(495)),
    (("Can calculate fillable price for a subaccount with one long position at the bankruptcy price where we are "
     "liquidating half of the position"),
     "BTC-USD", -btc("0.05"), -5_000 * DOLLAR, {"BTC-USD": btc("0.1")}, DYDX_DEFAULT, Fraction(495)),
    ("Can calculate fillable price for a subaccount with one short position at the bankruptcy price",
     "BTC-USD", btc("0.1"), 5_000 * DOLLAR, {"BTC-USD": -btc("0.1")}, DYDX_DEFAULT, Fraction(505)),
    ("Can calculate fillable price for a subaccount with one long position below the bankruptcy price",
     "BTC-USD", -btc("0.1"), -5_500 * DOLLAR, {"BTC-USD": btc("0.1")}, DYDX_DEFAULT, Fraction(495)),
    ("Can calculate fillable price for a subaccount with one short position below the bankruptcy price",
     "BTC-USD", btc("0.1"), 4_500 * DOLLAR, {"BTC-USD": -btc("0.1")}, DYDX_DEFAULT, Fraction(505)),
    # TNC $10 / TMMR $50: ABR 0.8; ETH spread 10% x $30 = $3: ($300 - $2.4) / 0.1 ETH = $2,976
    ("Can calculate fillable price for a subaccount with multiple long positions",
     "ETH-USD", -eth("0.1"), -490 * DOLLAR, {"BTC-USD": btc("0.004"), "ETH-USD": eth("0.1")}, DYDX_DEFAULT,
     Fraction(372, 125)),
    ("Can calculate fillable price when bankruptcyAdjustmentPpm is max uint32",
     "BTC-USD", -btc("0.1"), -4_501 * DOLLAR, {"BTC-USD": btc("0.1")},
     replace(NO_LIMIT, bankruptcy_adjustment_ppm=2**32 - 1), Fraction(495)),
    ("Can calculate fillable price when SpreadTomaintenanceMarginRatioPpm is 1",
     "BTC-USD", -btc("0.1"), -4_501 * DOLLAR, {"BTC-USD": btc("0.1")},
     replace(NO_LIMIT, spread_to_maintenance_margin_ratio_ppm=1), Fraction(4_999_999_999, 10_000_000)),
    ("Can calculate fillable price when SpreadTomaintenanceMarginRatioPpm is one million",
     "BTC-USD", -btc("0.1"), -4_501 * DOLLAR, {"BTC-USD": btc("0.1")},
     replace(NO_LIMIT, spread_to_maintenance_margin_ratio_ppm=1_000_000), Fraction(49_990, 100)),
]


@pytest.mark.parametrize(("market_id", "delta", "usdc", "positions", "config", "expected"),
                         [c[1:] for c in FILLABLE_CASES], ids=[c[0] for c in FILLABLE_CASES])
def test_fillable_price(market_id: str, delta: int, usdc: int, positions: dict[str, int],
                        config: LiquidationsConfig, expected: Fraction) -> None:
    risk = account_risk_of(usdc, positions, MARKETS_20_10)
    price = fillable_price(positions[market_id], delta, params=MARKETS_20_10[market_id],
                           oracle_price_subticks=PRICES[market_id], account_risk=risk, config=config)
    assert price == expected


# =============================================================================================
# Fillable price to subticks
# =============================================================================================
# x/clob/keeper/liquidations_test.go TestConvertFillablePriceToSubticks.
# (id, fillable price, liquidating a long?, qce, subticks per tick, max subticks, expected)
SUBTICKS_CASES = [
    ("Converts fillable price to subticks for liquidating a BTC long position",
     Fraction(5_000_000_000), True, -8, 5, MAX_UINT64, 500_000_000_000_000_000),
    ("Converts fillable price to subticks for liquidating a BTC short position",
     Fraction(5_000_000_000), False, -8, 5, MAX_UINT64, 500_000_000_000_000_000),
    # 7 x 10^-1 = 0.7 -> up to 1 -> up to the tick 100
    ("Converts fillable price to subticks for liquidating a long position and rounds up",
     Fraction(7), True, 1, 100, MAX_UINT64, 100),
    ("Converts fillable price to subticks for liquidating a short position and rounds down",
     Fraction(197), True, 1, 100, MAX_UINT64, 100),
    (("Converts fillable price to subticks for liquidating a short position and rounds down, but the result is lower "
     "bounded at SubticksPerTick"),
     Fraction(7), True, 1, 100, MAX_UINT64, 100),
    (("Converts zero fillable price to subticks for liquidating a short position and rounds down, but the result is "
     "lower bounded at SubticksPerTick"),
     Fraction(0), True, 1, 100, MAX_UINT64, 100),
    (("Converts fillable price to subticks for liquidating a long position and rounds up, but the result is upper "
     "bounded at the max Uint64 that is most aligned with SubticksPerTick"),
     Fraction(10**22), True, 1, 100, MAX_UINT64, 18_446_744_073_709_551_600),
    # our own: perpdex's order bound is units.MAX_SUBTICKS = 2**63 - 1
    ("our own: upper bound is the largest tick multiple within MAX_SUBTICKS",
     Fraction(10**22), True, 1, 100, MAX_SUBTICKS, 9_223_372_036_854_775_800),
    # our own, mainnet BTC-USD (AR -10, qce -9, tick $1 = 100_000 subticks): $49,999.5 per BTC
    # = 49_999_500_000 / 1e10 quote per base = 4_999_950_000 subticks; a sell goes up to $50,000
    ("our own: a sell rounds up to the next $1 tick on mainnet BTC-USD",
     Fraction(49_999_500_000, 10**10), True, -9, 100_000, MAX_SUBTICKS, 5_000_000_000),
    ("our own: a buy rounds down to the $1 tick below on mainnet BTC-USD",
     Fraction(49_999_500_000, 10**10), False, -9, 100_000, MAX_SUBTICKS, 4_999_900_000),
    ("our own: a short's buy price below one tick is raised to one tick",
     Fraction(1, 10**10), False, -9, 100_000, MAX_SUBTICKS, 100_000),
]


@pytest.mark.parametrize(("price", "is_long", "qce", "tick", "max_subticks", "expected"),
                         [c[1:] for c in SUBTICKS_CASES], ids=[c[0] for c in SUBTICKS_CASES])
def test_fillable_price_to_subticks(price: Fraction, is_long: bool, qce: int, tick: int, max_subticks: int,
                                    expected: int) -> None:
    assert fillable_price_to_subticks(price, is_liquidating_long=is_long, quantum_conversion_exponent=qce,
                                      subticks_per_tick=tick, max_subticks=max_subticks) == expected


def test_fillable_price_to_subticks_panics_on_negative_fillable_price() -> None:
    # TestConvertFillablePriceToSubticks_PanicsOnNegativeFillablePrice
    with pytest.raises(InvariantViolation):
        fillable_price_to_subticks(Fraction(-1), is_liquidating_long=False, quantum_conversion_exponent=-8,
                                   subticks_per_tick=5)


# =============================================================================================
# Insurance fund delta
# =============================================================================================
# x/clob/keeper/liquidations_test.go TestGetLiquidationInsuranceFundDelta; BTC 20%/10% on
# ClobPair_Btc, fill 0.1 BTC, fee cap from LiquidationsConfig_Default (0.5%) unless set.
# (id, is_buy, fill price subticks, usdc, position, max fee ppm, expected)
INSURANCE_CASES = [
    # bankruptcy $5,100; fill $5,610; 0.5% x $5,610 = $28.05 < $510
    ("Fully closing one long position above the bankruptcy price and pays max liquidation fee",
     False, 56_100 * 10**6, -5_100 * DOLLAR, btc("0.1"), 5_000, 28_050_000),
    (("Fully closing one long position above the bankruptcy price pays max liquidation fee when MaxLiquidationFeePpm "
     "is 25_000"),
     False, 56_100 * 10**6, -5_100 * DOLLAR, btc("0.1"), 25_000, 140_250_000),
    (("Fully closing one long position above the bankruptcy price pays less than max liquidation fee when "
     "MaxLiquidationFeePpm is one million"),
     False, 56_100 * 10**6, -5_100 * DOLLAR, btc("0.1"), 1_000_000, 510 * DOLLAR),
    # bankruptcy -$4,900; fill -$4,410; 0.5% x $4,410 = $22.05
    ("Fully closing one short position above the bankruptcy price and pays max liquidation fee",
     True, 44_100 * 10**6, 4_900 * DOLLAR, -btc("0.1"), 5_000, 22_050_000),
    (("Fully closing one short position above the bankruptcy price and pays max liquidation fee when "
     "MaxLiquidationFeePpm is 25_000"),
     True, 44_100 * 10**6, 4_900 * DOLLAR, -btc("0.1"), 25_000, 110_250_000),
    (("Fully closing one short position above the bankruptcy price and pays less than max liquidation fee when "
     "MaxLiquidationFeePpm is one million"),
     True, 44_100 * 10**6, 4_900 * DOLLAR, -btc("0.1"), 1_000_000, 490 * DOLLAR),
    # fill $5,105.10: surplus $5.10 < 0.5% cap $25.5255
    ("Fully closing one long position above the bankruptcy price and pays less than max liquidation fee",
     False, 51_051 * 10**6, -5_100 * DOLLAR, btc("0.1"), 5_000, 5_100_000),
    ("Fully closing one short position above the bankruptcy price and pays less than max liquidation fee",
     True, 48_951 * 10**6, 4_900 * DOLLAR, -btc("0.1"), 5_000, 4_900_000),
    ("Fully closing one long position at the bankruptcy price and the delta is 0",
     False, 51_000 * 10**6, -5_100 * DOLLAR, btc("0.1"), 5_000, 0),
    ("Fully closing one short position above the bankruptcy price and the delta is 0",
     True, 49_000 * 10**6, 4_900 * DOLLAR, -btc("0.1"), 5_000, 0),
    # fill $5,049 vs bankruptcy $5,100: the fund pays $51
    ("Fully closing one long position below the bankruptcy price and the insurance fund must cover the loss",
     False, 50_490 * 10**6, -5_100 * DOLLAR, btc("0.1"), 5_000, -51 * DOLLAR),
    ("If fully closing one short position below the bankruptcy price the insurance fund must cover the loss",
     True, 49_490 * 10**6, 4_900 * DOLLAR, -btc("0.1"), 5_000, -49 * DOLLAR),
    # 0.1 BTC at 1 subtick is 1/10 quote quantum, floored to 0: the cap (0.5% of 0) is 0
    ("Succeeds when delta quote quantums is zero", True, 1, 4_900 * DOLLAR, -btc("0.1"), 5_000, 0),
]


@pytest.mark.parametrize(("is_buy", "fill_price", "usdc", "position", "fee_ppm", "expected"),
                         [c[1:] for c in INSURANCE_CASES], ids=[c[0] for c in INSURANCE_CASES])
def test_insurance_fund_delta(is_buy: bool, fill_price: int, usdc: int, position: int, fee_ppm: int,
                              expected: int) -> None:
    fill = btc("0.1")
    delta = fill if is_buy else -fill
    risk = account_risk_of(usdc, {"BTC-USD": position}, MARKETS_20_10)
    bankruptcy = bankruptcy_price_quote_quantums(position, delta, params=BTC_20_10, oracle_price_subticks=BTC_50K,
                                                 account_risk=risk)
    result = insurance_fund_delta(is_buy=is_buy, fill_base_quantums=fill, fill_price_subticks=fill_price,
                                  quantum_conversion_exponent=BTC_20_10.quantum_conversion_exponent,
                                  bankruptcy_quote_quantums=bankruptcy, max_liquidation_fee_ppm=fee_ppm)
    assert result == expected
    # what the liquidated account keeps never falls below its bankruptcy amount (the fund covers the gap)
    fill_quote = base_to_quote_quantums(fill, fill_price, BTC_20_10.quantum_conversion_exponent)
    assert (-fill_quote if is_buy else fill_quote) - result >= bankruptcy


def test_insurance_fund_delta_rejects_zero_fill() -> None:
    # TestGetLiquidationInsuranceFundDelta "Returns error when delta quantums is zero"
    with pytest.raises(InvalidFillAmountError):
        insurance_fund_delta(is_buy=True, fill_base_quantums=0, fill_price_subticks=BTC_50K,
                             quantum_conversion_exponent=-8, bankruptcy_quote_quantums=-4_900 * DOLLAR,
                             max_liquidation_fee_ppm=5_000)


def test_insurance_fee_cap_rounds_down() -> None:
    # our own: 2,000,001 base quantums (0.02000001 BTC) sold at $50,000 = 1,000,000,500 quote quantums;
    # the 0.5% cap is 5,000,002.5, rounded down (for the liquidated account) to 5,000,002
    delta = insurance_fund_delta(is_buy=False, fill_base_quantums=2_000_001, fill_price_subticks=BTC_50K,
                                 quantum_conversion_exponent=-8, bankruptcy_quote_quantums=0,
                                 max_liquidation_fee_ppm=5_000)
    assert delta == 5_000_002


# x/clob/keeper/deleveraging_test.go TestIsValidInsuranceFundDelta (balance, delta, valid?)
FUND_DELTA_CASES = [
    ("valid: zero insurance fund delta", 9_998 * DOLLAR, 0, True),
    ("valid: zero insurance fund delta and zero balance", 0, 0, True),
    ("valid: positive insurance fund delta", 9_998 * DOLLAR, 1 * DOLLAR, True),
    ("valid: positive insurance fund delta and zero balance", 0, 1 * DOLLAR, True),
    ("valid: negative insurance fund delta - insurance fund is still positive after delta", 9_998 * DOLLAR,
     -1 * DOLLAR, True),
    ("valid: negative insurance fund delta - insurance fund has zero balance after delta", 10_000 * DOLLAR,
     -10_000 * DOLLAR, True),
    ("invalid: negative insurance fund delta - insurance fund is negative after delta", 10_000 * DOLLAR,
     -10_000 * DOLLAR - 1, False),
    ("invalid: negative insurance fund delta - insurance fund was empty and is negative after delta", 0, -1, False),
]


@pytest.mark.parametrize(("balance", "delta", "expected"), [c[1:] for c in FUND_DELTA_CASES],
                         ids=[c[0] for c in FUND_DELTA_CASES])
def test_is_valid_insurance_fund_delta(balance: int, delta: int, expected: bool) -> None:
    assert is_valid_insurance_fund_delta(balance, delta) is expected


# =============================================================================================
# Per-window limits and the size to liquidate
# =============================================================================================
def _position_block(min_notional: int, portion_ppm: int, base: LiquidationsConfig = NO_LIMIT) -> LiquidationsConfig:
    return replace(base, min_position_notional_liquidated_quote_quantums=min_notional,
                   max_position_portion_liquidated_ppm=portion_ppm)


def _subaccount_block(max_notional: int) -> LiquidationsConfig:
    return replace(NO_LIMIT, max_notional_liquidated_quote_quantums=max_notional)


STEP3 = replace(BTC_20_10, step_base_quantums=3, subticks_per_tick=100, min_order_base_quantums=3)
MAX_UINT64_ETH_DELTA = 6_148_914_691_236_517_000  # MaxUint64 quote at $3,000 = 6,148,914,691.236517205 ETH, down to a step

# x/clob/keeper/liquidations_test.go TestGetPerpetualPositionToLiquidate (which position, and
# GetLiquidatablePositionSizeDelta). (id, positions, markets, config, expected market, expected delta)
POSITION_TO_LIQUIDATE_CASES = [
    ("Full position size is returned when subaccount has one perpetual long position",
     {"BTC-USD": btc("0.1")}, BTC_20_10, NO_LIMIT, "BTC-USD", -btc("0.1")),
    ("Full position size is returned when MinPositionNotionalLiquidated is greater than position size",
     {"BTC-USD": btc("0.1")}, BTC_20_10, _position_block(10_000 * DOLLAR, 1_000_000), "BTC-USD", -btc("0.1")),
    ("Half position size is returned when MaxPositionPortionLiquidatedPpm is 500,000",
     {"BTC-USD": btc("0.1")}, BTC_20_10, _position_block(1_000, 500_000), "BTC-USD", -btc("0.05")),
    ("full position is returned when position size is smaller than StepBaseQuantums",
     {"BTC-USD": 5}, BTC3, _position_block(1, 100_000), "BTC-USD", -5),
    # 140 x 10% = 14 base quantums, down to the step 5: 10
    ("returned position size is rounded down to the nearest clob.stepBaseQuantums",
     {"BTC-USD": 140}, BTC_20_10, _position_block(1, 100_000), "BTC-USD", -10),
    # 20 x 10% = 2, raised to one step
    ("returned position size is at least clob.stepBaseQuantums",
     {"BTC-USD": 20}, BTC_20_10, _position_block(1, 100_000), "BTC-USD", -5),
    ("Full position is returned when position smaller than subaccount limit",
     {"BTC-USD": btc("0.1")}, BTC_20_10, _subaccount_block(10_000 * DOLLAR), "BTC-USD", -btc("0.1")),
    ("Max subaccount limit is returned when position larger than subaccount limit",
     {"BTC-USD": btc("0.1")}, BTC_20_10, _subaccount_block(2_500 * DOLLAR), "BTC-USD", -btc("0.05")),
    ("position size is capped by subaccount block limit when subaccount limit is lower than position block limit",
     {"BTC-USD": btc("0.1")}, BTC_20_10,
     replace(_position_block(1_000, 500_000), max_notional_liquidated_quote_quantums=2_000 * DOLLAR),
     "BTC-USD", -btc("0.04")),
    ("position size is capped by position block limit when position limit is lower than subaccount block limit",
     {"BTC-USD": btc("0.1")}, BTC_20_10,
     replace(_position_block(1_000, 400_000), max_notional_liquidated_quote_quantums=2_500 * DOLLAR),
     "BTC-USD", -btc("0.04")),
    # 21 base = $0.0105; half = 5,250 quote = 10.5 base, truncated to 10, down to the step 3: 9
    ("Result is rounded to nearest step size", {"BTC-USD": 21}, STEP3, _position_block(1_000, 500_000), "BTC-USD", -9),
    ("Full position size is returned when subaccount has one perpetual short position",
     {"BTC-USD": -btc("1")}, BTC_20_10, NO_LIMIT, "BTC-USD", btc("1")),
    ("Full position size (short) is returned when MinPositionNotionalLiquidated is greater than position size",
     {"BTC-USD": -btc("0.1")}, BTC_20_10, _position_block(10_000 * DOLLAR, 1_000_000), "BTC-USD", btc("0.1")),
    ("Half position size (short) is returned when MaxPositionPortionLiquidatedPpm is 500,000",
     {"BTC-USD": -btc("0.1")}, BTC_20_10, _position_block(1_000, 500_000), "BTC-USD", btc("0.05")),
    ("Full position (short) is returned when position smaller than subaccount limit",
     {"BTC-USD": -btc("0.1")}, BTC_20_10, _subaccount_block(10_000 * DOLLAR), "BTC-USD", btc("0.1")),
    ("Max subaccount limit is returned when short position larger than subaccount limit",
     {"BTC-USD": -btc("0.1")}, BTC_20_10, _subaccount_block(2_500 * DOLLAR), "BTC-USD", btc("0.05")),
    (("Full position size of max uint64 of perpetual and CLOB pair are returned when subaccount has one long "
     "perpetual position at max position size"),
     {"ETH-USD": MAX_UINT64}, ETH_20_10, NO_LIMIT, "ETH-USD", -MAX_UINT64_ETH_DELTA),
    (("Full position size of negated max uint64 of perpetual and CLOB pair are returned when subaccount has one "
     "short perpetual position at max position size"),
     {"ETH-USD": -MAX_UINT64}, ETH_20_10, NO_LIMIT, "ETH-USD", MAX_UINT64_ETH_DELTA),
]


@pytest.mark.parametrize(("positions", "params", "config", "expected_market", "expected_delta"),
                         [c[1:] for c in POSITION_TO_LIQUIDATE_CASES], ids=[c[0] for c in POSITION_TO_LIQUIDATE_CASES])
def test_position_to_liquidate_and_size(positions: dict[str, int], params: MarketParams, config: LiquidationsConfig,
                                        expected_market: str, expected_delta: int) -> None:
    market_id = maybe_position_to_liquidate(positions)
    assert market_id == expected_market
    delta = liquidatable_position_size_delta(positions[market_id], params=params,
                                             oracle_price_subticks=PRICES[market_id], config=config)
    assert delta == expected_delta


# x/clob/keeper/liquidations_test.go TestGetMaxAndMinPositionNotionalLiquidatable (BTC at $50,000).
# Its "errors are propagated" case (unknown perpetual) has no pure counterpart.
BOUNDS_CASES = [
    ("Can get min notional liquidatable", _position_block(100, 1_000_000), btc("1"), 100, 50_000 * DOLLAR),
    ("Can get max notional liquidatable", _position_block(100, 500_000), btc("1"), 100, 25_000 * DOLLAR),
    # 10,000 base quantums = 0.0001 BTC = $5: both bounds are the whole position
    ("min and max notional liquidatable can be overridden", _position_block(10 * DOLLAR, 1_000_000), 10_000,
     5 * DOLLAR, 5 * DOLLAR),
]


@pytest.mark.parametrize(("config", "size", "expected_min", "expected_max"), [c[1:] for c in BOUNDS_CASES],
                         ids=[c[0] for c in BOUNDS_CASES])
def test_position_notional_liquidatable_bounds(config: LiquidationsConfig, size: int, expected_min: int,
                                               expected_max: int) -> None:
    notional = base_to_quote_quantums(size, BTC_50K, BTC_100.quantum_conversion_exponent)
    assert position_notional_liquidatable_bounds(notional, config) == (expected_min, expected_max)


# x/clob/keeper/liquidations_test.go TestGetMaxLiquidatableNotionalAndInsuranceLost: 100 notional
# liquidated and 100 lost (a -100 insurance delta) in perpetual 1 (ETH) this block; asked for perpetual 0 (BTC).
# (id, previously liquidated market, max notional, max lost, expected notional, expected lost); a
# result of InvariantViolation is dYdX's panic, MarketAlreadyLiquidatedError its ErrSubaccountHasLiquidatedPerpetual.
WINDOW_LIMIT_CASES = [
    ("Can get max notional liquidatable and insurance lost", "ETH-USD", 150, 150, 50, 50),
    ("Same perpetual id", "BTC-USD", MAX_UINT64, MAX_UINT64, MarketAlreadyLiquidatedError,
     MarketAlreadyLiquidatedError),
    ("invalid notional liquidated", "ETH-USD", 50, 150, InvariantViolation, 50),
    ("invalid insurance lost", "ETH-USD", 150, 50, 50, InvariantViolation),
]


@pytest.mark.parametrize(("liquidated_market", "max_notional", "max_lost", "expected_notional", "expected_lost"),
                         [c[1:] for c in WINDOW_LIMIT_CASES], ids=[c[0] for c in WINDOW_LIMIT_CASES])
def test_subaccount_window_limits(liquidated_market: str, max_notional: int, max_lost: int,
                                  expected_notional: int | type, expected_lost: int | type) -> None:
    config = replace(DYDX_DEFAULT, max_notional_liquidated_quote_quantums=max_notional,
                     max_insurance_lost_quote_quantums=max_lost)
    info = NO_LIQUIDATIONS.with_market_liquidated(liquidated_market).with_fill(100, -100)
    for function, expected in ((subaccount_max_notional_liquidatable, expected_notional),
                               (subaccount_max_insurance_lost, expected_lost)):
        if isinstance(expected, type):
            with pytest.raises(expected):
                function(info, "BTC-USD", config)
        else:
            assert function(info, "BTC-USD", config) == expected


def test_subaccount_liquidation_info_accumulates() -> None:
    # our own, after x/clob/keeper/liquidations_state.go UpdateSubaccountLiquidationInfo: notional adds
    # |notional|, insurance lost adds only payouts; a second liquidation of a market is a bug
    info = NO_LIQUIDATIONS.with_fill(-300 * DOLLAR, 2 * DOLLAR).with_fill(200 * DOLLAR, -5 * DOLLAR)
    assert info == SubaccountLiquidationInfo(500 * DOLLAR, 5 * DOLLAR, frozenset())
    once = info.with_market_liquidated("BTC-USD")
    assert once.has_liquidated("BTC-USD") and not info.has_liquidated("BTC-USD")
    with pytest.raises(InvariantViolation):
        once.with_market_liquidated("BTC-USD")


def test_liquidatable_size_uses_what_is_left_of_the_window() -> None:
    # our own: $2,000 of a $2,500 window used; 0.1 BTC ($5,000) long -> $500 = 0.01 BTC left
    info = NO_LIQUIDATIONS.with_market_liquidated("ETH-USD").with_fill(2_000 * DOLLAR, 0)
    delta = liquidatable_position_size_delta(btc("0.1"), params=BTC_20_10, oracle_price_subticks=BTC_50K,
                                             config=_subaccount_block(2_500 * DOLLAR), info=info)
    assert delta == -btc("0.01")
    with pytest.raises(MarketAlreadyLiquidatedError):
        liquidatable_position_size_delta(btc("0.1"), params=BTC_20_10, oracle_price_subticks=BTC_50K,
                                         config=NO_LIMIT, info=info.with_market_liquidated("BTC-USD"))


# our own, after x/clob/keeper/liquidations.go validateLiquidationAgainstSubaccountBlockLimits:
# window $10,000 notional / $100 insurance, $9,000 and $60 already used.
FILL_LIMIT_CASES = [
    ("a fill within both limits passes", 1_000 * DOLLAR, -40 * DOLLAR, None),
    ("a fill over the notional left is rejected", 1_000 * DOLLAR + 1, 0, MaxNotionalLiquidatedError),
    ("a payout over the insurance left is rejected", 500 * DOLLAR, -40 * DOLLAR - 1, MaxInsuranceLostError),
    ("a fee paid into the fund is not limited", 500 * DOLLAR, 1_000 * DOLLAR, None),
    ("a short's negative notional counts by size", -1_000 * DOLLAR - 1, 0, MaxNotionalLiquidatedError),
]


@pytest.mark.parametrize(("notional", "fund_delta", "error"), [c[1:] for c in FILL_LIMIT_CASES],
                         ids=[c[0] for c in FILL_LIMIT_CASES])
def test_check_fill_against_subaccount_block_limits(notional: int, fund_delta: int, error: type | None) -> None:
    config = replace(NO_LIMIT, max_notional_liquidated_quote_quantums=10_000 * DOLLAR,
                     max_insurance_lost_quote_quantums=100 * DOLLAR)
    info = NO_LIQUIDATIONS.with_fill(9_000 * DOLLAR, -60 * DOLLAR)
    if error is None:
        check_fill_against_subaccount_block_limits(info, "BTC-USD", notional, fund_delta, config)
    else:
        with pytest.raises(error):
            check_fill_against_subaccount_block_limits(info, "BTC-USD", notional, fund_delta, config)


def test_quote_to_base_quantums_truncates_toward_zero() -> None:
    # lib/quantums_test.go TestQuoteToBaseQuantums "realistic values: 25.123 BTC at $29001" (AR -10,
    # price 2_900_100_000 at exponent -5 = subticks at qce -9), and its rounding cases in perpdex units
    assert quote_to_base_quantums(728_592_123_000, 2_900_100_000, -9) == 251_230_000_000
    assert quote_to_base_quantums(99, 10, 0) == 9  # "Calculation rounds down"
    assert quote_to_base_quantums(-99, 10, 0) == -9  # "Negative calculation rounds up" (toward zero)


# our own: the integer paths (no Fraction) against the exact-rational definitions they replaced
def _fraction_fillable_price(position: int, params: MarketParams, oracle: int, risk: Risk,
                             config: LiquidationsConfig) -> Fraction:
    """(PNNV - clamp(BA x (1 - TNC / TMMR), 0, 1) x SMMR x PMMR) / PS, in Fractions."""
    pmr = position_maintenance_risk(position, params, oracle)
    rating = Fraction(config.bankruptcy_adjustment_ppm, 10**6) * (
        1 - Fraction(risk.net_collateral, risk.maintenance_requirement))
    rating = min(max(rating, Fraction(0)), Fraction(1))
    spread = Fraction(pmr.maintenance_requirement * config.spread_to_maintenance_margin_ratio_ppm, 10**6)
    return (pmr.net_collateral - rating * spread) / position


def _fraction_to_subticks(price: Fraction, is_long: bool, qce: int, tick: int, max_subticks: int) -> int:
    subticks = price * Fraction(10) ** -qce
    if is_long:
        aligned = math.ceil(Fraction(math.ceil(subticks), tick)) * tick
    else:
        aligned = math.floor(subticks) // tick * tick
    return min(max(aligned, tick), max_subticks - max_subticks % tick)


@pytest.mark.parametrize("seed", range(4))
def test_integer_price_paths_match_the_fraction_definitions(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(400):
        market_id = rng.choice(["BTC-USD", "ETH-USD"])
        params = MARKETS_20_10[market_id]
        oracle = PRICES[market_id] * rng.randrange(50, 150) // 100
        position = rng.choice([1, -1]) * params.step_base_quantums * rng.randrange(1, 10**5)
        usdc = rng.randrange(-2, 2) * abs(base_to_quote_quantums(position, oracle, params.quantum_conversion_exponent))
        usdc += rng.randrange(-10**9, 10**9)
        risk = account_risk_of(usdc, {market_id: position}, MARKETS_20_10)
        config = replace(NO_LIMIT, bankruptcy_adjustment_ppm=rng.choice([10**6, 2 * 10**6, 2**32 - 1]),
                         spread_to_maintenance_margin_ratio_ppm=rng.choice([1, 100_000, 1_500_000]))
        try:
            expected = _fraction_fillable_price(position, params, oracle, risk, config)
        except ZeroDivisionError:
            continue
        if expected < 0:
            with pytest.raises(InvariantViolation):
                fillable_price(position, -position, params=params, oracle_price_subticks=oracle,
                               account_risk=risk, config=config)
            continue
        assert fillable_price(position, -position, params=params, oracle_price_subticks=oracle,
                              account_risk=risk, config=config) == expected
        qce = rng.choice([-9, -8, -3, 0, 1])
        tick = rng.choice([1, 5, 100, 100_000])
        for is_long in (True, False):
            assert fillable_price_to_subticks(expected, is_liquidating_long=is_long, quantum_conversion_exponent=qce,
                                              subticks_per_tick=tick) == _fraction_to_subticks(
                expected, is_long, qce, tick, MAX_SUBTICKS)
        quote = rng.randrange(-10**15, 10**15)
        price = rng.randrange(1, 10**12)
        exact = Fraction(quote) * Fraction(10) ** -qce / price
        assert quote_to_base_quantums(quote, price, qce) == int(exact)  # int() truncates toward zero
        delta = rng.choice([1, -1]) * rng.randrange(1, 10**9)
        by_fraction = Fraction(-quote, delta) * Fraction(10) ** -qce
        rounded = -(-by_fraction.numerator // by_fraction.denominator) if delta < 0 else (
            by_fraction.numerator // by_fraction.denominator)
        assert bankruptcy_price_subticks(quote, delta, qce) == rounded


# our own: perpdex's orders (dYdX uses a pseudo-random start, then SortLiquidationOrders)
def test_order_liquidation_candidates_riskiest_first_ties_by_id() -> None:
    a, b, c, d = (SubaccountId(name) for name in ("alice", "bob", "carol", "dave"))
    candidates = [(d, Risk(90, 0, 100)), (b, Risk(-5, 0, 100)), (c, Risk(45, 0, 50)), (a, Risk(90, 0, 100))]
    # NC/MMR: bob -0.05 < carol 0.9 = alice 0.9 = dave 0.9; carol ties on ratio but has lower MMR (less risky)
    assert order_liquidation_candidates(candidates) == [b, a, d, c]


def _by_comparison(candidates: list[tuple[SubaccountId, Risk]]) -> list[SubaccountId]:
    """The order by definition: Risk.compare_riskiness (riskier first), then the id."""
    def compare(left: tuple[SubaccountId, Risk], right: tuple[SubaccountId, Risk]) -> int:
        return right[1].compare_riskiness(left[1]) or (left[0] > right[0]) - (left[0] < right[0])
    return [sid for sid, _ in sorted(candidates, key=cmp_to_key(compare))]


@pytest.mark.parametrize("seed", range(6))
def test_order_liquidation_candidates_integer_key_matches_the_comparison(seed: int) -> None:
    # our own: the fast path sorts by floor(NC x 2**64 / MMR); ratios closer than 2**-64 share a
    # floor and must still come out in the exact order, as must equal ratios (then by MMR, id)
    rng = random.Random(seed)
    huge = 2**80  # MMRs this large put distinct ratios on one floor
    candidates = []
    for i in range(300):
        kind = rng.randrange(4)
        if kind == 0:
            risk = Risk(rng.randrange(-10**12, 10**12), 0, rng.randrange(1, 10**9))
        elif kind == 1:
            risk = Risk(huge + rng.randrange(3), 0, huge + rng.randrange(3))  # ratios within 2**-78 of 1
        elif kind == 2:
            scale = rng.randrange(1, 4)
            risk = Risk(45 * scale, 0, 50 * scale)  # one ratio, several MMRs
        else:
            risk = Risk(-rng.randrange(1, 5), 0, rng.randrange(1, 3))
        candidates.append((SubaccountId(f"s{rng.randrange(10**6):06d}", i % 3), risk))
    assert order_liquidation_candidates(candidates) == _by_comparison(candidates)
    # no requirement somewhere: the comparison itself orders them
    with_zero = [*candidates[:50], (SubaccountId("zero"), Risk(-7, 0, 0)), (SubaccountId("zero2"), Risk(3, 0, 0))]
    assert order_liquidation_candidates(with_zero) == _by_comparison(with_zero)


def test_maybe_position_to_liquidate_skips_liquidated_markets() -> None:
    positions = {"ETH-USD": eth("1"), "BTC-USD": -btc("1")}
    assert maybe_position_to_liquidate(positions) == "BTC-USD"
    info = NO_LIQUIDATIONS.with_market_liquidated("BTC-USD")
    assert maybe_position_to_liquidate(positions, info) == "ETH-USD"
    assert maybe_position_to_liquidate(positions, info.with_market_liquidated("ETH-USD")) is None


# =============================================================================================
# Deleveraging
# =============================================================================================
CARL, CARL1 = SubaccountId("carl", 0), SubaccountId("carl", 1)
DAVE, DAVE1 = SubaccountId("dave", 0), SubaccountId("dave", 1)


@dataclass
class Account:
    usdc: int
    positions: dict[str, int]


# testutil/constants/subaccounts.go
def carl_1btc_short(usdc_dollars: int) -> Account:  # Carl_Num0_1BTC_Short_{54999,50000,49999,100000}USD
    return Account(usdc_dollars * DOLLAR, {"BTC-USD": -btc("1")})


def one_btc_long(usdc_dollars: int) -> Account:  # Dave_Num0_1BTC_Long_{50000USD, 45001USD_Short, ...}
    return Account(usdc_dollars * DOLLAR, {"BTC-USD": btc("1")})


# x/clob/keeper/deleveraging_test.go TestCanDeleverageSubaccount (Carl_Num0_1BTC_Short_54999USD,
# BTC 20%/10%); the FINAL_SETTLEMENT cases have no perpdex counterpart.
CAN_DELEVERAGE_CASES = [
    ("Cannot deleverage when subaccount has positive TNC", 50_000, False),
    ("Cannot deleverage when subaccount has zero TNC", 54_999, False),
    ("Can deleverage when subaccount has negative TNC", 55_000, True),
]


@pytest.mark.parametrize(("btc_dollars", "expected"), [c[1:] for c in CAN_DELEVERAGE_CASES],
                         ids=[c[0] for c in CAN_DELEVERAGE_CASES])
def test_can_deleverage(btc_dollars: int, expected: bool) -> None:
    carl = carl_1btc_short(54_999)
    risk = account_risk_of(carl.usdc, carl.positions, MARKETS_20_10, {"BTC-USD": btc_dollars * 10**6})
    assert can_deleverage(risk) is expected


def _risk(account: Account, markets: dict[str, MarketParams], prices: dict[str, int]) -> Risk:
    return account_risk_of(account.usdc, account.positions, markets, prices)


def _moved(account: Account, market_id: str, quote: int, delta: int) -> Account:
    positions = dict(account.positions)
    size = positions.get(market_id, 0) + delta
    if size:
        positions[market_id] = size
    else:
        positions.pop(market_id, None)
    return Account(account.usdc + quote, positions)


def process_deleveraging(accounts: dict[SubaccountId, Account], deleveraged: SubaccountId,
                         offsetting: SubaccountId, market_id: str, delta: int, markets: dict[str, MarketParams],
                         prices: dict[str, int] = PRICES) -> int | None:
    """Reference for the exchange's deleverage step (x/clob/keeper/deleveraging.go ProcessDeleveraging):
    validate, price at the deleveraged account's bankruptcy amount, and apply both sides only if
    both pass the margin rule. Returns the quote amount, or None when a check fails."""
    loser, winner = accounts[deleveraged], accounts[offsetting]
    validate_deleveraging_delta(loser.positions.get(market_id, 0), winner.positions.get(market_id, 0), delta)
    quote = bankruptcy_price_quote_quantums(loser.positions[market_id], delta, params=markets[market_id],
                                            oracle_price_subticks=prices[market_id],
                                            account_risk=_risk(loser, markets, prices))
    new_loser, new_winner = _moved(loser, market_id, quote, delta), _moved(winner, market_id, -quote, -delta)
    if (check_transition(_risk(loser, markets, prices), _risk(new_loser, markets, prices)) is not SUCCESS
            or check_transition(_risk(winner, markets, prices), _risk(new_winner, markets, prices)) is not SUCCESS):
        return None  # dYdX: ErrFailedToUpdateSubaccounts ("bankruptcy prices do not overlap")
    accounts[deleveraged], accounts[offsetting] = new_loser, new_winner
    return quote


def offset_position(accounts: dict[SubaccountId, Account], deleveraged: SubaccountId, market_id: str,
                    delta_total: int, markets: dict[str, MarketParams],
                    prices: dict[str, int] = PRICES) -> tuple[list[tuple[SubaccountId, int]], int]:
    """Reference for x/clob/keeper/deleveraging.go OffsetSubaccountPerpetualPosition, with perpdex's
    deterministic order (no cost basis in these fixtures: PnL 0, so by subaccount id)."""
    candidates = [
        DeleveragingCandidate(subaccount_id, account.positions[market_id],
                              base_to_quote_quantums(account.positions[market_id], prices[market_id],
                                                     markets[market_id].quantum_conversion_exponent),
                              _risk(account, markets, prices).net_collateral, 0)
        for subaccount_id, account in accounts.items()
        if subaccount_id != deleveraged and account.positions.get(market_id)]
    fills: list[tuple[SubaccountId, int]] = []
    remaining = delta_total
    for candidate in deleveraging_order(candidates, delta_base_quantums=delta_total):
        if not remaining:
            break
        delta = deleveraging_offset_base_quantums(remaining, accounts[candidate.subaccount_id].positions[market_id])
        if delta and process_deleveraging(accounts, deleveraged, candidate.subaccount_id, market_id, delta,
                                          markets, prices) is not None:
            remaining -= delta
            fills.append((candidate.subaccount_id, abs(delta)))
    return fills, remaining


MARKETS_100 = {"BTC-USD": BTC_100, "ETH-USD": ETH_100}

# x/clob/keeper/deleveraging_test.go TestOffsetSubaccountPerpetualPosition (100% margin perpetuals).
# (id, accounts, delta, expected fills, expected remaining, expected accounts after (subset))
OFFSET_CASES = [
    # Carl's TNC is $4,999: closing 1 BTC short costs him $54,999, paid to Dave
    ("Can get one offsetting subaccount for deleveraged short",
     {CARL: carl_1btc_short(54_999), DAVE: one_btc_long(50_000)}, btc("1"), [(DAVE, btc("1"))], 0,
     {CARL: Account(0, {}), DAVE: Account((50_000 + 54_999) * DOLLAR, {})}),
    ("Can get one offsetting subaccount for deleveraged long",
     {CARL: Account(-54_999 * DOLLAR, {"BTC-USD": btc("1")}),
      DAVE: Account(100_000 * DOLLAR, {"BTC-USD": -btc("1")})}, -btc("1"), [(DAVE, btc("1"))], 0,
     {CARL: Account(0, {}), DAVE: Account((100_000 - 54_999) * DOLLAR, {})}),
    # two halves at $27,499.5 each (the bankruptcy amount recomputed before the second)
    ("Can get multiple offsetting subaccounts",
     {CARL: carl_1btc_short(54_999), DAVE: Account(50_000 * DOLLAR, {"BTC-USD": btc("0.5")}),
      DAVE1: Account(50_000 * DOLLAR, {"BTC-USD": btc("0.5")})}, btc("1"),
     [(DAVE, btc("0.5")), (DAVE1, btc("0.5"))], 0,
     {CARL: Account(0, {}), DAVE: Account(50_000 * DOLLAR + 27_499_500_000, {}),
      DAVE1: Account(50_000 * DOLLAR + 27_499_500_000, {})}),
    ("Skips subaccounts with positions on the same side",
     {CARL: carl_1btc_short(54_999), CARL1: carl_1btc_short(100_000), DAVE: one_btc_long(50_000)}, btc("1"),
     [(DAVE, btc("1"))], 0,
     {CARL1: carl_1btc_short(100_000), DAVE: Account((50_000 + 54_999) * DOLLAR, {})}),
    ("Skips subaccounts with no open position for the given perpetual",
     {CARL: carl_1btc_short(54_999), DAVE1: Account(50_000 * DOLLAR, {"ETH-USD": eth("1")}),
      DAVE: one_btc_long(50_000)}, btc("1"), [(DAVE, btc("1"))], 0,
     {DAVE1: Account(50_000 * DOLLAR, {"ETH-USD": eth("1")}), DAVE: Account((50_000 + 54_999) * DOLLAR, {})}),
    # Dave (TNC -$1) would be left bankrupt at Carl's $50,000: skipped; Dave1 takes it
    ("Skips subaccounts with non-overlapping bankruptcy prices",
     {CARL: carl_1btc_short(50_000), DAVE: one_btc_long(-50_001), DAVE1: one_btc_long(50_000)}, btc("1"),
     [(DAVE1, btc("1"))], 0,
     {DAVE: one_btc_long(-50_001), DAVE1: Account(100_000 * DOLLAR, {})}),
    ("Returns an error if not enough subaccounts to fully deleverage liquidated subaccount's position",
     {CARL: carl_1btc_short(50_000), DAVE: one_btc_long(-50_001)}, btc("1"), [], btc("1"),
     {CARL: carl_1btc_short(50_000), DAVE: one_btc_long(-50_001)}),
    # Carl: -1 BTC, +1 ETH, $47,000: TNC 0, so the BTC closes at the oracle price and USDC drops to -$3,000
    ("Can offset subaccount with multiple positions, first position is offset leaving TNC constant",
     {CARL: Account(47_000 * DOLLAR, {"BTC-USD": -btc("1"), "ETH-USD": eth("1")}), DAVE: one_btc_long(50_000)},
     btc("1"), [(DAVE, btc("1"))], 0,
     {CARL: Account(-3_000 * DOLLAR, {"ETH-USD": eth("1")}), DAVE: Account(100_000 * DOLLAR, {})}),
]


@pytest.mark.parametrize(("accounts", "delta", "expected_fills", "expected_remaining", "expected_accounts"),
                         [c[1:] for c in OFFSET_CASES], ids=[c[0] for c in OFFSET_CASES])
def test_offset_subaccount_perpetual_position(accounts: dict[SubaccountId, Account], delta: int,
                                              expected_fills: list[tuple[SubaccountId, int]], expected_remaining: int,
                                              expected_accounts: dict[SubaccountId, Account]) -> None:
    accounts = {k: Account(v.usdc, dict(v.positions)) for k, v in accounts.items()}
    fills, remaining = offset_position(accounts, CARL, "BTC-USD", delta, MARKETS_100)
    assert fills == expected_fills
    assert remaining == expected_remaining
    for subaccount_id, expected in expected_accounts.items():
        assert accounts[subaccount_id] == expected


# x/clob/keeper/deleveraging_test.go TestProcessDeleveraging (20%/10% perpetuals; liquidated Carl
# short, offsetting Dave long unless said). (id, liquidated, offsetting, delta, expected pair after, or None
# when the margin check fails, "invalid" for ErrInvalidPerpetualPositionSizeDelta)
PROCESS_CASES = [
    ("Liquidated: under-collateralized, TNC > 0, offsetting: well-collateralized",
     carl_1btc_short(54_999), one_btc_long(50_000), btc("1"),
     (Account(0, {}), Account((50_000 + 54_999) * DOLLAR, {}))),
    ("Liquidated: under-collateralized, TNC > 0, offsetting: under-collateralized, TNC > 0",
     carl_1btc_short(54_999), one_btc_long(-45_001), btc("1"),
     (Account(0, {}), Account((-45_001 + 54_999) * DOLLAR, {}))),
    ("Liquidated: under-collateralized, TNC > 0, offsetting: under-collateralized, TNC == 0",
     carl_1btc_short(54_999), one_btc_long(-50_000), btc("1"),
     (Account(0, {}), Account((-50_000 + 54_999) * DOLLAR, {}))),
    ("Liquidated: under-collateralized, TNC > 0, offsetting: under-collateralized, TNC < 0",
     carl_1btc_short(54_999), one_btc_long(-50_001), btc("1"),
     (Account(0, {}), Account((-50_001 + 54_999) * DOLLAR, {}))),
    ("Liquidated: under-collateralized, TNC == 0, offsetting: well-collateralized",
     carl_1btc_short(50_000), one_btc_long(50_000), btc("1"),
     (Account(0, {}), Account(100_000 * DOLLAR, {}))),
    ("Liquidated: under-collateralized, TNC == 0, offsetting: under-collateralized, TNC > 0",
     carl_1btc_short(50_000), one_btc_long(-45_001), btc("1"),
     (Account(0, {}), Account((-45_001 + 50_000) * DOLLAR, {}))),
    ("Liquidated: under-collateralized, TNC == 0, offsetting: under-collateralized, TNC == 0",
     carl_1btc_short(50_000), one_btc_long(-50_000), btc("1"), (Account(0, {}), Account(0, {}))),
    # bankruptcy prices do not overlap: $50,000 for Carl's short, $50,001 for Dave's long
    ("Liquidated: under-collateralized, TNC == 0, offsetting: under-collateralized, TNC < 0",
     carl_1btc_short(50_000), one_btc_long(-50_001), btc("1"), None),
    ("Liquidated: under-collateralized, TNC < 0, offsetting: well-collateralized",
     carl_1btc_short(49_999), one_btc_long(50_000), btc("1"),
     (Account(0, {}), Account((50_000 + 49_999) * DOLLAR, {}))),
    ("Liquidated: under-collateralized, TNC < 0, offsetting: under-collateralized, TNC > 0",
     carl_1btc_short(49_999), one_btc_long(-45_001), btc("1"),
     (Account(0, {}), Account((-45_001 + 49_999) * DOLLAR, {}))),
    ("Liquidated: under-collateralized, TNC < 0, offsetting: under-collateralized, TNC == 0",
     carl_1btc_short(49_999), one_btc_long(-50_000), btc("1"), None),
    ("Liquidated: under-collateralized, TNC < 0, offsetting: under-collateralized, TNC < 0",
     carl_1btc_short(49_999), one_btc_long(-50_001), btc("1"), None),
    # 0.1 BTC at $5,499.9 (TNC $4,999 x MMR share 500/5,000 = $499.9 above the $5,000 notional)
    ("Liquidated: under-collateralized, TNC > 0, offsetting: well-collateralized - can deleverage a partial position",
     carl_1btc_short(54_999), one_btc_long(50_000), btc("0.1"),
     (Account(54_999 * DOLLAR - 5_499_900_000, {"BTC-USD": -btc("0.9")}),
      Account(50_000 * DOLLAR + 5_499_900_000, {"BTC-USD": btc("0.9")}))),
    (("Liquidated: under-collateralized, TNC < 0, offsetting: under-collateralized, TNC < 0 - can not deleverage "
     "paritial positions"),
     carl_1btc_short(49_999), one_btc_long(-50_001), btc("0.1"), None),
    # TNC $800, MMR BTC $5,000 + ETH $3,000: 1 BTC closes at $50,000 + $800 x 5/8 = $50,500
    (("Liquidated: under-collateralized, TNC > 0, offsetting: well-collatearlized - can deleverage when there are "
     "multiple positions"),
     Account(80_800 * DOLLAR, {"BTC-USD": -btc("1"), "ETH-USD": -eth("10")}), one_btc_long(50_000), btc("1"),
     (Account((80_800 - 50_500) * DOLLAR, {"ETH-USD": -eth("10")}), Account((50_000 + 50_500) * DOLLAR, {}))),
    ("Fails when deltaQuantums is invalid with respect to liquidated subaccounts's position side",
     carl_1btc_short(54_999), one_btc_long(50_000), -btc("1"), "invalid"),
    ("Fails when deltaQuantums is invalid with respect to liquidated subaccounts's position size",
     carl_1btc_short(54_999), one_btc_long(50_000), btc("5"), "invalid"),
    ("Fails when deltaQuantums is invalid with respect to offsetting subaccounts's position side",
     carl_1btc_short(54_999), carl_1btc_short(100_000), btc("1"), "invalid"),
    ("Fails when deltaQuantums is invalid with respect to offsetting subaccounts's position size",
     carl_1btc_short(54_999), Account(50_000 * DOLLAR, {"BTC-USD": btc("0.1")}), btc("1"), "invalid"),
]


@pytest.mark.parametrize(("liquidated", "offsetting", "delta", "expected"), [c[1:] for c in PROCESS_CASES],
                         ids=[c[0] for c in PROCESS_CASES])
def test_process_deleveraging(liquidated: Account, offsetting: Account, delta: int,
                              expected: tuple[Account, Account] | str | None) -> None:
    accounts = {CARL: liquidated, DAVE: offsetting}
    if expected == "invalid":
        with pytest.raises(InvalidPositionDeltaError):
            process_deleveraging(accounts, CARL, DAVE, "BTC-USD", delta, MARKETS_20_10)
        return
    quote = process_deleveraging(accounts, CARL, DAVE, "BTC-USD", delta, MARKETS_20_10)
    if expected is None:
        assert quote is None
        assert accounts == {CARL: liquidated, DAVE: offsetting}
    else:
        assert (accounts[CARL], accounts[DAVE]) == expected


# x/clob/keeper/deleveraging_test.go TestProcessDeleveraging_Rounding: BTC at 4_999_999_937 (exponent
# -5, "some large prime number") = $49,999.99937, 0.49999991 BTC; every case must succeed.
ROUNDING_PRICES = {"BTC-USD": 49_999_999_370, "ETH-USD": ETH_3K}
ROUNDING_CASES = [
    ("Can deleverage short positions correctly after rounding", carl_1btc_short(54_999), one_btc_long(50_000),
     49_999_991),
    ("Can deleverage long position correctly after rounding", one_btc_long(-45_001), carl_1btc_short(100_000),
     -49_999_991),
    ("Can deleverage short positions correctly after rounding - negative TNC", carl_1btc_short(45_001),
     one_btc_long(50_000), 49_999_991),
    ("Can deleverage long positions correctly after rounding - negative TNC", one_btc_long(-54_999),
     carl_1btc_short(100_000), -49_999_991),
]


@pytest.mark.parametrize(("liquidated", "offsetting", "delta"), [c[1:] for c in ROUNDING_CASES],
                         ids=[c[0] for c in ROUNDING_CASES])
def test_process_deleveraging_rounding(liquidated: Account, offsetting: Account, delta: int) -> None:
    accounts = {CARL: liquidated, DAVE: offsetting}
    assert process_deleveraging(accounts, CARL, DAVE, "BTC-USD", delta, MARKETS_20_10, ROUNDING_PRICES) is not None


# our own: the offset size (x/clob/keeper/deleveraging.go OffsetSubaccountPerpetualPosition)
OFFSET_SIZE_CASES = [
    ("takes the whole remaining delta from a larger position", 5, 8, 5),
    ("takes the whole offsetting position when it is smaller", 5, 3, 3),
    ("shorts offset a deleveraged short's delta the other way", -5, -3, -3),
    ("a position on the wrong side offsets nothing", 5, -3, 0),
    ("nothing left offsets nothing", 0, 3, 0),
]


@pytest.mark.parametrize(("remaining", "offsetting", "expected"), [c[1:] for c in OFFSET_SIZE_CASES],
                         ids=[c[0] for c in OFFSET_SIZE_CASES])
def test_deleveraging_offset_base_quantums(remaining: int, offsetting: int, expected: int) -> None:
    assert deleveraging_offset_base_quantums(remaining, offsetting) == expected


def test_deleveraging_order_ranks_pnl_times_leverage() -> None:
    # our own: score = PnL x |notional| / NC, highest first; NC <= 0 last; ties by id; wrong side out
    a, b, c, d, e, f = (SubaccountId(name) for name in ("a", "b", "c", "d", "e", "f"))
    candidates = [
        DeleveragingCandidate(f, btc("1"), 50_000 * DOLLAR, -10 * DOLLAR, 99 * DOLLAR),  # bankrupt itself: last
        DeleveragingCandidate(e, -btc("1"), -50_000 * DOLLAR, 5_000 * DOLLAR, 9_999 * DOLLAR),  # same side: out
        DeleveragingCandidate(d, btc("1"), 50_000 * DOLLAR, 25_000 * DOLLAR, 1_000 * DOLLAR),  # 1,000 x 2x = 2,000
        DeleveragingCandidate(c, btc("1"), 50_000 * DOLLAR, 10_000 * DOLLAR, 1_000 * DOLLAR),  # 1,000 x 5x = 5,000
        DeleveragingCandidate(b, btc("2"), 100_000 * DOLLAR, 50_000 * DOLLAR, 1_000 * DOLLAR),  # 1,000 x 2x = 2,000
        DeleveragingCandidate(a, btc("1"), 50_000 * DOLLAR, 10_000 * DOLLAR, -1_000 * DOLLAR),  # a loss ranks low
    ]
    ordered = [candidate.subaccount_id for candidate in deleveraging_order(candidates, delta_base_quantums=btc("1"))]
    assert ordered == [c, b, d, a, f]
    assert deleveraging_order(candidates, delta_base_quantums=0) == []


# =============================================================================================
# Binance isolated liquidation price (worked example)
# =============================================================================================
# Binance support FAQ "How to Calculate Liquidation Price of USDⓈ-M Futures Contracts"
# (https://www.binance.com/en/support/faq/how-to-calculate-liquidation-price-of-usd%E2%93%A2-m-futures-contracts-b3c689c1f50a44cabb3a84e663b81d93):
# isolated mode is the cross formula with TMM = UPNL = 0. The worked example's numbers (wallet
# balance 1,535,443.01 USDT; ETHUSDT 3,683.979 long at 1,456.84, bracket MMR 10% / cum 135,365;
# BTCUSDT 109.488 long at 32,481.98, MMR 2.5% / cum 16,300) and results are the ones freqtrade ports
# from that page: freqtrade/freqtrade tests/exchange/test_binance.py test_liquidation_price_binance
# ("From calc example"), isolated rows.
BINANCE_CASES = [
    ("ETHUSDT isolated long", "1535443.01", "3683.979", "1456.84", "0.10", "135365.00", "1114.78"),
    ("BTCUSDT isolated long", "1535443.01", "109.488", "32481.980", "0.025", "16300.000", "18778.73"),
]


@pytest.mark.parametrize(("wallet", "size", "entry", "mmr", "cum", "expected"), [c[1:] for c in BINANCE_CASES],
                         ids=[c[0] for c in BINANCE_CASES])
def test_binance_isolated_liquidation_price(wallet: str, size: str, entry: str, mmr: str, cum: str,
                                            expected: str) -> None:
    price = binance_isolated_liquidation_price(wallet_balance=wallet, position_size=size, entry_price=entry,
                                               maintenance_margin_rate=mmr, maintenance_amount=cum)
    assert round(price, 2) == Fraction(expected)
    # at that price the margin balance equals the maintenance margin: WB + PnL = |Q| x LP x MMR - cum
    q = Fraction(size)
    assert Fraction(wallet) + q * (price - Fraction(entry)) == abs(q) * price * Fraction(mmr) - Fraction(cum)


def test_binance_isolated_liquidation_price_short_mirrors_long() -> None:
    # our own: a 1 BTC short at $30,000 with $3,000 isolated margin, MMR 0.4%, cum 0:
    # LP = (3,000 + 30,000) / (0.004 + 1) = 32,868.53 (rounded), where 3,000 - (LP - 30,000) = 0.004 x LP
    price = binance_isolated_liquidation_price(wallet_balance=3_000, position_size=-1, entry_price=30_000,
                                               maintenance_margin_rate="0.004", maintenance_amount=0)
    assert price == Fraction(33_000) / Fraction("1.004")
    assert round(price, 2) == Fraction("32868.53")
