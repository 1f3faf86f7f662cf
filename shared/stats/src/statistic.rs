//! The plugin interface.

use crate::stack::Stack;
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use stratus_core::SampleType;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StatError {
    #[error("plugin '{plugin}': {why}")]
    Config { plugin: String, why: String },
    #[error("unknown plugin '{0}': available plugins are {1}")]
    UnknownPlugin(String, String),
    #[error("input stack has no band '{0}'")]
    MissingBand(String),
    #[error("plugin '{plugin}' cannot read {dtype} bands: it reads 8- and 16-bit integer bands (int8, uint8, int16, uint16; float32 and int32 too for percentiles, median and mean); set plugin_config 'dtype' to the bands' type, or use a plugin that takes {dtype}")]
    UnsupportedType { plugin: String, dtype: SampleType },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelType {
    Uint8,
    Uint16,
    Int16,
    Float32,
}

impl PixelType {
    /// The type's name as STAC's `data_type` and datacube's `dtype` write it.
    pub fn name(self) -> &'static str {
        match self {
            PixelType::Uint8 => "uint8",
            PixelType::Uint16 => "uint16",
            PixelType::Int16 => "int16",
            PixelType::Float32 => "float32",
        }
    }
}

/// A band a statistic reads, and how it is resampled into the output grid.
#[derive(Debug, Clone, PartialEq)]
pub struct InputBand {
    pub name: String,
    /// Categorical bands (classes, bit flags) must be resampled with nearest.
    pub categorical: bool,
    /// The band's sample type: the stack holds it as 16-bit codes (see
    /// [`stratus_core::sample`]).
    pub dtype: SampleType,
    /// Nodata of the band, as a code of `dtype`.
    pub nodata: u16,
    /// The (scale, offset) the statistic turns stored values into physical ones with
    /// (value = stored x scale + offset), where it does: items that declare other ones
    /// are refused, as the statistic would compute on the wrong values.
    pub units: Option<(f64, f64)>,
    /// Sentinel-2 reflectance: remove the +1000 offset of processing baseline 04.00+
    /// (read from each dataset's metadata) so that baselines are not mixed.
    pub harmonize_s2_offset: bool,
}

impl InputBand {
    /// Continuous (reflectance-like) bands, resampled with the run's method.
    pub fn continuous(names: &[String], enc: &Encoding, harmonize_s2_offset: bool) -> Vec<InputBand> {
        names
            .iter()
            .map(|n| InputBand {
                name: n.clone(),
                categorical: false,
                dtype: enc.dtype,
                nodata: enc.code,
                units: None,
                harmonize_s2_offset: harmonize_s2_offset && !enc.dtype.is_signed(),
            })
            .collect()
    }
    /// Float32 or int32 bands, held as float32 values (NaN where missing; see
    /// [`crate::Stack`]).
    pub fn float(names: &[String], dtype: SampleType) -> Vec<InputBand> {
        names
            .iter()
            .map(|n| InputBand {
                name: n.clone(),
                categorical: false,
                dtype,
                nodata: 0,
                units: None,
                harmonize_s2_offset: false,
            })
            .collect()
    }
    /// The same bands, read as physical values with `scale` and `offset`.
    pub fn in_units(mut bands: Vec<InputBand>, scale: f64, offset: f64) -> Vec<InputBand> {
        for b in &mut bands {
            b.units = Some((scale, offset));
        }
        bands
    }
    /// A cloud-mask band (classes or bit flags): nearest resampling, never harmonised.
    pub fn mask(name: &str, kind: &crate::masks::MaskKind) -> InputBand {
        InputBand::categorical(name, kind.nodata())
    }
    /// DEA's contiguity band (uint8: 1 every band present, 0 not, 255 no data).
    pub fn contiguity(name: &str) -> InputBand {
        InputBand::categorical(name, 255)
    }
    /// An unsigned categorical band (classes, bit flags) with nodata `nodata`.
    pub fn categorical(name: &str, nodata: u16) -> InputBand {
        InputBand {
            name: name.to_string(),
            categorical: true,
            dtype: SampleType::Uint16,
            nodata,
            units: None,
            harmonize_s2_offset: false,
        }
    }
}

/// How a plugin's measurement bands are stored: their sample type and nodata value,
/// checked once when the plugin is built.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Encoding {
    pub dtype: SampleType,
    pub nodata: i32,
    /// `nodata` as a code of the stack.
    pub code: u16,
    zero: i32,
    range: (i32, i32),
}

impl Encoding {
    pub fn new(plugin: &str, dtype: SampleType, nodata: i64) -> Result<Encoding, StatError> {
        let (Some(zero), Some(range)) = (dtype.code_zero(), dtype.range()) else {
            return Err(StatError::UnsupportedType { plugin: plugin.into(), dtype });
        };
        let code = dtype.code(nodata as f64).ok_or_else(|| StatError::Config {
            plugin: plugin.into(),
            why: format!("nodata {nodata} is not a {dtype} value ({} to {})", range.0, range.1),
        })?;
        Ok(Encoding { dtype, nodata: nodata as i32, code, zero, range })
    }
    /// The value a stack code stands for.
    #[inline(always)]
    pub fn value(&self, code: u16) -> i32 {
        code as i32 + self.zero
    }
    /// The output type that holds every value of the input: int8 widens to int16.
    pub fn output_type(&self) -> PixelType {
        match self.dtype {
            SampleType::Uint8 => PixelType::Uint8,
            SampleType::Int8 | SampleType::Int16 => PixelType::Int16,
            _ => PixelType::Uint16,
        }
    }
    /// A computed value stored back in the band's type: rounded half away from zero,
    /// clamped to the type, and moved off nodata (by one, towards the valid side).
    pub fn to_stored(&self, v: f64) -> i32 {
        let (lo, hi) = self.range;
        let r = v.round().clamp(lo as f64, hi as f64) as i32;
        match r {
            r if r != self.nodata => r,
            r if r == hi => r - 1,
            r => r + 1,
        }
    }
    /// Values of the band (nodata included) as an output array of [`Self::output_type`].
    pub fn output(&self, a: Array2<i32>) -> OutputData {
        match self.output_type() {
            PixelType::Uint8 => OutputData::U8(a.mapv(|v| v as u8)),
            PixelType::Int16 => OutputData::I16(a.mapv(|v| v as i16)),
            _ => OutputData::U16(a.mapv(|v| v as u16)),
        }
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
    /// The mask filters' radii are given in the inputs' native pixels, as odc-stats
    /// applies them before reprojecting: the engine calls this with native pixel size /
    /// output pixel size where the two differ, and the radii become output pixels
    /// (rounded). Statistics without filters ignore it.
    fn scale_filters(&mut self, _factor: f64) {}
    fn halo(&self) -> usize {
        0
    }
    /// Reduce a chunk's stack (time x band x y x x, bands in `input_bands` order) to
    /// output bands of the stack's y x x size, in `output_bands` order.
    fn reduce(&self, stack: &Stack) -> Result<Vec<OutputData>, StatError>;
}
