"""The periods odc-stats bins each date into, for the period parity test.

Reads JSON cases on stdin: [{"frequency": "quartely", "temporal_range": "2020--P1Y" or
null, "dates": ["2020-01-31", ...]}, ...] and prints, per case, {date: [labels]}: the
task periods odc-stats' save-tasks puts a dataset acquired (in local solar time) at noon
on that date. The dates are pruned to the temporal range and binned with odc-stats' own
functions, chosen per frequency as `odc.stats.tasks.SaveTasks.save` chooses them
(odc-stats 1.9.7, tasks.py: "Prune Datasets outside of temporal range" and the
frequency dispatch after it).
"""

import json
import sys
from datetime import datetime, timedelta
from types import SimpleNamespace

from odc.stats.model import DateTimeRange
from odc.stats.utils import (
    CompressedDataset,
    bin_annual,
    bin_full_history,
    bin_generic,
    bin_rolling_seasonal,
    bin_seasonal,
)


def labels(frequency, temporal_range, dates):
    dss = [
        CompressedDataset(id=d, time=datetime.fromisoformat(d) + timedelta(hours=12))
        for d in dates
    ]
    cell = SimpleNamespace(dss=dss, utc_offset=timedelta(0))
    cells = {(0, 0): cell}
    if temporal_range is not None:
        cell.dss = [ds for ds in cell.dss if ds.time + cell.utc_offset in temporal_range]
    if frequency == "all":
        if temporal_range is None:
            times = [ds.time for ds in dss]
            tasks = bin_full_history(cells, start=min(times), end=max(times))
        else:
            tasks = bin_generic(cells, [temporal_range])
    elif frequency == "semiannual":
        tasks = bin_seasonal(cells, months=6, anchor=1)
    elif frequency == "seasonal":
        tasks = bin_seasonal(cells, months=3, anchor=12)
    elif frequency == "quartely":
        tasks = bin_seasonal(cells, months=3, anchor=1)
    elif frequency == "3month-seasons":
        anchor = int(temporal_range.start.strftime("%m"))
        tasks = bin_seasonal(cells, months=3, anchor=anchor)
    elif frequency == "rolling-3months":
        tasks = bin_rolling_seasonal(cells, temporal_range=temporal_range, months=3, interval=1)
    elif frequency == "nov-mar":
        tasks = bin_seasonal(cells, months=5, anchor=11, extract_single_season=True)
    elif frequency == "apr-oct":
        tasks = bin_seasonal(cells, months=7, anchor=4, extract_single_season=True)
    elif frequency == "annual-fy":
        tasks = bin_seasonal(cells, months=12, anchor=7)
    elif frequency == "annual":
        tasks = bin_annual(cells)
    else:
        raise SystemExit(f"unknown odc-stats frequency {frequency!r}")
    out = {d: [] for d in dates}
    for (period, _x, _y), members in tasks.items():
        for ds in members:
            out[ds.id].append(period)
    return {d: sorted(set(v)) for d, v in out.items()}


def main():
    cases = json.load(sys.stdin)
    result = []
    for case in cases:
        rng = case.get("temporal_range")
        rng = DateTimeRange(rng) if rng else None
        result.append(labels(case["frequency"], rng, case["dates"]))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
