//! One task, start to finish, with the ledger: claim it, keep its lease alive while the
//! tile runs, skip it if its outputs are already complete, and record the outcome. The
//! same code serves the local runner, the queue consumer and (later) the Lambda handler.

use crate::config::RunConfig;
use crate::config::RunRecordExt;
use crate::context::Context;
use crate::error::{EngineError, Result};
use crate::layout::Layout;
use crate::sizing;
use crate::tile::{existing_outputs, process_tile, remove_tile_outputs, ExistingOutputs, TileJob, TileResult};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stratus_core::{Dataset, TaskId};
use stratus_ports::{ClaimOptions, ClaimOutcome, RerunFailed, TaskState, TileReconciled, DEFAULT_MAX_ATTEMPTS};
use stratus_stats::Statistic;

#[derive(Debug, Clone, PartialEq)]
pub enum TaskOutcome {
    /// Processed now.
    Done(Box<TileResult>),
    /// Its outputs were already complete: recorded done without recomputing.
    SkippedExisting,
    Failed {
        reason: String,
        final_attempt: bool,
    },
    AlreadyDone,
    AlreadyFailed,
    Busy {
        owner: String,
    },
    /// A split tile waiting for its parts (its message is sent again when they are done).
    Blocked,
    /// This worker lost the task's lease while it ran (it was too slow to renew, or was
    /// paused): another worker took the task over, and this one's result was not recorded.
    Superseded,
    Interrupted,
}

impl TaskOutcome {
    /// The task has ended in the ledger (this worker ended it, or it had ended before).
    pub fn is_ended(&self) -> bool {
        matches!(
            self,
            TaskOutcome::Done(_)
                | TaskOutcome::SkippedExisting
                | TaskOutcome::AlreadyDone
                | TaskOutcome::AlreadyFailed
                | TaskOutcome::Failed { final_attempt: true, .. }
        )
    }
}

/// How a task reached this worker: what a failure now means, and whether a failed task
/// may run again.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// A failure now is the last word (no queue redelivery will follow).
    pub final_attempt: bool,
    pub rerun_failed: RerunFailed,
    /// The ledger's attempt cap (a task whose attempts all died is failed, not claimed).
    pub max_attempts: u32,
}

impl Delivery {
    /// A task taken straight from the ledger by a local run: one attempt per run, and a
    /// new run of the plan retries what failed before.
    pub fn local() -> Delivery {
        Delivery { final_attempt: true, rerun_failed: RerunFailed::Always, max_attempts: DEFAULT_MAX_ATTEMPTS }
    }

    /// A task message (with its `dispatch` id, if any) on its `receive_count`-th receive
    /// from a queue that allows `max_receives`. A failed task runs again only on a
    /// redriven message: the first receive of the message that went to the dead-letter
    /// queue, back again.
    ///
    /// A task gets one attempt fewer than the queue has receives: the last receive is kept
    /// to record the outcome of a task whose attempts all died (the attempt cap fails it
    /// then). Were the last receive an attempt too, a process killed during it would leave
    /// the task running with its message in the dead-letter queue, and the run would never
    /// complete. So failures on the second-to-last receive are final.
    pub fn from_queue(receive_count: u32, max_receives: u32, dispatch: Option<&str>) -> Delivery {
        let max_attempts = max_receives.saturating_sub(1).max(1);
        let rerun_failed = match dispatch {
            Some(d) if receive_count <= 1 => RerunFailed::IfDeadLettered(d.to_string()),
            _ => RerunFailed::Never,
        };
        Delivery { final_attempt: receive_count >= max_attempts, rerun_failed, max_attempts }
    }
}

/// What happened, plus whether this finished the run.
#[derive(Debug, Clone)]
pub struct TaskReport {
    pub task_id: String,
    pub outcome: TaskOutcome,
    pub completion_fired: bool,
    pub elapsed_s: f64,
    /// A split tile whose parts are all done and which has not been sent: the consumer
    /// sends its message (or, running locally, runs it).
    pub ready_tile: Option<String>,
}

/// How often a running tile writes its run's `heartbeat_filepath` (odc-stats' default
/// poll interval).
const HEARTBEAT_FILE_EVERY: Duration = Duration::from_secs(5);

/// The time now (UTC, `%Y-%m-%d %H:%M:%S` as odc-stats writes it) into `path`. A failure is
/// logged, not fatal: the probe reading it decides what a stale file means.
fn write_heartbeat_file(path: &str) {
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
    if let Err(e) = std::fs::write(path, now) {
        tracing::warn!(path, error = %e, "heartbeat_filepath: cannot write the heartbeat file");
    }
}

pub struct Worker {
    pub ctx: Context,
    pub cfg: RunConfig,
    pub run_id: String,
    pub statistic: Box<dyn Statistic>,
    pub worker_id: String,
    /// Global stop (Ctrl-C): in-flight tiles stop and are released, not failed.
    pub stop: Arc<AtomicBool>,
    pub overwrite: bool,
    /// A deadline beyond the run's `max_processing_time` (a Lambda invocation's end).
    pub deadline: Option<Instant>,
}

/// Sets its flag when dropped, unwinding included.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Worker {
    pub fn new(ctx: Context, run_id: &str, stop: Arc<AtomicBool>) -> Result<Worker> {
        let run = ctx.ledger.run(run_id)?.ok_or_else(|| stratus_ports::PortError::RunNotFound(run_id.into()))?;
        let cfg = run.run_config()?;
        let statistic = stratus_stats::build_statistic(&cfg.plugin, &cfg.plugin_config)?;
        cfg.apply_gdal_settings();
        let mut ctx = ctx;
        cfg.with_output_acl(&mut ctx);
        let overwrite = cfg.overwrite;
        // Scratch left by a worker killed earlier on this machine (or Lambda sandbox).
        crate::scratch::reclaim_once();
        Ok(Worker {
            ctx,
            cfg,
            run_id: run_id.into(),
            statistic,
            worker_id: stratus_ports::worker_id::new_worker_id(),
            stop,
            overwrite,
            deadline: None,
        })
    }

    /// How long a claim holds a task without renewal.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.cfg.job_queue_max_lease)
    }

    /// Process one task. `on_heartbeat` runs with each lease renewal (to extend a queue
    /// message's visibility too).
    pub fn process(
        &self,
        task_id: &str,
        delivery: &Delivery,
        on_heartbeat: Option<&(dyn Fn() + Sync)>,
    ) -> Result<TaskReport> {
        let started = Instant::now();
        let lease = self.lease();
        let ledger = &self.ctx.ledger;
        let report = |outcome, fired| TaskReport {
            task_id: task_id.to_string(),
            outcome,
            completion_fired: fired,
            elapsed_s: started.elapsed().as_secs_f64(),
            ready_tile: None,
        };
        let report = self.after_part(task_id, report);
        let opts = ClaimOptions {
            lease,
            rerun_done: self.overwrite,
            rerun_failed: if self.overwrite { RerunFailed::Always } else { delivery.rerun_failed.clone() },
            max_attempts: delivery.max_attempts,
        };
        // The ledger's count of attempts is the authority: a failure on the attempt that
        // reaches the cap is final, however the message was delivered (duplicates and
        // takeovers are attempts too).
        let (attempt, parts) = match ledger.claim(&self.run_id, task_id, &self.worker_id, &opts)? {
            ClaimOutcome::Claimed { attempt, parts } => (attempt, parts),
            ClaimOutcome::AlreadyDone => return Ok(report(TaskOutcome::AlreadyDone, false)),
            ClaimOutcome::AlreadyFailed => return Ok(report(TaskOutcome::AlreadyFailed, false)),
            ClaimOutcome::Busy { owner } => return Ok(report(TaskOutcome::Busy { owner }, false)),
            ClaimOutcome::Blocked => return Ok(report(TaskOutcome::Blocked, false)),
            ClaimOutcome::GaveUp { attempts, completion_fired } => {
                let reason = stratus_ports::gave_up_reason(attempts);
                tracing::error!(run_id = %self.run_id, task_id, attempts, "task failed: its attempts all died");
                return Ok(report(TaskOutcome::Failed { reason, final_attempt: true }, completion_fired));
            }
        };
        let span = tracing::info_span!("task", run_id = %self.run_id, task_id = %task_id, worker = %self.worker_id);
        let _g = span.enter();
        let task_stop = AtomicBool::new(false);
        let finished = AtomicBool::new(false);
        let renew_every =
            Duration::from_secs(self.cfg.job_queue_max_lease.saturating_sub(self.cfg.renew_safety_margin).max(1));
        // After a failed renewal, try again soon: one lost call must not let the lease lapse.
        let retry_every = Duration::from_secs(2).min(renew_every);
        let result = std::thread::scope(|s| {
            // Heartbeat: renew the lease; if it was lost, stop the tile.
            s.spawn(|| {
                let mut last = Instant::now();
                let mut wait = renew_every;
                let mut beat: Option<Instant> = None;
                while !finished.load(Ordering::Relaxed) {
                    if let Some(path) = &self.cfg.heartbeat_filepath {
                        if beat.is_none_or(|b| b.elapsed() >= HEARTBEAT_FILE_EVERY) {
                            beat = Some(Instant::now());
                            write_heartbeat_file(path);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(100));
                    if self.stop.load(Ordering::Relaxed) {
                        task_stop.store(true, Ordering::Relaxed);
                    }
                    if last.elapsed() >= wait {
                        last = Instant::now();
                        match ledger.heartbeat(&self.run_id, task_id, &self.worker_id, lease) {
                            Ok(true) => {
                                wait = renew_every;
                                if let Some(f) = on_heartbeat {
                                    f();
                                }
                            }
                            Ok(false) => {
                                tracing::warn!("lease lost to another worker; stopping this tile");
                                task_stop.store(true, Ordering::Relaxed);
                            }
                            Err(e) => {
                                wait = retry_every;
                                tracing::warn!(error = %e, "heartbeat failed; trying again shortly");
                            }
                        }
                    }
                }
            });
            // The STAC item marks the tile complete: write it only while still the owner,
            // so a worker that lost its lease never commits over its successor.
            let still_owner = || match ledger.heartbeat(&self.run_id, task_id, &self.worker_id, lease) {
                Ok(true) => Ok(()),
                Ok(false) => Err(EngineError::LeaseLost { task: task_id.to_string() }),
                Err(e) => Err(e.into()),
            };
            // Stops the heartbeat however the tile ends: a panic in it must not leave this
            // scope waiting on the heartbeat for ever.
            let _finished = SetOnDrop(&finished);
            self.run_claimed(task_id, parts, &task_stop, &still_owner)
        });
        match result {
            Ok(Some(tile)) => {
                let t =
                    ledger.complete(&self.run_id, task_id, &self.worker_id, &serde_json::to_value(&tile).unwrap())?;
                if !t.applied {
                    tracing::warn!("tile written, but the lease had passed to another worker: its result stands");
                    return Ok(report(TaskOutcome::Superseded, false));
                }
                tracing::info!(
                    datasets = tile.datasets,
                    days = tile.observation_days,
                    read_s = tile.timings.read_s,
                    compute_s = tile.timings.compute_s,
                    write_s = tile.timings.write_s,
                    skipped_inputs = tile.skipped_inputs.len(),
                    peak_rss_mb = tile.peak_rss_mb,
                    "tile done"
                );
                Ok(report(TaskOutcome::Done(Box::new(tile)), t.completion_fired))
            }
            Ok(None) => {
                let t = ledger.complete(&self.run_id, task_id, &self.worker_id, &json!({"skipped_existing": true}))?;
                if !t.applied {
                    return Ok(report(TaskOutcome::Superseded, false));
                }
                Ok(report(TaskOutcome::SkippedExisting, t.completion_fired))
            }
            Err(EngineError::LeaseLost { .. }) => {
                tracing::warn!("lease lost before the tile was committed; left to the worker that holds it");
                Ok(report(TaskOutcome::Superseded, false))
            }
            Err(EngineError::Interrupted) if self.stop.load(Ordering::Relaxed) => {
                ledger.release(&self.run_id, task_id, &self.worker_id)?;
                Ok(report(TaskOutcome::Interrupted, false))
            }
            Err(e) => {
                // Reasons reach the ledger, reports and logs: no signed URLs or keys.
                let reason = stratus_core::redact::redact(&e.to_string());
                let final_attempt = delivery.final_attempt || attempt >= delivery.max_attempts || e.is_permanent();
                let t = ledger.fail(&self.run_id, task_id, &self.worker_id, &reason, final_attempt, None)?;
                if !t.applied {
                    // Our lease had passed to another worker, which decides the outcome.
                    tracing::warn!(error = %reason, "tile failed after its lease passed to another worker; not recorded");
                    return Ok(report(TaskOutcome::Superseded, false));
                }
                tracing::error!(error = %reason, final_attempt, "tile failed");
                Ok(report(TaskOutcome::Failed { reason, final_attempt }, t.completion_fired))
            }
        }
    }

    /// Wrap `report` (which makes a task's report) so that a sub-tile part's report also
    /// carries its tile's state: after any outcome of a part, its tile is reconciled (a
    /// failed part fails it, the last done part releases it), and a released tile not yet
    /// sent is named for the consumer to send. Repeated on every delivery of the part, so
    /// a worker killed between the part's end and the tile's message leaves the part's
    /// message to do it.
    fn after_part<'r>(
        &'r self,
        task_id: &'r str,
        report: impl Fn(TaskOutcome, bool) -> TaskReport + 'r,
    ) -> impl Fn(TaskOutcome, bool) -> TaskReport + 'r {
        move |outcome, fired| {
            let mut r = report(outcome, fired);
            let Ok((tile, Some(_))) = stratus_core::TilePart::parse_task_id(task_id) else { return r };
            if !r.outcome.is_ended() {
                return r;
            }
            let tile_id = tile.to_string();
            match self.ctx.ledger.reconcile_tile(&self.run_id, &tile_id) {
                Ok(TileReconciled::Failed { reason, completion_fired }) => {
                    tracing::error!(tile = %tile_id, %reason, "split tile failed");
                    r.completion_fired |= completion_fired;
                }
                Ok(TileReconciled::Released) => tracing::info!(tile = %tile_id, "every part done: tile released"),
                Ok(_) => {}
                // The part's outcome stands; its next delivery reconciles again.
                Err(e) => tracing::warn!(tile = %tile_id, error = %e, "could not reconcile the split tile"),
            }
            if let Ok(Some(t)) = self.ctx.ledger.task(&self.run_id, &tile_id) {
                let unsent = t.state == TaskState::Pending || (t.state == TaskState::Queued && !t.dispatched);
                if !t.blocked && unsent {
                    r.ready_tile = Some(tile_id);
                }
            }
            r
        }
    }

    /// The claimed task (`parts` as its claim read it): None if the outputs were already
    /// complete.
    fn run_claimed(
        &self,
        task_id: &str,
        parts: u32,
        stop: &AtomicBool,
        before_commit: &(dyn Fn() -> Result<()> + Sync),
    ) -> Result<Option<TileResult>> {
        let (task, part) = stratus_core::TilePart::parse_task_id(task_id)?;
        let layout = Layout::of(&self.cfg);
        let out = self.ctx.output.as_ref();
        let deadline = {
            let own = Instant::now() + Duration::from_secs(self.cfg.max_processing_time);
            self.deadline.map_or(own, |d| d.min(own))
        };
        let job = |part| TileJob {
            mode: crate::tile::TileMode::Full,
            before_commit: Some(before_commit),
            cfg: &self.cfg,
            run_id: &self.run_id,
            task,
            statistic: self.statistic.as_ref(),
            output: out,
            stop,
            deadline,
            part,
        };
        if part.is_some() {
            // A part of a tile already assembled (a late or duplicate delivery) is not
            // made again: the tile stands.
            if existing_outputs(out, &layout, &task, &self.cfg.digest())? == ExistingOutputs::Complete
                && !self.overwrite
            {
                return Ok(None);
            }
            let datasets = self.datasets(task_id)?;
            self.check_resources(task_id, &datasets)?;
            return self.process_with_native_filters(&job(part), &datasets).map(Some);
        }
        // Half-written objects of an earlier owner of this tile that was killed.
        let partials = out.discard_partials(&layout.dir(&task))?;
        if partials > 0 {
            tracing::info!(partials, "removed half-written outputs of an interrupted earlier attempt");
        }
        match existing_outputs(out, &layout, &task, &self.cfg.digest())? {
            ExistingOutputs::Absent => {}
            ExistingOutputs::Complete if !self.overwrite => return Ok(None),
            existing => {
                if existing == ExistingOutputs::OtherConfig {
                    tracing::info!("outputs exist from another configuration; making the tile again");
                }
                let bands: Vec<String> = self.statistic.output_bands().into_iter().map(|b| b.name).collect();
                remove_tile_outputs(out, &layout, &task, &bands)?;
            }
        }
        if parts > 0 {
            let parts = self.done_parts(&task)?;
            return crate::assembly::assemble_tile(&job(None), &parts).map(Some);
        }
        let datasets = self.datasets(task_id)?;
        self.check_resources(task_id, &datasets)?;
        self.process_with_native_filters(&job(None), &datasets).map(Some)
    }

    /// A tile (or part) with the statistic's mask filters in the inputs' native pixels,
    /// as odc-stats applies them: scaled to output pixels where the two differ.
    fn process_with_native_filters(&self, job: &TileJob, datasets: &[Dataset]) -> Result<TileResult> {
        let Some(factor) = crate::tile::native_filter_scale(&self.cfg, self.statistic.as_ref(), datasets)? else {
            return process_tile(job, datasets);
        };
        let mut statistic = stratus_stats::build_statistic(&self.cfg.plugin, &self.cfg.plugin_config)?;
        statistic.scale_filters(factor);
        tracing::info!(
            factor,
            halo = statistic.halo(),
            "mask filters scaled from the inputs' native pixels to the grid's"
        );
        process_tile(&job.with_statistic(statistic.as_ref()), datasets)
    }

    /// A task's datasets, from the ledger.
    fn datasets(&self, task_id: &str) -> Result<Vec<Dataset>> {
        let payload = self.ctx.ledger.payload(&self.run_id, task_id)?;
        serde_json::from_value(payload.get("datasets").cloned().unwrap_or_default()).map_err(|e| EngineError::Task {
            task: task_id.into(),
            why: format!("unreadable dataset list in the ledger: {e}"),
        })
    }

    /// Every part of a split tile, with what its worker recorded; all must be done.
    fn done_parts(&self, tile: &TaskId) -> Result<Vec<crate::assembly::DonePart>> {
        let records = self.ctx.ledger.tasks_under(&self.run_id, &stratus_core::TilePart::prefix(tile))?;
        records
            .into_iter()
            .map(|r| {
                let not_ready = |why: String| EngineError::Task { task: tile.to_string(), why };
                let (_, part) = stratus_core::TilePart::parse_task_id(&r.task_id)?;
                let part = part.ok_or_else(|| not_ready(format!("'{}' is not a part", r.task_id)))?;
                if r.state != TaskState::Done {
                    return Err(not_ready(format!("its part {} is {}, not done", r.task_id, r.state)));
                }
                let result: TileResult = r
                    .result
                    .clone()
                    .and_then(|v| serde_json::from_value(v).ok())
                    .ok_or_else(|| not_ready(format!("its part {} recorded no outputs", r.task_id)))?;
                Ok(crate::assembly::DonePart { part, result })
            })
            .collect()
    }

    /// Refuse a tile this worker cannot hold in memory or in its scratch space, before
    /// reading anything (and without retries: the next attempt would not fit either).
    fn check_resources(&self, task_id: &str, datasets: &[Dataset]) -> Result<()> {
        let sizer = sizing::Sizer::new(&self.cfg, self.statistic.as_ref())?;
        let refuse = |why: String| EngineError::TooLarge { task: task_id.into(), why };
        if let Some(limit) = sizing::worker_memory_limit_mb() {
            let days: std::collections::BTreeSet<_> =
                datasets.iter().map(|d| stratus_core::period::solar_day(d.datetime, d.longitude())).collect();
            let threads = crate::tile::read_threads(crate::tile::has_remote_inputs(datasets));
            sizer.check_fits(days.len(), threads, limit).map_err(refuse)?;
        }
        let scratch = std::env::temp_dir();
        let need = sizer.tmp_mb();
        if let Some(free) = stratus_raster::vsi::free_space_mb(&scratch) {
            if need > free as f64 {
                return Err(refuse(format!(
                    "needs about {need:.0} MB of scratch space in {} but {free} MB is free: give the worker more \
                     ephemeral storage (the Terraform module's worker_ephemeral_storage_mb) or point TMPDIR at a \
                     larger disk; nothing was read",
                    scratch.display()
                )));
            }
        }
        Ok(())
    }
}
