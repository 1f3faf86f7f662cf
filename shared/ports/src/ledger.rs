//! The run/task ledger: the one place that says what state every tile is in.
//!
//! Task state machine (every transition is conditional on the current state, and moves
//! the run's counters in the same atomic step):
//!
//! ```text
//!   pending --publish--> queued --claim--> running --complete--> done
//!      ^                                     |  \--fail(final)--> failed
//!      |                                     |--fail(retry) / release --> pending
//!      +--------------- reset (retry, redrive, overwrite) <------ failed | done
//! ```
//! A running task whose lease expired (or whose local owner process died) can be claimed
//! again, up to the attempt cap: a claim beyond it fails the task instead (its attempts
//! ended without a word: the process was killed). The transition that makes
//! `done + failed == total` fires the run's completion exactly once, in the same atomic
//! step; a reset re-arms it.
//!
//! Two marks make queue delivery safe:
//! - `dispatched`: a queued task's message was sent. A queued task without it was
//!   stranded by a dispatcher that stopped between marking and sending; publishing sends
//!   it again.
//! - `dead_lettered`: since it failed, a message of the task has gone to the dead-letter
//!   queue. Only then is a first delivery of a failed task's message a redrive (console or
//!   CLI) and allowed to run it again, once: the claim consumes the mark. Any other
//!   delivery of a failed task (the failing message on its way to the dead-letter queue, a
//!   duplicate) leaves it failed.
//!
//! Split tiles (sub-tile parts): a tile too big for one invocation is planned as parts,
//! tasks of their own under the tile's id (`{tile}/part-...`), and the tile itself, whose
//! task assembles the parts. The tile's task is created `blocked`: no claim starts it and
//! no publish sends it. After each part's outcome the worker calls
//! [`Ledger::reconcile_tile`]: when every part is done it unblocks the tile, and exactly
//! one call is told so ([`TileReconciled::Released`]; that worker sends the tile's
//! message); when a part has failed it fails the tile with the part's reason (the tile
//! stays blocked, so a retry or redrive of the part runs the parts first).
//!
//! The completion is also an outbox: `completions` counts firings, `completions_sent`
//! the completion messages known to be sent. A consumer sends the message before it lets
//! go of the task message that ended the run, so a worker killed in between leaves the
//! task message to be delivered again, and its next handler sends the completion.

use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    Pending,
    Queued,
    Running,
    Done,
    Failed,
}

impl TaskState {
    pub const ALL: [TaskState; 5] =
        [TaskState::Pending, TaskState::Queued, TaskState::Running, TaskState::Done, TaskState::Failed];
    pub fn as_str(&self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Done => "done",
            TaskState::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<TaskState> {
        TaskState::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run to create, with its plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewRun {
    pub run_id: String,
    /// The run's configuration (JSON), as the workers need it.
    pub config: serde_json::Value,
    pub config_digest: String,
}

/// A task to create. A worker needs its datasets: `datasets` indexes the plan's dataset
/// documents ([`DatasetDocs`]), so a dataset that touches four tiles is held once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewTask {
    pub task_id: String,
    pub index: usize,
    pub summary: serde_json::Value,
    pub datasets: Vec<u32>,
    /// Parts the tile is split into (0: not split). A split tile's task is created
    /// blocked until its parts are done.
    #[serde(default)]
    pub parts: u32,
}

/// The dataset documents of a plan (JSON objects), by index. A continental plan holds a
/// million of them, so the planner keeps them out of memory and hands them over by index.
pub trait DatasetDocs: Sync {
    fn count(&self) -> usize;
    /// The JSON text of dataset `index`.
    fn doc(&self, index: u32) -> Result<String>;
    /// The same, zstd-compressed (how the embedded ledger stores it: a quarter of the bytes).
    fn doc_zstd(&self, index: u32) -> Result<Vec<u8>> {
        compress_doc(&self.doc(index)?)
    }
}

/// Compress one dataset document for storage.
pub fn compress_doc(doc: &str) -> Result<Vec<u8>> {
    thread_local! {
        // A context per thread: making one per document costs more than compressing it.
        static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> = const { std::cell::RefCell::new(None) };
    }
    let fail = |e: std::io::Error| crate::PortError::Other(format!("compressing a dataset: {e}"));
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = Some(zstd::bulk::Compressor::new(-5).map_err(fail)?);
        }
        c.as_mut().expect("set above").compress(doc.as_bytes()).map_err(fail)
    })
}

/// Undo [`compress_doc`].
pub fn decompress_doc(bytes: &[u8]) -> Result<String> {
    let bad = |why: String| crate::PortError::Other(format!("stored dataset document: {why}"));
    let raw = zstd::stream::decode_all(bytes).map_err(|e| bad(e.to_string()))?;
    String::from_utf8(raw).map_err(|_| bad("not UTF-8".into()))
}

/// Documents held in memory (tests, small plans).
impl DatasetDocs for Vec<serde_json::Value> {
    fn count(&self) -> usize {
        self.len()
    }
    fn doc(&self, index: u32) -> Result<String> {
        self.get(index as usize)
            .map(|v| v.to_string())
            .ok_or_else(|| crate::PortError::Other(format!("no dataset document {index}")))
    }
}

/// A task's payload as the worker reads it: `{"datasets": [doc, ...]}`.
pub fn payload_text(docs: &[String]) -> String {
    format!("{{\"datasets\":[{}]}}", docs.join(","))
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    pub total: u64,
    pub pending: u64,
    pub queued: u64,
    pub running: u64,
    pub done: u64,
    pub failed: u64,
}

impl RunCounts {
    /// Count one more task in `state`.
    pub fn add(&mut self, state: TaskState) {
        self.total += 1;
        match state {
            TaskState::Pending => self.pending += 1,
            TaskState::Queued => self.queued += 1,
            TaskState::Running => self.running += 1,
            TaskState::Done => self.done += 1,
            TaskState::Failed => self.failed += 1,
        }
    }

    pub fn ended(&self) -> u64 {
        self.done + self.failed
    }
    pub fn get(&self, s: TaskState) -> u64 {
        match s {
            TaskState::Pending => self.pending,
            TaskState::Queued => self.queued,
            TaskState::Running => self.running,
            TaskState::Done => self.done,
            TaskState::Failed => self.failed,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub created_at: String,
    pub config: serde_json::Value,
    pub config_digest: String,
    pub counts: RunCounts,
    /// How many times the run's completion has fired (once per completion).
    pub completions: u64,
    /// The highest completion whose message is known to be sent (the outbox).
    pub completions_sent: u64,
    /// The highest completion whose mosaic and report were made.
    pub completions_handled: u64,
}

impl RunRecord {
    /// A completion fired whose message is not known to be sent.
    pub fn completion_unsent(&self) -> bool {
        self.completions > self.completions_sent
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRecord {
    pub run_id: String,
    pub task_id: String,
    pub index: usize,
    pub state: TaskState,
    pub attempts: u32,
    pub owner: Option<String>,
    pub error: Option<String>,
    pub summary: serde_json::Value,
    /// What the worker recorded when it finished (outputs, timings, skipped inputs).
    pub result: Option<serde_json::Value>,
    pub updated_at: String,
    /// Queued and its message sent.
    #[serde(default)]
    pub dispatched: bool,
    /// Failed, and a message of it has gone to the dead-letter queue since.
    #[serde(default)]
    pub dead_lettered: bool,
    /// Parts of a split tile (0: not split).
    #[serde(default)]
    pub parts: u32,
    /// A split tile whose parts are not all done yet: not claimable, not published.
    #[serde(default)]
    pub blocked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// `parts`: how many sub-tile parts the task was split into (0: a whole tile or a
    /// part), so that the worker knows whether to assemble without reading the task again.
    Claimed {
        attempt: u32,
        parts: u32,
    },
    /// The task has ended. `completion_fired` says this call fired the run's completion:
    /// a ledger whose completion is a separate write from the last task's (DynamoDB)
    /// fires it here if the worker that ended the last task died before it could, and
    /// the caller must then act on it as if it had completed the task itself.
    /// The task has ended (a duplicate or late delivery).
    AlreadyDone,
    AlreadyFailed,
    /// Another live worker holds it.
    Busy {
        owner: String,
    },
    /// A split tile waiting for its parts: it is sent again when they are done.
    Blocked,
    /// The task had used its attempts without ending (each attempt's process died): it
    /// is now failed, with a reason that says so. `completion_fired` as for [`Transition`].
    GaveUp {
        attempts: u32,
        completion_fired: bool,
    },
}

/// Whether a claim may run a failed task again.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RerunFailed {
    /// No: a failed task stays failed.
    #[default]
    Never,
    /// Yes (a new local run of the plan, an overwrite).
    Always,
    /// Only if it is marked `dead_lettered` by a message with this dispatch id: the
    /// delivery is that message back from the dead-letter queue (a redrive keeps a
    /// message's body, so its dispatch id). Any other message of a failed task (a
    /// duplicate, a copy sent again) leaves it failed. The claim clears the mark, so one
    /// redrive runs the task once. A redrive brings back every dead-lettered message of the
    /// run: the first claim of one sets all the run's other dead-lettered tasks pending
    /// too, so the run completes once, after the last of them (were some not redriven,
    /// `publish-tasks` sends them).
    IfDeadLettered(String),
}

/// How to claim a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimOptions {
    pub lease: Duration,
    /// Claim done tasks too (overwrite).
    pub rerun_done: bool,
    pub rerun_failed: RerunFailed,
    /// Attempts a task may use; a claim that would exceed it fails the task instead.
    pub max_attempts: u32,
}

/// The attempt cap when nothing else sets it (the task queues' receive limit).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

impl ClaimOptions {
    pub fn new(lease: Duration) -> ClaimOptions {
        ClaimOptions { lease, rerun_done: false, rerun_failed: RerunFailed::Never, max_attempts: DEFAULT_MAX_ATTEMPTS }
    }
}

/// The reason recorded when the attempt cap fails a task.
pub fn gave_up_reason(attempts: u32) -> String {
    format!(
        "gave up after {attempts} attempts that each ended without a result: the worker process was killed \
         (out of memory, a timeout or a crash in a native library?); see the worker's logs, then `stratus retry --failed`"
    )
}

/// What a state change did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transition {
    /// False when the task was not in the expected state (a duplicate or stale call).
    pub applied: bool,
    /// This transition made `done + failed == total` and fired the completion.
    pub completion_fired: bool,
}

/// What [`Ledger::reconcile_tile`] did to a split tile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TileReconciled {
    /// Parts are still to run: nothing changed.
    Waiting,
    /// Every part is done and this call unblocked the tile: the caller sends (or runs) its
    /// assembly. Exactly one call gets this per release.
    Released,
    /// A part has failed and this call failed the tile with its reason.
    Failed { reason: String, completion_fired: bool },
    /// Nothing to do (released or failed before, or not a split tile).
    Unchanged,
}

/// Which tasks a reset applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetScope {
    Failed,
    Done,
    /// Running tasks whose lease has expired or whose local owner died (checked in the
    /// same atomic step as the move, so a renewed lease is never taken).
    Stale,
    /// Queued tasks whose message was never sent (a dispatch that stopped part-way).
    Queued,
}

pub trait Ledger: Send + Sync {
    /// Create a run and its tasks (their datasets from `docs`). Refuses an existing run
    /// unless `overwrite`.
    fn create_run(&self, run: &NewRun, tasks: &[NewTask], docs: &dyn DatasetDocs, overwrite: bool) -> Result<()>;
    fn run(&self, run_id: &str) -> Result<Option<RunRecord>>;
    fn runs(&self) -> Result<Vec<RunRecord>>;
    /// Tasks of a run, in plan order, optionally in one state.
    fn tasks(&self, run_id: &str, state: Option<TaskState>) -> Result<Vec<TaskRecord>>;
    fn task(&self, run_id: &str, task_id: &str) -> Result<Option<TaskRecord>>;
    /// Tasks of a run whose id starts with `prefix` (a split tile's parts), in plan order.
    fn tasks_under(&self, run_id: &str, prefix: &str) -> Result<Vec<TaskRecord>>;
    /// The task's payload: `{"datasets": [...]}`.
    fn payload(&self, run_id: &str, task_id: &str) -> Result<serde_json::Value>;
    /// pending -> queued (not yet dispatched). Returns the ids whose message must be sent
    /// now: those that changed, and those already queued but never dispatched (stranded
    /// by a dispatcher that stopped before sending). Blocked tiles are left pending.
    fn mark_queued(&self, run_id: &str, task_ids: &[String]) -> Result<Vec<String>>;
    /// Record that the messages of these queued tasks were sent.
    fn mark_dispatched(&self, run_id: &str, task_ids: &[String]) -> Result<()>;
    /// pending | queued | (running with an expired lease) -> running, within the attempt
    /// cap; done and failed tasks as `opts` allows.
    fn claim(&self, run_id: &str, task_id: &str, worker: &str, opts: &ClaimOptions) -> Result<ClaimOutcome>;
    /// Mark a failed task `dead_lettered` by the message with `dispatch` id (a message of it
    /// is going to the dead-letter queue; a message without an id cannot be redriven from
    /// the console, only by `stratus redrive`). False if the task is not failed.
    fn mark_dead_lettered(&self, run_id: &str, task_id: &str, dispatch: Option<&str>) -> Result<bool>;
    /// Record that completion `n`'s message was sent (never lowers the mark).
    fn mark_completion_sent(&self, run_id: &str, n: u64) -> Result<()>;
    /// Record that completion `n` was handled (mosaic and report made).
    fn mark_completion_handled(&self, run_id: &str, n: u64) -> Result<()>;
    /// Extend a lease. False if the worker no longer holds the task.
    fn heartbeat(&self, run_id: &str, task_id: &str, worker: &str, lease: Duration) -> Result<bool>;
    /// running -> done.
    fn complete(&self, run_id: &str, task_id: &str, worker: &str, result: &serde_json::Value) -> Result<Transition>;
    /// running -> failed (final) or running -> pending (to be retried).
    fn fail(
        &self,
        run_id: &str,
        task_id: &str,
        worker: &str,
        reason: &str,
        final_attempt: bool,
        result: Option<&serde_json::Value>,
    ) -> Result<Transition>;
    /// running -> pending without counting an attempt (a clean shutdown).
    fn release(&self, run_id: &str, task_id: &str, worker: &str) -> Result<bool>;
    /// Tasks in `scope` -> pending (retry, redrive, overwrite, crash recovery). `task_ids`
    /// limits it. Re-arms the run's completion. Resetting ended tasks gives them a fresh
    /// attempt budget. Returns the ids reset. A split tile stays blocked until released.
    fn reset(&self, run_id: &str, scope: ResetScope, task_ids: Option<&[String]>) -> Result<Vec<String>>;
    /// After a part's outcome: look at every part of the split tile `tile_id` (the tasks
    /// under `{tile_id}/part-`) and release or fail the tile (see [`TileReconciled`]).
    /// Safe to call any number of times, from any worker.
    fn reconcile_tile(&self, run_id: &str, tile_id: &str) -> Result<TileReconciled>;
}
