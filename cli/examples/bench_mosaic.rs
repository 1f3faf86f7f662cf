//! Mosaic benchmark helper (`make bench`): builds a run of N synthetic done tiles
//! (256 x 256 px, four uint16 bands, as `pq` writes them) on the embedded store, then times
//! the mosaic and prints one JSON line with the time and this process's peak RSS.
//!
//! Usage: bench_mosaic TILES (a square number: 16, 64, 256, ...)

use serde_json::json;
use std::time::{Duration, Instant};
use stratus_core::{GridSpec, TaskId, TileIndex};
use stratus_engine::layout::Layout;
use stratus_engine::mosaic::{build_for_run, MosaicOptions};
use stratus_engine::tile::peak_rss_mb;
use stratus_engine::Context;
use stratus_ports::{ClaimOptions, ClaimOutcome, NewRun, NewTask};
use stratus_raster::{write_cog, CogOptions};

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().nth(1).unwrap_or_else(|| "16".into()).parse()?;
    let side = (n as f64).sqrt().round() as i32;
    anyhow::ensure!((side * side) as usize == n, "TILES must be a square number");
    let dir = tempfile::tempdir()?;
    let location = dir.path().join("products").display().to_string();
    let grid_name = "epsg:6933;240;256";
    let grid = GridSpec::parse(grid_name)?;
    let cfg = stratus_engine::RunConfig::from_yaml(
        &format!("inputs: ['unused']\ngrid: '{grid_name}'\ntemporal_range: 2021--P1Y\nfrequency: annual\nplugin: pq\nproduct: {{name: bench_pq, version: 1.0.0}}\nlocation: '{location}'\n"),
        "bench",
    )?;
    let ctx = Context::embedded(&location, None)?;
    let period = cfg.temporal_range()?.expect("set above");
    let ids: Vec<TaskId> =
        (0..side).flat_map(|y| (0..side).map(move |x| TaskId::new(period, TileIndex::new(100 + x, 50 + y)))).collect();
    let tasks: Vec<NewTask> = ids
        .iter()
        .enumerate()
        .map(|(i, t)| NewTask { task_id: t.to_string(), index: i, summary: json!({}), datasets: vec![], parts: 0 })
        .collect();
    let run_id = cfg.run_id();
    ctx.ledger.create_run(
        &NewRun { run_id: run_id.clone(), config: serde_json::to_value(&cfg)?, config_digest: cfg.digest() },
        &tasks,
        &Vec::new(),
        true,
    )?;
    let layout = Layout::new("bench_pq", "1.0.0");
    let statistic = stratus_stats::build_statistic("pq", &serde_json::Value::Null)?;
    let scratch = dir.path().join("scratch");
    std::fs::create_dir_all(&scratch)?;
    for (i, t) in ids.iter().enumerate() {
        let geobox = grid.tile_geobox(t.tile);
        for band in statistic.output_bands() {
            let data: Vec<u16> = (0..geobox.width * geobox.height)
                .map(|p| ((p % geobox.width + p / geobox.width + i) % 40) as u16)
                .collect();
            let local = scratch.join(format!("{i}_{}.tif", band.name));
            write_cog(&local, &geobox, data, None, &CogOptions::default(), true)?;
            ctx.output.put_file(&layout.band_key(t, &band.name), &local)?;
            std::fs::remove_file(&local)?;
        }
        let id = t.to_string();
        if let ClaimOutcome::Claimed { .. } =
            ctx.ledger.claim(&run_id, &id, "bench", &ClaimOptions::new(Duration::from_secs(60)))?
        {
            ctx.ledger.complete(&run_id, &id, "bench", &json!({}))?;
        }
    }
    let before = peak_rss_mb();
    let started = Instant::now();
    let m = build_for_run(&ctx, &run_id, &MosaicOptions::default())?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"tiles": n, "mosaic_px": [m.width, m.height], "bands": m.bands.len(), "seconds": seconds,
               "peak_rss_mb": peak_rss_mb(), "peak_rss_before_mosaic_mb": before})
    );
    Ok(())
}
