# ---------------------------------------------------------------------------------------------------
# Where
# ---------------------------------------------------------------------------------------------------

variable "project_id" {
  description = "Project that hosts the function, its service accounts and the Vertex AI models."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6-30 lowercase letters, digits or hyphens, starting with a letter), not a project number or display name."
  }
}

variable "region" {
  description = "Region of the function (and of the created bucket unless bucket_location says otherwise)."
  type        = string
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Cloud Functions region such as \"us-central1\"."
  }
}

variable "vertex_location" {
  description = "Vertex AI region the models are registered in (VERTEX_LOCATION). null: same as region. The watched bucket holds the artifacts Vertex reads, so it must be in this region too."
  type        = string
  default     = null

  validation {
    condition     = var.vertex_location == null || can(regex("^[a-z]+-[a-z]+[0-9]+$", var.vertex_location))
    error_message = "vertex_location must be a Vertex AI region such as \"us-central1\"."
  }
}

variable "name" {
  description = "Base name of the function and of every resource this module creates (service accounts get -run, -trg, -bld suffixes)."
  type        = string
  default     = "model-registrar"

  validation {
    # Service account IDs are <name>-run etc. and may be at most 30 characters.
    condition     = can(regex("^[a-z][a-z0-9-]{1,24}[a-z0-9]$", var.name))
    error_message = "name must be 3-26 lowercase letters, digits or hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "labels" {
  description = "Labels added to every resource that takes labels (merged over app and managed-by)."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))
    ])
    error_message = "labels: keys must be 1-63 lowercase letters, digits, _ or -, starting with a letter; values at most 63 of the same characters."
  }
}

variable "enable_apis" {
  description = "Enable the required Google APIs in the project (never disabled on destroy)."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------------------------------
# The watched bucket
# ---------------------------------------------------------------------------------------------------

variable "bucket_name" {
  description = "Bucket that receives model uploads and holds the artifact and state prefixes."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a bucket name: 3-63 lowercase letters, digits, dots, hyphens or underscores."
  }
}

variable "create_bucket" {
  description = "true: create bucket_name (uniform access, public access prevention, versioning). false: use an existing bucket; IAM is still granted on its prefixes only."
  type        = bool
  default     = true
}

variable "bucket_location" {
  description = "Location of the created bucket. null: the Vertex AI location (vertex_location, else region). Vertex AI only reads artifacts from a bucket in its own region, so any other value is rejected; it exists to spell the location out."
  type        = string
  default     = null

  validation {
    # Cross-variable validation (Terraform 1.9). An existing bucket is checked in bucket.tf instead.
    condition     = !var.create_bucket || var.bucket_location == null || lower(coalesce(var.bucket_location, "-")) == lower(coalesce(var.vertex_location, var.region))
    error_message = "bucket_location must equal the Vertex AI location (vertex_location, else region): Vertex AI refuses model artifacts in a bucket in another region. Leave it null to follow vertex_location."
  }
}

variable "bucket_force_destroy" {
  description = "Let `terraform destroy` delete the created bucket with every model, artifact and record in it."
  type        = bool
  default     = false
}

variable "noncurrent_version_retention_days" {
  description = "Days a noncurrent (overwritten) object version is kept in the buckets this module creates."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_retention_days >= 1
    error_message = "noncurrent_version_retention_days must be at least 1."
  }
}

variable "access_log_bucket" {
  description = "Bucket receiving usage logs of the buckets this module creates. null: none (Cloud Audit Logs still apply)."
  type        = string
  default     = null
}

variable "source_bucket_name" {
  description = "Bucket created for the function's source archives. null: <project_id>-<name>-source (or -src when that would exceed 63 characters)."
  type        = string
  default     = null

  validation {
    condition     = var.source_bucket_name == null || can(regex("^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$", coalesce(var.source_bucket_name, "-")))
    error_message = "source_bucket_name must be 3-63 lowercase letters, digits, hyphens or underscores, starting and ending with a letter or digit."
  }
}

# ---------------------------------------------------------------------------------------------------
# Object layout (the same settings the code reads; defaults equal the code's)
# ---------------------------------------------------------------------------------------------------

variable "model_prefix" {
  description = "Object-name prefix watched for uploads (MODEL_PREFIX), e.g. models/<model>/<version>/model.keras."
  type        = string
  default     = "models/"

  validation {
    condition     = can(regex("^[^/\\s\"\\\\][^\\r\\n\"\\\\]*/$", var.model_prefix)) && !strcontains(var.model_prefix, "//")
    error_message = "model_prefix must be an object-name prefix ending in '/', such as \"models/\" (no leading slash, no empty segments, no quotes)."
  }
}

variable "model_path_pattern" {
  description = "Regex with a named group `model` (and optionally `version`) overriding the default naming (MODEL_PATH_PATTERN). null: the code's default layout."
  type        = string
  default     = null

  validation {
    condition     = var.model_path_pattern == null || can(regex("\\(\\?P<model>", var.model_path_pattern))
    error_message = "model_path_pattern must contain a named group (?P<model>...)."
  }
}

variable "artifact_prefix" {
  description = "Prefix the function writes validated, immutable artifact copies under (ARTIFACT_PREFIX). Must not overlap model_prefix."
  type        = string
  default     = "registered/"

  validation {
    condition     = can(regex("^[^/\\s\"\\\\][^\\r\\n\"\\\\]*/$", var.artifact_prefix)) && !strcontains(var.artifact_prefix, "//")
    error_message = "artifact_prefix must be an object-name prefix ending in '/', such as \"registered/\"."
  }
}

variable "state_prefix" {
  description = "Prefix of the per-upload records (claims, outcomes) the function writes (STATE_PREFIX). Must not overlap the others."
  type        = string
  default     = "registrar-state/"

  validation {
    condition     = can(regex("^[^/\\s\"\\\\][^\\r\\n\"\\\\]*/$", var.state_prefix)) && !strcontains(var.state_prefix, "//")
    error_message = "state_prefix must be an object-name prefix ending in '/', such as \"registrar-state/\"."
  }
}

# ---------------------------------------------------------------------------------------------------
# Registration behaviour
# ---------------------------------------------------------------------------------------------------

variable "serving_image" {
  description = "Serving container image registered with every model version (SERVING_CONTAINER_IMAGE_URI). null: TensorFlow Serving (tf_serving_version) through an Artifact Registry remote repository of Docker Hub that this module creates (serving_image.tf). A Vertex prebuilt image (e.g. us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest) is refused after its end of availability."
  type        = string
  default     = null

  validation {
    condition     = var.serving_image == null || (length(trimspace(coalesce(var.serving_image, "-"))) > 0 && !strcontains(coalesce(var.serving_image, "-"), " "))
    error_message = "serving_image must be a container image URI."
  }
}

variable "tf_serving_version" {
  description = "TensorFlow Serving release (Docker Hub tag of tensorflow/serving) served when serving_image is null; uploads are checked against that TensorFlow's ops."
  type        = string
  default     = "2.20.0"

  validation {
    condition     = can(regex("^2\\.[0-9]{1,2}\\.[0-9]+$", var.tf_serving_version))
    error_message = "tf_serving_version must be a TensorFlow Serving release such as \"2.20.0\"."
  }
}

variable "serving_repository_id" {
  description = "Artifact Registry repository (remote, proxying Docker Hub) created for the TensorFlow Serving image when serving_image is null."
  type        = string
  default     = "tensorflow-serving"

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", var.serving_repository_id))
    error_message = "serving_repository_id must be 1-63 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "default_version_policy" {
  description = "`new`: each newly registered version takes the `default` alias; `keep`: leave the alias where it is (DEFAULT_VERSION_POLICY)."
  type        = string
  default     = "new"

  validation {
    condition     = contains(["new", "keep"], var.default_version_policy)
    error_message = "default_version_policy must be \"new\" or \"keep\"."
  }
}

variable "allow_cross_folder_models" {
  description = "false: a model belongs to the top-level folder under model_prefix its first version came from (the prefix itself for flat uploads), and an upload from another folder naming it is rejected; true: any folder may add versions (ALLOW_CROSS_FOLDER_MODELS)."
  type        = bool
  default     = false
}

variable "promotion" {
  description = <<-EOT
    Which newly registered version takes the `default` alias, judged by an evaluation metric of the
    upload. Every attribute left null keeps the code's default:
    metric (PROMOTION_METRIC) [unset: every new version takes default],
    goal (PROMOTION_GOAL) [maximize; or minimize],
    min_delta (PROMOTION_MIN_DELTA) [0: how much better than the current default it must be],
    threshold (PROMOTION_THRESHOLD) [unset: the value the metric must reach at least (maximize) or
    at most (minimize)].
  EOT
  type = object({
    metric    = optional(string)
    goal      = optional(string)
    min_delta = optional(number)
    threshold = optional(number)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.promotion.metric == null || can(regex("^[A-Za-z_][A-Za-z0-9_.-]{0,127}$", coalesce(var.promotion.metric, "-")))
    error_message = "promotion.metric must be a metric name: 1-128 letters, digits or _ . -, starting with a letter or _."
  }
  validation {
    condition     = var.promotion.goal == null || contains(["maximize", "minimize"], coalesce(var.promotion.goal, "maximize"))
    error_message = "promotion.goal must be \"maximize\" or \"minimize\"."
  }
  validation {
    condition     = var.promotion.min_delta == null || coalesce(var.promotion.min_delta, 0) >= 0
    error_message = "promotion.min_delta cannot be negative."
  }
  validation {
    condition     = var.promotion.metric != null || (var.promotion.goal == null && var.promotion.min_delta == null && var.promotion.threshold == null)
    error_message = "promotion.goal, min_delta and threshold only apply with promotion.metric set."
  }
}

variable "deploy" {
  description = <<-EOT
    Canary deployment of each version that becomes the default, on the model's own endpoint.
    endpoint (DEPLOY_ENDPOINT): a template with {model} (the model's id), e.g. "serving-{model}",
    or one endpoint ID / projects/P/locations/L/endpoints/ID (then only one model can use it), in
    the Vertex AI location [unset: nothing is deployed]; traffic_percent (DEPLOY_TRAFFIC): the
    canary's share, 1-100 [10]; wait_seconds (DEPLOY_WAIT_SECONDS): how long a run waits for the
    deployment to land to finish replacing the older canary, 0-480 [60]. The runtime account's
    roles/aiplatform.user covers aiplatform.endpoints.deploy.
  EOT
  type = object({
    endpoint        = optional(string)
    traffic_percent = optional(number)
    wait_seconds    = optional(number)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.deploy.endpoint == null || can(regex("^(projects/[^/]+/locations/[^/]+/endpoints/)?([A-Za-z0-9_-]|[{]model[}])+$", coalesce(var.deploy.endpoint, "-")))
    error_message = "deploy.endpoint must be a Vertex AI endpoint ID, projects/P/locations/L/endpoints/ID, or a template of one with {model}."
  }
  validation {
    condition     = var.deploy.wait_seconds == null || (floor(coalesce(var.deploy.wait_seconds, 60)) == coalesce(var.deploy.wait_seconds, 60) && coalesce(var.deploy.wait_seconds, 60) >= 0 && coalesce(var.deploy.wait_seconds, 60) <= 480)
    error_message = "deploy.wait_seconds must be a whole number from 0 to 480."
  }
  validation {
    condition     = var.deploy.traffic_percent == null || (floor(coalesce(var.deploy.traffic_percent, 10)) == coalesce(var.deploy.traffic_percent, 10) && coalesce(var.deploy.traffic_percent, 10) >= 1 && coalesce(var.deploy.traffic_percent, 10) <= 100)
    error_message = "deploy.traffic_percent must be a whole number from 1 to 100."
  }
  validation {
    # Cross-variable (Terraform 1.9): a full endpoint name must be in the Vertex AI location.
    condition     = !startswith(coalesce(var.deploy.endpoint, "-"), "projects/") || split("/", coalesce(var.deploy.endpoint, "-/-/-/-"))[3] == coalesce(var.vertex_location, var.region)
    error_message = "deploy.endpoint must be in the Vertex AI location (vertex_location, else region)."
  }
  validation {
    condition     = var.deploy.endpoint != null || (var.deploy.traffic_percent == null && var.deploy.wait_seconds == null)
    error_message = "deploy.traffic_percent and deploy.wait_seconds only apply with deploy.endpoint set."
  }
}

variable "serving_tf_version" {
  description = "TensorFlow version (major.minor, e.g. \"2.15\") of the serving image, which uploads are checked against (SERVING_TF_VERSION). Needed for a custom serving_image; null: derived from the prebuilt image URI."
  type        = string
  default     = null

  validation {
    condition     = var.serving_tf_version == null || can(regex("^2\\.[0-9]{1,2}$", coalesce(var.serving_tf_version, "-")))
    error_message = "serving_tf_version must be a TensorFlow 2 minor version such as \"2.15\"."
  }
}

variable "notify_topic" {
  description = "Existing Pub/Sub topic (projects/P/topics/T) that receives one message per outcome (NOTIFY_TOPIC). The runtime account gets publish on it alone. null: no messages."
  type        = string
  default     = null

  validation {
    condition     = var.notify_topic == null || can(regex("^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/topics/[A-Za-z][A-Za-z0-9._~+%-]{2,254}$", var.notify_topic))
    error_message = "notify_topic must be a full topic name: projects/PROJECT/topics/TOPIC."
  }
}

variable "log_level" {
  description = "Function log level (LOG_LEVEL)."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "asgi_server" {
  description = "Serve events with functions-framework's uvicorn (ASGI) server (FUNCTION_USE_ASGI): objects that are not models are answered on the event loop, ~4x the events/s of gunicorn + Flask. false: the Flask server, which also accepts the legacy 1st-gen event shape."
  type        = bool
  default     = true
}

variable "keras_extra_allowed_objects" {
  description = "Extra custom objects a .keras config may reference (KERAS_EXTRA_ALLOWED_OBJECTS): registered names `package>ClassName` (what @keras.saving.register_keras_serializable writes) or `module.ClassName`. Every entry widens what a hostile upload can instantiate."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for o in var.keras_extra_allowed_objects : can(regex("^([A-Za-z_][A-Za-z0-9_.]*\\.[A-Za-z_][A-Za-z0-9_]*|[A-Za-z_][A-Za-z0-9_.-]*>[A-Za-z_][A-Za-z0-9_]*)$", o))])
    error_message = "Every keras_extra_allowed_objects entry must look like package>ClassName (a registered name) or module.path.ClassName."
  }
}

variable "keras_hub" {
  description = "Allow KerasHub's registered classes in .keras files (KERAS_HUB=true) and deploy KerasHub with the function (requirements-kerashub.txt is appended to the archived requirements.txt). The build resolves keras-hub's declared dependencies, which include tensorflow-text and the full tensorflow wheel: a larger image (README: KerasHub (opt-in))."
  type        = bool
  default     = false
}

variable "keras_custom_object_modules" {
  description = "Modules the validation sandbox imports before loading a .keras (KERAS_CUSTOM_OBJECT_MODULES), so that the custom objects they register (keras_extra_allowed_objects) load. They must be deployed with the function (a package in requirements.txt or a module next to main.py)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.keras_custom_object_modules : can(regex("^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)*$", m))])
    error_message = "Every keras_custom_object_modules entry must be a module name (a.b.c)."
  }
}

variable "limits" {
  description = <<-EOT
    Validation limits; an attribute left null keeps the code's default (shown in brackets):
    claim_lease_seconds [900], max_artifact_bytes [10 GB], max_uncompressed_bytes [12 GB],
    max_compression_ratio [200], max_archive_members [10000], validation_timeout_seconds [300],
    validation_memory_mb [80% of the instance's memory], validator_max_uses [50],
    directory_upload_window_seconds [3600].
  EOT
  type = object({
    claim_lease_seconds        = optional(number)
    max_artifact_bytes         = optional(number)
    max_uncompressed_bytes     = optional(number)
    max_compression_ratio      = optional(number)
    max_archive_members        = optional(number)
    validation_timeout_seconds = optional(number)
    validation_memory_mb       = optional(number)
    validator_max_uses         = optional(number)
    # A SavedModel's files must all be written within this window (seconds).
    directory_upload_window_seconds = optional(number)
  })
  default  = {}
  nullable = false

  validation {
    condition = alltrue([
      var.limits.claim_lease_seconds == null ? true : var.limits.claim_lease_seconds >= 30,
      var.limits.max_artifact_bytes == null ? true : var.limits.max_artifact_bytes >= 1024,
      var.limits.max_uncompressed_bytes == null ? true : var.limits.max_uncompressed_bytes >= 1024,
      var.limits.max_compression_ratio == null ? true : var.limits.max_compression_ratio >= 1,
      var.limits.max_archive_members == null ? true : var.limits.max_archive_members >= 3,
      var.limits.validation_timeout_seconds == null ? true : var.limits.validation_timeout_seconds >= 5,
      var.limits.validation_memory_mb == null ? true : var.limits.validation_memory_mb >= 256,
      var.limits.validator_max_uses == null ? true : var.limits.validator_max_uses >= 1,
      var.limits.directory_upload_window_seconds == null ? true : var.limits.directory_upload_window_seconds >= 1,
    ])
    error_message = "A limit is below the code's minimum: claim_lease_seconds >= 30, max_artifact_bytes and max_uncompressed_bytes >= 1024, max_compression_ratio >= 1, max_archive_members >= 3, validation_timeout_seconds >= 5, validation_memory_mb >= 256, validator_max_uses >= 1, directory_upload_window_seconds >= 1."
  }
}

variable "sandbox_required_layers" {
  description = <<-EOT
    Sandbox layers without which the function does not validate (SANDBOX_REQUIRED_LAYERS): an upload
    is then redelivered with an ERROR naming the missing layer, and the failure alert fires. null: the
    code's default, seccomp, no_new_privs and non_dumpable (what both Cloud Run execution environments
    provide; gVisor has no Landlock). [] requires none. Add "landlock" only where the execution
    environment is known to be the second generation (a Cloud Run service, not a function).
  EOT
  type        = list(string)
  default     = null

  validation {
    condition = var.sandbox_required_layers == null ? true : alltrue([
      for layer in var.sandbox_required_layers :
      contains(["seccomp", "no_new_privs", "non_dumpable", "landlock", "caps_dropped", "securebits", "rlimits"], layer)
    ])
    error_message = "sandbox_required_layers: each entry must be one of seccomp, no_new_privs, non_dumpable, landlock, caps_dropped, securebits, rlimits."
  }
}

variable "job" {
  description = <<-EOT
    The Cloud Run job that takes the uploads the function cannot (HANDOFF_BYTES or the run's
    deadline) and runs fleet backfills (`registrar backfill --job-tasks N`). It runs the image the
    function's own build produced, so both always run the same code. Attributes (code default or
    module default in brackets): enabled [false: over-threshold uploads are rejected, naming
    JOB_NAME], memory [32Gi], cpu [8], timeout_seconds (JOB_TIMEOUT_SECONDS) [3600],
    max_retries [3], handoff_bytes (HANDOFF_BYTES) [(function memory - 0.75 GiB) / 2.1],
    handoff_lease_seconds (HANDOFF_LEASE_SECONDS) [14400].
  EOT
  type = object({
    enabled               = optional(bool, false)
    memory                = optional(string, "32Gi")
    cpu                   = optional(string, "8")
    timeout_seconds       = optional(number, 3600)
    max_retries           = optional(number, 3)
    handoff_bytes         = optional(number)
    handoff_lease_seconds = optional(number)
  })
  default  = {}
  nullable = false

  validation {
    condition = alltrue([
      contains(["2Gi", "4Gi", "8Gi", "16Gi", "24Gi", "32Gi"], var.job.memory),
      contains(["1", "2", "4", "6", "8"], var.job.cpu),
      var.job.timeout_seconds >= 60 && var.job.timeout_seconds <= 604800,
      var.job.max_retries >= 0 && var.job.max_retries <= 10,
      var.job.handoff_bytes == null ? true : var.job.handoff_bytes >= 1,
      var.job.handoff_lease_seconds == null ? true : var.job.handoff_lease_seconds > var.job.timeout_seconds,
    ])
    error_message = "job: memory one of 2Gi..32Gi, cpu one of 1, 2, 4, 6, 8, timeout_seconds 60-604800 (168 h), max_retries 0-10, handoff_bytes >= 1, handoff_lease_seconds above timeout_seconds."
  }
}

variable "temp_dir" {
  description = "Scratch directory for downloads (TEMP_DIR). null: the system temp dir, which on Cloud Functions is in memory."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------------------------------
# The function
# ---------------------------------------------------------------------------------------------------

variable "memory" {
  description = "Instance memory. TensorFlow plus one artifact in the in-memory /tmp needs at least 4Gi; 8Gi and up get 2+ vCPU."
  type        = string
  default     = "8Gi"

  validation {
    condition     = contains(["4Gi", "8Gi", "16Gi", "32Gi"], var.memory)
    error_message = "memory must be one of 4Gi, 8Gi, 16Gi, 32Gi."
  }
}

variable "cpu" {
  description = "vCPUs per instance. null: the minimum Cloud Functions allows for memory (4Gi: 1, 8Gi: 2, 16Gi: 4, 32Gi: 8)."
  type        = string
  default     = null

  validation {
    condition     = var.cpu == null || contains(["1", "2", "4", "6", "8"], coalesce(var.cpu, "1"))
    error_message = "cpu must be one of \"1\", \"2\", \"4\", \"6\", \"8\"."
  }
}

variable "timeout_seconds" {
  description = "Per-event timeout; 540 is the maximum for event-driven functions. Also the function's FUNCTION_TIMEOUT_SECONDS (its waits end inside it). Must exceed the validation timeout and be below the claim lease."
  type        = number
  default     = 540

  validation {
    condition     = var.timeout_seconds >= 60 && var.timeout_seconds <= 540
    error_message = "timeout_seconds must be between 60 and 540 (the event-driven maximum)."
  }
}

variable "max_instance_count" {
  description = "Upper bound on concurrent instances (each validates one artifact at a time)."
  type        = number
  default     = 5

  validation {
    condition     = var.max_instance_count >= 1 && var.max_instance_count <= 100
    error_message = "max_instance_count must be between 1 and 100."
  }
}

variable "min_instance_count" {
  description = "Instances kept warm (billed while idle). 0 scales to zero. At most max_instance_count."
  type        = number
  default     = 0

  validation {
    condition     = var.min_instance_count >= 0 && var.min_instance_count <= var.max_instance_count
    error_message = "min_instance_count must be between 0 and max_instance_count."
  }
}

variable "source_dir" {
  description = "Repository root the function source is packaged from (main.py, requirements.txt, handlers/). null: the directory above this module."
  type        = string
  default     = null
}

variable "build_service_account_email" {
  description = "Existing service account Cloud Build uses to build the function; it needs roles/run.builder (or Logs Writer, Artifact Registry Writer and Storage Object Admin). null: the module creates one with roles/run.builder."
  type        = string
  default     = null

  validation {
    condition     = var.build_service_account_email == null || can(regex("^[a-z0-9][a-z0-9-]{0,62}@[a-z0-9.-]+\\.gserviceaccount\\.com$", coalesce(var.build_service_account_email, "-")))
    error_message = "build_service_account_email must be a service account email, e.g. builder@my-project.iam.gserviceaccount.com."
  }
}

# ---------------------------------------------------------------------------------------------------
# Trigger
# ---------------------------------------------------------------------------------------------------

variable "trigger_mode" {
  description = <<-EOT
    How uploads reach the function.
    direct: Eventarc google.cloud.storage.object.v1.finalized on the bucket. Simple, but Eventarc cannot
      filter by prefix: every object written to the bucket (including the function's own artifacts and
      records) invokes the function, which ignores objects outside model_prefix.
    notification: a bucket notification filtered on model_prefix publishes to a topic this module
      creates; the function is triggered by google.cloud.pubsub.topic.v1.messagePublished on it.
  EOT
  type        = string
  default     = "notification"

  validation {
    condition     = contains(["direct", "notification"], var.trigger_mode)
    error_message = "trigger_mode must be \"direct\" or \"notification\"."
  }
}

variable "upload_topic_name" {
  description = "Name of the topic created for trigger_mode = notification. null: <name>-uploads."
  type        = string
  default     = null

  validation {
    condition     = var.upload_topic_name == null || (can(regex("^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$", coalesce(var.upload_topic_name, "-"))) && !startswith(lower(coalesce(var.upload_topic_name, "-")), "goog"))
    error_message = "upload_topic_name must be a Pub/Sub topic ID: 3-255 letters, digits or ._~+%-, starting with a letter and not with \"goog\"."
  }
}

# ---------------------------------------------------------------------------------------------------
# Monitoring
# ---------------------------------------------------------------------------------------------------

variable "failure_alert" {
  description = <<-EOT
    Alert policy on the failures metric: enabled, channels (notification channel IDs), threshold
    (failures per 5 minutes above which it fires), metric_wait_seconds (how long the first apply
    waits between creating the log-based metric and the policy: Cloud Monitoring answers 404 for a
    new metric for up to 10 minutes, terraform-provider-google#11102; the wait runs alongside the
    function's build).
  EOT
  type = object({
    enabled             = optional(bool, true)
    channels            = optional(list(string), [])
    threshold           = optional(number, 0)
    metric_wait_seconds = optional(number, 300)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.failure_alert.threshold >= 0
    error_message = "failure_alert.threshold cannot be negative."
  }

  validation {
    condition     = var.failure_alert.metric_wait_seconds >= 0 && var.failure_alert.metric_wait_seconds <= 900
    error_message = "failure_alert.metric_wait_seconds must be between 0 and 900."
  }
}

variable "dashboard" {
  description = "Create a Cloud Monitoring dashboard of registrations, rejections by reason, failures, per-stage latency and canary steps (dashboard.tf)."
  type        = bool
  default     = true
  nullable    = false
}
