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
pub mod error;
pub mod events;
pub mod mosaic;
pub mod planner;
pub mod ports;
pub mod runtime;
pub mod worker;

pub use deployment::Deployment;
pub use error::ServerlessError;
pub use ports::{AwsPorts, EmbeddedPorts, FunctionPorts};

/// Install the AWS adapters as the engine's remote ports (once per process), GDAL's
/// `/vsis3/` pointed at the same endpoint when they connect. Every program at the edge
/// calls this first: the Lambda functions, the handlers (so tests that call them
/// directly get them too) and the CLI.
pub fn install_aws() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let remote = stratus_aws::AwsRemote::new(|aws| stratus_raster::vsi::set_default_options(&aws.gdal_options()));
        stratus_engine::context::install_remote(std::sync::Arc::new(remote));
    });
}

/// The process's AWS connection, with the adapters installed (see [`install_aws`]).
pub fn aws() -> Result<std::sync::Arc<stratus_aws::Aws>, stratus_ports::PortError> {
    install_aws();
    let aws = stratus_aws::Aws::shared()?;
    stratus_raster::vsi::set_default_options(&aws.gdal_options());
    Ok(aws)
}

/// Errors a handler returns to the Lambda runtime (which logs and reports them).
pub type HandlerError = lambda_runtime::Error;

/// The one SQS record loop of every function: `f` gets each record as a received message
/// (body, receipt, receive count) and says whether it stays in the queue; an error also
/// keeps it (logged). Records kept are returned as `batchItemFailures`: SQS delivers them
/// again, then dead-letters them.
pub fn for_each_record(
    event: &serde_json::Value,
    what: &str,
    mut f: impl FnMut(&stratus_ports::Received) -> Result<bool, ServerlessError>,
) -> Result<aws_lambda_events::sqs::SqsBatchResponse, ServerlessError> {
    use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
    let event: SqsEvent =
        serde_json::from_value(event.clone()).map_err(|e| ServerlessError::Event(format!("not an SQS event: {e}")))?;
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let msg = stratus_ports::Received {
            message_id: record.message_id.clone().unwrap_or_default(),
            body: record.body.clone().unwrap_or_default(),
            receipt: record.receipt_handle.clone().unwrap_or_default(),
            receive_count: record.attributes.get("ApproximateReceiveCount").and_then(|v| v.parse().ok()).unwrap_or(1),
        };
        let keep = f(&msg).unwrap_or_else(|e| {
            tracing::error!(message_id = %msg.message_id, error = %e, "{what} failed");
            true
        });
        if keep {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = msg.message_id;
            response.batch_item_failures.push(failure);
        }
    }
    Ok(response)
}

/// Run a handler's blocking work (the ports are synchronous) off the runtime's threads and
/// turn its result into the function's response.
pub async fn blocking<T, F>(work: F) -> Result<serde_json::Value, HandlerError>
where
    T: serde::Serialize,
    F: FnOnce() -> Result<T, ServerlessError> + Send + 'static,
    T: Send + 'static,
{
    let out = tokio::task::spawn_blocking(work).await??;
    Ok(serde_json::to_value(out)?)
}
