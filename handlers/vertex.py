"""`ModelRegistry` over the Vertex AI Model Registry (GAPIC `aiplatform_v1.ModelServiceClient`).

The SDK is imported lazily (~0.7 s): importing this module must stay cheap. Every primitive is
named after the API verb it wraps and returns plain dataclasses; `ensure_version` is the one
exactly-once composite built on them. Errors leave this module only as `PermanentError` or
`TransientError` (handlers/errors.py), with messages that say what to do.

REST is used in production as well as against the emulator: it is the transport the tests
exercise, and unlike gRPC it is safe next to the validator's forked subprocesses.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from handlers.errors import PermanentError, RegistrarError, TransientError
from handlers.registry_types import UPLOAD_KEY_LABEL, RegisteredVersion, VersionRequest

if TYPE_CHECKING:
    from handlers.settings import Settings

ALIAS_PATTERN = re.compile(r"[a-z][a-zA-Z0-9-]{0,126}[a-z0-9]")
DEFAULT_ALIAS = "default"
_VALID_MODEL_ID = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LOG = logging.getLogger(__name__)
T = TypeVar("T")


class ModelNotFound(PermanentError):
    code = "not_found"


class AlreadyExists(PermanentError):
    code = "already_exists"


class _UploadInterrupted(TransientError):
    """An upload's outcome is unknown; only a fresh lookup may decide whether to upload again."""


@dataclass(frozen=True)
class ModelVersionInfo:
    model: str  # projects/P/locations/L/models/ID
    version_id: str
    display_name: str
    aliases: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    artifact_uri: str = ""
    description: str = ""
    create_time: datetime | None = None

    @property
    def version_name(self) -> str:
        return f"{self.model}@{self.version_id}"

    @property
    def is_default(self) -> bool:
        return DEFAULT_ALIAS in self.aliases


@dataclass(frozen=True)
class RetryPolicy:
    """Short, bounded, in-process retries of transient failures (exponential backoff, jitter)."""

    attempts: int = 3
    initial: float = 0.2
    maximum: float = 2.0
    multiplier: float = 3.0
    sleep: Callable[[float], None] = time.sleep

    def delays(self) -> Iterator[float]:
        delay = self.initial
        for _ in range(self.attempts - 1):
            yield min(delay, self.maximum) * random.uniform(0.5, 1.0)
            delay *= self.multiplier


def model_id_for(display_name: str) -> str:
    """Deterministic Vertex model id for a display name (≤63 `[a-z0-9_-]`, starts with a letter).

    A name that is already a valid id is used as is; any other gets a short hash of the original
    appended, so two different names never map to the same id.
    """
    base = re.sub(r"[^a-z0-9_-]+", "-", display_name.lower()).strip("-_") or "model"
    if not base[0].isalpha():
        base = f"m-{base}"
    if base == display_name and _VALID_MODEL_ID.fullmatch(base):
        return base
    digest = hashlib.sha256(display_name.encode()).hexdigest()[:8]
    return f"{base[: 63 - 9].rstrip('-_')}-{digest}"


def make_registry(settings: Settings) -> VertexRegistry:
    """One client for the process: the emulator when `VERTEX_AI_EMULATOR_HOST` is set."""
    from google.cloud import aiplatform_v1

    if settings.vertex_emulator_host:
        from google.auth.credentials import AnonymousCredentials

        client = aiplatform_v1.ModelServiceClient(
            transport="rest",
            client_options={"api_endpoint": settings.vertex_emulator_host},
            credentials=AnonymousCredentials(),
        )
    else:  # application default credentials: the function's runtime service account
        client = aiplatform_v1.ModelServiceClient(
            transport="rest",
            client_options={"api_endpoint": f"{settings.location}-aiplatform.googleapis.com"},
        )
    return VertexRegistry(client, project=settings.project, location=settings.location)


class VertexRegistry:
    def __init__(
        self,
        client: Any,
        *,
        project: str,
        location: str,
        retry: RetryPolicy | None = None,
        rpc_timeout: float = 60.0,
        operation_timeout: float = 900.0,
        poll_initial: float = 1.0,
    ) -> None:
        self._client = client
        self._project = project
        self.parent = f"projects/{project}/locations/{location}"
        self._retry = retry or RetryPolicy()
        self._rpc_timeout = rpc_timeout
        self._operation_timeout = operation_timeout
        self._poll_initial = poll_initial

    def model_name(self, model: str) -> str:
        return model if model.startswith("projects/") else f"{self.parent}/models/{model}"

    # ---- primitives ----------------------------------------------------------------------
    def get_model(self, model: str, version: str | None = None) -> ModelVersionInfo:
        """`version` is a version id or an alias; None means the default version."""
        name = self.model_name(model) + (f"@{version}" if version else "")
        model_pb = self._call("GetModel", lambda: self._client.get_model(**self._opts(name=name)))
        return _info(model_pb)

    def list_models(
        self, display_name: str | None = None, *, labels: dict[str, str] | None = None
    ) -> list[ModelVersionInfo]:
        """Default versions of the models named `display_name` (names are not unique)."""
        terms = [f"display_name={_quote(display_name)}"] if display_name is not None else []
        query = _filter(terms, labels)
        models = self._call(
            "ListModels",
            lambda: list(self._client.list_models(**self._opts(parent=self.parent, **query))),
        )
        return [_info(m) for m in models]

    def list_versions(
        self, model: str, *, labels: dict[str, str] | None = None
    ) -> list[ModelVersionInfo]:
        query = _filter([], labels)
        name = self.model_name(model)
        models = self._call(
            "ListModelVersions",
            lambda: list(self._client.list_model_versions(**self._opts(name=name, **query))),
        )
        return [_info(m) for m in models]

    def merge_version_aliases(
        self, version_name: str, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> ModelVersionInfo:
        """`version_name` is `MODEL@VERSION`; adding `default` makes that version the default."""
        if "@" not in version_name:
            raise PermanentError(f"{version_name!r} names no version: expected MODEL@VERSION.")
        _check_aliases([a for a in add if a != DEFAULT_ALIAS] + list(remove))
        changes = [*add, *(f"-{a}" for a in remove)]
        name = self.model_name(version_name)
        model_pb = self._call(
            "MergeVersionAliases",
            lambda: self._client.merge_version_aliases(
                **self._opts(name=name, version_aliases=changes)
            ),
        )
        return _info(model_pb)

    def delete_model_version(self, version_name: str) -> None:
        name = self.model_name(version_name)
        self._call(
            "DeleteModelVersion",
            lambda: self._finish(self._client.delete_model_version(**self._opts(name=name))),
        )

    def upload_model(
        self, request: VersionRequest, *, model_id: str = "", parent_model: str = ""
    ) -> RegisteredVersion:
        """One UploadModel attempt (not retried here: it is not idempotent; see ensure_version)."""
        from google.cloud.aiplatform_v1 import types

        aliases = list(request.aliases) + ([DEFAULT_ALIAS] if request.make_default else [])
        model = types.Model(
            display_name=request.display_name,
            description=request.description,
            version_description=request.description,
            artifact_uri=request.artifact_uri,
            container_spec=types.ModelContainerSpec(image_uri=request.serving_image),
            labels=dict(request.labels),
            version_aliases=aliases,
        )
        upload = types.UploadModelRequest(
            parent=self.parent, model=model, model_id=model_id, parent_model=parent_model
        )
        result = self._call(
            "UploadModel",
            lambda: self._finish(self._client.upload_model(**self._opts(request=upload))),
            retry=False,
        )
        if not parent_model and DEFAULT_ALIAS not in aliases:
            aliases.append(DEFAULT_ALIAS)  # a model's first version is always its default
        return RegisteredVersion(result.model, result.model_version_id, aliases=tuple(aliases))

    # ---- the composite -------------------------------------------------------------------
    def ensure_version(self, request: VersionRequest) -> RegisteredVersion:
        """Make `request` a version of the model named `request.display_name`, exactly once.

        The upload-key label makes it idempotent: a version carrying the key is returned
        (`reused=True`) instead of uploading again, so a lost response or a redelivered event
        costs a lookup, not a duplicate version.
        """
        _check_request(request)
        delays = self._retry.delays()
        while True:
            try:
                return self._ensure_once(request)
            except _UploadInterrupted as exc:
                delay = next(delays, None)
                if delay is None:
                    raise TransientError(str(exc), code="vertex_unavailable") from exc
                _LOG.warning("upload of %r interrupted (%s); retrying", request.display_name, exc)
                self._retry.sleep(delay)

    def _ensure_once(self, request: VersionRequest) -> RegisteredVersion:
        model = self._find_model(request.display_name)
        if model is None:
            try:
                return self._upload(request, model_id=model_id_for(request.display_name))
            except AlreadyExists:  # another worker created it first: add our version to it
                model = self._find_model(request.display_name)
                if model is None:
                    raise _UploadInterrupted(
                        "the model reported as existing was not found"
                    ) from None
        key = request.labels[UPLOAD_KEY_LABEL]
        for found in self.list_versions(model, labels={UPLOAD_KEY_LABEL: key}):
            _LOG.info("upload key %s is already %s; keeping it", key, found.version_name)
            return RegisteredVersion(found.model, found.version_id, True, found.aliases)
        return self._upload(request, parent_model=model)

    def _upload(self, request: VersionRequest, **target: str) -> RegisteredVersion:
        try:
            return self.upload_model(request, **target)
        except TransientError as exc:
            raise _UploadInterrupted(str(exc)) from exc
        except ModelNotFound as exc:  # the parent model vanished meanwhile: look again
            if not target.get("parent_model"):
                raise
            raise _UploadInterrupted(str(exc)) from exc

    def _find_model(self, display_name: str) -> str | None:
        model_id = model_id_for(display_name)
        try:
            info = self.get_model(model_id)
        except ModelNotFound:
            pass
        else:
            if info.display_name != display_name:
                raise PermanentError(
                    f"Model id {model_id!r} (derived from display name {display_name!r}) belongs "
                    f"to {info.model} named {info.display_name!r}. Rename one of the two models.",
                    code="model_id_taken",
                )
            return info.model
        found = self.list_models(display_name)
        if len(found) > 1:
            names = ", ".join(sorted(m.model for m in found))
            raise PermanentError(
                f"{len(found)} models are named {display_name!r} ({names}); cannot tell which one "
                "gets the new version. Rename or delete all but one, or give this upload another "
                "model name.",
                code="ambiguous_display_name",
            )
        return found[0].model if found else None

    # ---- plumbing ------------------------------------------------------------------------
    def _opts(self, **request: Any) -> dict[str, Any]:
        # Explicit retry/timeout: retries are ours (bounded, fast); the SDK's would hang.
        if "request" not in request:
            request = {"request": request}
        return {**request, "retry": None, "timeout": self._rpc_timeout}

    def _finish(self, operation: Any) -> Any:
        from google.api_core.future import polling

        poll = polling.DEFAULT_POLLING.with_delay(initial=self._poll_initial, maximum=10.0)
        return operation.result(timeout=self._operation_timeout, polling=poll)

    def _call(self, action: str, fn: Callable[[], T], *, retry: bool = True) -> T:
        delays = self._retry.delays() if retry else iter(())
        while True:
            try:
                return fn()
            except Exception as exc:  # translated below; unknown ones are re-raised
                error = _translate(exc, action, self._project)
                if error is None:
                    raise
                delay = next(delays, None) if isinstance(error, TransientError) else None
                if delay is None:
                    raise error from exc
                _LOG.warning("%s failed transiently (%s); retrying in %.2fs", action, exc, delay)
                self._retry.sleep(delay)


def _translate(exc: Exception, action: str, project: str) -> RegistrarError | None:
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
        return PermanentError(
            f"Vertex AI refused {action}: {message}. Grant the function's runtime service account "
            f"roles/aiplatform.user on project {project} and check the Vertex AI API is enabled.",
            code="permission_denied",
        )
    if isinstance(exc, api.GoogleAPICallError):
        return PermanentError(
            f"Vertex AI rejected {action} ({exc.code}): {message}. The request itself must change; "
            "retrying will not help.",
            code="vertex_rejected",
        )
    return None


def _check_aliases(aliases: Sequence[str]) -> None:
    for alias in aliases:
        if alias == DEFAULT_ALIAS or not ALIAS_PATTERN.fullmatch(alias):
            raise PermanentError(
                f"Version alias {alias!r} is not allowed: expected [a-z][a-zA-Z0-9-]{{0,126}}[a-z0-9]"
                " (starts with a lowercase letter, 2-128 characters) and not 'default' (use "
                "make_default / DEFAULT_VERSION_POLICY for that).",
                code="bad_alias",
            )


def _check_request(request: VersionRequest) -> None:
    if not request.labels.get(UPLOAD_KEY_LABEL):
        raise PermanentError(
            f"VersionRequest.labels lacks {UPLOAD_KEY_LABEL!r}: without it a retried upload "
            "would create a duplicate version.",
            code="missing_upload_key",
        )
    _check_aliases(request.aliases)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _filter(terms: list[str], labels: dict[str, str] | None) -> dict[str, str]:
    terms = terms + [f"labels.{k}={_quote(v)}" for k, v in sorted((labels or {}).items())]
    return {"filter": " AND ".join(terms)} if terms else {}


def _info(model: Any) -> ModelVersionInfo:
    return ModelVersionInfo(
        model=model.name.split("@", 1)[0],
        version_id=model.version_id,
        display_name=model.display_name,
        aliases=tuple(model.version_aliases),
        labels=dict(model.labels),
        artifact_uri=model.artifact_uri,
        description=model.version_description or model.description,
        create_time=model.version_create_time or None,
    )
