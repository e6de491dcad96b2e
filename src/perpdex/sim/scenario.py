"""Simulation scenarios: a TOML file validated by pydantic into `Scenario`, with `--set a.b=v`
overrides applied to the raw dict first, and the shipped scenarios in `perpdex/sim/scenarios/`.

A bad file or override raises `ScenarioError` (a `PerpdexError`) whose message names the source
and the dotted field at fault, e.g. `default: agents.noise.count: Input should be greater than or
equal to 0`. Units are in the field names: `_usd`, `_bps` (1e-4), `_ppm` (1e-6), `_hours`, `_seconds`.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from perpdex.config.markets import field_path, parse_toml
from perpdex.core.errors import PerpdexError

SCENARIO_PACKAGE = "perpdex.sim.scenarios"
DATA_PACKAGE = "perpdex.sim.data"
PACKAGE_PREFIX = "package:"  # `csv = "package:<file>"` names a file shipped in perpdex/sim/data/
ALL_MARKETS = "*"


class ScenarioError(PerpdexError):
    """A scenario file, name or override that cannot be used; `field` is the dotted path at fault."""

    code = "sim.bad_scenario"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- markets and the index ---------------------------------------------------------------------
class MarketSpec(_Spec):
    """One simulated market: where its index starts and how it moves, and optional overrides of
    the market file's exchange parameters for this market only."""

    start_price_usd: float = Field(gt=0)  # ignored by csv replay (the file says where it starts)
    drift_annual: float = Field(default=0.0, ge=-10, le=10)  # mu of the log-price process
    vol_annual: float = Field(default=0.6, ge=0, le=10)  # sigma, annualised
    jump_intensity_per_day: float = Field(default=0.0, ge=0, le=100)  # Merton lambda
    jump_mean: float = Field(default=0.0, ge=-2, le=2)  # mean log jump size
    jump_std: float = Field(default=0.0, ge=0, le=2)  # std of the log jump size
    csv_market: str | None = None  # market name in the replay CSV (default: this market id)
    # exchange parameter overrides (None: keep the market file's value)
    imf_ppm: int | None = Field(default=None, ge=0, le=1_000_000)  # base initial margin fraction
    maintenance_fraction_ppm: int | None = Field(default=None, ge=0, le=1_000_000)  # of initial
    maker_fee_ppm: int | None = Field(default=None, ge=-100_000, le=100_000)
    taker_fee_ppm: int | None = Field(default=None, ge=0, le=100_000)
    oracle_staleness_ms: int | None = Field(default=None, gt=0)
    funding_model: str | None = None  # perpdex.core.funding.FUNDING_MODELS (None: the market file's)
    funding: dict[str, int | str] = {}  # that model's parameters, over the scenario-wide `funding`


class IndexSpec(_Spec):
    """The index price process shared by all markets, and the oracle that publishes it."""

    model: Literal["gbm", "merton", "regime", "csv"] = "gbm"
    correlation: float | list[list[float]] = 0.0  # one off-diagonal value, or the full matrix in market order
    regime_vol_multipliers: list[float] = Field(default=[1.0, 3.0], min_length=1)  # x vol_annual per regime
    regime_mean_hours: list[float] = Field(default=[48.0, 6.0], min_length=1)  # mean stay in each regime
    csv: str | None = None  # replay file: a path, or "package:<file>" for data shipped with perpdex
    csv_start: str | None = None  # ISO time to start the replay at (default: the file's first row)
    bridge_vol_annual: float = Field(default=0.0, ge=0, le=10)  # Brownian-bridge noise between CSV rows
    oracle_sources: int = Field(default=3, ge=1, le=15)  # prices per update; the exchange takes the median
    oracle_noise_bps: float = Field(default=1.0, ge=0, le=1_000)  # each source's error around the index

    @field_validator("correlation")
    @classmethod
    def _correlation_in_range(cls, value: float | list[list[float]]) -> float | list[list[float]]:
        if isinstance(value, float | int) and not -1 < value < 1:
            raise ValueError("correlation must be within (-1, 1)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> IndexSpec:
        if len(self.regime_vol_multipliers) != len(self.regime_mean_hours):
            raise ValueError("regime_vol_multipliers and regime_mean_hours need one entry per regime")
        if any(m < 0 for m in self.regime_vol_multipliers) or any(h <= 0 for h in self.regime_mean_hours):
            raise ValueError("regime multipliers must be >= 0 and mean hours > 0")
        if self.model == "csv" and not self.csv:
            raise ValueError("model 'csv' needs `csv` (a path or package:<file>)")
        return self


# --- scheduled events ------------------------------------------------------------------------
class ShockSpec(_Spec):
    """A scheduled move of the index: `move` (-0.25 = a 25% drop) spread over `duration_hours`,
    starting `at_hours` after the start; it stays (no rebound) unless `rebound` is set."""

    market: str  # a market id, or "*" for every market
    at_hours: float = Field(ge=0)
    duration_hours: float = Field(default=1.0, gt=0)
    move: float = Field(gt=-0.99, le=10)
    rebound: float = Field(default=0.0, ge=0, le=1)  # fraction of the move given back afterwards
    rebound_hours: float = Field(default=6.0, gt=0)


class LiquidityWithdrawalSpec(_Spec):
    """Makers pull depth and widen spreads: ramp down over `ramp_minutes`, hold for
    `duration_hours`, recover linearly over `recovery_hours`."""

    market: str
    at_hours: float = Field(ge=0)
    duration_hours: float = Field(gt=0)
    ramp_minutes: float = Field(default=10.0, ge=0)
    recovery_hours: float = Field(default=2.0, ge=0)
    depth_factor: float = Field(default=0.2, ge=0, le=1)  # fraction of normal quote size kept
    spread_factor: float = Field(default=3.0, ge=1, le=100)  # multiplier of the normal spread


class DemandSpec(_Spec):
    """One-sided order flow: noise traders buy with `buy_probability` instead of 0.5, and
    directional traders lean by `directional_bias` (+ long), while the window lasts."""

    market: str
    at_hours: float = Field(default=0.0, ge=0)
    duration_hours: float = Field(gt=0)
    buy_probability: float = Field(default=0.5, gt=0, lt=1)
    directional_bias: float = Field(default=0.0, ge=-1, le=1)


# --- agents ----------------------------------------------------------------------------------
class MarketMakersSpec(_Spec):
    count_per_market: int = Field(default=8, ge=0, le=1_000)
    capital_usd: float = Field(default=2_000_000, gt=0)
    levels: int = Field(default=3, ge=1, le=50)  # quotes per side
    half_spread_bps: float = Field(default=4.0, gt=0)
    level_spacing_bps: float = Field(default=4.0, gt=0)
    order_notional_usd: float = Field(default=40_000, gt=0)  # size of the first level
    level_size_growth: float = Field(default=0.5, ge=0)  # level k is (1 + growth * k) x the first
    max_inventory_usd: float = Field(default=400_000, gt=0)
    skew_bps: float = Field(default=8.0, ge=0)  # center shift at full inventory
    requote_seconds: float = Field(default=60.0, gt=0)
    requote_move_bps: float = Field(default=25.0, gt=0)  # requote early when the index moved this much
    vol_widen: float = Field(default=1.0, ge=0)  # spread x (1 + vol_widen * (vol ratio - 1)+)
    vol_pull: float = Field(default=1.0, ge=0)  # size / (1 + vol_pull * (vol ratio - 1)+)
    funding_widen: float = Field(default=0.5, ge=0)  # + this x |funding 8h| (bps) to the half spread
    funding_pull: float = Field(default=0.05, ge=0)  # size / (1 + funding_pull * |funding 8h bps|)


class DirectionalSpec(_Spec):
    count: int = Field(default=60, ge=0, le=100_000)
    capital_usd: tuple[float, float] = (5_000.0, 50_000.0)  # log-uniform between
    leverage: tuple[float, float] = (2.0, 10.0)  # uniform between; target gross / equity
    isolated_fraction: float = Field(default=0.3, ge=0, le=1)  # share trading one market in isolated margin
    long_bias: float = Field(default=0.2, ge=-1, le=1)  # mean of each trader's lean (+1 all long)
    bias_dispersion: float = Field(default=0.5, ge=0)
    trend_weight: float = Field(default=0.6, ge=0)  # weight of the momentum signal
    momentum_fast_hours: float = Field(default=1.0, gt=0)
    momentum_slow_hours: float = Field(default=12.0, gt=0)
    momentum_scale_bps: float = Field(default=100.0, gt=0)  # tanh(momentum / scale)
    act_probability: float = Field(default=0.02, ge=0, le=1)  # per step
    rebalance_band: float = Field(default=0.15, ge=0, le=1)  # trade only when off target by this x target
    max_order_usd: float = Field(default=25_000, gt=0)
    slippage_bps: float = Field(default=50.0, gt=0)  # IOC limit from the index

    @field_validator("capital_usd", "leverage")
    @classmethod
    def _ordered_positive(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] <= value[1]:
            raise ValueError("needs 0 < low <= high")
        return value


class ArbitrageursSpec(_Spec):
    count: int = Field(default=15, ge=0, le=10_000)
    capital_usd: float = Field(default=500_000, gt=0)
    leverage: float = Field(default=3.0, gt=0, le=50)
    entry_funding_bps_8h: float = Field(default=2.0, gt=0)  # short when the 8h funding rate is richer
    exit_funding_bps_8h: float = Field(default=0.5, ge=0)  # close when it is back under this
    trade_negative: bool = True  # go long when funding is as rich the other way
    act_probability: float = Field(default=0.05, ge=0, le=1)
    max_order_usd: float = Field(default=50_000, gt=0)
    slippage_bps: float = Field(default=20.0, gt=0)


class NoiseSpec(_Spec):
    count: int = Field(default=400, ge=0, le=1_000_000)
    capital_usd: float = Field(default=20_000, gt=0)
    act_probability: float = Field(default=0.035, ge=0, le=1)  # per step
    order_notional_usd: float = Field(default=2_000, gt=0)  # mean, lognormal
    order_notional_sigma: float = Field(default=0.8, ge=0, le=3)
    marketable_fraction: float = Field(default=0.6, ge=0, le=1)  # IOC; the rest rest passively
    passive_offset_bps: float = Field(default=20.0, gt=0)  # passive orders sit 1..this bps off the index
    passive_lifetime_seconds: float = Field(default=300.0, gt=0)
    max_leverage: float = Field(default=3.0, gt=0)  # above it they only reduce
    slippage_bps: float = Field(default=30.0, gt=0)


class AgentsSpec(_Spec):
    market_makers: MarketMakersSpec = MarketMakersSpec()
    directional: DirectionalSpec = DirectionalSpec()
    arbitrageurs: ArbitrageursSpec = ArbitrageursSpec()
    noise: NoiseSpec = NoiseSpec()


class LiquidationsSpec(_Spec):
    """Overrides of the exchange's `core.liquidation.LiquidationsConfig` (dYdX v4 mainnet genesis
    by default); None keeps the default."""

    max_liquidation_fee_ppm: int | None = Field(default=None, gt=0, le=1_000_000)
    min_position_notional_liquidated_quote_quantums: int | None = Field(default=None, ge=0)
    max_position_portion_liquidated_ppm: int | None = Field(default=None, gt=0, le=1_000_000)
    max_notional_liquidated_quote_quantums: int | None = Field(default=None, gt=0)
    max_insurance_lost_quote_quantums: int | None = Field(default=None, gt=0)
    bankruptcy_adjustment_ppm: int | None = Field(default=None, ge=1_000_000)
    spread_to_maintenance_margin_ratio_ppm: int | None = Field(default=None, gt=0)


class WithdrawalsSpec(_Spec):
    """Agents take collateral off the exchange: each agent of `agent_types` withdraws on average
    `per_agent_per_day` times a simulated day, `fraction` of the free collateral of its subaccount
    with the most, when that is at least `min_usd` (0 per day: nobody withdraws)."""

    per_agent_per_day: float = Field(default=0.0, ge=0, le=1_000)
    fraction: float = Field(default=0.25, gt=0, le=1)
    min_usd: float = Field(default=100.0, ge=0)
    agent_types: list[Literal["market_maker", "directional", "arbitrageur", "noise"]] = Field(
        default=["directional", "arbitrageur", "noise"], min_length=1)


class RollupSpec(_Spec):
    """Run the exchange through the rollup (`perpdex.rollup`): a sequencer closes a batch every
    `batch_max_txs` transactions or `batch_max_age_hours` of transaction time, a prover takes
    fixed + per-transaction time to prove it, and the L1 contract accepts batches in order once
    proved (verifying each by re-execution). Defaults are StarkEx's published figures: batches
    within 4 h, proving about 2 h for a ~500k-transaction batch (`rollup.prover.ProvingTimeModel`).
    `funding`: "soft" (funding sees the latest matched state) or "finalized" (only what accepted
    batches hold, released by `FundingFinalize`). `hash`: the state tree's hash, BLAKE2s by default
    for speed; "pedersen" is StarkEx's (about 10x the commit time: on the default scenario's ~700
    accounts ~0.2 s a batch, small beside the verifier's re-execution)."""

    enabled: bool = False  # `perpdex sim run --rollup` sets it
    batch_max_txs: int = Field(default=500_000, ge=1, le=100_000_000)
    batch_max_age_hours: float = Field(default=4.0, gt=0, le=168)
    proving_fixed_minutes: float = Field(default=20.0, ge=0, le=10_080)
    proving_per_tx_ms: float = Field(default=12.0, ge=0, le=60_000)
    proving_max_hours: float = Field(default=12.0, gt=0, le=168)
    funding: Literal["soft", "finalized"] = "soft"
    hash: str = "blake2s"
    commit_liabilities: bool = True  # also commit the liabilities (sum) tree each batch (escape of the exchange)
    tree_height: int = Field(default=64, ge=8, le=251)
    # the verifier's StarkEx fairness checks (rollup.validity) on top of re-execution: fills within signed
    # orders, liquidations at fair prices, funding within the max rate (false: re-execution only)
    fairness_checks: bool = True

    @field_validator("hash")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        from perpdex.rollup.hashing import BACKENDS

        if value not in BACKENDS:
            raise ValueError(f"unknown hash {value!r}; choose one of {', '.join(BACKENDS)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RollupSpec:
        if self.proving_fixed_minutes > self.proving_max_hours * 60:
            raise _FieldProblem("rollup.proving_max_hours", "must be at least proving_fixed_minutes")
        if self.funding == "finalized" and not self.enabled:
            raise _FieldProblem("rollup.funding", "finalized funding waits for batches accepted on L1: it needs "
                                                  "rollup.enabled = true (or --rollup)")
        return self


# --- the scenario ------------------------------------------------------------------------------
class Scenario(_Spec):
    """A whole simulation: markets and their index, scheduled events, agents and the clock."""

    name: str = Field(min_length=1)
    description: str = ""
    seed: int = Field(default=0, ge=0)
    start: str = "2024-01-01T00:00:00Z"  # ISO 8601, UTC
    days: float = Field(gt=0, le=366)
    step_seconds: float = Field(default=10.0, ge=0.001, le=86_400)
    oracle_every_steps: int = Field(default=1, ge=1)
    record_every_steps: int = Field(default=6, ge=1)  # market series (prices, OI, insurance fund)
    account_sample_every_steps: int = Field(default=90, ge=1)  # per-type PnL and accounts at risk
    markets_file: str | None = None  # market TOML (default: perpdex's shipped dYdX v4 set)
    insurance_fund_usd: float = Field(default=0.0, ge=0)  # seeded by a treasury before trading starts
    funding_ticks: bool = True  # a system step sends FundingTick when a market's funding interval ends
    # funding model parameters for every market (e.g. dYdX's min_votes_per_sample: the exchange takes
    # one premium vote per step here, not one per 4 s block, so a sample needs fewer votes)
    funding: dict[str, int | str] = {}
    funding_refresh_steps: int = Field(default=3, ge=1)  # how often agents re-read the predicted funding rate
    liquidations: LiquidationsSpec = LiquidationsSpec()
    markets: dict[str, MarketSpec] = Field(min_length=1)
    index: IndexSpec = IndexSpec()
    shocks: list[ShockSpec] = []
    liquidity_withdrawals: list[LiquidityWithdrawalSpec] = []
    demand: list[DemandSpec] = []
    agents: AgentsSpec = AgentsSpec()
    withdrawals: WithdrawalsSpec = WithdrawalsSpec()
    rollup: RollupSpec = RollupSpec()

    @field_validator("start")
    @classmethod
    def _valid_time(cls, value: str) -> str:
        parse_time_ms(value)
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Scenario:
        names = list(self.markets)
        for group in ("shocks", "liquidity_withdrawals", "demand"):
            for index, entry in enumerate(getattr(self, group)):
                if entry.market != ALL_MARKETS and entry.market not in self.markets:
                    raise _FieldProblem(f"{group}[{index}].market",
                                        f"unknown market {entry.market!r} (scenario markets: {', '.join(names)}, or '*')")
        correlation = self.index.correlation
        if isinstance(correlation, list):
            size = len(names)
            if len(correlation) != size or any(len(row) != size for row in correlation):
                raise _FieldProblem("index.correlation", f"needs a {size}x{size} matrix (one row per market)")
            for i in range(size):
                if correlation[i][i] != 1 or any(correlation[i][j] != correlation[j][i] for j in range(size)):
                    raise _FieldProblem("index.correlation", "needs a symmetric matrix with ones on the diagonal")
        if self.index.csv_start is not None:
            parse_time_ms(self.index.csv_start)
        if self.steps < 1:
            raise _FieldProblem("days", "the run is shorter than one step")
        return self

    # --- derived -----------------------------------------------------------------------------
    @property
    def market_ids(self) -> list[str]:
        return list(self.markets)

    @property
    def step_ms(self) -> int:
        return max(1, round(self.step_seconds * 1_000))

    @property
    def steps(self) -> int:
        return int(self.days * 86_400_000 // self.step_ms)

    @property
    def start_ms(self) -> int:
        return parse_time_ms(self.start)

    @property
    def agent_count(self) -> int:
        agents = self.agents
        return (agents.market_makers.count_per_market * len(self.markets) + agents.directional.count
                + agents.arbitrageurs.count + agents.noise.count)


class _FieldProblem(ValueError):
    """Raised inside validators to name a field other than the one being validated."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def parse_time_ms(text: str) -> int:
    """ISO 8601 time (a trailing Z or an offset; naive means UTC) to UNIX milliseconds."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00") if isinstance(text, str) else text)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not an ISO 8601 time: {text!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(round(moment.timestamp() * 1_000))


def format_time_ms(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1_000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- loading, overrides, listing -------------------------------------------------------------------
def parse_scenario(raw: dict[str, Any], source: str = "<scenario>") -> Scenario:
    """Validate a raw dict; raises ScenarioError naming `source` and the first field at fault."""
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        context_error = (first.get("ctx") or {}).get("error")
        if isinstance(context_error, _FieldProblem):
            raise ScenarioError(f"{source}: {context_error.field}: {context_error.message}",
                                field=context_error.field) from None
        field = field_path(tuple(first["loc"])) or "scenario"
        message = first["msg"].removeprefix("Value error, ")
        raise ScenarioError(f"{source}: {field}: {message}", field=field, value=_short(first.get("input"))) from None


def _short(value: Any) -> Any:
    if isinstance(value, dict | list):
        return None
    return value


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b.c=value` to (["a", "b", "c"], value); the value is read as TOML (numbers, booleans,
    strings in quotes, arrays), else kept as a bare string."""
    key, sep, value_text = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ScenarioError(f"override {text!r} is not of the form a.b.c=value", field="--set", value=text)
    value_text = value_text.strip()
    try:
        value = tomllib.loads(f"v = {value_text}")["v"]
    except tomllib.TOMLDecodeError:
        value = value_text
    return key.split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """A copy of the raw scenario dict with each `a.b.c=value` set (numeric parts index lists);
    missing tables are created, so a misspelt key is reported by validation under its path."""
    import copy

    result = copy.deepcopy(raw)
    for text in overrides:
        path, value = parse_override(text)
        node: Any = result
        for depth, part in enumerate(path):
            last = depth == len(path) - 1
            where = ".".join(path[: depth + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ScenarioError(f"override {text!r}: {where}: no list item {part}", field=where, value=part)
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    if part not in node:
                        node[part] = {}
                    node = node[part]
            else:
                raise ScenarioError(f"override {text!r}: {'.'.join(path[:depth])} is a value, not a table",
                                    field=where, value=None)
    return result


def list_scenarios() -> list[str]:
    """Names of the scenarios shipped with perpdex (files in perpdex/sim/scenarios/)."""
    folder = resources.files(SCENARIO_PACKAGE)
    return sorted(entry.name.removesuffix(".toml") for entry in folder.iterdir() if entry.name.endswith(".toml"))


def scenario_text(name_or_path: str | Path) -> tuple[str, str]:
    """(TOML text, source label) of a shipped scenario name or a file path."""
    text_name = str(name_or_path)
    if text_name in list_scenarios():
        text = resources.files(SCENARIO_PACKAGE).joinpath(f"{text_name}.toml").read_text(encoding="utf-8")
        return text, text_name
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except OSError as exc:
            raise ScenarioError(f"{path}: cannot read: {exc.strerror}", field="scenario", value=str(path)) from None
    raise ScenarioError(f"unknown scenario {text_name!r} (shipped: {', '.join(list_scenarios())}; or a .toml path)",
                        field="scenario", value=text_name)


def load_scenario(name_or_path: str | Path = "default", overrides: list[str] | tuple[str, ...] = ()) -> Scenario:
    """A shipped scenario by name, or a TOML file, with `--set` overrides applied before validation."""
    text, source = scenario_text(name_or_path)
    raw = parse_toml(text, source, ScenarioError)
    raw = apply_overrides(raw, overrides)
    index = raw.get("index")
    if isinstance(index, dict) and isinstance(index.get("csv"), str) and source not in list_scenarios():
        reference = index["csv"]  # a relative replay path is relative to the scenario file
        if not reference.startswith(PACKAGE_PREFIX) and not Path(reference).is_absolute():
            index["csv"] = str((Path(source).parent / reference).resolve())
    return parse_scenario(raw, source)


def scenario_to_toml(scenario: Scenario) -> str:
    """The effective scenario (after overrides) as TOML, to rerun it exactly."""
    import tomli_w

    data = scenario.model_dump(mode="json", exclude_none=True)
    return tomli_w.dumps(data)


def resolve_data_path(reference: str) -> Path | Any:
    """A replay file reference: `package:<file>` in perpdex/sim/data/, else a path."""
    if reference.startswith(PACKAGE_PREFIX):
        name = reference.removeprefix(PACKAGE_PREFIX)
        entry = resources.files(DATA_PACKAGE).joinpath(name)
        if not entry.is_file():
            raise ScenarioError(f"no shipped data file {name!r}", field="index.csv", value=reference)
        return entry
    path = Path(reference)
    if not path.is_file():
        raise ScenarioError(f"replay file not found: {path}", field="index.csv", value=reference)
    return path

