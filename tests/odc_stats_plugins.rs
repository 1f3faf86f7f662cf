//! Each odc-stats-compatible plugin against odc-stats' own plugin, on the same small
//! stack, with the same `plugin_config`: the pinned odc-stats in the test venv
//! (`scripts/odc-stats-venv.sh install`, which `make test` runs) runs its plugin's
//! native_transform, fuser and reduce (`scripts/parity/odc_stats_plugins.py`); Stratus
//! runs the statistic its registry builds from the same options. The stacks have cloud
//! and shadow blobs, lone specks (so that each morphology chain matters), no-data strips
//! and, for DEA's ARD, non-contiguous pixels. Agreement is printed per band
//! (`cargo test --test odc_stats_plugins -- --nocapture`).

use ndarray::{Array2, Array3};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use stratus_core::SampleType;
use stratus_stats::stack::Stack;
use stratus_stats::statistic::OutputData;

const T: usize = 10;
const H: usize = 64;
const W: usize = 64;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn venv_python() -> PathBuf {
    let p = root().join(".venv-odc-stats/bin/python");
    assert!(p.exists(), "{} is missing: run `scripts/odc-stats-venv.sh install` (make test does)", p.display());
    p
}

fn hash(a: u64, b: u64, c: u64) -> u64 {
    let mut z =
        a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F) ^ c.wrapping_add(0x1656_67B1);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What covers a pixel of one observation.
#[derive(Clone, Copy, PartialEq)]
enum Sky {
    Clear,
    Cloud,
    /// Thin or medium-probability cloud.
    Haze,
    Shadow,
    NoData,
    /// Covered in some bands only (DEA's contiguity 0).
    Partial,
}

/// Per observation: discs of cloud with their shadow beside them, lone specks of cloud
/// and shadow, a strip with no data in one observation and a partial strip in another.
fn sky(t: usize, y: usize, x: usize) -> Sky {
    let (yi, xi) = (y as i64, x as i64);
    if t == 2 && x < 9 {
        return Sky::NoData;
    }
    if t == 5 && y > 56 {
        return Sky::Partial;
    }
    for k in 0..3u64 {
        let h = hash(t as u64, k, 7);
        let (cy, cx, r) = ((h % H as u64) as i64, ((h >> 16) % W as u64) as i64, 2 + ((h >> 32) % 5) as i64);
        let d2 = (yi - cy).pow(2) + (xi - cx).pow(2);
        if d2 <= r * r {
            return if k == 2 { Sky::Haze } else { Sky::Cloud };
        }
        let s2 = (yi - cy - 6).pow(2) + (xi - cx - 4).pow(2);
        if s2 <= r * r {
            return Sky::Shadow;
        }
    }
    match hash(t as u64, (y * W + x) as u64, 11) % 97 {
        0 => Sky::Cloud,
        1 => Sky::Shadow,
        _ => Sky::Clear,
    }
}

/// A band's reflectance (0..1) at a pixel: a smooth surface, a seasonal swing, noise;
/// bright under cloud.
fn reflectance(band: usize, t: usize, y: usize, x: usize) -> f64 {
    let surface = 0.08 + 0.04 * band as f64 + 0.03 * ((y as f64 / 9.0).sin() + (x as f64 / 13.0).cos());
    let season = 0.01 * ((t as f64) * 0.6 + band as f64).sin();
    let noise = (hash(t as u64, (y * W + x) as u64, band as u64) % 1000) as f64 / 1000.0 * 0.01;
    let v = surface + season + noise;
    match sky(t, y, x) {
        Sky::Cloud => 0.6 + 0.1 * v,
        Sky::Haze => v + 0.15,
        Sky::Shadow => v * 0.4,
        _ => v,
    }
}

struct Band {
    name: String,
    dtype: SampleType,
    nodata: i64,
    /// The flags_definition odc-stats needs (scl, fmask, qa_pixel).
    flags: Option<&'static str>,
    /// Stored values, (time, y, x).
    values: Array3<i64>,
}

/// Reflectance bands stored as round((r - offset) / scale), nodata where the sky has none.
fn reflectance_bands(names: &[&str], dtype: SampleType, nodata: i64, scale: f64, offset: f64) -> Vec<Band> {
    names
        .iter()
        .enumerate()
        .map(|(b, name)| Band {
            name: name.to_string(),
            dtype,
            nodata,
            flags: None,
            values: Array3::from_shape_fn((T, H, W), |(t, y, x)| match sky(t, y, x) {
                Sky::NoData => nodata,
                // A band missing where the observation is not contiguous.
                Sky::Partial if b == 3 => nodata,
                _ => ((reflectance(b, t, y, x) - offset) / scale).round() as i64,
            }),
        })
        .collect()
}

fn mask_band(name: &str, flags: &'static str, dtype: SampleType, nodata: i64, class: impl Fn(Sky) -> i64) -> Band {
    Band {
        name: name.into(),
        dtype,
        nodata,
        flags: Some(flags),
        values: Array3::from_shape_fn((T, H, W), |(t, y, x)| class(sky(t, y, x))),
    }
}

/// DEA's `nbart_contiguity`: 0 where an observation lacks a band.
fn contiguity_band() -> Band {
    Band {
        name: "nbart_contiguity".into(),
        dtype: SampleType::Uint8,
        nodata: 255,
        flags: None,
        values: Array3::from_shape_fn((T, H, W), |(t, y, x)| (sky(t, y, x) != Sky::Partial) as i64),
    }
}

fn scl(s: Sky) -> i64 {
    match s {
        Sky::NoData => 0,
        Sky::Cloud => 9,
        Sky::Haze => 8,
        Sky::Shadow => 3,
        _ => 4,
    }
}

fn fmask(s: Sky) -> i64 {
    match s {
        Sky::NoData => 0,
        Sky::Cloud | Sky::Haze => 2,
        Sky::Shadow => 3,
        _ => 1,
    }
}

/// USGS C2 QA_PIXEL: clear (bit 6); high-confidence cloud (bit 3, confidence 3) or cirrus
/// (bit 2) with dilated cloud (bit 1) around; shadow (bit 4); fill (bit 0).
fn qa_pixel(s: Sky) -> i64 {
    match s {
        Sky::NoData => 1,
        Sky::Cloud => 1 << 3 | 3 << 8 | 1 << 1,
        Sky::Haze => 1 << 2 | 3 << 14 | 1 << 8,
        Sky::Shadow => 1 << 4 | 3 << 10 | 1 << 8,
        _ => 1 << 6 | 1 << 8,
    }
}

/// Write the stack for odc-stats and run its plugin; its outputs by name, as f64.
fn odc_stats(dir: &Path, plugin: &str, cfg: &Value, bands: &[Band]) -> Vec<(String, Array2<f64>)> {
    let mut spec_bands = serde_json::Map::new();
    for b in bands {
        let file = format!("{}.npy", b.name);
        let path = dir.join(&file);
        match b.dtype {
            SampleType::Uint8 => ndarray_npy::write_npy(&path, &b.values.mapv(|v| v as u8)),
            SampleType::Int16 => ndarray_npy::write_npy(&path, &b.values.mapv(|v| v as i16)),
            _ => ndarray_npy::write_npy(&path, &b.values.mapv(|v| v as u16)),
        }
        .unwrap();
        spec_bands.insert(b.name.clone(), json!({"file": file, "nodata": b.nodata, "flags": b.flags}));
    }
    // One observation every 20 days, each its own solar day.
    let times: Vec<String> = (0..T).map(|t| format!("2021-01-{:02}T00:30:00", 1 + t * 3)).collect();
    let spec = json!({"plugin": plugin, "plugin_config": cfg, "times": times, "bands": spec_bands});
    std::fs::write(dir.join("spec.json"), serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    let out_dir = dir.join("odc-stats");
    let out = Command::new(venv_python())
        .arg(root().join("scripts/parity/odc_stats_plugins.py"))
        .arg(dir.join("spec.json"))
        .arg(&out_dir)
        .output()
        .expect("python starts");
    assert!(
        out.status.success(),
        "odc-stats' {plugin} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(out.stdout.trim_ascii()).expect("the script prints its outputs");
    listed["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let n = n.as_str().unwrap().to_string();
            let a: Array2<f64> = ndarray_npy::read_npy(out_dir.join(format!("{n}.npy"))).unwrap();
            (n, a)
        })
        .collect()
}

/// Stratus's statistic on the same stack; its outputs by name, as f64 (NaN stays NaN).
fn stratus(plugin: &str, cfg: &Value, bands: &[Band]) -> Vec<(String, Array2<f64>, Option<f64>)> {
    stratus_scaled(plugin, cfg, bands, 1.0)
}

/// As [`stratus`], the mask filters' radii scaled by `factor` (native / output pixel
/// size, as the worker does).
fn stratus_scaled(plugin: &str, cfg: &Value, bands: &[Band], factor: f64) -> Vec<(String, Array2<f64>, Option<f64>)> {
    let mut stat = stratus_stats::build_statistic(plugin, cfg).unwrap_or_else(|e| panic!("{plugin}: {e}"));
    stat.scale_filters(factor);
    let inputs = stat.input_bands();
    let names: Vec<String> = inputs.iter().map(|b| b.name.clone()).collect();
    let dtypes: Vec<SampleType> = inputs.iter().map(|b| b.dtype).collect();
    let nodata: Vec<u16> = inputs.iter().map(|b| b.nodata).collect();
    let mut stack = Stack::typed(names.clone(), dtypes.clone(), nodata, T, H, W);
    for (i, name) in names.iter().enumerate() {
        let band = bands.iter().find(|b| &b.name == name).unwrap_or_else(|| panic!("{plugin} reads {name}"));
        for ((t, y, x), &v) in band.values.indexed_iter() {
            stack.data[[t, i, y, x]] = dtypes[i].code(v as f64).unwrap_or_else(|| panic!("{name}: {v}"));
        }
    }
    let out = stat.reduce(&stack).unwrap();
    stat.output_bands()
        .into_iter()
        .zip(out)
        .map(|(b, d)| {
            let a = match d {
                OutputData::U8(a) => a.mapv(f64::from),
                OutputData::U16(a) => a.mapv(f64::from),
                OutputData::I16(a) => a.mapv(f64::from),
                OutputData::F32(a) => a.mapv(f64::from),
            };
            (b.name, a, b.nodata)
        })
        .collect()
}

/// Compare every output band: the share of pixels that agree within `tolerance(band)`
/// (both missing counts as agreeing), over the whole stack and away from its edges
/// (where the morphology's borders differ). Returns (band, share, interior share).
fn compare(
    plugin: &str,
    ours: &[(String, Array2<f64>, Option<f64>)],
    theirs: &[(String, Array2<f64>)],
    tolerance: impl Fn(&str) -> f64,
) -> Vec<(String, f64, f64)> {
    let our_names: Vec<&str> = ours.iter().map(|o| o.0.as_str()).collect();
    let mut their_names: Vec<&str> = theirs.iter().map(|o| o.0.as_str()).collect();
    let mut sorted = our_names.clone();
    sorted.sort();
    their_names.sort();
    assert_eq!(sorted, their_names, "{plugin}: the same output bands");
    println!("{plugin}: band agreement (whole stack, interior)");
    ours.iter()
        .map(|(name, a, nodata)| {
            let b = &theirs.iter().find(|t| &t.0 == name).unwrap().1;
            let missing = |v: f64| v.is_nan() || Some(v) == *nodata;
            let tol = tolerance(name);
            let agree = |y: usize, x: usize| {
                let (u, v) = (a[[y, x]], b[[y, x]]);
                (missing(u) && missing(v)) || (!missing(u) && !missing(v) && (u - v).abs() <= tol)
            };
            let share = |edge: usize| {
                let (mut n, mut ok) = (0usize, 0usize);
                for y in edge..H - edge {
                    for x in edge..W - edge {
                        n += 1;
                        ok += agree(y, x) as usize;
                    }
                }
                ok as f64 / n as f64
            };
            let (whole, interior) = (share(0), share(12));
            let max_diff = a
                .iter()
                .zip(b.iter())
                .filter(|(u, v)| !missing(**u) && !missing(**v))
                .map(|(u, v)| (u - v).abs())
                .fold(0.0, f64::max);
            println!(
                "  {name:>14}: {:7.3}% {:7.3}%  (within {tol}; largest difference {max_diff:.3e})",
                100.0 * whole,
                100.0 * interior
            );
            (name.clone(), whole, interior)
        })
        .collect()
}

fn run(plugin: &str, cfg: Value, bands: Vec<Band>, tolerance: impl Fn(&str) -> f64) -> Vec<(String, f64, f64)> {
    let dir = tempfile::tempdir().unwrap();
    let theirs = odc_stats(dir.path(), plugin, &cfg, &bands);
    let ours = stratus(plugin, &cfg, &bands);
    compare(plugin, &ours, &theirs, tolerance)
}

/// Counts agree exactly away from the edges; the rest within their tolerance on 99% of
/// the interior: geomedians within 1e-3 reflectance (10 DN; odc-algo truncates and stops
/// at a looser convergence: 2 to 5 DN seen), EMAD within 10 DN, SMAD within 2e-4 and
/// BCMAD within 1e-3 (odc-stats offsets reflectance by -1e-4 before its MADs: 6e-5 and
/// 5e-4 seen).
fn check(results: &[(String, f64, f64)], exact: &[&str]) {
    for (name, whole, interior) in results {
        if exact.contains(&name.as_str()) {
            assert_eq!(*interior, 1.0, "{name}: counts agree exactly away from the edges");
            assert!(*whole >= 0.97, "{name}: {whole}");
        } else {
            assert!(*interior >= 0.99, "{name}: {interior}");
        }
    }
}

/// A geomedian's bands within 1e-3 reflectance (10 DN; odc-algo truncates and stops at a
/// looser convergence), EMAD within 10 DN, SMAD within 2e-4 and BCMAD within 1e-3
/// (odc-stats offsets reflectance by -1e-4 before its MADs), the count exactly; under
/// odc-stats' names of each plugin.
fn gm_tolerance(band: &str) -> f64 {
    match band.to_ascii_lowercase().as_str() {
        "count" => 0.0,
        "smad" | "sdev" => 2e-4,
        "bcmad" | "bcdev" => 1e-3,
        _ => 10.0,
    }
}

const S2: [&str; 4] = ["B02", "B03", "B04", "B08"];

#[test]
fn gm_s2_with_cloud_filters_per_class() {
    let mut bands = reflectance_bands(&S2, SampleType::Uint16, 0, 1e-4, 0.0);
    bands.push(mask_band("SCL", "scl", SampleType::Uint8, 0, scl));
    // DE Africa's gm_s2_annual options.
    let cfg = json!({
        "bands": S2,
        "cloud_filters": {"cloud shadows": [["opening", 2], ["dilation", 5]], "cloud high probability": [["opening", 2], ["dilation", 5]],
                          "cloud medium probability": [["dilation", 3]]},
        "aux_names": {"smad": "SMAD", "emad": "EMAD", "bcmad": "BCMAD", "count": "COUNT"}
    });
    let r = run("gm-s2", cfg, bands, gm_tolerance);
    check(&r, &["COUNT"]);
}

#[test]
fn gm_ls_on_dea_ard_with_contiguity() {
    let names = ["nbart_red", "nbart_green", "nbart_blue", "nbart_nir", "nbart_swir_1", "nbart_swir_2"];
    let mut bands = reflectance_bands(&names, SampleType::Int16, -999, 1e-4, 0.0);
    bands.push(mask_band("fmask", "fmask", SampleType::Uint8, 0, fmask));
    bands.push(contiguity_band());
    let mut with_contiguity: Vec<&str> = names.to_vec();
    with_contiguity.push("nbart_contiguity");
    // DEA's ga_ls8c_nbart_gm_cyear_3 options.
    let cfg = json!({
        "bands": with_contiguity, "mask_band": "fmask", "contiguity_band": "nbart_contiguity", "nodata_classes": ["nodata"],
        "cloud_filters": {"cloud": [["opening", 2], ["dilation", 5]], "shadow": [["opening", 2], ["dilation", 5]]}
    });
    let r = run("gm-ls", cfg, bands, gm_tolerance);
    check(&r, &["count"]);
}

#[test]
fn gm_generic_and_gm_ls_bitmask() {
    let mut bands = reflectance_bands(&S2, SampleType::Uint16, 0, 1e-4, 0.0);
    bands.push(mask_band("fmask", "fmask", SampleType::Uint8, 0, fmask));
    let cfg = json!({"bands": S2, "mask_band": "fmask", "nodata_classes": ["nodata"]});
    let r = run("gm-generic", cfg, bands, gm_tolerance);
    check(&r, &["count"]);

    let c2 = ["red", "green", "blue", "nir", "swir_1", "swir_2"];
    let mut bands = reflectance_bands(&c2, SampleType::Uint16, 0, 0.0000275, -0.2);
    bands.push(mask_band("QA_PIXEL", "qa_pixel", SampleType::Uint16, 1, qa_pixel));
    // DE Africa's gm_ls_annual-style options: clouds from high-confidence flags.
    let cfg = json!({"bands": c2, "flags": {"cloud": "high_confidence", "cirrus": "high_confidence", "cloud_shadow": "high_confidence"},
                     "filters": [["closing", 3], ["opening", 2], ["dilation", 3]]});
    let r = run("gm-ls-bitmask", cfg, bands, gm_tolerance);
    check(&r, &["count"]);
}

#[test]
fn pq_and_pq_ls_bitmask_with_named_filters() {
    let bands = vec![mask_band("SCL", "scl", SampleType::Uint8, 0, scl)];
    let r = run(
        "pq",
        json!({"filters": {"clear_2_5": [["opening", 2], ["dilation", 5]], "clear_0_5": [["opening", 0], ["dilation", 5]]}}),
        bands,
        |_| 0.0,
    );
    check(&r, &["total", "clear", "clear_2_5", "clear_0_5"]);

    let bands = vec![mask_band("QA_PIXEL", "qa_pixel", SampleType::Uint16, 1, qa_pixel)];
    let cfg = json!({"flags": {"cloud": "high_confidence", "cloud_shadow": "high_confidence"},
                     "filters": {"clear_10_2_2": [["closing", 10], ["opening", 2], ["dilation", 2]], "clear_2_5": [["opening", 2], ["dilation", 5]]}});
    let r = run("pq-ls-bitmask", cfg, bands, |_| 0.0);
    check(&r, &["total", "clear", "clear_10_2_2", "clear_2_5"]);
}

/// WOfS bit flags: wet (128) in a lake, dry elsewhere; cloud (64), cloud shadow (32),
/// no data (1), non-contiguous (2); terrain shadow (8) and high slope (16) in strips.
fn water(t: usize, y: usize, x: usize) -> i64 {
    let lake = (y as i64 - 30).pow(2) + (x as i64 - 34).pow(2) <= 144 + (t as i64 % 3) * 20;
    let wet = if lake { 128 } else { 0 };
    match sky(t, y, x) {
        Sky::NoData => 1,
        Sky::Partial => 2,
        Sky::Cloud | Sky::Haze => 64,
        Sky::Shadow => 32 | wet,
        _ if (20..23).contains(&x) => 8 | wet,
        _ if (48..50).contains(&y) => 16 | wet,
        _ => wet,
    }
}

/// WOfS' uint8 `water` band, handed to odc-stats as int16: its plugins mask it with
/// negative Python integers (`water & ~(1 << 7)`), which NumPy 2 refuses for uint8
/// arrays (OverflowError), so odc-stats 1.9.7's wofs-summary and fc-percentiles cannot
/// run on uint8 water under the NumPy its own pins install. The values are the same.
fn water_band() -> Band {
    Band {
        name: "water".into(),
        dtype: SampleType::Int16,
        nodata: 1,
        flags: None,
        values: Array3::from_shape_fn((T, H, W), |(t, y, x)| water(t, y, x)),
    }
}

#[test]
fn wofs_summary_with_cloud_filters() {
    let bands = vec![water_band()];
    // DEA's ga_ls_wo_fq_cyear_3 options.
    let cfg = json!({"cloud_filters": {"cloud": [["dilation", 3]], "cloud_shadow": [["dilation", 3]], "terrain_shadow": [["opening", 1]]}});
    let r = run("wofs-summary", cfg, bands, |b| if b == "frequency" { 1e-6 } else { 0.0 });
    check(&r, &["count_wet", "count_clear", "frequency"]);
}

#[test]
fn fc_percentiles_with_odc_stats_options() {
    let fc = |seed: u64, lo: i64, span: u64| {
        Array3::from_shape_fn((T, H, W), move |(t, y, x)| match sky(t, y, x) {
            Sky::NoData => 255,
            _ => lo + (hash(t as u64, (y * W + x) as u64, seed) % span) as i64,
        })
    };
    let band =
        |name: &str, values| Band { name: name.into(), dtype: SampleType::Uint8, nodata: 255, flags: None, values };
    let bands = vec![
        band("pv", fc(1, 0, 60)),
        band("npv", fc(2, 10, 50)),
        band("bs", fc(3, 5, 70)),
        band("ue", fc(4, 0, 40)),
        water_band(),
    ];
    // DEA's ga_ls_fc_pc_cyear_3 options.
    let cfg = json!({"ue_threshold": 30, "max_sum_limit": 120, "clip_range": [0, 100], "count_valid": true,
                     "cloud_filters": {"cloud": [["opening", 1], ["dilation", 2]], "cloud_shadow": [["dilation", 2]]}});
    let r = run("fc-percentiles", cfg, bands, |_| 0.0);
    let every: Vec<&str> = r.iter().map(|b| b.0.as_str()).collect();
    check(&r, &every);
}

#[test]
fn tcw_percentiles_on_dea_ard() {
    let names = ["blue", "green", "red", "nir", "swir1", "swir2"];
    let mut bands = reflectance_bands(&names, SampleType::Int16, -999, 1e-4, 0.0);
    bands.push(mask_band("fmask", "fmask", SampleType::Uint8, 0, fmask));
    bands.push(contiguity_band());
    // DEA's ga_ls_tc_pc_cyear_3 options: odc-stats' fixed fmask and contiguity bands.
    let mut inputs: Vec<&str> = names.to_vec();
    inputs.extend(["fmask", "nbart_contiguity"]);
    let cfg = json!({"input_bands": inputs, "cloud_filters": {"cloud": [["opening", 2], ["dilation", 5]], "shadow": [["dilation", 3]]}});
    // odc-stats truncates each index to int16 where Stratus rounds: one unit apart at most.
    let r = run("tcw-percentiles", cfg, bands, |_| 1.0);
    let every: Vec<&str> = r.iter().map(|b| b.0.as_str()).collect();
    check(&r, &every);
}

#[test]
fn wofs_summary_fh_from_annual_summaries() {
    // Ten annual summaries: clear counts 0..30, wet ones at most those; -999 where a year
    // did not observe the pixel, and a strip never observed.
    let clear = |t: usize, y: usize, x: usize| (hash(t as u64, (y * W + x) as u64, 21) % 31) as i64;
    let unobserved = |t: usize, y: usize, x: usize| x < 3 || sky(t, y, x) == Sky::NoData;
    let counts = |name: &str, wet: bool| Band {
        name: name.into(),
        dtype: SampleType::Int16,
        nodata: -999,
        flags: None,
        values: Array3::from_shape_fn((T, H, W), |(t, y, x)| match (unobserved(t, y, x), wet) {
            (true, _) => -999,
            (false, false) => clear(t, y, x),
            (false, true) => clear(t, y, x) * (hash(t as u64, (y * W + x) as u64, 22) % 4) as i64 / 3,
        }),
    };
    let bands = vec![counts("count_wet", true), counts("count_clear", false)];
    let r = run("wofs-summary-fh", json!({}), bands, |b| if b == "frequency" { 1e-6 } else { 0.0 });
    check(&r, &["count_wet", "count_clear", "frequency"]);
}

/// odc-stats filters masks at their native resolution, before reprojecting; Stratus
/// filters on the output grid with the radii scaled from native pixels. Sentinel-2's SCL
/// is 20 m: on a 10 m grid each of its pixels is read twice in each direction and pq's
/// radii double. Both agree but for the disks' outlines (a disk of radius 2r in 10 m
/// pixels against one of radius r in 20 m pixels).
#[test]
fn pq_filters_at_the_native_resolution() {
    let full = mask_band("SCL", "scl", SampleType::Uint8, 0, scl);
    let native = full.values.slice(ndarray::s![.., ..;2, ..;2]).to_owned();
    let read = Array3::from_shape_fn((T, H, W), |(t, y, x)| native[[t, y / 2, x / 2]]);
    let cfg = json!({"filters": {"clear_2_5": [["opening", 2], ["dilation", 5]], "clear_0_5": [["opening", 0], ["dilation", 5]]}});
    let band = |values| Band { name: "SCL".into(), dtype: SampleType::Uint8, nodata: 0, flags: Some("scl"), values };
    let dir = tempfile::tempdir().unwrap();
    let theirs: Vec<(String, Array2<f64>)> = odc_stats(dir.path(), "pq", &cfg, &[band(native)])
        .into_iter()
        .map(|(n, a)| (n, Array2::from_shape_fn((H, W), |(y, x)| a[[y / 2, x / 2]])))
        .collect();
    let ours = stratus_scaled("pq", &cfg, &[band(read)], 2.0);
    let exact = compare("pq, SCL at 20 m on a 10 m grid", &ours, &theirs, |_| 0.0);
    let near = compare("pq, SCL at 20 m on a 10 m grid", &ours, &theirs, |_| 1.0);
    for ((name, whole, _), (_, within_one, _)) in exact.iter().zip(&near) {
        if name == "total" || name == "clear" {
            assert_eq!(*whole, 1.0, "{name}: unfiltered counts are the same");
        } else {
            // Measured: 78-81% exact, against 3-48% with the radii left in output pixels.
            assert!(*whole >= 0.7 && *within_one >= 0.97, "{name}: {whole} exact, {within_one} within one");
        }
    }
}

#[test]
fn pq_ls_bitmask_aerosol_counts() {
    let qa = mask_band("QA_PIXEL", "qa_pixel", SampleType::Uint16, 1, qa_pixel);
    let level = |t: usize, y: usize, x: usize| (hash(t as u64, ((y / 8) * W + x / 8) as u64, 31) % 4) as i64;
    let cfg = json!({"flags": {"cloud": "high_confidence"}, "filters": {"clear_2_2": [["opening", 2], ["dilation", 2]]},
                     "aerosol_band": "SR_QA_AEROSOL", "aerosol_filters": {"clear_2_2_aerosol": [["opening", 2], ["dilation", 2]]}});
    // USGS Collection 2 SR_QA_AEROSOL: the aerosol level in bits 6-7 (1 = fill).
    let aerosol = Band {
        name: "SR_QA_AEROSOL".into(),
        dtype: SampleType::Uint8,
        nodata: 1,
        flags: None,
        values: Array3::from_shape_fn((T, H, W), |(t, y, x)| match sky(t, y, x) {
            Sky::NoData => 1,
            _ => level(t, y, x) << 6 | 2,
        }),
    };
    let r = run("pq-ls-bitmask", cfg, vec![qa, aerosol], |_| 0.0);
    let every: Vec<&str> = r.iter().map(|b| b.0.as_str()).collect();
    check(&r, &every);

    // SR_ATMOS_OPACITY (x 0.001, nodata -9999): above 0.3 is hazy.
    let qa = mask_band("QA_PIXEL", "qa_pixel", SampleType::Uint16, 1, qa_pixel);
    let opacity = Band {
        name: "SR_ATMOS_OPACITY".into(),
        dtype: SampleType::Int16,
        nodata: -9999,
        flags: None,
        values: Array3::from_shape_fn((T, H, W), |(t, y, x)| match sky(t, y, x) {
            Sky::NoData => -9999,
            _ => 100 * level(t, y, x) + 50,
        }),
    };
    let cfg = json!({"flags": {"cloud": "high_confidence"}, "aerosol_band": "SR_ATMOS_OPACITY"});
    let r = run("pq-ls-bitmask", cfg, vec![qa, opacity], |_| 0.0);
    let every: Vec<&str> = r.iter().map(|b| b.0.as_str()).collect();
    check(&r, &every);
}
