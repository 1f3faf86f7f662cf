# One role per function, with only the calls its code makes (shared/aws/src), on the
# exact resources. Table actions are the DynamoDB ledger's; SQS ones the queue adapter's
# (GetQueueAttributes/GetQueueUrl read the redrive policy and find the DLQ).

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  input_object_arns = [for b in var.input_buckets : "arn:${data.aws_partition.current.partition}:s3:::${b.bucket}/${b.prefix}*"]
  input_bucket_arns = [for b in var.input_buckets : "arn:${data.aws_partition.current.partition}:s3:::${b.bucket}"]
  output_objects    = "${module.data.bucket_arn}/*"
  run_file_objects  = "${module.data.bucket_arn}/runs/*"

  ledger_read  = ["dynamodb:GetItem", "dynamodb:Query"]
  ledger_write = ["dynamodb:UpdateItem", "dynamodb:TransactWriteItems"] # transactions hold Update items only
  queue_open   = ["sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
  queue_consume = [
    "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes",
  ]

  # function -> list of {actions, resources}
  permissions = {
    planner = [
      { actions = ["s3:GetObject"], resources = concat([local.output_objects], local.input_object_arns) },
      { actions = ["s3:ListBucket"], resources = concat([module.data.bucket_arn], local.input_bucket_arns) },
      { actions = ["s3:PutObject"], resources = [local.output_objects] },
      { actions = concat(local.ledger_read, ["dynamodb:PutItem", "dynamodb:BatchWriteItem"]), resources = [module.data.table_arn] },
      { actions = concat(local.queue_open, ["sqs:SendMessage"]), resources = [module.data.queues["dispatch"].arn, module.data.dead_letter_queues["dispatch"].arn] },
      { actions = ["sqs:SendMessage"], resources = [aws_sqs_queue.planner_dlq.arn] }, # its asynchronous-invocation DLQ
    ]
    dispatcher = [
      { actions = concat(local.ledger_read, local.ledger_write), resources = [module.data.table_arn] },
      { actions = local.queue_consume, resources = [module.data.queues["dispatch"].arn] },
      { actions = concat(local.queue_open, ["sqs:SendMessage"]), resources = [module.data.queues["tasks"].arn, module.data.dead_letter_queues["tasks"].arn] },
      # Tasks sized beyond the Lambda budget go to the container worker's queue.
      { actions = concat(local.queue_open, ["sqs:SendMessage"]), resources = [module.data.queues["container_tasks"].arn, module.data.dead_letter_queues["container_tasks"].arn] },
    ]
    worker = [
      { actions = ["s3:GetObject"], resources = concat([local.output_objects], local.input_object_arns) },
      # ListBucket makes a missing object a 404, not a 403 (tile completeness checks).
      { actions = ["s3:ListBucket"], resources = concat([module.data.bucket_arn], local.input_bucket_arns) },
      { actions = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"], resources = [local.output_objects] },
      { actions = concat(local.ledger_read, local.ledger_write), resources = [module.data.table_arn] },
      # SendMessage: a split tile's message, sent by the worker whose part released it.
      { actions = concat(local.queue_consume, ["sqs:GetQueueUrl", "sqs:SendMessage"]), resources = [module.data.queues["tasks"].arn] },
      # Its DLQ is only looked up (the redrive policy names it); SQS moves messages there.
      { actions = local.queue_open, resources = [module.data.dead_letter_queues["tasks"].arn] },
      { actions = concat(local.queue_open, ["sqs:SendMessage"]), resources = [module.data.queues["completion"].arn, module.data.dead_letter_queues["completion"].arn] },
    ]
    mosaic = [
      { actions = ["s3:GetObject", "s3:PutObject"], resources = [local.output_objects] },
      { actions = ["s3:ListBucket"], resources = [module.data.bucket_arn] },
      # UpdateItem: it records which completion it handled, so a duplicate message does nothing.
      { actions = concat(local.ledger_read, ["dynamodb:UpdateItem"]), resources = [module.data.table_arn] },
      { actions = local.queue_consume, resources = [module.data.queues["completion"].arn] },
    ]
  }
}

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "fn" {
  for_each           = local.functions
  name               = "${var.name}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "fn" {
  for_each = local.permissions
  dynamic "statement" {
    for_each = [for p in each.value : p if length(p.resources) > 0]
    content {
      actions   = statement.value.actions
      resources = statement.value.resources
    }
  }
  statement {
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.fn[each.key].arn}:*"]
  }
  # Run files (runs/) start the planner: no function writes or deletes them, so a
  # compromised or confused function cannot start runs.
  statement {
    sid       = "NoRunFiles"
    effect    = "Deny"
    actions   = ["s3:PutObject", "s3:DeleteObject"]
    resources = [local.run_file_objects]
  }
}

resource "aws_iam_role_policy" "fn" {
  for_each = local.permissions
  name     = "${var.name}-${each.key}"
  role     = aws_iam_role.fn[each.key].id
  policy   = data.aws_iam_policy_document.fn[each.key].json
}
