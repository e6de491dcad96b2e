"""The store commands as a user runs them: replay, export and query print the digest, the
transaction count and the time; bad input is one line naming the file and seq, exit code 2."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest
import typer

from perpdex.cli import store_commands
from perpdex.store import replay

STORE = [sys.executable, "-m", "perpdex.cli.store_commands"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*STORE, *map(str, args)], capture_output=True, text=True, timeout=120, check=False)


def test_replay_prints_digest_count_and_time(log_path):
    path, digest, accepted = log_path
    result = run("replay", path)
    assert result.returncode == 0, result.stderr
    assert f"state digest {digest}" in result.stdout
    assert f"transactions {len(accepted):,}" in result.stdout and " s (" in result.stdout
    until = run("replay", path, "--until", 10, "--json")
    summary = json.loads(until.stdout)
    assert summary["last_seq"] == 10 and summary["digest"] == replay(path, until_seq=10).digest


def test_replay_writes_and_then_uses_snapshots(log_path):
    path, digest, _ = log_path
    first = run("replay", path, "--snapshot-every", 500, "--json")
    assert json.loads(first.stdout)["digest"] == digest
    second = json.loads(run("replay", path, "--json").stdout)
    assert second["from_snapshot_seq"] == 1000 and second["digest"] == digest
    verified = json.loads(run("replay", path, "--no-snapshots", "--verify", "--json").stdout)
    assert verified["from_snapshot_seq"] == 0 and verified["checkpoints_verified"] == 2


def test_export_and_query(log_path, tmp_path):
    path, digest, _ = log_path
    exported = run("export", path, "--out", tmp_path / "out")
    assert exported.returncode == 0, exported.stderr
    assert "fills" in exported.stdout and f"state digest {digest}" in exported.stdout
    queried = run("query", tmp_path / "out", "SELECT count(*) AS n FROM fills", "--format", "json")
    assert queried.returncode == 0, queried.stderr
    assert json.loads(queried.stdout)[0]["n"] > 0
    assert f"state digest {digest}" in queried.stderr and "transactions" in queried.stderr
    table = run("query", path, "SELECT market_id, count(*) AS n FROM fills GROUP BY 1 ORDER BY 1")
    assert "BTC-USD" in table.stdout and "ETH-USD" in table.stdout and f"state digest {digest}" in table.stderr


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_a_damaged_row_is_one_line_naming_file_and_seq(log_path):
    path, _, _ = log_path
    connection = sqlite3.connect(path)
    connection.execute("UPDATE txlog SET body = replace(body, '[', '{') WHERE seq = 42")
    connection.commit()
    connection.close()
    before = path.read_bytes()
    for command in (["replay", path], ["export", path, "--out", path.parent / "out"], ["query", path, "SELECT 1"]):
        line = _one_error_line(run(*command))
        assert f"{path}: seq 42:" in line and "checksum mismatch" in line
    assert path.read_bytes() == before  # nothing overwritten
    assert not (path.parent / "out").exists()


def test_a_newer_log_version_is_one_line_and_exit_code_2(log_path):
    path, _, _ = log_path
    connection = sqlite3.connect(path)
    connection.execute("UPDATE txlog SET version = 9 WHERE seq = 7")
    connection.commit()
    connection.close()
    line = _one_error_line(run("replay", path))
    assert "store.corrupt_log" in line and f"{path}: seq 7:" in line  # the edit broke the checksum first
    connection = sqlite3.connect(path)
    connection.execute("UPDATE meta SET value = '99' WHERE key = 'format_version'")
    connection.commit()
    connection.close()
    line = _one_error_line(run("replay", path))
    assert "store.newer_version" in line and str(path) in line and "format 99" in line


@pytest.mark.parametrize("args, expected", [
    (["replay", "{tmp}/missing.db"], "no such log file"),
    (["replay", "{tmp}/text.db"], "not a perpdex log"),
    (["replay", "{log}", "--until", "999999"], "seq 999999: --until 999999 is outside the log"),
    (["query", "{log}", "SELECT nope FROM fills"], "query failed"),
], ids=["a missing log", "a file that is not a log", "a seq past the end", "bad SQL"])
def test_bad_input_is_one_line(log_path, tmp_path, args, expected):
    path, _, _ = log_path
    (tmp_path / "text.db").write_text("hello\n")
    line = _one_error_line(run(*(a.format(tmp=tmp_path, log=path) for a in args)))
    assert expected in line


def test_register_adds_the_commands_to_an_app():
    app, bench = typer.Typer(), typer.Typer()
    store_commands.register(app, bench)
    assert {c.name for c in app.registered_commands} == {"replay", "export", "query"}
    assert {c.name for c in bench.registered_commands} == {"store"}
    help_text = run("replay", "--help")
    assert help_text.returncode == 0 and "--until" in help_text.stdout
