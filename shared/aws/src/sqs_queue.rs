//! The task queue on SQS. The queue's redrive policy names its dead-letter queue and the
//! receive count after which a message goes there; both are read from the queue itself so
//! that the ledger and the queue agree on what a final attempt is.

use crate::client::{remote_error, Aws};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use stratus_ports::{PortError, QueueDepth, Received, TaskQueue};

type Result<T> = std::result::Result<T, PortError>;

/// SendMessageBatch requests in flight at once.
const SENDS_IN_FLIGHT: usize = 8;
/// Attempts for entries a batch send reported as failed.
const SEND_ATTEMPTS: u32 = 5;

#[derive(Debug, Clone)]
pub struct SqsQueue {
    aws: Arc<Aws>,
    url: String,
    arn: String,
    dead_letter: Option<DeadLetter>,
    max_receives: u32,
}

#[derive(Debug, Clone)]
struct DeadLetter {
    url: String,
    arn: String,
}

/// The queue name in a queue URL (`https://host/ACCOUNT/NAME`) or ARN.
fn queue_name(url_or_arn: &str) -> &str {
    url_or_arn.rsplit(['/', ':']).next().unwrap_or(url_or_arn)
}

impl SqsQueue {
    /// Open a queue by URL (or by name, resolved with GetQueueUrl).
    pub fn open(aws: Arc<Aws>, url_or_name: &str) -> Result<SqsQueue> {
        let sqs = aws.sqs().clone();
        let handle = aws.clone();
        handle.block_on(async move {
            let url = if url_or_name.contains("://") {
                url_or_name.to_string()
            } else {
                sqs.get_queue_url()
                    .queue_name(url_or_name)
                    .send()
                    .await
                    .map_err(|e| remote_error("SQS", "GetQueueUrl", e))?
                    .queue_url()
                    .unwrap_or_default()
                    .to_string()
            };
            let attrs = sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(QueueAttributeName::QueueArn)
                .attribute_names(QueueAttributeName::RedrivePolicy)
                .send()
                .await
                .map_err(|e| remote_error("SQS", &format!("GetQueueAttributes({url})"), e))?;
            let attrs = attrs.attributes().cloned().unwrap_or_default();
            let arn = attrs.get(&QueueAttributeName::QueueArn).cloned().unwrap_or_default();
            let (dead_letter, max_receives) = match attrs.get(&QueueAttributeName::RedrivePolicy) {
                Some(policy) => {
                    let v: serde_json::Value = serde_json::from_str(policy).map_err(|e| {
                        PortError::Other(format!("queue {url}: unreadable RedrivePolicy '{policy}': {e}"))
                    })?;
                    let dlq_arn = v["deadLetterTargetArn"].as_str().unwrap_or_default().to_string();
                    let max = v["maxReceiveCount"]
                        .as_u64()
                        .or_else(|| v["maxReceiveCount"].as_str().and_then(|s| s.parse().ok()))
                        .unwrap_or(3) as u32;
                    let dlq_url = sqs
                        .get_queue_url()
                        .queue_name(queue_name(&dlq_arn))
                        .send()
                        .await
                        .map_err(|e| remote_error("SQS", "GetQueueUrl(dead-letter queue)", e))?
                        .queue_url()
                        .unwrap_or_default()
                        .to_string();
                    (Some(DeadLetter { url: dlq_url, arn: dlq_arn }), max)
                }
                None => {
                    tracing::warn!(queue = %url, "queue has no redrive policy: failed messages will be retried forever");
                    (None, u32::MAX)
                }
            };
            Ok(SqsQueue { aws: aws.clone(), url, arn, dead_letter, max_receives })
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    async fn approximate(&self, url: &str) -> Result<(u64, u64)> {
        let attrs = self
            .aws
            .sqs()
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| remote_error("SQS", "GetQueueAttributes", e))?;
        let get = |k: QueueAttributeName| {
            attrs.attributes().and_then(|a| a.get(&k)).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        };
        Ok((
            get(QueueAttributeName::ApproximateNumberOfMessages),
            get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        ))
    }

    /// Send one batch of at most 10, retrying the entries SQS reports as failed.
    async fn send_ten(&self, url: &str, bodies: &[String]) -> Result<()> {
        let mut pending: Vec<(usize, &String)> = bodies.iter().enumerate().collect();
        for attempt in 1..=SEND_ATTEMPTS {
            let entries: Vec<SendMessageBatchRequestEntry> = pending
                .iter()
                .map(|(i, b)| SendMessageBatchRequestEntry::builder().id(format!("m{i}")).message_body(*b).build())
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| PortError::Other(format!("building a SendMessageBatch entry: {e}")))?;
            let out = self
                .aws
                .sqs()
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| remote_error("SQS", "SendMessageBatch", e))?;
            let failed: HashMap<String, String> = out
                .failed()
                .iter()
                .map(|f| (f.id().to_string(), f.message().unwrap_or_default().to_string()))
                .collect();
            if failed.is_empty() {
                return Ok(());
            }
            if out.failed().iter().any(|f| f.sender_fault()) {
                let why: Vec<String> = failed.values().cloned().collect();
                return Err(PortError::Other(format!("SQS rejected messages for {url}: {}", why.join("; "))));
            }
            tracing::warn!(failed = failed.len(), attempt, queue = %queue_name(url), "SendMessageBatch: some entries failed; retrying them");
            pending.retain(|(i, _)| failed.contains_key(&format!("m{i}")));
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
        Err(PortError::Remote {
            service: "SQS".into(),
            op: "SendMessageBatch".into(),
            why: format!("{} messages still failing after {SEND_ATTEMPTS} attempts", pending.len()),
            transient: true,
        })
    }

    async fn send_all(&self, url: &str, bodies: &[String]) -> Result<()> {
        let results: Vec<Result<()>> = futures::stream::iter(bodies.chunks(10))
            .map(|ten| self.send_ten(url, ten))
            .buffer_unordered(SENDS_IN_FLIGHT)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Fallback redrive (services without StartMessageMoveTask): receive from the DLQ,
    /// send to the queue, then delete from the DLQ. A crash between send and delete can
    /// duplicate a message (the worker is idempotent); nothing is deleted before it is sent.
    async fn redrive_by_copy(&self, dlq: &DeadLetter) -> Result<usize> {
        let sqs = self.aws.sqs();
        let mut moved = 0;
        loop {
            let got = sqs
                .receive_message()
                .queue_url(&dlq.url)
                .max_number_of_messages(10)
                .visibility_timeout(60)
                .wait_time_seconds(1)
                .send()
                .await
                .map_err(|e| remote_error("SQS", "ReceiveMessage(dead-letter queue)", e))?;
            let msgs = got.messages();
            if msgs.is_empty() {
                return Ok(moved);
            }
            let bodies: Vec<String> = msgs.iter().map(|m| m.body().unwrap_or_default().to_string()).collect();
            self.send_ten(&self.url, &bodies).await?;
            for m in msgs {
                sqs.delete_message()
                    .queue_url(&dlq.url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .map_err(|e| remote_error("SQS", "DeleteMessage(dead-letter queue)", e))?;
                moved += 1;
            }
        }
    }
}

impl TaskQueue for SqsQueue {
    fn send_batch(&self, bodies: &[String]) -> Result<()> {
        self.aws.block_on(self.send_all(&self.url, bodies))
    }

    fn receive(&self, max: usize, visibility: Duration, wait: Duration) -> Result<Vec<Received>> {
        self.aws.block_on(async {
            let out = self
                .aws
                .sqs()
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(max.clamp(1, 10) as i32)
                .visibility_timeout(visibility.as_secs().clamp(0, 43_200) as i32)
                .wait_time_seconds(wait.as_secs_f64().ceil().clamp(0.0, 20.0) as i32)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send()
                .await
                .map_err(|e| remote_error("SQS", "ReceiveMessage", e))?;
            Ok(out
                .messages()
                .iter()
                .map(|m| Received {
                    message_id: m.message_id().unwrap_or_default().to_string(),
                    body: m.body().unwrap_or_default().to_string(),
                    receipt: m.receipt_handle().unwrap_or_default().to_string(),
                    receive_count: m
                        .attributes()
                        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(1),
                })
                .collect())
        })
    }

    fn extend_visibility(&self, receipt: &str, visibility: Duration) -> Result<()> {
        self.aws.block_on(async {
            self.aws
                .sqs()
                .change_message_visibility()
                .queue_url(&self.url)
                .receipt_handle(receipt)
                .visibility_timeout(visibility.as_secs().clamp(0, 43_200) as i32)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| remote_error("SQS", "ChangeMessageVisibility", e))
        })
    }

    fn delete(&self, receipt: &str) -> Result<()> {
        self.aws.block_on(async {
            self.aws
                .sqs()
                .delete_message()
                .queue_url(&self.url)
                .receipt_handle(receipt)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| remote_error("SQS", "DeleteMessage", e))
        })
    }

    fn depth(&self) -> Result<QueueDepth> {
        self.aws.block_on(async {
            let (visible, in_flight) = self.approximate(&self.url).await?;
            let dead_letter = match &self.dead_letter {
                Some(d) => {
                    let (v, f) = self.approximate(&d.url).await?;
                    v + f
                }
                None => 0,
            };
            Ok(QueueDepth { visible, in_flight, dead_letter })
        })
    }

    fn redrive(&self) -> Result<usize> {
        let Some(dlq) = &self.dead_letter else {
            return Ok(0);
        };
        self.aws.block_on(async {
            let (waiting, _) = self.approximate(&dlq.url).await?;
            if waiting == 0 {
                return Ok(0);
            }
            // The service's own redrive where it exists (it keeps message ids and moves
            // everything server side)...
            match self.aws.sqs().start_message_move_task().source_arn(&dlq.arn).destination_arn(&self.arn).send().await
            {
                Ok(t) => {
                    tracing::info!(
                        task = t.task_handle().unwrap_or_default(),
                        messages = waiting,
                        "SQS message move task started"
                    );
                    Ok(waiting as usize)
                }
                Err(e) => {
                    let err = remote_error("SQS", "StartMessageMoveTask", e);
                    // ...and a copy where it does not (local servers).
                    tracing::info!(reason = %err, "message move API unavailable; redriving by receive-send-delete");
                    self.redrive_by_copy(dlq).await
                }
            }
        })
    }

    fn max_receives(&self) -> u32 {
        self.max_receives
    }

    fn name(&self) -> String {
        queue_name(&self.url).to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_from_urls_and_arns() {
        assert_eq!(
            super::queue_name("https://sqs.eu-west-1.amazonaws.com/123456789012/stratus-tasks"),
            "stratus-tasks"
        );
        assert_eq!(super::queue_name("arn:aws:sqs:eu-west-1:123456789012:stratus-tasks-dlq"), "stratus-tasks-dlq");
    }
}
