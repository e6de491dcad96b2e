"""`perpdex bench apply`: orders through `Exchange.apply` with margin checks, fees and events on
10,000 cross subaccounts over 5 markets. Transactions are drawn before timing starts."""

from __future__ import annotations

import time

import numpy as np

from perpdex.config.markets import load_markets
from perpdex.core.errors import PerpdexError
from perpdex.core.events import Fill
from perpdex.core.book import OrderBook
from perpdex.core.exchange import Exchange
from perpdex.core.orders import Side, TimeInForce
from perpdex.core.state import SubaccountId
from perpdex.core.tx import CancelOrder, Deposit, OraclePrice, OracleUpdate, PlaceOrder
from perpdex.core.units import QUOTE

MARKET_IDS = ("BTC-USD", "ETH-USD", "SOL-USD", "LINK-USD", "DOGE-USD")
START_PRICE_USD = {"BTC-USD": 100_000, "ETH-USD": 3_000, "SOL-USD": 150, "LINK-USD": 15, "DOGE-USD": 0.2}


def build(subaccounts: int, transactions: int, seed: int):
    """An exchange with funded subaccounts and fresh prices, and the seeded transactions to time:
    45% passive limits within 30 ticks of the index, 38% cancels of one of the trader's latest orders by
    client id (a requote), 14% marketable IOC orders, 3% oracle updates (random walk, ~1 bp each)."""
    rng = np.random.default_rng(seed)
    markets = {m.market_id: m for m in load_markets() if m.market_id in MARKET_IDS}
    ex = Exchange(markets.values())
    ids = [SubaccountId(f"trader{i:05d}") for i in range(subaccounts)]
    for sid in ids:
        ex.apply(Deposit(0, sid, 50_000 * QUOTE))
    tick = {m: markets[m].subticks_per_tick for m in MARKET_IDS}
    step = {m: markets[m].step_base_quantums for m in MARKET_IDS}
    price_ticks = {}
    for m in MARKET_IDS:
        exponent = markets[m].atomic_resolution + 6 - markets[m].quantum_conversion_exponent
        price_ticks[m] = int(round(START_PRICE_USD[m] * 10**exponent / tick[m]))
    ex.apply(OracleUpdate(0, tuple(OraclePrice(m, (price_ticks[m] * tick[m],)) for m in MARKET_IDS)))
    # size in steps so a typical order is worth ~$500-$5,000
    size_steps = {m: max(1, int(2_000 / (price_ticks[m] * tick[m] * step[m] / 10**-markets[m].quantum_conversion_exponent / QUOTE)))
                  for m in MARKET_IDS}
    kind = rng.random(transactions)
    who = rng.integers(0, subaccounts, transactions)
    market_index = rng.integers(0, len(MARKET_IDS), transactions)
    offset = rng.integers(1, 31, transactions)
    is_buy = rng.random(transactions) < 0.5
    size_mult = rng.integers(1, 6, transactions)
    moves = rng.normal(0, 1e-4, transactions)
    txs = []
    client_counter = [0] * subaccounts
    ts_ms = 1
    for k in range(transactions):
        ts_ms += 2
        m = MARKET_IDS[market_index[k]]
        sid_index = int(who[k])
        sid = ids[sid_index]
        side = Side.BUY if is_buy[k] else Side.SELL
        if kind[k] < 0.03:
            price_ticks[m] = max(1, int(round(price_ticks[m] * (1 + moves[k]))))
            txs.append(OracleUpdate(ts_ms, (OraclePrice(m, (price_ticks[m] * tick[m],)),)))
        elif kind[k] < 0.48:
            client_counter[sid_index] += 1
            sign = -1 if side is Side.BUY else 1
            price = (price_ticks[m] + sign * int(offset[k])) * tick[m]
            txs.append(PlaceOrder(ts_ms, sid, m, side, int(size_mult[k]) * size_steps[m] * step[m], price,
                                  client_id=client_counter[sid_index]))
        elif kind[k] < 0.86:
            # makers requote: cancel one of this trader's latest few orders (some are gone already)
            recent = max(1, client_counter[sid_index] - int(rng.integers(0, 4)))
            txs.append(CancelOrder(ts_ms, sid, client_id=recent))
        else:
            sign = 1 if side is Side.BUY else -1
            price = (price_ticks[m] + sign * 40) * tick[m]
            txs.append(PlaceOrder(ts_ms, sid, m, side, int(size_mult[k]) * size_steps[m] * step[m], price,
                                  time_in_force=TimeInForce.IOC))
    return ex, txs


def bare_book_replay(txs: list) -> float:
    """Baseline for the same run: the same orders and cancels on bare `OrderBook`s (matching
    only: no validation, margin, fees, events or order records). Returns ops/s."""
    books = {m: OrderBook(m) for m in MARKET_IDS}
    by_client: dict[tuple, tuple[int, bool, int]] = {}
    next_id = 1
    started = time.perf_counter()
    for tx in txs:
        kind = type(tx)
        if kind is PlaceOrder:
            book = books[tx.market_id]
            is_buy = tx.side is Side.BUY
            remaining = tx.size_base_quantums
            matched = []
            for price, order_id, size in book.iter_crossing(is_buy, tx.price_subticks):
                take = size if size < remaining else remaining
                matched.append((order_id, price, take))
                remaining -= take
                if not remaining:
                    break
            for order_id, price, take in matched:
                book.fill(order_id, not is_buy, price, take)
            if remaining and tx.time_in_force is TimeInForce.GTT:
                book.add(next_id, is_buy, tx.price_subticks, remaining)
                by_client[(tx.subaccount_id, tx.client_id)] = (next_id, is_buy, tx.price_subticks, tx.market_id)
            next_id += 1
        elif kind is CancelOrder:
            entry = by_client.pop((tx.subaccount_id, tx.client_id), None)
            if entry is not None:
                books[entry[3]].cancel(entry[0], entry[1], entry[2])
    return len(txs) / (time.perf_counter() - started)


def run(subaccounts: int = 10_000, transactions: int = 300_000, seed: int = 1) -> dict:
    ex, txs = build(subaccounts, transactions, seed)
    apply = ex.apply
    accepted = rejected = fills = 0
    started = time.perf_counter()
    for tx in txs:
        try:
            events = apply(tx)
        except PerpdexError:
            rejected += 1
            continue
        accepted += 1
        for event in events:
            if type(event) is Fill:
                fills += 1
    elapsed = time.perf_counter() - started
    return {"subaccounts": subaccounts, "markets": len(MARKET_IDS), "transactions": len(txs),
            "accepted": accepted, "rejected": rejected, "fills": fills, "seconds": elapsed,
            "tx_per_s": len(txs) / elapsed, "target_tx_per_s": 100_000,
            "baseline_ops_per_s": bare_book_replay(txs), "digest": ex.digest()}

