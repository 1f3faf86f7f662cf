//! The tile read path against `gdalwarp` (GDAL's command-line warper, same resampling,
//! same error threshold, default overview choice): nearest and mode identical, bilinear,
//! cubic and average within 1 DN on at least 99.9% of pixels. Sources are synthetic
//! rasters laid on synthetic grids and on the real grids of catalogue items in
//! tests/data/stac (Sentinel-2 in UTM zones 28 and 35 and in Alaska, Landsat ARD in UTM
//! 56), read into the Africa (EPSG:6933) and Australian (EPSG:3577) output grids; plus
//! the odd inputs: no overviews, stripped GeoTIFFs, no nodata value, sources that only
//! graze the window, and bands of one dataset on grids offset from each other; and the
//! other integer types (int16 with negative values, uint8 clamped where cubic overshoots).

use gdal::raster::{Buffer, RasterCreationOptions};
use gdal::DriverManager;
use std::path::{Path, PathBuf};
use std::process::Command;
use stratus_core::{GeoBox, SampleType};
use stratus_raster::crs::spatial_ref;
use stratus_raster::crs_operation::CrsOperation;
use stratus_raster::{read_bands, BandRequest, OpenInputs, ReadMode, Resampling};

const NODATA: u16 = 0;
const ET: f64 = 0.125;

struct Source {
    epsg: u32,
    geo_transform: [f64; 6],
    width: usize,
    height: usize,
    tiled: bool,
    overviews: bool,
    nodata: Option<u16>,
    categorical: bool,
}

/// A pseudo-random but smooth-ish field with nodata holes, so that every kernel and the
/// nodata rules are exercised.
fn value(x: usize, y: usize, categorical: bool, nodata: bool) -> u16 {
    let h = (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    let h = (h ^ (h >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    if nodata && ((x / 40) * 7 + (y / 30) * 3).is_multiple_of(11) && (x % 40) < 25 {
        return NODATA;
    }
    if categorical {
        return 1 + ((x / 9 + y / 13 + (h % 3) as usize) % 11) as u16;
    }
    let base = 2000.0 + 800.0 * (x as f64 / 37.0).sin() + 600.0 * (y as f64 / 23.0).cos();
    (base as u16).wrapping_add((h % 200) as u16).max(1)
}

fn write_source(dir: &Path, name: &str, s: &Source) -> PathBuf {
    let path = dir.join(format!("{name}.tif"));
    let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
    let mut opts = vec!["COMPRESS=DEFLATE"];
    if s.tiled {
        opts.extend(["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256"]);
    }
    let opts = RasterCreationOptions::from_iter(opts);
    let mut ds = driver.create_with_band_type_with_options::<u16, _>(&path, s.width, s.height, 1, &opts).unwrap();
    ds.set_geo_transform(&s.geo_transform).unwrap();
    ds.set_spatial_ref(&spatial_ref(s.epsg).unwrap()).unwrap();
    let data: Vec<u16> = (0..s.height)
        .flat_map(|y| (0..s.width).map(move |x| (x, y)))
        .map(|(x, y)| value(x, y, s.categorical, s.nodata.is_some()))
        .collect();
    {
        let mut band = ds.rasterband(1).unwrap();
        if let Some(nd) = s.nodata {
            band.set_no_data_value(Some(nd as f64)).unwrap();
        }
        let mut buf = Buffer::new((s.width, s.height), data);
        band.write((0, 0), (s.width, s.height), &mut buf).unwrap();
    }
    if s.overviews {
        let alg = if s.categorical { "NEAREST" } else { "AVERAGE" };
        ds.build_overviews(alg, &[2, 4, 8, 16], &[]).unwrap();
    }
    path
}

/// An output window of `size` pixels at `res` on the lattice of a grid with origin
/// `origin`, placed with its top-left corner at `frac` of the source's extent (after
/// transforming the source's centre line to the output CRS).
fn window_over(s: &Source, epsg: u32, res: f64, origin: (f64, f64), size: usize, frac: (f64, f64)) -> GeoBox {
    use stratus_core::geometry::CrsTransform;
    let g = &s.geo_transform;
    let px = (s.width as f64 * frac.0, s.height as f64 * frac.1);
    let mut p = [(g[0] + px.0 * g[1], g[3] + px.1 * g[5])];
    stratus_raster::GdalCrsTransform.transform(s.epsg, epsg, &mut p).unwrap();
    let snap = |v: f64, o: f64| o + ((v - o) / res).floor() * res;
    GeoBox {
        epsg,
        left: snap(p[0].0, origin.0),
        top: snap(p[0].1, origin.1),
        resolution: res,
        width: size,
        height: size,
    }
}

fn ours(path: &Path, window: &GeoBox, method: Resampling) -> Vec<u16> {
    let p = path.to_str().unwrap();
    let inputs = OpenInputs::new([p]);
    let req = BandRequest {
        path: p,
        name: p,
        resampling: method,
        dtype: SampleType::Uint16,
        nodata: NODATA,
        declared_nodata: None,
    };
    read_bands(&inputs, &[req], window, window, ET, &CrsOperation::default(), ReadMode::Resample).unwrap().remove(0)
}

fn gdalwarp(path: &Path, window: &GeoBox, method: Resampling, dir: &Path) -> Vec<u16> {
    let out = dir.join(format!("gdalwarp-{}.tif", std::process::id() as u64 * 1000 + rand_suffix()));
    let b = window.bounds();
    let status = Command::new("gdalwarp")
        .args(["-q", "-overwrite", "-of", "GTiff", "-ot", "UInt16"])
        .args(["-t_srs", &format!("EPSG:{}", window.epsg)])
        .args(["-te", &b.min_x.to_string(), &b.min_y.to_string(), &b.max_x.to_string(), &b.max_y.to_string()])
        .args(["-ts", &window.width.to_string(), &window.height.to_string()])
        .args(["-r", &method.to_string(), "-et", &ET.to_string(), "-dstnodata", &NODATA.to_string()])
        // One warp chunk, as our window is one chunk (GDAL otherwise splits a window that
        // is mostly off the source, which moves its approximation breakpoints).
        .args(["-wo", "SRC_FILL_RATIO_HEURISTICS=NO"])
        .arg(path)
        .arg(&out)
        .status()
        .unwrap_or_else(|e| {
            panic!("gdalwarp (Debian package gdal-bin, installed by scripts/setup.sh) cannot run: {e}")
        });
    assert!(status.success(), "gdalwarp failed on {}", path.display());
    let ds = gdal::Dataset::open(&out).unwrap();
    let v = ds.rasterband(1).unwrap().read_as::<u16>(
        (0, 0),
        (window.width, window.height),
        (window.width, window.height),
        None,
    );
    let _ = std::fs::remove_file(&out);
    v.unwrap().into_shape_and_vec().1
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[derive(Debug)]
struct Diff {
    pixels: usize,
    /// Pixels where both have data.
    valid: usize,
    /// Pixels valid in one and nodata in the other.
    coverage_mismatch: usize,
    exact: usize,
    within_1: usize,
    max_diff: i32,
}

fn diff(a: &[u16], b: &[u16]) -> Diff {
    let mut d = Diff { pixels: a.len(), valid: 0, coverage_mismatch: 0, exact: 0, within_1: 0, max_diff: 0 };
    for (&x, &y) in a.iter().zip(b) {
        match (x == NODATA, y == NODATA) {
            (true, true) => d.exact += 1,
            (false, false) => {
                d.valid += 1;
                let e = (x as i32 - y as i32).abs();
                d.max_diff = d.max_diff.max(e);
                d.exact += (e == 0) as usize;
                d.within_1 += (e <= 1) as usize;
            }
            _ => d.coverage_mismatch += 1,
        }
    }
    d
}

/// Compare ours with gdalwarp for `methods` and assert the parity rules.
fn check(name: &str, path: &Path, window: &GeoBox, methods: &[Resampling], dir: &Path) {
    for &m in methods {
        let a = ours(path, window, m);
        let b = gdalwarp(path, window, m, dir);
        let d = diff(&a, &b);
        eprintln!("{name} {m}: {d:?}");
        assert!(d.valid > d.pixels / 20, "{name} {m}: the window barely overlaps the source: {d:?}");
        match m {
            Resampling::Nearest | Resampling::Mode => {
                assert_eq!(d.exact, d.pixels, "{name} {m}: must be identical to gdalwarp: {d:?}")
            }
            _ => {
                let ok = (d.within_1 + d.pixels - d.valid - d.coverage_mismatch) as f64;
                assert!(ok / d.pixels as f64 >= 0.999, "{name} {m}: fewer than 99.9% within 1 DN: {d:?}");
            }
        }
    }
}

const ALL: [Resampling; 5] =
    [Resampling::Nearest, Resampling::Bilinear, Resampling::Cubic, Resampling::Average, Resampling::Mode];

const AFRICA: (u32, (f64, f64)) = (6933, (-17_376_000.0, -7_392_000.0));
const AUSTRALIA: (u32, (f64, f64)) = (3577, (-2_688_000.0, -5_472_000.0));

fn item_grid(file: &str, asset: &str) -> (u32, [f64; 6], (usize, usize)) {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/stac").join(file);
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    let (item, a) = match v["type"].as_str() {
        Some("FeatureCollection") => (&v["features"][0], &v["features"][0]["assets"][asset]),
        _ => (&v, &v["assets"][asset]),
    };
    let get = |k: &str| a.get(k).or_else(|| item["properties"].get(k)).unwrap_or_else(|| panic!("{file}: no {k}"));
    let t: Vec<f64> = serde_json::from_value(get("proj:transform").clone()).unwrap();
    let shape: Vec<usize> = serde_json::from_value(get("proj:shape").clone()).unwrap();
    let epsg = get("proj:epsg").as_u64().unwrap() as u32;
    (epsg, [t[2], t[0], t[1], t[5], t[3], t[4]], (shape[1], shape[0]))
}

/// A real item's band grid, cropped to `size` pixels starting `at` (its pixel lattice and
/// CRS kept), as a synthetic raster.
fn real_source(file: &str, asset: &str, at: (usize, usize), size: usize, categorical: bool) -> Source {
    let (epsg, gt, (w, h)) = item_grid(file, asset);
    assert!(at.0 + size <= w && at.1 + size <= h, "{file} {asset}: crop outside the grid");
    let mut g = gt;
    g[0] += at.0 as f64 * gt[1];
    g[3] += at.1 as f64 * gt[5];
    Source {
        epsg,
        geo_transform: g,
        width: size,
        height: size,
        tiled: true,
        overviews: true,
        nodata: Some(NODATA),
        categorical,
    }
}

#[test]
fn synthetic_utm_to_albers_at_several_resolutions() {
    let dir = tempfile::tempdir().unwrap();
    let s = Source {
        epsg: 32755,
        geo_transform: [600_000.0, 10.0, 0.0, 6_100_000.0, 0.0, -10.0],
        width: 1600,
        height: 1600,
        tiled: true,
        overviews: true,
        nodata: Some(NODATA),
        categorical: false,
    };
    let path = write_source(dir.path(), "utm55", &s);
    let (epsg, origin) = AUSTRALIA;
    // Same resolution (no overview), 2.5x (overview 2), 6x (overview 4): kernels stretched.
    for (res, size) in [(10.0, 300), (25.0, 200), (60.0, 120)] {
        let w = window_over(&s, epsg, res, origin, size, (0.2, 0.2));
        check(&format!("synthetic 10 m -> {res} m"), &path, &w, &ALL, dir.path());
    }
    // Upsampling 10 m -> 4 m.
    let w = window_over(&s, epsg, 4.0, origin, 300, (0.4, 0.4));
    check("synthetic 10 m -> 4 m", &path, &w, &ALL, dir.path());
}

#[test]
fn real_sentinel2_grids_into_the_africa_grid() {
    let dir = tempfile::tempdir().unwrap();
    let (epsg, origin) = AFRICA;
    // Earth Search item, UTM 28N: 10 m and 20 m bands, and SCL (categorical, nearest/mode).
    let b02 = real_source("S2A_28QCH_20200714_0_L2A.json", "B02", (4000, 4000), 1400, false);
    let b05 = real_source("S2A_28QCH_20200714_0_L2A.json", "B05", (2000, 2000), 800, false);
    let scl = real_source("S2A_28QCH_20200714_0_L2A.json", "SCL", (2000, 2000), 800, true);
    let p02 = write_source(dir.path(), "b02", &b02);
    let p05 = write_source(dir.path(), "b05", &b05);
    let pscl = write_source(dir.path(), "scl", &scl);
    check("28QCH B02 -> africa-10", &p02, &window_over(&b02, epsg, 10.0, origin, 300, (0.2, 0.3)), &ALL, dir.path());
    check("28QCH B02 -> africa-60", &p02, &window_over(&b02, epsg, 60.0, origin, 150, (0.1, 0.1)), &ALL, dir.path());
    check("28QCH B05 -> africa-10", &p05, &window_over(&b05, epsg, 10.0, origin, 300, (0.3, 0.2)), &ALL, dir.path());
    check(
        "28QCH SCL -> africa-20",
        &pscl,
        &window_over(&scl, epsg, 20.0, origin, 300, (0.2, 0.2)),
        &[Resampling::Nearest, Resampling::Mode],
        dir.path(),
    );
    // Planetary Computer item in UTM 35S (the tall strip over Africa).
    let strip = real_source("site1-20200606-tall-strip-africa.geojson", "B02", (6000, 3000), 1200, false);
    let ps = write_source(dir.path(), "strip", &strip);
    check("35MNM B02 -> africa-20", &ps, &window_over(&strip, epsg, 20.0, origin, 250, (0.2, 0.2)), &ALL, dir.path());
    // Alaska at 61 N into EASE-Grid: pixels stretched differently in x and y.
    let alaska =
        real_source("S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json", "B04", (3000, 3000), 1200, false);
    let pa = write_source(dir.path(), "alaska", &alaska);
    check("06VVN B04 -> EASE 20 m", &pa, &window_over(&alaska, epsg, 20.0, origin, 250, (0.2, 0.2)), &ALL, dir.path());
}

#[test]
fn real_landsat_ard_grid_into_the_australian_grid() {
    let dir = tempfile::tempdir().unwrap();
    let (epsg, origin) = AUSTRALIA;
    let s =
        real_source("ga_ls8c_ard_3-1-0_088080_2020-05-25_final.stac-item.json", "nbart_red", (3000, 3000), 900, false);
    let p = write_source(dir.path(), "ga", &s);
    check("GA ARD -> au-30", &p, &window_over(&s, epsg, 30.0, origin, 300, (0.2, 0.2)), &ALL, dir.path());
    check("GA ARD -> au-60", &p, &window_over(&s, epsg, 60.0, origin, 150, (0.1, 0.1)), &ALL, dir.path());
}

#[test]
fn odd_inputs_read_like_gdalwarp() {
    let dir = tempfile::tempdir().unwrap();
    let (epsg, origin) = AUSTRALIA;
    let base = Source {
        epsg: 32754,
        geo_transform: [400_000.0, 10.0, 0.0, 7_000_000.0, 0.0, -10.0],
        width: 900,
        height: 900,
        tiled: true,
        overviews: false,
        nodata: Some(NODATA),
        categorical: false,
    };
    // No overviews, coarser output: read at full resolution with a stretched kernel.
    let p = write_source(dir.path(), "no-ovr", &base);
    check("no overviews -> 30 m", &p, &window_over(&base, epsg, 30.0, origin, 200, (0.1, 0.1)), &ALL, dir.path());
    // Stripped (untiled) GeoTIFF.
    let stripped = Source { tiled: false, ..base };
    let p = write_source(dir.path(), "stripped", &stripped);
    check("stripped", &p, &window_over(&stripped, epsg, 10.0, origin, 300, (0.3, 0.3)), &ALL, dir.path());
    // No nodata value: every source pixel is data.
    let plain = Source { nodata: None, tiled: true, ..stripped };
    let p = write_source(dir.path(), "no-nodata", &plain);
    check("no nodata", &p, &window_over(&plain, epsg, 10.0, origin, 300, (0.3, 0.3)), &ALL, dir.path());
    // A source that only grazes the window: its corner pokes into it.
    let p = write_source(dir.path(), "graze", &base);
    check("grazing", &p, &window_over(&base, epsg, 10.0, origin, 300, (0.8, 0.8)), &ALL, dir.path());
}

#[test]
fn aligned_source_is_copied_and_matches_gdalwarp() {
    let dir = tempfile::tempdir().unwrap();
    let (epsg, origin) = AFRICA;
    // A source on the africa-10 lattice, 37 pixels off the window.
    let left = origin.0 + 2_000_000.0;
    let top = origin.1 + 3_000_000.0;
    let s = Source {
        epsg,
        geo_transform: [left, 10.0, 0.0, top, 0.0, -10.0],
        width: 600,
        height: 600,
        tiled: true,
        overviews: true,
        nodata: Some(NODATA),
        categorical: false,
    };
    let p = write_source(dir.path(), "aligned", &s);
    let w = GeoBox { epsg, left: left + 370.0, top: top - 370.0, resolution: 10.0, width: 300, height: 300 };
    check("aligned", &p, &w, &ALL, dir.path());
    // Hanging off the source's edge.
    let w = GeoBox { epsg, left: left + 4_500.0, top: top - 4_500.0, resolution: 10.0, width: 300, height: 300 };
    check("aligned, partly outside", &p, &w, &[Resampling::Nearest, Resampling::Bilinear], dir.path());
}

#[test]
fn bands_on_offset_grids_of_one_dataset() {
    // A cropped product: its 20 m bands start one 10 m pixel away from its 10 m bands.
    let dir = tempfile::tempdir().unwrap();
    let (epsg, origin) = AFRICA;
    let ten = Source {
        epsg: 32633,
        geo_transform: [300_000.0, 10.0, 0.0, 1_000_000.0, 0.0, -10.0],
        width: 1000,
        height: 1000,
        tiled: true,
        overviews: true,
        nodata: Some(NODATA),
        categorical: false,
    };
    let twenty =
        Source { geo_transform: [300_010.0, 20.0, 0.0, 999_990.0, 0.0, -20.0], width: 500, height: 500, ..ten };
    let p10 = write_source(dir.path(), "b10", &ten);
    let p20 = write_source(dir.path(), "b20", &Source { categorical: true, ..twenty });
    let w = window_over(&ten, epsg, 10.0, origin, 300, (0.3, 0.3));
    // Read together (two grids in one request list) and compare each with gdalwarp.
    let (s10, s20) = (p10.to_str().unwrap(), p20.to_str().unwrap());
    let inputs = OpenInputs::new([s10, s20]);
    let reqs = [
        BandRequest {
            path: s10,
            name: s10,
            resampling: Resampling::Bilinear,
            dtype: SampleType::Uint16,
            nodata: NODATA,
            declared_nodata: None,
        },
        BandRequest {
            path: s20,
            name: s20,
            resampling: Resampling::Nearest,
            dtype: SampleType::Uint16,
            nodata: NODATA,
            declared_nodata: None,
        },
    ];
    let planes = read_bands(&inputs, &reqs, &w, &w, ET, &CrsOperation::default(), ReadMode::Resample).unwrap();
    let d10 = diff(&planes[0], &gdalwarp(&p10, &w, Resampling::Bilinear, dir.path()));
    let d20 = diff(&planes[1], &gdalwarp(&p20, &w, Resampling::Nearest, dir.path()));
    eprintln!("10 m: {d10:?}\n20 m: {d20:?}");
    assert!(d10.within_1 as f64 >= 0.999 * d10.valid as f64 && d10.coverage_mismatch == 0, "{d10:?}");
    assert_eq!(d20.exact, d20.pixels, "{d20:?}");
}

/// How a test maps the synthetic uint16 field into another type.
type ValueMap = fn(u16) -> i32;

/// A band of another integer type: the synthetic field mapped into it (`map`), with
/// `nodata` in the holes.
fn write_typed(dir: &Path, name: &str, s: &Source, dtype: SampleType, nodata: i32, map: fn(u16) -> i32) -> PathBuf {
    let path = dir.join(format!("{name}.tif"));
    let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
    let opts = RasterCreationOptions::from_iter(["COMPRESS=DEFLATE", "TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256"]);
    let values: Vec<i32> = (0..s.height)
        .flat_map(|y| (0..s.width).map(move |x| (x, y)))
        .map(|(x, y)| match value(x, y, s.categorical, true) {
            NODATA => nodata,
            v => map(v),
        })
        .collect();
    let size = (s.width, s.height);
    let mut ds = match dtype {
        SampleType::Int16 => {
            let ds = driver.create_with_band_type_with_options::<i16, _>(&path, s.width, s.height, 1, &opts).unwrap();
            let mut buf = Buffer::new(size, values.iter().map(|&v| v as i16).collect());
            ds.rasterband(1).unwrap().write((0, 0), size, &mut buf).unwrap();
            ds
        }
        SampleType::Uint8 => {
            let ds = driver.create_with_band_type_with_options::<u8, _>(&path, s.width, s.height, 1, &opts).unwrap();
            let mut buf = Buffer::new(size, values.iter().map(|&v| v as u8).collect());
            ds.rasterband(1).unwrap().write((0, 0), size, &mut buf).unwrap();
            ds
        }
        SampleType::Float32 => {
            let ds = driver.create_with_band_type_with_options::<f32, _>(&path, s.width, s.height, 1, &opts).unwrap();
            let mut buf = Buffer::new(size, values.iter().map(|&v| v as f32).collect());
            ds.rasterband(1).unwrap().write((0, 0), size, &mut buf).unwrap();
            ds
        }
        other => panic!("no writer for {other}"),
    };
    ds.set_geo_transform(&s.geo_transform).unwrap();
    ds.set_spatial_ref(&spatial_ref(s.epsg).unwrap()).unwrap();
    ds.rasterband(1).unwrap().set_no_data_value(Some(nodata as f64)).unwrap();
    ds.build_overviews(if s.categorical { "NEAREST" } else { "AVERAGE" }, &[2, 4], &[]).unwrap();
    path
}

/// Ours, as values of `dtype`.
fn ours_typed(path: &Path, window: &GeoBox, method: Resampling, dtype: SampleType, nodata: i32) -> Vec<i32> {
    let p = path.to_str().unwrap();
    let inputs = OpenInputs::new([p]);
    let code = dtype.code(nodata as f64).unwrap();
    let req = BandRequest { path: p, name: p, resampling: method, dtype, nodata: code, declared_nodata: None };
    let codes = read_bands(&inputs, &[req], window, window, ET, &CrsOperation::default(), ReadMode::Resample)
        .unwrap()
        .remove(0);
    codes.into_iter().map(|c| dtype.value(c)).collect()
}

fn gdalwarp_typed(path: &Path, window: &GeoBox, method: Resampling, ot: &str, nodata: i32, dir: &Path) -> Vec<i32> {
    let out = dir.join(format!("gdalwarp-typed-{}.tif", rand_suffix()));
    let b = window.bounds();
    let status = Command::new("gdalwarp")
        .args(["-q", "-overwrite", "-of", "GTiff", "-ot", ot])
        .args(["-t_srs", &format!("EPSG:{}", window.epsg)])
        .args(["-te", &b.min_x.to_string(), &b.min_y.to_string(), &b.max_x.to_string(), &b.max_y.to_string()])
        .args(["-ts", &window.width.to_string(), &window.height.to_string()])
        .args(["-r", &method.to_string(), "-et", &ET.to_string(), "-dstnodata", &nodata.to_string()])
        .args(["-wo", "SRC_FILL_RATIO_HEURISTICS=NO"])
        .arg(path)
        .arg(&out)
        .status()
        .expect("gdalwarp (Debian package gdal-bin, installed by scripts/setup.sh) runs");
    assert!(status.success(), "gdalwarp failed on {}", path.display());
    let ds = gdal::Dataset::open(&out).unwrap();
    let size = (window.width, window.height);
    let v = ds.rasterband(1).unwrap().read_as::<i32>((0, 0), size, size, None).unwrap();
    let _ = std::fs::remove_file(&out);
    v.into_shape_and_vec().1
}

#[test]
fn signed_and_8_bit_bands_read_like_gdalwarp() {
    // DEA ARD reflectance (int16, nodata -999, values below zero) and an 8-bit band
    // (fractional cover: uint8, nodata 255), warped UTM -> Albers at 10 and 25 m.
    let dir = tempfile::tempdir().unwrap();
    let (epsg, origin) = AUSTRALIA;
    let s = Source {
        epsg: 32755,
        geo_transform: [600_000.0, 10.0, 0.0, 6_100_000.0, 0.0, -10.0],
        width: 900,
        height: 900,
        tiled: true,
        overviews: true,
        nodata: Some(NODATA),
        categorical: false,
    };
    let cases: [(SampleType, &str, i32, ValueMap); 2] = [
        (SampleType::Int16, "Int16", -999, |v| v as i32 - 2600),
        (SampleType::Uint8, "Byte", 255, |v| v as i32 * 37 % 255),
    ];
    for (dtype, ot, nodata, map) in cases {
        let path = write_typed(dir.path(), &format!("typed-{dtype}"), &s, dtype, nodata, map);
        for (res, size) in [(10.0, 250), (25.0, 150)] {
            let w = window_over(&s, epsg, res, origin, size, (0.2, 0.2));
            for m in ALL {
                let a = ours_typed(&path, &w, m, dtype, nodata);
                let b = gdalwarp_typed(&path, &w, m, ot, nodata, dir.path());
                let valid = a.iter().zip(&b).filter(|(x, y)| **x != nodata && **y != nodata).count();
                let negative = a.iter().filter(|&&x| x < 0 && x != nodata).count();
                let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
                eprintln!("{dtype} {res} m {m}: {valid} valid, {negative} negative, {same} identical");
                // Identical to gdalwarp, like the uint16 cases, but for one thing: GDAL 3.6's
                // integer mode uses -1 as its "nothing found" marker, so a signed band whose
                // mode is -1 comes out as nodata there.
                let gdal_marker = |x: &i32, y: &i32| m == Resampling::Mode && *x == -1 && *y == nodata;
                let unexplained: Vec<_> = a.iter().zip(&b).filter(|(x, y)| x != y && !gdal_marker(x, y)).collect();
                assert!(
                    unexplained.is_empty(),
                    "{dtype} {res} m {m}: (ours, gdalwarp) {:?}",
                    &unexplained[..unexplained.len().min(10)]
                );
                assert!(valid > a.len() / 2, "{dtype} {m}: the window must overlap the source");
                if dtype == SampleType::Int16 {
                    assert!(negative > a.len() / 10, "{dtype}: negative values must come through");
                } else if m == Resampling::Cubic && res == 10.0 {
                    // Clamped into the type and off nodata (255) where cubic overshoots.
                    let top = a.iter().filter(|&&x| x == 254).count();
                    assert!(top > 10, "{dtype}: a rough field reaching the type's top: {top}");
                }
            }
        }
    }
}

#[test]
fn a_band_of_a_type_the_statistic_cannot_hold_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let s = Source {
        epsg: 32755,
        geo_transform: [600_000.0, 10.0, 0.0, 6_100_000.0, 0.0, -10.0],
        width: 300,
        height: 300,
        tiled: true,
        overviews: false,
        nodata: Some(NODATA),
        categorical: false,
    };
    let int16 = write_typed(dir.path(), "int16", &s, SampleType::Int16, -999, |v| v as i32 - 2600);
    let float = write_typed(dir.path(), "float", &s, SampleType::Float32, -999, |v| v as i32);
    let w = window_over(&s, AUSTRALIA.0, 10.0, AUSTRALIA.1, 100, (0.2, 0.2));
    for (path, as_type, found) in [(&int16, SampleType::Uint16, "int16"), (&float, SampleType::Int16, "float32")] {
        let p = path.to_str().unwrap();
        let inputs = OpenInputs::new([p]);
        let req = BandRequest {
            path: p,
            name: p,
            resampling: Resampling::Bilinear,
            dtype: as_type,
            nodata: 0,
            declared_nodata: None,
        };
        let e =
            read_bands(&inputs, &[req], &w, &w, ET, &CrsOperation::default(), ReadMode::Resample).expect_err("refused");
        let msg = e.error.to_string();
        assert!(msg.contains(p) && msg.contains(found) && msg.contains("dtype"), "{msg}");
        assert!(!e.error.is_transient());
    }
}
