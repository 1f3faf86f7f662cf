"""Continental simulation (`make bench-continent`): one year of synthetic Sentinel-2 items
over Africa planned onto africa-10 (annual geomedian with MADs, gm-s2), then the
distribution of observations per task, the tasks beyond the Lambda budget and the
estimate, with the wall time at 1 000 concurrent Lambdas (and 1 000 container workers
for the tasks beyond Lambda). Tiles beyond the Lambda budget are split into sub-tile
parts (the fewest that fit): the share of tiles that run entirely on Lambda and the parts
per tile are reported. The same items on africa-20 for comparison."""

import csv
import glob
import os
import re
import shutil
import statistics

from common import CACHE, STRATUS, append, run

os.makedirs(CACHE, exist_ok=True)
items = os.path.join(CACHE, "africa-items-1y.ndjson")
if not os.path.exists(items):
    print(run([STRATUS, "synth", "--items-only", "--out", items, "--year", "2021", "--years", "1"])[0].strip())


def simulate(grid):
    location = os.path.join(CACHE, f"continent-{grid}")
    shutil.rmtree(location, ignore_errors=True)
    out, wall, rss, _ = run([STRATUS, "save-tasks", "--input", items, "--grid", grid, "--frequency", "annual",
                             "--plugin", "gm-s2", "--location", location])
    run_id = re.search(r"planned run '([^']+)'", out).group(1)
    est, _, _, _ = run([STRATUS, "estimate", run_id, "--location", location, "--concurrency", "1000",
                        "--containers", "1000"])
    rows = list(csv.DictReader(open(glob.glob(os.path.join(location, "*", "*", "_plan", run_id, "tasks.csv"))[0])))
    shutil.rmtree(location, ignore_errors=True)
    return wall, rss, est, rows


q = lambda v, p: v[min(len(v) - 1, int(p * len(v)))]
lines = []
for grid in ("africa-10", "africa-20"):
    wall, rss, est, all_rows = simulate(grid)
    # One row per tile (a split tile's own row is its assembly); its parts apart.
    rows = [r for r in all_rows if "/part-" not in r["task_id"]]
    parts = [r for r in all_rows if "/part-" in r["task_id"]]
    split = [r for r in rows if r.get("parts")]
    per_tile = {}
    for r in split:
        per_tile[r["parts"]] = per_tile.get(r["parts"], 0) + 1
    on_lambda = [r for r in rows if r["executor"] == "lambda"]
    obs = sorted(int(r["observation_days"]) for r in rows)
    over = [r for r in rows if r["executor"] != "lambda"]
    secs = sorted(float(r["est_seconds"]) for r in rows if not r.get("parts"))
    part_secs = sorted(float(r["est_seconds"]) for r in parts)
    seconds = lambda v: (f"median {statistics.median(v):.0f}, p90 {q(v, 0.9):.0f}, max {v[-1]:.0f}" if v else "none")
    hist = {}
    for o in obs:
        hist[(o // 20) * 20] = hist.get((o // 20) * 20, 0) + 1
    lines += [
        f"### {grid}",
        "",
        f"One year (2021) of synthetic Sentinel-2 L2A items over Africa ({os.path.getsize(items) / 1e9:.2f} GB NDJSON,"
        f" 256 303 items) planned onto {grid} in {wall:.1f} s (peak {rss:.0f} MB): **{len(rows):,} tasks**.",
        "",
        f"- Observation days per task: min {obs[0]}, median {statistics.median(obs):.0f}, p90 {q(obs, 0.9)}, max {obs[-1]}."
        " Histogram (days: tasks): " + ", ".join(f"{k}-{k + 19}: {v}" for k, v in sorted(hist.items())) + ".",
        f"- Estimated seconds on a 10 240 MB Lambda (6 vCPU): unsplit tiles {seconds(secs)}; parts {seconds(part_secs)}.",
        f"- **Tiles entirely on Lambda: {len(on_lambda):,} of {len(rows):,} ({100 * len(on_lambda) / len(rows):.1f}%)**;"
        f" split into parts: {len(split):,} ({len(parts):,} parts; parts per tile: "
        + (", ".join(f"{k}: {v} tiles" for k, v in sorted(per_tile.items())) or "none") + ").",
        f"- Beyond the Lambda budget even in parts: {len(over):,} of {len(rows):,} tiles -> container queue."
        + (f" E.g. {over[0]['task_id']}: {over[0]['observation_days']} days, {over[0]['datasets']} datasets,"
           f" {over[0]['est_seconds']} s, {over[0]['est_memory_mb']} MB." if over else ""),
        "",
        "`stratus estimate RUN --concurrency 1000 --containers 1000` (default prices):",
        "",
        "```",
        est.strip(),
        "```",
        "",
    ]
append("Continental simulation (one year of Sentinel-2 over Africa)", "make bench-continent (scripts/bench/continent.py)", lines)
