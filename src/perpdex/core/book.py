"""One market's limit order book: price levels in price-time priority, O(1) cancel.
Matching is a read-only walk (`iter_crossing`) followed by committed fills (`fill`)."""

from __future__ import annotations

import hashlib
from bisect import bisect_left, insort
from collections.abc import Iterator


class OrderBook:
    """Resting quantities of one market, keyed by order id.

    A level is an insertion-ordered dict `order_id -> remaining_base_quantums`: dict order is
    FIFO time priority and deleting any order is O(1). Each side keeps its level prices in a
    sorted list whose last element is the best price (asks are stored negated), so the levels a
    sweep consumes come off the end in O(1). The book holds only ids and sizes, no objects, so
    an add or a cancel allocates nothing but a dict slot; the exchange keeps the `Order`
    records and the book's sizes equal to their `remaining_base_quantums` (checked by
    `core.invariants`). The book decides nothing: fills, fees and margin belong to the exchange.
    """

    __slots__ = ("market_id", "bids", "asks", "bid_prices", "ask_prices_negated", "order_count")

    def __init__(self, market_id: str) -> None:
        self.market_id = market_id
        self.bids: dict[int, dict[int, int]] = {}
        self.asks: dict[int, dict[int, int]] = {}
        self.bid_prices: list[int] = []  # ascending; best bid last
        self.ask_prices_negated: list[int] = []  # ascending of -price; best ask last
        self.order_count = 0

    # --- mutation (Exchange commits and the book benchmark only) -------------------------
    def add(self, order_id: int, is_buy: bool, price_subticks: int, size_base_quantums: int) -> None:
        """Rest an order at the back of its price level."""
        if is_buy:
            level = self.bids.get(price_subticks)
            if level is None:
                level = self.bids[price_subticks] = {}
                insort(self.bid_prices, price_subticks)
        else:
            level = self.asks.get(price_subticks)
            if level is None:
                level = self.asks[price_subticks] = {}
                insort(self.ask_prices_negated, -price_subticks)
        level[order_id] = size_base_quantums
        self.order_count += 1

    def remove(self, order_id: int, is_buy: bool, price_subticks: int) -> None:
        """Take a resting order off the book (cancel, expiry or fully filled)."""
        if is_buy:
            levels, prices, key = self.bids, self.bid_prices, price_subticks
        else:
            levels, prices, key = self.asks, self.ask_prices_negated, -price_subticks
        level = levels[price_subticks]
        del level[order_id]
        self.order_count -= 1
        if not level:
            del levels[price_subticks]
            if prices[-1] == key:
                prices.pop()
            else:
                del prices[bisect_left(prices, key)]

    def cancel(self, order_id: int, is_buy: bool, price_subticks: int) -> bool:
        """Remove an order if it rests on the book; False when it does not (filled or unknown)."""
        if is_buy:
            levels, prices, key = self.bids, self.bid_prices, price_subticks
        else:
            levels, prices, key = self.asks, self.ask_prices_negated, -price_subticks
        try:
            level = levels[price_subticks]
            del level[order_id]
        except KeyError:
            return False
        self.order_count -= 1
        if not level:
            del levels[price_subticks]
            if prices[-1] == key:
                prices.pop()
            else:
                del prices[bisect_left(prices, key)]
        return True

    def fill(self, order_id: int, is_buy: bool, price_subticks: int, fill_base_quantums: int) -> int:
        """Reduce a resting order by a fill, removing it when nothing remains; returns what remains."""
        level = (self.bids if is_buy else self.asks)[price_subticks]
        remaining = level[order_id] - fill_base_quantums
        if remaining:
            level[order_id] = remaining
        else:
            self.remove(order_id, is_buy, price_subticks)
        return remaining

    # --- reads ---------------------------------------------------------------------------
    def iter_crossing(self, taker_is_buy: bool, limit_price_subticks: int) -> Iterator[tuple[int, int, int]]:
        """(price_subticks, order_id, remaining) of the resting orders a taker at this limit
        would meet: best price first, oldest first within a price. Read-only: do not mutate the
        book while iterating."""
        if taker_is_buy:
            levels, prices = self.asks, self.ask_prices_negated
            for index in range(len(prices) - 1, -1, -1):
                price = -prices[index]
                if price > limit_price_subticks:
                    return
                for order_id, remaining in levels[price].items():
                    yield price, order_id, remaining
        else:
            levels, prices = self.bids, self.bid_prices
            for index in range(len(prices) - 1, -1, -1):
                price = prices[index]
                if price < limit_price_subticks:
                    return
                for order_id, remaining in levels[price].items():
                    yield price, order_id, remaining

    def remaining(self, order_id: int, is_buy: bool, price_subticks: int) -> int | None:
        """Resting size of an order, or None when it is not on the book."""
        level = (self.bids if is_buy else self.asks).get(price_subticks)
        return None if level is None else level.get(order_id)

    def best_bid(self) -> int | None:
        return self.bid_prices[-1] if self.bid_prices else None

    def best_ask(self) -> int | None:
        return -self.ask_prices_negated[-1] if self.ask_prices_negated else None

    def crosses(self, taker_is_buy: bool, limit_price_subticks: int) -> bool:
        """Whether an order at this price would meet a resting order now."""
        if taker_is_buy:
            return bool(self.ask_prices_negated) and -self.ask_prices_negated[-1] <= limit_price_subticks
        return bool(self.bid_prices) and self.bid_prices[-1] >= limit_price_subticks

    def levels(self, is_buy: bool) -> Iterator[tuple[int, dict[int, int]]]:
        """(price_subticks, {order_id: remaining}) per level of one side, best price first."""
        if is_buy:
            for price in reversed(self.bid_prices):
                yield price, self.bids[price]
        else:
            for key in reversed(self.ask_prices_negated):
                yield -key, self.asks[-key]

    def depth(self, is_buy: bool, max_levels: int | None = None) -> list[tuple[int, int]]:
        """Aggregated (price_subticks, size_base_quantums) per level, best first."""
        out: list[tuple[int, int]] = []
        for price, level in self.levels(is_buy):
            if max_levels is not None and len(out) >= max_levels:
                break
            out.append((price, sum(level.values())))
        return out

    def checksum(self) -> str:
        """Hash of every resting order (side, price, id, remaining) in priority order."""
        digest = hashlib.blake2b(digest_size=16)
        for is_buy in (True, False):
            for price, level in self.levels(is_buy):
                for order_id, remaining in level.items():
                    digest.update(b"%d:%d:%d:%d;" % (is_buy, price, order_id, remaining))
        return digest.hexdigest()
