//! The plugin interface.

use crate::stack::Stack;
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StatError {
    #[error("plugin '{plugin}': {why}")]
    Config { plugin: String, why: String },
    #[error("unknown plugin '{0}': available plugins are {1}")]
    UnknownPlugin(String, String),
    #[error("input stack has no band '{0}'")]
    MissingBand(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelType {
    Uint8,
    Uint16,
    Int16,
    Float32,
}

/// A band a statistic reads, and how it is resampled into the output grid.
#[derive(Debug, Clone, PartialEq)]
pub struct InputBand {
    pub name: String,
    /// Categorical bands (classes, bit flags) must be resampled with nearest.
    pub categorical: bool,
    /// Nodata of the band as stored.
    pub nodata: u16,
    /// Sentinel-2 reflectance: remove the +1000 offset of processing baseline 04.00+
    /// (read from each dataset's metadata) so that baselines are not mixed.
    pub harmonize_s2_offset: bool,
}

impl InputBand {
    /// Continuous (reflectance-like) bands, resampled with the run's method.
    pub fn continuous(names: &[String], nodata: u16, harmonize_s2_offset: bool) -> Vec<InputBand> {
        names.iter().map(|n| InputBand { name: n.clone(), categorical: false, nodata, harmonize_s2_offset }).collect()
    }
    /// A cloud-mask band (classes or bit flags): nearest resampling, never harmonised.
    pub fn mask(name: &str, kind: &crate::masks::MaskKind) -> InputBand {
        InputBand { name: name.to_string(), categorical: true, nodata: kind.nodata(), harmonize_s2_offset: false }
    }
}

/// A band a statistic writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputBand {
    pub name: String,
    pub dtype: PixelType,
    pub nodata: Option<f64>,
    /// Counts, classes: overviews and mosaics use nearest/mode, not average.
    pub categorical: bool,
}

impl OutputBand {
    /// A uint16 count of observations (no nodata: 0 is a count).
    pub fn count(name: &str) -> OutputBand {
        OutputBand { name: name.into(), dtype: PixelType::Uint16, nodata: None, categorical: true }
    }
    /// A continuous float32 band with NaN as nodata.
    pub fn float32(name: &str) -> OutputBand {
        OutputBand { name: name.into(), dtype: PixelType::Float32, nodata: Some(f64::NAN), categorical: false }
    }
}

/// One output band's pixels for a chunk.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputData {
    U8(Array2<u8>),
    U16(Array2<u16>),
    I16(Array2<i16>),
    F32(Array2<f32>),
}

impl OutputData {
    pub fn dim(&self) -> (usize, usize) {
        match self {
            OutputData::U8(a) => a.dim(),
            OutputData::U16(a) => a.dim(),
            OutputData::I16(a) => a.dim(),
            OutputData::F32(a) => a.dim(),
        }
    }
}

/// What a statistic costs per value of its input stack (one pixel x observation x band),
/// measured by `make bench` on one core of the benchmark machine (see BENCHMARKS.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatCost {
    /// Single-core compute time per stack value.
    pub compute_ns_per_value: f64,
    /// Working memory of `reduce` as a fraction of the stack's bytes (on top of the stack).
    pub working_memory_fraction: f64,
}

impl Default for StatCost {
    /// Per-pixel summaries (counts, masks, means): a few nanoseconds per value.
    fn default() -> Self {
        StatCost { compute_ns_per_value: 3.0, working_memory_fraction: 0.25 }
    }
}

pub trait Statistic: Send + Sync {
    /// Measured cost, for sizing tasks before running them.
    fn cost(&self) -> StatCost {
        StatCost::default()
    }
    /// The plugin name (`pq`, `gm-s2`).
    fn name(&self) -> &str;
    fn input_bands(&self) -> Vec<InputBand>;
    fn output_bands(&self) -> Vec<OutputBand>;
    /// Pixels of context a chunk needs around it (e.g. for morphology); the engine reads
    /// the chunk with this margin and crops the outputs.
    fn halo(&self) -> usize {
        0
    }
    /// Reduce a chunk's stack (time x band x y x x, bands in `input_bands` order) to
    /// output bands of the stack's y x x size, in `output_bands` order.
    fn reduce(&self, stack: &Stack) -> Result<Vec<OutputData>, StatError>;
}
