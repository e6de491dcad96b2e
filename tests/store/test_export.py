"""Parquet exports: typed columns with human units beside the quantums, readable by polars, pandas
and DuckDB, and equal to what the exchange itself says; DuckDB SQL over a log or an export."""

from __future__ import annotations

import duckdb
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest

from perpdex.core.events import Fill
from perpdex.core.exchange import Exchange
from perpdex.core.units import USDC_ASSET_ID
from perpdex.store import ExportError, export, open_log, query, replay
from perpdex.store.export import MANIFEST, TABLES, schemas

from .conftest import funding_flow, funding_markets_toml, write_log


@pytest.fixture()
def exported(log_path, tmp_path):
    path, digest, accepted = log_path
    result = export(path, tmp_path / "out")
    return path, digest, accepted, result, tmp_path / "out"


def test_every_table_is_written_with_its_schema_and_a_manifest(exported):
    _path, digest, accepted, result, out = exported
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{name}.parquet" for name in TABLES] + [MANIFEST])
    assert result.digest == digest and result.tx_count == result.last_seq == len(accepted)
    for name, schema in schemas().items():
        assert pq.read_schema(out / f"{name}.parquet").equals(schema, check_metadata=False)
        frame = pl.read_parquet(out / f"{name}.parquet")
        assert frame.columns == schema.names
        assert all(frame.schema[c] == pl.Int64 for c in schema.names if c.endswith(("quantums", "_subticks")))
        assert all(frame.schema[c] == pl.Float64 for c in schema.names if c.endswith("_usd"))
    assert result.rows["transactions"] == len(accepted) and result.rows["fills"] > 100
    assert result.rows["funding_payments"] == 0  # the mixed flow spans less than a funding interval


def test_polars_pandas_and_duckdb_read_the_same_numbers(exported):
    _, _, _, _result, out = exported
    fills = out / "fills.parquet"
    by_polars = pl.read_parquet(fills).select(pl.col("quote_quantums").sum()).item()
    by_pandas = int(pd.read_parquet(fills)["quote_quantums"].sum())
    by_duckdb = duckdb.connect().execute(f"SELECT sum(quote_quantums) FROM read_parquet('{fills}')").fetchone()[0]
    assert by_polars == by_pandas == by_duckdb > 0
    frame = pd.read_parquet(out / "orders.parquet")
    assert pd.api.types.is_string_dtype(frame["time_in_force"]) and frame["order_id"].dtype == "int64"
    assert str(pd.read_parquet(fills)["time"].dtype).startswith("datetime64[ms")


def test_the_tables_agree_with_the_exchange(exported):
    path, _, _, _, out = exported
    with open_log(path) as log:
        exchange = Exchange(log.markets())
        fills = 0
        for _, tx in log.records():
            fills += sum(1 for event in exchange.apply(tx) if type(event) is Fill)
    assert pl.read_parquet(out / "fills.parquet").height == fills
    balances = pl.read_parquet(out / "balances.parquet").filter(pl.col("is_latest"))
    latest = {(r["owner"], r["number"], r["asset_id"]): r["balance_quantums"] for r in balances.iter_rows(named=True)}
    state = {(s.owner, s.number, asset): amount for s, sub in exchange.subaccounts.items()
             for asset, amount in sub.collateral.items()}
    assert {k: v for k, v in latest.items() if v} == state
    positions = pl.read_parquet(out / "positions.parquet").filter(pl.col("is_latest"))
    held = {(r["owner"], r["number"], r["market_id"]): r["size_base_quantums"]
            for r in positions.iter_rows(named=True)}
    state_positions = {(s.owner, s.number, m): size for s, sub in exchange.subaccounts.items()
                       for m, size in sub.positions.items()}
    assert {k: v for k, v in held.items() if v} == state_positions
    assert all(r["side"] == "flat" for r in positions.iter_rows(named=True) if r["size_base_quantums"] == 0)
    for row in pl.read_parquet(out / "orders.parquet").iter_rows(named=True):
        status, filled, _ = exchange.order_status(row["order_id"])
        assert (row["status"], row["filled_base_quantums"]) == (status.value, filled)


def test_human_units_sit_beside_the_exact_ones(exported):
    *_, out = exported
    fills = pl.read_parquet(out / "fills.parquet").filter(pl.col("market_id") == "BTC-USD")
    row = fills.row(0, named=True)
    assert row["price_usd"] == row["price_subticks"] / 100_000  # BTC-USD: $1 = 100,000 subticks
    assert row["size"] == row["size_base_quantums"] / 10**10  # 1 BTC = 1e10 base quantums
    assert row["notional_usd"] == row["quote_quantums"] / 10**6
    assert row["taker_fee_usd"] == row["taker_fee_quote_quantums"] / 10**6
    balance = pl.read_parquet(out / "balances.parquet").filter(pl.col("asset_id") == USDC_ASSET_ID).row(0, named=True)
    assert balance["balance_usd"] == balance["balance_quantums"] / 10**6


SQL = "SELECT market_id, count(*) AS fills, sum(notional_usd) AS usd FROM fills GROUP BY 1 ORDER BY 1"


def test_query_runs_the_same_sql_over_a_log_or_an_export(exported):
    path, digest, accepted, _, out = exported
    over_log, over_export = query(path, SQL), query(out, SQL)
    assert over_log.table.equals(over_export.table) and over_log.table.num_rows == 2
    assert over_log.digest == over_export.digest == digest and over_log.tx_count == len(accepted)
    early = query(path, "SELECT max(seq) AS s FROM transactions", until_seq=100)
    assert early.table.to_pylist() == [{"s": 100}]


def test_bad_sql_and_a_folder_that_is_no_export_are_one_clear_error(exported, tmp_path):
    path, *_ = exported
    with pytest.raises(ExportError, match="query failed: .*nope") as raised:
        query(path, "SELECT nope FROM fills")
    assert str(path) in str(raised.value)
    with pytest.raises(ExportError, match="not an export folder"):
        query(tmp_path, SQL)


def test_liquidations_are_exported_from_the_demo_session(tmp_path):
    from perpdex.sim.scripted import ScriptedSession

    session = ScriptedSession()
    logged = []
    apply = session.exchange.apply
    session.exchange.apply = lambda tx: (apply(tx), logged.append(tx))[0]  # type: ignore[method-assign]
    session.run()
    write_log(tmp_path / "demo.db", logged)
    result = export(tmp_path / "demo.db", tmp_path / "out")
    liquidations = pl.read_parquet(tmp_path / "out" / "liquidations.parquet")
    expected = replay(tmp_path / "demo.db")
    assert liquidations.height == session.summary()["liquidation_fills"] + sum(
        1 for e in session.events if type(e).__name__ == "Deleveraged") > 0
    assert result.digest == expected.digest
    row = liquidations.filter(pl.col("kind") == "liquidation").row(0, named=True)
    assert row["fill_price_usd"] == row["fill_price_subticks"] / 10 ** _price_exponent(row["market_id"])
    assert row["counterparty_owner"] is not None and row["maker_order_id"] is not None


def _price_exponent(market_id: str) -> int:
    from perpdex.config.markets import load_markets
    from perpdex.core.units import subticks_per_unit_exponent

    params = {m.market_id: m for m in load_markets()}[market_id]
    return subticks_per_unit_exponent(params.atomic_resolution, params.quantum_conversion_exponent)


def test_funding_payments_and_rates_are_exported(tmp_path):
    digest, _ = write_log(tmp_path / "funding.db", funding_flow(), markets_toml=funding_markets_toml())
    result = export(tmp_path / "funding.db", tmp_path / "out")
    assert result.digest == digest == replay(tmp_path / "funding.db").digest
    rates = pl.read_parquet(tmp_path / "out" / "funding_rates.parquet")
    assert rates.height == 3 and rates["funding_rate_8h_ppm"].to_list() == [100, 100, 100]
    assert rates["funding_rate_8h"].to_list() == [0.0001] * 3
    payments = pl.read_parquet(tmp_path / "out" / "funding_payments.parquet")
    assert payments.height == 6
    assert payments["paid_quote_quantums"].sum() == 0  # funding is zero-sum between long and short
    longs = payments.filter(pl.col("size_base_quantums") > 0)
    assert (longs["paid_quote_quantums"] > 0).all() and (longs["paid_usd"] == longs["paid_quote_quantums"] / 1e6).all()


def test_a_forced_trade_is_logged_replayed_and_exported_as_a_fee_free_fill(tmp_path):
    from perpdex.core.state import SubaccountId
    from perpdex.core.tx import Deposit, ForcedTrade, OraclePrice, OracleUpdate

    alice, bob = SubaccountId("alice"), SubaccountId("bob")
    txs = [Deposit(1, alice, 10_000_000_000), Deposit(1, bob, 10_000_000_000),
           OracleUpdate(1, (OraclePrice("BTC-USD", (10_000_000_000,)),)),
           ForcedTrade(2, alice, bob, "BTC-USD", 10_000_000, 10_000_000_000)]  # 0.001 BTC at $100,000
    digest, accepted = write_log(tmp_path / "forced.db", txs)
    assert accepted == txs
    result = export(tmp_path / "forced.db", tmp_path / "out")
    assert result.digest == digest == replay(tmp_path / "forced.db").digest
    fills = pl.read_parquet(tmp_path / "out" / "fills.parquet")
    assert fills.height == 1
    row = fills.row(0, named=True)
    assert (row["taker_owner"], row["maker_owner"], row["quote_quantums"], row["taker_fee_quote_quantums"],
            row["taker_order_id"]) == ("alice", "bob", 100_000_000, 0, None)
    positions = pl.read_parquet(tmp_path / "out" / "positions.parquet").filter(pl.col("is_latest"))
    assert sorted(positions["size_base_quantums"].to_list()) == [-10_000_000, 10_000_000]
