"""Funding (basis) arbitrageurs: short the perpetual when funding is rich, long when it is as rich
the other way, flat when it fades; the spot hedge is off-exchange (the recorder books its PnL at
the index, so their result is funding plus basis, not the direction of the market).

Policy, per arbitrageur when it acts (probability `act_probability` per step), in one market
drawn at random: with f = funding rate per 8h (the exchange's once funding runs, else the premium
estimate the engine keeps), target = -gross if f > entry, +gross if f < -entry (when allowed),
0 if |f| < exit, else hold; gross = leverage x equity / markets; trade toward it with IOC orders
of at most `max_order_usd`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from perpdex.core.state import SubaccountId
from perpdex.core.units import QUOTE
from perpdex.sim.agents.base import (
    Actions,
    AgentGroup,
    AgentInfo,
    MarketGrid,
    StepView,
    emit,
    ioc_order,
    trade_toward,
)
from perpdex.sim.scenario import ArbitrageursSpec


class FundingArbitrageurs(AgentGroup):
    kind = "arbitrageur"

    def __init__(self, spec: ArbitrageursSpec, first_id: int, grid: MarketGrid,
                 seeds: Sequence[np.random.SeedSequence], group_rng: np.random.Generator, step_ms: int) -> None:
        super().__init__(first_id, spec.count, grid, seeds, group_rng, step_ms)
        self.spec = spec
        self.subaccount = [SubaccountId(f"arb-{i:03d}") for i in range(self.count)]
        for i, sid in enumerate(self.subaccount):
            self.infos.append(AgentInfo(first_id + i, sid.owner, self.kind, "cross", "*", (sid,), spec.capital_usd,
                                        hedged=True))

    def act(self, view: StepView, actions: Actions) -> None:
        spec, grid, ex = self.spec, self.grid, view.exchange
        markets = len(grid)
        for i in self.actors(spec.act_probability).tolist():
            m = int(self.rngs[i].integers(markets))
            target_sign = funding_target(view.funding_8h[m] * 1e4, spec.entry_funding_bps_8h,
                                         spec.exit_funding_bps_8h, spec.trade_negative)
            if target_sign is None:
                continue
            sid = self.subaccount[i]
            subaccount = ex.subaccounts.get(sid)
            if subaccount is None:
                continue
            risk = ex.risk(sid)
            if risk.net_collateral <= 0:
                continue
            gross = spec.leverage * risk.net_collateral / QUOTE / markets
            market_id = grid.ids[m]
            current = grid.notional_usd(m, subaccount.positions.get(market_id, 0), view.oracle_subticks[m])
            order = trade_toward(target_sign * gross, current, gross, 0.1, spec.max_order_usd)
            if order == 0.0:
                continue
            if abs(current + order) > abs(current) and risk.net_collateral < risk.initial_requirement:
                continue
            tx = ioc_order(view, m, sid, order, spec.slippage_bps)
            if tx is not None:
                emit(actions, self.first_id + i, tx)


def funding_target(funding_bps_8h: float, entry_bps: float, exit_bps: float, trade_negative: bool) -> int | None:
    """-1 (short the perp), +1 (long), 0 (flat) or None (hold what you have)."""
    if funding_bps_8h > entry_bps:
        return -1
    if trade_negative and funding_bps_8h < -entry_bps:
        return 1
    if abs(funding_bps_8h) < exit_bps:
        return 0
    return None
