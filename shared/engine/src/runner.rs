//! Running a plan on this machine: N worker threads take tasks either straight from the
//! ledger (a whole plan or a selection) or from the embedded queue (`--from-queue`).

use crate::consumer::{apply_disposition, publish_ids, TaskHandler};
use crate::context::Context;
use crate::error::{EngineError, Result};
use crate::layout::Layout;
pub use crate::messages::TaskMessage;
use crate::sizing::Executor;
use crate::worker::{Delivery, TaskOutcome, TaskReport, Worker};
use serde::{Deserialize, Serialize};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stratus_core::{Selection, TaskId};
use stratus_ports::ledger::ResetScope;
use stratus_ports::{TaskQueue, TaskState};

/// Told about progress (the CLI draws a bar; tests count).
pub trait Progress: Send + Sync {
    fn begin(&self, total: u64);
    fn advance(&self, report: &TaskReport);
    fn finish(&self);
}

/// No-op progress.
pub struct Silent;
impl Progress for Silent {
    fn begin(&self, _: u64) {}
    fn advance(&self, _: &TaskReport) {}
    fn finish(&self) {}
}

#[derive(Clone)]
pub struct RunOptions {
    pub workers: usize,
    pub selection: Vec<Selection>,
    pub overwrite: bool,
    pub stop: Arc<AtomicBool>,
    /// Queue consumers: how long a received message stays invisible (renewed while a
    /// tile runs).
    pub visibility: Duration,
    /// Queue consumers: where the completion message goes when a task ends the run.
    pub completion: Option<Arc<dyn TaskQueue>>,
    /// Queue consumers: how each message's run is opened (default: the context's own
    /// store, for the embedded queue).
    pub runs: Option<Arc<dyn crate::context::RunOpener>>,
}

impl RunOptions {
    pub fn new(workers: usize, stop: Arc<AtomicBool>) -> RunOptions {
        RunOptions {
            workers,
            selection: Vec::new(),
            overwrite: false,
            stop,
            visibility: Duration::from_secs(300),
            completion: None,
            runs: None,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FailedTask {
    pub task_id: String,
    pub reason: String,
}

/// What a run (or one consumer's share of it) did: written as the run's `summary.json`
/// and printed by the CLI. The full report is [`crate::report::RunReport`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: String,
    pub selected: usize,
    pub processed: usize,
    pub skipped_existing: usize,
    pub already_done: usize,
    pub busy: usize,
    pub failed: Vec<FailedTask>,
    pub interrupted: bool,
    pub elapsed_s: f64,
    pub completion_fired: bool,
    /// Where the run summary was written.
    pub summary_url: String,
}

impl RunSummary {
    fn add(&mut self, r: &TaskReport) {
        match &r.outcome {
            TaskOutcome::Done(_) => self.processed += 1,
            TaskOutcome::SkippedExisting => self.skipped_existing += 1,
            TaskOutcome::AlreadyDone => self.already_done += 1,
            TaskOutcome::Busy { .. } | TaskOutcome::Superseded => self.busy += 1,
            TaskOutcome::Failed { reason, final_attempt: true } => {
                self.failed.push(FailedTask { task_id: r.task_id.clone(), reason: reason.clone() })
            }
            TaskOutcome::AlreadyFailed | TaskOutcome::Failed { .. } => {}
            TaskOutcome::Interrupted => self.interrupted = true,
            TaskOutcome::Blocked => {}
        }
        self.completion_fired |= r.completion_fired;
    }
}

/// Select task ids of a run (plan order). No selection: every task. A selection names
/// tiles; a split tile brings its parts.
pub fn select_tasks(ctx: &Context, run_id: &str, selection: &[Selection]) -> Result<Vec<String>> {
    let tasks = ctx.ledger.tasks(run_id, None)?;
    if selection.is_empty() {
        return Ok(tasks.into_iter().map(|t| t.task_id).collect());
    }
    // The run's tiles in plan order, each with its tasks (its parts, then itself).
    let mut tiles: Vec<(TaskId, Vec<String>)> = Vec::new();
    for t in &tasks {
        let (tile, _) = stratus_core::TilePart::parse_task_id(&t.task_id)?;
        match tiles.iter_mut().find(|(id, _)| *id == tile) {
            Some((_, ids)) => ids.push(t.task_id.clone()),
            None => tiles.push((tile, vec![t.task_id.clone()])),
        }
    }
    let mut out = Vec::new();
    for s in selection {
        for i in s.indices(tiles.len(), |id| tiles.iter().position(|(x, _)| x == id))? {
            for id in &tiles[i].1 {
                if !out.contains(id) {
                    out.push(id.clone());
                }
            }
        }
    }
    Ok(out)
}

/// `selection` (empty: all) narrowed to the tiles `area` touches in the run's grid: each
/// kept tile once (its parts come with it). An area that keeps nothing is an error, not
/// "everything".
pub fn select_in_area(
    ctx: &Context,
    run_id: &str,
    selection: &[Selection],
    area: &stratus_core::area::Area,
    transform: &dyn stratus_core::geometry::CrsTransform,
) -> Result<Vec<Selection>> {
    use crate::config::RunRecordExt;
    let record = ctx.ledger.run(run_id)?.ok_or_else(|| EngineError::Config(format!("no run '{run_id}'")))?;
    let grid = record.run_config()?.grid_spec()?;
    let tiles = area.tiles(&grid, transform)?;
    let mut out = Vec::new();
    for id in select_tasks(ctx, run_id, selection)? {
        let (tile, _) = stratus_core::TilePart::parse_task_id(&id)?;
        if tiles.contains(&tile.tile) && !out.contains(&Selection::Id(tile)) {
            out.push(Selection::Id(tile));
        }
    }
    if out.is_empty() {
        return Err(EngineError::Config(format!(
            "no task of run '{run_id}' is in the area: it touches {} tile(s) of {}, none of them planned{}",
            tiles.len(),
            grid.name,
            if selection.is_empty() { "" } else { " and selected" }
        )));
    }
    Ok(out)
}

/// What `run` would do with a tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WouldDo {
    /// No outputs yet: the tile would be made.
    Make,
    /// Outputs complete with this configuration: skipped.
    Skip,
    /// Outputs complete and `--overwrite` given: made again.
    Overwrite,
    /// Outputs made with another configuration: made again, replacing them.
    Replace,
}

impl std::fmt::Display for WouldDo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WouldDo::Make => "new: would be made",
            WouldDo::Skip => "complete: skipped",
            WouldDo::Overwrite => "complete: would be overwritten (--overwrite)",
            WouldDo::Replace => "made with another configuration: would be replaced",
        })
    }
}

/// What running `selection` would do, tile by tile (sub-tile parts go with their tile),
/// reading nothing but the tiles' STAC items.
pub fn dry_run(
    ctx: &Context,
    run_id: &str,
    selection: &[Selection],
    overwrite: bool,
) -> Result<Vec<(TaskId, WouldDo)>> {
    use crate::config::RunRecordExt;
    use crate::tile::{existing_outputs, ExistingOutputs};
    let record = ctx.ledger.run(run_id)?.ok_or_else(|| EngineError::Config(format!("no run '{run_id}'")))?;
    let cfg = record.run_config()?;
    let overwrite = overwrite || cfg.overwrite;
    let layout = Layout::of(&cfg);
    let digest = cfg.digest();
    let mut out: Vec<(TaskId, WouldDo)> = Vec::new();
    for id in select_tasks(ctx, run_id, selection)? {
        let (tile, _) = stratus_core::TilePart::parse_task_id(&id)?;
        if out.iter().any(|(t, _)| *t == tile) {
            continue;
        }
        let would = match existing_outputs(ctx.output.as_ref(), &layout, &tile, &digest)? {
            ExistingOutputs::Absent => WouldDo::Make,
            ExistingOutputs::Complete if overwrite => WouldDo::Overwrite,
            ExistingOutputs::Complete => WouldDo::Skip,
            ExistingOutputs::OtherConfig => WouldDo::Replace,
        };
        out.push((tile, would));
    }
    Ok(out)
}

fn new_worker(ctx: &Context, run_id: &str, opts: &RunOptions) -> Result<Worker> {
    let mut w = Worker::new(ctx.clone(), run_id, opts.stop.clone())?;
    w.overwrite = opts.overwrite || w.cfg.overwrite;
    Ok(w)
}

/// Run the selected tasks of a plan with `workers` threads, straight from the ledger.
pub fn run_plan(ctx: &Context, run_id: &str, opts: &RunOptions, progress: &dyn Progress) -> Result<RunSummary> {
    let started = Instant::now();
    // Tasks left running by a crashed or killed run on this machine are taken back now.
    let reclaimed = ctx.ledger.reset(run_id, ResetScope::Stale, None)?;
    if !reclaimed.is_empty() {
        tracing::info!(count = reclaimed.len(), "reclaimed tasks left running by a stopped process");
    }
    let selected = select_tasks(ctx, run_id, &opts.selection)?;
    let todo: VecDeque<String> = selected.iter().cloned().collect();
    let report = Mutex::new(RunSummary { run_id: run_id.into(), selected: selected.len(), ..Default::default() });
    progress.begin(todo.len() as u64);
    let queue = Mutex::new(todo);
    let first_error: Mutex<Option<EngineError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..opts.workers.max(1) {
            s.spawn(|| {
                let worker = match new_worker(ctx, run_id, opts) {
                    Ok(w) => w,
                    Err(e) => {
                        first_error.lock().unwrap().get_or_insert(e);
                        return;
                    }
                };
                loop {
                    if opts.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let Some(task) = queue.lock().unwrap().pop_front() else {
                        return;
                    };
                    // A new run of a plan retries what failed before: those tiles are not complete.
                    match worker.process(&task, &Delivery::local(), None) {
                        // A split tile taken before its last part ended: the part that
                        // releases it puts it back on the list.
                        Ok(r) if r.outcome == TaskOutcome::Blocked => {}
                        Ok(r) => {
                            if let Some(tile) = &r.ready_tile {
                                let mut q = queue.lock().unwrap();
                                if !q.contains(tile) {
                                    q.push_back(tile.clone());
                                }
                            }
                            report.lock().unwrap().add(&r);
                            progress.advance(&r);
                        }
                        Err(e) => {
                            first_error.lock().unwrap().get_or_insert(e);
                            return;
                        }
                    }
                }
            });
        }
    });
    conclude(ctx, Some(run_id), Outcome { started, report, first_error }, opts, progress)
}

/// Send the selected tasks of a run to a queue (marking them queued). Tasks already
/// dispatched, running or ended are not sent again; queued tasks whose message was never
/// sent (a dispatcher stopped between marking and sending) are.
pub fn publish_tasks(
    ctx: &Context,
    run_id: &str,
    queues: &Queues,
    selection: &[Selection],
    dry_run: bool,
) -> Result<Published> {
    let selected: HashSet<String> = select_tasks(ctx, run_id, selection)?.into_iter().collect();
    let mut out = Published::default();
    let pending = ctx.ledger.tasks(run_id, Some(TaskState::Pending))?;
    let stranded = ctx.ledger.tasks(run_id, Some(TaskState::Queued))?.into_iter().filter(|t| !t.dispatched);
    for t in pending.into_iter().chain(stranded) {
        if !selected.contains(&t.task_id) {
            continue;
        }
        match (crate::task_summary::TaskSummary::of(&t).executor, queues.container) {
            (Executor::Lambda, _) => out.lambda.push(t.task_id),
            (Executor::Container, Some(_)) => out.container.push(t.task_id),
            (Executor::Container, None) => out.held.push(t.task_id),
        }
    }
    if !dry_run {
        publish_ids(ctx, run_id, &out.lambda, queues.lambda)?;
        if let Some(q) = queues.container {
            publish_ids(ctx, run_id, &out.container, q)?;
        }
    }
    Ok(out)
}

/// Where tasks go: the Lambda worker's queue, and the container worker's for tasks sized
/// beyond Lambda's limits (without one, those tasks stay pending).
pub struct Queues<'a> {
    pub lambda: &'a dyn TaskQueue,
    pub container: Option<&'a dyn TaskQueue>,
}

/// Task ids sent to each queue, and those held back for want of a container queue.
#[derive(Debug, Default)]
pub struct Published {
    pub lambda: Vec<String>,
    pub container: Vec<String>,
    pub held: Vec<String>,
}

/// Consume a queue with `workers` threads until it stays empty for `idle_exit`. With a
/// run id, only that run's messages are taken (others are left for their consumers) and
/// the run summary is written at the end; without, any run's (the container worker).
pub fn run_from_queue(
    ctx: &Context,
    run_id: Option<&str>,
    queue: &dyn TaskQueue,
    opts: &RunOptions,
    idle_exit: Duration,
    progress: &dyn Progress,
) -> Result<RunSummary> {
    let started = Instant::now();
    if let Some(r) = run_id {
        ctx.ledger.reset(r, ResetScope::Stale, None)?;
    }
    let depth = queue.depth()?;
    progress.begin(depth.visible + depth.in_flight);
    let report = Mutex::new(RunSummary { run_id: run_id.unwrap_or_default().into(), ..Default::default() });
    let first_error: Mutex<Option<EngineError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..opts.workers.max(1) {
            s.spawn(|| {
                let runs = opts.runs.clone().unwrap_or_else(|| Arc::new(crate::context::EmbeddedRuns(ctx.clone())));
                let mut workers = TaskHandler::new(runs, opts.stop.clone(), opts.overwrite, None);
                let mut idle_since = Instant::now();
                while !opts.stop.load(Ordering::Relaxed) {
                    let msgs = match queue.receive(1, opts.visibility, Duration::from_millis(500)) {
                        Ok(m) => m,
                        Err(e) if e.is_transient() => {
                            tracing::warn!(error = %e, "receive failed; retrying");
                            std::thread::sleep(Duration::from_secs(1));
                            continue;
                        }
                        Err(e) => {
                            first_error.lock().unwrap().get_or_insert(e.into());
                            return;
                        }
                    };
                    let Some(msg) = msgs.into_iter().next() else {
                        if idle_since.elapsed() >= idle_exit && queue.depth().map(|d| d.in_flight == 0).unwrap_or(true)
                        {
                            return;
                        }
                        continue;
                    };
                    idle_since = Instant::now();
                    if let (Some(r), Ok(m)) = (run_id, TaskMessage::parse(&msg.body)) {
                        if m.run_id != r {
                            tracing::warn!(message_run = %m.run_id, "message for another run; leaving it");
                            let _ = queue.extend_visibility(&msg.receipt, Duration::from_secs(0));
                            continue;
                        }
                    }
                    let extend = || {
                        let _ = queue.extend_visibility(&msg.receipt, opts.visibility);
                    };
                    let handled = workers.handle(&msg, queue, &extend, opts.completion.as_deref());
                    apply_disposition(queue, &msg, &handled.disposition);
                    if let Some(r) = handled.report {
                        report.lock().unwrap().add(&r);
                        progress.advance(&r);
                    }
                }
            });
        }
    });
    conclude(ctx, run_id, Outcome { started, report, first_error }, opts, progress)
}

/// What the worker threads of one invocation gathered.
struct Outcome {
    started: Instant,
    report: Mutex<RunSummary>,
    first_error: Mutex<Option<EngineError>>,
}

/// End an invocation: stop the progress display, surface the first error, or finish the
/// report and write the run summary.
fn conclude(
    ctx: &Context,
    run_id: Option<&str>,
    o: Outcome,
    opts: &RunOptions,
    progress: &dyn Progress,
) -> Result<RunSummary> {
    progress.finish();
    if let Some(e) = o.first_error.into_inner().unwrap() {
        return Err(e);
    }
    let mut report = o.report.into_inner().unwrap();
    report.interrupted |= opts.stop.load(Ordering::Relaxed);
    report.elapsed_s = o.started.elapsed().as_secs_f64();
    if let Some(run_id) = run_id {
        write_summary(ctx, run_id, &mut report)?;
    }
    Ok(report)
}

/// Write the run summary (`_runs/{run}/summary.json`): this invocation's report plus the
/// ledger's counts.
pub fn write_summary(ctx: &Context, run_id: &str, report: &mut RunSummary) -> Result<()> {
    let run = ctx.ledger.run(run_id)?.ok_or_else(|| stratus_ports::PortError::RunNotFound(run_id.into()))?;
    let layout = Layout::of(&crate::config::RunRecordExt::run_config(&run)?);
    let key = format!("{}/summary.json", layout.run_dir(run_id));
    report.summary_url = ctx.output.url(&key);
    let failed = ctx.ledger.tasks(run_id, Some(TaskState::Failed))?;
    let doc = serde_json::json!({
        "run_id": run_id,
        "written_at": chrono::Utc::now().to_rfc3339(),
        "stratus_version": crate::VERSION,
        "ledger": run.counts,
        "this_invocation": report,
        "failed_tasks": failed.iter().map(|t| serde_json::json!({"task_id": t.task_id, "reason": t.error, "attempts": t.attempts})).collect::<Vec<_>>(),
    });
    ctx.output.put(&key, serde_json::to_string_pretty(&doc).unwrap().as_bytes())?;
    Ok(())
}
