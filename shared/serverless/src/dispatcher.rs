//! The dispatcher function: each SQS record is a fan-out page; its tasks are marked
//! queued and their messages sent to the task queue (batches of 10, several in flight), or,
//! for tasks the planner sized beyond Lambda's limits, to the container task queue.
//! Records that fail are returned as `batchItemFailures` and retried by SQS.

use crate::deployment::Deployment;
use crate::HandlerError;
use aws_lambda_events::sqs::SqsBatchResponse;
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use stratus_engine::consumer::dispatch_page;
use stratus_engine::messages::FanOutPage;
use stratus_engine::sizing::Executor;

pub async fn handler(dep: Deployment, event: LambdaEvent<Value>) -> Result<Value, HandlerError> {
    crate::blocking(move || handle(&dep, &event.payload)).await
}

pub fn handle(dep: &Deployment, event: &Value) -> Result<SqsBatchResponse, crate::ServerlessError> {
    let table = dep.need(&dep.table, "STRATUS_TABLE")?;
    let task_queue = dep.need(&dep.task_queue, "STRATUS_TASK_QUEUE_URL")?;
    crate::for_each_record(event, "fan-out page", |msg| {
        let page = FanOutPage::parse(&msg.body)?;
        let span = tracing::info_span!("page", run_id = %page.run_id, page = page.page);
        let _g = span.enter();
        let ctx = dep.ports.runs(table).open_run(&page.run_id)?;
        let url = match page.executor {
            Executor::Lambda => task_queue,
            Executor::Container => dep.need(&dep.container_queue, "STRATUS_CONTAINER_QUEUE_URL")?,
        };
        let queue = dep.ports.queue(url)?;
        let sent = dispatch_page(&ctx, &page, queue.as_ref())?;
        tracing::info!(tasks = page.task_ids.len(), sent, executor = page.executor.as_str(), "page dispatched");
        Ok(false)
    })
}
