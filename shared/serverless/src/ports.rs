//! What the functions reach besides their event: the runs (ledger and outputs), queues by
//! URL, and run files. In Lambda these are the AWS adapters ([`AwsPorts`]); handlers are
//! unit-tested, and can run on one machine, on the embedded store ([`EmbeddedPorts`]): the
//! same handler code either way.

use crate::error::{Result, ServerlessError};
use std::sync::Arc;
use stratus_engine::context::{EmbeddedRuns, RunOpener, TableRuns};
use stratus_engine::Context;
use stratus_ports::{BlobStore, SqliteQueue, TaskQueue, DEFAULT_MAX_RECEIVES};

pub trait FunctionPorts: Send + Sync {
    /// Opens runs (each from its own record) in the ledger `table`.
    fn runs(&self, table: &str) -> Arc<dyn RunOpener>;
    /// Where a new run is planned: outputs at `location`, the ledger in `table`.
    fn plan_context(&self, location: &str, table: &str) -> Result<Context>;
    /// A queue by URL.
    fn queue(&self, url: &str) -> Result<Arc<dyn TaskQueue>>;
    /// The bytes of the object at `url` (`s3://bucket/key`: a run file).
    fn read_object(&self, url: &str) -> Result<Vec<u8>>;
}

/// The AWS adapters: DynamoDB, SQS and S3 (installed as the engine's remote ports).
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsPorts;

impl FunctionPorts for AwsPorts {
    fn runs(&self, table: &str) -> Arc<dyn RunOpener> {
        crate::install_aws();
        Arc::new(TableRuns::new(table, None))
    }

    fn plan_context(&self, location: &str, table: &str) -> Result<Context> {
        crate::install_aws();
        Ok(Context::with_table(location, table)?)
    }

    fn queue(&self, url: &str) -> Result<Arc<dyn TaskQueue>> {
        Ok(Arc::new(stratus_aws::SqsQueue::open(crate::aws()?, url)?))
    }

    fn read_object(&self, url: &str) -> Result<Vec<u8>> {
        let (bucket, key) = stratus_aws::parse_s3_url(url)?;
        let store = stratus_aws::S3BlobStore::open(crate::aws()?, &format!("s3://{bucket}"))?;
        Ok(store.get(&key)?)
    }
}

/// The embedded store: every run in one context (its SQLite ledger and outputs), each
/// queue URL an embedded queue of that name, and `s3://BUCKET/KEY` objects read as KEY from
/// `objects` (a local directory standing in for the bucket).
#[derive(Clone)]
pub struct EmbeddedPorts {
    pub ctx: Context,
    pub objects: Arc<dyn BlobStore>,
}

impl FunctionPorts for EmbeddedPorts {
    fn runs(&self, _table: &str) -> Arc<dyn RunOpener> {
        Arc::new(EmbeddedRuns(self.ctx.clone()))
    }

    fn plan_context(&self, _location: &str, _table: &str) -> Result<Context> {
        Ok(self.ctx.clone())
    }

    fn queue(&self, url: &str) -> Result<Arc<dyn TaskQueue>> {
        let db = self.ctx.db.clone().ok_or_else(|| {
            ServerlessError::Engine(stratus_engine::EngineError::Config("embedded ports need an embedded store".into()))
        })?;
        Ok(Arc::new(SqliteQueue::new(db, url, DEFAULT_MAX_RECEIVES)))
    }

    fn read_object(&self, url: &str) -> Result<Vec<u8>> {
        let (_bucket, key) = stratus_aws::parse_s3_url(url)?;
        Ok(self.objects.get(&key)?)
    }
}
