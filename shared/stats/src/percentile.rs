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

/// Percentiles of raw values: output (band, q, y, x), `nodata` where fewer than `min_obs`.
/// `series(y, x, b, vals)` appends the pixel-band's valid (unmasked) values to `vals`.
pub fn percentiles_chunk<S>(dims: Dims, ps: &[f64], min_obs: usize, nodata: i32, series: S) -> Array4<i32>
where
    S: Fn(usize, usize, usize, &mut Vec<i32>) + Sync,
{
    let Dims { h, w, bands, times } = dims;
    // Percentile indices for every possible count of valid values.
    let table: Vec<Vec<usize>> = (0..=times)
        .map(|n| if n == 0 { vec![] } else { ps.iter().map(|&p| percentile_index(p, n)).collect() })
        .collect();
    let rows: Vec<Vec<i32>> = (0..h)
        .into_par_iter()
        .map_init(Vec::new, |vals: &mut Vec<i32>, y| {
            let mut row = vec![nodata; bands * ps.len() * w];
            for x in 0..w {
                for b in 0..bands {
                    vals.clear();
                    series(y, x, b, vals);
                    if vals.len() < min_obs.max(1) {
                        continue;
                    }
                    vals.sort_unstable();
                    let n = vals.len();
                    if n <= times {
                        for (q, &i) in table[n].iter().enumerate() {
                            row[(b * ps.len() + q) * w + x] = vals[i];
                        }
                    } else {
                        select_percentiles(vals, ps, |q, v| row[(b * ps.len() + q) * w + x] = v);
                    }
                }
            }
            row
        })
        .collect();
    let mut out = Array4::from_elem((bands, ps.len(), h, w), nodata);
    for (y, row) in rows.into_iter().enumerate() {
        for b in 0..bands {
            for q in 0..ps.len() {
                for x in 0..w {
                    out[[b, q, y, x]] = row[(b * ps.len() + q) * w + x];
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
