//! Processing one tile: read each dataset's bands warped into the tile's grid chunk by
//! chunk, fuse same-day observations (first valid pixel wins), reduce with the statistic,
//! write one COG per output band, and the STAC item last.

use crate::config::{InputPolicy, RunConfig};
use crate::eo3_output::InheritedProperties;
use crate::error::{EngineError, Result};
use crate::layout::Layout;
use crate::stac_output::{output_item, ItemFacts};
use ndarray::{s, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use stratus_core::geometry::project_rings;
use stratus_core::grid::Bounds;
use stratus_core::period::solar_day;
use stratus_core::redact::redact;
use stratus_core::{Dataset, GeoBox, PixelWindow, TaskId, TilePart};
use stratus_ports::BlobStore;
use stratus_raster::paths::gdal_path;
use stratus_raster::{
    read_bands, read_bands_into, read_float_band, BandRequest, BandWriter, GdalCrsTransform, OpenInputs, ReadMode,
    Resampling,
};
use stratus_stats::{OutputData, PixelType, Stack, Statistic};

/// An input left out of a tile (input_policy: skip), recorded in the STAC item and ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedInput {
    pub dataset: String,
    pub href: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub read_s: f64,
    pub compute_s: f64,
    pub write_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TileResult {
    pub outputs: Vec<String>,
    pub stac_item: String,
    pub datasets: usize,
    pub observation_days: usize,
    pub skipped_inputs: Vec<SkippedInput>,
    pub timings: Timings,
    pub chunks: usize,
    /// The worker process's peak resident memory when the tile finished (MB).
    #[serde(default)]
    pub peak_rss_mb: u64,
    /// The datasets read (ids, in plan order): a part's, for its tile's STAC item.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
    /// Their ids in an Open Data Cube index: a part's, for its tile's eo3 lineage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lineage: Vec<String>,
    /// Their collections: a part's, for its tile's processing record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_products: Vec<String>,
    /// What they give the tile's metadata (platform, instruments, ...): a part's.
    #[serde(default, skip_serializing_if = "InheritedProperties::is_empty")]
    pub inherited: InheritedProperties,
}

/// What a tile was made from, as its metadata records it.
pub(crate) struct TileInputs {
    /// The datasets read (ids, in plan order).
    pub ids: Vec<String>,
    /// The datasets left out (the `skip` input policy).
    pub skipped: Vec<String>,
    /// The datasets' ids in an Open Data Cube index ([`crate::eo3_output::lineage`]).
    pub lineage: Vec<String>,
    /// The datasets' collections, sorted.
    pub products: Vec<String>,
    pub observation_days: usize,
    pub inherited: InheritedProperties,
}

/// Everything a tile needs besides its datasets.
pub struct TileJob<'a> {
    pub cfg: &'a RunConfig,
    pub run_id: &'a str,
    pub task: TaskId,
    pub statistic: &'a dyn Statistic,
    pub output: &'a dyn BlobStore,
    /// Set to stop early (Ctrl-C, lease lost).
    pub stop: &'a AtomicBool,
    pub deadline: Instant,
    pub mode: TileMode,
    /// Called just before the STAC item (the completeness marker) is written; an error
    /// stops the tile uncommitted (the worker checks it still holds the task).
    pub before_commit: Option<&'a (dyn Fn() -> Result<()> + Sync)>,
    /// A sub-tile part: only its chunks are processed, and its bands go to the run's
    /// scratch space for the tile's assembly (no STAC item).
    pub part: Option<TilePart>,
}

/// What a tile run does: everything, or (for the benchmark) only part of the reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileMode {
    Full,
    /// Read and resample the inputs; no statistic, nothing written.
    ReadsOnly,
    /// Only decode the source windows the reads would use.
    DecodeOnly,
    /// Read with GDAL's warper once per band (the previous read path), for comparison.
    ReadsOnlyGdalWarp,
}

impl TileMode {
    fn reads_only(self) -> bool {
        self != TileMode::Full
    }
    fn read_mode(self) -> ReadMode {
        match self {
            TileMode::Full | TileMode::ReadsOnly => ReadMode::Resample,
            TileMode::DecodeOnly => ReadMode::DecodeOnly,
            TileMode::ReadsOnlyGdalWarp => ReadMode::GdalWarp,
        }
    }
}

/// A dataset failed to read: which and why.
struct InputFailure {
    dataset: usize,
    href: String,
    reason: String,
    transient: bool,
}

struct Prepared<'a> {
    dataset: &'a Dataset,
    /// Footprint bounds in the grid CRS, to skip chunks it cannot touch.
    bounds: Option<Bounds>,
}

/// Process a tile. Outputs are written only after every chunk succeeded; the STAC item is
/// written after every band, so an item's presence means the tile is complete.
/// The factor that turns the mask filters' radii, given in the inputs' native pixels
/// (odc-stats filters masks before reprojecting them), into output pixels: the native
/// pixel size of the statistic's first band (odc-stats' basis band) over the grid's.
/// None where they are the same, where no asset gives its pixel size, where it is in
/// degrees, or where the statistic has no filters.
pub fn native_filter_scale(cfg: &RunConfig, statistic: &dyn Statistic, datasets: &[Dataset]) -> Result<Option<f64>> {
    let Some(basis) = statistic.input_bands().into_iter().next() else { return Ok(None) };
    if statistic.halo() == 0 {
        return Ok(None);
    }
    let output = cfg.grid_spec()?.resolution;
    let native = datasets.iter().find_map(|d| d.band(&basis.name)?.transform.map(|t| t[1].abs()));
    Ok(match native {
        // Below a unit the pixel size is in degrees: not comparable with the grid's metres.
        Some(n) if n >= 1.0 && output > 0.0 && (n / output - 1.0).abs() > 1e-6 => Some(n / output),
        _ => None,
    })
}

impl<'a> TileJob<'a> {
    /// The same job with another statistic.
    pub fn with_statistic<'b>(&'b self, statistic: &'b dyn Statistic) -> TileJob<'b> {
        TileJob { statistic, ..*self }
    }
}

pub fn process_tile(job: &TileJob, datasets: &[Dataset]) -> Result<TileResult> {
    // The run's coordinate operation must exist from each input CRS to the grid's: a
    // transform_code no candidate uses fails the task, naming the candidates, rather
    // than every input.
    let operation = job.cfg.crs_operation();
    if !operation.is_default() {
        let grid = job.cfg.grid_spec()?.epsg;
        for epsg in datasets.iter().map(|d| d.epsg).filter(|&e| e != grid).collect::<std::collections::BTreeSet<_>>() {
            operation
                .choose(&format!("EPSG:{epsg}"), &format!("EPSG:{grid}"))
                .map_err(|e| EngineError::Config(format!("transform_code / transform_area_of_interest: {e}")))?;
        }
    }
    // Refuse inputs outside the allowed prefixes before anything is opened.
    for b in job.statistic.input_bands() {
        for d in datasets {
            if let Some(asset) = d.band(&b.name) {
                crate::access_policy::check_input(&asset.href).map_err(|e| match e {
                    EngineError::Refused { what, location, why } => {
                        EngineError::Refused { what, location, why: format!("{why} (dataset '{}')", d.id) }
                    }
                    other => other,
                })?;
            }
        }
    }
    // HTTP inputs are read through the egress guard, which checks every hop (redirects
    // included) against the same policy.
    if datasets.iter().flat_map(|d| &d.assets).any(|a| a.href.starts_with("http://") || a.href.starts_with("https://"))
    {
        crate::access_policy::guard_http_inputs()?;
    }
    let mut excluded: BTreeSet<usize> = BTreeSet::new();
    let mut skipped = Vec::new();
    loop {
        match try_tile(job, datasets, &excluded) {
            Ok(mut r) => {
                r.skipped_inputs = skipped;
                return Ok(r);
            }
            Err(TileError::Input(f)) => {
                let d = &datasets[f.dataset];
                if job.cfg.input_policy == InputPolicy::Fail || f.transient {
                    return Err(EngineError::Task {
                        task: job.task.to_string(),
                        why: format!(
                            "input '{}' of dataset '{}' cannot be read: {}{}",
                            redact(&f.href),
                            d.id,
                            redact(&f.reason),
                            if f.transient {
                                " (transient: will be retried)"
                            } else {
                                " (set input_policy: skip to leave unreadable inputs out)"
                            }
                        ),
                    });
                }
                // Hrefs may be signed URLs: never logged whole.
                tracing::warn!(task = %job.task, dataset = %d.id, href = %redact(&f.href), reason = %redact(&f.reason), "skipping unreadable input");
                skipped.push(SkippedInput { dataset: d.id.clone(), href: redact(&f.href), reason: redact(&f.reason) });
                // Start the tile again without it, so every chunk sees the same inputs.
                excluded.insert(f.dataset);
            }
            Err(TileError::Other(e)) => return Err(e),
        }
    }
}

enum TileError {
    Input(InputFailure),
    Other(EngineError),
}

impl<E: Into<EngineError>> From<E> for TileError {
    fn from(e: E) -> Self {
        TileError::Other(e.into())
    }
}

fn check_stop(job: &TileJob) -> Result<(), TileError> {
    if job.stop.load(Ordering::Relaxed) {
        return Err(TileError::Other(EngineError::Interrupted));
    }
    if Instant::now() > job.deadline {
        return Err(TileError::Other(EngineError::Task {
            task: job.task.to_string(),
            why: format!(
                "exceeded max_processing_time ({} s); use a smaller tile, or the container worker",
                job.cfg.max_processing_time
            ),
        }));
    }
    Ok(())
}

fn try_tile(job: &TileJob, datasets: &[Dataset], excluded: &BTreeSet<usize>) -> Result<TileResult, TileError> {
    let cfg = job.cfg;
    let grid = cfg.grid_spec()?;
    let tile_box = grid.tile_geobox(job.task.tile);
    let inputs = job.statistic.input_bands();
    let outputs = job.statistic.output_bands();
    let continuous: Resampling = cfg.resampling.parse().map_err(EngineError::Config)?;
    let transform = GdalCrsTransform;

    // Observation slots: one per solar day, datasets in plan order (time, id) within it.
    let active: Vec<usize> = (0..datasets.len()).filter(|i| !excluded.contains(i)).collect();
    let mut days: Vec<(chrono::NaiveDate, Vec<usize>)> = Vec::new();
    for &i in &active {
        let d = &datasets[i];
        let day = solar_day(d.datetime, d.longitude());
        match days.iter_mut().find(|(dd, _)| *dd == day) {
            Some((_, v)) => v.push(i),
            None => days.push((day, vec![i])),
        }
    }
    days.sort_by_key(|(d, _)| *d);
    let prepared: Vec<Prepared> = datasets
        .iter()
        .map(|d| Prepared {
            dataset: d,
            bounds: project_rings(&transform, &d.footprint, grid.epsg)
                .ok()
                .and_then(|rings| Bounds::from_points(&rings.concat())),
        })
        .collect();
    // Every needed band must exist on every dataset, of a type the statistic holds: a
    // missing asset or a mistyped one is a bad input.
    for &i in &active {
        for b in &inputs {
            if datasets[i].band(&b.name).is_none() {
                return Err(TileError::Input(InputFailure {
                    dataset: i,
                    href: format!("{} (asset '{}')", datasets[i].id, b.name),
                    reason: format!("the item has no asset for band '{}'", b.name),
                    transient: false,
                }));
            }
        }
        if let Err(reason) = check_declared_types(&datasets[i], &inputs, job.statistic.name()) {
            return Err(TileError::Input(InputFailure {
                dataset: i,
                href: datasets[i].id.clone(),
                reason,
                transient: false,
            }));
        }
    }

    // The pixels this task makes: the tile, or one part of it (whole chunks).
    let area = match job.part {
        None => PixelWindow::whole(tile_box.width, tile_box.height),
        Some(p) => p.window(tile_box.width, tile_box.height, cfg.chunk_size).ok_or_else(|| EngineError::Task {
            task: job.task.to_string(),
            why: format!("{p} does not fit a tile of {} chunks of {} pixels", tile_box.width, cfg.chunk_size),
        })?,
    };
    let area_box = tile_box.window(area.col0 as isize, area.row0 as isize, area.width, area.height);
    // The area of interest in the tile's CRS: pixels outside it are nodata.
    let aoi = cfg.area_of_interest()?.map(|a| a.projected(&transform, grid.epsg)).transpose()?;
    let scratch = crate::scratch::Scratch::new()?;
    let mut writers = band_writers(scratch.path(), &outputs, &area_box)?;

    // Each input is opened once for the whole tile.
    let paths: Vec<String> = active
        .iter()
        .flat_map(|&i| inputs.iter().filter_map(move |b| datasets[i].band(&b.name)))
        .map(|a| gdal_path(&a.href))
        .collect();
    let remote = paths.iter().any(|p| p.starts_with("/vsi"));
    let open = OpenInputs::new(paths.iter().map(String::as_str));
    let halo = job.statistic.halo();
    let chunk = cfg.chunk_size;
    let mut timings = Timings::default();
    let mut n_chunks = 0;
    // A part's chunks are the tile's own (parts are whole chunks): the same pixels.
    for row0 in (area.row0..area.row0 + area.height).step_by(chunk) {
        for col0 in (area.col0..area.col0 + area.width).step_by(chunk) {
            check_stop(job)?;
            n_chunks += 1;
            let (w, h) = (chunk.min(area.col0 + area.width - col0), chunk.min(area.row0 + area.height - row0));
            let window = tile_box.window(
                col0 as isize - halo as isize,
                row0 as isize - halo as isize,
                w + 2 * halo,
                h + 2 * halo,
            );
            let inside = aoi.as_ref().map(|a| a.mask(&tile_box.window(col0 as isize, row0 as isize, w, h)));
            if inside.as_ref().is_some_and(|m| !m.contains(&true)) {
                // Wholly outside the area: left as the writers made it (nodata).
                continue;
            }
            let t0 = Instant::now();
            let read = || read_chunk(job, &open, &prepared, &days, &inputs, &window, &tile_box, continuous);
            let stack = if remote { remote_read_pool().install(read)? } else { read()? };
            let t1 = Instant::now();
            timings.read_s += (t1 - t0).as_secs_f64();
            if job.mode.reads_only() {
                continue;
            }
            let results = job.statistic.reduce(&stack)?;
            let t2 = Instant::now();
            // Each band its own scratch file: compressing them is spread over the threads.
            writers.par_iter_mut().zip(results).zip(&outputs).try_for_each(|((writer, data), o)| {
                let outside = inside.as_deref().map(|m| (m, o.nodata.unwrap_or(0.0)));
                write_cropped(writer, data, col0 - area.col0, row0 - area.row0, w, h, halo, outside)
            })?;
            timings.compute_s += (t2 - t1).as_secs_f64();
            timings.write_s += t2.elapsed().as_secs_f64();
        }
    }
    check_stop(job)?;
    let result = |outputs: Vec<String>, stac_item: String, timings: Timings, inputs: Option<TileInputs>| {
        let inputs = inputs.unwrap_or(TileInputs {
            ids: vec![],
            skipped: vec![],
            lineage: vec![],
            products: vec![],
            observation_days: 0,
            inherited: InheritedProperties::default(),
        });
        TileResult {
            outputs,
            stac_item,
            datasets: active.len(),
            observation_days: days.len(),
            skipped_inputs: vec![],
            timings,
            chunks: n_chunks,
            peak_rss_mb: peak_rss_mb(),
            inputs: inputs.ids,
            lineage: inputs.lineage,
            input_products: inputs.products,
            inherited: inputs.inherited,
        }
    };
    if job.mode.reads_only() {
        return Ok(result(vec![], String::new(), timings, None));
    }

    let t_write = Instant::now();
    let layout = Layout::of(cfg);
    let inputs = TileInputs {
        ids: active.iter().map(|&i| datasets[i].id.clone()).collect(),
        skipped: excluded.iter().map(|&i| datasets[i].id.clone()).collect(),
        lineage: crate::eo3_output::lineage(active.iter().map(|&i| &datasets[i])),
        products: active
            .iter()
            .map(|&i| datasets[i].collection.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
        observation_days: days.len(),
        inherited: InheritedProperties::of(active.iter().map(|&i| &datasets[i])),
    };
    if let Some(part) = job.part {
        // A part's bands go to the run's scratch space as they are; its tile's assembly
        // makes the COGs and the STAC item.
        let mut urls = Vec::new();
        for (writer, o) in writers.into_iter().zip(&outputs) {
            let local = writer.finish_scratch()?;
            let key = layout.part_key(job.run_id, &job.task, &part, &o.name);
            job.output.put_file(&key, &local)?;
            let _ = std::fs::remove_file(&local);
            urls.push(job.output.url(&key));
        }
        timings.write_s += t_write.elapsed().as_secs_f64();
        return Ok(result(urls, String::new(), timings, Some(inputs)));
    }
    let (keys, stac_key) = commit_tile(job, &scratch, writers, &outputs, inputs)?;
    timings.write_s += t_write.elapsed().as_secs_f64();
    Ok(result(keys.iter().map(|k| job.output.url(k)).collect(), job.output.url(&stac_key), timings, None))
}

/// A scratch band for each output over `area`.
pub(crate) fn band_writers(
    dir: &std::path::Path,
    outputs: &[stratus_stats::OutputBand],
    area: &GeoBox,
) -> Result<Vec<BandWriter>> {
    Ok(outputs
        .iter()
        .map(|o| match o.dtype {
            PixelType::Uint8 => BandWriter::create::<u8>(dir, &o.name, area, o.nodata),
            PixelType::Uint16 => BandWriter::create::<u16>(dir, &o.name, area, o.nodata),
            PixelType::Int16 => BandWriter::create::<i16>(dir, &o.name, area, o.nodata),
            PixelType::Float32 => BandWriter::create::<f32>(dir, &o.name, area, o.nodata),
        })
        .collect::<std::result::Result<_, _>>()?)
}

/// Finish a tile: each band a COG, uploaded side by side; its eo3 document, processing
/// record and checksums; then the STAC item, which marks the tile complete, written only
/// if `before_commit` allows. Returns the bands' keys and the item's.
pub(crate) fn commit_tile(
    job: &TileJob,
    scratch: &crate::scratch::Scratch,
    writers: Vec<BandWriter>,
    outputs: &[stratus_stats::OutputBand],
    inputs: TileInputs,
) -> Result<(Vec<String>, String)> {
    use crate::eo3_output::{dataset_doc, dataset_uuid, proc_info, sha1_file, sha1_hex, sha1_listing, yaml, Eo3Facts};
    let cfg = job.cfg;
    let layout = Layout::of(cfg);
    let tile_box = cfg.grid_spec()?.tile_geobox(job.task.tile);
    // Bands are finished side by side: GDAL's COG creation (compression, overviews) is
    // single-threaded per file, and a tile has up to 14 bands (BENCHMARKS.md, assembly).
    let written = writers
        .into_par_iter()
        .zip(outputs.par_iter())
        .map(|(writer, o)| {
            let local = scratch.path().join(format!("{}.tif", o.name));
            writer.finish(&local, &cfg.cog_options(&o.name)?, o.categorical)?;
            let sum =
                sha1_file(&local).map_err(|e| EngineError::Io { path: local.display().to_string(), source: e })?;
            let key = layout.band_key(&job.task, &o.name);
            job.output.put_file(&key, &local)?;
            Ok((key, sum))
        })
        .collect::<Result<Vec<(String, String)>>>()?;
    let file_name = |key: &str| key.rsplit('/').next().unwrap_or(key).to_string();
    let keys: Vec<String> = written.iter().map(|(k, _)| k.clone()).collect();
    let mut sums: Vec<(String, String)> = written.iter().map(|(k, sum)| (file_name(k), sum.clone())).collect();
    // The thumbnail, drawn from the finished bands (odc-stats' preview_image_ows_style).
    let band_file = |name: &str| scratch.path().join(format!("{name}.tif"));
    let style = cfg.product.preview_image_ows_style.as_ref().and_then(|s| {
        crate::thumbnail::PreviewStyle::parse(s, outputs).map_err(|e| tracing::warn!(error = %e, "no thumbnail")).ok()
    });
    let thumbnail_key = match style {
        Some(style) => {
            let local = scratch.path().join("thumbnail.jpg");
            crate::thumbnail::write_thumbnail(&style, band_file, &local)?;
            let key = layout.thumbnail_key(&job.task);
            sums.push((
                file_name(&key),
                sha1_file(&local).map_err(|e| EngineError::Io { path: local.display().to_string(), source: e })?,
            ));
            job.output.put_file(&key, &local)?;
            Some(key)
        }
        None => None,
    };
    // The RGBA preview band (odc-stats' `{stem}_rgba.tif`): in the checksums, not in the
    // metadata, as odc-stats writes it.
    if let Some((rgb, clamp)) = cfg.rgba_preview(outputs)? {
        let local = scratch.path().join("rgba.tif");
        let files = rgb.map(|i| band_file(&outputs[i].name));
        stratus_raster::rgba::write_rgba_cog(
            files.each_ref().map(|p| p.as_path()),
            clamp,
            &local,
            &cfg.cog_options("rgba")?,
        )?;
        let key = layout.rgba_key(&job.task);
        sums.push((
            file_name(&key),
            sha1_file(&local).map_err(|e| EngineError::Io { path: local.display().to_string(), source: e })?,
        ));
        job.output.put_file(&key, &local)?;
        let _ = std::fs::remove_file(&local);
    }
    for o in outputs {
        let _ = std::fs::remove_file(band_file(&o.name));
    }
    let (stac_key, eo3_key, proc_key, sha1_key) = (
        layout.stac_key(&job.task),
        layout.metadata_key(&job.task, "odc-metadata.yaml"),
        layout.metadata_key(&job.task, "proc-info.yaml"),
        layout.metadata_key(&job.task, "sha1"),
    );
    let proc = yaml("Processing", &proc_info(cfg, &inputs.products));
    let id = dataset_uuid(&cfg.product.name, &cfg.product.version, &job.task, &inputs.lineage);
    let region_code = layout.region_code(&job.task);
    let eo3 = yaml(
        "Dataset",
        &dataset_doc(&Eo3Facts {
            cfg,
            id,
            region_code: region_code.clone(),
            task: &job.task,
            geobox: &tile_box,
            bands: outputs.iter().zip(&keys).map(|(o, k)| (o.name.as_str(), file_name(k))).collect(),
            lineage: &inputs.lineage,
            inherited: &inputs.inherited,
            sha1_name: file_name(&sha1_key),
            thumbnail_name: thumbnail_key.as_deref().map(file_name),
            proc_info_name: file_name(&proc_key),
            label: crate::eo3_output::dataset_label(cfg, &region_code, &job.task),
            processed: chrono::Utc::now(),
        }),
    );
    let item = output_item(&ItemFacts {
        cfg,
        id: id.to_string(),
        title: layout.stem(&job.task),
        region_code,
        run_id: job.run_id,
        task: &job.task,
        geobox: &tile_box,
        outputs,
        band_urls: keys.iter().map(|k| job.output.url(k)).collect(),
        inputs: inputs.ids,
        skipped_inputs: inputs.skipped,
        observation_days: inputs.observation_days,
        self_url: job.output.url(&stac_key),
        collection_url: job.output.url(&layout.collection_key()),
        eo3_url: job.output.url(&eo3_key),
        inherited: &inputs.inherited,
        thumbnail_url: thumbnail_key.as_ref().map(|k| job.output.url(k)),
    })?;
    let item = serde_json::to_string_pretty(&item).unwrap();
    for (key, text) in [(&proc_key, &proc), (&eo3_key, &eo3)] {
        sums.push((file_name(key), sha1_hex(text.as_bytes())));
        job.output.put(key, text.as_bytes())?;
    }
    sums.push((file_name(&stac_key), sha1_hex(item.as_bytes())));
    job.output.put(&sha1_key, sha1_listing(&sums).as_bytes())?;
    if let Some(check) = job.before_commit {
        check()?;
    }
    job.output.put(&stac_key, item.as_bytes())?;
    Ok((keys, stac_key))
}

/// The process's peak resident memory so far (MB), from /proc (Linux); 0 elsewhere. For a
/// worker that runs one tile per process it is the tile's peak, checked against the plan's
/// estimate.
pub fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

/// Reading threads per core for remote inputs (S3, HTTP): they wait on the network more
/// than on the CPU, so their chunks are read with more threads than cores, keeping many
/// range requests in flight (GDAL already fetches the blocks of one window in parallel).
/// Measured on the au-30 bench tile over HTTP with 30 ms latency (BENCHMARKS.md): 4 per
/// core 42-46 s, 8 per core 38.5 s, 16 per core 38.1 s with 30% more memory. Each
/// thread holds one dataset's planes, which the memory estimate counts.
/// `STRATUS_REMOTE_READ_THREADS` sets the total instead.
pub const REMOTE_READ_THREADS_PER_CORE: usize = 8;

/// Threads that read a tile's chunks: the worker's threads for local files, more for
/// remote inputs (each holds one dataset's planes: the memory estimate counts them).
pub fn read_threads(remote: bool) -> usize {
    if !remote {
        return rayon::current_num_threads();
    }
    std::env::var("STRATUS_REMOTE_READ_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(REMOTE_READ_THREADS_PER_CORE * rayon::current_num_threads())
}

/// Whether what `dataset`'s item declares of the bands (`raster:bands`: type, scale and
/// offset) agrees with how the statistic reads them; the reason, naming the band and the
/// fix, when not.
pub(crate) fn check_declared_types(
    dataset: &Dataset,
    inputs: &[stratus_stats::InputBand],
    plugin: &str,
) -> std::result::Result<(), String> {
    for b in inputs {
        let Some(asset) = dataset.band(&b.name) else { continue };
        if let Some(declared) = asset.data_type.filter(|t| !b.dtype.holds(*t)) {
            let nodata = asset.nodata.map_or(String::new(), |n| format!(", nodata: {n}"));
            return Err(format!(
                "band '{}' is {declared} (the item's raster:bands), but plugin '{plugin}' reads it as {}{}",
                b.name,
                b.dtype,
                match declared {
                    t if t.code_zero().is_some() => format!(": set plugin_config {{dtype: {declared}{nodata}}}"),
                    t if t.held_as_float() => format!(
                        ": set plugin_config {{dtype: {declared}}} (percentiles, median and mean take {declared} bands)"
                    ),
                    _ => format!(": {declared} bands cannot be read (8-, 16- and 32-bit integer types, and float32)"),
                }
            ));
        }
        if let (Some((scale, offset)), true) = (b.units, asset.scale.is_some() || asset.offset.is_some()) {
            let (s, o) = (asset.scale.unwrap_or(1.0), asset.offset.unwrap_or(0.0));
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-12);
            // Sentinel-2 baseline 04.00+: the read removes the +1000, which catalogues
            // declare as an offset of -1000 x scale (Earth Search) or not at all (Planetary
            // Computer's, `stratus synth`'s); the baseline in the metadata decides.
            let harmonized = b.harmonize_s2_offset && dataset.has_boa_offset();
            let (declared_o, o) = (o, if harmonized && !close(o, offset) { o + 1000.0 * s } else { o });
            if !close(s, scale) || !close(o, offset) {
                return Err(format!(
                    "band '{}' declares scale {s} and offset {declared_o} (the item's raster:bands{}), but plugin '{plugin}' computes with scale {scale} and offset {offset}: set plugin_config {{scale: {s}, offset: {o}}}",
                    b.name,
                    if harmonized { "; the read removes the +1000 of baseline 04.00+" } else { "" }
                ));
            }
        }
    }
    Ok(())
}

/// Whether any of `datasets`' assets is remote (read through GDAL's network file systems).
pub fn has_remote_inputs(datasets: &[Dataset]) -> bool {
    datasets.iter().flat_map(|d| &d.assets).any(|a| gdal_path(&a.href).starts_with("/vsi"))
}

fn remote_read_pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(read_threads(true))
            .thread_name(|i| format!("stratus-remote-read-{i}"))
            .build()
            .expect("a thread pool")
    })
}

/// Read one chunk's stack: every day's datasets, fused, in parallel across days.
#[allow(clippy::too_many_arguments)]
fn read_chunk(
    job: &TileJob,
    open: &OpenInputs,
    prepared: &[Prepared],
    days: &[(chrono::NaiveDate, Vec<usize>)],
    inputs: &[stratus_stats::InputBand],
    window: &GeoBox,
    tile_box: &GeoBox,
    continuous: Resampling,
) -> Result<Stack, TileError> {
    let names: Vec<String> = inputs.iter().map(|b| b.name.clone()).collect();
    let nodata: Vec<u16> = inputs.iter().map(|b| b.nodata).collect();
    let operation = job.cfg.crs_operation();
    let dtypes = inputs.iter().map(|b| b.dtype).collect();
    let mut stack = Stack::typed(names, dtypes, nodata.clone(), days.len(), window.height, window.width);
    let wb = window.bounds();
    let npix = window.width * window.height;
    // Integer bands go through the 16-bit read path; float32 ones through GDAL's warper.
    let (ints, floats): (Vec<usize>, Vec<usize>) = (0..inputs.len()).partition(|&b| stack.float_index[b].is_none());
    let resampling = |b: &stratus_stats::InputBand| if b.categorical { Resampling::Nearest } else { continuous };
    let Stack { data, floats: float_data, .. } = &mut stack;
    let failures: Vec<Option<InputFailure>> = data
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(float_data.axis_iter_mut(Axis(0)).into_par_iter())
        .zip(days.par_iter())
        .map(|((mut slot, mut float_slot), (_, members))| {
            // filled[p]: the slot already has an observation at pixel p (None: nothing
            // written yet). Where it has none, the slot holds nodata.
            let mut filled: Option<Vec<bool>> = None;
            for &i in members {
                let p = &prepared[i];
                if p.bounds.is_some_and(|b| !b.intersects(&wb)) {
                    continue;
                }
                let assets: Vec<_> = inputs.iter().map(|b| p.dataset.band(&b.name).expect("checked above")).collect();
                let paths: Vec<String> = assets.iter().map(|a| gdal_path(&a.href)).collect();
                let failure = |b: usize, error: stratus_raster::RasterError| InputFailure {
                    dataset: i,
                    href: assets[b].href.clone(),
                    reason: error.to_string(),
                    transient: error.is_transient(),
                };
                let requests: Vec<BandRequest> = ints
                    .iter()
                    .map(|&b| BandRequest {
                        path: &paths[b],
                        name: &assets[b].href,
                        resampling: resampling(&inputs[b]),
                        dtype: inputs[b].dtype,
                        nodata: inputs[b].nodata,
                        declared_nodata: assets[b].nodata,
                    })
                    .collect();
                let mode = job.mode.read_mode();
                let max_error = job.cfg.warp_error_threshold;
                // Baseline 04.00+ digital numbers carry +1000: remove it so composites
                // mixing baselines are not shifted.
                let harmonize = |planes: &mut [&mut [u16]]| {
                    for (&b, v) in ints.iter().zip(planes.iter_mut()) {
                        let b = &inputs[b];
                        if b.harmonize_s2_offset && p.dataset.has_boa_offset() {
                            for px in v.iter_mut().filter(|px| **px != b.nodata) {
                                *px = px.saturating_sub(1000).max(1);
                            }
                        }
                    }
                };
                let dst = slot.as_slice_mut().expect("a day of the stack is contiguous");
                if filled.is_none() && floats.is_empty() && mode != ReadMode::DecodeOnly {
                    // The day's first dataset is read straight into the slot (all bands
                    // integer: the slot is one plane per band, in order).
                    let mut planes: Vec<&mut [u16]> = dst.chunks_exact_mut(npix).collect();
                    if let Err(f) =
                        read_bands_into(open, &requests, &mut planes, window, tile_box, max_error, &operation, mode)
                    {
                        return Some(failure(ints[f.index], f.error));
                    }
                    harmonize(&mut planes);
                    filled = Some(keep_whole_observations(&mut planes, &nodata));
                    continue;
                }
                let mut planes = match read_bands(open, &requests, window, tile_box, max_error, &operation, mode) {
                    Ok(planes) => planes,
                    Err(f) => return Some(failure(ints[f.index], f.error)),
                };
                if mode == ReadMode::DecodeOnly {
                    continue;
                }
                let mut float_planes = Vec::with_capacity(floats.len());
                for &b in &floats {
                    match read_float_band(&paths[b], &assets[b].href, window, resampling(&inputs[b]), max_error) {
                        Ok(plane) => float_planes.push(plane),
                        Err(e) => return Some(failure(b, e)),
                    }
                }
                harmonize(&mut planes.iter_mut().map(|p| p.as_mut_slice()).collect::<Vec<_>>());
                // Same-day fusing: the first dataset valid (all bands) at a pixel wins.
                let filled = filled.get_or_insert_with(|| vec![false; npix]);
                let float_dst = float_slot.as_slice_mut().expect("a day of the stack is contiguous");
                // Plane by plane rather than pixel by pixel, without branches: the loops
                // vectorise.
                let mut take: Vec<bool> = filled.iter().map(|f| !f).collect();
                for (pl, &b) in planes.iter().zip(&ints) {
                    take.iter_mut().zip(pl).for_each(|(t, &v)| *t &= v != nodata[b]);
                }
                for pl in &float_planes {
                    take.iter_mut().zip(pl).for_each(|(t, v)| *t &= !v.is_nan());
                }
                for (pl, &b) in planes.iter().zip(&ints) {
                    let out = dst[b * npix..(b + 1) * npix].iter_mut();
                    out.zip(pl).zip(&take).for_each(|((o, &v), &t)| *o = if t { v } else { *o });
                }
                for (fi, pl) in float_planes.iter().enumerate() {
                    let out = float_dst[fi * npix..(fi + 1) * npix].iter_mut();
                    out.zip(pl).zip(&take).for_each(|((o, &v), &t)| *o = if t { v } else { *o });
                }
                filled.iter_mut().zip(&take).for_each(|(f, &t)| *f |= t);
            }
            None
        })
        .collect();
    if let Some(f) = failures.into_iter().flatten().next() {
        return Err(TileError::Input(f));
    }
    Ok(stack)
}

/// The same-day rule on one dataset's planes: an observation is a pixel valid in every
/// band, so a pixel missing in any band becomes nodata in all. Returns where the planes
/// hold an observation.
fn keep_whole_observations(planes: &mut [&mut [u16]], nodata: &[u16]) -> Vec<bool> {
    let mut valid = vec![true; planes.first().map_or(0, |p| p.len())];
    for (pl, nd) in planes.iter().zip(nodata) {
        valid.iter_mut().zip(pl.iter()).for_each(|(t, v)| *t &= v != nd);
    }
    // Without branches: the loops vectorise.
    for (pl, &nd) in planes.iter_mut().zip(nodata) {
        pl.iter_mut().zip(&valid).for_each(|(v, &t)| *v = if t { *v } else { nd });
    }
    valid
}

/// Write a chunk's result without its halo; `outside`: the area-of-interest mask of the
/// cropped chunk and the value its outside pixels take (the band's nodata).
#[allow(clippy::too_many_arguments)]
fn write_cropped(
    writer: &mut BandWriter,
    data: OutputData,
    col0: usize,
    row0: usize,
    w: usize,
    h: usize,
    halo: usize,
    outside: Option<(&[bool], f64)>,
) -> Result<()> {
    macro_rules! crop {
        ($a:expr, $t:ty) => {{
            let mut v = $a.slice(s![halo..halo + h, halo..halo + w]).iter().copied().collect::<Vec<_>>();
            if let Some((inside, fill)) = outside {
                v.iter_mut().zip(inside).filter(|(_, &i)| !i).for_each(|(px, _)| *px = fill as $t);
            }
            v
        }};
    }
    match data {
        OutputData::U8(a) => writer.write(col0, row0, w, h, crop!(a, u8))?,
        OutputData::U16(a) => writer.write(col0, row0, w, h, crop!(a, u16))?,
        OutputData::I16(a) => writer.write(col0, row0, w, h, crop!(a, i16))?,
        OutputData::F32(a) => writer.write(col0, row0, w, h, crop!(a, f32))?,
    }
    Ok(())
}

/// True if the tile's STAC item (written last) exists: the tile is complete.
/// What a tile's outputs say before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExistingOutputs {
    /// No STAC item: the tile is not complete (partial bands may exist; they are replaced).
    Absent,
    /// Complete, made with this configuration.
    Complete,
    /// Complete, but made with another configuration (its item records another digest).
    OtherConfig,
}

/// Look at a tile's STAC item (the completeness marker) and the configuration it records.
pub fn existing_outputs(
    output: &dyn BlobStore,
    layout: &Layout,
    task: &TaskId,
    config_digest: &str,
) -> Result<ExistingOutputs> {
    let bytes = match output.get(&layout.stac_key(task)) {
        Ok(bytes) => bytes,
        Err(stratus_ports::PortError::NotFound(_)) => return Ok(ExistingOutputs::Absent),
        Err(e) => return Err(e.into()),
    };
    let item: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    let recorded = item.pointer("/properties/stratus:config_digest").and_then(|v| v.as_str());
    Ok(if recorded == Some(config_digest) { ExistingOutputs::Complete } else { ExistingOutputs::OtherConfig })
}

/// Remove a tile's outputs (before an overwrite, the item first so the tile never looks
/// complete with old and new bands mixed).
pub fn remove_tile_outputs(output: &dyn BlobStore, layout: &Layout, task: &TaskId, bands: &[String]) -> Result<()> {
    output.delete(&layout.stac_key(task))?;
    for ext in crate::layout::TILE_METADATA {
        output.delete(&layout.metadata_key(task, ext))?;
    }
    for b in bands {
        output.delete(&layout.band_key(task, b))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tile made with another configuration is not complete for this one (its item
    /// records the configuration's digest), so a changed run remakes it.
    #[test]
    fn outputs_count_as_complete_only_for_the_configuration_that_made_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = stratus_ports::LocalBlobStore::new(dir.path()).unwrap();
        let layout = Layout::new("p", "1");
        let task: TaskId = "x+001/y+002/2021--P1Y".parse().unwrap();
        assert_eq!(existing_outputs(&store, &layout, &task, "a").unwrap(), ExistingOutputs::Absent);
        let item = serde_json::json!({"type": "Feature", "properties": {"stratus:config_digest": "a"}});
        store.put(&layout.stac_key(&task), item.to_string().as_bytes()).unwrap();
        assert_eq!(existing_outputs(&store, &layout, &task, "a").unwrap(), ExistingOutputs::Complete);
        assert_eq!(existing_outputs(&store, &layout, &task, "b").unwrap(), ExistingOutputs::OtherConfig);
    }

    /// A pixel a dataset has in some bands only is no observation: nodata in every band.
    #[test]
    fn a_pixel_missing_in_one_band_is_no_observation() {
        let (mut a, mut b) = (vec![5u16, 0, 7, 0], vec![9u16, 3, 65535, 65535]);
        let valid = keep_whole_observations(&mut [&mut a, &mut b], &[0, 65535]);
        assert_eq!(valid, [true, false, false, false]);
        assert_eq!((a, b), (vec![5, 0, 0, 0], vec![9, 65535, 65535, 65535]));
    }

    /// A dataset of one asset, for the checks below.
    fn one_asset_dataset(asset: stratus_core::BandAsset, baseline: Option<&str>) -> Dataset {
        Dataset {
            id: "item-1".into(),
            collection: "c".into(),
            datetime: chrono::Utc::now(),
            footprint: vec![],
            epsg: 32633,
            region_code: None,
            processing_baseline: baseline.map(String::from),
            assets: vec![asset],
            sources: vec![],
            inherited: Default::default(),
        }
    }

    /// odc-stats filters masks at the native resolution of its basis band: Sentinel-2's
    /// 20 m SCL on a 10 m grid doubles pq's radii; 10 m bands on a 60 m grid shrink a
    /// geomedian's; nothing changes where they match or the pixel size is unknown.
    #[test]
    fn mask_filters_scale_from_native_pixels() {
        use stratus_core::BandAsset;
        let dataset = |band: &str, pixel: Option<f64>| {
            one_asset_dataset(
                BandAsset {
                    key: band.into(),
                    names: vec![],
                    href: format!("/x/{band}.tif"),
                    epsg: None,
                    transform: pixel.map(|p| [500_000.0, p, 0.0, 7_000_000.0, 0.0, -p]),
                    shape: None,
                    nodata: None,
                    data_type: None,
                    scale: None,
                    offset: None,
                },
                None,
            )
        };
        let cfg = |grid: &str| {
            RunConfig::from_yaml(
                &format!("inputs: [items.json]\ngrid: '{grid}'\nplugin: pq\nproduct: {{name: p}}\nlocation: out\n"),
                "test",
            )
            .unwrap()
        };
        let pq = stratus_stats::build_statistic("pq", &serde_json::Value::Null).unwrap();
        let ten = cfg("epsg:6933;10;100");
        assert_eq!(native_filter_scale(&ten, pq.as_ref(), &[dataset("SCL", Some(20.0))]).unwrap(), Some(2.0));
        assert_eq!(native_filter_scale(&ten, pq.as_ref(), &[dataset("SCL", Some(10.0))]).unwrap(), None);
        assert_eq!(native_filter_scale(&ten, pq.as_ref(), &[dataset("SCL", None)]).unwrap(), None);
        assert_eq!(native_filter_scale(&ten, pq.as_ref(), &[dataset("SCL", Some(0.0002))]).unwrap(), None, "degrees");
        let gm = stratus_stats::build_statistic("gm-s2", &serde_json::Value::Null).unwrap();
        let f =
            native_filter_scale(&cfg("epsg:6933;60;100"), gm.as_ref(), &[dataset("B02", Some(10.0))]).unwrap().unwrap();
        let mut scaled = stratus_stats::build_statistic("gm-s2", &serde_json::Value::Null).unwrap();
        scaled.scale_filters(f);
        // Opening 2, dilation 5 in 10 m pixels: opening 0, dilation 1 in 60 m ones.
        assert_eq!((gm.halo(), scaled.halo()), (2 * 2 + 5, 1));
        let mut pq2 = stratus_stats::build_statistic("pq", &serde_json::Value::Null).unwrap();
        pq2.scale_filters(2.0);
        assert_eq!((pq.halo(), pq2.halo()), (9, 18));
    }

    /// What items declare of a band (type, scale, offset) is checked against how the
    /// statistic reads it, with Sentinel-2's removed +1000 accounted for.
    #[test]
    fn declared_types_scales_and_offsets_are_checked() {
        use stratus_core::{BandAsset, SampleType};
        let dataset = |data_type: Option<SampleType>, scale: Option<f64>, offset: Option<f64>, baseline: &str| {
            let asset = BandAsset {
                key: "B04".into(),
                names: vec![],
                href: "/x/B04.tif".into(),
                epsg: None,
                transform: None,
                shape: None,
                nodata: Some(-999.0),
                data_type,
                scale,
                offset,
            };
            one_asset_dataset(asset, Some(baseline))
        };
        let gm = stratus_stats::build_statistic("gm-s2", &serde_json::json!({"bands": ["B04"]})).unwrap();
        let inputs = gm.input_bands();
        let check = |d: &Dataset| check_declared_types(d, &inputs[..1], "gm-s2");
        assert!(check(&dataset(None, None, None, "02.09")).is_ok(), "nothing declared");
        assert!(check(&dataset(Some(SampleType::Uint16), Some(1e-4), Some(0.0), "02.09")).is_ok());
        assert!(check(&dataset(Some(SampleType::Uint8), None, None, "02.09")).is_ok(), "uint8 widens into uint16");
        // Earth Search's baseline 04.00+ items: offset -0.1, which the +1000 removal accounts
        // for; other catalogues leave the offset out of such items.
        assert!(check(&dataset(Some(SampleType::Uint16), Some(1e-4), Some(-0.1), "04.00")).is_ok());
        assert!(check(&dataset(Some(SampleType::Uint16), Some(1e-4), Some(0.0), "04.00")).is_ok());
        let e = check(&dataset(Some(SampleType::Uint16), Some(2e-4), Some(0.0), "04.00")).unwrap_err();
        assert!(e.contains("scale 0.0002"), "{e}");
        let e = check(&dataset(Some(SampleType::Uint16), Some(1e-4), Some(-0.1), "02.09")).unwrap_err();
        assert!(e.contains("'B04'") && e.contains("offset -0.1") && e.contains("{scale: 0.0001, offset: -0.1}"), "{e}");
        let e = check(&dataset(Some(SampleType::Int16), None, None, "02.09")).unwrap_err();
        assert!(e.contains("int16") && e.contains("{dtype: int16, nodata: -999}"), "{e}");
        let e = check(&dataset(Some(SampleType::Float32), None, None, "02.09")).unwrap_err();
        assert!(e.contains("{dtype: float32}"), "{e}");
        let e = check(&dataset(Some(SampleType::Float64), None, None, "02.09")).unwrap_err();
        assert!(e.contains("float64") && e.contains("cannot be read"), "{e}");
    }
}
