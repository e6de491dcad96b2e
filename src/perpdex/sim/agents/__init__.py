"""Agent types of the simulator, one group class per type: each decides for all its agents at once
and returns transactions only (`AgentGroup.act`); the engine applies them."""

from perpdex.sim.agents.arbitrageur import FundingArbitrageurs
from perpdex.sim.agents.base import Actions, AgentGroup, AgentInfo, MarketGrid, StepView
from perpdex.sim.agents.directional import DirectionalTraders
from perpdex.sim.agents.market_maker import MarketMakers
from perpdex.sim.agents.noise import NoiseTraders

AGENT_KINDS = ("market_maker", "directional", "arbitrageur", "noise")

__all__ = ["AGENT_KINDS", "Actions", "AgentGroup", "AgentInfo", "DirectionalTraders", "FundingArbitrageurs",
           "MarketGrid", "MarketMakers", "NoiseTraders", "StepView"]
