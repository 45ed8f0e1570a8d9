# The serving image every registered version names (SERVING_CONTAINER_IMAGE_URI).
#
# Default: the official TensorFlow Serving image (Docker Hub `tensorflow/serving:<version>`) served
# by Vertex AI as a custom container. Vertex pulls custom images only from Artifact Registry, so
# the module creates a *remote* repository in the Vertex region that proxies Docker Hub (pulled
# and cached on first use) and grants the Vertex AI service agent read on it. Vertex's prebuilt
# TensorFlow images (tf2-cpu.2-15, the newest) reach end of availability on 2027-01-14
# (handlers/serving_images.py lists every date and its source).
#
# Where a remote repository is impossible (an organisation policy restricting remote repositories,
# or no egress to Docker Hub), set var.serving_image to an image you copied into a standard
# Artifact Registry repository (README: "Serving images"); nothing is created here then.

# (local.serving_image and local.create_serving_repository are in main.tf: provider-free locals.)

resource "google_artifact_registry_repository" "serving" {
  count = local.create_serving_repository ? 1 : 0

  project       = var.project_id
  location      = local.vertex_location
  repository_id = var.serving_repository_id
  description   = "Docker Hub proxy: the TensorFlow Serving image Vertex AI serves registered models with."
  format        = "DOCKER"
  mode          = "REMOTE_REPOSITORY"
  labels        = local.labels

  remote_repository_config {
    description = "Docker Hub"
    docker_repository {
      public_repository = "DOCKER_HUB"
    }
  }

  depends_on = [google_project_service.required]
}

data "google_project" "this" {
  project_id = var.project_id
}

# Vertex AI pulls the image as its service agent; read on this repository only.
resource "google_artifact_registry_repository_iam_member" "vertex_pulls_serving_image" {
  count = local.create_serving_repository ? 1 : 0

  project    = var.project_id
  location   = google_artifact_registry_repository.serving[0].location
  repository = google_artifact_registry_repository.serving[0].name
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-aiplatform.iam.gserviceaccount.com"
}
