//! Inputs of other band types: the synthetic scenes' red band rewritten as DEA ARD stores
//! reflectance (int16, nodata -999, values shifted so that many are negative) gives, in
//! int16, the same percentiles as the uint16 original, shifted; a plugin told the wrong
//! type is refused by name, at planning when the items declare `raster:bands`, at reading
//! when only the file says. A float32 product (a summary of summaries) summarises as
//! floats.

mod support;

use gdal::raster::{Buffer, GdalDataType, RasterCreationOptions};
use gdal::{Dataset as GdalDataset, DriverManager};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use stratus_core::TaskId;
use stratus_engine::config::RunConfig;
use stratus_engine::layout::Layout;
use stratus_engine::planner::save_tasks;
use stratus_engine::runner::{run_plan, RunOptions, Silent};
use stratus_engine::Context;
use stratus_raster::GdalCrsTransform;

const SHIFT: i32 = 1000;
const ARD_NODATA: i32 = -999;

/// The uint16 band at `src` rewritten on the same grid as `T`: `map` of each value, and
/// `nodata` where it is 0 (the synthetic bands' nodata).
fn rewrite<T: gdal::raster::GdalType + Copy>(src: &str, dst: &Path, nodata: T, map: impl Fn(u16) -> T)
where
    f64: From<T>,
{
    let ds = GdalDataset::open(src).unwrap();
    let (w, h) = ds.raster_size();
    let band = ds.rasterband(1).unwrap();
    assert_eq!(band.no_data_value(), Some(0.0), "{src}: the synthetic bands mark nodata with 0");
    let v = band.read_as::<u16>((0, 0), (w, h), (w, h), None).unwrap().into_shape_and_vec().1;
    let values: Vec<T> = v.iter().map(|&x| if x == 0 { nodata } else { map(x) }).collect();
    let opts = RasterCreationOptions::from_iter(["COMPRESS=DEFLATE", "TILED=YES"]);
    let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
    let mut out = driver.create_with_band_type_with_options::<T, _>(dst, w, h, 1, &opts).unwrap();
    out.set_geo_transform(&ds.geo_transform().unwrap()).unwrap();
    out.set_spatial_ref(&ds.spatial_ref().unwrap()).unwrap();
    let mut b = out.rasterband(1).unwrap();
    b.set_no_data_value(Some(f64::from(nodata))).unwrap();
    b.write((0, 0), (w, h), &mut Buffer::new((w, h), values)).unwrap();
}

/// The B04 file of type `ty`: int16 as DEA ARD (value - SHIFT, nodata -999), float32
/// reflectance (value / 10 000), int32 (value - SHIFT), or int32 beyond float32's exact
/// integers (`int32-huge`: value x 10 000).
fn write_typed(src: &str, dst: &Path, ty: &str) {
    match ty {
        "int16" => rewrite::<i16>(src, dst, ARD_NODATA as i16, |x| (x as i32 - SHIFT) as i16),
        "float32" => rewrite::<f32>(src, dst, -9999.0, |x| x as f32 / 10_000.0),
        "int32" => rewrite::<i32>(src, dst, -9999, |x| x as i32 - SHIFT),
        "int32-huge" => rewrite::<i32>(src, dst, -9999, |x| x as i32 * 10_000),
        other => panic!("no {other} rewrite"),
    }
}

/// The items with their B04 as int16 files; `declare`: with `raster:bands` saying so.
fn ard_items(dir: &Path, items: &[Value], declare: bool) -> Vec<Value> {
    retyped_items(dir, items, "int16", declare)
}

/// The items with their B04 rewritten as `ty` files (see [`write_typed`]).
fn retyped_items(dir: &Path, items: &[Value], ty: &str, declare: bool) -> Vec<Value> {
    items
        .iter()
        .map(|item| {
            let mut item = item.clone();
            let id = item["id"].as_str().unwrap().to_string();
            let (_, asset) = item["assets"]
                .as_object_mut()
                .unwrap()
                .iter_mut()
                .find(|(k, a)| k.eq_ignore_ascii_case("B04") || a.to_string().contains("\"B04\""))
                .expect("a B04 asset");
            let dst = dir.join(format!("{id}-B04-{ty}.tif"));
            if !dst.exists() {
                write_typed(asset["href"].as_str().unwrap(), &dst, ty);
            }
            asset["href"] = json!(dst.display().to_string());
            if declare {
                let nodata = if ty == "int16" { ARD_NODATA } else { -9999 };
                asset["raster:bands"] = json!([{"data_type": ty.trim_end_matches("-huge"), "nodata": nodata}]);
            }
            item
        })
        .collect()
}

fn write_items(path: PathBuf, items: &[Value]) -> PathBuf {
    std::fs::write(&path, json!({"type": "FeatureCollection", "features": items}).to_string()).unwrap();
    path
}

fn config(input: &Path, location: &Path, plugin_config: &str) -> RunConfig {
    let yaml = format!(
        "inputs: ['{}']\ngrid: 'epsg:6933;240;100'\ntemporal_range: 2021--P1Y\nfrequency: annual\nplugin: percentiles\nplugin_config: {plugin_config}\nproduct: {{name: t_types, version: 1.0.0}}\nlocation: '{}'\nchunk_size: 64\n",
        input.display(),
        location.display()
    );
    RunConfig::from_yaml(&yaml, "band types test").unwrap()
}

fn opts() -> RunOptions {
    RunOptions::new(2, Arc::new(AtomicBool::new(false)))
}

/// Plan and run `cfg`; every task must succeed. The store and the run id.
fn run_to_done(cfg: &RunConfig) -> (Context, String) {
    let ctx = Context::embedded(&cfg.location, None).unwrap();
    let plan = save_tasks(cfg, &ctx, &GdalCrsTransform, false, false).unwrap();
    let r = run_plan(&ctx, &plan.run_id, &opts(), &Silent).unwrap();
    assert!(r.failed.is_empty() && r.processed > 0, "{r:?}");
    (ctx, plan.run_id)
}

/// Every pixel of every task's `band`, as i32, with the file's type and nodata.
fn band_values(ctx: &Context, run_id: &str, band: &str) -> (Vec<i32>, GdalDataType, Option<f64>) {
    let (v, ty, nodata) = band_values_f64(ctx, run_id, band);
    (v.into_iter().map(|v| v as i32).collect(), ty, nodata)
}

fn band_values_f64(ctx: &Context, run_id: &str, band: &str) -> (Vec<f64>, GdalDataType, Option<f64>) {
    let layout = Layout::new("t_types", "1.0.0");
    let mut ids: Vec<TaskId> =
        ctx.ledger.tasks(run_id, None).unwrap().into_iter().map(|t| t.task_id.parse().unwrap()).collect();
    ids.sort_by_key(|t| t.to_string());
    let (mut all, mut ty, mut nodata) = (Vec::new(), GdalDataType::Unknown, None);
    for id in ids {
        let ds = GdalDataset::open(ctx.output.url(&layout.band_key(&id, band))).unwrap();
        let (w, h) = ds.raster_size();
        let b = ds.rasterband(1).unwrap();
        (ty, nodata) = (b.band_type(), b.no_data_value());
        all.extend(b.read_as::<f64>((0, 0), (w, h), (w, h), None).unwrap().into_shape_and_vec().1);
    }
    (all, ty, nodata)
}

#[test]
fn int16_reflectance_gives_the_uint16_percentiles_shifted() {
    let dir = tempfile::tempdir().unwrap();
    let items = support::synthetic_items(dir.path(), 4);
    let original = write_items(dir.path().join("uint16.json"), &items);
    let ard = write_items(dir.path().join("int16.json"), &ard_items(dir.path(), &items, true));

    let base = config(&original, &dir.path().join("uint16"), "{bands: [B04], percentiles: [10, 50, 90]}");
    let typed = config(
        &ard,
        &dir.path().join("int16"),
        &format!("{{bands: [B04], percentiles: [10, 50, 90], dtype: int16, nodata: {ARD_NODATA}}}"),
    );
    let contexts = [run_to_done(&base), run_to_done(&typed)];
    for band in ["B04_pc_10", "B04_pc_50", "B04_pc_90"] {
        let (a, a_type, a_nodata) = band_values(&contexts[0].0, &contexts[0].1, band);
        let (b, b_type, b_nodata) = band_values(&contexts[1].0, &contexts[1].1, band);
        assert_eq!((a_type, a_nodata), (GdalDataType::UInt16, Some(0.0)), "{band}");
        assert_eq!((b_type, b_nodata), (GdalDataType::Int16, Some(ARD_NODATA as f64)), "{band}: int16 in, int16 out");
        assert_eq!(a.len(), b.len());
        let want: Vec<i32> = a.iter().map(|&v| if v == 0 { ARD_NODATA } else { v - SHIFT }).collect();
        let differ = want.iter().zip(&b).filter(|(x, y)| x != y).count();
        assert_eq!(differ, 0, "{band}: {differ} of {} pixels differ from the shifted uint16 result", b.len());
        let valid = b.iter().filter(|&&v| v != ARD_NODATA).count();
        let negative = b.iter().filter(|&&v| v < 0 && v != ARD_NODATA).count();
        assert!(valid > b.len() / 2, "{band}: {valid} valid of {}", b.len());
        if band == "B04_pc_10" {
            assert!(negative > 0, "{band}: negative reflectance must come through ({valid} valid)");
        }
    }
}

#[test]
fn a_plugin_told_the_wrong_type_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let items = support::synthetic_items(dir.path(), 2);
    let declared = write_items(dir.path().join("declared.json"), &ard_items(dir.path(), &items, true));
    let undeclared = write_items(dir.path().join("undeclared.json"), &ard_items(dir.path(), &items, false));
    let uint16 = "{bands: [B04]}";

    // The items say int16: planning stops at the first, naming it, the band and the fix.
    let cfg = config(&declared, &dir.path().join("declared"), uint16);
    let ctx = Context::embedded(&cfg.location, None).unwrap();
    let e = save_tasks(&cfg, &ctx, &GdalCrsTransform, false, false).unwrap_err().to_string();
    let ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert!(ids.iter().any(|id| e.contains(id)), "names the item: {e}");
    assert!(e.contains("'B04'") && e.contains("int16") && e.contains("dtype: int16, nodata: -999"), "{e}");

    // Only the files say: the tiles fail, naming the file and the fix; nothing is written.
    let cfg = config(&undeclared, &dir.path().join("undeclared"), uint16);
    let ctx = Context::embedded(&cfg.location, None).unwrap();
    let plan = save_tasks(&cfg, &ctx, &GdalCrsTransform, false, false).unwrap();
    let r = run_plan(&ctx, &plan.run_id, &opts(), &Silent).unwrap();
    assert!(!r.failed.is_empty() && r.processed == 0, "{r:?}");
    for f in &r.failed {
        assert!(
            f.reason.contains("B04-int16.tif") && f.reason.contains("int16") && f.reason.contains("dtype"),
            "{f:?}"
        );
    }
    assert!(support::files_with_extension(&dir.path().join("undeclared"), "tif").is_empty(), "no output written");

    // Types a plugin cannot hold are refused with the run file: float64 anywhere, float32
    // and int32 outside percentiles, median and mean.
    for (plugin, dtype) in [("percentiles", "float64"), ("gm-s2", "float32")] {
        let yaml = format!(
            "inputs: ['{}']\ngrid: 'epsg:6933;240;100'\ntemporal_range: 2021--P1Y\nplugin: {plugin}\nplugin_config: {{bands: [B04], dtype: {dtype}}}\nproduct: {{name: t, version: 1.0.0}}\nlocation: '{}'\n",
            declared.display(),
            dir.path().join("refused").display()
        );
        let e = RunConfig::from_yaml(&yaml, "run.yaml").unwrap_err().to_string();
        assert!(e.contains(dtype) && e.contains(&format!("'{plugin}'")) && e.contains("dtype"), "{e}");
    }
}

/// How a rewritten type's value follows from the uint16 original's.
type FromUint16 = fn(f64) -> f64;

#[test]
fn float32_and_int32_bands_give_the_uint16_percentiles() {
    let dir = tempfile::tempdir().unwrap();
    let items = support::synthetic_items(dir.path(), 4);
    let original = write_items(dir.path().join("uint16.json"), &items);
    let base = run_to_done(&config(&original, &dir.path().join("uint16"), "{bands: [B04], percentiles: [10, 50, 90]}"));
    // float32 reflectance (value / 10 000) and int32 (value - SHIFT): summarised as float32.
    let as_uint16: [(&str, FromUint16); 2] = [("float32", |v| v / 10_000.0), ("int32", |v| v - SHIFT as f64)];
    for (ty, from_uint16) in as_uint16 {
        let input = write_items(dir.path().join(format!("{ty}.json")), &retyped_items(dir.path(), &items, ty, true));
        let cfg = format!("{{bands: [B04], percentiles: [10, 50, 90], dtype: {ty}}}");
        let typed = run_to_done(&config(&input, &dir.path().join(ty), &cfg));
        for band in ["B04_pc_10", "B04_pc_50", "B04_pc_90", "count"] {
            let (a, _, _) = band_values_f64(&base.0, &base.1, band);
            let (b, b_type, _) = band_values_f64(&typed.0, &typed.1, band);
            assert_eq!(a.len(), b.len());
            if band == "count" {
                assert_eq!(a, b, "{ty}: the same observations count");
                continue;
            }
            assert_eq!(b_type, GdalDataType::Float32, "{ty} {band}: summarised as float32");
            // Missing where the uint16 run has nodata (0); within a digital number elsewhere
            // (GDAL's float warp does not round as the 16-bit path does).
            let (mut valid, mut close) = (0, 0);
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(*x == 0.0, y.is_nan(), "{ty} {band}: the same pixels missing ({x}, {y})");
                if *x != 0.0 {
                    valid += 1;
                    close += ((from_uint16(*x) - y).abs() <= from_uint16(1.0001) - from_uint16(0.0)) as usize;
                }
            }
            assert!(valid > a.len() / 2, "{ty} {band}: {valid} valid");
            assert!(close as f64 >= 0.999 * valid as f64, "{ty} {band}: {close} of {valid} within a DN");
        }
    }
    // int32 values float32 cannot hold exactly fail their tiles, named.
    let huge = write_items(dir.path().join("huge.json"), &retyped_items(dir.path(), &items, "int32-huge", true));
    let cfg = config(&huge, &dir.path().join("huge"), "{bands: [B04], dtype: int32}");
    let ctx = Context::embedded(&cfg.location, None).unwrap();
    let plan = save_tasks(&cfg, &ctx, &GdalCrsTransform, false, false).unwrap();
    let r = run_plan(&ctx, &plan.run_id, &opts(), &Silent).unwrap();
    assert!(!r.failed.is_empty() && r.processed == 0, "{r:?}");
    assert!(r.failed.iter().all(|f| f.reason.contains("int32-huge.tif") && f.reason.contains("exactly")), "{r:?}");
}
