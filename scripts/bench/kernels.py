"""Kernel benchmarks: Stratus' `stratus stat` against the Python reference on the same
input, appended to BENCHMARKS.md. Run by `make bench` (not part of `make test`).

Measures, on a (size x size x 6 bands x obs) int16 stack with ~40% of observations
masked in correlated blobs (scripts/parity/bench_reference.py makes it):
  - geomedian + EMAD/SMAD/BCMAD + count: ours vs odc.algo._gm_mads_compute_f32, 1 and 2 threads
  - geomedian alone: ours (which always computes the MADs too) vs geomad.nangeomedian_pcm
  - p10/p50/p90: ours vs a sort-based numpy implementation
Each measurement runs in its own process; peak RSS is that process's maximum.
"""

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_json_lines(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def ours(stratus, stack, kernel, threads, out):
    # /usr/bin/time gives this process's own peak (getrusage of children keeps the
    # maximum over every child so far, the reference's included).
    cmd = ["/usr/bin/time", "-f", "peak_kib=%M", stratus, "stat", stack, "--out", out, "--kernel", kernel, "--nodata", "-999",
           "--scale", "1e-4", "--offset", "-1e-4", "--eps", "1e-4", "--maxiters", "1000", "--threads", str(threads)]
    p = subprocess.run(cmd, check=True, capture_output=True, text=True)
    rep = json.loads(p.stdout)
    peak = [line for line in p.stderr.splitlines() if line.startswith("peak_kib=")][-1]
    rep["peak_rss_mib"] = round(int(peak.split("=")[1]) / 1024, 1)
    return rep


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (OSError, ValueError):
        mem = 0
    return f"{model}, {os.cpu_count()} cores, {mem:.0f} GiB, {platform.system()} {platform.release()}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stratus", default=os.path.join(ROOT, "target/release/stratus"))
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--obs", type=int, default=60)
    ap.add_argument("--report", default=os.path.join(ROOT, "BENCHMARKS.md"))
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="stratus-bench-")
    stack = os.path.join(work, "stack.npy")
    print(f"bench: generating the stack and timing the reference ({a.size}x{a.size}x6x{a.obs})", flush=True)
    ref = {r["measurement"]: r for r in run_json_lines(
        [sys.executable, os.path.join(ROOT, "scripts/parity/bench_reference.py"), stack, "--size", str(a.size), "--obs", str(a.obs)])}
    stack_mib = ref["generate"]["bytes"] / 2**20
    rows = []
    for t in (1, 2):
        print(f"bench: ours, geomedian + MADs, {t} thread(s)", flush=True)
        o = ours(a.stratus, stack, "gm", t, os.path.join(work, f"gm{t}"))
        r = ref[f"gm_mads_t{t}"]
        rows.append(("geomedian + MADs + count", t, o, r["pixel_obs_per_s"], "odc-algo `_gm_mads_compute_f32`", 4.0))
        g = ref[f"geomad_gm_t{t}"]
        og = ours(a.stratus, stack, "gm-only", t, os.path.join(work, f"gmo{t}"))
        rows.append(("geomedian alone", t, og, g["pixel_obs_per_s"], "geomad `nangeomedian_pcm`", 2.0))
    print("bench: ours, percentiles, 1 thread", flush=True)
    o = ours(a.stratus, stack, "percentiles", 1, os.path.join(work, "pc"))
    rows.append(("p10/p50/p90", 1, o, ref["percentiles_sort"]["pixel_obs_per_s"], "numpy sort (1 thread)", 2.0))
    o2 = ours(a.stratus, stack, "percentiles", 2, os.path.join(work, "pc2"))
    rows.append(("p10/p50/p90", 2, o2, ref["percentiles_sort"]["pixel_obs_per_s"], "numpy sort (1 thread)", None))

    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"\n## Kernels, {when}\n",
        f"- Machine: {machine()}",
        f"- Command: `make bench` (scripts/bench/kernels.py --size {a.size} --obs {a.obs})",
        f"- Input: {a.size} x {a.size} x 6 bands x {a.obs} observations, int16, nodata -999, "
        f"{100 * ref['generate']['masked_fraction']:.0f}% of observations masked in correlated blobs ({stack_mib:.0f} MiB); "
        "scale 1e-4, offset -1e-4, eps 1e-4, maxiters 1000 (odc-stats' call)",
        f"- Reference: {ref['gm_mads_t1'].get('versions', 'odc-algo 1.2.2 / geomad 1.0.0')}",
        "",
        "| kernel | threads | ours (Mpix-obs/s) | reference (Mpix-obs/s) | ratio | target | ours: compute s | ours: peak RSS MiB (stack + x%) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, t, o, rps, rname, target in rows:
        ratio = o["pixel_observations_per_s"] / rps
        verdict = "" if target is None else (f">= {target:g}x: met" if ratio >= target else f">= {target:g}x: MISSED by {target / ratio:.2f}x")
        over = 100 * (o["peak_rss_mib"] / stack_mib - 1)
        lines.append(f"| {name} vs {rname} | {t} | {o['pixel_observations_per_s'] / 1e6:.1f} | {rps / 1e6:.1f} | {ratio:.2f}x | {verdict} | {o['compute_s']:.2f} | {o['peak_rss_mib']:.0f} (+{over:.0f}%) |")
    lines.append("")
    lines.append("Raw reference measurements: " + "; ".join(
        f"{k}: {v['wall_s']:.2f} s, peak {v.get('peak_rss_mib', 0):.0f} MiB" for k, v in ref.items() if k != "generate"))
    text = "\n".join(lines) + "\n"
    print(text)
    if not os.path.exists(a.report):
        with open(a.report, "w") as f:
            f.write("# Benchmarks\n\nAppended by `make bench`; newest last. Benchmarks are not part of `make test`.\n")
    with open(a.report, "a") as f:
        f.write(text)
    print(f"bench: appended to {a.report}")


if __name__ == "__main__":
    main()
