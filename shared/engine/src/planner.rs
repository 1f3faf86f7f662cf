//! `save-tasks`: read the inputs, bin them into tasks, record the plan in the ledger and
//! write the task CSV and one GeoJSON of tiles per period.

use crate::config::{Input, InputPolicy, RunConfig};
use crate::context::Context;
use crate::dataset_filter::{DatasetFilters, FilterCount};
use crate::dataset_spool::{DatasetSpool, SpoolView};
use crate::eo3_output::product_definition;
use crate::error::{EngineError, Result};
use crate::estimate::{Prices, RunEstimate};
use crate::layout::Layout;
use crate::plan_outputs::{period_geojson, tasks_csv};
use crate::sizing::{Sizer, TaskEstimate, TilePlan};
use crate::sources::{for_each_input, BadItem, Parsed};
use crate::stac_output::{product_collection, ProductExtent};
use chrono::NaiveDate;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasherDefault;
use stratus_core::binning::{Binner, BinningRules, BinningStats, Placement, TaskBin};
use stratus_core::geometry::CrsTransform;
use stratus_core::period::{whole_years, Frequency, Period};
use stratus_core::product::{fusable, fuse_all, ProductExpr};
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
    /// What each dataset filter left out.
    pub filtered: Vec<FilterCount>,
    /// Where the CSV and GeoJSONs were written (empty for a dry run).
    pub artefacts: Vec<String>,
    /// The plan already existed with the same configuration and was left as it was.
    pub unchanged: bool,
    /// What the run is expected to need and cost (default prices, 1 000 concurrent Lambdas).
    pub estimate: RunEstimate,
    pub dry_run: bool,
}

/// A plan in the making or made: tasks whose dataset lists index the plan's datasets
/// (in time, then id, order), whose documents wait in a spool file.
pub struct Plan {
    pub tasks: BTreeMap<TaskId, TaskBin>,
    pub stats: BinningStats,
    pub bad_items: Vec<BadItem>,
    /// Items seen again (same id) and left out.
    pub duplicates: usize,
    /// What each dataset filter left out.
    pub filtered: Vec<FilterCount>,
    spool: DatasetSpool,
    /// Spool index of each plan dataset.
    order: Vec<u32>,
}

impl Plan {
    /// How many datasets the tasks use.
    pub fn datasets(&self) -> usize {
        self.order.len()
    }
    /// The documents, by plan index.
    pub fn docs(&self) -> SpoolView<'_> {
        SpoolView { spool: &self.spool, order: &self.order }
    }
}

/// What planning keeps of each dataset: enough to order, fuse and count it.
struct DatasetMeta {
    id: Box<str>,
    datetime: chrono::DateTime<chrono::Utc>,
    day: NaiveDate,
    collection: u16,
    region: Option<Box<str>>,
}

/// The `by_id` keys are hashes already: use them as they are.
#[derive(Default)]
struct PreHashed(u64);

impl std::hash::Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | b as u64;
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Items are the same dataset when collection and id agree (a fused pair's halves share ids).
fn id_hash(collection: &str, id: &str) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().build_hasher();
    h.write(collection.as_bytes());
    h.write_u8(0);
    h.write(id.as_bytes());
    h.finish()
}

/// Read the inputs as a stream and bin them into tasks. Memory holds each dataset's id,
/// time and region and each task's dataset indices; the documents go to a spool file.
pub fn build_plan(cfg: &RunConfig, transform: &dyn CrsTransform) -> Result<Plan> {
    let rules = BinningRules {
        grid: cfg.grid_spec()?,
        frequency: cfg.frequency()?,
        temporal_range: cfg.temporal_range()?,
        tiles: cfg.tile_subset()?.into_iter().collect(),
    };
    // `all` without a range spans the whole years of the data, known only at the end:
    // bin into one wide period and name it then.
    let provisional_all = rules.frequency == Frequency::All && rules.temporal_range.is_none();
    let wide = Period::new(NaiveDate::from_ymd_opt(1, 1, 1).expect("valid date"), 12 * 9998, 0);
    let mut binner = Binner::new(&rules, transform, rules.temporal_range.or(provisional_all.then_some(wide)));
    let mut spool = DatasetSpool::new()?;
    let mut metas: Vec<DatasetMeta> = Vec::new();
    let mut by_id: HashMap<u64, u32, BuildHasherDefault<PreHashed>> = HashMap::default();
    let mut collections: Vec<String> = Vec::new();
    let mut bad_items = Vec::new();
    let mut duplicates = 0usize;
    let mut seen = 0usize;
    // Parsing, placing and compressing run in parallel; recording each batch is serial.
    type Mapped = std::result::Result<(Dataset, stratus_core::error::Result<Placement>, Result<Vec<u8>>), BadItem>;
    let shared = Binner::new(&rules, transform, binner.all_period());
    let map = |p: Parsed| -> Mapped {
        p.map(|d| {
            let place = shared.place(&d);
            let doc = DatasetSpool::compress(&serde_json::to_string(&d).expect("datasets serialise"));
            (d, place, doc)
        })
    };
    let search_datetime = rules.temporal_range.map(|p| {
        use chrono::SecondsFormat::{Micros, Secs};
        format!("{}/{}", p.start_datetime().to_rfc3339_opts(Secs, true), p.end_datetime().to_rfc3339_opts(Micros, true))
    });
    cfg.apply_gdal_settings();
    // odc-stats' `gqa` is a filter on DEA's geometric quality.
    let mut filter_specs = cfg.dataset_filters.clone();
    if let Some(gqa) = cfg.gqa {
        filter_specs.push(serde_json::json!(format!("\"gqa:iterative_mean_xy\" <= {gqa}")));
    }
    let filters = DatasetFilters::new(&filter_specs)?;
    let inputs = stratus_stats::build_statistic(&cfg.plugin, &cfg.plugin_config)?.input_bands();
    let timeless: BTreeSet<&str> = cfg.ignore_time.iter().map(String::as_str).collect();
    for input in &cfg.inputs {
        // A search for time-less products only is not limited to the run's dates.
        let datetime = match input {
            Input::StacApi(search)
                if !search.collections.is_empty()
                    && search.collections.iter().all(|c| timeless.contains(c.as_str())) =>
            {
                None
            }
            _ => search_datetime.as_deref(),
        };
        for_each_input(input, datetime, &filters, &map, &mut |placed: Vec<Mapped>| {
            seen += placed.len();
            for p in placed {
                let (d, place, doc) = match p {
                    Ok(x) => x,
                    Err(b) => {
                        bad_items.push(b);
                        continue;
                    }
                };
                let place = place.map_err(|e| EngineError::Source { source_name: d.id.clone(), why: e.to_string() })?;
                let h = id_hash(&d.collection, &d.id);
                if let Some(&i) = by_id.get(&h) {
                    let m = &metas[i as usize];
                    if *m.id == *d.id && collections[m.collection as usize] == d.collection {
                        duplicates += 1;
                        continue;
                    }
                }
                // A time-less product's datasets are kept whatever their date, and joined to
                // the other products' dates when fusing (`apply_products`), never binned.
                let timeless_dataset = timeless.contains(d.collection.as_str());
                if !timeless_dataset && !matches!(place, Placement::Tasks { .. }) {
                    binner.record(usize::MAX, &place);
                    continue;
                }
                crate::tile::check_declared_types(&d, &inputs, &cfg.plugin)
                    .map_err(|why| EngineError::Source { source_name: d.id.clone(), why })?;
                let index = spool.push_compressed(&doc?)?;
                by_id.insert(h, index);
                let collection = match collections.iter().position(|c| *c == d.collection) {
                    Some(c) => c,
                    None => {
                        collections.push(d.collection.clone());
                        collections.len() - 1
                    }
                } as u16;
                let day = match &place {
                    Placement::Tasks { day, .. } => *day,
                    _ => d.datetime.date_naive(),
                };
                metas.push(DatasetMeta {
                    id: d.id.into_boxed_str(),
                    datetime: d.datetime,
                    day,
                    collection,
                    region: d.region_code.map(String::into_boxed_str),
                });
                if !timeless_dataset {
                    binner.record(index as usize, &place);
                }
            }
            tracing::debug!(items = seen, datasets = metas.len(), "planning: read");
            Ok(())
        })?;
    }
    spool.flush()?;
    if !bad_items.is_empty() && cfg.input_policy == InputPolicy::Fail {
        let list: Vec<String> = bad_items.iter().take(10).map(|b| format!("  {}: {}", b.source, b.reason)).collect();
        return Err(EngineError::Config(format!(
            "{} input item(s) cannot be used:\n{}\nfix or remove them, or set input_policy: skip to plan without them",
            bad_items.len(),
            list.join("\n")
        )));
    }
    if seen == bad_items.len() {
        let inputs: Vec<String> = cfg.inputs.iter().map(ToString::to_string).collect();
        return Err(EngineError::Config(format!("no usable datasets in the inputs ({})", inputs.join(", "))));
    }
    let stats = binner.stats.clone();
    let mut tasks = std::mem::take(&mut binner.tasks);
    apply_products(cfg, &collections, &mut metas, &mut spool, &mut tasks)?;
    if let Some(area) = cfg.area_of_interest()? {
        let touched = area.tiles(&rules.grid, transform)?;
        let before = tasks.len();
        tasks.retain(|id, _| touched.contains(&id.tile));
        tracing::info!(
            left_out = before - tasks.len(),
            "area_of_interest: the tasks of tiles it does not touch are left out"
        );
    }
    // Number the used datasets in (time, id) order; each task's list follows that order.
    let mut used: Vec<u32> = tasks.values().flat_map(|b| b.datasets.iter().map(|&i| i as u32)).collect();
    used.sort_unstable();
    used.dedup();
    used.sort_by(|&a, &b| {
        let (a, b) = (&metas[a as usize], &metas[b as usize]);
        a.datetime.cmp(&b.datetime).then_with(|| a.id.cmp(&b.id))
    });
    let mut renumber = vec![u32::MAX; metas.len()];
    for (new, &old) in used.iter().enumerate() {
        renumber[old as usize] = new as u32;
    }
    for bin in tasks.values_mut() {
        for i in bin.datasets.iter_mut() {
            *i = renumber[*i] as usize;
        }
        bin.datasets.sort_unstable();
        bin.days = bin.datasets.iter().map(|&i| metas[used[i] as usize].day).collect();
    }
    if provisional_all {
        // The used datasets' days: a time-less product's own dates do not count.
        let first = used.iter().map(|&i| metas[i as usize].day).min();
        let last = used.iter().map(|&i| metas[i as usize].day).max();
        if let (Some(first), Some(last)) = (first, last) {
            let period = whole_years(first, last);
            tasks = tasks.into_iter().map(|(id, bin)| (TaskId::new(period, id.tile), bin)).collect();
        }
    }
    Ok(Plan { tasks, stats, bad_items, duplicates, filtered: filters.counts(), spool, order: used })
}

/// Apply the product expression (`a`, `a-b` pooled, `a+b+...` fused) to the binned datasets.
fn apply_products(
    cfg: &RunConfig,
    collections: &[String],
    metas: &mut Vec<DatasetMeta>,
    spool: &mut DatasetSpool,
    tasks: &mut BTreeMap<TaskId, TaskBin>,
) -> Result<()> {
    let known: BTreeSet<String> = collections.iter().cloned().collect();
    let expr = match &cfg.products {
        Some(e) => ProductExpr::parse(e, &known)?,
        None if known.len() == 1 => ProductExpr::Single(collections[0].clone()),
        None if known.is_empty() => return Ok(()),
        None => {
            return Err(EngineError::Config(format!(
                "the inputs hold several collections ({}): say which with products ('a', 'a+b' or 'a+b+c' to fuse, 'a-b' to pool)",
                known.into_iter().collect::<Vec<_>>().join(", ")
            )))
        }
    };
    let index_of = |name: &str| collections.iter().position(|c| c == name).map(|c| c as u16);
    match &expr {
        ProductExpr::Single(_) | ProductExpr::Pool(_) => {
            let keep: BTreeSet<u16> = expr.collections().into_iter().filter_map(index_of).collect();
            for bin in tasks.values_mut() {
                bin.datasets.retain(|&i| keep.contains(&metas[i].collection));
            }
        }
        ProductExpr::Fuse(names) => {
            let optional: BTreeSet<String> = cfg.optional_products.iter().cloned().collect();
            let positions: Vec<Option<u16>> = names.iter().map(|n| index_of(n)).collect();
            let timeless: Vec<bool> = names.iter().map(|n| cfg.ignore_time.contains(n)).collect();
            // A time-less product's dataset per region (the first read).
            let mut by_region: HashMap<(usize, Option<Box<str>>), usize> = HashMap::new();
            // Datasets of the same time and region: one group, a member per product.
            type Key = (i64, Option<Box<str>>);
            let mut groups: BTreeMap<Key, Vec<Option<usize>>> = BTreeMap::new();
            for (i, m) in metas.iter().enumerate() {
                let Some(at) = positions.iter().position(|p| *p == Some(m.collection)) else { continue };
                if timeless[at] {
                    by_region.entry((at, m.region.clone())).or_insert(i);
                    continue;
                }
                let group =
                    groups.entry((m.datetime.timestamp(), m.region.clone())).or_insert_with(|| vec![None; names.len()]);
                group[at].get_or_insert(i);
            }
            // Each acquisition is joined by the time-less datasets of its region.
            for ((_, region), group) in groups.iter_mut() {
                for (at, slot) in group.iter_mut().enumerate().filter(|(at, _)| timeless[*at]) {
                    *slot = by_region.get(&(at, region.clone())).copied();
                }
            }
            let read = |at: usize| -> Result<Dataset> {
                serde_json::from_str(&spool.get(at as u32)?)
                    .map_err(|e| EngineError::Config(format!("spooled dataset {at}: {e}")))
            };
            let name = expr.name();
            let timeless_meta =
                |m: &DatasetMeta| positions.iter().zip(&timeless).any(|(p, t)| *t && *p == Some(m.collection));
            // Every member's index -> its fused dataset's.
            let mut fused: HashMap<usize, usize> = HashMap::new();
            let mut new_metas = Vec::new();
            for group in groups.values() {
                if !fusable(names, &optional, |k| group[k].is_some()) {
                    continue;
                }
                // Dated members first: the fused dataset takes its date and footprint from
                // the first.
                let (dated, undated): (Vec<_>, Vec<_>) = (0..names.len()).partition(|&at| !timeless[at]);
                let members: Vec<usize> = dated.into_iter().chain(undated).filter_map(|at| group[at]).collect();
                let d = fuse_all(&name, members.iter().map(|&i| read(i)).collect::<Result<Vec<_>>>()?);
                let index = metas.len() + new_metas.len();
                // A time-less dataset joins many groups: only dated members stand for theirs.
                for &i in members.iter().filter(|&&i| !timeless_meta(&metas[i])) {
                    fused.insert(i, index);
                }
                new_metas.push((
                    d.id.clone().into_boxed_str(),
                    members[0],
                    serde_json::to_string(&d).expect("serialises"),
                ));
            }
            let fused_collection = metas.iter().map(|m| m.collection).max().unwrap_or(0) + 1;
            for (id, lead, doc) in new_metas {
                spool.push(&doc)?;
                let l = &metas[lead];
                let meta = DatasetMeta {
                    id,
                    datetime: l.datetime,
                    day: l.day,
                    collection: fused_collection,
                    region: l.region.clone(),
                };
                metas.push(meta);
            }
            spool.flush()?;
            for bin in tasks.values_mut() {
                let mut seen = std::collections::HashSet::new();
                bin.datasets =
                    bin.datasets.iter().filter_map(|i| fused.get(i).copied()).filter(|f| seen.insert(*f)).collect();
            }
        }
    }
    tasks.retain(|_, bin| !bin.datasets.is_empty());
    Ok(())
}

/// Every task's estimate (in plan order) and the run's, at default prices, 1 000
/// concurrent Lambdas and 10 container workers (what `save-tasks` prints).
pub fn plan_estimates(cfg: &RunConfig, tasks: &BTreeMap<TaskId, TaskBin>) -> Result<(Vec<TilePlan>, RunEstimate)> {
    let statistic = stratus_stats::build_statistic(&cfg.plugin, &cfg.plugin_config)?;
    let sizer = Sizer::new(cfg, statistic.as_ref())?;
    let plans: Vec<TilePlan> = tasks.values().map(|b| sizer.plan_tile(b.days.len(), b.datasets.len())).collect();
    let invocations: Vec<TaskEstimate> = plans.iter().flat_map(TilePlan::invocations).collect();
    let run = RunEstimate::new(&sizer, &invocations, &Prices::default(), 1000, 10);
    Ok((plans, run))
}

/// The ledger's tasks for the plan: each tile's, and before a split tile's, its parts.
fn ledger_tasks(tasks: &BTreeMap<TaskId, TaskBin>, plans: &[TilePlan]) -> Vec<NewTask> {
    use crate::task_summary::TaskSummary;
    let mut out = Vec::with_capacity(tasks.len());
    for ((id, bin), plan) in tasks.iter().zip(plans) {
        let datasets: Vec<u32> = bin.datasets.iter().map(|&i| i as u32).collect();
        let summary = |executor, estimate: &TaskEstimate| TaskSummary {
            period: id.period.to_string(),
            x: id.tile.x,
            y: id.tile.y,
            datasets: bin.datasets.len(),
            observation_days: bin.days.len(),
            executor,
            estimate: Some(estimate.clone()),
            split: None,
            part: None,
        };
        match &plan.assembly {
            Some(assembly) if plan.parts > 1 => {
                for (part, part_est) in stratus_core::TilePart::all(plan.parts).into_iter().zip(&plan.part_estimates) {
                    out.push(NewTask {
                        task_id: part.task_id(id),
                        index: out.len(),
                        summary: TaskSummary { part: Some(part), ..summary(part_est.executor, part_est) }.to_json(),
                        datasets: datasets.clone(),
                        parts: 0,
                    });
                }
                // The tile's own task assembles its parts: it needs no datasets.
                out.push(NewTask {
                    task_id: id.to_string(),
                    index: out.len(),
                    summary: TaskSummary { split: Some(plan.parts), ..summary(assembly.executor, assembly) }.to_json(),
                    datasets: vec![],
                    parts: plan.parts * plan.parts,
                });
            }
            _ => out.push(NewTask {
                task_id: id.to_string(),
                index: out.len(),
                summary: summary(plan.whole.executor, &plan.whole).to_json(),
                datasets,
                parts: 0,
            }),
        }
    }
    out
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
    let started = std::time::Instant::now();
    let plan = build_plan(cfg, transform)?;
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        datasets = plan.datasets(),
        tasks = plan.tasks.len(),
        "planning: inputs read and binned"
    );
    let (tasks, stats) = (&plan.tasks, &plan.stats);
    let obs: Vec<usize> = tasks.values().map(|t| t.days.len()).collect();
    let (plans, estimate) = plan_estimates(cfg, tasks)?;
    let mut summary = PlanSummary {
        run_id: run_id.clone(),
        tasks: tasks.len(),
        datasets: plan.datasets(),
        periods: tasks.keys().map(|t| t.period.to_string()).collect::<BTreeSet<_>>().into_iter().collect(),
        observations_min: obs.iter().copied().min().unwrap_or(0),
        observations_max: obs.iter().copied().max().unwrap_or(0),
        outside_range: stats.outside_range,
        outside_tiles: stats.outside_tiles,
        bad_items: plan.bad_items.clone(),
        filtered: plan.filtered.clone(),
        artefacts: vec![],
        unchanged: false,
        estimate,
        dry_run,
    };
    if tasks.is_empty() {
        return Err(EngineError::Config(format!(
            "no tasks: none of the {} datasets fall in the selected tiles and time range ({} outside the range, {} outside the tiles)",
            stats.datasets_seen,
            stats.outside_range,
            stats.outside_tiles
        )));
    }
    if dry_run {
        return Ok(summary);
    }
    let new_tasks = ledger_tasks(tasks, &plans);
    if let Some(existing) = ctx.ledger.run(&run_id)? {
        if !overwrite {
            if existing.config_digest == digest && existing.counts.total as usize == new_tasks.len() {
                summary.unchanged = true;
                return Ok(summary);
            }
            return Err(PortError::RunExists(run_id).into());
        }
    }
    let grid = cfg.grid_spec()?;
    let run = NewRun {
        run_id: run_id.clone(),
        config: serde_json::to_value(cfg).expect("config serialises"),
        config_digest: digest,
    };
    let recording = std::time::Instant::now();
    ctx.ledger.create_run(&run, &new_tasks, &plan.docs(), overwrite)?;
    tracing::info!(seconds = recording.elapsed().as_secs_f64(), "planning: plan recorded in the ledger");
    // Plan artefacts, for people and debugging, and the product's documents: with the
    // run's canned ACL, like its tiles.
    let mut ctx = ctx.clone();
    cfg.with_output_acl(&mut ctx);
    let layout = Layout::of(cfg);
    let dir = layout.plan_dir(&run_id);
    let csv_key = format!("{dir}/tasks.csv");
    ctx.output.put(&csv_key, tasks_csv(tasks, &plans).as_bytes())?;
    summary.artefacts.push(ctx.output.url(&csv_key));
    for period in &summary.periods {
        let fc = period_geojson(&grid, tasks, &plans, period, transform)?;
        let key = format!("{dir}/{period}.geojson");
        ctx.output.put(&key, serde_json::to_string_pretty(&fc).unwrap().as_bytes())?;
        summary.artefacts.push(ctx.output.url(&key));
    }
    // The product's Collection, written before any tile lands, covering every planned tile.
    if let Some(extent) = ProductExtent::of_tasks(&grid, tasks.keys(), transform)? {
        let key = layout.collection_key();
        let previous = match ctx.output.get(&key) {
            Ok(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes).ok(),
            Err(PortError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let doc = product_collection(cfg, extent, &ctx.output.url(&key), previous.as_ref());
        ctx.output.put(&key, serde_json::to_string_pretty(&doc).unwrap().as_bytes())?;
        summary.artefacts.push(ctx.output.url(&key));
    }
    let statistic = stratus_stats::build_statistic(&cfg.plugin, &cfg.plugin_config)?;
    let key = layout.product_definition_key();
    ctx.output.put(&key, product_definition(cfg, &statistic.output_bands()).as_bytes())?;
    summary.artefacts.push(ctx.output.url(&key));
    Ok(summary)
}
