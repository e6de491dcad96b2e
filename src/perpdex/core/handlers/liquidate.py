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
    deleveraging_offset_base_quantums, fillable_price, fillable_price_to_subticks,
    insurance_fund_delta, is_valid_insurance_fund_delta, liquidatable_position_size_delta,
    maybe_position_to_liquidate, order_liquidation_candidates,
)
from perpdex.core.margin import (
    Risk, TransitionResult, account_risk, check_transition, initial_margin_ppm_at, notional_quote_quantums,
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
    _STEP_HOLDERS.clear()
    return liquidate_subaccount(ex, tx.subaccount_id, tx.ts_ms)


def run_step(ex: Exchange, ts_ms: int) -> list[Event]:
    """The exchange's liquidation step after an oracle update: screen candidates (vectorized,
    never missing one), confirm each exactly, liquidate riskiest first, ties by subaccount id."""
    confirmed = []
    for subaccount_id in ex.liquidation_candidates():
        risk = ex.risk(subaccount_id)
        if risk.is_liquidatable():
            confirmed.append((subaccount_id, risk))
    events: list[Event] = []
    _STEP_HOLDERS.clear()
    for subaccount_id in order_liquidation_candidates(confirmed):
        events.extend(liquidate_subaccount(ex, subaccount_id, ts_ms))
    return events


def liquidate_subaccount(ex: Exchange, subaccount_id: SubaccountId, ts_ms: int) -> list[Event]:
    """Liquidate one subaccount under the exchange's policy (`LiquidationsConfig.policy`)."""
    policy = ex.liquidations_config.policy
    if policy == "hyperliquid":
        return _liquidate_hyperliquid(ex, subaccount_id, ts_ms)
    if policy == "paradex":
        return _liquidate_paradex(ex, subaccount_id, ts_ms)
    return _liquidate_dydx(ex, subaccount_id, ts_ms)


def _liquidate_dydx(ex: Exchange, subaccount_id: SubaccountId, ts_ms: int) -> list[Event]:
    """dYdX v4: liquidate until the subaccount stands at or above maintenance, in windows (each one
    the per-block limits apply to); a window that changes nothing ends it."""
    events: list[Event] = []
    config = ex.liquidations_config
    for _ in range(MAX_WINDOWS_PER_STEP):
        info = NO_LIQUIDATIONS
        progressed = False
        while True:
            subaccount = ex.subaccounts[subaccount_id]
            risk = ex.risk(subaccount_id)
            if not risk.is_liquidatable():
                return events
            market_id = maybe_position_to_liquidate(subaccount.positions, info)
            if market_id is None:
                break
            filled, info = _liquidate_position(ex, subaccount, market_id, risk, info, config, ts_ms, events)
            info = info.with_market_liquidated(market_id)
            if filled:
                progressed = True
                continue
            if can_deleverage(ex.risk(subaccount_id)):
                progressed |= _deleverage(ex, subaccount_id, market_id, ts_ms, events)
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
                _deleverage(ex, BACKSTOP_VAULT, market_id, ts_ms, events)
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
        notional = abs(notional_quote_quantums(position, market.oracle_price_subticks,
                                               market.quantum_conversion_divisor))
        size = abs(position)
        if notional > config.partial_above_notional_quote_quantums:
            size = max(step, size * config.partial_step_ppm // PPM // step * step)  # floor: to a step
        is_buy = position < 0
        limit = slippage_limit_subticks(market.oracle_price_subticks, is_buy, config.market_order_slippage_ppm,
                                        params.subticks_per_tick)
        filled, _ = _liquidate_position(ex, subaccount, market_id, ex.risk(subaccount_id), NO_LIQUIDATIONS,
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
        vault.set_position(market_id, before + size, market.funding_index)
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
    if ex.risk(BACKSTOP_VAULT).net_collateral < 0:
        _STEP_HOLDERS.clear()
        for market_id in sorted(ex.subaccounts[BACKSTOP_VAULT].positions):
            if ex.risk(BACKSTOP_VAULT).net_collateral >= 0:
                break
            _deleverage(ex, BACKSTOP_VAULT, market_id, ts_ms, events)
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
    open_interest = {}
    moved_notional = 0
    for market_id, size in sorted(source.positions.items()):
        market = ex.markets[market_id]
        step = market.params.step_base_quantums
        share_size = -((-abs(size) * share_ppm) // PPM)  # ceil: the cut is never smaller than the share
        take = min(abs(size), -((-share_size) // step) * step)  # ceil to a step, capped at the position
        signed = take if size > 0 else -take
        notional = notional_quote_quantums(signed, market.oracle_price_subticks, market.quantum_conversion_divisor)
        source.set_position(market_id, size - signed, market.funding_index)
        source.add_usdc(notional)
        moved_notional += abs(notional)
        taken.append((market_id, signed))
        if fund is not None:
            held = fund.positions.get(market_id, 0)
            fund.set_position(market_id, held + signed, market.funding_index)
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
                        ) -> tuple[int, SubaccountLiquidationInfo]:
    """Match one liquidation order and commit it; returns the size filled and the window info after it.

    dYdX v4 (default): size from the window limits, IOC at the fillable price; fills follow
    ProcessSingleMatch for liquidations: no taker fee, maker fee never a rebate, the insurance fund
    delta per fill. Another policy passes its own `order` (delta, limit price), its fee cap, and
    whether the fund may cover fills below bankruptcy (if not, matching stops there)."""
    market = ex.markets[market_id]
    params = market.params
    oracle = market.oracle_price_subticks
    position = subaccount.positions[market_id]
    if order is not None:
        delta, limit = order
    else:
        try:
            delta = liquidatable_position_size_delta(position, params=params, oracle_price_subticks=oracle,
                                                     config=config, info=info)
        except LiquidationError:
            return 0, info
        fillable = fillable_price(position, delta, params=params, oracle_price_subticks=oracle, account_risk=risk,
                                  config=config)
        limit = fillable_price_to_subticks(fillable, is_liquidating_long=position > 0,
                                           quantum_conversion_exponent=params.quantum_conversion_exponent,
                                           subticks_per_tick=params.subticks_per_tick)
    is_buy = delta > 0
    sign = 1 if is_buy else -1
    divisor = market.quantum_conversion_divisor
    maker_fee_ppm = max(params.maker_fee_ppm, 0)  # dYdX: no maker rebates on liquidation fills
    step = Plan()
    funding_index = market.funding_index
    liquidated = settled(ex, subaccount, step, ts_ms).copy()
    drafts: dict[SubaccountId, Subaccount] = {subaccount.subaccount_id: liquidated}
    remaining = abs(delta)
    fund = ex.insurance_fund_quote_quantums
    open_interest = market.open_interest_base_quantums
    fees = 0
    for price, maker_order_id, maker_remaining in market.book.iter_crossing(is_buy, limit):
        maker_order = ex.open_orders[maker_order_id]
        good_til = maker_order.good_til_ts_ms
        if good_til is not None and good_til <= ts_ms:
            continue
        maker_id = maker_order.subaccount_id
        if maker_id == subaccount.subaccount_id:
            _cancel(step, maker_order, CancelReason.SELF_TRADE, ts_ms)
            continue
        quantity = min(remaining, maker_remaining)
        liquidated_position = liquidated.positions[market_id]
        before = account_risk(liquidated.usdc_quote_quantums, liquidated.positions, ex.markets)
        bankruptcy = bankruptcy_price_quote_quantums(liquidated_position, sign * quantity, params=params,
                                                     oracle_price_subticks=oracle, account_risk=before)
        insurance = insurance_fund_delta(is_buy=is_buy, fill_base_quantums=quantity, fill_price_subticks=price,
                                         quantum_conversion_exponent=params.quantum_conversion_exponent,
                                         bankruptcy_quote_quantums=bankruptcy,
                                         max_liquidation_fee_ppm=(config.max_liquidation_fee_ppm if fee_cap_ppm is None
                                                                  else fee_cap_ppm))
        if not is_valid_insurance_fund_delta(fund, insurance) or (insurance < 0 and not fund_may_pay):
            break  # the fund cannot (or, by policy, does not) cover it: deleveraging or a backstop next
        notional_at_oracle = abs(notional_quote_quantums(quantity, oracle, divisor))
        try:
            check_fill_against_subaccount_block_limits(info, market_id, notional_at_oracle, insurance, config)
        except LiquidationError:
            break
        quote = quantity * price // divisor  # exact on the grid
        maker_fee = -((-quote * maker_fee_ppm) // PPM)  # ceil: against the maker, as any fee
        maker = drafts.get(maker_id)
        if maker is None:
            maker = drafts[maker_id] = settled(ex, ex.subaccounts[maker_id], step, ts_ms).copy()
        maker_position = maker.positions.get(market_id, 0)
        liquidated_new = liquidated_position + sign * quantity
        maker_new = maker_position - sign * quantity
        new_open_interest = (open_interest + max(liquidated_new, 0) - max(liquidated_position, 0)
                             + max(maker_new, 0) - max(maker_position, 0))
        maker_after = maker.copy()
        maker_after.add_usdc(sign * quote - maker_fee)
        maker_after.set_position(market_id, maker_new, funding_index)
        if check_transition(_draft_risk(ex, maker, market, new_open_interest),
                            _draft_risk(ex, maker_after, market, new_open_interest)) is not TransitionResult.SUCCESS:
            _cancel(step, maker_order, CancelReason.MAKER_UNDERCOLLATERALIZED, ts_ms)
            continue
        liquidated_after = liquidated.copy()
        liquidated_after.add_usdc(-sign * quote - insurance)
        liquidated_after.set_position(market_id, liquidated_new, funding_index)
        if check_transition(_draft_risk(ex, liquidated, market, new_open_interest),
                            _draft_risk(ex, liquidated_after, market, new_open_interest)) is not TransitionResult.SUCCESS:
            break
        drafts[maker_id] = maker_after
        drafts[subaccount.subaccount_id] = liquidated = liquidated_after
        open_interest = new_open_interest
        fund += insurance
        fees += maker_fee
        info = info.with_fill(notional_at_oracle, insurance)
        step.maker_fills.append((maker_order, quantity))
        step.events.append(Fill(ts_ms, market_id, price, quantity, quote, is_buy, LIQUIDATION_ORDER_ID,
                                subaccount.subaccount_id, 0, maker_order.order_id, maker_id, maker_fee))
        if quantity == maker_remaining:
            step.events.append(OrderFinished(ts_ms, maker_order.order_id, maker_id, market_id, OrderStatus.FILLED,
                                             maker_order.size_base_quantums, 0))
        step.events.append(Liquidated(
            ts_ms, subaccount.subaccount_id, market_id, sign * quantity, price,
            limit, bankruptcy_price_subticks(bankruptcy, sign * quantity, params.quantum_conversion_exponent),
            before.net_collateral, before.maintenance_requirement, insurance, maker_id, maker_order.order_id))
        if insurance:
            step.events.append(InsuranceFundChanged(ts_ms, insurance, fund, subaccount.subaccount_id))
        remaining -= quantity
        if not remaining:
            break
    filled = abs(delta) - remaining
    if filled:
        step.subaccounts.update(drafts)
        step.insurance_delta_quote_quantums = fund - ex.insurance_fund_quote_quantums
        step.fees_delta_quote_quantums = fees
        if open_interest != market.open_interest_base_quantums:
            step.open_interest[market_id] = open_interest
    elif step.finished:
        step.maker_fills.clear()
    ex.commit_step(step)
    events.extend(step.events)
    return filled, info


def _draft_risk(ex: Exchange, subaccount: Subaccount, market: MarketState, open_interest: int) -> Risk:
    """Risk of a draft with `market` at a hypothetical open interest (others at their own)."""
    risk = account_risk(subaccount.usdc_quote_quantums, subaccount.positions, ex.markets)
    size = subaccount.positions.get(market.params.market_id, 0)
    if not size or open_interest == market.open_interest_base_quantums:
        return risk
    tier = market.params.liquidity_tier
    price, divisor = market.oracle_price_subticks, market.quantum_conversion_divisor
    now = requirements_at(size, price, divisor, tier, market.initial_margin_ppm)
    then = requirements_at(size, price, divisor, tier, initial_margin_ppm_at(tier, open_interest, price, divisor))
    return Risk(risk.net_collateral, risk.initial_requirement - now[1] + then[1], risk.maintenance_requirement)


def _cancel(step: Plan, order, reason: CancelReason, ts_ms: int) -> None:
    step.finished.append((order, OrderStatus.CANCELED, reason))
    step.events.append(OrderFinished(ts_ms, order.order_id, order.subaccount_id, order.market_id,
                                     OrderStatus.CANCELED, order.filled_base_quantums,
                                     order.remaining_base_quantums, reason))


# Opposite-side holders sorted by id, per (market, side of the bankrupt position), built once per
# liquidation step (cleared at its start): sorting every holder for each deleverage is O(n^2) in a
# crash. Holders that appear during the step wait for the next one; entries whose position closed
# or flipped are skipped when walked. Derived from state, so replay stays deterministic.
_STEP_HOLDERS: dict[tuple[str, bool], list] = {}


def _offsetting_candidates(ex: Exchange, subaccount_id: SubaccountId, market_id: str, position: int):
    """Holders of the opposite side in `deleveraging_order`'s order, computed lazily.

    State holds no cost basis yet, so every unrealized PnL is 0 and the rule reduces to: net
    collateral > 0 first, then the rest, each by subaccount id. Walking holders in id order and
    deferring the non-positive ones gives that order without pricing every holder up front
    (`test_lazy_candidates_follow_deleveraging_order` checks the equivalence)."""
    cache = _STEP_HOLDERS.setdefault((market_id, position > 0), [])
    if not cache:  # once per step: holders opposite a long (or a short), by id
        cache.extend(sorted(sid for sid in ex.holders[market_id]
                            if (ex.subaccounts[sid].positions[market_id] > 0) != (position > 0)))
    deferred = []
    for other_id in cache:
        other = ex.subaccounts[other_id]
        size = other.positions.get(market_id, 0)
        if other_id == subaccount_id or not size or (size > 0) == (position > 0):
            continue
        if ex.risk(other_id).net_collateral <= 0:
            deferred.append(other_id)
            continue
        yield other_id
    yield from deferred


def _deleverage(ex: Exchange, subaccount_id: SubaccountId, market_id: str, ts_ms: int, events: list[Event]) -> bool:
    """Offset the whole bankrupt position against opposing positions at the bankruptcy price,
    in `deleveraging_order` (deterministic from state), skipping offsets that fail a margin check.
    Returns whether anything was offset."""
    market = ex.markets[market_id]
    params = market.params
    oracle = market.oracle_price_subticks
    position = ex.subaccounts[subaccount_id].positions[market_id]
    remaining = -position
    progressed = False
    for candidate_id in _offsetting_candidates(ex, subaccount_id, market_id, position):
        offset = deleveraging_offset_base_quantums(remaining, ex.subaccounts[candidate_id].positions.get(market_id, 0))
        if not offset:
            continue
        step = Plan()
        bankrupt = settled(ex, ex.subaccounts[subaccount_id], step, ts_ms)
        before = account_risk(bankrupt.usdc_quote_quantums, bankrupt.positions, ex.markets)
        quote = bankruptcy_price_quote_quantums(bankrupt.positions[market_id], offset, params=params,
                                                oracle_price_subticks=oracle, account_risk=before)
        bankrupt_after = bankrupt.copy()
        bankrupt_after.add_usdc(quote)
        bankrupt_after.set_position(market_id, bankrupt.positions[market_id] + offset, market.funding_index)
        offsetting = settled(ex, ex.subaccounts[candidate_id], step, ts_ms)
        offsetting_after = offsetting.copy()
        offsetting_after.add_usdc(-quote)
        offsetting_after.set_position(market_id, offsetting.positions[market_id] - offset, market.funding_index)
        offsetting_ok = check_transition(
            account_risk(offsetting.usdc_quote_quantums, offsetting.positions, ex.markets),
            account_risk(offsetting_after.usdc_quote_quantums, offsetting_after.positions, ex.markets))
        if offsetting_ok is not TransitionResult.SUCCESS:
            continue
        step.subaccounts[subaccount_id] = bankrupt_after
        step.subaccounts[candidate_id] = offsetting_after
        open_interest = (market.open_interest_base_quantums
                         + max(bankrupt_after.positions.get(market_id, 0), 0) - max(bankrupt.positions[market_id], 0)
                         + max(offsetting_after.positions.get(market_id, 0), 0)
                         - max(offsetting.positions[market_id], 0))
        if open_interest != market.open_interest_base_quantums:
            step.open_interest[market_id] = open_interest
        step.events.append(Deleveraged(ts_ms, subaccount_id, candidate_id, market_id, offset, quote))
        ex.commit_step(step)
        events.extend(step.events)
        progressed = True
        remaining -= offset
        if not remaining:
            break
    return progressed

