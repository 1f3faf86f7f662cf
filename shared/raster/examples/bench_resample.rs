//! The read path's resampling alone, for before/after comparisons: one 1024 x 1024 chunk
//! of a dataset's six reflectance bands (bilinear) and its SCL band (nearest), read from
//! a decoded source window on a grid turned 1.2 degrees from the output's (a UTM source
//! on an Albers tile, as in the au-30 bench tile), a nodata strip along one edge. Runs
//! `resample_points` as the read path does (strips of 64 rows, each method's bands
//! together) and prints seconds per chunk (best of TIMES) and a checksum of the outputs.
//! `cargo run --release -p stratus-raster --example bench_resample -- [TIMES]`.

use std::time::Instant;
use stratus_raster::read::resample::{resample_points, Bounds, PointBand, Points, Window};
use stratus_raster::resampling::Resampling;

const SIZE: usize = 1024;
const STRIP: usize = 64;

fn main() {
    let times: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    // The source window: the chunk turned by 1.2 degrees, plus a margin.
    let (w, h) = (SIZE + 64, SIZE + 64);
    let decoded = Bounds { x0: 0, y0: 0, x1: w as i64, y1: h as i64 };
    let bands: Vec<Vec<u16>> = (0..7u64)
        .map(|b| {
            (0..w * h)
                .map(|i| {
                    let (x, y) = ((i % w) as u64, (i / w) as u64);
                    if x < 40 {
                        0 // nodata strip: the granule's edge
                    } else if b == 6 {
                        (1 + (x / 37 + y / 23) % 11) as u16 // SCL-like classes
                    } else {
                        (300 + (x * 7 + y * 13 + b * 101) % 3000 + ((x * y) >> 9) % 97) as u16
                    }
                })
                .collect()
        })
        .collect();
    let (sin, cos) = 1.2f64.to_radians().sin_cos();
    let map = |c: f64, r: f64| (20.0 + c * cos - r * sin + 0.37, 30.0 + c * sin + r * cos + 0.19);
    let mut best = f64::MAX;
    let mut checksum = 0u64;
    for _ in 0..times {
        let mut outs: Vec<Vec<u16>> = (0..7).map(|_| vec![0u16; SIZE * SIZE]).collect();
        let started = Instant::now();
        for r0 in (0..SIZE).step_by(STRIP) {
            let (mut xs, mut ys) = (Vec::with_capacity(STRIP * SIZE), Vec::with_capacity(STRIP * SIZE));
            for r in r0..r0 + STRIP {
                for c in 0..SIZE {
                    let (x, y) = map(c as f64 + 0.5, r as f64 + 0.5);
                    xs.push(x);
                    ys.push(y);
                }
            }
            let exact = |i: usize| map((i % SIZE) as f64 + 0.5, (r0 + i / SIZE) as f64 + 0.5);
            let points = Points { xs: &xs, ys: &ys, exact: &exact };
            let px = r0 * SIZE..(r0 + STRIP) * SIZE;
            let (reflectance, scl) = outs.split_at_mut(6);
            for (method, outs, data) in
                [(Resampling::Bilinear, reflectance, &bands[..6]), (Resampling::Nearest, scl, &bands[6..])]
            {
                let mut group: Vec<PointBand> = outs
                    .iter_mut()
                    .zip(data)
                    .map(|(out, d)| PointBand {
                        src: Window::new(&decoded, d, Some(0), decoded),
                        out: &mut out[px.clone()],
                        dst_nodata: 0,
                    })
                    .collect();
                resample_points(method, &mut group, &points, (1.0, 1.0));
            }
        }
        best = best.min(started.elapsed().as_secs_f64());
        checksum = outs.iter().flatten().fold(0u64, |a, &v| a.wrapping_mul(31).wrapping_add(v as u64));
    }
    println!("{{\"seconds_per_chunk\": {best:.4}, \"checksum\": {checksum}}}");
}
