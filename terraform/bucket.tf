# The watched bucket. Created with uniform access, public access prevention and versioning, or an
# existing one looked up for its location (direct triggers must live in the bucket's location).
#
# It also holds the validated artifact copies Vertex AI registers, and Vertex AI refuses artifacts in a
# bucket outside its own region: the bucket's location must equal vertex_location. Both cases are
# checked at plan time: a created bucket through bucket_location's validation (variables.tf; it
# defaults to the Vertex location), an existing one by the postconditions on its data source below.

resource "google_storage_bucket" "models" {
  count = var.create_bucket ? 1 : 0
  # checkov:skip=CKV_GCP_62:Usage logs are opt-in through var.access_log_bucket (dynamic block below); Cloud Audit Logs cover access.

  project                     = var.project_id
  name                        = var.bucket_name
  location                    = upper(local.created_bucket_location)
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

# Read at plan time (its arguments are all known then), so a wrong bucket fails `terraform plan`.
data "google_storage_bucket" "existing" {
  count = var.create_bucket ? 0 : 1
  name  = var.bucket_name

  lifecycle {
    postcondition {
      condition     = lower(self.location) == local.vertex_location
      error_message = "The existing bucket must be in the Vertex AI location (vertex_location, else region): Vertex AI refuses model artifacts in a bucket in another region, and multi-/dual-region buckets are not in one region."
    }
    postcondition {
      condition     = self.uniform_bucket_level_access == true
      error_message = "The existing bucket must have uniform bucket-level access: the function's grants are IAM conditions on object-name prefixes, which Cloud Storage only honours with uniform access (gcloud storage buckets update gs://BUCKET --uniform-bucket-level-access)."
    }
  }
}

locals {
  bucket_name     = var.create_bucket ? google_storage_bucket.models[0].name : data.google_storage_bucket.existing[0].name
  bucket_location = lower(var.create_bucket ? google_storage_bucket.models[0].location : data.google_storage_bucket.existing[0].location)

  # IAM conditions address objects as projects/_/buckets/B/objects/NAME.
  objects_path = "projects/_/buckets/${var.bucket_name}/objects/"
}
