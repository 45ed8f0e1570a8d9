"""How the registrar marks what it creates in Vertex AI (models, evaluations, endpoints) as its own.

A leaf: every registry module may import it without an import circle.
"""

from __future__ import annotations

MANAGED_BY = "gcs-model-registrar"  # the `managed-by` label / `managedBy` metadata value
MANAGED_BY_LABEL = "managed-by"
