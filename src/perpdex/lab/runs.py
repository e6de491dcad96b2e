"""A recorded run as the lab reads it: its markets, Exchange options and transactions, and a
replay of that fixed flow on another exchange that counts what the other mechanism rejects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from perpdex.core.errors import PerpdexError
from perpdex.core.events import Event
from perpdex.core.exchange import Exchange
from perpdex.core.params import MarketParams
from perpdex.core.tx import Tx
from perpdex.store import open_log


def load_run(log_path: str | Path) -> tuple[list[MarketParams], dict, list[Tx]]:
    """(markets, Exchange keyword options, transactions) of a run's log."""
    with open_log(log_path) as log:
        return log.markets(), log.exchange_kwargs(), [tx for _, tx in log.records()]


class FlowReplay:
    """Iterate the events of `txs` applied to `exchange`; transactions the exchange rejects (the
    same flow can fail under another mechanism: different balances) are counted in `rejected`."""

    def __init__(self, exchange: Exchange, txs: list[Tx]) -> None:
        self.exchange = exchange
        self.txs = txs
        self.rejected = 0

    def __iter__(self) -> Iterator[Event]:
        apply = self.exchange.apply
        for tx in self.txs:
            try:
                events = apply(tx)
            except PerpdexError:
                self.rejected += 1
                continue
            yield from events
