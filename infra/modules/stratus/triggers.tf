# Run files under runs/ start the planner: by S3 event notification or through
# EventBridge (selectable), and optionally on a schedule.

resource "aws_lambda_permission" "s3_invokes_planner" {
  count          = var.run_file_trigger == "s3_notification" ? 1 : 0
  statement_id   = "AllowS3RunFiles"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.fn["planner"].function_name
  principal      = "s3.amazonaws.com"
  source_arn     = module.data.bucket_arn
  source_account = data.aws_caller_identity.current.account_id
}

resource "aws_s3_bucket_notification" "run_files" {
  bucket      = module.data.bucket
  eventbridge = var.run_file_trigger == "eventbridge"

  dynamic "lambda_function" {
    for_each = var.run_file_trigger == "s3_notification" ? [1] : []
    content {
      lambda_function_arn = aws_lambda_function.fn["planner"].arn
      events              = ["s3:ObjectCreated:*"]
      filter_prefix       = "runs/"
      filter_suffix       = ".yaml"
    }
  }
  depends_on = [aws_lambda_permission.s3_invokes_planner]
}

resource "aws_cloudwatch_event_rule" "run_files" {
  count       = var.run_file_trigger == "eventbridge" ? 1 : 0
  name        = "${var.name}-run-files"
  description = "Run files written under runs/ start the planner."
  event_pattern = jsonencode({
    source        = ["aws.s3"]
    "detail-type" = ["Object Created"]
    detail = {
      bucket = { name = [module.data.bucket] }
      object = { key = [{ prefix = "runs/" }] }
    }
  })
  tags = var.tags
}

resource "aws_cloudwatch_event_target" "run_files" {
  count = var.run_file_trigger == "eventbridge" ? 1 : 0
  rule  = aws_cloudwatch_event_rule.run_files[0].name
  arn   = aws_lambda_function.fn["planner"].arn
}

resource "aws_lambda_permission" "eventbridge_invokes_planner" {
  count         = var.run_file_trigger == "eventbridge" ? 1 : 0
  statement_id  = "AllowEventBridgeRunFiles"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.fn["planner"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.run_files[0].arn
}

resource "aws_cloudwatch_event_rule" "schedule" {
  count               = var.schedule_expression == null ? 0 : 1
  name                = "${var.name}-planner-schedule"
  description         = "Plans the scheduled run file for the period that just ended."
  schedule_expression = var.schedule_expression
  tags                = var.tags
}

resource "aws_cloudwatch_event_target" "schedule" {
  count = var.schedule_expression == null ? 0 : 1
  rule  = aws_cloudwatch_event_rule.schedule[0].name
  arn   = aws_lambda_function.fn["planner"].arn
}

resource "aws_lambda_permission" "schedule_invokes_planner" {
  count         = var.schedule_expression == null ? 0 : 1
  statement_id  = "AllowSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.fn["planner"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.schedule[0].arn
}
