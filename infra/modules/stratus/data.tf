# Bucket, ledger table and queues (with dead-letter queues): the stratus-data module.

module "data" {
  source                  = "../stratus-data"
  name                    = var.name
  output_versioning       = var.output_versioning
  scratch_expiration_days = var.scratch_expiration_days
  max_receive_count       = var.max_receive_count
  worker_timeout_s        = var.worker_timeout_s
  force_destroy           = var.force_destroy
  tags                    = var.tags
}
