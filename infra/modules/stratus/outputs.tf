output "output_bucket" {
  description = "Bucket for products, run files (runs/), plans and reports."
  value       = module.data.bucket
}

output "table_name" {
  description = "The DynamoDB ledger (STRATUS_TABLE)."
  value       = module.data.table_name
}

output "queue_urls" {
  description = "Queue URLs: dispatch, tasks (STRATUS_TASK_QUEUE_URL), completion."
  value       = { for k, q in module.data.queues : k => q.url }
}

output "queue_arns" {
  description = "Queue ARNs."
  value       = { for k, q in module.data.queues : k => q.arn }
}

output "dead_letter_queue_urls" {
  description = "Dead-letter queue URLs."
  value       = { for k, q in module.data.dead_letter_queues : k => q.url }
}

output "function_names" {
  description = "Lambda function names."
  value       = { for k, f in aws_lambda_function.fn : k => f.function_name }
}
