//! Ports between the engine and the outside world, and their embedded adapters.
//!
//! - [`blob::BlobStore`]: objects that are fully written or absent (local directory here;
//!   S3 in the AWS adapter crate);
//! - [`queue::TaskQueue`]: at-least-once task messages with visibility timeouts, receive
//!   counts, dead-lettering and redrive (SQLite here; SQS on AWS);
//! - [`ledger::Ledger`]: runs and tasks with conditional state transitions and counters
//!   (SQLite here; DynamoDB on AWS).

pub mod blob;
pub mod error;
pub mod ledger;
pub mod local_blob;
pub mod queue;
pub mod remote;
pub mod sqlite;
pub mod worker_id;

pub use blob::{BlobStore, ObjectMeta};
pub use error::PortError;
pub use ledger::{
    compress_doc, decompress_doc, gave_up_reason, payload_text, ClaimOptions, ClaimOutcome, DatasetDocs, Ledger,
    NewRun, NewTask, RerunFailed, RunCounts, RunRecord, TaskRecord, TaskState, TileReconciled, Transition,
    DEFAULT_MAX_ATTEMPTS,
};
pub use local_blob::LocalBlobStore;
pub use queue::{QueueDepth, Received, TaskQueue, DEFAULT_MAX_RECEIVES, TASK_VISIBILITY};
pub use remote::Remote;
pub use sqlite::{SqliteLedger, SqliteQueue};
