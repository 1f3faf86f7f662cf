use thiserror::Error;

#[derive(Debug, Error)]
pub enum PortError {
    #[error("object '{0}' not found")]
    NotFound(String),
    #[error("invalid object key '{key}': {why}")]
    BadKey { key: String, why: String },
    #[error("I/O on '{path}': {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("embedded store '{path}': {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("run '{0}' already exists: pass --overwrite to replace its plan")]
    RunExists(String),
    #[error("run '{0}' not found")]
    RunNotFound(String),
    #[error("task '{task}' of run '{run}' not found")]
    TaskNotFound { run: String, task: String },
    /// A call to a remote service failed (after the SDK's own retries).
    #[error("{service} {op}: {why}")]
    Remote { service: String, op: String, why: String, transient: bool },
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = PortError> = std::result::Result<T, E>;

impl PortError {
    /// Worth retrying later: throttling, 5xx, timeouts, dropped connections.
    pub fn is_transient(&self) -> bool {
        matches!(self, PortError::Remote { transient: true, .. })
    }
}
