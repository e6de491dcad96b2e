"""The `perpdex` command line as a user runs it: help everywhere, one-line errors with exit 2,
the demo writing its results, and each benchmark's RESULT line (on small sizes)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PERPDEX = [sys.executable, "-m", "perpdex.cli.main"]


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*PERPDEX, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("command", [[], ["demo"], ["markets"], ["liqmap"], ["replay"], ["export"], ["query"],
                                     ["bench"], ["bench", "book"], ["bench", "apply"], ["bench", "margin"],
                                     ["bench", "liquidation"], ["bench", "store"], ["bench", "sim"], ["sim"],
                                     ["sim", "run"], ["sim", "list"], ["funding"], ["funding", "explain"],
                                     ["funding", "compare"], ["liquidation"], ["liquidation", "compare"],
                                     ["rollup"], ["rollup", "verify"], ["rollup", "exit"], ["rollup", "escape-drill"],
                                     ["bench", "rollup"], ["risk"], ["risk", "report"], ["bench", "risk"]],
                         ids=lambda c: " ".join(c) or "top level")
def test_every_command_has_help(command):
    result = run(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_bad_market_file_is_one_line_and_exit_code_2(tmp_path):
    bad = tmp_path / "markets.toml"
    bad.write_text("[[markets]]\nmarket_id = 'BTC-USD'\n")
    result = run("markets", "--file", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "market.bad_file" in lines[0] and "liquidity_tiers" in lines[0]


def test_missing_market_file_names_the_file(tmp_path):
    result = run("markets", "--file", str(tmp_path / "nope.toml"))
    assert result.returncode == 2 and "nope.toml" in result.stderr and "Traceback" not in result.stderr


def test_unknown_option_is_a_usage_error_with_exit_code_2():
    result = run("bench", "book", "--no-such-option")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_demo_writes_its_results_and_says_where(tmp_path):
    result = run("demo", "--out", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    assert str(tmp_path / "demo") in result.stdout.replace("\n", "")
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["fills"] > 0 and summary["liquidation_fills"] > 0
    assert summary["liquidated_subaccounts"] == ["alice/0", "bob/1"]  # cross alice, isolated bob; not bob/0
    assert summary["liquidatable_subaccounts"] == []  # the step left nobody below maintenance
    assert (tmp_path / "demo" / "events.jsonl").read_text().count("\n") > 100


@pytest.mark.parametrize("args", [["book", "--ops", "20000"], ["apply", "--transactions", "3000", "--subaccounts", "200"],
                                  ["margin", "--accounts", "5000"]], ids=["book", "apply", "margin"])
def test_bench_json_and_result_line(args):
    result = run("bench", *args, "--json")
    assert result.returncode == 0, result.stderr
    body, result_line = result.stdout.rsplit("\n", 2)[0], result.stdout.strip().splitlines()[-1]
    assert result_line.startswith(f"RESULT bench={args[0]} ")
    assert isinstance(json.loads(body), dict)


def test_liqmap_writes_an_exact_table_and_a_chart(tmp_path):
    result = run("liqmap", "--market", "ETH-USD", "--step-pct", "10", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "liqmap.json").read_text())
    assert [r["move_pct"] for r in rows] == [-30, -20, -10, 0, 10, 20, 30]
    assert rows[3]["first_round_notional_usd"] == 0  # no move, nothing liquidated
    assert rows[0]["first_round_notional_usd"] + rows[0]["deleveraged_notional_usd"] > 0  # a crash liquidates
    assert (tmp_path / "liqmap.png").stat().st_size > 10_000
    assert run("liqmap", "--market", "NOPE-USD", "--out", str(tmp_path)).returncode == 2
