//! Where each output pixel falls in a source raster: destination pixel -> destination CRS
//! -> source CRS (PROJ) -> source pixel, computed once per dataset grid and chunk and
//! shared by every band on that grid. Rows are transformed with GDAL's approximate
//! transformer (exact at a few points per row, linear in between while the error at the
//! midpoint stays within the threshold), so the coordinates match what gdalwarp uses.

use crate::crs::spatial_ref;
use crate::crs_operation::CrsOperation;
use crate::error::{RasterError, Result};
use gdal::spatial_ref::{AxisMappingStrategy, CoordTransform, CoordTransformOptions, SpatialRef};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use stratus_core::GeoBox;

thread_local! {
    /// PROJ transforms are not thread-safe and cost a few milliseconds to build: each
    /// thread keeps its own, by (from, to) CRS (`EPSG:n` or WKT) and operation.
    static TRANSFORMS: RefCell<HashMap<(String, String, String), Rc<CoordTransform>>> = RefCell::new(HashMap::new());
}

fn srs(def: &str) -> std::result::Result<SpatialRef, gdal::errors::GdalError> {
    match def.strip_prefix("EPSG:").and_then(|c| c.parse::<u32>().ok()) {
        Some(epsg) => spatial_ref(epsg),
        None => {
            let mut s = SpatialRef::from_wkt(def)?;
            s.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
            Ok(s)
        }
    }
}

/// A cached PROJ transform between two CRS definitions (`EPSG:n` or WKT), with `op`'s
/// coordinate operation: chosen from `to` (as `to_code`, its `EPSG:n` when known, which
/// is how odc-stats names a dataset's CRS) to `from`, and run in reverse.
fn transform_between(from: &str, to: &str, to_code: &str, epsg: u32, op: &CrsOperation) -> Result<Rc<CoordTransform>> {
    TRANSFORMS.with(|cache| {
        let mut cache = cache.borrow_mut();
        let key = (from.to_string(), to.to_string(), op.key());
        if let Some(ct) = cache.get(&key) {
            return Ok(ct.clone());
        }
        let f = srs(from).map_err(|e| crs_err(epsg, e))?;
        let t = srs(to).map_err(|e| crs_err(epsg, e))?;
        let ct = match op.choose(to_code, from)? {
            None => CoordTransform::new(&f, &t),
            Some(operation) => CoordTransformOptions::new()
                .and_then(|mut o| o.set_coordinate_operation(&operation, true).map(|_| o))
                .and_then(|o| CoordTransform::new_with_options(&f, &t, &o)),
        };
        let ct = Rc::new(ct.map_err(|e| crs_err(epsg, e))?);
        cache.insert(key, ct.clone());
        Ok(ct)
    })
}

/// Destination pixel (x, y) -> source pixel (x, y), exactly.
pub struct PixelTransform {
    dst_gt: [f64; 6],
    src_inv_gt: [f64; 6],
    /// None when both grids share a CRS.
    ct: Option<Rc<CoordTransform>>,
}

fn crs_err(epsg: u32, why: impl ToString) -> RasterError {
    RasterError::Crs { epsg, why: why.to_string() }
}

impl PixelTransform {
    /// From `dst` (its geotransform and EPSG) to a source raster with geotransform `src_gt`
    /// in the CRS `src_wkt` (`src_epsg` when known, to skip PROJ for a shared CRS).
    pub fn new(
        dst: &GeoBox,
        src_gt: &[f64; 6],
        src_wkt: &str,
        src_epsg: Option<u32>,
        op: &CrsOperation,
    ) -> Result<PixelTransform> {
        let mut inv = [0.0; 6];
        let mut gt = *src_gt;
        // SAFETY: both arrays hold six doubles.
        if unsafe { gdal_sys::GDALInvGeoTransform(gt.as_mut_ptr(), inv.as_mut_ptr()) } == 0 {
            return Err(RasterError::Input {
                path: src_wkt.chars().take(40).collect(),
                why: "geotransform is not invertible".into(),
            });
        }
        let ct = if src_epsg == Some(dst.epsg) {
            None
        } else {
            let code = src_epsg.map_or_else(|| src_wkt.to_string(), |e| format!("EPSG:{e}"));
            Some(transform_between(&format!("EPSG:{}", dst.epsg), src_wkt, &code, dst.epsg, op)?)
        };
        Ok(PixelTransform { dst_gt: dst.geo_transform(), src_inv_gt: inv, ct })
    }

    /// Transform points in place, as GDAL's GenImgProjTransformer does (destination to
    /// source). A point PROJ cannot transform becomes NaN.
    pub fn exact(&self, xs: &mut [f64], ys: &mut [f64]) {
        let g = &self.dst_gt;
        for (x, y) in xs.iter_mut().zip(ys.iter_mut()) {
            let (px, py) = (*x, *y);
            *x = g[0] + px * g[1] + py * g[2];
            *y = g[3] + px * g[4] + py * g[5];
        }
        if let Some(ct) = &self.ct {
            if ct.transform_coords(xs, ys, &mut []).is_err() {
                // One bad point fails the batch: redo point by point.
                for (x, y) in xs.iter_mut().zip(ys.iter_mut()) {
                    let (mut xx, mut yy) = ([*x], [*y]);
                    if ct.transform_coords(&mut xx, &mut yy, &mut []).is_ok() {
                        (*x, *y) = (xx[0], yy[0]);
                    } else {
                        (*x, *y) = (f64::NAN, f64::NAN);
                    }
                }
            }
        }
        let i = &self.src_inv_gt;
        for (x, y) in xs.iter_mut().zip(ys.iter_mut()) {
            let (gx, gy) = (*x, *y);
            *x = i[0] + gx * i[1] + gy * i[2];
            *y = i[3] + gx * i[4] + gy * i[5];
        }
    }

    /// Source pixel coordinates of the points (x0 + i + off, y + off) for i in 0..n, one
    /// row, approximated within `max_error` source pixels (0: every point exact).
    pub fn row(&self, x0: f64, y: f64, n: usize, max_error: f64, xs: &mut [f64], ys: &mut [f64]) {
        for (i, (x, yy)) in xs[..n].iter_mut().zip(ys[..n].iter_mut()).enumerate() {
            *x = x0 + i as f64;
            *yy = y;
        }
        approx_row(self, max_error, &mut xs[..n], &mut ys[..n]);
    }
}

/// GDAL's `GDALApproxTransform` for one row of points sharing y.
fn approx_row(t: &PixelTransform, max_error: f64, xs: &mut [f64], ys: &mut [f64]) {
    let n = xs.len();
    if max_error <= 0.0 || n <= 5 {
        t.exact(xs, ys);
        return;
    }
    let mid = (n - 1) / 2;
    let (mut sx, mut sy) = ([xs[0], xs[mid], xs[n - 1]], [ys[0], ys[mid], ys[n - 1]]);
    t.exact(&mut sx, &mut sy);
    if sx.iter().chain(&sy).any(|v| v.is_nan()) {
        t.exact(xs, ys);
        return;
    }
    approx_internal(t, max_error, xs, ys, sx, sy);
}

/// `GDALApproxTransformInternal`: `sx`/`sy` hold the exact results at the first, middle
/// and last points. Interpolates linearly when the error at the middle is within
/// `max_error`; otherwise splits into `[0, mid)` and `[mid, n)`, each with exact ends and
/// middle, transforming a half of 5 points or fewer exactly.
fn approx_internal(t: &PixelTransform, max_error: f64, xs: &mut [f64], ys: &mut [f64], sx: [f64; 3], sy: [f64; 3]) {
    let n = xs.len();
    let mid = (n - 1) / 2;
    let span = xs[n - 1] - xs[0];
    let dx = (sx[2] - sx[0]) / span;
    let dy = (sy[2] - sy[0]) / span;
    let err = ((sx[0] + dx * (xs[mid] - xs[0])) - sx[1]).abs() + ((sy[0] + dy * (xs[mid] - xs[0])) - sy[1]).abs();
    if err > max_error {
        // Half 1: [0, mid) with ends (0, mid - 1); half 2: [mid, n) with ends (mid, n - 1).
        let (m1, m2) = ((mid - 1) / 2, mid + (n - mid - 1) / 2);
        let exact1 = mid <= 5;
        let exact2 = n - mid <= 5;
        let (mut px, mut py) = ([xs[m1], xs[mid - 1], xs[m2]], [ys[m1], ys[mid - 1], ys[m2]]);
        t.exact(&mut px, &mut py);
        if (!exact1 && (px[0].is_nan() || px[1].is_nan())) || (!exact2 && px[2].is_nan()) {
            t.exact(xs, ys);
            return;
        }
        let (h1x, h2x) = xs.split_at_mut(mid);
        let (h1y, h2y) = ys.split_at_mut(mid);
        if exact1 {
            t.exact(h1x, h1y);
        } else {
            approx_internal(t, max_error, h1x, h1y, [sx[0], px[0], px[1]], [sy[0], py[0], py[1]]);
        }
        if exact2 {
            t.exact(h2x, h2y);
        } else {
            approx_internal(t, max_error, h2x, h2y, [sx[1], px[2], sx[2]], [sy[1], py[2], sy[2]]);
        }
        return;
    }
    let x0 = xs[0];
    for i in (0..n).rev() {
        let dist = xs[i] - x0;
        ys[i] = sy[0] + dy * dist;
        xs[i] = sx[0] + dx * dist;
    }
}

/// Source pixel coordinates of the points (c + offset, r + offset) of output pixels
/// (c, r), c < `width`, r in `rows`, row by row as GDAL's kernel transforms them (offset
/// 0.5: centres; 0 and 1: top-left and bottom-right corners, each row approximated on its
/// own).
pub fn map(
    t: &PixelTransform,
    width: usize,
    rows: std::ops::Range<usize>,
    offset: f64,
    max_error: f64,
) -> (Vec<f64>, Vec<f64>) {
    let n = rows.len() * width;
    let mut xs = vec![0.0; n];
    let mut ys = vec![0.0; n];
    for (i, r) in rows.enumerate() {
        let (rx, ry) = (&mut xs[i * width..(i + 1) * width], &mut ys[i * width..(i + 1) * width]);
        t.row(offset, r as f64 + offset, width, max_error, rx, ry);
    }
    (xs, ys)
}

/// gdalwarp's overview target for an output of known extent and size: the source pixels
/// spanned in x by a 10 x 10 grid of output points (corners included), per output pixel.
pub fn span_ratio(t: &PixelTransform, dst: &GeoBox) -> f64 {
    let (mut xs, mut ys) = (Vec::with_capacity(100), Vec::with_capacity(100));
    for iy in 0..10 {
        for ix in 0..10 {
            xs.push((dst.width * ix) as f64 / 9.0);
            ys.push((dst.height * iy) as f64 / 9.0);
        }
    }
    t.exact(&mut xs, &mut ys);
    let (lo, hi) = xs.iter().filter(|v| v.is_finite()).fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    if lo > hi {
        return f64::NAN;
    }
    (hi - lo) / dst.width as f64
}
