# The watched bucket. Created with uniform access, public access prevention and versioning, or an
# existing one looked up for its location (direct triggers must live in the bucket's location).

resource "google_storage_bucket" "models" {
  count = var.create_bucket ? 1 : 0
  # checkov:skip=CKV_GCP_62:Usage logs are opt-in through var.access_log_bucket (dynamic block below); Cloud Audit Logs cover access.

  project                     = var.project_id
  name                        = var.bucket_name
  location                    = upper(coalesce(var.bucket_location, var.region))
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.bucket_force_destroy
  labels                      = local.labels

  versioning {
    enabled = true
  }

  # State records are overwritten (claim -> final) and uploads may be replaced: keep history for a
  # while, not forever.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  dynamic "logging" {
    for_each = var.access_log_bucket == null ? [] : [var.access_log_bucket]
    content {
      log_bucket        = logging.value
      log_object_prefix = var.bucket_name
    }
  }

  depends_on = [google_project_service.required]
}

data "google_storage_bucket" "existing" {
  count = var.create_bucket ? 0 : 1
  name  = var.bucket_name
}

locals {
  bucket_name     = var.create_bucket ? google_storage_bucket.models[0].name : data.google_storage_bucket.existing[0].name
  bucket_location = lower(var.create_bucket ? google_storage_bucket.models[0].location : data.google_storage_bucket.existing[0].location)

  # IAM conditions address objects as projects/_/buckets/B/objects/NAME.
  objects_path = "projects/_/buckets/${var.bucket_name}/objects/"
}
