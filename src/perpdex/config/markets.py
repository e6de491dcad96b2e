"""The market file: TOML validated with pydantic into core `MarketParams`, with errors naming
the file and the field. `load_markets()` with no path reads the shipped default."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from perpdex.core.errors import MarketFileError, ParamsError, PerpdexError
from perpdex.core.params import FundingFinality, LiquidityTier, MarketParams, MarketType

DEFAULT_MARKETS_FILE = "markets.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class LiquidityTierModel(_Strict):
    tier_id: int = Field(ge=0)
    initial_margin_ppm: int = Field(ge=0, le=1_000_000)
    maintenance_fraction_ppm: int = Field(ge=0, le=1_000_000)
    impact_notional_quote_quantums: int = Field(gt=0)
    open_interest_lower_cap_quote_quantums: int = Field(default=0, ge=0)
    open_interest_upper_cap_quote_quantums: int = Field(default=0, ge=0)


class MarketModel(_Strict):
    market_id: str = Field(pattern=r"^[A-Z0-9]+-[A-Z]+$")
    atomic_resolution: int = Field(ge=-20, le=20)
    quantum_conversion_exponent: int = Field(ge=-20, le=0)
    step_base_quantums: int = Field(gt=0)
    subticks_per_tick: int = Field(gt=0)
    min_order_base_quantums: int = Field(gt=0)
    liquidity_tier: str
    maker_fee_ppm: int = Field(ge=-100_000, le=100_000)
    taker_fee_ppm: int = Field(ge=0, le=100_000)
    oracle_staleness_ms: int = Field(gt=0)
    market_type: MarketType = Field(default=MarketType.CROSS, strict=False)
    default_funding_ppm: int = 0
    market_order_slippage_ppm: int = Field(default=50_000, gt=0, lt=1_000_000)
    funding_model: str = "dydx"  # perpdex.core.funding.FUNDING_MODELS
    funding_lag_ms: int = Field(default=0, ge=0)
    funding_finality: FundingFinality = Field(default=FundingFinality.SOFT, strict=False)  # "soft" or "finalized"
    funding: dict[str, int | str] = Field(default_factory=dict)  # that model's parameters by name


class MarketsFileModel(_Strict):
    liquidity_tiers: dict[str, LiquidityTierModel]
    markets: list[MarketModel] = Field(min_length=1)


def field_path(location: tuple) -> str:
    """A pydantic error location as a field path: ("markets", 2, "step") -> "markets[2].step"."""
    out = ""
    for part in location:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_toml(text: str, source: str, error: type[PerpdexError]) -> dict[str, Any]:
    """TOML text as a dict; text that does not parse raises `error` naming `source` (field "file").
    The market, scenario and portfolio files all read this way."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{source}: not valid TOML: {exc}", field="file", value=source) from exc


def parse_markets(text: str, source: str = "<markets>") -> list[MarketParams]:
    """Markets from TOML text; raises MarketFileError naming `source` and the field at fault."""
    raw = parse_toml(text, source, MarketFileError)
    try:
        model = MarketsFileModel.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = field_path(tuple(first["loc"]))
        raise MarketFileError(f"{source}: {field}: {first['msg']}", field=field,
                              value=first.get("input")) from exc
    tiers = {name: LiquidityTier(name=name, **tier.model_dump()) for name, tier in model.liquidity_tiers.items()}
    markets: list[MarketParams] = []
    seen: set[str] = set()
    for index, market in enumerate(model.markets):
        fields = market.model_dump()
        tier_name = fields.pop("liquidity_tier")
        fields["funding_overrides"] = tuple(sorted(fields.pop("funding").items()))
        if tier_name not in tiers:
            raise MarketFileError(f"{source}: markets[{index}].liquidity_tier: no tier named {tier_name!r}",
                                  field=f"markets[{index}].liquidity_tier", value=tier_name)
        if market.market_id in seen:
            raise MarketFileError(f"{source}: markets[{index}].market_id: duplicate market",
                                  field=f"markets[{index}].market_id", value=market.market_id)
        seen.add(market.market_id)
        params = MarketParams(liquidity_tier=tiers[tier_name], **fields)
        try:
            params.validate()
        except ParamsError as exc:
            raise MarketFileError(f"{source}: {exc.message}", field=exc.field, value=exc.value) from exc
        markets.append(params)
    return markets


def load_markets(path: str | Path | None = None) -> list[MarketParams]:
    """Markets from a TOML file, or the shipped default (dYdX v4 parameters) when `path` is None."""
    if path is None:
        text = resources.files("perpdex.config").joinpath(DEFAULT_MARKETS_FILE).read_text(encoding="utf-8")
        return parse_markets(text, f"perpdex/config/{DEFAULT_MARKETS_FILE}")
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise MarketFileError(f"{file}: cannot read: {exc.strerror}", field="file", value=str(file)) from exc
    return parse_markets(text, str(file))
