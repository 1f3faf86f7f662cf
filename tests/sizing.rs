//! The planner's memory estimate against a measured run: the worker's peak memory is set
//! by its chunk size, so for two chunk sizes the measured peak (a `stratus run` process of
//! one tile, as a Lambda invocation is) must stay under the estimate, and the estimate
//! must not be so loose that it routes tiles to the container worker for nothing.

mod support;

use std::path::Path;
use stratus_engine::planner::save_tasks;
use stratus_engine::sizing::Sizer;
use stratus_engine::{Context, RunConfig};
use stratus_raster::GdalCrsTransform;
use stratus_synth::SynthSpec;

/// Plan at `chunk`, run the fullest tile in its own process with 2 threads; (estimate,
/// measured) MB.
fn estimate_and_measured(catalog: &Path, dir: &Path, chunk: usize) -> (f64, f64) {
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
    // The tile with the most datasets (the others are edge tiles).
    let task = ctx
        .ledger
        .tasks(&plan.run_id, None)
        .unwrap()
        .into_iter()
        .max_by_key(|t| t.summary["datasets"].as_u64().unwrap())
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["run", &plan.run_id, &task.task_id, "--location", &cfg.location, "--workers", "1"])
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let done = ctx.ledger.task(&plan.run_id, &task.task_id).unwrap().unwrap();
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
