//! Statistics kernels and the plugin interface. Pure array code (no GDAL, no I/O): a
//! statistic receives a time x band x y x x stack of one spatial chunk and returns its
//! output bands for that chunk.

pub mod derived;
pub mod geomedian;
pub mod gm;
pub mod masks;
pub mod morphology;
pub mod percentile;
pub mod pq;
pub mod registry;
pub mod s2_scl;
pub mod stack;
pub mod statistic;
pub mod summaries;

pub use registry::{build_statistic, plugin_names};
pub use stack::Stack;
pub use statistic::{InputBand, OutputBand, OutputData, PixelType, StatCost, StatError, Statistic};
