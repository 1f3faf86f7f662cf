#!/usr/bin/env python3
"""Time the Python reference kernels on a synthetic stack (for comparison with Stratus).

    .venv-parity/bin/python scripts/parity/bench_reference.py STACK.npy [--size 1024] [--obs 60]

Builds a deterministic int16 stack (y=size, x=size, band=6, time=obs, nodata -999,
~40% of pixel-times masked in correlated blobs), saves it to STACK.npy laid out
(y, x, band, time) so the Rust side can run on the very same data, then times, each in
a fresh child process (so peak RSS is per measurement):

  gm_mads_t1 / gm_mads_t2   odc.algo._geomedian._gm_mads_compute_f32 on the int16 stack,
                            as odc-stats calls it (nodata -999, scale 1e-4, offset -1e-4,
                            maxiters, num_threads 1 / 2, eps --eps); includes the
                            int -> float32 conversion, MADs and count
  geomad_gm_t1 / _t2        geomad.nangeomedian_pcm alone on the float32 scaled stack
                            (conversion done before timing)
  percentiles_sort          numpy sort over time of the valid values, index
                            round(p*(n-1)) for p10/p50/p90 (synth.percentiles_sort)

One JSON object per line on stdout: wall time, pixel-observations per second
(size*size*obs / wall) and peak RSS (resource.getrusage ru_maxrss of the child, which
includes the loaded input; rss_before_mib is the peak before the timed call).
Heavy at the default size (input alone is ~0.75 GB int16, 1.5 GB as float32).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import synth  # noqa: E402

NODATA = -999
SCALE = 1e-4
ODCSTATS_OFFSET = -1e-4
MEASUREMENTS = ["gm_mads_t1", "gm_mads_t2", "geomad_gm_t1", "geomad_gm_t2", "percentiles_sort"]


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def emit(obj):
    print(json.dumps(obj), flush=True)


def worker(args):
    stack = np.load(args.stack)
    ny, nx, nb, nt = stack.shape
    name = args.worker
    threads = 2 if name.endswith("_t2") else 1
    record = {"measurement": name, "shape": [ny, nx, nb, nt], "dtype": stack.dtype.name,
              "num_threads": threads, "eps": args.eps, "maxiters": args.maxiters}

    if name.startswith("gm_mads"):
        from odc.algo._geomedian import _gm_mads_compute_f32

        record["call"] = ("_gm_mads_compute_f32(stack, compute_mads=True, compute_count=True, "
                          f"nodata={NODATA}, scale={SCALE}, offset={ODCSTATS_OFFSET}, eps={args.eps}, "
                          f"maxiters={args.maxiters}, num_threads={threads})")

        def run():
            return _gm_mads_compute_f32(stack, compute_mads=True, compute_count=True, nodata=NODATA,
                                        scale=SCALE, offset=ODCSTATS_OFFSET, eps=args.eps,
                                        maxiters=args.maxiters, num_threads=threads)
    elif name.startswith("geomad_gm"):
        import geomad
        from odc.algo._masking import to_float_np

        f32 = to_float_np(stack, nodata=NODATA, scale=SCALE, offset=0.0, dtype="float32")
        del stack
        record["call"] = (f"geomad.nangeomedian_pcm(f32, eps={args.eps}, maxiters={args.maxiters}, "
                          f"num_threads={threads})  # f32 = DN*1e-4, NaN for nodata; conversion untimed")

        def run():
            return geomad.nangeomedian_pcm(f32, eps=args.eps, maxiters=args.maxiters, num_threads=threads)
    elif name == "percentiles_sort":
        record["call"] = "synth.percentiles_sort(stack, -999)  # p10/p50/p90, sort over time, index round(p*(n-1))"

        def run():
            return synth.percentiles_sort(stack, NODATA)
    else:
        raise SystemExit(f"unknown measurement {name}")

    record["rss_before_mib"] = round(peak_rss_mib(), 1)
    t0 = time.perf_counter()
    out = run()
    wall = time.perf_counter() - t0
    record.update({
        "wall_s": round(wall, 4),
        "pixel_obs_per_s": round(ny * nx * nt / wall, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "output_shape": list(out.shape),
        "output_finite_fraction": round(float(np.isfinite(out).mean()), 4)
        if out.dtype.kind == "f" else None,
    })
    emit(record)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stack", help="where to write the input stack (.npy, y,x,band,time int16)")
    ap.add_argument("--size", type=int, default=1024, help="y and x size (default 1024)")
    ap.add_argument("--obs", type=int, default=60, help="number of observations/time steps (default 60)")
    ap.add_argument("--seed", type=int, default=60_1024)
    ap.add_argument("--eps", type=float, default=1e-4)
    ap.add_argument("--maxiters", type=int, default=1000)
    ap.add_argument("--only", action="append", choices=MEASUREMENTS,
                    help="run only this measurement (repeatable)")
    ap.add_argument("--worker", choices=MEASUREMENTS, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        return worker(args)

    t0 = time.perf_counter()
    stack = synth.masked_stack(args.seed, args.size, args.size, args.obs, np.int16, np.int16(NODATA))
    gen = time.perf_counter() - t0
    np.save(args.stack, stack, allow_pickle=False)
    masked = float((stack == NODATA).all(axis=2).mean())
    emit({"measurement": "generate", "path": str(args.stack), "shape": list(stack.shape),
          "dtype": "int16", "nodata": NODATA, "seed": args.seed, "masked_fraction": round(masked, 4),
          "wall_s": round(gen, 3), "bytes": int(stack.nbytes)})
    del stack

    failed = 0
    for name in args.only or MEASUREMENTS:
        threads = "2" if name.endswith("_t2") else "1"
        env = dict(os.environ, NUMEXPR_NUM_THREADS=threads, OMP_NUM_THREADS=threads)
        cmd = [sys.executable, __file__, args.stack, "--worker", name,
               "--eps", repr(args.eps), "--maxiters", str(args.maxiters)]
        r = subprocess.run(cmd, env=env)
        if r.returncode != 0:
            failed += 1
            emit({"measurement": name, "error": f"exit code {r.returncode}"})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main() or 0)
