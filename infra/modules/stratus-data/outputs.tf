output "bucket" {
  description = "The output bucket's name."
  value       = aws_s3_bucket.output.id
}

output "bucket_arn" {
  description = "The output bucket's ARN."
  value       = aws_s3_bucket.output.arn
}

output "table_name" {
  description = "The DynamoDB ledger (STRATUS_TABLE)."
  value       = aws_dynamodb_table.ledger.name
}

output "table_arn" {
  description = "The ledger table's ARN."
  value       = aws_dynamodb_table.ledger.arn
}

output "queues" {
  description = "dispatch, tasks, container_tasks and completion queues: url, arn, name."
  value       = { for k, q in aws_sqs_queue.main : k => { url = q.url, arn = q.arn, name = q.name } }
}

output "dead_letter_queues" {
  description = "Their dead-letter queues: url, arn, name."
  value       = { for k, q in aws_sqs_queue.dlq : k => { url = q.url, arn = q.arn, name = q.name } }
}
