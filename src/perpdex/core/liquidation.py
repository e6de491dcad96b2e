"""Liquidation and deleveraging math as pure functions: bankruptcy and fillable price, insurance fund
delta, per-block limits, deleveraging offsets and their order. Numbers in, numbers out, exact."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cmp_to_key
from typing import Any, NamedTuple

from perpdex.core.errors import InvariantViolation, ParamsError, PerpdexError
from perpdex.core.margin import Risk, margin_requirements
from perpdex.core.params import MarketParams
from perpdex.core.units import (
    MAX_SUBTICKS,
    PPM,
    base_to_quote_quantums,
    div_ceil,
    div_floor,
    div_trunc,
    mul_ppm,
)

# Sources: dydxprotocol/v4-chain @84d4664, paths under protocol/:
#   x/clob/keeper/liquidations.go       (L)   x/clob/keeper/deleveraging.go      (D)
#   x/clob/types/liquidations_config.go (C)   x/clob/keeper/liquidations_state.go (S)
#   x/clob/keeper/process_single_match.go (M), x/clob/memclob/memclob.go (MC)


# --- errors ---------------------------------------------------------------------------------
# These belong in core/errors.py (a `LiquidationError` group); they live here only until the
# integration moves them, since this module was written without touching existing files.
class LiquidationError(PerpdexError):
    code = "liquidation.invalid"


class InvalidPositionDeltaError(LiquidationError):
    """dYdX ErrInvalidPerpetualPositionSizeDelta: the delta must shrink the position, not flip it."""

    code = "liquidation.invalid_position_delta"


class InvalidFillAmountError(LiquidationError):
    """dYdX ErrInvalidQuantumsForInsuranceFundDeltaCalculation."""

    code = "liquidation.invalid_fill_amount"


class MarketAlreadyLiquidatedError(LiquidationError):
    """dYdX ErrSubaccountHasLiquidatedPerpetual: one liquidation per subaccount and market per window."""

    code = "liquidation.market_already_liquidated"


class MaxNotionalLiquidatedError(LiquidationError):
    """dYdX ErrLiquidationExceedsSubaccountMaxNotionalLiquidated."""

    code = "liquidation.exceeds_max_notional_liquidated"


class MaxInsuranceLostError(LiquidationError):
    """dYdX ErrLiquidationExceedsSubaccountMaxInsuranceLost."""

    code = "liquidation.exceeds_max_insurance_lost"


class InsuranceFundInsufficientError(LiquidationError):
    """dYdX ErrInsuranceFundHasInsufficientFunds: the fill would need more than the fund holds."""

    code = "liquidation.insurance_fund_insufficient"


# --- configuration -------------------------------------------------------------------------
LIQUIDATION_POLICIES = ("dydx", "hyperliquid", "paradex")


@dataclass(frozen=True, slots=True)
class LiquidationsConfig:
    """dYdX v4 LiquidationsConfig, flattened; defaults are dydx-mainnet-1 genesis
    (protocol/testing/mainnet/genesis.json, also scripts/genesis/sample_pregenesis.json).

    dYdX name -> field: MaxLiquidationFeePpm -> max_liquidation_fee_ppm;
    PositionBlockLimits.{MinPositionNotionalLiquidated, MaxPositionPortionLiquidatedPpm} ->
    min_position_notional_liquidated_quote_quantums, max_position_portion_liquidated_ppm;
    SubaccountBlockLimits.{MaxNotionalLiquidated, MaxQuantumsInsuranceLost} ->
    max_notional_liquidated_quote_quantums, max_insurance_lost_quote_quantums;
    FillablePriceConfig.{BankruptcyAdjustmentPpm, SpreadToMaintenanceMarginRatioPpm} ->
    bankruptcy_adjustment_ppm, spread_to_maintenance_margin_ratio_ppm.
    (x/clob/types LiquidationsConfig_Default, the module's code default, differs: fee 5_000,
    spread ratio 100_000, min notional 1_000, portion 100%, both subaccount limits 1e14.)
    """

    max_liquidation_fee_ppm: int = 15_000  # 1.5% of fill value
    min_position_notional_liquidated_quote_quantums: int = 1_000_000_000  # $1,000
    max_position_portion_liquidated_ppm: int = 100_000  # 10% of a position per window
    max_notional_liquidated_quote_quantums: int = 100_000_000_000  # $100,000 per subaccount per window
    max_insurance_lost_quote_quantums: int = 1_000_000_000_000  # $1,000,000 per subaccount per window
    bankruptcy_adjustment_ppm: int = 1_000_000  # 1x
    spread_to_maintenance_margin_ratio_ppm: int = 1_500_000  # max spread = 1.5 x position MMR
    # Which venue's waterfall runs (the loss-waterfall lab compares them on one order flow):
    # "dydx" (above), or "hyperliquid": market orders on the book in partial steps with a cooldown,
    # a backstop vault taking over below 2/3 of maintenance, then auto-deleveraging the vault
    # (Hyperliquid docs, "Liquidations"; figures below are theirs where they publish them).
    policy: str = "dydx"
    partial_step_ppm: int = 200_000  # Hyperliquid: 20% of a large position per step
    partial_above_notional_quote_quantums: int = 100_000_000_000  # positions over $100k go in steps
    partial_cooldown_ms: int = 30_000  # between partial steps of one subaccount
    backstop_equity_ppm: int = 666_667  # backstop vault takes over when NC < 2/3 x MMR
    market_order_slippage_ppm: int = 100_000  # the liquidation market order's worst price: oracle -/+ 10%
    # "paradex": the insurance fund is the liquidator: it takes an equal share of every position at
    # the oracle price (the smallest share that restores maintenance) for a penalty of
    # max_liquidation_fee_ppm of what it takes; a bankrupt account's shortfall becomes a socialized
    # loss repaid by a haircut on withdrawals (Paradex docs, "Liquidations" and "Socialized loss").

    def validate(self) -> None:
        """(C) LiquidationsConfig.Validate, in its order, then the policy's own fields; raises
        ParamsError naming the field.

        dYdX's fields are unsigned, so a negative value is rejected here too; the minimum
        position notional is otherwise not validated, as in dYdX.
        """
        checks = (
            ("bankruptcy_adjustment_ppm", self.bankruptcy_adjustment_ppm >= PPM,
             "must be at least 1e6 ppm (1x)"),
            ("spread_to_maintenance_margin_ratio_ppm", self.spread_to_maintenance_margin_ratio_ppm > 0,
             "must be positive"),
            ("max_liquidation_fee_ppm", 0 < self.max_liquidation_fee_ppm <= PPM, "must be within (0, 1e6] ppm"),
            ("max_position_portion_liquidated_ppm", 0 < self.max_position_portion_liquidated_ppm <= PPM,
             "must be within (0, 1e6] ppm"),
            ("max_notional_liquidated_quote_quantums", self.max_notional_liquidated_quote_quantums > 0,
             "must be positive"),
            ("max_insurance_lost_quote_quantums", self.max_insurance_lost_quote_quantums > 0, "must be positive"),
            ("min_position_notional_liquidated_quote_quantums",
             self.min_position_notional_liquidated_quote_quantums >= 0, "must not be negative"),
        )
        for name, ok, message in checks:
            if not ok:
                raise ParamsError(f"{name} {message}", field=f"liquidations_config.{name}",
                                  value=getattr(self, name))
        if self.policy not in LIQUIDATION_POLICIES:
            raise ParamsError(f"policy must be one of {', '.join(LIQUIDATION_POLICIES)}",
                              field="liquidations_config.policy", value=self.policy)
        for name, low, high in (("partial_step_ppm", 1, 1_000_000), ("backstop_equity_ppm", 0, 1_000_000),
                                ("market_order_slippage_ppm", 1, 999_999)):
            value = getattr(self, name)
            if not low <= value <= high:
                raise ParamsError(f"{name} must be within [{low}, {high}]", field=f"liquidations_config.{name}",
                                  value=value)
        if self.partial_cooldown_ms < 0 or self.partial_above_notional_quote_quantums < 0:
            raise ParamsError("cooldown and partial threshold must not be negative",
                              field="liquidations_config.partial_cooldown_ms", value=self.partial_cooldown_ms)


@dataclass(frozen=True, slots=True)
class SubaccountLiquidationInfo:
    """What one subaccount has had liquidated in the current window (dYdX: the current block;
    (S) SubaccountLiquidationInfo in the transient store). The exchange starts a fresh one per
    window and replaces it with `with_market_liquidated` / `with_fill` as fills happen."""

    notional_liquidated_quote_quantums: int = 0  # sum of |fill notional at the oracle price|
    insurance_lost_quote_quantums: int = 0  # sum of what the fund paid (negative deltas), as a positive number
    markets_liquidated: frozenset[str] = field(default_factory=frozenset)

    def has_liquidated(self, market_id: str) -> bool:
        return market_id in self.markets_liquidated

    def with_market_liquidated(self, market_id: str) -> SubaccountLiquidationInfo:
        """(S) MustUpdateSubaccountPerpetualLiquidated: a second liquidation of the same market in one
        window is a bug of the caller (dYdX panics)."""
        if market_id in self.markets_liquidated:
            raise InvariantViolation(f"market {market_id} already liquidated for this subaccount in this window")
        return SubaccountLiquidationInfo(self.notional_liquidated_quote_quantums, self.insurance_lost_quote_quantums,
                                         self.markets_liquidated | {market_id})

    def with_fill(self, notional_liquidated_quote_quantums: int,
                  insurance_fund_delta_quote_quantums: int) -> SubaccountLiquidationInfo:
        """(S) UpdateSubaccountLiquidationInfo: add |notional|, and what the fund paid if it paid."""
        lost = self.insurance_lost_quote_quantums
        if insurance_fund_delta_quote_quantums < 0:
            lost -= insurance_fund_delta_quote_quantums
        return SubaccountLiquidationInfo(
            self.notional_liquidated_quote_quantums + abs(notional_liquidated_quote_quantums), lost,
            self.markets_liquidated)


NO_LIQUIDATIONS = SubaccountLiquidationInfo()


# --- shared helpers -------------------------------------------------------------------------
def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


def position_maintenance_risk(size_base_quantums: int, params: MarketParams, oracle_price_subticks: int) -> Risk:
    """Risk of one position as liquidation sees it: signed notional at the oracle price (truncated
    toward zero, units.base_to_quote_quantums), IMR at the tier's base fraction and MMR
    (margin.margin_requirements, both rounded up). Liquidation never uses open-interest scaling
    or a custom leverage (dYdX passes customImf 0), and the MMR never depends on either."""
    notional = base_to_quote_quantums(size_base_quantums, oracle_price_subticks, params.quantum_conversion_exponent)
    if not notional:
        return Risk(0, 0, 0)
    tier = params.liquidity_tier
    initial, maintenance = margin_requirements(abs(notional), tier, tier.initial_margin_ppm)
    return Risk(notional, initial, maintenance)


def _position_notional_and_maintenance(size_base_quantums: int, params: MarketParams,
                                       oracle_price_subticks: int) -> tuple[int, int]:
    """(net collateral, maintenance requirement) of `position_maintenance_risk`, as a plain pair
    for the per-fill paths that read nothing else."""
    notional = base_to_quote_quantums(size_base_quantums, oracle_price_subticks, params.quantum_conversion_exponent)
    if not notional:
        return 0, 0
    tier = params.liquidity_tier
    return notional, margin_requirements(abs(notional), tier, tier.initial_margin_ppm)[1]


def _subticks_per_quote_per_base(quantum_conversion_exponent: int) -> tuple[int, int]:
    """10**-qce as an exact (numerator, denominator) pair of positive integers: quote = base x
    subticks x 10**qce (units.base_to_quote_quantums), so a price in quote quantums per base
    quantum times 10**-qce is a price in subticks. Integers, not a Fraction: the callers
    cross-multiply and round once, which gives the same result as rounding the exact ratio."""
    if quantum_conversion_exponent <= 0:
        return 10 ** -quantum_conversion_exponent, 1
    return 1, 10 ** quantum_conversion_exponent


def quote_to_base_quantums(quote_quantums: int, price_subticks: int, quantum_conversion_exponent: int) -> int:
    """Base quantums worth `quote_quantums` at a price: quote x 10**-qce / subticks, truncated toward
    zero (dYdX lib/quantums.go QuoteToBaseQuantums truncates twice; for integers that equals one
    truncation of the exact ratio). Never overstates the size a notional buys."""
    numerator, denominator = _subticks_per_quote_per_base(quantum_conversion_exponent)
    return div_trunc(quote_quantums * numerator, denominator * price_subticks)  # toward zero, as dYdX


def validate_position_delta(position_size_base_quantums: int, delta_base_quantums: int) -> None:
    """A liquidation or deleveraging delta must have the opposite sign of the position and be no
    larger: it reduces the position, possibly to zero (L, D: ErrInvalidPerpetualPositionSizeDelta).
    Raises InvalidPositionDeltaError."""
    if position_size_base_quantums > 0:
        reduces = -position_size_base_quantums <= delta_base_quantums < 0
    else:  # a zero position has nothing to reduce
        reduces = 0 < delta_base_quantums <= -position_size_base_quantums
    if not reduces:
        raise InvalidPositionDeltaError(
            f"delta {delta_base_quantums} does not reduce position {position_size_base_quantums}",
            field="delta_base_quantums", value=delta_base_quantums)


def _require_maintenance(account_risk: Risk) -> None:
    if account_risk.maintenance_requirement <= 0:
        # dYdX divides by TMMR and would panic; an account without a requirement has nothing to liquidate.
        raise LiquidationError("the account has no maintenance requirement",
                               field="maintenance_requirement", value=account_risk.maintenance_requirement)


# --- liquidatable? and which account first -------------------------------------------------
# Whether an account is liquidatable is margin.Risk.is_liquidatable (MMR > 0 and NC < MMR,
# dYdX lib/margin/risk.go), computed over the whole cross subaccount or the isolated one alone.

def order_liquidation_candidates(candidates: Iterable[tuple[Any, Risk]]) -> list[Any]:
    """Subaccount ids, riskiest first (Risk.compare_riskiness: lowest NC/MMR, cross-multiplied),
    ties by subaccount id ascending. perpdex's replacement for (L) LiquidateSubaccountsAgainstOrderbook's
    pseudo-random start plus SortLiquidationOrders: the order follows from state alone.

    When every MMR is positive (always so for liquidatable accounts) the sort runs on an integer
    key, floor(NC x 2**64 / MMR) (floor: monotone, so a lower key is a strictly lower ratio), then
    -MMR and the id; only runs of equal first keys are re-sorted by the exact comparison. The order
    is the comparison's own, without one Python call per comparison.
    """
    def compare(left: tuple[Any, Risk], right: tuple[Any, Risk]) -> int:
        by_risk = right[1].compare_riskiness(left[1])  # riskier sorts first
        if by_risk:
            return by_risk
        return -1 if left[0] < right[0] else (1 if left[0] > right[0] else 0)
    candidates = list(candidates)
    if not all(risk.maintenance_requirement > 0 for _, risk in candidates):
        return [subaccount_id for subaccount_id, _ in sorted(candidates, key=cmp_to_key(compare))]
    # floor: monotone in NC/MMR, so a lower key always means a strictly lower ratio
    floors = [(risk.net_collateral << 64) // risk.maintenance_requirement for _, risk in candidates]
    if len(set(floors)) == len(floors):  # no two keys equal: they alone give the order
        return [candidates[index][0] for index in sorted(range(len(floors)), key=floors.__getitem__)]
    keyed = sorted((floors[index], -risk.maintenance_requirement, subaccount_id, index)
                   for index, (subaccount_id, risk) in enumerate(candidates))
    ordered: list[Any] = []
    start, count = 0, len(keyed)
    while start < count:
        end = start + 1
        while end < count and keyed[end][0] == keyed[start][0]:
            end += 1
        run = [candidates[entry[3]] for entry in keyed[start:end]]
        if end - start > 1:  # equal floors: the ratios may still differ, compare them exactly
            run.sort(key=cmp_to_key(compare))
        ordered.extend(subaccount_id for subaccount_id, _ in run)
        start = end
    return ordered


def maybe_position_to_liquidate(positions: Mapping[str, int],
                                info: SubaccountLiquidationInfo = NO_LIQUIDATIONS) -> str | None:
    """(L) GetPerpetualPositionToLiquidate: the market of the position to liquidate next, or None when
    every position was already liquidated in this window (dYdX ErrNoPerpetualPositionsToLiquidate).

    dYdX starts from a pseudo-random position; perpdex takes the smallest market id not yet
    liquidated (dYdX's own comment: "the position with smallest id will be liquidated first").
    """
    for market_id in sorted(positions):
        if positions[market_id] and not info.has_liquidated(market_id):
            return market_id
    return None


# --- bankruptcy price ----------------------------------------------------------------------
def bankruptcy_price_quote_quantums(position_size_base_quantums: int, delta_base_quantums: int, *,
                                    params: MarketParams, oracle_price_subticks: int, account_risk: Risk) -> int:
    """Quote quantums the account must receive (negative: may pay at most) for changing its position
    by `delta_base_quantums` without ending below zero net collateral share: (L)
    GetBankruptcyPriceInQuoteQuantums, `-DNNV - TNC x |DMMR| / TMMR`.

    DNNV and DMMR are the position's notional and maintenance requirement after minus before the
    delta (recomputed, not derived from the delta, so rounding matches the margin check); TNC and
    TMMR are the account's (`account_risk`, the whole cross subaccount or the isolated one).
    The one division floors (Go's big.Int Div is Euclidean, = floor for TMMR > 0, also for TNC < 0),
    and it is subtracted, so the result rounds toward +inf: in favour of the liquidated account by
    under one quantum, so that closing at this amount leaves it no riskier (its margin check
    passes) and no insurance payment is needed at exactly this price.
    Raises InvalidPositionDeltaError, or LiquidationError if the account has no maintenance requirement.
    """
    validate_position_delta(position_size_base_quantums, delta_base_quantums)
    notional_before, maintenance_before = _position_notional_and_maintenance(
        position_size_base_quantums, params, oracle_price_subticks)
    notional_after, maintenance_after = _position_notional_and_maintenance(
        position_size_base_quantums + delta_base_quantums, params, oracle_price_subticks)
    delta_net_notional = notional_after - notional_before
    delta_maintenance = maintenance_after - maintenance_before
    if delta_maintenance > 0:
        raise InvariantViolation("a reducing delta raised the maintenance requirement")  # dYdX panics
    _require_maintenance(account_risk)
    # floor: toward -inf, so the subtraction below rounds the result up (for the liquidated account)
    collateral_share = div_floor(account_risk.net_collateral * -delta_maintenance,
                                 account_risk.maintenance_requirement)
    return -delta_net_notional - collateral_share


def bankruptcy_price_subticks(bankruptcy_quote_quantums: int, delta_base_quantums: int,
                              quantum_conversion_exponent: int) -> int:
    """The bankruptcy amount as a price per unit in subticks, for events and reports:
    -quote / delta x 10**-qce. Closing a long (delta < 0, a sell) rounds up and closing a short
    (a buy) rounds down, so a fill at the rounded price never needs the insurance fund. Can be
    zero or negative when the account can close at any price. Raises ValueError on a zero delta."""
    if not delta_base_quantums:
        raise ValueError("delta_base_quantums must not be zero")
    numerator, denominator = _subticks_per_quote_per_base(quantum_conversion_exponent)
    numerator *= -bankruptcy_quote_quantums
    denominator *= delta_base_quantums
    if denominator < 0:  # the exact ratio with a positive denominator, so floor and ceil act on its value
        numerator, denominator = -numerator, -denominator
    if delta_base_quantums < 0:
        return div_ceil(numerator, denominator)  # up: sell no lower than bankruptcy
    return div_floor(numerator, denominator)  # down: buy no higher than bankruptcy


# --- fillable price ------------------------------------------------------------------------
def fillable_price(position_size_base_quantums: int, delta_base_quantums: int, *, params: MarketParams,
                   oracle_price_subticks: int, account_risk: Risk, config: LiquidationsConfig) -> Fraction:
    """The worst price a liquidation order may fill at, exact, in quote quantums per base quantum:
    (L) GetFillablePrice, `(PNNV - ABR x SMMR x PMMR) / PS` with
    `ABR = clamp(BA x (1 - TNC / TMMR), 0, 1)`.

    PS, PNNV, PMMR: the position's size, notional and maintenance requirement at the oracle price;
    TNC, TMMR: the account's. ABR (adjusted bankruptcy rating) is 0 at maintenance and reaches 1
    at zero net collateral (sooner with BA > 1x); the price then sits SMMR x PMMR (the max spread)
    away from the oracle: below it for a long, above for a short. The price depends on the whole
    position, not on the delta, which is only validated (as in dYdX). Convert it with
    `fillable_price_to_subticks`. Raises InvalidPositionDeltaError or LiquidationError.
    The exchange's hot path uses `fillable_price_ratio` (the same value as two integers).
    """
    numerator, denominator = fillable_price_ratio(
        position_size_base_quantums, delta_base_quantums, params=params, oracle_price_subticks=oracle_price_subticks,
        account_risk=account_risk, config=config)
    return Fraction(numerator, denominator)


def fillable_price_ratio(position_size_base_quantums: int, delta_base_quantums: int, *, params: MarketParams,
                         oracle_price_subticks: int, account_risk: Risk, config: LiquidationsConfig
                         ) -> tuple[int, int]:
    """`fillable_price` as an unreduced (numerator, denominator > 0) pair of integers, no Fraction.

    With ABR = rn / rd, rn = BA x (TMMR - TNC) clamped to [0, rd], rd = 1e6 x TMMR (TMMR > 0) and
    the max spread PMMR x SMMR / 1e6, the price is
    (PNNV x rd x 1e6 - rn x PMMR x SMMR) / (rd x 1e6 x PS): exact, nothing rounds here (the one
    rounding is `fillable_price_ratio_to_subticks`'s). Same checks and errors as `fillable_price`.
    """
    validate_position_delta(position_size_base_quantums, delta_base_quantums)
    _require_maintenance(account_risk)
    position_notional, position_maintenance = _position_notional_and_maintenance(
        position_size_base_quantums, params, oracle_price_subticks)
    total_maintenance = account_risk.maintenance_requirement
    rating_denominator = PPM * total_maintenance  # > 0
    rating_numerator = config.bankruptcy_adjustment_ppm * (total_maintenance - account_risk.net_collateral)
    if rating_numerator < 0:  # clamp ABR to [0, 1]
        rating_numerator = 0
    elif rating_numerator > rating_denominator:
        rating_numerator = rating_denominator
    numerator = (position_notional * rating_denominator * PPM
                 - rating_numerator * position_maintenance * config.spread_to_maintenance_margin_ratio_ppm)
    denominator = rating_denominator * PPM * position_size_base_quantums
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    if numerator < 0:  # dYdX panics: only a bug gets here
        raise InvariantViolation(f"negative fillable price {Fraction(numerator, denominator)}")
    return numerator, denominator


def fillable_price_to_subticks(fillable_price_quote_per_base: Fraction, *, is_liquidating_long: bool,
                               quantum_conversion_exponent: int, subticks_per_tick: int,
                               max_subticks: int = MAX_SUBTICKS) -> int:
    """(L) ConvertFillablePriceToSubticks: the liquidation order's limit price on the tick grid.

    Liquidating a long is a sell: round up to a subtick, then up to a tick, so it never sells below
    the fillable price; liquidating a short (a buy) rounds down both times. The result is clamped to
    [subticks_per_tick, the largest tick multiple <= max_subticks] (dYdX: MaxUint64; perpdex's
    order bound is units.MAX_SUBTICKS). A negative price is a bug (InvariantViolation).
    """
    price = Fraction(fillable_price_quote_per_base)
    return fillable_price_ratio_to_subticks(price.numerator, price.denominator,
                                            is_liquidating_long=is_liquidating_long,
                                            quantum_conversion_exponent=quantum_conversion_exponent,
                                            subticks_per_tick=subticks_per_tick, max_subticks=max_subticks)


def fillable_price_ratio_to_subticks(numerator: int, denominator: int, *, is_liquidating_long: bool,
                                     quantum_conversion_exponent: int, subticks_per_tick: int,
                                     max_subticks: int = MAX_SUBTICKS) -> int:
    """`fillable_price_to_subticks` of the price numerator / denominator (denominator > 0, as
    `fillable_price_ratio` returns it): subticks = numerator x 10**-qce / denominator, rounded
    once from the exact value, so the result equals the Fraction path's."""
    if numerator < 0:
        raise InvariantViolation("fillable price must not be negative")
    scale_numerator, scale_denominator = _subticks_per_quote_per_base(quantum_conversion_exponent)
    numerator *= scale_numerator
    denominator *= scale_denominator
    if is_liquidating_long:
        rounded = div_ceil(numerator, denominator)  # up: the sell never undercuts
        aligned = div_ceil(rounded, subticks_per_tick) * subticks_per_tick  # up to a tick, same reason
    else:
        rounded = div_floor(numerator, denominator)  # down: the buy never overpays
        aligned = div_floor(rounded, subticks_per_tick) * subticks_per_tick
    upper = max_subticks - max_subticks % subticks_per_tick
    return min(max(aligned, subticks_per_tick), upper)


# --- insurance fund ------------------------------------------------------------------------
def insurance_fund_delta(*, is_buy: bool, fill_base_quantums: int, fill_price_subticks: int,
                         quantum_conversion_exponent: int, bankruptcy_quote_quantums: int,
                         max_liquidation_fee_ppm: int) -> int:
    """What the liquidated account pays the insurance fund for one fill (negative: the fund pays
    it): (L) GetLiquidationInsuranceFundDelta.

    `is_buy` is the liquidation order's side (a buy closes a short); the fill is at the maker's
    price. `bankruptcy_quote_quantums` is `bankruptcy_price_quote_quantums` for this fill's
    delta (+fill for a buy, -fill for a sell), on the state before the fill. With the account's
    quote delta q (+fill value for a sell, -fill value for a buy; the fill value floors, dYdX
    FillAmountToQuoteQuantums) and bankruptcy amount b: if q <= b the fund covers the shortfall,
    q - b; else the account pays min(q - b, fee cap), the cap being max_liquidation_fee_ppm of |q|
    rounded down (for the liquidated account). Raises InvalidFillAmountError on a non-positive fill.
    """
    if fill_base_quantums <= 0:
        raise InvalidFillAmountError("fill amount must be positive", field="fill_base_quantums",
                                     value=fill_base_quantums)
    fill_quote = base_to_quote_quantums(fill_base_quantums, fill_price_subticks, quantum_conversion_exponent)
    delta_quote = -fill_quote if is_buy else fill_quote
    surplus = delta_quote - bankruptcy_quote_quantums
    if surplus <= 0:
        return surplus
    max_fee = mul_ppm(abs(delta_quote), max_liquidation_fee_ppm, round_up=False)  # down: for the liquidated
    return min(max_fee, surplus)


def is_valid_insurance_fund_delta(insurance_fund_balance_quote_quantums: int,
                                  insurance_fund_delta_quote_quantums: int) -> bool:
    """(D) IsValidInsuranceFundDelta: a payment into the fund is always valid; a payout only if the
    fund (the market's own fund for an isolated market) stays non-negative."""
    return (insurance_fund_delta_quote_quantums >= 0
            or insurance_fund_balance_quote_quantums + insurance_fund_delta_quote_quantums >= 0)


# --- per-window limits ---------------------------------------------------------------------
def position_notional_liquidatable_bounds(position_notional_quote_quantums: int,
                                          config: LiquidationsConfig) -> tuple[int, int]:
    """(min, max) notional of one position to liquidate in a window: (L)
    GetMaxAndMinPositionNotionalLiquidatable. min = min(config minimum, |notional|);
    max = max(min, |notional| x max portion, rounded down so no more than the portion goes)."""
    abs_notional = abs(position_notional_quote_quantums)
    minimum = min(config.min_position_notional_liquidated_quote_quantums, abs_notional)
    portion = mul_ppm(abs_notional, config.max_position_portion_liquidated_ppm, round_up=False)  # down: for trader
    return minimum, max(minimum, portion)


def subaccount_max_notional_liquidatable(info: SubaccountLiquidationInfo, market_id: str,
                                         config: LiquidationsConfig) -> int:
    """(L) GetSubaccountMaxNotionalLiquidatable: what is left of the subaccount's notional limit
    this window. Raises MarketAlreadyLiquidatedError; a total already over the limit is a bug."""
    if info.has_liquidated(market_id):
        raise MarketAlreadyLiquidatedError(f"{market_id} was already liquidated for this subaccount",
                                           field="market_id", value=market_id)
    limit = config.max_notional_liquidated_quote_quantums
    if info.notional_liquidated_quote_quantums > limit:
        raise InvariantViolation(f"notional liquidated {info.notional_liquidated_quote_quantums} exceeds {limit}")
    return limit - info.notional_liquidated_quote_quantums


def subaccount_max_insurance_lost(info: SubaccountLiquidationInfo, market_id: str,
                                  config: LiquidationsConfig) -> int:
    """(L) GetSubaccountMaxInsuranceLost: what the fund may still pay for this subaccount this
    window. Raises MarketAlreadyLiquidatedError; a total already over the limit is a bug."""
    if info.has_liquidated(market_id):
        raise MarketAlreadyLiquidatedError(f"{market_id} was already liquidated for this subaccount",
                                           field="market_id", value=market_id)
    limit = config.max_insurance_lost_quote_quantums
    if info.insurance_lost_quote_quantums > limit:
        raise InvariantViolation(f"insurance lost {info.insurance_lost_quote_quantums} exceeds {limit}")
    return limit - info.insurance_lost_quote_quantums


def check_fill_against_subaccount_block_limits(info: SubaccountLiquidationInfo, market_id: str,
                                               fill_notional_quote_quantums: int,
                                               insurance_fund_delta_quote_quantums: int,
                                               config: LiquidationsConfig) -> None:
    """(L) validateLiquidationAgainstSubaccountBlockLimits, per fill: the fill's notional at the
    ORACLE price (not the fill price) within the notional left, and a fund payout within the
    insurance left. Raises MaxNotionalLiquidatedError / MaxInsuranceLostError (dYdX's matching
    then stops, (MC)) or MarketAlreadyLiquidatedError."""
    max_notional = subaccount_max_notional_liquidatable(info, market_id, config)
    if abs(fill_notional_quote_quantums) > max_notional:
        raise MaxNotionalLiquidatedError(f"fill notional exceeds the {max_notional} left this window",
                                         field="fill_notional_quote_quantums", value=fill_notional_quote_quantums)
    if insurance_fund_delta_quote_quantums < 0:
        max_lost = subaccount_max_insurance_lost(info, market_id, config)
        if -insurance_fund_delta_quote_quantums > max_lost:
            raise MaxInsuranceLostError(f"insurance payout exceeds the {max_lost} left this window",
                                        field="insurance_fund_delta_quote_quantums",
                                        value=insurance_fund_delta_quote_quantums)


def liquidatable_position_size_delta(position_size_base_quantums: int, *, params: MarketParams,
                                     oracle_price_subticks: int, config: LiquidationsConfig,
                                     info: SubaccountLiquidationInfo = NO_LIQUIDATIONS) -> int:
    """Signed delta (opposite to the position) of the liquidation order: (L)
    GetLiquidatablePositionSizeDelta.

    Max notional = min(position max from `position_notional_liquidatable_bounds`, subaccount
    notional left). If the whole position's notional fits, or the position is at most one step,
    the whole position goes (no rounding). Otherwise the max notional converts to base quantums
    at the oracle price (truncated), rounds DOWN to a step multiple (never over the limit) and is
    clamped to [one step, |position|]. Raises MarketAlreadyLiquidatedError.
    """
    if not position_size_base_quantums:
        raise LiquidationError("no position to liquidate", field="position_size_base_quantums", value=0)
    qce = params.quantum_conversion_exponent
    notional = base_to_quote_quantums(position_size_base_quantums, oracle_price_subticks, qce)
    _, position_max = position_notional_liquidatable_bounds(notional, config)
    subaccount_max = subaccount_max_notional_liquidatable(info, params.market_id, config)
    max_quote = min(position_max, subaccount_max)
    step = params.step_base_quantums
    size = abs(position_size_base_quantums)
    if abs(notional) <= max_quote or size <= step:
        return -position_size_base_quantums
    abs_delta = quote_to_base_quantums(max_quote, oracle_price_subticks, qce)
    abs_delta = div_floor(abs_delta, step) * step  # down to a step: stay within the limit
    abs_delta = min(max(abs_delta, step), size)
    return -abs_delta if position_size_base_quantums > 0 else abs_delta


# --- deleveraging --------------------------------------------------------------------------
def can_deleverage(account_risk: Risk) -> bool:
    """(D) CanDeleverageSubaccount, bankruptcy-price branch: only an account with negative net
    collateral is deleveraged (perpdex has no final-settlement markets, dYdX's oracle-price branch)."""
    return account_risk.net_collateral < 0


def deleveraging_offset_base_quantums(remaining_delta_base_quantums: int, offsetting_position_base_quantums: int) -> int:
    """Delta (for the deleveraged account; the offsetting account gets its negation) taken from one
    offsetting position: (D) OffsetSubaccountPerpetualPosition. 0 unless the offsetting position
    is on the side of the remaining delta (opposite the deleveraged position); otherwise the
    smaller of the two in size."""
    if not remaining_delta_base_quantums or (
            _sign(remaining_delta_base_quantums) != _sign(offsetting_position_base_quantums)):
        return 0
    if abs(remaining_delta_base_quantums) > abs(offsetting_position_base_quantums):
        return offsetting_position_base_quantums
    return remaining_delta_base_quantums


def validate_deleveraging_delta(deleveraged_position_base_quantums: int, offsetting_position_base_quantums: int,
                                delta_base_quantums: int) -> None:
    """(D) ProcessDeleveraging's check: the delta reduces the deleveraged position and its negation
    reduces the offsetting one, neither past zero. Raises InvalidPositionDeltaError."""
    validate_position_delta(deleveraged_position_base_quantums, delta_base_quantums)
    validate_position_delta(offsetting_position_base_quantums, -delta_base_quantums)


class DeleveragingCandidate(NamedTuple):
    """One account that could take the other side of a deleveraged position, as the exchange sees
    it before the offset. `unrealized_pnl_quote_quantums`: notional minus the position's cost basis
    (`Subaccount.cost_basis`)."""

    subaccount_id: Hashable  # must be orderable (SubaccountId is)
    position_size_base_quantums: int  # signed, in the deleveraged market
    position_notional_quote_quantums: int  # signed, at the oracle price
    net_collateral_quote_quantums: int  # of the whole (cross) or isolated subaccount
    unrealized_pnl_quote_quantums: int


def deleveraging_order(candidates: Iterable[DeleveragingCandidate], *,
                       delta_base_quantums: int) -> list[DeleveragingCandidate]:
    """Offsetting accounts in the order to try them; deterministic from state.

    Rule: keep positions on the delta's side (opposite the deleveraged position). Rank by
    unrealized PnL x leverage, highest first, leverage = |position notional| / net collateral,
    compared exactly as fractions; accounts with net collateral <= 0 go last (no leverage is
    defined and they are themselves bankrupt). Ties by subaccount id ascending. dYdX (D) walks
    the accounts from a pseudo-random start instead; both then skip an account whose offset
    fails its margin check (margin.check_transition), and recompute the bankruptcy amount before
    each offset. With every PnL 0 the order is by subaccount id (the dYdX policy's fixed walk).
    """
    side = _sign(delta_base_quantums)
    eligible = [c for c in candidates if side and _sign(c.position_size_base_quantums) == side]

    def key(candidate: DeleveragingCandidate) -> tuple[int, Fraction, Any]:
        collateral = candidate.net_collateral_quote_quantums
        if collateral <= 0:
            return (1, Fraction(0), candidate.subaccount_id)
        score = Fraction(candidate.unrealized_pnl_quote_quantums * abs(candidate.position_notional_quote_quantums),
                         collateral)
        return (0, -score, candidate.subaccount_id)

    return sorted(eligible, key=key)


# --- Binance (for the risk lab's worked example) -------------------------------------------
def binance_isolated_liquidation_price(*, wallet_balance: Fraction | int | str, position_size: Fraction | int | str,
                                       entry_price: Fraction | int | str,
                                       maintenance_margin_rate: Fraction | int | str,
                                       maintenance_amount: Fraction | int | str) -> Fraction:
    """Binance USDⓈ-M one-way isolated liquidation price, exact, in human units (USDT, base units):
    LP = (WB + cum - side x |Q| x EP) / (|Q| x MMR - side x |Q|), side = +1 long, -1 short.

    The cross formula with TMM = UPNL = 0 ("How to Calculate Liquidation Price of USDⓈ-M Futures
    Contracts", binance.com support FAQ b3c689c1f50a44cabb3a84e663b81d93); WB is the isolated
    wallet balance, cum the bracket's maintenance amount, MMR the bracket's rate (recompute with
    the bracket at the result if it differs). Strings go through Fraction exactly. A result below
    zero means no liquidation (Binance shows "--"). Raises ValueError for a zero position or a long
    with MMR = 100%.
    """
    size = Fraction(position_size)
    if not size:
        raise ValueError("position_size must not be zero")
    side = 1 if size > 0 else -1
    quantity = abs(size)
    denominator = quantity * Fraction(maintenance_margin_rate) - side * quantity
    if not denominator:
        raise ValueError("no liquidation price: |Q| x MMR equals side x |Q|")
    numerator = Fraction(wallet_balance) + Fraction(maintenance_amount) - side * quantity * Fraction(entry_price)
    return numerator / denominator
