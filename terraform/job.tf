# The Cloud Run job that takes over what one function instance cannot: uploads at or above
# HANDOFF_BYTES (or too slow for the function's deadline), one execution each, and fleet backfills
# (`registrar backfill --job-tasks N`). Only with var.job.enabled.
#
# Same code, no manual step: the job runs the container image the function's own build produced
# (Cloud Functions 2nd gen builds the source with Cloud Build into Artifact Registry and deploys it
# as a Cloud Run service; the data source reads that service's image). Every apply that rebuilds
# the function therefore moves the job to the new image in the same apply. The image's entrypoint
# is the buildpack launcher, which sets up the runtime's environment, then runs the command.

locals {
  job_enabled = var.job.enabled
  # The function's settings, plus the job's own deadline (its task timeout).
  job_environment = merge(local.environment_variables, {
    JOB_TIMEOUT_SECONDS = tostring(var.job.timeout_seconds)
  })
  # Custom role ids: letters, digits, underscores and dots.
  job_runner_role_id = replace("${var.name}_job_runner", "-", "_")
}

locals {
  job_member = "serviceAccount:${google_service_account.job[0].email}"
}

# The Cloud Run service behind the function: its image is the function's build.
data "google_cloud_run_v2_service" "function" {
  count = local.job_enabled ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = regex("[^/]+$", google_cloudfunctions2_function.registrar.service_config[0].service)
}

resource "google_cloud_run_v2_job" "registrar" {
  count = local.job_enabled ? 1 : 0

  project             = var.project_id
  location            = var.region
  name                = local.job_id
  labels              = local.labels
  deletion_protection = false

  template {
    task_count = 1
    labels     = local.labels

    template {
      service_account = google_service_account.job[0].email
      timeout         = "${var.job.timeout_seconds}s"
      max_retries     = var.job.max_retries

      containers {
        image = data.google_cloud_run_v2_service.function[0].template[0].containers[0].image
        # Executions override `args` only: `upload ...` (a hand-off) or `backfill ...` (a fleet).
        command = ["/cnb/lifecycle/launcher", "python", "-m", "handlers.job"]

        resources {
          limits = {
            memory = var.job.memory
            cpu    = var.job.cpu
          }
        }

        dynamic "env" {
          for_each = local.job_environment
          content {
            name  = env.key
            value = env.value
          }
        }
      }
    }
  }

  depends_on = [time_sleep.iam_propagation]
}

# ---------------------------------------------------------------------------------------------------
# The job's identity: the function's least privilege, nothing more
# ---------------------------------------------------------------------------------------------------

resource "google_service_account" "job" {
  count = local.job_enabled ? 1 : 0

  project      = var.project_id
  account_id   = local.service_account_ids.job
  display_name = "${var.name} job"
  description  = "Runs the model registrar's Cloud Run job: the function's pipeline for large uploads and fleet backfills."

  depends_on = [google_project_service.required]
}

resource "google_storage_bucket_iam_member" "job_read_models" {
  count = local.job_enabled ? 1 : 0

  bucket = local.bucket_name
  role   = "roles/storage.objectViewer"
  member = local.job_member

  condition {
    title       = "${var.name}-job-read-models"
    description = "Read and list objects under ${var.model_prefix} only."
    expression  = local.prefix_conditions.models
  }
}

resource "google_storage_bucket_iam_member" "job_create_artifacts" {
  count = local.job_enabled ? 1 : 0

  bucket = local.bucket_name
  role   = "roles/storage.objectCreator"
  member = local.job_member

  condition {
    title       = "${var.name}-job-create-artifacts"
    description = "Create objects under ${var.artifact_prefix} only."
    expression  = "resource.name.startsWith(\"${local.objects_path}${var.artifact_prefix}\")"
  }
}

resource "google_storage_bucket_iam_member" "job_read_artifacts" {
  count = local.job_enabled ? 1 : 0

  bucket = local.bucket_name
  role   = "roles/storage.objectViewer"
  member = local.job_member

  condition {
    title       = "${var.name}-job-read-artifacts"
    description = "Read and list objects under ${var.artifact_prefix} only."
    expression  = local.prefix_conditions.artifacts
  }
}

resource "google_storage_bucket_iam_member" "job_state_records" {
  count = local.job_enabled ? 1 : 0

  bucket = local.bucket_name
  role   = "roles/storage.objectUser"
  member = local.job_member

  condition {
    title       = "${var.name}-job-state-records"
    description = "Create, overwrite, read and list records under ${var.state_prefix} only."
    expression  = local.prefix_conditions.state
  }
}

resource "google_project_iam_member" "job_aiplatform_user" {
  count = local.job_enabled ? 1 : 0

  project = var.project_id
  role    = "roles/aiplatform.user"
  member  = local.job_member
}

resource "google_pubsub_topic_iam_member" "job_notify" {
  count = local.job_enabled && var.notify_topic != null ? 1 : 0

  topic  = var.notify_topic
  role   = "roles/pubsub.publisher"
  member = local.job_member
}

# ---------------------------------------------------------------------------------------------------
# The function may start this job, with overrides, and nothing else
# ---------------------------------------------------------------------------------------------------

# roles/run.invoker holds run.jobs.run but not run.jobs.runWithOverrides, and the predefined roles
# that do (run.developer, run.admin) also update and delete jobs. So: a custom role with exactly
# the two permissions a hand-off needs, granted on this one job.
resource "google_project_iam_custom_role" "job_runner" {
  count = local.job_enabled ? 1 : 0

  project     = var.project_id
  role_id     = local.job_runner_role_id
  title       = "${var.name} job runner"
  description = "Start executions of the ${local.job_id} Cloud Run job with overrides (args, task count)."
  permissions = ["run.jobs.run", "run.jobs.runWithOverrides"]
}

resource "google_cloud_run_v2_job_iam_member" "function_runs_job" {
  count = local.job_enabled ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_job.registrar[0].name
  role     = google_project_iam_custom_role.job_runner[0].id
  member   = local.runtime_member
}
