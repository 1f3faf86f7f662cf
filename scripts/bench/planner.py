"""Planner benchmark: `stratus save-tasks` of 100 000 and 1 000 000 synthetic Sentinel-2
items (NDJSON, `stratus synth --items-only`) onto africa-10, into the embedded ledger.
Target: 1 000 000 items in at most 60 s with at most 2 GB peak memory."""

import os
import re
import shutil

from common import CACHE, STRATUS, append, run

os.makedirs(CACHE, exist_ok=True)
rows = []
for n, years in ((100_000, 1), (1_000_000, 4)):
    items = os.path.join(CACHE, f"africa-items-{n}.ndjson")
    if not os.path.exists(items):
        out, wall, _, _ = run([STRATUS, "synth", "--items-only", "--out", items, "--year", "2019",
                               "--years", str(years), "--max-items", str(n)])
        print(out.strip())
    size = os.path.getsize(items)
    location = os.path.join(CACHE, f"plan-{n}")
    shutil.rmtree(location, ignore_errors=True)
    out, wall, rss, cpu_s = run([STRATUS, "-v", "save-tasks", "--input", items, "--grid", "africa-10",
                                 "--frequency", "annual", "--plugin", "gm-s2", "--location", location])
    tasks = int(re.search(r"-> (\d+) tasks", out).group(1))
    state = os.path.getsize(os.path.join(location, "_stratus", "state.sqlite"))
    shutil.rmtree(location, ignore_errors=True)
    rows.append((n, size, tasks, wall, rss, cpu_s, state))
    print(rows[-1])

lines = [
    "Items: MGRS-like 109.8 km granules over Africa (2 849), 5-day revisit, 11 band assets each,"
    " about 4 KB of JSON per item. Planned with `stratus save-tasks --grid africa-10 --frequency annual"
    " --plugin gm-s2` into the embedded ledger (SQLite), plan artefacts included.",
    "",
    "| items | NDJSON | tasks | wall s | peak RSS MB | CPU s | ledger file | target |",
    "|---|---|---|---|---|---|---|---|",
]
for n, size, tasks, wall, rss, cpu_s, state in rows:
    if n == 1_000_000:
        verdict = "met" if wall <= 60 and rss <= 2048 else (
            f"time {'met' if wall <= 60 else f'MISSED by {wall - 60:.0f} s ({wall / 60:.2f}x)'},"
            f" memory {'met' if rss <= 2048 else 'MISSED'}")
    else:
        verdict = ""
    lines.append(f"| {n:,} | {size / 1e9:.2f} GB | {tasks:,} | {wall:.1f} | {rss:.0f} | {cpu_s:.1f} | {state / 1e6:.0f} MB | {verdict} |")
append("Planner", "make bench (scripts/bench/planner.py)", lines)
