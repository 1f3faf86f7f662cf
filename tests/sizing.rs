//! The planner's memory estimate against a measured run: the worker's peak memory is set
//! by its chunk size, so for two chunk sizes the measured peak (a `stratus run` process of
//! one tile, as a Lambda invocation is) must stay under the estimate, and the estimate
//! must not be so loose that it routes tiles to the container worker for nothing.

mod support;

use std::path::Path;
use stratus_engine::planner::save_tasks;
use stratus_engine::sizing::Sizer;
use stratus_engine::{Context, RunConfig};
use stratus_ports::{TaskRecord, TaskState};
use stratus_raster::GdalCrsTransform;
use stratus_synth::SynthSpec;

/// A plan at `chunk` on the embedded store, and its task with the most datasets (the
/// others are edge tiles).
fn plan_fullest(catalog: &Path, dir: &Path, chunk: usize) -> (RunConfig, Context, String, TaskRecord) {
    let location = dir.join(format!("out-{chunk}"));
    let cfg = RunConfig::from_yaml(
        &format!(
            "inputs: ['{}']\ngrid: 'epsg:6933;120;800'\nfrequency: annual\ntemporal_range: 2021--P1Y\nplugin: gm-s2\nplugin_config: {{bands: [B02, B03, B04, B08, B11, B12]}}\nproduct: {{name: t_size, version: 1.0.0}}\nlocation: '{}'\nchunk_size: {chunk}\n",
            catalog.display(),
            location.display()
        ),
        "sizing test",
    )
    .unwrap();
    let ctx = Context::embedded(&cfg.location, None).unwrap();
    let plan = save_tasks(&cfg, &ctx, &GdalCrsTransform, false, false).unwrap();
    let task = ctx
        .ledger
        .tasks(&plan.run_id, None)
        .unwrap()
        .into_iter()
        .max_by_key(|t| t.summary["datasets"].as_u64().unwrap())
        .unwrap();
    (cfg, ctx, plan.run_id, task)
}

/// `stratus run` of one task in its own process with 2 threads and `env`.
fn run_task(cfg: &RunConfig, run_id: &str, task_id: &str, env: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["run", run_id, task_id, "--location", &cfg.location, "--workers", "1"])
        .env("RAYON_NUM_THREADS", "2")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// Run the fullest tile of a plan at `chunk`; (estimate, measured) MB.
fn estimate_and_measured(catalog: &Path, dir: &Path, chunk: usize) -> (f64, f64) {
    let (cfg, ctx, run_id, task) = plan_fullest(catalog, dir, chunk);
    let out = run_task(&cfg, &run_id, &task.task_id, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let done = ctx.ledger.task(&run_id, &task.task_id).unwrap().unwrap();
    let measured = done.result.as_ref().unwrap()["peak_rss_mb"].as_f64().unwrap();
    let statistic = stratus_stats::build_statistic(&cfg.plugin, &cfg.plugin_config).unwrap();
    let sizer = Sizer::new(&cfg, statistic.as_ref()).unwrap();
    let n = |k: &str| task.summary[k].as_u64().unwrap() as usize;
    let estimate = sizer.memory_mb(n("observation_days"), chunk, 2);
    // The plan recorded the estimate at the Lambda's thread count: at least this one.
    assert!(task.summary["estimate"]["peak_memory_mb"].as_f64().unwrap() >= estimate.floor());
    (estimate, measured)
}

#[test]
fn memory_estimate_bounds_the_measured_peak_for_two_chunk_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs");
    // 24 dates x 2 granules at 120 m: a 48-dataset, 24-day stack of a 800 x 800 tile.
    let spec = SynthSpec { dates: 24, resolution: 120.0, granule_km: 109.8, truth: false, ..SynthSpec::default() };
    let made = stratus_synth::generate(&spec, &inputs, &|_, _| {}).unwrap();
    let seen: Vec<(usize, f64, f64)> = [256, 800]
        .into_iter()
        .map(|chunk| {
            let (estimate, measured) = estimate_and_measured(&made.catalog, dir.path(), chunk);
            eprintln!("chunk {chunk}: estimate {estimate:.0} MB, measured {measured:.0} MB");
            (chunk, estimate, measured)
        })
        .collect();
    for &(chunk, estimate, measured) in &seen {
        assert!(measured <= estimate, "chunk {chunk}: measured {measured} MB above the estimate {estimate:.0} MB");
        assert!(
            estimate <= 2.0 * measured,
            "chunk {chunk}: estimate {estimate:.0} MB over twice the measured {measured} MB"
        );
    }
    // A larger chunk costs more memory, in the estimate and in the measurement.
    assert!(seen[1].1 > seen[0].1 && seen[1].2 > seen[0].2, "{seen:?}");
}

/// Files under `dir` (recursively) whose name ends with `suffix`.
fn files_ending(dir: &Path, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_ending(&p, suffix));
            } else if p.to_string_lossy().ends_with(suffix) {
                out.push(p);
            }
        }
    }
    out
}

/// A refused task: failed at once (no retries), with a reason that says `hints`, and no
/// output of any kind written for it.
fn assert_refused_cleanly(ctx: &Context, cfg: &RunConfig, run_id: &str, task_id: &str, hints: &[&str]) {
    let t = ctx.ledger.task(run_id, task_id).unwrap().unwrap();
    assert_eq!((t.state, t.attempts), (TaskState::Failed, 1), "{t:?}");
    let why = t.error.unwrap_or_default();
    for h in hints {
        assert!(why.contains(h), "the reason should mention '{h}': {why}");
    }
    let product = Path::new(&cfg.location).join("t_size");
    assert!(files_ending(&product, ".tif").is_empty(), "a refused tile wrote outputs");
    assert!(files_ending(&product, ".stac-item.json").is_empty(), "a refused tile wrote a STAC item");
}

fn small_stack(dir: &Path) -> std::path::PathBuf {
    let spec = SynthSpec { dates: 4, resolution: 120.0, granule_km: 109.8, truth: false, ..SynthSpec::default() };
    stratus_synth::generate(&spec, &dir.join("inputs"), &|_, _| {}).unwrap().catalog
}

#[test]
fn a_task_beyond_the_workers_memory_is_refused_before_reading_with_what_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = small_stack(dir.path());
    let (cfg, ctx, run_id, task) = plan_fullest(&catalog, dir.path(), 800);
    // A 272 MB worker (as a Lambda function's configured memory would say): room for the
    // process, GDAL's block cache and the open inputs, and a 256-pixel chunk, not 800.
    run_task(&cfg, &run_id, &task.task_id, &[("STRATUS_WORKER_MEMORY_MB", "272")]);
    assert_refused_cleanly(
        &ctx,
        &cfg,
        &run_id,
        &task.task_id,
        &["272 MB", "chunk_size: 256", "container", "nothing was read"],
    );
    // With room, the same task runs.
    let retry = std::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["retry", &run_id, "--failed", "--location", &cfg.location])
        .output()
        .unwrap();
    assert!(retry.status.success(), "{}", String::from_utf8_lossy(&retry.stderr));
    let out = run_task(&cfg, &run_id, &task.task_id, &[("STRATUS_WORKER_MEMORY_MB", "4096")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(ctx.ledger.task(&run_id, &task.task_id).unwrap().unwrap().state, TaskState::Done);
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct SmallDisk(std::path::PathBuf);
impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_worker_short_of_scratch_space_fails_cleanly_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small-tmp");
    std::fs::create_dir_all(&small).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&small)
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        eprintln!(
            "\n\n######## NOT TESTED: cannot mount a 1 MB tmpfs here (needs root): a worker short of \
             scratch space was not exercised ########\n\n"
        );
        return;
    }
    let _disk = SmallDisk(small.clone());
    let catalog = small_stack(dir.path());
    let (cfg, ctx, run_id, task) = plan_fullest(&catalog, dir.path(), 800);
    run_task(&cfg, &run_id, &task.task_id, &[("TMPDIR", small.to_str().unwrap())]);
    assert_refused_cleanly(&ctx, &cfg, &run_id, &task.task_id, &["scratch space", "TMPDIR", "nothing was read"]);
}
