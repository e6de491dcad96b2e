"""Agents only emit transactions (the exchange is unchanged by deciding), and their documented
policies hold in the small pure pieces they are built from."""

from __future__ import annotations

import math

import pytest

from perpdex.core import tx as core_tx
from perpdex.sim.agents import MarketGrid, StepView
from perpdex.sim.agents.arbitrageur import funding_target
from perpdex.sim.agents.base import trade_toward
from perpdex.sim.agents.market_maker import quote_half_spread_bps, quote_size_multiplier
from perpdex.sim.engine import Simulation
from tests.sim.tiny import tiny


def _view(simulation: Simulation, step: int) -> StepView:
    """A view of the exchange as the engine builds it (oracle, book top, estimates)."""
    exchange, grid = simulation.exchange, simulation.grid
    view = StepView(exchange, grid, simulation.step_ms)
    view.step, view.ts_ms = step, exchange.last_ts_ms
    for m, market_id in enumerate(grid.ids):
        market = exchange.markets[market_id]
        view.oracle_subticks[m] = market.oracle_price_subticks
        view.index_usd[m] = market.oracle_price_subticks / grid.subticks_per_usd[m]
        view.best_bid[m], view.best_ask[m] = market.book.best_bid(), market.book.best_ask()
        view.funding_8h[m] = 5e-4  # rich funding: arbitrageurs act
        view.vol_ratio[m] = 2.0
        view.momentum[m] = -0.01
    view.index_array[:] = view.index_usd
    return view


def test_agents_only_emit_transactions_and_never_write():
    simulation = Simulation(tiny(days=0.01))
    simulation.run()
    exchange = simulation.exchange
    before = exchange.digest()
    tx_count = exchange.tx_count
    emitted = 0
    for step in range(40):
        view = _view(simulation, step)
        actions: dict[int, list] = {}
        for group in simulation.groups:
            group.act(view, actions)
        for agent_id, txs in actions.items():
            group_ids = {agent.agent_id for agent in simulation.agents}
            assert agent_id in group_ids
            for tx in txs:
                assert type(tx) in (core_tx.PlaceOrder, core_tx.CancelOrder), tx
                assert tx.ts_ms == view.ts_ms
            emitted += len(txs)
    assert emitted > 50
    assert exchange.digest() == before and exchange.tx_count == tx_count


def test_every_kind_of_agent_acts_and_trades():
    result = Simulation(tiny()).run()
    kinds = {agent.agent_id: agent.kind for agent in result.agents}
    active = {kinds[a] for a in result.tx_agents if a >= 0}
    assert active == {"market_maker", "directional", "arbitrageur", "noise"}
    traded = {row["agent_type"] for row in result.recorder.records("agent_pnl") if row["fills"]}
    assert {"market_maker", "noise", "directional"} <= traded


def test_isolated_traders_fund_their_isolated_subaccount():
    result = Simulation(tiny(days=0.005)).run()
    isolated = [agent for agent in result.agents if agent.margin_mode == "isolated"]
    assert isolated
    for agent in isolated:
        funding, trading = agent.subaccounts
        sub = result.exchange.subaccount(trading)
        assert sub.margin_mode.value == "isolated" and sub.isolated_market_id == agent.market
        assert result.exchange.subaccount(funding).usdc_quote_quantums == 0  # all capital moved


def test_makers_widen_and_pull_size_when_volatility_or_funding_spike():
    calm = quote_half_spread_bps(4.0, 1.0, 1.0, 1.0, 0.0, 0.5)
    assert calm == 4.0
    assert quote_half_spread_bps(4.0, 1.0, 3.0, 1.0, 0.0, 0.5) == pytest.approx(12.0)  # vol ratio 3: x(1 + 2)
    assert quote_half_spread_bps(4.0, 1.0, 1.0, 1.0, 10e-4, 0.5) == pytest.approx(9.0)  # +0.5 x 10 bps funding
    assert quote_half_spread_bps(4.0, 3.0, 1.0, 1.0, 0.0, 0.5) == pytest.approx(12.0)  # withdrawal spread factor
    assert quote_size_multiplier(1.0, 1.0, 1.0, 0.0, 0.05) == 1.0
    assert quote_size_multiplier(0.2, 1.0, 1.0, 0.0, 0.05) == pytest.approx(0.2)
    assert quote_size_multiplier(1.0, 3.0, 1.0, 0.0, 0.05) == pytest.approx(1 / 3)
    assert quote_size_multiplier(1.0, 1.0, 1.0, 20e-4, 0.05) == pytest.approx(0.5)


@pytest.mark.parametrize("funding_bps,expected", [(5.0, -1), (-5.0, 1), (0.2, 0), (1.0, None)],
                         ids=["rich: short the perp", "rich the other way: long", "faded: flat", "between: hold"])
def test_arbitrageur_targets(funding_bps, expected):
    assert funding_target(funding_bps, 2.0, 0.5, True) == expected


def test_trade_toward_respects_the_band_and_the_order_cap():
    assert trade_toward(10_000, 9_000, 10_000, 0.15, 5_000) == 0.0  # inside the band
    assert trade_toward(10_000, 0, 10_000, 0.15, 5_000) == 5_000  # capped
    assert trade_toward(0, 100, 10_000, 0.15, 5_000) == -100  # closing is always allowed
    assert trade_toward(-10_000, 0, 10_000, 0.15, 50_000) == -10_000


def test_market_grid_rounds_away_from_the_other_side_and_floors_sizes():
    simulation = Simulation(tiny(days=0.005))
    grid: MarketGrid = simulation.grid
    btc = grid.ids.index("BTC-USD")  # tick $1 = 100_000 subticks, step 0.0001 BTC = 1_000_000 base quantums
    assert grid.bid_subticks(btc, 60_000.7) == 60_000 * 100_000
    assert grid.ask_subticks(btc, 60_000.2) == 60_001 * 100_000
    assert grid.nearest_subticks(btc, 60_000.5) == 60_001 * 100_000
    assert grid.size_for_usd(btc, 6_000.0, 60_000.0) == 1_000_000_000  # 0.1 BTC
    assert grid.size_for_usd(btc, 5.0, 60_000.0) == 0  # below one step
    assert math.isclose(grid.notional_usd(btc, 1_000_000_000, 60_000 * 100_000), 6_000.0)
