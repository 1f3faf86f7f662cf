//! Assembly benchmark (`make bench-assembly`, driven by scripts/bench/assembly.py): the
//! largest split tile's assembly, a 9600 x 9600 africa-10 tile of the annual Sentinel-2
//! geomedian (its every output band), from k x k parts in a local output store.
//!
//! Usage: bench_assembly DATA_DIR [PARTS]
//!
//! Writes each part's bands as the part workers do (tiled scratch GeoTIFFs, a smooth field
//! with noise, so that compression does real work), then times `assemble_tile` alone and
//! prints one JSON line: seconds, peak RSS, bands, pixels and the planner's estimate of the
//! assembly. PARTS defaults to what the planner picks for 150 observation days.

use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use stratus_core::{TaskId, TilePart};
use stratus_engine::assembly::{assemble_tile, DonePart};
use stratus_engine::layout::Layout;
use stratus_engine::sizing::Sizer;
use stratus_engine::tile::{peak_rss_mb, TileJob, TileMode, TileResult, Timings};
use stratus_engine::{Context, RunConfig};
use stratus_raster::BandWriter;
use stratus_stats::PixelType;

fn value(x: usize, y: usize, band: usize) -> f64 {
    let (fx, fy) = (x as f64 / 700.0, y as f64 / 900.0);
    let smooth = 1500.0 + 900.0 * (fx + band as f64).sin() * (fy * 1.3).cos();
    // Deterministic noise of a few DN, as a real composite has.
    let h = (x.wrapping_mul(73856093) ^ y.wrapping_mul(19349663) ^ band.wrapping_mul(83492791)) % 17;
    smooth + h as f64
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() >= 2, "usage: bench_assembly DATA_DIR [PARTS]");
    let data = PathBuf::from(&args[1]);
    let out = data.join("out");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    let mut cfg = RunConfig::from_yaml(
        &format!(
            "inputs: [x]\ngrid: africa-10\nplugin: gm-s2\nproduct: {{name: bench_asm}}\nlocation: {}\n",
            out.display()
        ),
        "bench.yaml",
    )?;
    let statistic = stratus_stats::build_statistic(&cfg.plugin, &cfg.plugin_config)?;
    let sizer = Sizer::new(&cfg, statistic.as_ref())?;
    let k: u32 = match args.get(2) {
        Some(p) => p.parse()?,
        None => sizer.plan_tile(150, 300).parts,
    };
    anyhow::ensure!(k >= 2, "the planner does not split this tile; give PARTS");
    cfg.lambda.parts = Some(k);
    let estimate = TaskEstimateJson::from(&sizer.estimate_assembly());
    let grid = cfg.grid_spec()?;
    let task: TaskId = "x+000/y+000/2021--P1Y".parse()?;
    let tile = grid.tile_geobox(task.tile);
    let ctx = Context::embedded(out.to_str().unwrap(), None)?;
    let layout = Layout::of(&cfg);
    let outputs = statistic.output_bands();
    let scratch = tempfile::tempdir_in(&data)?;

    // The parts, as their workers leave them.
    let t = Instant::now();
    let mut parts = Vec::new();
    for part in TilePart::all(k) {
        let w = part.window(tile.width, tile.height, cfg.chunk_size).expect("a valid split");
        let area = tile.window(w.col0 as isize, w.row0 as isize, w.width, w.height);
        for (b, o) in outputs.iter().enumerate() {
            let mut writer = match o.dtype {
                PixelType::Uint8 => BandWriter::create::<u8>(scratch.path(), &o.name, &area, o.nodata)?,
                PixelType::Uint16 => BandWriter::create::<u16>(scratch.path(), &o.name, &area, o.nodata)?,
                PixelType::Int16 => BandWriter::create::<i16>(scratch.path(), &o.name, &area, o.nodata)?,
                PixelType::Float32 => BandWriter::create::<f32>(scratch.path(), &o.name, &area, o.nodata)?,
            };
            for row0 in (0..w.height).step_by(512) {
                let h = 512.min(w.height - row0);
                let vals = (0..h * w.width).map(|i| value(w.col0 + i % w.width, w.row0 + row0 + i / w.width, b));
                match o.dtype {
                    PixelType::Uint8 => writer.write(0, row0, w.width, h, vals.map(|v| (v / 20.0) as u8).collect())?,
                    PixelType::Uint16 => writer.write(0, row0, w.width, h, vals.map(|v| v as u16).collect())?,
                    PixelType::Int16 => writer.write(0, row0, w.width, h, vals.map(|v| v as i16).collect())?,
                    PixelType::Float32 => {
                        writer.write(0, row0, w.width, h, vals.map(|v| (v / 1e4) as f32).collect())?
                    }
                }
            }
            let local = writer.finish_scratch()?;
            ctx.output.put_file(&layout.part_key("bench", &task, &part, &o.name), &local)?;
            std::fs::remove_file(&local)?;
        }
        parts.push(DonePart {
            part,
            result: TileResult {
                outputs: vec![],
                stac_item: String::new(),
                datasets: 300,
                observation_days: 150,
                skipped_inputs: vec![],
                timings: Timings::default(),
                chunks: 0,
                peak_rss_mb: 0,
                inputs: vec!["S2A_bench".into()],
            },
        });
    }
    let parts_s = t.elapsed().as_secs_f64();
    let rss_before = peak_rss_mb();

    let stop = AtomicBool::new(false);
    let job = TileJob {
        cfg: &cfg,
        run_id: "bench",
        task,
        statistic: statistic.as_ref(),
        output: ctx.output.as_ref(),
        stop: &stop,
        deadline: Instant::now() + Duration::from_secs(86_400),
        mode: TileMode::Full,
        before_commit: None,
        part: None,
    };
    let t = Instant::now();
    let r = assemble_tile(&job, &parts)?;
    let seconds = t.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "tile_px": [tile.width, tile.height], "parts": k * k, "bands": outputs.len(),
            "seconds": seconds, "paste_s": r.timings.read_s, "cogs_and_item_s": r.timings.write_s,
            "peak_rss_mb": peak_rss_mb(), "peak_rss_before_mb": rss_before,
            "making_parts_s": parts_s, "estimate": estimate.0,
        })
    );
    Ok(())
}

struct TaskEstimateJson(serde_json::Value);

impl From<&stratus_engine::sizing::TaskEstimate> for TaskEstimateJson {
    fn from(e: &stratus_engine::sizing::TaskEstimate) -> Self {
        TaskEstimateJson(json!({"lambda_seconds": e.lambda_seconds, "core_seconds": e.core_seconds,
                                "peak_memory_mb": e.peak_memory_mb, "tmp_mb": e.tmp_mb, "executor": e.executor.as_str()}))
    }
}
