//! Nearest and four-sample bilinear resampling by batches of points, vectorised with
//! AVX2 where the CPU has it: the read path's hot loop (a Sentinel-2 or Landsat band read
//! onto a grid of nearly its resolution). Same values as resampling one pixel at a time.

use super::{centre_in_window, off_nodata, round_in_range, to_u16, Bilinear4, Bounds, PointBand, Points};

/// Points placed per batch by [`batched_points`]: their taps and weights, shared by
/// the bands (structure of arrays, so runs of four load as vectors).
const BATCH: usize = 1024;

/// Nearest, and the four-sample bilinear case (nearly every reflectance read: output and
/// source resolutions within 5%), by batches of points: each point's position (and
/// bilinear taps and weights) placed once, four points to a vector where the CPU allows,
/// then each band runs over the batch alone, bilinear four pixels at a time where their
/// taps are consecutive (a row of output pixels walks a row of source pixels) and all
/// valid. The same arithmetic per pixel as one at a time, so the same values.
/// `simd`: the CPU has AVX2 ([`simd_available`]).
pub(super) fn batched_points(bilinear: bool, bands: &mut [PointBand], points: &Points, b: &Bounds, simd: bool) {
    let Some(first) = bands.first() else { return };
    let origin = Origin { x0: first.src.x0 as i64, y0: first.src.y0 as i64, w: first.src.w };
    // The vector placement computes offsets in i32.
    let simd = simd && first.src.data.len() < i32::MAX as usize;
    let mut batch = Batch::default();
    let mut start = 0;
    while start < points.xs.len() {
        let end = (start + BATCH).min(points.xs.len());
        batch.place(points, start..end, b, &origin, bilinear, simd);
        for p in bands.iter_mut() {
            if !bilinear {
                for k in 0..batch.n {
                    if k % 16 == 0 {
                        simd::prefetch(p.src.data, batch.centre[k] + simd::PREFETCH_ROWS * origin.w);
                    }
                    let v = p.src.data[batch.centre[k]];
                    if p.src.valid(v) {
                        // Written as read: no rounding or nodata nudge.
                        p.out[batch.index[k]] = v;
                    }
                }
            } else if simd {
                simd::band(p, &batch);
            } else {
                batch.band(p, |_, _| false);
            }
        }
        start = end;
    }
}

/// The CPU has AVX2: the vector paths run.
pub(super) fn simd_available() -> bool {
    simd::available()
}

/// Where the decoded data starts (level pixels) and its row length.
struct Origin {
    x0: i64,
    y0: i64,
    w: usize,
}

impl Origin {
    #[inline(always)]
    fn offset(&self, x: i64, y: i64) -> usize {
        (y - self.y0) as usize * self.w + (x - self.x0) as usize
    }
}

/// A batch of placed points (see [`batched_points`]); the first `n` entries are set.
struct Batch {
    n: usize,
    /// The point's index (its output pixel in the strip).
    index: Box<[usize; BATCH]>,
    /// Offsets in the decoded data of the pixel the point falls in and of its top-left tap.
    centre: Box<[usize; BATCH]>,
    at: Box<[usize; BATCH]>,
    /// The top-left tap in level pixels.
    x: Box<[i64; BATCH]>,
    y: Box<[i64; BATCH]>,
    /// All four taps inside the window.
    interior: Box<[bool; BATCH]>,
    /// The weights (GDAL's order) and their sum.
    w: Box<[[f64; BATCH]; 4]>,
    sum: Box<[f64; BATCH]>,
    /// Points k..k+4 are consecutive output pixels whose taps are consecutive source
    /// pixels, all inside the window, weights summing to more than GDAL's minimum
    /// (marked where four are placed together; false elsewhere).
    run4: Box<[bool; BATCH]>,
}

impl Default for Batch {
    fn default() -> Batch {
        Batch {
            n: 0,
            index: Box::new([0; BATCH]),
            centre: Box::new([0; BATCH]),
            at: Box::new([0; BATCH]),
            x: Box::new([0; BATCH]),
            y: Box::new([0; BATCH]),
            interior: Box::new([false; BATCH]),
            w: Box::new([[0.0; BATCH]; 4]),
            sum: Box::new([0.0; BATCH]),
            run4: Box::new([false; BATCH]),
        }
    }
}

impl Batch {
    /// Place the points of `range` that fall in the window (bilinear: with their taps
    /// and weights, and the runs marked).
    fn place(
        &mut self,
        points: &Points,
        range: std::ops::Range<usize>,
        b: &Bounds,
        o: &Origin,
        bilinear: bool,
        simd: bool,
    ) {
        self.n = 0;
        let mut i = range.start;
        while i < range.end {
            if simd && i + 4 <= range.end && simd::place4(self, points, i, b, o, bilinear) {
                i += 4;
                continue;
            }
            if let Some((sx, sy)) = centre_in_window(points, i, b) {
                let ix = ((sx + 1e-10) as i64).min(b.x1 - 1);
                let iy = ((sy + 1e-10) as i64).min(b.y1 - 1);
                let k = self.n;
                self.index[k] = i;
                self.centre[k] = o.offset(ix, iy);
                self.run4[k] = false;
                if bilinear {
                    let bl = Bilinear4::new(b, sx, sy);
                    self.at[k] = o.offset(bl.x, bl.y);
                    self.x[k] = bl.x;
                    self.y[k] = bl.y;
                    self.interior[k] = bl.interior(b);
                    for (w, &v) in self.w.iter_mut().zip(&bl.w) {
                        w[k] = v;
                    }
                    self.sum[k] = bl.sum;
                }
                self.n = k + 1;
            }
            i += 1;
        }
    }

    /// Band `p` over the batch: `run4(p, k)` computes the run at k when it can (all taps
    /// valid), the other points are taken one at a time.
    #[inline(always)]
    fn band(&self, p: &mut PointBand, mut run4: impl FnMut(&mut PointBand, usize) -> bool) {
        let mut k = 0;
        while k < self.n {
            if self.run4[k] {
                if !run4(p, k) {
                    (k..k + 4).for_each(|k| self.one(p, k));
                }
                k += 4;
            } else {
                self.one(p, k);
                k += 1;
            }
        }
    }

    /// Point k of band `p`, one pixel at a time (GDAL's branches).
    #[inline(always)]
    fn one(&self, p: &mut PointBand, k: usize) {
        let bl = Bilinear4 {
            x: self.x[k],
            y: self.y[k],
            w: [self.w[0][k], self.w[1][k], self.w[2][k], self.w[3][k]],
            sum: self.sum[k],
        };
        let i = self.index[k];
        // Where all four taps are valid (the centre is one of them) no checks are needed.
        if self.interior[k] {
            if let Some(v) = bl.all_valid(&p.src, self.at[k]) {
                p.out[i] = off_nodata(round_in_range(v), p.dst_nodata);
                return;
            }
        }
        // The pixel the point falls in must be valid.
        if p.src.valid(p.src.data[self.centre[k]]) {
            if let Some(v) = bl.apply(&p.src) {
                p.out[i] = to_u16(v, p.dst_nodata);
            }
        }
    }
}

/// The four-pixel bilinear runs with AVX2 (x86-64, detected at run time): the same
/// operations in the same order as [`Bilinear4::all_valid`], four pixels to a vector.
mod simd {
    use super::{Batch, Bounds, Origin, PointBand, Points};

    #[cfg(target_arch = "x86_64")]
    pub fn available() -> bool {
        std::is_x86_feature_detected!("avx2")
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub fn available() -> bool {
        false
    }

    /// Source rows below the ones being read that are prefetched: a turned grid walks its
    /// source rows diagonally, which the hardware prefetcher does not follow (measured
    /// with `bench_resample`: 2 to 6 rows ahead alike, a quarter off the chunk's time).
    pub const PREFETCH_ROWS: usize = 4;

    /// Ask for the cache line holding `data[at]` (a hint: nothing happens off the data).
    #[inline(always)]
    pub fn prefetch(data: &[u16], at: usize) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE is part of x86-64; a prefetch reads nothing and cannot fault.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(data.as_ptr().wrapping_add(at) as *const i8)
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (data, at);
    }

    /// Place points i..i+4 at the batch's end, when all four fall inside the window
    /// (false, placing nothing, otherwise). Only called when [`available`], with the
    /// decoded data's offsets within i32.
    pub fn place4(batch: &mut Batch, points: &Points, i: usize, b: &Bounds, o: &Origin, bilinear: bool) -> bool {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller checked that the CPU has AVX2.
        unsafe {
            x86::place4(batch, points, i, b, o, bilinear)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (batch, points, i, b, o, bilinear);
            false
        }
    }

    /// Band `p` over the batch, runs four pixels to a vector. Only called when
    /// [`available`].
    pub fn band(p: &mut PointBand, batch: &Batch) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller checked that the CPU has AVX2.
        unsafe {
            x86::band(p, batch)
        }
        #[cfg(not(target_arch = "x86_64"))]
        batch.band(p, |_, _| false)
    }

    #[cfg(target_arch = "x86_64")]
    mod x86 {
        use super::{prefetch, Batch, Bounds, Origin, PointBand, Points, PREFETCH_ROWS};
        use crate::read::resample::batched::BATCH;
        use crate::read::resample::WEIGHT_MIN;
        use std::arch::x86_64::*;

        /// Four 64-bit integers into `to` (usize or i64).
        #[target_feature(enable = "avx2")]
        #[inline]
        fn store_64<T: Copy>(to: &mut [T], v: __m256i) {
            assert!(to.len() == 4 && std::mem::size_of::<T>() == 8);
            // SAFETY: `to` holds 32 bytes.
            unsafe { _mm256_storeu_si256(to.as_mut_ptr() as *mut __m256i, v) }
        }

        /// `centre_in_window`'s inside test, the centre pixel and `Bilinear4::new`, four
        /// points to a vector: the same operations in the same order.
        #[target_feature(enable = "avx2")]
        pub fn place4(batch: &mut Batch, points: &Points, i: usize, b: &Bounds, o: &Origin, bilinear: bool) -> bool {
            let k = batch.n;
            // SAFETY: four values from i (the caller checked i + 4 <= the points' length).
            let (x, y) = unsafe {
                (_mm256_loadu_pd(points.xs[i..i + 4].as_ptr()), _mm256_loadu_pd(points.ys[i..i + 4].as_ptr()))
            };
            let f = |v: i64| _mm256_set1_pd(v as f64);
            let (x0, y0, x1, y1) = (f(b.x0), f(b.y0), f(b.x1), f(b.y1));
            let tiny = _mm256_set1_pd(1e-10);
            let (xt, yt) = (_mm256_add_pd(x, tiny), _mm256_add_pd(y, tiny));
            // Ordered comparisons: NaN is outside.
            let inside = _mm256_and_pd(
                _mm256_and_pd(_mm256_cmp_pd::<_CMP_GE_OQ>(x, x0), _mm256_cmp_pd::<_CMP_GE_OQ>(y, y0)),
                _mm256_and_pd(_mm256_cmp_pd::<_CMP_LE_OQ>(xt, x1), _mm256_cmp_pd::<_CMP_LE_OQ>(yt, y1)),
            );
            if _mm256_movemask_pd(inside) != 0xf {
                return false;
            }
            let one = _mm256_set1_pd(1.0);
            let trunc = |v: __m256d| _mm256_round_pd::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
            // Offsets in the decoded data of level pixels (x, y): whole numbers in i32.
            let (ox, oy, ow) = (f(o.x0), f(o.y0), f(o.w as i64));
            // Whole numbers within i32, as 64-bit integers.
            let whole = |v: __m256d| _mm256_cvtepi32_epi64(_mm256_cvttpd_epi32(v));
            let offsets = |px: __m256d, py: __m256d, to: &mut [usize; BATCH]| {
                let v = whole(_mm256_add_pd(_mm256_mul_pd(_mm256_sub_pd(py, oy), ow), _mm256_sub_pd(px, ox)));
                store_64(&mut to[k..k + 4], v);
                v
            };
            let cx = _mm256_min_pd(trunc(xt), _mm256_sub_pd(x1, one));
            let cy = _mm256_min_pd(trunc(yt), _mm256_sub_pd(y1, one));
            offsets(cx, cy, &mut batch.centre);
            for j in 0..4 {
                batch.index[k + j] = i + j;
                batch.run4[k + j] = false;
            }
            batch.n = k + 4;
            if !bilinear {
                return true;
            }
            // `Bilinear4::new`, window-relative.
            let (wx, wy) = (_mm256_sub_pd(x, x0), _mm256_sub_pd(y, y0));
            let (half, three_halves) = (_mm256_set1_pd(0.5), _mm256_set1_pd(1.5));
            let floor = |v: __m256d| _mm256_round_pd::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(v);
            let (ix, iy) = (floor(_mm256_sub_pd(wx, half)), floor(_mm256_sub_pd(wy, half)));
            let rx = _mm256_sub_pd(three_halves, _mm256_sub_pd(wx, ix));
            let ry = _mm256_sub_pd(three_halves, _mm256_sub_pd(wy, iy));
            // On the window's first row or column the point is clamped onto it.
            let minus_one = _mm256_set1_pd(-1.0);
            let (at_left, at_top) =
                (_mm256_cmp_pd::<_CMP_EQ_OQ>(ix, minus_one), _mm256_cmp_pd::<_CMP_EQ_OQ>(iy, minus_one));
            let zero = _mm256_setzero_pd();
            let (ix, rx) = (_mm256_blendv_pd(ix, zero, at_left), _mm256_blendv_pd(rx, one, at_left));
            let (iy, ry) = (_mm256_blendv_pd(iy, zero, at_top), _mm256_blendv_pd(ry, one, at_top));
            let (rx1, ry1) = (_mm256_sub_pd(one, rx), _mm256_sub_pd(one, ry));
            let w = [_mm256_mul_pd(rx, ry), _mm256_mul_pd(rx1, ry), _mm256_mul_pd(rx, ry1), _mm256_mul_pd(rx1, ry1)];
            let sum = _mm256_add_pd(_mm256_add_pd(_mm256_add_pd(w[0], w[1]), w[2]), w[3]);
            let (lx, ly) = (_mm256_add_pd(ix, x0), _mm256_add_pd(iy, y0));
            let at = offsets(lx, ly, &mut batch.at);
            let store = |v: __m256d, to: &mut [f64; BATCH]| {
                // SAFETY: four f64 from k, within the batch.
                unsafe { _mm256_storeu_pd(to[k..k + 4].as_mut_ptr(), v) }
            };
            for (v, to) in w.into_iter().zip(batch.w.iter_mut()) {
                store(v, to);
            }
            store(sum, &mut batch.sum);
            store_64(&mut batch.x[k..k + 4], whole(lx));
            store_64(&mut batch.y[k..k + 4], whole(ly));
            let interior = _mm256_movemask_pd(_mm256_and_pd(
                _mm256_cmp_pd::<_CMP_LT_OQ>(_mm256_add_pd(lx, one), x1),
                _mm256_cmp_pd::<_CMP_LT_OQ>(_mm256_add_pd(ly, one), y1),
            ));
            for j in 0..4 {
                batch.interior[k + j] = interior >> j & 1 != 0;
            }
            let weighty = _mm256_movemask_pd(_mm256_cmp_pd::<_CMP_GE_OQ>(sum, _mm256_set1_pd(WEIGHT_MIN)));
            let next = _mm256_add_epi64(_mm256_set1_epi64x(batch.at[k] as i64), _mm256_set_epi64x(3, 2, 1, 0));
            let consecutive = _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpeq_epi64(at, next)));
            // Consecutive output pixels (i..i+4) whose taps are consecutive.
            batch.run4[k] = interior == 0xf && weighty == 0xf && consecutive == 0xf;
            true
        }

        #[target_feature(enable = "avx2")]
        pub fn band(p: &mut PointBand, batch: &Batch) {
            batch.band(p, |p, k| run4(p, batch, k))
        }

        /// Points k..k+4 (a run, see `Batch::run4`) of band `p`; false, writing nothing,
        /// when a tap is not valid.
        #[target_feature(enable = "avx2")]
        #[inline]
        fn run4(p: &mut PointBand, batch: &Batch, k: usize) -> bool {
            let (at, stride) = (batch.at[k], p.src.w);
            // Taps of pixels j = 0..4: top[j], top[j + 1], bottom[j], bottom[j + 1].
            let (top, bottom) = (&p.src.data[at..at + 5], &p.src.data[at + stride..at + stride + 5]);
            // The rows the next output rows need: a turned grid walks them diagonally,
            // which the hardware prefetcher does not follow. (A hint: no fault off the data.)
            prefetch(p.src.data, at + PREFETCH_ROWS * stride);
            let i = batch.index[k];
            let out = &mut p.out[i..i + 4];
            // SAFETY: each 8-byte load reads four values within the five-value slices.
            let load = |s: &[u16], at: usize| unsafe { _mm_loadl_epi64(s.as_ptr().add(at) as *const __m128i) };
            let (t0, t1, b0, b1) = (load(top, 0), load(top, 1), load(bottom, 0), load(bottom, 1));
            if let Some(nd) = p.src.nodata {
                let nd = _mm_set1_epi16(nd as i16);
                let hit = _mm_or_si128(
                    _mm_or_si128(_mm_cmpeq_epi16(t0, nd), _mm_cmpeq_epi16(t1, nd)),
                    _mm_or_si128(_mm_cmpeq_epi16(b0, nd), _mm_cmpeq_epi16(b1, nd)),
                );
                // Only the low four lanes hold taps.
                if _mm_movemask_epi8(hit) & 0xff != 0 {
                    return false;
                }
            }
            let wide = |v: __m128i| _mm256_cvtepi32_pd(_mm_cvtepu16_epi32(v));
            // SAFETY: four values from k.
            let weight = |w: &[f64; BATCH]| unsafe { _mm256_loadu_pd(w[k..k + 4].as_ptr()) };
            // ((v0 w0 + v1 w1) + v2 w2) + v3 w3, no fused multiply-add: the scalar sums.
            let mut acc = _mm256_mul_pd(wide(t0), weight(&batch.w[0]));
            acc = _mm256_add_pd(acc, _mm256_mul_pd(wide(t1), weight(&batch.w[1])));
            acc = _mm256_add_pd(acc, _mm256_mul_pd(wide(b0), weight(&batch.w[2])));
            acc = _mm256_add_pd(acc, _mm256_mul_pd(wide(b1), weight(&batch.w[3])));
            // `weighted`: the sum divides unless it is one, and dividing by one is exact.
            let v = _mm256_div_pd(acc, weight(&batch.sum));
            // `round_in_range`: + 0.5, truncated to i32, its low 16 bits.
            let r = _mm256_cvttpd_epi32(_mm256_add_pd(v, _mm256_set1_pd(0.5)));
            let r = _mm_packus_epi32(_mm_and_si128(r, _mm_set1_epi32(0xffff)), _mm_setzero_si128());
            // `off_nodata`.
            let dst = p.dst_nodata;
            let step = _mm_set1_epi16((if dst == 0 { 1 } else { dst - 1 }) as i16);
            let r = _mm_blendv_epi8(r, step, _mm_cmpeq_epi16(r, _mm_set1_epi16(dst as i16)));
            // SAFETY: `out` holds four values.
            unsafe { _mm_storel_epi64(out.as_mut_ptr() as *mut __m128i, r) };
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::resample::Window;

    /// The vector path (AVX2) gives exactly the scalar path's values: random sources with
    /// nodata sprinkled and along an edge, turned and scaled grids whose points run off
    /// the window, bilinear and nearest, several bands at once.
    #[test]
    fn vector_and_scalar_paths_agree_exactly() {
        if !simd::available() {
            eprintln!("no AVX2 on this CPU: only the scalar path runs here");
            return;
        }
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (w, h) = (300usize, 280usize);
        let decoded = Bounds { x0: 7, y0: 3, x1: 7 + w as i64, y1: 3 + h as i64 };
        let bounds = Bounds { x0: 8, y0: 3, x1: 7 + w as i64 - 2, y1: 3 + h as i64 };
        let bands: Vec<Vec<u16>> = (0..4)
            .map(|b| {
                (0..w * h)
                    .map(|i| match next() % 100 {
                        _ if i % w < 9 => 0,
                        0..=4 => 0,
                        5 if b == 3 => 65535,
                        _ => (next() % 65536) as u16,
                    })
                    .collect()
            })
            .collect();
        let mut compared = 0;
        for (turn, scale, dx, dy, dst_nodata) in [
            (1.2, 1.0, 2.3, -4.1, 0u16),
            (-7.0, 1.03, -3.0, 5.5, 65535),
            (0.0, 0.97, 10.5, 0.25, 300),
            (3.0, 1.0, 0.0, 0.0, 1),
        ] {
            let (sin, cos) = f64::to_radians(turn).sin_cos();
            let (ow, oh) = (290, 270);
            let (mut xs, mut ys) = (Vec::new(), Vec::new());
            for r in 0..oh {
                for c in 0..ow {
                    let (c, r) = (c as f64 + 0.5, r as f64 + 0.5);
                    xs.push(7.0 + dx + scale * (c * cos - r * sin));
                    ys.push(3.0 + dy + scale * (c * sin + r * cos));
                }
            }
            xs[17] = f64::NAN;
            // Points just short of a pixel edge: the centre test's 1e-10 decides.
            for i in (1000..xs.len()).step_by(997) {
                ys[i] = ys[i].round() - 5e-11;
                xs[i + 1] = xs[i + 1].round() - 5e-11;
            }
            let exact = |i: usize| (xs[i] + 1e-9, ys[i]);
            let points = Points { xs: &xs, ys: &ys, exact: &exact };
            for bilinear in [true, false] {
                let run = |simd: bool| {
                    let mut outs: Vec<Vec<u16>> = bands.iter().map(|_| vec![dst_nodata; ow * oh]).collect();
                    let mut group: Vec<PointBand> = outs
                        .iter_mut()
                        .zip(&bands)
                        .map(|(out, data)| PointBand {
                            src: Window::new(&decoded, data, Some(0), bounds),
                            out,
                            dst_nodata,
                        })
                        .collect();
                    batched_points(bilinear, &mut group, &points, &bounds, simd);
                    outs
                };
                let (vector, scalar) = (run(true), run(false));
                assert_eq!(vector, scalar, "turn {turn}, scale {scale}, bilinear {bilinear}");
                compared += scalar.iter().flatten().filter(|&&v| v != dst_nodata).count();
            }
        }
        assert!(compared > 500_000, "most pixels must be computed: {compared}");
    }
}
