//! The CLI's commands: parse arguments, call the engine, print for people.

use crate::progress::Bar;
use crate::{Command, Where};
use anyhow::{bail, Context as _, Result};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stratus_core::Selection;
use stratus_engine::config::{InputPolicy, RunConfig, RunRecordExt};
use stratus_engine::context::Place;
use stratus_engine::estimate::{Prices, RunEstimate};
use stratus_engine::runner::{publish_tasks, run_from_queue, run_plan, Queues, RunOptions, RunSummary};
use stratus_engine::Context;
use stratus_ports::ledger::ResetScope;
use stratus_ports::{TaskQueue, TaskState};
use stratus_raster::GdalCrsTransform;
use stratus_synth::SynthSpec;

/// Receives after which an embedded queue message is dead-lettered (SQS's usual 3).
const MAX_RECEIVES: u32 = stratus_ports::DEFAULT_MAX_RECEIVES;

pub fn dispatch(cmd: Command) -> Result<i32> {
    match cmd {
        Command::Synth(a) => synth(a),
        Command::SaveTasks(a) => save_tasks(*a),
        Command::Run(a) => run(a),
        Command::PublishTasks(a) => publish(a),
        Command::Worker(a) => worker(a),
        Command::GenerateMosaic(a) => generate_mosaic(a),
        Command::Status(a) => status(a),
        Command::Retry(a) => retry(a),
        Command::Redrive(a) => redrive(a),
        Command::Stat(a) => stat(a),
        Command::Estimate(a) => estimate(a),
        Command::LocateGrids(a) => locate_grids(a),
        Command::ConvertConfig(a) => convert_config(a),
    }
}

#[derive(clap::Args)]
pub struct ConvertConfigArgs {
    /// The odc-stats run configuration (YAML).
    config: PathBuf,
}

/// Print the equivalent Stratus run file, with a comment per odc-stats key.
pub fn convert_config(a: ConvertConfigArgs) -> Result<i32> {
    let text = std::fs::read_to_string(&a.config).with_context(|| format!("reading '{}'", a.config.display()))?;
    print!("{}", stratus_engine::odc_stats_keys::convert(&text, &a.config.display().to_string())?);
    Ok(0)
}

fn place_of(w: &Where) -> Place {
    Place { location: w.location.clone(), state: w.state.clone(), table: w.table.clone() }
}

fn context(w: &Where) -> Result<Context> {
    Context::open(&place_of(w)).with_context(|| format!("opening location '{}'", w.location))
}

/// Where a run's outputs are: its own record's location, else `--location`.
fn run_location(ctx: &Context, run_id: &str, w: &Where) -> String {
    ctx.ledger
        .run(run_id)
        .ok()
        .flatten()
        .and_then(|r| r.run_config().ok())
        .map(|c| c.location)
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| w.location.clone())
}

fn selections(v: &[String]) -> Result<Vec<Selection>> {
    v.iter().map(|s| s.parse::<Selection>().map_err(anyhow::Error::from)).collect()
}

/// A GeoJSON area, read and parsed.
fn read_area(path: &std::path::Path) -> Result<stratus_core::area::Area> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the area '{}'", path.display()))?;
    Ok(stratus_core::area::Area::from_geojson(&text, &path.display().to_string())?)
}

/// The selection, narrowed to the tiles of `area` when one is given.
fn selections_in(
    ctx: &Context,
    run_id: &str,
    selection: &[String],
    area: Option<&std::path::Path>,
) -> Result<Vec<Selection>> {
    let sel = selections(selection)?;
    match area {
        None => Ok(sel),
        Some(path) => {
            let area = read_area(path)?;
            Ok(stratus_engine::runner::select_in_area(ctx, run_id, &sel, &area, &GdalCrsTransform)?)
        }
    }
}

#[derive(clap::Args)]
pub struct LocateGridsArgs {
    /// The area: GeoJSON in longitude / latitude (a geometry, Feature or FeatureCollection).
    area: PathBuf,
    /// The grid (as save-tasks takes it).
    #[arg(long)]
    grid: String,
    /// Also write the tiles to this CSV file (one `x,y` row each, as odc-stats does).
    #[arg(long)]
    csv: Option<PathBuf>,
}

/// Print the tiles of a grid that an area touches, one `x,y` per line (what `--tile`
/// takes).
pub fn locate_grids(a: LocateGridsArgs) -> Result<i32> {
    let grid = stratus_core::GridSpec::parse(&a.grid)?;
    let tiles = read_area(&a.area)?.tiles(&grid, &GdalCrsTransform)?;
    let text: String = tiles.iter().map(|t| format!("{},{}\n", t.x, t.y)).collect();
    print!("{text}");
    if let Some(csv) = &a.csv {
        std::fs::write(csv, &text).with_context(|| format!("writing {}", csv.display()))?;
    }
    eprintln!("{} tiles of {} touch {}", tiles.len(), grid.name, a.area.display());
    Ok(0)
}

#[derive(clap::Args)]
pub struct SynthArgs {
    /// Output directory (a static STAC catalog is written at OUT/catalog.json).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value_t = 2021)]
    year: i32,
    /// Observation dates per granule over the year.
    #[arg(long, default_value_t = 24)]
    dates: usize,
    /// Pixel size in metres.
    #[arg(long, default_value_t = 60.0)]
    resolution: f64,
    /// Granule side in kilometres.
    #[arg(long, default_value_t = 109.8)]
    granule_km: f64,
    /// Skip the cloud-free truth twin.
    #[arg(long)]
    no_truth: bool,
    /// Only STAC items (no pixels) over all of Africa, as NDJSON written to --out: MGRS-like
    /// granules, 5-day revisit, from --year for --years years. For planning at scale.
    #[arg(long)]
    items_only: bool,
    /// With --items-only: how many years.
    #[arg(long, default_value_t = 1, requires = "items_only")]
    years: u32,
    /// With --items-only: days between overpasses of a granule.
    #[arg(long, default_value_t = 5, requires = "items_only")]
    revisit_days: u32,
    /// With --items-only: stop after this many items.
    #[arg(long, requires = "items_only")]
    max_items: Option<usize>,
}

fn synth_items(a: &SynthArgs) -> Result<i32> {
    let spec = stratus_synth::items::ItemsSpec {
        seed: a.seed,
        start_year: a.year,
        years: a.years,
        revisit_days: a.revisit_days,
        max_items: a.max_items,
        ..Default::default()
    };
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let started = Instant::now();
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(indicatif::ProgressStyle::with_template("synth items [{elapsed_precise}] {msg}").unwrap());
    let s = stratus_synth::items::generate_items(&spec, &a.out, &|n| bar.set_message(format!("{n} items")))?;
    bar.finish_and_clear();
    println!(
        "wrote {} items ({} granules, {:.2} GB) in {:.1} s: {}",
        s.items,
        s.granules,
        s.bytes as f64 / 1e9,
        started.elapsed().as_secs_f64(),
        a.out.display()
    );
    Ok(0)
}

fn synth(a: SynthArgs) -> Result<i32> {
    if a.items_only {
        return synth_items(&a);
    }
    let spec = SynthSpec {
        seed: a.seed,
        year: a.year,
        dates: a.dates,
        resolution: a.resolution,
        granule_km: a.granule_km,
        truth: !a.no_truth,
        ..Default::default()
    };
    let started = Instant::now();
    let bar = indicatif::ProgressBar::new((spec.dates * spec.granules.len()) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("synth [{elapsed_precise}] {bar:30} {pos}/{len} scenes  ETA {eta}")
            .unwrap(),
    );
    let s = stratus_synth::generate(&spec, &a.out, &|done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    if s.reused {
        println!("synthetic scenes already present ({} items): {}", s.items, s.catalog.display());
    } else {
        println!(
            "wrote {} synthetic scenes in {:.1} s: {}",
            s.items,
            started.elapsed().as_secs_f64(),
            s.catalog.display()
        );
    }
    if let Some(t) = &s.truth_catalog {
        println!("truth (cloud-free twins): {}", t.display());
    }
    Ok(0)
}

/// A STAC API search as an input (`--stac-api URL` and what to search for).
#[derive(clap::Args, Default)]
pub struct StacApiArgs {
    /// Search this STAC API (its root URL) for the inputs, e.g.
    /// https://earth-search.aws.element84.com/v1. Adds to --input.
    #[arg(long, value_name = "URL")]
    stac_api: Option<String>,
    /// Collections to search (comma-separated or repeated).
    #[arg(long, value_delimiter = ',', requires = "stac_api")]
    collections: Vec<String>,
    /// Only items intersecting this box: WEST,SOUTH,EAST,NORTH in degrees.
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true, requires = "stac_api")]
    bbox: Vec<f64>,
    /// Only items intersecting this GeoJSON (a file, or the GeoJSON itself): a geometry,
    /// a Feature or a FeatureCollection.
    #[arg(long, value_name = "GEOJSON", requires = "stac_api")]
    intersects: Option<String>,
    /// RFC 3339 instant or interval; default: the run's temporal range.
    #[arg(long, requires = "stac_api")]
    datetime: Option<String>,
    /// The query extension, as JSON: '{"eo:cloud_cover": {"lt": 60}}'.
    #[arg(long, value_name = "JSON", requires = "stac_api")]
    query: Option<String>,
    /// The filter extension: CQL2 text ("eo:cloud_cover < 60") or CQL2 JSON (starting '{').
    #[arg(long, value_name = "CQL2", requires = "stac_api")]
    filter: Option<String>,
    /// Items per page to ask for.
    #[arg(long, requires = "stac_api")]
    page_size: Option<u64>,
}

impl StacApiArgs {
    fn search(&self) -> Result<Option<stratus_engine::stac_api::StacApiSearch>> {
        let Some(api) = &self.stac_api else { return Ok(None) };
        if !self.bbox.is_empty() && self.bbox.len() != 4 {
            bail!("--bbox: give WEST,SOUTH,EAST,NORTH in degrees, e.g. --bbox 26.5,-8.5,27.5,-7.5");
        }
        let json_arg = |flag: &str, text: &str| -> Result<serde_json::Value> {
            serde_json::from_str(text).with_context(|| format!("--{flag}: not JSON: {text}"))
        };
        let intersects = match &self.intersects {
            None => None,
            Some(t) if t.trim_start().starts_with('{') => Some(json_arg("intersects", t)?),
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("--intersects: reading '{path}'"))?;
                Some(serde_json::from_str(&text).with_context(|| format!("--intersects: '{path}' is not GeoJSON"))?)
            }
        };
        let query = match &self.query {
            None => None,
            Some(t) => match json_arg("query", t)? {
                serde_json::Value::Object(m) => Some(m),
                _ => bail!("--query: give a JSON object, e.g. '{{\"eo:cloud_cover\": {{\"lt\": 60}}}}'"),
            },
        };
        let filter = match &self.filter {
            None => None,
            Some(t) if t.trim_start().starts_with('{') => Some(json_arg("filter", t)?),
            Some(t) => Some(serde_json::Value::String(t.clone())),
        };
        Ok(Some(stratus_engine::stac_api::StacApiSearch {
            stac_api: api.clone(),
            collections: self.collections.clone(),
            bbox: <[f64; 4]>::try_from(self.bbox.as_slice()).ok(),
            intersects,
            datetime: self.datetime.clone(),
            query,
            filter,
            limit: self.page_size,
        }))
    }
}

#[derive(clap::Args)]
pub struct SaveTasksArgs {
    /// A run file (YAML). Flags below override its values.
    #[arg(long)]
    config: Option<PathBuf>,
    /// STAC sources: item, ItemCollection, NDJSON, catalog, or a directory of them.
    #[arg(long = "input")]
    inputs: Vec<String>,
    #[command(flatten)]
    search: StacApiArgs,
    /// Keep only items meeting this condition on their properties (repeatable; all must
    /// hold): CQL2 text ("eo:cloud_cover < 60"), CQL2 JSON, or odc-stats' property values
    /// ('{"dataset_maturity": "final"}').
    #[arg(long = "dataset-filter", value_name = "FILTER")]
    dataset_filters: Vec<String>,
    /// Output grid: au-10/20/30/60, africa-10/20/30/60, global-*, or epsg:N;RES;PIXELS.
    #[arg(long)]
    grid: Option<String>,
    /// annual, annual-fy, semiannual, seasonal, quartely (quarterly), 3month-seasons,
    /// rolling-3months, nov-mar, apr-oct (odc-stats'), monthly, dekad (10 days), all.
    #[arg(long)]
    frequency: Option<String>,
    /// Shorthand for --temporal-range YEAR--P1Y.
    #[arg(long, conflicts_with = "temporal_range")]
    year: Option<i32>,
    /// Only observations in this period, e.g. 2020-05--P1M.
    #[arg(long)]
    temporal_range: Option<String>,
    /// Tiles to plan, as x,y or odc-stats' ranges x0:x1,y0:y1 (x1, y1 excluded;
    /// repeatable); all touched tiles if absent.
    #[arg(long = "tile", visible_alias = "tiles")]
    tiles: Vec<String>,
    /// Product expression: a, a+b or a+b+c (fuse) or a-b-c (pool).
    #[arg(long)]
    products: Option<String>,
    /// Make only the pixels inside this GeoJSON area (longitude / latitude): tiles it does
    /// not touch are not planned; pixels outside it are nodata.
    #[arg(long, value_name = "AREA.geojson")]
    area_of_interest: Option<PathBuf>,
    /// Fused products that may be missing from an acquisition (repeatable; odc-stats'
    /// --optional-products).
    #[arg(long = "optional-products")]
    optional_products: Vec<String>,
    /// Fused products without time, joined to every date of the others with the same
    /// region code (repeatable; odc-stats' ignore_time): a DEM, a static mask.
    #[arg(long = "ignore-time")]
    ignore_time: Vec<String>,
    #[arg(long)]
    plugin: Option<String>,
    /// Output product name.
    #[arg(long)]
    product_name: Option<String>,
    #[arg(long)]
    product_version: Option<String>,
    /// Output location (directory).
    #[arg(long, env = "STRATUS_LOCATION")]
    location: Option<String>,
    #[arg(long, env = "STRATUS_STATE")]
    state: Option<PathBuf>,
    /// The DynamoDB ledger table (runs on AWS). Without it, the embedded store is used.
    #[arg(long, env = "STRATUS_TABLE")]
    table: Option<String>,
    #[arg(long)]
    run_id: Option<String>,
    /// Pixels per side of a processing chunk.
    #[arg(long)]
    chunk_size: Option<usize>,
    /// What an unreadable input does: fail (its tile) or skip (it).
    #[arg(long)]
    input_policy: Option<String>,
    /// Replace an existing plan of the same run id.
    #[arg(long)]
    overwrite: bool,
    /// Print the plan's summary only; write nothing.
    #[arg(long)]
    dry_run: bool,
}

fn build_config(a: &SaveTasksArgs) -> Result<RunConfig> {
    let mut cfg = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading run file '{}'", p.display()))?;
            RunConfig::parse_yaml(&text, &p.display().to_string())?
        }
        None => RunConfig { plugin: "pq".into(), ..RunConfig::default() },
    };
    // Inputs on the command line replace the run file's.
    let search = a.search.search()?;
    if !a.inputs.is_empty() || search.is_some() {
        cfg.inputs = a.inputs.iter().map(|i| i.as_str().into()).collect();
        cfg.inputs.extend(search.map(|s| stratus_engine::config::Input::StacApi(Box::new(s))));
    }
    for f in &a.dataset_filters {
        cfg.dataset_filters.push(if f.trim_start().starts_with('{') {
            serde_json::from_str(f).with_context(|| format!("--dataset-filter: not JSON: {f}"))?
        } else {
            serde_json::Value::String(f.clone())
        });
    }
    macro_rules! set {
        ($field:ident, $value:expr) => {
            if let Some(v) = $value {
                cfg.$field = v;
            }
        };
    }
    set!(grid, a.grid.clone());
    set!(plugin, a.plugin.clone());
    set!(location, a.location.clone());
    set!(chunk_size, a.chunk_size);
    if a.frequency.is_some() {
        cfg.frequency = a.frequency.clone();
    }
    if let Some(y) = a.year {
        cfg.temporal_range = Some(format!("{y}--P1Y"));
        cfg.frequency.get_or_insert_with(|| "annual".into());
    }
    if a.temporal_range.is_some() {
        cfg.temporal_range = a.temporal_range.clone();
    }
    if !a.tiles.is_empty() {
        cfg.tiles = a.tiles.clone();
    }
    if let Some(path) = &a.area_of_interest {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the area of interest '{}'", path.display()))?;
        let area: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("--area-of-interest: '{}' is not GeoJSON", path.display()))?;
        cfg.area_of_interest = Some(area);
    }
    if !a.optional_products.is_empty() {
        cfg.optional_products = a.optional_products.clone();
    }
    if !a.ignore_time.is_empty() {
        cfg.ignore_time = a.ignore_time.clone();
    }
    if a.products.is_some() {
        cfg.products = a.products.clone();
    }
    if a.run_id.is_some() {
        cfg.run_id = a.run_id.clone();
    }
    if let Some(n) = &a.product_name {
        cfg.product.name = n.clone();
    }
    if let Some(v) = &a.product_version {
        cfg.product.version = v.clone();
    }
    if let Some(p) = &a.input_policy {
        cfg.input_policy = match p.as_str() {
            "fail" => InputPolicy::Fail,
            "skip" => InputPolicy::Skip,
            _ => bail!("--input-policy '{p}': use fail or skip"),
        };
    }
    if cfg.grid.is_empty() {
        bail!("no grid: pass --grid (e.g. africa-30) or a run file with 'grid'");
    }
    if cfg.location.is_empty() {
        bail!("no output location: pass --location DIR or set STRATUS_LOCATION");
    }
    if cfg.product.name.is_empty() {
        cfg.product.name = format!("stratus_{}", cfg.plugin.replace('-', "_"));
    }
    cfg.validate()?;
    Ok(cfg)
}

fn save_tasks(a: SaveTasksArgs) -> Result<i32> {
    let cfg = build_config(&a)?;
    let ctx = if a.dry_run {
        None
    } else {
        Some(Context::open(&Place { location: cfg.location.clone(), state: a.state.clone(), table: a.table.clone() })?)
    };
    let started = Instant::now();
    let summary = match &ctx {
        Some(ctx) => stratus_engine::planner::save_tasks(&cfg, ctx, &GdalCrsTransform, a.overwrite, false)?,
        None => {
            // A dry run needs no store: plan in memory.
            let plan = stratus_engine::planner::build_plan(&cfg, &GdalCrsTransform)?;
            println!(
                "dry run: {} datasets -> {} tasks in {:.1} s ({} outside the time range, {} outside the tiles, {} unusable items)",
                plan.datasets(),
                plan.tasks.len(),
                started.elapsed().as_secs_f64(),
                plan.stats.outside_range,
                plan.stats.outside_tiles,
                plan.bad_items.len()
            );
            for f in &plan.filtered {
                println!("  dataset filter {}: left out {} items", f.filter, f.dropped);
            }
            let (estimates, estimate) = stratus_engine::planner::plan_estimates(&cfg, &plan.tasks)?;
            print!("{}", stratus_engine::plan_outputs::tasks_csv(&plan.tasks, &estimates));
            print_estimate(&estimate);
            return Ok(0);
        }
    };
    let run_id = &summary.run_id;
    if summary.unchanged {
        println!("plan '{run_id}' already exists with the same configuration: left as it is ({} tasks)", summary.tasks);
    } else {
        println!(
            "planned run '{run_id}': {} datasets -> {} tasks over {} in {:.1} s",
            summary.datasets,
            summary.tasks,
            summary.periods.join(", "),
            started.elapsed().as_secs_f64()
        );
        println!("  observation days per task: {} to {}", summary.observations_min, summary.observations_max);
        if summary.outside_range + summary.outside_tiles > 0 {
            println!(
                "  left out: {} datasets outside the time range, {} outside the selected tiles",
                summary.outside_range, summary.outside_tiles
            );
        }
        for f in &summary.filtered {
            println!("  dataset filter {}: left out {} items", f.filter, f.dropped);
        }
        for b in &summary.bad_items {
            println!("  skipped item {}: {}", b.source, b.reason);
        }
        for p in &summary.artefacts {
            println!("  wrote {p}");
        }
    }
    print_estimate(&summary.estimate);
    println!("next: stratus run {run_id} --location {}", cfg.location);
    Ok(0)
}

fn print_estimate(e: &RunEstimate) {
    println!("estimate (default prices; `stratus estimate RUN --price NAME=VALUE` to change them):");
    for line in e.render().lines() {
        println!("  {line}");
    }
}

#[derive(clap::Args)]
pub struct EstimateArgs {
    /// The run id (as printed by save-tasks).
    run_id: String,
    #[command(flatten)]
    place: Where,
    /// Lambda workers running at once.
    #[arg(long, default_value_t = 1000)]
    concurrency: usize,
    /// Container workers running at once (for tasks beyond Lambda's limits).
    #[arg(long, default_value_t = 10)]
    containers: usize,
    /// Override a unit price (USD), e.g. --price lambda_gb_second=0.0000133. Repeatable.
    #[arg(long = "price", value_name = "NAME=VALUE")]
    prices: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn estimate(a: EstimateArgs) -> Result<i32> {
    let ctx = context(&a.place)?;
    let prices = Prices::default().with_overrides(&a.prices).map_err(anyhow::Error::msg)?;
    let e = stratus_engine::estimate::estimate_run(&ctx, &a.run_id, &prices, a.concurrency, a.containers)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"estimate": e, "prices": prices}))?);
    } else {
        print!("{}", e.render());
    }
    Ok(0)
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// The run id (as printed by save-tasks).
    run_id: String,
    /// Tasks to run: task ids, zero-based indices or slices like ::10 (default: all).
    selection: Vec<String>,
    #[command(flatten)]
    place: Where,
    /// Parallel workers (tiles at once).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Recompute tiles whose outputs already exist.
    #[arg(long)]
    overwrite: bool,
    /// Pull tasks from the run's embedded queue (see publish-tasks) instead of the plan.
    #[arg(long)]
    from_queue: bool,
    /// With --from-queue: exit after the queue has been empty this many seconds.
    #[arg(long, default_value_t = 5)]
    idle_exit: u64,
    /// With --from-queue: an SQS queue URL instead of the run's embedded queue.
    #[arg(long, env = "STRATUS_TASK_QUEUE_URL")]
    queue: Option<String>,
    /// Only the tiles this GeoJSON area (longitude / latitude) touches.
    #[arg(long, value_name = "AREA.geojson", conflicts_with = "from_queue")]
    geojson_filter: Option<PathBuf>,
    /// Say what would be done with each selected tile (made, skipped as complete,
    /// overwritten, replaced); do nothing.
    #[arg(long, conflicts_with = "from_queue")]
    dry_run: bool,
}

fn run(a: RunArgs) -> Result<i32> {
    let ctx = context(&a.place)?;
    if ctx.ledger.run(&a.run_id)?.is_none() {
        let known: Vec<String> = ctx.ledger.runs()?.into_iter().map(|r| r.run_id).collect();
        bail!(
            "no run '{}' at {} (runs there: {}); plan it with save-tasks first",
            a.run_id,
            a.place.location,
            if known.is_empty() { "none".into() } else { known.join(", ") }
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    ctrlc::set_handler(move || {
        if s2.swap(true, Ordering::SeqCst) {
            eprintln!("\nstopping now");
            std::process::exit(130);
        }
        eprintln!("\nstopping after in-flight tiles release their tasks (Ctrl-C again to quit at once)");
    })
    .ok();
    let mut opts = RunOptions::new(a.workers, stop.clone());
    opts.selection = selections_in(&ctx, &a.run_id, &a.selection, a.geojson_filter.as_deref())?;
    opts.overwrite = a.overwrite;
    if a.dry_run {
        let plan = stratus_engine::runner::dry_run(&ctx, &a.run_id, &opts.selection, a.overwrite)?;
        for (tile, would) in &plan {
            println!("{tile}: {would}");
        }
        let count = |w| plan.iter().filter(|(_, x)| *x == w).count();
        use stratus_engine::runner::WouldDo;
        println!(
            "dry run: {} tiles: {} to make, {} complete (skipped), {} to overwrite, {} to replace",
            plan.len(),
            count(WouldDo::Make),
            count(WouldDo::Skip),
            count(WouldDo::Overwrite),
            count(WouldDo::Replace)
        );
        return Ok(0);
    }
    let bar = Bar::new();
    let report = if a.from_queue {
        let q = ctx.queue(a.queue.as_deref(), &a.run_id, MAX_RECEIVES)?;
        opts.visibility = Duration::from_secs(run_lease(&ctx, &a.run_id)?);
        run_from_queue(&ctx, Some(&a.run_id), q.as_ref(), &opts, Duration::from_secs(a.idle_exit), &bar)?
    } else {
        run_plan(&ctx, &a.run_id, &opts, &bar)?
    };
    print_report(&ctx, &report)?;
    Ok(if report.interrupted {
        130
    } else if report.failed.is_empty() {
        0
    } else {
        1
    })
}

/// A run's lease (job_queue_max_lease): how long a received message stays invisible.
fn run_lease(ctx: &Context, run_id: &str) -> Result<u64> {
    let run = ctx.ledger.run(run_id)?.with_context(|| format!("no run '{run_id}'"))?;
    Ok(run.run_config()?.job_queue_max_lease)
}

fn print_report(ctx: &Context, r: &RunSummary) -> Result<()> {
    let run = ctx.ledger.run(&r.run_id)?.unwrap();
    let c = &run.counts;
    println!(
        "run '{}': {} processed, {} already complete, {} failed in {:.1} s",
        r.run_id,
        r.processed,
        r.skipped_existing + r.already_done,
        r.failed.len(),
        r.elapsed_s
    );
    println!(
        "  ledger: {} done, {} failed, {} pending, {} queued, {} running of {} tasks",
        c.done, c.failed, c.pending, c.queued, c.running, c.total
    );
    for f in &r.failed {
        println!("  FAILED {}: {}", f.task_id, f.reason);
    }
    if r.interrupted {
        println!("  interrupted: run the same command again to resume");
    }
    let layout = stratus_engine::layout::Layout::of(&run.run_config()?);
    println!("  outputs: {}", ctx.output.url(&format!("{}/{}", layout.product, layout.version)));
    println!("  summary: {}", r.summary_url);
    Ok(())
}

#[derive(clap::Args)]
pub struct PublishArgs {
    run_id: String,
    /// Tasks to publish (default: all pending).
    selection: Vec<String>,
    #[command(flatten)]
    place: Where,
    /// Show what would be sent; send nothing.
    #[arg(long)]
    dry_run: bool,
    /// An SQS queue URL for the Lambda worker (default: the run's embedded queue, which
    /// takes every task).
    #[arg(long, env = "STRATUS_TASK_QUEUE_URL")]
    queue: Option<String>,
    /// The container worker's SQS queue URL, for tasks sized beyond Lambda's limits.
    /// Without it (and with --queue) those tasks stay pending.
    #[arg(long, env = "STRATUS_CONTAINER_QUEUE_URL", requires = "queue")]
    container_queue: Option<String>,
    /// Only the tiles this GeoJSON area (longitude / latitude) touches (odc-stats'
    /// --geojson-filter).
    #[arg(long, value_name = "AREA.geojson")]
    geojson_filter: Option<PathBuf>,
}

fn publish(a: PublishArgs) -> Result<i32> {
    let ctx = context(&a.place)?;
    let q = ctx.queue(a.queue.as_deref(), &a.run_id, MAX_RECEIVES)?;
    let cq = match (&a.queue, &a.container_queue) {
        (Some(_), Some(url)) => Some(ctx.queue(Some(url), &a.run_id, MAX_RECEIVES)?),
        _ => None,
    };
    // The embedded queue feeds local workers, which have no Lambda limits: it takes all.
    let container: Option<&dyn TaskQueue> = if a.queue.is_none() { Some(q.as_ref()) } else { cq.as_deref() };
    let queues = Queues { lambda: q.as_ref(), container };
    let selection = selections_in(&ctx, &a.run_id, &a.selection, a.geojson_filter.as_deref())?;
    let sent = publish_tasks(&ctx, &a.run_id, &queues, &selection, a.dry_run)?;
    let verb = if a.dry_run { "would send" } else { "sent" };
    if a.queue.is_none() {
        println!("{verb} {} task messages to {}", sent.lambda.len() + sent.container.len(), q.name());
    } else {
        println!("{verb} {} task messages to {}", sent.lambda.len(), q.name());
        if let Some(cq) = &cq {
            println!("{verb} {} task messages (beyond Lambda's limits) to {}", sent.container.len(), cq.name());
        }
    }
    if !sent.held.is_empty() {
        println!(
            "held back {} tasks sized beyond Lambda's limits (see `stratus estimate` and the plan's tasks.csv): \
             give --container-queue URL for the container worker, or raise the lambda budget in the run file",
            sent.held.len()
        );
    }
    if a.dry_run {
        for t in sent.lambda.iter().chain(&sent.container) {
            println!("  {t}");
        }
    }
    Ok(0)
}

#[derive(clap::Args)]
pub struct StatusArgs {
    /// A run id (default: every run at the location).
    run_id: Option<String>,
    #[command(flatten)]
    place: Where,
    /// Also list every task with its state.
    #[arg(long)]
    tasks: bool,
    /// Refresh every few seconds until the run has ended.
    #[arg(long)]
    watch: bool,
    /// The run's SQS task queue URL (default: its embedded queue), for queue depths.
    #[arg(long, env = "STRATUS_TASK_QUEUE_URL")]
    queue: Option<String>,
}

fn status(a: StatusArgs) -> Result<i32> {
    let ctx = context(&a.place)?;
    // Each run's outputs (its report) are looked up where its own record says.
    let opener = ctx.runs(&place_of(&a.place));
    loop {
        let runs = match &a.run_id {
            Some(r) => vec![ctx.ledger.run(r)?.with_context(|| format!("no run '{r}' at {}", a.place.location))?],
            None => ctx.ledger.runs()?,
        };
        if runs.is_empty() {
            println!("no runs at {}", a.place.location);
        }
        let mut ended = true;
        for run in &runs {
            let c = &run.counts;
            let pct = if c.total == 0 { 100.0 } else { 100.0 * c.ended() as f64 / c.total as f64 };
            println!(
                "{}  {:>5.1}% ended  done {}  failed {}  running {}  queued {}  pending {}  (of {})",
                run.run_id, pct, c.done, c.failed, c.running, c.queued, c.pending, c.total
            );
            let all_tasks = ctx.ledger.tasks(&run.run_id, None)?;
            let progress = stratus_engine::task_summary::TileProgress::of(&all_tasks);
            if progress.split > 0 {
                let (t, p) = (&progress.tiles, &progress.parts);
                println!(
                    "  tiles: done {}  failed {}  of {}; {} split into parts ({} waiting for them): parts done {}  failed {}  of {}",
                    t.done, t.failed, t.total, progress.split, progress.waiting, p.done, p.failed, p.total
                );
            }
            if run.completions > 0 {
                println!("  completed {} time(s)", run.completions);
            }
            let q = match (&a.queue, &ctx.db) {
                (Some(url), _) => ctx.queue(Some(url), &run.run_id, MAX_RECEIVES)?.depth()?,
                (None, Some(_)) => ctx.embedded_queue(&run.run_id, MAX_RECEIVES)?.depth()?,
                (None, None) => Default::default(),
            };
            if q.visible + q.in_flight + q.dead_letter > 0 {
                println!("  queue: {} waiting, {} in flight, {} dead-lettered", q.visible, q.in_flight, q.dead_letter);
            }
            if let Ok(cfg) = run.run_config() {
                let layout = stratus_engine::layout::Layout::of(&cfg);
                let (html, _) = stratus_engine::report::report_keys(&layout, &run.run_id);
                let output = opener.open_run(&run.run_id)?.output;
                if output.head(&html)?.is_some() {
                    println!("  report: {}", output.url(&html));
                }
            }
            for t in all_tasks.iter().filter(|t| t.state == TaskState::Failed) {
                println!("  FAILED {} (attempts {}): {}", t.task_id, t.attempts, t.error.clone().unwrap_or_default());
            }
            if a.tasks {
                for t in &all_tasks {
                    let waiting =
                        if t.blocked && t.state == TaskState::Pending { " (waiting for its parts)" } else { "" };
                    println!("  {:>4} {} {:<8} attempts {}{waiting}", t.index, t.task_id, t.state, t.attempts);
                }
            }
            ended &= c.ended() == c.total;
        }
        if !a.watch || ended {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_secs(3));
        println!();
    }
}

#[derive(clap::Args)]
pub struct RetryArgs {
    run_id: String,
    #[command(flatten)]
    place: Where,
    /// Retry the failed tasks (required: says what is retried).
    #[arg(long, required = true)]
    failed: bool,
}

fn retry(a: RetryArgs) -> Result<i32> {
    let ctx = context(&a.place)?;
    // `--failed` is required (it is the only retry there is), so it is always set here.
    debug_assert!(a.failed);
    let reset = ctx.ledger.reset(&a.run_id, ResetScope::Failed, None)?;
    println!(
        "{} failed tasks set back to pending; run `stratus run {} --location {}` to process them",
        reset.len(),
        a.run_id,
        run_location(&ctx, &a.run_id, &a.place)
    );
    Ok(0)
}

#[derive(clap::Args)]
pub struct RedriveArgs {
    run_id: String,
    #[command(flatten)]
    place: Where,
    /// The SQS task queue URL whose dead-letter queue to redrive (default: the embedded one).
    #[arg(long, env = "STRATUS_TASK_QUEUE_URL")]
    queue: Option<String>,
}

fn redrive(a: RedriveArgs) -> Result<i32> {
    let ctx = context(&a.place)?;
    let q = ctx.queue(a.queue.as_deref(), &a.run_id, MAX_RECEIVES)?;
    // Failed tasks become pending (claimable again); their dead-lettered messages return
    // to the queue. A task that failed outside the queue has no message: publish-tasks
    // sends it (a duplicate message is absorbed by the ledger's claim).
    let reset = ctx.ledger.reset(&a.run_id, ResetScope::Failed, None)?;
    let moved = q.redrive()?;
    println!(
        "redrove {moved} dead-lettered messages and re-armed {} failed tasks; next: stratus run {} --from-queue --location {}",
        reset.len(),
        a.run_id,
        run_location(&ctx, &a.run_id, &a.place)
    );
    Ok(0)
}

#[derive(clap::Args)]
pub struct WorkerArgs {
    /// The SQS task queue URL to consume.
    #[arg(long, env = "STRATUS_TASK_QUEUE_URL")]
    from_sqs: String,
    #[command(flatten)]
    place: Where,
    /// Where completion messages go (the mosaic function's queue).
    #[arg(long, env = "STRATUS_COMPLETION_QUEUE_URL")]
    completion_queue: Option<String>,
    /// Tiles at once.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Exit after the queue has been empty this many seconds.
    #[arg(long, default_value_t = 60)]
    idle_exit: u64,
    /// How long a received message stays invisible (renewed while a tile runs).
    #[arg(long, default_value_t = stratus_ports::TASK_VISIBILITY.as_secs())]
    visibility: u64,
}

fn worker(a: WorkerArgs) -> Result<i32> {
    let ctx = context(&a.place)?;
    let q = ctx.queue(Some(&a.from_sqs), "", MAX_RECEIVES)?;
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    ctrlc::set_handler(move || s2.store(true, Ordering::SeqCst)).ok();
    let mut opts = RunOptions::new(a.workers, stop);
    opts.visibility = Duration::from_secs(a.visibility);
    opts.completion = a.completion_queue.as_deref().map(|u| ctx.queue(Some(u), "", MAX_RECEIVES)).transpose()?;
    // Each message's run is opened at the location its record names; --location serves
    // only a run that records none.
    opts.runs = Some(ctx.runs(&place_of(&a.place)));
    eprintln!("consuming {} until it stays empty for {} s", q.name(), a.idle_exit);
    let r = run_from_queue(&ctx, None, q.as_ref(), &opts, Duration::from_secs(a.idle_exit), &Bar::new())?;
    println!(
        "worker: {} processed, {} already complete, {} failed in {:.1} s",
        r.processed,
        r.skipped_existing + r.already_done,
        r.failed.len(),
        r.elapsed_s
    );
    Ok(if r.interrupted { 130 } else { 0 })
}

#[derive(clap::Args)]
pub struct MosaicArgs {
    /// The run whose done tiles to mosaic (or give --items instead).
    #[arg(required_unless_present = "items")]
    run_id: Option<String>,
    /// Output STAC items to mosaic instead of a run's tiles (files or s3:// addresses;
    /// a shell glob such as 'out/prod/1.0.0/*/*/*/*.stac-item.json' expands to a list).
    #[arg(long, num_args = 1.., conflicts_with = "run_id")]
    items: Vec<String>,
    /// With --items: where under --location the mosaic goes.
    #[arg(long, default_value = "mosaic")]
    prefix: String,
    #[command(flatten)]
    place: Where,
    /// Metres per mosaic pixel (default: the grid's resolution x 8).
    #[arg(long)]
    resolution: Option<f64>,
    /// Bands to include (comma-separated; default: all).
    #[arg(long, value_delimiter = ',')]
    bands: Vec<String>,
    /// Resampling for continuous bands: average (default), bilinear, cubic, mode, ...
    /// (categorical bands always use nearest).
    #[arg(long)]
    resampling: Option<String>,
}

fn generate_mosaic(a: MosaicArgs) -> Result<i32> {
    let opts = stratus_engine::mosaic::MosaicOptions {
        resolution: a.resolution,
        bands: (!a.bands.is_empty()).then(|| a.bands.clone()),
        resampling: a.resampling.clone(),
    };
    let Some(run_id) = &a.run_id else {
        let store = stratus_engine::context::open_store(&a.place.location)?;
        let r = stratus_engine::mosaic::build_from_items(store.as_ref(), &a.prefix, &a.items, &opts)?;
        println!(
            "mosaic of {} items ({} x {} px at {} m) in {:.1} s",
            a.items.len(),
            r.width,
            r.height,
            r.resolution,
            r.elapsed_s
        );
        for b in &r.bands {
            println!("  {} ({} tiles): {}", b.band, b.tiles, b.url);
        }
        for m in &r.missing {
            println!("  MISSING {m} (left as nodata)");
        }
        println!("  preview: {}\n  STAC item: {}", r.preview.as_deref().unwrap_or("(none)"), r.stac_item);
        return Ok(0);
    };
    let ctx = context(&a.place)?;
    let r = stratus_engine::mosaic::build_for_run(&ctx, run_id, &opts)?;
    println!("mosaic of {} ({} x {} px at {} m) in {:.1} s", r.run_id, r.width, r.height, r.resolution, r.elapsed_s);
    for b in &r.bands {
        println!("  {} ({} tiles): {}", b.band, b.tiles, b.url);
    }
    for m in &r.missing {
        println!("  MISSING {m} (left as nodata)");
    }
    if let Some(p) = &r.preview {
        println!("  preview: {p}");
    }
    println!("  STAC item: {}", r.stac_item);
    let report = stratus_engine::report::write_report(&ctx, run_id, Some(r))?;
    println!("  report: {report}");
    Ok(0)
}

#[derive(clap::Args)]
pub struct StatArgs {
    /// Input .npy, int16 or uint16, laid out (y, x, band, time).
    input: PathBuf,
    /// Directory for the output .npy files.
    #[arg(long)]
    out: PathBuf,
    /// gm (geomedian + EMAD, SMAD, BCMAD, count), gm-only, percentiles, median or count.
    #[arg(long, default_value = "gm")]
    kernel: String,
    /// Percentiles for --kernel percentiles (comma-separated, 0 to 100).
    #[arg(long, value_delimiter = ',', default_value = "10,50,90")]
    percentiles: Vec<u32>,
    /// value = DN * scale + offset.
    #[arg(long, default_value_t = 1e-4)]
    scale: f64,
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    offset: f64,
    #[arg(long, allow_hyphen_values = true)]
    nodata: f64,
    /// Geomedian stopping step (scaled units).
    #[arg(long, default_value_t = 1e-4)]
    eps: f32,
    #[arg(long, default_value_t = 1000)]
    maxiters: u32,
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn stat(a: StatArgs) -> Result<i32> {
    let mut kernel: stratus_engine::stat_npy::Kernel = a.kernel.parse().map_err(anyhow::Error::msg)?;
    if let stratus_engine::stat_npy::Kernel::Percentiles(p) = &mut kernel {
        if a.percentiles.iter().any(|v| *v > 100) {
            bail!("--percentiles must be between 0 and 100");
        }
        *p = a.percentiles.clone();
    }
    let r = stratus_engine::stat_npy::run_stat(&stratus_engine::stat_npy::StatArgs {
        input: a.input,
        out_dir: a.out,
        kernel,
        scale: a.scale,
        offset: a.offset,
        nodata: a.nodata,
        eps: a.eps,
        maxiters: a.maxiters,
        threads: a.threads,
    })?;
    println!("{}", serde_json::to_string(&r)?);
    Ok(0)
}
