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
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stratus_engine::consumer::{Disposition, WorkerCache};
use stratus_engine::messages::TaskMessage;
use stratus_ports::{Received, TaskQueue};

/// Per run: its workers, the task queue (visibility, receive limit) and the completion queue.
type RunHandles = (WorkerCache, Arc<dyn TaskQueue>, Option<Arc<dyn TaskQueue>>);

pub async fn handler(dep: Deployment, event: LambdaEvent<Value>) -> Result<Value, HandlerError> {
    let deadline = crate::runtime::deadline_of(&event.context, dep.deadline_margin);
    crate::blocking(move || handle(&dep, &event.payload, deadline)).await
}

pub fn handle(dep: &Deployment, event: &Value, deadline: Instant) -> Result<SqsBatchResponse, String> {
    let table = dep.need(&dep.table, "STRATUS_TABLE")?;
    let task_queue_url = dep.need(&dep.task_queue, "STRATUS_TASK_QUEUE_URL")?;
    let event: SqsEvent = serde_json::from_value(event.clone()).map_err(|e| format!("not an SQS event: {e}"))?;
    let mut response = SqsBatchResponse::default();
    let mut caches: HashMap<String, RunHandles> = HashMap::new();
    let stop = Arc::new(AtomicBool::new(false));
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let body = record.body.clone().unwrap_or_default();
        let receive_count: u32 =
            record.attributes.get("ApproximateReceiveCount").and_then(|v| v.parse().ok()).unwrap_or(1);
        let msg = Received {
            message_id: id.clone(),
            body: body.clone(),
            receipt: record.receipt_handle.clone().unwrap_or_default(),
            receive_count,
        };
        let fail = |response: &mut SqsBatchResponse| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id.clone();
            response.batch_item_failures.push(f);
        };
        // The run decides the output location; a malformed body is reported (and left to
        // reach the dead-letter queue) without touching the rest of the batch.
        let run_id = match TaskMessage::parse(&body) {
            Ok(m) => m.run_id,
            Err(e) => {
                tracing::error!(message_id = %id, error = %e, "rejected task message");
                fail(&mut response);
                continue;
            }
        };
        if !caches.contains_key(&run_id) {
            let opened = crate::open_run(table, &run_id).and_then(|ctx| {
                let queue = ctx.queue(Some(task_queue_url), &run_id, 3).map_err(|e| e.to_string())?;
                let completion = match dep.completion_queue.as_str() {
                    "" => None,
                    url => Some(ctx.queue(Some(url), &run_id, 3).map_err(|e| e.to_string())?),
                };
                Ok((WorkerCache::new(ctx, stop.clone(), false, Some(deadline)), queue, completion))
            });
            match opened {
                Ok(c) => {
                    caches.insert(run_id.clone(), c);
                }
                Err(e) => {
                    tracing::error!(message_id = %id, run_id = %run_id, error = %e, "task message for a run that cannot be opened");
                    fail(&mut response);
                    continue;
                }
            }
        }
        let (workers, queue, completion) = caches.get_mut(&run_id).expect("inserted above");
        let visibility = Duration::from_secs(900);
        let extend = || {
            if let Err(e) = queue.extend_visibility(&msg.receipt, visibility) {
                tracing::warn!(error = %e, "could not extend the message's visibility");
            }
        };
        let handled = workers.handle(&msg, queue.max_receives(), &extend, completion.as_deref());
        match handled.disposition {
            Disposition::Delete => {}
            Disposition::Retry { after } => {
                // Come back after a backoff rather than the full visibility timeout.
                let _ = queue.extend_visibility(&msg.receipt, after);
                fail(&mut response);
            }
            Disposition::DeadLetter { why } | Disposition::FailedFinal { why } => {
                tracing::error!(message_id = %id, reason = %why, receive_count, "task message failed");
                // Visible again at once: its next receive moves it to the dead-letter queue.
                let _ = queue.extend_visibility(&msg.receipt, Duration::ZERO);
                fail(&mut response);
            }
        }
    }
    Ok(response)
}
