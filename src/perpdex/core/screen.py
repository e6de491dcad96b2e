"""Vectorized liquidation screen over many subaccounts: float64 running net collateral and maintenance
per account, flagged within a proven error bound, each candidate confirmed by the exact `core.margin` check."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from perpdex.core.margin import Risk, account_risk, initial_margin_ppm_at
from perpdex.core.params import MarketParams
from perpdex.core.state import SubaccountId
from perpdex.core.units import MAX_SUBTICKS, PPM, USDC_ASSET_ID

if TYPE_CHECKING:
    from perpdex.core.exchange import Exchange

Rows = npt.NDArray[np.intp]

UNIT_ROUNDOFF = Fraction(1, 2**53)  # u: float64 round-to-nearest relative error
MAX_ABS_INT64 = 2**63 - 1  # sizes and balances must fit int64 (the screen's exact copy)


def gamma(count: int) -> Fraction:
    """Higham's gamma_n = n u / (1 - n u): bound on the relative error of n float64 roundings."""
    return count * UNIT_ROUNDOFF / (1 - count * UNIT_ROUNDOFF)


def tolerance_quote_quantums(markets_count: int, updates_since_full: int, max_abs_usdc_quote_quantums: int,
                             gross_bound_quote_quantums: Fraction,
                             maintenance_bound_quote_quantums: Fraction) -> float:
    """The screen flags an account when float NC < float(MMR + tolerance); this is that tolerance,
    proven never to miss an account the exact integer check calls liquidatable.

    Exact side (m markets, npos <= m positions; x_j = s_j p_j / D_j the real notional, ab the
    product of the base initial and maintenance fractions): NC_int = usdc + sum trunc(x_j) is within
    npos of the real nc = usdc + sum x_j (truncation moves each term by < 1 quantum), and
    MMR_int = sum ceil(ceil(|trunc(x_j)| a) b) <= mm + 2 npos with mm = sum |x_j| a b (each ceil
    adds < 1, b <= 1). Liquidatable means NC_int <= MMR_int - 1, hence nc < mm + 3m - 1.

    Float side (u = 2**-53, gamma_n = n u / (1 - n u), any summation order, FMA or not): a full
    recompute rounds each term 3 times (size to float, price scale, product) and adds m times, so
    |NC_f - nc| <= gamma_{m+3} (|usdc| + g) and |MMR_f - mm| <= gamma_{m+3} mm, where g is the
    account's gross notional. Each incremental move of one market adds at most gamma_5 (|usdc| + g)
    to the NC error and gamma_5 mm to the MMR error (3 roundings of the delta, 1 of the sum, the
    rest second order), g and mm taken at the largest prices seen since the last full recompute.
    With beta_k = gamma_{m+3} + k gamma_5 after k moves, and global bounds U = max |usdc|,
    G >= every account's gross notional, K >= every account's mm (both at those largest prices):
    NC_f < MMR_f + 3m + beta_k (U + G + K). The comparison rounds MMR_f + tol once more, which
    gamma_2 (K (1 + beta_k) + tol) covers. The result is rounded up to a whole float.
    """
    m = markets_count
    beta = gamma(m + 3) + updates_since_full * gamma(5)
    tolerance = 3 * m + beta * (max_abs_usdc_quote_quantums + gross_bound_quote_quantums
                                + maintenance_bound_quote_quantums)
    tolerance += gamma(2) * (maintenance_bound_quote_quantums * (1 + beta) + tolerance)
    whole = math.ceil(tolerance)
    as_float = float(whole)
    return as_float if as_float >= whole else math.nextafter(as_float, math.inf)


class _ScreenMarket:
    """One market as `margin.PricedMarket`: what the exact check reads (params, price, OI and the
    initial fraction they give, computed on read since the screen moves prices often)."""

    __slots__ = ("open_interest_base_quantums", "oracle_price_subticks", "params", "quantum_conversion_divisor")

    @property
    def initial_margin_ppm(self) -> int:
        return initial_margin_ppm_at(self.params.liquidity_tier, self.open_interest_base_quantums,
                                     self.oracle_price_subticks or 0, self.quantum_conversion_divisor)

    def __init__(self, params: MarketParams, price_subticks: int, open_interest_base_quantums: int) -> None:
        self.params = params
        self.oracle_price_subticks: int | None = price_subticks
        self.open_interest_base_quantums = open_interest_base_quantums
        self.quantum_conversion_divisor = 10 ** -params.quantum_conversion_exponent


class MarginScreen:
    """Liquidation candidates among n subaccounts over m markets, in float64, never missing one.

    Positions are stored twice as float64 in column-major order (signed sizes and their absolute
    values, n x m each), so one market's column is contiguous: a full recompute is two BLAS
    matrix-vector products and a one-market move reads two columns. float64, not float32: sizes
    up to 2**53 base quantums convert exactly and the tolerance stays a few quote quantums, where
    float32 (u = 2**-24) would widen it about 5e8 times for half the memory traffic. An int64
    row-major copy and the USDC balances feed `confirm`, which calls `margin.account_risk`.

    Running float64 `net_collateral` and `maintenance` approximate NC and MMR (quote quantums) at
    the current prices. Candidates are rows with float NC < float MMR + `tolerance_quote_quantums`
    (see `tolerance_quote_quantums()` for the bound) that hold a position in a market with a
    non-zero maintenance fraction; rows with no requirement are never liquidatable.
    Open interest only raises the initial requirement, so it matters only to `confirm`'s Risk.
    """

    def __init__(self, usdc_quote_quantums: npt.ArrayLike, positions_base_quantums: npt.ArrayLike,
                 markets: Sequence[MarketParams], prices_subticks: Sequence[int],
                 open_interest_base_quantums: Sequence[int] | None = None,
                 subaccount_ids: Sequence[SubaccountId] | None = None) -> None:
        """`usdc_quote_quantums`: n ints; `positions_base_quantums`: n x m signed ints (columns
        follow `markets`); `prices_subticks`: m oracle prices (>= 0; 0 values everything at zero).
        Raises TypeError for non-integer arrays and ValueError for shapes or values out of range."""
        usdc = _int64_array(usdc_quote_quantums, "usdc_quote_quantums")
        positions = _int64_array(positions_base_quantums, "positions_base_quantums")
        if usdc.ndim != 1:
            raise ValueError("usdc_quote_quantums must be one-dimensional (one balance per account)")
        m = len(markets)
        if positions.ndim != 2 or positions.shape != (usdc.shape[0], m):
            raise ValueError(f"positions_base_quantums must have shape (accounts, markets) = "
                             f"({usdc.shape[0]}, {m}), got {positions.shape}")
        if m == 0:
            raise ValueError("a margin screen needs at least one market")
        if len({params.market_id for params in markets}) != m:
            raise ValueError("market ids must be unique")
        for params in markets:
            if params.quantum_conversion_exponent > 0:
                raise ValueError(f"{params.market_id}: the screen needs quantum_conversion_exponent <= 0")
        n = usdc.shape[0]
        if n and (usdc.min() < -MAX_ABS_INT64 or positions.min(initial=0) < -MAX_ABS_INT64):
            raise ValueError("balances and sizes must lie within +/-(2**63 - 1)")
        if subaccount_ids is not None and len(subaccount_ids) != n:
            raise ValueError("one subaccount id per account row")
        oi = [0] * m if open_interest_base_quantums is None else [int(x) for x in open_interest_base_quantums]
        if len(oi) != m:
            raise ValueError("one open interest per market")

        self.markets: tuple[MarketParams, ...] = tuple(markets)
        self.market_ids: tuple[str, ...] = tuple(params.market_id for params in markets)
        self._column = {market_id: j for j, market_id in enumerate(self.market_ids)}
        self.subaccount_ids: tuple[SubaccountId, ...] | None = (
            tuple(subaccount_ids) if subaccount_ids is not None else None)
        self._usdc = usdc
        self._positions = np.ascontiguousarray(positions)  # exact, row-major: confirm reads rows
        self._sizes = np.asfortranarray(positions, dtype=np.float64)  # column j contiguous
        self._abs_sizes = np.abs(self._sizes)  # keeps Fortran order
        self._net_collateral = np.empty(n, dtype=np.float64)
        self._maintenance = np.empty(n, dtype=np.float64)
        self._scratch = np.empty(n, dtype=np.float64)
        self._flags = np.empty(n, dtype=np.bool_)

        self._divisors = [10 ** -params.quantum_conversion_exponent for params in markets]
        # a*b as a ppm^2 integer: base IMF x maintenance fraction (MMR does not see open interest)
        tiers = [params.liquidity_tier for params in markets]
        self._maintenance_ppm2 = [tier.initial_margin_ppm * tier.maintenance_fraction_ppm for tier in tiers]
        self._has_requirement = np.array([k > 0 for k in self._maintenance_ppm2])
        self._all_have_requirement = bool(self._has_requirement.all())  # then no column selection is needed
        self._scale = np.empty(m, dtype=np.float64)  # price / divisor per market, kept at the current prices
        self._maintenance_scale = np.empty(m, dtype=np.float64)  # price x IMF x MF / divisor, likewise
        self._max_abs_usdc = int(np.abs(usdc).max()) if n else 0
        self._max_abs_size = [int(x) for x in np.abs(positions).max(axis=0)] if n else [0] * m
        self._exact_markets = [_ScreenMarket(params, 0, oi[j]) for j, params in enumerate(markets)]
        self._prices: list[int] = [0] * m
        self._peak_prices: list[int] = [0] * m
        self.updates_since_full = 0
        self._tolerance_key: tuple | None = None
        self._tolerance = 0.0
        self.screen_all(prices_subticks)

    @classmethod
    def from_exchange(cls, exchange: Exchange) -> MarginScreen:
        """Every subaccount of `exchange` as a row (`subaccount_ids` keeps their order), every
        market as a column at its oracle price and open interest. Raises ValueError if a market
        somebody holds has no oracle price yet."""
        market_ids = list(exchange.markets)
        ids = list(exchange.subaccounts)
        values = _balances_and_sizes(exchange, ids, market_ids)
        usdc, positions = values[:, 0], values[:, 1:]
        prices = []
        for j, market_id in enumerate(market_ids):
            price = exchange.markets[market_id].oracle_price_subticks
            if price is None:
                if ids and positions[:, j].any():
                    raise ValueError(f"{market_id} has positions but no oracle price")
                price = 0
            prices.append(price)
        return cls(usdc, positions, [exchange.markets[mid].params for mid in market_ids], prices,
                   [exchange.markets[mid].open_interest_base_quantums for mid in market_ids], ids)

    # --- views ----------------------------------------------------------------------------
    @property
    def accounts_count(self) -> int:
        return self._usdc.shape[0]

    @property
    def prices_subticks(self) -> tuple[int, ...]:
        return tuple(self._prices)

    @property
    def net_collateral(self) -> npt.NDArray[np.float64]:
        """Running float64 NC per account (quote quantums), read-only view."""
        view = self._net_collateral.view()
        view.flags.writeable = False
        return view

    @property
    def maintenance(self) -> npt.NDArray[np.float64]:
        """Running float64 MMR per account (quote quantums), read-only view."""
        view = self._maintenance.view()
        view.flags.writeable = False
        return view

    @property
    def tolerance_quote_quantums(self) -> float:
        """The current flagging tolerance; it grows slowly with `updates_since_full`. Memoized on its
        inputs (exact Fractions cost ~100 us; an exchange screens after every oracle update)."""
        # The bound grows with the number of moves, so evaluating it at the count rounded UP to a
        # multiple of 64 is still a bound (slightly wider) and changes 64 times less often.
        moves = -(-self.updates_since_full // 64) * 64
        key = (moves, self._max_abs_usdc, tuple(self._max_abs_size), tuple(self._peak_prices))
        if key == self._tolerance_key:
            return self._tolerance
        self._tolerance_key = key
        self._tolerance = self._compute_tolerance(moves)
        return self._tolerance

    def _compute_tolerance(self, moves: int) -> float:
        gross = Fraction(0)
        maintenance = Fraction(0)
        for j, size in enumerate(self._max_abs_size):
            notional = Fraction(size * self._peak_prices[j], self._divisors[j])
            gross += notional
            maintenance += notional * self._maintenance_ppm2[j] / (PPM * PPM)
        return tolerance_quote_quantums(len(self.markets), moves, self._max_abs_usdc, gross, maintenance)

    # --- screening ------------------------------------------------------------------------
    def screen_all(self, prices_subticks: Sequence[int]) -> Rows:
        """Full recompute at new prices for every market (two BLAS matrix-vector products);
        returns candidate rows, ascending."""
        prices = [_checked_price(price) for price in prices_subticks]
        if len(prices) != len(self.markets):
            raise ValueError(f"need {len(self.markets)} prices, got {len(prices)}")
        for j, price in enumerate(prices):
            self._set_scales(j, price)
        np.matmul(self._sizes, self._scale, out=self._net_collateral)
        np.add(self._net_collateral, self._usdc, out=self._net_collateral)  # int64 rounds to float64 as it adds
        np.matmul(self._abs_sizes, self._maintenance_scale, out=self._maintenance)
        self._set_prices(prices)
        self._peak_prices = list(prices)
        self.updates_since_full = 0
        return self._candidates()

    def update_market(self, market: int | str, price_subticks: int) -> Rows:
        """One market moves to `price_subticks`: reads only its two columns (NC += size x dp / D,
        MMR += |size| x dp x IMF x MF / D); returns candidate rows, ascending."""
        self.move_market(market, price_subticks)
        return self._candidates()

    def move_market(self, market: int | str, price_subticks: int) -> None:
        """`update_market` without the candidate scan, for several moves followed by one scan."""
        j = self._column[market] if isinstance(market, str) else int(market)
        if not 0 <= j < len(self.markets):
            raise ValueError(f"no market column {market!r}")
        price = _checked_price(price_subticks)
        delta = price - self._prices[j]
        if delta:
            divisor = self._divisors[j]
            scratch = self._scratch
            np.multiply(self._sizes[:, j], delta / divisor, out=scratch)
            np.add(self._net_collateral, scratch, out=self._net_collateral)
            k = self._maintenance_ppm2[j]
            if k:
                np.multiply(self._abs_sizes[:, j], delta * k / (divisor * PPM * PPM), out=scratch)
                np.add(self._maintenance, scratch, out=self._maintenance)
            self._prices[j] = price
            self._set_scales(j, price)
            self._exact_markets[j].oracle_price_subticks = price
            self._peak_prices[j] = max(self._peak_prices[j], price)
            self.updates_since_full += 1

    def update_rows(self, rows: Sequence[int], usdc_quote_quantums: Sequence[int],
                    positions_base_quantums: Sequence[Sequence[int]]) -> None:
        """Replace some rows (accounts that traded, deposited, ...) and recompute their NC and MMR
        afresh at the current prices. A fresh row's float error is within the full-recompute
        bound that the tolerance already allows, so the bound holds for every row."""
        if not len(rows):
            return
        usdc = np.asarray(usdc_quote_quantums, dtype=np.int64)  # raises on a value past int64
        block = np.asarray(positions_base_quantums, dtype=np.int64)
        if block.shape != (len(rows), len(self.markets)) or usdc.shape != (len(rows),):
            raise ValueError("one balance and one full row of positions per updated row")
        values = np.empty((len(rows), 1 + len(self.markets)), dtype=np.int64)
        values[:, 0] = usdc
        values[:, 1:] = block
        self._update_values(np.asarray(rows, dtype=np.intp), values)

    def _update_values(self, index: Rows, values: npt.NDArray[np.int64]) -> None:
        """`update_rows` with each row's balance and sizes in one int64 block (balance first): one
        conversion, one abs and one column max serve both (a refresh is ~16 rows, so numpy's
        per-call overhead, not the arithmetic, is the cost)."""
        usdc, block = values[:, 0], values[:, 1:]
        floats = values.astype(np.float64)
        magnitudes = np.abs(floats)
        usdc_float, sizes, abs_sizes = floats[:, 0], floats[:, 1:], magnitudes[:, 1:]
        self._usdc[index] = usdc
        self._positions[index] = block
        self._sizes[index] = sizes
        self._abs_sizes[index] = abs_sizes
        self._net_collateral[index] = usdc_float + sizes @ self._scale
        self._maintenance[index] = abs_sizes @ self._maintenance_scale
        column_max = magnitudes.max(axis=0).tolist()  # Python floats: int() of each as of the float64
        # Rounding is monotone, so a float balance peak below float(the old peak) means no exact
        # balance exceeds it; only otherwise is the exact int64 peak worth computing.
        if column_max[0] >= float(self._max_abs_usdc):
            self._max_abs_usdc = max(self._max_abs_usdc, int(np.abs(usdc).max()))
        self._max_abs_size = list(map(max, self._max_abs_size, map(int, column_max[1:])))

    def _set_scales(self, j: int, price: int) -> None:
        """Market j's scales at `price`, each as int / int: one correctly rounded float."""
        divisor = self._divisors[j]
        self._scale[j] = price / divisor
        self._maintenance_scale[j] = price * self._maintenance_ppm2[j] / (divisor * PPM * PPM)

    def candidates(self) -> Rows:
        """Candidate rows at the current prices, ascending."""
        return self._candidates()

    def _candidates(self) -> Rows:
        np.add(self._maintenance, self.tolerance_quote_quantums, out=self._scratch)
        np.less(self._net_collateral, self._scratch, out=self._flags)
        rows = np.flatnonzero(self._flags)
        if not rows.size:
            return rows
        # only flagged rows need the position check (usually none are flagged)
        held = self._positions[rows]
        if not self._all_have_requirement:
            held = held[:, self._has_requirement]
        return rows[held.any(axis=1)]

    def _set_prices(self, prices: list[int]) -> None:
        self._prices = prices
        for market, price in zip(self._exact_markets, prices):
            market.oracle_price_subticks = price

    # --- the exact check ------------------------------------------------------------------
    def exact_risk(self, row: int) -> Risk:
        """`margin.account_risk` of one row at the screen's current prices and open interest."""
        market_ids = self.market_ids
        sizes = self._positions[row].tolist()
        positions = {market_ids[j]: size for j, size in enumerate(sizes) if size}
        return account_risk(int(self._usdc[row]), positions, dict(zip(market_ids, self._exact_markets)))

    def confirm(self, rows: Iterable[int]) -> Rows:
        """The rows (in the given order) that the exact integer check finds liquidatable:
        MMR > 0 and NC < MMR by `margin.account_risk` at the current prices."""
        market_ids = self.market_ids
        markets = dict(zip(market_ids, self._exact_markets))
        usdc = self._usdc
        positions = self._positions
        confirmed = []
        for row in rows:
            sizes = positions[row].tolist()
            held = {market_ids[j]: size for j, size in enumerate(sizes) if size}
            if held and account_risk(int(usdc[row]), held, markets).is_liquidatable():
                confirmed.append(int(row))
        return np.array(confirmed, dtype=np.intp)

    def liquidatable_after_all(self, prices_subticks: Sequence[int]) -> Rows:
        """Rows truly liquidatable after every market moves: `screen_all`, then `confirm`."""
        return self.confirm(self.screen_all(prices_subticks))

    def liquidatable_after_move(self, market: int | str, price_subticks: int) -> Rows:
        """Rows truly liquidatable after one market moves: `update_market`, then `confirm`."""
        return self.confirm(self.update_market(market, price_subticks))


def _balances_and_sizes(exchange: Exchange, subaccount_ids: Iterable[SubaccountId],
                        market_ids: Sequence[str]) -> npt.NDArray[np.int64]:
    """One int64 row per subaccount with its funding settled: the USDC balance, then the size in
    each market. Gathered into one flat list and converted once (raises OverflowError past int64):
    the per-element numpy stores cost more than the reads."""
    subaccounts, funding_epoch = exchange.subaccounts, exchange.funding_epoch
    absent = (0,) * len(market_ids)
    flat: list[int] = []
    append, extend = flat.append, flat.extend
    for subaccount_id in subaccount_ids:
        subaccount = subaccounts[subaccount_id]
        if subaccount.funding_epoch != funding_epoch:  # else `settled_view` is the stored one
            subaccount = exchange.settled_view(subaccount_id)  # unsettled funding counts
        append(subaccount.collateral.get(USDC_ASSET_ID, 0))
        extend(map(subaccount.positions.get, market_ids, absent))
    return np.array(flat, dtype=np.int64).reshape(-1, 1 + len(market_ids))


def _int64_array(values: npt.ArrayLike, name: str) -> npt.NDArray[np.int64]:
    array = np.asarray(values)
    if array.dtype == object:
        try:
            array = np.asarray(values, dtype=np.int64)  # raises OverflowError past int64
        except (OverflowError, TypeError, ValueError) as exc:
            raise TypeError(f"{name} must hold integers within int64") from exc
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array, got {array.dtype}")
    if array.dtype == np.uint64 and array.size and array.max() > MAX_ABS_INT64:
        raise ValueError(f"{name} exceeds int64")
    return array.astype(np.int64, copy=False)


def _checked_price(price: int) -> int:
    if isinstance(price, (np.integer,)):
        price = int(price)
    if type(price) is not int or not 0 <= price <= MAX_SUBTICKS:
        raise ValueError(f"prices are integers of subticks within [0, 2**63 - 1], got {price!r}")
    return price


class ExchangeScreen:
    """A `MarginScreen` kept in step with an exchange for its liquidation step.

    Commits mark the subaccounts they touched (`touch`, a set insert: no per-transaction numpy
    work); `candidates` refreshes those rows in one batch, moves the columns of markets whose
    oracle price changed, and returns the flagged subaccounts. It rebuilds from the exchange when
    new subaccounts appeared or the tolerance has grown over many incremental moves.
    """

    REBUILD_AFTER_MOVES = 2_000

    def __init__(self) -> None:
        self.screen: MarginScreen | None = None
        self.rows: dict[SubaccountId, int] = {}
        self.dirty: set[SubaccountId] = set()

    def touch(self, subaccount_id: SubaccountId) -> None:
        self.dirty.add(subaccount_id)

    def candidates(self, exchange: Exchange) -> list[SubaccountId]:
        screen = self.screen
        if (screen is None or len(self.rows) != len(exchange.subaccounts)
                or screen.updates_since_full > self.REBUILD_AFTER_MOVES):
            screen = self.screen = MarginScreen.from_exchange(exchange)
            self.rows = {subaccount_id: row for row, subaccount_id in enumerate(screen.subaccount_ids or ())}
            self.dirty.clear()
        else:
            dirty = self.dirty
            if dirty:
                rows = np.fromiter(map(self.rows.__getitem__, dirty), dtype=np.intp, count=len(dirty))
                screen._update_values(rows, _balances_and_sizes(exchange, dirty, screen.market_ids))
                dirty.clear()
            current = screen.prices_subticks  # move_market changes only its own column
            for column, market_id in enumerate(screen.market_ids):
                price = exchange.markets[market_id].oracle_price_subticks
                if price is not None and price != current[column]:
                    screen.move_market(column, price)
        ids = screen.subaccount_ids or ()
        return [ids[row] for row in screen.candidates()]
