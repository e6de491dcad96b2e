"""Store test fixtures: a mixed transaction flow touching every transaction type, logs built from
it, and a real PostgreSQL server started for the session when its binaries are installed."""

from __future__ import annotations

import glob
import os
import pwd
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from perpdex.core import tx as core_tx
from perpdex.core.errors import PerpdexError
from perpdex.core.orders import ConditionType, OrderType, Side, TimeInForce
from perpdex.core.state import MarginMode, SubaccountId
from perpdex.core.tx import (
    CancelOrder,
    Deposit,
    OraclePrice,
    OracleUpdate,
    PlaceOrder,
    SetMarginMode,
    Transfer,
    Withdraw,
)
from perpdex.core.units import QUOTE
from perpdex.store import DurableExchange

OWNERS = [SubaccountId(name, number) for name in ("ann", "ben", "cat", "dan") for number in (0, 1)]
TICK = {"BTC-USD": 100_000, "ETH-USD": 100_000}  # subticks per tick ($1 and $0.1)
STEP = {"BTC-USD": 1_000_000, "ETH-USD": 1_000_000}  # base quantums per step (0.0001 BTC, 0.001 ETH)
START_TICKS = {"BTC-USD": 100_000, "ETH-USD": 30_000}  # $100,000 and $3,000.0


def mixed_flow(seed: int, count: int, *, start_ts_ms: int = 1_000) -> list:
    """`count` seeded transactions over two markets and eight subaccounts: every tx type, order
    flavours (IOC, FOK, post-only, market, reduce-only, GTT expiry, stop/take-profit), cancels by
    id and client id, oracle walks with a crash. Many are rejected: only accepted ones get logged."""
    rng = random.Random(seed)
    ticks = dict(START_TICKS)
    txs: list = [Deposit(start_ts_ms, owner, 200_000 * QUOTE) for owner in OWNERS]
    txs.append(OracleUpdate(start_ts_ms, tuple(OraclePrice(m, (t * TICK[m],)) for m, t in ticks.items())))
    extra = [cls for cls in (getattr(core_tx, "InsuranceFundDeposit", None), getattr(core_tx, "Liquidate", None))
             if cls is not None]
    ts_ms = start_ts_ms
    order_counter = 0
    for index in range(count):
        ts_ms += rng.randint(0, 900)
        who, other = rng.choice(OWNERS), rng.choice(OWNERS)
        market_id = rng.choice(("BTC-USD", "ETH-USD"))
        kind = rng.random()
        if kind < 0.08:
            move = rng.randint(-60, 60) if index != count // 2 else -ticks[market_id] // 4  # one 25% crash
            ticks[market_id] = max(10, ticks[market_id] + move)
            price = ticks[market_id] * TICK[market_id]
            txs.append(OracleUpdate(ts_ms, (OraclePrice(market_id, (price, price + rng.randint(0, 2) * TICK[market_id])),)))
        elif kind < 0.11:
            txs.append(Deposit(ts_ms, who, rng.randint(1, 5_000) * QUOTE))
        elif kind < 0.13:
            txs.append(Withdraw(ts_ms, who, rng.randint(1, 5_000) * QUOTE))
        elif kind < 0.15:
            txs.append(Transfer(ts_ms, who, other, rng.randint(1, 5_000) * QUOTE))
        elif kind < 0.16:
            txs.append(SetMarginMode(ts_ms, who, MarginMode.ISOLATED, market_id) if rng.random() < 0.5
                       else SetMarginMode(ts_ms, who, MarginMode.CROSS))
        elif kind < 0.26:
            if rng.random() < 0.5:
                txs.append(CancelOrder(ts_ms, who, order_id=rng.randint(1, max(1, order_counter))))
            else:
                txs.append(CancelOrder(ts_ms, who, client_id=rng.randint(0, 6)))
        elif kind < 0.27 and extra:
            cls = rng.choice(extra)
            txs.append(cls(ts_ms, who, rng.randint(1, 100) * QUOTE) if cls.__name__ == "InsuranceFundDeposit"
                       else cls(ts_ms, who))
        else:
            order_counter += 1
            side = rng.choice((Side.BUY, Side.SELL))
            offset = rng.randint(-25, 25)
            price = max(1, ticks[market_id] + offset) * TICK[market_id]
            size = rng.randint(1, 300) * STEP[market_id]
            flavour = rng.randint(0, 11)
            options: dict = {}
            if flavour in (1, 2):
                options["time_in_force"] = TimeInForce.IOC
            elif flavour == 3:
                options["time_in_force"] = TimeInForce.FOK
            elif flavour == 4:
                options["time_in_force"] = TimeInForce.POST_ONLY
            elif flavour == 5:
                options.update(order_type=OrderType.MARKET, time_in_force=TimeInForce.IOC)
                price = None
            elif flavour == 6:
                options["reduce_only"] = True
            elif flavour == 7:
                options["good_til_ts_ms"] = ts_ms + rng.randint(1, 20_000)
            elif flavour in (8, 9):
                options.update(condition=ConditionType.STOP_LOSS if flavour == 8 else ConditionType.TAKE_PROFIT,
                               trigger_price_subticks=max(1, ticks[market_id] - offset) * TICK[market_id])
            elif flavour == 10:
                options["client_id"] = rng.randint(0, 6)
            txs.append(PlaceOrder(ts_ms, who, market_id, side, size, price, **options))
    return txs


def write_log(path, txs: list, **options) -> tuple[str, list]:
    """Apply `txs` through a DurableExchange at `path` (batches of 50); returns (final digest,
    the accepted transactions in log order)."""
    options.setdefault("snapshots", None)
    accepted = []
    with DurableExchange.create(path, **options) as durable:
        for start in range(0, len(txs), 50):
            batch = txs[start:start + 50]
            for tx, result in zip(batch, durable.apply_batch(batch)):
                if not isinstance(result, PerpdexError):
                    accepted.append(tx)
        return durable.exchange.digest(), accepted


@pytest.fixture(scope="session")
def flow() -> list:
    return mixed_flow(7, 1_500)


@pytest.fixture(scope="session")
def log_template(tmp_path_factory, flow):
    """The mixed flow written once through a DurableExchange: (path, digest, accepted txs)."""
    path = tmp_path_factory.mktemp("template") / "run.db"
    digest, accepted = write_log(path, flow)
    assert not Path(f"{path}-wal").exists()  # closed cleanly: the file alone is the whole log
    return path, digest, accepted


@pytest.fixture()
def log_path(tmp_path, log_template):
    """A private copy of the mixed-flow SQLite log: (path, final digest, accepted txs)."""
    template, digest, accepted = log_template
    path = tmp_path / "run.db"
    shutil.copyfile(template, path)
    return path, digest, accepted


# --- a real PostgreSQL server, when installed --------------------------------------------------
def _postgres_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                        key=lambda p: [int(x) for x in p.split("/")[4].split(".") if x.isdigit()])
    return Path(candidates[-1]).parent if candidates else None


@pytest.fixture(scope="session")
def postgres_server():
    """Start PostgreSQL on a unix socket in a temp dir (as user `postgres` when running as root,
    since initdb refuses root); yields a libpq URL prefix. Skips, saying why, when it cannot."""
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed; "
                    "install the postgresql package to run the PostgreSQL store tests")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'psycopg[binary]')")
    run_as: dict = {}
    base = Path(tempfile.mkdtemp(prefix="perpdex-pg-"))
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(base, ignore_errors=True)
            pytest.skip("running as root and there is no `postgres` user to run the server as")
        run_as = {"user": account.pw_uid, "group": account.pw_gid}
        os.chown(base, account.pw_uid, account.pw_gid)
    data, sockets = base / "data", base / "sock"
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([str(bindir / args[0]), *args[1:]], capture_output=True, text=True, env=env,
                              cwd=base, check=check, timeout=120, **run_as)

    try:
        sockets.mkdir()
        if run_as:
            os.chown(sockets, run_as["user"], run_as["group"])
        run("initdb", "-D", str(data), "-U", "perpdex", "--auth=trust", "-E", "UTF8", "--no-sync")
        run("pg_ctl", "-D", str(data), "-l", str(base / "server.log"), "-w", "-t", "60", "-o",
            f"-c listen_addresses='' -c unix_socket_directories='{sockets}' -p 5432", "start")
    except (subprocess.CalledProcessError, OSError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        log = (base / "server.log").read_text() if (base / "server.log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"PostgreSQL is installed but did not start: {detail.strip()} {log[-500:]}")
    try:
        yield f"postgresql://perpdex@/{{db}}?host={sockets}&port=5432"
    finally:
        run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture()
def pg_url(postgres_server, request):
    """A fresh database on the session's server; returns its URL."""
    import psycopg

    name = "t_" + "".join(ch if ch.isalnum() else "_" for ch in request.node.name.lower())[:50]
    admin = postgres_server.format(db="postgres")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return postgres_server.format(db=name)


def funding_markets_toml() -> str:
    """The shipped market file with BTC-USD paying a 100 ppm / 8 h default funding rate (dYdX model)."""
    from perpdex.store.log import default_markets_toml

    text = default_markets_toml()[0]
    marker = 'liquidity_tier = "large-cap"'
    assert marker in text
    return text.replace(marker, marker + "\nfunding = { default_funding_ppm = 100 }", 1)


def funding_flow() -> list:
    """Three hours of a skewed BTC book: bids crowd the index, so the premium is positive and
    longs pay shorts; oracle updates every 5 minutes, FundingTick every 30, and deposits that
    touch (and so settle) every subaccount after each tick. Needs `perpdex.core.tx.FundingTick`."""
    funding_tick = core_tx.FundingTick  # type: ignore[attr-defined]
    btc = TICK["BTC-USD"] * START_TICKS["BTC-USD"]
    long_, short, maker = OWNERS[0], OWNERS[1], OWNERS[2]
    ts_ms = 1_000
    txs: list = [Deposit(ts_ms, owner, 1_000_000 * QUOTE) for owner in (long_, short, maker)]
    txs.append(OracleUpdate(ts_ms, (OraclePrice("BTC-USD", (btc,)),)))
    txs.append(PlaceOrder(ts_ms, short, "BTC-USD", Side.SELL, 1_000 * STEP["BTC-USD"], btc))
    txs.append(PlaceOrder(ts_ms, long_, "BTC-USD", Side.BUY, 1_000 * STEP["BTC-USD"], btc))
    txs.append(PlaceOrder(ts_ms, maker, "BTC-USD", Side.BUY, 5_000 * STEP["BTC-USD"], btc + 100 * TICK["BTC-USD"]))
    txs.append(PlaceOrder(ts_ms, maker, "BTC-USD", Side.SELL, 5_000 * STEP["BTC-USD"], btc + 400 * TICK["BTC-USD"]))
    for step in range(1, 37):
        ts_ms += 5 * 60_000
        txs.append(OracleUpdate(ts_ms, (OraclePrice("BTC-USD", (btc,)),)))
        if step % 6 == 0:
            txs.append(funding_tick(ts_ms))
            txs.extend(Deposit(ts_ms, owner, QUOTE) for owner in (long_, short, maker))
    return txs
