//! Fusing three products (`a+b+c`, odc-stats' product expression), with an optional one:
//! the synthetic scenes split into three collections by band, fused back, give the tasks
//! and the pixels of the unsplit scenes. A time-less product (`ignore_time`) is joined to
//! every date of its region.

mod support;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use stratus_ports::{Ledger, SqliteLedger};
use support::stratus;

fn ok(o: std::process::Output) -> String {
    let t = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{t}");
    t
}

/// `items` with only the assets `keep` picks, in collection `c`.
fn split(items: &[Value], c: &str, keep: &dyn Fn(&str) -> bool) -> Vec<Value> {
    items
        .iter()
        .map(|i| {
            let mut i = i.clone();
            i["collection"] = json!(c);
            i["assets"].as_object_mut().unwrap().retain(|k, _| keep(k));
            i
        })
        .collect()
}

fn write(path: PathBuf, items: &[Value]) -> PathBuf {
    std::fs::write(&path, json!({"type": "FeatureCollection", "features": items}).to_string()).unwrap();
    path
}

fn plan(out: &Path, args: &[&str]) -> BTreeMap<String, usize> {
    let mut cmd = vec!["save-tasks", "--grid", "epsg:6933;240;100", "--year", "2021", "--plugin", "pq"];
    cmd.extend(["--product-name", "fused", "--run-id", "r", "--chunk-size", "64", "--location", out.to_str().unwrap()]);
    cmd.extend(args);
    ok(stratus(&cmd, &[]));
    let ledger = SqliteLedger::open(out.join("_stratus/state.sqlite")).unwrap();
    ledger
        .tasks("r", None)
        .unwrap()
        .into_iter()
        .map(|t| {
            let n = ledger.payload("r", &t.task_id).unwrap()["datasets"].as_array().unwrap().len();
            (t.task_id, n)
        })
        .collect()
}

#[test]
fn three_products_fuse_into_the_scenes_they_were_split_from() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = support::synthetic_items(dir.path(), 3);
    all.sort_by_key(|i| i["id"].as_str().unwrap().to_string());
    let whole = write(dir.path().join("whole.json"), &all);
    let is_scl = |k: &str| k.eq_ignore_ascii_case("scl");
    let visible = |k: &str| ["B02", "B03", "B04", "blue", "green", "red"].iter().any(|b| k.eq_ignore_ascii_case(b));
    let a = split(&all, "a", &visible);
    let b = split(&all, "b", &|k| !visible(k) && !is_scl(k));
    let c = split(&all, "c", &is_scl);
    assert!(a[0]["assets"].as_object().unwrap().len() >= 3 && !b[0]["assets"].as_object().unwrap().is_empty());
    let (fa, fb, fc) = (
        write(dir.path().join("a.json"), &a),
        write(dir.path().join("b.json"), &b),
        write(dir.path().join("c.json"), &c),
    );
    let inputs = ["--input", fa.to_str().unwrap(), "--input", fb.to_str().unwrap(), "--input", fc.to_str().unwrap()];

    let want = plan(&dir.path().join("whole"), &["--input", whole.to_str().unwrap()]);
    let mut args = inputs.to_vec();
    args.extend(["--products", "a+b+c"]);
    let fused_out = dir.path().join("fused");
    assert_eq!(plan(&fused_out, &args), want, "a+b+c: the same tasks with the same number of datasets");

    // The fused run makes the pixels of the unsplit one.
    for out in [dir.path().join("whole"), fused_out.clone()] {
        ok(stratus(&["run", "r", "--location", out.to_str().unwrap(), "--workers", "2"], &[]));
    }
    let tifs = |root: &Path| -> BTreeMap<String, Vec<f64>> {
        let mut out = BTreeMap::new();
        for p in support::files_with_extension(root, "tif") {
            let ds = gdal::Dataset::open(&p).unwrap();
            let band = ds.rasterband(1).unwrap();
            let (w, h) = ds.raster_size();
            let px: Vec<f64> = band.read_as::<f64>((0, 0), (w, h), (w, h), None).unwrap().data().to_vec();
            out.insert(p.strip_prefix(root).unwrap().display().to_string(), px);
        }
        out
    };
    let (w, f) = (tifs(&dir.path().join("whole")), tifs(&fused_out));
    assert!(!w.is_empty());
    assert_eq!(w.keys().collect::<Vec<_>>(), f.keys().collect::<Vec<_>>());
    assert!(w == f, "the fused run's pixels differ from the unsplit run's");

    // Without SCL for the first scene, that scene is dropped, unless c is optional (then it
    // is fused from a and b alone).
    let first = all[0]["id"].as_str().unwrap();
    let c_missing: Vec<Value> = c.iter().filter(|i| i["id"] != first).cloned().collect();
    let fc2 = write(dir.path().join("c-missing.json"), &c_missing);
    let args = [
        "--input",
        fa.to_str().unwrap(),
        "--input",
        fb.to_str().unwrap(),
        "--input",
        fc2.to_str().unwrap(),
        "--products",
        "a+b+c",
    ];
    let strict = plan(&dir.path().join("strict"), &args);
    let mut loose_args = args.to_vec();
    loose_args.extend(["--optional-products", "c"]);
    let loose = plan(&dir.path().join("loose"), &loose_args);
    assert_eq!(loose, want, "an optional product's absence keeps the acquisition");
    assert!(strict.values().sum::<usize>() < want.values().sum::<usize>(), "a required product's absence drops it");

    // optional_products must name a fused product.
    let mut bad = args.to_vec();
    bad.extend(["--optional-products", "d"]);
    let o = stratus(
        &[&["save-tasks", "--grid", "epsg:6933;240;100", "--plugin", "pq", "--location", "x"][..], &bad].concat(),
        &[],
    );
    let t = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success() && t.contains("'d' is not one of the fused products"), "{t}");
}

/// Every band file under `root`, by path below it, as f64 pixels.
fn pixels(root: &Path) -> BTreeMap<String, Vec<f64>> {
    let mut out = BTreeMap::new();
    for p in support::files_with_extension(root, "tif") {
        let ds = gdal::Dataset::open(&p).unwrap();
        let (w, h) = ds.raster_size();
        let px = ds.rasterband(1).unwrap().read_as::<f64>((0, 0), (w, h), (w, h), None).unwrap();
        out.insert(p.strip_prefix(root).unwrap().display().to_string(), px.data().to_vec());
    }
    out
}

#[test]
fn a_time_less_product_joins_every_date_of_its_region() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = support::synthetic_items(dir.path(), 3);
    all.sort_by_key(|i| {
        (i["properties"]["datetime"].as_str().unwrap().to_string(), i["id"].as_str().unwrap().to_string())
    });
    let is_scl = |k: &str| k.eq_ignore_ascii_case("scl");
    let first_date = all[0]["properties"]["datetime"].clone();
    let first: Vec<Value> = all.iter().filter(|i| i["properties"]["datetime"] == first_date).cloned().collect();
    assert_eq!(first.len(), 2, "one scene per region on the first date");
    // The first date's cloud masks as a static product dated 2000 (a stand-in for a DEM or
    // a fixed mask), one dataset per region; the scenes without their own masks.
    let mut statics = split(&first, "static", &is_scl);
    for s in statics.iter_mut() {
        s["id"] = json!(format!("static-{}", s["id"].as_str().unwrap()));
        s["properties"]["datetime"] = json!("2000-01-01T00:00:00Z");
    }
    let dated = split(&all, "a", &|k| !is_scl(k));
    let (fd, fs) = (write(dir.path().join("a.json"), &dated), write(dir.path().join("static.json"), &statics));
    let first_only = write(dir.path().join("first.json"), &first);

    let args = ["--input", fd.to_str().unwrap(), "--input", fs.to_str().unwrap(), "--products", "a+static"];
    let mut joined_args = args.to_vec();
    joined_args.extend(["--ignore-time", "static"]);
    let joined_out = dir.path().join("joined");
    let joined = plan(&joined_out, &joined_args);
    let whole =
        plan(&dir.path().join("whole"), &["--input", write(dir.path().join("all.json"), &all).to_str().unwrap()]);
    assert_eq!(joined, whole, "every date of the scenes is kept, each joined by its region's static mask");
    let ledger = SqliteLedger::open(joined_out.join("_stratus/state.sqlite")).unwrap();
    for t in ledger.tasks("r", None).unwrap() {
        for d in ledger.payload("r", &t.task_id).unwrap()["datasets"].as_array().unwrap() {
            let sources: Vec<&str> = d["sources"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
            assert!(sources.len() == 2 && sources[1].starts_with("static-"), "{sources:?}");
            assert!(d["datetime"].as_str().unwrap().starts_with("2021"), "the scene's date, not the static one's");
        }
    }
    // Without ignore_time the static product is outside the dates: nothing to fuse with.
    let o = stratus(
        &[
            &["save-tasks", "--grid", "epsg:6933;240;100", "--year", "2021", "--plugin", "pq", "--location"][..],
            &[dir.path().join("strict").to_str().unwrap()],
            &args,
        ]
        .concat(),
        &[],
    );
    assert!(!o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Pixels: every date sees the first date's mask, so each count is three times the
    // count of the first date alone (the scenes of all dates share their footprints).
    let first_out = dir.path().join("first");
    plan(&first_out, &["--input", first_only.to_str().unwrap()]);
    for out in [&joined_out, &first_out] {
        ok(stratus(&["run", "r", "--location", out.to_str().unwrap(), "--workers", "2"], &[]));
    }
    let (j, f) = (pixels(&joined_out), pixels(&first_out));
    assert!(!f.is_empty());
    assert_eq!(j.keys().collect::<Vec<_>>(), f.keys().collect::<Vec<_>>());
    let mut counted = 0;
    for (name, px) in &f {
        let want: Vec<f64> = px.iter().map(|v| 3.0 * v).collect();
        assert!(j[name] == want, "{name}: the joined counts are not three times the first date's");
        counted += px.iter().filter(|v| **v > 0.0).count();
    }
    assert!(counted > 1000, "{counted} pixels with observations");

    // ignore_time must name a fused product, and leave one with dates.
    for (extra, why) in [(["--ignore-time", "b"], "'b' is not one of the fused products"), (["--ignore-time", "a"], "")]
    {
        let mut bad = args.to_vec();
        bad.extend(extra);
        if why.is_empty() {
            bad.extend(["--ignore-time", "static"]);
        }
        let o = stratus(
            &[&["save-tasks", "--grid", "epsg:6933;240;100", "--plugin", "pq", "--location", "x"][..], &bad].concat(),
            &[],
        );
        let t = String::from_utf8_lossy(&o.stderr).to_string();
        let why = if why.is_empty() { "at least one fused product must have dates" } else { why };
        assert!(!o.status.success() && t.contains(why), "{t}");
    }
}
