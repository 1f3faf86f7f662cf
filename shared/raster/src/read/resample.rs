//! Resampling a decoded source window onto output pixels whose source coordinates are
//! known, with the semantics of GDAL 3.6's warp kernel on a band with nodata (its
//! `GWKRealCase` / `GWKAverageOrMode` paths), so results match `gdalwarp`:
//! a pixel whose centre falls outside the source window, or on a nodata source pixel,
//! stays nodata; kernels skip nodata neighbours and renormalise their weights; computed
//! integers are rounded half up, clamped, and nudged off the output nodata value.

use crate::resampling::Resampling;
use stratus_core::SampleType;

mod batched;

/// A decoded window of a source band, in the pixel coordinates of the level it was read
/// from. `bounds` is GDAL's source window for the resampling method (what its kernel may
/// touch); the decoded data may extend past it.
pub struct Window<'a> {
    pub x0: usize,
    pub y0: usize,
    pub w: usize,
    pub data: &'a [u16],
    /// The band's own nodata value, as a value of the decoded data ([`source_nodata`]).
    pub nodata: Option<u16>,
    pub bounds: Bounds,
}

/// The source nodata as GDAL masks an integer band, as a code of `dtype`: an integer
/// within the type's range (rounded down from within 1e-6), otherwise no mask at all.
pub fn source_nodata(nd: Option<f64>, dtype: SampleType) -> Option<u16> {
    let nd = nd?;
    let v = (nd + 1e-6).floor();
    (nd.is_finite() && (nd - v).abs() <= 1e-6).then(|| dtype.code(v)).flatten()
}

/// `floor` without a libm call (the default x86-64 target has no rounding instruction):
/// exact for the finite values a source coordinate takes.
#[inline(always)]
fn floor_i64(x: f64) -> i64 {
    let t = x as i64;
    if (t as f64) > x {
        t - 1
    } else {
        t
    }
}

/// A source window: pixels [x0, x1) x [y0, y1) of a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub x0: i64,
    pub y0: i64,
    pub x1: i64,
    pub y1: i64,
}

impl Bounds {
    pub fn is_empty(&self) -> bool {
        self.x1 <= self.x0 || self.y1 <= self.y0
    }
    pub fn union(&self, o: &Bounds) -> Bounds {
        Bounds { x0: self.x0.min(o.x0), y0: self.y0.min(o.y0), x1: self.x1.max(o.x1), y1: self.y1.max(o.y1) }
    }
    fn width(&self) -> i64 {
        self.x1 - self.x0
    }
    fn height(&self) -> i64 {
        self.y1 - self.y0
    }
}

impl<'a> Window<'a> {
    /// A band's `data`, decoded over `decoded` (level pixels), read within `bounds`.
    pub fn new(decoded: &Bounds, data: &'a [u16], nodata: Option<u16>, bounds: Bounds) -> Window<'a> {
        let (x0, y0, w) = (decoded.x0 as usize, decoded.y0 as usize, decoded.width() as usize);
        Window { x0, y0, w, data, nodata, bounds }
    }

    /// The value at level pixel (x, y), if inside the bounds and not nodata.
    #[inline(always)]
    fn get(&self, x: i64, y: i64) -> Option<f64> {
        let b = &self.bounds;
        if x < b.x0 || y < b.y0 || x >= b.x1 || y >= b.y1 {
            return None;
        }
        let v = self.data[self.index(x, y)];
        self.valid(v).then_some(v as f64)
    }

    #[inline(always)]
    fn valid(&self, v: u16) -> bool {
        self.nodata != Some(v)
    }

    /// Offset of level pixel (x, y) in `data` (inside the decoded window).
    #[inline(always)]
    fn index(&self, x: i64, y: i64) -> usize {
        (y - self.y0 as i64) as usize * self.w + (x - self.x0 as i64) as usize
    }
}

/// A computed value written as GDAL writes a UInt16 band: rounded half up, clamped, and
/// never equal to the output nodata.
#[inline]
pub fn to_u16(v: f64, dst_nodata: u16) -> u16 {
    let o = if v < 0.0 {
        0
    } else if v > 65535.0 {
        65535
    } else {
        (v + 0.5) as u16
    };
    off_nodata(o, dst_nodata)
}

/// Rounded half up, for a weighted mean of 16-bit values (within the type, give or take
/// rounding): what [`to_u16`] computes there, without its range checks.
#[inline(always)]
fn round_in_range(v: f64) -> u16 {
    (v + 0.5) as i32 as u16
}

/// A computed value equal to the output nodata steps off it, as GDAL does.
#[inline(always)]
fn off_nodata(o: u16, dst_nodata: u16) -> u16 {
    if o == dst_nodata {
        if o == 0 {
            1
        } else {
            o - 1
        }
    } else {
        o
    }
}

/// The resampling kernel's radius (GDAL's source window padding) at scale 1.
pub fn kernel_radius(r: Resampling) -> i64 {
    match r {
        Resampling::Nearest | Resampling::Average | Resampling::Mode => 0,
        Resampling::Bilinear => 1,
        Resampling::Cubic => 2,
    }
}

/// Output-over-source scale below which GDAL stretches the kernel (anti-aliasing) instead
/// of using its 4-sample formulas.
const FOUR_SAMPLE_MIN_SCALE: f64 = 0.95;

/// Where the output pixel centres fall: `xs`/`ys` (level pixel coordinates, NaN where the
/// transform failed), and `exact(i)` to recompute point `i` without approximation (GDAL
/// retries a point that lands within one pixel outside the window).
pub struct Points<'a> {
    pub xs: &'a [f64],
    pub ys: &'a [f64],
    pub exact: &'a dyn Fn(usize) -> (f64, f64),
}

/// One band of those resampled together: its decoded window and its output (pre-filled
/// with `dst_nodata`, left untouched where nothing is valid).
pub struct PointBand<'a> {
    pub src: Window<'a>,
    pub out: &'a mut [u16],
    pub dst_nodata: u16,
}

/// Resample bands at the output pixel centres. The bands share their window (same
/// decoded area and bounds: one dataset's bands on one source grid, one method), so each
/// pixel's position and kernel weights are computed once and applied to every band; each
/// band's own arithmetic is GDAL's, so results are the same as resampling it alone.
/// `scale`: GDAL's per-chunk dfXScale/dfYScale.
pub fn resample_points(method: Resampling, bands: &mut [PointBand], points: &Points, scale: (f64, f64)) {
    let Some(first) = bands.first() else { return };
    let (b, x0, y0, w) = (first.src.bounds, first.src.x0, first.src.y0, first.src.w);
    debug_assert!(bands.iter().all(|p| p.src.bounds == b && (p.src.x0, p.src.y0, p.src.w) == (x0, y0, w)));
    let four = scale.0 >= FOUR_SAMPLE_MIN_SCALE && scale.1 >= FOUR_SAMPLE_MIN_SCALE;
    let narrow = b.width() == 1 || b.height() == 1;
    if method == Resampling::Nearest || (method == Resampling::Bilinear && four && !narrow) {
        let simd = batched::simd_available();
        return batched::batched_points(method == Resampling::Bilinear, bands, points, &b, simd);
    }
    let kernel = Kernel::new(method, scale);
    let mut taps = Taps::default();
    // Offset of level pixel (x, y) in every band's data (`Window::index`, shared).
    let offset = |x: i64, y: i64| (y - y0 as i64) as usize * w + (x - x0 as i64) as usize;
    for i in 0..points.xs.len() {
        let Some((sx, sy)) = centre_in_window(points, i, &b) else { continue };
        let ix = ((sx + 1e-10) as i64).min(b.x1 - 1);
        let iy = ((sy + 1e-10) as i64).min(b.y1 - 1);
        let centre = offset(ix, iy);
        // The pixel the point falls in must be valid, whatever the kernel.
        let valid = |p: &PointBand| p.src.valid(p.src.data[centre]);
        let weights = if narrow {
            Weights::Centre
        } else {
            match method {
                Resampling::Bilinear if four => Weights::Bilinear4(Bilinear4::new(&b, sx, sy)),
                Resampling::Cubic if four => match cubic4_weights(&b, sx, sy) {
                    Some(c) => Weights::Cubic4(c, Bilinear4::new(&b, sx, sy)),
                    None => Weights::Bilinear4(Bilinear4::new(&b, sx, sy)),
                },
                _ => {
                    kernel.taps(&b, sx, sy, &mut taps);
                    Weights::Kernel
                }
            }
        };
        for p in bands.iter_mut().filter(|p| valid(p)) {
            let v = match &weights {
                Weights::Centre => Some(p.src.data[centre] as f64),
                Weights::Bilinear4(bl) => bl.apply(&p.src),
                Weights::Cubic4(c, bl) => c.apply(&p.src).or_else(|| bl.apply(&p.src)),
                Weights::Kernel => taps.apply(&p.src),
            };
            if let Some(v) = v {
                p.out[i] = to_u16(v, p.dst_nodata);
            }
        }
    }
}

/// GDAL's bilinear gives nothing when the valid weights sum below this.
const WEIGHT_MIN: f64 = 1e-5;

/// How a pixel's value is computed from its neighbours, shared by the bands.
enum Weights {
    /// A one-pixel-wide window: the centre itself.
    Centre,
    Bilinear4(Bilinear4),
    /// Catmull-Rom, or bilinear where one of its 16 pixels is not valid.
    Cubic4(Cubic4, Bilinear4),
    /// The stretched kernel, its taps in [`Taps`].
    Kernel,
}

/// GDAL's `GWKCheckAndComputeSrcOffsets`: the point's coordinates when it falls inside the
/// window, retrying once with the exact transform when it lands within a pixel outside.
#[inline]
fn centre_in_window(points: &Points, i: usize, b: &Bounds) -> Option<(f64, f64)> {
    let (x, y) = (points.xs[i], points.ys[i]);
    let (x0, y0, x1, y1) = (b.x0 as f64, b.y0 as f64, b.x1 as f64, b.y1 as f64);
    // Nearly every point: inside (NaN fails these and takes the slow path).
    if x >= x0 && y >= y0 && x + 1e-10 <= x1 && y + 1e-10 <= y1 {
        return Some((x, y));
    }
    // GDAL retries only when every bound the point misses, it misses by less than a pixel.
    let near = (x >= x0 || x > x0 - 1.0)
        && (y >= y0 || y > y0 - 1.0)
        && (x + 1e-10 <= x1 || x < x1 + 1.0)
        && (y + 1e-10 <= y1 || y < y1 + 1.0);
    if x.is_nan() || y.is_nan() || !near {
        return None;
    }
    let (x, y) = (points.exact)(i);
    (x >= x0 && y >= y0 && x + 1e-10 <= x1 && y + 1e-10 <= y1).then_some((x, y))
}

/// `GWKBilinearResample4Sample`'s taps: the four pixels around the point (the top-left
/// one at `x`, `y`, level pixels) and their weights, in GDAL's order; on the window's first
/// row/column the point is clamped onto it. A band renormalises the weights of its valid
/// pixels.
struct Bilinear4 {
    x: i64,
    y: i64,
    w: [f64; 4],
    /// The weights summed in GDAL's order: the divisor when all four are valid.
    sum: f64,
}

impl Bilinear4 {
    #[inline(always)]
    fn new(b: &Bounds, sx: f64, sy: f64) -> Bilinear4 {
        // Window-relative, as GDAL computes it.
        let (wx, wy) = (sx - b.x0 as f64, sy - b.y0 as f64);
        let mut ix = floor_i64(wx - 0.5);
        let mut iy = floor_i64(wy - 0.5);
        let mut rx = 1.5 - (wx - ix as f64);
        let mut ry = 1.5 - (wy - iy as f64);
        if ix == -1 {
            ix = 0;
            rx = 1.0;
        }
        if iy == -1 {
            iy = 0;
            ry = 1.0;
        }
        let w = [rx * ry, (1.0 - rx) * ry, rx * (1.0 - ry), (1.0 - rx) * (1.0 - ry)];
        Bilinear4 { x: ix + b.x0, y: iy + b.y0, w, sum: w[0] + w[1] + w[2] + w[3] }
    }

    /// The four taps lie inside the window (the top-left one always does).
    #[inline(always)]
    fn interior(&self, b: &Bounds) -> bool {
        self.x + 1 < b.x1 && self.y + 1 < b.y1
    }

    /// The value when the four taps, the top-left at `at` in the decoded data, are all
    /// valid: GDAL's sums without the branches (starting from zero adds nothing to the
    /// first product). None otherwise.
    #[inline(always)]
    fn all_valid(&self, src: &Window, at: usize) -> Option<f64> {
        let (top, bottom) = (&src.data[at..at + 2], &src.data[at + src.w..at + src.w + 2]);
        let v = [top[0], top[1], bottom[0], bottom[1]];
        if !v.iter().all(|&v| src.valid(v)) {
            return None;
        }
        let w = &self.w;
        let acc = v[0] as f64 * w[0] + v[1] as f64 * w[1] + v[2] as f64 * w[2] + v[3] as f64 * w[3];
        weighted(acc, self.sum)
    }

    /// GDAL's sums over the valid taps inside the window.
    #[inline(always)]
    fn apply(&self, src: &Window) -> Option<f64> {
        let mut acc = 0.0;
        let mut div = 0.0;
        for (k, w) in self.w.iter().enumerate() {
            if let Some(v) = src.get(self.x + (k & 1) as i64, self.y + (k >> 1) as i64) {
                div += w;
                acc += v * w;
            }
        }
        weighted(acc, div)
    }
}

/// GDAL's bilinear result from its sums: nothing when the valid weights are negligible,
/// renormalised unless they sum to exactly one.
#[inline(always)]
fn weighted(acc: f64, div: f64) -> Option<f64> {
    if div < WEIGHT_MIN {
        None
    } else if div == 1.0 {
        Some(acc)
    } else {
        Some(acc / div)
    }
}

/// `GWKCubicComputeWeights`: Catmull-Rom weights of the four taps around a point.
#[inline]
fn cubic_weights(d: f64) -> [f64; 4] {
    let h = 0.5 * d;
    [h * (-1.0 + d * (2.0 - d)), 1.0 + h * d * (-5.0 + 3.0 * d), h * (1.0 + d * (4.0 - 3.0 * d)), h * d * (-1.0 + d)]
}

/// `GWKCubicResample4Sample`'s taps: 4 x 4 pixels from (`x`, `y`) with Catmull-Rom
/// weights.
struct Cubic4 {
    x: i64,
    y: i64,
    cx: [f64; 4],
    cy: [f64; 4],
}

/// None near the window's edge, where GDAL falls back to bilinear.
#[inline]
fn cubic4_weights(b: &Bounds, sx: f64, sy: f64) -> Option<Cubic4> {
    let (wx, wy) = (sx - b.x0 as f64, sy - b.y0 as f64);
    // Truncation, as GDAL does here.
    let ix = (wx - 0.5) as i64;
    let iy = (wy - 0.5) as i64;
    if ix - 1 < 0 || ix + 2 >= b.width() || iy - 1 < 0 || iy + 2 >= b.height() {
        return None;
    }
    Some(Cubic4 {
        x: b.x0 + ix - 1,
        y: b.y0 + iy - 1,
        cx: cubic_weights(wx - 0.5 - ix as f64),
        cy: cubic_weights(wy - 0.5 - iy as f64),
    })
}

impl Cubic4 {
    /// None when one of the 16 pixels is not valid (GDAL then uses bilinear).
    #[inline]
    fn apply(&self, src: &Window) -> Option<f64> {
        let mut rows = [0.0; 4];
        for (r, row) in rows.iter_mut().enumerate() {
            let at = src.index(self.x, self.y + r as i64);
            let mut v = [0.0; 4];
            for (val, &p) in v.iter_mut().zip(&src.data[at..at + 4]) {
                if !src.valid(p) {
                    return None;
                }
                *val = p as f64;
            }
            let cx = &self.cx;
            *row = cx[0] * v[0] + cx[1] * v[1] + cx[2] * v[2] + cx[3] * v[3];
        }
        let cy = &self.cy;
        Some(cy[0] * rows[0] + cy[1] * rows[1] + cy[2] * rows[2] + cy[3] * rows[3])
    }
}

/// A separable kernel (bilinear's triangle, cubic's Keys a = -0.5), stretched by 1/scale
/// when the output is coarser than the source (GDAL's `GWKResample`).
struct Kernel {
    weight: fn(f64) -> f64,
    scale: (f64, f64),
    /// Taps run from `init` to `radius` inclusive.
    init: (i64, i64),
    radius: (i64, i64),
}

fn triangle(x: f64) -> f64 {
    let a = x.abs();
    if a <= 1.0 {
        1.0 - a
    } else {
        0.0
    }
}

fn cubic(x: f64) -> f64 {
    let a = x.abs();
    if a <= 1.0 {
        x * x * (1.5 * a - 2.5) + 1.0
    } else if a <= 2.0 {
        x * x * (-0.5 * a + 2.5) - 4.0 * a + 2.0
    } else {
        0.0
    }
}

/// A point's taps under the stretched kernel: columns from `x` and rows from `y` (level
/// pixels, all inside the window), with one weight per column and per row. Reused from
/// point to point, so computing them allocates nothing.
#[derive(Default)]
struct Taps {
    x: i64,
    y: i64,
    wx: Vec<f64>,
    wy: Vec<f64>,
}

impl Kernel {
    fn new(method: Resampling, scale: (f64, f64)) -> Kernel {
        let (weight, r): (fn(f64) -> f64, i64) = match method {
            Resampling::Cubic => (cubic, 2),
            _ => (triangle, 1),
        };
        let radius = |s: f64| if s < 1.0 { (r as f64 / s).ceil() as i64 } else { r };
        let (rx, ry) = (radius(scale.0), radius(scale.1));
        let init = |rad: i64| ((r + 1) % 2) - rad;
        Kernel { weight, scale, init: (init(rx), init(ry)), radius: (rx, ry) }
    }

    #[inline]
    fn taps(&self, b: &Bounds, sx: f64, sy: f64, t: &mut Taps) {
        let (wx, wy) = (sx - b.x0 as f64, sy - b.y0 as f64);
        let ix = floor_i64(wx - 0.5);
        let iy = floor_i64(wy - 0.5);
        let fx = wx - 0.5 - ix as f64;
        let fy = wy - 0.5 - iy as f64;
        let j0 = self.init.1.max(-iy);
        let j1 = self.radius.1.min(b.height() - iy - 1);
        let i0 = self.init.0.max(-ix);
        let i1 = self.radius.0.min(b.width() - ix - 1);
        let w = |d: f64, s: f64| if s < 1.0 { (self.weight)(d * s) } else { (self.weight)(d) };
        t.wx.clear();
        t.wx.extend((i0..=i1).map(|i| w(i as f64 - fx, self.scale.0)));
        t.wy.clear();
        t.wy.extend((j0..=j1).map(|j| w(j as f64 - fy, self.scale.1)));
        // Taps of weight zero at either end add exactly nothing to any sum (values are
        // finite): dropping them keeps GDAL's results and, for a stretched kernel, skips
        // about half of them.
        let (skip_x, skip_y) = (trim_zeros(&mut t.wx), trim_zeros(&mut t.wy));
        (t.x, t.y) = (b.x0 + ix + i0 + skip_x, b.y0 + iy + j0 + skip_y);
    }
}

/// Drop the zero weights at both ends of `w`; how many were dropped from the front.
#[inline]
fn trim_zeros(w: &mut Vec<f64>) -> i64 {
    let end = w.iter().rposition(|&v| v != 0.0).map_or(0, |i| i + 1);
    w.truncate(end);
    let start = w.iter().position(|&v| v != 0.0).unwrap_or(0);
    w.drain(..start);
    start as i64
}

impl Taps {
    /// GDAL's sums for one band: per row, the weighted valid values and their weights,
    /// then the rows weighted; renormalised unless the weights sum to 1.
    #[inline]
    fn apply(&self, src: &Window) -> Option<f64> {
        let n = self.wx.len();
        let mut acc = 0.0;
        let mut wsum = 0.0;
        for (j, &wy) in self.wy.iter().enumerate() {
            let at = src.index(self.x, self.y + j as i64);
            let (mut racc, mut rw) = (0.0, 0.0);
            for (&v, &wx) in src.data[at..at + n].iter().zip(&self.wx) {
                if src.valid(v) {
                    racc += v as f64 * wx;
                    rw += wx;
                }
            }
            acc += racc * wy;
            wsum += rw * wy;
        }
        if wsum < 1e-6 {
            None
        } else if (wsum - 1.0).abs() <= 1e-5 {
            Some(acc)
        } else {
            Some(acc / wsum)
        }
    }
}

/// Average or mode over each output pixel's footprint (GDAL's `GWKAverageOrMode`): the
/// source rectangle between the pixel's top-left corner `tl` and bottom-right corner `br`
/// (level pixel coordinates); average weighs partly covered edge pixels; mode counts
/// whole pixels, a tie going to the value that reached the winning count first.
pub fn resample_footprints(
    method: Resampling,
    src: &Window,
    tl: (&[f64], &[f64]),
    br: (&[f64], &[f64]),
    scale: (f64, f64),
    out: &mut [u16],
    dst_nodata: u16,
) {
    let b = src.bounds;
    let margin = |s: f64| 2.0 * (1.0f64).max((1.0 / s).ceil());
    let (mx, my) = (margin(scale.0), margin(scale.1));
    let (bw, bh) = (b.width(), b.height());
    let mut counts: Vec<(u16, u32)> = Vec::new();
    for (i, o) in out.iter_mut().enumerate() {
        let (mut x1, mut y1, mut x2, mut y2) = (tl.0[i], tl.1[i], br.0[i], br.1[i]);
        if [x1, y1, x2, y2].iter().any(|v| v.is_nan()) {
            continue;
        }
        let (ox, oy) = (b.x0 as f64, b.y0 as f64);
        let outside = |v: f64, o: f64, n: i64, m: f64| v < o - m || v > o + n as f64 + m;
        if outside(x1, ox, bw, mx) || outside(x2, ox, bw, mx) || outside(y1, oy, bh, my) || outside(y2, oy, bh, my) {
            continue;
        }
        if x1 > x2 {
            std::mem::swap(&mut x1, &mut x2);
        }
        if y1 > y2 {
            std::mem::swap(&mut y1, &mut y2);
        }
        let (xmin, xmax, ymin, ymax) = (x1 - ox, x2 - ox, y1 - oy, y2 - oy);
        let span = |lo: f64, hi: f64, n: i64| {
            let a = ((lo + 1e-10).floor().max(0.0) as i64).min(n);
            let mut z = ((hi - 1e-10).ceil().min(i32::MAX as f64) as i64).min(n);
            if a == z && z < n {
                z += 1;
            }
            (a, z)
        };
        let (xa, xz) = span(xmin, xmax, bw);
        let (ya, yz) = span(ymin, ymax, bh);
        let v = match method {
            Resampling::Mode => {
                counts.clear();
                let mut best: Option<(u16, u32)> = None;
                for y in ya..yz {
                    for x in xa..xz {
                        let Some(v) = src.get(b.x0 + x, b.y0 + y) else { continue };
                        let v = v as u16;
                        let n = match counts.iter_mut().find(|(k, _)| *k == v) {
                            Some((_, n)) => {
                                *n += 1;
                                *n
                            }
                            None => {
                                counts.push((v, 1));
                                1
                            }
                        };
                        if best.is_none_or(|(_, m)| n > m) {
                            best = Some((v, n));
                        }
                    }
                }
                best.map(|(v, _)| v as f64)
            }
            _ => {
                let (mut acc, mut wsum) = (0.0, 0.0);
                for y in ya..yz {
                    let wy = edge_weight(y, ya, yz, ymin, ymax);
                    for x in xa..xz {
                        let Some(v) = src.get(b.x0 + x, b.y0 + y) else { continue };
                        // As GDAL: the row's weight, times the column's share when partial.
                        let w = if x == xa || x + 1 == xz { wy * edge_weight(x, xa, xz, xmin, xmax) } else { wy };
                        acc += v * w;
                        wsum += w;
                    }
                }
                (wsum > 0.0).then(|| acc / wsum)
            }
        };
        if let Some(v) = v {
            *o = to_u16(v, dst_nodata);
        }
    }
}

/// The covered share of source pixel `i` of a footprint spanning pixels `a..z`, from `lo`
/// to `hi` (GDAL's `COMPUTE_WEIGHT`): partly covered first and last pixels, whole ones 1.
#[inline]
fn edge_weight(i: i64, a: i64, z: i64, lo: f64, hi: f64) -> f64 {
    if i == a {
        if a + 1 == z {
            1.0
        } else {
            1.0 - (lo - a as f64)
        }
    } else if i + 1 == z {
        1.0 - (z as f64 - hi)
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(data: &[u16], w: usize, h: usize, nodata: Option<u16>) -> Window<'_> {
        Window { x0: 0, y0: 0, w, data, nodata, bounds: Bounds { x0: 0, y0: 0, x1: w as i64, y1: h as i64 } }
    }

    #[test]
    fn bilinear_interpolates_and_skips_nodata_neighbours() {
        let data = [10, 20, 30, 40];
        let src = window(&data, 2, 2, Some(0));
        // Halfway between the four centres.
        assert_eq!(Bilinear4::new(&src.bounds, 1.0, 1.0).apply(&src), Some(25.0));
        let data = [10, 0, 30, 40];
        let src = window(&data, 2, 2, Some(0));
        // The nodata neighbour is dropped and the other weights renormalised.
        let v = Bilinear4::new(&src.bounds, 1.0, 1.0).apply(&src).unwrap();
        assert!((v - (10.0 + 30.0 + 40.0) / 3.0).abs() < 1e-9, "{v}");
    }

    #[test]
    fn centre_on_nodata_stays_nodata() {
        let data = [0, 20, 30, 40];
        let src = window(&data, 2, 2, Some(0));
        let (xs, ys) = ([0.6, 1.6], [0.6, 0.6]);
        let exact = |i: usize| (xs[i], ys[i]);
        let mut out = [7u16; 2];
        resample_points(
            Resampling::Bilinear,
            &mut [PointBand { src, out: &mut out, dst_nodata: 7 }],
            &Points { xs: &xs, ys: &ys, exact: &exact },
            (1.0, 1.0),
        );
        assert_eq!(out[0], 7, "centre pixel is nodata");
        assert_ne!(out[1], 7);
    }

    #[test]
    fn computed_values_avoid_the_output_nodata() {
        assert_eq!(to_u16(0.2, 0), 1);
        assert_eq!(to_u16(99.6, 100), 99);
        assert_eq!(to_u16(70000.0, 1), 65535);
        assert_eq!(to_u16(-3.0, 9), 0);
    }

    #[test]
    fn mode_tie_goes_to_the_first_to_reach_the_count() {
        // Footprint covers the whole 2 x 2 window: 5, 6, 6, 5 -> 6 reaches 2 first.
        let data = [5, 6, 6, 5];
        let src = window(&data, 2, 2, None);
        let mut out = [0u16; 1];
        resample_footprints(Resampling::Mode, &src, (&[0.0], &[0.0]), (&[2.0], &[2.0]), (0.5, 0.5), &mut out, 0);
        assert_eq!(out[0], 6);
        resample_footprints(Resampling::Average, &src, (&[0.0], &[0.0]), (&[2.0], &[2.0]), (0.5, 0.5), &mut out, 0);
        assert_eq!(out[0], 6, "5.5 rounds half up");
    }
}
