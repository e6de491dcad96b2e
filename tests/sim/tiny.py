"""A tiny scenario for fast tests: two markets, 72 simulated minutes, 48 agents, an ETH drop of
20% at minute 30 with its makers pulling depth, and leveraged longs that get liquidated."""

from __future__ import annotations

import copy
from typing import Any

from perpdex.sim.scenario import Scenario, apply_overrides, parse_scenario

TINY: dict[str, Any] = {
    "name": "tiny",
    "description": "test scenario",
    "seed": 1,
    "start": "2024-01-01T00:00:00Z",
    "days": 0.05,
    "step_seconds": 20,
    "record_every_steps": 3,
    "account_sample_every_steps": 15,
    "insurance_fund_usd": 50_000,
    "markets": {"BTC-USD": {"start_price_usd": 60_000, "vol_annual": 0.5},
                "ETH-USD": {"start_price_usd": 3_000, "vol_annual": 0.6}},
    "index": {"model": "gbm", "correlation": 0.7},
    "shocks": [{"market": "ETH-USD", "at_hours": 0.5, "duration_hours": 0.25, "move": -0.2}],
    "liquidity_withdrawals": [{"market": "ETH-USD", "at_hours": 0.45, "duration_hours": 0.5, "depth_factor": 0.2,
                               "spread_factor": 3.0}],
    "agents": {
        "market_makers": {"count_per_market": 2, "requote_seconds": 40},
        "directional": {"count": 14, "leverage": [15, 30], "long_bias": 0.8, "bias_dispersion": 0.1,
                        "isolated_fraction": 0.5, "trend_weight": 0.1, "act_probability": 0.1},
        "arbitrageurs": {"count": 2, "act_probability": 0.2, "entry_funding_bps_8h": 1.0},
        "noise": {"count": 28, "act_probability": 0.2},
    },
}


def tiny(*overrides: str, **replace: Any) -> Scenario:
    """The tiny scenario with `--set`-style overrides and top-level replacements."""
    raw = copy.deepcopy(TINY)
    raw.update(replace)
    return parse_scenario(apply_overrides(raw, list(overrides)), "tiny")
