use thiserror::Error;

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Core(#[from] stratus_core::CoreError),
    #[error(transparent)]
    Port(#[from] stratus_ports::PortError),
    #[error(transparent)]
    Raster(#[from] stratus_raster::RasterError),
    #[error(transparent)]
    Stat(#[from] stratus_stats::StatError),
    #[error("input source '{source_name}': {why}")]
    Source { source_name: String, why: String },
    #[error("task {task}: {why}")]
    Task { task: String, why: String },
    #[error("I/O on '{path}': {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("interrupted")]
    Interrupted,
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
