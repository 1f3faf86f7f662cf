//! The dispatcher function: each SQS record is a fan-out page; its tasks are marked
//! queued and their messages sent to the task queue (batches of 10, several in flight).
//! Records that fail are returned as `batchItemFailures` and retried by SQS.

use crate::deployment::Deployment;
use crate::HandlerError;
use aws_lambda_events::sqs::SqsBatchResponse;
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use stratus_engine::consumer::dispatch_page;
use stratus_engine::messages::FanOutPage;
use stratus_engine::Context;

pub async fn handler(dep: Deployment, event: LambdaEvent<Value>) -> Result<Value, HandlerError> {
    let payload = event.payload;
    let out = tokio::task::spawn_blocking(move || handle(&dep, &payload)).await??;
    Ok(serde_json::to_value(out)?)
}

pub fn handle(dep: &Deployment, event: &Value) -> Result<SqsBatchResponse, String> {
    let table = dep.need(&dep.table, "STRATUS_TABLE")?;
    let task_queue = dep.need(&dep.task_queue, "STRATUS_TASK_QUEUE_URL")?;
    crate::for_each_record(event, "fan-out page", |body| {
        let page = FanOutPage::parse(body).map_err(|e| e.to_string())?;
        let span = tracing::info_span!("page", run_id = %page.run_id, page = page.page);
        let _g = span.enter();
        // The page's run names where its outputs (and payload manifests) live.
        let ctx = Context::aws(&run_location(table, &page.run_id)?, table).map_err(|e| e.to_string())?;
        let queue = ctx.queue(Some(task_queue), &page.run_id, 3).map_err(|e| e.to_string())?;
        let sent = dispatch_page(&ctx, &page, queue.as_ref()).map_err(|e| e.to_string())?;
        tracing::info!(tasks = page.task_ids.len(), sent, "page dispatched");
        Ok(())
    })
}

/// The output location a run was planned with (from its configuration in the ledger).
pub fn run_location(table: &str, run_id: &str) -> Result<String, String> {
    use stratus_ports::Ledger;
    let aws = stratus_engine::context::aws().map_err(|e| e.to_string())?;
    let ledger = stratus_aws::DynamoLedger::new(aws, table, None);
    let run =
        ledger.run(run_id).map_err(|e| e.to_string())?.ok_or_else(|| format!("run '{run_id}' is not in the ledger"))?;
    run.config
        .get("location")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .ok_or_else(|| format!("run '{run_id}' has no output location in its configuration"))
}
