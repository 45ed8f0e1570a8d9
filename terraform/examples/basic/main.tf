# Basic deployment of gcs-model-registrar: creates the bucket, deploys the function with a
# prefix-filtered bucket notification, and alerts on failures.
#
#   cd terraform/examples/basic
#   terraform init
#   terraform apply -var project_id=my-project -var bucket_name=my-project-models
#
#   # register a model: upload it under models/<model>/<version>/
#   gcloud storage cp model.keras gs://my-project-models/models/fraud-detector/v1/model.keras
#
#   # see what happened
#   gcloud logging read "$(terraform output -raw logs_filter)" --limit 10 --project my-project
#   gcloud ai models list --region us-central1 --project my-project
#
#   terraform destroy -var project_id=my-project -var bucket_name=my-project-models
#
# Set trigger_mode = "direct" to use an Eventarc storage trigger instead (no Pub/Sub topic, but every
# object written to the bucket invokes the function).

terraform {
  required_version = ">= 1.9"

  # The module's own pins (../../versions.tf), repeated so `terraform init` here picks the same.
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.50, < 7.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.7, < 3.0"
    }
    time = {
      source  = "hashicorp/time"
      version = ">= 0.13, < 1.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

variable "project_id" {
  description = "Project to deploy into."
  type        = string
}

variable "region" {
  description = "Region of the function, the bucket and the Vertex AI models."
  type        = string
  default     = "us-central1"
}

variable "bucket_name" {
  description = "Name of the bucket to create for model uploads (globally unique)."
  type        = string
}

variable "trigger_mode" {
  description = "notification (prefix-filtered, default) or direct (Eventarc storage trigger)."
  type        = string
  default     = "notification"
}

variable "alert_channels" {
  description = "Monitoring notification channel IDs for the failure alert."
  type        = list(string)
  default     = []
}

module "registrar" {
  source = "../.."

  project_id   = var.project_id
  region       = var.region
  bucket_name  = var.bucket_name
  trigger_mode = var.trigger_mode

  labels = { env = "example" }

  failure_alert = {
    channels = var.alert_channels
  }
}

output "upload_uri" {
  description = "Upload models under this URI."
  value       = module.registrar.upload_uri
}

output "function_name" {
  description = "Deployed function."
  value       = module.registrar.function_name
}

output "logs_filter" {
  description = "Cloud Logging filter for the function's outcomes."
  value       = module.registrar.logs_filter
}
