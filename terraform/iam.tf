# Least privilege. Three identities, each with only what its job needs; nothing is granted to
# allUsers or allAuthenticatedUsers. The identity running Terraform needs, besides creating these
# resources, roles/iam.serviceAccountUser on the accounts it attaches (implied when it creates them
# with Owner or Service Account Admin + Project IAM Admin).

# ---------------------------------------------------------------------------------------------------
# Runtime: the function's own identity
# ---------------------------------------------------------------------------------------------------

# Service accounts are created through the IAM API, which a fresh project does not have enabled: each
# account waits for apis.tf (all instances of the for_each, so this holds with enable_apis = false too).
resource "google_service_account" "runtime" {
  project      = var.project_id
  account_id   = local.service_account_ids.runtime
  display_name = "${var.name} runtime"
  description  = "Runs the model registrar function: reads uploads, writes artifacts and records, registers models."

  depends_on = [google_project_service.required]
}

locals {
  runtime_member = "serviceAccount:${google_service_account.runtime.email}"

  # Object read under a prefix. Listing is authorised on the bucket, not on an object, so the listed
  # prefix is checked separately (storage.googleapis.com/objectListPrefix).
  prefix_conditions = {
    for key, prefix in {
      models    = var.model_prefix
      artifacts = var.artifact_prefix
      state     = var.state_prefix
      } : key => join(" || ", [
        "resource.name.startsWith(\"${local.objects_path}${prefix}\")",
        "api.getAttribute(\"storage.googleapis.com/objectListPrefix\", \"\").startsWith(\"${prefix}\")",
    ])
  }
}

# Uploads: read only. The function never changes what users upload.
resource "google_storage_bucket_iam_member" "runtime_read_models" {
  bucket = local.bucket_name
  role   = "roles/storage.objectViewer"
  member = local.runtime_member

  condition {
    title       = "${var.name}-read-models"
    description = "Read and list objects under ${var.model_prefix} only."
    expression  = local.prefix_conditions.models
  }
}

# Artifacts: create + read, no delete and therefore no overwrite; copies stay immutable.
resource "google_storage_bucket_iam_member" "runtime_create_artifacts" {
  bucket = local.bucket_name
  role   = "roles/storage.objectCreator"
  member = local.runtime_member

  condition {
    title       = "${var.name}-create-artifacts"
    description = "Create objects under ${var.artifact_prefix} only."
    expression  = "resource.name.startsWith(\"${local.objects_path}${var.artifact_prefix}\")"
  }
}

resource "google_storage_bucket_iam_member" "runtime_read_artifacts" {
  bucket = local.bucket_name
  role   = "roles/storage.objectViewer"
  member = local.runtime_member

  condition {
    title       = "${var.name}-read-artifacts"
    description = "Read and list objects under ${var.artifact_prefix} only."
    expression  = local.prefix_conditions.artifacts
  }
}

# State records: the function overwrites its own records under ifGenerationMatch preconditions
# (claim -> final), which needs create + delete on those objects; objectUser is the narrowest
# predefined role with both. Conditioned on the state prefix alone.
resource "google_storage_bucket_iam_member" "runtime_state_records" {
  bucket = local.bucket_name
  role   = "roles/storage.objectUser"
  member = local.runtime_member

  condition {
    title       = "${var.name}-state-records"
    description = "Create, overwrite, read and list records under ${var.state_prefix} only."
    expression  = local.prefix_conditions.state
  }
}

# Model Registry: upload models, add versions, move aliases; with deploy.endpoint set, also deploy a
# new default version to that endpoint and shift traffic (aiplatform.endpoints.deploy, .undeploy,
# .update, all in this role). There is no narrower predefined role.
resource "google_project_iam_member" "runtime_aiplatform_user" {
  project = var.project_id
  role    = "roles/aiplatform.user"
  member  = local.runtime_member
}

# Outcome messages: publish on that one topic, only when configured.
resource "google_pubsub_topic_iam_member" "runtime_notify" {
  count = var.notify_topic == null ? 0 : 1

  topic  = var.notify_topic
  role   = "roles/pubsub.publisher"
  member = local.runtime_member
}

# ---------------------------------------------------------------------------------------------------
# Trigger: the identity Eventarc / Pub/Sub push uses to invoke the function
# ---------------------------------------------------------------------------------------------------

resource "google_service_account" "trigger" {
  project      = var.project_id
  account_id   = local.service_account_ids.trigger
  display_name = "${var.name} trigger"
  description  = "Delivers upload events to the model registrar function."

  depends_on = [google_project_service.required]
}

# Receiving Eventarc events from Cloud Storage (direct mode only; a Pub/Sub trigger needs no such role).
resource "google_project_iam_member" "trigger_event_receiver" {
  count = local.is_direct ? 1 : 0

  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = "serviceAccount:${google_service_account.trigger.email}"
}

# Invoke this function's Cloud Run service and nothing else.
resource "google_cloud_run_service_iam_member" "trigger_invoker" {
  project  = var.project_id
  location = google_cloudfunctions2_function.registrar.location
  service  = google_cloudfunctions2_function.registrar.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.trigger.email}"
}

# ---------------------------------------------------------------------------------------------------
# Cloud Storage service agent: publishes the events
# ---------------------------------------------------------------------------------------------------

data "google_storage_project_service_account" "gcs" {
  project = var.project_id
}

# direct: Eventarc creates its own transport topic, whose name is not known in advance, so the grant
# is project-wide (as Google's own storage-trigger setup does).
resource "google_project_iam_member" "gcs_pubsub_publisher" {
  count = local.is_direct ? 1 : 0

  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

# notification: publish on the uploads topic only.
resource "google_pubsub_topic_iam_member" "gcs_publishes_uploads" {
  count = local.is_direct ? 0 : 1

  topic  = google_pubsub_topic.uploads[0].id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

# ---------------------------------------------------------------------------------------------------
# Build: the identity Cloud Build uses to turn the source into an image
# ---------------------------------------------------------------------------------------------------
# Projects created after July 2024 no longer give the default build account (the Compute Engine
# default service account) broad rights, so builds fail there without one. A dedicated account avoids
# relying on (or widening) that default account. Pass build_service_account_email to bring your own.
#
# Its role is the one Google documents for building Cloud Run functions and source deployments,
# roles/run.builder: Artifact Registry upload/download/delete of artifacts, log writing, and object
# read (storage.objects.get) to fetch the source zip. The object read is project-wide: the account can
# read objects in the project's buckets, the watched one included (it runs only the build of this
# function's source, which the deployer controls). The alternative Google documents (Logs Writer +
# Artifact Registry Writer + Storage Object Admin) writes and deletes objects too. function.tf waits
# for this grant to propagate (time_sleep.iam_propagation) before the first build.

resource "google_service_account" "build" {
  count = var.build_service_account_email == null ? 1 : 0

  project      = var.project_id
  account_id   = local.service_account_ids.build
  display_name = "${var.name} build"
  description  = "Builds the model registrar function's image."

  depends_on = [google_project_service.required]
}

locals {
  build_service_account_email = coalesce(var.build_service_account_email, try(google_service_account.build[0].email, null))
  build_service_account_id    = "projects/${var.project_id}/serviceAccounts/${local.build_service_account_email}"
}

resource "google_project_iam_member" "build" {
  count = var.build_service_account_email == null ? 1 : 0

  project = var.project_id
  role    = "roles/run.builder"
  member  = "serviceAccount:${google_service_account.build[0].email}"
}
