"""Scenario TOML files shipped with perpdex; `perpdex sim list` shows them."""
