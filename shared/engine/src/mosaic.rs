//! The low-resolution mosaic of a run: every done tile's band COG warped into one coarse
//! COG per band in the grid's CRS (categorical bands with nearest, continuous with
//! average; GDAL reads each tile at its closest overview), an RGB(A) preview PNG, and a
//! STAC item. Tiles whose band is missing or unreadable are listed and left as nodata.
//! Written to `{run dir}/mosaic/`, with `mosaic.json`.

use crate::context::Context;
use crate::error::{EngineError, Result};
use crate::layout::Layout;
use crate::RunConfig;
use serde::{Deserialize, Serialize};
use serde_json::json;
use stratus_core::grid::Bounds;
use stratus_core::{GeoBox, TaskId};
use stratus_ports::TaskState;

/// Mosaics larger than this many pixels get a coarser resolution (memory and viewers).
const MAX_MOSAIC_PIXELS: f64 = 64.0e6;

#[derive(Debug, Clone, Default)]
pub struct MosaicOptions {
    /// Metres per mosaic pixel (default: the grid's resolution x 8, coarser if the mosaic
    /// would exceed 64 Mpx).
    pub resolution: Option<f64>,
    /// Bands to mosaic (default: all of the statistic's).
    pub bands: Option<Vec<String>>,
    /// gdalwarp resampling for continuous bands (default `average`; categorical bands
    /// always use `nearest`).
    pub resampling: Option<String>,
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
    /// Mosaic extent in the grid's CRS.
    pub bounds: [f64; 4],
    pub bands: Vec<MosaicBand>,
    /// The preview PNG (RGB when the product has red/green/blue bands, else the first band).
    pub preview: Option<String>,
    /// The mosaic's STAC item.
    pub stac_item: String,
    /// `task id: band: why` for tile bands left as nodata (missing or unreadable).
    pub missing: Vec<String>,
    pub elapsed_s: f64,
}

/// Where a run's mosaic goes.
pub fn mosaic_dir(layout: &Layout, run_id: &str) -> String {
    format!("{}/mosaic", layout.run_dir(run_id))
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
    let area = (bounds.max_x - bounds.min_x) * (bounds.max_y - bounds.min_y);
    let resolution = opts.resolution.unwrap_or_else(|| (grid.resolution * 8.0).max((area / MAX_MOSAIC_PIXELS).sqrt()));
    let geobox = GeoBox {
        epsg: grid.epsg,
        left: bounds.min_x,
        top: bounds.max_y,
        resolution,
        width: ((bounds.max_x - bounds.min_x) / resolution).ceil().max(1.0) as usize,
        height: ((bounds.max_y - bounds.min_y) / resolution).ceil().max(1.0) as usize,
    };
    let scratch = tempfile::tempdir().map_err(|e| EngineError::Config(format!("scratch directory: {e}")))?;
    let dir = mosaic_dir(&layout, run_id);
    let mut report = MosaicReport {
        run_id: run_id.into(),
        resolution,
        epsg: grid.epsg,
        width: geobox.width,
        height: geobox.height,
        bounds: [bounds.min_x, bounds.min_y, bounds.max_x, bounds.max_y],
        bands: Vec::new(),
        preview: None,
        stac_item: String::new(),
        missing: Vec::new(),
        elapsed_s: 0.0,
    };
    let mut local_bands = Vec::new();
    for band in statistic.output_bands() {
        if opts.bands.as_ref().is_some_and(|b| !b.contains(&band.name)) {
            continue;
        }
        let mut sources = Vec::new();
        let mut task_of = std::collections::HashMap::new();
        for t in &tasks {
            let key = layout.band_key(t, &band.name);
            if ctx.output.head(&key)?.is_some() {
                let path = ctx.output.gdal_path(&key);
                task_of.insert(path.clone(), *t);
                sources.push(path);
            } else {
                report.missing.push(format!("{t}: {}: no such object", band.name));
            }
        }
        if sources.is_empty() {
            continue;
        }
        let name = format!("{}_{}.tif", cfg.product.name, band.name);
        let local = scratch.path().join(&name);
        let resampling =
            if band.categorical { "nearest".to_string() } else { opts.resampling.clone().unwrap_or("average".into()) };
        let unreadable =
            match stratus_raster::mosaic_warp::warp_sources_to_cog(&sources, &local, &geobox, &resampling, band.nodata)
            {
                Ok(u) => u,
                Err(e) => {
                    report.missing.push(format!("all tiles: {}: {e}", band.name));
                    continue;
                }
            };
        for u in &unreadable {
            let task = task_of.get(&u.path).map(|t| t.to_string()).unwrap_or_else(|| u.path.clone());
            report.missing.push(format!("{task}: {}: {}", band.name, u.why));
        }
        let key = format!("{dir}/{name}");
        ctx.output.put_file(&key, &local)?;
        tracing::info!(band = %band.name, tiles = sources.len() - unreadable.len(), url = %ctx.output.url(&key), "mosaic band written");
        report.bands.push(MosaicBand {
            band: band.name.clone(),
            url: ctx.output.url(&key),
            tiles: sources.len() - unreadable.len(),
        });
        local_bands.push((band.name.clone(), local));
    }
    if report.bands.is_empty() {
        return Err(EngineError::Config(format!(
            "run '{run_id}': no tile band could be read for the mosaic ({} missing)",
            report.missing.len()
        )));
    }
    // The preview: red/green/blue if the product has them, else the clear count (the
    // most telling band of a pq-like product), else the first band.
    let names: Vec<String> = local_bands.iter().map(|(n, _)| n.clone()).collect();
    let picked: Vec<&std::path::Path> = match stratus_raster::preview::rgb_bands(&names) {
        Some(idx) => idx.iter().map(|&i| local_bands[i].1.as_path()).collect(),
        None => vec![local_bands[names.iter().position(|n| n == "clear").unwrap_or(0)].1.as_path()],
    };
    let preview_local = scratch.path().join("preview.png");
    match stratus_raster::preview::write_preview(&picked, &preview_local) {
        Ok(()) => {
            let key = format!("{dir}/{}_preview.png", cfg.product.name);
            ctx.output.put_file(&key, &preview_local)?;
            report.preview = Some(ctx.output.url(&key));
        }
        Err(e) => tracing::warn!(error = %e, "no preview"),
    }
    let item_key = format!("{dir}/{}_mosaic.stac-item.json", cfg.product.name);
    let item = mosaic_stac_item(&cfg, run_id, &report, tasks[0].period, &grid_footprint(&geobox));
    ctx.output.put(&item_key, serde_json::to_string_pretty(&item).unwrap().as_bytes())?;
    report.stac_item = ctx.output.url(&item_key);
    report.elapsed_s = started.elapsed().as_secs_f64();
    ctx.output.put(&format!("{dir}/mosaic.json"), serde_json::to_string_pretty(&report).unwrap().as_bytes())?;
    Ok(report)
}

/// The mosaic's footprint in lon/lat (corners of its extent, reprojected).
fn grid_footprint(geobox: &GeoBox) -> Vec<(f64, f64)> {
    use stratus_core::geometry::CrsTransform;
    let b = geobox.bounds();
    let mut corners = vec![(b.min_x, b.min_y), (b.max_x, b.min_y), (b.max_x, b.max_y), (b.min_x, b.max_y)];
    match stratus_raster::GdalCrsTransform.transform(geobox.epsg, 4326, &mut corners) {
        Ok(()) => corners,
        Err(e) => {
            tracing::warn!(error = %e, "mosaic footprint not reprojected");
            Vec::new()
        }
    }
}

fn mosaic_stac_item(
    cfg: &RunConfig,
    run_id: &str,
    r: &MosaicReport,
    period: stratus_core::Period,
    lonlat: &[(f64, f64)],
) -> serde_json::Value {
    let mut ring: Vec<[f64; 2]> = lonlat.iter().map(|&(x, y)| [x, y]).collect();
    if let Some(first) = ring.first().copied() {
        ring.push(first);
    }
    let (lons, lats): (Vec<f64>, Vec<f64>) = lonlat.iter().copied().unzip();
    let bbox = [
        lons.iter().copied().fold(f64::MAX, f64::min),
        lats.iter().copied().fold(f64::MAX, f64::min),
        lons.iter().copied().fold(f64::MIN, f64::max),
        lats.iter().copied().fold(f64::MIN, f64::max),
    ];
    let mut assets = serde_json::Map::new();
    for b in &r.bands {
        assets.insert(
            b.band.clone(),
            json!({"href": b.url, "type": "image/tiff; application=geotiff; profile=cloud-optimized", "roles": ["data"]}),
        );
    }
    if let Some(p) = &r.preview {
        assets.insert("preview".into(), json!({"href": p, "type": "image/png", "roles": ["overview"]}));
    }
    json!({
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": ["https://stac-extensions.github.io/projection/v1.1.0/schema.json"],
        "id": format!("{}_{run_id}_mosaic", cfg.product.name),
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "bbox": bbox,
        "properties": {
            "datetime": null,
            "start_datetime": period.start_datetime().to_rfc3339(),
            "end_datetime": period.end_datetime().to_rfc3339(),
            "created": chrono::Utc::now().to_rfc3339(),
            "odc:product": cfg.product.name,
            "odc:dataset_version": cfg.product.version,
            "stratus:run_id": run_id,
            "stratus:period": period.label(),
            "stratus:missing_tiles": r.missing,
            "proj:epsg": r.epsg,
            "proj:shape": [r.height, r.width],
            "proj:transform": [r.resolution, 0.0, r.bounds[0], 0.0, -r.resolution, r.bounds[3]],
            "gsd": r.resolution,
        },
        "assets": assets,
        "links": [],
    })
}
