"""Liquidate: close out subaccounts below maintenance, dYdX v4 style: an IOC order at the fillable
price against the book with an insurance fund delta per fill, then deleveraging, then bad debt."""

from __future__ import annotations

from typing import TYPE_CHECKING

from perpdex.core.events import (
    BackstopTakeover, BadDebt, Deleveraged, Event, Fill, FundTakeover, SocializedLoss, InsuranceFundChanged, Liquidated, LiquidationStalled, OrderFinished,
)
from perpdex.core.handlers.common import require_subaccount, settled
from perpdex.core.handlers.place_order import slippage_limit_subticks
from perpdex.core.liquidation import (
    NO_LIQUIDATIONS, LiquidationError, LiquidationsConfig, SubaccountLiquidationInfo,
    bankruptcy_price_quote_quantums, bankruptcy_price_subticks, can_deleverage, check_fill_against_subaccount_block_limits,
    deleveraging_offset_base_quantums, fillable_price_ratio, fillable_price_ratio_to_subticks,
    insurance_fund_delta, is_valid_insurance_fund_delta, liquidatable_position_size_delta,
    DeleveragingCandidate, deleveraging_order, maybe_position_to_liquidate, order_liquidation_candidates,
)
from perpdex.core.margin import (
    Risk, TransitionResult, account_risk, check_transition, initial_margin_ppm_at, moved_risk, notional_quote_quantums,
    requirements_at,
)
from perpdex.core.orders import CancelReason, OrderStatus
from perpdex.core.plan import Plan
from perpdex.core.state import Subaccount, SubaccountId
from perpdex.core.units import PPM

if TYPE_CHECKING:
    from perpdex.core.exchange import Exchange
    from perpdex.core.state import MarketState
    from perpdex.core.tx import Liquidate

LIQUIDATION_ORDER_ID = 0  # liquidation orders never rest, so they take no id in the order table
MAX_WINDOWS_PER_STEP = 64  # each window liquidates <= 10% of a position (dYdX block limit): 0.9**64 < 0.1%


class NotLiquidatableError(LiquidationError):
    code = "liquidation.not_liquidatable"


def plan(ex: Exchange, tx: Liquidate) -> Plan:
    """Validation only: the subaccount must be liquidatable now. The work happens in
    `run_requested` once this tx is accepted, as committed follow-up steps."""
    require_subaccount(ex, tx.subaccount_id)
    risk = ex.risk(tx.subaccount_id)
    if not risk.is_liquidatable():
        raise NotLiquidatableError(f"net collateral {risk.net_collateral} >= maintenance {risk.maintenance_requirement}",
                                   field="subaccount_id", value=str(tx.subaccount_id))
    return Plan()


def run_requested(ex: Exchange, tx: Liquidate) -> list[Event]:
    _begin_step(ex)
    try:
        return liquidate_subaccount(ex, tx.subaccount_id, tx.ts_ms)
    finally:
        _end_step()


def run_step(ex: Exchange, ts_ms: int) -> list[Event]:
    """The exchange's liquidation step after an oracle update: screen candidates (vectorized,
    never missing one), confirm each exactly, liquidate riskiest first, ties by subaccount id."""
    reuse = _begin_step(ex)
    try:
        return _run_step(ex, ts_ms, reuse)
    finally:
        _end_step()


def _run_step(ex: Exchange, ts_ms: int, reuse: bool) -> list[Event]:
    confirmed = []
    for subaccount_id in ex.liquidation_candidates():
        risk = _current_risk(ex, subaccount_id)
        if risk.is_liquidatable():
            confirmed.append((subaccount_id, risk))
    order = order_liquidation_candidates(confirmed)
    # With `reuse` (see `_STEP_RISKS`), a confirmed risk still holds when the account's turn comes
    # if no commit replaced its subaccount meanwhile. Kept in dicts, not (subaccount, risk) pairs:
    # no extra object per account outlives the step's start (fewer for the collector to scan).
    known_risks: dict[SubaccountId, Risk] = dict(confirmed) if reuse else {}
    del confirmed
    subaccounts = ex.subaccounts
    known_subaccounts = {subaccount_id: subaccounts[subaccount_id] for subaccount_id in known_risks}
    events: list[Event] = []
    for subaccount_id in order:
        known_subaccount = known_subaccounts.pop(subaccount_id, None)
        known = None if known_subaccount is None else (known_subaccount, known_risks.pop(subaccount_id))
        events.extend(liquidate_subaccount(ex, subaccount_id, ts_ms, confirmed=known))
    return events


def _current_risk(ex: Exchange, subaccount_id: SubaccountId) -> Risk:
    """`ex.risk` without the view's indirections (the hot path calls it several times per account):
    a subaccount committed since the last funding index move has nothing to settle, so `settled`
    would return it as it is."""
    subaccount = ex.subaccounts[subaccount_id]
    known = _STEP_RISKS.get(subaccount_id)
    if known is not None and known[0] is subaccount:
        return known[1]
    if subaccount.funding_epoch != ex.funding_epoch:
        return ex.risk(subaccount_id)
    if not subaccount.positions:  # what account_risk gives without positions (a deleveraged account's usual state)
        return Risk(subaccount.usdc_quote_quantums, 0, 0)
    return account_risk(subaccount.usdc_quote_quantums, subaccount.positions, ex.markets)


def liquidate_subaccount(ex: Exchange, subaccount_id: SubaccountId, ts_ms: int, *,
                         confirmed: tuple[Subaccount, Risk] | None = None) -> list[Event]:
    """Liquidate one subaccount under the exchange's policy (`LiquidationsConfig.policy`).
    `confirmed`: (stored subaccount, its risk) from the step's exact check, reused while that
    subaccount is still the stored one (see `run_step` for when that is sound)."""
    policy = ex.liquidations_config.policy
    if policy == "hyperliquid":
        return _liquidate_hyperliquid(ex, subaccount_id, ts_ms)
    if policy == "paradex":
        return _liquidate_paradex(ex, subaccount_id, ts_ms)
    return _liquidate_dydx(ex, subaccount_id, ts_ms, confirmed)


def _liquidate_dydx(ex: Exchange, subaccount_id: SubaccountId, ts_ms: int,
                    confirmed: tuple[Subaccount, Risk] | None = None) -> list[Event]:
    """dYdX v4: liquidate until the subaccount stands at or above maintenance, in windows (each one
    the per-block limits apply to); a window that changes nothing ends it."""
    events: list[Event] = []
    config = ex.liquidations_config
    for _ in range(MAX_WINDOWS_PER_STEP):
        info = NO_LIQUIDATIONS
        progressed = False
        while True:
            subaccount = ex.subaccounts[subaccount_id]
            if confirmed is not None and confirmed[0] is subaccount:
                risk = confirmed[1]
            else:
                risk = _current_risk(ex, subaccount_id)
            confirmed = None
            if not risk.is_liquidatable():
                return events
            market_id = maybe_position_to_liquidate(subaccount.positions, info)
            if market_id is None:
                confirmed = (subaccount, risk)  # nothing commits before the next window reads it
                break
            filled, info, risk_after = _liquidate_position(ex, subaccount, market_id, risk, info, config, ts_ms,
                                                           events)
            info = info.with_market_liquidated(market_id)
            if filled:
                progressed = True
                if risk_after is not None:
                    confirmed = (ex.subaccounts[subaccount_id], risk_after)
                continue
            # Nothing filled, so `risk` is still the account's: a step without fills commits at most
            # its funding settlement (the value `ex.risk` already counts) and maker cancels.
            if can_deleverage(risk):
                progressed |= _deleverage(ex, subaccount_id, market_id, ts_ms, events, bankrupt_risk=risk)
            else:
                events.append(LiquidationStalled(ts_ms, subaccount_id, market_id,
                                                 "no liquidity within the fillable price"))
        if not progressed:
            break
    risk = ex.risk(subaccount_id)
    if risk.net_collateral < 0:
        events.append(BadDebt(ts_ms, subaccount_id, -risk.net_collateral,
                              len(ex.subaccounts[subaccount_id].positions)))
    return events


BACKSTOP_VAULT = SubaccountId("backstop-vault")  # Hyperliquid's liquidator vault (HLP), as a subaccount


def _liquidate_hyperliquid(ex: Exchange, subaccount_id: SubaccountId, ts_ms: int) -> list[Event]:
    """Hyperliquid-style (docs "Liquidations"): below 2/3 of maintenance a backstop vault takes the
    positions and the margin; otherwise each position is reduced by a market order on the book,
    in 20% steps for positions over $100k, then a cooldown before the next step. No liquidation
    fee (the margin left stays with the user) and no fund payments: a fill below bankruptcy stops
    the step and leaves it to the backstop.
    An underwater vault is auto-deleveraged (ranked as `deleveraging_order` ranks)."""
    events: list[Event] = []
    config = ex.liquidations_config
    risk = ex.risk(subaccount_id)
    if not risk.is_liquidatable():
        return events
    if subaccount_id == BACKSTOP_VAULT:  # the liquidator of last resort: only deleveraged when underwater
        if risk.net_collateral < 0:
            _STEP_HOLDERS.clear()
            for market_id in sorted(ex.subaccounts[BACKSTOP_VAULT].positions):
                if ex.risk(BACKSTOP_VAULT).net_collateral >= 0:
                    break
                _deleverage(ex, BACKSTOP_VAULT, market_id, ts_ms, events, ranked=True)
        else:
            events.append(LiquidationStalled(ts_ms, subaccount_id, "", "backstop vault: kept, not liquidated"))
        return events
    if risk.net_collateral * PPM < risk.maintenance_requirement * config.backstop_equity_ppm:
        _backstop(ex, subaccount_id, risk, ts_ms, events)
        return events
    last = ex.liquidation_cooldowns.get(subaccount_id)
    if last is not None and ts_ms - last < config.partial_cooldown_ms:
        events.append(LiquidationStalled(ts_ms, subaccount_id, "", "partial liquidation cooldown"))
        return events
    for market_id in sorted(ex.subaccounts[subaccount_id].positions):
        subaccount = ex.subaccounts[subaccount_id]
        position = subaccount.positions.get(market_id)
        if not position:
            continue
        market = ex.markets[market_id]
        params = market.params
        step = params.step_base_quantums
        notional = abs(notional_quote_quantums(position, market.require_oracle_price(),
                                               market.quantum_conversion_divisor))
        size = abs(position)
        if notional > config.partial_above_notional_quote_quantums:
            size = max(step, size * config.partial_step_ppm // PPM // step * step)  # floor: to a step
        is_buy = position < 0
        limit = slippage_limit_subticks(market.require_oracle_price(), is_buy, config.market_order_slippage_ppm,
                                        params.subticks_per_tick)
        filled, _, _ = _liquidate_position(ex, subaccount, market_id, ex.risk(subaccount_id), NO_LIQUIDATIONS,
                                        config, ts_ms, events, order=(size if is_buy else -size, limit),
                                        fund_may_pay=False, fee_cap_ppm=0)
        if not filled:
            events.append(LiquidationStalled(ts_ms, subaccount_id, market_id, "no liquidity above bankruptcy"))
        if not ex.risk(subaccount_id).is_liquidatable():
            break
    step_plan = Plan()
    step_plan.liquidation_cooldowns[subaccount_id] = ts_ms
    ex.commit_step(step_plan)
    risk = ex.risk(subaccount_id)
    if risk.is_liquidatable() and risk.net_collateral * PPM < risk.maintenance_requirement * config.backstop_equity_ppm:
        _backstop(ex, subaccount_id, risk, ts_ms, events)
    return events


def _backstop(ex: Exchange, subaccount_id: SubaccountId, risk: Risk, ts_ms: int, events: list[Event]) -> None:
    """The vault takes every position and the remaining collateral as they are (no trade, no
    price); if that leaves the vault below zero net collateral, its positions are deleveraged."""
    step = Plan()
    source = settled(ex, ex.subaccounts[subaccount_id], step, ts_ms).copy()
    stored_vault = ex.subaccounts.get(BACKSTOP_VAULT)
    vault = settled(ex, stored_vault, step, ts_ms).copy() if stored_vault is not None else Subaccount(BACKSTOP_VAULT)
    moved = tuple(sorted(source.positions.items()))
    for market_id, size in moved:
        market = ex.markets[market_id]
        before = vault.positions.get(market_id, 0)
        # as they are: the vault's cost for the position is what it cost the source
        vault.trade(market_id, size, abs(source.cost_basis.get(market_id, 0)), market.funding_index)
        source.set_position(market_id, 0, market.funding_index)
        open_interest = step.open_interest.get(market_id, market.open_interest_base_quantums)
        step.open_interest[market_id] = open_interest + max(before + size, 0) - max(before, 0) - max(size, 0)
    collateral = source.usdc_quote_quantums
    vault.add_usdc(collateral)
    source.add_usdc(-collateral)
    step.subaccounts[subaccount_id] = source
    step.subaccounts[BACKSTOP_VAULT] = vault
    step.events.append(BackstopTakeover(ts_ms, subaccount_id, BACKSTOP_VAULT, moved, collateral,
                                        risk.net_collateral, risk.maintenance_requirement))
    ex.commit_step(step)
    events.extend(step.events)
    _reset_walks()  # the vault took positions
    if ex.risk(BACKSTOP_VAULT).net_collateral < 0:
        _STEP_HOLDERS.clear()
        for market_id in sorted(ex.subaccounts[BACKSTOP_VAULT].positions):
            if ex.risk(BACKSTOP_VAULT).net_collateral >= 0:
                break
            _deleverage(ex, BACKSTOP_VAULT, market_id, ts_ms, events, ranked=True)
    vault_risk = ex.risk(BACKSTOP_VAULT)
    if vault_risk.is_liquidatable():  # say so now: the vault holds what it took, it is not liquidated
        reason = "backstop vault: kept, not liquidated" if vault_risk.net_collateral >= 0 else "backstop vault underwater"
        events.append(LiquidationStalled(ts_ms, BACKSTOP_VAULT, "", reason))
        if vault_risk.net_collateral < 0:
            events.append(BadDebt(ts_ms, BACKSTOP_VAULT, -vault_risk.net_collateral,
                                  len(ex.subaccounts[BACKSTOP_VAULT].positions)))


FUND_ACCOUNT = SubaccountId("insurance-fund")  # Paradex-style: the fund's own account is the liquidator


def _liquidate_paradex(ex: Exchange, subaccount_id: SubaccountId, ts_ms: int) -> list[Event]:
    """Paradex-style: the insurance fund's account takes the same share of every position at the
    oracle price (the smallest share, in ppm, that leaves the account at or above maintenance; all of
    it when net collateral is not positive) and a penalty of max_liquidation_fee_ppm of what it took,
    capped at the account's excess over maintenance after the cut. A bankrupt account's remaining shortfall is made
    whole and socialized: everyone owes it until withdrawal haircuts repay it. The fund's account is
    the liquidator of last resort and is itself never liquidated. The exchange's insurance fund is
    its capital (moved into the account at its first takeover; deposits into
    SubaccountId("insurance-fund") add to it); events say when it sits below maintenance."""
    events: list[Event] = []
    if subaccount_id == FUND_ACCOUNT:  # the liquidator of last resort is not liquidated
        if ex.risk(subaccount_id).is_liquidatable():
            events.append(LiquidationStalled(ts_ms, subaccount_id, "", "insurance fund account: kept"))
        return events
    risk = ex.risk(subaccount_id)
    if not risk.is_liquidatable():
        return events
    stored = ex.subaccounts[subaccount_id]
    if risk.net_collateral <= 0:
        share = PPM
    else:
        low, high = 1, PPM  # smallest share that restores maintenance: the check is monotone in it
        while low < high:
            middle = (low + high) // 2
            candidate = _fund_takes(ex, settled(ex, stored), share_ppm=middle, fund=None, risk=None)[0]
            if account_risk(candidate.usdc_quote_quantums, candidate.positions, ex.markets).is_liquidatable():
                low = middle + 1
            else:
                high = middle
        share = low
    step = Plan()
    source = settled(ex, stored, step, ts_ms).copy()
    fund_stored = ex.subaccounts.get(FUND_ACCOUNT)
    fund = settled(ex, fund_stored, step, ts_ms).copy() if fund_stored is not None else Subaccount(FUND_ACCOUNT)
    if ex.insurance_fund_quote_quantums > 0:  # the fund's capital backs its account: move it there
        capital = ex.insurance_fund_quote_quantums
        fund.add_usdc(capital)
        step.insurance_delta_quote_quantums = -capital
        step.events.append(InsuranceFundChanged(ts_ms, -capital, 0, FUND_ACCOUNT))
    source, fund, taken, penalty, open_interest = _fund_takes(ex, source, share_ppm=share, fund=fund, risk=risk)
    step.open_interest.update(open_interest)
    step.events.append(FundTakeover(ts_ms, subaccount_id, FUND_ACCOUNT, share, taken, penalty,
                                    risk.net_collateral, risk.maintenance_requirement))
    after = account_risk(source.usdc_quote_quantums, source.positions, ex.markets)
    if not source.positions and after.net_collateral < 0:
        shortfall = -after.net_collateral
        source.add_usdc(shortfall)
        step.socialized_loss_delta = shortfall
        step.events.append(SocializedLoss(ts_ms, subaccount_id, shortfall,
                                          ex.socialized_loss_quote_quantums + shortfall))
    step.subaccounts[subaccount_id] = source
    step.subaccounts[FUND_ACCOUNT] = fund
    ex.commit_step(step)
    events.extend(step.events)
    _reset_walks()  # the fund's account took positions
    fund_risk = ex.risk(FUND_ACCOUNT)
    if fund_risk.is_liquidatable():  # the fund's account has no margin of its own unless seeded (Deposit)
        events.append(LiquidationStalled(ts_ms, FUND_ACCOUNT, "", "insurance fund account: kept"))
        if fund_risk.net_collateral < 0:
            events.append(BadDebt(ts_ms, FUND_ACCOUNT, -fund_risk.net_collateral,
                                  len(ex.subaccounts[FUND_ACCOUNT].positions)))
    return events


def _fund_takes(ex: Exchange, source: Subaccount, *, share_ppm: int, fund: Subaccount | None, risk: Risk | None):
    """Move `share_ppm` of every position of `source` (sizes rounded UP to a step: the cut is never
    smaller than the share, capped at the position) to `fund` at the oracle price, then the penalty
    (none when `risk` is None). Returns (source, fund, taken, penalty, open interest by market);
    `fund` None: a what-if on source."""
    source = source.copy()
    taken = []
    open_interest: dict[str, int] = {}
    moved_notional = 0
    for market_id, size in sorted(source.positions.items()):
        market = ex.markets[market_id]
        step = market.params.step_base_quantums
        share_size = -((-abs(size) * share_ppm) // PPM)  # ceil: the cut is never smaller than the share
        take = min(abs(size), -((-share_size) // step) * step)  # ceil to a step, capped at the position
        signed = take if size > 0 else -take
        notional = notional_quote_quantums(signed, market.require_oracle_price(), market.quantum_conversion_divisor)
        source.trade(market_id, -signed, abs(notional), market.funding_index)
        source.add_usdc(notional)
        moved_notional += abs(notional)
        taken.append((market_id, signed))
        if fund is not None:
            held = fund.positions.get(market_id, 0)
            fund.trade(market_id, signed, abs(notional), market.funding_index)
            fund.add_usdc(-notional)
            before = open_interest.get(market_id, market.open_interest_base_quantums)
            open_interest[market_id] = (before + max(held + signed, 0) - max(held, 0)
                                        + max(size - signed, 0) - max(size, 0))
    penalty = 0
    if risk is not None and risk.net_collateral > 0:
        # max_liquidation_fee_ppm of what was taken (down: for the liquidated account), but never
        # more than its excess over maintenance after the cut: the penalty never puts it back under
        after = account_risk(source.usdc_quote_quantums, source.positions, ex.markets)
        excess = max(after.net_collateral - after.maintenance_requirement, 0)
        penalty = min(moved_notional * ex.liquidations_config.max_liquidation_fee_ppm // PPM, excess)
        source.add_usdc(-penalty)
        if fund is not None:
            fund.add_usdc(penalty)
    return source, fund, tuple(taken), penalty, open_interest


def _liquidate_position(ex: Exchange, subaccount: Subaccount, market_id: str, risk: Risk,
                        info: SubaccountLiquidationInfo, config: LiquidationsConfig, ts_ms: int,
                        events: list[Event], *, order: tuple[int, int] | None = None,
                        fund_may_pay: bool = True, fee_cap_ppm: int | None = None
                        ) -> tuple[int, SubaccountLiquidationInfo, Risk | None]:
    """Match one liquidation order and commit it; returns the size filled, the window info after it,
    and the subaccount's risk after a fill when it is known without a recount (else None).

    dYdX v4 (default): size from the window limits, IOC at the fillable price; fills follow
    ProcessSingleMatch for liquidations: no taker fee, maker fee never a rebate, the insurance fund
    delta per fill. Another policy passes its own `order` (delta, limit price), its fee cap, and
    whether the fund may cover fills below bankruptcy (if not, matching stops there).

    `risk` must be the subaccount's current risk (`ex.risk`): the fillable price reads it, and it is
    the liquidated draft's risk until the first fill; after that each draft's risk follows from the
    one before by `_moved_risk` (exact), not from a full recount."""
    market = ex.markets[market_id]
    params = market.params
    oracle = market.require_oracle_price()
    position = subaccount.positions[market_id]
    if order is not None:
        delta, limit = order
    else:
        book = market.book
        if (book.best_bid() if position > 0 else book.best_ask()) is None \
                and subaccount.funding_epoch == ex.funding_epoch:
            # no maker on the side it must trade against and no funding to settle: nothing can fill, cancel
            # or commit, as below, without sizing and pricing the order (most attempts of a deep crash)
            return 0, info, None
        try:
            delta = liquidatable_position_size_delta(position, params=params, oracle_price_subticks=oracle,
                                                     config=config, info=info)
        except LiquidationError:
            return 0, info, None
        numerator, denominator = fillable_price_ratio(position, delta, params=params, oracle_price_subticks=oracle,
                                                      account_risk=risk, config=config)
        limit = fillable_price_ratio_to_subticks(numerator, denominator, is_liquidating_long=position > 0,
                                                 quantum_conversion_exponent=params.quantum_conversion_exponent,
                                                 subticks_per_tick=params.subticks_per_tick)
    is_buy = delta > 0
    sign = 1 if is_buy else -1
    divisor = market.quantum_conversion_divisor
    qce = params.quantum_conversion_exponent
    maker_fee_ppm = max(params.maker_fee_ppm, 0)  # dYdX: no maker rebates on liquidation fills
    max_fee_ppm = config.max_liquidation_fee_ppm if fee_cap_ppm is None else fee_cap_ppm
    # The plan is made when something needs it (most orders of a crash meet no fillable maker):
    # `settled` writes to it only when funding is due, which it cannot be at the exchange's epoch.
    step: Plan | None = None
    funding_index = market.funding_index
    liquidated_id = subaccount.subaccount_id
    liquidated = subaccount  # read-only (the stored object): each fill makes a new draft by `copy`
    if subaccount.funding_epoch != ex.funding_epoch:
        step = Plan()
        liquidated = settled(ex, subaccount, step, ts_ms)
    liquidated_risk = risk  # account_risk of `liquidated` at the stored market state
    drafts: dict[SubaccountId, Subaccount] = {liquidated_id: liquidated}
    draft_risks: dict[SubaccountId, Risk] = {}  # maker id -> account_risk of its draft
    remaining = abs(delta)
    fund = ex.insurance_fund_quote_quantums
    open_interest = market.open_interest_base_quantums
    fees = 0
    open_orders = ex.open_orders
    for price, maker_order_id, maker_remaining in market.book.iter_crossing(is_buy, limit):
        maker_order = open_orders[maker_order_id]
        good_til = maker_order.good_til_ts_ms
        if good_til is not None and good_til <= ts_ms:
            continue
        maker_id = maker_order.subaccount_id
        if maker_id == liquidated_id:
            if step is None:
                step = Plan()
            _cancel(step, maker_order, CancelReason.SELF_TRADE, ts_ms)
            continue
        quantity = min(remaining, maker_remaining)
        liquidated_position = liquidated.positions[market_id]
        before = liquidated_risk
        bankruptcy = bankruptcy_price_quote_quantums(liquidated_position, sign * quantity, params=params,
                                                     oracle_price_subticks=oracle, account_risk=before)
        insurance = insurance_fund_delta(is_buy=is_buy, fill_base_quantums=quantity, fill_price_subticks=price,
                                         quantum_conversion_exponent=qce, bankruptcy_quote_quantums=bankruptcy,
                                         max_liquidation_fee_ppm=max_fee_ppm)
        if not is_valid_insurance_fund_delta(fund, insurance) or (insurance < 0 and not fund_may_pay):
            break  # the fund cannot (or, by policy, does not) cover it: deleveraging or a backstop next
        notional_at_oracle = abs(notional_quote_quantums(quantity, oracle, divisor))
        try:
            check_fill_against_subaccount_block_limits(info, market_id, notional_at_oracle, insurance, config)
        except LiquidationError:
            break
        quote = quantity * price // divisor  # exact on the grid
        maker_fee = -((-quote * maker_fee_ppm) // PPM)  # ceil: against the maker, as any fee
        if step is None:
            step = Plan()
        maker = drafts.get(maker_id)
        if maker is None:
            maker = drafts[maker_id] = settled(ex, ex.subaccounts[maker_id], step, ts_ms).copy()
            maker_risk = draft_risks[maker_id] = _current_risk(ex, maker_id)  # the settled copy's risk
        else:
            maker_risk = draft_risks[maker_id]
        maker_position = maker.positions.get(market_id, 0)
        liquidated_new = liquidated_position + sign * quantity
        maker_new = maker_position - sign * quantity
        new_open_interest = (open_interest + max(liquidated_new, 0) - max(liquidated_position, 0)
                             + max(maker_new, 0) - max(maker_position, 0))
        maker_usdc_delta = sign * quote - maker_fee
        maker_after_risk = _moved_risk(maker_risk, maker_usdc_delta, market, maker_position, maker_new)
        liquidated_usdc_delta = -sign * quote - insurance
        liquidated_after_risk = _moved_risk(liquidated_risk, liquidated_usdc_delta, market, liquidated_position,
                                            liquidated_new)
        # Both accounts are checked with the market at the open interest after the fill; when that
        # leaves its initial fraction where it is, every draft risk stands as it is.
        same_initial_fraction = initial_margin_ppm_at(
            params.liquidity_tier, new_open_interest, oracle, divisor) == market.initial_margin_ppm
        if same_initial_fraction:
            maker_ok = check_transition(maker_risk, maker_after_risk)
        else:
            maker_ok = check_transition(_at_open_interest(maker_risk, maker_position, market, new_open_interest),
                                        _at_open_interest(maker_after_risk, maker_new, market, new_open_interest))
        if maker_ok is not TransitionResult.SUCCESS:
            _cancel(step, maker_order, CancelReason.MAKER_UNDERCOLLATERALIZED, ts_ms)
            continue
        if same_initial_fraction:
            liquidated_ok = check_transition(liquidated_risk, liquidated_after_risk)
        else:
            liquidated_ok = check_transition(
                _at_open_interest(liquidated_risk, liquidated_position, market, new_open_interest),
                _at_open_interest(liquidated_after_risk, liquidated_new, market, new_open_interest))
        if liquidated_ok is not TransitionResult.SUCCESS:
            break
        maker_after = maker.copy()
        maker_after.add_usdc(maker_usdc_delta)
        maker_after.trade(market_id, maker_new - maker_position, quote, funding_index)
        liquidated_after = liquidated.copy()
        liquidated_after.add_usdc(liquidated_usdc_delta)
        liquidated_after.trade(market_id, liquidated_new - liquidated_position, quote, funding_index)
        drafts[maker_id] = maker_after
        draft_risks[maker_id] = maker_after_risk
        drafts[liquidated_id] = liquidated = liquidated_after
        liquidated_risk = liquidated_after_risk
        open_interest = new_open_interest
        fund += insurance
        fees += maker_fee
        info = info.with_fill(notional_at_oracle, insurance)
        step.maker_fills.append((maker_order, quantity))
        step.events.append(Fill(ts_ms, market_id, price, quantity, quote, is_buy, LIQUIDATION_ORDER_ID,
                                liquidated_id, 0, maker_order.order_id, maker_id, maker_fee))
        if quantity == maker_remaining:
            step.events.append(OrderFinished(ts_ms, maker_order.order_id, maker_id, market_id, OrderStatus.FILLED,
                                             maker_order.size_base_quantums, 0))
        step.events.append(Liquidated(
            ts_ms, liquidated_id, market_id, sign * quantity, price,
            limit, bankruptcy_price_subticks(bankruptcy, sign * quantity, qce),
            before.net_collateral, before.maintenance_requirement, insurance, maker_id, maker_order.order_id))
        if insurance:
            step.events.append(InsuranceFundChanged(ts_ms, insurance, fund, liquidated_id))
        remaining -= quantity
        if not remaining:
            break
    filled = abs(delta) - remaining
    if step is None:
        return 0, info, None  # nothing to commit: no fill, cancel or settlement
    if filled:
        step.subaccounts.update(drafts)
        step.insurance_delta_quote_quantums = fund - ex.insurance_fund_quote_quantums
        step.fees_delta_quote_quantums = fees
        if open_interest != market.open_interest_base_quantums:
            step.open_interest[market_id] = open_interest
    elif step.finished:
        step.maker_fills.clear()
    risk_after = None
    if step.subaccounts or step.events or step.finished:
        initial_margin_ppm = market.initial_margin_ppm
        ex.commit_step(step)
        events.extend(step.events)
        if filled:
            _reset_walks()  # a maker's position moved, perhaps back to the walked side
            if _STEP_STATIC_MARGIN[0]:
                for maker_id, maker_risk in draft_risks.items():
                    _STEP_RISKS[maker_id] = (drafts[maker_id], maker_risk)
            # The committed draft's risk was counted at the market state before the commit, which
            # moved only this market's open interest: it stands if the initial fraction did not move.
            if market.initial_margin_ppm == initial_margin_ppm:
                risk_after = liquidated_risk
    return filled, info, risk_after


def _moved_risk(risk: Risk, usdc_delta_quote_quantums: int, market: MarketState, size_before_base_quantums: int,
                size_after_base_quantums: int) -> Risk:
    """`margin.moved_risk` at `market`'s stored state (oracle price and initial fraction)."""
    return moved_risk(risk, usdc_delta_quote_quantums, size_before_base_quantums, size_after_base_quantums,
                      market.require_oracle_price(), market.quantum_conversion_divisor, market.params.liquidity_tier,
                      market.initial_margin_ppm)


def _at_open_interest(risk: Risk, size_base_quantums: int, market: MarketState, open_interest: int) -> Risk:
    """A draft's risk (`risk`, at the stored market state, holding `size_base_quantums` in
    `market`) with `market` at a hypothetical open interest (others at their own): only the
    initial requirement of that one position can change."""
    if not size_base_quantums or open_interest == market.open_interest_base_quantums:
        return risk
    tier = market.params.liquidity_tier
    price, divisor = market.require_oracle_price(), market.quantum_conversion_divisor
    initial_margin_ppm = initial_margin_ppm_at(tier, open_interest, price, divisor)
    if initial_margin_ppm == market.initial_margin_ppm:
        return risk
    now = requirements_at(size_base_quantums, price, divisor, tier, market.initial_margin_ppm)
    then = requirements_at(size_base_quantums, price, divisor, tier, initial_margin_ppm)
    return Risk(risk.net_collateral, risk.initial_requirement - now[1] + then[1], risk.maintenance_requirement)


def _cancel(step: Plan, order, reason: CancelReason, ts_ms: int) -> None:
    step.finished.append((order, OrderStatus.CANCELED, reason))
    step.events.append(OrderFinished(ts_ms, order.order_id, order.subaccount_id, order.market_id,
                                     OrderStatus.CANCELED, order.filled_base_quantums,
                                     order.remaining_base_quantums, reason))


class _StepHolders:
    """One (market, side) entry of `_STEP_HOLDERS`: holder ids by id, and `start`, an index
    before which every entry was found closed or on the bankrupt side (dead to this walk).

    Deleveraging offsets only shrink positions toward zero, so a dead entry stays dead through
    them; any other commit (a liquidation fill, a backstop or fund takeover) may give one a position
    again, so those reset `start` to 0 (`_reset_walks`). Skipping the dead prefix then changes
    nothing in the walk's order, only its cost once early holders are used up."""

    __slots__ = ("ids", "start")

    def __init__(self) -> None:
        self.ids: list[SubaccountId] = []
        self.start = 0


# Opposite-side holders sorted by id, per (market, side of the bankrupt position), built once per
# liquidation step (cleared at its start): sorting every holder for each deleverage is O(n^2) in a
# crash. Holders that appear during the step wait for the next one; entries whose position closed
# or flipped are skipped when walked. Derived from state, so replay stays deterministic.
_STEP_HOLDERS: dict[tuple[str, bool], _StepHolders] = {}


# Risks known without a recount during one liquidation step: subaccount id -> (the stored subaccount
# they were counted for, its risk). Only kept when no market's initial fraction moves with open
# interest (`_STEP_STATIC_MARGIN`): a risk then depends only on the stored subaccount (commits replace
# it, never edit it), oracle prices and funding indices, and no liquidation commit moves those.
_STEP_RISKS: dict[SubaccountId, tuple[Subaccount, Risk]] = {}
_STEP_STATIC_MARGIN = [False]


def _begin_step(ex: Exchange) -> bool:
    """Start a liquidation step: no holders or risks from before; returns whether risks may be
    kept during this one (no OI-scaled initial fraction in any market)."""
    _STEP_HOLDERS.clear()
    _STEP_RISKS.clear()
    static = not any(market.params.liquidity_tier.open_interest_upper_cap_quote_quantums
                     for market in ex.markets.values())
    _STEP_STATIC_MARGIN[0] = static
    return static


def _end_step() -> None:
    """Prices move between steps: no risk may outlive the step it was counted in."""
    _STEP_RISKS.clear()
    _STEP_STATIC_MARGIN[0] = False


def _reset_walks() -> None:
    """After a commit that may have given a dead entry a position again: walk from the start."""
    for holders in _STEP_HOLDERS.values():
        holders.start = 0


def _offsetting_candidates(ex: Exchange, subaccount_id: SubaccountId, market_id: str, position: int):
    """The dYdX policy's offsetting holders (opposite side), computed lazily: net collateral > 0 first, then
    the rest, each by subaccount id. dYdX walks from a pseudo-random start; this fixed walk keeps replay
    deterministic from state, and is `deleveraging_order` with every PnL taken as 0. Walking holders in id
    order and deferring the non-positive ones gives that order without pricing every holder up front
    (`test_lazy_candidates_follow_deleveraging_order` checks the equivalence). Hyperliquid ranks by the
    real PnL (`_ranked_candidates`)."""
    for other_id, _ in _offsetting_walk(ex, subaccount_id, market_id, position):
        yield other_id


def _offsetting_walk(ex: Exchange, subaccount_id: SubaccountId, market_id: str, position: int):
    """`_offsetting_candidates` as (id, risk): the risk is `ex.risk(id)` when the walk priced the
    holder just before yielding it (still current when the caller reads it, before any commit),
    None for the deferred holders, priced earlier."""
    holders = _STEP_HOLDERS.get((market_id, position > 0))
    if holders is None:
        holders = _STEP_HOLDERS[(market_id, position > 0)] = _StepHolders()
    cache = holders.ids
    if not cache:  # once per step: holders opposite a long (or a short), by id
        cache.extend(sorted(sid for sid in ex.holders[market_id]
                            if (ex.subaccounts[sid].positions[market_id] > 0) != (position > 0)))
        holders.start = 0
    subaccounts = ex.subaccounts
    is_long = position > 0
    deferred = []
    leading = True  # every entry so far was dead: `start` may move past it
    for index in range(holders.start, len(cache)):
        other_id = cache[index]
        size = subaccounts[other_id].positions.get(market_id, 0)
        if not size or (size > 0) == is_long:
            if leading:
                holders.start = index + 1
            continue
        leading = False
        if other_id == subaccount_id:
            continue
        other_risk = _current_risk(ex, other_id)
        if other_risk.net_collateral <= 0:
            deferred.append(other_id)
            continue
        yield other_id, other_risk
    for other_id in deferred:
        yield other_id, None


def _ranked_candidates(ex: Exchange, subaccount_id: SubaccountId, market_id: str, position: int):
    """Hyperliquid auto-deleveraging: the opposite side's holders by unrealized PnL x leverage, highest first
    (`deleveraging_order`; PnL = notional at the oracle price - cost basis, funding apart), as (id, None)."""
    market = ex.markets[market_id]
    oracle, divisor = market.require_oracle_price(), market.quantum_conversion_divisor
    candidates = []
    for other_id in ex.holders[market_id]:
        other = ex.subaccounts[other_id]
        size = other.positions[market_id]
        if other_id == subaccount_id or (size > 0) == (position > 0):
            continue
        notional = notional_quote_quantums(size, oracle, divisor)
        candidates.append(DeleveragingCandidate(other_id, size, notional, _current_risk(ex, other_id).net_collateral,
                                                notional - other.cost_basis.get(market_id, 0)))
    for candidate in deleveraging_order(candidates, delta_base_quantums=-position):
        yield candidate.subaccount_id, None


def _deleverage(ex: Exchange, subaccount_id: SubaccountId, market_id: str, ts_ms: int, events: list[Event],
                *, bankrupt_risk: Risk | None = None, ranked: bool = False) -> bool:
    """Offset the whole bankrupt position against opposing positions at the bankruptcy price, skipping
    offsets that fail a margin check: by `_offsetting_walk` (dYdX; deterministic from state), or with
    `ranked` by unrealized PnL x leverage (Hyperliquid, `_ranked_candidates`). Returns whether anything
    was offset. `bankrupt_risk`, if given, is the bankrupt account's
    current risk (`ex.risk`); it saves one recount until the first offset commits."""
    market = ex.markets[market_id]
    params = market.params
    oracle = market.require_oracle_price()
    position = ex.subaccounts[subaccount_id].positions[market_id]
    remaining = -position
    progressed = False
    walk = _ranked_candidates if ranked else _offsetting_walk
    for candidate_id, candidate_risk in walk(ex, subaccount_id, market_id, position):
        offset = deleveraging_offset_base_quantums(remaining, ex.subaccounts[candidate_id].positions.get(market_id, 0))
        if not offset:
            continue
        step = Plan()
        bankrupt = settled(ex, ex.subaccounts[subaccount_id], step, ts_ms)
        if bankrupt_risk is None:
            bankrupt_risk = account_risk(bankrupt.usdc_quote_quantums, bankrupt.positions, ex.markets)
        bankrupt_position = bankrupt.positions[market_id]
        quote = bankruptcy_price_quote_quantums(bankrupt_position, offset, params=params,
                                                oracle_price_subticks=oracle, account_risk=bankrupt_risk)
        offsetting = settled(ex, ex.subaccounts[candidate_id], step, ts_ms)
        if candidate_risk is None:
            candidate_risk = account_risk(offsetting.usdc_quote_quantums, offsetting.positions, ex.markets)
        offsetting_position = offsetting.positions[market_id]
        offsetting_after_risk = _moved_risk(candidate_risk, -quote, market, offsetting_position,
                                            offsetting_position - offset)
        if check_transition(candidate_risk, offsetting_after_risk) is not TransitionResult.SUCCESS:
            continue
        bankrupt_after = bankrupt.copy()
        bankrupt_after.add_usdc(quote)
        bankrupt_after.trade(market_id, offset, abs(quote), market.funding_index)
        offsetting_after = offsetting.copy()
        offsetting_after.add_usdc(-quote)
        offsetting_after.trade(market_id, -offset, abs(quote), market.funding_index)
        step.subaccounts[subaccount_id] = bankrupt_after
        step.subaccounts[candidate_id] = offsetting_after
        open_interest = (market.open_interest_base_quantums
                         + max(bankrupt_position + offset, 0) - max(bankrupt_position, 0)
                         + max(offsetting_position - offset, 0) - max(offsetting_position, 0))
        if open_interest != market.open_interest_base_quantums:
            step.open_interest[market_id] = open_interest
        step.events.append(Deleveraged(ts_ms, subaccount_id, candidate_id, market_id, offset, quote, bankrupt_position,
                                       *bankrupt_risk, market.initial_margin_ppm))
        ex.commit_step(step)
        events.extend(step.events)
        bankrupt_risk = None  # committed: the next offset recounts it
        if _STEP_STATIC_MARGIN[0]:  # the offsetting account is likely the next offset's too
            _STEP_RISKS[candidate_id] = (offsetting_after, offsetting_after_risk)
        progressed = True
        remaining -= offset
        if not remaining:
            break
    return progressed
