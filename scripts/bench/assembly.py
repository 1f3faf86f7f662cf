"""Assembly benchmark (`make bench-split`): the largest split tile's assembly (an
africa-10 tile, 9600 x 9600, every output band of gm-s2) from its parts, timed alone
(cli/examples/bench_assembly.rs), three runs, against the Lambda budget and the planner's
estimate. Appended to BENCHMARKS.md."""

import json
import os

from common import CACHE, EXAMPLES, append, run

exe = os.path.join(EXAMPLES, "bench_assembly")
data = os.path.join(CACHE, "assembly")
os.makedirs(data, exist_ok=True)
threads = os.environ.get("RAYON_NUM_THREADS", "2")
rows = []
for i in range(3):
    out, wall, rss, cpu_s = run([exe, data], env={"RAYON_NUM_THREADS": threads})
    r = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
    r["cpu_s"] = cpu_s
    rows.append(r)
    print(r)
secs = sorted(r["seconds"] for r in rows)
rss = sorted(r["peak_rss_mb"] for r in rows)
r0 = rows[0]
est = r0["estimate"]
lines = [
    f"A {r0['tile_px'][0]} x {r0['tile_px'][1]} tile of {r0['bands']} output bands (gm-s2) assembled from"
    f" {r0['parts']} parts in a local output store, {len(rows)} runs, RAYON_NUM_THREADS={threads}:",
    "",
    f"- **Assembly: {secs[0]:.1f} to {secs[-1]:.1f} s** (pasting the parts {r0['paste_s']:.1f} s, the COGs with"
    f" overviews and the STAC item {r0['cogs_and_item_s']:.1f} s in the first run); peak RSS {rss[0]:.0f} to"
    f" {rss[-1]:.0f} MB (of which {r0['peak_rss_before_mb']:.0f} MB before it started).",
    f"- Lambda budget: 720 s (80% of 900 s), 8 192 MB. The planner's estimate of the assembly:"
    f" {est['lambda_seconds']:.0f} s on a 6-vCPU Lambda, {est['peak_memory_mb']} MB, /tmp {est['tmp_mb']} MB"
    f" ({est['executor']}).",
    f"- On a 6-vCPU Lambda reading the parts from S3, add the transfer of the parts and COGs (at ~100 MB/s,"
    " a few seconds per GB).",
]
append("Split-tile assembly (the largest tile)", "make bench-split (scripts/bench/assembly.py)", lines)
