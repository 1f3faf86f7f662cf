//! Inputs opened once per tile: each file's handle, grid and nodata, shared by every chunk
//! of the tile instead of reopening the file for every chunk and band.

use crate::error::{RasterError, Result};
use gdal::Dataset;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use stratus_core::SampleType;

/// The pixel grid of a source band: where its pixels are, in which CRS, and its
/// overview levels.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceGrid {
    pub geo_transform: [f64; 6],
    pub width: usize,
    pub height: usize,
    /// The CRS as WKT (PROJ transforms are built from it).
    pub wkt: String,
    /// The EPSG code of the CRS, when it has one.
    pub epsg: Option<u32>,
    /// Overview sizes of band 1, finest first.
    pub overviews: Vec<(usize, usize)>,
}

impl SourceGrid {
    fn of(ds: &Dataset, path: &str) -> Result<SourceGrid> {
        let input = |why: &str| RasterError::Input { path: path.into(), why: why.into() };
        let sr = ds.spatial_ref().map_err(|_| input("has no CRS"))?;
        let geo_transform = ds.geo_transform().map_err(|_| input("has no geotransform"))?;
        let band = ds.rasterband(1)?;
        let overviews = (0..band.overview_count()?)
            .filter_map(|i| band.overview(i as usize).ok())
            .map(|o| o.size())
            .collect::<Vec<_>>();
        let (width, height) = ds.raster_size();
        Ok(SourceGrid {
            geo_transform,
            width,
            height,
            wkt: sr.to_wkt()?,
            epsg: sr.auth_code().ok().filter(|_| sr.auth_name().is_some_and(|n| n == "EPSG")).map(|c| c as u32),
            overviews,
        })
    }

    /// The geotransform of overview `level` (None: full resolution), as GDAL's overview
    /// dataset defines it (the extent kept, pixels scaled).
    pub fn level_transform(&self, level: Option<usize>) -> ([f64; 6], usize, usize) {
        let Some(i) = level else { return (self.geo_transform, self.width, self.height) };
        let (w, h) = self.overviews[i];
        let mut gt = self.geo_transform;
        let (fx, fy) = (self.width as f64 / w as f64, self.height as f64 / h as f64);
        gt[1] *= fx;
        gt[2] *= fy;
        gt[4] *= fx;
        gt[5] *= fy;
        (gt, w, h)
    }
}

/// What a chunk read needs to know of an input before reading it.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    pub grid: Arc<SourceGrid>,
    /// The band's own nodata value: source pixels equal to it are not data.
    pub nodata: Option<f64>,
    /// The band's sample type (GDAL's name, e.g. `Byte`, `Int16`, `CFloat32`).
    pub gdal_type: String,
}

impl SourceInfo {
    /// The sample type, for the types a band can have here (not complex ones).
    pub fn sample_type(&self) -> Option<SampleType> {
        sample_type_of(&self.gdal_type)
    }
}

/// The sample type of a GDAL data type name (`Byte`, `Int16`, `Float32`; None for complex
/// and other types a band cannot have here).
pub fn sample_type_of(gdal_type: &str) -> Option<SampleType> {
    match gdal_type {
        "Byte" => Some(SampleType::Uint8),
        other => SampleType::parse(other),
    }
}

struct Slot {
    ds: Option<Dataset>,
    info: Option<SourceInfo>,
    last_used: u64,
}

/// The tile's inputs, each opened on first use and kept open (up to a cap on open
/// handles, so a deep stack of local files stays under the process's file limit).
pub struct OpenInputs {
    slots: HashMap<String, Mutex<Slot>>,
    open: AtomicUsize,
    clock: AtomicU64,
    max_open: usize,
}

impl OpenInputs {
    /// `paths`: every GDAL path the tile may read.
    pub fn new<'a>(paths: impl IntoIterator<Item = &'a str>) -> OpenInputs {
        crate::init_gdal();
        let slots = paths
            .into_iter()
            .map(|p| (p.to_string(), Mutex::new(Slot { ds: None, info: None, last_used: 0 })))
            .collect();
        OpenInputs { slots, open: AtomicUsize::new(0), clock: AtomicU64::new(0), max_open: max_open_inputs() }
    }

    /// Run `f` with the input at `path` open. A remote input that fails is retried with
    /// GDAL's cached bytes of it dropped (see [`crate::warp::read_input_with_retries`]).
    pub fn with<T>(&self, path: &str, name: &str, f: impl Fn(&Dataset, &SourceInfo) -> Result<T>) -> Result<T> {
        let slot = self.slots.get(path).ok_or_else(|| RasterError::Input {
            path: name.into(),
            why: "not among the tile's inputs (internal error)".into(),
        })?;
        crate::warp::with_remote_retries(path, name, || {
            let mut s = slot.lock().unwrap_or_else(|e| e.into_inner());
            s.last_used = self.clock.fetch_add(1, Ordering::Relaxed);
            if s.ds.is_none() {
                self.make_room();
                let ds = crate::warp::open_input(path)?;
                if s.info.is_none() {
                    let band = ds.rasterband(1)?;
                    let (nodata, gdal_type) = (band.no_data_value(), band.band_type().name());
                    s.info = Some(SourceInfo { grid: Arc::new(SourceGrid::of(&ds, name)?), nodata, gdal_type });
                }
                s.ds = Some(ds);
                self.open.fetch_add(1, Ordering::Relaxed);
            }
            let out = f(s.ds.as_ref().expect("opened above"), s.info.as_ref().expect("set on open"));
            if out.is_err() {
                // Reopened on the retry: a remote file may have changed or been cut short.
                s.ds = None;
                self.open.fetch_sub(1, Ordering::Relaxed);
            }
            out
        })
    }

    /// Close the least recently used idle handle while at the cap.
    fn make_room(&self) {
        while self.open.load(Ordering::Relaxed) >= self.max_open {
            let oldest = self
                .slots
                .values()
                .filter_map(|m| m.try_lock().ok().filter(|s| s.ds.is_some()).map(|s| (s.last_used, m)))
                .min_by_key(|(t, _)| *t);
            let Some((_, m)) = oldest else { return };
            if let Ok(mut s) = m.try_lock() {
                if s.ds.take().is_some() {
                    self.open.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Open handles kept per tile: half the process's file limit (a local GeoTIFF holds a
/// descriptor; remote ones share GDAL's connection pool), at least 64.
fn max_open_inputs() -> usize {
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse::<usize>().ok()))
        })
        .unwrap_or(1024);
    (limit / 2).max(64)
}

/// Check that a source of `info` can be held as `as_type` without loss (reading widens
/// only), naming the input and the fix when it cannot.
pub fn check_type(info: &SourceInfo, name: &str, as_type: SampleType) -> Result<()> {
    match info.sample_type() {
        Some(t) if as_type.holds(t) => Ok(()),
        found => Err(RasterError::Input {
            path: name.into(),
            why: format!(
                "its band is {}, which the statistic cannot read as {as_type} without loss: set the plugin_config's 'dtype' (and 'nodata') to the band's type{}",
                found.map_or(info.gdal_type.clone(), |t| t.to_string()),
                if found.is_some_and(|t| t.code_zero().is_none()) { " (8- and 16-bit integer types only)" } else { "" },
            ),
        }),
    }
}

/// Read a window of band 1 at overview `level` (None: full resolution) as 16-bit codes of
/// `as_type` (see [`stratus_core::sample`]). Only the blocks the window touches are
/// decoded.
pub fn read_window(
    ds: &Dataset,
    name: &str,
    as_type: SampleType,
    level: Option<usize>,
    (x0, y0): (usize, usize),
    (w, h): (usize, usize),
) -> Result<Vec<u16>> {
    let band = ds.rasterband(1)?;
    let band = match level {
        None => band,
        Some(i) => band.overview(i)?,
    };
    let input = |e: gdal::errors::GdalError| RasterError::Input { path: name.into(), why: e.to_string() };
    let at = (x0 as isize, y0 as isize);
    if as_type.is_signed() {
        // Signed values shifted by 32768 (int8 widens to int16 first).
        let buf = band.read_as::<i16>(at, (w, h), (w, h), None).map_err(input)?;
        Ok(buf.into_shape_and_vec().1.into_iter().map(|v| (v as u16) ^ 0x8000).collect())
    } else {
        Ok(band.read_as::<u16>(at, (w, h), (w, h), None).map_err(input)?.into_shape_and_vec().1)
    }
}
