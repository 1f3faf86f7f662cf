//! Stratus domain core: grids, periods, task ids, selections, input datasets and planning
//! arithmetic. Pure logic: no file, network or GDAL access happens here, so every rule
//! can be unit-tested and reused by the Lambda and local paths alike. Coordinate
//! reprojection is reached through the [`geometry::CrsTransform`] trait, implemented by
//! the raster crate with GDAL/PROJ.

pub mod area;
pub mod binning;
pub mod dataset;
pub mod digest;
pub mod error;
pub mod geometry;
pub mod grid;
pub mod period;
pub mod product;
pub mod redact;
pub mod sample;
pub mod selection;
pub mod stac_input;
pub mod task_id;
pub mod tile_part;

pub use dataset::{BandAsset, Dataset};
pub use error::CoreError;
pub use grid::{GeoBox, GridSpec, TileIndex};
pub use period::{Frequency, Period};
pub use sample::SampleType;
pub use selection::Selection;
pub use task_id::TaskId;
pub use tile_part::{PixelWindow, TilePart};
