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
//! again. The transition that makes `done + failed == total` fires the run's completion
//! exactly once; a reset re-arms it.

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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    Claimed {
        attempt: u32,
    },
    /// The task has ended. `completion_fired` says this call fired the run's completion:
    /// a ledger whose completion is a separate write from the last task's (DynamoDB)
    /// fires it here if the worker that ended the last task died before it could, and
    /// the caller must then act on it as if it had completed the task itself.
    AlreadyDone {
        completion_fired: bool,
    },
    AlreadyFailed {
        completion_fired: bool,
    },
    /// Another live worker holds it.
    Busy {
        owner: String,
    },
}

/// What a state change did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transition {
    /// False when the task was not in the expected state (a duplicate or stale call).
    pub applied: bool,
    /// This transition made `done + failed == total` and fired the completion.
    pub completion_fired: bool,
}

/// Which tasks a reset applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetScope {
    Failed,
    Done,
    /// Running tasks whose lease has expired or whose local owner died.
    Stale,
    /// Queued tasks whose message was never sent (a dispatch that failed part-way).
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
    /// The task's payload: `{"datasets": [...]}`.
    fn payload(&self, run_id: &str, task_id: &str) -> Result<serde_json::Value>;
    /// pending -> queued. Returns the ids that changed (already-queued ones do not).
    fn mark_queued(&self, run_id: &str, task_ids: &[String]) -> Result<Vec<String>>;
    /// pending | queued | (running with an expired lease) -> running.
    /// `rerun_done` also claims done tasks (overwrite); `rerun_failed` failed ones.
    fn claim(
        &self,
        run_id: &str,
        task_id: &str,
        worker: &str,
        lease: Duration,
        rerun_done: bool,
        rerun_failed: bool,
    ) -> Result<ClaimOutcome>;
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
    /// limits it. Re-arms the run's completion. Returns the ids reset.
    fn reset(&self, run_id: &str, scope: ResetScope, task_ids: Option<&[String]>) -> Result<Vec<String>>;
}
