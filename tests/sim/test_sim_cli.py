"""`perpdex sim run|list` and `perpdex bench sim` as typer commands (cli/sim_commands.py), run through
a small app wired the way cli/main.py wires them."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from perpdex.cli.sim_commands import bench_sim, sim_app

app = typer.Typer()
app.add_typer(sim_app, name="sim")
bench = typer.Typer()
bench.command("sim")(bench_sim)
app.add_typer(bench, name="bench")
runner = CliRunner()


def test_sim_list_shows_the_shipped_scenarios():
    result = runner.invoke(app, ["sim", "list"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in ("default", "calm", "funding-squeeze", "cascade", "ftx-2022"):
        assert name in result.output


def test_a_bad_override_is_one_line_naming_the_field_and_exit_code_2(tmp_path):
    result = runner.invoke(app, ["sim", "run", "default", "--set", "agents.noise.count=-5", "--out", str(tmp_path)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "agents.noise.count" in lines[0] and "sim.bad_scenario" in lines[0]
    assert "Traceback" not in result.output


def test_a_bad_scenario_file_is_one_line_naming_the_field(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "bad"\ndays = 1\n[markets.BTC-USD]\nstart_price_usd = -3\n')
    result = runner.invoke(app, ["sim", "run", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "markets.BTC-USD.start_price_usd" in result.stderr and "bad.toml" in result.stderr


def test_sim_run_writes_the_report_and_prints_its_path(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["sim", "run", "calm", "--out", str(out), "--no-progress", "--set", "days=0.01",
                                 "--set", "agents.noise.count=20", "--set", "agents.directional.count=5"],
                           terminal_width=200)
    assert result.exit_code == 0, result.output
    assert f"REPORT {(out / 'report.html').resolve()}" in result.output
    assert (out / "report.html").is_file() and (out / "summary.json").is_file()


def test_bench_sim_prints_a_result_line(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text('name = "small"\ndays = 0.01\nstep_seconds = 20\n[markets.BTC-USD]\nstart_price_usd = 60000\n'
                    '[agents.noise]\ncount = 10\n[agents.directional]\ncount = 3\n')
    result = runner.invoke(app, ["bench", "sim", "--scenario", str(path), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output[: result.output.rindex("}") + 1])
    assert payload["orders"] > 0 and payload["orders_per_s"] > 0 and payload["events_per_s"] > 0
    assert "RESULT bench=sim ok=false" in result.output  # a tiny run is far from the targets
