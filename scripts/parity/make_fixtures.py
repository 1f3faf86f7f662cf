#!/usr/bin/env python3
"""Generate the geomedian / MADs / percentile parity fixtures for Stratus.

Run through scripts/parity/make_fixtures.sh (which sets up the reference venv).
Writes tests/data/parity/<case>/{input.npy, meta.json, <outputs>.npy} and
tests/data/parity/README.md. Deterministic: fixed seeds, single-threaded
reference calls (the 2-thread result is computed too and checked identical).
"""

import hashlib
import importlib.metadata as md
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import synth  # noqa: E402

REPO = HERE.parent.parent
OUT = REPO / "tests" / "data" / "parity"

SCALE = 1e-4
OFFSET = 0.0
EPS = 1e-4
MAXITERS = 1000
# A tightly converged geomedian, as an iteration-path-independent "truth".
CONVERGED_EPS = 1e-7
CONVERGED_MAXITERS = 100_000
# What odc-stats' gm plugins (odc/stats/plugins/gm.py, StatsGM.reduce) pass instead.
ODCSTATS_SCALE = 1 / 10_000
ODCSTATS_OFFSET = -1 * ODCSTATS_SCALE
ODCSTATS_MAXITERS = 1000

SIZE_BUDGET = 3 * 1024 * 1024

# Reference imports (from the parity venv).
import dask  # noqa: E402
import dask.array as da  # noqa: E402
import geomad  # noqa: E402
import xarray as xr  # noqa: E402
from odc.algo import geomedian_with_mads  # noqa: E402
from odc.algo._geomedian import _gm_mads_compute_f32  # noqa: E402
from odc.algo._masking import to_float_np  # noqa: E402
from odc.algo._percentile import np_percentile  # noqa: E402

CATEGORIES = {
    0: "normal: 3..16 valid observations, scattered",
    1: "all_nodata: every observation nodata (all-cloud)",
    2: "one_valid: exactly one valid observation",
    3: "two_valid: exactly two valid observations (geomedian not unique: any point of the segment)",
    4: "identical_with_gaps: 3..10 valid observations, all identical, the rest nodata (zero distances, nzeros < n)",
    5: "identical_full: all 16 observations valid and identical (zero distances, nzeros == n)",
    6: "coincident_majority: 7 identical observations + scattered others (the geomedian is that data point; Vardi-Zhang step)",
    7: "coincident_pairs: 4 pairs of exactly coinciding observations + 6 unique + 2 nodata",
    8: "single_band_nodata: 10 normal observations, 3 with exactly one band nodata and the other bands at 4000 (must be excluded), 3 fully nodata",
    9: "single_band_nodata_only: observations each with one band nodata so that 0, 1 or 2 whole observations remain valid (geomedian count 0/1/2) while every band still has many valid values for percentiles",
    10: "three_valid: exactly three valid observations (minimum for percentiles)",
}

EDGE_GRID = [
    [1, 1, 0, 1, 0, 2, 2, 0, 1, 0],
    [2, 2, 2, 0, 2, 3, 3, 0, 3, 3],
    [3, 3, 0, 3, 10, 10, 0, 10, 4, 4],
    [4, 4, 0, 4, 5, 5, 0, 5, 4, 5],
    [6, 6, 0, 6, 7, 7, 0, 7, 6, 7],
    [8, 8, 0, 8, 8, 9, 9, 0, 9, 8],
    [9, 0, 9, 8, 6, 4, 3, 2, 1, 0],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
]


def log(msg):
    print(f"make_fixtures: {msg}", flush=True)


# --------------------------------------------------------------------------- inputs


def edge_case_stack(seed=4242):
    nodata = np.int16(-999)
    nt, nb = 16, 6
    cat = np.array(EDGE_GRID, dtype=np.uint8)
    ny, nx = cat.shape
    rng = np.random.default_rng(seed)
    out = np.full((ny, nx, nb, nt), nodata, dtype=np.int16)

    def spectrum():
        w = rng.uniform(0, 1)
        return w * synth.VEGETATION + (1 - w) * synth.SOIL

    def obs(center, k, sd=250.0):
        v = center[:, None] + rng.normal(0, sd, size=(nb, k))
        return np.clip(np.rint(v), synth.VALUE_MIN, synth.VALUE_MAX).astype(np.int16)

    def place(y, x, vals, slots=None):
        """Put vals (nb, k) into k distinct random time slots."""
        k = vals.shape[1]
        if slots is None:
            slots = np.sort(rng.choice(nt, size=k, replace=False))
        out[y, x][:, slots] = vals
        return slots

    variant9 = 0
    for y in range(ny):
        for x in range(nx):
            c = int(cat[y, x])
            s = spectrum()
            if c == 0:
                k = int(rng.integers(3, nt + 1))
                place(y, x, obs(s, k))
            elif c == 1:
                pass
            elif c == 2:
                place(y, x, obs(s, 1))
            elif c == 3:
                place(y, x, obs(s, 2))
            elif c == 4:
                k = int(rng.integers(3, 11))
                place(y, x, np.repeat(obs(s, 1), k, axis=1))
            elif c == 5:
                place(y, x, np.repeat(obs(s, 1), nt, axis=1), slots=np.arange(nt))
            elif c == 6:
                vals = np.concatenate([np.repeat(obs(s, 1), 7, axis=1), obs(s, 9, sd=400.0)], axis=1)
                place(y, x, vals[:, rng.permutation(16)], slots=np.arange(nt))
            elif c == 7:
                pairs = np.repeat(obs(s, 4), 2, axis=1)
                vals = np.concatenate([pairs, obs(s, 6)], axis=1)
                place(y, x, vals[:, rng.permutation(14)])
            elif c == 8:
                slots = rng.permutation(nt)
                out[y, x][:, slots[:10]] = obs(s, 10)
                for t in slots[10:13]:
                    out[y, x, :, t] = synth.VALUE_MAX
                    out[y, x, int(rng.integers(0, nb)), t] = nodata
                # slots[13:] stay fully nodata
            elif c == 9:
                keep = variant9 % 3  # 0, 1 or 2 fully valid observations
                variant9 += 1
                out[y, x] = obs(s, nt)
                slots = rng.permutation(nt)
                for i, t in enumerate(slots[keep:]):
                    out[y, x, i % nb, t] = nodata
            elif c == 10:
                place(y, x, obs(s, 3))
    return out, nodata, cat


def build_cases():
    cases = []
    a = synth.masked_stack(1001, 24, 24, 20, np.int16, np.int16(-999))
    cases.append(("int16_basic", a, np.int16(-999), None,
                  "int16 (y=24, x=24, band=6, time=20), DN 200..4000, ~40% of pixel-times nodata "
                  "(all bands) in spatially correlated blobs, plus ~8% unmasked bright/dark outliers."))
    b = synth.masked_stack(2002, 24, 24, 20, np.uint16, np.uint16(0))
    cases.append(("uint16_basic", b, np.uint16(0), None,
                  "uint16 (y=24, x=24, band=6, time=20), DN 200..4000, nodata 0, ~40% of pixel-times "
                  "nodata (all bands) in correlated blobs, plus ~8% unmasked outliers."))
    e, nd, cat = edge_case_stack()
    cases.append(("edge_cases", e, nd, cat,
                  "int16 (y=8, x=10, band=6, time=16), nodata -999; per-pixel category in category.npy "
                  "(see meta.json 'categories')."))
    return cases


# --------------------------------------------------------------------------- references


def split_stats(out, nb):
    """_gm_mads_compute_f32 returns (y, x, nb + 4): [*bands, smad, emad, bcmad, count]."""
    return {
        "gm": out[..., :nb],
        "smad": out[..., nb],
        "emad": out[..., nb + 1],
        "bcmad": out[..., nb + 2],
        "count": out[..., nb + 3],
    }


def primary_reference(stack, nodata, num_threads):
    f32 = to_float_np(stack, nodata=nodata, scale=SCALE, offset=OFFSET, dtype="float32")
    out = _gm_mads_compute_f32(
        f32, compute_mads=True, compute_count=True, nodata=None, scale=1.0, offset=0.0,
        eps=EPS, maxiters=MAXITERS, num_threads=num_threads,
    )
    return f32, split_stats(out, stack.shape[2])


def odcstats_reference(stack, nodata):
    """Exactly the odc-stats gm plugin call (dask DataArray path, eps left at its default)."""
    yxbt = xr.DataArray(
        da.from_array(stack, chunks=stack.shape), dims=("y", "x", "band", "time"),
        attrs={"nodata": nodata.item()},
    )
    ds = geomedian_with_mads(
        yxbt, scale=ODCSTATS_SCALE, offset=ODCSTATS_OFFSET, maxiters=ODCSTATS_MAXITERS,
        num_threads=1, compute_mads=True, compute_count=True,
    )
    with dask.config.set(scheduler="synchronous"):
        ds = ds.compute()
    nb = stack.shape[2]
    res = {
        "odcstats_gm": np.stack([ds[b].values for b in range(nb)], axis=-1),
        "odcstats_smad": ds["smad"].values,
        "odcstats_emad": ds["emad"].values,
        "odcstats_bcmad": ds["bcmad"].values,
        "odcstats_count": ds["count"].values,
    }
    # The float32 values geomedian_with_mads truncates into the integer bands.
    raw = _gm_mads_compute_f32(
        stack, compute_mads=False, compute_count=False, nodata=nodata, scale=ODCSTATS_SCALE,
        offset=ODCSTATS_OFFSET, eps=None, maxiters=ODCSTATS_MAXITERS, num_threads=1,
    )
    res["odcstats_gm_f32"] = raw
    return res


def isolated_gm(f32):
    """Geomedian of each pixel run on its own 1x1 array, so every pixel starts from its nanmean."""
    ny, nx = f32.shape[:2]
    out = np.empty(f32.shape[:3], dtype=np.float32)
    for y in range(ny):
        for x in range(nx):
            out[y, x] = geomad.nangeomedian_pcm(
                np.ascontiguousarray(f32[y:y + 1, x:x + 1]), eps=EPS, maxiters=MAXITERS, num_threads=1
            )[0, 0]
    return out


def isolated_mads(f32, gm_iso):
    """geomad's MADs around the isolated-start geomedian (same start rule as Stratus)."""
    valid = ~np.isnan(f32).any(axis=2, keepdims=True)
    x = np.where(valid, f32, np.nan).astype(np.float32)
    gm = np.ascontiguousarray(gm_iso.astype(np.float32))
    return {
        "emad_isolated": geomad.emad_pcm(x, gm, num_threads=1).astype(np.float32),
        "smad_isolated": geomad.smad_pcm(x, gm, num_threads=1).astype(np.float32),
        "bcmad_isolated": geomad.bcmad_pcm(x, gm, num_threads=1).astype(np.float32),
    }


def odc_algo_percentiles(stack, nodata):
    """odc.algo._percentile.np_percentile (time-first layout), per band and percentile."""
    ny, nx, nb, _ = stack.shape
    out = np.empty((ny, nx, nb, 3), dtype=stack.dtype)
    for b in range(nb):
        tyx = np.ascontiguousarray(np.moveaxis(stack[:, :, b, :], -1, 0))
        for k, p in enumerate(synth.PERCENTILES):
            out[:, :, b, k] = np_percentile(tyx, p, nodata)
    return out


# --------------------------------------------------------------------------- helpers


def nan_equal(a, b):
    return bool(np.array_equal(a, b, equal_nan=True))


def nan_maxabs(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return "nan-pattern-differs"
    d = np.abs(a - b)
    d = d[~np.isnan(d)]
    return float(d.max()) if d.size else 0.0


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def versions():
    pkgs = ["odc-algo", "geomad", "numpy", "numexpr", "xarray", "dask"]
    v = {p: md.version(p) for p in pkgs}
    v["python"] = sys.version.split()[0]
    return v


def pip_show():
    r = subprocess.run([sys.executable, "-m", "pip", "show", "odc-algo", "geomad"],
                       capture_output=True, text=True, check=True)
    keep = ("Name:", "Version:", "Summary:", "Home-page:", "License:")
    return "\n".join(line for line in r.stdout.splitlines() if line.startswith(keep) or line == "---")


def source_hashes():
    import odc.algo._geomedian as g
    pyx = Path(geomad.__file__).parent / "pcm.pyx"
    out = {"odc/algo/_geomedian.py": sha256(g.__file__)}
    if pyx.exists():
        out["geomad/pcm.pyx"] = sha256(pyx)
    return out


# --------------------------------------------------------------------------- outputs


PRIMARY_CALL = (
    "f32 = odc.algo._masking.to_float_np(input, nodata=nodata, scale=1e-4, offset=0.0, dtype='float32'); "
    "out = odc.algo._geomedian._gm_mads_compute_f32(f32, compute_mads=True, compute_count=True, "
    "nodata=None, scale=1.0, offset=0.0, eps=1e-4, maxiters=1000, num_threads=1); "
    "out[..., :6] = gm, out[..., 6] = smad, out[..., 7] = emad, out[..., 8] = bcmad, out[..., 9] = count"
)
ODCSTATS_CALL = (
    "odc.algo.geomedian_with_mads(xr.DataArray(dask.array.from_array(input), dims=('y','x','band','time'), "
    "attrs={'nodata': nodata}), scale=1/10_000, offset=-1/10_000, maxiters=1000, num_threads=1, "
    "compute_mads=True, compute_count=True)  # eps not passed -> None -> 0.1*scale = 1e-5; exactly "
    "odc-stats' StatsGM.reduce config; computed with dask's synchronous scheduler"
)


def describe_outputs(dtype_name, nodata):
    nd = int(nodata)
    o = {
        "input.npy": {"units": f"DN ({dtype_name}); reflectance = DN * scale + offset; nodata = {nd}",
                      "producer": "scripts/parity/synth.py / make_fixtures.py (deterministic seed)"},
        "gm.npy": {"units": "float32 scaled reflectance (DN * 1e-4), NaN where count == 0",
                   "producer": PRIMARY_CALL + " -> gm"},
        "smad.npy": {"units": "float32 dimensionless: nanmedian over valid observations of 1 - cos(angle(x_t, gm)); NaN where count == 0",
                     "producer": PRIMARY_CALL + " -> smad (geomad.smad_pcm(f32, gm))"},
        "emad.npy": {"units": "float32 scaled reflectance: nanmedian over valid observations of ||x_t - gm||_2; NaN where count == 0",
                     "producer": PRIMARY_CALL + " -> emad (geomad.emad_pcm(f32, gm)); not multiplied by 1/scale because scale=1.0 in this call"},
        "bcmad.npy": {"units": "float32 dimensionless: nanmedian over valid observations of sum|x_t - gm| / sum|x_t + gm|; NaN where count == 0",
                      "producer": PRIMARY_CALL + " -> bcmad (geomad.bcmad_pcm(f32, gm))"},
        "count.npy": {"units": "float32 number of observations with ALL bands valid (!= nodata); an observation with any band nodata is not counted",
                      "producer": PRIMARY_CALL + " -> count"},
        "gm_only.npy": {"units": "float32 scaled reflectance (DN * 1e-4), NaN where no observation has all bands valid",
                        "producer": "geomad.nangeomedian_pcm(f32, eps=1e-4, maxiters=1000, num_threads=1)  # nocheck=False (default); f32 as above"},
        "emad_isolated.npy": {"units": "float32 scaled reflectance", "producer": "geomad.emad_pcm(f32 with invalid observations NaN in every band, gm_isolated)"},
        "smad_isolated.npy": {"units": "unitless", "producer": "geomad.smad_pcm(f32 as above, gm_isolated)"},
        "bcmad_isolated.npy": {"units": "unitless", "producer": "geomad.bcmad_pcm(f32 as above, gm_isolated)"},
        "gm_isolated.npy": {"units": "float32 scaled reflectance, as gm_only.npy",
                            "producer": "geomad.nangeomedian_pcm(f32[y:y+1, x:x+1], eps=1e-4, maxiters=1000, num_threads=1)[0, 0] for every pixel separately, i.e. every pixel's Weiszfeld iteration starts from its per-band nanmean (see README: start-point quirk)"},
        "gm_converged.npy": {"units": "float32 scaled reflectance, as gm_only.npy",
                             "producer": "geomad.nangeomedian_pcm(f32, eps=1e-7, maxiters=100000, num_threads=1): a tightly converged geomedian, "
                                         "independent of the iteration path to float32 precision (except where the geomedian is not unique, e.g. two valid observations)"},
        "percentiles.npy": {"units": f"{dtype_name} DN, (y, x, band, 3) = p10, p50, p90; nodata ({nd}) where the band has < 3 valid values",
                            "producer": "numpy: per pixel-band, sort the values != nodata ascending, take index numpy.round(p * (n - 1)) (float64, round-half-to-even) for p in (0.1, 0.5, 0.9); nodata if n < 3. "
                                        "scripts/parity/synth.py:percentiles_sort; verified identical to a per-pixel loop and to odc.algo._percentile.np_percentile"},
        "odcstats_gm.npy": {"units": f"{dtype_name} DN: astype(odcstats_gm_f32), i.e. truncation toward zero, NOT rounding; nodata ({nd}) where count == 0",
                            "producer": ODCSTATS_CALL + " -> band variables 0..5"},
        "odcstats_gm_f32.npy": {"units": "float32 DN: g * 1e4 + 1 where g is the geomedian of (DN * 1e-4 - 1e-4), so ~= the geomedian in DN; not yet truncated; the nodata value (as float) where count == 0",
                                "producer": "odc.algo._geomedian._gm_mads_compute_f32(input, compute_mads=False, compute_count=False, nodata=nodata, scale=1/10_000, offset=-1/10_000, eps=None, maxiters=1000, num_threads=1)"},
        "odcstats_smad.npy": {"units": "float32 dimensionless, computed on x*1e-4 - 1e-4 (the offset shifts it slightly vs smad.npy); NaN where count == 0",
                              "producer": ODCSTATS_CALL + " -> smad"},
        "odcstats_emad.npy": {"units": "float32 DN (the scaled-space median distance multiplied by 1/scale = 1e4); NaN where count == 0",
                              "producer": ODCSTATS_CALL + " -> emad"},
        "odcstats_bcmad.npy": {"units": "float32 dimensionless, computed on x*1e-4 - 1e-4; NaN where count == 0",
                               "producer": ODCSTATS_CALL + " -> bcmad"},
        "odcstats_count.npy": {"units": "uint16 count (the float32 count cast)", "producer": ODCSTATS_CALL + " -> count"},
    }
    return o


def write_case(name, stack, nodata, cat, description):
    d = OUT / name
    d.mkdir(parents=True, exist_ok=True)
    ny, nx, nb, nt = stack.shape
    log(f"{name}: input {stack.dtype} {stack.shape}, nodata={int(nodata)}")

    nodata_frac = float((stack == nodata).all(axis=2).mean())
    partial_frac = float(((stack == nodata).any(axis=2) & ~(stack == nodata).all(axis=2)).mean())

    f32, prim = primary_reference(stack, nodata, num_threads=1)
    _, prim2 = primary_reference(stack, nodata, num_threads=2)
    threads_identical = all(nan_equal(prim[k], prim2[k]) for k in prim)

    gm_only = geomad.nangeomedian_pcm(f32, eps=EPS, maxiters=MAXITERS, num_threads=1)
    gm_iso = isolated_gm(f32)
    gm_conv = geomad.nangeomedian_pcm(f32, eps=CONVERGED_EPS, maxiters=CONVERGED_MAXITERS, num_threads=1)
    ods = odcstats_reference(stack, nodata)

    pct = synth.percentiles_sort(stack, nodata)
    pct_loop = synth.percentiles_loop(stack, nodata)
    pct_odc = odc_algo_percentiles(stack, nodata)
    if not np.array_equal(pct, pct_loop):
        raise SystemExit(f"{name}: percentiles_sort != percentiles_loop")
    if not np.array_equal(pct, pct_odc):
        raise SystemExit(f"{name}: percentiles_sort != odc.algo np_percentile")

    # Independent checks of the count definition.
    count_expected = (stack != nodata).all(axis=2).sum(axis=2).astype(np.float32)
    if not np.array_equal(prim["count"], count_expected):
        raise SystemExit(f"{name}: count is not 'observations with all bands valid'")

    # Demonstrate the offset == 0 int path of _gm_mads_compute_f32 (what one gets calling it with
    # the int array and scale=1e-4, offset=0.0).
    bug = split_stats(_gm_mads_compute_f32(
        stack, compute_mads=True, compute_count=True, nodata=nodata, scale=SCALE, offset=0.0,
        eps=EPS, maxiters=MAXITERS, num_threads=1), nb)

    gm_dn_from_odcstats = ods["odcstats_gm_f32"].astype(np.float64)
    gm_dn_from_odcstats[ods["odcstats_gm_f32"] == float(nodata)] = np.nan
    findings = {
        "fraction_pixel_times_all_bands_nodata": round(nodata_frac, 4),
        "fraction_pixel_times_some_but_not_all_bands_nodata": round(partial_frac, 4),
        "pixels_with_count_0": int((prim["count"] == 0).sum()),
        "count_min_max": [float(prim["count"].min()), float(prim["count"].max())],
        "num_threads_2_identical_to_1": threads_identical,
        "gm_only_identical_to_gm": nan_equal(gm_only, prim["gm"]),
        "max_abs_gm_minus_gm_isolated_scaled": nan_maxabs(prim["gm"], gm_iso),
        "pixels_where_gm_differs_from_gm_isolated_by_more_than_eps": int(
            (np.nan_to_num(np.linalg.norm(prim["gm"].astype(np.float64) - gm_iso, axis=2)) > EPS).sum()),
        "max_abs_gm_minus_gm_converged_scaled": nan_maxabs(prim["gm"], gm_conv),
        "max_abs_gm_isolated_minus_gm_converged_scaled": nan_maxabs(gm_iso, gm_conv),
        "max_abs_odcstats_gm_f32_minus_gm_converged_in_DN": nan_maxabs(
            gm_dn_from_odcstats, gm_conv.astype(np.float64) / ODCSTATS_SCALE),
        "max_abs_gm_minus_odcstats_gm_f32_in_DN": nan_maxabs(prim["gm"].astype(np.float64) / SCALE, gm_dn_from_odcstats),
        "max_abs_emad_minus_odcstats_emad_in_DN": nan_maxabs(prim["emad"].astype(np.float64) / SCALE, ods["odcstats_emad"]),
        "max_abs_smad_minus_odcstats_smad": nan_maxabs(prim["smad"], ods["odcstats_smad"]),
        "max_abs_bcmad_minus_odcstats_bcmad": nan_maxabs(prim["bcmad"], ods["odcstats_bcmad"]),
        "odcstats_gm_is_truncation_of_odcstats_gm_f32": bool(np.array_equal(
            ods["odcstats_gm"], ods["odcstats_gm_f32"].astype(stack.dtype))),
        "odcstats_count_equals_count": bool(np.array_equal(ods["odcstats_count"], prim["count"].astype(np.uint16))),
        "int_path_with_offset_0_count_min_max": [float(bug["count"].min()), float(bug["count"].max())],
        "int_path_with_offset_0_gm_equals_correct_gm": nan_equal(bug["gm"], prim["gm"]),
    }

    arrays = {
        "input": stack,
        "gm": prim["gm"], "smad": prim["smad"], "emad": prim["emad"], "bcmad": prim["bcmad"],
        "count": prim["count"], "gm_only": gm_only, "gm_isolated": gm_iso, "gm_converged": gm_conv, "percentiles": pct,
        **isolated_mads(f32, gm_iso),
        **ods,
    }
    if cat is not None:
        arrays["category"] = cat

    # Remove stale files from earlier runs.
    for old in d.glob("*.npy"):
        if old.stem not in arrays:
            old.unlink()

    descr = describe_outputs(stack.dtype.name, nodata)
    if cat is not None:
        descr["category.npy"] = {"units": "uint8 (y, x) edge-case category of each pixel, see 'categories'",
                                 "producer": "make_fixtures.py:edge_case_stack"}
    outputs = {}
    for k, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        np.save(d / f"{k}.npy", arr, allow_pickle=False)
        info = {"shape": list(arr.shape), "dtype": arr.dtype.name}
        info.update(descr[f"{k}.npy"])
        outputs[f"{k}.npy"] = info

    max_n = nt
    meta = {
        "case": name,
        "description": description,
        "dtype": stack.dtype.name,
        "nodata": int(nodata),
        "scale": SCALE,
        "offset": OFFSET,
        "eps": EPS,
        "maxiters": MAXITERS,
        "num_threads": 1,
        "layout": "y,x,band,time",
        "shape": list(stack.shape),
        "float_conversion": "f32 = where(DN == nodata, NaN, float32(DN) * float32(scale) + float32(offset)) "
                            "(odc.algo._masking.to_float_np, numexpr, float32 arithmetic); nodata is "
                            "tested per band value, so an observation with one nodata band has one NaN band",
        "geomedian_observation_validity": "an observation (pixel-time) takes part in the geomedian, the MADs and "
                                          "count only if ALL its bands are valid",
        "percentile_validity": "per band: a value takes part iff it is != nodata (so an observation with one "
                               "nodata band still contributes its other bands)",
        "percentile_rounding": "numpy.round (round half to even) of float64 p*(n-1); identical to Python round(); "
                               "Rust: (p * (n - 1) as f64).round_ties_even()",
        "percentile_index_table": {str(n): [int(synth.percentile_index(p, n)) for p in synth.PERCENTILES]
                                   for n in range(3, max_n + 1)},
        "odcstats_variant": {"scale": ODCSTATS_SCALE, "offset": ODCSTATS_OFFSET, "eps": None,
                             "eps_effective": 0.1 * ODCSTATS_SCALE, "maxiters": ODCSTATS_MAXITERS,
                             "files": sorted(k + ".npy" for k in ods)},
        "outputs": outputs,
        "findings": findings,
        "reference_versions": versions(),
        "reference_source_sha256": source_hashes(),
    }
    if cat is not None:
        meta["categories"] = {str(k): v for k, v in CATEGORIES.items()}
        meta["category_counts"] = {str(k): int((cat == k).sum()) for k in CATEGORIES}
    (d / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def fixture_table():
    rows = []
    total = 0
    for d in sorted(p for p in OUT.iterdir() if p.is_dir()):
        for f in sorted(d.iterdir()):
            size = f.stat().st_size
            total += size
            if f.suffix == ".npy":
                a = np.load(f, mmap_mode="r")
                rows.append(f"| {d.name}/{f.name} | {tuple(a.shape)} | {a.dtype} | {size:,} |")
            else:
                rows.append(f"| {d.name}/{f.name} | | | {size:,} |")
    return rows, total


def main():
    warnings.simplefilter("ignore", RuntimeWarning)  # nanmedian of all-NaN pixels
    OUT.mkdir(parents=True, exist_ok=True)
    metas = {}
    for name, stack, nodata, cat, desc in build_cases():
        metas[name] = write_case(name, stack, nodata, cat, desc)
    # Drop case directories that are no longer generated.
    for d in OUT.iterdir():
        if d.is_dir() and d.name not in metas:
            shutil.rmtree(d)
    readme = OUT / "README.md"
    readme.write_text("")  # placeholder so it is counted in the size table
    rows, total = fixture_table()
    readme.write_text(render_readme(metas, rows, total))
    rows, total = fixture_table()
    log(f"wrote {len(rows)} files, total {total:,} bytes ({total / 1048576:.2f} MiB)")
    for name, m in metas.items():
        log(f"{name}: findings {json.dumps(m['findings'])}")
    if total > SIZE_BUDGET:
        raise SystemExit(f"make_fixtures: fixtures are {total:,} bytes, over the {SIZE_BUDGET:,} budget")


def findings_table(f):
    cases = list(f)
    lines = ["| finding | " + " | ".join(cases) + " |", "| --- |" + " --- |" * len(cases)]
    for key in f[cases[0]]:
        cells = []
        for c in cases:
            v = f[c][key]
            cells.append(f"{v:.3g}" if isinstance(v, float) else json.dumps(v))
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_readme(metas, rows, total):
    from string import Template

    from readme_template import README
    f = {k: m["findings"] for k, m in metas.items()}
    v = next(iter(metas.values()))["reference_versions"]
    hashes = next(iter(metas.values()))["reference_source_sha256"]
    return Template(README).substitute(
        pip_show=pip_show(),
        versions="\n".join(f"- {k} {val}" for k, val in v.items()),
        hashes="\n".join(f"- `{k}` sha256 `{val}`" for k, val in hashes.items()),
        table="\n".join(rows),
        total=f"{total:,}",
        total_mib=f"{total / 1048576:.2f}",
        findings=findings_table(f),
        edge_iso=f"{f['edge_cases']['max_abs_gm_minus_gm_isolated_scaled']:.2g}",
        edge_iso_n=f["edge_cases"]["pixels_where_gm_differs_from_gm_isolated_by_more_than_eps"],
        basic_iso=f"{f['int16_basic']['max_abs_gm_minus_gm_isolated_scaled']:.2g}",
        basic_iso_n=f["int16_basic"]["pixels_where_gm_differs_from_gm_isolated_by_more_than_eps"],
        basic_smad=f"{f['int16_basic']['max_abs_smad_minus_odcstats_smad']:.2g}",
        basic_gmdn=f"{f['int16_basic']['max_abs_gm_minus_odcstats_gm_f32_in_DN']:.2g}",
    )


if __name__ == "__main__":
    main()
