use thiserror::Error;

#[derive(Debug, Error)]
pub enum RasterError {
    /// An input that cannot be read: names the file and says why.
    #[error("cannot read input '{path}': {why}")]
    Input { path: String, why: String },
    /// An input that must not be opened (it would make GDAL read elsewhere).
    #[error("input '{path}' refused: {why}")]
    Refused { path: String, why: String },
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
    /// True for failures worth retrying (network hiccups), false for bad files.
    pub fn is_transient(&self) -> bool {
        if matches!(self, RasterError::Refused { .. }) {
            return false;
        }
        let text = self.to_string().to_ascii_lowercase();
        [
            "timed out",
            "timeout",
            "connection reset",
            "http error code: 5",
            "slowdown",
            "temporarily",
            "couldn't connect",
        ]
        .iter()
        .any(|s| text.contains(s))
    }
}

pub type Result<T, E = RasterError> = std::result::Result<T, E>;
