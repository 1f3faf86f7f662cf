# The stateful part of Stratus (stratus-data) applied to a local AWS-protocol server (moto),
# plus a bucket for synthetic inputs. `make local-aws` applies it; the Terraform test in
# `make test` applies it, runs a pipeline on exactly these resources, then destroys it.
#
#   terraform apply -var endpoint=http://127.0.0.1:5077

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0, < 7.0"
    }
  }
}

variable "endpoint" {
  description = "The local AWS-protocol server (scripts/moto.sh start)."
  type        = string
  default     = "http://127.0.0.1:5077"
}

variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "stratus-local"
}

provider "aws" {
  region                      = "us-east-1"
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  s3_use_path_style           = true
  endpoints {
    s3       = var.endpoint
    sqs      = var.endpoint
    dynamodb = var.endpoint
    sts      = var.endpoint
  }
}

module "data" {
  source        = "../../modules/stratus-data"
  name          = var.name
  force_destroy = true  # a throwaway stack on a local server
  require_tls   = false # moto is reached over plain HTTP
}

# Synthetic inputs for local runs; a real deployment reads existing input buckets.
resource "aws_s3_bucket" "inputs" {
  #checkov:skip=CKV2_AWS_6:Exists only on the local moto server, for synthetic inputs.
  #checkov:skip=CKV2_AWS_61:Exists only on the local moto server, for synthetic inputs.
  #checkov:skip=CKV2_AWS_62:Exists only on the local moto server, for synthetic inputs.
  #checkov:skip=CKV_AWS_144:Exists only on the local moto server, for synthetic inputs.
  #checkov:skip=CKV_AWS_145:Exists only on the local moto server, for synthetic inputs.
  #checkov:skip=CKV_AWS_18:Exists only on the local moto server, for synthetic inputs.
  #checkov:skip=CKV_AWS_21:Exists only on the local moto server, for synthetic inputs.
  bucket        = "${var.name}-inputs"
  force_destroy = true
}

output "bucket" {
  value = module.data.bucket
}

output "inputs_bucket" {
  value = aws_s3_bucket.inputs.id
}

output "table" {
  value = module.data.table_name
}

output "queue_urls" {
  value = { for k, q in module.data.queues : k => q.url }
}

output "dead_letter_queue_urls" {
  value = { for k, q in module.data.dead_letter_queues : k => q.url }
}
