"""The one error hierarchy that decides *ack* versus *redeliver*.

The rule (python-docs-samples, functions/v2 retries): raise to be retried, return to acknowledge.
The pipeline's stages turn these into that decision (`Pipeline.handle_model` for model uploads,
`late.arrivals` for late files, each claim through `gcs.records.claimed`):

* `Rejected` / `PermanentError`  -> recorded once, acknowledged (2xx). Retrying can never help.
* `Superseded`                  -> acknowledged; the newer object generation has its own event.
* `Waiting`                     -> acknowledged; a later member event of the directory completes it.
* `TransientError`              -> re-raised after bounded in-process retries (5xx, redelivery).
* `PermissionDenied`            -> a `TransientError` without in-process retries: IAM grants take
                                   minutes to take effect, so a 403 is redelivered (for up to 24 h)
                                   and fixing IAM recovers every pending upload.
* `SandboxLayerMissing`         -> the same for the platform: a sandbox layer SANDBOX_REQUIRED_LAYERS
                                   names does not hold, so nothing is validated; fixing the platform
                                   (or the setting) recovers every pending upload.
"""

from __future__ import annotations


class RegistrarError(Exception):
    """Base class. `code` is a short stable machine-readable reason, `str(e)` is for people."""

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class PermanentError(RegistrarError):
    """Retrying cannot help (bad name, ambiguous model, a request Vertex refuses, ...). Not a
    permission failure: that is `PermissionDenied`, redelivered until IAM is fixed."""

    code = "permanent"


class Rejected(PermanentError):
    """The artifact itself is not acceptable (does not load, hostile, incomplete shards, ...).

    `code` is specific, e.g. ``keras.lambda_layer`` or ``savedmodel.missing_serving_default``;
    the message says what was expected, what was found, and what to do.
    """

    code = "rejected"


class Superseded(RegistrarError):
    """The event's object generation no longer exists: overwritten or deleted before we got to it."""

    code = "superseded"


class Waiting(RegistrarError):
    """A SavedModel directory is not complete yet; the event that completes it will register it."""

    code = "waiting"


class TransientError(RegistrarError):
    """Worth retrying: 429/5xx/UNAVAILABLE/DEADLINE_EXCEEDED, network errors, a live lease elsewhere."""

    code = "transient"


class SettingsError(ValueError):
    """A bad environment setting; the message names the variable."""


class PermissionDenied(TransientError):
    """A 403 from GCS or Vertex: not the artifact's fault, so never recorded as a rejection."""

    code = "permission_denied"

    def __init__(self, message: str, *, permission: str, resource: str) -> None:
        super().__init__(message)
        self.permission = permission
        self.resource = resource


class SandboxLayerMissing(TransientError):
    """A sandbox layer the settings require does not hold here: not the upload's fault, so never
    recorded; the event is redelivered."""

    code = "sandbox.layer_missing"

    def __init__(self, message: str, *, layers: dict[str, str]) -> None:
        super().__init__(message)
        self.layers = layers  # missing layer -> why, as the worker reported it
