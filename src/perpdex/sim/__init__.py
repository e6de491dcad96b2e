"""Simulation on the exchange core: scripted sessions today, the agent-based simulator next."""
