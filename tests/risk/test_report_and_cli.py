"""The report writes its HTML (plotly embedded), PNGs and JSON; every `risk` subcommand has help, runs
offline on the shipped example, and turns a bad portfolio into one line naming the field (exit 2)."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from perpdex.cli.risk_commands import bench_risk, risk_app
from perpdex.risk.portfolio import load_portfolio
from perpdex.risk.report import RiskOptions, analyze, write_report

SUBCOMMANDS = ["report", "carry", "stress", "liqprice", "var", "joint", "guardrails"]


def cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(risk_app, name="risk")
    bench = typer.Typer()
    bench.command("risk")(bench_risk)
    app.add_typer(bench, name="bench")
    return app


def invoke(*args: str):
    return CliRunner().invoke(cli(), list(args))


def test_the_report_writes_html_png_and_json(tmp_path):
    report = analyze(load_portfolio(), options=RiskOptions(var_paths=5_000, joint_paths=2_000))
    paths = write_report(report, tmp_path / "out")
    page = paths["report"].read_text()
    assert "Plotly" in page and "<script" in page and "Liquidation prices" in page and "Guardrails" in page
    figures = json.loads(paths["figures"].read_text())
    assert {"carry", "funding_windows", "liquidation_surface", "var", "joint_liquidation", "buffer"} <= set(figures)
    assert all("data" in figure for figure in figures.values())
    results = json.loads(paths["results"].read_text())
    assert set(results) >= {"carry", "funding_stress", "liquidation_prices", "var", "joint_liquidation", "guardrails"}
    pngs = sorted((tmp_path / "out" / "charts").glob("*.png"))
    assert len(pngs) == len(figures)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


@pytest.mark.parametrize("command", [[], *[[c] for c in SUBCOMMANDS]], ids=lambda c: " ".join(c) or "risk")
def test_every_risk_command_has_help(command):
    result = invoke("risk", *command, "--help")
    assert result.exit_code == 0 and "Usage" in result.output


@pytest.mark.parametrize("command", [["carry"], ["stress"], ["liqprice"], ["var", "--paths", "2000"],
                                     ["joint", "--paths", "1000"], ["guardrails", "--paths", "1000"]],
                         ids=lambda c: c[0])
def test_each_analysis_runs_offline_on_the_shipped_example_and_prints_json(command):
    result = invoke("risk", *command, "--json")
    assert result.exit_code == 0, result.output
    assert isinstance(json.loads(result.stdout), dict)


def test_risk_report_writes_its_folder(tmp_path):
    result = invoke("risk", "report", "--out", str(tmp_path / "r"), "--paths", "1000", "--var-paths", "2000",
                    "--no-progress")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r" / "report.html").exists() and "REPORT" in result.stdout


@pytest.mark.parametrize(("text", "field"), [
    ('[[positions]]\nmarket = "NOPE-USD"\nsize = 1\nentry_price = 1\n', "positions[0].market"),
    ('cross_collateral_usd = -1\n[[positions]]\nmarket = "BTC-USD"\nsize = 1\nentry_price = 1\n',
     "cross_collateral_usd"),
    ('[[positions]]\nmarket = "BTC-USD"\nentry_price = 1\n', "positions[0].size"),
], ids=["unknown market", "negative collateral", "missing size"])
def test_a_bad_portfolio_is_one_line_naming_the_field_and_exit_2(tmp_path, text, field):
    path = tmp_path / "p.toml"
    path.write_text(text)
    result = invoke("risk", "liqprice", str(path))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines() if result.stderr else result.output.strip().splitlines()
    assert len(lines) == 1 and "risk.bad_portfolio" in lines[0] and field in lines[0]


def test_a_missing_price_file_names_it(tmp_path):
    result = invoke("risk", "var", "--prices", str(tmp_path / "nope.csv"), "--paths", "1000")
    assert result.exit_code == 2 and "nope.csv" in (result.stderr or result.output)


def test_bench_risk_prints_a_result_line():
    result = invoke("bench", "risk", "--paths", "2000", "--json")
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("RESULT bench=risk ok=") and "paths=2000" in last and "steps=120" in last
    assert "assets=10" in last and "baseline_extrapolated_seconds=" in last
