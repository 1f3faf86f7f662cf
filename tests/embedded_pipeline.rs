//! End to end on the embedded defaults: synthetic inputs -> plan -> run -> COGs + STAC,
//! checked against the synthetic truth; reruns, a killed run, bad inputs.

mod support;

use gdal::Dataset as GdalDataset;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stratus_core::{GridSpec, TaskId};
use stratus_engine::config::{InputPolicy, RunConfig};
use stratus_engine::layout::Layout;
use stratus_engine::planner::save_tasks;
use stratus_engine::runner::{run_plan, RunOptions, Silent};
use stratus_engine::Context;
use stratus_ports::{Ledger, SqliteLedger, TaskState};
use stratus_raster::GdalCrsTransform;
use stratus_synth::SynthSpec;

fn spec(dates: usize) -> SynthSpec {
    support::small_scenes(dates)
}

fn synth(dir: &Path, dates: usize) -> PathBuf {
    let out = dir.join("inputs");
    stratus_synth::generate(&spec(dates), &out, &|_, _| {}).unwrap();
    out.join("catalog.json")
}

fn config(inputs: &Path, location: &Path, grid: &str) -> RunConfig {
    let yaml = format!(
        "inputs: ['{}']\ngrid: '{grid}'\ntemporal_range: 2021--P1Y\nfrequency: annual\nplugin: pq\nproduct: {{name: t_pq, version: 1.0.0}}\nlocation: '{}'\nchunk_size: 64\nwarp_error_threshold: 0\n",
        inputs.display(),
        location.display()
    );
    RunConfig::from_yaml(&yaml, "test config").unwrap()
}

fn read_u16(path: &str) -> Vec<u16> {
    let ds = GdalDataset::open(path).unwrap();
    let (w, h) = ds.raster_size();
    ds.rasterband(1).unwrap().read_as::<u16>((0, 0), (w, h), (w, h), None).unwrap().into_shape_and_vec().1
}

fn opts(workers: usize) -> RunOptions {
    RunOptions::new(workers, Arc::new(AtomicBool::new(false)))
}

#[test]
fn clear_counts_equal_the_synthetic_truth_and_reruns_skip_finished_tiles() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = synth(dir.path(), 6);
    let out = dir.path().join("out");
    let cfg = config(&catalog, &out, "epsg:6933;240;100");
    let ctx = Context::embedded(&cfg.location, None).unwrap();
    let plan = save_tasks(&cfg, &ctx, &GdalCrsTransform, false, false).unwrap();
    assert!(plan.tasks >= 6, "{plan:?}");
    assert!(
        plan.artefacts.iter().any(|a| a.ends_with("tasks.csv"))
            && plan.artefacts.iter().any(|a| a.ends_with("2021--P1Y.geojson"))
    );
    // Planning the same configuration again is a no-op; a different one is refused.
    assert!(save_tasks(&cfg, &ctx, &GdalCrsTransform, false, false).unwrap().unchanged);
    let mut other = cfg.clone();
    other.chunk_size = 128;
    assert!(save_tasks(&other, &ctx, &GdalCrsTransform, false, false).unwrap_err().to_string().contains("--overwrite"));

    let report = run_plan(&ctx, &plan.run_id, &opts(2), &Silent).unwrap();
    assert_eq!((report.processed, report.failed.len()), (plan.tasks, 0), "{report:?}");

    let grid = GridSpec::parse(&cfg.grid).unwrap();
    let layout = Layout::new("t_pq", "1.0.0");
    let mut fused_tiles = 0;
    for t in ctx.ledger.tasks(&plan.run_id, None).unwrap() {
        assert_eq!(t.state, TaskState::Done);
        let id: TaskId = t.task_id.parse().unwrap();
        let band = |b: &str| read_u16(&ctx.output.url(&layout.band_key(&id, b)));
        let (want_total, want_clear) = stratus_synth::truth::expected_pq_counts(&catalog, &grid, id.tile);
        assert_eq!(band("total"), want_total, "total of {id}");
        assert_eq!(band("clear"), want_clear, "clear of {id}");
        // Dilating the cloud mask can only lower the clear count (opening first may
        // raise it: specks are removed).
        let dilated = band("clear_0_5");
        assert!(dilated.iter().zip(&want_clear).all(|(f, c)| f <= c));
        assert!(dilated.iter().zip(&want_clear).any(|(f, c)| f < c));
        // The STAC item: valid, complete, with lineage.
        let item: Value = serde_json::from_slice(&ctx.output.get(&layout.stac_key(&id)).unwrap()).unwrap();
        let parsed: stac::Item = serde_json::from_value(item.clone()).unwrap();
        assert_eq!(parsed.assets.len(), 4);
        assert_eq!(item["properties"]["proj:shape"], serde_json::json!([100, 100]));
        assert_eq!(item["properties"]["odc:region_code"], id.tile.region_code());
        let inputs = item["properties"]["stratus:inputs"].as_array().unwrap();
        let regions: std::collections::BTreeSet<&str> = inputs.iter().map(|i| &i.as_str().unwrap()[4..9]).collect();
        if regions.len() == 2 {
            fused_tiles += 1;
        }
        // Every COG is a real COG with overviews-ready layout.
        let ds = GdalDataset::open(ctx.output.url(&layout.band_key(&id, "clear"))).unwrap();
        use gdal::Metadata;
        assert_eq!(ds.metadata_item("LAYOUT", "IMAGE_STRUCTURE").as_deref(), Some("COG"));
    }
    assert!(fused_tiles >= 1, "some tile must see both UTM zones on the same days");

    // Running again redoes nothing.
    let stac_key = layout.stac_key(&plan.run_id_first_task(&ctx));
    let before = std::fs::metadata(ctx.output.url(&stac_key)).unwrap().modified().unwrap();
    let again = run_plan(&ctx, &plan.run_id, &opts(2), &Silent).unwrap();
    assert_eq!((again.processed, again.already_done), (0, plan.tasks));
    assert_eq!(std::fs::metadata(ctx.output.url(&stac_key)).unwrap().modified().unwrap(), before);
}

trait FirstTask {
    fn run_id_first_task(&self, ctx: &Context) -> TaskId;
}
impl FirstTask for stratus_engine::planner::PlanSummary {
    fn run_id_first_task(&self, ctx: &Context) -> TaskId {
        ctx.ledger.tasks(&self.run_id, None).unwrap()[0].task_id.parse().unwrap()
    }
}

#[test]
fn a_killed_run_resumes_and_writes_each_tile_once() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = synth(dir.path(), 8);
    let out = dir.path().join("out");
    let bin = env!("CARGO_BIN_EXE_stratus");
    let st = std::process::Command::new(bin)
        .args([
            "save-tasks",
            "--input",
            catalog.to_str().unwrap(),
            "--grid",
            "epsg:6933;240;30",
            "--year",
            "2021",
            "--plugin",
            "pq",
            "--product-name",
            "k_pq",
            "--run-id",
            "k",
        ])
        .args(["--location", out.to_str().unwrap(), "--chunk-size", "64"])
        .status()
        .unwrap();
    assert!(st.success());
    let ledger = SqliteLedger::open(out.join("_stratus/state.sqlite")).unwrap();
    let total = ledger.run("k").unwrap().unwrap().counts.total;
    assert!(total >= 20, "{total}");
    let mut child = std::process::Command::new(bin)
        .args(["run", "k", "--location", out.to_str().unwrap(), "--workers", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while ledger.run("k").unwrap().unwrap().counts.done < 3 {
        assert!(started.elapsed() < Duration::from_secs(120), "run made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no clean-up at all
    child.wait().unwrap();
    let done_before: Vec<_> = ledger.tasks("k", Some(TaskState::Done)).unwrap();
    assert!((done_before.len() as u64) < total, "the run finished before it could be killed");
    let layout = Layout::new("k_pq", "0.1.0");
    let mtime =
        |t: &str| std::fs::metadata(out.join(layout.stac_key(&t.parse().unwrap()))).unwrap().modified().unwrap();
    let before: Vec<_> = done_before.iter().map(|t| (t.task_id.clone(), mtime(&t.task_id))).collect();

    let st = std::process::Command::new(bin)
        .args(["run", "k", "--location", out.to_str().unwrap(), "--workers", "2"])
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stdout));
    let c = ledger.run("k").unwrap().unwrap().counts;
    assert_eq!((c.done, c.running, c.pending, c.failed), (total, 0, 0, 0));
    // Tiles finished before the kill were not written again.
    for (t, m) in before {
        assert_eq!(mtime(&t), m, "{t} was rewritten");
    }
    // Every task completed exactly once: one STAC item each, and only the task in flight
    // at the kill took a second attempt.
    let items = walk(&out).into_iter().filter(|p| p.ends_with(".stac-item.json")).count();
    assert_eq!(items as u64, total);
    let retried = ledger.tasks("k", None).unwrap().into_iter().filter(|t| t.attempts > 1).count();
    assert!(retried <= 1, "{retried} tasks ran twice");
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

/// The SCL file of the first scene of granule 35LKE.
fn one_scl(inputs: &Path) -> PathBuf {
    let mut dirs: Vec<_> = std::fs::read_dir(inputs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("35LKE"))
        .collect();
    dirs.sort();
    dirs[0].join("SCL.tif")
}

#[test]
fn a_corrupt_input_fails_only_its_tiles_then_skip_policy_lists_it() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = synth(dir.path(), 4);
    let scl = one_scl(catalog.parent().unwrap());
    let bytes = std::fs::read(&scl).unwrap();
    std::fs::write(&scl, &bytes[..bytes.len() / 3]).unwrap(); // truncated COG
    let out = dir.path().join("out");
    let cfg = config(&catalog, &out, "epsg:6933;240;100");
    let ctx = Context::embedded(&cfg.location, None).unwrap();
    let plan = save_tasks(&cfg, &ctx, &GdalCrsTransform, false, false).unwrap();
    let report = run_plan(&ctx, &plan.run_id, &opts(2), &Silent).unwrap();
    assert!(!report.failed.is_empty() && report.processed > 0, "{report:?}");
    let layout = Layout::new("t_pq", "1.0.0");
    for f in &report.failed {
        assert!(f.reason.contains(&scl.display().to_string()), "reason must name the file: {}", f.reason);
        let id: TaskId = f.task_id.parse().unwrap();
        // Nothing of a failed tile is left looking complete.
        assert!(ctx.output.head(&layout.stac_key(&id)).unwrap().is_none());
        assert!(ctx.output.head(&layout.band_key(&id, "total")).unwrap().is_none());
        let t = ctx.ledger.task(&plan.run_id, &f.task_id).unwrap().unwrap();
        assert_eq!(t.state, TaskState::Failed);
        assert!(t.error.unwrap().contains("SCL.tif"));
    }

    // With input_policy: skip the same inputs give a complete product that lists the
    // skipped input, machine-readably, in the STAC item and the ledger.
    let mut skip = cfg.clone();
    skip.input_policy = InputPolicy::Skip;
    skip.run_id = Some("skip".into());
    skip.location = dir.path().join("out2").display().to_string();
    let ctx2 = Context::embedded(&skip.location, None).unwrap();
    save_tasks(&skip, &ctx2, &GdalCrsTransform, false, false).unwrap();
    let r2 = run_plan(&ctx2, "skip", &opts(2), &Silent).unwrap();
    assert!(r2.failed.is_empty(), "{r2:?}");
    let f = &report.failed[0];
    let id: TaskId = f.task_id.parse().unwrap();
    let item: Value = serde_json::from_slice(&ctx2.output.get(&layout.stac_key(&id)).unwrap()).unwrap();
    let skipped = item["properties"]["stratus:skipped_inputs"].as_array().unwrap();
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].as_str().unwrap().contains("35LKE"));
    let result = ctx2.ledger.task("skip", &f.task_id).unwrap().unwrap().result.unwrap();
    assert!(result["skipped_inputs"][0]["href"].as_str().unwrap().ends_with("SCL.tif"));
}

#[test]
fn missing_assets_and_items_without_geometry_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = synth(dir.path(), 2);
    let inputs = catalog.parent().unwrap();
    // One item loses its SCL asset, another its geometry.
    let mut items: Vec<PathBuf> = std::fs::read_dir(inputs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|d| d.join(format!("{}.json", d.file_name().unwrap().to_string_lossy())))
        .collect();
    items.sort();
    let edit = |p: &Path, f: &dyn Fn(&mut Value)| {
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(p, serde_json::to_string(&v).unwrap()).unwrap();
    };
    edit(&items[0], &|v| {
        v["assets"].as_object_mut().unwrap().remove("scl");
    });
    edit(&items[1], &|v| {
        v.as_object_mut().unwrap().remove("geometry");
    });
    let out = dir.path().join("out");
    let cfg = config(&catalog, &out, "epsg:6933;240;100");
    let ctx = Context::embedded(&cfg.location, None).unwrap();
    let e = save_tasks(&cfg, &ctx, &GdalCrsTransform, false, false).unwrap_err().to_string();
    let bad_id = items[1].file_stem().unwrap().to_string_lossy().to_string();
    assert!(e.contains(&bad_id) && e.contains("no geometry") && e.contains("input_policy: skip"), "{e}");
    let mut skip = cfg.clone();
    skip.input_policy = InputPolicy::Skip;
    let plan = save_tasks(&skip, &ctx, &GdalCrsTransform, false, false).unwrap();
    assert_eq!(plan.bad_items.len(), 1);
    let report = run_plan(&ctx, &plan.run_id, &opts(1), &Silent).unwrap();
    let no_scl = items[0].file_stem().unwrap().to_string_lossy().to_string();
    // Tiles that use the item without SCL: skipped input (policy skip), listed.
    let listed = ctx.ledger.tasks(&plan.run_id, Some(TaskState::Done)).unwrap().into_iter().any(|t| {
        t.result.as_ref().and_then(|r| r["skipped_inputs"].as_array().cloned()).is_some_and(|s| {
            s.iter().any(|x| {
                x["reason"].as_str().unwrap_or("").contains("no asset for band 'SCL'")
                    && x["dataset"] == no_scl.as_str()
            })
        })
    });
    assert!(listed && report.failed.is_empty(), "{report:?}");
}

fn read_band_u16(ctx: &Context, layout: &Layout, id: &TaskId, band: &str) -> Vec<u16> {
    read_u16(&ctx.output.url(&layout.band_key(id, band)))
}

/// Cloud-free reflectance with the cloudy scenes' SCL: the truth twins without their own
/// `scl` asset, fused (`a+b`) with the cloudy items. Its geomedian is the geomedian of each
/// pixel's own clear dates without clouds: any difference from the cloudy geomedian is
/// cloud leaking through the mask.
fn truth_with_cloudy_mask(inputs: &Path) -> PathBuf {
    let truth = inputs.join("truth");
    let mut links = vec![];
    for e in std::fs::read_dir(&truth).unwrap() {
        let d = e.unwrap().path();
        if !d.is_dir() {
            continue;
        }
        let id = d.file_name().unwrap().to_string_lossy().to_string();
        let mut v: Value =
            serde_json::from_str(&std::fs::read_to_string(d.join(format!("{id}.json"))).unwrap()).unwrap();
        v["assets"].as_object_mut().unwrap().remove("scl");
        std::fs::write(d.join(format!("{id}.noscl.json")), v.to_string()).unwrap();
        links.push(serde_json::json!({"rel": "item", "href": format!("./{id}/{id}.noscl.json")}));
    }
    let cat = serde_json::json!({"type": "Catalog", "stac_version": "1.0.0", "id": "noscl", "description": "truth without SCL", "links": links});
    let p = truth.join("noscl-catalog.json");
    std::fs::write(&p, cat.to_string()).unwrap();
    p
}

#[test]
fn geomedian_of_cloudy_inputs_matches_the_cloud_free_truth() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("inputs");
    stratus_synth::generate(&SynthSpec { truth: true, ..spec(12) }, &out, &|_, _| {}).unwrap();
    let gm_cfg = |inputs: Vec<PathBuf>, location: &Path, products: Option<&str>| {
        let mut c = config(&inputs[0], location, "epsg:6933;240;100");
        c.inputs = inputs.iter().map(|p| p.display().to_string().into()).collect();
        c.products = products.map(String::from);
        c.plugin = "gm-s2".into();
        c.plugin_config = serde_json::json!({"bands": ["B02", "B03", "B04", "B08", "B11", "B12"]});
        c.product.name = "t_gm".into();
        c.warp_error_threshold = 0.125;
        c
    };
    let cloudy = gm_cfg(vec![out.join("catalog.json")], &dir.path().join("cloudy"), None);
    let masked_truth = gm_cfg(
        vec![truth_with_cloudy_mask(&out), out.join("catalog.json")],
        &dir.path().join("masked-truth"),
        Some("sentinel-2-l2a-clear+sentinel-2-l2a"),
    );
    let all_truth = gm_cfg(vec![out.join("truth/catalog.json")], &dir.path().join("truth"), None);
    let mut ids = Vec::new();
    let mut contexts = Vec::new();
    for cfg in [&cloudy, &masked_truth, &all_truth] {
        let ctx = Context::embedded(&cfg.location, None).unwrap();
        let plan = save_tasks(cfg, &ctx, &GdalCrsTransform, false, false).unwrap();
        let r = run_plan(&ctx, &plan.run_id, &opts(2), &Silent).unwrap();
        assert!(r.failed.is_empty(), "{r:?}");
        ids = ctx
            .ledger
            .tasks(&plan.run_id, None)
            .unwrap()
            .into_iter()
            .map(|t| t.task_id.parse::<TaskId>().unwrap())
            .collect();
        contexts.push(ctx);
    }
    let layout = Layout::new("t_gm", "1.0.0");
    let bands = ["B02", "B03", "B04", "B08", "B11", "B12"];
    // (pixels considered, close to the masked truth, close to the all-dates truth)
    let (mut considered, mut close, mut close_all) = (0usize, 0usize, 0usize);
    for id in &ids {
        let count = read_band_u16(&contexts[0], &layout, id, "count");
        let same_dates = read_band_u16(&contexts[1], &layout, id, "count");
        assert_eq!(count, same_dates, "the fused run must see the same clear observations");
        let read =
            |c: usize| -> Vec<Vec<u16>> { bands.iter().map(|b| read_band_u16(&contexts[c], &layout, id, b)).collect() };
        let (a, t, all) = (read(0), read(1), read(2));
        let near = |x: &Vec<Vec<u16>>, p: usize| {
            (0..bands.len()).all(|b| x[b][p] != 0 && (a[b][p] as f64 - x[b][p] as f64).abs() * 1e-4 <= 0.01)
        };
        for (p, &c) in count.iter().enumerate() {
            if c < 5 {
                continue;
            }
            considered += 1;
            close += near(&t, p) as usize;
            close_all += near(&all, p) as usize;
        }
    }
    let share = close as f64 / considered.max(1) as f64;
    println!(
        "geomedian within 0.01 reflectance of the cloud-free geomedian of the same dates: {:.2}% of {considered} pixels with 5+ clear observations (of all dates, seasonal sampling included: {:.2}%)",
        100.0 * share,
        100.0 * close_all as f64 / considered.max(1) as f64
    );
    assert!(considered > 1000, "too few pixels with 5+ clear observations: {considered}");
    assert!(share >= 0.95, "{share}");
}

#[test]
fn baseline_04_offset_is_removed_before_compositing() {
    // The same scenes in 2021 (baseline 03.01) and 2022 (04.00 from 25 January: +1000 on
    // every digital number). Harmonised, both years give the same geomedian.
    let dir = tempfile::tempdir().unwrap();
    let mut results = Vec::new();
    // The third run is the control: 2022 without harmonisation must differ.
    for (year, harmonize) in [(2021, true), (2022, true), (2022, false)] {
        let inputs = dir.path().join(format!("in{year}"));
        stratus_synth::generate(&SynthSpec { year, ..spec(6) }, &inputs, &|_, _| {}).unwrap();
        let mut cfg = config(
            &inputs.join("catalog.json"),
            &dir.path().join(format!("out{year}{harmonize}")),
            "epsg:6933;240;100",
        );
        cfg.temporal_range = Some(format!("{year}--P1Y"));
        cfg.plugin = "gm-s2".into();
        cfg.plugin_config = serde_json::json!({"bands": ["B04", "B08"], "harmonize_s2_offset": harmonize});
        cfg.tiles = vec!["96,-78".into()];
        let ctx = Context::embedded(&cfg.location, None).unwrap();
        let plan = save_tasks(&cfg, &ctx, &GdalCrsTransform, false, false).unwrap();
        assert!(run_plan(&ctx, &plan.run_id, &opts(2), &Silent).unwrap().failed.is_empty());
        let id: TaskId = ctx.ledger.tasks(&plan.run_id, None).unwrap()[0].task_id.parse().unwrap();
        let layout = Layout::new("t_pq", "1.0.0");
        results.push((read_band_u16(&ctx, &layout, &id, "B04"), read_band_u16(&ctx, &layout, &id, "count")));
    }
    let item: Value = serde_json::from_str(
        &std::fs::read_to_string(
            walk(&dir.path().join("in2022"))
                .into_iter()
                .find(|p| p.contains("_2022") && p.ends_with("_L2A.json") && !p.contains("0103"))
                .unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(item["properties"]["s2:processing_baseline"], "04.00");
    assert_eq!(results[0].1, results[1].1, "same clear observations");
    assert!(results[0].1.iter().any(|&c| c > 0));
    assert_eq!(results[0].0, results[1].0, "2022 geomedian must equal 2021's once the +1000 offset is removed");
    let shifted =
        results[0].0.iter().zip(&results[2].0).filter(|(a, b)| **a != 0 && b.saturating_sub(**a) >= 900).count();
    assert!(shifted * 2 > results[0].0.len(), "without harmonisation most pixels are ~1000 higher ({shifted})");
}
