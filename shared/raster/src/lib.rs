//! Raster I/O with GDAL: CRS transforms for planning, reading a dataset's band warped into
//! an output grid window, and writing Cloud-Optimised GeoTIFFs chunk by chunk.

pub mod cog;
pub mod crs;
pub mod crs_operation;
pub mod egress;
pub mod error;
mod gdal_errors;
pub mod mosaic_warp;
pub mod paths;
pub mod preview;
pub mod read;
pub mod resampling;
pub mod rgba;
pub mod thumbnail;
pub mod vsi;
pub mod warp;

pub use cog::{write_cog, BandWriter, CogOptions};
pub use crs::GdalCrsTransform;
pub use error::RasterError;
pub use read::{read_bands, read_bands_into, read_float_band, BandRequest, OpenInputs, ReadMode};
pub use resampling::Resampling;
pub use warp::{open_input, read_input_with_retries, read_warped};

/// GDAL's block cache cap (MB) unless `GDAL_CACHEMAX` says otherwise: GDAL's own default
/// is 5% of physical memory, which would make a worker's peak depend on the machine. A
/// tile keeps its inputs open, so the cache fills to the cap; it only saves re-decoding
/// blocks shared by neighbouring chunks, and 64 MB decoded the au-30 bench tile as fast as
/// 256 MB with 340 MB less peak memory (BENCHMARKS.md).
pub const GDAL_CACHE_MB: u64 = 64;

/// Quiet GDAL's own stderr output (errors reach us as `Result`s) and set defaults that
/// matter for cloud reads and bounded memory. Safe to call more than once.
pub fn init_gdal() {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        gdal_errors::install_handler();
        // Not overridable: with a directory listing or PAM, GDAL looks for sidecar files
        // (.ovr, .msk, .aux, .aux.xml) and opens them with any driver, which could point
        // it outside the allow-list. COGs carry their overviews and masks inside.
        for (k, v) in [("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR"), ("GDAL_PAM_ENABLED", "NO")] {
            let _ = gdal::config::set_config_option(k, v);
        }
        for (k, v) in [
            ("GDAL_HTTP_MAX_RETRY", "3"),
            ("GDAL_HTTP_RETRY_DELAY", "1"),
            ("GDAL_CACHEMAX", &format!("{GDAL_CACHE_MB}MB")),
        ] {
            if std::env::var_os(k).is_none() {
                let _ = gdal::config::set_config_option(k, v);
            }
        }
    });
}
