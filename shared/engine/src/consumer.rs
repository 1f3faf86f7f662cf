//! Handling one received task message, the same way for every consumer: the local
//! `run --from-queue`, the container worker (`stratus worker --from-sqs`) and the Lambda
//! worker. Publishing pages of tasks (the dispatcher) and the completion message live here
//! too, so that all paths agree on what a message means.

use crate::context::{Context, RunOpener};
use crate::error::EngineError;
use crate::error::Result;
use crate::messages::{CompletionMessage, FanOutPage, TaskMessage};
use crate::sizing::Executor;
use crate::worker::{Delivery, TaskOutcome, TaskReport, Worker};
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stratus_ports::{PortError, Received, TaskQueue};

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

/// Handles task messages (claim, process, record, say what becomes of the message), with
/// a worker per run built on first use (a queue may carry several runs' tasks), each with
/// its run's own context.
pub struct TaskHandler {
    runs: Arc<dyn RunOpener>,
    stop: Arc<AtomicBool>,
    overwrite: bool,
    /// A hard deadline for tiles started by this consumer (a Lambda invocation's end).
    deadline: Option<Instant>,
    workers: HashMap<String, Worker>,
}

impl TaskHandler {
    pub fn new(
        runs: Arc<dyn RunOpener>,
        stop: Arc<AtomicBool>,
        overwrite: bool,
        deadline: Option<Instant>,
    ) -> TaskHandler {
        TaskHandler { runs, stop, overwrite, deadline, workers: HashMap::new() }
    }

    fn worker(&mut self, run_id: &str) -> Result<&Worker> {
        if !self.workers.contains_key(run_id) {
            let mut w = Worker::new(self.runs.open_run(run_id)?, run_id, self.stop.clone())?;
            w.overwrite = self.overwrite || w.cfg.overwrite;
            w.deadline = self.deadline;
            self.workers.insert(run_id.to_string(), w);
        }
        Ok(&self.workers[run_id])
    }

    /// Handle one task message from `queue`. `extend` renews the message's visibility
    /// (called with each lease renewal); `completion` receives the completion message if
    /// this task ended the run; a split tile released by this part goes to `queue`.
    pub fn handle(
        &mut self,
        msg: &Received,
        queue: &dyn TaskQueue,
        extend: &(dyn Fn() + Sync),
        completion: Option<&dyn TaskQueue>,
    ) -> Handled {
        let max_receives = queue.max_receives();
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
        // A failed task runs again only on a redriven message (see `Delivery::from_queue`).
        let delivery = Delivery::from_queue(msg.receive_count, max_receives, body.dispatch.as_deref());
        let worker = match self.worker(&body.run_id) {
            Ok(w) => w,
            Err(e @ EngineError::Port(PortError::RunNotFound(_))) => {
                tracing::error!(error = %e, "task message for a run that is not in the ledger");
                return Handled { disposition: Disposition::DeadLetter { why: e.to_string() }, report: None };
            }
            Err(e) => {
                tracing::error!(error = %e, "the task's run could not be loaded; retrying");
                return Handled { disposition: Disposition::Retry { after: backoff(msg.receive_count) }, report: None };
            }
        };
        let lease = worker.lease();
        let ctx = worker.ctx.clone();
        let report = match worker.process(&body.task_id, &delivery, Some(extend)) {
            Ok(r) => r,
            // An unknown run or task will not appear by waiting: dead-letter it.
            Err(e @ EngineError::Port(PortError::TaskNotFound { .. } | PortError::RunNotFound(_))) => {
                tracing::error!(error = %e, "task message for a task not in the ledger");
                return Handled { disposition: Disposition::DeadLetter { why: e.to_string() }, report: None };
            }
            Err(e) => {
                // The ledger could not be reached: retry until the queue dead-letters it.
                tracing::error!(error = %e, "task could not be processed");
                return Handled { disposition: Disposition::Retry { after: backoff(msg.receive_count) }, report: None };
            }
        };
        // The completion outbox: a fired completion's message goes out before this task
        // message is let go of, so a worker killed in between leaves the task message to
        // come back, and its next handler sends the completion.
        if report.completion_fired || report.outcome.is_ended() {
            if let Some(q) = completion {
                if let Err(e) = flush_completion(&ctx, &body.run_id, q) {
                    tracing::warn!(error = %e, "the run's completion message is not sent yet; the task message comes back to send it");
                    return Handled {
                        disposition: Disposition::Retry { after: backoff(msg.receive_count) },
                        report: Some(report),
                    };
                }
            }
        }
        // The same outbox for a split tile this part released: its message goes out before
        // the part's message is let go of.
        if let Some(tile) = &report.ready_tile {
            if let Err(e) = publish_ids(&ctx, &body.run_id, std::slice::from_ref(tile), queue) {
                tracing::warn!(tile = %tile, error = %e, "the released tile's message is not sent yet; the part's message comes back to send it");
                return Handled {
                    disposition: Disposition::Retry { after: backoff(msg.receive_count) },
                    report: Some(report),
                };
            }
        }
        let disposition = match &report.outcome {
            // The queue's last receive of a message whose task has not ended and is no
            // fault of it (another worker's lease not yet lapsed, a worker stopped): its
            // next receive would move it to the dead-letter queue and leave the task
            // unended with no message. A fresh copy takes its place.
            TaskOutcome::Busy { .. } | TaskOutcome::Superseded | TaskOutcome::Interrupted
                if msg.receive_count >= max_receives =>
            {
                match queue.send_batch(std::slice::from_ref(&msg.body)) {
                    Ok(()) => {
                        tracing::info!(
                            receive_count = msg.receive_count,
                            "last receive of a task not ended: sent a fresh copy of its message"
                        );
                        Disposition::Delete
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not send a fresh copy of the message on its last receive");
                        Disposition::Retry { after: lease }
                    }
                }
            }
            TaskOutcome::Done(_) | TaskOutcome::SkippedExisting | TaskOutcome::AlreadyDone => Disposition::Delete,
            // A split tile's message before its parts are done (a copy sent again): its
            // release sends it.
            TaskOutcome::Blocked => Disposition::Delete,
            // A failed task's message goes on to the dead-letter queue (so a redrive can
            // run it again): on its last receive, the ledger is told it is on its way.
            TaskOutcome::Failed { reason, final_attempt: true } => {
                note_dead_lettered(&ctx, &body, &delivery);
                Disposition::FailedFinal { why: reason.clone() }
            }
            TaskOutcome::AlreadyFailed => {
                note_dead_lettered(&ctx, &body, &delivery);
                Disposition::FailedFinal {
                    why: "the task has failed; this message goes to the dead-letter queue".into(),
                }
            }
            TaskOutcome::Failed { .. } | TaskOutcome::Interrupted => {
                Disposition::Retry { after: backoff(msg.receive_count) }
            }
            // Another worker holds the task: look again when its lease would have lapsed,
            // not sooner (a shorter visibility would hand its message to a third worker).
            TaskOutcome::Busy { .. } | TaskOutcome::Superseded => Disposition::Retry { after: lease },
        };
        Handled { disposition, report: Some(report) }
    }
}

/// On a failed task's message's last receive, mark the task `dead_lettered`: the queue
/// moves the message to its dead-letter queue next, and a redrive of it may run the task.
fn note_dead_lettered(ctx: &Context, msg: &TaskMessage, delivery: &Delivery) {
    if !delivery.final_attempt {
        return;
    }
    if let Err(e) = ctx.ledger.mark_dead_lettered(&msg.run_id, &msg.task_id, msg.dispatch.as_deref()) {
        // Without the mark a console redrive of this message leaves the task failed (it
        // says so); `stratus redrive` still retries it.
        tracing::warn!(error = %e, "could not mark the failed task dead-lettered");
    }
    // A part's tile failed with it and has no message of its own: marked too, so that the
    // redrive of the part's message sets the tile pending with it.
    if let Ok((tile, Some(_))) = stratus_core::TilePart::parse_task_id(&msg.task_id) {
        if let Err(e) = ctx.ledger.mark_dead_lettered(&msg.run_id, &tile.to_string(), None) {
            tracing::warn!(error = %e, "could not mark the failed part's tile dead-lettered");
        }
    }
}

/// Act on a message's disposition, the same way for every consumer: delete it; make it
/// visible again after a while; or make it visible at once, so that its next receive moves
/// it to the dead-letter queue. Returns whether the message stays in the queue (a Lambda
/// batch reports it as an item failure).
pub fn apply_disposition(queue: &dyn TaskQueue, msg: &Received, disposition: &Disposition) -> bool {
    let (keep, result) = match disposition {
        Disposition::Delete => (false, queue.delete(&msg.receipt)),
        Disposition::Retry { after } => (true, queue.extend_visibility(&msg.receipt, *after)),
        Disposition::DeadLetter { why } | Disposition::FailedFinal { why } => {
            tracing::error!(message_id = %msg.message_id, reason = %why, receive_count = msg.receive_count, "task message failed; it goes on to the dead-letter queue");
            (true, queue.extend_visibility(&msg.receipt, Duration::ZERO))
        }
    };
    if let Err(e) = result {
        // The message comes back after its visibility timeout either way.
        tracing::warn!(message_id = %msg.message_id, error = %e, "could not act on the message's disposition");
    }
    keep
}

/// Tries at sending a completion message before the handler gives up (the message stays
/// unsent in the outbox, and the task message's next handler sends it).
const COMPLETION_SEND_ATTEMPTS: u32 = 3;

/// Retry soon, with a delay that grows with the receives (capped at 30 s).
fn backoff(receive_count: u32) -> Duration {
    Duration::from_secs(u64::from(receive_count.max(1)).pow(2).min(30))
}

/// Send the run's completion message if one has fired and is not known to be sent (the
/// outbox), then record it sent. A duplicate send (two handlers at once) is absorbed by
/// the mosaic, which handles each completion number once.
pub fn flush_completion(ctx: &Context, run_id: &str, queue: &dyn TaskQueue) -> Result<()> {
    let Some(run) = ctx.ledger.run(run_id)? else { return Ok(()) };
    if !run.completion_unsent() {
        return Ok(());
    }
    let msg = CompletionMessage {
        run_id: run_id.into(),
        completion: run.completions,
        total: run.counts.total,
        done: run.counts.done,
        failed: run.counts.failed,
    };
    let mut attempt = 1u32;
    loop {
        match queue.send_batch(&[msg.body()]) {
            Ok(()) => break,
            Err(e) if attempt < COMPLETION_SEND_ATTEMPTS && e.is_transient() => {
                tracing::warn!(error = %e, attempt, "sending the completion message failed; retrying");
                std::thread::sleep(Duration::from_millis(200 * u64::from(attempt)));
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    ctx.ledger.mark_completion_sent(run_id, msg.completion)?;
    tracing::info!(run_id, completion = msg.completion, done = msg.done, failed = msg.failed, queue = %queue.name(), "run complete: completion message sent");
    Ok(())
}

/// Publish one fan-out page: mark its tasks queued, send a message for each, then mark
/// them dispatched. Tasks already dispatched, running or ended are not sent again, so a
/// page delivered twice publishes nothing twice; a page whose dispatcher stopped between
/// marking and sending sends the stranded tasks on its next delivery. If sending fails,
/// the error is returned and the tasks stay queued, undispatched, for the retry.
pub fn dispatch_page(ctx: &Context, page: &FanOutPage, queue: &dyn TaskQueue) -> Result<usize> {
    publish_ids(ctx, &page.run_id, &page.task_ids, queue)
}

/// Mark `ids` queued, send their messages and mark them dispatched, in slices of 100.
pub fn publish_ids(ctx: &Context, run_id: &str, ids: &[String], queue: &dyn TaskQueue) -> Result<usize> {
    let mut sent = 0;
    for slice in ids.chunks(100) {
        let to_send = ctx.ledger.mark_queued(run_id, slice)?;
        let bodies: Vec<String> = to_send.iter().map(|t| TaskMessage::new(run_id, t).body()).collect();
        if let Err(e) = queue.send_batch(&bodies) {
            tracing::warn!(error = %e, undispatched = to_send.len(), "sending task messages failed; they are sent on the next try");
            return Err(e.into());
        }
        ctx.ledger.mark_dispatched(run_id, &to_send)?;
        sent += to_send.len();
    }
    Ok(sent)
}

/// Cut a run's pending tasks into fan-out pages of `page_size`, one series of pages per
/// executor (the Lambda worker's tasks first), so each page goes to one queue.
pub fn fan_out_pages(ctx: &Context, run_id: &str, page_size: usize) -> Result<Vec<FanOutPage>> {
    let pending = ctx.ledger.tasks(run_id, Some(stratus_ports::TaskState::Pending))?;
    let mut pages = Vec::new();
    for executor in [Executor::Lambda, Executor::Container] {
        // A blocked split tile is sent when its parts are done.
        let mine: Vec<_> = pending
            .iter()
            .filter(|t| !t.blocked && crate::task_summary::TaskSummary::of(t).executor == executor)
            .collect();
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
