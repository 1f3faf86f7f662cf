//! `stratus stat`: run one statistics kernel on a NumPy stack laid out (y, x, band, time),
//! for comparisons with other implementations and for benchmarks. Outputs are `.npy`
//! files; the compute time excludes reading and writing.

use crate::error::{EngineError, Result};
use ndarray::{Array2, Array3, Array4};
use ndarray_npy::{read_npy, write_npy};
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

/// An input stack in its own dtype, widened to i32 for uniform access.
enum Stack {
    I16(Array4<i16>),
    U16(Array4<u16>),
}

fn read_stack(path: &Path) -> Result<Stack> {
    let err = |why: String| EngineError::Source { source_name: path.display().to_string(), why };
    if let Ok(a) = read_npy::<_, Array4<i16>>(path) {
        return Ok(Stack::I16(a));
    }
    read_npy::<_, Array4<u16>>(path)
        .map(Stack::U16)
        .map_err(|e| err(format!("not a 4-d int16 or uint16 .npy laid out (y, x, band, time): {e}")))
}

fn write<A: ndarray_npy::WritableElement, D: ndarray::Dimension>(
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
    let stack = read_stack(&a.input)?;
    std::fs::create_dir_all(&a.out_dir)
        .map_err(|e| EngineError::Io { path: a.out_dir.display().to_string(), source: e })?;
    let (shape, dtype) = match &stack {
        Stack::I16(x) => (x.dim(), "int16"),
        Stack::U16(x) => (x.dim(), "uint16"),
    };
    let (h, w, bands, times) = shape;
    let nodata = a.nodata as i32;
    let raw = |y: usize, x: usize, b: usize, t: usize| -> Option<i32> {
        let v = match &stack {
            Stack::I16(s) => s[[y, x, b, t]] as i32,
            Stack::U16(s) => s[[y, x, b, t]] as i32,
        };
        (v != nodata).then_some(v)
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads.max(1))
        .build()
        .map_err(|e| EngineError::Config(e.to_string()))?;
    let (scale, offset) = (a.scale as f32, a.offset as f32);
    let mut outs = Vec::new();
    let started = Instant::now();
    let compute_s;
    match &a.kernel {
        Kernel::Geomedian | Kernel::GeomedianOnly => {
            let p = GeomedianParams { eps: a.eps, maxiters: a.maxiters, mads: a.kernel == Kernel::Geomedian };
            let dims = Dims { h, w, bands, times };
            // (y, x, band, time): a pixel's values are one contiguous band-major run.
            /// How a pixel's contiguous band-major run becomes scaled valid observations.
            struct Gather<T> {
                bands: usize,
                times: usize,
                nodata: T,
                scale: f32,
                offset: f32,
            }
            impl<T: Copy + PartialEq + Into<f32>> Gather<T> {
                fn run(&self, px: &[T], out: &mut [f32], kept: &mut Vec<usize>) -> usize {
                    let (bands, times) = (self.bands, self.times);
                    kept.clear();
                    kept.extend((0..times).filter(|&t| (0..bands).all(|b| px[b * times + t] != self.nodata)));
                    let n = kept.len();
                    for b in 0..bands {
                        let series = &px[b * times..(b + 1) * times];
                        for (o, &t) in out[b * n..(b + 1) * n].iter_mut().zip(kept.iter()) {
                            *o = series[t].into() * self.scale + self.offset;
                        }
                    }
                    n
                }
            }
            let r = match &stack {
                Stack::I16(s) => {
                    let flat = s.as_slice().expect("read_npy gives standard layout");
                    let g = Gather { bands, times, nodata: nodata as i16, scale, offset };
                    pool.install(|| {
                        geomedian_mads_chunk(
                            dims,
                            |y, x, out, kept| g.run(&flat[(y * w + x) * bands * times..][..bands * times], out, kept),
                            p,
                        )
                    })
                }
                Stack::U16(s) => {
                    let flat = s.as_slice().expect("read_npy gives standard layout");
                    let g = Gather { bands, times, nodata: nodata as u16, scale, offset };
                    pool.install(|| {
                        geomedian_mads_chunk(
                            dims,
                            |y, x, out, kept| g.run(&flat[(y * w + x) * bands * times..][..bands * times], out, kept),
                            p,
                        )
                    })
                }
            };
            compute_s = started.elapsed().as_secs_f64();
            let gm: Array3<f32> = r.gm.permuted_axes([1, 2, 0]).as_standard_layout().to_owned();
            write(&a.out_dir, "gm.npy", &gm, &mut outs)?;
            write(&a.out_dir, "emad.npy", &r.emad, &mut outs)?;
            write(&a.out_dir, "smad.npy", &r.smad, &mut outs)?;
            write(&a.out_dir, "bcmad.npy", &r.bcmad, &mut outs)?;
            write(&a.out_dir, "count.npy", &r.count, &mut outs)?;
        }
        Kernel::Percentiles(_) | Kernel::Median => {
            let (ps, min_obs, name) = match &a.kernel {
                Kernel::Percentiles(ps) => (ps.iter().map(|p| *p as f64 / 100.0).collect(), 3, "percentiles.npy"),
                _ => (vec![0.5], 1, "median.npy"),
            };
            let dims = Dims { h, w, bands, times };
            // A pixel-band's series is contiguous in (y, x, band, time); values go to the
            // sorting network as 16-bit keys (u16 shifted by 32768 to keep its order).
            let r = match &stack {
                Stack::I16(s) => {
                    let flat = s.as_slice().expect("standard layout");
                    let nd = nodata as i16;
                    pool.install(|| {
                        percentiles_chunk_16(
                            dims,
                            &ps,
                            min_obs,
                            nodata,
                            |y, x, b, out| {
                                let mut n = 0;
                                for &v in &flat[((y * w + x) * bands + b) * times..][..times] {
                                    out[n] = v;
                                    n += (v != nd) as usize;
                                }
                                n
                            },
                            |k| k as i32,
                        )
                    })
                }
                Stack::U16(s) => {
                    let flat = s.as_slice().expect("standard layout");
                    let nd = nodata as u16;
                    pool.install(|| {
                        percentiles_chunk_16(
                            dims,
                            &ps,
                            min_obs,
                            nodata,
                            |y, x, b, out| {
                                let mut n = 0;
                                for &v in &flat[((y * w + x) * bands + b) * times..][..times] {
                                    out[n] = (v ^ 0x8000) as i16;
                                    n += (v != nd) as usize;
                                }
                                n
                            },
                            |k| ((k as u16) ^ 0x8000) as i32,
                        )
                    })
                }
            };
            compute_s = started.elapsed().as_secs_f64();
            // (band, q, y, x) -> (y, x, band, q) in the input dtype, in one pass.
            let shape = (h, w, bands, r.dim().1);
            match &stack {
                Stack::I16(_) => write(
                    &a.out_dir,
                    name,
                    &Array4::from_shape_fn(shape, |(y, x, b, q)| r[[b, q, y, x]] as i16),
                    &mut outs,
                )?,
                Stack::U16(_) => write(
                    &a.out_dir,
                    name,
                    &Array4::from_shape_fn(shape, |(y, x, b, q)| r[[b, q, y, x]] as u16),
                    &mut outs,
                )?,
            }
        }
        Kernel::Count => {
            let count = pool.install(|| {
                Array2::from_shape_fn((h, w), |(y, x)| {
                    (0..times).filter(|&t| (0..bands).all(|b| raw(y, x, b, t).is_some())).count() as u16
                })
            });
            compute_s = started.elapsed().as_secs_f64();
            write(&a.out_dir, "count.npy", &count, &mut outs)?;
        }
    }
    Ok(StatReport {
        shape: [h, w, bands, times],
        dtype,
        threads: a.threads.max(1),
        compute_s,
        pixel_observations_per_s: (h * w * times) as f64 / compute_s.max(1e-9),
        outputs: outs,
    })
}
