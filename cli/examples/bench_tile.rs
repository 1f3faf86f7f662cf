//! Tile benchmark helper (`make bench`, driven by scripts/bench/tile.py): one full au-30
//! tile (3200 x 3200 at 30 m) from local COGs, 6 bands, two orbit paths in UTM zones 52 and
//! 53 imaged on different days (46 observation days), geomedian with MADs.
//!
//! Usage: bench_tile DATA_DIR full|reads|decode|gdal-reads|split [CHUNK_SIZE]
//!
//! Generates the inputs under DATA_DIR once (reused while the spec is unchanged), plans the
//! one tile, then processes it (`full`), only reads and warps its inputs (`reads`), only
//! decodes the source windows those reads use (`decode`), or reads them with GDAL's warper
//! once per band as before the read path was rewritten (`gdal-reads`), or processes it as
//! 2 x 2 sub-tile parts one after another and assembles them (`split`), and
//! prints one JSON line: timings, peak RSS and the planner's estimate for the task. Threads
//! follow RAYON_NUM_THREADS.

use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use stratus_core::geometry::CrsTransform;
use stratus_core::{Dataset, GridSpec, TaskId};
use stratus_engine::planner::save_tasks;
use stratus_engine::sizing::Sizer;
use stratus_engine::tile::{peak_rss_mb, process_tile, TileJob, TileMode};
use stratus_engine::{Context, RunConfig};
use stratus_raster::GdalCrsTransform;
use stratus_synth::{Granule, SynthSpec};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() >= 3, "usage: bench_tile DATA_DIR full|reads|decode|gdal-reads|split [CHUNK_SIZE]");
    let data = PathBuf::from(&args[1]);
    let split = args[2] == "split";
    let mode = match args[2].as_str() {
        "full" | "split" => TileMode::Full,
        "reads" => TileMode::ReadsOnly,
        "decode" => TileMode::DecodeOnly,
        "gdal-reads" => TileMode::ReadsOnlyGdalWarp,
        other => anyhow::bail!("mode '{other}': use full, reads, decode, gdal-reads or split"),
    };
    let chunk: usize = args.get(3).map_or(Ok(1024), |c| c.parse())?;
    let spec = SynthSpec {
        seed: 7,
        year: 2021,
        dates: 23,
        resolution: 30.0,
        granule_km: 109.8,
        granules: vec![
            Granule { region_code: "52JGM".into(), epsg: 32752, centre_lon: 131.75, centre_lat: -25.0, day_offset: 0 },
            Granule { region_code: "53JKS".into(), epsg: 32753, centre_lon: 132.75, centre_lat: -25.0, day_offset: 8 },
        ],
        collection: "sentinel-2-l2a".into(),
        truth: false,
    };
    let inputs = data.join("inputs");
    let t = Instant::now();
    let made = stratus_synth::generate(&spec, &inputs, &|_, _| {})?;
    let synth_s = t.elapsed().as_secs_f64();

    // The au-30 tile east of 132 E (Albers x from 0 to 96 km) at 25 S: both paths cover part.
    let grid = GridSpec::parse("au-30")?;
    let mut p = [(132.45, -25.0)];
    GdalCrsTransform.transform(4326, grid.epsg, &mut p)?;
    let tile = grid.tile_of(p[0].0, p[0].1);
    // BENCH_OUT_DIR keeps the outputs there (for comparing with the peer benchmark's).
    let keep = std::env::var("BENCH_OUT_DIR").ok().map(PathBuf::from);
    let location = keep.clone().unwrap_or_else(|| data.join(format!("out-{}-{}", args[2], std::process::id())));
    let cfg = RunConfig::from_yaml(
        &format!(
            "inputs: ['{}']\ngrid: au-30\nfrequency: annual\ntemporal_range: 2021--P1Y\ntiles: ['{},{}']\nplugin: gm-s2\nplugin_config: {{bands: [B02, B03, B04, B08, B11, B12]}}\nproduct: {{name: bench_gm, version: 1.0.0}}\nlocation: '{}'\nchunk_size: {chunk}\n",
            made.catalog.display(),
            tile.x,
            tile.y,
            location.display()
        ),
        "bench",
    )?;
    let ctx = Context::embedded(&cfg.location, None)?;
    let plan = save_tasks(&cfg, &ctx, &GdalCrsTransform, true, false)?;
    anyhow::ensure!(plan.tasks == 1, "expected one task, planned {}", plan.tasks);
    let task_rec = ctx.ledger.tasks(&plan.run_id, None)?.remove(0);
    let task: TaskId = task_rec.task_id.parse()?;
    let payload = ctx.ledger.payload(&plan.run_id, &task_rec.task_id)?;
    let mut datasets: Vec<Dataset> = serde_json::from_value(payload["datasets"].clone())?;
    // BENCH_HREF_BASE=http://127.0.0.1:PORT/ reads the same files over HTTP (served from
    // DATA_DIR/inputs by scripts/bench/http_latency.py).
    if let Ok(base) = std::env::var("BENCH_HREF_BASE") {
        let local = inputs.canonicalize()?.display().to_string();
        for d in &mut datasets {
            for a in &mut d.assets {
                let path = std::path::Path::new(a.href.strip_prefix("file://").unwrap_or(&a.href)).canonicalize()?;
                let rel = path.display().to_string();
                let rel = rel.strip_prefix(&local).ok_or_else(|| anyhow::anyhow!("{} is not under {local}", a.href))?;
                a.href = format!("{}{}", base.trim_end_matches('/'), rel);
            }
        }
    }
    let statistic = stratus_stats::build_statistic(&cfg.plugin, &cfg.plugin_config)?;
    let stop = AtomicBool::new(false);
    let job = TileJob {
        cfg: &cfg,
        run_id: &plan.run_id,
        task,
        statistic: statistic.as_ref(),
        output: ctx.output.as_ref(),
        stop: &stop,
        deadline: Instant::now() + Duration::from_secs(86_400),
        mode,
        before_commit: None,
        part: None,
    };
    let rss_before = peak_rss_mb();
    let started = Instant::now();
    let mut assembly_s = 0.0;
    let r = if split {
        // The parts one after another, as one worker would take their messages, then the
        // assembly: the whole cost of splitting, in one process.
        let mut parts = Vec::new();
        let mut timings = stratus_engine::tile::Timings::default();
        for part in stratus_core::TilePart::all(2) {
            let p = process_tile(&TileJob { part: Some(part), ..job }, &datasets)?;
            timings.read_s += p.timings.read_s;
            timings.compute_s += p.timings.compute_s;
            timings.write_s += p.timings.write_s;
            parts.push(stratus_engine::assembly::DonePart { part, result: p });
        }
        let t = Instant::now();
        let mut r = stratus_engine::assembly::assemble_tile(&job, &parts)?;
        assembly_s = t.elapsed().as_secs_f64();
        timings.write_s += r.timings.read_s + r.timings.write_s;
        r.timings = timings;
        r.observation_days = parts[0].result.observation_days;
        r.chunks = parts.iter().map(|p| p.result.chunks).sum();
        r
    } else {
        process_tile(&job, &datasets)?
    };
    let wall = started.elapsed().as_secs_f64();
    let estimate = Sizer::new(&cfg, statistic.as_ref())?.estimate(r.observation_days, r.datasets);
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&location);
    }
    println!(
        "{}",
        json!({
            "mode": args[2], "chunk_size": chunk,
            "threads": rayon::current_num_threads(),
            "task": task_rec.task_id, "datasets": r.datasets, "observation_days": r.observation_days,
            "pixels": estimate.pixels, "bands": estimate.bands,
            "wall_s": wall, "assembly_s": assembly_s, "read_s": r.timings.read_s, "compute_s": r.timings.compute_s, "write_s": r.timings.write_s,
            "chunks": r.chunks, "peak_rss_mb": r.peak_rss_mb, "rss_before_tile_mb": rss_before,
            "synth_s": synth_s, "synth_reused": made.reused,
            "estimate": estimate,
        })
    );
    Ok(())
}
