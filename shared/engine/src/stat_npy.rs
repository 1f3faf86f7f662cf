//! `stratus stat`: run one statistics kernel on a NumPy stack laid out (y, x, band, time),
//! for comparisons with other implementations and for benchmarks. Outputs are `.npy`
//! files; the compute time excludes reading and writing.

use crate::error::{EngineError, Result};
use ndarray::{Array2, Array3, Array4};
use ndarray_npy::{read_npy, write_npy};
use ndarray_npy::{ReadableElement, WritableElement};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;
use stratus_stats::geomedian::{geomedian_mads_chunk, Dims, GeomedianParams};
use stratus_stats::percentile::percentiles_chunk_16;

#[derive(Debug, Clone, PartialEq)]
pub enum Kernel {
    /// Geomedian + EMAD, SMAD, BCMAD + count.
    Geomedian,
    /// The geomedian and count only.
    GeomedianOnly,
    Percentiles(Vec<u32>),
    Median,
    Count,
}

impl std::str::FromStr for Kernel {
    type Err = String;
    fn from_str(s: &str) -> Result<Kernel, String> {
        Ok(match s {
            "gm" | "geomedian" => Kernel::Geomedian,
            "gm-only" => Kernel::GeomedianOnly,
            "percentiles" => Kernel::Percentiles(vec![10, 50, 90]),
            "median" => Kernel::Median,
            "count" => Kernel::Count,
            _ => return Err(format!("unknown kernel '{s}': use gm, gm-only, percentiles, median or count")),
        })
    }
}

#[derive(Debug, Clone)]
pub struct StatArgs {
    pub input: PathBuf,
    pub out_dir: PathBuf,
    pub kernel: Kernel,
    pub scale: f64,
    pub offset: f64,
    pub nodata: f64,
    pub eps: f32,
    pub maxiters: u32,
    pub threads: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatReport {
    pub shape: [usize; 4],
    pub dtype: &'static str,
    pub threads: usize,
    pub compute_s: f64,
    /// pixels x observations per second of compute.
    pub pixel_observations_per_s: f64,
    pub outputs: Vec<String>,
}

/// The 16-bit sample types a stack may hold.
trait Sample: Copy + PartialEq + Into<f32> + Send + Sync + ReadableElement + WritableElement + 'static {
    const DTYPE: &'static str;
    /// An i16 with the same order as the value (for the sorting network).
    fn key(self) -> i16;
    fn from_key(k: i16) -> Self;
    fn from_i32(v: i32) -> Self;
}

impl Sample for i16 {
    const DTYPE: &'static str = "int16";
    fn key(self) -> i16 {
        self
    }
    fn from_key(k: i16) -> Self {
        k
    }
    fn from_i32(v: i32) -> Self {
        v as i16
    }
}

impl Sample for u16 {
    const DTYPE: &'static str = "uint16";
    fn key(self) -> i16 {
        (self ^ 0x8000) as i16
    }
    fn from_key(k: i16) -> Self {
        (k as u16) ^ 0x8000
    }
    fn from_i32(v: i32) -> Self {
        v as u16
    }
}

fn write<A: WritableElement, D: ndarray::Dimension>(
    dir: &Path,
    name: &str,
    a: &ndarray::Array<A, D>,
    outs: &mut Vec<String>,
) -> Result<()> {
    let p = dir.join(name);
    write_npy(&p, a)
        .map_err(|e| EngineError::Io { path: p.display().to_string(), source: std::io::Error::other(e.to_string()) })?;
    outs.push(p.display().to_string());
    Ok(())
}

pub fn run_stat(a: &StatArgs) -> Result<StatReport> {
    std::fs::create_dir_all(&a.out_dir)
        .map_err(|e| EngineError::Io { path: a.out_dir.display().to_string(), source: e })?;
    if let Ok(s) = read_npy::<_, Array4<i16>>(&a.input) {
        return run_typed(a, s);
    }
    let s = read_npy::<_, Array4<u16>>(&a.input).map_err(|e| EngineError::Source {
        source_name: a.input.display().to_string(),
        why: format!("not a 4-d int16 or uint16 .npy laid out (y, x, band, time): {e}"),
    })?;
    run_typed(a, s)
}

fn run_typed<T: Sample>(a: &StatArgs, stack: Array4<T>) -> Result<StatReport> {
    let (h, w, bands, times) = stack.dim();
    let flat = stack.as_slice().expect("read_npy gives standard layout");
    let nodata = T::from_i32(a.nodata as i32);
    // (y, x, band, time): a pixel's values are one contiguous band-major run.
    let pixel = |y: usize, x: usize| &flat[(y * w + x) * bands * times..][..bands * times];
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads.max(1))
        .build()
        .map_err(|e| EngineError::Config(e.to_string()))?;
    let (scale, offset) = (a.scale as f32, a.offset as f32);
    let dims = Dims { h, w, bands, times };
    let mut outs = Vec::new();
    let started = Instant::now();
    let compute_s;
    match &a.kernel {
        Kernel::Geomedian | Kernel::GeomedianOnly => {
            let p = GeomedianParams { eps: a.eps, maxiters: a.maxiters, mads: a.kernel == Kernel::Geomedian };
            let gather = |y: usize, x: usize, out: &mut [f32], kept: &mut Vec<usize>| {
                let px = pixel(y, x);
                kept.clear();
                kept.extend((0..times).filter(|&t| (0..bands).all(|b| px[b * times + t] != nodata)));
                let n = kept.len();
                for b in 0..bands {
                    let series = &px[b * times..(b + 1) * times];
                    for (o, &t) in out[b * n..(b + 1) * n].iter_mut().zip(kept.iter()) {
                        *o = series[t].into() * scale + offset;
                    }
                }
                n
            };
            let r = pool.install(|| geomedian_mads_chunk(dims, gather, p));
            compute_s = started.elapsed().as_secs_f64();
            let gm: Array3<f32> = r.gm.permuted_axes([1, 2, 0]).as_standard_layout().to_owned();
            write(&a.out_dir, "gm.npy", &gm, &mut outs)?;
            if p.mads {
                write(&a.out_dir, "emad.npy", &r.emad, &mut outs)?;
                write(&a.out_dir, "smad.npy", &r.smad, &mut outs)?;
                write(&a.out_dir, "bcmad.npy", &r.bcmad, &mut outs)?;
            }
            write(&a.out_dir, "count.npy", &r.count, &mut outs)?;
        }
        Kernel::Percentiles(_) | Kernel::Median => {
            let (ps, min_obs, name) = match &a.kernel {
                Kernel::Percentiles(ps) => (ps.iter().map(|p| *p as f64 / 100.0).collect(), 3, "percentiles.npy"),
                _ => (vec![0.5], 1, "median.npy"),
            };
            // A pixel-band's series is contiguous; values go to the sorting network as
            // order-preserving 16-bit keys.
            let key_at = |y: usize, x: usize, b: usize, t: usize| {
                let v = pixel(y, x)[b * times + t];
                (v != nodata).then(|| v.key())
            };
            // "No percentile" is a value outside the 16-bit keys, so no key can be mistaken for it.
            let none = i32::MIN;
            let r = pool.install(|| percentiles_chunk_16(dims, &ps, min_obs, none, key_at, |k| k as i32));
            compute_s = started.elapsed().as_secs_f64();
            // (band, q, y, x) keys -> (y, x, band, q) values, in one pass.
            let out = Array4::from_shape_fn((h, w, bands, r.dim().1), |(y, x, b, q)| {
                let k = r[[b, q, y, x]];
                if k == none {
                    nodata
                } else {
                    T::from_key(k as i16)
                }
            });
            write(&a.out_dir, name, &out, &mut outs)?;
        }
        Kernel::Count => {
            let count = pool.install(|| {
                Array2::from_shape_fn((h, w), |(y, x)| {
                    let px = pixel(y, x);
                    (0..times).filter(|&t| (0..bands).all(|b| px[b * times + t] != nodata)).count() as u16
                })
            });
            compute_s = started.elapsed().as_secs_f64();
            write(&a.out_dir, "count.npy", &count, &mut outs)?;
        }
    }
    Ok(StatReport {
        shape: [h, w, bands, times],
        dtype: T::DTYPE,
        threads: a.threads.max(1),
        compute_s,
        pixel_observations_per_s: (h * w * times) as f64 / compute_s.max(1e-9),
        outputs: outs,
    })
}
