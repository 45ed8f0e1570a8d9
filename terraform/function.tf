# The function. `environment_variables` is the settings contract with handlers/settings.py: every name
# in ENV_VARS appears in exactly one of the two maps below, and nothing else is set (the emulator
# variables in PLATFORM_ENV_VARS are for local runs only). tests/terraform/ enforces both.

locals {
  # The Python the test suite runs on (tests/terraform checks it against sys.version_info).
  runtime     = "python311"
  entry_point = "register_model"

  # Cloud Functions' minimum vCPU for each memory size; more than 4 GiB needs 2 or more.
  cpu_for_memory = { "4Gi" = "1", "8Gi" = "2", "16Gi" = "4", "32Gi" = "8" }
  cpu            = coalesce(var.cpu, local.cpu_for_memory[var.memory])

  # Always set: the deployment decides these.
  env_always = {
    GOOGLE_CLOUD_PROJECT        = var.project_id
    VERTEX_LOCATION             = local.vertex_location
    MODEL_PREFIX                = var.model_prefix
    ARTIFACT_PREFIX             = var.artifact_prefix
    STATE_PREFIX                = var.state_prefix
    SERVING_CONTAINER_IMAGE_URI = local.serving_image
    DEFAULT_VERSION_POLICY      = var.default_version_policy
    ALLOW_CROSS_FOLDER_MODELS   = var.allow_cross_folder_models ? "true" : "false"
    LOG_LEVEL                   = var.log_level
    # functions-framework reads it too: uvicorn (ASGI) instead of gunicorn + Flask.
    FUNCTION_USE_ASGI = var.asgi_server ? "true" : "false"
    # The same variable as service_config.timeout_seconds: the code's waits end inside it.
    FUNCTION_TIMEOUT_SECONDS = tostring(var.timeout_seconds)
  }

  # Set only when the input is not null; otherwise the code's documented default applies
  # (deliberately defaulted, e.g. VALIDATION_MEMORY_MB is derived from the instance's memory).
  env_optional = {
    MODEL_PATH_PATTERN              = var.model_path_pattern
    NOTIFY_TOPIC                    = var.notify_topic
    KERAS_EXTRA_ALLOWED_OBJECTS     = length(var.keras_extra_allowed_objects) > 0 ? join(",", var.keras_extra_allowed_objects) : null
    KERAS_CUSTOM_OBJECT_MODULES     = length(var.keras_custom_object_modules) > 0 ? join(",", var.keras_custom_object_modules) : null
    KERAS_HUB                       = var.keras_hub ? "true" : null
    CLAIM_LEASE_SECONDS             = var.limits.claim_lease_seconds
    MAX_ARTIFACT_BYTES              = var.limits.max_artifact_bytes
    MAX_UNCOMPRESSED_BYTES          = var.limits.max_uncompressed_bytes
    MAX_COMPRESSION_RATIO           = var.limits.max_compression_ratio
    MAX_ARCHIVE_MEMBERS             = var.limits.max_archive_members
    VALIDATION_TIMEOUT_SECONDS      = var.limits.validation_timeout_seconds
    VALIDATION_MEMORY_MB            = var.limits.validation_memory_mb
    VALIDATOR_MAX_USES              = var.limits.validator_max_uses
    DIRECTORY_UPLOAD_WINDOW_SECONDS = var.limits.directory_upload_window_seconds
    TEMP_DIR                        = var.temp_dir
    SANDBOX_REQUIRED_LAYERS         = var.sandbox_required_layers == null ? null : (length(var.sandbox_required_layers) == 0 ? "none" : join(",", var.sandbox_required_layers))
    PROMOTION_METRIC                = var.promotion.metric
    PROMOTION_GOAL                  = var.promotion.goal
    PROMOTION_MIN_DELTA             = var.promotion.min_delta
    PROMOTION_THRESHOLD             = var.promotion.threshold
    DEPLOY_ENDPOINT                 = var.deploy.endpoint
    DEPLOY_TRAFFIC                  = var.deploy.traffic_percent
    DEPLOY_WAIT_SECONDS             = var.deploy.wait_seconds
    SERVING_TF_VERSION              = var.serving_tf_version
    # The hand-off to the Cloud Run job (job.tf); the name is built, not referenced: the job runs
    # the function's image, so it is created after the function.
    JOB_NAME              = var.job.enabled ? local.job_path : null
    HANDOFF_BYTES         = var.job.handoff_bytes
    JOB_TIMEOUT_SECONDS   = var.job.enabled ? var.job.timeout_seconds : null
    HANDOFF_LEASE_SECONDS = var.job.handoff_lease_seconds
  }

  environment_variables = merge(
    local.env_always,
    { for k, v in local.env_optional : k => tostring(v) if v != null },
  )

  # The code's default VALIDATION_TIMEOUT_SECONDS; the function must outlive one validation.
  validation_timeout_seconds = coalesce(var.limits.validation_timeout_seconds, 300)
  # The code's default CLAIM_LEASE_SECONDS; a claim must outlive the run that holds it.
  claim_lease_seconds = coalesce(var.limits.claim_lease_seconds, 900)
}

resource "google_cloudfunctions2_function" "registrar" {
  project     = var.project_id
  location    = var.region
  name        = var.name
  description = "Validates TensorFlow models uploaded under gs://${var.bucket_name}/${var.model_prefix} and registers them in Vertex AI."
  labels      = local.labels

  build_config {
    runtime         = local.runtime
    entry_point     = local.entry_point
    service_account = local.build_service_account_id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    available_memory   = var.memory
    available_cpu      = local.cpu
    timeout_seconds    = var.timeout_seconds
    max_instance_count = var.max_instance_count
    min_instance_count = var.min_instance_count
    # One event per instance: validation loads a whole model into memory.
    max_instance_request_concurrency = 1
    # Only Eventarc / Pub/Sub push reach it; nothing on the internet can.
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.runtime.email
    environment_variables          = local.environment_variables
  }

  event_trigger {
    event_type            = local.event_type
    trigger_region        = local.trigger_region
    pubsub_topic          = local.is_direct ? null : google_pubsub_topic.uploads[0].id
    service_account_email = google_service_account.trigger.email
    # Without RETRY a transient failure (5xx) drops the event for good; the code acknowledges
    # permanent failures itself, so only retryable ones come back (for up to 24 h).
    retry_policy = "RETRY_POLICY_RETRY"

    dynamic "event_filters" {
      for_each = local.is_direct ? [local.bucket_name] : []
      content {
        attribute = "bucket"
        value     = event_filters.value
      }
    }
  }

  lifecycle {
    precondition {
      condition     = local.prefixes_disjoint
      error_message = "model_prefix, artifact_prefix and state_prefix must not overlap: the function's own writes would be taken for uploads."
    }
    precondition {
      condition     = local.validation_timeout_seconds < var.timeout_seconds
      error_message = "limits.validation_timeout_seconds (default 300) must be below timeout_seconds, or every slow validation ends in a platform timeout instead of a recorded rejection."
    }
    precondition {
      condition     = local.claim_lease_seconds > var.timeout_seconds
      error_message = "limits.claim_lease_seconds (default 900) must be above timeout_seconds, or a slow run's upload is taken over and worked on twice (the function refuses to start)."
    }
    precondition {
      condition     = tonumber(local.cpu) >= tonumber(local.cpu_for_memory[var.memory])
      error_message = "cpu is below the minimum for memory (4Gi: 1, 8Gi: 2, 16Gi: 4, 32Gi: 8)."
    }
  }

  # time_sleep.iam_propagation follows every grant the build, the trigger and the first events need.
  depends_on = [
    google_project_service.required,
    time_sleep.iam_propagation,
  ]
}

# IAM grants take a while to reach every service after the API call returns. Without this wait a first
# deployment's build can fail to read the source zip with the build account's fresh role, and the
# trigger's creation can fail on the Cloud Storage service agent's fresh publish grant. 60 s is what
# the provider's own Cloud Functions examples wait ("before it can pull the source zip"). Re-created
# (and so waited for again) whenever one of these grants is replaced.
resource "time_sleep" "iam_propagation" {
  create_duration = "60s"

  triggers = {
    build_roles       = join(",", google_project_iam_member.build[*].id)
    gcs_publisher     = join(",", concat(google_project_iam_member.gcs_pubsub_publisher[*].id, google_pubsub_topic_iam_member.gcs_publishes_uploads[*].id))
    event_receiver    = join(",", google_project_iam_member.trigger_event_receiver[*].id)
    runtime_vertex    = google_project_iam_member.runtime_aiplatform_user.id
    runtime_bucket    = google_storage_bucket_iam_member.runtime_read_models.id
    runtime_artifacts = google_storage_bucket_iam_member.runtime_create_artifacts.id
    runtime_state     = google_storage_bucket_iam_member.runtime_state_records.id
  }
}
