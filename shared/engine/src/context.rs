//! What the engine runs against: a ledger and an output store. The embedded defaults are a
//! SQLite file and a local directory.

use crate::error::{EngineError, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use stratus_ports::sqlite::Db;
use stratus_ports::{BlobStore, Ledger, LocalBlobStore, SqliteLedger, SqliteQueue};

#[derive(Clone)]
pub struct Context {
    pub ledger: Arc<dyn Ledger>,
    pub output: Arc<dyn BlobStore>,
    /// The embedded store's database, when running embedded (for the local queue).
    pub db: Option<Db>,
}

/// The embedded store's default path for an output location: `{location}/_stratus/state.sqlite`.
pub fn default_state_path(location: &str) -> PathBuf {
    Path::new(location).join("_stratus").join("state.sqlite")
}

/// Open an output location as a blob store.
pub fn open_store(location: &str) -> Result<Arc<dyn BlobStore>> {
    if location.starts_with("s3://") {
        return Err(EngineError::Config(format!(
            "location '{location}': S3 locations are served by the AWS adapters, which this build does not include; use a local directory"
        )));
    }
    if location.contains("://") && !location.starts_with("file://") {
        return Err(EngineError::Config(format!(
            "location '{location}': only local directories (and s3:// with the AWS adapters) are supported"
        )));
    }
    let path = location.strip_prefix("file://").unwrap_or(location);
    Ok(Arc::new(LocalBlobStore::new(path)?))
}

impl Context {
    /// The embedded default: local outputs and a SQLite ledger/queue.
    pub fn embedded(location: &str, state: Option<&Path>) -> Result<Context> {
        let output = open_store(location)?;
        let state = state.map(Path::to_path_buf).unwrap_or_else(|| default_state_path(location));
        let db = Db::open(&state)?;
        Ok(Context { ledger: Arc::new(SqliteLedger::new(db.clone())), output, db: Some(db) })
    }

    /// The embedded task queue of a run (and its dead-letter queue).
    pub fn embedded_queue(&self, run_id: &str, max_receives: u32) -> Result<SqliteQueue> {
        let db = self
            .db
            .clone()
            .ok_or_else(|| EngineError::Config("no embedded store: the embedded queue is not available".into()))?;
        Ok(SqliteQueue::new(db, &format!("tasks/{run_id}"), max_receives))
    }
}
