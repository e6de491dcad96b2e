"""Margin as pure functions: position notional, initial and maintenance requirements, `Risk`,
free collateral and the one validity rule every state change must pass. Numbers in, numbers out."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import NamedTuple, Protocol

from perpdex.core.errors import InvariantViolation
from perpdex.core.params import LiquidityTier, MarketParams
from perpdex.core.units import PPM


class Risk(NamedTuple):
    """dYdX v4 lib/margin/risk.go: net collateral (NC), initial (IMR) and maintenance (MMR)
    requirements of an account or a position, all in quote quantums."""

    net_collateral: int
    initial_requirement: int
    maintenance_requirement: int

    def __add__(self, other: Risk) -> Risk:  # type: ignore[override]
        return Risk(self.net_collateral + other.net_collateral,
                    self.initial_requirement + other.initial_requirement,
                    self.maintenance_requirement + other.maintenance_requirement)

    @property
    def free_collateral(self) -> int:
        """NC - IMR: what a withdrawal or a new position may still use (negative when below)."""
        return self.net_collateral - self.initial_requirement

    def is_initial_collateralized(self) -> bool:
        return self.net_collateral >= self.initial_requirement

    def is_maintenance_collateralized(self) -> bool:
        return self.net_collateral >= self.maintenance_requirement

    def is_liquidatable(self) -> bool:
        """MMR > 0 and NC < MMR: an account with no requirement is never liquidated."""
        return self.maintenance_requirement > 0 and self.net_collateral < self.maintenance_requirement

    def compare_riskiness(self, other: Risk) -> int:
        """1 if self is riskier than other, -1 if less risky, 0 if equal (dYdX v4 Risk.Cmp).

        Compares NC/MMR by cross-multiplying, never dividing: lower ratio is riskier. Equal
        ratios: with both MMR zero, less NC is riskier; otherwise higher MMR is riskier.
        """
        left = other.net_collateral * self.maintenance_requirement
        right = self.net_collateral * other.maintenance_requirement
        if left != right:
            return 1 if left > right else -1
        if self.maintenance_requirement == 0 and other.maintenance_requirement == 0:
            return _sign(other.net_collateral - self.net_collateral)
        return _sign(self.maintenance_requirement - other.maintenance_requirement)

    def riskier_than(self, other: Risk) -> bool:
        return self.compare_riskiness(other) > 0


ZERO_RISK = Risk(0, 0, 0)


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


class TransitionResult(str, Enum):
    """dYdX v4 x/subaccounts/types/update.go UpdateResult (the values a margin check can give)."""

    SUCCESS = "success"
    NEWLY_UNDERCOLLATERALIZED = "newly_undercollateralized"
    STILL_UNDERCOLLATERALIZED = "still_undercollateralized"


def check_transition(before: Risk, after: Risk) -> TransitionResult:
    """The one validity rule for every change to an account's collateral or positions.

    1. After the change NC >= IMR: valid.
    2. Otherwise valid only if the change makes the account no riskier: MMR does not rise,
       NC/MMR does not fall (cross-multiplied, `Risk.compare_riskiness`), and an account with no
       positions left (MMR 0 before or after) must strictly gain NC with MMR 0 on both sides.
    dYdX v4 x/subaccounts/lib/updates.go IsValidStateTransitionForUndercollateralizedSubaccount;
    StarkEx position/validate_state_transition.cairo states the same rule.
    """
    if after.net_collateral >= after.initial_requirement:
        return TransitionResult.SUCCESS
    failure = (TransitionResult.NEWLY_UNDERCOLLATERALIZED
               if before.initial_requirement <= before.net_collateral
               else TransitionResult.STILL_UNDERCOLLATERALIZED)
    if after.maintenance_requirement > before.maintenance_requirement:
        return failure
    if after.maintenance_requirement == 0 or before.maintenance_requirement == 0:
        if (after.maintenance_requirement == 0 and before.maintenance_requirement == 0
                and after.net_collateral > before.net_collateral):
            return TransitionResult.SUCCESS
        return failure
    if after.compare_riskiness(before) > 0:
        return failure
    return TransitionResult.SUCCESS


def notional_quote_quantums(size_base_quantums: int, price_subticks: int, quantum_conversion_divisor: int) -> int:
    """Signed notional, truncated toward zero (dYdX v4 lib/quantums.go BaseToQuoteQuantums).

    `quantum_conversion_divisor` is 10**-qce (qce < 0 in every market: see `MarketParams`).
    Truncation never overstates either side's value: a short's negative notional rounds up.
    """
    product = size_base_quantums * price_subticks
    if product >= 0:
        return product // quantum_conversion_divisor
    return -((-product) // quantum_conversion_divisor)


def adjusted_initial_margin_ppm(tier: LiquidityTier, open_interest_notional_quote_quantums: int) -> int:
    """Initial margin fraction raised by open interest (dYdX v4 liquidity_tier.go GetAdjustedInitialMarginPpm).

    Base IMF at or below the lower cap, 100% at or above the upper cap, linear between with
    the increase floored; an upper cap of 0 disables the scaling.
    """
    upper = tier.open_interest_upper_cap_quote_quantums
    lower = tier.open_interest_lower_cap_quote_quantums
    base = tier.initial_margin_ppm
    if upper == 0 or open_interest_notional_quote_quantums <= lower:
        return base
    if open_interest_notional_quote_quantums >= upper:
        return PPM
    # floor: toward the base fraction, as dYdX's big.Int Div; the IMR below rounds up anyway.
    return base + (PPM - base) * (open_interest_notional_quote_quantums - lower) // (upper - lower)


def margin_requirements(abs_notional_quote_quantums: int, tier: LiquidityTier, initial_margin_ppm: int) -> tuple[int, int]:
    """(IMR, MMR) of a position of this absolute notional.

    IMR = ceil(notional x adjusted IMF); MMR = ceil(ceil(notional x base IMF) x maintenance
    fraction): both round up, against the trader. Open interest raises only the initial
    requirement (dYdX v4 x/perpetuals/lib/lib.go GetMarginRequirementsInQuoteQuantums).
    """
    base_initial = -((-abs_notional_quote_quantums * tier.initial_margin_ppm) // PPM)  # ceil: against trader
    maintenance = -((-base_initial * tier.maintenance_fraction_ppm) // PPM)  # ceil: against trader
    if initial_margin_ppm == tier.initial_margin_ppm:
        return base_initial, maintenance
    return -((-abs_notional_quote_quantums * initial_margin_ppm) // PPM), maintenance  # ceil: against trader


def initial_margin_ppm_at(tier: LiquidityTier, open_interest_base_quantums: int, price_subticks: int,
                          quantum_conversion_divisor: int) -> int:
    """The market's initial margin fraction at this open interest (long size, base quantums),
    valued at the oracle price as dYdX v4 does for the OI-scaled fraction."""
    if not tier.open_interest_upper_cap_quote_quantums:
        return tier.initial_margin_ppm
    return adjusted_initial_margin_ppm(
        tier, notional_quote_quantums(open_interest_base_quantums, price_subticks, quantum_conversion_divisor))


def requirements_at(size_base_quantums: int, price_subticks: int, quantum_conversion_divisor: int,
                    tier: LiquidityTier, initial_margin_ppm: int) -> tuple[int, int, int]:
    """(signed notional, IMR, MMR) of one position, given the market's current initial margin
    fraction (`initial_margin_ppm_at`); a plain tuple because it runs several times a fill."""
    product = size_base_quantums * price_subticks
    # truncate toward zero, as notional_quote_quantums (inlined for the hot path)
    notional = product // quantum_conversion_divisor if product >= 0 else -((-product) // quantum_conversion_divisor)
    if not notional:
        return 0, 0, 0
    # `margin_requirements` inlined: both round up, against the trader
    absolute = notional if notional > 0 else -notional
    base_ppm = tier.initial_margin_ppm
    base_initial = -((-absolute * base_ppm) // PPM)
    maintenance = -((-base_initial * tier.maintenance_fraction_ppm) // PPM)
    if initial_margin_ppm == base_ppm:
        return notional, base_initial, maintenance
    return notional, -((-absolute * initial_margin_ppm) // PPM), maintenance


def moved_risk(risk: Risk, usdc_delta_quote_quantums: int, size_before_base_quantums: int,
               size_after_base_quantums: int, price_subticks: int, quantum_conversion_divisor: int,
               tier: LiquidityTier, initial_margin_ppm: int) -> Risk:
    """An account's risk after its USDC moved by a delta and one position went from one size to another, given
    its risk before: an account's risk is USDC plus one term per position, so swapping that one term is exact
    (the same integers as a recount). Liquidation drafts and the rollup's deleverage check use it."""
    old = requirements_at(size_before_base_quantums, price_subticks, quantum_conversion_divisor, tier,
                          initial_margin_ppm)
    new = requirements_at(size_after_base_quantums, price_subticks, quantum_conversion_divisor, tier,
                          initial_margin_ppm)
    return Risk(risk[0] + usdc_delta_quote_quantums + new[0] - old[0], risk[1] + new[1] - old[1],
                risk[2] + new[2] - old[2])


def position_risk(size_base_quantums: int, price_subticks: int, quantum_conversion_divisor: int,
                  tier: LiquidityTier, open_interest_base_quantums: int = 0) -> Risk:
    """Risk of one perpetual position at the oracle price: NC is its signed notional, and
    the market's open interest (long size, base quantums) sets the initial fraction."""
    imf = initial_margin_ppm_at(tier, open_interest_base_quantums, price_subticks, quantum_conversion_divisor)
    return Risk(*requirements_at(size_base_quantums, price_subticks, quantum_conversion_divisor, tier, imf))


class PricedMarket(Protocol):
    """What margin needs of a market: parameters, oracle price, open interest, and the initial
    margin fraction at that open interest (`initial_margin_ppm_at`, kept current by the owner)."""

    # read-only properties, so a plain attribute (MarketState) and a computed one (the screen's
    # markets) both qualify
    @property
    def params(self) -> MarketParams: ...
    @property
    def oracle_price_subticks(self) -> int | None: ...
    @property
    def open_interest_base_quantums(self) -> int: ...
    @property
    def quantum_conversion_divisor(self) -> int: ...
    @property
    def initial_margin_ppm(self) -> int: ...


def positions_risk(positions: Mapping[str, int], markets: Mapping[str, PricedMarket],
                   skip_market_id: str | None = None) -> Risk:
    """Sum of `position_risk` over positions (market id -> signed base quantums), at each
    market's oracle price and initial fraction; `skip_market_id` leaves one market out."""
    net = initial = maintenance = 0
    for market_id, size in positions.items():
        if market_id == skip_market_id:
            continue
        market = markets[market_id]
        price = market.oracle_price_subticks
        if price is None:  # a position exists only in a market that had a price: a broken state
            raise InvariantViolation(f"position in {market_id}, which has no oracle price")
        # `requirements_at` and `margin_requirements` inlined (this sum runs for every order and fill):
        # notional truncated toward zero, IMR and MMR rounded up against the trader, as there.
        product = size * price
        divisor = market.quantum_conversion_divisor
        if product >= 0:
            absolute = product // divisor
            net += absolute
        else:
            absolute = (-product) // divisor
            net -= absolute
        if not absolute:
            continue
        tier = market.params.liquidity_tier
        base_ppm = tier.initial_margin_ppm
        base_initial = -((-absolute * base_ppm) // PPM)  # ceil: against trader
        maintenance -= (-base_initial * tier.maintenance_fraction_ppm) // PPM  # ceil: against trader
        imf = market.initial_margin_ppm
        initial += base_initial if imf == base_ppm else -((-absolute * imf) // PPM)  # ceil: against trader
    return Risk(net, initial, maintenance)


def account_risk(usdc_quote_quantums: int, positions: Mapping[str, int],
                 markets: Mapping[str, PricedMarket]) -> Risk:
    """Risk of a subaccount: USDC counts fully toward NC and needs no margin (dYdX v4
    x/assets/lib: USDC IMR = MMR = 0); positions add their notional and requirements."""
    risk = positions_risk(positions, markets)
    return Risk(usdc_quote_quantums + risk[0], risk[1], risk[2])
