use thiserror::Error;

/// Errors of the domain core. Each names the offending input and, where possible, the fix.
#[derive(Debug, Error)]
pub enum CoreError {
    #[error("unknown grid '{0}': use one of au-10/20/30/60, au_extended_10/20/30/60, africa-10/20/30/60, global-10/20/30/60, albers_au_25 ('-' or '_'), or a custom 'epsg:N;RES;PIXELS' (e.g. 'epsg:6933;30;3200' or 'epsg:6933;-30x30;3200x3200')")]
    UnknownGrid(String),
    #[error("grid '{0}': pixels must be square, with rows running north to south (one resolution, e.g. 'epsg:6933;-30x30;3200x3200' or 'epsg:6933;30;3200'); tiles may be rectangular ('ROWSxCOLUMNS'), pixels may not")]
    NonSquareGrid(String),
    #[error("area {what}: {why}")]
    BadArea { what: String, why: String },
    #[error("unknown frequency '{0}': use one of annual, annual-fy, semiannual, seasonal, quartely (or quarterly), 3month-seasons, rolling-3months, nov-mar, apr-oct, monthly, dekad, all")]
    UnknownFrequency(String),
    #[error("malformed period '{input}': {why} (expected e.g. 2019--P1Y, 2019-07--P1Y, 2019-01--P6M, 2020-05--P1M)")]
    BadPeriod { input: String, why: String },
    #[error("malformed task id '{0}': expected x+003/y-004/2019--P1Y, 2019--P1Y/3/-4 or 2019--P1Y,+003,-004")]
    BadTaskId(String),
    #[error(
        "malformed selection '{input}': {why} (expected a task id, a zero-based index, or a slice start:stop[:step])"
    )]
    BadSelection { input: String, why: String },
    #[error("STAC item '{id}': {why}")]
    BadItem { id: String, why: String },
    #[error("malformed product expression '{input}': {why} (expected 'a', 'a+b' to fuse, or 'a-b-c' to pool)")]
    BadProduct { input: String, why: String },
    #[error("reprojection from EPSG:{from} to EPSG:{to} failed: {why}")]
    Reproject { from: u32, to: u32, why: String },
    #[error("invalid JSON in {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;
