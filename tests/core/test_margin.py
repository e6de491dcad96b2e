"""Golden tables for `perpdex.core.margin`: `Risk`, the transition rule, OI-scaled initial margin,
position and account requirements.

Every table ports a dYdX v4 test (dydxprotocol/v4-chain @84d4664, paths under `protocol/`) and
keeps its case names as ids, unless the comment says the cases are our own. dYdX's Risk is
{MMR, IMR, NC}; ours is Risk(net_collateral, initial_requirement, maintenance_requirement).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from perpdex.core.margin import (
    ZERO_RISK,
    Risk,
    TransitionResult,
    account_risk,
    initial_margin_ppm_at,
    adjusted_initial_margin_ppm,
    check_transition,
    margin_requirements,
    notional_quote_quantums,
    position_risk,
    positions_risk,
)
from perpdex.core.params import LiquidityTier, MarketParams
from perpdex.core.units import QUOTE

MAX_UINT64 = 2**64 - 1
SUCCESS = TransitionResult.SUCCESS
NEWLY = TransitionResult.NEWLY_UNDERCOLLATERALIZED
STILL = TransitionResult.STILL_UNDERCOLLATERALIZED


def make_tier(initial_margin_ppm: int, maintenance_fraction_ppm: int = 0, *, lower_cap: int = 0,
              upper_cap: int = 0) -> LiquidityTier:
    """A liquidity tier with only the fields margin reads; the impact notional is a dummy, as in
    dYdX's TestGetMarginRequirementsInQuoteQuantums_2 (`1, // dummy impact notional value`)."""
    return LiquidityTier(tier_id=0, name="test", initial_margin_ppm=initial_margin_ppm,
                         maintenance_fraction_ppm=maintenance_fraction_ppm, impact_notional_quote_quantums=1,
                         open_interest_lower_cap_quote_quantums=lower_cap,
                         open_interest_upper_cap_quote_quantums=upper_cap)


# --- Risk -------------------------------------------------------------------------------------

# dYdX v4 protocol/lib/margin/risk_test.go TestRisk_AddInPlace. Columns: a, b, a + b.
RISK_ADD_CASES = {
    "zero + zero": (ZERO_RISK, ZERO_RISK, Risk(0, 0, 0)),
    "zero + non-zero": (ZERO_RISK, Risk(net_collateral=300, initial_requirement=200, maintenance_requirement=100),
                        Risk(300, 200, 100)),
    "non-zero + zero": (Risk(300, 200, 100), ZERO_RISK, Risk(300, 200, 100)),
    "non-zero + non-zero": (Risk(300, 200, 100), Risk(150, 100, 50), Risk(450, 300, 150)),
}


@pytest.mark.parametrize(("a", "b", "expected"), RISK_ADD_CASES.values(), ids=RISK_ADD_CASES.keys())
def test_risk_add(a: Risk, b: Risk, expected: Risk) -> None:
    total = a + b
    assert total == expected
    assert isinstance(total, Risk)


# dYdX v4 protocol/lib/margin/risk_test.go TestRisk_IsInitialCollateralized. Columns: NC, IMR, result.
IS_INITIAL_COLLATERALIZED_CASES = {
    "NC > IMR": (200, 100, True),
    "NC = IMR": (100, 100, True),
    "NC < IMR": (50, 100, False),
    "NC = 0, IMR = 0": (0, 0, True),
    "NC < 0, IMR = 0": (-100, 0, False),
}


@pytest.mark.parametrize(("nc", "imr", "expected"), IS_INITIAL_COLLATERALIZED_CASES.values(),
                         ids=IS_INITIAL_COLLATERALIZED_CASES.keys())
def test_risk_is_initial_collateralized(nc: int, imr: int, expected: bool) -> None:
    assert Risk(net_collateral=nc, initial_requirement=imr, maintenance_requirement=0).is_initial_collateralized() \
        is expected


# dYdX v4 protocol/lib/margin/risk_test.go TestRisk_IsMaintenanceCollateralized. Columns: NC, MMR, result.
IS_MAINTENANCE_COLLATERALIZED_CASES = {
    "NC > MMR": (200, 100, True),
    "NC = MMR": (100, 100, True),
    "NC < MMR": (50, 100, False),
    "NC = 0, MMR = 0": (0, 0, True),
    "NC < 0, MMR = 0": (-100, 0, False),
}


@pytest.mark.parametrize(("nc", "mmr", "expected"), IS_MAINTENANCE_COLLATERALIZED_CASES.values(),
                         ids=IS_MAINTENANCE_COLLATERALIZED_CASES.keys())
def test_risk_is_maintenance_collateralized(nc: int, mmr: int, expected: bool) -> None:
    risk = Risk(net_collateral=nc, initial_requirement=0, maintenance_requirement=mmr)
    assert risk.is_maintenance_collateralized() is expected


# dYdX v4 protocol/lib/margin/risk_test.go TestRisk_IsLiquidatable. Columns: NC, MMR, result.
IS_LIQUIDATABLE_CASES = {
    "NC > 0, MMR = 0": (100, 0, False),
    "NC = 0, MMR > 0": (0, 100, True),
    "NC = 0, MMR = 0": (0, 0, False),
    "NC < 0, MMR > 0": (-100, 100, True),
    "NC < 0, MMR = 0": (-100, 0, False),
    "NC < MMR": (75, 100, True),
    "NC = MMR": (100, 100, False),
    "NC > MMR": (125, 100, False),
}


@pytest.mark.parametrize(("nc", "mmr", "expected"), IS_LIQUIDATABLE_CASES.values(),
                         ids=IS_LIQUIDATABLE_CASES.keys())
def test_risk_is_liquidatable(nc: int, mmr: int, expected: bool) -> None:
    assert Risk(net_collateral=nc, initial_requirement=0, maintenance_requirement=mmr).is_liquidatable() is expected


# dYdX v4 protocol/lib/margin/risk_test.go TestRisk_Cmp -> Risk.compare_riskiness. Columns: first
# NC, first MMR, second NC, second MMR, result (1: first is riskier). Upstream typo "hahave" kept.
RISK_CMP_CASES = {
    "first is less risky than second": (100, 50, 100, 100, -1),
    "first is less risky than second - second has zero TNC": (100, 50, 0, 100, -1),
    "first is less risky than second - second has negative TNC": (100, 50, -100, 100, -1),
    "first is less risky than second - both have negative TNC": (-100, 150, -100, 100, -1),
    "first is more risky than second": (100, 150, 100, 100, 1),
    "first is more risky than second - first has zero TNC": (0, 150, 100, 100, 1),
    "first is more risky than second - first has negative TNC": (-100, 150, 100, 100, 1),
    "first is more risky than second - both hahave negative TNC": (-100, 50, -100, 100, 1),
    "first is less risky than second - first has zero MMR": (100, 0, 100, 100, -1),
    "first is more risky than second - second has zero MMR": (100, 100, 100, 0, 1),
    "special case: equally risky": (100, 100, 100, 100, 0),
    "special case: same ratio, tie break by MMR": (100, 50, 200, 100, -1),
    "special case: first with zero NC and second with zero NC, tie break by MMR": (0, 50, 0, 100, -1),
    "special case: first with zero NC and MMR, tie break by MMR": (0, 0, 200, 100, -1),
    "special case: second with zero NC and MMR, tie break by MMR": (100, 50, 0, 0, 1),
    "special case: first with zero MMR and second with zero MMR, tie break by NC": (100, 0, 200, 0, 1),
}


@pytest.mark.parametrize(("first_nc", "first_mmr", "second_nc", "second_mmr", "expected"),
                         RISK_CMP_CASES.values(), ids=RISK_CMP_CASES.keys())
def test_risk_compare_riskiness(first_nc: int, first_mmr: int, second_nc: int, second_mmr: int,
                                expected: int) -> None:
    first = Risk(net_collateral=first_nc, initial_requirement=0, maintenance_requirement=first_mmr)
    second = Risk(net_collateral=second_nc, initial_requirement=0, maintenance_requirement=second_mmr)
    assert first.compare_riskiness(second) == expected
    assert second.compare_riskiness(first) == -expected  # antisymmetric
    assert first.riskier_than(second) is (expected > 0)


def test_free_collateral_is_net_collateral_minus_initial_requirement() -> None:
    assert Risk(net_collateral=1_000 * QUOTE, initial_requirement=300 * QUOTE,
                maintenance_requirement=150 * QUOTE).free_collateral == 700 * QUOTE
    assert Risk(net_collateral=100 * QUOTE, initial_requirement=300 * QUOTE,
                maintenance_requirement=150 * QUOTE).free_collateral == -200 * QUOTE


# --- check_transition -------------------------------------------------------------------------

def _not_initially_collateralized_imr(new_nc: int, new_mmr: int) -> int:
    """dYdX calls IsValidStateTransitionForUndercollateralizedSubaccount only when the new state
    is below initial margin and leaves newIMR nil in the test; our check_transition starts with
    that test, so we give the new state the smallest IMR >= MMR that keeps it below initial."""
    return max(new_mmr, new_nc + 1)


# dYdX v4 protocol/x/subaccounts/lib/updates_test.go
# TestIsValidStateTransitionForUndercollateralizedSubaccount_ZeroMarginRequirements.
# Columns: old NC, old IMR, old MMR, new NC, new MMR, result.
ZERO_MARGIN_TRANSITION_CASES = {
    "fails when MMR increases and TNC decreases - negative TNC": (-1, 0, 0, -2, 1, STILL),
    "fails when MMR increases and TNC stays the same - negative TNC": (-1, 0, 0, -1, 1, STILL),
    "fails when MMR increases and TNC increases - negative TNC": (-1, 0, 0, 100, 1, STILL),
    "fails when both new and old MMR are zero and TNC stays the same": (-1, 0, 0, -1, 0, STILL),
    "fails when both new and old MMR are zero and TNC decrease from negative to negative": (-1, 0, 0, -2, 0, STILL),
    "succeeds when both new and old MMR are zero and TNC increases": (-2, 0, 0, -1, 0, SUCCESS),
    "fails when MMR decreased to zero, and TNC increases but is still negative": (-2, 1, 1, -1, 0, STILL),
}


@pytest.mark.parametrize(("old_nc", "old_imr", "old_mmr", "new_nc", "new_mmr", "expected"),
                         ZERO_MARGIN_TRANSITION_CASES.values(), ids=ZERO_MARGIN_TRANSITION_CASES.keys())
def test_check_transition_zero_margin_requirements(old_nc: int, old_imr: int, old_mmr: int, new_nc: int,
                                                   new_mmr: int, expected: TransitionResult) -> None:
    before = Risk(net_collateral=old_nc, initial_requirement=old_imr, maintenance_requirement=old_mmr)
    after = Risk(net_collateral=new_nc, initial_requirement=_not_initially_collateralized_imr(new_nc, new_mmr),
                 maintenance_requirement=new_mmr)
    assert not after.is_initial_collateralized()
    assert check_transition(before, after) is expected


# Our own cases for the ratio rule (dYdX v4 x/subaccounts/lib/updates.go; StarkEx
# position/validate_state_transition.cairo). Amounts in USDC; MMR is half of IMR unless noted.
# Columns: before (NC, IMR, MMR), after (NC, IMR, MMR), result.
RATIO_RULE_CASES = {
    "any change that ends at or above initial margin succeeds, even from below maintenance": (
        (-10, 200, 100), (100, 100, 50), SUCCESS),
    "ending exactly at initial margin succeeds": ((90, 200, 100), (100, 100, 50), SUCCESS),
    "halving a position under initial margin succeeds when NC/MMR rises": (
        (90, 200, 100), (80, 100, 50), SUCCESS),  # 0.9 -> 1.6
    "halving a position under initial margin succeeds when NC/MMR stays equal": (
        (90, 200, 100), (45, 100, 50), SUCCESS),  # 0.9 -> 0.9, lower MMR breaks the tie
    "an unchanged account under initial margin stays valid": ((90, 200, 100), (90, 200, 100), SUCCESS),
    "a deposit into an account under initial margin succeeds": ((90, 200, 100), (95, 200, 100), SUCCESS),
    "halving a position under initial margin fails when NC/MMR falls": (
        (90, 200, 100), (40, 100, 50), STILL),  # 0.9 -> 0.8
    "a withdrawal from an account under initial margin fails": ((90, 200, 100), (89, 200, 100), STILL),
    "growing a position under initial margin fails even if NC/MMR rises": (
        (90, 200, 100), (200, 220, 110), STILL),  # MMR rises
    "closing every position with negative NC left fails": ((-10, 200, 100), (-10, 0, 0), STILL),
    "a collateralized account that falls below initial margin is newly undercollateralized": (
        (250, 200, 100), (150, 300, 150), NEWLY),
    "an account exactly at initial margin that falls below is newly undercollateralized": (
        (200, 200, 100), (40, 100, 50), NEWLY),  # reducing, but NC/MMR falls 2.0 -> 0.8
    "a collateralized account that reduces below initial margin with NC/MMR not falling succeeds": (
        (210, 200, 100), (105, 110, 50), SUCCESS),  # OI-scaled IMR 110; NC/MMR 2.1 -> 2.1, lower MMR
}


@pytest.mark.parametrize(("before", "after", "expected"), RATIO_RULE_CASES.values(), ids=RATIO_RULE_CASES.keys())
def test_check_transition_ratio_rule(before: tuple[int, int, int], after: tuple[int, int, int],
                                     expected: TransitionResult) -> None:
    before_risk = Risk(*(amount * QUOTE for amount in before))
    after_risk = Risk(*(amount * QUOTE for amount in after))
    assert check_transition(before_risk, after_risk) is expected


# --- adjusted initial margin (OIMF) -----------------------------------------------------------

# dYdX v4 protocol/x/perpetuals/types/liquidity_tier_test.go TestGetAdjustedInitialMarginPpm
# (IM 200_000). Columns: lower cap, upper cap, OI notional, adjusted IMF ppm.
ADJUSTED_IMF_CASES = {
    "Zero open interest": (1_000_000, 2_000_000, 0, 200_000),
    "Open interest within bounds": (1_000_000, 2_000_000, 1_500_000, 600_000),
    "Open interest within bounds, rounded": (1_000_000, 2_000_000, 1_234_567, 387_653),  # 387_653.6 floored
    "Open interest at lower bound": (1_000_000, 2_000_000, 1_000_000, 200_000),
    "Open interest at upper bound": (1_000_000, 2_000_000, 2_000_000, 1_000_000),
    "Open interest above upper bound": (1_000_000, 2_000_000, 2_500_000, 1_000_000),
    "No upper bound, no increase": (0, 0, 1_500_000, 200_000),
}


@pytest.mark.parametrize(("lower_cap", "upper_cap", "oi_notional", "expected"), ADJUSTED_IMF_CASES.values(),
                         ids=ADJUSTED_IMF_CASES.keys())
def test_adjusted_initial_margin_ppm(lower_cap: int, upper_cap: int, oi_notional: int, expected: int) -> None:
    tier = make_tier(200_000, lower_cap=lower_cap, upper_cap=upper_cap)
    assert adjusted_initial_margin_ppm(tier, oi_notional) == expected


# dYdX v4 protocol/x/perpetuals/types/liquidity_tier_test.go TestGetInitialMarginQuoteQuantums
# (no custom IMF): IMR = ceil(quote x adjusted IMF). Columns: IM ppm, lower cap, upper cap, OI
# notional, quote quantums, IMR.
INITIAL_MARGIN_CASES = {
    "initial margin 20%": (200_000, 0, 0, 0, 500_000, 100_000),
    "initial margin 50%": (500_000, 0, 0, 0, 1_000_000, 500_000),
    "initial margin 10%, quote quantums = 1, should round up to 1": (100_000, 0, 0, 0, 1, 1),
    "initial margin 56.7243%, quote quantums = 123_456, should round up to 70_030": (
        567_243, 0, 0, 0, 123_456, 70_030),
    "base IMF = 20%, no OIMF since lower_cap = upper_cap = 0": (200_000, 0, 0, 1_500_000_000_000, 500_000, 100_000),
    "base IMF = 20%, scaling_factor = 0.5": (
        200_000, 1_000_000_000_000, 2_000_000_000_000, 1_500_000_000_000, 500_000, 300_000),
    "base IMF = 10%, scaling_factor = 1 since open_interest >> upper_cap": (
        200_000, 25_000_000_000_000, 50_000_000_000_000, 80_000_000_000_000, 500_000, 500_000),
    "base IMF = 10%, open_interest = lower_cap so scaling_factor = 0": (
        200_000, 25_000_000_000_000, 50_000_000_000_000, 25_000_000_000_000, 500_000, 100_000),
    "base IMF = 10%, lower_cap < open_interest < upper_cap, realistic numbers": (
        200_000, 25_000_000_000_000, 60_000_000_000_000, 28_123_456_789_123, 500_000, 135_697),
}


@pytest.mark.parametrize(("im_ppm", "lower_cap", "upper_cap", "oi_notional", "quote_quantums", "expected"),
                         INITIAL_MARGIN_CASES.values(), ids=INITIAL_MARGIN_CASES.keys())
def test_initial_margin_quote_quantums(im_ppm: int, lower_cap: int, upper_cap: int, oi_notional: int,
                                       quote_quantums: int, expected: int) -> None:
    tier = make_tier(im_ppm, lower_cap=lower_cap, upper_cap=upper_cap)
    imf = adjusted_initial_margin_ppm(tier, oi_notional)
    initial, _ = margin_requirements(quote_quantums, tier, imf)
    assert initial == expected


# --- notional, position requirements ----------------------------------------------------------

# dYdX v4 protocol/x/perpetuals/lib/lib_test.go TestGetNetNotionalInQuoteQuantums: AR -16, price
# 123_456_789_123 at exponent -5, so qce = -5 - 16 + 6 = -15 and the divisor is 10**15; the
# negative notional truncates toward zero. Columns: base quantums, net notional.
NET_NOTIONAL_CASES = {
    "zero quantums": (0, 0),
    "positive quantums": (1_000_000_000_000, 123_456_789),
    "negative quantums": (-1_000_000_000_000, -123_456_789),
}


@pytest.mark.parametrize(("base_quantums", "expected"), NET_NOTIONAL_CASES.values(), ids=NET_NOTIONAL_CASES.keys())
def test_notional_quote_quantums(base_quantums: int, expected: int) -> None:
    assert notional_quote_quantums(base_quantums, 123_456_789_123, 10**15) == expected


# dYdX v4 protocol/x/perpetuals/lib/lib_test.go TestGetMarginRequirementsInQuoteQuantums_2. We set
# subticks = dYdX's price integer, so qce = exponent + AR + 6 and divisor = 10**-qce. Rows whose
# qce is positive (divisor 10**-qce < 1) cannot be written with an integer divisor and are not
# ported: "InitialMargin 100 BIPs, MaintenanceMargin 50 BIPs, atomic resolution 4" (exponent -1,
# AR -4: qce = +1). For the same reason TestGetMarginRequirementsInQuoteQuantums (AR +4,
# exponent -5: qce = +5) is not ported at all.
# Columns: price, exponent, AR, base quantums, IM ppm, MF ppm, OI base quantums, lower cap, upper
# cap, IMR, MMR.
MARGIN_REQUIREMENTS_CASES = {
    "InitialMargin 100 BIPs, MaintenanceMargin 50 BIPs, negative exponent, atomic resolution 6": (
        42_000_000, -2, -6, -5_000, 10_000, 500_000, 0, 0, 0, 21_000_000, 10_500_000),
    "InitialMargin 10_000 BIPs (max), MaintenanceMargin 10_000 BIPs (max), atomic resolution 6": (
        55_550, -1, -6, 7_000, 1_000_000, 1_000_000, 0, 0, 0, 38_885_000, 38_885_000),
    "InitialMargin 100 BIPs, MaintenanceMargin 100 BIPs, atomic resolution 6": (
        55_550, -1, -6, 7_000, 10_000, 1_000_000, 0, 0, 0, 388_850, 388_850),
    "InitialMargin 0 BIPs (min), MaintenanceMargin 0 BIPs (min), atomic resolution 6": (
        55_550, -1, -6, 7_000, 0, 1_000_000, 0, 0, 0, 0, 0),
    "Price is zero, atomic resolution 6": (
        0, -1, -6, -7_000, 100, 1_000_000, 0, 0, 0, 0, 0),
    "Price and quantums are max uints": (
        MAX_UINT64, -1, -6, MAX_UINT64, 100, 1_000_000, 0, 0, 0,
        3_402_823_669_209_384_634_264_811_192_843_492, 3_402_823_669_209_384_634_264_811_192_843_492),
    "InitialMargin 100 BIPs, MaintenanceMargin 50 BIPs, atomic resolution 6": (
        55_550, -1, -6, 7_000, 10_000, 500_000, 0, 0, 0, 388_850, 388_850 // 2),
    "InitialMargin 20%, MaintenanceMargin 10%, atomic resolution 6": (
        367_500, -1, -6, 12_000, 200_000, 500_000, 0, 0, 0, 88_200_000, 88_200_000 // 2),
    "InitialMargin 5%, MaintenanceMargin 3%, atomic resolution 6": (
        1_234_560, -1, -6, 74_523, 50_000, 600_000, 0, 0, 0, 460_015_575, 276_009_345),
    "InitialMargin 25%, MaintenanceMargin 15%, atomic resolution 6": (
        1_234_560, -1, -6, 74_523, 250_000, 600_000, 0, 0, 0, 2_300_077_872, 1_380_046_724),  # MMR rounded up
    "OIMF: IM 20%, scaled to 60%, MaintenanceMargin 10%, atomic resolution 6": (
        367_500, -1, -6, 12_000, 200_000, 500_000, 408_163_265, 10_000_000_000_000, 20_000_000_000_000,
        264_599_559, 88_200_000 // 2),  # IMF 599_999 ppm: OI notional 14_999_999_988_750
    "OIMF: IM 20%, scaled to 100%, MaintenanceMargin 10%, atomic resolution 6": (
        367_500, -1, -6, 12_000, 200_000, 500_000, 1_000_000_000, 10_000_000_000_000, 20_000_000_000_000,
        441_000_000, 88_200_000 // 2),
    "OIMF: IM 20%, lower_cap < realistic open interest < upper_cap, MaintenanceMargin 10%, atomic resolution 6": (
        367_500, -1, -6, 12_000, 200_000, 500_000, 1_123_456_789, 25_000_000_000_000, 50_000_000_000_000,
        318_042_585, 88_200_000 // 2),  # IMF 721_185 ppm
}


@pytest.mark.parametrize(
    ("price", "exponent", "atomic_resolution", "base_quantums", "im_ppm", "mf_ppm", "open_interest", "lower_cap",
     "upper_cap", "expected_imr", "expected_mmr"),
    MARGIN_REQUIREMENTS_CASES.values(), ids=MARGIN_REQUIREMENTS_CASES.keys())
def test_position_risk_margin_requirements(price: int, exponent: int, atomic_resolution: int, base_quantums: int,
                                           im_ppm: int, mf_ppm: int, open_interest: int, lower_cap: int,
                                           upper_cap: int, expected_imr: int, expected_mmr: int) -> None:
    qce = exponent + atomic_resolution + 6
    assert qce <= 0
    divisor = 10**-qce
    tier = make_tier(im_ppm, mf_ppm, lower_cap=lower_cap, upper_cap=upper_cap)
    risk = position_risk(base_quantums, price, divisor, tier, open_interest)
    assert risk.initial_requirement == expected_imr
    assert risk.maintenance_requirement == expected_mmr
    # NC is the signed notional (dYdX GetNetNotionalInQuoteQuantums), truncated toward zero.
    assert risk.net_collateral == notional_quote_quantums(base_quantums, price, divisor)


def test_a_short_position_has_the_same_requirements_as_the_long() -> None:
    # Our own case on the "InitialMargin 25%, MaintenanceMargin 15%" row: requirements use |size|.
    tier = make_tier(250_000, 600_000)
    long = position_risk(74_523, 1_234_560, 10, tier)
    short = position_risk(-74_523, 1_234_560, 10, tier)
    assert long == Risk(9_200_311_488, 2_300_077_872, 1_380_046_724)
    assert short == Risk(-9_200_311_488, 2_300_077_872, 1_380_046_724)


# --- account risk -----------------------------------------------------------------------------

# dYdX v4 protocol/testutil/perpetuals/perpetuals.go CreatePerpInfo(id, AR -6, price, exponent 0):
# liquidity tier IM 100_000, MF 500_000, no OI caps, open interest 0. qce = 0 - 6 + 6 = 0, so the
# divisor is 1 and subticks = price.
CREATE_PERP_INFO_TIER = LiquidityTier(tier_id=1, name="create-perp-info", initial_margin_ppm=100_000,
                                      maintenance_fraction_ppm=500_000, impact_notional_quote_quantums=1)


@dataclass
class FakeMarket:
    """The attributes margin reads of a market (`margin.PricedMarket`)."""

    params: MarketParams
    oracle_price_subticks: int | None
    open_interest_base_quantums: int = 0
    quantum_conversion_divisor: int = 1

    @property
    def initial_margin_ppm(self) -> int:
        return initial_margin_ppm_at(self.params.liquidity_tier, self.open_interest_base_quantums,
                                     self.oracle_price_subticks, self.quantum_conversion_divisor)


def create_perp_info(market_id: str, price: int) -> FakeMarket:
    params = MarketParams(market_id=market_id, atomic_resolution=-6, quantum_conversion_exponent=0,
                          step_base_quantums=1, subticks_per_tick=1, min_order_base_quantums=1,
                          liquidity_tier=CREATE_PERP_INFO_TIER, maker_fee_ppm=0, taker_fee_ppm=0,
                          oracle_staleness_ms=60_000)
    return FakeMarket(params=params, oracle_price_subticks=price)


# dYdX v4 protocol/x/subaccounts/lib/updates_test.go TestGetRiskForSubaccount. Columns: USDC quote
# quantums, positions (market -> base quantums), markets (market -> price), expected Risk.
ACCOUNT_RISK_CASES = {
    "no account": (0, {}, {}, ZERO_RISK),
    "no updates": (100, {"PERP1-USD": 100}, {"PERP1-USD": 100},
                   Risk(net_collateral=100 * 100 + 100, initial_requirement=1_000, maintenance_requirement=500)),
    "one update": (110, {"PERP1-USD": 100, "PERP2-USD": -25}, {"PERP1-USD": 100, "PERP2-USD": 200},
                   # NC (100*100 + 100) + (-25*200 + 10); IMR 10% and MMR 5% of 10_000 + 5_000.
                   Risk(net_collateral=5_110, initial_requirement=1_000 + 500, maintenance_requirement=500 + 250)),
}


@pytest.mark.parametrize(("usdc", "positions", "prices", "expected"), ACCOUNT_RISK_CASES.values(),
                         ids=ACCOUNT_RISK_CASES.keys())
def test_account_risk(usdc: int, positions: dict[str, int], prices: dict[str, int], expected: Risk) -> None:
    markets = {market_id: create_perp_info(market_id, price) for market_id, price in prices.items()}
    assert account_risk(usdc, positions, markets) == expected


def test_positions_risk_can_leave_one_market_out() -> None:
    # Our own case on TestGetRiskForSubaccount "one update": without PERP2 only PERP1 remains.
    markets = {"PERP1-USD": create_perp_info("PERP1-USD", 100), "PERP2-USD": create_perp_info("PERP2-USD", 200)}
    positions = {"PERP1-USD": 100, "PERP2-USD": -25}
    assert positions_risk(positions, markets, skip_market_id="PERP2-USD") == Risk(10_000, 1_000, 500)
    assert positions_risk(positions, markets) == Risk(5_000, 1_500, 750)


def test_account_risk_applies_open_interest_scaling() -> None:
    # Our own case: the OIMF row "OIMF: IM 20%, scaled to 100%" as an account (USDC 0): the market's
    # open interest raises only the IMR.
    tier = make_tier(200_000, 500_000, lower_cap=10_000_000_000_000, upper_cap=20_000_000_000_000)
    params = MarketParams(market_id="TEST-USD", atomic_resolution=-6, quantum_conversion_exponent=-1,
                          step_base_quantums=10, subticks_per_tick=1, min_order_base_quantums=10,
                          liquidity_tier=tier, maker_fee_ppm=0, taker_fee_ppm=0, oracle_staleness_ms=60_000)
    market = FakeMarket(params=params, oracle_price_subticks=367_500, open_interest_base_quantums=1_000_000_000,
                        quantum_conversion_divisor=10)
    assert account_risk(0, {"TEST-USD": 12_000}, {"TEST-USD": market}) == Risk(441_000_000, 441_000_000, 44_100_000)
