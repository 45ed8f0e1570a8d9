# gcs-model-registrar: a 2nd-gen Cloud Function that registers TensorFlow models uploaded to a bucket
# in the Vertex AI Model Registry. Resources are split by concern:
#   apis.tf        required Google APIs
#   bucket.tf      the watched bucket (created or existing)
#   source.tf      function source archive and its bucket
#   function.tf    the function and its environment (the settings contract with handlers/settings.py)
#   trigger.tf     the two trigger modes: direct Eventarc or prefix-filtered bucket notification
#   iam.tf         service accounts and every role granted
#   serving_image.tf  the TF Serving image: an Artifact Registry remote repository of Docker Hub
#   monitoring.tf  log-based metrics and the failure alert

locals {
  labels = merge({ app = var.name, managed-by = "terraform" }, var.labels)

  vertex_location = coalesce(var.vertex_location, var.region)

  # The serving image (serving_image.tf): null -> TF Serving through the module's Artifact Registry
  # remote repository of Docker Hub, in the Vertex region (the code's default names the same URI).
  create_serving_repository = var.serving_image == null
  serving_image = coalesce(
    var.serving_image,
    "${local.vertex_location}-docker.pkg.dev/${var.project_id}/${var.serving_repository_id}/tensorflow/serving:${var.tf_serving_version}",
  )

  # Vertex AI refuses artifacts in a bucket outside its region (python-aiplatform#885), so a created
  # bucket defaults to the Vertex location; variables.tf rejects a bucket_location elsewhere and
  # bucket.tf checks an existing bucket's location at plan time.
  created_bucket_location = lower(coalesce(var.bucket_location, local.vertex_location))

  # Names derived from inputs. Service account IDs must be 6-30 characters ([a-z][a-z0-9-]*[a-z0-9]);
  # var.name's validation (3-26 characters) keeps every one of these within that.
  service_account_ids = {
    runtime = "${var.name}-run"
    trigger = "${var.name}-trg"
    build   = "${var.name}-bld"
    job     = "${var.name}-job"
  }
  # The Cloud Run job (job.tf), named from inputs: the function's JOB_NAME cannot reference the
  # job, which is created after the function (it runs the function's image).
  job_id   = "${var.name}-job"
  job_path = "projects/${var.project_id}/locations/${var.region}/jobs/${local.job_id}"

  # The function writes under artifact_prefix and state_prefix; if either overlapped model_prefix its
  # own writes would be taken for uploads. The code refuses that too (SettingsError); failing at plan
  # time is cheaper than a crash-looping deployment.
  prefixes_disjoint = alltrue([
    for pair in [
      [var.model_prefix, var.artifact_prefix],
      [var.model_prefix, var.state_prefix],
      [var.artifact_prefix, var.state_prefix],
    ] : !startswith(pair[0], pair[1]) && !startswith(pair[1], pair[0])
  ])

  is_direct = var.trigger_mode == "direct"
}
