//! Starting a function: JSON logs (one line per event, with the span fields: run id, task
//! id, attempt), then the Lambda runtime loop around a handler.

use crate::deployment::Deployment;
use crate::HandlerError;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// JSON logs to stdout (CloudWatch), level from `RUST_LOG` (default info).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(true)
        .with_target(false)
        .without_time()
        .try_init();
}

/// Run a handler in the Lambda runtime loop, with the deployment read from the environment.
pub async fn serve<F, Fut>(handler: F) -> Result<(), HandlerError>
where
    F: Fn(Deployment, LambdaEvent<Value>) -> Fut,
    Fut: Future<Output = Result<Value, HandlerError>>,
{
    init_logging();
    stratus_raster::init_gdal();
    crate::install_aws();
    let dep = Deployment::from_env();
    tracing::info!(table = %dep.table, "function starting");
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| handler(dep.clone(), event))).await
}

/// When this invocation must have finished its work: Lambda's deadline minus a margin.
pub fn deadline_of(ctx: &lambda_runtime::Context, margin: Duration) -> Instant {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    // A context without a deadline (a test, a local invoke) gets 15 minutes.
    let left_ms = if ctx.deadline == 0 { 900_000 } else { ctx.deadline.saturating_sub(now_ms) };
    Instant::now() + Duration::from_millis(left_ms).saturating_sub(margin)
}
