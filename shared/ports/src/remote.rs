//! What lies beyond the embedded store: output stores at `s3://` locations, SQS queues and
//! a DynamoDB ledger. The engine reaches them through this port; the AWS adapters implement
//! it, and the programs at the edges (the CLI, the Lambda functions) install it, so the
//! engine itself does not depend on AWS.

use crate::error::Result;
use crate::{BlobStore, Ledger, TaskQueue};
use std::sync::Arc;

pub trait Remote: Send + Sync {
    /// An output store at a remote location (`s3://bucket/prefix`).
    fn open_store(&self, location: &str) -> Result<Arc<dyn BlobStore>>;
    /// A queue by URL or name.
    fn open_queue(&self, queue: &str) -> Result<Arc<dyn TaskQueue>>;
    /// The ledger in `table`; payloads too big for it go to `overflow` (without one, such
    /// payloads can be neither written nor read).
    fn open_ledger(&self, table: &str, overflow: Option<Arc<dyn BlobStore>>) -> Result<Arc<dyn Ledger>>;
}
