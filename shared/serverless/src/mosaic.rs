//! The mosaic function: on a run's completion message, build the low-resolution mosaic
//! of its done tiles, rewrite the run summary and write the run report. A completion message for a completion
//! that has been superseded (a redrive completed the run again) still rebuilds: the
//! mosaic always reflects the ledger at the time it runs.

use crate::deployment::Deployment;
use crate::HandlerError;
use aws_lambda_events::sqs::SqsBatchResponse;
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use stratus_engine::messages::CompletionMessage;
use stratus_engine::mosaic::{build_for_run, MosaicOptions};
use stratus_engine::report::write_report;
use stratus_engine::runner::{write_summary, RunReport};

pub async fn handler(dep: Deployment, event: LambdaEvent<Value>) -> Result<Value, HandlerError> {
    crate::blocking(move || handle(&dep, &event.payload)).await
}

pub fn handle(dep: &Deployment, event: &Value) -> Result<SqsBatchResponse, String> {
    let table = dep.need(&dep.table, "STRATUS_TABLE")?;
    crate::for_each_record(event, "mosaic", |body| {
        let m = CompletionMessage::parse(body).map_err(|e| e.to_string())?;
        let span = tracing::info_span!("mosaic", run_id = %m.run_id, completion = m.completion);
        let _g = span.enter();
        let ctx = crate::open_run(table, &m.run_id)?;
        let mosaic = build_for_run(&ctx, &m.run_id, &MosaicOptions::default()).map_err(|e| e.to_string())?;
        let mut summary = RunReport { run_id: m.run_id.clone(), ..Default::default() };
        write_summary(&ctx, &m.run_id, &mut summary).map_err(|e| e.to_string())?;
        let (bands, missing, seconds) = (mosaic.bands.len(), mosaic.missing.len(), mosaic.elapsed_s);
        let report = write_report(&ctx, &m.run_id, Some(mosaic)).map_err(|e| e.to_string())?;
        tracing::info!(bands, missing, seconds, report = %report, "mosaic and run report written");
        Ok(())
    })
}
