"""Directional leveraged traders: each holds a target exposure of `leverage x equity`, leaning long
or short by its own bias and the index's momentum, in cross margin (all markets, one subaccount) or
isolated margin (one market, in subaccount 1 funded by a `Transfer`).

Policy, per trader when it acts (probability `act_probability` per step):
- lean = clip(bias + demand bias + trend_weight x tanh(momentum / scale), -1, 1);
- target notional = lean x leverage x equity (split evenly over markets when cross), the leverage
  capped at 80% of what the market's initial margin fraction allows;
- trade toward it with an IOC order at the index +/- `slippage_bps`, at most `max_order_usd`, only
  when off target by more than `rebalance_band` of the gross target; an account under initial
  margin only reduces. Leverage is what makes them the accounts a sudden move puts under water.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from perpdex.core.state import MarginMode, SubaccountId
from perpdex.core.tx import Deposit, SetMarginMode, Transfer, Tx
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
from perpdex.sim.scenario import DirectionalSpec

ISOLATED_SUBACCOUNT_NUMBER = 1


class DirectionalTraders(AgentGroup):
    kind = "directional"

    def __init__(self, spec: DirectionalSpec, first_id: int, grid: MarketGrid,
                 seeds: Sequence[np.random.SeedSequence], group_rng: np.random.Generator, step_ms: int) -> None:
        super().__init__(first_id, spec.count, grid, seeds, group_rng, step_ms)
        self.spec = spec
        low, high = spec.capital_usd
        self.capital = [float(math.exp(rng.uniform(math.log(low), math.log(high)))) for rng in self.rngs]
        self.leverage = [float(rng.uniform(*spec.leverage)) for rng in self.rngs]
        self.isolated = [bool(rng.random() < spec.isolated_fraction) for rng in self.rngs]
        self.market = [int(rng.integers(len(grid))) for rng in self.rngs]  # the isolated one's market
        self.bias = [float(np.clip(rng.normal(spec.long_bias, spec.bias_dispersion), -1.0, 1.0)) for rng in self.rngs]
        # never aim above 80% of what the market's initial margin allows (SOL at 10% IMF: 8x)
        self.leverage_cap = [0.8 * 1e6 / max(1, params.liquidity_tier.initial_margin_ppm) for params in grid.params]
        self.trading: list[SubaccountId] = []
        for i in range(self.count):
            name = f"dir-{i:04d}"
            if self.isolated[i]:
                trading = SubaccountId(name, ISOLATED_SUBACCOUNT_NUMBER)
                subaccounts = (SubaccountId(name), trading)
                info = AgentInfo(first_id + i, name, self.kind, "isolated", grid.ids[self.market[i]], subaccounts,
                                 self.capital[i])
            else:
                trading = SubaccountId(name)
                info = AgentInfo(first_id + i, name, self.kind, "cross", "*", (trading,), self.capital[i])
            self.trading.append(trading)
            self.infos.append(info)

    def setup_txs(self, ts_ms: int) -> list[tuple[int, Tx]]:
        """Deposit into subaccount 0; an isolated trader then makes subaccount 1 isolated to its
        market and moves all its capital there (SetMarginMode + Transfer)."""
        out: list[tuple[int, Tx]] = []
        for i, info in enumerate(self.infos):
            amount = int(round(info.capital_usd * QUOTE))
            out.append((info.agent_id, Deposit(ts_ms, info.subaccounts[0], amount)))
            if self.isolated[i]:
                out.append((info.agent_id, SetMarginMode(ts_ms, self.trading[i], MarginMode.ISOLATED,
                                                         self.grid.ids[self.market[i]])))
                out.append((info.agent_id, Transfer(ts_ms, info.subaccounts[0], self.trading[i], amount)))
        return out

    def act(self, view: StepView, actions: Actions) -> None:
        spec, grid, ex = self.spec, self.grid, view.exchange
        markets = len(grid)
        for i in self.actors(spec.act_probability).tolist():
            rng = self.rngs[i]
            isolated = self.isolated[i]
            m = self.market[i] if isolated else int(rng.integers(markets))
            sid = self.trading[i]
            subaccount = ex.subaccounts.get(sid)
            if subaccount is None:
                continue
            risk = ex.risk(sid)
            equity_usd = risk.net_collateral / QUOTE
            if equity_usd <= 0:
                continue
            lean = self.bias[i] + view.directional_bias[m] + spec.trend_weight * math.tanh(
                view.momentum[m] * 1e4 / spec.momentum_scale_bps)
            lean = min(1.0, max(-1.0, lean))
            gross = min(self.leverage[i], self.leverage_cap[m]) * equity_usd / (1 if isolated else markets)
            market_id = grid.ids[m]
            current = grid.notional_usd(m, subaccount.positions.get(market_id, 0), view.oracle_subticks[m])
            order = trade_toward(lean * gross, current, gross, spec.rebalance_band, spec.max_order_usd)
            if order == 0.0:
                continue
            if abs(current + order) > abs(current) and risk.net_collateral < risk.initial_requirement:
                continue  # under initial margin: only reductions can pass
            tx = ioc_order(view, m, sid, order, spec.slippage_bps)
            if tx is not None:
                emit(actions, self.first_id + i, tx)

