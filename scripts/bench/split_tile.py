"""Split-tile overhead (`make bench-split`): the au-30 bench tile (cli/examples/bench_tile.rs)
run whole and as 2 x 2 sub-tile parts processed one after another then assembled, in
alternation, each run its own process. The cost of splitting is the extra CPU seconds
(each part opens its inputs again, writes its bands to scratch, and the assembly reads
them back). Target (issue 17): at most 15% more core-seconds. Usage: split_tile.py
[--repeat N] (default 2)."""

import argparse
import json
import os

from common import CACHE, EXAMPLES, append, run

EXE = os.path.join(EXAMPLES, "bench_tile")
data = os.path.join(CACHE, "au-tile")
ap = argparse.ArgumentParser()
ap.add_argument("--repeat", type=int, default=2)
args = ap.parse_args()


def one(mode):
    out, wall, rss, cpu_s = run([EXE, data, mode], env={"RAYON_NUM_THREADS": "2"})
    r = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
    r["cpu_s"], r["process_rss_mb"] = cpu_s, rss
    print(mode, {k: round(r[k], 1) for k in ("wall_s", "read_s", "compute_s", "write_s", "cpu_s")}, flush=True)
    return r


one("decode")  # the inputs, once (not timed)
runs = {"full": [], "split": []}
for _ in range(args.repeat):
    for mode in ("full", "split"):
        runs[mode].append(one(mode))
rng = lambda mode, k: (min(r[k] for r in runs[mode]), max(r[k] for r in runs[mode]))
(flo, fhi), (slo, shi) = rng("full", "cpu_s"), rng("split", "cpu_s")
over = (slo / fhi - 1, shi / flo - 1)
wf, ws = rng("full", "wall_s"), rng("split", "wall_s")
met = "met" if over[1] <= 0.15 else ("MISSED" if over[0] > 0.15 else "within the noise of the target")
lines = [
    f"The au-30 bench tile ({runs['full'][0]['task']}, {runs['full'][0]['pixels']:,} px, gm-s2, 46 days), whole and as"
    f" 2 x 2 parts then their assembly, {args.repeat} runs each in alternation at 2 threads (ranges min-max):",
    "",
    "| mode | wall s | CPU s | peak RSS MB |",
    "|---|---|---|---|",
    f"| whole | {wf[0]:.1f}-{wf[1]:.1f} | {flo:.0f}-{fhi:.0f} | {max(r['peak_rss_mb'] for r in runs['full'])} |",
    f"| 2 x 2 parts + assembly | {ws[0]:.1f}-{ws[1]:.1f} | {slo:.0f}-{shi:.0f} |"
    f" {max(r['peak_rss_mb'] for r in runs['split'])} |",
    "",
    f"- **Overhead of splitting: {100 * over[0]:+.0f}% to {100 * over[1]:+.0f}% core-seconds** (target <= 15%: {met}).",
    f"- The assembly alone took {runs['split'][0]['assembly_s']:.1f} s of the split run's wall time.",
]
append("Split-tile overhead (the au-30 bench tile)", "make bench-split (scripts/bench/split_tile.py)", lines)
