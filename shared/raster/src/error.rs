use thiserror::Error;

#[derive(Debug, Error)]
pub enum RasterError {
    /// An input that cannot be read: names the file and says why.
    #[error("cannot read input '{path}': {why}")]
    Input { path: String, why: String },
    /// An input that must not be opened (it would make GDAL read elsewhere).
    #[error("input '{path}' refused: {why}")]
    Refused { path: String, why: String },
    /// A remote input the network failed to deliver (GDAL's retries and ours spent, or a
    /// 429 / 5xx / connection failure): worth trying again later. Decided from what GDAL
    /// reported while reading (see `gdal_errors`), never from this error's text.
    #[error("input '{path}' unavailable: {why}")]
    Unavailable { path: String, why: String },
    #[error("cannot write '{path}': {why}")]
    Output { path: String, why: String },
    #[error("unknown CRS EPSG:{epsg}: {why}")]
    Crs { epsg: u32, why: String },
    #[error("GDAL: {0}")]
    Gdal(#[from] gdal::errors::GdalError),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl RasterError {
    /// True for failures worth retrying later (the network's), false for bad files.
    pub fn is_transient(&self) -> bool {
        matches!(self, RasterError::Unavailable { .. })
    }
}

pub type Result<T, E = RasterError> = std::result::Result<T, E>;
