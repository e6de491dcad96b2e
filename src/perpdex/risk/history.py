"""Price and funding histories for the risk lab: CSV (plain or .gz) or Parquet, wide or long, the
shared data's layout, a simulation run's funding table, and the small real-data slice shipped here.

Every series is keyed by base asset (`portfolio.asset_of`: BTC-USD, BTC-USDT, BTC-USDT-PERP -> BTC)
and timed in UTC seconds. Funding rates are per settlement interval, positive = longs pay shorts.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from perpdex.risk.portfolio import RiskDataError, asset_of

HOUR_S = 3_600
SHIPPED_PRICES = "prices_1h.csv.gz"
SHIPPED_FUNDING = "funding_rates.csv.gz"
_TIME_COLUMNS = ("timestamp", "timestamp_utc", "ts_ms", "time", "ts")
_PRICE_COLUMNS = ("close", "price", "mark_close", "index_price", "oracle_price")


def shipped_data_path(name: str) -> Path:
    """Path of a file of the shipped slice (`perpdex/risk/data`)."""
    return Path(str(resources.files("perpdex.risk").joinpath("data", name)))


# --- reading tables --------------------------------------------------------------------------------
def _read_table(path: Path, what: str) -> Any:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if path.is_dir():
        candidate = path / "tables" / f"{what}.parquet"
        path = candidate if candidate.exists() else path / f"{what}.parquet"
    if not path.exists():
        raise RiskDataError(f"{path}: no such file", field=what, value=str(path))
    try:
        if path.suffix == ".parquet":
            return pq.read_table(path)
        return pacsv.read_csv(path)
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise RiskDataError(f"{path}: cannot read {what}: {exc}", field=what, value=str(path)) from exc


def _seconds(table: Any, source: str, what: str) -> npt.NDArray[np.int64]:
    import pyarrow as pa
    import pyarrow.compute as pc

    for name in _TIME_COLUMNS:
        if name in table.column_names:
            column = table.column(name)
            if name == "ts_ms" or pa.types.is_integer(column.type):
                values = column.to_numpy(zero_copy_only=False).astype(np.int64)
                return values // 1000 if name == "ts_ms" or values.max(initial=0) > 10**11 else values
            if pa.types.is_string(column.type):
                column = pc.strptime(pc.replace_substring(column, "Z", ""), format="%Y-%m-%dT%H:%M:%S", unit="s")
            return pc.cast(column, pa.timestamp("s")).to_numpy(zero_copy_only=False).astype("datetime64[s]").astype(
                np.int64)
    raise RiskDataError(f"{source}: {what} needs a time column ({', '.join(_TIME_COLUMNS)})", field=f"{what}.timestamp",
                        value=table.column_names)


# --- prices ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PriceHistory:
    """Hourly closes on a complete hourly grid (NaN where an asset has no candle)."""

    times_s: npt.NDArray[np.int64]  # UTC seconds, strictly increasing by one hour
    assets: tuple[str, ...]
    closes: npt.NDArray[np.float64]  # (times, assets)
    source: str

    def select(self, assets: list[str] | tuple[str, ...]) -> PriceHistory:
        """Only these assets, in this order; RiskDataError names the first one missing."""
        missing = [asset for asset in assets if asset not in self.assets]
        if missing:
            raise RiskDataError(f"{self.source}: no price history for {', '.join(missing)} "
                                f"(has {', '.join(self.assets)}); pass a price file with it", field="prices",
                                value=missing[0])
        columns = [self.assets.index(asset) for asset in assets]
        return PriceHistory(self.times_s, tuple(assets), self.closes[:, columns], self.source)

    def log_returns(self, hours: int = 1, *, stride: int = 1) -> npt.NDArray[np.float64]:
        """`hours`-hour log returns (overlapping, every `stride` hours), rows where every asset
        has both prices; shape (samples, assets)."""
        logs = np.log(self.closes)
        returns = logs[hours:] - logs[:-hours]
        returns = returns[::stride]
        return returns[np.isfinite(returns).all(axis=1)]

    def last_prices(self) -> npt.NDArray[np.float64]:
        """Each asset's latest close."""
        out = np.empty(len(self.assets))
        for j in range(len(self.assets)):
            finite = np.flatnonzero(np.isfinite(self.closes[:, j]))
            out[j] = self.closes[finite[-1], j] if finite.size else np.nan
        return out

    def window(self, days: float | None) -> PriceHistory:
        """The last `days` of history (all of it for None)."""
        if days is None:
            return self
        keep = self.times_s >= self.times_s[-1] - int(days * 86_400)
        return PriceHistory(self.times_s[keep], self.assets, self.closes[keep], self.source)


def _on_hourly_grid(times: npt.NDArray[np.int64], values: npt.NDArray[np.float64]
                    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    hours = times // HOUR_S
    grid = np.arange(hours.min(), hours.max() + 1, dtype=np.int64)
    out = np.full((grid.size, values.shape[1]), np.nan)
    out[hours - hours.min()] = values
    return grid * HOUR_S, out


def load_prices(path: str | Path | None = None) -> PriceHistory:
    """Hourly prices from CSV/Parquet: wide (`timestamp, BTC, ETH, ...`) or long (`timestamp,
    market, close|price`, e.g. the shared `prices_1h.csv.gz`); None: the shipped 2022-2024 slice.
    Raises RiskDataError naming the column at fault."""
    file = shipped_data_path(SHIPPED_PRICES) if path is None else Path(path)
    source = str(file)
    table = _read_table(file, "prices")
    if table.num_rows == 0:
        raise RiskDataError(f"{source}: no rows", field="prices", value=source)
    times = _seconds(table, source, "prices")
    if "market" in table.column_names:
        price_column = next((c for c in _PRICE_COLUMNS if c in table.column_names), None)
        if price_column is None:
            raise RiskDataError(f"{source}: a long price file needs a close or price column", field="prices.close",
                                value=table.column_names)
        markets = [asset_of(m) for m in table.column("market").to_pylist()]
        prices = table.column(price_column).to_numpy(zero_copy_only=False).astype(float)
        assets = tuple(dict.fromkeys(markets))
        index = {asset: j for j, asset in enumerate(assets)}
        columns = np.array([index[m] for m in markets])
        unique_times, rows = np.unique(times, return_inverse=True)
        values = np.full((unique_times.size, len(assets)), np.nan)
        values[rows, columns] = prices
        times = unique_times
    else:
        names = [c for c in table.column_names if c not in _TIME_COLUMNS]
        if not names:
            raise RiskDataError(f"{source}: no price columns", field="prices", value=table.column_names)
        assets = tuple(asset_of(c) for c in names)
        values = np.column_stack([table.column(c).to_numpy(zero_copy_only=False).astype(float) for c in names])
        order = np.argsort(times, kind="stable")
        times, values = times[order], values[order]
    if np.any(values[np.isfinite(values)] <= 0):
        raise RiskDataError(f"{source}: prices must be positive", field="prices", value=source)
    grid, closes = _on_hourly_grid(times, values)
    return PriceHistory(grid, assets, closes, source)


# --- funding ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FundingSeries:
    """One asset's settled funding: rate per interval at each settlement time."""

    asset: str
    times_s: npt.NDArray[np.int64]
    rates: npt.NDArray[np.float64]  # per interval, fraction; positive: longs pay
    interval_hours: npt.NDArray[np.float64]

    @property
    def hourly_rates(self) -> npt.NDArray[np.float64]:
        return self.rates / self.interval_hours

    def hourly_grid(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Payments on an hourly grid: the rate at each settlement hour, 0 between settlements."""
        hours = self.times_s // HOUR_S
        grid = np.arange(hours.min(), hours.max() + 1, dtype=np.int64)
        out = np.zeros(grid.size)
        np.add.at(out, hours - hours.min(), self.rates)
        return grid * HOUR_S, out

    def mean_hourly_rate(self, lookback_days: float | None = None) -> float:
        """Average funding per hour over the history (or its last `lookback_days`): the sum of
        settled rates divided by the hours they cover."""
        keep = np.ones(self.times_s.size, bool)
        if lookback_days is not None:
            keep = self.times_s >= self.times_s[-1] - int(lookback_days * 86_400)
        covered = float(self.interval_hours[keep].sum())
        return float(self.rates[keep].sum()) / covered if covered else 0.0


@dataclass(frozen=True)
class FundingHistory:
    series: dict[str, FundingSeries]
    source: str

    def get(self, asset: str) -> FundingSeries | None:
        return self.series.get(asset)


def load_funding(path: str | Path | None = None, *, venue: str | None = None) -> FundingHistory:
    """Settled funding from CSV/Parquet (`timestamp, market, rate[, interval_hours][, venue]`, e.g. the
    shared `funding_rates.csv.gz`), or a simulation's funding table (`ts_ms, market_id,
    funding_rate_ppm, interval_ms`: the Parquet file or the run folder). None: the shipped slice.
    With several venues, `venue` picks one (default binance). Raises RiskDataError."""
    file = shipped_data_path(SHIPPED_FUNDING) if path is None else Path(path)
    source = str(file)
    table = _read_table(file, "funding")
    names = table.column_names
    times = _seconds(table, source, "funding") if table.num_rows else np.zeros(0, np.int64)
    market_column = "market" if "market" in names else ("market_id" if "market_id" in names else None)
    if market_column is None:
        raise RiskDataError(f"{source}: funding needs a market column", field="funding.market", value=names)
    if "rate" in names:
        rates = table.column("rate").to_numpy(zero_copy_only=False).astype(float)
    elif "funding_rate_ppm" in names:
        rates = table.column("funding_rate_ppm").to_numpy(zero_copy_only=False).astype(float) / 1e6
    else:
        raise RiskDataError(f"{source}: funding needs a rate column (rate or funding_rate_ppm)", field="funding.rate",
                            value=names)
    if "interval_hours" in names:
        intervals = table.column("interval_hours").to_numpy(zero_copy_only=False).astype(float)
    elif "interval_ms" in names:
        intervals = table.column("interval_ms").to_numpy(zero_copy_only=False).astype(float) / (HOUR_S * 1000)
    else:
        intervals = np.full(rates.size, np.nan)  # inferred per market below
    markets = np.array([asset_of(m) for m in table.column(market_column).to_pylist()], dtype=object)
    keep = np.isfinite(rates)
    if "venue" in names:
        venues = np.array(table.column("venue").to_pylist(), dtype=object)
        present = set(venues.tolist())
        chosen = venue or ("binance" if "binance" in present else (present.pop() if len(present) == 1 else None))
        if chosen is None or chosen not in set(venues.tolist()):
            raise RiskDataError(f"{source}: choose a venue among {sorted(set(venues.tolist()))}", field="funding.venue",
                                value=venue)
        keep &= venues == chosen
    series: dict[str, FundingSeries] = {}
    for asset in dict.fromkeys(markets[keep].tolist()):
        rows = np.flatnonzero(keep & (markets == asset))
        order = rows[np.argsort(times[rows], kind="stable")]
        interval = intervals[order]
        if np.isnan(interval).any():
            spacing = np.diff(times[order]) / HOUR_S
            guess = float(np.median(spacing)) if spacing.size else 8.0
            interval = np.where(np.isnan(interval), max(guess, 1e-9), interval)
        if np.any(interval <= 0):
            raise RiskDataError(f"{source}: interval_hours must be positive ({asset})", field="funding.interval_hours",
                                value=asset)
        series[asset] = FundingSeries(asset, times[order], rates[order], interval)
    return FundingHistory(series, source)
