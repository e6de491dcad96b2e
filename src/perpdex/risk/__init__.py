"""The risk lab for traders: carry and funding stress, liquidation prices, VaR/ES, joint liquidation
and guardrails for a portfolio, on the core's pure margin math. Floats welcome; never writes state."""

from perpdex.risk.portfolio import (
    MarginMode,
    Portfolio,
    PortfolioError,
    RiskDataError,
    load_portfolio,
    parse_portfolio,
    portfolio_from_exchange,
)

__all__ = ["MarginMode", "Portfolio", "PortfolioError", "RiskDataError", "load_portfolio", "parse_portfolio",
           "portfolio_from_exchange"]
