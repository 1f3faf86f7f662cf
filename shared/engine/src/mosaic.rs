//! The low-resolution mosaic of a run: every done tile's band COG warped into one coarse
//! COG per band in the grid's CRS (categorical bands with nearest, continuous with
//! average; GDAL reads each tile at its closest overview). Tiles whose band is missing are
//! listed and left as nodata. Written to `{run dir}/mosaic/`, with `mosaic.json`.

use crate::context::Context;
use crate::error::{EngineError, Result};
use crate::layout::Layout;
use crate::RunConfig;
use serde::{Deserialize, Serialize};
use stratus_core::grid::Bounds;
use stratus_core::{GeoBox, TaskId};
use stratus_ports::TaskState;

#[derive(Debug, Clone, Default)]
pub struct MosaicOptions {
    /// Metres per mosaic pixel (default: the grid's resolution x 8).
    pub resolution: Option<f64>,
    /// Bands to mosaic (default: all of the statistic's).
    pub bands: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MosaicBand {
    pub band: String,
    pub url: String,
    pub tiles: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MosaicReport {
    pub run_id: String,
    pub resolution: f64,
    pub epsg: u32,
    pub width: usize,
    pub height: usize,
    pub bands: Vec<MosaicBand>,
    /// `task id: band` of tile bands that were missing (left as nodata).
    pub missing: Vec<String>,
    pub elapsed_s: f64,
}

/// Build the mosaic of a run's done tiles.
pub fn build_for_run(ctx: &Context, run_id: &str, opts: &MosaicOptions) -> Result<MosaicReport> {
    let started = std::time::Instant::now();
    let run = ctx.ledger.run(run_id)?.ok_or_else(|| stratus_ports::PortError::RunNotFound(run_id.into()))?;
    let cfg: RunConfig = serde_json::from_value(run.config)
        .map_err(|e| EngineError::Config(format!("run '{run_id}' has an unreadable configuration: {e}")))?;
    let grid = cfg.grid_spec()?;
    let statistic = stratus_stats::build_statistic(&cfg.plugin, &cfg.plugin_config)?;
    let layout = Layout::new(&cfg.product.name, &cfg.product.version);
    let tasks: Vec<TaskId> = ctx
        .ledger
        .tasks(run_id, Some(TaskState::Done))?
        .iter()
        .map(|t| t.task_id.parse())
        .collect::<std::result::Result<_, _>>()?;
    if tasks.is_empty() {
        return Err(EngineError::Config(format!("run '{run_id}' has no done tiles to mosaic")));
    }
    let resolution = opts.resolution.unwrap_or(grid.resolution * 8.0);
    let bounds = tasks
        .iter()
        .map(|t| grid.tile_bounds(t.tile))
        .reduce(|a, b| Bounds {
            min_x: a.min_x.min(b.min_x),
            min_y: a.min_y.min(b.min_y),
            max_x: a.max_x.max(b.max_x),
            max_y: a.max_y.max(b.max_y),
        })
        .expect("at least one task");
    let geobox = GeoBox {
        epsg: grid.epsg,
        left: bounds.min_x,
        top: bounds.max_y,
        resolution,
        width: ((bounds.max_x - bounds.min_x) / resolution).ceil() as usize,
        height: ((bounds.max_y - bounds.min_y) / resolution).ceil() as usize,
    };
    let scratch = tempfile::tempdir().map_err(|e| EngineError::Config(format!("scratch directory: {e}")))?;
    let mut report = MosaicReport {
        run_id: run_id.into(),
        resolution,
        epsg: grid.epsg,
        width: geobox.width,
        height: geobox.height,
        bands: Vec::new(),
        missing: Vec::new(),
        elapsed_s: 0.0,
    };
    let dir = format!("{}/mosaic", layout.run_dir(run_id));
    for band in statistic.output_bands() {
        if opts.bands.as_ref().is_some_and(|b| !b.contains(&band.name)) {
            continue;
        }
        let mut sources = Vec::new();
        for t in &tasks {
            let key = layout.band_key(t, &band.name);
            if ctx.output.head(&key)?.is_some() {
                sources.push(ctx.output.gdal_path(&key));
            } else {
                report.missing.push(format!("{t}: {}", band.name));
            }
        }
        if sources.is_empty() {
            continue;
        }
        let name = format!("{}_{}.tif", cfg.product.name, band.name);
        let local = scratch.path().join(&name);
        let resampling = if band.categorical { "nearest" } else { "average" };
        stratus_raster::mosaic_warp::warp_sources_to_cog(&sources, &local, &geobox, resampling, band.nodata)?;
        let key = format!("{dir}/{name}");
        ctx.output.put_file(&key, &local)?;
        tracing::info!(band = %band.name, tiles = sources.len(), url = %ctx.output.url(&key), "mosaic band written");
        report.bands.push(MosaicBand { band: band.name.clone(), url: ctx.output.url(&key), tiles: sources.len() });
    }
    report.elapsed_s = started.elapsed().as_secs_f64();
    ctx.output.put(&format!("{dir}/mosaic.json"), serde_json::to_string_pretty(&report).unwrap().as_bytes())?;
    Ok(report)
}
