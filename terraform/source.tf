# Function source: the archive holds only what the function imports at run time. It is built from an
# include list rather than the repository root minus exclusions, so tests/, terraform/, dev/, bench/,
# emulators/, virtualenvs, .git and caches can never leak in, whatever appears in the tree later.
# tests/terraform/ checks this list against the repository.

locals {
  source_dir = coalesce(var.source_dir, "${path.module}/..")

  # Keep in step with what main.py and handlers/ import; *.py only, so __pycache__ stays out.
  source_patterns = ["main.py", "requirements.txt", "handlers/**/*.py"]

  # What the build pip-installs; keras_hub adds KerasHub's pins (README "KerasHub (opt-in)").
  requirements_files = concat(["requirements.txt"], var.keras_hub ? ["requirements-kerashub.txt"] : [])

  source_files = sort(distinct(flatten([
    for pattern in local.source_patterns : tolist(fileset(local.source_dir, pattern))
  ])))

  # Bucket names are at most 63 characters; a 30-character project ID and a 26-character name would
  # make <project>-<name>-source 64, so that case falls back to -src.
  default_source_bucket_name = "${var.project_id}-${var.name}-source"
  source_bucket_name = coalesce(
    var.source_bucket_name,
    length(local.default_source_bucket_name) <= 63 ? local.default_source_bucket_name : "${var.project_id}-${var.name}-src",
  )
}

data "archive_file" "source" {
  type        = "zip"
  output_path = "${path.root}/.terraform/tmp/${var.name}-source.zip"

  dynamic "source" {
    for_each = local.source_files
    content {
      filename = source.value
      content = (source.value == "requirements.txt"
        ? join("\n", [for f in local.requirements_files : file("${local.source_dir}/${f}")])
      : file("${local.source_dir}/${source.value}"))
    }
  }
}

resource "google_storage_bucket" "source" {
  # checkov:skip=CKV_GCP_62:Holds only build inputs; usage logs are opt-in through var.access_log_bucket.
  project                     = var.project_id
  name                        = local.source_bucket_name
  location                    = upper(var.region)
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true # only reproducible build inputs live here
  labels                      = local.labels

  versioning {
    enabled = true
  }

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
      log_object_prefix = local.source_bucket_name
    }
  }

  depends_on = [google_project_service.required]
}

resource "google_storage_bucket_object" "source" {
  # The md5 in the name makes every code change a new object, which redeploys the function.
  name   = "${var.name}/source-${data.archive_file.source.output_md5}.zip"
  bucket = google_storage_bucket.source.name
  source = data.archive_file.source.output_path

  lifecycle {
    precondition {
      condition     = contains(local.source_files, "main.py") && contains(local.source_files, "requirements.txt")
      error_message = "source_dir must be the repository root: main.py and requirements.txt were not found there."
    }
  }
}
