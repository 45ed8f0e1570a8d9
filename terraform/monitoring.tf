# The function logs one JSON line per event (handlers/logs.py) with `severity` and `outcome`
# (registered, rejected, superseded, waiting, ignored, duplicate, malformed, failed); rejections carry
# their code in `reason`. These metrics count them; the alert fires on failures, which need a person.
# Rejections are logged at ERROR too but are the uploader's to fix, so they are not failures.

locals {
  function_logs = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=\"${var.name}\"",
  ])

  # One count per failed delivery: the function's own `failed` line. Crashes (uncaught exceptions,
  # start-up failures, out-of-memory kills) log no outcome, so ERROR lines without one count too, except
  # the Cloud Run request log: every failed delivery is also answered 5xx, and its request-log entry
  # (severity ERROR, no jsonPayload) would count that event a second time.
  request_log     = "projects/${var.project_id}/logs/run.googleapis.com%2Frequests"
  failures_filter = "(jsonPayload.outcome=\"failed\" OR (severity>=ERROR AND NOT jsonPayload.outcome:* AND NOT logName=\"${local.request_log}\"))"
}

resource "google_logging_metric" "outcomes" {
  project     = var.project_id
  name        = "${var.name}/outcomes"
  description = "Upload events handled by ${var.name}, by outcome."
  filter      = "${local.function_logs} AND jsonPayload.outcome:*"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    labels {
      key         = "outcome"
      value_type  = "STRING"
      description = "registered, rejected, superseded, waiting, ignored, duplicate, malformed or failed"
    }
  }

  label_extractors = {
    outcome = "EXTRACT(jsonPayload.outcome)"
  }

  depends_on = [google_project_service.required]
}

resource "google_logging_metric" "rejected" {
  project     = var.project_id
  name        = "${var.name}/rejected"
  description = "Uploads ${var.name} refused to register (the upload is at fault; see jsonPayload.reason)."
  filter      = "${local.function_logs} AND jsonPayload.outcome=\"rejected\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    labels {
      key         = "reason"
      value_type  = "STRING"
      description = "Machine-readable rejection reason, e.g. keras.lambda_layer"
    }
  }

  label_extractors = {
    reason = "EXTRACT(jsonPayload.reason)"
  }

  depends_on = [google_project_service.required]
}

resource "google_logging_metric" "failures" {
  project     = var.project_id
  name        = "${var.name}/failures"
  description = "Events ${var.name} failed to handle (retried by the trigger), plus crashes: ERROR lines without an outcome (uncaught exceptions, start-up failures)."
  filter      = "${local.function_logs} AND ${local.failures_filter}"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }

  depends_on = [google_project_service.required]
}

# Instances that started without Landlock (gVisor, Cloud Run's first generation): the function's start-up
# WARNING (handlers/hardening.py). Validation goes on (Landlock is not required by default) and every
# record notes it under validation.sandbox_layers; this counts where it happened.
resource "google_logging_metric" "landlock_missing" {
  project     = var.project_id
  name        = "${var.name}/landlock-missing"
  description = "Instances of ${var.name} that started on a kernel without Landlock (the sandbox runs without its file-system layer)."
  filter      = "${local.function_logs} AND jsonPayload.sandbox_layer_missing=\"landlock\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }

  depends_on = [google_project_service.required]
}

# Cloud Monitoring answers 404 "Cannot find metric(s)... could take up to 10 minutes" for an alert on a
# log-based metric created moments before (terraform-provider-google#11102), so the first apply waits
# in between. Nothing else depends on the policy, so the wait overlaps the function's build. Replaced
# (and waited for again) whenever the metric is replaced.
resource "time_sleep" "failures_metric" {
  count = var.failure_alert.enabled ? 1 : 0

  create_duration = "${var.failure_alert.metric_wait_seconds}s"

  triggers = {
    metric = google_logging_metric.failures.id
  }
}

resource "google_monitoring_alert_policy" "failures" {
  count = var.failure_alert.enabled ? 1 : 0

  project               = var.project_id
  display_name          = "${var.name}: model registration failures"
  combiner              = "OR"
  notification_channels = var.failure_alert.channels
  user_labels           = local.labels

  conditions {
    display_name = "failures > ${var.failure_alert.threshold} in 5 min"

    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.failures.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.failure_alert.threshold
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      ${var.name} failed to handle upload events. Failed events are redelivered for up to 24 h, then dropped.
      Logs: ${local.function_logs} AND ${local.failures_filter}
    EOT
  }

  depends_on = [time_sleep.failures_metric]
}
