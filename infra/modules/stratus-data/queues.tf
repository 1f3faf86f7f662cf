# Four queues, each with a dead-letter queue: fan-out pages (planner -> dispatcher),
# tasks (dispatcher -> Lambda worker), container tasks (dispatcher -> container worker,
# for tasks the planner sized beyond Lambda's limits) and completion (worker -> mosaic).

locals {
  queues = {
    dispatch = {
      visibility = 6 * 300 # dispatcher timeout 300 s
      receives   = 5
    }
    tasks = {
      # AWS advises at least 6x the function timeout: a throttled batch must not
      # reappear while a worker still runs it.
      visibility = 6 * var.worker_timeout_s
      receives   = var.max_receive_count
    }
    container_tasks = {
      # The container worker renews its messages' visibility while a tile runs.
      visibility = 6 * var.worker_timeout_s
      receives   = var.max_receive_count
    }
    completion = {
      visibility = 6 * 900 # mosaic timeout 900 s
      receives   = 5
    }
  }
}

resource "aws_sqs_queue" "dlq" {
  for_each                  = local.queues
  name                      = "${var.name}-${replace(each.key, "_", "-")}-dlq"
  message_retention_seconds = 1209600 # 14 days
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

resource "aws_sqs_queue" "main" {
  for_each                   = local.queues
  name                       = "${var.name}-${replace(each.key, "_", "-")}"
  visibility_timeout_seconds = min(each.value.visibility, 43200)
  message_retention_seconds  = 1209600
  sqs_managed_sse_enabled    = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq[each.key].arn
    maxReceiveCount     = each.value.receives
  })
  tags = var.tags
}

# The console's "Start DLQ redrive" moves messages back to the queue they came from.
resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  for_each  = local.queues
  queue_url = aws_sqs_queue.dlq[each.key].id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.main[each.key].arn]
  })
}
