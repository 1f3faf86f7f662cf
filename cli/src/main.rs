//! `stratus`: the operator CLI. Thin: every command is a call into `stratus-engine`.

// Planning parses millions of small JSON values: glibc's allocator dominated the profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod commands;
mod progress;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "stratus", version, about = "Statistical summaries of satellite imagery, tile by tile")]
struct Cli {
    /// More logging (-v info, -vv debug). RUST_LOG overrides; STRATUS_LOG_FORMAT=json for JSON lines.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

/// Where a run's outputs and (embedded) state live.
#[derive(clap::Args, Clone)]
pub struct Where {
    /// Output location (a directory or s3://BUCKET/PREFIX). The embedded ledger and queue live in
    /// LOCATION/_stratus/state.sqlite unless --state says otherwise. With --table, each run is
    /// opened at the location its own record names; this serves only runs that record none.
    #[arg(long, env = "STRATUS_LOCATION")]
    location: String,
    /// The embedded store file (SQLite).
    #[arg(long, env = "STRATUS_STATE")]
    state: Option<PathBuf>,
    /// The DynamoDB ledger table (runs on AWS). Without it, the embedded store is used.
    #[arg(long, env = "STRATUS_TABLE")]
    table: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Generate synthetic Sentinel-2 L2A-like scenes (COGs + STAC) with known truth.
    Synth(commands::SynthArgs),
    /// Plan a run: bin input datasets into tasks (tile x period) and record them.
    SaveTasks(Box<commands::SaveTasksArgs>),
    /// Process the tasks of a run (all, a selection, or from the embedded queue).
    Run(commands::RunArgs),
    /// Send a run's pending tasks to a queue (SQS with --queue, else the embedded one).
    PublishTasks(commands::PublishArgs),
    /// Consume an SQS task queue as a long-running container worker (any run's tasks).
    Worker(commands::WorkerArgs),
    /// Build the low-resolution mosaic of a run's done tiles.
    GenerateMosaic(commands::MosaicArgs),
    /// Show a run's progress, failures and queue depth.
    Status(commands::StatusArgs),
    /// Put failed tasks back to pending so the next `run` retries them.
    Retry(commands::RetryArgs),
    /// Move dead-lettered messages back to the run's queue (SQS with --queue) and re-arm failed tasks.
    Redrive(commands::RedriveArgs),
    /// What a planned run will cost: invocations, GB-seconds, S3 requests, USD, wall time.
    Estimate(commands::EstimateArgs),
    /// Which tiles of a grid a GeoJSON area touches (x,y lines, as --tile takes them).
    LocateGrids(commands::LocateGridsArgs),
    /// Run one statistics kernel on a NumPy (y, x, band, time) stack; print the compute time.
    Stat(commands::StatArgs),
    /// Print the Stratus run file equivalent to an odc-stats run configuration, with a
    /// note per odc-stats key.
    ConvertConfig(commands::ConvertConfigArgs),
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var("STRATUS_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() {
    // Like any Unix filter: when the reader of our output goes away (`save-tasks | head`),
    // end quietly instead of panicking on the broken pipe. Rust ignores SIGPIPE by default.
    // SAFETY: restoring a signal's default disposition at start-up, before any thread runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    // s3:// locations, SQS queues and DynamoDB tables go through the AWS adapters
    // (connected on first use only).
    stratus_serverless::install_aws();
    init_logging(cli.verbose);
    let code = match commands::dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    };
    std::process::exit(code);
}
