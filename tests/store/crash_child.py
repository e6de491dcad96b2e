"""Child process of the crash test: recover a DurableExchange, then apply transactions forever,
printing `ACK <seq> <crc32 of the body>` for each one only after `apply` / `apply_batch` returned
(so after it was durable). The parent kills it with SIGKILL at random moments."""

from __future__ import annotations

import random
import sys
import zlib

from perpdex.core.errors import PerpdexError
from perpdex.core.orders import Side, TimeInForce
from perpdex.core.state import SubaccountId
from perpdex.core.tx import (
    CancelOrder,
    Deposit,
    OraclePrice,
    OracleUpdate,
    PlaceOrder,
    Transfer,
    Withdraw,
)
from perpdex.core.units import QUOTE
from perpdex.store import DurableExchange
from perpdex.store.codec import DEFAULT_CODEC

OWNERS = [SubaccountId(f"k{i}") for i in range(6)]
BTC_TICK, BTC_STEP = 100_000, 1_000_000


def next_tx(rng: random.Random, ts_ms: int, seq: int):
    if seq < len(OWNERS):
        return Deposit(ts_ms, OWNERS[seq], 1_000_000 * QUOTE)
    kind = rng.random()
    who, other = rng.choice(OWNERS), rng.choice(OWNERS)
    price_ticks = 100_000 + rng.randint(-30, 30)
    if kind < 0.1 or seq == len(OWNERS):
        return OracleUpdate(ts_ms, (OraclePrice("BTC-USD", (price_ticks * BTC_TICK,)),))
    if kind < 0.15:
        return Transfer(ts_ms, who, other, rng.randint(1, 100) * QUOTE)
    if kind < 0.2:
        return Withdraw(ts_ms, who, rng.randint(1, 100) * QUOTE)
    if kind < 0.35:
        return CancelOrder(ts_ms, who, order_id=rng.randint(1, seq))
    tif = TimeInForce.IOC if rng.random() < 0.3 else TimeInForce.GTT
    return PlaceOrder(ts_ms, who, "BTC-USD", rng.choice((Side.BUY, Side.SELL)), rng.randint(1, 50) * BTC_STEP,
                      (price_ticks + rng.randint(-5, 5)) * BTC_TICK, time_in_force=tif)


def main(path: str, seed: int) -> None:
    durable = DurableExchange.open_or_create(path, snapshot_every=150)
    out = sys.stdout
    out.write(f"READY {durable.last_seq}\n")
    out.flush()
    rng = random.Random(seed * 1_000_003 + durable.last_seq)
    ts_ms = durable.exchange.last_ts_ms
    while True:
        if rng.random() < 0.7:
            ts_ms += 1  # strictly increasing: a tx logged twice would show as a repeated ts_ms
            tx = next_tx(rng, ts_ms, durable.last_seq)
            try:
                durable.apply(tx)
            except PerpdexError:
                continue
            out.write(f"ACK {durable.last_seq} {zlib.crc32(DEFAULT_CODEC.encode(tx).body.encode())}\n")
        else:
            batch = []
            for _ in range(rng.randint(2, 30)):
                ts_ms += 1
                batch.append(next_tx(rng, ts_ms, durable.last_seq + len(batch)))
            seq = durable.last_seq
            lines = []
            for tx, result in zip(batch, durable.apply_batch(batch)):
                if not isinstance(result, PerpdexError):
                    seq += 1
                    lines.append(f"ACK {seq} {zlib.crc32(DEFAULT_CODEC.encode(tx).body.encode())}\n")
            out.write("".join(lines))
        out.flush()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
