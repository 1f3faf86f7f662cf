//! Handling one received task message, the same way for every consumer: the local
//! `run --from-queue`, the container worker (`stratus worker --from-sqs`) and the Lambda
//! worker. Publishing pages of tasks (the dispatcher) and the completion message live here
//! too, so that all paths agree on what a message means.

use crate::context::Context;
use crate::error::Result;
use crate::messages::{CompletionMessage, FanOutPage, TaskMessage};
use crate::sizing::Executor;
use crate::worker::{TaskOutcome, TaskReport, Worker};
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stratus_ports::ledger::ResetScope;
use stratus_ports::{Received, TaskQueue};

/// What to do with a message after handling it.
#[derive(Debug, Clone, PartialEq)]
pub enum Disposition {
    /// Finished with (done, already done, or failed for good): delete it.
    Delete,
    /// Try again after a while (a retryable failure, or another worker holds the task).
    Retry { after: Duration },
    /// Unusable (malformed, unknown run or task): leave it to reach the dead-letter queue,
    /// where a person can see it.
    DeadLetter { why: String },
    /// The task failed on its last permitted receive: the ledger says failed; the message
    /// goes on to the dead-letter queue, so the two agree and a redrive can retry it.
    FailedFinal { why: String },
}

/// The outcome of one message.
#[derive(Debug, Clone)]
pub struct Handled {
    pub disposition: Disposition,
    pub report: Option<TaskReport>,
}

/// Workers by run, built on first use (a queue may carry several runs' tasks).
pub struct WorkerCache {
    ctx: Context,
    stop: Arc<AtomicBool>,
    overwrite: bool,
    /// A hard deadline for tiles started by this consumer (a Lambda invocation's end).
    deadline: Option<Instant>,
    workers: HashMap<String, Worker>,
}

impl WorkerCache {
    pub fn new(ctx: Context, stop: Arc<AtomicBool>, overwrite: bool, deadline: Option<Instant>) -> WorkerCache {
        WorkerCache { ctx, stop, overwrite, deadline, workers: HashMap::new() }
    }

    fn worker(&mut self, run_id: &str) -> Result<&Worker> {
        if !self.workers.contains_key(run_id) {
            let mut w = Worker::new(self.ctx.clone(), run_id, self.stop.clone())?;
            w.overwrite = self.overwrite;
            w.deadline = self.deadline;
            // A message for a failed task comes back only through a redrive (its last
            // receive sent it to the dead-letter queue): that is a request to retry it,
            // so a console redrive alone completes the run.
            w.rerun_failed = true;
            self.workers.insert(run_id.to_string(), w);
        }
        Ok(&self.workers[run_id])
    }

    /// Handle one task message. `extend` renews the message's visibility (called with
    /// each lease renewal); `completion` receives the completion message if this task
    /// ended the run.
    pub fn handle(
        &mut self,
        msg: &Received,
        max_receives: u32,
        extend: &(dyn Fn() + Sync),
        completion: Option<&dyn TaskQueue>,
    ) -> Handled {
        let body = match TaskMessage::parse(&msg.body) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(message_id = %msg.message_id, error = %e, "rejected task message");
                return Handled { disposition: Disposition::DeadLetter { why: e.to_string() }, report: None };
            }
        };
        let span =
            tracing::info_span!("message", run_id = %body.run_id, task_id = %body.task_id, attempt = msg.receive_count);
        let _g = span.enter();
        let final_attempt = msg.receive_count >= max_receives;
        let ctx = self.ctx.clone();
        let worker = match self.worker(&body.run_id) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "task message for a run that cannot be loaded");
                return Handled { disposition: Disposition::DeadLetter { why: e.to_string() }, report: None };
            }
        };
        let report = match worker.process(&body.task_id, final_attempt, Some(extend)) {
            Ok(r) => r,
            Err(e) => {
                // The ledger could not be reached or the task is unknown: retry (a
                // transient ledger error) until the queue dead-letters it.
                tracing::error!(error = %e, "task could not be processed");
                let why = e.to_string();
                return Handled {
                    disposition: if why.contains("not found") {
                        Disposition::DeadLetter { why }
                    } else {
                        Disposition::Retry { after: backoff(msg.receive_count) }
                    },
                    report: None,
                };
            }
        };
        if report.completion_fired {
            if let Some(q) = completion {
                send_completion(&ctx, &body.run_id, q);
            }
        }
        let disposition = match &report.outcome {
            TaskOutcome::Done(_)
            | TaskOutcome::SkippedExisting
            | TaskOutcome::AlreadyDone
            | TaskOutcome::AlreadyFailed => Disposition::Delete,
            TaskOutcome::Failed { reason, final_attempt: true } => Disposition::FailedFinal { why: reason.clone() },
            TaskOutcome::Failed { .. } | TaskOutcome::Interrupted | TaskOutcome::Busy { .. } => {
                Disposition::Retry { after: backoff(msg.receive_count) }
            }
        };
        Handled { disposition, report: Some(report) }
    }
}

/// Retry soon, with a delay that grows with the receives (capped at 30 s).
fn backoff(receive_count: u32) -> Duration {
    Duration::from_secs(u64::from(receive_count.max(1)).pow(2).min(30))
}

/// Send the run's completion message (retrying a few times: it is sent once per
/// completion, and the ledger has already recorded that it fired).
pub fn send_completion(ctx: &Context, run_id: &str, queue: &dyn TaskQueue) {
    let counts = match ctx.ledger.run(run_id) {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(error = %e, run_id, "completion fired but the run could not be read; completion message not sent");
            return;
        }
    };
    let msg = CompletionMessage {
        run_id: run_id.into(),
        completion: counts.completions,
        total: counts.counts.total,
        done: counts.counts.done,
        failed: counts.counts.failed,
    };
    for attempt in 1..=5u32 {
        match queue.send_batch(&[msg.body()]) {
            Ok(()) => {
                tracing::info!(run_id, completion = msg.completion, done = msg.done, failed = msg.failed, queue = %queue.name(), "run complete: completion message sent");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, "sending the completion message failed");
                std::thread::sleep(Duration::from_millis(200 * u64::from(attempt)));
            }
        }
    }
    tracing::error!(
        run_id,
        "the completion message could not be sent: start the mosaic by hand (stratus generate-mosaic)"
    );
}

/// Publish one fan-out page: mark its tasks queued and send a message for each task that
/// changed. Tasks already queued, running or ended are not sent again, so a page
/// delivered twice publishes nothing twice. If sending fails, the tasks it marked go back
/// to pending (so the page's retry sends them) and the error is returned.
pub fn dispatch_page(ctx: &Context, page: &FanOutPage, queue: &dyn TaskQueue) -> Result<usize> {
    publish_ids(ctx, &page.run_id, &page.task_ids, queue)
}

/// Mark `ids` queued and send their messages, in slices of 100.
pub fn publish_ids(ctx: &Context, run_id: &str, ids: &[String], queue: &dyn TaskQueue) -> Result<usize> {
    let mut sent = 0;
    for slice in ids.chunks(100) {
        let changed = ctx.ledger.mark_queued(run_id, slice)?;
        let bodies: Vec<String> =
            changed.iter().map(|t| TaskMessage { run_id: run_id.into(), task_id: t.clone() }.body()).collect();
        if let Err(e) = queue.send_batch(&bodies) {
            let undone = ctx.ledger.reset(run_id, ResetScope::Queued, Some(&changed))?;
            tracing::warn!(error = %e, returned_to_pending = undone.len(), "sending task messages failed");
            return Err(e.into());
        }
        sent += changed.len();
    }
    Ok(sent)
}

/// Cut a run's pending tasks into fan-out pages of `page_size`, one series of pages per
/// executor (the Lambda worker's tasks first), so each page goes to one queue.
pub fn fan_out_pages(ctx: &Context, run_id: &str, page_size: usize) -> Result<Vec<FanOutPage>> {
    let pending = ctx.ledger.tasks(run_id, Some(stratus_ports::TaskState::Pending))?;
    let mut pages = Vec::new();
    for executor in [Executor::Lambda, Executor::Container] {
        let mine: Vec<_> = pending.iter().filter(|t| Executor::of_summary(&t.summary) == executor).collect();
        for ts in mine.chunks(page_size.max(1)) {
            pages.push(FanOutPage {
                run_id: run_id.into(),
                page: pages.len(),
                first_index: ts[0].index,
                task_ids: ts.iter().map(|t| t.task_id.clone()).collect(),
                executor,
            });
        }
    }
    Ok(pages)
}
