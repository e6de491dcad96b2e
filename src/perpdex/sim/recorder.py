"""What a simulation records: tables declared once (name, columns, types), filled from exchange
reads and events during the run, written to Parquet for `perpdex.report` (Mesa's DataCollector).

Per-agent PnL is split exactly, in quote quantums, per agent (all its subaccounts):
  equity - deposits = price PnL - fees - liquidation fees + funding + other
- price PnL: cash flows of its fills and deleveraging offsets (sells +, buys -) plus its positions
  at the oracle price;
- fees: taker and maker fees paid (a rebate counts negative);
- liquidation fees: what its liquidations paid the insurance fund (negative when the fund covered
  a fill below bankruptcy), from `Liquidated` events;
- funding: what its positions received (+) or paid, exactly in ppm of a quote quantum from the
  `FundingPaid` events of lazy settlements, plus what has accrued but not settled yet (the exchange's
  risk view includes it); the floor a settlement applies leaves under one quantum per settlement in
  `other`;
- other: whatever else moved its collateral; zero with today's transactions, which `tests/sim`
  checks, so a mechanism that lands without its handler shows up here instead of vanishing.
Withdrawals (`Withdrawn` events) leave the split alone: equity + withdrawn - deposits is the total.
Funding arbitrageurs also carry an off-exchange hedge: the opposite of each fill at the oracle price
of the moment; its PnL is `hedge_pnl` (not part of the on-exchange split).

Runs on the rollup (`sim.rollup`) add `batches` (each batch's timing: closed, proof ready, accepted),
the finality of every withdrawal in `withdrawals`, and `proven_balances`: at each account sample,
totals of the matched state beside the same totals at the last accepted root.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from perpdex.core.events import (
    BadDebt,
    Deleveraged,
    Fill,
    FundingPaid,
    FundingRateComputed,
    Liquidated,
    LiquidationStalled,
    WithdrawalHaircut,
    Withdrawn,
)
from perpdex.core.margin import account_risk
from perpdex.core.units import QUOTE

if TYPE_CHECKING:
    from perpdex.core.exchange import Exchange
    from perpdex.sim.agents.base import AgentInfo, MarketGrid, StepView
    from perpdex.sim.rollup import RollupRun

I64, F64, STR, BOOL = pa.int64(), pa.float64(), pa.string(), pa.bool_()

TABLES: dict[str, list[tuple[str, pa.DataType]]] = {
    # market series, every `record_every_steps`; funding_8h_bps is the rate agents saw (the exchange's
    # predicted rate per 8 h, or the engine's premium EWMA before the first observation)
    "prices": [("ts_ms", I64), ("market_id", STR), ("index_price", F64), ("oracle_price", F64), ("best_bid", F64),
               ("best_ask", F64), ("book_mid", F64), ("premium_bps", F64), ("funding_8h_bps", F64),
               ("spread_bps", F64), ("bid_depth_usd", F64), ("ask_depth_usd", F64)],
    "open_interest": [("ts_ms", I64), ("market_id", STR), ("open_interest_base_quantums", I64),
                      ("open_interest_usd", F64)],
    "insurance_fund": [("ts_ms", I64), ("insurance_fund_quote_quantums", I64), ("fees_collected_quote_quantums", I64),
                       ("bad_debt_quote_quantums", I64)],
    # event tables: filled by the handlers of the funding and liquidation events (below)
    "funding": [("ts_ms", I64), ("market_id", STR), ("funding_model", STR), ("funding_rate_ppm", F64),
                ("funding_rate_8h_ppm", I64), ("premium_ppm", I64), ("samples", I64), ("clamp_hit", BOOL),
                ("interval_ms", I64), ("oracle_price", F64), ("funding_index_delta", I64), ("funding_index", I64)],
    "liquidations": [("ts_ms", I64), ("kind", STR), ("subaccount", STR), ("agent", STR), ("agent_type", STR),
                     ("margin_mode", STR), ("market_id", STR), ("size_base_quantums", I64), ("notional_usd", F64),
                     ("fill_price_subticks", I64), ("bankruptcy_price_subticks", I64),
                     ("insurance_fund_delta_quote_quantums", I64), ("bad_debt_quote_quantums", I64)],
    # accounts, every `account_sample_every_steps`
    "pnl_by_type": [("ts_ms", I64), ("agent_type", STR), ("price_pnl_usd", F64), ("funding_usd", F64),
                    ("fees_usd", F64), ("liquidation_fees_usd", F64), ("other_usd", F64), ("total_pnl_usd", F64),
                    ("hedge_pnl_usd", F64), ("equity_usd", F64)],
    "accounts_at_risk": [("ts_ms", I64), ("agent_type", STR), ("margin_mode", STR), ("subaccounts", I64),
                         ("below_initial", I64), ("below_maintenance", I64), ("equity_usd", F64)],
    # once, at the end
    "agent_pnl": [("agent_id", I64), ("agent", STR), ("agent_type", STR), ("margin_mode", STR), ("market", STR),
                  ("deposits_usd", F64), ("withdrawn_usd", F64), ("equity_usd", F64), ("price_pnl_usd", F64), ("funding_usd", F64),
                  ("fees_usd", F64), ("liquidation_fees_usd", F64), ("other_usd", F64), ("total_pnl_usd", F64),
                  ("hedge_pnl_usd", F64),
                  ("transactions", I64), ("rejected", I64), ("fills", I64), ("volume_usd", F64),
                  ("below_maintenance", BOOL)],
    "rejections": [("agent_type", STR), ("code", STR), ("count", I64)],
    # every withdrawal applied; on the rollup, the batch holding it and when that batch was accepted on L1
    # (final_ms: the withdrawal is claimable from then; wait_ms = final_ms - ts_ms)
    "withdrawals": [("ts_ms", I64), ("subaccount", STR), ("agent", STR), ("agent_type", STR),
                    ("amount_quote_quantums", I64), ("amount_usd", F64), ("batch_id", I64), ("final_ms", I64),
                    ("wait_ms", I64)],
    # rollup runs: one row per batch. proof_latency = proof ready - closed (the modelled proving time),
    # accept_wait = accepted - proof ready (earlier batches, L1 blocks), time_to_finality = accepted - first
    # tx (the longest any of its transactions waited), finality_mean = accepted - mean tx time
    "batches": [("batch_id", I64), ("txs", I64), ("trades", I64), ("withdrawals", I64), ("first_tx_ms", I64),
                ("last_tx_ms", I64), ("closed_ms", I64), ("proof_ready_ms", I64), ("accepted_ms", I64),
                ("proof_latency_ms", I64), ("accept_wait_ms", I64), ("time_to_finality_ms", I64),
                ("finality_mean_ms", F64), ("changed_leaves", I64), ("commit_seconds", F64),
                ("calldata_bytes", I64), ("published_gas", I64), ("root", STR)],
    # rollup runs, every `account_sample_every_steps`: all subaccounts as matched now and as of the last
    # accepted root (proven_*); proven_lag = now - time of the last proven transaction; equity_unproven =
    # sum over subaccounts of |matched - proven equity|; withdrawals waiting = applied, batch not accepted yet
    "proven_balances": [("ts_ms", I64), ("proven_batch_id", I64), ("proven_up_to_ms", I64), ("proven_lag_ms", I64),
                        ("subaccounts_matched", I64), ("subaccounts_proven", I64),
                        ("collateral_matched_usd", F64), ("collateral_proven_usd", F64),
                        ("equity_matched_usd", F64), ("equity_proven_usd", F64),
                        ("maintenance_matched_usd", F64), ("maintenance_proven_usd", F64),
                        ("below_maintenance_matched", I64), ("below_maintenance_proven", I64),
                        ("equity_unproven_usd", F64), ("withdrawals_waiting", I64), ("withdrawals_waiting_usd", F64)],
    "activation": [("seq", I64), ("step", I64), ("agent_id", I64)],  # who sent each logged tx (-1: system)
}

DEPTH_BAND = 0.01  # book depth is summed within 1% of the mid


class Recorder:
    """Rows per declared table, plus the per-agent ledgers behind the PnL split (quote quantums,
    keyed by agent name = subaccount owner)."""

    def __init__(self, grid: MarketGrid, agents: Sequence[AgentInfo]) -> None:
        self.grid = grid
        self.agents = list(agents)
        self.rows: dict[str, list[tuple]] = {name: [] for name in TABLES}
        self._columns = {name: [column for column, _ in columns] for name, columns in TABLES.items()}
        names = [agent.name for agent in self.agents]
        self.cash = dict.fromkeys(names, 0)  # + received for sells, - paid for buys
        self.fees = dict.fromkeys(names, 0)  # paid (+), rebates (-)
        self.funding_ppm = dict.fromkeys(names, 0)  # received (+), ppm of a quote quantum (FundingPaid)
        self.liquidation_fees = dict.fromkeys(names, 0)  # paid to the insurance fund (+)
        self.fills = dict.fromkeys(names, 0)
        self.volume = dict.fromkeys(names, 0)  # quote quantums traded
        self.hedged = {agent.name for agent in self.agents if agent.hedged}
        self.hedge_cash = dict.fromkeys(self.hedged, 0)
        self.deposits = {agent.name: int(round(agent.capital_usd * QUOTE)) for agent in self.agents}
        self.withdrawn = dict.fromkeys(names, 0)  # received by withdrawals (haircuts kept back are not)
        self.withdrawal_events: list[tuple[int, Any, int]] = []  # (ts, subaccount, amount) of every Withdrawn
        self.withdrawn_total_quote_quantums = 0
        self._withdrawal_finality: list[tuple[int, int | None]] | None = None
        self.bankrupt: set[Any] = set()  # subaccounts that ever reported BadDebt
        self.liquidation_stalls = 0
        self.event_handlers: dict[type, Callable[[Recorder, Any], None]] = {
            Liquidated: _on_liquidated, Deleveraged: _on_deleveraged, BadDebt: _on_bad_debt,
            LiquidationStalled: _on_stalled, FundingRateComputed: _on_funding_rate, FundingPaid: _on_funding_paid,
            Withdrawn: _on_withdrawn, WithdrawalHaircut: _on_withdrawal_haircut,
        }
        self.agent_by_owner = {agent.name: agent for agent in self.agents}
        self.exchange: Exchange | None = None  # set by the engine: the hedge reads oracle prices
        self._activation: tuple[Sequence[int], Sequence[int], Sequence[int]] | None = None

    # --- hooks for mechanics that land later --------------------------------------------------
    def add_event_handler(self, event_type: type, handler: Callable[[Recorder, Any], None]) -> None:
        """Call `handler(recorder, event)` for every event of this type the run produces (replacing
        the built-in handler of that type, if any); for mechanisms that land later."""
        self.event_handlers[event_type] = handler

    def add_row(self, table: str, row: dict[str, Any] | tuple) -> None:
        """Append a row (a tuple in declared column order, or a dict; missing columns are null)."""
        if isinstance(row, dict):
            unknown = set(row) - set(self._columns[table])
            if unknown:
                raise KeyError(f"table {table} has no column(s) {sorted(unknown)}")
            row = tuple(row.get(column) for column in self._columns[table])
        self.rows[table].append(row)

    @property
    def bad_debt_quote_quantums(self) -> int:
        """Debt left unabsorbed now: negative net collateral of the subaccounts that reported BadDebt."""
        exchange = self.exchange
        if exchange is None or not self.bankrupt:
            return 0
        return sum(max(0, -exchange.risk(sid).net_collateral) for sid in sorted(self.bankrupt))

    def margin_mode_of(self, subaccount_id: Any) -> str:
        subaccount = self.exchange.subaccounts.get(subaccount_id) if self.exchange is not None else None
        return subaccount.margin_mode.value if subaccount is not None else ""

    # --- events (hot path) -------------------------------------------------------------------
    def on_fill(self, fill: Fill) -> None:
        quote = fill.quote_quantums
        taker = fill.taker_subaccount_id.owner
        maker = fill.maker_subaccount_id.owner
        cash = self.cash
        if fill.taker_is_buy:
            cash[taker] -= quote
            cash[maker] += quote
        else:
            cash[taker] += quote
            cash[maker] -= quote
        fees = self.fees
        fees[taker] += fill.taker_fee_quote_quantums
        fees[maker] += fill.maker_fee_quote_quantums
        self.fills[taker] += 1
        self.fills[maker] += 1
        self.volume[taker] += quote
        self.volume[maker] += quote
        hedged = self.hedged
        if hedged and (taker in hedged or maker in hedged):
            change = fill.size_base_quantums if fill.taker_is_buy else -fill.size_base_quantums
            if taker in hedged:
                self.hedge_trade(taker, fill.market_id, change)
            if maker in hedged:
                self.hedge_trade(maker, fill.market_id, -change)

    def hedge_trade(self, owner: str, market_id: str, perp_change_base_quantums: int) -> None:
        """The off-exchange hedge trades the opposite of a perp position change at the oracle price
        now: a perp buy of q sells q spot, receiving q x oracle."""
        market = self.exchange.markets[market_id]
        product = perp_change_base_quantums * market.oracle_price_subticks
        divisor = market.quantum_conversion_divisor
        self.hedge_cash[owner] += product // divisor if product >= 0 else -((-product) // divisor)

    def on_event(self, event: Any) -> None:
        handler = self.event_handlers.get(type(event))
        if handler is not None:
            handler(self, event)

    # --- samples ------------------------------------------------------------------------------
    def sample_markets(self, view: StepView, index_usd: Sequence[float]) -> None:
        """Prices, open interest and the insurance fund now."""
        exchange, grid, ts_ms = view.exchange, self.grid, view.ts_ms
        prices, interest = self.rows["prices"], self.rows["open_interest"]
        for m, market_id in enumerate(grid.ids):
            market = exchange.markets[market_id]
            book = market.book
            best_bid, best_ask = book.best_bid(), book.best_ask()
            oracle = grid.usd(m, market.oracle_price_subticks) if market.oracle_price_subticks else math.nan
            bid = grid.usd(m, best_bid) if best_bid is not None else math.nan
            ask = grid.usd(m, best_ask) if best_ask is not None else math.nan
            mid = (bid + ask) / 2
            premium = (mid / oracle - 1) * 1e4 if math.isfinite(mid) and math.isfinite(oracle) else math.nan
            spread = (ask - bid) / mid * 1e4 if math.isfinite(mid) else math.nan
            prices.append((ts_ms, market_id, float(index_usd[m]), oracle, bid, ask, mid, premium,
                           view.funding_8h[m] * 1e4, spread, self._depth_usd(book, True, m, mid),
                           self._depth_usd(book, False, m, mid)))
            size = market.open_interest_base_quantums
            interest.append((ts_ms, market_id, size, abs(grid.notional_usd(m, size, market.oracle_price_subticks or 0))))
        self.rows["insurance_fund"].append((ts_ms, exchange.insurance_fund_quote_quantums,
                                            exchange.fees_collected_quote_quantums, self.bad_debt_quote_quantums))

    def _depth_usd(self, book: Any, is_buy: bool, m: int, mid: float) -> float:
        if not math.isfinite(mid):
            return 0.0
        grid = self.grid
        total = 0.0
        bound = mid * (1 - DEPTH_BAND) if is_buy else mid * (1 + DEPTH_BAND)
        for price, level in book.levels(is_buy):
            usd = grid.usd(m, price)
            if (usd < bound) if is_buy else (usd > bound):
                break
            total += grid.notional_usd(m, sum(level.values()), price)
        return total

    def ledger(self, exchange: Exchange) -> dict[str, dict[str, Any]]:
        """Per agent now: equity, the PnL split and margin state (quote quantums; see module doc)."""
        out = {}
        markets = exchange.markets
        for agent in self.agents:
            name = agent.name
            equity = notional = unsettled = 0
            below_initial = below_maintenance = False
            states = []
            for sid in agent.subaccounts:
                if sid not in exchange.subaccounts:
                    continue
                risk = exchange.risk(sid)  # unsettled funding included
                equity += risk.net_collateral
                stored = exchange.subaccounts[sid]
                unsettled += risk.net_collateral - account_risk(stored.usdc_quote_quantums, stored.positions,
                                                                markets).net_collateral
                for market_id, size in exchange.subaccounts[sid].positions.items():
                    market = markets[market_id]
                    product = size * market.oracle_price_subticks
                    divisor = market.quantum_conversion_divisor
                    notional += product // divisor if product >= 0 else -((-product) // divisor)
                states.append((exchange.subaccounts[sid].margin_mode.value, risk))
                below_initial |= risk.net_collateral < risk.initial_requirement
                below_maintenance |= risk.is_liquidatable()
            price_pnl = self.cash[name] + notional
            fees = self.fees[name]
            funding = self.funding_ppm[name] / 1_000_000 + unsettled
            liquidation_fees = self.liquidation_fees[name]
            total = equity + self.withdrawn[name] - self.deposits[name]
            other = total - price_pnl + fees + liquidation_fees - funding
            hedge = self.hedge_cash[name] - notional if name in self.hedged else 0
            out[name] = {"equity": equity, "price_pnl": price_pnl, "fees": fees, "liquidation_fees": liquidation_fees,
                         "funding": funding, "other": other,
                         "total": total, "hedge": hedge, "below_initial": below_initial,
                         "below_maintenance": below_maintenance, "states": states}
        return out

    def sample_accounts(self, exchange: Exchange, ts_ms: int) -> None:
        """PnL split per agent type and the accounts under initial / maintenance margin now."""
        ledger = self.ledger(exchange)
        by_type: dict[str, list[float]] = {}
        at_risk: dict[tuple[str, str], list[int]] = {}
        for agent in self.agents:
            row = ledger[agent.name]
            sums = by_type.setdefault(agent.kind, [0.0] * 8)
            for j, key in enumerate(("price_pnl", "funding", "fees", "liquidation_fees", "other", "total", "hedge",
                                     "equity")):
                sums[j] += row[key]
            for mode, risk in row["states"]:
                if agent.margin_mode == "isolated" and mode == "cross" and not risk.maintenance_requirement:
                    continue  # an isolated trader's emptied funding subaccount
                counts = at_risk.setdefault((agent.kind, mode), [0, 0, 0, 0])
                counts[0] += 1
                counts[1] += risk.net_collateral < risk.initial_requirement
                counts[2] += risk.is_liquidatable()
                counts[3] += risk.net_collateral
        for kind, sums in by_type.items():
            self.rows["pnl_by_type"].append((ts_ms, kind, *(value / QUOTE for value in sums)))
        for (kind, mode), counts in at_risk.items():
            self.rows["accounts_at_risk"].append((ts_ms, kind, mode, counts[0], counts[1], counts[2],
                                                  counts[3] / QUOTE))

    def finish(self, exchange: Exchange, transactions: Sequence[int], rejected: Sequence[int],
               rejections: dict[tuple[str, str], int]) -> None:
        """Final per-agent table and rejection counts (transactions/rejected indexed by agent id)."""
        ledger = self.ledger(exchange)
        for agent in self.agents:
            row = ledger[agent.name]
            self.rows["agent_pnl"].append((
                agent.agent_id, agent.name, agent.kind, agent.margin_mode, agent.market,
                self.deposits[agent.name] / QUOTE, self.withdrawn[agent.name] / QUOTE, row["equity"] / QUOTE, row["price_pnl"] / QUOTE,
                row["funding"] / QUOTE, row["fees"] / QUOTE, row["liquidation_fees"] / QUOTE, row["other"] / QUOTE,
                row["total"] / QUOTE,
                row["hedge"] / QUOTE, int(transactions[agent.agent_id]), int(rejected[agent.agent_id]),
                self.fills[agent.name], self.volume[agent.name] / QUOTE, bool(row["below_maintenance"])))
        for (kind, code), count in sorted(rejections.items()):
            self.rows["rejections"].append((kind, code, count))
        finality = self._withdrawal_finality
        if finality is not None and len(finality) != len(self.withdrawal_events):
            raise AssertionError(f"{len(self.withdrawal_events)} withdrawals applied, {len(finality)} in batches")
        for j, (ts_ms, sid, amount) in enumerate(self.withdrawal_events):
            batch_id, final_ms = finality[j] if finality is not None else (None, None)
            agent = self.agent_by_owner.get(sid.owner)
            self.rows["withdrawals"].append((ts_ms, str(sid), sid.owner, agent.kind if agent else "system", amount,
                                             amount / QUOTE, batch_id, final_ms,
                                             None if final_ms is None else final_ms - ts_ms))

    # --- the rollup ------------------------------------------------------------------------------
    def sample_proven(self, rollup: RollupRun, ts_ms: int, start_ms: int) -> None:
        """Totals over every subaccount as matched now and at the last accepted root (see TABLES)."""
        matched, proven = rollup.exchange, rollup.proven_exchange
        accepted = rollup.last_accepted
        batch_id, up_to_ms = (accepted[0], accepted[2]) if accepted is not None else (None, None)
        totals = []
        equities = []
        for exchange in (matched, proven):
            collateral = equity = maintenance = below = 0
            by_subaccount = {}
            for sid, subaccount in exchange.subaccounts.items():
                risk = exchange.risk(sid)
                collateral += subaccount.usdc_quote_quantums
                equity += risk.net_collateral
                maintenance += risk.maintenance_requirement
                below += risk.is_liquidatable()
                by_subaccount[sid] = risk.net_collateral
            totals.append((len(exchange.subaccounts), collateral, equity, maintenance, below))
            equities.append(by_subaccount)
        unproven = sum(abs(value - equities[1].get(sid, 0)) for sid, value in equities[0].items())
        unproven += sum(abs(value) for sid, value in equities[1].items() if sid not in equities[0])
        (n_m, coll_m, eq_m, mm_m, below_m), (n_p, coll_p, eq_p, mm_p, below_p) = totals
        waiting = len(self.withdrawal_events) - rollup.final_withdrawals
        waiting_quote = self.withdrawn_total_quote_quantums - rollup.final_withdrawn_quote_quantums
        self.rows["proven_balances"].append((
            ts_ms, batch_id, up_to_ms, ts_ms - (up_to_ms if up_to_ms is not None else start_ms), n_m, n_p,
            coll_m / QUOTE, coll_p / QUOTE, eq_m / QUOTE, eq_p / QUOTE, mm_m / QUOTE, mm_p / QUOTE, below_m, below_p,
            unproven / QUOTE, waiting, waiting_quote / QUOTE))

    def set_rollup(self, rollup: RollupRun) -> None:
        """After the rollup finished: the batches table and each withdrawal's batch and finality."""
        self.rows["batches"] = rollup.batch_rows()
        self._withdrawal_finality = rollup.withdrawal_finality()

    # --- output --------------------------------------------------------------------------------
    def records(self, name: str) -> list[dict[str, Any]]:
        """A table's rows as dicts by column name."""
        columns = self._columns[name]
        return [dict(zip(columns, row)) for row in self.rows[name]]

    def table(self, name: str) -> pa.Table:
        columns = TABLES[name]
        rows = self.rows[name]
        schema = pa.schema([pa.field(column, kind) for column, kind in columns])
        if not rows:
            return schema.empty_table()
        arrays = [pa.array(list(values), type=kind) for values, (_, kind) in zip(zip(*rows), columns)]
        return pa.Table.from_arrays(arrays, schema=schema)

    def set_activation(self, seqs: Sequence[int], steps: Sequence[int], agent_ids: Sequence[int]) -> None:
        """The order txs reached the exchange: seq in the log, step, and who sent them."""
        self._activation = (seqs, steps, agent_ids)

    def tables(self) -> dict[str, pa.Table]:
        out = {name: self.table(name) for name in TABLES if name != "activation"}
        activation = self._activation
        if activation is None:
            out["activation"] = self.table("activation")
        else:
            out["activation"] = pa.table({"seq": pa.array(activation[0], type=I64),
                                          "step": pa.array(activation[1], type=I64),
                                          "agent_id": pa.array(activation[2], type=I64)})
        return out


# --- handlers of the liquidation events (core.handlers.liquidate) ------------------------------------
def _liquidation_row(recorder: Recorder, kind: str, ts_ms: int, subaccount_id: Any, market_id: str | None,
                     size: int | None, price: int | None, bankruptcy: int | None, insurance: int | None,
                     bad_debt: int | None) -> None:
    agent = recorder.agent_by_owner.get(subaccount_id.owner)
    notional = None
    if market_id is not None and size is not None and price is not None:
        m = recorder.grid.index_of[market_id]
        notional = abs(recorder.grid.notional_usd(m, size, price))
    recorder.rows["liquidations"].append((
        ts_ms, kind, str(subaccount_id), subaccount_id.owner, agent.kind if agent else "system",
        recorder.margin_mode_of(subaccount_id), market_id, size, notional, price, bankruptcy, insurance, bad_debt))


def _on_liquidated(recorder: Recorder, event: Liquidated) -> None:
    """A liquidation fill (its `Fill` event books the cash); the fund delta is a liquidation fee."""
    owner = event.subaccount_id.owner
    if owner in recorder.liquidation_fees:
        recorder.liquidation_fees[owner] += event.insurance_fund_delta_quote_quantums
    _liquidation_row(recorder, "liquidation", event.ts_ms, event.subaccount_id, event.market_id,
                     event.size_base_quantums, event.fill_price_subticks, event.bankruptcy_price_subticks,
                     event.insurance_fund_delta_quote_quantums, None)


def _on_deleveraged(recorder: Recorder, event: Deleveraged) -> None:
    """An offset at the bankruptcy price: a trade between the two, booked as cash flows."""
    cash = recorder.cash
    bankrupt, offsetting = event.subaccount_id.owner, event.offsetting_subaccount_id.owner
    if bankrupt in cash:
        cash[bankrupt] += event.quote_quantums
    if offsetting in cash:
        cash[offsetting] -= event.quote_quantums
    if bankrupt in recorder.hedged:
        recorder.hedge_trade(bankrupt, event.market_id, event.size_base_quantums)
    if offsetting in recorder.hedged:
        recorder.hedge_trade(offsetting, event.market_id, -event.size_base_quantums)
    m = recorder.grid.index_of[event.market_id]
    size = abs(event.size_base_quantums)
    price = (event.quote_quantums * recorder.grid.divisor[m] // size) if size else None
    _liquidation_row(recorder, "deleverage", event.ts_ms, event.subaccount_id, event.market_id,
                     event.size_base_quantums, price, price, 0, None)


def _on_bad_debt(recorder: Recorder, event: BadDebt) -> None:
    """The step reports a bankrupt subaccount at every oracle update until its debt is absorbed;
    one row the first time."""
    if event.subaccount_id not in recorder.bankrupt:
        recorder.bankrupt.add(event.subaccount_id)
        _liquidation_row(recorder, "bad_debt", event.ts_ms, event.subaccount_id, None, None, None, None, None,
                         event.amount_quote_quantums)


def _on_stalled(recorder: Recorder, event: LiquidationStalled) -> None:
    recorder.liquidation_stalls += 1


# --- handlers of the funding events (core.handlers.funding_tick, handlers.common.settled) -----------
EIGHT_HOURS_MS = 8 * 3_600_000


def _on_funding_rate(recorder: Recorder, event: FundingRateComputed) -> None:
    m = recorder.grid.index_of.get(event.market_id)
    price = recorder.grid.usd(m, event.oracle_price_subticks) if m is not None else None
    per_interval = event.funding_rate_8h_ppm * event.interval_ms / EIGHT_HOURS_MS  # the rate this interval applied
    recorder.rows["funding"].append((event.ts_ms, event.market_id, event.funding_model, per_interval,
                                     event.funding_rate_8h_ppm, event.premium_ppm, event.samples, event.clamp_hit,
                                     event.interval_ms, price, event.funding_index_delta, event.funding_index_after))


def _on_withdrawn(recorder: Recorder, event: Withdrawn) -> None:
    owner = event.subaccount_id.owner
    if owner in recorder.withdrawn:
        recorder.withdrawn[owner] += event.amount_quantums
    recorder.withdrawal_events.append((event.ts_ms, event.subaccount_id, event.amount_quantums))
    recorder.withdrawn_total_quote_quantums += event.amount_quantums


def _on_withdrawal_haircut(recorder: Recorder, event: WithdrawalHaircut) -> None:
    """Kept back from the withdrawal to repay a socialized loss: the agent did not receive it."""
    owner = event.subaccount_id.owner
    if owner in recorder.withdrawn:
        recorder.withdrawn[owner] -= event.haircut_quote_quantums


def _on_funding_paid(recorder: Recorder, event: FundingPaid) -> None:
    owner = event.subaccount_id.owner
    if owner in recorder.funding_ppm:
        recorder.funding_ppm[owner] += event.settlement_ppm


def write_tables(tables: dict[str, pa.Table], folder: Path) -> dict[str, Path]:
    """Each table to `<folder>/<name>.parquet` (zstd)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, table in tables.items():
        path = folder / f"{name}.parquet"
        pq.write_table(table, path, compression="zstd")
        paths[name] = path
    return paths


def read_tables(folder: Path) -> dict[str, pa.Table]:
    """Every declared table found in `folder` (missing ones come back empty with their schema)."""
    out = {}
    for name, columns in TABLES.items():
        path = folder / f"{name}.parquet"
        if path.exists():
            out[name] = pq.read_table(path)
        else:
            out[name] = pa.schema([pa.field(c, k) for c, k in columns]).empty_table()
    return out
