# The output bucket (products, run files, plan artefacts, reports) and the ledger table.

resource "aws_s3_bucket" "output" {
  #checkov:skip=CKV_AWS_144:Products are recomputable from their inputs and the ledger; cross-region replication would double storage cost for no recovery gain.
  #checkov:skip=CKV_AWS_145:SSE-S3 (AES256) encrypts everything at rest; SSE-KMS would add a KMS request to each of millions of tile reads and writes.
  #checkov:skip=CKV_AWS_18:Access is through the functions' roles, logged by CloudTrail; an access-log bucket is the account's choice, not this module's.
  #checkov:skip=CKV_AWS_21:Versioning is the output_versioning variable (off by default: reruns overwrite tiles by design).
  #checkov:skip=CKV2_AWS_62:Run-file notifications are configured by the stratus module (triggers.tf) when functions are deployed; this data-only module has none.
  bucket        = "${var.name}-outputs"
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_public_access_block" "output" {
  bucket                  = aws_s3_bucket.output.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# Plain-HTTP requests to the bucket are refused, whoever makes them.
data "aws_iam_policy_document" "output_tls_only" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = [aws_s3_bucket.output.arn, "${aws_s3_bucket.output.arn}/*"]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "output" {
  count  = var.require_tls ? 1 : 0
  bucket = aws_s3_bucket.output.id
  policy = data.aws_iam_policy_document.output_tls_only.json
  # The public access block goes first (a policy applied before it could be judged public).
  depends_on = [aws_s3_bucket_public_access_block.output]
}

resource "aws_s3_bucket_server_side_encryption_configuration" "output" {
  bucket = aws_s3_bucket.output.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_versioning" "output" {
  bucket = aws_s3_bucket.output.id
  versioning_configuration {
    status = var.output_versioning ? "Enabled" : "Suspended"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "output" {
  bucket = aws_s3_bucket.output.id
  rule {
    id     = "scratch"
    status = "Enabled"
    filter {
      prefix = "_stratus/"
    }
    expiration {
      days = var.scratch_expiration_days
    }
  }
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 2
    }
  }
}

# Single-table ledger: see docs/ARCHITECTURE.md, "DynamoDB key design".
resource "aws_dynamodb_table" "ledger" {
  #checkov:skip=CKV_AWS_119:Encrypted at rest with the AWS-owned key (server_side_encryption below); the ledger holds task states, not sensitive data.
  name         = "${var.name}-ledger"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "pk"
  range_key    = "sk"

  attribute {
    name = "pk"
    type = "S"
  }
  attribute {
    name = "sk"
    type = "S"
  }
  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }
  point_in_time_recovery {
    enabled = true
  }
  server_side_encryption {
    enabled = true
  }
  tags = var.tags
}
