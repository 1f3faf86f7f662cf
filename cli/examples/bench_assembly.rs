//! Assembly benchmark (`make bench-split`, driven by scripts/bench/assembly.py): the
//! largest split tile's assembly, a 9600 x 9600 africa-10 tile of the annual Sentinel-2
//! geomedian (its every output band), from k x k parts in a local output store.
//!
//! Usage: bench_assembly DATA_DIR [PARTS]
//!
//! Writes each part's bands as the part workers do (tiled scratch GeoTIFFs, a smooth field
//! with noise, so that compression does real work) once, under DATA_DIR/parts, and copies
//! them into a fresh output store for each run (the assembly deletes them); then times
//! `assemble_tile` alone and prints one JSON line: seconds, peak RSS, bands, pixels and the
//! planner's estimate of the assembly. PARTS defaults to what the planner picks for 150
//! observation days.

use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use stratus_core::{TaskId, TilePart};
use stratus_engine::assembly::{assemble_tile, DonePart};
use stratus_engine::layout::Layout;
use stratus_engine::sizing::Sizer;
use stratus_engine::tile::{peak_rss_mb, TileJob, TileMode, TileResult, Timings};
use stratus_engine::{Context, RunConfig};
use stratus_ports::BlobStore;
use stratus_raster::BandWriter;
use stratus_stats::{PixelType, Statistic};

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
    let e = sizer.estimate_assembly(k);
    let estimate = json!({"lambda_seconds": e.lambda_seconds, "core_seconds": e.core_seconds,
                          "peak_memory_mb": e.peak_memory_mb, "tmp_mb": e.tmp_mb, "executor": e.executor.as_str()});
    // A tile of central Africa (the grid's origin lies outside the projection's domain).
    let task: TaskId = "x+204/y+057/2021--P1Y".parse()?;
    let ctx = Context::embedded(out.to_str().unwrap(), None)?;
    let layout = Layout::of(&cfg);

    // The parts, as their workers leave them (made once, copied in for each run).
    let t = Instant::now();
    let cached = data.join("parts");
    let made = cached.join(format!("done-{k}"));
    if !made.exists() {
        let _ = std::fs::remove_dir_all(&cached);
        make_parts(&cached, &cfg, statistic.as_ref(), &layout, &task, k)?;
        std::fs::write(&made, b"")?;
    }
    copy_tree(&cached, &out)?;
    let parts_s = t.elapsed().as_secs_f64();
    let parts: Vec<DonePart> = TilePart::all(k)
        .into_iter()
        .map(|part| DonePart {
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
                lineage: vec![],
                input_products: vec![],
                inherited: Default::default(),
            },
        })
        .collect();
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
    let tile = cfg.grid_spec()?.tile_geobox(task.tile);
    println!(
        "{}",
        json!({
            "tile_px": [tile.width, tile.height], "parts": k * k, "bands": statistic.output_bands().len(),
            "seconds": seconds, "paste_s": r.timings.read_s, "cogs_and_item_s": r.timings.write_s,
            "peak_rss_mb": peak_rss_mb(), "peak_rss_before_mb": rss_before,
            "making_parts_s": parts_s, "estimate": estimate,
        })
    );
    Ok(())
}

/// Every part's bands of `task` split k x k, in a local store at `dir`.
fn make_parts(
    dir: &Path,
    cfg: &RunConfig,
    statistic: &dyn Statistic,
    layout: &Layout,
    task: &TaskId,
    k: u32,
) -> anyhow::Result<()> {
    let store = stratus_ports::LocalBlobStore::new(dir)?;
    let tile = cfg.grid_spec()?.tile_geobox(task.tile);
    let outputs = statistic.output_bands();
    let scratch = tempfile::tempdir()?;
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
            store.put_file(&layout.part_key("bench", task, &part, &o.name), &local)?;
            std::fs::remove_file(&local)?;
        }
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(from)? {
        let p = e?.path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            std::fs::create_dir_all(&dest)?;
            copy_tree(&p, &dest)?;
        } else if p.extension().is_some_and(|x| x == "tif") {
            std::fs::copy(&p, &dest)?;
        }
    }
    Ok(())
}
