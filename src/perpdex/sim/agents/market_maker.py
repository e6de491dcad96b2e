"""Market makers: post-only quote ladders around the index, skewed by inventory, wider and smaller
when volatility or funding spikes, and pulled when a liquidity-withdrawal window says so.

Policy, per maker (one market each, cross margin):
- requote every `requote_seconds` (staggered by a random phase), or at once when the index moved
  more than `requote_move_bps` since the last quotes; quotes live until the next scheduled
  requote (`good_til_ts_ms`), so most never need a cancel; an early requote cancels what is left;
- center = index x (1 - inventory x skew), inventory = position notional / max inventory in [-1, 1]
  (long inventory lowers both quotes to sell it down);
- half spread = base x spread factor x (1 + vol_widen x (vol ratio - 1)+) + funding_widen x |funding 8h|;
- size = base x depth factor / (1 + vol_pull x (vol ratio - 1)+) / (1 + funding_pull x |funding 8h bps|),
  and the side that would add to inventory shrinks to zero at the inventory limit;
- quotes never cross the book seen at the step start (post-only orders would be rejected).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from perpdex.core.orders import Side, TimeInForce
from perpdex.core.state import SubaccountId
from perpdex.core.tx import CancelOrder, PlaceOrder
from perpdex.sim.agents.base import Actions, AgentGroup, AgentInfo, MarketGrid, StepView
from perpdex.sim.scenario import MarketMakersSpec


class MarketMakers(AgentGroup):
    kind = "market_maker"

    def __init__(self, spec: MarketMakersSpec, first_id: int, grid: MarketGrid,
                 seeds: Sequence[np.random.SeedSequence], group_rng: np.random.Generator, step_ms: int) -> None:
        count = spec.count_per_market * len(grid)
        super().__init__(first_id, count, grid, seeds, group_rng, step_ms)
        self.spec = spec
        self.requote_steps = max(1, round(spec.requote_seconds * 1_000 / step_ms))
        self.market_of = np.array([i // max(1, spec.count_per_market) for i in range(count)], dtype=np.int64)
        self.phase = np.array([int(rng.integers(self.requote_steps)) for rng in self.rngs], dtype=np.int64)
        self.size_scale = [float(rng.uniform(0.7, 1.3)) for rng in self.rngs]
        self.spread_scale = [float(rng.uniform(0.8, 1.25)) for rng in self.rngs]
        self.last_center = np.full(count, np.nan)
        self.subaccount = []
        for i in range(count):
            market_id = grid.ids[int(self.market_of[i])]
            name = f"mm-{market_id}-{i % max(1, spec.count_per_market):02d}"
            sid = SubaccountId(name)
            self.subaccount.append(sid)
            self.infos.append(AgentInfo(first_id + i, name, self.kind, "cross", market_id, (sid,), spec.capital_usd))

    def act(self, view: StepView, actions: Actions) -> None:
        if not self.count:
            return
        index = view.index_array[self.market_of]
        moved = np.abs(index / self.last_center - 1.0)
        due = ((view.step + self.phase) % self.requote_steps == 0) | ~(moved <= self.spec.requote_move_bps / 1e4)
        for i in np.flatnonzero(due).tolist():
            self._quote(i, view, actions)
            self.last_center[i] = view.index_usd[int(self.market_of[i])]

    def _quote(self, i: int, view: StepView, actions: Actions) -> None:
        spec, grid, ex = self.spec, self.grid, view.exchange
        m = int(self.market_of[i])
        market_id = grid.ids[m]
        sid = self.subaccount[i]
        ts_ms = view.ts_ms
        txs = actions.setdefault(self.first_id + i, [])
        open_ids = ex.orders_by_subaccount.get(sid)
        if open_ids:
            for order_id in sorted(open_ids):
                txs.append(CancelOrder(ts_ms, sid, order_id=order_id))
        index = view.index_usd[m]
        position = ex.subaccounts[sid].positions.get(market_id, 0)
        inventory = grid.notional_usd(m, position, view.oracle_subticks[m]) / spec.max_inventory_usd
        inventory = min(1.0, max(-1.0, inventory))
        center = index * (1.0 - inventory * spec.skew_bps / 1e4)
        half_spread_bps = quote_half_spread_bps(spec.half_spread_bps * self.spread_scale[i], view.spread_factor[m],
                                                view.vol_ratio[m], spec.vol_widen, view.funding_8h[m],
                                                spec.funding_widen)
        size_mult = self.size_scale[i] * quote_size_multiplier(view.depth_factor[m], view.vol_ratio[m], spec.vol_pull,
                                                               view.funding_8h[m], spec.funding_pull)
        bid_room = 1.0 - max(inventory, 0.0)
        ask_room = 1.0 + min(inventory, 0.0)
        steps_to_next = self.requote_steps - (view.step + int(self.phase[i])) % self.requote_steps
        good_til = ts_ms + steps_to_next * self.step_ms
        best_bid, best_ask = view.best_bid[m], view.best_ask[m]
        tick = grid.tick[m]
        for level in range(spec.levels):
            offset = (half_spread_bps + level * spec.level_spacing_bps) / 1e4
            notional = spec.order_notional_usd * size_mult * (1.0 + spec.level_size_growth * level)
            size = grid.size_for_usd(m, notional * bid_room, index)
            if size:
                price = grid.bid_subticks(m, center * (1.0 - offset))
                if best_ask is not None and price >= best_ask:
                    price = best_ask - tick
                if price > 0:
                    txs.append(PlaceOrder(ts_ms, sid, market_id, Side.BUY, size, price,
                                          time_in_force=TimeInForce.POST_ONLY, good_til_ts_ms=good_til))
            size = grid.size_for_usd(m, notional * ask_room, index)
            if size:
                price = grid.ask_subticks(m, center * (1.0 + offset))
                if best_bid is not None and price <= best_bid:
                    price = best_bid + tick
                txs.append(PlaceOrder(ts_ms, sid, market_id, Side.SELL, size, price,
                                      time_in_force=TimeInForce.POST_ONLY, good_til_ts_ms=good_til))
        if not txs:
            del actions[self.first_id + i]


def quote_half_spread_bps(base_bps: float, spread_factor: float, vol_ratio: float, vol_widen: float,
                          funding_8h: float, funding_widen: float) -> float:
    """The half spread a maker quotes (bps), as in `MarketMakers._quote`; pure, for tests and reports."""
    return base_bps * spread_factor * (1.0 + vol_widen * max(0.0, vol_ratio - 1.0)) + funding_widen * abs(funding_8h) * 1e4


def quote_size_multiplier(depth_factor: float, vol_ratio: float, vol_pull: float, funding_8h: float,
                          funding_pull: float) -> float:
    """The share of normal quote size a maker posts, as in `MarketMakers._quote`."""
    return depth_factor / (1.0 + vol_pull * max(0.0, vol_ratio - 1.0)) / (1.0 + funding_pull * abs(funding_8h) * 1e4)

