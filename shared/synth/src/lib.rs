//! Synthetic Sentinel-2 L2A-like inputs with known truth, for the demo and the tests.
//!
//! Granules in several UTM zones, each a square of `granule_km` on a side at
//! `resolution` metres, observed on `dates` days of a year. Surfaces are land-cover
//! patches (water, forest, grass, crop, bare) with seasonal reflectance plus noise;
//! clouds are spatially correlated blobs (medium / high probability, some thin cirrus)
//! with shadows offset from them; each granule has a no-data corner, as at a swath edge.
//! Everything is a deterministic function of the seed and of position in EPSG:6933, so
//! neighbouring granules agree where they overlap.
//!
//! The truth: a second catalogue (`truth/`) with the same scenes without clouds, and the
//! SCL band of the cloudy scenes itself is the cloud mask.

pub mod field;
pub mod items;
pub mod scene;
pub mod spec;
pub mod truth;
pub mod write;

pub use spec::{Granule, SynthSpec};
pub use write::{generate, SynthSummary};

/// The STAC version of the items, catalogs and collections written (each item links to
/// its Collection, as the STAC schemas require of an item that names one).
pub const STAC_VERSION: &str = "1.1.0";
