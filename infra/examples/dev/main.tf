# An example deployment of the Stratus module: terraform init && terraform apply.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0, < 7.0"
    }
  }
}

provider "aws" {
  region = var.region
}

variable "region" {
  type    = string
  default = "eu-west-1"
}

variable "image_uri" {
  description = "The stratus Lambda image in ECR (make package builds it)."
  type        = string
  default     = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/stratus:latest"
}

module "stratus" {
  source    = "../../modules/stratus"
  name      = "stratus-dev"
  image_uri = var.image_uri

  input_buckets = [
    { bucket = "sentinel-cogs", prefix = "sentinel-s2-l2a-cogs/" },
    { bucket = "stratus-dev-inputs" },
  ]
  # Earth Search items give their COGs as HTTPS URLs of the same bucket.
  allowed_input_urls = [
    "https://sentinel-cogs.s3.us-west-2.amazonaws.com/sentinel-s2-l2a-cogs",
    "https://earth-search.aws.element84.com/v1",
  ]
  worker_max_concurrency = 200
  run_file_trigger       = "s3_notification"
  schedule_expression    = "cron(0 2 1 1 ? *)" # 1 January, 02:00 UTC: plan last year
  scheduled_run_file     = "s3://stratus-dev-outputs/runs/scheduled/gm-s2-annual.yaml"
  tags                   = { project = "stratus", stage = "dev" }
}

output "bucket" {
  value = module.stratus.output_bucket
}

output "table" {
  value = module.stratus.table_name
}

output "task_queue_url" {
  value = module.stratus.queue_urls["tasks"]
}

output "functions" {
  value = module.stratus.function_names
}
