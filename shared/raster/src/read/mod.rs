//! The tile read path: a dataset's bands read into an output window.
//!
//! For each dataset, the bands that share a source grid (Sentinel-2: the 10 m bands; the
//! 20 m bands and SCL) share one coordinate map per chunk. Each band's source window is
//! decoded once (only the blocks it touches, at the overview level gdalwarp would pick)
//! and resampled in Rust. A source on the output grid itself (same CRS and resolution,
//! whole-pixel offset) is copied without resampling. Inputs are opened once per tile
//! ([`OpenInputs`]). Results match `gdalwarp` with the same resampling and error threshold
//! (tests/read_parity.rs).

pub mod coords;
pub mod resample;
pub mod source;

use crate::crs_operation::CrsOperation;
use crate::error::{RasterError, Result};
use crate::resampling::Resampling;
use coords::PixelTransform;
use resample::{kernel_radius, resample_footprints, resample_points, source_nodata, Bounds, PointBand, Points, Window};
pub use source::{OpenInputs, SourceGrid, SourceInfo};
use std::sync::Arc;
use stratus_core::{GeoBox, SampleType};

/// One band of a dataset to read.
#[derive(Debug, Clone)]
pub struct BandRequest<'a> {
    /// The path GDAL opens (`/vsis3/...`, `/vsicurl/...` or local).
    pub path: &'a str,
    /// The name errors and logs use (the asset's href).
    pub name: &'a str,
    pub resampling: Resampling,
    /// How the band is held: values become 16-bit codes of this type (see
    /// [`stratus_core::sample`]); a source type it cannot hold without loss is refused.
    pub dtype: SampleType,
    /// The output's nodata (a code): pixels nothing valid maps to.
    pub nodata: u16,
    /// The nodata the catalogue declares, used when the file declares none.
    pub declared_nodata: Option<f64>,
}

/// Resample (the tile read), or only decode the source windows the resampling would use
/// (the benchmark's baseline: the cost of the bytes themselves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    Resample,
    DecodeOnly,
    /// GDAL's warper once per band, reopening each file (the previous read path): the
    /// benchmark's and the parity tests' reference.
    GdalWarp,
}

/// A band that failed: its index in the request list and why.
#[derive(Debug)]
pub struct BandFailure {
    pub index: usize,
    pub error: RasterError,
}

/// Read `requests` (all bands of one dataset) into `window`, a window of `tile`'s grid.
/// One plane per request, row-major, `nodata` where the source has nothing valid.
/// `max_error`: the approximate transformer's tolerance in source pixels (gdalwarp's
/// `-et`); `op`: the coordinate operation between the inputs' CRSs and the grid's
/// (GDAL's reference path, [`ReadMode::GdalWarp`], uses PROJ's default).
pub fn read_bands(
    inputs: &OpenInputs,
    requests: &[BandRequest],
    window: &GeoBox,
    tile: &GeoBox,
    max_error: f64,
    op: &CrsOperation,
    mode: ReadMode,
) -> std::result::Result<Vec<Vec<u16>>, BandFailure> {
    let npix = window.width * window.height;
    let mut planes: Vec<Vec<u16>> = requests.iter().map(|r| vec![r.nodata; npix]).collect();
    let mut outs: Vec<&mut [u16]> = planes.iter_mut().map(|p| p.as_mut_slice()).collect();
    read_bands_into(inputs, requests, &mut outs, window, tile, max_error, op, mode)?;
    Ok(planes)
}

/// [`read_bands`] into planes the caller holds (a day of a chunk's stack), each
/// `window`'s size and holding its request's `nodata` on entry; pixels with nothing valid
/// are left as they are.
#[allow(clippy::too_many_arguments)]
pub fn read_bands_into(
    inputs: &OpenInputs,
    requests: &[BandRequest],
    planes: &mut [&mut [u16]],
    window: &GeoBox,
    tile: &GeoBox,
    max_error: f64,
    op: &CrsOperation,
    mode: ReadMode,
) -> std::result::Result<(), BandFailure> {
    debug_assert!(planes.len() == requests.len() && planes.iter().all(|p| p.len() == window.width * window.height));
    if mode == ReadMode::GdalWarp {
        for (plane, read) in planes.iter_mut().zip(gdal_warp_bands(requests, window, max_error)?) {
            plane.copy_from_slice(&read);
        }
        return Ok(());
    }
    // Group the bands by source grid: each group shares its coordinates.
    let mut groups: Vec<(Arc<SourceGrid>, Vec<usize>)> = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        let info = inputs
            .with(r.path, r.name, |_, info| source::check_type(info, r.name, r.dtype).map(|_| info.clone()))
            .map_err(|error| BandFailure { index: i, error })?;
        match groups.iter_mut().find(|(g, _)| **g == *info.grid) {
            Some((_, members)) => members.push(i),
            None => groups.push((info.grid.clone(), vec![i])),
        }
    }
    for (grid, members) in groups {
        let fail = |index: usize| move |error: RasterError| BandFailure { index, error };
        let methods: Vec<Resampling> = members.iter().map(|&i| requests[i].resampling).collect();
        let Some(plan) = GroupPlan::new(&grid, window, tile, &methods, max_error, op).map_err(fail(members[0]))? else {
            continue;
        };
        let (origin, size) = plan.decode_window();
        let mut decoded = Vec::with_capacity(members.len());
        for &i in &members {
            let r = &requests[i];
            decoded.push(
                inputs
                    .with(r.path, r.name, |ds, info| {
                        let data = source::read_window(ds, r.name, r.dtype, plan.level, origin, size)?;
                        Ok((data, source_nodata(info.nodata.or(r.declared_nodata), r.dtype)))
                    })
                    .map_err(fail(i))?,
            );
        }
        if mode == ReadMode::DecodeOnly {
            continue;
        }
        // The group's planes, in member order (members ascend).
        let outs = planes.iter_mut().enumerate().filter(|(i, _)| members.contains(i)).map(|(_, p)| &mut **p);
        let mut bands: Vec<GroupBand> = members
            .iter()
            .zip(&decoded)
            .zip(outs)
            .map(|((&i, (data, nodata)), out)| GroupBand {
                decoded: data,
                nodata: *nodata,
                method: requests[i].resampling,
                out,
                dst_nodata: requests[i].nodata,
            })
            .collect();
        plan.resample(&mut bands);
        for (&i, b) in members.iter().zip(bands) {
            clamp_to_type(b.out, requests[i].dtype, requests[i].nodata);
        }
    }
    Ok(())
}

/// Read a float32 band (a summary of summaries) into `window` with GDAL's warper: NaN where
/// the source has nothing valid. Float inputs are rare and small next to reflectance, so
/// they take the reference path rather than a float copy of the 16-bit kernels. The
/// source must be float32, an 8- or 16-bit integer type, or int32 whose values float32
/// holds exactly (up to 2^24 either side of zero; a larger one is refused by name).
pub fn read_float_band(
    path: &str,
    name: &str,
    window: &GeoBox,
    resampling: Resampling,
    max_error: f64,
) -> Result<Vec<f32>> {
    crate::warp::read_input_with_retries(path, name, |src| {
        let found = src.rasterband(1)?.band_type().name();
        let refuse = |why: String| RasterError::Input { path: name.into(), why };
        match source::sample_type_of(&found) {
            Some(SampleType::Int32) => {
                const EXACT: f64 = 16_777_216.0;
                let v = crate::warp::read_warped::<f64>(src, name, window, resampling, f64::NAN, max_error)?;
                if let Some(big) = v.iter().find(|v| v.abs() > EXACT) {
                    return Err(refuse(format!(
                        "holds {big}, beyond the integers float32 holds exactly (2^24 either side of zero): int32 bands are summarised as float32"
                    )));
                }
                Ok(v.into_iter().map(|v| v as f32).collect())
            }
            Some(t) if t == SampleType::Float32 || t.code_zero().is_some() => {
                crate::warp::read_warped::<f32>(src, name, window, resampling, f64::NAN, max_error)
            }
            _ => Err(refuse(format!(
                "its band is {found}, which float32 cannot hold exactly: float32 and int32 bands of a statistic take float32, int32 or 8- and 16-bit integer files"
            ))),
        }
    })
}

/// Resampling (cubic's overshoot) can leave an 8-bit type's range, which 16-bit codes do
/// not bound: clamp into it and step off nodata, as GDAL does writing that type.
fn clamp_to_type(plane: &mut [u16], dtype: SampleType, nodata: u16) {
    let Some((lo, hi)) = dtype.range() else { return };
    let (Some(lo), Some(hi)) = (dtype.code(lo as f64), dtype.code(hi as f64)) else { return };
    if lo == 0 && hi == u16::MAX {
        return;
    }
    let off_nodata = |c: u16, step: i32| if c == nodata { (c as i32 + step) as u16 } else { c };
    for c in plane.iter_mut() {
        if *c > hi {
            *c = off_nodata(hi, -1);
        } else if *c < lo {
            *c = off_nodata(lo, 1);
        }
    }
}

fn gdal_warp_bands(
    requests: &[BandRequest],
    window: &GeoBox,
    max_error: f64,
) -> std::result::Result<Vec<Vec<u16>>, BandFailure> {
    requests
        .iter()
        .enumerate()
        .map(|(index, r)| {
            crate::warp::read_input_with_retries(r.path, r.name, |src| {
                let nodata = r.dtype.value(r.nodata) as f64;
                if r.dtype.is_signed() {
                    let v = crate::warp::read_warped::<i16>(src, r.name, window, r.resampling, nodata, max_error)?;
                    Ok(v.into_iter().map(|v| (v as u16) ^ 0x8000).collect())
                } else {
                    crate::warp::read_warped::<u16>(src, r.name, window, r.resampling, nodata, max_error)
                }
            })
            .map_err(|error| BandFailure { index, error })
        })
        .collect()
}

/// One band of a group being resampled: its decoded source window and output plane.
struct GroupBand<'a> {
    decoded: &'a [u16],
    /// The source band's own nodata.
    nodata: Option<u16>,
    method: Resampling,
    out: &'a mut [u16],
    dst_nodata: u16,
}

/// How one source grid maps onto the window: the level to read, the source window
/// (GDAL's, per resampling method), and the coordinates of the output pixels in it.
struct GroupPlan {
    level: Option<usize>,
    /// Every method's source window together: what is decoded.
    decode: Bounds,
    how: Mapping,
}

enum Mapping {
    /// The source is on the output's pixel lattice: output (c, r) is source
    /// (c + dx, r + dy) of the level (GDAL forces nearest here too).
    Aligned {
        dx: i64,
        dy: i64,
        width: usize,
    },
    Warped(Box<Warp>),
}

struct Warp {
    transform: PixelTransform,
    window: GeoBox,
    max_error: f64,
    level_size: (usize, usize),
    /// The window's edges in source pixels (GDAL's ComputeSourceWindow sampling).
    extent: Extent,
}

impl GroupPlan {
    /// None when the source does not reach the window.
    fn new(
        grid: &SourceGrid,
        window: &GeoBox,
        tile: &GeoBox,
        methods: &[Resampling],
        max_error: f64,
        op: &CrsOperation,
    ) -> Result<Option<GroupPlan>> {
        let level = overview_level(grid, tile, op)?;
        let (gt, lw, lh) = grid.level_transform(level);
        if let Some((dx, dy)) = aligned_offset(grid, &gt, window) {
            let decode = Bounds {
                x0: dx.max(0),
                y0: dy.max(0),
                x1: (dx + window.width as i64).min(lw as i64),
                y1: (dy + window.height as i64).min(lh as i64),
            };
            return Ok((!decode.is_empty()).then_some(GroupPlan {
                level,
                decode,
                how: Mapping::Aligned { dx, dy, width: window.width },
            }));
        }
        let transform = PixelTransform::new(window, &gt, &grid.wkt, grid.epsg, op)?;
        let Some(extent) = Extent::sample(&transform, window) else { return Ok(None) };
        let warp = Warp { transform, window: *window, max_error, level_size: (lw, lh), extent };
        let mut decode: Option<Bounds> = None;
        for &m in methods {
            let (b, _) = warp.gdal_window(m);
            if !b.is_empty() {
                decode = Some(decode.map_or(b, |d| d.union(&b)));
            }
        }
        Ok(decode.map(|decode| GroupPlan { level, decode, how: Mapping::Warped(Box::new(warp)) }))
    }

    fn decode_window(&self) -> ((usize, usize), (usize, usize)) {
        let d = &self.decode;
        ((d.x0 as usize, d.y0 as usize), ((d.x1 - d.x0) as usize, (d.y1 - d.y0) as usize))
    }

    /// Resample each band of the group into its plane. Coordinates are computed in strips of rows shared by the bands, so
    /// a chunk never holds a whole coordinate map.
    fn resample(&self, bands: &mut [GroupBand]) {
        let d = &self.decode;
        let w = (d.x1 - d.x0) as usize;
        match &self.how {
            Mapping::Aligned { dx, dy, width } => {
                let c0 = (d.x0 - dx) as usize;
                for b in bands.iter_mut() {
                    for (cy, row) in b.decoded.chunks_exact(w).enumerate() {
                        let r = (d.y0 + cy as i64 - dy) as usize;
                        for (o, &v) in b.out[r * width + c0..r * width + c0 + w].iter_mut().zip(row) {
                            if b.nodata != Some(v) {
                                *o = v;
                            }
                        }
                    }
                }
            }
            Mapping::Warped(warp) => {
                let width = warp.window.width;
                let footprint = |m: Resampling| matches!(m, Resampling::Average | Resampling::Mode);
                let points = bands.iter().any(|b| !footprint(b.method));
                let footprints = bands.iter().any(|b| footprint(b.method));
                // The methods present, in order, each with GDAL's source window for it.
                let mut methods: Vec<(Resampling, Bounds, (f64, f64))> = Vec::new();
                for b in bands.iter() {
                    if !methods.iter().any(|(m, ..)| *m == b.method) {
                        let (bounds, scale) = warp.gdal_window(b.method);
                        methods.push((b.method, bounds, scale));
                    }
                }
                for r0 in (0..warp.window.height).step_by(STRIP_ROWS) {
                    let rows = r0..(r0 + STRIP_ROWS).min(warp.window.height);
                    let px = r0 * width..rows.end * width;
                    let centres =
                        points.then(|| coords::map(&warp.transform, width, rows.clone(), 0.5, warp.max_error));
                    let corners = footprints.then(|| {
                        (
                            coords::map(&warp.transform, width, rows.clone(), 0.0, warp.max_error),
                            coords::map(&warp.transform, width, rows.clone(), 1.0, warp.max_error),
                        )
                    });
                    for &(method, bounds, scale) in methods.iter().filter(|(_, bounds, _)| !bounds.is_empty()) {
                        let of_method = bands.iter_mut().filter(|b| b.method == method);
                        match (&centres, &corners) {
                            (_, Some(((tlx, tly), (brx, bry)))) if footprint(method) => {
                                for b in of_method {
                                    let src = Window::new(d, b.decoded, b.nodata, bounds);
                                    let out = &mut b.out[px.clone()];
                                    resample_footprints(method, &src, (tlx, tly), (brx, bry), scale, out, b.dst_nodata)
                                }
                            }
                            (Some((xs, ys)), _) => {
                                let exact = |i: usize| {
                                    let (mut x, mut y) = ([(i % width) as f64 + 0.5], [(r0 + i / width) as f64 + 0.5]);
                                    warp.transform.exact(&mut x, &mut y);
                                    (x[0], y[0])
                                };
                                // The method's bands together: each pixel's weights are computed once.
                                let mut group: Vec<PointBand> = of_method
                                    .map(|b| PointBand {
                                        src: Window::new(d, b.decoded, b.nodata, bounds),
                                        out: &mut b.out[px.clone()],
                                        dst_nodata: b.dst_nodata,
                                    })
                                    .collect();
                                resample_points(method, &mut group, &Points { xs, ys, exact: &exact }, scale)
                            }
                            _ => unreachable!("coordinates are computed for every method present"),
                        }
                    }
                }
            }
        }
    }
}

/// Rows of output pixels whose source coordinates are computed at a time.
const STRIP_ROWS: usize = 64;

/// The window's edges mapped into the source (min and max of x and y, in level pixels).
struct Extent {
    min_x: f64,
    max_x: f64,
    min_y: f64,
    max_y: f64,
}

impl Extent {
    /// GDAL's `ComputeSourceWindow` sampling: 21 points along each edge of the window,
    /// transformed exactly; extremes within 1e-6 of a whole pixel are snapped to it.
    fn sample(t: &PixelTransform, window: &GeoBox) -> Option<Extent> {
        let (w, h) = (window.width as f64, window.height as f64);
        let (mut xs, mut ys) = (Vec::with_capacity(84), Vec::with_capacity(84));
        let step = 1.0 / 20.0;
        let mut r = 0.0;
        while r <= 1.0 + step * 0.5 {
            for (x, y) in [(r * w, 0.0), (r * w, h), (0.0, r * h), (w, r * h)] {
                xs.push(x);
                ys.push(y);
            }
            r += step;
        }
        t.exact(&mut xs, &mut ys);
        let snap = |v: f64| if (v - v.round()).abs() < 1e-6 { v.round() } else { v };
        let mut e = Extent { min_x: f64::MAX, max_x: f64::MIN, min_y: f64::MAX, max_y: f64::MIN };
        for (&x, &y) in xs.iter().zip(&ys) {
            if x.is_finite() && y.is_finite() {
                e.min_x = e.min_x.min(x);
                e.max_x = e.max_x.max(x);
                e.min_y = e.min_y.min(y);
                e.max_y = e.max_y.max(y);
            }
        }
        (e.min_x <= e.max_x).then(|| Extent {
            min_x: snap(e.min_x),
            max_x: snap(e.max_x),
            min_y: snap(e.min_y),
            max_y: snap(e.max_y),
        })
    }
}

impl Warp {
    /// GDAL's source window for `method` (ComputeSourceWindow's padding and clamping) and
    /// the kernel scale it implies (PerformWarp's dfXScale/dfYScale).
    fn gdal_window(&self, method: Resampling) -> (Bounds, (f64, f64)) {
        let radius = kernel_radius(method);
        let e = &self.extent;
        let axis = |lo: f64, hi: f64, n: usize, dst: usize| -> (i64, i64, f64) {
            let n_i = n as i64;
            let scale_cs = (dst as f64 / (hi - lo)).max(1e-3);
            let rad = if scale_cs < 0.95 { (radius as f64 / scale_cs).ceil() as i64 } else { radius };
            let min_c = lo.max(0.0) as i64;
            let max_c = (hi.ceil()).min(n as f64) as i64;
            let raw = ((n_i - min_c) as f64).min(hi - lo).max(0.0);
            let (off, size) = if (max_c - min_c) as f64 > 0.9 * n as f64 {
                (0, n_i)
            } else {
                let off = (min_c - rad).clamp(0, n_i);
                (off, (n_i - off).min(max_c - off + rad).max(0))
            };
            let extra = size as f64 - raw;
            let mut scale = dst as f64 / (size as f64 - extra);
            if size >= dst as i64 && size as f64 <= dst as f64 + extra {
                scale = 1.0;
            }
            if scale < 1.0 {
                let r = 1.0 / scale;
                let k = (r + 0.5) as i64;
                if (r - k as f64).abs() < 0.05 {
                    scale = 1.0 / k as f64;
                }
            }
            (off, size, scale)
        };
        let (x0, w, sx) = axis(e.min_x, e.max_x, self.level_size.0, self.window.width);
        let (y0, h, sy) = axis(e.min_y, e.max_y, self.level_size.1, self.window.height);
        // Off the raster altogether: nothing to read.
        if e.max_x <= 0.0
            || e.max_y <= 0.0
            || e.min_x >= self.level_size.0 as f64
            || e.min_y >= self.level_size.1 as f64
        {
            return (Bounds { x0: 0, y0: 0, x1: 0, y1: 0 }, (sx, sy));
        }
        (Bounds { x0, y0, x1: x0 + w, y1: y0 + h }, (sx, sy))
    }
}

/// The source's offset in output pixels when it lies on the window's pixel lattice (same
/// CRS, same resolution, north up, whole-pixel offset).
fn aligned_offset(grid: &SourceGrid, gt: &[f64; 6], window: &GeoBox) -> Option<(i64, i64)> {
    let res = window.resolution;
    if grid.epsg != Some(window.epsg) || gt[2] != 0.0 || gt[4] != 0.0 {
        return None;
    }
    if (gt[1] - res).abs() > res * 1e-9 || (gt[5] + res).abs() > res * 1e-9 {
        return None;
    }
    let dx = (window.left - gt[0]) / res;
    let dy = (gt[3] - window.top) / res;
    let whole = |v: f64| (v - v.round()).abs() < 1e-6;
    (whole(dx) && whole(dy)).then(|| (dx.round() as i64, dy.round() as i64))
}

/// The overview level gdalwarp reads by default (`-ovr AUTO`) for an output `tile` given
/// by its extent and size: the coarsest overview whose decimation stays below the ratio of
/// the source pixels the output spans to its width (or within 0.1 of it). None: full
/// resolution. Chosen per tile, so every chunk reads the same level.
pub fn overview_level(grid: &SourceGrid, tile: &GeoBox, op: &CrsOperation) -> Result<Option<usize>> {
    if grid.overviews.is_empty() {
        return Ok(None);
    }
    let t = PixelTransform::new(tile, &grid.geo_transform, &grid.wkt, grid.epsg, op)?;
    let target = coords::span_ratio(&t, tile);
    if target.is_nan() || target <= 1.0 {
        return Ok(None);
    }
    let ratio = |i: i64| if i < 0 { 1.0 } else { grid.width as f64 / grid.overviews[i as usize].0 as f64 };
    let n = grid.overviews.len() as i64;
    let mut i = -1;
    while i < n - 1 {
        let (this, next) = (ratio(i), ratio(i + 1));
        if this < target && next > target {
            break;
        }
        if (this - target).abs() < 1e-1 {
            break;
        }
        i += 1;
    }
    Ok((i >= 0).then_some(i as usize))
}
