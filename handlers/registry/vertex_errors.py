"""Vertex AI failures in the registrar's vocabulary (handlers/errors.py): ack or redeliver.

`translate` maps what the SDK raises (google.api_core / google.auth / requests exceptions, for the
REST transport) to `TransientError` (worth retrying) or a `PermanentError` whose message says what
to do. The SDK's exception modules are imported only when a failure is translated.
"""

from __future__ import annotations

from ..errors import PermanentError, PermissionDenied, RegistrarError, TransientError
from .interface import ModelNotFound

# The IAM permission each RPC needs (cloud.google.com/vertex-ai/docs/general/access-control).
_PERMISSIONS = {
    "UploadModel": "aiplatform.models.upload",
    "GetModel": "aiplatform.models.get",
    "ListModels": "aiplatform.models.list",
    "ListModelVersions": "aiplatform.models.list",
    "MergeVersionAliases": "aiplatform.models.update",
    "DeleteModelVersion": "aiplatform.models.delete",
    "ImportModelEvaluation": "aiplatform.modelEvaluations.import",
    "GetModelEvaluation": "aiplatform.modelEvaluations.get",
    "ListModelEvaluations": "aiplatform.modelEvaluations.list",
}


class AlreadyExists(PermanentError):
    code = "already_exists"


class UploadInterrupted(TransientError):
    """An upload's outcome is unknown; only a fresh lookup may decide whether to upload again."""

    code = "vertex_unavailable"


class OperationPending(TransientError):
    """UploadModel was accepted but had not finished when the run's time was up.

    Not retried in-process (a second upload could duplicate the version): the claim is kept, so
    redeliveries wait out its lease, by when the upload-key lookup finds the finished version.
    """

    code = "vertex_operation_pending"


def is_transient(exc: BaseException) -> bool:
    """Worth an in-process retry; a 403 is not (it is redelivered: IAM takes minutes)."""
    return isinstance(exc, TransientError) and not isinstance(exc, PermissionDenied)


def translate(exc: BaseException, action: str, project: str) -> RegistrarError | None:
    """The registrar error for an SDK failure of `action` (an RPC name); None if not Vertex's."""
    import requests
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth

    message = (getattr(exc, "message", None) or str(exc)).rstrip(".")
    if isinstance(
        exc,
        (api.Aborted, api.TooManyRequests, api.Cancelled, api.RetryError, auth.TransportError),
    ) or (isinstance(exc, api.ServerError) and not isinstance(exc, api.MethodNotImplemented)):
        return TransientError(f"Vertex AI {action} failed: {message}", code="vertex_unavailable")
    if isinstance(exc, (requests.RequestException, ConnectionError, TimeoutError)):
        return TransientError(
            f"Vertex AI {action} did not answer: {exc}", code="vertex_unreachable"
        )
    if isinstance(exc, api.Conflict):
        return AlreadyExists(f"Vertex AI {action}: {message}")
    if isinstance(exc, api.NotFound):
        return ModelNotFound(f"Vertex AI {action}: {message}")
    if isinstance(exc, (api.Forbidden, auth.RefreshError, auth.DefaultCredentialsError)):
        permission = _PERMISSIONS.get(action, f"the permission for {action}")
        return PermissionDenied(
            f"Vertex AI refused {action}: {permission} on project {project} is missing "
            f"({message}). Grant the function's runtime service account roles/aiplatform.user "
            "and check the Vertex AI API is enabled; the event is redelivered until it works.",
            permission=permission,
            resource=f"projects/{project}",
        )
    if isinstance(exc, api.GoogleAPICallError):
        return PermanentError(
            f"Vertex AI rejected {action} ({exc.code}): {message}. The request itself must change; "
            "retrying will not help.",
            code="vertex_rejected",
        )
    return None
