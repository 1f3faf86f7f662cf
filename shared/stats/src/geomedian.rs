//! Geometric median with MADs, per pixel, over the valid observations of a stack.
//!
//! Weiszfeld's iteration with the Vardi-Zhang correction for observations that coincide
//! with the current estimate, started from the per-band mean, stopped when a step moves
//! less than `eps` (scaled units) or after `maxiters` steps, as in hdstats / odc-algo /
//! geomad. An observation with any band missing is excluded. Then, against the
//! geomedian m:
//! - EMAD  = median_t ||x_t - m||
//! - SMAD  = median_t 1 - <x_t, m> / (||x_t|| ||m||)
//! - BCMAD = median_t sum_j |x_tj - m_j| / sum_j |x_tj + m_j|
//! - COUNT = number of valid observations.
//!
//! Speed: each pixel's observations are copied into a band-major scratch buffer so that
//! the inner loops run over contiguous observations; sums use 8 independent lanes so the
//! compiler vectorises them without reordering (results do not depend on thread count).
//! Rows of a chunk run in parallel with rayon.

/// Iteration settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeomedianParams {
    /// Stop when a step moves less than this (scaled units).
    pub eps: f32,
    pub maxiters: u32,
    /// Also compute EMAD, SMAD and BCMAD (NaN otherwise).
    pub mads: bool,
}

impl Default for GeomedianParams {
    fn default() -> Self {
        Self { eps: 1e-4, maxiters: 1000, mads: true }
    }
}

const LANES: usize = 8;

/// Sum of a slice with 8 independent accumulators (vectorises; fixed order).
#[inline]
fn lane_sum(v: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = v.chunks_exact(LANES);
    let rem = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += c[i];
        }
    }
    let mut s = 0f32;
    for a in acc {
        s += a;
    }
    for r in rem {
        s += r;
    }
    s
}

/// Sum of a[i] * b[i] with 8 independent accumulators.
#[inline]
fn lane_dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = 0f32;
    for v in acc {
        s += v;
    }
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Scratch space for one worker, reused across pixels.
#[derive(Default)]
pub struct Scratch {
    /// Observations, band-major: x[b * n + t].
    pub x: Vec<f32>,
    dist: Vec<f32>,
    w: Vec<f32>,
    tmp: Vec<f32>,
    dot: Vec<f32>,
    xx: Vec<f32>,
    num: Vec<f32>,
    den: Vec<f32>,
}

impl Scratch {
    pub fn reset(&mut self, bands: usize, n: usize) {
        self.x.clear();
        self.x.resize(bands * n, 0.0);
        self.dist.resize(n, 0.0);
        self.w.resize(n, 0.0);
        self.tmp.resize(n, 0.0);
        for v in [&mut self.dot, &mut self.xx, &mut self.num, &mut self.den] {
            v.clear();
            v.resize(n, 0.0);
        }
    }
}

/// Geomedian of `n` observations of `bands` bands held band-major in `s.x`, into `m`.
/// Returns the number of iterations taken.
// Index loops over bands mirror the maths and keep the band slices aligned.
#[allow(clippy::needless_range_loop)]
pub fn geomedian(s: &mut Scratch, bands: usize, n: usize, p: GeomedianParams, m: &mut [f32]) -> u32 {
    debug_assert!(n > 0 && m.len() == bands);
    let inv_n = 1.0 / n as f32;
    for b in 0..bands {
        m[b] = lane_sum(&s.x[b * n..(b + 1) * n]) * inv_n;
    }
    if n == 1 {
        return 0;
    }
    let mut next = [0f32; 64];
    let next = &mut next[..bands];
    for it in 0..p.maxiters {
        // Distances from the estimate.
        s.dist[..n].fill(0.0);
        for b in 0..bands {
            let xb = &s.x[b * n..(b + 1) * n];
            let mb = m[b];
            for (d, &v) in s.dist[..n].iter_mut().zip(xb) {
                let e = v - mb;
                *d += e * e;
            }
        }
        // Weights 1/d; observations at the estimate get weight 0 and are counted.
        // Written without branches so that it vectorises.
        let mut zeros = 0usize;
        for (w, &d) in s.w[..n].iter_mut().zip(&s.dist[..n]) {
            let inv = 1.0 / d.sqrt();
            *w = if d > 0.0 { inv } else { 0.0 };
            zeros += (d <= 0.0) as usize;
        }
        if zeros == n {
            return it;
        }
        let wsum = lane_sum(&s.w[..n]);
        for b in 0..bands {
            next[b] = lane_dot(&s.w[..n], &s.x[b * n..(b + 1) * n]) / wsum;
        }
        if zeros > 0 {
            // Vardi-Zhang: R = (T - m) * sum(w); r = |R|; move by min(1, zeros / r).
            let mut r2 = 0f32;
            for b in 0..bands {
                let rb = (next[b] - m[b]) * wsum;
                r2 += rb * rb;
            }
            let r = r2.sqrt();
            let rinv = if r == 0.0 { 0.0 } else { zeros as f32 / r };
            let (a, c) = ((1.0 - rinv).max(0.0), rinv.min(1.0));
            for b in 0..bands {
                next[b] = a * next[b] + c * m[b];
            }
        }
        let mut step2 = 0f32;
        for b in 0..bands {
            let d = next[b] - m[b];
            step2 += d * d;
            m[b] = next[b];
        }
        if step2.sqrt() < p.eps {
            return it + 1;
        }
    }
    p.maxiters
}

/// An i32 whose order is the float's total order (so selection compares integers).
#[inline]
fn order_key(x: f32) -> i32 {
    let b = x.to_bits() as i32;
    b ^ ((((b >> 31) as u32) >> 1) as i32)
}

#[inline]
fn from_key(k: i32) -> f32 {
    f32::from_bits((k ^ ((((k >> 31) as u32) >> 1) as i32)) as u32)
}

/// Median of `v` (reordered in place); the mean of the middle two for an even count.
pub fn median_in_place(v: &mut [f32]) -> f32 {
    let n = v.len();
    if n == 0 {
        return f32::NAN;
    }
    // Select on integer keys: same order, much cheaper comparisons.
    // SAFETY-free reinterpretation: keys are stored in a separate small buffer.
    let mut keys: smallvec_like::Keys = smallvec_like::Keys::new(n);
    let k = keys.as_mut_slice();
    for (d, x) in k.iter_mut().zip(v.iter()) {
        *d = order_key(*x);
    }
    let (left, mid, _) = k.select_nth_unstable(n / 2);
    let hi = from_key(*mid);
    if n % 2 == 1 {
        hi
    } else {
        // The largest of the lower half is the other middle value.
        let lo = from_key(*left.iter().max().expect("n >= 2"));
        0.5 * (lo + hi)
    }
}

/// A key buffer on the stack for typical series, on the heap for long ones.
mod smallvec_like {
    // The large stack variant is the point: no allocation per median for typical series.
    #[allow(clippy::large_enum_variant)]
    pub enum Keys {
        Stack([i32; 256], usize),
        Heap(Vec<i32>),
    }
    impl Keys {
        pub fn new(n: usize) -> Keys {
            if n <= 256 {
                Keys::Stack([0; 256], n)
            } else {
                Keys::Heap(vec![0; n])
            }
        }
        pub fn as_mut_slice(&mut self) -> &mut [i32] {
            match self {
                Keys::Stack(a, n) => &mut a[..*n],
                Keys::Heap(v) => v,
            }
        }
    }
}

/// (EMAD, SMAD, BCMAD) of the observations in `s.x` against the geomedian `m`.
#[allow(clippy::needless_range_loop)]
pub fn mads(s: &mut Scratch, bands: usize, n: usize, m: &[f32]) -> (f32, f32, f32) {
    let mnorm = m.iter().map(|v| v * v).sum::<f32>().sqrt();
    // Euclidean distances.
    s.dist[..n].fill(0.0);
    let Scratch { x, dist, dot, xx, num, den, .. } = s;
    for v in [&mut *dot, &mut *xx, &mut *num, &mut *den] {
        v[..n].fill(0.0);
    }
    for b in 0..bands {
        let xb = &x[b * n..(b + 1) * n];
        let mb = m[b];
        for t in 0..n {
            let v = xb[t];
            let e = v - mb;
            dist[t] += e * e;
            dot[t] += v * mb;
            xx[t] += v * v;
            num[t] += e.abs();
            den[t] += (v + mb).abs();
        }
    }
    for d in s.dist[..n].iter_mut() {
        *d = d.sqrt();
    }
    let emad = median_in_place(&mut s.dist[..n]);
    for t in 0..n {
        let denom = s.xx[t].sqrt() * mnorm;
        s.tmp[t] = if denom > 0.0 { 1.0 - s.dot[t] / denom } else { 0.0 };
    }
    let smad = median_in_place(&mut s.tmp[..n]);
    for t in 0..n {
        s.w[t] = if s.den[t] > 0.0 { s.num[t] / s.den[t] } else { 0.0 };
    }
    let bcmad = median_in_place(&mut s.w[..n]);
    (emad, smad, bcmad)
}

/// The shape of a chunk's observations: rows, columns, bands, times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub h: usize,
    pub w: usize,
    pub bands: usize,
    pub times: usize,
}

/// A chunk's geomedian and MADs, in scaled units: `gm` is (band, y, x), NaN where no
/// observation is valid; `count` is the number of valid observations.
pub struct GmChunk {
    pub gm: ndarray::Array3<f32>,
    pub emad: ndarray::Array2<f32>,
    pub smad: ndarray::Array2<f32>,
    pub bcmad: ndarray::Array2<f32>,
    pub count: ndarray::Array2<u16>,
}

/// Geomedian + MADs over an (h, w) chunk of `bands` x `times` observations.
/// `gather(y, x, out, kept)` writes the pixel's valid observations (all bands present)
/// band-major into `out` (`out[b * n + t]` for its `n` valid observations) and returns
/// `n`; `out` holds `bands * times` values and `kept` is scratch for the caller. Rows run in parallel; the result does not
/// depend on the thread count.
pub fn geomedian_mads_chunk<G>(dims: Dims, gather: G, p: GeomedianParams) -> GmChunk
where
    G: Fn(usize, usize, &mut [f32], &mut Vec<usize>) -> usize + Sync,
{
    use rayon::prelude::*;
    let Dims { h, w, bands, times } = dims;
    assert!(bands <= 64, "at most 64 bands");
    // Per row: geomedian (band-major), MADs, counts.
    type Row = (Vec<f32>, Vec<[f32; 3]>, Vec<u16>);
    let rows: Vec<Row> = (0..h)
        .into_par_iter()
        .map_init(
            || (Scratch::default(), vec![0f32; bands * times], Vec::with_capacity(times)),
            |(s, obs, kept), y| {
                let mut gm = vec![f32::NAN; bands * w];
                let mut md = vec![[f32::NAN; 3]; w];
                let mut cnt = vec![0u16; w];
                let mut m = vec![0f32; bands];
                for x in 0..w {
                    let n = gather(y, x, obs, kept);
                    cnt[x] = n.min(u16::MAX as usize) as u16;
                    if n == 0 {
                        continue;
                    }
                    s.reset(bands, n);
                    s.x.copy_from_slice(&obs[..bands * n]);
                    geomedian(s, bands, n, p, &mut m);
                    let (e, sm, bc) = if p.mads { mads(s, bands, n, &m) } else { (f32::NAN, f32::NAN, f32::NAN) };
                    for b in 0..bands {
                        gm[b * w + x] = m[b];
                    }
                    md[x] = [e, sm, bc];
                }
                (gm, md, cnt)
            },
        )
        .collect();
    let mut out = GmChunk {
        gm: ndarray::Array3::from_elem((bands, h, w), f32::NAN),
        emad: ndarray::Array2::from_elem((h, w), f32::NAN),
        smad: ndarray::Array2::from_elem((h, w), f32::NAN),
        bcmad: ndarray::Array2::from_elem((h, w), f32::NAN),
        count: ndarray::Array2::zeros((h, w)),
    };
    for (y, (gm, md, cnt)) in rows.into_iter().enumerate() {
        for x in 0..w {
            for b in 0..bands {
                out.gm[[b, y, x]] = gm[b * w + x];
            }
            out.emad[[y, x]] = md[x][0];
            out.smad[[y, x]] = md[x][1];
            out.bcmad[[y, x]] = md[x][2];
            out.count[[y, x]] = cnt[x];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(s: &mut Scratch, obs: &[&[f32]]) -> (usize, usize) {
        let (n, bands) = (obs.len(), obs[0].len());
        s.reset(bands, n);
        for (t, o) in obs.iter().enumerate() {
            for b in 0..bands {
                s.x[b * n + t] = o[b];
            }
        }
        (bands, n)
    }

    #[test]
    fn one_dimension_is_the_median() {
        let mut s = Scratch::default();
        let (b, n) = load(&mut s, &[&[1.0], &[2.0], &[10.0], &[3.0], &[2.5]]);
        let mut m = [0f32];
        geomedian(&mut s, b, n, GeomedianParams { eps: 1e-7, maxiters: 10_000, mads: true }, &mut m);
        assert!((m[0] - 2.5).abs() < 1e-3, "{m:?}");
    }

    #[test]
    fn symmetric_points_and_ties() {
        let mut s = Scratch::default();
        // Square corners: the centre.
        let (b, n) = load(&mut s, &[&[0.0, 0.0], &[1.0, 0.0], &[0.0, 1.0], &[1.0, 1.0]]);
        let mut m = [0f32; 2];
        geomedian(&mut s, b, n, GeomedianParams::default(), &mut m);
        assert!((m[0] - 0.5).abs() < 1e-4 && (m[1] - 0.5).abs() < 1e-4);
        // All identical: that point, no NaN (zero-distance case).
        let (b, n) = load(&mut s, &[&[0.3, 0.2], &[0.3, 0.2], &[0.3, 0.2]]);
        geomedian(&mut s, b, n, GeomedianParams::default(), &mut m);
        assert_eq!(m, [0.3, 0.2]);
        // A majority at one point pulls the median onto it (Vardi-Zhang).
        let (b, n) = load(&mut s, &[&[1.0, 1.0], &[1.0, 1.0], &[1.0, 1.0], &[5.0, 1.0], &[1.0, 9.0]]);
        geomedian(&mut s, b, n, GeomedianParams { eps: 1e-6, maxiters: 1000, mads: true }, &mut m);
        assert!((m[0] - 1.0).abs() < 1e-3 && (m[1] - 1.0).abs() < 1e-3, "{m:?}");
        let (e, sm, bc) = mads(&mut s, b, n, &m);
        assert!(e.abs() < 1e-3 && sm.abs() < 1e-3 && bc.abs() < 1e-3);
    }

    #[test]
    fn minimises_the_sum_of_distances() {
        let mut s = Scratch::default();
        let pts: Vec<[f32; 3]> = (0..23)
            .map(|i| [(i as f32 * 0.37).sin(), (i as f32 * 0.91).cos() * 2.0, (i * i % 7) as f32 * 0.1])
            .collect();
        let refs: Vec<&[f32]> = pts.iter().map(|p| &p[..]).collect();
        let (b, n) = load(&mut s, &refs);
        let mut m = [0f32; 3];
        geomedian(&mut s, b, n, GeomedianParams { eps: 1e-6, maxiters: 1000, mads: true }, &mut m);
        let cost = |c: [f32; 3]| {
            pts.iter()
                .map(|p| ((p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2) + (p[2] - c[2]).powi(2)).sqrt())
                .sum::<f32>()
        };
        let best = cost(m);
        for d in [[0.01, 0.0, 0.0], [0.0, -0.01, 0.0], [0.0, 0.0, 0.01], [-0.01, 0.01, 0.0]] {
            assert!(best <= cost([m[0] + d[0], m[1] + d[1], m[2] + d[2]]) + 1e-4);
        }
    }

    #[test]
    fn medians() {
        assert_eq!(median_in_place(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median_in_place(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median_in_place(&mut []).is_nan());
    }
}
