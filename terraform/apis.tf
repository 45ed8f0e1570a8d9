locals {
  apis = [
    "aiplatform.googleapis.com",       # model registry
    "artifactregistry.googleapis.com", # function images
    "cloudbuild.googleapis.com",       # function builds
    "cloudfunctions.googleapis.com",
    "eventarc.googleapis.com",
    "iam.googleapis.com", # service accounts, custom build account
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com", # event transport in both trigger modes
    "run.googleapis.com",    # 2nd-gen functions run on Cloud Run
    "storage.googleapis.com",
  ]
}

resource "google_project_service" "required" {
  for_each = var.enable_apis ? toset(local.apis) : toset([])

  project = var.project_id
  service = each.value

  # Other workloads in the project may use these APIs; tearing this module down must not break them.
  disable_on_destroy         = false
  disable_dependent_services = false
}
