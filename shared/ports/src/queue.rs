//! At-least-once task messages, with SQS's semantics: a received message is invisible for
//! its visibility timeout, then reappears unless deleted; every receive counts, and a
//! message received more than `max_receives` times goes to the dead-letter queue.

use crate::error::Result;
use std::time::Duration;

/// Receives before a message goes to the dead-letter queue, where nothing else says (the
/// embedded queues; the Terraform module's `max_receive_count` default). SQS queues read
/// theirs from the redrive policy.
pub const DEFAULT_MAX_RECEIVES: u32 = 3;

/// How long a received task message stays invisible before its first renewal (Lambda's
/// longest invocation; the container worker's default).
pub const TASK_VISIBILITY: Duration = Duration::from_secs(900);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub message_id: String,
    pub body: String,
    /// Opaque handle for delete / visibility changes (valid for this receive only).
    pub receipt: String,
    /// 1 on the first delivery.
    pub receive_count: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub visible: u64,
    pub in_flight: u64,
    pub dead_letter: u64,
}

pub trait TaskQueue: Send + Sync {
    /// Send bodies (batched by the adapter as its service requires).
    fn send_batch(&self, bodies: &[String]) -> Result<()>;
    /// Receive up to `max` messages, waiting up to `wait` for the first.
    fn receive(&self, max: usize, visibility: Duration, wait: Duration) -> Result<Vec<Received>>;
    fn extend_visibility(&self, receipt: &str, visibility: Duration) -> Result<()>;
    fn delete(&self, receipt: &str) -> Result<()>;
    fn depth(&self) -> Result<QueueDepth>;
    /// Move every dead-lettered message back to the queue with a fresh receive count.
    fn redrive(&self) -> Result<usize>;
    /// Receives after which a message is dead-lettered.
    fn max_receives(&self) -> u32;
    /// A name for logs and status lines.
    fn name(&self) -> String;
}
