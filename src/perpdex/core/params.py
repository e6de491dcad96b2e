"""Market parameters of the exchange core: liquidity tiers, tick and step sizes, fees, oracle limits.
Frozen and validated once; the TOML loader (perpdex.config) builds them, the core only reads them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from perpdex.core.errors import ParamsError
from perpdex.core.units import PPM


class FundingFinality(str, Enum):
    """What a market's funding model sees: SOFT, every premium observation as it is made (the latest
    matched state); FINALIZED, only observations of batches already accepted on L1, released by
    `FundingFinalize` transactions, each interval's rate set once all its observations are proven."""

    SOFT = "soft"
    FINALIZED = "finalized"


class MarketType(str, Enum):
    """dYdX v4 PerpetualMarketType: cross markets share collateral; isolated ones need their own."""

    CROSS = "cross"
    ISOLATED = "isolated"


@dataclass(frozen=True, slots=True)
class LiquidityTier:
    """dYdX v4 x/perpetuals/types/liquidity_tier.go.

    `initial_margin_ppm` is the base initial margin fraction; maintenance is
    `maintenance_fraction_ppm` of it. Open interest (in quote quantums at the oracle price)
    between the lower and upper cap raises only the initial fraction, linearly to 100%; an
    upper cap of 0 switches that off. Impact notional sizes the funding premium's impact prices.
    """

    tier_id: int
    name: str
    initial_margin_ppm: int
    maintenance_fraction_ppm: int
    impact_notional_quote_quantums: int
    open_interest_lower_cap_quote_quantums: int = 0
    open_interest_upper_cap_quote_quantums: int = 0

    def validate(self) -> None:
        where = f"liquidity_tier[{self.name}]"
        if not 0 <= self.initial_margin_ppm <= PPM:
            raise ParamsError("initial margin must be within [0, 1e6] ppm",
                              field=f"{where}.initial_margin_ppm", value=self.initial_margin_ppm)
        if not 0 <= self.maintenance_fraction_ppm <= PPM:
            raise ParamsError("maintenance fraction must be within [0, 1e6] ppm",
                              field=f"{where}.maintenance_fraction_ppm", value=self.maintenance_fraction_ppm)
        if self.impact_notional_quote_quantums <= 0:
            raise ParamsError("impact notional must be positive",
                              field=f"{where}.impact_notional_quote_quantums",
                              value=self.impact_notional_quote_quantums)
        lower, upper = self.open_interest_lower_cap_quote_quantums, self.open_interest_upper_cap_quote_quantums
        if lower < 0 or upper < 0 or (upper != 0 and upper <= lower):
            raise ParamsError("open interest caps need 0 <= lower < upper (or upper = 0 to disable)",
                              field=f"{where}.open_interest_upper_cap_quote_quantums", value=upper)


@dataclass(frozen=True, slots=True)
class MarketParams:
    """One perpetual market. Units: quote = base * subticks * 10**quantum_conversion_exponent.

    `step_base_quantums` and `subticks_per_tick` are the order size and price grids; a fill of
    one step at one tick must be a whole number of quote quantums, so fills never round.
    Fees are ppm of fill notional; a negative maker fee is a rebate, paid out of the taker fee.
    """

    market_id: str
    atomic_resolution: int
    quantum_conversion_exponent: int
    step_base_quantums: int
    subticks_per_tick: int
    min_order_base_quantums: int
    liquidity_tier: LiquidityTier
    maker_fee_ppm: int
    taker_fee_ppm: int
    oracle_staleness_ms: int
    market_type: MarketType = MarketType.CROSS
    default_funding_ppm: int = 0
    market_order_slippage_ppm: int = 50_000  # worst price of a market order: oracle +/- 5%
    funding_model: str = "dydx"  # perpdex.core.funding.FUNDING_MODELS
    funding_overrides: tuple[tuple[str, int | str], ...] = ()  # that model's parameters, by name
    funding_lag_ms: int = 0  # funding sees the book and index as of this long ago (e.g. the last proven batch)
    funding_finality: FundingFinality = FundingFinality.SOFT  # finalized: funding sees proven observations only

    def validate(self) -> None:
        where = f"markets[{self.market_id}]"
        if not self.market_id or "-" not in self.market_id:
            raise ParamsError("market id must look like BASE-QUOTE", field=f"{where}.market_id",
                              value=self.market_id)
        for name in ("step_base_quantums", "subticks_per_tick", "min_order_base_quantums",
                     "oracle_staleness_ms"):
            if getattr(self, name) <= 0:
                raise ParamsError(f"{name} must be positive", field=f"{where}.{name}", value=getattr(self, name))
        if self.min_order_base_quantums % self.step_base_quantums:
            raise ParamsError("min order size must be a multiple of the step size",
                              field=f"{where}.min_order_base_quantums", value=self.min_order_base_quantums)
        if not -20 <= self.atomic_resolution <= 20:
            raise ParamsError("atomic resolution out of range", field=f"{where}.atomic_resolution",
                              value=self.atomic_resolution)
        if not -20 <= self.quantum_conversion_exponent <= 20:
            raise ParamsError("quantum conversion exponent out of range",
                              field=f"{where}.quantum_conversion_exponent", value=self.quantum_conversion_exponent)
        # One step at one tick must be a whole number of quote quantums (dYdX v4 requires the
        # same of clob pairs), so base_to_quote_quantums never truncates on a fill.
        step_notional = self.step_base_quantums * self.subticks_per_tick
        if self.quantum_conversion_exponent < 0 and step_notional % 10**-self.quantum_conversion_exponent:
            raise ParamsError("one step at one tick must be a whole number of quote quantums",
                              field=f"{where}.subticks_per_tick", value=self.subticks_per_tick)
        if abs(self.maker_fee_ppm) > PPM // 10 or not 0 <= self.taker_fee_ppm <= PPM // 10:
            raise ParamsError("fees must be within +/-10%", field=f"{where}.taker_fee_ppm", value=self.taker_fee_ppm)
        if self.maker_fee_ppm + self.taker_fee_ppm < 0:
            raise ParamsError("a maker rebate larger than the taker fee would mint collateral",
                              field=f"{where}.maker_fee_ppm", value=self.maker_fee_ppm)
        if not 0 < self.market_order_slippage_ppm < PPM:
            raise ParamsError("market order slippage must be within (0, 1e6) ppm",
                              field=f"{where}.market_order_slippage_ppm", value=self.market_order_slippage_ppm)
        if not 0 <= self.funding_lag_ms <= 7 * 24 * 3_600_000:
            raise ParamsError("funding lag must be within [0, 7 days]", field=f"{where}.funding_lag_ms",
                              value=self.funding_lag_ms)
        if not isinstance(self.funding_finality, FundingFinality):
            raise ParamsError("funding finality must be 'soft' or 'finalized'", field=f"{where}.funding_finality",
                              value=self.funding_finality)
        if self.funding_finality is FundingFinality.FINALIZED and self.funding_lag_ms:
            raise ParamsError("a fixed funding lag and finalized funding both delay what funding sees; pick one",
                              field=f"{where}.funding_lag_ms", value=self.funding_lag_ms)
        if abs(self.default_funding_ppm) > PPM:
            raise ParamsError("default funding out of range", field=f"{where}.default_funding_ppm",
                              value=self.default_funding_ppm)
        self.liquidity_tier.validate()
        from perpdex.core.funding import make_funding_model  # funding imports params: import here
        make_funding_model(self.funding_model, self.funding_overrides, self.liquidity_tier, f"{where}.funding")
