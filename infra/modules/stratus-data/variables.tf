variable "name" {
  description = "Prefix of every resource name (e.g. stratus-dev)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,40}$", var.name))
    error_message = "name: lower-case letters, digits and '-', 2 to 41 characters."
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

variable "worker_timeout_s" {
  description = "Worker timeout (s): the task queue's visibility timeout is 6x this."
  type        = number
  default     = 900
}

variable "require_tls" {
  description = "Refuse every request to the output bucket not made over TLS (a bucket policy). Off only for a local AWS-protocol server reached over plain HTTP."
  type        = bool
  default     = true
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
