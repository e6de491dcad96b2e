"""A plan: every change one transaction step will make, computed by a handler without writing.
`Exchange` commits a plan whole; a handler that raises leaves no plan and so no change."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from perpdex.core.orders import CancelReason, Order, OrderStatus

if TYPE_CHECKING:
    from perpdex.core.events import Event
    from perpdex.core.state import Subaccount, SubaccountId


class Plan:
    """Changes to commit, in the order `Exchange._commit` applies them.

    - `subaccounts`: new versions of subaccounts (copies the handler edited).
    - `maker_fills`: (resting order, fill size) to take off the book.
    - `finished`: (order, terminal status, reason) for resting or untriggered orders that end.
    - `placed`: the order this step placed or triggered, with its status and remaining size
      after matching (`placed_rests` when the remainder goes on the book).
    """

    __slots__ = ("subaccounts", "events", "fees_delta_quote_quantums", "insurance_delta_quote_quantums",
                 "funding_dust_ppm", "funding_updates", "liquidation_cooldowns", "socialized_loss_delta",
                 "deposited_delta", "withdrawn_delta",
                 "open_interest", "oracle_prices", "maker_fills", "finished", "placed", "placed_status",
                 "placed_remaining", "placed_rests")

    def __init__(self) -> None:
        self.subaccounts: dict[SubaccountId, Subaccount] = {}
        self.events: list[Event] = []
        self.fees_delta_quote_quantums = 0
        self.insurance_delta_quote_quantums = 0
        self.funding_dust_ppm = 0  # funding rounding kept by the exchange (settlement floors), ppm
        self.funding_updates: list[tuple[str, int, Any, int]] = []  # (market, index, model state, start ts)
        self.liquidation_cooldowns: dict[SubaccountId, int] = {}  # partial-liquidation times (hyperliquid policy)
        self.socialized_loss_delta = 0  # paradex policy: loss made whole (+) or repaid by haircuts (-)
        self.deposited_delta: dict[int, int] = {}
        self.withdrawn_delta: dict[int, int] = {}
        self.open_interest: dict[str, int] = {}
        self.oracle_prices: list[tuple[str, int, int]] = []  # (market, price subticks, ts_ms)
        self.maker_fills: list[tuple[Order, int]] = []
        self.finished: list[tuple[Order, OrderStatus, CancelReason | None]] = []
        self.placed: Order | None = None
        self.placed_status: OrderStatus | None = None
        self.placed_remaining = 0
        self.placed_rests = False
