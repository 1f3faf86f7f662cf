//! The AWS adapters as the engine's [`Remote`]: S3 output stores, SQS queues, the DynamoDB
//! ledger, on one process-wide connection made on first use (a run that stays on the
//! embedded store never connects).

use crate::{Aws, DynamoLedger, S3BlobStore, SqsQueue};
use std::sync::{Arc, Mutex};
use stratus_ports::{BlobStore, Ledger, PortError, Remote, TaskQueue};

type OnConnect = Box<dyn Fn(&Aws) + Send + Sync>;

pub struct AwsRemote {
    aws: Mutex<Option<Arc<Aws>>>,
    /// Run once, with the new connection (the caller points GDAL's `/vsis3/` at it).
    on_connect: OnConnect,
}

impl AwsRemote {
    pub fn new(on_connect: impl Fn(&Aws) + Send + Sync + 'static) -> AwsRemote {
        AwsRemote { aws: Mutex::new(None), on_connect: Box::new(on_connect) }
    }

    /// The connection (made on first use).
    pub fn aws(&self) -> Result<Arc<Aws>, PortError> {
        let mut slot = self.aws.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = slot.as_ref() {
            return Ok(a.clone());
        }
        let aws = Aws::shared()?;
        (self.on_connect)(&aws);
        *slot = Some(aws.clone());
        Ok(aws)
    }
}

impl Remote for AwsRemote {
    fn open_store(&self, location: &str) -> Result<Arc<dyn BlobStore>, PortError> {
        Ok(Arc::new(S3BlobStore::open(self.aws()?, location)?))
    }

    fn open_queue(&self, queue: &str) -> Result<Arc<dyn TaskQueue>, PortError> {
        Ok(Arc::new(SqsQueue::open(self.aws()?, queue)?))
    }

    fn open_ledger(&self, table: &str, overflow: Option<Arc<dyn BlobStore>>) -> Result<Arc<dyn Ledger>, PortError> {
        Ok(Arc::new(DynamoLedger::new(self.aws()?, table, overflow)))
    }
}
