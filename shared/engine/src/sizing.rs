//! Task sizing: each task's peak memory, scratch disk and time, estimated from its pixels,
//! observations and bands and the statistic's measured cost, and the executor it fits:
//! the Lambda worker or, beyond the Lambda budget, the container worker.
//!
//! Memory is set by the chunk, not the tile: a chunk's stack (observations x bands x
//! chunk pixels, 16-bit) plus the statistic's working share of it, per-thread read
//! buffers (GDAL's cache is capped, see `stratus_raster`, and holds only open files'
//! blocks), the chunk's outputs and the process itself. Time scales with the whole tile. The constants below are measured by
//! `make bench` (BENCHMARKS.md); `tests/sizing.rs` checks the memory estimate against a
//! measured run.

use crate::config::{LambdaBudget, RunConfig};
use serde::{Deserialize, Serialize};
use stratus_stats::{PixelType, Statistic};

/// The process without data: binary, GDAL and PROJ, allocator arenas (MB; a one-tile
/// `stratus run` measured 115 to 120 MB before its stack, see tests/sizing.rs). Set
/// above that: tests/sizing.rs's 256-px-chunk tile peaked at 307-315 MB alone and at 343
/// MB while the other tests ran, against 315 MB estimated with a base of 128 MB.
pub const BASE_MEMORY_MB: f64 = 160.0;
/// Reading one stack value (pixel x dataset x band) from a COG into the tile's grid, one
/// core (ns): the au-30 tile bench read 46 datasets x 7 bands x 10.24 Mpx in 38.3 s on
/// one thread with the vectorised resampling of `stratus_raster::read` (11.6 ns; 57 s
/// before it, 83 s before the bands shared their weights, 214 s with GDAL's warper per
/// band). A CPU without AVX2 takes the one-pixel-at-a-time path (the 57 s one).
pub const READ_NS_PER_VALUE: f64 = 12.0;
/// Memory one open input holds besides its cached blocks (MB): GDAL's dataset, TIFF
/// directory and overview datasets (tests/sizing.rs: 336 open synthetic COGs with 2
/// overview levels took about 55 MB beyond the block cache; the inputs are counted from
/// observation days here, which undercounts a day of two granules).
pub const OPEN_INPUT_MB: f64 = 0.4;
/// Building and writing one output value (the chunk into its scratch band, then the COG
/// with overviews, deflate), one core (ns): the au-30 bench tile wrote its 143 M output
/// values in 13.4-13.9 s (BENCHMARKS.md, one band after another then).
pub const WRITE_NS_PER_VALUE: f64 = 100.0;
/// Assembling one output value of a split tile (its part read back and pasted, then the
/// COG with overviews), one core (ns): `make bench-split` assembled 9600 x 9600 x 14
/// values in 308 CPU seconds (238 ns a value).
pub const ASSEMBLY_NS_PER_VALUE: f64 = 250.0;
/// Datasets of one day overlap a tile by about this much in all (MGRS granules of 110 km
/// on 96 km tiles): the worker reads a dataset only in the chunks its footprint touches.
pub const DAY_COVERAGE: f64 = 1.3;
/// Lambda gives one vCPU per 1 769 MB of memory, up to 6.
pub const LAMBDA_MB_PER_VCPU: f64 = 1769.0;
/// Share of a second core our reads and kernels use.
pub const PARALLEL_EFFICIENCY: f64 = 0.8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Executor {
    /// The Lambda worker (task queue).
    #[default]
    Lambda,
    /// The long-running container worker (`stratus worker --from-sqs` on the container queue).
    Container,
}

impl Executor {
    pub fn as_str(&self) -> &'static str {
        match self {
            Executor::Lambda => "lambda",
            Executor::Container => "container",
        }
    }
}

/// What one task is expected to need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEstimate {
    pub pixels: u64,
    pub observations: usize,
    pub datasets: usize,
    pub bands: usize,
    pub peak_memory_mb: u64,
    pub tmp_mb: u64,
    /// Single-core seconds (read, compute, write).
    pub core_seconds: f64,
    /// Wall seconds on the Lambda worker (its vCPUs from its memory).
    pub lambda_seconds: f64,
    pub executor: Executor,
    /// Why this executor: the figures against the budget, and the fix where there is one.
    pub reason: String,
    /// A sub-tile part (its outputs are scratch, read back by its tile's assembly).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub part: bool,
    /// A split tile's assembly: how many parts it reads back.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub assembles: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// How a tile is planned: whole (`parts` 1), or as `parts` x `parts` sub-tile parts, each
/// estimated as `part` (the largest), and their assembly.
#[derive(Debug, Clone, PartialEq)]
pub struct TilePlan {
    /// The tile whole: its estimate, executor and reason (when it is split, why).
    pub whole: TaskEstimate,
    pub parts: u32,
    pub part: Option<TaskEstimate>,
    /// Every part's own estimate (parts differ by up to a chunk a side), row by row.
    pub part_estimates: Vec<TaskEstimate>,
    pub assembly: Option<TaskEstimate>,
}

impl TilePlan {
    /// Every invocation the tile takes: itself, or its parts and their assembly.
    pub fn invocations(&self) -> Vec<TaskEstimate> {
        match &self.assembly {
            Some(assembly) if self.parts > 1 => {
                let mut v = self.part_estimates.clone();
                v.push(assembly.clone());
                v
            }
            _ => vec![self.whole.clone()],
        }
    }

    /// The executor of the tile's own task (its assembly when split).
    pub fn executor(&self) -> Executor {
        match &self.assembly {
            Some(a) if self.parts > 1 => a.executor,
            _ => self.whole.executor,
        }
    }
}

/// Sizes tasks of one run.
pub struct Sizer<'a> {
    pub chunk_size: usize,
    pub tile_width: usize,
    pub tile_height: usize,
    pub statistic: &'a dyn Statistic,
    pub budget: LambdaBudget,
}

impl<'a> Sizer<'a> {
    pub fn new(cfg: &RunConfig, statistic: &'a dyn Statistic) -> crate::error::Result<Sizer<'a>> {
        let grid = cfg.grid_spec()?;
        Ok(Sizer {
            chunk_size: cfg.chunk_size,
            tile_width: grid.tile_width,
            tile_height: grid.tile_height,
            statistic,
            budget: cfg.lambda.clone(),
        })
    }

    /// Peak memory (MB) for `observations` at `chunk` pixels a side, with `threads` readers.
    pub fn memory_mb(&self, observations: usize, chunk: usize, threads: usize) -> f64 {
        let halo = self.statistic.halo();
        let inputs = self.statistic.input_bands();
        let bands = inputs.len() as f64;
        // A value's bytes in the stack: a 16-bit code, and a float32 band's value besides.
        let band_bytes: f64 = inputs.iter().map(|b| if b.dtype.held_as_float() { 6.0 } else { 2.0 }).sum();
        let side_x = (chunk.min(self.tile_width) + 2 * halo) as f64;
        let side_y = (chunk.min(self.tile_height) + 2 * halo) as f64;
        let chunk_px = side_x * side_y;
        let stack = observations as f64 * band_bytes * chunk_px;
        let working = stack * self.statistic.cost().working_memory_fraction;
        // Each reading thread holds a dataset's planes, the decoded source windows of one of
        // its grids (at most all its bands) and the fill mask.
        let reads = threads as f64 * chunk_px * (band_bytes * 2.0 + 1.0);
        let outputs: f64 = self.statistic.output_bands().iter().map(|o| dtype_bytes(o.dtype) * chunk_px).sum();
        // Inputs stay open for the whole tile, so GDAL's block cache fills to its cap and
        // each open input keeps its directory and overview structures.
        let open_inputs = observations as f64 * DAY_COVERAGE * bands;
        let inputs_mb = stratus_raster::GDAL_CACHE_MB as f64 + open_inputs * OPEN_INPUT_MB;
        BASE_MEMORY_MB + inputs_mb + (stack + working + reads + outputs) / MB
    }

    /// A whole tile.
    pub fn estimate(&self, observations: usize, datasets: usize) -> TaskEstimate {
        self.estimate_window(observations, datasets, (self.tile_width * self.tile_height) as u64)
    }

    /// A window of `pixels` of the tile (a whole tile, or a sub-tile part): time and
    /// scratch follow the window, memory the chunk.
    pub fn estimate_window(&self, observations: usize, datasets: usize, pixels: u64) -> TaskEstimate {
        let bands = self.statistic.input_bands().len();
        let outputs = self.statistic.output_bands();
        let cost = self.statistic.cost();
        let px = pixels as f64;
        let core_seconds = (full_reads(observations, datasets) * bands as f64 * px * READ_NS_PER_VALUE
            + observations as f64 * bands as f64 * px * cost.compute_ns_per_value
            + outputs.len() as f64 * px * WRITE_NS_PER_VALUE)
            / 1e9;
        let threads = self.lambda_threads();
        let memory = self.memory_mb(observations, self.chunk_size, threads);
        let tmp = self.tmp_mb_of(px);
        self.judge(pixels, observations, datasets, bands, memory, tmp, core_seconds, true)
    }

    /// vCPUs of the Lambda worker (from its memory).
    fn lambda_vcpus(&self) -> f64 {
        (self.budget.memory_mb as f64 / LAMBDA_MB_PER_VCPU).clamp(1.0, 6.0)
    }

    /// A Lambda reads remote inputs: with several reading threads per vCPU.
    fn lambda_threads(&self) -> usize {
        self.lambda_vcpus().ceil() as usize * crate::tile::REMOTE_READ_THREADS_PER_CORE
    }

    /// Assembling a split tile: every part's bands read back and written as the tile's
    /// COGs (the same write the unsplit tile ends with), the parts and the COGs on /tmp.
    pub fn estimate_assembly(&self, k: u32) -> TaskEstimate {
        let px = (self.tile_width * self.tile_height) as f64;
        let outputs = self.statistic.output_bands();
        // Bands are assembled side by side, so the Lambda's vCPUs share the work.
        let core_seconds = outputs.len() as f64 * px * ASSEMBLY_NS_PER_VALUE / 1e9;
        // Each thread holds one part's band as it pastes it (its bytes and GDAL's copy).
        let part_px = stratus_core::TilePart { k: k.max(1), row: 0, col: 0 }
            .window(self.tile_width, self.tile_height, self.chunk_size)
            .map_or(px, |w| (w.width * w.height) as f64);
        let widest = outputs.iter().map(|o| dtype_bytes(o.dtype)).fold(1.0, f64::max);
        let threads = self.lambda_vcpus().ceil().min(outputs.len().max(1) as f64);
        let memory = BASE_MEMORY_MB + stratus_raster::GDAL_CACHE_MB as f64 + threads * 2.0 * part_px * widest / MB;
        let tmp = 2.0 * self.tmp_mb_of(px);
        let bands = self.statistic.input_bands().len();
        TaskEstimate { assembles: k * k, ..self.judge(px as u64, 0, 0, bands, memory, tmp, core_seconds, false) }
    }

    /// How to run a tile: whole, or as the fewest k x k parts that each fit the budget
    /// (with their assembly), or whole on the container worker when nothing fits.
    pub fn plan_tile(&self, observations: usize, datasets: usize) -> TilePlan {
        let whole = self.estimate(observations, datasets);
        let forced = self.budget.parts.filter(|&k| k > 1);
        if forced.is_none() && (whole.executor == Executor::Lambda || !self.budget.split) {
            return TilePlan { whole, parts: 1, part: None, part_estimates: vec![], assembly: None };
        }
        let max_k = stratus_core::TilePart::max_k(self.tile_width, self.tile_height, self.chunk_size);
        let estimate_part = |p: stratus_core::TilePart| {
            let w = p.window(self.tile_width, self.tile_height, self.chunk_size).expect("k is within max_k");
            TaskEstimate { part: true, ..self.estimate_window(observations, datasets, (w.width * w.height) as u64) }
        };
        // The largest part of a split (parts are whole chunks, as even as they allow).
        let part_estimate = |k: u32| estimate_part(stratus_core::TilePart { k, row: 0, col: 0 });
        let each_part = |k: u32| stratus_core::TilePart::all(k).into_iter().map(estimate_part).collect::<Vec<_>>();
        let assembly = |k: u32| self.estimate_assembly(k);
        if let Some(k) = forced {
            let k = k.min(max_k.max(1));
            let part = part_estimate(k);
            return TilePlan {
                whole,
                parts: k,
                part: Some(part),
                part_estimates: each_part(k),
                assembly: Some(assembly(k)),
            };
        }
        let fits = (2..=max_k).map(|k| (k, part_estimate(k))).find(|(_, e)| e.executor == Executor::Lambda);
        match fits {
            Some((k, part)) if assembly(k).executor == Executor::Lambda => TilePlan {
                whole,
                parts: k,
                part: Some(part),
                part_estimates: each_part(k),
                assembly: Some(assembly(k)),
            },
            Some((k, _)) => {
                let assembly = assembly(k);
                let mut whole = whole;
                whole.reason = format!(
                    "{}; {k} x {k} parts would fit but their assembly would not: {}",
                    whole.reason, assembly.reason
                );
                TilePlan { whole, parts: 1, part: None, part_estimates: vec![], assembly: None }
            }
            None => {
                let mut whole = whole;
                whole.reason = if max_k >= 2 {
                    let smallest = part_estimate(max_k);
                    format!(
                        "{}; even its smallest parts ({max_k} x {max_k}, one chunk or more a side) would not fit: {}",
                        whole.reason, smallest.reason
                    )
                } else {
                    format!("{}; it is one chunk a side and cannot be split", whole.reason)
                };
                TilePlan { whole, parts: 1, part: None, part_estimates: vec![], assembly: None }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn judge(
        &self,
        pixels: u64,
        observations: usize,
        datasets: usize,
        bands: usize,
        memory: f64,
        tmp: f64,
        core_seconds: f64,
        suggest_chunk: bool,
    ) -> TaskEstimate {
        let threads = self.lambda_threads();
        let lambda_seconds = core_seconds / speedup(self.lambda_vcpus());
        let b = &self.budget;
        let (mem_limit, s_limit, tmp_limit) =
            (b.memory_mb as f64 * b.headroom, b.timeout_s as f64 * b.headroom, b.tmp_mb as f64 * b.headroom);
        let mut over = Vec::new();
        if memory > mem_limit {
            let fit = if suggest_chunk { self.largest_chunk_within(observations, threads, mem_limit) } else { None };
            over.push(format!(
                "memory {memory:.0} MB > {mem_limit:.0} MB ({:.0}% of {} MB){}",
                b.headroom * 100.0,
                b.memory_mb,
                match fit {
                    Some(c) => format!("; chunk_size {c} would fit"),
                    None => String::new(),
                }
            ));
        }
        if lambda_seconds > s_limit {
            over.push(format!(
                "time {lambda_seconds:.0} s > {s_limit:.0} s ({:.0}% of the {} s timeout)",
                b.headroom * 100.0,
                b.timeout_s
            ));
        }
        if tmp > tmp_limit {
            over.push(format!("/tmp {tmp:.0} MB > {tmp_limit:.0} MB"));
        }
        let (executor, reason) = if over.is_empty() {
            (Executor::Lambda, format!("fits Lambda: {memory:.0} MB, {lambda_seconds:.0} s, /tmp {tmp:.0} MB"))
        } else {
            (Executor::Container, format!("beyond Lambda: {}", over.join("; ")))
        };
        TaskEstimate {
            pixels,
            observations,
            datasets,
            bands,
            peak_memory_mb: memory.ceil() as u64,
            tmp_mb: tmp.ceil() as u64,
            core_seconds,
            lambda_seconds,
            executor,
            reason,
            part: false,
            assembles: 0,
        }
    }

    /// Scratch space (MB) a tile needs: its scratch bands (compressed, sparse) and the
    /// finished COGs come to about the raw size of the outputs.
    pub fn tmp_mb(&self) -> f64 {
        self.tmp_mb_of((self.tile_width * self.tile_height) as f64)
    }

    /// The same for a window of `px` pixels.
    fn tmp_mb_of(&self, px: f64) -> f64 {
        self.statistic.output_bands().iter().map(|o| dtype_bytes(o.dtype) * px).sum::<f64>() / MB
    }

    /// Whether a task of `observations` fits a worker with `limit_mb` of memory at the run's
    /// chunk size; if not, what to change.
    pub fn check_fits(&self, observations: usize, threads: usize, limit_mb: u64) -> Result<(), String> {
        let need = self.memory_mb(observations, self.chunk_size, threads);
        if need <= limit_mb as f64 {
            return Ok(());
        }
        let fit = match self.largest_chunk_within(observations, threads, limit_mb as f64) {
            Some(c) => format!("set chunk_size: {c} (or less) in the run file, or "),
            None => String::new(),
        };
        Err(format!(
            "needs an estimated {need:.0} MB for {observations} observations at chunk_size {} with {threads} \
             threads, but this worker has {limit_mb} MB: {fit}route the task to the container worker \
             (`stratus publish-tasks --container-queue`, or a lower `lambda.memory_mb` so the planner \
             sends it there); nothing was read",
            self.chunk_size
        ))
    }

    /// The largest chunk side (a multiple of 256) whose memory stays within `limit_mb`.
    fn largest_chunk_within(&self, observations: usize, threads: usize, limit_mb: f64) -> Option<usize> {
        (1..=self.chunk_size / 256)
            .rev()
            .map(|k| k * 256)
            .find(|&c| self.memory_mb(observations, c, threads) <= limit_mb)
    }
}

const MB: f64 = 1024.0 * 1024.0;

/// Set to the worker's memory (MB) where neither Lambda nor a cgroup says it.
pub const WORKER_MEMORY_ENV: &str = "STRATUS_WORKER_MEMORY_MB";

/// The memory this worker may use (MB): `STRATUS_WORKER_MEMORY_MB`, else the Lambda
/// function's configured memory, else the cgroup v2 limit of a container; None when
/// nothing limits it (a laptop).
pub fn worker_memory_limit_mb() -> Option<u64> {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.trim().parse::<u64>().ok());
    env(WORKER_MEMORY_ENV).or_else(|| env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")).or_else(|| {
        let max = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok()?;
        max.trim().parse::<u64>().ok().map(|bytes| bytes / (1024 * 1024))
    })
}

/// Whole-tile reads a task's datasets add up to (each read only where it covers).
pub fn full_reads(observations: usize, datasets: usize) -> f64 {
    (observations as f64 * DAY_COVERAGE).min(datasets as f64).max(observations as f64)
}

/// How much faster `vcpus` run a tile than one.
pub fn speedup(vcpus: f64) -> f64 {
    1.0 + (vcpus - 1.0) * PARALLEL_EFFICIENCY
}

/// Bytes per pixel of an output band.
pub fn dtype_bytes(t: PixelType) -> f64 {
    match t {
        PixelType::Uint8 => 1.0,
        PixelType::Uint16 | PixelType::Int16 => 2.0,
        PixelType::Float32 => 4.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizer<'a>(stat: &'a dyn Statistic, grid: &str, chunk: usize) -> Sizer<'a> {
        let cfg = RunConfig::from_yaml(
            &format!("inputs: [x]\ngrid: {grid}\nplugin: gm-s2\nproduct: {{name: p}}\nlocation: /tmp/x\nchunk_size: {chunk}\n"),
            "t",
        )
        .unwrap();
        Sizer::new(&cfg, stat).unwrap()
    }

    #[test]
    fn memory_follows_the_chunk_and_time_the_tile() {
        let gm = stratus_stats::build_statistic("gm-s2", &serde_json::Value::Null).unwrap();
        let small = sizer(gm.as_ref(), "africa-30", 512).estimate(70, 140);
        let big = sizer(gm.as_ref(), "africa-30", 2048).estimate(70, 140);
        assert!(big.peak_memory_mb > 3 * small.peak_memory_mb / 2, "{small:?} {big:?}");
        assert!((small.core_seconds - big.core_seconds).abs() < 1e-9);
        let africa10 = sizer(gm.as_ref(), "africa-10", 512).estimate(70, 140);
        assert!((africa10.core_seconds / small.core_seconds - 9.0).abs() < 0.01, "9x the pixels");
    }

    #[test]
    fn routes_beyond_the_budget_to_the_container_and_says_why() {
        let gm = stratus_stats::build_statistic("gm-s2", &serde_json::Value::Null).unwrap();
        let s = sizer(gm.as_ref(), "africa-30", 1024);
        let ok = s.estimate(40, 80);
        assert_eq!(ok.executor, Executor::Lambda, "{ok:?}");
        // An annual Sentinel-2 stack of a 10 m tile takes longer than 15 minutes.
        let s10 = sizer(gm.as_ref(), "africa-10", 1024);
        let slow = s10.estimate(150, 300);
        assert_eq!(slow.executor, Executor::Container);
        assert!(slow.reason.contains("time"), "{}", slow.reason);
        // A deep stack at a large chunk overflows memory; a smaller chunk is suggested.
        let deep = sizer(gm.as_ref(), "africa-30", 4096).estimate(150, 150);
        assert_eq!(deep.executor, Executor::Container);
        assert!(deep.reason.contains("memory") && deep.reason.contains("chunk_size"), "{}", deep.reason);
    }

    #[test]
    fn a_tile_beyond_the_budget_is_split_into_the_fewest_parts_that_fit() {
        let gm = stratus_stats::build_statistic("gm-s2", &serde_json::Value::Null).unwrap();
        let s10 = sizer(gm.as_ref(), "africa-10", 1024);
        // An annual Sentinel-2 stack of a 10 m tile: too slow whole, fine in parts.
        let plan = s10.plan_tile(150, 300);
        assert_eq!(plan.whole.executor, Executor::Container);
        assert!(plan.parts >= 2, "{plan:?}");
        assert_eq!(plan.part.as_ref().unwrap().executor, Executor::Lambda, "{plan:?}");
        assert_eq!(plan.assembly.as_ref().unwrap().executor, Executor::Lambda, "{plan:?}");
        assert_eq!(plan.executor(), Executor::Lambda);
        // The fewest: one part fewer a side would not fit.
        let k = plan.parts;
        if k > 2 {
            let w = stratus_core::TilePart { k: k - 1, row: 0, col: 0 }.window(9600, 9600, 1024).unwrap();
            let fewer = s10.estimate_window(150, 300, (w.width * w.height) as u64);
            assert_eq!(fewer.executor, Executor::Container, "{fewer:?}");
        }
        assert_eq!(plan.invocations().len(), (k * k + 1) as usize);
        // A tile that fits is not split.
        let small = sizer(gm.as_ref(), "africa-30", 1024).plan_tile(40, 80);
        assert_eq!((small.parts, small.invocations().len()), (1, 1));
        // Memory is set by the chunk: parts do not help a stack too deep for it.
        let deep = sizer(gm.as_ref(), "africa-10", 4096).plan_tile(150, 150);
        assert_eq!((deep.parts, deep.executor()), (1, Executor::Container));
        assert!(deep.whole.reason.contains("smallest parts (3 x 3"), "{}", deep.whole.reason);
        let one_chunk = sizer(gm.as_ref(), "africa-30", 4096).plan_tile(150, 150);
        assert!(one_chunk.whole.reason.contains("cannot be split"), "{}", one_chunk.whole.reason);
    }
}
