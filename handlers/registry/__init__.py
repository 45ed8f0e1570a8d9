"""Registry: the ModelRegistry interface, version lineage, and the Vertex AI implementation."""
