"""A short scripted session on the exchange core (deposits, quotes, trades, stops, a price drop)
that shows cross vs isolated margin and conditional orders; `perpdex demo` runs it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from perpdex.config.markets import load_markets
from perpdex.core.events import BadDebt, Deleveraged, Event, Fill, Liquidated, OrderFinished, OrderTriggered
from perpdex.core.exchange import Exchange
from perpdex.core.invariants import check_invariants
from perpdex.core.orders import ConditionType, OrderType, Side, TimeInForce
from perpdex.core.state import MarginMode, SubaccountId
from perpdex.core.tx import (
    CancelOrder, Deposit, OraclePrice, OracleUpdate, PlaceOrder, SetMarginMode, Transfer, Tx,
)
from perpdex.core.units import price_to_subticks, quote_quantums_to_usd, size_to_base_quantums, usd_to_quote_quantums

MAKER = SubaccountId("maker")
ALICE = SubaccountId("alice")
BOB, BOB_ETH = SubaccountId("bob"), SubaccountId("bob", 1)
CAROL = SubaccountId("carol")
PEOPLE = {MAKER: "market maker (cross)", ALICE: "alice: cross BTC+ETH", BOB: "bob: cross (idle)",
          BOB_ETH: "bob/1: isolated ETH", CAROL: "carol: short BTC"}


@dataclass
class Step:
    """One scripted moment: what happened, and each account's risk afterwards."""

    title: str
    ts_ms: int
    fills: int
    notes: list[str]
    accounts: list[dict]


class ScriptedSession:
    def __init__(self) -> None:
        self.markets = {m.market_id: m for m in load_markets()}
        self.exchange = Exchange(self.markets.values())
        self.ts_ms = 1_700_000_000_000
        self.events: list[Event] = []
        self.steps: list[Step] = []
        self.index_usd = {"BTC-USD": Decimal(100_000), "ETH-USD": Decimal(3_500)}

    # --- unit helpers at the edge: humans speak dollars and coins ------------------------
    def px(self, market_id: str, usd: Decimal | str | int) -> int:
        m = self.markets[market_id]
        tick = m.subticks_per_tick
        raw = price_to_subticks(Decimal(usd), m.atomic_resolution, m.quantum_conversion_exponent, round_up=False)
        return raw // tick * tick

    def qty(self, market_id: str, amount: str) -> int:
        return size_to_base_quantums(amount, self.markets[market_id].atomic_resolution)

    def apply(self, tx: Tx) -> list[Event]:
        events = self.exchange.apply(tx)
        check_invariants(self.exchange)
        self.events.extend(events)
        return events

    def tick(self, seconds: int = 1) -> int:
        self.ts_ms += seconds * 1_000
        return self.ts_ms

    # --- scenario pieces ----------------------------------------------------------------------
    def publish_index(self) -> list[Event]:
        """Three sources around the index; the exchange takes their median."""
        prices = []
        for market_id, usd in self.index_usd.items():
            center = self.px(market_id, usd)
            spread = self.markets[market_id].subticks_per_tick * 3
            prices.append(OraclePrice(market_id, (center - spread, center, center + spread)))
        return self.apply(OracleUpdate(self.tick(), tuple(prices)))

    def requote(self) -> None:
        """The maker cancels its quotes and posts 8 levels a side around the index."""
        ex = self.exchange
        for order_id in sorted(ex.orders_by_subaccount.get(MAKER, ())):
            self.apply(CancelOrder(self.tick(0), MAKER, order_id=order_id))
        ladder = {"BTC-USD": (Decimal(10), "0.5"), "ETH-USD": (Decimal("0.5"), "8")}
        for market_id, (step_usd, size) in ladder.items():
            mid = self.index_usd[market_id]
            for level in range(1, 9):
                for side, sign in ((Side.BUY, -1), (Side.SELL, 1)):
                    price = self.px(market_id, mid + sign * step_usd * level)
                    self.apply(PlaceOrder(self.tick(0), MAKER, market_id, side, self.qty(market_id, size), price,
                                          time_in_force=TimeInForce.POST_ONLY))

    def snapshot(self, title: str, events: list[Event], notes: list[str] | None = None) -> Step:
        ex = self.exchange
        accounts = []
        for sid, label in PEOPLE.items():
            if sid not in ex.subaccounts:
                continue
            sub = ex.subaccounts[sid]
            risk = ex.risk(sid)
            if risk.is_liquidatable():
                status = "LIQUIDATABLE"
            elif not risk.is_initial_collateralized():
                status = "below initial"
            else:
                status = "healthy"
            accounts.append({
                "subaccount": str(sid), "who": label, "mode": sub.margin_mode.value,
                "positions": {m: str(Decimal(s).scaleb(self.markets[m].atomic_resolution))
                              for m, s in sorted(sub.positions.items())},
                "net_collateral_usd": str(quote_quantums_to_usd(risk.net_collateral)),
                "initial_requirement_usd": str(quote_quantums_to_usd(risk.initial_requirement)),
                "maintenance_requirement_usd": str(quote_quantums_to_usd(risk.maintenance_requirement)),
                "free_collateral_usd": str(quote_quantums_to_usd(risk.free_collateral)),
                "status": status,
            })
        step = Step(title, self.ts_ms, sum(1 for e in events if isinstance(e, Fill)), notes or [], accounts)
        self.steps.append(step)
        return step

    def run(self) -> list[Step]:
        usd = usd_to_quote_quantums
        opening: list[Event] = []
        opening += self.apply(Deposit(self.tick(), MAKER, usd(5_000_000)))
        opening += self.apply(Deposit(self.tick(), ALICE, usd(20_000)))
        opening += self.apply(Deposit(self.tick(), BOB, usd(10_000)))
        opening += self.apply(Deposit(self.tick(), CAROL, usd(10_000)))
        opening += self.apply(SetMarginMode(self.tick(), BOB_ETH, MarginMode.ISOLATED, "ETH-USD"))
        opening += self.apply(Transfer(self.tick(), BOB, BOB_ETH, usd(3_000)))
        opening += self.publish_index()
        self.requote()
        self.snapshot("Deposits, an isolated ETH subaccount for bob, the maker quotes", opening)

        trades: list[Event] = []
        market = {"order_type": OrderType.MARKET, "time_in_force": TimeInForce.IOC}
        trades += self.apply(PlaceOrder(self.tick(), ALICE, "BTC-USD", Side.BUY, self.qty("BTC-USD", "1.0"), **market))
        trades += self.apply(PlaceOrder(self.tick(), ALICE, "ETH-USD", Side.BUY, self.qty("ETH-USD", "20"), **market))
        trades += self.apply(PlaceOrder(self.tick(), BOB_ETH, "ETH-USD", Side.BUY, self.qty("ETH-USD", "12"),
                                        **market))
        trades += self.apply(PlaceOrder(self.tick(), CAROL, "BTC-USD", Side.SELL, self.qty("BTC-USD", "0.8"),
                                        **market))
        # carol protects her short both ways: take profit at $92,000, stop loss at $104,000
        for condition, trigger in ((ConditionType.TAKE_PROFIT, 92_000), (ConditionType.STOP_LOSS, 104_000)):
            trades += self.apply(PlaceOrder(self.tick(), CAROL, "BTC-USD", Side.BUY, self.qty("BTC-USD", "0.8"),
                                            reduce_only=True, condition=condition,
                                            trigger_price_subticks=self.px("BTC-USD", trigger), **market))
        self.snapshot("Positions opened with market orders; carol sets take-profit and stop-loss", trades,
                      ["alice runs ~7x cross on BTC and ETH; bob/1 runs ~14x isolated on ETH"])

        path = [(Decimal("0.97"), Decimal("0.95")), (Decimal("0.94"), Decimal("0.90")),
                (Decimal("0.91"), Decimal("0.86"))]
        start = dict(self.index_usd)
        for number, (btc_factor, eth_factor) in enumerate(path, 1):
            self.index_usd = {"BTC-USD": start["BTC-USD"] * btc_factor, "ETH-USD": start["ETH-USD"] * eth_factor}
            moved = self.publish_index()
            notes = [f"order {e.order_id} triggered at oracle {e.oracle_price_subticks}" for e in moved
                     if isinstance(e, OrderTriggered)]
            notes += [f"order {e.order_id} {e.status.value}" + (f" ({e.reason.value})" if e.reason else "")
                      for e in moved if isinstance(e, OrderFinished) and e.order_id]
            liquidated: dict[str, list[Liquidated]] = {}
            for e in moved:
                if isinstance(e, Liquidated):
                    liquidated.setdefault(f"{e.subaccount_id} {e.market_id}", []).append(e)
            for who, fills in liquidated.items():
                size = sum(abs(f.size_base_quantums) for f in fills)
                fee = sum(f.insurance_fund_delta_quote_quantums for f in fills)
                notes.append(f"LIQUIDATED {who}: {len(fills)} fills, {size} base quantums, "
                             f"insurance fund {'+' if fee >= 0 else ''}{quote_quantums_to_usd(fee)} USD")
            notes += [f"deleveraged {e.subaccount_id} against {e.offsetting_subaccount_id}" for e in moved
                      if isinstance(e, Deleveraged)]
            notes += [f"BAD DEBT {e.subaccount_id}: {quote_quantums_to_usd(e.amount_quote_quantums)} USD" for e in moved
                      if isinstance(e, BadDebt)]
            self.requote()
            self.snapshot(f"Move {number}: BTC {int((btc_factor - 1) * 100)}%, ETH {int((eth_factor - 1) * 100)}%",
                          moved, notes)
        return self.steps

    def summary(self) -> dict:
        ex = self.exchange
        fills = [e for e in self.events if isinstance(e, Fill)]
        return {
            "transactions": ex.tx_count,
            "fills": len(fills),
            "traded_notional_usd": str(quote_quantums_to_usd(sum(f.quote_quantums for f in fills))),
            "fees_collected_usd": str(quote_quantums_to_usd(ex.fees_collected_quote_quantums)),
            "open_interest": {m: str(Decimal(ex.markets[m].open_interest_base_quantums).scaleb(
                self.markets[m].atomic_resolution)) for m in ("BTC-USD", "ETH-USD")},
            "liquidation_fills": sum(1 for e in self.events if isinstance(e, Liquidated)),
            "liquidated_subaccounts": sorted({str(e.subaccount_id) for e in self.events if isinstance(e, Liquidated)}),
            "insurance_fund_usd": str(quote_quantums_to_usd(ex.insurance_fund_quote_quantums)),
            "bad_debt_usd": str(quote_quantums_to_usd(sum(e.amount_quote_quantums for e in self.events
                                                          if isinstance(e, BadDebt)))),
            "liquidatable_subaccounts": [str(sid) for sid in ex.subaccounts if ex.risk(sid).is_liquidatable()],
            "state_digest": ex.digest(),
        }


def run_demo(out_dir: Path) -> tuple[ScriptedSession, dict]:
    """Run the scripted session; write `steps.json`, `events.jsonl` and `summary.json` to out_dir."""
    session = ScriptedSession()
    session.run()
    summary = session.summary()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "steps.json").write_text(json.dumps([step.__dict__ for step in session.steps], indent=2))
    with (out_dir / "events.jsonl").open("w") as handle:
        for event in session.events:
            record = {"type": type(event).__name__}
            record.update({k: (v if isinstance(v, (int, str, bool, type(None))) else str(v))
                           for k, v in event._asdict().items()})
            handle.write(json.dumps(record) + "\n")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return session, summary
