"""`perpdex bench book`: one market's book alone under a seeded add/cancel/sweep workload.
The workload is drawn before timing starts; the timed loop only dispatches to the book."""

from __future__ import annotations

import hashlib
import time
from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass

import numpy as np

from perpdex.core.book import OrderBook

ADD, CANCEL, SWEEP = 0, 1, 2
TICK_SUBTICKS = 100_000  # BTC-USD: $1 tick (dYdX v4 subticks_per_tick)
STEP_BASE_QUANTUMS = 1_000_000  # 0.0001 BTC
TARGET_RESTING = 1_500  # resting orders the sweep sizing steers the book towards


@dataclass(frozen=True, slots=True)
class BookWorkload:
    """Pre-drawn choices per operation, as plain lists so the timed loop does no numpy indexing.

    `price_ticks` is the add price in ticks (mid minus the offset for a buy, plus it for a
    sell); `arg` is the add size in base quantums, the sweep depth in levels, or the cancel pick
    in [0, 1) scaled by 2**32.
    """

    kinds: list[int]
    is_buy: list[bool]
    price_ticks: list[int]
    arg: list[int]


def make_workload(op_count: int, seed: int) -> BookWorkload:
    """55% passive limit adds (90% within 20 ticks of a slowly drifting mid, a tail to 200 ticks),
    35% cancels of random live orders, 10% marketable orders sweeping 1-5 levels."""
    rng = np.random.default_rng(seed)
    u = rng.random(op_count)
    kinds = np.where(u < 0.55, ADD, np.where(u < 0.90, CANCEL, SWEEP))
    is_buy = rng.random(op_count) < 0.5
    mid = 100_000 + rng.choice([-1, 0, 1], size=op_count, p=[0.005, 0.99, 0.005]).cumsum()
    near = np.minimum(rng.geometric(0.12, size=op_count), 20)
    far = rng.integers(21, 201, size=op_count)
    offset = np.where(rng.random(op_count) < 0.9, near, far)
    price_ticks = np.where(is_buy, mid - offset, mid + offset)
    size = rng.integers(1, 11, size=op_count) * STEP_BASE_QUANTUMS
    depth = rng.integers(1, 6, size=op_count)
    pick = rng.integers(0, 2**32, size=op_count)
    arg = np.where(kinds == ADD, size, np.where(kinds == SWEEP, depth, pick))
    return BookWorkload(kinds.tolist(), is_buy.tolist(), price_ticks.tolist(), arg.tolist())


class DequeBook:
    """Baseline for the same run: the plain pure-Python book (a FIFO deque per level, sorted
    price lists, cancel by a linear scan of its level). Same interface and checksum as OrderBook."""

    def __init__(self) -> None:
        self.bids: dict[int, deque] = {}
        self.asks: dict[int, deque] = {}
        self.bid_prices: list[int] = []
        self.ask_prices_negated: list[int] = []
        self.entries: dict[int, list] = {}  # order_id -> [order_id, remaining]
        self.order_count = 0

    def add(self, order_id: int, is_buy: bool, price: int, size: int) -> None:
        levels = self.bids if is_buy else self.asks
        level = levels.get(price)
        if level is None:
            level = levels[price] = deque()
            insort(self.bid_prices, price) if is_buy else insort(self.ask_prices_negated, -price)
        entry = [order_id, size]
        level.append(entry)
        self.entries[order_id] = entry
        self.order_count += 1

    def _drop_level_if_empty(self, is_buy: bool, price: int) -> None:
        levels = self.bids if is_buy else self.asks
        if not levels[price]:
            del levels[price]
            prices, key = (self.bid_prices, price) if is_buy else (self.ask_prices_negated, -price)
            del prices[bisect_left(prices, key)]

    def cancel(self, order_id: int, is_buy: bool, price: int) -> bool:
        entry = self.entries.pop(order_id, None)
        if entry is None:
            return False
        (self.bids if is_buy else self.asks)[price].remove(entry)
        self.order_count -= 1
        self._drop_level_if_empty(is_buy, price)
        return True

    def iter_crossing(self, taker_is_buy: bool, limit: int):
        if taker_is_buy:
            for key in reversed(self.ask_prices_negated):
                if -key > limit:
                    return
                for order_id, remaining in self.asks[-key]:
                    yield -key, order_id, remaining
        else:
            for price in reversed(self.bid_prices):
                if price < limit:
                    return
                for order_id, remaining in self.bids[price]:
                    yield price, order_id, remaining

    def fill(self, order_id: int, is_buy: bool, price: int, quantity: int) -> int:
        entry = self.entries[order_id]
        entry[1] -= quantity
        if not entry[1]:
            del self.entries[order_id]
            (self.bids if is_buy else self.asks)[price].remove(entry)
            self.order_count -= 1
            self._drop_level_if_empty(is_buy, price)
        return entry[1]

    def checksum(self) -> str:
        digest = hashlib.blake2b(digest_size=16)
        for is_buy, prices in ((True, reversed(self.bid_prices)), (False, reversed(self.ask_prices_negated))):
            for key in prices:
                price = key if is_buy else -key
                for order_id, remaining in (self.bids if is_buy else self.asks)[price]:
                    digest.update(b"%d:%d:%d:%d;" % (is_buy, price, order_id, remaining))
        return digest.hexdigest()


def run(op_count: int = 1_000_000, seed: int = 7) -> dict:
    """The book benchmark: OrderBook, then the deque baseline on the same workload, same run."""
    work = make_workload(op_count, seed)
    result = run_workload(work)
    baseline = run_workload(work, DequeBook())
    if baseline["checksum"] != result["checksum"]:
        raise AssertionError("baseline book ended in a different state: the workload is not deterministic")
    result["baseline_ops_per_s"] = baseline["ops_per_s"]
    result["ratio_to_baseline"] = result["ops_per_s"] / baseline["ops_per_s"]
    result["target_ops_per_s"] = 1_000_000
    return result


def run_workload(work: BookWorkload, book=None) -> dict:
    """Drive one book through the workload; returns ops/s, fills and the final book checksum.

    Adds that would cross are re-priced one tick behind the opposite best, so they stay
    passive. A sweep is a marketable limit at the price of the 1st-5th opposite level, sized at
    about that many average orders times (resting / TARGET_RESTING): adds minus cancels leave
    room for about two fills a sweep, and the scaling holds the book near the target. Cancel
    targets are drawn from a list of placed orders; ones already filled drop out when drawn.
    """
    book = OrderBook("BTC-USD") if book is None else book
    live: list[tuple[int, bool, int]] = []
    fills = 0
    samples = []
    bid_prices, ask_neg = book.bid_prices, book.ask_prices_negated
    add, cancel, iter_crossing, fill = book.add, book.cancel, book.iter_crossing, book.fill
    append, pop = live.append, live.pop
    tick = TICK_SUBTICKS
    sweep_scale = STEP_BASE_QUANTUMS * 2 * 11 // 2  # ~one average order (5.5 steps) per level, x2/3 below
    started = time.perf_counter()
    for order_id, (kind, is_buy, price_ticks, arg) in enumerate(
            zip(work.kinds, work.is_buy, work.price_ticks, work.arg), 1):
        if kind == 0:
            price = price_ticks * tick
            if is_buy:
                if ask_neg and price >= -ask_neg[-1]:
                    price = -ask_neg[-1] - tick
            elif bid_prices and price <= bid_prices[-1]:
                price = bid_prices[-1] + tick
            add(order_id, is_buy, price, arg)
            append((order_id, is_buy, price))
        elif kind == 1:
            while live:
                index = (arg * len(live)) >> 32
                entry = live[index]
                live[index] = live[-1]
                pop()
                if cancel(*entry):
                    break
        else:
            prices = ask_neg if is_buy else bid_prices
            if not prices:
                continue
            depth = arg if arg <= len(prices) else len(prices)
            limit = -prices[-depth] if is_buy else prices[-depth]
            wanted = depth * sweep_scale * book.order_count // (3 * TARGET_RESTING) or 1
            matched = []
            for price, maker_id, qty in iter_crossing(is_buy, limit):
                take = qty if qty < wanted else wanted
                matched.append((maker_id, price, take))
                wanted -= take
                if not wanted:
                    break
            maker_is_buy = not is_buy
            for maker_id, price, take in matched:
                fill(maker_id, maker_is_buy, price, take)
            fills += len(matched)
        if not order_id & 0x3FFF:
            samples.append(book.order_count)
    elapsed = time.perf_counter() - started
    steady = samples[len(samples) // 2:] or [book.order_count]
    return {"ops": len(work.kinds), "seconds": elapsed, "ops_per_s": len(work.kinds) / elapsed,
            "fills": fills, "resting_final": book.order_count,
            "resting_mean_second_half": sum(steady) / len(steady), "checksum": book.checksum()}

