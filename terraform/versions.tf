terraform {
  # 1.5: strcontains() in variable validation; optional() object attributes need 1.3.
  required_version = ">= 1.5"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 6.x: google_cloudfunctions2_function with event_trigger.retry_policy,
      # service_config.available_cpu and google_storage_bucket.public_access_prevention.
      version = ">= 6.0, < 8.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4, < 3.0"
    }
  }
}
