"""The report: one self-contained HTML page (plotly inlined, nothing fetched), PNG charts, and
"no events in this run" for sections without data."""

from __future__ import annotations

import json
import re

import pyarrow as pa
import pytest

from perpdex.report import render_folder
from perpdex.report.html import NO_EVENTS, render_report
from perpdex.sim.recorder import TABLES, read_tables
from perpdex.sim.run import run_scenario
from tests.sim.tiny import tiny

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    output = run_scenario(tiny(days=0.04), out)
    return out, output


def _assert_self_contained(page: str) -> None:
    assert "Plotly" in page and len(page) > 1_000_000  # plotly.js itself is inlined
    assert not re.search(r"<script[^>]+src=", page)  # no external scripts
    assert not re.search(r"""src=["']https?://""", page)
    assert not re.search(r"""<link[^>]+href=["']https?://""", page)


def test_the_run_folder_has_everything(run_folder):
    out, output = run_folder
    for name in ("report.html", "summary.json", "tx_log.sqlite", "scenario.toml"):
        assert (out / name).is_file(), name
    for table in TABLES:
        assert (out / "tables" / f"{table}.parquet").is_file(), table
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final_digest"] == output.result.digest
    assert summary["files"]["report"] == "report.html"


def test_report_is_self_contained_and_has_every_section(run_folder):
    out, output = run_folder
    page = (out / "report.html").read_text()
    _assert_self_contained(page)
    for title in ("Index vs book mid", "Funding rate per interval", "Open interest", "Liquidations",
                  "Insurance fund", "Bad debt and ADL events", "PnL per agent type", "Key figures"):
        assert f"<h2>{title}</h2>" in page
    assert output.result.digest in page
    assert NO_EVENTS in page  # funding is not wired in yet


def test_png_charts_are_written(run_folder):
    out, _ = run_folder
    charts = sorted((out / "charts").glob("*.png"))
    assert {p.name for p in charts} >= {"prices.png", "funding.png", "open_interest.png", "liquidations.png",
                                        "insurance_fund.png", "pnl_by_type.png"}
    for chart in charts:
        assert chart.read_bytes()[:8] == PNG_MAGIC and chart.stat().st_size > 5_000


def test_the_folder_renders_again_from_its_files(run_folder, tmp_path):
    out, _ = run_folder
    tables = read_tables(out / "tables")
    assert tables["prices"].num_rows > 0
    paths = render_folder(out)
    assert paths["report"].is_file()


def test_empty_tables_say_no_events_instead_of_failing():
    empty = {name: pa.schema([pa.field(c, k) for c, k in columns]).empty_table() for name, columns in TABLES.items()}
    page = render_report(empty, {"scenario": "empty", "per_market": {}, "pnl_by_type_usd": {}})
    _assert_self_contained(page)
    assert page.count(NO_EVENTS) >= 3  # funding, liquidations, bad debt / ADL


def test_a_run_without_the_rollup_says_so_in_its_rollup_section(run_folder):
    from perpdex.report.html import NO_ROLLUP

    out, _ = run_folder
    page = (out / "report.html").read_text()
    assert "<h2>Rollup: batches, proofs and finality</h2>" in page and NO_ROLLUP in page
    assert (out / "charts" / "rollup.png").read_bytes()[:8] == PNG_MAGIC


def test_the_rollup_section_draws_batches_withdrawals_and_proven_balances(tmp_path):
    output = run_scenario(tiny("rollup.enabled=true", "rollup.batch_max_age_hours=0.1", "rollup.proving_fixed_minutes=3",
                               "withdrawals.per_agent_per_day=20", days=0.03), tmp_path)
    page = (tmp_path / "report.html").read_text()
    for title in ("Each batch: collecting transactions, proving, acceptance on L1",
                  "Proof latency and time to finality per batch", "Withdrawals waiting for their batch to be accepted",
                  "Matched vs proven balances"):
        assert title in page, title
    assert f"{output.summary['rollup']['batches']} batches" in page
    assert (tmp_path / "charts" / "rollup.png").stat().st_size > 5_000
