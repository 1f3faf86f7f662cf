//! The mosaic function: on a run's completion message, build the low-resolution mosaic
//! of its done tiles, rewrite the run summary and write the run report. Each completion
//! number is handled once (a duplicate message is acknowledged and skipped); a run whose
//! tiles all failed gets its report, without a mosaic.

use crate::deployment::Deployment;
use crate::HandlerError;
use aws_lambda_events::sqs::SqsBatchResponse;
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use stratus_engine::messages::CompletionMessage;
use stratus_engine::mosaic::{handle_completion, CompletionHandled, MosaicOptions};

pub async fn handler(dep: Deployment, event: LambdaEvent<Value>) -> Result<Value, HandlerError> {
    crate::blocking(move || handle(&dep, &event.payload)).await
}

pub fn handle(dep: &Deployment, event: &Value) -> Result<SqsBatchResponse, crate::ServerlessError> {
    let table = dep.need(&dep.table, "STRATUS_TABLE")?;
    crate::for_each_record(event, "mosaic", |msg| {
        let m = CompletionMessage::parse(&msg.body)?;
        let span = tracing::info_span!("mosaic", run_id = %m.run_id, completion = m.completion);
        let _g = span.enter();
        let ctx = dep.ports.runs(table).open_run(&m.run_id)?;
        match handle_completion(&ctx, &m.run_id, m.completion, &MosaicOptions::default())? {
            CompletionHandled::Made { mosaic, report } => {
                let (bands, missing, seconds) =
                    mosaic.as_ref().map_or((0, 0, 0.0), |m| (m.bands.len(), m.missing.len(), m.elapsed_s));
                tracing::info!(bands, missing, seconds, report = %report, "mosaic and run report written");
            }
            CompletionHandled::AlreadyHandled { handled } => {
                tracing::info!(handled, "completion already handled (a duplicate message); nothing to do");
            }
        }
        Ok(false)
    })
}
