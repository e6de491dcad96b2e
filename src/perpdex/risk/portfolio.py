"""A trader's portfolio for the risk lab: the TOML schema (pydantic), its exact integer form on the
core's units, and the same portfolio read off an `Exchange` owner's subaccounts. Reads; never writes.

File layout (amounts in USD, sizes in whole base units, long > 0)::

    name = "desk"
    cross_collateral_usd = 40000          # USDC backing every cross position (default 0)
    markets_file = "my_markets.toml"      # optional; default: the shipped dYdX v4 markets

    [prices]                              # optional current oracle prices; default: entry price
    "BTC-USD" = 95000

    [[positions]]
    market = "BTC-USD"
    size = 0.5                            # signed: long > 0, short < 0
    entry_price = 90000
    margin_mode = "cross"                 # or "isolated" (default cross)
    isolated_collateral_usd = 2500        # isolated only; or give `leverage` and it is notional / leverage
    leverage = 10                         # optional; checked against the market's maximum (1 / IMF)

Each position's account holds USDC = collateral - entry notional (what opening it at its entry
price cost), so at any oracle price its net collateral is collateral + unrealized PnL, exactly as
the core's `margin.account_risk` computes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from perpdex.config.markets import field_path, parse_toml
from perpdex.core.errors import PerpdexError
from perpdex.core.margin import Risk, account_risk
from perpdex.core.params import MarketParams, MarketType
from perpdex.core.units import (
    PPM,
    QUOTE,
    base_quantums_to_size,
    base_to_quote_quantums,
    div_ceil,
    price_to_subticks,
    quote_quantums_to_usd,
    size_to_base_quantums,
    subticks_to_price,
    usd_to_quote_quantums,
)

EXAMPLE_PORTFOLIO = "portfolio.toml"


class PortfolioError(PerpdexError):
    """A portfolio file or exchange snapshot the risk lab cannot use; `field` names the input."""

    code = "risk.bad_portfolio"


class RiskDataError(PerpdexError):
    """A price or funding history the risk lab cannot use; `field` names the file, column or market."""

    code = "risk.bad_data"


class MarginMode(str, Enum):
    CROSS = "cross"
    ISOLATED = "isolated"


# --- the file schema --------------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PositionModel(_Strict):
    market: str
    size: Decimal = Field(allow_inf_nan=False)
    entry_price: Decimal = Field(gt=0, allow_inf_nan=False)
    margin_mode: Literal["cross", "isolated"] = "cross"
    isolated_collateral_usd: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)
    leverage: Decimal | None = Field(default=None, gt=0, allow_inf_nan=False)


class PortfolioModel(_Strict):
    name: str = "portfolio"
    cross_collateral_usd: Decimal = Field(default=Decimal(0), ge=0, allow_inf_nan=False)
    markets_file: str | None = None
    prices: dict[str, Decimal] = Field(default_factory=dict)
    positions: list[PositionModel] = Field(min_length=1)


# --- the exact form -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Position:
    """One position on the core's units. `account` names the margin account it belongs to:
    "cross", or "isolated:<index>" (each isolated position is its own account)."""

    index: int  # order in the file
    market_id: str
    size_base_quantums: int  # signed, long > 0
    entry_price_subticks: int
    margin_mode: MarginMode
    isolated_collateral_quote_quantums: int  # 0 for cross positions
    leverage: float | None

    @property
    def account(self) -> str:
        return "cross" if self.margin_mode is MarginMode.CROSS else f"isolated:{self.index}"

    @property
    def asset(self) -> str:
        return asset_of(self.market_id)


@dataclass(frozen=True, slots=True)
class MarginAccount:
    """A margin account as the core sees it: USDC (quote quantums, may be negative) and positions
    (market id -> signed base quantums, zero never stored)."""

    label: str
    usdc_quote_quantums: int
    positions: dict[str, int]
    position_indices: tuple[int, ...]
    collateral_quote_quantums: int  # what the trader put in: USDC before paying for the entries


@dataclass(slots=True)
class PricedMarketView:
    """A market at a chosen oracle price, shaped like `margin.PricedMarket` (open interest 0, so
    the base initial fraction: the risk lab does not model the market's open interest)."""

    params: MarketParams
    oracle_price_subticks: int | None  # always set here; typed as `margin.PricedMarket` declares it
    open_interest_base_quantums: int = 0
    quantum_conversion_divisor: int = field(init=False)
    initial_margin_ppm: int = field(init=False)

    def __post_init__(self) -> None:
        self.quantum_conversion_divisor = 10 ** -self.params.quantum_conversion_exponent
        self.initial_margin_ppm = self.params.liquidity_tier.initial_margin_ppm


@dataclass(frozen=True, slots=True)
class Exposure:
    """Float view of one position for scenario math (USD, whole base units)."""

    index: int
    market_id: str
    asset: str
    account: str
    size: float  # signed base units
    entry_price: float
    mark_price: float
    notional: float  # signed, at the mark
    initial_fraction: float  # IMF
    maintenance_fraction: float  # IMF x maintenance fraction
    collateral: float  # isolated collateral; 0 for cross


@dataclass(frozen=True, slots=True)
class Portfolio:
    name: str
    markets: dict[str, MarketParams]
    positions: tuple[Position, ...]
    cross_collateral_quote_quantums: int
    mark_prices_subticks: dict[str, int]
    source: str = "<portfolio>"

    # --- accounts ----------------------------------------------------------------------------
    def accounts(self) -> list[MarginAccount]:
        """The cross account (if it has positions or collateral) then one per isolated position."""
        out: list[MarginAccount] = []
        cross = [p for p in self.positions if p.margin_mode is MarginMode.CROSS]
        if cross or self.cross_collateral_quote_quantums:
            out.append(self._account("cross", cross, self.cross_collateral_quote_quantums))
        for position in self.positions:
            if position.margin_mode is MarginMode.ISOLATED:
                out.append(self._account(position.account, [position], position.isolated_collateral_quote_quantums))
        return out

    def account(self, label: str) -> MarginAccount:
        for account in self.accounts():
            if account.label == label:
                return account
        raise PortfolioError(f"no account {label!r} in portfolio {self.name}", field="account", value=label)

    def _account(self, label: str, positions: list[Position], collateral: int) -> MarginAccount:
        usdc = collateral
        sizes: dict[str, int] = {}
        for position in positions:
            params = self.markets[position.market_id]
            # paying for the entry: quote = size x entry (units.base_to_quote_quantums, toward zero)
            usdc -= base_to_quote_quantums(position.size_base_quantums, position.entry_price_subticks,
                                           params.quantum_conversion_exponent)
            sizes[position.market_id] = sizes.get(position.market_id, 0) + position.size_base_quantums
        return MarginAccount(label, usdc, {m: s for m, s in sizes.items() if s},
                             tuple(p.index for p in positions), collateral)

    # --- prices and risk -------------------------------------------------------------------------
    def priced_markets(self, prices_subticks: Mapping[str, int] | None = None) -> dict[str, PricedMarketView]:
        """Every market the portfolio holds, at the mark prices with `prices_subticks` overriding."""
        prices = dict(self.mark_prices_subticks)
        if prices_subticks:
            prices.update(prices_subticks)
        return {market_id: PricedMarketView(self.markets[market_id], prices[market_id])
                for market_id in self.mark_prices_subticks}

    def risk(self, account: MarginAccount, prices_subticks: Mapping[str, int] | None = None) -> Risk:
        """The account's `Risk` from the core's `margin.account_risk`, at marks overridden by
        `prices_subticks` (integer subticks)."""
        return account_risk(account.usdc_quote_quantums, account.positions, self.priced_markets(prices_subticks))

    # --- float views -------------------------------------------------------------------------------
    def price(self, market_id: str, price_subticks: int | None = None) -> float:
        params = self.markets[market_id]
        subticks = self.mark_prices_subticks[market_id] if price_subticks is None else price_subticks
        return float(subticks_to_price(subticks, params.atomic_resolution, params.quantum_conversion_exponent))

    def exposures(self) -> list[Exposure]:
        out = []
        for p in self.positions:
            params = self.markets[p.market_id]
            tier = params.liquidity_tier
            size = float(base_quantums_to_size(p.size_base_quantums, params.atomic_resolution))
            mark = self.price(p.market_id)
            out.append(Exposure(
                index=p.index, market_id=p.market_id, asset=p.asset, account=p.account, size=size,
                entry_price=self.price(p.market_id, p.entry_price_subticks), mark_price=mark, notional=size * mark,
                initial_fraction=tier.initial_margin_ppm / PPM,
                maintenance_fraction=tier.initial_margin_ppm * tier.maintenance_fraction_ppm / PPM**2,
                collateral=p.isolated_collateral_quote_quantums / QUOTE))
        return out

    @property
    def cross_collateral_usd(self) -> float:
        return self.cross_collateral_quote_quantums / QUOTE

    def equity_usd(self) -> float:
        """Net collateral of every account at the marks, summed (USD)."""
        return sum(self.risk(account).net_collateral for account in self.accounts()) / QUOTE

    def assets(self) -> list[str]:
        """Distinct base assets held, in first-seen order."""
        return list(dict.fromkeys(p.asset for p in self.positions))

    def summary(self) -> dict[str, Any]:
        rows = []
        for exposure in self.exposures():
            rows.append({"index": exposure.index, "market": exposure.market_id, "account": exposure.account,
                         "size": exposure.size, "entry_price": exposure.entry_price,
                         "mark_price": exposure.mark_price, "notional_usd": exposure.notional,
                         "isolated_collateral_usd": exposure.collateral})
        accounts = []
        for account in self.accounts():
            risk = self.risk(account)
            accounts.append({"account": account.label, "collateral_usd": account.collateral_quote_quantums / QUOTE,
                             "net_collateral_usd": risk.net_collateral / QUOTE,
                             "initial_requirement_usd": risk.initial_requirement / QUOTE,
                             "maintenance_requirement_usd": risk.maintenance_requirement / QUOTE,
                             "free_collateral_usd": risk.free_collateral / QUOTE,
                             "liquidatable": risk.is_liquidatable()})
        return {"name": self.name, "source": self.source, "cross_collateral_usd": self.cross_collateral_usd,
                "equity_usd": self.equity_usd(), "positions": rows, "accounts": accounts}


def asset_of(market: str) -> str:
    """Base asset of a market name: BTC-USD, BTC-USDT, BTC-USDT-PERP, BTC/USDC:USDC -> BTC."""
    return market.replace("/", "-").split("-")[0].upper()


# --- building ------------------------------------------------------------------------------------------
def _markets_by_id(markets: Iterable[MarketParams] | None, markets_file: str | None, base: Path | None
                   ) -> dict[str, MarketParams]:
    from perpdex.config.markets import load_markets

    if markets is not None:
        return {m.market_id: m for m in markets}
    path = None
    if markets_file is not None:
        path = Path(markets_file)
        if not path.is_absolute() and base is not None:
            path = base / path
    return {m.market_id: m for m in load_markets(path)}


def _to_subticks(price: Decimal, params: MarketParams, *, round_up: bool) -> int:
    return price_to_subticks(price, params.atomic_resolution, params.quantum_conversion_exponent, round_up=round_up)


def portfolio_from_model(model: PortfolioModel, *, markets: Iterable[MarketParams] | None = None,
                         source: str = "<portfolio>", base: Path | None = None) -> Portfolio:
    """The exact portfolio of a validated file model; raises PortfolioError naming the field."""
    by_id = _markets_by_id(markets, model.markets_file, base)
    positions: list[Position] = []
    marks: dict[str, int] = {}
    for index, raw in enumerate(model.positions):
        where = f"positions[{index}]"
        params = by_id.get(raw.market)
        if params is None:
            raise PortfolioError(f"{source}: {where}.market: unknown market {raw.market!r} "
                                 f"(known: {', '.join(sorted(by_id))})", field=f"{where}.market", value=raw.market)
        try:
            size = size_to_base_quantums(raw.size, params.atomic_resolution)
        except ValueError as exc:
            raise PortfolioError(f"{source}: {where}.size: {exc}", field=f"{where}.size", value=str(raw.size)) from exc
        if not size:
            raise PortfolioError(f"{source}: {where}.size: must not be zero", field=f"{where}.size", value="0")
        # entry price on the subtick grid, rounded against the trader: a long paid more, a short got less
        entry = _to_subticks(raw.entry_price, params, round_up=size > 0)
        if entry <= 0:
            raise PortfolioError(f"{source}: {where}.entry_price: below one subtick", field=f"{where}.entry_price",
                                 value=str(raw.entry_price))
        mode = MarginMode(raw.margin_mode)
        tier = params.liquidity_tier
        max_leverage = Decimal(PPM) / Decimal(tier.initial_margin_ppm) if tier.initial_margin_ppm else None
        if raw.leverage is not None and max_leverage is not None and raw.leverage > max_leverage:
            raise PortfolioError(f"{source}: {where}.leverage: {raw.leverage} exceeds {raw.market}'s maximum "
                                 f"{max_leverage:g}x (initial margin {tier.initial_margin_ppm / 1e4:g}%)",
                                 field=f"{where}.leverage", value=str(raw.leverage))
        if mode is MarginMode.CROSS and params.market_type is MarketType.ISOLATED:
            raise PortfolioError(f"{source}: {where}.margin_mode: {raw.market} is an isolated market; "
                                 "it trades only in isolated margin", field=f"{where}.margin_mode", value="cross")
        collateral = 0
        if mode is MarginMode.ISOLATED:
            if raw.isolated_collateral_usd is not None:
                collateral = _usd(raw.isolated_collateral_usd, f"{where}.isolated_collateral_usd", source)
            elif raw.leverage is not None:
                entry_notional = abs(base_to_quote_quantums(size, entry, params.quantum_conversion_exponent))
                scaled = Decimal(entry_notional) / raw.leverage
                collateral = div_ceil(int(scaled * 10**12), 10**12)  # up: at least notional / leverage
            else:
                raise PortfolioError(f"{source}: {where}.isolated_collateral_usd: required for an isolated "
                                     "position (or give leverage)", field=f"{where}.isolated_collateral_usd",
                                     value=None)
        elif raw.isolated_collateral_usd is not None:
            raise PortfolioError(f"{source}: {where}.isolated_collateral_usd: only isolated positions have "
                                 "their own collateral", field=f"{where}.isolated_collateral_usd",
                                 value=str(raw.isolated_collateral_usd))
        positions.append(Position(index, raw.market, size, entry, mode, collateral,
                                  float(raw.leverage) if raw.leverage is not None else None))
        marks.setdefault(raw.market, entry)
    for market_id, price in model.prices.items():
        where = f"prices.{market_id}"
        params = by_id.get(market_id)
        if params is None or market_id not in marks:
            raise PortfolioError(f"{source}: {where}: no position in market {market_id!r}", field=where,
                                 value=market_id)
        if not price.is_finite() or price <= 0:
            raise PortfolioError(f"{source}: {where}: price must be positive", field=where, value=str(price))
        marks[market_id] = _to_subticks(price, params, round_up=False)
        if marks[market_id] <= 0:
            raise PortfolioError(f"{source}: {where}: below one subtick", field=where, value=str(price))
    cross = _usd(model.cross_collateral_usd, "cross_collateral_usd", source)
    used = {p.market_id for p in positions}
    return Portfolio(model.name, {m: by_id[m] for m in by_id if m in used}, tuple(positions), cross, marks, source)


def _usd(amount: Decimal, field_name: str, source: str) -> int:
    if amount < 0:
        raise PortfolioError(f"{source}: {field_name}: must not be negative", field=field_name, value=str(amount))
    try:
        return usd_to_quote_quantums(amount)
    except ValueError as exc:
        raise PortfolioError(f"{source}: {field_name}: {exc}", field=field_name, value=str(amount)) from exc


def parse_portfolio(text: str, source: str = "<portfolio>", *, markets: Iterable[MarketParams] | None = None,
                    base: Path | None = None) -> Portfolio:
    """A portfolio from TOML text; raises PortfolioError naming `source` and the field at fault."""
    raw = parse_toml(text, source, PortfolioError)
    try:
        model = PortfolioModel.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = field_path(tuple(first["loc"]))
        message = first["msg"]
        if first["type"] == "greater_than_equal" and "collateral" in where:
            message = "must not be negative"
        raise PortfolioError(f"{source}: {where}: {message}", field=where, value=_plain(first.get("input"))) from exc
    return portfolio_from_model(model, markets=markets, source=source, base=base)


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Decimal):
        return str(value)
    return repr(value)


def load_portfolio(path: str | Path | None = None, *, markets: Iterable[MarketParams] | None = None) -> Portfolio:
    """A portfolio from a TOML file, or the shipped example when `path` is None."""
    if path is None:
        text = resources.files("perpdex.risk").joinpath("examples", EXAMPLE_PORTFOLIO).read_text(encoding="utf-8")
        return parse_portfolio(text, f"perpdex/risk/examples/{EXAMPLE_PORTFOLIO}", markets=markets)
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise PortfolioError(f"{file}: cannot read: {exc.strerror}", field="file", value=str(file)) from exc
    return parse_portfolio(text, str(file), markets=markets, base=file.parent)


def portfolio_from_exchange(exchange: Any, owner: str, *, subaccount_numbers: Iterable[int] | None = None,
                            name: str | None = None) -> Portfolio:
    """The portfolio of one owner's subaccounts on an `Exchange`, at the current oracle prices.

    The exchange keeps no entry price, so every position enters at the current oracle price with
    its account's net collateral (USDC incl. unsettled funding + notional) as collateral: the
    rebuilt accounts hold exactly the exchange's USDC and positions, so `Portfolio.risk` equals
    `Exchange.risk`. At most one cross subaccount may hold positions (pick with
    `subaccount_numbers`). Raises PortfolioError.
    """
    wanted = set(subaccount_numbers) if subaccount_numbers is not None else None
    chosen = sorted(sid for sid in exchange.subaccounts
                    if sid.owner == owner and (wanted is None or sid.number in wanted))
    if not chosen:
        raise PortfolioError(f"no subaccounts of owner {owner!r}", field="owner", value=owner)
    positions: list[Position] = []
    marks: dict[str, int] = {}
    cross_collateral = 0
    cross_seen: int | None = None
    markets: dict[str, MarketParams] = {}
    for subaccount_id in chosen:
        view = exchange.settled_view(subaccount_id)
        other_assets = [asset for asset in view.collateral if asset != 0]
        if other_assets:
            raise PortfolioError(f"subaccount {subaccount_id} holds non-USDC collateral {other_assets}",
                                 field="collateral", value=str(subaccount_id))
        net = view.usdc_quote_quantums
        for market_id, size in view.positions.items():
            market = exchange.markets[market_id]
            if market.oracle_price_subticks is None:
                raise PortfolioError(f"{market_id} has no oracle price", field="prices", value=market_id)
            markets[market_id] = market.params
            marks[market_id] = market.oracle_price_subticks
            net += base_to_quote_quantums(size, market.oracle_price_subticks,
                                          market.params.quantum_conversion_exponent)
        isolated = view.margin_mode.value == "isolated"
        if net < 0:
            raise PortfolioError(f"subaccount {subaccount_id} has negative net collateral {net}",
                                 field="net_collateral", value=str(subaccount_id))
        if not isolated and view.positions:
            if cross_seen is not None:
                raise PortfolioError(f"owner {owner!r} has several cross subaccounts with positions "
                                     f"({cross_seen}, {subaccount_id.number}); choose with subaccount_numbers",
                                     field="subaccount_numbers", value=subaccount_id.number)
            cross_seen = subaccount_id.number
            cross_collateral = net  # idle cross subaccounts back nothing of this one: left out
        for market_id, size in sorted(view.positions.items()):
            index = len(positions)
            positions.append(Position(index, market_id, size, marks[market_id],
                                      MarginMode.ISOLATED if isolated else MarginMode.CROSS,
                                      net if isolated else 0, None))
    if not positions:
        raise PortfolioError(f"owner {owner!r} holds no positions", field="positions", value=owner)
    return Portfolio(name or owner, markets, tuple(positions), cross_collateral, marks,
                     f"exchange:{owner}@{exchange.last_ts_ms}")


def usd(quote_quantums: int) -> float:
    """Quote quantums to float USD for reports."""
    return float(quote_quantums_to_usd(quote_quantums))
