# Optional container path for tiles too big for Lambda: a Fargate task definition that
# runs `stratus worker --from-sqs` on the container task queue, where the dispatcher sends
# the tasks the planner sized beyond the Lambda budget. Its permissions are the worker's,
# with the container queue in place of the Lambda task queue. Start tasks with
# `aws ecs run-task` (or a service scaled on queue depth); each exits when the queue
# stays empty.

locals {
  container_worker_permissions = concat(
    [for p in local.permissions["worker"] : p if !contains(p.resources, module.data.queues["tasks"].arn) && !contains(p.resources, module.data.dead_letter_queues["tasks"].arn)],
    [
      { actions = concat(local.queue_consume, ["sqs:GetQueueUrl"]), resources = [module.data.queues["container_tasks"].arn] },
      { actions = local.queue_open, resources = [module.data.dead_letter_queues["container_tasks"].arn] },
    ],
  )
}

data "aws_iam_policy_document" "container_worker" {
  dynamic "statement" {
    for_each = [for p in local.container_worker_permissions : p if length(p.resources) > 0]
    content {
      actions   = statement.value.actions
      resources = statement.value.resources
    }
  }
  statement {
    sid       = "NoRunFiles"
    effect    = "Deny"
    actions   = ["s3:PutObject", "s3:DeleteObject"]
    resources = [local.run_file_objects]
  }
}

data "aws_iam_policy_document" "ecs_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_ecs_cluster" "workers" {
  count = var.enable_container_worker ? 1 : 0
  name  = "${var.name}-workers"
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
  tags = var.tags
}

resource "aws_cloudwatch_log_group" "container_worker" {
  count             = var.enable_container_worker ? 1 : 0
  name              = "/ecs/${var.name}-worker"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_iam_role" "container_worker_task" {
  count              = var.enable_container_worker ? 1 : 0
  name               = "${var.name}-container-worker"
  assume_role_policy = data.aws_iam_policy_document.ecs_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "container_worker_task" {
  count  = var.enable_container_worker ? 1 : 0
  name   = "${var.name}-container-worker"
  role   = aws_iam_role.container_worker_task[0].id
  policy = data.aws_iam_policy_document.container_worker.json
}

resource "aws_iam_role" "container_worker_execution" {
  count              = var.enable_container_worker ? 1 : 0
  name               = "${var.name}-container-worker-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "container_worker_execution" {
  count      = var.enable_container_worker ? 1 : 0
  role       = aws_iam_role.container_worker_execution[0].name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

resource "aws_ecs_task_definition" "container_worker" {
  count                    = var.enable_container_worker ? 1 : 0
  family                   = "${var.name}-worker"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.container_worker.cpu
  memory                   = var.container_worker.memory_mb
  task_role_arn            = aws_iam_role.container_worker_task[0].arn
  execution_role_arn       = aws_iam_role.container_worker_execution[0].arn
  container_definitions = jsonencode([{
    name       = "worker"
    image      = var.image_uri
    essential  = true
    entryPoint = ["/usr/local/bin/stratus"]
    command = [
      "worker", "--from-sqs", module.data.queues["container_tasks"].url,
      "--location", "s3://${module.data.bucket}",
      "--workers", tostring(var.container_worker.workers),
    ]
    environment = [for k, v in local.environment : { name = k, value = v }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.container_worker[0].name
        awslogs-region        = data.aws_region.current.name
        awslogs-stream-prefix = "worker"
      }
    }
  }])
  tags = var.tags
}
