"""Noise traders: random orders with no view, the background flow a venue lives on.

Policy, per trader when it acts (probability `act_probability` per step; the group's rng draws
every actor's market, side, kind and size at once): pick a market at
random; buy with the step's buy probability (0.5, or a demand window's); size lognormal around
`order_notional_usd`; with `marketable_fraction` send an IOC at the index +/- `slippage_bps`, else
rest a post-only order 1..`passive_offset_bps` from the index for `passive_lifetime_seconds`.
Above `max_leverage` x capital of gross exposure a trader only trades to reduce.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from perpdex.core.orders import Side, TimeInForce
from perpdex.core.state import SubaccountId
from perpdex.core.tx import PlaceOrder
from perpdex.sim.agents.base import (
    Actions,
    AgentGroup,
    AgentInfo,
    MarketGrid,
    StepView,
    emit,
    ioc_order,
)
from perpdex.sim.scenario import NoiseSpec


class NoiseTraders(AgentGroup):
    kind = "noise"

    def __init__(self, spec: NoiseSpec, first_id: int, grid: MarketGrid, seeds: Sequence[np.random.SeedSequence],
                 group_rng: np.random.Generator, step_ms: int) -> None:
        super().__init__(first_id, spec.count, grid, seeds, group_rng, step_ms)
        self.spec = spec
        self.subaccount = [SubaccountId(f"noise-{i:05d}") for i in range(self.count)]
        for i, sid in enumerate(self.subaccount):
            self.infos.append(AgentInfo(first_id + i, sid.owner, self.kind, "cross", "*", (sid,), spec.capital_usd))
        self.lifetime_ms = max(1, round(spec.passive_lifetime_seconds * 1_000))
        self.gross_limit_usd = spec.max_leverage * spec.capital_usd

    def act(self, view: StepView, actions: Actions) -> None:
        spec, grid, ex = self.spec, self.grid, view.exchange
        actors = self.actors(spec.act_probability)
        if not len(actors):
            return
        markets = len(grid)
        sigma = spec.order_notional_sigma
        # one draw per step for all actors (group rng): market, side, kind, offset, size
        uniforms = self.group_rng.random((len(actors), 4)).tolist()
        sizes = (spec.order_notional_usd * np.exp(sigma * self.group_rng.standard_normal(len(actors))
                                                  - 0.5 * sigma * sigma)).tolist()
        for i, u, notional in zip(actors.tolist(), uniforms, sizes):
            m = min(markets - 1, int(u[0] * markets))
            buy = u[1] < view.buy_probability[m]
            sid = self.subaccount[i]
            subaccount = ex.subaccounts.get(sid)
            if subaccount is None:
                continue
            market_id = grid.ids[m]
            positions = subaccount.positions
            if positions:
                gross = 0.0
                for other_id, size in positions.items():
                    k = grid.index_of[other_id]
                    gross += abs(grid.notional_usd(k, size, view.oracle_subticks[k]))
                if gross > self.gross_limit_usd:
                    position = positions.get(market_id, 0)
                    if not position:
                        continue
                    buy = position < 0  # only reduce
                    notional = min(notional, abs(grid.notional_usd(m, position, view.oracle_subticks[m])))
            if u[2] < spec.marketable_fraction:
                tx = ioc_order(view, m, sid, notional if buy else -notional, spec.slippage_bps)
            else:
                tx = self._passive(view, m, sid, buy, notional, u[3])
            if tx is not None:
                emit(actions, self.first_id + i, tx)

    def _passive(self, view: StepView, m: int, sid: SubaccountId, buy: bool, notional: float,
                 draw: float) -> PlaceOrder | None:
        grid = self.grid
        index = view.index_usd[m]
        size = grid.size_for_usd(m, notional, index)
        if not size:
            return None
        offset = (1.0 + draw * (self.spec.passive_offset_bps - 1.0)) / 1e4
        tick = grid.tick[m]
        if buy:
            price = grid.bid_subticks(m, index * (1.0 - offset))
            best_ask = view.best_ask[m]
            if best_ask is not None and price >= best_ask:
                price = best_ask - tick
            if price <= 0:
                return None
            side = Side.BUY
        else:
            price = grid.ask_subticks(m, index * (1.0 + offset))
            best_bid = view.best_bid[m]
            if best_bid is not None and price <= best_bid:
                price = best_bid + tick
            side = Side.SELL
        return PlaceOrder(view.ts_ms, sid, grid.ids[m], side, size, price, time_in_force=TimeInForce.POST_ONLY,
                          good_til_ts_ms=view.ts_ms + self.lifetime_ms)
