"""gcs-model-registrar: GCS upload -> validated -> registered Vertex AI model version."""
