"""The loss-waterfall lab: one recorded order flow replayed under each liquidation policy, and who
ends up paying for it (book, insurance fund, backstop vault, deleveraged accounts, bad debt)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from perpdex.core.events import (
    BackstopTakeover, BadDebt, Deleveraged, FundTakeover, InsuranceFundChanged, Liquidated, SocializedLoss,
)
from perpdex.core.exchange import Exchange
from perpdex.core.handlers.liquidate import BACKSTOP_VAULT, FUND_ACCOUNT
from perpdex.core.liquidation import LIQUIDATION_POLICIES, LiquidationsConfig
from perpdex.core.units import QUOTE
from perpdex.lab.runs import FlowReplay, load_run


def account_class(owner: str) -> str:
    """The class of an account from its owner name: `noise-00012` -> `noise`."""
    return re.sub(r"[-_]?\d+$", "", owner) or owner


@dataclass(frozen=True, slots=True)
class PolicyOutcome:
    policy: str
    liquidated_notional_usd: float
    liquidated_subaccounts: int
    insurance_fund_drawdown_usd: float  # from its start to its lowest point
    insurance_fund_change_usd: float
    backstop_takeovers: int
    backstop_vault_pnl_usd: float  # the vault's net collateral at the end (what it gained or lost)
    fund_takeovers: int  # paradex: the fund's account as the liquidator
    fund_account_pnl_usd: float
    socialized_loss_usd: float  # made whole and owed by everyone (repaid by withdrawal haircuts)
    deleveraged_notional_usd: float
    deleveraged_accounts: int
    bad_debt_usd: float
    loss_paid_by_class_usd: dict  # deleveraging losses vs the index (paid above it), by account class
    rejected_txs: int


def compare(log_path: str | Path, policies: tuple[str, ...] = LIQUIDATION_POLICIES) -> list[PolicyOutcome]:
    """Replay the log's transactions under each policy (its other liquidation parameters kept). The
    flow is fixed, so the difference is the mechanism alone (agents do not react)."""
    markets, kwargs, txs = load_run(log_path)
    base = kwargs.pop("liquidations_config", None) or LiquidationsConfig()
    outcomes = []
    for policy in policies:
        exchange = Exchange(markets, replace(base, policy=policy), **kwargs)
        start_fund = exchange.insurance_fund_quote_quantums
        lowest_fund = start_fund
        notional = 0
        liquidated: set = set()
        takeovers = fund_takeovers = 0
        socialized = 0
        deleveraged_usd = 0.0
        deleveraged_accounts: set = set()
        bad_debt: dict = {}
        paid_by_class: dict[str, float] = {}
        replay = FlowReplay(exchange, txs)
        for event in replay:
            kind = type(event)
            if kind is Liquidated:
                params = exchange.markets[event.market_id].params
                notional += abs(event.size_base_quantums) * event.fill_price_subticks // 10 ** -params.quantum_conversion_exponent
                liquidated.add(event.subaccount_id)
            elif kind is InsuranceFundChanged:
                lowest_fund = min(lowest_fund, event.balance_quote_quantums)
            elif kind is BackstopTakeover:
                takeovers += 1
            elif kind is FundTakeover:
                fund_takeovers += 1
            elif kind is SocializedLoss:
                socialized += event.amount_quote_quantums
            elif kind is Deleveraged:
                deleveraged_usd += abs(event.quote_quantums) / QUOTE
                deleveraged_accounts.add(event.offsetting_subaccount_id)
                market = exchange.markets[event.market_id]
                # the offsetting account took -size at the bankruptcy price, paying quote_quantums;
                # its loss against the index is what it paid beyond the position's value there
                at_index = -event.size_base_quantums * market.oracle_price_subticks // market.quantum_conversion_divisor
                loss = (event.quote_quantums - at_index) / QUOTE
                owner = account_class(event.offsetting_subaccount_id.owner)
                paid_by_class[owner] = paid_by_class.get(owner, 0.0) + loss
            elif kind is BadDebt:
                bad_debt[event.subaccount_id] = event.amount_quote_quantums
        vault_pnl = (exchange.risk(BACKSTOP_VAULT).net_collateral / QUOTE
                     if BACKSTOP_VAULT in exchange.subaccounts else 0.0)
        fund_pnl = exchange.risk(FUND_ACCOUNT).net_collateral / QUOTE if FUND_ACCOUNT in exchange.subaccounts else 0.0
        outcomes.append(PolicyOutcome(
            policy, notional / QUOTE, len(liquidated), (start_fund - lowest_fund) / QUOTE,
            (exchange.insurance_fund_quote_quantums - start_fund) / QUOTE, takeovers, vault_pnl,
            fund_takeovers, fund_pnl, socialized / QUOTE,
            deleveraged_usd, len(deleveraged_accounts), sum(bad_debt.values()) / QUOTE,
            dict(sorted(paid_by_class.items())), replay.rejected))
    return outcomes
