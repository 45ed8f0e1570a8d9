# Two ways to deliver uploads (var.trigger_mode):
#
# direct        Eventarc google.cloud.storage.object.v1.finalized, filtered on the bucket. Eventarc
#               cannot filter on a prefix, so every object finalized in the bucket invokes the function.
# notification  A bucket notification (OBJECT_FINALIZE, object_name_prefix = model_prefix) publishes the
#               object resource to a topic; the function is triggered by
#               google.cloud.pubsub.topic.v1.messagePublished on it. Only uploads under the prefix cost
#               an invocation.
#
# Both deliver at least once with retries (RETRY_POLICY_RETRY in function.tf).

locals {
  event_type = local.is_direct ? "google.cloud.storage.object.v1.finalized" : "google.cloud.pubsub.topic.v1.messagePublished"

  # A storage trigger must live in the bucket's location; a Pub/Sub trigger lives with the function.
  trigger_region = local.is_direct ? local.bucket_location : var.region

  upload_topic_name = coalesce(var.upload_topic_name, "${var.name}-uploads")
}

resource "google_pubsub_topic" "uploads" {
  count = local.is_direct ? 0 : 1
  # checkov:skip=CKV_GCP_83:Messages carry object metadata only (names, sizes, hashes), no model data; Google-managed encryption suffices.

  project = var.project_id
  name    = local.upload_topic_name
  labels  = local.labels

  # No topic-level message_retention_duration: it is billed as storage, and the subscription Eventarc
  # creates for the trigger already keeps undelivered messages (acknowledged events are never replayed).

  depends_on = [google_project_service.required]
}

resource "google_storage_notification" "uploads" {
  count = local.is_direct ? 0 : 1

  bucket             = local.bucket_name
  topic              = google_pubsub_topic.uploads[0].id
  payload_format     = "JSON_API_V1"
  event_types        = ["OBJECT_FINALIZE"]
  object_name_prefix = var.model_prefix

  # GCS checks at creation that its service agent may publish to the topic.
  depends_on = [google_pubsub_topic_iam_member.gcs_publishes_uploads]
}
