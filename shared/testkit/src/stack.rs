//! Creating the AWS resources a deployment uses, on a local AWS-protocol server (moto) for
//! the tests. Production stacks come from Terraform
//! (`infra/`); this creates the same shapes: the output bucket, the ledger table (key
//! `pk`/`sk`, on demand) and four queues, each with a dead-letter queue.

use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
use aws_sdk_sqs::types::QueueAttributeName;
use std::collections::HashMap;
use stratus_aws::{remote_error, Aws};
use stratus_ports::PortError;

type Result<T> = std::result::Result<T, PortError>;

#[derive(Debug, Clone)]
pub struct StackSpec {
    /// Prefix of every name (`{prefix}-tasks`, `{prefix}-ledger`, ...).
    pub prefix: String,
    /// Receives before a task message is dead-lettered.
    pub max_receives: u32,
    /// Task queue visibility timeout, seconds.
    pub visibility_s: u32,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Stack {
    pub bucket: String,
    pub table: String,
    pub task_queue: String,
    /// Tasks sized beyond Lambda's limits, for the container worker.
    pub container_queue: String,
    pub dispatch_queue: String,
    pub completion_queue: String,
}

/// Create (or find) every resource of a stack.
pub fn create_stack(aws: &Aws, spec: &StackSpec) -> Result<Stack> {
    aws.block_on(async {
        let bucket = format!("{}-outputs", spec.prefix);
        match aws.s3().create_bucket().bucket(&bucket).send().await {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|s| s.is_bucket_already_owned_by_you()) => {}
            Err(e) => return Err(remote_error("S3", "CreateBucket", e)),
        }
        let table = format!("{}-ledger", spec.prefix);
        let created = aws
            .dynamodb()
            .create_table()
            .table_name(&table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => {}
            Err(e) => return Err(remote_error("DynamoDB", "CreateTable", e)),
        }
        let task_queue =
            queue_with_dlq(aws, &format!("{}-tasks", spec.prefix), spec.max_receives, spec.visibility_s).await?;
        let container_queue =
            queue_with_dlq(aws, &format!("{}-container-tasks", spec.prefix), spec.max_receives, spec.visibility_s)
                .await?;
        let dispatch_queue = queue_with_dlq(aws, &format!("{}-dispatch", spec.prefix), 3, 120).await?;
        let completion_queue = queue_with_dlq(aws, &format!("{}-completion", spec.prefix), 3, 900).await?;
        Ok(Stack { bucket, table, task_queue, container_queue, dispatch_queue, completion_queue })
    })
}

fn attr(name: &str) -> Result<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| PortError::Other(e.to_string()))
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement> {
    KeySchemaElement::builder().attribute_name(name).key_type(kind).build().map_err(|e| PortError::Other(e.to_string()))
}

async fn queue_with_dlq(aws: &Aws, name: &str, max_receives: u32, visibility_s: u32) -> Result<String> {
    let sqs = aws.sqs();
    let dlq = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
        .send()
        .await
        .map_err(|e| remote_error("SQS", "CreateQueue", e))?;
    let dlq_url = dlq.queue_url().unwrap_or_default();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| remote_error("SQS", "GetQueueAttributes", e))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap_or_default();
    let policy = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max_receives.to_string()});
    let attrs = HashMap::from([
        (QueueAttributeName::RedrivePolicy, policy.to_string()),
        (QueueAttributeName::VisibilityTimeout, visibility_s.to_string()),
    ]);
    let q = sqs
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attrs))
        .send()
        .await
        .map_err(|e| remote_error("SQS", "CreateQueue", e))?;
    Ok(q.queue_url().unwrap_or_default().to_string())
}
