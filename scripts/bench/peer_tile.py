#!/usr/bin/env python3
"""Peer benchmark: the tile of cli/examples/bench_tile.rs computed with the Python stack
that odc-stats users run today (odc-stac + odc-algo + geomad), for time, peak memory and
agreement with our outputs.

    .venv-parity/bin/python scripts/bench/peer_tile.py [--threads 2] [--out DIR] [--ours DIR]
    python3 scripts/bench/peer_tile.py --setup      # create / complete .venv-parity (pinned)

The tile: au-30 (EPSG:3577, 30 m, 3200 x 3200 px) tile x=28, y=28, i.e. left 0, top
-2688000 (grid origin (-2688000, -5472000), 96 km tiles, y growing north; see
shared/core/src/grid.rs), from the synthetic Sentinel-2 catalog bench_tile generates
(.cache/bench/au-tile/inputs/catalog.json: 46 items in UTM 52S / 53S, one per solar day).

What runs, mirroring gm-s2 in shared/stats/src/{gm,masks,morphology}.rs:
1. pystac reads the static catalog; the items whose footprint touches the tile are kept.
2. odc.stac.load(bands B02 B03 B04 B08 B11 B12 + SCL, geobox = the tile grown by the
   mask's halo, bilinear for reflectance and nearest for SCL, uint16 nodata 0,
   groupby="solar_day" (odc-stac fuses a day's items first-valid-wins, as we do),
   dask chunks of --chunk px).
3. Cloud = SCL in {3 cloud shadows, 8 cloud medium, 9 cloud high, 10 thin cirrus}
   (odc.algo.enum_to_bool), cleaned with opening(2) then dilation(5) (odc-algo's own
   kernel, mask_cleanup_np, i.e. scikit-image's isotropic operators); clear = SCL != 0 and
   not cloud; odc.algo.keep_good_only sets the other pixels to nodata in every band; the
   halo is cropped off (as our engine reads each chunk with a halo of 2*2+5 = 9 px).
4. odc.algo.geomedian_with_mads called as odc-stats' gm plugin does
   (odc/stats/plugins/gm.py, StatsGM.reduce: scale 1e-4, offset -1e-4, maxiters 1000,
   reshape_strategy "mem", work_chunks (400, 400), out_chunks (-1, -1, -1), mads and
   count) except eps, which is ours (1e-4) instead of odc-stats' default (0.1 * scale =
   1e-5 for integer input).
5. .compute() on dask's threaded scheduler with --threads workers (default 2, as our
   2-thread runs); each geomedian block uses --gm-threads OpenMP threads (default 1, as
   odc-stats: the parallelism comes from dask), numexpr / BLAS / GDAL are held to one
   thread each, so the process uses --threads cores.

By default two fresh child processes run one after the other (each its own peak RSS):
"load" (the load alone: every chunk read, warped and fused, then reduced to its maximum so
that nothing is kept) and "full" (load + mask + geomedian + MADs, computed into memory).
Nothing is written unless --out DIR is given (.npy per output band plus meta.json); no
COGs are written, so compare `wall_s` with our wall minus its write time.

--ours DIR compares with our outputs: COGs named *_{band}.tif anywhere below DIR (e.g. a
run's --location holding one tile), or a previous --out directory of .npy: share of pixels with |ours - theirs| <= 10 DN (1e-3 reflectance at
scale 1e-4) among pixels valid in both, per band; share of equal counts; agreement of
the valid (count > 0) pixels.

Last line on stdout: one JSON object {"wall_s", "load_s", "peak_rss_mb", "versions",
"comparison", ...}.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-parity"
VENV_PYTHON = VENV / "bin" / "python"
DEFAULT_CATALOG = ROOT / ".cache" / "bench" / "au-tile" / "inputs" / "catalog.json"
# The reference of scripts/parity/make_fixtures.sh plus the loader; pinned so that the
# figures are reproducible (these resolve together with odc-algo 1.2.2 / numpy 2.4.6).
PEER_PINS = ["odc-stac==0.5.3", "odc-loader==0.6.5", "pystac==1.15.2"]
REPORTED_PACKAGES = ["odc-stac", "odc-loader", "odc-geo", "odc-algo", "geomad", "pystac", "numpy", "dask",
                     "xarray", "rasterio", "scipy", "numexpr"]

# The au-30 grid (shared/core/src/grid.rs) and the benchmark's tile.
GRID_EPSG, GRID_ORIGIN, RESOLUTION, TILE_PX = 3577, (-2_688_000.0, -5_472_000.0), 30.0, 3200
TILE = (28, 28)

# gm-s2 as the benchmark configures it (GmConfig::s2() with bands overridden).
BANDS = ["B02", "B03", "B04", "B08", "B11", "B12"]
MASK_BAND = "SCL"
SCL_NODATA = 0
CLOUD_CLASSES = [3, 8, 9, 10]  # shared/stats/src/s2_scl.rs CLOUD_CLASSES
MASK_FILTERS = [("opening", 2), ("dilation", 5)]
NODATA = 0
SCALE = 1e-4
ODC_STATS_OFFSET = -SCALE  # odc-stats' offset; it only shifts the scaled values internally
EPS = 1e-4  # ours; odc-stats leaves eps unset, i.e. 0.1 * scale = 1e-5 for integer input
MAXITERS = 1000
WORK_CHUNKS = (400, 400)  # odc-stats StatsGM default
OUTPUTS = BANDS + ["emad", "smad", "bcmad", "count"]
DN_TOLERANCE = 10  # 1e-3 reflectance at scale 1e-4


def filters_reach(filters):
    """Pixels of context the filters need (masks.rs filters_reach): opening/closing 2r."""
    return sum(2 * r if op in ("opening", "closing") else r for op, r in filters)


HALO = filters_reach(MASK_FILTERS)


def log(*a):
    print("peer_tile:", *a, file=sys.stderr, flush=True)


def die(msg):
    print(f"peer_tile: ERROR: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


def peak_rss_mb():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)  # Linux: KiB


def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return round(r.ru_utime + r.ru_stime, 1)


# --------------------------------------------------------------------------- environment


def setup_venv():
    """Create / complete .venv-parity: the parity reference, then the loader pins."""
    subprocess.run(["bash", str(ROOT / "scripts" / "parity" / "make_fixtures.sh"), "--venv-only"], check=True)
    subprocess.run([str(VENV_PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q", *PEER_PINS],
                   check=True)
    log("venv ready:", VENV)


def ensure_stack():
    """Import the Python stack, or switch to .venv-parity's interpreter, or explain."""
    try:
        import geomad  # noqa: F401
        import odc.algo  # noqa: F401
        import odc.stac  # noqa: F401
        import pystac  # noqa: F401
        return
    except ImportError as e:
        missing = e
    if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != VENV.resolve():
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), __file__, *sys.argv[1:]])
    die(f"the Python stack is not importable ({missing}). Create the venv with\n"
        f"    python3 {Path(__file__).relative_to(ROOT)} --setup\n"
        f"(scripts/parity/make_fixtures.sh --venv-only, then pip install {' '.join(PEER_PINS)} into .venv-parity)")


def limit_threads():
    """Hold every library's own thread pool to one thread: dask's workers are the
    parallelism (and --gm-threads inside each geomedian block). Before numpy is imported."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                "NUMEXPR_MAX_THREADS"):
        os.environ[var] = "1"
    os.environ["GDAL_NUM_THREADS"] = "1"


def versions():
    from importlib.metadata import PackageNotFoundError, version

    import rasterio

    v = {}
    for p in REPORTED_PACKAGES:
        try:
            v[p] = version(p)
        except PackageNotFoundError:
            v[p] = None
    v["gdal"] = rasterio.__gdal_version__
    v["python"] = sys.version.split()[0]
    return v


# --------------------------------------------------------------------------- inputs


def tile_geobox(crop, halo):
    """The tile's GeoBox (its top-left crop x crop px when crop < 3200), grown by halo px."""
    from affine import Affine
    from odc.geo.geobox import GeoBox

    x, y = TILE
    size = TILE_PX * RESOLUTION
    left = GRID_ORIGIN[0] + x * size
    top = GRID_ORIGIN[1] + (y + 1) * size  # y grows north: the tile's top is its max y
    n = crop + 2 * halo
    return GeoBox((n, n), Affine(RESOLUTION, 0.0, left - halo * RESOLUTION, 0.0, -RESOLUTION,
                                 top + halo * RESOLUTION), f"EPSG:{GRID_EPSG}")


def asset_key(item, name):
    """The asset holding band `name`: by key (any case), eo:bands name or common name, as
    our STAC reader finds bands (the synthetic items key reflectance by common name)."""
    for key, asset in item.assets.items():
        if key.lower() == name.lower():
            return key
        for b in asset.extra_fields.get("eo:bands", []):
            if name.lower() in (str(b.get("name", "")).lower(), str(b.get("common_name", "")).lower()):
                return key
    raise SystemExit(f"peer_tile: item {item.id} has no asset for band {name}")


def read_items(catalog, geobox):
    import pystac
    from odc.geo.geom import Geometry

    cat = pystac.Catalog.from_file(str(catalog))
    items = list(cat.get_items(recursive=True))
    if not items:
        die(f"{catalog} holds no items")
    footprint = geobox.extent.to_crs("EPSG:4326")
    kept = [it for it in items if it.geometry and Geometry(it.geometry, "EPSG:4326").intersects(footprint)]
    for it in kept:
        it.make_asset_hrefs_absolute()  # "./B02.tif" -> a local path
        baseline = str(it.properties.get("s2:processing_baseline", "00.00"))
        # Our gm-s2 removes the +1000 offset of baseline >= 04.00; odc-stac does not, so a
        # comparison would be meaningless on such items: refuse them rather than mislead.
        if tuple(int(p) for p in baseline.split(".")[:2]) >= (4, 0):
            die(f"item {it.id} has processing baseline {baseline} (>= 04.00, +1000 offset): "
                "this peer does not harmonise it as gm-s2 does")
    keys = {b: asset_key(kept[0], b) for b in BANDS + [MASK_BAND]}
    for it in kept[1:]:
        if {b: asset_key(it, b) for b in keys} != keys:
            die(f"item {it.id} keys its bands differently from {kept[0].id}")
    return items, kept, keys


# --------------------------------------------------------------------------- the pipeline


def cleanup_exact(cloud, filters, halo):
    """opening / dilation with odc-algo's kernel (mask_cleanup_np), per time slice, over
    dask blocks with the filters' full reach as overlap.

    odc.algo.mask_cleanup itself overlaps blocks by sum(radii) = 7 px, not the 9 px an
    opening(2) + dilation(5) reaches, and pads the array edge with False (so erosion eats
    in from outside, where ours and scikit-image treat outside as set): both make it
    differ from ours near block seams and edges. --odc-mask-cleanup uses it anyway."""
    import dask.array as da
    import numpy as np
    import xarray as xr
    from odc.algo._masking import mask_cleanup_np

    def per_slice(block):
        out = np.empty_like(block)
        for t in range(block.shape[0]):
            out[t] = mask_cleanup_np(block[t], mask_filters=filters)
        return out

    data = da.map_overlap(per_slice, cloud.data.astype(bool), depth={0: 0, 1: halo, 2: halo},
                          boundary="none", dtype=bool)
    return xr.DataArray(data, dims=cloud.dims, coords=cloud.coords, attrs=cloud.attrs)


def build(args, items, keys, geobox, crop, halo, load_only):
    """The lazy computation: the loaded dataset (load_only) or the gm-s2 outputs."""
    import odc.stac
    from odc.algo import enum_to_bool, geomedian_with_mads, keep_good_only, mask_cleanup

    inv = {k: b for b, k in keys.items()}
    ds = odc.stac.load(
        items,
        bands=list(keys.values()),
        geobox=geobox,
        resampling={"*": "bilinear", keys[MASK_BAND]: "nearest"},
        chunks={"x": args.chunk, "y": args.chunk},
        groupby="solar_day",
        dtype="uint16",
        nodata=NODATA,
    ).rename(inv)
    if load_only:
        return ds
    scl = ds[MASK_BAND]
    cloud = enum_to_bool(scl, CLOUD_CLASSES)
    if args.odc_mask_cleanup:
        cloud = mask_cleanup(cloud, mask_filters=MASK_FILTERS)
    else:
        cloud = cleanup_exact(cloud, MASK_FILTERS, halo)
    clear = (scl != SCL_NODATA) & ~cloud
    data = keep_good_only(ds[BANDS], clear)
    # Crop the halo: the statistic covers the tile only.
    data = data.isel(y=slice(halo, halo + crop), x=slice(halo, halo + crop))
    for b in BANDS:
        data[b].attrs["nodata"] = NODATA
    return geomedian_with_mads(
        data,
        compute_mads=True,
        compute_count=True,
        out_chunks=(-1, -1, -1),
        reshape_strategy=args.reshape,
        work_chunks=WORK_CHUNKS,
        scale=SCALE,
        offset=ODC_STATS_OFFSET,
        eps=EPS,
        maxiters=MAXITERS,
        num_threads=args.gm_threads,
    ), ds


def phase(args):
    """One measured pass in this (fresh) process: 'load' or 'full'."""
    import dask

    limit = {"scheduler": "threads", "num_workers": args.threads}
    rss_start = peak_rss_mb()
    t0 = time.perf_counter()
    geobox = tile_geobox(args.crop, args.halo)
    all_items, items, keys = read_items(args.catalog, geobox)
    items_s = time.perf_counter() - t0
    rec = {"phase": args.phase, "threads": args.threads, "gm_threads": args.gm_threads, "chunk": args.chunk,
           "pixels": args.crop * args.crop, "halo": args.halo, "items_in_catalog": len(all_items),
           "items": len(items), "items_s": round(items_s, 2), "rss_after_imports_mb": rss_start}
    log(f"{args.phase}: {len(items)} of {len(all_items)} items touch the tile; {args.threads} threads")

    t1 = time.perf_counter()
    if args.phase == "load":
        ds = build(args, items, keys, geobox, args.crop, args.halo, load_only=True)
        rec["observation_days"] = ds.sizes["time"]
        # Reduce each chunk to its maximum so that every pixel is read, warped and fused
        # but nothing is kept (a .compute() of the data would hold ~6.7 GB).
        with dask.config.set(limit):
            maxima = dask.compute(*[ds[v].data.max() for v in ds.data_vars])
        rec["band_maxima"] = {v: int(m) for v, m in zip(ds.data_vars, maxima)}
    else:
        gm, ds = build(args, items, keys, geobox, args.crop, args.halo, load_only=False)
        rec["observation_days"] = ds.sizes["time"]
        with dask.config.set(limit):
            res = gm.compute()
        out = {b: res[b].values for b in BANDS}
        out.update(emad=res["emad"].values, smad=res["smad"].values, bcmad=res["bcmad"].values,
                   count=res["count"].values)
        rec["valid_share"] = round(float((out["count"] > 0).mean()), 6)
        rec["mean_count"] = round(float(out["count"].mean()), 3)
        if args.out:
            write_npy(args.out, out, tile_geobox(args.crop, 0))
    rec["wall_s"] = round(time.perf_counter() - t1, 2)
    rec["peak_rss_mb"] = peak_rss_mb()
    rec["cpu_s"] = cpu_s()
    print(json.dumps(rec), flush=True)


def write_npy(out_dir, out, geobox):
    import numpy as np

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, arr in out.items():
        np.save(out_dir / f"{name}.npy", arr)
    t = geobox.transform
    meta = {"epsg": GRID_EPSG, "transform": [t.c, t.a, t.b, t.f, t.d, t.e], "shape": list(geobox.shape),
            "bands": {n: str(a.dtype) for n, a in out.items()},
            "units": "bands: DN (uint16, nodata 0, truncated as geomedian_with_mads does); emad: DN; "
                     "smad, bcmad: unitless; count: valid observations"}
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=1))
    log(f"wrote {len(out)} bands to {out_dir}")


# --------------------------------------------------------------------------- comparison


def read_outputs(directory, crop):
    """Output bands from DIR: COGs named *_{band}.tif anywhere below it (ours: one tile),
    else {band}.npy (an --out directory), checked to lie on the tile's grid; each cut to the top-left crop x crop."""
    import numpy as np

    d = Path(directory)
    if not d.is_dir():
        die(f"--ours {d}: not a directory")
    expected = tile_geobox(TILE_PX, 0).transform
    out = {}
    for band in OUTPUTS:
        tifs = sorted(d.rglob(f"*_{band}.tif"))  # at any depth: a run's location works as is
        if len(tifs) > 1:
            die(f"--ours {d}: several files for {band}: {[t.name for t in tifs]}")
        if tifs:
            import rasterio
            from rasterio.windows import Window

            with rasterio.open(tifs[0]) as src:
                if src.crs is None or src.crs.to_epsg() != GRID_EPSG or not src.transform.almost_equals(expected) \
                        or src.shape != (TILE_PX, TILE_PX):
                    die(f"{tifs[0]} is not on the tile's grid: {src.crs} {src.transform} {src.shape}")
                out[band] = src.read(1, window=Window(0, 0, crop, crop))
        elif (d / f"{band}.npy").exists():
            meta = json.loads((d / "meta.json").read_text())
            tr = meta["transform"]
            if meta["epsg"] != GRID_EPSG or any(abs(a - b) > 1e-6 for a, b in
                                                 zip(tr, [expected.c, expected.a, expected.b, expected.f,
                                                          expected.d, expected.e])):
                die(f"{d / 'meta.json'}: not the tile's grid")
            arr = np.load(d / f"{band}.npy")
            if arr.shape[0] < crop or arr.shape[1] < crop:
                die(f"{d / (band + '.npy')} is {arr.shape}, smaller than --crop {crop}")
            out[band] = arr[:crop, :crop]
        else:
            die(f"--ours {d}: no *_{band}.tif nor {band}.npy")
    return out


def compare(ours, theirs):
    """Agreement of `theirs` (this peer) with `ours`, both dicts band -> 2-D array."""
    import numpy as np

    co, ct = ours["count"].astype(np.int64), theirs["count"].astype(np.int64)
    vo, vt = co > 0, ct > 0
    both = vo & vt
    res = {
        "pixels": int(co.size),
        "valid_ours": int(vo.sum()),
        "valid_theirs": int(vt.sum()),
        "valid_both": int(both.sum()),
        "valid_agreement": round(float((vo == vt).mean()), 6),
        "count_equal_share": round(float((co == ct).mean()), 6),
        "count_mean_abs_diff": round(float(np.abs(co - ct).mean()), 4),
        "dn_tolerance": DN_TOLERANCE,
        "diff": "theirs - ours",
        "bands": {},
    }
    for b in BANDS:
        o, t = ours[b].astype(np.int64), theirs[b].astype(np.int64)
        # Valid in both: a count on both sides and a value (a geomedian truncated to 0 DN
        # would read as nodata; excluded rather than counted as a disagreement).
        m = both & (o != NODATA) & (t != NODATA)
        d = (t - o)[m]
        res["bands"][b] = {
            "within_tol_share": round(float((np.abs(d) <= DN_TOLERANCE).mean()), 6) if d.size else None,
            "mean_diff_dn": round(float(d.mean()), 3) if d.size else None,
            "p99_abs_diff_dn": float(np.percentile(np.abs(d), 99)) if d.size else None,
            "max_abs_diff_dn": int(np.abs(d).max()) if d.size else None,
        }
    shares = [v["within_tol_share"] for v in res["bands"].values() if v["within_tol_share"] is not None]
    res["bands_within_tol_share_min"] = min(shares) if shares else None
    # MADs, informative: emad in DN on both sides; smad/bcmad unitless (odc-stats' offset
    # of -1e-4 shifts the vectors, so they cannot match exactly).
    for name, tol in (("emad", float(DN_TOLERANCE)), ("smad", 1e-3), ("bcmad", 1e-3)):
        o, t = ours[name].astype(np.float64), theirs[name].astype(np.float64)
        m = both & np.isfinite(o) & np.isfinite(t)
        d = np.abs(t - o)[m]
        res[name] = {"tol": tol, "within_tol_share": round(float((d <= tol).mean()), 6) if d.size else None,
                     "median_abs_diff": float(np.median(d)) if d.size else None}
    return res


# --------------------------------------------------------------------------- driver


def run_child(args, which, out_dir):
    cmd = [sys.executable, __file__, "--phase", which, "--threads", str(args.threads), "--gm-threads",
           str(args.gm_threads), "--chunk", str(args.chunk), "--crop", str(args.crop), "--halo", str(args.halo),
           "--reshape", args.reshape, "--catalog", str(args.catalog)]
    if args.odc_mask_cleanup:
        cmd.append("--odc-mask-cleanup")
    if out_dir:
        cmd += ["--out", str(out_dir)]
    log("running", which, "pass")
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if p.returncode != 0:
        die(f"the {which} pass failed ({p.returncode}); its messages are above")
    lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
    if not lines:
        die(f"the {which} pass printed no result")
    rec = json.loads(lines[-1])
    log(which, {k: rec[k] for k in ("wall_s", "peak_rss_mb", "cpu_s")})
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setup", action="store_true", help="create / complete .venv-parity with the pins, then exit")
    ap.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG, help="static STAC catalog (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=2, help="dask threads (default 2)")
    ap.add_argument("--gm-threads", type=int, default=1,
                    help="OpenMP threads inside each geomedian block (default 1, as odc-stats)")
    ap.add_argument("--chunk", type=int, default=1024, help="load chunk size in px (default 1024)")
    ap.add_argument("--crop", type=int, default=TILE_PX,
                    help="process only the top-left N x N px of the tile (quick checks; default the whole tile)")
    ap.add_argument("--halo", type=int, default=HALO,
                    help=f"px loaded around the tile for the mask filters (default {HALO}, as ours; 0: the tile only)")
    ap.add_argument("--reshape", choices=["mem", "yxbt"], default="mem",
                    help="geomedian_with_mads reshape_strategy (default mem, as odc-stats: the whole masked "
                         "stack is held in RAM; yxbt streams)")
    ap.add_argument("--odc-mask-cleanup", action="store_true",
                    help="clean the cloud mask with odc.algo.mask_cleanup verbatim (7 px block overlap)")
    ap.add_argument("--load-only", action="store_true", help="only the load pass")
    ap.add_argument("--no-load-pass", action="store_true", help="skip the separate load pass")
    ap.add_argument("--out", type=Path, help="write the outputs as .npy (+ meta.json) here")
    ap.add_argument("--ours", type=Path, help="compare with our outputs here (*_{band}.tif, or .npy + meta.json)")
    ap.add_argument("--theirs", type=Path,
                    help="with --ours: compare this earlier --out directory instead of computing anything")
    ap.add_argument("--phase", choices=["load", "full"], help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.setup:
        setup_venv()
        return
    if not 0 < args.crop <= TILE_PX:
        die(f"--crop must be in 1..{TILE_PX}")
    if args.reshape == "mem" and args.crop > WORK_CHUNKS[0] and args.crop % WORK_CHUNKS[0]:
        # odc-algo's in-memory sink (_da_from_mem) misplaces a short last work chunk.
        die(f"--crop must be at most {WORK_CHUNKS[0]} or a multiple of it with --reshape mem")
    if args.load_only and (args.ours or args.out):
        die("--load-only computes no outputs: drop --out / --ours")
    if args.theirs:
        if not args.ours:
            die("--theirs needs --ours")
        ensure_stack()
        comparison = compare(read_outputs(args.ours, args.crop), read_outputs(args.theirs, args.crop))
        comparison.update(ours=str(args.ours), theirs=str(args.theirs))
        print(json.dumps({"comparison": comparison}), flush=True)
        return
    if not args.catalog.exists():
        die(f"no catalog at {args.catalog}: run the tile benchmark once "
            "(target/release/examples/bench_tile .cache/bench/au-tile decode, or scripts/bench/tile.py) to generate it")
    limit_threads()
    ensure_stack()

    if args.phase:
        phase(args)
        return

    started = time.perf_counter()
    load = None if args.no_load_pass else run_child(args, "load", None)
    full = comparison = None
    if not args.load_only:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="peer_tile_") as tmp:
            out_dir = args.out or (Path(tmp) if args.ours else None)
            full = run_child(args, "full", out_dir)
            if args.ours:
                theirs = read_outputs(out_dir, args.crop)
                ours = read_outputs(args.ours, args.crop)
                comparison = compare(ours, theirs)
                comparison["ours"] = str(args.ours)
    main_rec = full or load
    result = {
        "wall_s": full["wall_s"] if full else None,
        "load_s": load["wall_s"] if load else None,
        "peak_rss_mb": full["peak_rss_mb"] if full else load["peak_rss_mb"],
        "load_peak_rss_mb": load["peak_rss_mb"] if load else None,
        "cpu_s": full["cpu_s"] if full else None,
        "load_cpu_s": load["cpu_s"] if load else None,
        "threads": args.threads,
        "gm_threads": args.gm_threads,
        "pixels": main_rec["pixels"],
        "items": main_rec["items"],
        "observation_days": main_rec["observation_days"],
        "items_s": main_rec["items_s"],
        "valid_share": full["valid_share"] if full else None,
        "config": {"bands": BANDS, "mask_band": MASK_BAND, "cloud_classes": CLOUD_CLASSES,
                   "mask_filters": MASK_FILTERS, "mask_cleanup": "odc.algo.mask_cleanup" if args.odc_mask_cleanup
                   else f"odc.algo mask_cleanup_np with {args.halo} px overlap", "halo": args.halo,
                   "scale": SCALE, "offset": ODC_STATS_OFFSET, "eps": EPS, "maxiters": MAXITERS,
                   "reshape_strategy": args.reshape, "work_chunks": WORK_CHUNKS, "chunk": args.chunk,
                   "resampling": {"*": "bilinear", MASK_BAND: "nearest"}, "groupby": "solar_day"},
        "versions": versions(),
        "comparison": comparison,
        "driver_wall_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
