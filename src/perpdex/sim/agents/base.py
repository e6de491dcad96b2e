"""What every agent group shares: the markets' price and size grids (dollars to subticks and base
quantums, at the edge), the read-only view of a step, and the `AgentGroup` base class.

An agent group holds all agents of one type as arrays and decides for all of them per step (numpy
where it pays); agents only return transactions, and never write to the exchange.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from perpdex.core.orders import Side, TimeInForce
from perpdex.core.params import MarketParams
from perpdex.core.state import SubaccountId
from perpdex.core.tx import Deposit, PlaceOrder, Tx
from perpdex.core.units import QUOTE, subticks_per_unit_exponent

if TYPE_CHECKING:
    from perpdex.core.exchange import Exchange

Actions = dict[int, list[Tx]]  # agent id -> its transactions this step, in the order it wants them


class MarketGrid:
    """The simulated markets' grids, indexed by market position (0..k-1) in scenario order.

    Prices: subticks = usd * 10**e (`units.subticks_per_unit_exponent`), on a grid of
    `tick[m]` subticks; bids round down and asks up (away from the other side), `nearest` rounds
    half up. Sizes: base quantums = units * 10**-atomic_resolution, floored to whole steps.
    """

    def __init__(self, markets: Sequence[MarketParams]) -> None:
        self.params = list(markets)
        self.ids = [m.market_id for m in self.params]
        self.index_of = {market_id: i for i, market_id in enumerate(self.ids)}
        self.tick = [m.subticks_per_tick for m in self.params]
        self.step = [m.step_base_quantums for m in self.params]
        self.min_order = [m.min_order_base_quantums for m in self.params]
        self.subticks_per_usd = [10.0 ** subticks_per_unit_exponent(m.atomic_resolution, m.quantum_conversion_exponent)
                                 for m in self.params]
        self.base_per_unit = [10.0 ** -m.atomic_resolution for m in self.params]
        self.divisor = [10 ** -m.quantum_conversion_exponent for m in self.params]

    def __len__(self) -> int:
        return len(self.ids)

    def bid_subticks(self, m: int, price_usd: float) -> int:
        tick = self.tick[m]
        return max(tick, math.floor(price_usd * self.subticks_per_usd[m] / tick) * tick)

    def ask_subticks(self, m: int, price_usd: float) -> int:
        tick = self.tick[m]
        return max(tick, math.ceil(price_usd * self.subticks_per_usd[m] / tick) * tick)

    def nearest_subticks(self, m: int, price_usd: float) -> int:
        tick = self.tick[m]
        return max(tick, math.floor(price_usd * self.subticks_per_usd[m] / tick + 0.5) * tick)

    def usd(self, m: int, price_subticks: int) -> float:
        return price_subticks / self.subticks_per_usd[m]

    def size_for_usd(self, m: int, notional_usd: float, price_usd: float) -> int:
        """Base quantums worth about `notional_usd` at `price_usd`, floored to the step; 0 when
        that is below the market's minimum order."""
        if not notional_usd > 0 or not price_usd > 0:
            return 0
        step = self.step[m]
        size = int(notional_usd / price_usd * self.base_per_unit[m] / step) * step
        return size if size >= self.min_order[m] else 0

    def notional_usd(self, m: int, size_base_quantums: int, price_subticks: int) -> float:
        """Signed notional in dollars (float; exact figures come from `core.margin`)."""
        return size_base_quantums * price_subticks / self.divisor[m] / QUOTE


class StepView:
    """What agents see at a step: the exchange (read only: agents must not call `apply` or write to
    it), the published index, the book's top, and estimates the engine keeps per market (lists
    indexed by market position). All agents of a step see the same view, taken after the step's
    oracle update and system steps; their orders then reach the exchange in a shuffled order."""

    __slots__ = (
        "best_ask",
        "best_bid",
        "buy_probability",
        "depth_factor",
        "directional_bias",
        "exchange",
        "funding_8h",
        "grid",
        "index_array",
        "index_usd",
        "mid_usd",
        "momentum",
        "oracle_subticks",
        "premium",
        "spread_factor",
        "step",
        "step_ms",
        "ts_ms",
        "vol_ratio",
    )

    def __init__(self, exchange: Exchange, grid: MarketGrid, step_ms: int) -> None:
        k = len(grid)
        self.exchange = exchange
        self.grid = grid
        self.step = 0
        self.ts_ms = 0
        self.step_ms = step_ms
        self.oracle_subticks: list[int] = [0] * k  # the exchange's index price now
        self.index_usd: list[float] = [0.0] * k  # the same in dollars
        self.index_array = np.zeros(k)  # the same as an array, for vectorized agents
        self.best_bid: list[int | None] = [None] * k  # subticks
        self.best_ask: list[int | None] = [None] * k
        self.mid_usd: list[float] = [math.nan] * k
        self.premium: list[float] = [0.0] * k  # EWMA of (mid - index) / index, fraction
        self.funding_8h: list[float] = [0.0] * k  # funding rate per 8h (fraction): estimate or the exchange's
        self.vol_ratio: list[float] = [1.0] * k  # recent / usual index volatility
        self.momentum: list[float] = [0.0] * k  # fast - slow EWMA of log index
        self.depth_factor: list[float] = [1.0] * k  # LiquidityWithdrawalModel
        self.spread_factor: list[float] = [1.0] * k
        self.buy_probability: list[float] = [0.5] * k  # demand windows
        self.directional_bias: list[float] = [0.0] * k


@dataclass(frozen=True)
class AgentInfo:
    """One agent as the recorder and report see it."""

    agent_id: int
    name: str  # also the owner of its subaccounts
    kind: str
    margin_mode: str  # "cross" or "isolated"
    market: str  # the market it trades, or "*" for all
    subaccounts: tuple[SubaccountId, ...]
    capital_usd: float
    hedged: bool = False  # holds an off-exchange hedge (funding arbitrageurs)


def emit(actions: Actions, agent_id: int, tx: Tx) -> None:
    actions.setdefault(agent_id, []).append(tx)


def trade_toward(target_usd: float, current_usd: float, gross_usd: float, band: float, max_order_usd: float) -> float:
    """Signed dollars to trade toward a target: 0 inside the band (band x gross), else the gap
    capped at `max_order_usd`. Closing a position entirely is always allowed."""
    gap = target_usd - current_usd
    if abs(gap) <= band * gross_usd and not (target_usd == 0.0 and current_usd != 0.0):
        return 0.0
    return max(-max_order_usd, min(max_order_usd, gap))


def ioc_order(view: StepView, m: int, sid: SubaccountId, signed_usd: float, slippage_bps: float) -> PlaceOrder | None:
    """An IOC limit order worth about |signed_usd| (buy if > 0) at the index +/- slippage; None when
    it rounds to less than the minimum order."""
    grid = view.grid
    index = view.index_usd[m]
    size = grid.size_for_usd(m, abs(signed_usd), index)
    if not size:
        return None
    if signed_usd > 0:
        price = grid.ask_subticks(m, index * (1 + slippage_bps / 1e4))
        return PlaceOrder(view.ts_ms, sid, grid.ids[m], Side.BUY, size, price, time_in_force=TimeInForce.IOC)
    price = grid.bid_subticks(m, index * (1 - slippage_bps / 1e4))
    return PlaceOrder(view.ts_ms, sid, grid.ids[m], Side.SELL, size, price, time_in_force=TimeInForce.IOC)


class AgentGroup(ABC):
    """All agents of one type. Each agent has its own Generator (a child of the simulation's seed
    sequence), used first for its fixed traits and then for its own draws; `group_rng` (also a
    child) draws what is decided for the whole group at once, such as who acts this step."""

    kind: ClassVar[str] = "agent"

    def __init__(self, first_id: int, count: int, grid: MarketGrid, seeds: Sequence[np.random.SeedSequence],
                 group_rng: np.random.Generator, step_ms: int) -> None:
        if len(seeds) != count:
            raise ValueError("one seed sequence per agent")
        self.first_id = first_id
        self.count = count
        self.grid = grid
        self.step_ms = step_ms
        self.rngs = [np.random.default_rng(seed) for seed in seeds]
        self.group_rng = group_rng
        self.infos: list[AgentInfo] = []

    @property
    def agent_ids(self) -> range:
        return range(self.first_id, self.first_id + self.count)

    def setup_txs(self, ts_ms: int) -> list[tuple[int, Tx]]:
        """Opening transactions (deposits, margin modes, transfers), as (agent id, tx)."""
        return [(info.agent_id, Deposit(ts_ms, info.subaccounts[0], int(round(info.capital_usd * QUOTE))))
                for info in self.infos]

    @abstractmethod
    def act(self, view: StepView, actions: Actions) -> None:
        """Add this step's transactions of the group's agents to `actions`; read, never write."""

    def actors(self, probability: float) -> np.ndarray:
        """Local indices of the agents acting this step, each with `probability` (group rng)."""
        if probability <= 0 or not self.count:
            return np.empty(0, dtype=np.int64)
        return np.flatnonzero(self.group_rng.random(self.count) < probability)
