"""`perpdex bench sim`: a whole scenario (default: `default`, >= 500 agents, >= 1,000,000 orders)
through `Exchange.apply`, timed from the first transaction to the last; target <= 60 s."""

from __future__ import annotations

import time

from perpdex.sim.engine import Simulation
from perpdex.sim.scenario import load_scenario


def run(scenario: str = "default", seed: int | None = None, overrides: tuple[str, ...] = ()) -> dict:
    """Simulate without writing anything; returns the figures (simulated events/s, orders/s, ...).

    `seconds` is the simulation loop (agents, exchange, recorder); `build_seconds` the world set-up
    before it (price paths, agents)."""
    loaded = load_scenario(scenario, overrides)
    started = time.perf_counter()
    simulation = Simulation(loaded, seed, keep_txs=False)
    build = time.perf_counter() - started
    result = simulation.run()
    counts = result.counts
    seconds = result.wall_seconds
    liquidated = {row["subaccount"] for row in result.recorder.records("liquidations") if row["kind"] == "liquidation"}
    return {
        "scenario": loaded.name, "seed": result.seed, "agents": len(result.agents), "markets": len(result.markets),
        "simulated_days": loaded.days, "steps": counts.steps, "orders": counts.orders_submitted,
        "orders_accepted": counts.orders_accepted, "cancels": counts.cancels_submitted,
        "transactions": counts.transactions_applied, "events": counts.events, "fills": counts.fills,
        "rejected": counts.rejected, "liquidated_subaccounts": len(liquidated),
        "seconds": seconds, "build_seconds": build,
        "orders_per_s": counts.orders_submitted / seconds, "events_per_s": counts.events / seconds,
        "transactions_per_s": counts.transactions_applied / seconds,
        "simulated_seconds_per_s": loaded.days * 86_400 / seconds, "target_seconds": 60,
        "digest": result.digest,
    }
