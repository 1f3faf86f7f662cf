variable "name" {
  description = "Prefix of every resource name (e.g. stratus-dev)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,40}$", var.name))
    error_message = "name: lower-case letters, digits and '-', 2 to 41 characters."
  }
}

variable "image_uri" {
  description = "The Lambda container image with the GDAL runtime and the four function binaries (functions/Containerfile), in ECR."
  type        = string
}

variable "input_buckets" {
  description = "Buckets the functions may read inputs (COGs, STAC) from, read-only, with an optional key prefix each."
  type = list(object({
    bucket = string
    prefix = optional(string, "")
  }))
  default = []
}

variable "allowed_input_urls" {
  description = "HTTPS prefixes (such as a public STAC API or COG host) the functions may read inputs from, besides input_buckets. Everything else is refused."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for u in var.allowed_input_urls : can(regex("^https://[^/?#@]+(/[^?#]*)?$", u))])
    error_message = "allowed_input_urls: https:// prefixes without credentials, queries or fragments."
  }
}

variable "output_versioning" {
  description = "Keep object versions in the output bucket."
  type        = bool
  default     = false
}

variable "scratch_expiration_days" {
  description = "Days after which objects under _stratus/ (payload manifests, scratch) expire."
  type        = number
  default     = 30
}

variable "max_receive_count" {
  description = "Receives of a task message before it goes to the dead-letter queue."
  type        = number
  default     = 3
}

variable "worker_memory_mb" {
  description = "Worker function memory (MB, at most 10240)."
  type        = number
  default     = 10240
}

variable "worker_ephemeral_storage_mb" {
  description = "Worker /tmp size (MB, 512 to 10240): scratch bands of one tile."
  type        = number
  default     = 10240
}

variable "worker_timeout_s" {
  description = "Worker function timeout (s, at most 900)."
  type        = number
  default     = 900
}

variable "worker_max_concurrency" {
  description = "Most worker invocations at once (event source mapping maximum concurrency, 2 to 1000)."
  type        = number
  default     = 100
}

variable "run_file_trigger" {
  description = "How run files under runs/ reach the planner: s3_notification or eventbridge."
  type        = string
  default     = "s3_notification"
  validation {
    condition     = contains(["s3_notification", "eventbridge"], var.run_file_trigger)
    error_message = "run_file_trigger must be s3_notification or eventbridge."
  }
}

variable "schedule_expression" {
  description = "Optional EventBridge schedule for the planner (e.g. cron(0 2 1 1 ? *)); plans scheduled_run_file for the period that just ended."
  type        = string
  default     = null
}

variable "scheduled_run_file" {
  description = "Run file (s3://...) the scheduled planner invocation plans."
  type        = string
  default     = null
}

variable "page_size" {
  description = "Tasks per fan-out page."
  type        = number
  default     = 100
}

variable "log_retention_days" {
  description = "CloudWatch log retention."
  type        = number
  default     = 30
}

variable "alarm_actions" {
  description = "ARNs (e.g. an SNS topic) notified by the alarms."
  type        = list(string)
  default     = []
}

variable "enable_container_worker" {
  description = "Create an ECS Fargate task definition for `stratus worker --from-sqs` (tiles too big for Lambda)."
  type        = bool
  default     = false
}

variable "container_worker" {
  description = "Fargate size of the container worker."
  type = object({
    cpu       = optional(number, 4096)
    memory_mb = optional(number, 30720)
    workers   = optional(number, 2)
  })
  default = {}
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the output bucket with its objects (for test stacks only)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
