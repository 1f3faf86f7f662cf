//! What a function is wired to, from its environment (set by Terraform / SAM).

use crate::ports::{AwsPorts, FunctionPorts};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct Deployment {
    /// The adapters the handlers reach runs, queues and run files through (AWS in Lambda).
    pub ports: Arc<dyn FunctionPorts>,
    /// DynamoDB ledger table (`STRATUS_TABLE`).
    pub table: String,
    /// Task queue URL (`STRATUS_TASK_QUEUE_URL`): dispatcher sends, worker extends.
    pub task_queue: String,
    /// Container task queue URL (`STRATUS_CONTAINER_QUEUE_URL`): the dispatcher sends the
    /// tasks sized beyond Lambda's limits here, for `stratus worker --from-sqs`.
    pub container_queue: String,
    /// Fan-out page queue URL (`STRATUS_DISPATCH_QUEUE_URL`): the planner sends pages.
    pub dispatch_queue: String,
    /// Completion queue URL (`STRATUS_COMPLETION_QUEUE_URL`): the worker that ends a run
    /// sends the completion message.
    pub completion_queue: String,
    /// Run file planned by scheduled events (`STRATUS_SCHEDULED_RUN_FILE`, s3://...).
    pub scheduled_run_file: Option<String>,
    /// Tasks per fan-out page (`STRATUS_PAGE_SIZE`, default 100).
    pub page_size: usize,
    /// Time kept in hand before a Lambda deadline (`STRATUS_DEADLINE_MARGIN_S`, default 30).
    pub deadline_margin: Duration,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Deployment {
    pub fn from_env() -> Deployment {
        Deployment {
            ports: Arc::new(AwsPorts),
            table: var("STRATUS_TABLE").unwrap_or_default(),
            task_queue: var("STRATUS_TASK_QUEUE_URL").unwrap_or_default(),
            container_queue: var("STRATUS_CONTAINER_QUEUE_URL").unwrap_or_default(),
            dispatch_queue: var("STRATUS_DISPATCH_QUEUE_URL").unwrap_or_default(),
            completion_queue: var("STRATUS_COMPLETION_QUEUE_URL").unwrap_or_default(),
            scheduled_run_file: var("STRATUS_SCHEDULED_RUN_FILE"),
            page_size: var("STRATUS_PAGE_SIZE").and_then(|v| v.parse().ok()).unwrap_or(100),
            deadline_margin: Duration::from_secs(
                var("STRATUS_DEADLINE_MARGIN_S").and_then(|v| v.parse().ok()).unwrap_or(30),
            ),
        }
    }

    /// The value of a setting a handler needs, or an error naming the variable.
    pub fn need<'a>(&self, value: &'a str, env: &str) -> Result<&'a str, crate::ServerlessError> {
        if value.is_empty() {
            Err(crate::ServerlessError::Unset { env: env.to_string() })
        } else {
            Ok(value)
        }
    }
}
