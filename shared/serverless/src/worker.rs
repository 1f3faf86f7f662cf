//! The worker function: each SQS record is one task (one tile). Records that must be
//! retried or dead-lettered come back as `batchItemFailures`; the rest are deleted by
//! Lambda. While a tile runs, the message's visibility is extended with each lease
//! renewal; a tile that would run past the invocation's deadline fails with a reason
//! that says to use the container worker.

use crate::deployment::Deployment;
use crate::HandlerError;
use aws_lambda_events::sqs::SqsBatchResponse;
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;
use stratus_engine::consumer::{apply_disposition, TaskHandler};
use stratus_ports::{TaskQueue, TASK_VISIBILITY};

pub async fn handler(dep: Deployment, event: LambdaEvent<Value>) -> Result<Value, HandlerError> {
    let deadline = crate::runtime::deadline_of(&event.context, dep.deadline_margin);
    crate::blocking(move || handle(&dep, &event.payload, deadline)).await
}

pub fn handle(dep: &Deployment, event: &Value, deadline: Instant) -> Result<SqsBatchResponse, crate::ServerlessError> {
    let table = dep.need(&dep.table, "STRATUS_TABLE")?;
    let task_queue_url = dep.need(&dep.task_queue, "STRATUS_TASK_QUEUE_URL")?;
    // Each message's run is opened from its own record (its output location).
    let runs = dep.ports.runs(table);
    let mut workers = TaskHandler::new(runs, Arc::new(AtomicBool::new(false)), false, Some(deadline));
    let queue = dep.ports.queue(task_queue_url)?;
    let completion: Option<Arc<dyn TaskQueue>> = match dep.completion_queue.as_str() {
        "" => None,
        url => Some(dep.ports.queue(url)?),
    };
    crate::for_each_record(event, "task", |msg| {
        // Renewed with each lease renewal while the tile runs.
        let extend = || {
            if let Err(e) = queue.extend_visibility(&msg.receipt, TASK_VISIBILITY) {
                tracing::warn!(error = %e, "could not extend the message's visibility");
            }
        };
        let handled = workers.handle(msg, queue.as_ref(), &extend, completion.as_deref());
        Ok(apply_disposition(queue.as_ref(), msg, &handled.disposition))
    })
}
