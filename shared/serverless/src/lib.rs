//! The Lambda functions' logic: each handler turns the event Lambda delivers into calls
//! on the engine, through the same ports as the CLI. The binaries in `functions/` only
//! start the runtime with one of these handlers.
//!
//! - [`planner`]: run file created in S3 (S3 notification or EventBridge "Object
//!   Created") or a schedule -> plan into the ledger -> fan-out pages on the dispatch queue;
//! - [`dispatcher`]: fan-out pages -> task messages on the task queue;
//! - [`worker`]: task messages -> one tile each, partial batch failures;
//! - [`mosaic`]: completion message -> mosaic and run summary.

pub mod deployment;
pub mod dispatcher;
pub mod events;
pub mod mosaic;
pub mod planner;
pub mod runtime;
pub mod worker;

pub use deployment::Deployment;

/// Errors a handler returns to the Lambda runtime (which logs and reports them).
pub type HandlerError = lambda_runtime::Error;
