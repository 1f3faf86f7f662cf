//! Sub-tile parts give the unsplit tile's pixels: every statistic, run whole and as 2 x 2
//! and 3 x 3 parts on the embedded store, writes the same values in every band, and a
//! split tile is assembled once, its scratch parts gone afterwards.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use stratus_engine::runner::{run_plan, RunOptions, Silent};
use stratus_engine::{Context, RunConfig};
use stratus_ports::{TaskQueue, TaskState};
use stratus_raster::GdalCrsTransform;

/// Synthetic scenes either side of a UTM boundary, made once per test binary.
fn scenes() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        stratus_synth::generate(&stratus_testkit::small_scenes(4), dir.path(), &|_, _| {}).unwrap();
        dir
    })
    .path()
}

/// Plan and run `plugin` at `location`, split into `parts` x `parts` (1: whole).
fn run(location: &Path, plugin: &str, plugin_config: &str, parts: u32) -> Context {
    let (cfg, ctx) = plan(scenes(), location, plugin, plugin_config, parts);
    let summary =
        run_plan(&ctx, &cfg.run_id(), &RunOptions::new(2, Arc::new(AtomicBool::new(false))), &Silent).unwrap();
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    let run = ctx.ledger.run(&cfg.run_id()).unwrap().unwrap();
    assert_eq!(run.counts.done, run.counts.total, "{:?}", run.counts);
    assert_eq!(run.completions, 1);
    ctx
}

fn plan(inputs: &Path, location: &Path, plugin: &str, plugin_config: &str, parts: u32) -> (RunConfig, Context) {
    let yaml = format!(
        "run_id: split-{parts}\ninputs: ['{}']\ngrid: 'epsg:6933;240;200'\ntemporal_range: 2021--P1Y\nfrequency: annual\n\
         plugin: {plugin}\nplugin_config: {plugin_config}\nproduct: {{name: t_split, version: 1.0.0}}\nlocation: '{}'\n\
         chunk_size: 64\nlambda: {{parts: {parts}}}\n",
        inputs.join("catalog.json").display(),
        location.display()
    );
    let cfg = RunConfig::from_yaml(&yaml, "split.yaml").unwrap();
    let ctx = Context::embedded(location.to_str().unwrap(), None).unwrap();
    stratus_engine::planner::save_tasks(&cfg, &ctx, &GdalCrsTransform, false, false).unwrap();
    (cfg, ctx)
}

/// Output bands' values, by file name.
type Bands = Vec<(String, Vec<f64>)>;

/// Every output band's values, by file name.
fn bands(ctx: &Context) -> Bands {
    let mut keys: Vec<String> =
        ctx.output.list("t_split/1.0.0/x").unwrap().into_iter().filter(|k| k.ends_with(".tif")).collect();
    keys.sort();
    keys.into_iter()
        .map(|k| {
            let ds = gdal::Dataset::open(ctx.output.gdal_path(&k)).unwrap();
            let (w, h) = ds.raster_size();
            let v = ds.rasterband(1).unwrap().read_as::<f64>((0, 0), (w, h), (w, h), None).unwrap();
            (k, v.into_shape_and_vec().1)
        })
        .collect()
}

fn check(plugin: &str, plugin_config: &str) {
    let dir = tempfile::tempdir().unwrap();
    let whole = bands(&run(&dir.path().join("whole"), plugin, plugin_config, 1));
    assert!(!whole.is_empty());
    for parts in [2, 3] {
        let ctx = run(&dir.path().join(format!("p{parts}")), plugin, plugin_config, parts);
        let tasks = ctx.ledger.tasks(&format!("split-{parts}"), None).unwrap();
        let n_parts = tasks.iter().filter(|t| t.task_id.contains("/part-")).count();
        let n_tiles = tasks.len() - n_parts;
        assert_eq!(n_parts, n_tiles * (parts * parts) as usize, "{plugin}: every tile split {parts} x {parts}");
        assert!(tasks.iter().all(|t| t.state == TaskState::Done));
        let split = bands(&ctx);
        assert_eq!(
            split.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            whole.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            "{plugin}: the same bands"
        );
        for ((key, a), (_, b)) in whole.iter().zip(&split) {
            let differ = a.iter().zip(b).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
            assert_eq!(differ, 0, "{plugin} {parts}x{parts}: {key} differs in {differ} of {} pixels", a.len());
        }
        let scratch: Vec<String> =
            ctx.output.list(&format!("t_split/1.0.0/_runs/split-{parts}/parts")).unwrap_or_default();
        assert!(scratch.is_empty(), "{plugin}: scratch parts left behind: {scratch:?}");
    }
}

#[test]
fn pq_split_equals_whole() {
    check("pq", "{}");
}

#[test]
fn geomedian_with_morphology_split_equals_whole() {
    check("gm-s2", "{bands: [B02, B03, B04, B08, B11, B12]}");
}

#[test]
fn percentiles_and_median_split_equal_whole() {
    check("percentiles", "{bands: [B04, B08]}");
    check("median", "{bands: [B04, B08]}");
}

#[test]
fn tasselled_cap_percentiles_split_equal_whole() {
    check("tcw-percentiles", "{}");
}

/// The synthetic scenes carry no WOfS or fractional cover bands: their statistics run on
/// Sentinel-2 bands standing in for them (the values mean nothing; the equality holds).
#[test]
fn wofs_and_fractional_cover_split_equal_whole() {
    check("wofs-summary", "{band: SCL}");
    check("fc-percentiles", "{bands: [B02, B03, B04], water_band: SCL, dtype: uint16, nodata: 0}");
}

/// A part that fails fails its tile, with the part's reason, and the run completes; a
/// retry runs only the failed parts, then assembles the tile, the same as unsplit.
#[test]
fn a_failed_part_fails_its_tile_and_a_retry_reruns_only_the_failed_parts() {
    let dir = tempfile::tempdir().unwrap();
    // The parts that read the broken input fail.
    let (inputs, whole, victim, good) = broken_inputs(dir.path());
    let (cfg, ctx) = plan(&inputs, &dir.path().join("split"), "pq", "{}", 2);
    let run_id = cfg.run_id();
    let opts = RunOptions::new(2, Arc::new(AtomicBool::new(false)));
    run_plan(&ctx, &run_id, &opts, &Silent).unwrap();
    let tasks = ctx.ledger.tasks(&run_id, None).unwrap();
    let failed_parts: Vec<&str> = tasks
        .iter()
        .filter(|t| t.task_id.contains("/part-") && t.state == TaskState::Failed)
        .map(|t| t.task_id.as_str())
        .collect();
    assert!(!failed_parts.is_empty(), "some parts read the broken input");
    let done_parts = tasks.iter().filter(|t| t.task_id.contains("/part-") && t.state == TaskState::Done).count();
    assert!(done_parts > 0, "parts that do not read it are done");
    for t in tasks.iter().filter(|t| !t.task_id.contains("/part-") && t.state == TaskState::Failed) {
        let why = t.error.clone().unwrap_or_default();
        assert!(
            why.contains("/part-") && why.contains("SCL.tif"),
            "the tile names its failed part and the input: {why}"
        );
    }
    let run = ctx.ledger.run(&run_id).unwrap().unwrap();
    assert_eq!((run.counts.ended(), run.completions), (run.counts.total, 1), "{:?}", run.counts);

    // Fixed, then retried: only the failed parts run again, then their tiles assemble.
    std::fs::write(&victim, good).unwrap();
    let before: std::collections::HashMap<String, String> = tasks
        .iter()
        .filter(|t| t.state == TaskState::Done)
        .map(|t| (t.task_id.clone(), t.updated_at.clone()))
        .collect();
    let reset = ctx.ledger.reset(&run_id, stratus_ports::ledger::ResetScope::Failed, None).unwrap();
    assert!(reset.iter().all(|id| failed_parts.contains(&id.as_str()) || !id.contains("/part-")));
    let summary = run_plan(&ctx, &run_id, &opts, &Silent).unwrap();
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    for t in ctx.ledger.tasks(&run_id, None).unwrap() {
        assert_eq!(t.state, TaskState::Done, "{}", t.task_id);
        if let Some(at) = before.get(&t.task_id) {
            assert_eq!(&t.updated_at, at, "{} was done and ran again", t.task_id);
        }
    }
    assert_eq!(ctx.ledger.run(&run_id).unwrap().unwrap().completions, 2);
    let split = bands(&ctx);
    assert_eq!(split.len(), whole.len());
    for ((key, a), (_, b)) in whole.iter().zip(&split) {
        assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()), "{key} differs from the unsplit run");
    }
}

/// Private synthetic scenes with one date's SCL of the eastern granule made unreadable,
/// and the unsplit run's bands made from intact ones. Returns the inputs, those bands, the
/// broken file and its good bytes.
fn broken_inputs(dir: &Path) -> (PathBuf, Bands, PathBuf, Vec<u8>) {
    let inputs = dir.join("inputs");
    stratus_synth::generate(&stratus_testkit::small_scenes(4), &inputs, &|_, _| {}).unwrap();
    let whole = bands(&run(&dir.join("whole"), "pq", "{}", 1));
    let victim = walk(&inputs)
        .into_iter()
        .find(|p| p.to_string_lossy().contains("35LKE") && p.to_string_lossy().ends_with("SCL.tif"))
        .expect("an SCL band of 35LKE");
    let good = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, b"not a tiff").unwrap();
    (inputs, whole, victim, good)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Handle the run's embedded queue to the end as a consumer does, retries coming back at
/// once (a test does not wait out backoffs); messages that fail their receives go on to
/// the dead-letter queue.
fn consume(ctx: &Context, queue: &dyn TaskQueue) {
    use stratus_engine::consumer::{Disposition, TaskHandler};
    let runs = Arc::new(stratus_engine::context::EmbeddedRuns(ctx.clone()));
    let mut handler = TaskHandler::new(runs, Arc::new(AtomicBool::new(false)), false, None);
    for _ in 0..1000 {
        let msgs = queue.receive(1, std::time::Duration::from_secs(60), std::time::Duration::ZERO).unwrap();
        let Some(msg) = msgs.into_iter().next() else {
            // A receive that moved a spent message to the dead-letter queue returns none.
            if queue.depth().unwrap().visible == 0 {
                return;
            }
            continue;
        };
        let handled = handler.handle(&msg, queue, &|| {}, None);
        match handled.disposition {
            Disposition::Delete => queue.delete(&msg.receipt).unwrap(),
            _ => queue.extend_visibility(&msg.receipt, std::time::Duration::ZERO).unwrap(),
        }
    }
    panic!("the queue never emptied");
}

/// On the queue path: a part that fails its receives goes to the dead-letter queue and
/// fails its tile; a console-style redrive (the queue only, no ledger reset) runs the
/// failed parts again, and their tile is released, sent and assembled, once.
#[test]
fn a_console_redrive_of_a_failed_part_reruns_it_and_assembles_its_tile() {
    let dir = tempfile::tempdir().unwrap();
    let (inputs, whole, victim, good) = broken_inputs(dir.path());
    let (cfg, ctx) = plan(&inputs, &dir.path().join("split"), "pq", "{}", 2);
    let run_id = cfg.run_id();
    let queue = ctx.embedded_queue(&run_id, 3).unwrap();
    let queues = stratus_engine::runner::Queues { lambda: &queue, container: None };
    stratus_engine::runner::publish_tasks(&ctx, &run_id, &queues, &[], false).unwrap();
    consume(&ctx, &queue);
    let run = ctx.ledger.run(&run_id).unwrap().unwrap();
    assert_eq!((run.counts.ended(), run.completions), (run.counts.total, 1), "{:?}", run.counts);
    let failed: Vec<String> =
        ctx.ledger.tasks(&run_id, Some(TaskState::Failed)).unwrap().into_iter().map(|t| t.task_id).collect();
    let failed_parts = failed.iter().filter(|t| t.contains("/part-")).count();
    assert!(failed_parts > 0 && failed.len() > failed_parts, "parts and their tiles failed: {failed:?}");
    assert_eq!(queue.depth().unwrap().dead_letter as usize, failed_parts, "only the parts had messages");

    std::fs::write(&victim, good).unwrap();
    assert_eq!(queue.redrive().unwrap(), failed_parts);
    consume(&ctx, &queue);
    let run = ctx.ledger.run(&run_id).unwrap().unwrap();
    assert_eq!((run.counts.done, run.completions), (run.counts.total, 2), "{:?}", run.counts);
    let split = bands(&ctx);
    for ((key, a), (_, b)) in whole.iter().zip(&split) {
        assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()), "{key} differs from the unsplit run");
    }
}
