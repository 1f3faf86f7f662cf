"""Tile benchmark: one full au-30 tile (3200 x 3200 px at 30 m) from local COGs, 6 bands,
46 observation days from two orbit paths in UTM zones 52 and 53, geomedian with MADs
(cli/examples/bench_tile.rs). Each run is its own process (its own peak RSS):
the tile, and only reading and warping the same inputs, at 2 and at 1 thread(s).
Goal: tile time / read-only time at most 1.5 (a worker bound by its input)."""

import json
import os

from common import CACHE, EXAMPLES, append, run

EXE = os.path.join(EXAMPLES, "bench_tile")
data = os.path.join(CACHE, "au-tile")
results = {}
for threads in (2, 1):
    for mode in ("reads", "full"):
        out, wall, rss, cpu_s = run([EXE, data, mode], env={"RAYON_NUM_THREADS": str(threads)})
        r = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
        r["process_rss_mb"], r["cpu_s"] = rss, cpu_s
        results[(threads, mode)] = r
        print(threads, mode, {k: r[k] for k in ("wall_s", "read_s", "compute_s", "write_s", "peak_rss_mb")})

full2, reads2 = results[(2, "full")], results[(2, "reads")]
full1, reads1 = results[(1, "full")], results[(1, "reads")]
est = full2["estimate"]
lines = [
    f"Tile {full2['task']}: {full2['pixels']:,} px, {full2['datasets']} datasets on {full2['observation_days']} days,"
    f" {est['bands']} input bands (6 reflectance + SCL mask), chunk {full2['chunk_size']}, local COGs"
    " (synthetic, deflate level 1, 512-px blocks, as `stratus synth` writes them), warped UTM -> EPSG:3577 bilinear.",
    "",
    "| threads | mode | wall s | read/warp s | compute s | write s | peak RSS MB | CPU s |",
    "|---|---|---|---|---|---|---|---|",
]
for (threads, mode), r in results.items():
    lines.append(f"| {threads} | {'tile (gm + MADs)' if mode == 'full' else 'read + warp only'} | {r['wall_s']:.1f} |"
                 f" {r['read_s']:.1f} | {r['compute_s']:.1f} | {r['write_s']:.1f} | {r['peak_rss_mb']} | {r['cpu_s']:.0f} |")
ratio2 = full2["wall_s"] / reads2["wall_s"]
ratio1 = full1["wall_s"] / reads1["wall_s"]
lines += [
    "",
    f"- **tile / read-only: {ratio2:.2f} at 2 threads, {ratio1:.2f} at 1 thread** (goal <= 1.5:"
    f" {'met' if ratio2 <= 1.5 else f'MISSED by {ratio2 / 1.5:.2f}x'}).",
    f"- Scaling 1 -> 2 threads: tile {full1['wall_s'] / full2['wall_s']:.2f}x, read-only {reads1['wall_s'] / reads2['wall_s']:.2f}x.",
    f"- Planner's estimate for this task: peak {est['peak_memory_mb']} MB (measured {full2['peak_rss_mb']} MB at 2 threads),"
    f" {est['core_seconds']:.0f} single-core s (measured {full1['wall_s']:.0f} s at 1 thread).",
]
append("Tile (au-30, 3200 x 3200, geomedian + MADs)", "make bench (scripts/bench/tile.py)", lines)
