//! Percentiles, median and mean over valid observations, per pixel and band.
//!
//! A percentile p of n sorted values is the value at index round(p * (n - 1)), rounding
//! half to even (NumPy's `round`); fewer than `min_obs` valid values give nodata.

use crate::geomedian::Dims;
use ndarray::{Array3, Array4};
use rayon::prelude::*;

/// Round half to even, as NumPy does.
pub fn round_half_even(v: f64) -> f64 {
    let r = v.round();
    if (v - v.trunc()).abs() == 0.5 {
        2.0 * (v / 2.0).round()
    } else {
        r
    }
}

/// Index of percentile `p` (0..=1) among `n` sorted values.
pub fn percentile_index(p: f64, n: usize) -> usize {
    (round_half_even(p * (n - 1) as f64) as usize).min(n - 1)
}

/// Series sorted together, one per SIMD lane.
const LANES: usize = 16;

/// Batcher's odd-even merge sort network for `n` (a power of two) elements: the
/// compare-exchange pairs, in order.
pub fn batcher_network(n: usize) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    let mut p = 1;
    while p < n {
        let mut k = p;
        while k >= 1 {
            let mut j = k % p;
            while j + k < n {
                for i in 0..k.min(n - j - k) {
                    if (i + j) / (2 * p) == (i + j + k) / (2 * p) {
                        out.push(((i + j) as u16, (i + j + k) as u16));
                    }
                }
                j += 2 * k;
            }
            k /= 2;
        }
        p *= 2;
    }
    out
}

/// What every batch of a chunk shares: the percentile indices for each possible count of
/// valid values, and the sorting network for the padded series length.
struct SortPlan {
    table: Vec<Vec<usize>>,
    size: usize,
    net: Vec<(u16, u16)>,
}

impl SortPlan {
    fn new(ps: &[f64], times: usize) -> SortPlan {
        let table = (0..=times)
            .map(|n| if n == 0 { vec![] } else { ps.iter().map(|&p| percentile_index(p, n)).collect() })
            .collect();
        let size = times.max(2).next_power_of_two();
        SortPlan { table, size, net: batcher_network(size) }
    }
}

/// Sort every lane of `buf` (rows are positions, columns are independent series) with
/// the network: branch-free lane-wise min/max, which the compiler vectorises. On x86-64
/// with AVX2 (checked at run time) the same code is compiled for 256-bit registers.
fn sort_lanes(buf: &mut [[i16; LANES]], net: &[(u16, u16)]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { sort_lanes_avx2(buf, net) };
            return;
        }
    }
    sort_lanes_portable(buf, net);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sort_lanes_avx2(buf: &mut [[i16; LANES]], net: &[(u16, u16)]) {
    sort_lanes_portable(buf, net)
}

#[inline(always)]
fn sort_lanes_portable(buf: &mut [[i16; LANES]], net: &[(u16, u16)]) {
    for &(a, b) in net {
        let (x, y) = (buf[a as usize], buf[b as usize]);
        let mut lo = [0i16; LANES];
        let mut hi = [0i16; LANES];
        for l in 0..LANES {
            lo[l] = x[l].min(y[l]);
            hi[l] = x[l].max(y[l]);
        }
        buf[a as usize] = lo;
        buf[b as usize] = hi;
    }
}

/// Percentiles of raw values: output (band, q, y, x), `nodata` where fewer than `min_obs`.
/// `series(y, x, b, vals)` appends the pixel-band's valid (unmasked) values to `vals`.
///
/// Sixteen pixels' series are sorted at once by a sorting network on 16-bit lanes (padded
/// with the maximum, which sorts last); a batch with values outside the 16-bit range
/// falls back to a plain sort per series.
pub fn percentiles_chunk<S>(dims: Dims, ps: &[f64], min_obs: usize, nodata: i32, series: S) -> Array4<i32>
where
    S: Fn(usize, usize, usize, &mut Vec<i32>) + Sync,
{
    let Dims { h, w, bands, times } = dims;
    let SortPlan { table, size, net } = SortPlan::new(ps, times);
    let min_obs = min_obs.max(1);
    let rows: Vec<Vec<i32>> = (0..h)
        .into_par_iter()
        .map_init(
            || (Vec::new(), vec![[i16::MAX; LANES]; size]),
            |(vals, buf): &mut (Vec<i32>, Vec<[i16; LANES]>), y| {
                let mut row = vec![nodata; bands * ps.len() * w];
                let mut counts = [0usize; LANES];
                for b in 0..bands {
                    for x0 in (0..w).step_by(LANES) {
                        let mut fits = true;
                        for l in 0..LANES {
                            vals.clear();
                            if x0 + l < w {
                                series(y, x0 + l, b, vals);
                            }
                            counts[l] = vals.len();
                            fits &= vals.len() <= size
                                && vals.iter().all(|&v| (i16::MIN as i32..i16::MAX as i32).contains(&v));
                            for (t, slot) in buf.iter_mut().enumerate() {
                                slot[l] = if t < vals.len() && fits { vals[t] as i16 } else { i16::MAX };
                            }
                        }
                        if fits {
                            sort_lanes(buf, &net);
                            for (l, &n) in counts.iter().enumerate() {
                                if x0 + l < w && n >= min_obs {
                                    for (q, &i) in table[n].iter().enumerate() {
                                        row[(b * ps.len() + q) * w + x0 + l] = buf[i][l] as i32;
                                    }
                                }
                            }
                        } else {
                            for l in 0..LANES.min(w - x0) {
                                vals.clear();
                                series(y, x0 + l, b, vals);
                                if vals.len() >= min_obs {
                                    select_percentiles(vals, ps, |q, v| row[(b * ps.len() + q) * w + x0 + l] = v);
                                }
                            }
                        }
                    }
                }
                row
            },
        )
        .collect();
    assemble(rows, bands, ps.len(), w)
}

/// Percentiles of 16-bit data, all through the sorting network: `key_at(y, x, b, t)`
/// gives the value's order-preserving i16 key, or None if missing or masked; `decode`
/// turns a key back into the value. Output as [`percentiles_chunk`].
///
/// Missing values are not compacted away: they become `i16::MAX`, which the network sorts
/// to the end, and only the first `n` (valid) positions are read. (A real value whose key
/// is `i16::MAX` ties with the padding, which does not change any order statistic.)
pub fn percentiles_chunk_16<K, D>(
    dims: Dims,
    ps: &[f64],
    min_obs: usize,
    nodata: i32,
    key_at: K,
    decode: D,
) -> Array4<i32>
where
    K: Fn(usize, usize, usize, usize) -> Option<i16> + Sync,
    D: Fn(i16) -> i32 + Sync,
{
    let Dims { h, w, bands, times } = dims;
    let SortPlan { table, size, net } = SortPlan::new(ps, times);
    let min_obs = min_obs.max(1);
    let nq = ps.len();
    let rows: Vec<Vec<i32>> = (0..h)
        .into_par_iter()
        .map_init(
            || vec![[i16::MAX; LANES]; size],
            |buf: &mut Vec<[i16; LANES]>, y| {
                let mut row = vec![nodata; bands * nq * w];
                // Blocks of pixels outermost, so a block's data stays in cache for all bands.
                for x0 in (0..w).step_by(LANES) {
                    for b in 0..bands {
                        let lanes = LANES.min(w - x0);
                        let mut counts = [0usize; LANES];
                        for (l, count) in counts.iter_mut().enumerate() {
                            // Read each series in order; the writes go down a lane.
                            for (t, slot) in buf.iter_mut().enumerate() {
                                let k = if t < times && l < lanes { key_at(y, x0 + l, b, t) } else { None };
                                *count += k.is_some() as usize;
                                slot[l] = k.unwrap_or(i16::MAX);
                            }
                        }
                        sort_lanes(buf, &net);
                        for (l, &n) in counts.iter().enumerate().take(lanes) {
                            if n >= min_obs {
                                for (q, &i) in table[n].iter().enumerate() {
                                    row[(b * nq + q) * w + x0 + l] = decode(buf[i][l]);
                                }
                            }
                        }
                    }
                }
                row
            },
        )
        .collect();
    assemble(rows, bands, nq, w)
}

/// Per-row results laid out (band, q, x) -> one (band, q, y, x) array.
fn assemble<T: Copy + Default>(rows: Vec<Vec<T>>, bands: usize, nq: usize, w: usize) -> Array4<T> {
    let h = rows.len();
    let mut out = Array4::from_elem((bands, nq, h, w), T::default());
    for (y, row) in rows.into_iter().enumerate() {
        for b in 0..bands {
            for q in 0..nq {
                for x in 0..w {
                    out[[b, q, y, x]] = row[(b * nq + q) * w + x];
                }
            }
        }
    }
    out
}

/// The values at the percentile indices of `vals` (sorted in place). For the short
/// series of a pixel (tens of values) an unstable sort beats repeated selection.
pub fn select_percentiles(vals: &mut [i32], ps: &[f64], mut emit: impl FnMut(usize, i32)) {
    vals.sort_unstable();
    for (q, &p) in ps.iter().enumerate() {
        emit(q, vals[percentile_index(p, vals.len())]);
    }
}

/// Percentiles of float values (the same index rule): output (band, q, y, x), NaN where
/// fewer than `min_obs`. `series` gives a pixel's valid values (no NaN).
pub fn percentiles_chunk_f32<S>(dims: Dims, ps: &[f64], min_obs: usize, series: S) -> Array4<f32>
where
    S: Fn(usize, usize, usize, &mut Vec<f32>) + Sync,
{
    let Dims { h, w, bands, .. } = dims;
    let min_obs = min_obs.max(1);
    let rows: Vec<Vec<f32>> = (0..h)
        .into_par_iter()
        .map_init(Vec::new, |vals: &mut Vec<f32>, y| {
            let mut row = vec![f32::NAN; bands * ps.len() * w];
            for b in 0..bands {
                for x in 0..w {
                    vals.clear();
                    series(y, x, b, vals);
                    if vals.len() >= min_obs {
                        vals.sort_unstable_by(f32::total_cmp);
                        for (q, &p) in ps.iter().enumerate() {
                            row[(b * ps.len() + q) * w + x] = vals[percentile_index(p, vals.len())];
                        }
                    }
                }
            }
            row
        })
        .collect();
    assemble(rows, bands, ps.len(), w)
}

/// Mean of valid values per band: (band, y, x), NaN where none.
pub fn mean_chunk<F>(dims: Dims, get: F) -> Array3<f32>
where
    F: Fn(usize, usize, usize, usize) -> Option<f32> + Sync,
{
    let Dims { h, w, bands, times } = dims;
    let rows: Vec<Vec<f32>> = (0..h)
        .into_par_iter()
        .map(|y| {
            let mut row = vec![f32::NAN; bands * w];
            for x in 0..w {
                for b in 0..bands {
                    let (mut s, mut n) = (0f64, 0usize);
                    for t in 0..times {
                        if let Some(v) = get(y, x, b, t) {
                            s += v as f64;
                            n += 1;
                        }
                    }
                    if n > 0 {
                        row[b * w + x] = (s / n as f64) as f32;
                    }
                }
            }
            row
        })
        .collect();
    let mut out = Array3::from_elem((bands, h, w), f32::NAN);
    for (y, row) in rows.into_iter().enumerate() {
        for b in 0..bands {
            for x in 0..w {
                out[[b, y, x]] = row[b * w + x];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_sorts() {
        for n in [2usize, 4, 8, 16, 64] {
            let net = batcher_network(n);
            let mut s = 99u64;
            let mut buf = vec![[0i16; LANES]; n];
            for row in buf.iter_mut() {
                for v in row.iter_mut() {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                    *v = (s >> 50) as i16 - 4000;
                }
            }
            let mut want: Vec<Vec<i16>> = (0..LANES).map(|l| buf.iter().map(|r| r[l]).collect()).collect();
            want.iter_mut().for_each(|w| w.sort());
            sort_lanes(&mut buf, &net);
            for l in 0..LANES {
                assert_eq!(buf.iter().map(|r| r[l]).collect::<Vec<_>>(), want[l], "n={n} lane {l}");
            }
        }
    }

    #[test]
    fn wide_values_fall_back_and_agree() {
        // u16-range values above i16::MAX take the scalar path; results are the same.
        let vals: Vec<i32> = vec![40_000, 100, 65_000, 7, 33_000];
        let out = percentiles_chunk(
            Dims { h: 1, w: 3, bands: 1, times: 5 },
            &[0.1, 0.5, 0.9],
            3,
            -1,
            |_, x, _, o: &mut Vec<i32>| o.extend(vals.iter().map(|v| if x == 1 { v % 1000 } else { *v })),
        );
        assert_eq!(out.slice(ndarray::s![0, .., 0, 0]).to_vec(), vec![7, 33_000, 65_000]);
        assert_eq!(out.slice(ndarray::s![0, .., 0, 1]).to_vec(), vec![0, 0, 100]);
        // 0 0 0 7 100
    }

    #[test]
    fn sixteen_bit_path_handles_padding_ties_and_gaps() {
        // 20 pixels (two batches of lanes), 7 times; pixel x has values x..x+6 with
        // time 2 missing and pixel 3's last value the largest i16 (equal to the padding).
        let value = |x: usize, t: usize| -> Option<i16> {
            if t == 2 {
                None
            } else if x == 3 && t == 6 {
                Some(i16::MAX)
            } else {
                Some((x + t) as i16 - 5)
            }
        };
        let out = percentiles_chunk_16(
            Dims { h: 1, w: 20, bands: 1, times: 7 },
            &[0.1, 0.5, 0.9],
            3,
            i32::MIN,
            |_, x, _, t| value(x, t),
            |k| k as i32,
        );
        for x in 0..20 {
            let mut v: Vec<i32> = (0..7).filter_map(|t| value(x, t)).map(i32::from).collect();
            v.sort();
            let want: Vec<i32> = [0.1, 0.5, 0.9].iter().map(|&p| v[percentile_index(p, v.len())]).collect();
            assert_eq!(out.slice(ndarray::s![0, .., 0, x]).to_vec(), want, "pixel {x}");
        }
    }

    #[test]
    fn selection_equals_sorting() {
        let mut s = 12345u64;
        for n in 1..80 {
            let vals: Vec<i32> = (0..n)
                .map(|_| {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (s >> 40) as i32 % 50
                })
                .collect();
            let mut sorted = vals.clone();
            sorted.sort();
            let ps = [0.1, 0.5, 0.9, 0.25];
            let mut got = [0; 4];
            select_percentiles(&mut vals.clone(), &ps, |q, v| got[q] = v);
            for (q, p) in ps.iter().enumerate() {
                assert_eq!(got[q], sorted[percentile_index(*p, n)], "n={n} p={p}");
            }
        }
    }

    #[test]
    fn index_rule() {
        assert_eq!(percentile_index(0.5, 4), 2); // 1.5 -> 2 (half to even)
        assert_eq!(percentile_index(0.5, 6), 2); // 2.5 -> 2
        assert_eq!(percentile_index(0.1, 10), 1); // 0.9 -> 1
        assert_eq!(percentile_index(0.9, 10), 8); // 8.1 -> 8
        assert_eq!(percentile_index(1.0, 3), 2);
    }

    #[test]
    fn percentiles_need_three_and_skip_missing() {
        // One pixel, one band, 5 times: values 5, missing, 1, 3, 9.
        static V: [Option<i32>; 5] = [Some(5), None, Some(1), Some(3), Some(9)];
        static TWO: [Option<i32>; 3] = [Some(5), Some(1), None];
        let v = V;
        let out = percentiles_chunk(
            Dims { h: 1, w: 1, bands: 1, times: 5 },
            &[0.1, 0.5, 0.9],
            3,
            -1,
            |_, _, _, out: &mut Vec<i32>| out.extend(V.iter().flatten()),
        );
        assert_eq!(out.iter().copied().collect::<Vec<_>>(), vec![1, 5, 9]); // sorted 1 3 5 9: idx 0, 2 (1.5->2), 3 (2.7)
        let out =
            percentiles_chunk(Dims { h: 1, w: 1, bands: 1, times: 3 }, &[0.5], 3, -1, |_, _, _, out: &mut Vec<i32>| {
                out.extend(TWO.iter().flatten())
            });
        assert_eq!(out[[0, 0, 0, 0]], -1);
        let m = mean_chunk(Dims { h: 1, w: 1, bands: 1, times: 5 }, |_, _, _, t| v[t].map(|x| x as f32));
        assert_eq!(m[[0, 0, 0]], 4.5);
    }
}
