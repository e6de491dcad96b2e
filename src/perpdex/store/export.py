"""Parquet tables of what a log did (fills, orders, funding payments, liquidations, balances and
positions over time, transactions, markets) and DuckDB SQL over them, by replaying the log.

Every table has typed columns: exact integers in their unit (`price_subticks`,
`size_base_quantums`, `quote_quantums`) and, beside them, human units as float64 for reading and
charts (`price_usd`: USD per whole base unit, `size`: whole base units such as BTC, `*_usd`: USDC),
plus `time` (UTC timestamp) beside `ts_ms`; `seq` ties every row to its transaction. Sides and statuses are strings. Subaccounts are
`owner` (string) and `number` (int64). Files read with polars, pandas and DuckDB alike.

Balances and positions are read from the exchange state after each transaction, for every
subaccount its events name, so they need no copy of the settlement rules; a row is written only
when the value changed, and `is_latest` marks each key's current value. Liquidations come from
`Liquidated` and `Deleveraged` events, funding payments from `FundingPaid`, funding rates from
`FundingRateComputed`; an exporter for a new event type is one `register_event_exporter` call.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perpdex.core.events import Fill, OrderAccepted, OrderFinished, OrderTriggered
from perpdex.core.exchange import Exchange
from perpdex.core.state import SubaccountId
from perpdex.core.tx import PlaceOrder
from perpdex.core.units import QUOTE, USDC_ASSET_ID, subticks_per_unit_exponent
from perpdex.store.codec import DEFAULT_CODEC
from perpdex.store.errors import ExportError
from perpdex.store.log import TxLog, open_log
from perpdex.store.replay import ProgressCallback, gc_paused, replay

MANIFEST = "_export.json"


def _schemas() -> dict[str, Any]:
    import pyarrow as pa

    i64, f64, s, b = pa.int64(), pa.float64(), pa.string(), pa.bool_()
    t = pa.timestamp("ms", tz="UTC")
    when = [("seq", i64), ("ts_ms", i64), ("time", t)]
    who = [("owner", s), ("number", i64)]
    columns = {
        "fills": when + [
            ("market_id", s), ("price_subticks", i64), ("price_usd", f64), ("size_base_quantums", i64),
            ("size", f64), ("quote_quantums", i64), ("notional_usd", f64), ("taker_side", s),
            ("taker_order_id", i64), ("taker_owner", s), ("taker_number", i64),
            ("taker_fee_quote_quantums", i64), ("taker_fee_usd", f64), ("maker_order_id", i64),
            ("maker_owner", s), ("maker_number", i64), ("maker_fee_quote_quantums", i64), ("maker_fee_usd", f64)],
        "orders": [
            ("order_id", i64), *who, ("market_id", s), ("side", s), ("order_type", s), ("time_in_force", s),
            ("reduce_only", b), ("client_id", i64), ("price_subticks", i64), ("price_usd", f64),
            ("size_base_quantums", i64), ("size", f64), ("condition", s), ("trigger_price_subticks", i64),
            ("trigger_price_usd", f64), ("good_til_ts_ms", i64), ("accepted_seq", i64), ("accepted_ts_ms", i64),
            ("accepted_time", t), ("triggered_seq", i64), ("triggered_ts_ms", i64), ("status", s),
            ("filled_base_quantums", i64), ("filled", f64), ("remaining_base_quantums", i64), ("remaining", f64),
            ("finished_seq", i64), ("finished_ts_ms", i64), ("finished_time", t), ("cancel_reason", s),
            ("detail", s)],
        "funding_payments": when + [
            ("market_id", s), *who, ("size_base_quantums", i64), ("size", f64), ("funding_index_entry", i64),
            ("funding_index_now", i64), ("paid_quote_quantums", i64), ("paid_usd", f64), ("settlement_ppm", i64)],
        "funding_rates": when + [
            ("market_id", s), ("funding_model", s), ("funding_rate_8h_ppm", i64), ("funding_rate_8h", f64),
            ("premium_ppm", i64), ("samples", i64), ("clamp_hit", b), ("interval_ms", i64),
            ("oracle_price_subticks", i64), ("oracle_price_usd", f64), ("funding_index_delta", i64),
            ("funding_index_after", i64)],
        "liquidations": when + [
            ("kind", s), ("market_id", s), *who, ("side", s), ("delta_base_quantums", i64), ("size", f64),
            ("fill_price_subticks", i64), ("fill_price_usd", f64), ("fillable_price_subticks", i64),
            ("fillable_price_usd", f64), ("bankruptcy_price_subticks", i64), ("bankruptcy_price_usd", f64),
            ("quote_quantums", i64), ("quote_usd", f64),
            ("net_collateral_before_quote_quantums", i64), ("net_collateral_before_usd", f64),
            ("maintenance_before_quote_quantums", i64), ("maintenance_before_usd", f64),
            ("insurance_fund_delta_quote_quantums", i64), ("insurance_fund_delta_usd", f64),
            ("counterparty_owner", s), ("counterparty_number", i64), ("maker_order_id", i64)],
        "balances": when + [
            *who, ("asset_id", i64), ("balance_quantums", i64), ("balance_usd", f64), ("delta_quantums", i64),
            ("cause", s), ("is_latest", b)],
        "positions": when + [
            *who, ("market_id", s), ("size_base_quantums", i64), ("size", f64), ("delta_base_quantums", i64),
            ("side", s), ("oracle_price_subticks", i64), ("oracle_price_usd", f64), ("notional_usd", f64),
            ("cause", s), ("is_latest", b)],
        "transactions": when + [("type", s), ("version", i64), ("body", s), ("events", i64), ("fills", i64)],
        "markets": [
            ("market_id", s), ("market_type", s), ("atomic_resolution", i64), ("quantum_conversion_exponent", i64),
            ("step_base_quantums", i64), ("step", f64), ("subticks_per_tick", i64), ("tick_usd", f64),
            ("min_order_base_quantums", i64), ("maker_fee_ppm", i64), ("taker_fee_ppm", i64),
            ("initial_margin_ppm", i64), ("maintenance_fraction_ppm", i64), ("liquidity_tier", s),
            ("oracle_staleness_ms", i64), ("final_oracle_price_subticks", i64), ("final_oracle_price_usd", f64),
            ("final_open_interest_base_quantums", i64), ("final_open_interest", f64)],
    }
    return {name: pa.schema(cols) for name, cols in columns.items()}


TABLES = ("fills", "orders", "funding_payments", "funding_rates", "liquidations", "balances", "positions",
          "transactions", "markets")


class _Scale:
    """Exact ints to floats for one market: int / 10**k is correctly rounded in Python."""

    __slots__ = ("atomic_resolution", "price_exponent")

    def __init__(self, atomic_resolution: int, quantum_conversion_exponent: int) -> None:
        self.price_exponent = subticks_per_unit_exponent(atomic_resolution, quantum_conversion_exponent)
        self.atomic_resolution = atomic_resolution

    def price(self, subticks: int | None) -> float | None:
        if subticks is None:
            return None
        e = self.price_exponent
        return subticks / 10**e if e >= 0 else float(subticks * 10**-e)

    def size(self, base_quantums: int) -> float:
        a = self.atomic_resolution
        return base_quantums / 10**-a if a < 0 else float(base_quantums * 10**a)


def _usd(quote_quantums: int) -> float:
    return quote_quantums / QUOTE


EventExporter = Callable[["Exporter", int, Any, Any], None]
_EVENT_EXPORTERS: dict[str, EventExporter] = {}


def register_event_exporter(event_type_name: str, exporter: EventExporter) -> None:
    """Route events of a type (by class name) to `exporter(exporter_state, seq, tx, event)`,
    which appends rows with `Exporter.add(table, **columns)`."""
    _EVENT_EXPORTERS[event_type_name] = exporter


class Exporter:
    """Collects table rows while a log replays (`on_events` is the replay callback)."""

    def __init__(self, exchange: Exchange) -> None:
        self.schemas = _schemas()
        self.rows: dict[str, list[dict[str, Any]]] = {name: [] for name in self.schemas}
        self.scales = {market_id: _Scale(m.params.atomic_resolution, m.params.quantum_conversion_exponent)
                       for market_id, m in exchange.markets.items()}
        self.orders: dict[int, dict[str, Any]] = {}
        # subaccount -> asset / market -> (last value, its row index)
        self.balances: dict[SubaccountId, dict[int, tuple[int, int]]] = {}
        self.positions: dict[SubaccountId, dict[str, tuple[int, int]]] = {}
        self.codec = DEFAULT_CODEC

    def add(self, table: str, **values: Any) -> int:
        """Append a row (missing columns are null, unknown ones are an error at `finish`).
        Returns the row index."""
        rows = self.rows[table]
        rows.append(values)
        return len(rows) - 1

    def on_events(self, seq: int, tx: Any, events: list, exchange: Exchange) -> None:
        ts_ms = tx.ts_ms
        touched: set[SubaccountId] = set()
        fills = 0
        for event in events:
            for value in event:
                if type(value) is SubaccountId:
                    touched.add(value)
            handler = _EVENT_EXPORTERS.get(type(event).__name__)
            if handler is not None:
                handler(self, seq, tx, event)
            if type(event) is Fill:
                fills += 1
        encoded = self.codec.encode(tx)
        self.add("transactions", seq=seq, ts_ms=ts_ms, time=ts_ms, type=encoded.type_name, version=encoded.version,
                 body=encoded.body, events=len(events), fills=fills)
        if touched:
            cause = type(tx).__name__
            for subaccount_id in sorted(touched):
                self._track(seq, ts_ms, exchange, subaccount_id, cause)

    def _track(self, seq: int, ts_ms: int, exchange: Exchange, subaccount_id: SubaccountId, cause: str) -> None:
        """Rows for every balance and position of one subaccount that changed (zero included:
        the state drops zero entries, so keys seen before are checked too)."""
        subaccount = exchange.subaccounts.get(subaccount_id)
        collateral = subaccount.collateral if subaccount is not None else {}
        positions = subaccount.positions if subaccount is not None else {}
        seen_balances = self.balances.setdefault(subaccount_id, {})
        for asset_id in collateral.keys() | seen_balances.keys():
            balance = collateral.get(asset_id, 0)
            before = seen_balances[asset_id][0] if asset_id in seen_balances else 0
            if before == balance:
                continue
            row = self.add("balances", seq=seq, ts_ms=ts_ms, time=ts_ms, owner=subaccount_id.owner,
                           number=subaccount_id.number, asset_id=asset_id, balance_quantums=balance,
                           balance_usd=_usd(balance) if asset_id == USDC_ASSET_ID else None,
                           delta_quantums=balance - before, cause=cause)
            seen_balances[asset_id] = (balance, row)
        seen_positions = self.positions.setdefault(subaccount_id, {})
        for market_id in positions.keys() | seen_positions.keys():
            size = positions.get(market_id, 0)
            before = seen_positions[market_id][0] if market_id in seen_positions else 0
            if before == size:
                continue
            scale = self.scales[market_id]
            oracle = exchange.markets[market_id].oracle_price_subticks
            oracle_usd = scale.price(oracle)
            size_human = scale.size(size)
            row = self.add("positions", seq=seq, ts_ms=ts_ms, time=ts_ms, owner=subaccount_id.owner,
                           number=subaccount_id.number, market_id=market_id, size_base_quantums=size,
                           size=size_human, delta_base_quantums=size - before,
                           side="long" if size > 0 else ("short" if size < 0 else "flat"),
                           oracle_price_subticks=oracle, oracle_price_usd=oracle_usd,
                           notional_usd=size_human * oracle_usd if oracle_usd is not None else None, cause=cause)
            seen_positions[market_id] = (size, row)

    def finish(self, exchange: Exchange) -> dict[str, Any]:
        """Close the open-order rows from the final state, mark latest values, build tables."""
        import pyarrow as pa

        for order_id, record in self.orders.items():
            order = exchange.open_orders.get(order_id)
            scale = self.scales[record["market_id"]]
            if order is not None:
                record["status"] = order.status.value
                record["filled_base_quantums"] = order.filled_base_quantums
                record["remaining_base_quantums"] = order.remaining_base_quantums
            record["filled"] = scale.size(record["filled_base_quantums"])
            record["remaining"] = scale.size(record["remaining_base_quantums"])
            self.add("orders", **record)
        for table, latest in (("balances", self.balances), ("positions", self.positions)):
            rows = self.rows[table]
            for row in rows:
                row["is_latest"] = False
            for per_key in latest.values():
                for _, index in per_key.values():
                    rows[index]["is_latest"] = True
        for market_id, market in exchange.markets.items():
            params, scale = market.params, self.scales[market_id]
            tier = params.liquidity_tier
            self.add("markets", market_id=market_id, market_type=params.market_type.value,
                     atomic_resolution=params.atomic_resolution,
                     quantum_conversion_exponent=params.quantum_conversion_exponent,
                     step_base_quantums=params.step_base_quantums, step=scale.size(params.step_base_quantums),
                     subticks_per_tick=params.subticks_per_tick, tick_usd=scale.price(params.subticks_per_tick),
                     min_order_base_quantums=params.min_order_base_quantums, maker_fee_ppm=params.maker_fee_ppm,
                     taker_fee_ppm=params.taker_fee_ppm, initial_margin_ppm=tier.initial_margin_ppm,
                     maintenance_fraction_ppm=tier.maintenance_fraction_ppm, liquidity_tier=tier.name,
                     oracle_staleness_ms=params.oracle_staleness_ms,
                     final_oracle_price_subticks=market.oracle_price_subticks,
                     final_oracle_price_usd=scale.price(market.oracle_price_subticks),
                     final_open_interest_base_quantums=market.open_interest_base_quantums,
                     final_open_interest=scale.size(market.open_interest_base_quantums))
        tables = {}
        for name, schema in self.schemas.items():
            rows = self.rows[name]
            known = set(schema.names)
            for row in rows[:1] + rows[-1:]:
                if not row.keys() <= known:
                    raise ExportError(f"table {name} has no column(s) {sorted(row.keys() - known)}")
            try:
                tables[name] = pa.Table.from_pylist(rows, schema=schema)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
                raise ExportError(f"table {name} cannot be built: {exc}") from exc
        return tables


# --- event exporters -------------------------------------------------------------------------
def _export_fill(ex: Exporter, seq: int, tx: Any, e: Fill) -> None:
    scale = ex.scales[e.market_id]
    ex.add("fills", seq=seq, ts_ms=e.ts_ms, time=e.ts_ms, market_id=e.market_id, price_subticks=e.price_subticks,
           price_usd=scale.price(e.price_subticks), size_base_quantums=e.size_base_quantums,
           size=scale.size(e.size_base_quantums), quote_quantums=e.quote_quantums, notional_usd=_usd(e.quote_quantums),
           taker_side="buy" if e.taker_is_buy else "sell", taker_order_id=e.taker_order_id,
           taker_owner=e.taker_subaccount_id.owner, taker_number=e.taker_subaccount_id.number,
           taker_fee_quote_quantums=e.taker_fee_quote_quantums, taker_fee_usd=_usd(e.taker_fee_quote_quantums),
           maker_order_id=e.maker_order_id, maker_owner=e.maker_subaccount_id.owner,
           maker_number=e.maker_subaccount_id.number, maker_fee_quote_quantums=e.maker_fee_quote_quantums,
           maker_fee_usd=_usd(e.maker_fee_quote_quantums))


def _export_forced_trade(ex: Exporter, seq: int, tx: Any, e: Any) -> None:
    """`ForcedTradeExecuted`: a fills row with the buyer as taker, no orders and no fees."""
    scale = ex.scales[e.market_id]
    ex.add("fills", seq=seq, ts_ms=e.ts_ms, time=e.ts_ms, market_id=e.market_id, price_subticks=e.price_subticks,
           price_usd=scale.price(e.price_subticks), size_base_quantums=e.size_base_quantums,
           size=scale.size(e.size_base_quantums), quote_quantums=e.quote_quantums, notional_usd=_usd(e.quote_quantums),
           taker_side="buy", taker_owner=e.buyer.owner, taker_number=e.buyer.number, taker_fee_quote_quantums=0,
           taker_fee_usd=0.0, maker_owner=e.seller.owner, maker_number=e.seller.number, maker_fee_quote_quantums=0,
           maker_fee_usd=0.0)


def _export_accepted(ex: Exporter, seq: int, tx: Any, e: OrderAccepted) -> None:
    scale = ex.scales[e.market_id]
    placed = tx if type(tx) is PlaceOrder and tx.subaccount_id == e.subaccount_id else None
    ex.orders[e.order_id] = {
        "order_id": e.order_id, "owner": e.subaccount_id.owner, "number": e.subaccount_id.number,
        "market_id": e.market_id, "side": "buy" if e.is_buy else "sell",
        "order_type": placed.order_type.value if placed else None,
        "time_in_force": placed.time_in_force.value if placed else None,
        "reduce_only": placed.reduce_only if placed else None, "client_id": e.client_id,
        "price_subticks": e.price_subticks, "price_usd": scale.price(e.price_subticks),
        "size_base_quantums": e.size_base_quantums, "size": scale.size(e.size_base_quantums),
        "condition": placed.condition.value if placed and placed.condition else None,
        "trigger_price_subticks": placed.trigger_price_subticks if placed else None,
        "trigger_price_usd": scale.price(placed.trigger_price_subticks) if placed else None,
        "good_til_ts_ms": placed.good_til_ts_ms if placed else None,
        "accepted_seq": seq, "accepted_ts_ms": e.ts_ms, "accepted_time": e.ts_ms,
        "status": e.status.value, "filled_base_quantums": 0, "remaining_base_quantums": e.size_base_quantums,
    }


def _export_triggered(ex: Exporter, seq: int, tx: Any, e: OrderTriggered) -> None:
    record = ex.orders.get(e.order_id)
    if record is not None:
        record["triggered_seq"], record["triggered_ts_ms"] = seq, e.ts_ms


def _export_finished(ex: Exporter, seq: int, tx: Any, e: OrderFinished) -> None:
    record = ex.orders.get(e.order_id)
    if record is None:
        return
    record.update(status=e.status.value, filled_base_quantums=e.filled_base_quantums,
                  remaining_base_quantums=e.remaining_base_quantums, finished_seq=seq, finished_ts_ms=e.ts_ms,
                  finished_time=e.ts_ms, cancel_reason=e.reason.value if e.reason is not None else None,
                  detail=e.detail)


def _export_liquidation(ex: Exporter, seq: int, tx: Any, e: Any) -> None:
    """`Liquidated` (a fill against the book) and `Deleveraged` (an offset at the bankruptcy
    price) events; fields an event lacks are null."""
    get = getattr
    market_id = e.market_id
    scale = ex.scales[market_id]
    delta = e.size_base_quantums
    deleverage = type(e).__name__ == "Deleveraged"
    counterparty = get(e, "offsetting_subaccount_id" if deleverage else "maker_subaccount_id", None)
    quote = get(e, "quote_quantums", None)
    row: dict[str, Any] = {
        "seq": seq, "ts_ms": e.ts_ms, "time": e.ts_ms, "kind": "deleverage" if deleverage else "liquidation",
        "market_id": market_id, "owner": e.subaccount_id.owner, "number": e.subaccount_id.number,
        "side": "buy" if delta > 0 else "sell", "delta_base_quantums": delta, "size": scale.size(abs(delta)),
        "quote_quantums": quote, "quote_usd": _usd(quote) if quote is not None else None,
        "counterparty_owner": counterparty.owner if counterparty is not None else None,
        "counterparty_number": counterparty.number if counterparty is not None else None,
        "maker_order_id": get(e, "maker_order_id", None)}
    for name in ("fill_price", "fillable_price", "bankruptcy_price"):
        subticks = get(e, f"{name}_subticks", None)
        row[f"{name}_subticks"], row[f"{name}_usd"] = subticks, scale.price(subticks)
    for name in ("net_collateral_before", "maintenance_before", "insurance_fund_delta"):
        quantums = get(e, f"{name}_quote_quantums", None)
        row[f"{name}_quote_quantums"] = quantums
        row[f"{name}_usd"] = _usd(quantums) if quantums is not None else None
    ex.add("liquidations", **row)


def _copy_fields(event: Any, columns: set[str]) -> dict[str, Any]:
    return {name: value for name, value in zip(event._fields, event) if name in columns}


def _export_funding_paid(ex: Exporter, seq: int, tx: Any, e: Any) -> None:
    """`FundingPaid`: a position settled its funding; `paid_*` > 0 paid, < 0 received."""
    row = _copy_fields(e, _FUNDING_PAYMENT_COLUMNS)
    scale = ex.scales[e.market_id]
    row.update(seq=seq, time=e.ts_ms, owner=e.subaccount_id.owner, number=e.subaccount_id.number,
               size=scale.size(e.size_base_quantums), paid_usd=_usd(e.paid_quote_quantums))
    ex.add("funding_payments", **row)


def _export_funding_rate(ex: Exporter, seq: int, tx: Any, e: Any) -> None:
    """`FundingRateComputed`: one market's funding interval closed."""
    row = _copy_fields(e, _FUNDING_RATE_COLUMNS)
    row.update(seq=seq, time=e.ts_ms, funding_rate_8h=e.funding_rate_8h_ppm / 1_000_000,
               oracle_price_usd=ex.scales[e.market_id].price(e.oracle_price_subticks))
    ex.add("funding_rates", **row)


_FUNDING_PAYMENT_COLUMNS = {"ts_ms", "market_id", "size_base_quantums", "funding_index_entry", "funding_index_now",
                            "paid_quote_quantums", "settlement_ppm"}
_FUNDING_RATE_COLUMNS = {"ts_ms", "market_id", "funding_model", "funding_rate_8h_ppm", "premium_ppm", "samples",
                         "clamp_hit", "interval_ms", "oracle_price_subticks", "funding_index_delta",
                         "funding_index_after"}

register_event_exporter("Fill", _export_fill)
register_event_exporter("ForcedTradeExecuted", _export_forced_trade)
register_event_exporter("FundingPaid", _export_funding_paid)
register_event_exporter("FundingRateComputed", _export_funding_rate)
register_event_exporter("Liquidated", _export_liquidation)
register_event_exporter("Deleveraged", _export_liquidation)
register_event_exporter("OrderAccepted", _export_accepted)
register_event_exporter("OrderTriggered", _export_triggered)
register_event_exporter("OrderFinished", _export_finished)


# --- entry points ------------------------------------------------------------------------------
@dataclass
class ExportResult:
    """What an export produced: tables (pyarrow) or files, and the replay behind them."""

    tables: dict[str, Any]
    rows: dict[str, int]
    last_seq: int
    tx_count: int
    digest: str
    seconds: float
    files: dict[str, Path]


def export_tables(log: TxLog | str | os.PathLike, *, until_seq: int | None = None,
                  progress: ProgressCallback | None = None) -> ExportResult:
    """Replay the log from genesis (the tables need the whole history) and return the tables
    as pyarrow Tables; nothing is written."""
    started = time.perf_counter()
    if not isinstance(log, TxLog):
        with open_log(log) as opened:
            return export_tables(opened, until_seq=until_seq, progress=progress)
    exporter: Exporter | None = None

    def on_events(seq: int, tx: Any, events: list, exchange: Exchange) -> None:
        nonlocal exporter
        if exporter is None:
            exporter = Exporter(exchange)
        exporter.on_events(seq, tx, events, exchange)

    with gc_paused():  # many small long-lived rows: see gc_paused
        result = replay(log, until_seq=until_seq, snapshots=None, progress=progress, on_events=on_events)
        if exporter is None:
            exporter = Exporter(result.exchange)
        tables = exporter.finish(result.exchange)
        del exporter
    return ExportResult(tables, {name: table.num_rows for name, table in tables.items()}, result.last_seq,
                        result.replayed, result.digest, time.perf_counter() - started, {})


def export(log: TxLog | str | os.PathLike, out: str | os.PathLike, *, until_seq: int | None = None,
           progress: ProgressCallback | None = None, compression: str = "zstd") -> ExportResult:
    """Write every table as `<out>/<table>.parquet` plus `_export.json` (log id, seq, digest).
    Files are written under a temporary name and renamed, so a failed export leaves the
    previous files whole. Raises StoreError subclasses naming the file and seq."""
    import pyarrow.parquet as pq

    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError("the output exists and is not a folder", location=str(out_dir))
    if not isinstance(log, TxLog):
        with open_log(log) as opened:
            return export(opened, out_dir, until_seq=until_seq, progress=progress, compression=compression)
    result = export_tables(log, until_seq=until_seq, progress=progress)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, table in result.tables.items():
            final = out_dir / f"{name}.parquet"
            temporary = out_dir / f".{name}.parquet.tmp"
            pq.write_table(table, temporary, compression=compression)
            os.replace(temporary, final)
            result.files[name] = final
        manifest = {"log": log.location, "log_id": log.meta.log_id, "last_seq": result.last_seq,
                    "digest": result.digest, "tx_count": result.tx_count, "rows": result.rows,
                    "created_unix_ms": int(time.time() * 1000)}
        (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ExportError(f"cannot write: {exc.strerror}", location=str(exc.filename or out_dir)) from exc
    return result


@dataclass
class QueryResult:
    """A DuckDB query's result (pyarrow Table) and what it ran over."""

    table: Any
    last_seq: int
    tx_count: int
    digest: str
    seconds: float
    source: str


def query(source: TxLog | str | os.PathLike, sql: str, *, until_seq: int | None = None,
          progress: ProgressCallback | None = None) -> QueryResult:
    """Run DuckDB SQL over the export tables (`fills`, `orders`, `funding_payments`,
    `funding_rates`, `liquidations`, `balances`, `positions`, `transactions`, `markets`). `source` is a log
    (replayed in memory, nothing written) or a folder written by `export`. Returns the result
    as a pyarrow Table; bad SQL raises ExportError."""
    import duckdb

    started = time.perf_counter()
    connection = duckdb.connect()
    try:
        directory = Path(source) if not isinstance(source, TxLog) else None
        if directory is not None and directory.is_dir():
            manifest_path = directory / MANIFEST
            if not manifest_path.exists():
                raise ExportError(f"not an export folder (no {MANIFEST})", location=str(directory))
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            for name in TABLES:
                path = directory / f"{name}.parquet"
                if path.exists():
                    literal = str(path).replace("'", "''")
                    connection.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{literal}')")
            last_seq, tx_count, digest = manifest["last_seq"], manifest["tx_count"], manifest["digest"]
            where = str(directory)
        else:
            exported = export_tables(source, until_seq=until_seq, progress=progress)  # type: ignore[arg-type]
            for name, table in exported.tables.items():
                connection.register(name, table)
            last_seq, tx_count, digest = exported.last_seq, exported.tx_count, exported.digest
            where = source.location if isinstance(source, TxLog) else str(source)
        try:
            relation = connection.sql(sql)
            if relation is None:  # a statement without a result
                import pyarrow as pa

                table = pa.table({})
            else:
                table = relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()
        except duckdb.Error as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"query failed: {first_line}", location=where) from None
    finally:
        connection.close()
    return QueryResult(table, last_seq, tx_count, digest, time.perf_counter() - started, where)


def schemas() -> dict[str, Any]:
    """The pyarrow schema of every exported table."""
    return _schemas()


__all__ = [
    "TABLES",
    "ExportResult",
    "Exporter",
    "QueryResult",
    "export",
    "export_tables",
    "query",
    "register_event_exporter",
    "schemas",
]
