//! The planner function: a run file (or a schedule) -> tasks in the ledger -> fan-out
//! pages on the dispatch queue. It sends pages of task ids, never the tasks themselves,
//! and stops sending before its deadline: a retry of the same event finds the plan
//! unchanged and sends pages for the tasks still pending (the dispatcher skips tasks
//! already queued), so a continental run never depends on one invocation finishing.

use crate::deployment::Deployment;
use crate::events::{planner_triggers, PlannerTrigger};
use crate::HandlerError;
use crate::ServerlessError;
use chrono::{DateTime, Datelike, Duration as Days, Utc};
use lambda_runtime::LambdaEvent;
use serde_json::{json, Value};
use std::time::Instant;
use stratus_core::period::{Frequency, Period};
use stratus_engine::consumer::fan_out_pages;
use stratus_engine::planner::save_tasks;
use stratus_engine::{Context, RunConfig};
use stratus_ports::TaskQueue;
use stratus_raster::GdalCrsTransform;

/// Lambda entry point.
pub async fn handler(dep: Deployment, event: LambdaEvent<Value>) -> Result<Value, HandlerError> {
    let deadline = crate::runtime::deadline_of(&event.context, dep.deadline_margin);
    crate::blocking(move || handle(&dep, &event.payload, deadline)).await
}

/// Plan every run the event names. Returns what was planned.
pub fn handle(dep: &Deployment, event: &Value, deadline: Instant) -> Result<Value, ServerlessError> {
    let table = dep.need(&dep.table, "STRATUS_TABLE")?;
    let dispatch = dep.need(&dep.dispatch_queue, "STRATUS_DISPATCH_QUEUE_URL")?;
    let mut planned = Vec::new();
    for trigger in planner_triggers(event)? {
        let (cfg, source) = match &trigger {
            PlannerTrigger::RunFile { bucket, key } => {
                let source = format!("s3://{bucket}/{key}");
                (load_run_file(dep, &source)?, source)
            }
            PlannerTrigger::Scheduled { time } => {
                let source = dep
                    .scheduled_run_file
                    .clone()
                    .ok_or_else(|| ServerlessError::Unset { env: "STRATUS_SCHEDULED_RUN_FILE".into() })?;
                (scheduled_config(load_run_file(dep, &source)?, *time)?, source)
            }
        };
        let span = tracing::info_span!("plan", run_id = %cfg.run_id(), source = %source);
        let _g = span.enter();
        let ctx = dep.ports.plan_context(&cfg.location, table)?;
        let summary = save_tasks(&cfg, &ctx, &GdalCrsTransform, false, false)
            .map_err(|error| ServerlessError::Plan { source_name: source.clone(), error })?;
        tracing::info!(
            tasks = summary.tasks,
            datasets = summary.datasets,
            unchanged = summary.unchanged,
            bad_items = summary.bad_items.len(),
            "run planned"
        );
        let queue = dep.ports.queue(dispatch)?;
        let pages = send_pages(&ctx, &summary.run_id, queue.as_ref(), dep.page_size, deadline)?;
        planned.push(json!({"run_id": summary.run_id, "source": source, "tasks": summary.tasks, "unchanged": summary.unchanged, "pages": pages}));
    }
    Ok(json!({ "planned": planned }))
}

/// Send fan-out pages for the run's pending tasks, stopping (with an error, so the event
/// is retried) if the deadline comes first.
fn send_pages(
    ctx: &Context,
    run_id: &str,
    queue: &dyn TaskQueue,
    page_size: usize,
    deadline: Instant,
) -> Result<usize, ServerlessError> {
    let pages = fan_out_pages(ctx, run_id, page_size)?;
    for (i, group) in pages.chunks(10).enumerate() {
        if Instant::now() >= deadline {
            return Err(ServerlessError::Deadline(format!(
                "run {run_id}: stopped after {} of {} fan-out pages to keep within the time limit; the retry sends the rest",
                i * 10,
                pages.len()
            )));
        }
        let bodies: Vec<String> = group.iter().map(|p| p.body()).collect();
        queue.send_batch(&bodies)?;
    }
    tracing::info!(pages = pages.len(), "fan-out pages sent");
    Ok(pages.len())
}

/// Read and check a run file from S3.
pub fn load_run_file(dep: &Deployment, url: &str) -> Result<RunConfig, ServerlessError> {
    let run_file = |why: String| ServerlessError::RunFile { url: url.to_string(), why };
    let bytes = dep.ports.read_object(url).map_err(|e| run_file(e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|_| run_file("not UTF-8 text".into()))?;
    Ok(RunConfig::from_yaml(&text, url)?)
}

/// The configuration for a scheduled run: the run file with its time range set to the
/// period (of its frequency) that ended most recently before `time`.
pub fn scheduled_config(mut cfg: RunConfig, time: DateTime<Utc>) -> Result<RunConfig, ServerlessError> {
    let freq = cfg.frequency()?;
    if freq == Frequency::All {
        return Err(ServerlessError::Schedule(
            "a scheduled run needs a periodic frequency (annual, seasonal, ...), not 'all'".into(),
        ));
    }
    let period = last_ended_period(freq, time)?;
    cfg.temporal_range = Some(period.label());
    cfg.run_id = None;
    Ok(cfg)
}

fn last_ended_period(freq: Frequency, time: DateTime<Utc>) -> Result<Period, ServerlessError> {
    let today = time.date_naive();
    let mut day = today - Days::days(1);
    for _ in 0..24 {
        let ended: Option<Period> =
            freq.periods_for(day, None).into_iter().filter(|p| p.end() <= today).max_by_key(|p| p.start);
        if let Some(p) = ended {
            return Ok(p);
        }
        day = day.with_day(1).unwrap_or(day) - Days::days(1);
    }
    Err(ServerlessError::Schedule(format!("no {freq} period ended before {time}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_plan_the_period_that_just_ended() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(last_ended_period(Frequency::Annual, t("2027-01-01T00:05:00Z")).unwrap().label(), "2026--P1Y");
        assert_eq!(last_ended_period(Frequency::Annual, t("2027-06-15T00:00:00Z")).unwrap().label(), "2026--P1Y");
        assert_eq!(last_ended_period(Frequency::Seasonal, t("2027-03-01T02:00:00Z")).unwrap().label(), "2026-12--P3M");
        assert_eq!(last_ended_period(Frequency::AnnualFy, t("2027-07-01T00:00:00Z")).unwrap().label(), "2026-07--P1Y");
    }
}
