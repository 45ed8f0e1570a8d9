output "function_name" {
  description = "Name of the function (and of its Cloud Run service)."
  value       = google_cloudfunctions2_function.registrar.name
}

output "function_id" {
  description = "Full resource ID of the function."
  value       = google_cloudfunctions2_function.registrar.id
}

output "function_region" {
  description = "Region the function runs in."
  value       = google_cloudfunctions2_function.registrar.location
}

output "bucket_name" {
  description = "Watched bucket."
  value       = local.bucket_name
}

output "upload_uri" {
  description = "Upload a model under this URI, e.g. gs://BUCKET/models/<model>/<version>/model.keras."
  value       = "gs://${local.bucket_name}/${var.model_prefix}"
}

output "artifact_uri" {
  description = "Where validated artifact copies are written."
  value       = "gs://${local.bucket_name}/${var.artifact_prefix}"
}

output "state_uri" {
  description = "Where per-upload records are written."
  value       = "gs://${local.bucket_name}/${var.state_prefix}"
}

output "trigger_mode" {
  description = "direct or notification."
  value       = var.trigger_mode
}

output "upload_topic" {
  description = "Topic the bucket notification publishes to (notification mode), else null."
  value       = local.is_direct ? null : google_pubsub_topic.uploads[0].id
}

output "runtime_service_account" {
  description = "Email of the function's runtime service account."
  value       = google_service_account.runtime.email
}

output "trigger_service_account" {
  description = "Email of the account that delivers events to the function."
  value       = google_service_account.trigger.email
}

output "build_service_account" {
  description = "Email of the account Cloud Build builds the function with."
  value       = local.build_service_account_email
}

output "source_object" {
  description = "gs:// URI of the deployed source archive."
  value       = "gs://${google_storage_bucket.source.name}/${google_storage_bucket_object.source.name}"
}

output "environment_variables" {
  description = "Environment the function runs with (no secrets in it)."
  value       = local.environment_variables
}

output "log_metrics" {
  description = "Log-based metric names: outcomes (by outcome), rejected (by code), failures, landlock_missing (instances started without Landlock)."
  value = {
    outcomes         = google_logging_metric.outcomes.name
    rejected         = google_logging_metric.rejected.name
    failures         = google_logging_metric.failures.name
    landlock_missing = google_logging_metric.landlock_missing.name
  }
}

output "logs_filter" {
  description = "Cloud Logging filter for the function's outcome lines."
  value       = "${local.function_logs} AND jsonPayload.outcome:*"
}

output "dashboard" {
  description = "The Cloud Monitoring dashboard (null when var.dashboard is false)."
  value       = one(google_monitoring_dashboard.registrar[*].id)
}

output "serving_image" {
  description = "Serving image every registered version names (SERVING_CONTAINER_IMAGE_URI)."
  value       = local.serving_image
}

output "job_name" {
  description = "The Cloud Run job's full name (JOB_NAME; `registrar job` follows its executions), or null when var.job.enabled is false."
  value       = local.job_enabled ? google_cloud_run_v2_job.registrar[0].id : null
}

output "job_service_account" {
  description = "Email of the job's service account, or null when var.job.enabled is false."
  value       = local.job_enabled ? google_service_account.job[0].email : null
}
