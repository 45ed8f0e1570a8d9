terraform {
  # 1.9: variable validation may refer to other variables (min_instance_count <= max_instance_count,
  # bucket_location = vertex_location); optional() object attributes need 1.3, strcontains() 1.5.
  required_version = ">= 1.9"

  # Each lower bound is the provider version whose schema tests/terraform/test_tf_schema.py checks
  # every argument and block against (from the cdktf prebuilt provider packages dev/tf-tools.sh
  # pins); within a major version providers only add arguments, so later minors keep working.
  required_providers {
    google = {
      source = "hashicorp/google"
      # google 7.x is not covered: no schema package exists for it to check against.
      version = ">= 6.50, < 7.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.7, < 3.0"
    }
    # time_sleep: waits for eventually consistent IAM grants and log-based metrics (first apply).
    time = {
      source  = "hashicorp/time"
      version = ">= 0.13, < 1.0"
    }
  }
}
