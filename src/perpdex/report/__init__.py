"""Reports of simulation runs: one self-contained HTML page (plotly, offline) and PNG charts
(matplotlib), drawn from the recorder's tables and the run's key figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

REPORT_FILE = "report.html"
CHARTS_FOLDER = "charts"


def write_report_bundle(out_dir: Path, tables: dict[str, pa.Table], summary: dict[str, Any]) -> dict[str, Path]:
    """`<out_dir>/report.html` and `<out_dir>/charts/*.png`; returns name -> path."""
    from perpdex.report.charts import write_charts
    from perpdex.report.html import write_report

    out_dir = Path(out_dir)
    paths = {"report": write_report(out_dir / REPORT_FILE, tables, summary)}
    paths.update(write_charts(out_dir / CHARTS_FOLDER, tables))
    return paths


def render_folder(out_dir: Path) -> dict[str, Path]:
    """Re-render the report and charts of a run folder from its Parquet tables and summary.json."""
    import json

    from perpdex.sim.recorder import read_tables

    out_dir = Path(out_dir)
    summary = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
    return write_report_bundle(out_dir, read_tables(out_dir / "tables"), summary)
