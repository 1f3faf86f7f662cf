# Alarms: anything in a dead-letter queue, function errors, and task messages waiting
# too long (workers not keeping up, or throttled).

resource "aws_cloudwatch_metric_alarm" "dlq_depth" {
  for_each            = merge(module.data.dead_letter_queues, { planner = { name = aws_sqs_queue.planner_dlq.name } })
  alarm_name          = "${var.name}-${each.key}-dlq-not-empty"
  alarm_description   = "Messages in ${each.value.name}: see `stratus status`, fix, then `stratus redrive`."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "function_errors" {
  for_each            = local.functions
  alarm_name          = "${var.name}-${each.key}-errors"
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.fn[each.key].function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "oldest_task" {
  alarm_name          = "${var.name}-tasks-oldest-message"
  alarm_description   = "A task message has waited over 6 hours."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = module.data.queues["tasks"].name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 3
  threshold           = 21600
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  tags                = var.tags
}
