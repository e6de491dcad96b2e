"""Funding as pure math: premiums from the book, dYdX v4 aggregation and clamps, the funding index and
per-position settlement, and the venue models side by side. Numbers in, numbers out, exact integers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from fractions import Fraction
from itertools import chain
from typing import NamedTuple, NewType, Protocol, TypeVar

from perpdex.core.errors import InvariantViolation, OracleError, ParamsError
from perpdex.core.params import LiquidityTier
from perpdex.core.units import PPM, div_ceil, div_floor, div_trunc, median_int, mul_ppm

# --- units -------------------------------------------------------------------------------------
# dYdX v4 Perpetual.FundingIndex (x/perpetuals/funding/funding.go GetFundingIndexDelta): the cumulative
# funding of one base quantum of long, in ppm of a quote quantum, i.e. quote quantums per base quantum
# x 1e6. A long of `size` base quantums owes (index now - index at entry) x size / 1e6 quote quantums.
# Positive funding rates raise the index (longs pay shorts).
FundingIndex = NewType("FundingIndex", int)

FUNDING_PERIOD_MS = 8 * 3_600_000  # every rate here is "per 8 hours" (dYdX realizationPeriod 60*60*8 s)
HOUR_MS = 3_600_000
ONE_SECOND_MS = 1_000


# --- small exact helpers ----------------------------------------------------------------------------
def clamp(value: int, lower: int, upper: int) -> int:
    """value bounded to [lower, upper] (dYdX lib.BigIntClamp: below lower -> lower, above upper -> upper)."""
    return lower if value < lower else min(value, upper)


def clamp_abs(value: int, max_abs: int) -> tuple[int, bool]:
    """(value bounded to [-max_abs, max_abs], whether the bound was hit)."""
    bounded = clamp(value, -max_abs, max_abs)
    return bounded, bounded != value


def mean_trunc(values: Sequence[int]) -> int:
    """Mean rounded toward zero (dYdX lib/math.go AvgInt32: int64 sum / len, Go truncation).

    Toward zero never overstates the magnitude of a rate, so it never makes the paying side pay more.
    Raises ValueError on no values.
    """
    if not values:
        raise ValueError("mean of no values")
    return div_trunc(sum(values), len(values))


def linear_weighted_mean_trunc(values: Sequence[int]) -> int:
    """(1 x v1 + 2 x v2 + ... + n x vn) / (1 + 2 + ... + n), rounded toward zero; 0 for no values.

    Binance USD-M "Average Premium Index (P)": later samples of the interval weigh more
    (Binance "Introduction to Binance Futures Funding Rates"). Toward zero: never overstates the rate.
    """
    if not values:
        return 0
    weighted = sum(weight * value for weight, value in enumerate(values, start=1))
    count = len(values)
    return div_trunc(weighted, count * (count + 1) // 2)  # n(n+1) is even: exact


# --- margin-derived bounds (dYdX v4 x/perpetuals/types/liquidity_tier.go) -----------------------------
def maintenance_margin_ppm(initial_margin_ppm: int, maintenance_fraction_ppm: int) -> int:
    """IM x MF / 1e6 floored (LiquidityTier.GetMaintenanceMarginPpm, lib.BigIntMulPpm: big.Int Div)."""
    return mul_ppm(initial_margin_ppm, maintenance_fraction_ppm, round_up=False)  # floor, as dYdX


def max_abs_funding_clamp_ppm(initial_margin_ppm: int, maintenance_fraction_ppm: int, clamp_factor_ppm: int) -> int:
    """|rate| bound clamp_factor x (IM - MM), floored (LiquidityTier.GetMaxAbsFundingClampPpm).

    Used with FundingRateClampFactorPpm (default 6_000_000 = 600%) for the 8-hour funding rate and with
    PremiumVoteClampFactorPpm (default 60_000_000) for each premium vote (x/perpetuals/types/genesis.go).
    Floor: the bound is never wider than the formula.
    """
    maintenance = maintenance_margin_ppm(initial_margin_ppm, maintenance_fraction_ppm)
    if maintenance > initial_margin_ppm:
        raise InvariantViolation("maintenance margin above initial margin")
    return mul_ppm(clamp_factor_ppm, initial_margin_ppm - maintenance, round_up=False)  # floor, as dYdX


# --- impact prices and the premium (dYdX v4 x/clob/memclob/memclob.go) --------------------------------
def impact_price_subticks(levels: Iterable[tuple[int, int]], impact_notional_quote_quantums: int,
                          quantum_conversion_divisor: int) -> Fraction | None:
    """Average price of filling `impact_notional_quote_quantums` against one book side, exactly.

    `levels` are (price_subticks, size_base_quantums) best first, as `OrderBook.depth(is_buy)` gives them
    (bids for the impact bid, asks for the impact ask). Returns None when the side cannot absorb the
    notional (dYdX: impact bid = 0, impact ask = infinity). A zero notional gives the best price.

    dYdX v4 memclob.go getImpactPriceSubticks: each level's full notional is
    FillAmountToQuoteQuantums = floor(price x size / divisor); the last level contributes the fraction
    remaining / its notional of its size (exact rational); the accumulated base quantums round UP
    (lib.BigRatRound(_, true)) and the price is notional x divisor / base (GetAveragePriceSubticks).
    The ceil moves the result by less than one base quantum in the denominator and favours no side.
    dYdX walks orders, we walk levels: with step x tick a whole number of quote quantums
    (`MarketParams.validate`) each level's floor is exact, so the two agree. dYdX also skips makers that
    fail a collateral check; drop their sizes from `levels` before calling to do the same.
    """
    if impact_notional_quote_quantums < 0:
        raise ValueError("impact notional must not be negative")
    if quantum_conversion_divisor <= 0:
        raise ValueError("quantum conversion divisor must be positive")
    iterator = iter(levels)
    if impact_notional_quote_quantums == 0:
        for price_subticks, _ in iterator:
            return Fraction(price_subticks)
        return None
    remaining = impact_notional_quote_quantums
    accumulated = Fraction(0)
    for price_subticks, size_base_quantums in iterator:
        if remaining <= 0:
            break
        # floor: FillAmountToQuoteQuantums (BigIntMulPow10 roundUp=false); exact on grid levels
        level_quote = div_floor(price_subticks * size_base_quantums, quantum_conversion_divisor)
        if remaining > level_quote:
            accumulated += size_base_quantums
        else:
            accumulated += Fraction(remaining, level_quote) * size_base_quantums
        remaining -= level_quote
    if remaining > 0:
        return None
    # up: lib.BigRatRound(accumulatedBaseQuantums, true)
    base_quantums = div_ceil(accumulated.numerator, accumulated.denominator)
    return Fraction(impact_notional_quote_quantums * quantum_conversion_divisor, base_quantums)


def _ppm_over_index_trunc(price: Fraction | int, index_price_subticks: Fraction | int) -> int:
    """(price / index - 1) in ppm, rounded toward zero (dYdX getPricePremiumFromSide: BigRatRound up
    for negatives, down for positives). Toward zero never overstates the premium either way."""
    ratio = Fraction(price) * PPM / Fraction(index_price_subticks) - PPM
    return div_trunc(ratio.numerator, ratio.denominator)


def premium_ppm_from_impact_prices(impact_bid_subticks: Fraction | int | None,
                                   impact_ask_subticks: Fraction | int | None,
                                   index_price_subticks: Fraction | int) -> int:
    """[max(0, impact bid - index) - max(0, index - impact ask)] / index in ppm, toward zero.

    The premium of Binance USD-M, Hyperliquid and Paradex v2 (and dYdX's, for an uncrossed book). A side
    without depth (None) contributes nothing: impact bid 0, impact ask infinity (dYdX GetPricePremium doc;
    Paradex v2 "Insufficient depth ... that side's term is set to 0"). Raises OracleError on index <= 0.
    """
    if index_price_subticks <= 0:
        raise OracleError("premium needs a positive index price", field="index_price_subticks",
                          value=index_price_subticks)
    if impact_bid_subticks is not None and impact_bid_subticks > index_price_subticks:
        return _ppm_over_index_trunc(impact_bid_subticks, index_price_subticks)
    if impact_ask_subticks is not None and impact_ask_subticks < index_price_subticks:
        return _ppm_over_index_trunc(impact_ask_subticks, index_price_subticks)
    return 0


def book_premium_ppm(bid_levels: Iterable[tuple[int, int]], ask_levels: Iterable[tuple[int, int]],
                     index_price_subticks: Fraction | int, impact_notional_quote_quantums: int,
                     quantum_conversion_divisor: int, max_abs_premium_ppm: int) -> int:
    """One premium vote from the book, as dYdX v4 memclob.go GetPricePremium computes it.

    Empty book: 0. Index below the best bid: the impact bid decides (0 if the bid side lacks depth or the
    impact bid is at or below the index). Index above the best ask: the impact ask decides likewise.
    Otherwise 0 (impact bid <= best bid <= index <= best ask <= impact ask). The result, toward zero, is
    clamped to +/- `max_abs_premium_ppm` (GetMaxAbsFundingClampPpm(PremiumVoteClampFactorPpm)).
    Raises OracleError on index <= 0 (ErrZeroIndexPriceForPremiumCalculation) and InvariantViolation on a
    crossed book (dYdX panics). dYdX votes 0 for an inactive clob pair: the caller checks that.
    """
    if index_price_subticks <= 0:
        raise OracleError("premium needs a positive index price", field="index_price_subticks",
                          value=index_price_subticks)
    # Levels are read lazily: the best of each side decides the case, and only the impact walk
    # reads deeper (a whole book per vote would cost milliseconds on a deep book).
    bids, asks = iter(bid_levels), iter(ask_levels)
    best_bid, best_ask = next(bids, None), next(asks, None)
    if best_bid is None and best_ask is None:
        return 0
    if best_bid is not None and best_ask is not None and best_bid[0] >= best_ask[0]:
        raise InvariantViolation(f"crossed book: best bid {best_bid[0]} >= best ask {best_ask[0]}")
    if best_bid is not None and index_price_subticks < best_bid[0]:
        impact = impact_price_subticks(chain((best_bid,), bids), impact_notional_quote_quantums,
                                       quantum_conversion_divisor)
        if impact is None or index_price_subticks >= impact:
            return 0
    elif best_ask is not None and index_price_subticks > best_ask[0]:
        impact = impact_price_subticks(chain((best_ask,), asks), impact_notional_quote_quantums,
                                       quantum_conversion_divisor)
        if impact is None or index_price_subticks <= impact:
            return 0
    else:
        return 0
    return clamp(_ppm_over_index_trunc(impact, index_price_subticks), -max_abs_premium_ppm, max_abs_premium_ppm)


def premium_plus_clamped_interest_ppm(premium_ppm: int, interest_rate_ppm: int, interest_clamp_ppm: int) -> int:
    """F = P + clamp(I - P, -c, +c): the Binance / Hyperliquid / Paradex 8-hour rate before caps.

    Binance "Introduction to Binance Futures Funding Rates" and Hyperliquid "Funding" both give
    F = Average Premium Index (P) + clamp(interest rate - P, -0.05%, 0.05%) with I = 0.01% per 8 h.
    When |I - P| <= c, F = I exactly. Integers in, integer out: no rounding.
    """
    return premium_ppm + clamp(interest_rate_ppm - premium_ppm, -interest_clamp_ppm, interest_clamp_ppm)


# --- dYdX v4 aggregation (x/perpetuals/keeper/perpetual.go) --------------------------------------------
def expected_sample_count(funding_tick_interval_ms: int, sample_interval_ms: int) -> int:
    """ceil(tick / sample): the sample count a tick pads to (lib.MustDivideUint32RoundUp(tick, sample))."""
    return div_ceil(funding_tick_interval_ms, sample_interval_ms)  # up, as dYdX: 3601 s / 60 s -> 61


def premium_sample_ppm(votes_ppm: Sequence[int], *, num_vote_rounds: int, min_votes_per_sample: int) -> int:
    """One sample: the median of a sample epoch's premium votes, padded with zeros.

    perpetual.go processPremiumVotesIntoSamples -> processStoredPremiums(MinNumVotesPerSample,
    lib.MustGetMedian): the votes are padded with zeros to max(num_vote_rounds, min_votes_per_sample)
    (NumPremiums counts vote rounds, blocks in dYdX; zero votes need not be listed). The median of an even
    count is the middle pair's mean rounded half away from zero (lib/math.go Median; `units.median_int`).
    Raises ValueError when there are more votes than rounds (dYdX panics) or nothing to take a median of.
    """
    if len(votes_ppm) > num_vote_rounds:
        raise ValueError(f"{len(votes_ppm)} votes but only {num_vote_rounds} vote rounds")
    padding = max(num_vote_rounds, min_votes_per_sample) - len(votes_ppm)
    return median_int([*votes_ppm, *([0] * padding)])


def remove_sample_tails(samples_ppm: Sequence[int], tail_removal_rate_ppm: int) -> list[int]:
    """Drop a share of the lowest and highest samples (perpetual.go GetRemoveSampleTailsFunc).

    total = floor(len x 2 x rate / 1e6) (lib.Int64MulPpm); the bottom gets total // 2, the top the rest;
    nothing is removed (and nothing sorted) when total is 0 or would remove every sample. dYdX's
    RemovedTailSampleRatioPpm is 0 (x/perpetuals/types/constants.go), so today this is the identity.
    """
    total = mul_ppm(len(samples_ppm), tail_removal_rate_ppm * 2, round_up=False)  # floor, as Int64MulPpm
    if total == 0 or total >= len(samples_ppm):
        return list(samples_ppm)
    bottom = total // 2
    top = total - bottom
    return sorted(samples_ppm)[bottom:len(samples_ppm) - top]


def funding_tick_premium_ppm(samples_ppm: Sequence[int], *, num_sample_rounds: int, expected_samples: int,
                             tail_removal_rate_ppm: int = 0) -> int:
    """The tick's premium: MEAN of the samples padded with zeros to max(rounds, expected), toward zero.

    perpetual.go MaybeProcessNewFundingTickEpoch -> processStoredPremiums(minSampleRequiredForPremiumRate,
    lib.AvgInt32, GetRemoveSampleTailsFunc): a tick that saw 30 of 60 expected samples of 1_000 ppm gets
    500; more samples than expected divide by their own count. Zero samples listed may be omitted.
    """
    if len(samples_ppm) > num_sample_rounds:
        raise ValueError(f"{len(samples_ppm)} samples but only {num_sample_rounds} sample rounds")
    padded = [*samples_ppm, *([0] * (max(num_sample_rounds, expected_samples) - len(samples_ppm)))]
    if not padded:
        return 0
    return mean_trunc(remove_sample_tails(padded, tail_removal_rate_ppm))


class DydxTickRate(NamedTuple):
    """A dYdX funding tick's 8-hour rate: premium + default funding, clamped."""

    funding_rate_8h_ppm: int
    premium_ppm: int
    clamp_hit: bool


def dydx_funding_rate_ppm(premium_ppm: int, default_funding_ppm: int, max_abs_funding_rate_ppm: int) -> DydxTickRate:
    """rate = clamp(premium + default funding, +/- max) (MaybeProcessNewFundingTickEpoch), exact integers."""
    rate, hit = clamp_abs(premium_ppm + default_funding_ppm, max_abs_funding_rate_ppm)
    return DydxTickRate(rate, premium_ppm, hit)


# --- the funding index -------------------------------------------------------------------------------
def funding_index_delta_from_accrual(accrual_ppm_ms: int, oracle_price_subticks: int,
                                     quantum_conversion_exponent: int) -> int:
    """Index change for an accrued sum of (8-hour rate ppm x milliseconds) at one oracle price.

    delta = accrual x (quote quantums per base quantum) / 8 h, in ppm of a quote quantum per base
    quantum, where one base quantum is worth subticks x 10**qce quote quantums. Truncated toward zero
    ONCE. dYdX GetFundingIndexDelta truncates twice (BaseToQuoteQuantums Quo, then Quo by 28_800 s), but
    trunc(trunc(x / a) / b) == trunc(x / (a b)) for integers, and seconds -> milliseconds scales the
    numerator and the denominator alike, so the result is dYdX's bit for bit ("Negative Funding Rate
    (rounds towards zero)": -1_001, not floor's -1_002). The index is shared by both sides, so the
    truncation moves longs and shorts alike and keeps funding zero-sum: it favours no one.
    """
    numerator = accrual_ppm_ms * oracle_price_subticks
    denominator = FUNDING_PERIOD_MS
    if quantum_conversion_exponent >= 0:
        numerator *= 10**quantum_conversion_exponent
    else:
        denominator *= 10**-quantum_conversion_exponent
    return div_trunc(numerator, denominator)  # toward zero, as Go big.Int Quo


def funding_index_delta(funding_rate_8h_ppm: int, elapsed_ms: int, oracle_price_subticks: int,
                        quantum_conversion_exponent: int) -> int:
    """Index change of a rate held for `elapsed_ms` (dYdX x/perpetuals/funding/funding.go GetFundingIndexDelta):
    rate x elapsed / 8 h x quote quantums per base quantum, in ppm, truncated toward zero."""
    if elapsed_ms < 0:
        raise ValueError("elapsed time must not be negative")
    return funding_index_delta_from_accrual(funding_rate_8h_ppm * elapsed_ms, oracle_price_subticks,
                                            quantum_conversion_exponent)


# --- settlement (dYdX v4 x/perpetuals/lib/lib.go, x/subaccounts/lib/updates.go) ------------------------
def funding_settlement_ppm(size_base_quantums: int, entry_funding_index: int, funding_index: int) -> int:
    """What a position receives, in ppm of quote quantums: -(index now - index at entry) x size.

    lib.go GetSettlementPpmWithPerpetual: a long receives when the index fell, pays when it rose; a short
    the reverse. Exact: no rounding here.
    """
    return -(funding_index - entry_funding_index) * size_base_quantums


class SubaccountFunding(NamedTuple):
    """A subaccount's funding settlement.

    `collateral_delta_quote_quantums`: what its USDC changes by (floor of the summed ppm).
    `position_payments_quote_quantums`: per position, the payment dYdX reports to the indexer,
    -floor(settlement_ppm / 1e6) (positive = paid); their negated sum can exceed the collateral delta
    by up to n - 1 quantums, so events should carry the ppm figures or the delta.
    `dust_ppm`: exact settlement minus what was credited, in [0, 1e6): kept by the exchange.
    """

    collateral_delta_quote_quantums: int
    position_payments_quote_quantums: tuple[int, ...]
    dust_ppm: int


def settle_subaccount_funding(settlements_ppm: Iterable[int]) -> SubaccountFunding:
    """Credit a subaccount's positions' settlements: floor(sum / 1e6), once per subaccount.

    x/subaccounts/lib/updates.go GetSettledSubaccountWithPerpetuals: `totalNetSettlementPpm.Div(1e6)`,
    Euclidean division, i.e. floor for the positive divisor. Floor rounds against the trader whatever the
    sign: a receiver gets less, a payer pays more, so the exchange never funds rounding.
    """
    settlements = tuple(settlements_ppm)
    total_ppm = sum(settlements)
    delta = div_floor(total_ppm, PPM)  # floor: against the trader, as dYdX's big.Int Div
    payments = tuple(-div_floor(settlement, PPM) for settlement in settlements)  # dYdX indexer figure
    return SubaccountFunding(delta, payments, total_ppm - delta * PPM)


class FundingSettlement(NamedTuple):
    """Settlement of many positions, each in its own subaccount (the per-market view).

    `collateral_deltas_quote_quantums[i]`: what position i's owner receives (negative: pays).
    `dust_ppm`: sum of every floor's remainder, >= 0: the exchange's share of rounding, so that
    sum(deltas) x 1e6 + dust_ppm == sum of the exact settlements (zero when the positions sum to zero
    and share one entry index).
    """

    collateral_deltas_quote_quantums: tuple[int, ...]
    dust_ppm: int


def settle_positions(positions: Iterable[tuple[int, int]], funding_index: int) -> FundingSettlement:
    """Settle (size_base_quantums, entry_funding_index) positions at `funding_index`, flooring each one.

    Every position is treated as its own subaccount (`settle_subaccount_funding` of one settlement);
    for a subaccount with several markets sum their `funding_settlement_ppm` and floor once instead.
    """
    deltas = []
    dust = 0
    for size_base_quantums, entry_funding_index in positions:
        settled = settle_subaccount_funding((funding_settlement_ppm(size_base_quantums, entry_funding_index,
                                                                    funding_index),))
        deltas.append(settled.collateral_delta_quote_quantums)
        dust += settled.dust_ppm
    return FundingSettlement(tuple(deltas), dust)


# --- models: a common interface ------------------------------------------------------------------------
class FundingRateResult(NamedTuple):
    """What a model computed for one funding interval: the numbers a FundingRateComputed event carries.

    `funding_rate_8h_ppm`: the applied rate expressed per 8 hours (for continuous and OI models, the
    time-weighted mean, toward zero, shown for information). `interval_ms`: the time it covers.
    `accrual_ppm_ms`: sum of rate x milliseconds over the interval: what moves the index
    (`funding_index_delta_from_accrual`); rate x interval for the discrete models. `premium_ppm`: the
    aggregated premium before interest, default funding and caps. `clamp_hit`: a cap bound the rate.
    """

    funding_rate_8h_ppm: int
    interval_ms: int
    accrual_ppm_ms: int
    premium_ppm: int
    sample_count: int
    clamp_hit: bool


StateT = TypeVar("StateT")


class FundingModel(Protocol[StateT]):
    """A venue's funding mechanism as pure functions of an immutable state (stored by the exchange).

    `observe` takes one premium sample (ppm, e.g. `book_premium_ppm` at the oracle price) and the other
    inputs some models read; `rate_for_interval` closes the interval at `ts_ms` and returns its result
    and the next state; `interval_ms` says how long the current interval is. Calling
    `rate_for_interval` on a state without storing the new one gives the predicted rate so far.
    """

    def initial_state(self, ts_ms: int) -> StateT: ...

    def observe(self, state: StateT, ts_ms: int, premium_ppm: int, *, long_open_interest: int = 0,
                short_open_interest: int = 0, external_premiums_ppm: tuple[int, ...] = ()) -> StateT: ...

    def interval_ms(self, state: StateT) -> int: ...

    def rate_for_interval(self, state: StateT, ts_ms: int) -> tuple[FundingRateResult, StateT]: ...


def _require_positive(where: str, name: str, value: int) -> None:
    if value <= 0:
        raise ParamsError(f"{name} must be positive", field=f"{where}.{name}", value=value)


def _require_cadence(where: str, name: str, cadence_ms: int, interval_ms: int) -> None:
    _require_positive(where, name, cadence_ms)
    if cadence_ms > interval_ms:
        raise ParamsError(f"{name} ({cadence_ms} ms) is longer than the funding interval ({interval_ms} ms)",
                          field=f"{where}.{name}", value=cadence_ms)


def _require_divides_period(where: str, name: str, interval_ms: int) -> None:
    _require_positive(where, name, interval_ms)
    if FUNDING_PERIOD_MS % interval_ms:
        raise ParamsError("interval must divide 8 hours so a per-interval cap is a whole ppm per 8 h",
                          field=f"{where}.{name}", value=interval_ms)


# --- 1. dYdX v4 ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DydxFundingParams:
    """dYdX v4 defaults: epochs x/epochs/types/constants.go (funding-tick 3600 s, funding-sample 60 s),
    params x/perpetuals/types/genesis.go (clamp factors 600% and 6000%, 15 votes per sample)."""

    funding_tick_interval_ms: int = HOUR_MS
    sample_interval_ms: int = 60_000
    funding_rate_clamp_factor_ppm: int = 6_000_000
    premium_vote_clamp_factor_ppm: int = 60_000_000
    min_votes_per_sample: int = 15
    default_funding_ppm: int = 0

    def validate(self, where: str = "funding") -> None:
        _require_positive(where, "funding_tick_interval_ms", self.funding_tick_interval_ms)
        _require_cadence(where, "sample_interval_ms", self.sample_interval_ms, self.funding_tick_interval_ms)
        _require_positive(where, "funding_rate_clamp_factor_ppm", self.funding_rate_clamp_factor_ppm)
        _require_positive(where, "premium_vote_clamp_factor_ppm", self.premium_vote_clamp_factor_ppm)
        _require_positive(where, "min_votes_per_sample", self.min_votes_per_sample)
        if abs(self.default_funding_ppm) > PPM:
            raise ParamsError("default funding out of range", field=f"{where}.default_funding_ppm",
                              value=self.default_funding_ppm)


@dataclass(frozen=True, slots=True)
class DydxFundingState:
    """Votes of the open sample epoch and samples of the open tick. Zero samples are counted in
    `sample_rounds` but not listed, as dYdX's PremiumStore (NumPremiums + non-zero premiums)."""

    tick_start_ms: int
    sample_start_ms: int
    votes_ppm: tuple[int, ...] = ()
    vote_rounds: int = 0
    samples_ppm: tuple[int, ...] = ()
    sample_rounds: int = 0


@dataclass(frozen=True, slots=True)
class DydxFundingModel:
    """dYdX v4: each observation is a premium vote (one per block in dYdX); each sample epoch's votes give
    a sample (median, padded); each tick's samples give the premium (mean, padded, toward zero); the rate
    is premium + default funding clamped to +/- clamp factor x (IM - MM), applied for the nominal tick
    duration (perpetual.go uses fundingTickEpochInfo.Duration, not the wall time since the last tick).

    Sample epochs with no observation at all count as zero samples (dYdX pads them the same way).
    """

    params: DydxFundingParams
    tier: LiquidityTier
    max_abs_funding_rate_ppm: int = field(init=False)
    max_abs_premium_vote_ppm: int = field(init=False)

    def __post_init__(self) -> None:
        self.params.validate()
        object.__setattr__(self, "max_abs_funding_rate_ppm", max_abs_funding_clamp_ppm(
            self.tier.initial_margin_ppm, self.tier.maintenance_fraction_ppm,
            self.params.funding_rate_clamp_factor_ppm))
        object.__setattr__(self, "max_abs_premium_vote_ppm", max_abs_funding_clamp_ppm(
            self.tier.initial_margin_ppm, self.tier.maintenance_fraction_ppm,
            self.params.premium_vote_clamp_factor_ppm))

    def initial_state(self, ts_ms: int) -> DydxFundingState:
        return DydxFundingState(tick_start_ms=ts_ms, sample_start_ms=ts_ms)

    def _close_samples(self, state: DydxFundingState, ts_ms: int) -> DydxFundingState:
        """Close every sample epoch that ended at or before ts_ms (perpetuals EndBlocker: samples first)."""
        sample_ms = self.params.sample_interval_ms
        epochs = (ts_ms - state.sample_start_ms) // sample_ms  # floor: whole epochs elapsed
        if epochs <= 0:
            return state
        sample = premium_sample_ppm(state.votes_ppm, num_vote_rounds=state.vote_rounds,
                                    min_votes_per_sample=self.params.min_votes_per_sample)
        samples = state.samples_ppm + ((sample,) if sample else ())
        return replace(state, sample_start_ms=state.sample_start_ms + epochs * sample_ms, votes_ppm=(),
                       vote_rounds=0, samples_ppm=samples, sample_rounds=state.sample_rounds + epochs)

    def observe(self, state: DydxFundingState, ts_ms: int, premium_ppm: int, *, long_open_interest: int = 0,
                short_open_interest: int = 0, external_premiums_ppm: tuple[int, ...] = ()) -> DydxFundingState:
        state = self._close_samples(state, ts_ms)
        vote = clamp(premium_ppm, -self.max_abs_premium_vote_ppm, self.max_abs_premium_vote_ppm)
        return replace(state, votes_ppm=state.votes_ppm + (vote,), vote_rounds=state.vote_rounds + 1)

    def interval_ms(self, state: DydxFundingState) -> int:
        return self.params.funding_tick_interval_ms

    def rate_for_interval(self, state: DydxFundingState, ts_ms: int) -> tuple[FundingRateResult, DydxFundingState]:
        state = self._close_samples(state, ts_ms)
        expected = expected_sample_count(self.params.funding_tick_interval_ms, self.params.sample_interval_ms)
        premium = funding_tick_premium_ppm(state.samples_ppm, num_sample_rounds=state.sample_rounds,
                                           expected_samples=expected)
        tick = dydx_funding_rate_ppm(premium, self.params.default_funding_ppm, self.max_abs_funding_rate_ppm)
        interval = self.params.funding_tick_interval_ms
        result = FundingRateResult(tick.funding_rate_8h_ppm, interval, tick.funding_rate_8h_ppm * interval,
                                   premium, state.sample_rounds, tick.clamp_hit)
        return result, replace(state, tick_start_ms=ts_ms, samples_ppm=(), sample_rounds=0)


# --- 2. Binance USD-M ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BinanceFundingParams:
    """Binance USD-M ("Introduction to Binance Futures Funding Rates"): F = P + clamp(I - P, +/-0.05%),
    I = 0.01% per 8 h, P the linearly time-weighted mean of 5 s premium samples; a per-market cap on the
    rate of each settlement interval (Binance: clamp by a multiple of the maintenance margin rate).

    Dynamic interval: settled every `interval_ms`; a settlement that hits the cap switches the market to
    `capped_interval_ms` (1 h); Binance's rule of 2026-01-02 returns an hourly market to 4 h settlements
    in the 17th period after 16 consecutive hourly rates with |rate| <= 0.025% (Binance announcement
    "Important Update on the Funding Rate Settlement Frequency for U-based Perpetual Contracts"; freqtrade
    issue 12583 / PR 12599 record the resulting 1-8 h intervals). Every interval must divide 8 h.
    """

    interest_rate_8h_ppm: int = 100
    interest_clamp_ppm: int = 500
    rate_cap_per_interval_ppm: int = 20_000
    interval_ms: int = 8 * HOUR_MS
    capped_interval_ms: int = HOUR_MS
    restore_interval_ms: int = 4 * HOUR_MS
    quiet_rate_per_interval_ppm: int = 250
    quiet_intervals: int = 16
    sample_interval_ms: int = 5_000

    def validate(self, where: str = "funding") -> None:
        for name in ("interval_ms", "capped_interval_ms", "restore_interval_ms"):
            _require_divides_period(where, name, getattr(self, name))
            _require_cadence(where, "sample_interval_ms", self.sample_interval_ms, getattr(self, name))
        _require_positive(where, "interest_clamp_ppm", self.interest_clamp_ppm)
        _require_positive(where, "rate_cap_per_interval_ppm", self.rate_cap_per_interval_ppm)
        _require_positive(where, "quiet_intervals", self.quiet_intervals)
        if self.quiet_rate_per_interval_ppm < 0:
            raise ParamsError("quiet rate must not be negative", field=f"{where}.quiet_rate_per_interval_ppm",
                              value=self.quiet_rate_per_interval_ppm)


@dataclass(frozen=True, slots=True)
class BinanceFundingState:
    interval_start_ms: int
    interval_ms: int
    samples_ppm: tuple[int, ...] = ()
    quiet_run: int = 0


@dataclass(frozen=True, slots=True)
class BinanceFundingModel:
    """Binance USD-M with the dynamic settlement interval. Rates are kept per 8 h: the per-interval rate
    is F x interval / 8 h (Binance's N-hour interest and premium components), and the per-interval cap
    and quiet threshold are compared in 8-hour terms (x 8 h / interval, exact as the interval divides
    8 h), so nothing rounds but the mean. Settlement times are the caller's (Binance aligns them to UTC)."""

    params: BinanceFundingParams = BinanceFundingParams()

    def __post_init__(self) -> None:
        self.params.validate()

    def initial_state(self, ts_ms: int) -> BinanceFundingState:
        return BinanceFundingState(interval_start_ms=ts_ms, interval_ms=self.params.interval_ms)

    def observe(self, state: BinanceFundingState, ts_ms: int, premium_ppm: int, *, long_open_interest: int = 0,
                short_open_interest: int = 0, external_premiums_ppm: tuple[int, ...] = ()) -> BinanceFundingState:
        return replace(state, samples_ppm=state.samples_ppm + (premium_ppm,))

    def interval_ms(self, state: BinanceFundingState) -> int:
        return state.interval_ms

    def rate_for_interval(self, state: BinanceFundingState,
                          ts_ms: int) -> tuple[FundingRateResult, BinanceFundingState]:
        params = self.params
        interval = state.interval_ms
        premium = linear_weighted_mean_trunc(state.samples_ppm)  # toward zero
        rate_8h = premium_plus_clamped_interest_ppm(premium, params.interest_rate_8h_ppm, params.interest_clamp_ppm)
        periods_per_8h = FUNDING_PERIOD_MS // interval  # exact: validated to divide 8 h
        rate_8h, clamp_hit = clamp_abs(rate_8h, params.rate_cap_per_interval_ppm * periods_per_8h)
        if clamp_hit:
            next_interval, quiet_run = params.capped_interval_ms, 0
        elif (interval == params.capped_interval_ms
              and abs(rate_8h) <= params.quiet_rate_per_interval_ppm * periods_per_8h):
            quiet_run = state.quiet_run + 1
            if quiet_run >= params.quiet_intervals:  # the next period settles at the restored interval
                next_interval, quiet_run = params.restore_interval_ms, 0
            else:
                next_interval = interval
        else:
            next_interval, quiet_run = interval, 0
        result = FundingRateResult(rate_8h, interval, rate_8h * interval, premium, len(state.samples_ppm), clamp_hit)
        return result, BinanceFundingState(interval_start_ms=ts_ms, interval_ms=next_interval, quiet_run=quiet_run)


# --- 3. Hyperliquid ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class HyperliquidFundingParams:
    """Hyperliquid "Funding": premium sampled every 5 s and averaged over the hour; 8-hour rate
    F = P + clamp(I - P, +/-0.05%) with I = 0.01% per 8 h; paid every hour at F / 8; capped at 4% per hour."""

    interest_rate_8h_ppm: int = 100
    interest_clamp_ppm: int = 500
    interval_ms: int = HOUR_MS
    sample_interval_ms: int = 5_000
    rate_cap_per_interval_ppm: int = 40_000

    def validate(self, where: str = "funding") -> None:
        _require_divides_period(where, "interval_ms", self.interval_ms)
        _require_cadence(where, "sample_interval_ms", self.sample_interval_ms, self.interval_ms)
        _require_positive(where, "interest_clamp_ppm", self.interest_clamp_ppm)
        _require_positive(where, "rate_cap_per_interval_ppm", self.rate_cap_per_interval_ppm)


@dataclass(frozen=True, slots=True)
class HyperliquidFundingState:
    interval_start_ms: int
    premium_sum_ppm: int = 0
    sample_count: int = 0


@dataclass(frozen=True, slots=True)
class HyperliquidFundingModel:
    """Hyperliquid: plain mean of the hour's samples (toward zero; 0 with none), the 8-hour formula, the
    hourly cap as an 8-hour bound (4%/h = 32% per 8 h), one hour of F applied each interval (F / 8)."""

    params: HyperliquidFundingParams = HyperliquidFundingParams()

    def __post_init__(self) -> None:
        self.params.validate()

    def initial_state(self, ts_ms: int) -> HyperliquidFundingState:
        return HyperliquidFundingState(interval_start_ms=ts_ms)

    def observe(self, state: HyperliquidFundingState, ts_ms: int, premium_ppm: int, *, long_open_interest: int = 0,
                short_open_interest: int = 0, external_premiums_ppm: tuple[int, ...] = ()) -> HyperliquidFundingState:
        return replace(state, premium_sum_ppm=state.premium_sum_ppm + premium_ppm, sample_count=state.sample_count + 1)

    def interval_ms(self, state: HyperliquidFundingState) -> int:
        return self.params.interval_ms

    def rate_for_interval(self, state: HyperliquidFundingState,
                          ts_ms: int) -> tuple[FundingRateResult, HyperliquidFundingState]:
        params = self.params
        premium = div_trunc(state.premium_sum_ppm, state.sample_count) if state.sample_count else 0  # toward zero
        rate_8h = premium_plus_clamped_interest_ppm(premium, params.interest_rate_8h_ppm, params.interest_clamp_ppm)
        periods_per_8h = FUNDING_PERIOD_MS // params.interval_ms  # exact: validated to divide 8 h
        rate_8h, clamp_hit = clamp_abs(rate_8h, params.rate_cap_per_interval_ppm * periods_per_8h)
        result = FundingRateResult(rate_8h, params.interval_ms, rate_8h * params.interval_ms, premium,
                                   state.sample_count, clamp_hit)
        return result, HyperliquidFundingState(interval_start_ms=ts_ms)


# --- 4. Continuous (Paradex-style) ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ContinuousFundingParams:
    """Paradex "Funding Mechanism (v2)" (docs.paradex.trade/risk/funding-mechanism-v2): each second the
    premium (optionally the median of this venue's and external venues' premiums) gives a raw rate
    multiplier x (P + clamp(I - P, +/-0.05%)), I = 0.01% per 8 h, capped at +/- 5% per 8 h; an EWMA of the
    raw rate is the published rate; the funding index advances by it x elapsed time. Paradex publishes no
    EWMA weight in what we read: `smoothing_alpha_ppm` (weight of the new raw rate each step) is ours.
    Paradex weights its cross-venue median; ours is unweighted (`units.median_int`).
    """

    interest_rate_8h_ppm: int = 100
    interest_clamp_ppm: int = 500
    max_rate_8h_ppm: int = 50_000
    funding_multiplier_ppm: int = PPM
    smoothing_alpha_ppm: int = 1_000
    step_ms: int = ONE_SECOND_MS
    use_external_median: bool = False

    def validate(self, where: str = "funding") -> None:
        _require_positive(where, "step_ms", self.step_ms)
        _require_positive(where, "interest_clamp_ppm", self.interest_clamp_ppm)
        _require_positive(where, "max_rate_8h_ppm", self.max_rate_8h_ppm)
        _require_positive(where, "funding_multiplier_ppm", self.funding_multiplier_ppm)
        if not 0 < self.smoothing_alpha_ppm <= PPM:
            raise ParamsError("smoothing weight must be within (0, 1e6] ppm", field=f"{where}.smoothing_alpha_ppm",
                              value=self.smoothing_alpha_ppm)


@dataclass(frozen=True, slots=True)
class ContinuousFundingState:
    accrued_to_ms: int  # the last whole step accrued
    settled_to_ms: int  # start of the accrual not yet handed out
    raw_rate_8h_ppm: int = 0
    smoothed_rate_8h_ppm: int = 0  # what accrues: the smoothed rate truncated toward zero
    smoothed_fraction: int = 0  # the smoothed rate's part below 1 ppm, in millionths of a ppm (same sign)
    premium_ppm: int = 0
    clamp_hit: bool = False
    accrual_ppm_ms: int = 0
    observations: int = 0


@dataclass(frozen=True, slots=True)
class ContinuousFundingModel:
    """Continuous funding: every `step_ms` the smoothed rate moves by alpha x (raw - smoothed), toward
    zero, and accrues smoothed x step. The raw rate between observations is the last observed one.
    `rate_for_interval` hands out the accrual of whole steps up to ts_ms (any time: there is no epoch)."""

    params: ContinuousFundingParams = ContinuousFundingParams()

    def __post_init__(self) -> None:
        self.params.validate()

    def initial_state(self, ts_ms: int) -> ContinuousFundingState:
        return ContinuousFundingState(accrued_to_ms=ts_ms, settled_to_ms=ts_ms)

    def raw_rate_8h_ppm(self, premium_ppm: int) -> tuple[int, bool]:
        """multiplier x (P + clamp(I - P, +/-c)), toward zero, then capped: (rate, cap hit)."""
        params = self.params
        rate = premium_plus_clamped_interest_ppm(premium_ppm, params.interest_rate_8h_ppm, params.interest_clamp_ppm)
        scaled = div_trunc(rate * params.funding_multiplier_ppm, PPM)  # toward zero: never overstates
        return clamp_abs(scaled, params.max_rate_8h_ppm)

    def _advance(self, state: ContinuousFundingState, ts_ms: int) -> ContinuousFundingState:
        step_ms, alpha = self.params.step_ms, self.params.smoothing_alpha_ppm
        steps = (ts_ms - state.accrued_to_ms) // step_ms  # floor: whole steps only, the rest waits
        if steps <= 0:
            return state
        raw, accrual = state.raw_rate_8h_ppm, state.accrual_ppm_ms
        # The smoothed rate is carried in millionths of a ppm: in whole ppm, alpha x (raw - smoothed)
        # truncates to 0 whenever the gap is under 1 / alpha ppm (under 1,000 ppm at alpha 0.1%), and
        # the average would never leave zero. It accrues truncated toward zero to whole ppm.
        scaled = state.smoothed_rate_8h_ppm * PPM + state.smoothed_fraction
        target = raw * PPM
        smoothed = state.smoothed_rate_8h_ppm
        remaining = steps
        while remaining:
            move = div_trunc(alpha * (target - scaled), PPM)  # toward zero: never overshoots raw
            if move == 0:  # converged as far as integers go: the rest of the steps are alike
                accrual += smoothed * step_ms * remaining
                break
            scaled += move
            smoothed = div_trunc(scaled, PPM)  # toward zero: accrues no more than the average
            accrual += smoothed * step_ms
            remaining -= 1
        return replace(state, accrued_to_ms=state.accrued_to_ms + steps * step_ms, smoothed_rate_8h_ppm=smoothed,
                       smoothed_fraction=scaled - smoothed * PPM, accrual_ppm_ms=accrual)

    def observe(self, state: ContinuousFundingState, ts_ms: int, premium_ppm: int, *, long_open_interest: int = 0,
                short_open_interest: int = 0, external_premiums_ppm: tuple[int, ...] = ()) -> ContinuousFundingState:
        state = self._advance(state, ts_ms)
        if self.params.use_external_median and external_premiums_ppm:
            premium_ppm = median_int([premium_ppm, *external_premiums_ppm])
        raw, hit = self.raw_rate_8h_ppm(premium_ppm)
        return replace(state, raw_rate_8h_ppm=raw, premium_ppm=premium_ppm, clamp_hit=state.clamp_hit or hit,
                       observations=state.observations + 1)

    def interval_ms(self, state: ContinuousFundingState) -> int:
        return self.params.step_ms

    def rate_for_interval(self, state: ContinuousFundingState,
                          ts_ms: int) -> tuple[FundingRateResult, ContinuousFundingState]:
        state = self._advance(state, ts_ms)
        elapsed = state.accrued_to_ms - state.settled_to_ms
        mean_rate = div_trunc(state.accrual_ppm_ms, elapsed) if elapsed else state.smoothed_rate_8h_ppm
        result = FundingRateResult(mean_rate, elapsed, state.accrual_ppm_ms, state.premium_ppm,
                                   state.observations, state.clamp_hit)
        return result, replace(state, settled_to_ms=state.accrued_to_ms, accrual_ppm_ms=0, observations=0,
                               clamp_hit=False)


# --- 5. Epoch-smoothed ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EpochSmoothedFundingParams:
    """Funding pooled across epochs: each epoch's raw rate is mean premium + clamp(I - P, +/-c); the
    applied rate is the simple moving average (`mode="sma"`) or EMA (weight 2 / (window + 1)) of the last
    `window` raw rates, capped at +/- max, so funding moves slowly. Our design (DESIGN.md), no venue."""

    window: int = 8
    mode: str = "ema"
    interval_ms: int = HOUR_MS
    sample_interval_ms: int = 60_000
    interest_rate_8h_ppm: int = 100
    interest_clamp_ppm: int = 500
    max_rate_8h_ppm: int = 40_000

    def validate(self, where: str = "funding") -> None:
        if self.window <= 0:
            raise ParamsError("window must be at least one epoch", field=f"{where}.window", value=self.window)
        if self.mode not in ("sma", "ema"):
            raise ParamsError("mode must be 'sma' or 'ema'", field=f"{where}.mode", value=self.mode)
        _require_positive(where, "interval_ms", self.interval_ms)
        _require_cadence(where, "sample_interval_ms", self.sample_interval_ms, self.interval_ms)
        _require_positive(where, "interest_clamp_ppm", self.interest_clamp_ppm)
        _require_positive(where, "max_rate_8h_ppm", self.max_rate_8h_ppm)


@dataclass(frozen=True, slots=True)
class EpochSmoothedFundingState:
    interval_start_ms: int
    premium_sum_ppm: int = 0
    sample_count: int = 0
    raw_rates_8h_ppm: tuple[int, ...] = ()  # the last `window`, oldest first
    ema_rate_8h_ppm: int | None = None


@dataclass(frozen=True, slots=True)
class EpochSmoothedFundingModel:
    """Epoch-smoothed funding: SMA = mean of the window toward zero; EMA += 2 (raw - EMA) / (N + 1)
    toward zero, seeded with the first raw rate."""

    params: EpochSmoothedFundingParams = EpochSmoothedFundingParams()

    def __post_init__(self) -> None:
        self.params.validate()

    def initial_state(self, ts_ms: int) -> EpochSmoothedFundingState:
        return EpochSmoothedFundingState(interval_start_ms=ts_ms)

    def observe(self, state: EpochSmoothedFundingState, ts_ms: int, premium_ppm: int, *, long_open_interest: int = 0,
                short_open_interest: int = 0,
                external_premiums_ppm: tuple[int, ...] = ()) -> EpochSmoothedFundingState:
        return replace(state, premium_sum_ppm=state.premium_sum_ppm + premium_ppm, sample_count=state.sample_count + 1)

    def interval_ms(self, state: EpochSmoothedFundingState) -> int:
        return self.params.interval_ms

    def rate_for_interval(self, state: EpochSmoothedFundingState,
                          ts_ms: int) -> tuple[FundingRateResult, EpochSmoothedFundingState]:
        params = self.params
        premium = div_trunc(state.premium_sum_ppm, state.sample_count) if state.sample_count else 0  # toward zero
        raw = premium_plus_clamped_interest_ppm(premium, params.interest_rate_8h_ppm, params.interest_clamp_ppm)
        history = (state.raw_rates_8h_ppm + (raw,))[-params.window:]
        if params.mode == "sma":
            smoothed, ema = mean_trunc(history), None
        else:
            previous = raw if state.ema_rate_8h_ppm is None else state.ema_rate_8h_ppm
            ema = previous + div_trunc(2 * (raw - previous), params.window + 1)  # toward zero: lags, never overshoots
            smoothed = ema
        rate, clamp_hit = clamp_abs(smoothed, params.max_rate_8h_ppm)
        result = FundingRateResult(rate, params.interval_ms, rate * params.interval_ms, premium, state.sample_count,
                                   clamp_hit)
        return result, EpochSmoothedFundingState(interval_start_ms=ts_ms, raw_rates_8h_ppm=history, ema_rate_8h_ppm=ema)


# --- 6. Open-interest imbalance (GMX v2-style) --------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OpenInterestImbalanceFundingParams:
    """GMX v2 (gmx-synthetics contracts/market/MarketUtils.sol getNextFundingFactorPerSecond), per 8 h and
    ppm instead of per second and 1e30. skew = |L - S| / (L + S) (Precision.toFactor, floored).

    Not adaptive (`increase_ppm_per_hour_at_full_skew` = 0): rate = funding_factor x skew, capped at max.
    Adaptive: a saved rate grows by increase x skew x elapsed while the skew exceeds
    `stable_skew_ppm` in the direction already paid (or at once when the skew flipped), shrinks by
    decrease x elapsed (to a magnitude of 1, not 0, as GMX) while the skew is below `decrease_skew_ppm`,
    and holds between; saved magnitude is bound to [0, max], the applied rate to [min, max].
    Positive rates mean longs pay. GMX's funding exponent is fixed at 1 here.
    """

    funding_factor_ppm: int = 200_000
    increase_ppm_per_hour_at_full_skew: int = 0
    decrease_ppm_per_hour: int = 0
    stable_skew_ppm: int = 0
    decrease_skew_ppm: int = 0
    min_rate_8h_ppm: int = 0
    max_rate_8h_ppm: int = 40_000
    interval_ms: int = HOUR_MS
    # On an order book every long has a short, so the two sides must be defined: subaccounts whose
    # owner starts with this prefix are the pool (GMX's liquidity providers, e.g. "maker"); long and
    # short open interest are the other traders'. Empty: the whole book, which is always balanced.
    pool_owner_prefix: str = ""

    def validate(self, where: str = "funding") -> None:
        _require_positive(where, "interval_ms", self.interval_ms)
        _require_positive(where, "max_rate_8h_ppm", self.max_rate_8h_ppm)
        if not isinstance(self.pool_owner_prefix, str):
            raise ParamsError("pool_owner_prefix is an owner-name prefix", field=f"{where}.pool_owner_prefix",
                              value=self.pool_owner_prefix)
        for name in ("funding_factor_ppm", "increase_ppm_per_hour_at_full_skew", "decrease_ppm_per_hour",
                     "stable_skew_ppm", "decrease_skew_ppm", "min_rate_8h_ppm"):
            if getattr(self, name) < 0:
                raise ParamsError(f"{name} must not be negative", field=f"{where}.{name}", value=getattr(self, name))
        if self.min_rate_8h_ppm > self.max_rate_8h_ppm:
            raise ParamsError("min rate above max rate", field=f"{where}.min_rate_8h_ppm", value=self.min_rate_8h_ppm)


@dataclass(frozen=True, slots=True)
class OpenInterestImbalanceFundingState:
    updated_ms: int
    settled_ms: int
    long_open_interest: int = 0
    short_open_interest: int = 0
    saved_rate_8h_ppm: int = 0
    accrual_ppm_ms: int = 0
    clamp_hit: bool = False
    observations: int = 0


def open_interest_skew_ppm(long_open_interest: int, short_open_interest: int) -> int:
    """|L - S| / (L + S) in ppm, floored (GMX Precision.toFactor); 0 when there is no open interest."""
    total = long_open_interest + short_open_interest
    if total <= 0:
        return 0
    return div_floor(abs(long_open_interest - short_open_interest) * PPM, total)  # floor: understates skew


def _bound_magnitude(value: int, minimum: int, maximum: int) -> int:
    """GMX Calc.boundMagnitude: |value| into [minimum, maximum], keeping the sign (0 counts as +)."""
    magnitude = min(max(abs(value), minimum), maximum)
    return -magnitude if value < 0 else magnitude


@dataclass(frozen=True, slots=True)
class OpenInterestImbalanceFundingModel:
    """OI-imbalance funding. `observe` reads `long_open_interest` and `short_open_interest` (any one unit,
    e.g. base quantums or notional); the premium is ignored. On a matched order book every long has a
    short, so the caller chooses what the two sides are (e.g. traders vs a liquidity vault), as GMX's
    pool is the counterparty there. Zero open interest gives a zero rate and no adaptation (GMX reverts)."""

    params: OpenInterestImbalanceFundingParams = OpenInterestImbalanceFundingParams()

    def __post_init__(self) -> None:
        self.params.validate()

    def initial_state(self, ts_ms: int) -> OpenInterestImbalanceFundingState:
        return OpenInterestImbalanceFundingState(updated_ms=ts_ms, settled_ms=ts_ms)

    def next_rate_8h_ppm(self, saved_rate_8h_ppm: int, long_open_interest: int, short_open_interest: int,
                         elapsed_ms: int) -> tuple[int, int, bool]:
        """(applied rate, next saved rate, cap hit) for a period of `elapsed_ms` at these open interests."""
        params = self.params
        longs, shorts = long_open_interest, short_open_interest
        if longs + shorts <= 0 or (longs == shorts and params.increase_ppm_per_hour_at_full_skew == 0):
            return 0, saved_rate_8h_ppm, False
        skew = open_interest_skew_ppm(longs, shorts)
        if params.increase_ppm_per_hour_at_full_skew == 0:
            magnitude = mul_ppm(skew, params.funding_factor_ppm, round_up=False)  # floor, as applyFactor
            hit = magnitude > params.max_rate_8h_ppm
            magnitude = min(magnitude, params.max_rate_8h_ppm)
            return (magnitude if longs > shorts else -magnitude), 0, hit
        saved = saved_rate_8h_ppm
        same_direction = (saved > 0 and longs > shorts) or (saved < 0 and shorts > longs)
        if not same_direction or skew > params.stable_skew_ppm:
            # floor of the magnitude: the rate never grows faster than configured
            increase = div_floor(skew * params.increase_ppm_per_hour_at_full_skew * elapsed_ms, PPM * HOUR_MS)
            saved += -increase if longs < shorts else increase
        elif skew < params.decrease_skew_ppm and saved != 0:
            decrease = div_floor(params.decrease_ppm_per_hour * elapsed_ms, HOUR_MS)  # floor: slower decay
            sign = 1 if saved > 0 else -1
            saved = sign if abs(saved) <= decrease else sign * (abs(saved) - decrease)
        bounded_saved = _bound_magnitude(saved, 0, params.max_rate_8h_ppm)
        applied = _bound_magnitude(bounded_saved, params.min_rate_8h_ppm, params.max_rate_8h_ppm)
        return applied, bounded_saved, bounded_saved != saved

    def _advance(self, state: OpenInterestImbalanceFundingState, ts_ms: int) -> OpenInterestImbalanceFundingState:
        elapsed = ts_ms - state.updated_ms
        if elapsed <= 0:
            return state
        rate, saved, hit = self.next_rate_8h_ppm(state.saved_rate_8h_ppm, state.long_open_interest,
                                                 state.short_open_interest, elapsed)
        return replace(state, updated_ms=ts_ms, saved_rate_8h_ppm=saved,
                       accrual_ppm_ms=state.accrual_ppm_ms + rate * elapsed, clamp_hit=state.clamp_hit or hit)

    def observe(self, state: OpenInterestImbalanceFundingState, ts_ms: int, premium_ppm: int, *,
                long_open_interest: int = 0, short_open_interest: int = 0,
                external_premiums_ppm: tuple[int, ...] = ()) -> OpenInterestImbalanceFundingState:
        state = self._advance(state, ts_ms)
        return replace(state, long_open_interest=long_open_interest, short_open_interest=short_open_interest,
                       observations=state.observations + 1)

    def interval_ms(self, state: OpenInterestImbalanceFundingState) -> int:
        return self.params.interval_ms

    def rate_for_interval(self, state: OpenInterestImbalanceFundingState,
                          ts_ms: int) -> tuple[FundingRateResult, OpenInterestImbalanceFundingState]:
        state = self._advance(state, ts_ms)
        elapsed = state.updated_ms - state.settled_ms
        mean_rate = div_trunc(state.accrual_ppm_ms, elapsed) if elapsed else 0
        result = FundingRateResult(mean_rate, elapsed, state.accrual_ppm_ms,
                                   open_interest_skew_ppm(state.long_open_interest, state.short_open_interest),
                                   state.observations, state.clamp_hit)
        return result, replace(state, settled_ms=state.updated_ms, accrual_ppm_ms=0, clamp_hit=False, observations=0)


# --- choosing a model per market -----------------------------------------------------------------------
# dYdX votes once per block (~1 s); perpdex observes on a cadence of transaction time instead. 4 s gives
# the 15 votes a 60 s sample needs (MinNumVotesPerSample) without an observation per transaction.
DYDX_OBSERVATION_INTERVAL_MS = 4_000

FUNDING_MODELS: dict[str, tuple[type, object]] = {
    "dydx": (DydxFundingParams, lambda params, tier: DydxFundingModel(params, tier)),
    "binance": (BinanceFundingParams, lambda params, tier: BinanceFundingModel(params)),
    "hyperliquid": (HyperliquidFundingParams, lambda params, tier: HyperliquidFundingModel(params)),
    "continuous": (ContinuousFundingParams, lambda params, tier: ContinuousFundingModel(params)),
    "epoch_smoothed": (EpochSmoothedFundingParams, lambda params, tier: EpochSmoothedFundingModel(params)),
    "oi_imbalance": (OpenInterestImbalanceFundingParams,
                     lambda params, tier: OpenInterestImbalanceFundingModel(params)),
}


def make_funding_model(kind: str, overrides: Iterable[tuple[str, object]], tier: LiquidityTier,
                       where: str = "funding") -> FundingModel:
    """The funding model named `kind` with parameter overrides; raises ParamsError naming the field
    (an unknown model, an unknown parameter, or a value its validate() rejects)."""
    entry = FUNDING_MODELS.get(kind)
    if entry is None:
        raise ParamsError(f"unknown funding model (one of {', '.join(FUNDING_MODELS)})", field=f"{where}.model",
                          value=kind)
    params_type, build = entry
    known = {spec.name for spec in fields(params_type)}
    values = dict(overrides)
    for name in values:
        if name not in known:
            raise ParamsError(f"{kind} funding has no parameter {name!r}", field=f"{where}.{name}",
                              value=values[name])
    params = params_type(**values)
    params.validate(where)
    return build(params, tier)  # type: ignore[operator]


def observation_interval_ms(model: FundingModel) -> int:
    """How often the exchange feeds the model a premium observation (transaction time)."""
    params = getattr(model, "params", None)
    if isinstance(params, DydxFundingParams):
        return DYDX_OBSERVATION_INTERVAL_MS
    sample = getattr(params, "sample_interval_ms", None)
    if sample:
        return sample
    return max(getattr(params, "step_ms", 0), 5_000)
