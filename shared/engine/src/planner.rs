//! `save-tasks`: read the inputs, bin them into tasks, record the plan in the ledger and
//! write the task CSV and one GeoJSON of tiles per period.

use crate::config::{InputPolicy, RunConfig};
use crate::context::Context;
use crate::error::{EngineError, Result};
use crate::layout::Layout;
use crate::plan_outputs::{period_geojson, tasks_csv};
use crate::sources::{for_each_dataset, BadItem};
use serde::Serialize;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use stratus_core::binning::{Binner, BinningRules, BinningStats, TaskBin};
use stratus_core::geometry::CrsTransform;
use stratus_core::period::{solar_day, whole_years};
use stratus_core::product::ProductExpr;
use stratus_core::{Dataset, TaskId};
use stratus_ports::{NewRun, NewTask, PortError};

#[derive(Debug, Clone, Serialize)]
pub struct PlanSummary {
    pub run_id: String,
    pub tasks: usize,
    pub datasets: usize,
    pub periods: Vec<String>,
    pub observations_min: usize,
    pub observations_max: usize,
    pub outside_range: usize,
    pub outside_tiles: usize,
    pub bad_items: Vec<BadItem>,
    /// Where the CSV and GeoJSONs were written (empty for a dry run).
    pub artefacts: Vec<String>,
    /// The plan already existed with the same configuration and was left as it was.
    pub unchanged: bool,
    pub dry_run: bool,
}

/// Read every input dataset of the configuration (product expression applied).
pub fn load_datasets(cfg: &RunConfig) -> Result<(Vec<Dataset>, Vec<BadItem>)> {
    let mut all = Vec::new();
    let mut bad = Vec::new();
    for src in &cfg.inputs {
        for_each_dataset(
            src,
            &mut |d| {
                all.push(d);
                Ok(())
            },
            &mut |b| {
                bad.push(b);
                Ok(())
            },
        )?;
    }
    if !bad.is_empty() && cfg.input_policy == InputPolicy::Fail {
        let list: Vec<String> = bad.iter().take(10).map(|b| format!("  {}: {}", b.source, b.reason)).collect();
        return Err(EngineError::Config(format!(
            "{} input item(s) cannot be used:\n{}\nfix or remove them, or set input_policy: skip to plan without them",
            bad.len(),
            list.join("\n")
        )));
    }
    let known: BTreeSet<String> = all.iter().map(|d| d.collection.clone()).collect();
    if all.is_empty() {
        return Err(EngineError::Config(format!("no usable datasets in the inputs ({})", cfg.inputs.join(", "))));
    }
    let expr = match &cfg.products {
        Some(e) => ProductExpr::parse(e, &known)?,
        None if known.len() == 1 => ProductExpr::Single(known.iter().next().unwrap().clone()),
        None => {
            return Err(EngineError::Config(format!(
                "the inputs hold several collections ({}): say which with products ('a', 'a+b' to fuse, 'a-b' to pool)",
                known.into_iter().collect::<Vec<_>>().join(", ")
            )))
        }
    };
    let mut datasets = expr.apply(all);
    // Stable order: by time, then id (same-day fusing takes the first valid pixel).
    datasets.sort_by(|a, b| a.datetime.cmp(&b.datetime).then_with(|| a.id.cmp(&b.id)));
    datasets.dedup_by(|a, b| a.id == b.id);
    Ok((datasets, bad))
}

/// Bin datasets into tasks.
pub fn bin(
    cfg: &RunConfig,
    datasets: &[Dataset],
    transform: &dyn CrsTransform,
) -> Result<(BTreeMap<TaskId, TaskBin>, BinningStats)> {
    let rules = BinningRules {
        grid: cfg.grid_spec()?,
        frequency: cfg.frequency()?,
        temporal_range: cfg.temporal_range()?,
        tiles: cfg.tile_subset()?.into_iter().collect(),
    };
    let days: Vec<_> = datasets.iter().map(|d| solar_day(d.datetime, d.longitude())).collect();
    let all_period = rules.temporal_range.or_else(|| {
        let first = days.iter().min()?;
        let last = days.iter().max()?;
        Some(whole_years(*first, *last))
    });
    let mut binner = Binner::new(&rules, transform, all_period);
    for (i, d) in datasets.iter().enumerate() {
        binner.add(i, d).map_err(|e| EngineError::Source { source_name: d.id.clone(), why: e.to_string() })?;
    }
    Ok((binner.tasks, binner.stats))
}

/// Plan a run. With `dry_run`, nothing is written.
pub fn save_tasks(
    cfg: &RunConfig,
    ctx: &Context,
    transform: &dyn CrsTransform,
    overwrite: bool,
    dry_run: bool,
) -> Result<PlanSummary> {
    cfg.validate()?;
    let run_id = cfg.run_id();
    let digest = cfg.digest();
    let (datasets, bad_items) = load_datasets(cfg)?;
    let (tasks, stats) = bin(cfg, &datasets, transform)?;
    let obs: Vec<usize> = tasks.values().map(|t| t.days.len()).collect();
    let mut summary = PlanSummary {
        run_id: run_id.clone(),
        tasks: tasks.len(),
        datasets: datasets.len(),
        periods: tasks.keys().map(|t| t.period.to_string()).collect::<BTreeSet<_>>().into_iter().collect(),
        observations_min: obs.iter().copied().min().unwrap_or(0),
        observations_max: obs.iter().copied().max().unwrap_or(0),
        outside_range: stats.outside_range,
        outside_tiles: stats.outside_tiles,
        bad_items,
        artefacts: vec![],
        unchanged: false,
        dry_run,
    };
    if tasks.is_empty() {
        return Err(EngineError::Config(format!(
            "no tasks: none of the {} datasets fall in the selected tiles and time range ({} outside the range, {} outside the tiles)",
            datasets.len(),
            stats.outside_range,
            stats.outside_tiles
        )));
    }
    if dry_run {
        return Ok(summary);
    }
    if let Some(existing) = ctx.ledger.run(&run_id)? {
        if !overwrite {
            if existing.config_digest == digest && existing.counts.total as usize == tasks.len() {
                summary.unchanged = true;
                return Ok(summary);
            }
            return Err(PortError::RunExists(run_id).into());
        }
    }
    let grid = cfg.grid_spec()?;
    let new_tasks: Vec<NewTask> = tasks
        .iter()
        .enumerate()
        .map(|(index, (id, bin))| {
            let ds: Vec<&Dataset> = bin.datasets.iter().map(|&i| &datasets[i]).collect();
            NewTask {
                task_id: id.to_string(),
                index,
                summary: json!({
                    "period": id.period.to_string(), "x": id.tile.x, "y": id.tile.y,
                    "datasets": ds.len(), "observation_days": bin.days.len(),
                }),
                payload: json!({ "datasets": ds }),
            }
        })
        .collect();
    let run = NewRun {
        run_id: run_id.clone(),
        config: serde_json::to_value(cfg).expect("config serialises"),
        config_digest: digest,
    };
    ctx.ledger.create_run(&run, &new_tasks, overwrite)?;
    // Plan artefacts, for people and debugging.
    let layout = Layout::new(&cfg.product.name, &cfg.product.version);
    let dir = layout.plan_dir(&run_id);
    let csv_key = format!("{dir}/tasks.csv");
    ctx.output.put(&csv_key, tasks_csv(&tasks).as_bytes())?;
    summary.artefacts.push(ctx.output.url(&csv_key));
    for period in &summary.periods {
        let fc = period_geojson(&grid, &tasks, period, transform)?;
        let key = format!("{dir}/{period}.geojson");
        ctx.output.put(&key, serde_json::to_string_pretty(&fc).unwrap().as_bytes())?;
        summary.artefacts.push(ctx.output.url(&key));
    }
    Ok(summary)
}
