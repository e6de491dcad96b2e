"""One module per transaction type: validate the tx against state and return a `Plan`.
Handlers never write state; `Exchange.apply` commits what they return."""

from perpdex.core.handlers import (  # noqa: F401  (imported for Exchange's dispatch table)
    cancel_order, deposit, forced_trade, funding_finalize, funding_tick, insurance_fund_deposit, liquidate,
    oracle_update, place_order, set_margin_mode, transfer, withdraw,
)
