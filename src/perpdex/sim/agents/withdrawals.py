"""Agents taking collateral off the exchange (`Scenario.withdrawals`): the withdrawals whose finality
the rollup makes them wait for. Not a group of its own: it acts for agents of the other groups.

Policy, per eligible agent and step, with probability per_agent_per_day x step / 1 day (its own rng,
one draw per step for all): withdraw `fraction` of the free collateral of the agent's subaccount
with the most, floored to a quote quantum, when that is at least `min_usd`. The Withdraw joins the
agent's other transactions of the step (after them) and is shuffled with them by the engine; the
exchange rejects it, changing nothing, if the agent's own orders used the collateral first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from perpdex.core.tx import Withdraw
from perpdex.core.units import QUOTE
from perpdex.sim.agents.base import Actions, AgentInfo, StepView, emit
from perpdex.sim.scenario import WithdrawalsSpec

DAY_MS = 86_400_000


class CollateralWithdrawals:
    def __init__(self, spec: WithdrawalsSpec, agents: Sequence[AgentInfo], rng: np.random.Generator,
                 step_ms: int) -> None:
        self.spec = spec
        kinds = set(spec.agent_types)
        self.eligible = [agent for agent in agents if agent.kind in kinds]
        self.rng = rng
        self.probability = min(1.0, spec.per_agent_per_day * step_ms / DAY_MS)
        self.min_quote_quantums = max(1, math.ceil(spec.min_usd * QUOTE))

    def act(self, view: StepView, actions: Actions) -> None:
        if not self.eligible or self.probability <= 0:
            return
        chosen = np.flatnonzero(self.rng.random(len(self.eligible)) < self.probability)
        exchange = view.exchange
        for j in chosen.tolist():
            agent = self.eligible[j]
            best, best_free = None, 0
            for sid in agent.subaccounts:
                if sid in exchange.subaccounts:
                    free = exchange.free_collateral(sid)
                    if free > best_free:
                        best, best_free = sid, free
            amount = int(best_free * self.spec.fraction)
            if best is not None and amount >= self.min_quote_quantums:
                emit(actions, agent.agent_id, Withdraw(view.ts_ms, best, amount))
