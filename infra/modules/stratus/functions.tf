# The four functions. All run the same container image: every binary links GDAL (the
# planner reads STAC and reprojects footprints with it), so none fits the zip runtime's
# layer limits comfortably; each function picks its binary with the entry point.

locals {
  functions = {
    planner = {
      memory  = 3008
      timeout = 900
      storage = 1024
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
  environment = {
    STRATUS_TABLE                = aws_dynamodb_table.ledger.name
    STRATUS_TASK_QUEUE_URL       = aws_sqs_queue.main["tasks"].url
    STRATUS_DISPATCH_QUEUE_URL   = aws_sqs_queue.main["dispatch"].url
    STRATUS_COMPLETION_QUEUE_URL = aws_sqs_queue.main["completion"].url
    STRATUS_PAGE_SIZE            = tostring(var.page_size)
    RUST_LOG                     = "info"
  }
}

resource "aws_cloudwatch_log_group" "fn" {
  for_each          = local.functions
  name              = "/aws/lambda/${var.name}-${each.key}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_lambda_function" "fn" {
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
  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.fn[each.key].name
  }
  tags       = var.tags
  depends_on = [aws_cloudwatch_log_group.fn]
}

# Queue -> function wiring, with partial batch failures.
resource "aws_lambda_event_source_mapping" "dispatcher" {
  event_source_arn        = aws_sqs_queue.main["dispatch"].arn
  function_name           = aws_lambda_function.fn["dispatcher"].arn
  batch_size              = 5
  function_response_types = ["ReportBatchItemFailures"]
}

resource "aws_lambda_event_source_mapping" "worker" {
  event_source_arn        = aws_sqs_queue.main["tasks"].arn
  function_name           = aws_lambda_function.fn["worker"].arn
  batch_size              = 1 # one tile per invocation
  function_response_types = ["ReportBatchItemFailures"]
  scaling_config {
    maximum_concurrency = var.worker_max_concurrency
  }
}

resource "aws_lambda_event_source_mapping" "mosaic" {
  event_source_arn        = aws_sqs_queue.main["completion"].arn
  function_name           = aws_lambda_function.fn["mosaic"].arn
  batch_size              = 1
  function_response_types = ["ReportBatchItemFailures"]
}
