"""Rebuild the risk lab's shipped data slice from perpdex's shared market data (shared/data).
Run: python make_slice.py /path/to/shared/data  (writes the two .csv.gz files beside this script)."""

from __future__ import annotations

import csv
import gzip
import sys
from datetime import UTC
from pathlib import Path

ASSETS = ("BTC", "ETH", "SOL", "LINK", "DOGE", "XRP")
START, END = "2022-01-01T00:00:00Z", "2024-12-31T23:00:00Z"  # candle open times, inclusive
HOUR = 3600


def _close_time(open_iso: str) -> str:
    from datetime import datetime, timedelta

    opened = datetime.strptime(open_iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return (opened + timedelta(seconds=HOUR)).strftime("%Y-%m-%dT%H:%M:%SZ")


def main(shared: Path) -> None:
    here = Path(__file__).resolve().parent
    closes: dict[str, dict[str, str]] = {}
    with gzip.open(shared / "prices_1h.csv.gz", "rt", newline="") as handle:
        for row in csv.DictReader(handle):
            base = row["market"].split("-")[0]
            if base in ASSETS and START <= row["timestamp_utc"] <= END:
                closes.setdefault(_close_time(row["timestamp_utc"]), {})[base] = row["close"]
    with gzip.open(here / "prices_1h.csv.gz", "wt", newline="", compresslevel=9) as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(("timestamp", *ASSETS))
        for stamp in sorted(closes):
            writer.writerow((stamp, *(closes[stamp].get(asset, "") for asset in ASSETS)))
    with gzip.open(shared / "funding_rates.csv.gz", "rt", newline="") as handle, \
            gzip.open(here / "funding_rates.csv.gz", "wt", newline="", compresslevel=9) as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(("timestamp", "market", "rate", "interval_hours"))
        for row in csv.DictReader(handle):
            base = row["market"].split("-")[0]
            if row["venue"] == "binance" and base in ASSETS and START <= row["timestamp_utc"] <= END:
                writer.writerow((row["timestamp_utc"], f"{base}-USD", row["rate"], row["interval_hours"]))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data"))
