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
    /// A location outside what this deployment may read or write (see `access_policy`).
    #[error("{what} '{location}' refused: {why}")]
    Refused { what: &'static str, location: String, why: String },
    /// A task this worker cannot hold in memory (see `sizing::check_fits`).
    #[error("task {task}: {why}")]
    TooLarge { task: String, why: String },
    #[error("interrupted")]
    Interrupted,
    /// The worker no longer holds the task's lease (another worker took it over).
    #[error("task {task}: the lease passed to another worker")]
    LeaseLost { task: String },
}

impl EngineError {
    /// Failures that the same worker would hit again on every attempt: no retry.
    pub fn is_permanent(&self) -> bool {
        matches!(self, EngineError::Refused { .. } | EngineError::TooLarge { .. })
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
