//! One chunk through a statistic's `reduce` (cloud masks, morphology, kernel), for
//! before/after comparisons of the mask path: `cargo run --release -p stratus-stats
//! --example bench_reduce -- PLUGIN [SIZE] [TIMES]`. Prints seconds per reduce (best of 5).

use std::time::Instant;
use stratus_stats::{build_statistic, Stack};

fn hash(a: u64, b: u64) -> u64 {
    let mut z = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^ (z >> 31)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let plugin = args.get(1).map_or("gm-s2", String::as_str);
    let size: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(256);
    let times: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(30);
    let cfg = serde_json::json!({"bands": ["B02", "B03", "B04", "B08", "B11", "B12"]});
    let cfg = if plugin == "gm-s2" { cfg } else { serde_json::Value::Null };
    let stat = build_statistic(plugin, &cfg).unwrap();
    let inputs = stat.input_bands();
    let names: Vec<String> = inputs.iter().map(|b| b.name.clone()).collect();
    let mut s = Stack::new(names.clone(), inputs.iter().map(|b| b.nodata).collect(), times, size, size);
    for t in 0..times {
        // Cloud discs (SCL 9) with shadows (3) beside them, specks, vegetation elsewhere.
        let discs: Vec<(i64, i64, i64)> = (0..6u64)
            .map(|k| {
                let h = hash(t as u64, k);
                ((h % size as u64) as i64, ((h >> 20) % size as u64) as i64, 4 + ((h >> 40) % 20) as i64)
            })
            .collect();
        for y in 0..size {
            for x in 0..size {
                let (yi, xi) = (y as i64, x as i64);
                let scl = if discs.iter().any(|&(cy, cx, r)| (yi - cy).pow(2) + (xi - cx).pow(2) <= r * r) {
                    9
                } else if discs.iter().any(|&(cy, cx, r)| (yi - cy - 12).pow(2) + (xi - cx - 8).pow(2) <= r * r) {
                    3
                } else if hash(t as u64, (y * size + x) as u64).is_multiple_of(97) {
                    8
                } else {
                    4
                };
                for (b, name) in names.iter().enumerate() {
                    s.data[[t, b, y, x]] = if name == "SCL" {
                        scl
                    } else {
                        500 + 300 * b as u16 + (hash(t as u64 + 99, (y * size + x) as u64) % 400) as u16
                    };
                }
            }
        }
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t0 = Instant::now();
        std::hint::black_box(stat.reduce(&s).unwrap());
        best = best.min(t0.elapsed().as_secs_f64());
    }
    println!("{plugin} {size}x{size}x{times}: {best:.4} s per reduce (best of 5)");
}
