# The registrar at a glance: a Cloud Monitoring dashboard built from the log-based metrics of
# monitoring.tf and these: per-stage latency (the `timings` of every summary line), canary steps
# taken by the function (`deployment.state` of a registration's line) and the endpoint changes
# Vertex's own Admin Activity audit log records (`registrar canary promote/abort` and manual
# `registrar traffic/undeploy` run from an operator's machine, whose logs Cloud Logging never sees).

locals {
  # the stages a registration's summary line times (handlers/pipeline.py `timings`)
  timed_stages = toset(["resolve", "claim", "folder", "download", "validate", "hash", "publish", "register", "gate", "deploy", "record", "hand_off"])

  endpoint_audit = join(" AND ", [
    "protoPayload.serviceName=\"aiplatform.googleapis.com\"",
    "protoPayload.methodName=~\"EndpointService\\\\.(DeployModel|UndeployModel|UpdateEndpoint)$\"",
    "logName=\"projects/${var.project_id}/logs/cloudaudit.googleapis.com%2Factivity\"",
  ])

  metric_type = "logging.googleapis.com/user"

  dashboard_tiles = [
    {
      title  = "Registrations (per 5 min)"
      filter = "metric.type=\"${local.metric_type}/${google_logging_metric.outcomes.name}\" metric.label.outcome=\"registered\""
      group  = []
    },
    {
      title  = "Rejections by reason"
      filter = "metric.type=\"${local.metric_type}/${google_logging_metric.rejected.name}\""
      group  = ["metric.label.reason"]
    },
    {
      title  = "Failures (redelivered) and crashes"
      filter = "metric.type=\"${local.metric_type}/${google_logging_metric.failures.name}\""
      group  = []
    },
    {
      title  = "Canary steps by the function (started, replaced, deferred, skipped, failed)"
      filter = "metric.type=\"${local.metric_type}/${google_logging_metric.canary_steps.name}\""
      group  = ["metric.label.state"]
    },
    {
      title  = "Endpoint changes (Vertex audit log: promote, abort, traffic, undeploy)"
      filter = "metric.type=\"${local.metric_type}/${google_logging_metric.endpoint_changes.name}\""
      group  = ["metric.label.method"]
    },
  ]
}

resource "google_logging_metric" "stage_seconds" {
  for_each = local.timed_stages

  project     = var.project_id
  name        = "${var.name}/stage-seconds-${each.key}"
  description = "Seconds the ${each.key} stage of a registration took (${var.name})."
  filter      = "${local.function_logs} AND jsonPayload.timings.${each.key}:*"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "s"
  }

  value_extractor = "EXTRACT(jsonPayload.timings.${each.key})"

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 24
      growth_factor      = 2
      scale              = 0.01
    }
  }

  depends_on = [google_project_service.required]
}

resource "google_logging_metric" "canary_steps" {
  project     = var.project_id
  name        = "${var.name}/canary-steps"
  description = "Canary deployments the function started, replaced, deferred, skipped or failed to start (${var.name})."
  filter      = "${local.function_logs} AND jsonPayload.deployment.state:*"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    labels {
      key         = "state"
      value_type  = "STRING"
      description = "started, replaced, deferred, skipped or failed"
    }
    labels {
      key         = "role"
      value_type  = "STRING"
      description = "champion (first deployment on the endpoint) or canary"
    }
  }

  label_extractors = {
    state = "EXTRACT(jsonPayload.deployment.state)"
    role  = "EXTRACT(jsonPayload.deployment.role)"
  }

  depends_on = [google_project_service.required]
}

resource "google_logging_metric" "endpoint_changes" {
  project     = var.project_id
  name        = "${var.name}/endpoint-changes"
  description = "DeployModel, UndeployModel and UpdateEndpoint calls in the project (Vertex AI Admin Activity audit log): canary promotions and aborts by the CLI included."
  filter      = local.endpoint_audit

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    labels {
      key         = "method"
      value_type  = "STRING"
      description = "the EndpointService method"
    }
  }

  label_extractors = {
    method = "REGEXP_EXTRACT(protoPayload.methodName, \"EndpointService\\\\.(\\\\w+)$\")"
  }

  depends_on = [google_project_service.required]
}

resource "google_monitoring_dashboard" "registrar" {
  count = var.dashboard ? 1 : 0

  project = var.project_id
  dashboard_json = jsonencode({
    displayName = "${var.name}: model registrations"
    mosaicLayout = {
      columns = 12
      tiles = concat(
        [
          for i, tile in local.dashboard_tiles : {
            xPos   = (i % 2) * 6
            yPos   = floor(i / 2) * 4
            width  = 6
            height = 4
            widget = {
              title = tile.title
              xyChart = {
                dataSets = [{
                  plotType = "STACKED_BAR"
                  timeSeriesQuery = {
                    timeSeriesFilter = {
                      filter = tile.filter
                      aggregation = {
                        alignmentPeriod    = "300s"
                        perSeriesAligner   = "ALIGN_SUM"
                        crossSeriesReducer = "REDUCE_SUM"
                        groupByFields      = tile.group
                      }
                    }
                  }
                }]
              }
            }
          }
        ],
        [
          {
            xPos   = 0
            yPos   = ceil(length(local.dashboard_tiles) / 2) * 4
            width  = 12
            height = 4
            widget = {
              title = "Stage latency, 95th percentile (s)"
              xyChart = {
                dataSets = [
                  for stage in sort(tolist(local.timed_stages)) : {
                    plotType       = "LINE"
                    legendTemplate = stage
                    timeSeriesQuery = {
                      timeSeriesFilter = {
                        filter = "metric.type=\"${local.metric_type}/${google_logging_metric.stage_seconds[stage].name}\""
                        aggregation = {
                          alignmentPeriod    = "300s"
                          perSeriesAligner   = "ALIGN_DELTA"
                          crossSeriesReducer = "REDUCE_PERCENTILE_95"
                        }
                      }
                    }
                  }
                ]
              }
            }
          }
        ]
      )
    }
  })
}
