"""Crash safety for real: a child process applies transactions to a durable log and is killed with
SIGKILL at random moments (mid-apply, mid-commit, mid-snapshot); after every kill, recovery from
snapshots + tail reaches the digest of a clean replay of the surviving log, every transaction the
child acknowledged is there (same bytes), and none is there twice."""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest

from perpdex.core.exchange import Exchange
from perpdex.store import DurableExchange, open_log, replay

CHILD = Path(__file__).with_name("crash_child.py")
KILLS = 55
BUDGET_S = 55.0


def _read_lines(stream, sink: list[str]) -> None:
    sink.extend(stream)  # until the pipe closes (the child is dead)


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_no_acknowledged_transaction(tmp_path):
    path = tmp_path / "crash.db"
    rng = random.Random(20240521)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    acknowledged: dict[int, int] = {}  # seq -> crc32 of the body the child reported
    clean: Exchange | None = None  # a genesis replay of the surviving log, kept up incrementally
    clean_bodies: list[str] = []
    started = time.monotonic()
    kills = 0
    while kills < KILLS:
        assert time.monotonic() - started < BUDGET_S, f"only {kills} kills in {BUDGET_S} s"
        child = subprocess.Popen([sys.executable, str(CHILD), str(path), str(kills)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=env)
        lines: list[str] = []
        ready = child.stdout.readline()
        assert ready.startswith("READY"), (ready, child.stderr.read() if child.poll() is not None else "")
        reader = threading.Thread(target=_read_lines, args=(child.stdout, lines), daemon=True)
        reader.start()
        time.sleep(rng.uniform(0.005, 0.25))
        child.send_signal(signal.SIGKILL)
        child.wait()
        reader.join(timeout=5)
        assert child.returncode == -signal.SIGKILL, child.stderr.read()
        child.stderr.close()
        kills += 1
        for line in lines:
            if line.endswith("\n") and line.startswith("ACK "):  # a line cut by the kill was never sent
                _, seq, crc = line.split()
                acknowledged[int(seq)] = int(crc)

        with open_log(path) as log:
            rows = [row for batch in log.rows() for row in batch]
            markets = log.markets()
        # the surviving log: contiguous, strictly increasing time (nothing applied twice), and it
        # only ever grows: rows seen after earlier kills are still there, byte for byte
        assert [row[0] for row in rows] == list(range(1, len(rows) + 1))
        assert all(a[1] < b[1] for a, b in itertools.pairwise(rows))
        assert [row[4] for row in rows[:len(clean_bodies)]] == clean_bodies
        # every acknowledged transaction is present, with the bytes the child reported
        assert max(acknowledged, default=0) <= len(rows)
        for seq, crc in acknowledged.items():
            assert zlib.crc32(rows[seq - 1][4].encode()) == crc, f"acknowledged seq {seq} differs"
        # clean replay of the surviving log (genesis, no snapshots), extended by the new rows
        if clean is None:
            clean = Exchange(markets)
        with open_log(path) as log:
            for _, tx in log.records(len(clean_bodies) + 1):
                clean.apply(tx)
        clean_bodies = [row[4] for row in rows]
        # recovery as a restarted exchange does it: newest good snapshot + tail
        recovered = replay(path, snapshots=True)
        assert recovered.last_seq == len(rows)
        assert recovered.digest == clean.digest(), f"kill {kills}: recovery from seq {recovered.start_seq}"
    assert len(acknowledged) > 500 and kills >= 50
    with DurableExchange.open(path) as durable:  # and the log is still a working exchange
        assert durable.exchange.digest() == clean.digest()
