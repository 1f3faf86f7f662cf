//! What the engine runs against: a ledger, an output store and task queues. The embedded
//! defaults are a SQLite file and a local directory; `s3://` locations, SQS queues and a
//! DynamoDB ledger are reached through the [`Remote`] port, which the program installs
//! ([`install_remote`]: the AWS adapters, from the CLI and the Lambda functions).

use crate::error::{EngineError, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::{Arc, Mutex};
use stratus_ports::sqlite::Db;
use stratus_ports::{BlobStore, Ledger, LocalBlobStore, Remote, SqliteLedger, SqliteQueue, TaskQueue};

#[derive(Clone)]
pub struct Context {
    pub ledger: Arc<dyn Ledger>,
    pub output: Arc<dyn BlobStore>,
    /// The embedded store's database, when running embedded (for the local queue).
    pub db: Option<Db>,
}

/// Where a run's state lives: an output location plus either a DynamoDB table or an
/// embedded store file (default `{location}/_stratus/state.sqlite`).
#[derive(Debug, Clone, Default)]
pub struct Place {
    pub location: String,
    pub state: Option<PathBuf>,
    pub table: Option<String>,
}

/// The embedded store's default path for an output location: `{location}/_stratus/state.sqlite`.
pub fn default_state_path(location: &str) -> PathBuf {
    Path::new(location).join("_stratus").join("state.sqlite")
}

static REMOTE: OnceLock<Arc<dyn Remote>> = OnceLock::new();

/// Install the adapters for remote locations, queues and ledgers (once per process; a
/// later call keeps the first).
pub fn install_remote(remote: Arc<dyn Remote>) {
    let _ = REMOTE.set(remote);
}

/// The installed remote adapters.
pub fn remote() -> Result<&'static Arc<dyn Remote>> {
    REMOTE.get().ok_or_else(|| {
        EngineError::Config(
            "s3:// locations, SQS queues and DynamoDB tables need the AWS adapters, which this program did not install"
                .into(),
        )
    })
}

/// Open an output location as a blob store: a local directory or `s3://bucket/prefix`.
pub fn open_store(location: &str) -> Result<Arc<dyn BlobStore>> {
    crate::access_policy::check_output(location)?;
    if location.starts_with("s3://") {
        return Ok(remote()?.open_store(location)?);
    }
    if location.contains("://") && !location.starts_with("file://") {
        return Err(EngineError::Config(format!(
            "location '{location}': only local directories and s3://BUCKET/PREFIX are supported"
        )));
    }
    let path = location.strip_prefix("file://").unwrap_or(location);
    Ok(Arc::new(LocalBlobStore::new(path)?))
}

/// True for a queue given as an SQS URL or an SQS queue name (anything not embedded).
fn is_sqs(queue: &str) -> bool {
    queue.starts_with("https://") || queue.starts_with("http://") || queue.starts_with("sqs:")
}

impl Context {
    /// The embedded default: local outputs and a SQLite ledger/queue.
    pub fn embedded(location: &str, state: Option<&Path>) -> Result<Context> {
        let output = open_store(location)?;
        let state = state.map(Path::to_path_buf).unwrap_or_else(|| default_state_path(location));
        if location.starts_with("s3://") && state.starts_with("s3:") {
            return Err(EngineError::Config(format!(
                "location '{location}' is on S3: give the ledger as a DynamoDB table (--table / STRATUS_TABLE) or an embedded store file (--state)"
            )));
        }
        let db = Db::open(&state)?;
        Ok(Context { ledger: Arc::new(SqliteLedger::new(db.clone())), output, db: Some(db) })
    }

    /// Outputs at `location` (S3 or local) and the ledger in a (DynamoDB) table. Task
    /// payloads too big for an item go to `{location}/_stratus/payloads/`.
    pub fn with_table(location: &str, table: &str) -> Result<Context> {
        let output = open_store(location)?;
        let ledger = remote()?.open_ledger(table, Some(output.clone()))?;
        Ok(Context { ledger, output, db: None })
    }

    /// A table names the DynamoDB ledger; otherwise the embedded store.
    pub fn open(place: &Place) -> Result<Context> {
        match &place.table {
            Some(t) if !t.is_empty() => Context::with_table(&place.location, t),
            _ => Context::embedded(&place.location, place.state.as_deref()),
        }
    }

    /// The embedded task queue of a run (and its dead-letter queue).
    pub fn embedded_queue(&self, run_id: &str, max_receives: u32) -> Result<SqliteQueue> {
        let db = self
            .db
            .clone()
            .ok_or_else(|| EngineError::Config("no embedded store: the embedded queue is not available".into()))?;
        Ok(SqliteQueue::new(db, &format!("tasks/{run_id}"), max_receives))
    }

    /// A task queue: an SQS queue URL (or `sqs:NAME`), or with none the run's embedded
    /// queue. The SQS queue's redrive policy sets its dead-lettering.
    pub fn queue(&self, queue: Option<&str>, run_id: &str, max_receives: u32) -> Result<Arc<dyn TaskQueue>> {
        match queue {
            Some(q) if is_sqs(q) => Ok(remote()?.open_queue(q.strip_prefix("sqs:").unwrap_or(q))?),
            Some(q) => Err(EngineError::Config(format!(
                "queue '{q}': expected an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME) or sqs:NAME"
            ))),
            None => Ok(Arc::new(self.embedded_queue(run_id, max_receives)?)),
        }
    }
}

/// Opens a run's context from the run's own record: where its outputs (and payload
/// manifests) live. Every consumer of task and completion messages (the container worker,
/// the Lambda worker, the mosaic) opens runs through one, so a run's tiles go where the
/// run says, whatever location the process was started with.
pub trait RunOpener: Send + Sync {
    fn open_run(&self, run_id: &str) -> Result<Context>;
}

/// Runs of an embedded store: they live at the store's own location.
pub struct EmbeddedRuns(pub Context);

impl RunOpener for EmbeddedRuns {
    fn open_run(&self, _run_id: &str) -> Result<Context> {
        Ok(self.0.clone())
    }
}

/// Runs of a DynamoDB ledger, each at the output location its configuration records;
/// `default_location` serves a run that records none. Contexts are kept per run.
pub struct TableRuns {
    table: String,
    default_location: Option<String>,
    opened: Mutex<HashMap<String, Context>>,
}

impl TableRuns {
    pub fn new(table: &str, default_location: Option<&str>) -> TableRuns {
        TableRuns {
            table: table.to_string(),
            default_location: default_location.map(str::to_string),
            opened: Mutex::new(HashMap::new()),
        }
    }
}

impl RunOpener for TableRuns {
    fn open_run(&self, run_id: &str) -> Result<Context> {
        if let Some(ctx) = self.opened.lock().unwrap_or_else(|e| e.into_inner()).get(run_id) {
            return Ok(ctx.clone());
        }
        let ledger = remote()?.open_ledger(&self.table, None)?;
        let run = ledger.run(run_id)?.ok_or_else(|| stratus_ports::PortError::RunNotFound(run_id.into()))?;
        let recorded = crate::config::RunRecordExt::run_config(&run)?.location;
        let location = match (Some(recorded).filter(|l| !l.is_empty()), &self.default_location) {
            (Some(l), _) => l,
            (None, Some(d)) => d.clone(),
            (None, None) => {
                return Err(EngineError::Config(format!(
                    "run '{run_id}' records no output location and no default was given (--location)"
                )))
            }
        };
        let ctx = Context::with_table(&location, &self.table)?;
        self.opened.lock().unwrap_or_else(|e| e.into_inner()).insert(run_id.to_string(), ctx.clone());
        Ok(ctx)
    }
}

impl Context {
    /// How this context's runs are opened: from the ledger table's run records, or (the
    /// embedded store) this context itself.
    pub fn runs(&self, place: &Place) -> Arc<dyn RunOpener> {
        match &place.table {
            Some(t) if !t.is_empty() => Arc::new(TableRuns::new(t, Some(&place.location))),
            _ => Arc::new(EmbeddedRuns(self.clone())),
        }
    }
}
