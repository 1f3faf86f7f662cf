# The four functions. All run the same container image: every binary links GDAL (the
# planner reads STAC and reprojects footprints with it), so none fits the zip runtime's
# layer limits comfortably; each function picks its binary with the entry point.

locals {
  functions = {
    planner = {
      memory  = 3008
      timeout = 900
      # The plan's dataset documents wait in a spool file: ~0.6 KB per item (zstd).
      storage = 4096
    }
    dispatcher = {
      memory  = 512
      timeout = 300
      storage = 512
    }
    worker = {
      memory  = var.worker_memory_mb
      timeout = var.worker_timeout_s
      storage = var.worker_ephemeral_storage_mb
    }
    mosaic = {
      memory  = 4096
      timeout = 900
      storage = 4096
    }
  }
  # Where run files and messages may make the functions read and write (the engine's
  # access_policy): outputs only in the output bucket; inputs only from input_buckets and
  # allowed_input_urls (no list when both are empty: IAM still confines S3 reads).
  allowed_inputs = concat(
    [for b in var.input_buckets : "s3://${b.bucket}/${b.prefix}"],
    var.allowed_input_urls,
  )
  environment = merge({
    STRATUS_ALLOWED_OUTPUTS      = "s3://${module.data.bucket}"
    STRATUS_TABLE                = module.data.table_name
    STRATUS_TASK_QUEUE_URL       = module.data.queues["tasks"].url
    STRATUS_CONTAINER_QUEUE_URL  = module.data.queues["container_tasks"].url
    STRATUS_DISPATCH_QUEUE_URL   = module.data.queues["dispatch"].url
    STRATUS_COMPLETION_QUEUE_URL = module.data.queues["completion"].url
    STRATUS_PAGE_SIZE            = tostring(var.page_size)
    RUST_LOG                     = "info"
  }, length(local.allowed_inputs) > 0 ? { STRATUS_ALLOWED_INPUTS = join(",", local.allowed_inputs) } : {})
}

resource "aws_cloudwatch_log_group" "fn" {
  #checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts log data at rest by default; the logs hold run and task ids, no secrets or signed URLs.
  #checkov:skip=CKV_AWS_338:Retention is the log_retention_days variable (30 days by default, for cost); the ledger and run reports keep the lasting record.
  for_each          = local.functions
  name              = "/aws/lambda/${var.name}-${each.key}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_sqs_queue" "planner_dlq" {
  name                      = "${var.name}-planner-dlq"
  message_retention_seconds = 1209600 # 14 days
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

resource "aws_lambda_function" "fn" {
  #checkov:skip=CKV_AWS_115:Concurrency is bounded where work arrives: the worker's SQS mapping has maximum_concurrency (worker_max_concurrency); reserving capacity would take it from the account pool.
  #checkov:skip=CKV_AWS_116:Only the planner is invoked asynchronously and it has a dead-letter queue (below); the SQS-triggered functions' failures go to their source queue's DLQ.
  #checkov:skip=CKV_AWS_117:The functions reach only S3, SQS and DynamoDB public endpoints; a VPC would need NAT or endpoints and adds nothing here.
  #checkov:skip=CKV_AWS_173:The environment holds resource names and tuning values only, no secrets; the default encryption at rest applies.
  #checkov:skip=CKV_AWS_272:Code signing applies to zip packages; these are container images, pinned by digest in ECR.
  #checkov:skip=CKV_AWS_50:Per-tile timings (read, compute, write) are in the JSON logs; X-Ray would need a permission on resource "*".
  for_each      = local.functions
  function_name = "${var.name}-${each.key}"
  role          = aws_iam_role.fn[each.key].arn
  package_type  = "Image"
  image_uri     = var.image_uri
  architectures = ["x86_64"]
  memory_size   = each.value.memory
  timeout       = each.value.timeout

  image_config {
    entry_point = ["/usr/local/bin/stratus-${each.key}"]
  }
  ephemeral_storage {
    size = each.value.storage
  }
  environment {
    variables = merge(
      local.environment,
      each.key == "planner" && var.scheduled_run_file != null ? { STRATUS_SCHEDULED_RUN_FILE = var.scheduled_run_file } : {},
    )
  }
  dynamic "dead_letter_config" {
    # S3 and EventBridge invoke the planner asynchronously: keep events it failed on.
    for_each = each.key == "planner" ? [aws_sqs_queue.planner_dlq.arn] : []
    content {
      target_arn = dead_letter_config.value
    }
  }
  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.fn[each.key].name
  }
  tags       = var.tags
  depends_on = [aws_cloudwatch_log_group.fn]
}

# Queue -> function wiring, with partial batch failures.
resource "aws_lambda_event_source_mapping" "dispatcher" {
  event_source_arn        = module.data.queues["dispatch"].arn
  function_name           = aws_lambda_function.fn["dispatcher"].arn
  batch_size              = 5
  function_response_types = ["ReportBatchItemFailures"]
}

resource "aws_lambda_event_source_mapping" "worker" {
  event_source_arn        = module.data.queues["tasks"].arn
  function_name           = aws_lambda_function.fn["worker"].arn
  batch_size              = 1 # one tile per invocation
  function_response_types = ["ReportBatchItemFailures"]
  scaling_config {
    maximum_concurrency = var.worker_max_concurrency
  }
}

resource "aws_lambda_event_source_mapping" "mosaic" {
  event_source_arn        = module.data.queues["completion"].arn
  function_name           = aws_lambda_function.fn["mosaic"].arn
  batch_size              = 1
  function_response_types = ["ReportBatchItemFailures"]
}
