//! The worker function: each SQS record is one task (one tile). Records that must be
//! retried or dead-lettered come back as `batchItemFailures`; the rest are deleted by
//! Lambda. While a tile runs, the message's visibility is extended with each lease
//! renewal; a tile that would run past the invocation's deadline fails with a reason
//! that says to use the container worker.

use crate::deployment::Deployment;
use crate::HandlerError;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stratus_aws::SqsQueue;
use stratus_engine::consumer::{Disposition, WorkerCache};
use stratus_engine::context::{RunOpener, TableRuns};
use stratus_ports::{Received, TaskQueue};

pub async fn handler(dep: Deployment, event: LambdaEvent<Value>) -> Result<Value, HandlerError> {
    let deadline = crate::runtime::deadline_of(&event.context, dep.deadline_margin);
    crate::blocking(move || handle(&dep, &event.payload, deadline)).await
}

pub fn handle(dep: &Deployment, event: &Value, deadline: Instant) -> Result<SqsBatchResponse, String> {
    let table = dep.need(&dep.table, "STRATUS_TABLE")?;
    let task_queue_url = dep.need(&dep.task_queue, "STRATUS_TASK_QUEUE_URL")?;
    let event: SqsEvent = serde_json::from_value(event.clone()).map_err(|e| format!("not an SQS event: {e}"))?;
    let mut response = SqsBatchResponse::default();
    // Each message's run is opened from its own record (its output location).
    let runs: Arc<dyn RunOpener> = Arc::new(TableRuns::new(table, None));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = WorkerCache::new(runs, stop, false, Some(deadline));
    let aws = crate::aws().map_err(|e| e.to_string())?;
    let queue = SqsQueue::open(aws.clone(), task_queue_url).map_err(|e| e.to_string())?;
    let completion: Option<Arc<dyn TaskQueue>> = match dep.completion_queue.as_str() {
        "" => None,
        url => Some(Arc::new(SqsQueue::open(aws, url).map_err(|e| e.to_string())?)),
    };
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let receive_count: u32 =
            record.attributes.get("ApproximateReceiveCount").and_then(|v| v.parse().ok()).unwrap_or(1);
        let msg = Received {
            message_id: id.clone(),
            body: record.body.clone().unwrap_or_default(),
            receipt: record.receipt_handle.clone().unwrap_or_default(),
            receive_count,
        };
        let visibility = Duration::from_secs(900);
        let extend = || {
            if let Err(e) = queue.extend_visibility(&msg.receipt, visibility) {
                tracing::warn!(error = %e, "could not extend the message's visibility");
            }
        };
        let handled = workers.handle(&msg, queue.max_receives(), &extend, completion.as_deref());
        let keep = match handled.disposition {
            Disposition::Delete => false,
            Disposition::Retry { after } => {
                // Come back after a backoff rather than the full visibility timeout.
                let _ = queue.extend_visibility(&msg.receipt, after);
                true
            }
            Disposition::DeadLetter { why } | Disposition::FailedFinal { why } => {
                tracing::error!(message_id = %id, reason = %why, receive_count, "task message failed");
                // Visible again at once: its next receive moves it to the dead-letter queue.
                let _ = queue.extend_visibility(&msg.receipt, Duration::ZERO);
                true
            }
        };
        if keep {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            response.batch_item_failures.push(f);
        }
    }
    Ok(response)
}
