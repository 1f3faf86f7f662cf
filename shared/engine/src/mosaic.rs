//! The low-resolution mosaic of a run: every done tile's band COG warped into one coarse
//! COG per band in the grid's CRS (categorical bands with nearest, continuous with
//! average; GDAL reads each tile at its closest overview), an RGB(A) preview PNG, and a
//! STAC item. Tiles whose band is missing or unreadable are listed and left as nodata.
//! Written to `{run dir}/mosaic/`, with `mosaic.json`.

use crate::config::RunRecordExt;
use crate::context::Context;
use crate::error::{EngineError, Result};
use crate::layout::Layout;
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

/// One band to mosaic and the tile rasters it comes from (`(label, GDAL path)`).
pub struct BandSources {
    pub band: String,
    pub categorical: bool,
    pub nodata: Option<f64>,
    pub sources: Vec<(String, String)>,
}

/// What a mosaic is of and where it goes.
struct MosaicTarget<'a> {
    output: &'a dyn stratus_ports::BlobStore,
    dir: String,
    product: String,
    version: String,
    run_id: String,
    period: Option<stratus_core::Period>,
}

/// The mosaic grid over `extent` (grid CRS): `resolution`, or `default_res`, coarser if
/// the mosaic would exceed 64 Mpx.
fn mosaic_geobox(epsg: u32, extent: Bounds, resolution: Option<f64>, default_res: f64) -> GeoBox {
    let area = (extent.max_x - extent.min_x) * (extent.max_y - extent.min_y);
    let resolution = resolution.unwrap_or_else(|| default_res.max((area / MAX_MOSAIC_PIXELS).sqrt()));
    GeoBox {
        epsg,
        left: extent.min_x,
        top: extent.max_y,
        resolution,
        width: ((extent.max_x - extent.min_x) / resolution).ceil().max(1.0) as usize,
        height: ((extent.max_y - extent.min_y) / resolution).ceil().max(1.0) as usize,
    }
}

fn union(a: Bounds, b: Bounds) -> Bounds {
    Bounds {
        min_x: a.min_x.min(b.min_x),
        min_y: a.min_y.min(b.min_y),
        max_x: a.max_x.max(b.max_x),
        max_y: a.max_y.max(b.max_y),
    }
}

/// Build the mosaic of a run's done tiles.
pub fn build_for_run(ctx: &Context, run_id: &str, opts: &MosaicOptions) -> Result<MosaicReport> {
    let run = ctx.ledger.run(run_id)?.ok_or_else(|| stratus_ports::PortError::RunNotFound(run_id.into()))?;
    let cfg = run.run_config()?;
    let grid = cfg.grid_spec()?;
    let statistic = stratus_stats::build_statistic(&cfg.plugin, &cfg.plugin_config)?;
    let layout = Layout::of(&cfg);
    // Tiles, not the parts of split tiles (their tile is done once assembled).
    let mut tasks: Vec<TaskId> = Vec::new();
    for t in ctx.ledger.tasks(run_id, Some(TaskState::Done))? {
        if let (id, None) = stratus_core::TilePart::parse_task_id(&t.task_id)? {
            tasks.push(id);
        }
    }
    if tasks.is_empty() {
        return Err(EngineError::Config(format!("run '{run_id}' has no done tiles to mosaic")));
    }
    let extent = tasks.iter().map(|t| grid.tile_bounds(t.tile)).reduce(union).expect("at least one task");
    let geobox = mosaic_geobox(grid.epsg, extent, opts.resolution, grid.resolution * 8.0);
    let mut missing = Vec::new();
    let mut bands = Vec::new();
    for band in statistic.output_bands() {
        if opts.bands.as_ref().is_some_and(|b| !b.contains(&band.name)) {
            continue;
        }
        let mut sources = Vec::new();
        for t in &tasks {
            let key = layout.band_key(t, &band.name);
            if ctx.output.head(&key)?.is_some() {
                sources.push((t.to_string(), ctx.output.gdal_path(&key)));
            } else {
                missing.push(format!("{t}: {}: no such object", band.name));
            }
        }
        bands.push(BandSources { band: band.name, categorical: band.categorical, nodata: band.nodata, sources });
    }
    let mut ctx = ctx.clone();
    cfg.with_output_acl(&mut ctx);
    let target = MosaicTarget {
        output: ctx.output.as_ref(),
        dir: mosaic_dir(&layout, run_id),
        product: cfg.product.name.clone(),
        version: cfg.product.version.clone(),
        run_id: run_id.into(),
        period: Some(tasks[0].period),
    };
    mosaic_bands(&target, &geobox, bands, missing, opts)
}

/// Build a mosaic of the tiles named by output STAC items (files, globs resolved by the
/// caller, or s3:// addresses), written to `output` under `dir`. Bands are the items'
/// data assets; counts and classes (`count`, `total`, `clear*`) are categorical.
pub fn build_from_items(
    output: &dyn stratus_ports::BlobStore,
    dir: &str,
    items: &[String],
    opts: &MosaicOptions,
) -> Result<MosaicReport> {
    let mut by_band: std::collections::BTreeMap<String, Vec<(String, String)>> = Default::default();
    let (mut epsg, mut extent, mut res, mut product, mut version) = (None, None::<Bounds>, f64::MAX, None, None);
    let mut missing = Vec::new();
    for href in items {
        let bad = |why: String| EngineError::Source { source_name: href.clone(), why };
        let text = stratus_raster::vsi::read_text(href).map_err(|e| bad(e.to_string()))?;
        let item: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(format!("not a STAC item: {e}")))?;
        let props = &item["properties"];
        let this_epsg = props["proj:epsg"].as_u64().ok_or_else(|| bad("no proj:epsg".into()))? as u32;
        if *epsg.get_or_insert(this_epsg) != this_epsg {
            return Err(bad(format!("EPSG:{this_epsg} differs from the other items' EPSG:{}", epsg.unwrap())));
        }
        let t: Vec<f64> =
            serde_json::from_value(props["proj:transform"].clone()).map_err(|_| bad("no proj:transform".into()))?;
        let shape: Vec<f64> =
            serde_json::from_value(props["proj:shape"].clone()).map_err(|_| bad("no proj:shape".into()))?;
        if t.len() < 6 || shape.len() != 2 {
            return Err(bad("proj:transform needs 6 numbers and proj:shape 2".into()));
        }
        let b = Bounds { min_x: t[2], max_y: t[5], max_x: t[2] + t[0] * shape[1], min_y: t[5] + t[4] * shape[0] };
        extent = Some(extent.map_or(b, |e| union(e, b)));
        res = res.min(t[0].abs());
        product = product.or(props["odc:product"].as_str().map(str::to_string));
        version = version.or(props["odc:dataset_version"].as_str().map(str::to_string));
        // Items name their tile in their title (their id is a UUID).
        let label = props["title"].as_str().or(item["id"].as_str()).unwrap_or(href).to_string();
        for (key, asset) in item["assets"].as_object().into_iter().flatten() {
            let is_data = asset["roles"].as_array().is_some_and(|r| r.iter().any(|x| x == "data"));
            if !is_data || opts.bands.as_ref().is_some_and(|b| !b.contains(key)) {
                continue;
            }
            let Some(h) = asset["href"].as_str() else {
                missing.push(format!("{label}: {key}: no href"));
                continue;
            };
            let path = stratus_raster::paths::gdal_path(&stratus_core::stac_input::resolve_href(h, Some(href)));
            by_band.entry(key.clone()).or_default().push((label.clone(), path));
        }
    }
    let (Some(epsg), Some(extent)) = (epsg, extent) else {
        return Err(EngineError::Config("no STAC items to mosaic".into()));
    };
    let geobox = mosaic_geobox(epsg, extent, opts.resolution, res * 8.0);
    let categorical = |b: &str| b == "count" || b == "total" || b.starts_with("clear");
    let bands = by_band
        .into_iter()
        .map(|(band, sources)| BandSources { categorical: categorical(&band), band, nodata: None, sources })
        .collect();
    let target = MosaicTarget {
        output,
        dir: dir.trim_end_matches('/').to_string(),
        product: product.unwrap_or_else(|| "mosaic".into()),
        version: version.unwrap_or_default(),
        run_id: String::new(),
        period: None,
    };
    mosaic_bands(&target, &geobox, bands, missing, opts)
}

/// Warp each band's sources into a COG, then the preview, STAC item and `mosaic.json`.
fn mosaic_bands(
    target: &MosaicTarget,
    geobox: &GeoBox,
    bands: Vec<BandSources>,
    mut missing: Vec<String>,
    opts: &MosaicOptions,
) -> Result<MosaicReport> {
    let started = std::time::Instant::now();
    let scratch = tempfile::tempdir().map_err(|e| EngineError::Config(format!("scratch directory: {e}")))?;
    let b = geobox.bounds();
    let mut report = MosaicReport {
        run_id: target.run_id.clone(),
        resolution: geobox.resolution,
        epsg: geobox.epsg,
        width: geobox.width,
        height: geobox.height,
        bounds: [b.min_x, b.min_y, b.max_x, b.max_y],
        bands: Vec::new(),
        preview: None,
        stac_item: String::new(),
        missing: Vec::new(),
        elapsed_s: 0.0,
    };
    let mut local_bands = Vec::new();
    for band in bands {
        if band.sources.is_empty() {
            continue;
        }
        let label_of: std::collections::HashMap<&str, &str> =
            band.sources.iter().map(|(l, p)| (p.as_str(), l.as_str())).collect();
        let paths: Vec<String> = band.sources.iter().map(|(_, p)| p.clone()).collect();
        let name = format!("{}_{}.tif", target.product, band.band);
        let local = scratch.path().join(&name);
        let resampling =
            if band.categorical { "nearest".to_string() } else { opts.resampling.clone().unwrap_or("average".into()) };
        let unreadable =
            match stratus_raster::mosaic_warp::warp_sources_to_cog(&paths, &local, geobox, &resampling, band.nodata) {
                Ok(u) => u,
                Err(e) => {
                    missing.push(format!("all tiles: {}: {e}", band.band));
                    continue;
                }
            };
        for u in &unreadable {
            let label = label_of.get(u.path.as_str()).copied().unwrap_or(u.path.as_str());
            missing.push(format!("{label}: {}: {}", band.band, u.why));
        }
        let key = format!("{}/{name}", target.dir);
        target.output.put_file(&key, &local)?;
        let tiles = paths.len() - unreadable.len();
        tracing::info!(band = %band.band, tiles, url = %target.output.url(&key), "mosaic band written");
        report.bands.push(MosaicBand { band: band.band.clone(), url: target.output.url(&key), tiles });
        local_bands.push((band.band, local));
    }
    report.missing = missing;
    if report.bands.is_empty() {
        return Err(EngineError::Config(format!(
            "no tile band could be read for the mosaic ({} missing)",
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
            let key = format!("{}/{}_preview.png", target.dir, target.product);
            target.output.put_file(&key, &preview_local)?;
            report.preview = Some(target.output.url(&key));
        }
        Err(e) => tracing::warn!(error = %e, "no preview"),
    }
    let item_key = format!("{}/{}_mosaic.stac-item.json", target.dir, target.product);
    let item = mosaic_stac_item(target, &report, &grid_footprint(geobox));
    target.output.put(&item_key, serde_json::to_string_pretty(&item).unwrap().as_bytes())?;
    report.stac_item = target.output.url(&item_key);
    report.elapsed_s = started.elapsed().as_secs_f64();
    target
        .output
        .put(&format!("{}/mosaic.json", target.dir), serde_json::to_string_pretty(&report).unwrap().as_bytes())?;
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

fn mosaic_stac_item(target: &MosaicTarget, r: &MosaicReport, lonlat: &[(f64, f64)]) -> serde_json::Value {
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
    let now = chrono::Utc::now().to_rfc3339();
    let (start, end) = match target.period {
        Some(p) => (p.start_datetime().to_rfc3339(), p.end_datetime().to_rfc3339()),
        None => (now.clone(), now.clone()),
    };
    json!({
        "type": "Feature",
        "stac_version": crate::stac_output::STAC_VERSION,
        "stac_extensions": [crate::stac_output::PROJECTION_EXT],
        "id": format!("{}_{}_mosaic", target.product, if target.run_id.is_empty() { "items" } else { &target.run_id }),
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "bbox": bbox,
        "properties": {
            "datetime": null,
            "start_datetime": start,
            "end_datetime": end,
            "created": now,
            "odc:product": target.product,
            "odc:dataset_version": target.version,
            "stratus:run_id": target.run_id,
            "stratus:period": target.period.map(|p| p.label()),
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

/// What handling one completion message did.
#[derive(Debug)]
pub enum CompletionHandled {
    /// The mosaic (if any tile is done) and the run report were made.
    Made { mosaic: Option<Box<MosaicReport>>, report: String },
    /// This completion (or a later one) was handled already: a duplicate message.
    AlreadyHandled { handled: u64 },
}

/// Handle a run's completion `n`: the mosaic of its done tiles (none when every tile
/// failed: the report then lists the failures), the run summary and the HTML report, and
/// the ledger's note that completion `n` is handled, so a duplicate message does nothing.
pub fn handle_completion(ctx: &Context, run_id: &str, n: u64, opts: &MosaicOptions) -> Result<CompletionHandled> {
    let run = ctx.ledger.run(run_id)?.ok_or_else(|| stratus_ports::PortError::RunNotFound(run_id.into()))?;
    if run.completions_handled >= n {
        return Ok(CompletionHandled::AlreadyHandled { handled: run.completions_handled });
    }
    let mosaic = if run.counts.done > 0 {
        Some(build_for_run(ctx, run_id, opts)?)
    } else {
        tracing::warn!(run_id, failed = run.counts.failed, "no tile is done: no mosaic; the report lists the failures");
        None
    };
    let mut summary = crate::runner::RunSummary { run_id: run_id.into(), ..Default::default() };
    crate::runner::write_summary(ctx, run_id, &mut summary)?;
    let report = crate::report::write_report(ctx, run_id, mosaic.clone())?;
    ctx.ledger.mark_completion_handled(run_id, n)?;
    Ok(CompletionHandled::Made { mosaic: mosaic.map(Box::new), report })
}
