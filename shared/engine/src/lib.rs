//! The Stratus engine: planning (save-tasks), processing one tile, running a plan with
//! local workers, and the output layout. It reaches storage, queues and the ledger only
//! through the `stratus-ports` traits, so the embedded and AWS paths share this code.

pub mod access_policy;
pub mod assembly;
pub mod config;
pub mod consumer;
pub mod context;
pub mod dataset_filter;
pub mod dataset_spool;
pub mod eo3_output;
pub mod error;
pub mod estimate;
pub mod layout;
pub mod messages;
pub mod mosaic;
pub mod odc_stats_keys;
pub mod plan_outputs;
pub mod planner;
pub mod report;
pub mod runner;
pub mod scratch;
pub mod sizing;
pub mod sources;
pub mod stac_api;
pub mod stac_output;
pub mod stat_npy;
pub mod task_summary;
pub mod thumbnail;
pub mod tile;
pub mod worker;

pub use config::RunConfig;
pub use context::Context;
pub use error::EngineError;

/// The Stratus version, recorded in every output.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
