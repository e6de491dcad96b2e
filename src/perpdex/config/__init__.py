"""Configuration files of perpdex: the market file (TOML, validated with pydantic) and its default."""
