"""`ModelRegistry` over the Vertex AI Model Registry (GAPIC `aiplatform_v1.ModelServiceClient`).

The SDK is imported lazily (~0.7 s): importing this module must stay cheap. Every primitive is
named after the API verb it wraps and returns plain dataclasses; `ensure_version` is the one
exactly-once composite built on them. Errors leave this module only as `PermanentError` or
`TransientError` (handlers/errors.py), with messages that say what to do.

REST is used in production as well as against the emulator: it is the transport the tests
exercise, and unlike gRPC it is safe next to the validator's forked subprocesses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import PermanentError, TransientError
from ..logs import get_logger
from ..retry import RetryPolicy, call_with_retry
from ..serving_images import container_spec
from .evaluation import (
    EvaluationInfo,
    EvaluationSpec,
    evaluation_info,
    same_source,
)
from .interface import UPLOAD_KEY_LABEL, RegisteredVersion, VersionRequest
from .vertex_errors import (
    AlreadyExists,
    ModelNotFound,
    OperationPending,
    UploadInterrupted,
    is_transient,
    translate,
)
from .vertex_types import (
    ALIAS_PATTERN,
    DEFAULT_ALIAS,
    ModelVersionInfo,
    check_aliases,
    check_request,
    filter_query,
    model_id_for,
    quote,
    version_info,
)

if TYPE_CHECKING:
    from ..settings import Settings

# The public API; names defined in vertex_types / vertex_errors stay importable from here.
__all__ = [
    "ALIAS_PATTERN",
    "DEFAULT_ALIAS",
    "DEFAULT_RETRY",
    "AlreadyExists",
    "ModelNotFound",
    "ModelVersionInfo",
    "RetryPolicy",
    "VertexRegistry",
    "gapic_client",
    "make_registry",
    "model_id_for",
]
_LOG = get_logger(__name__)
T = TypeVar("T")
# Short and bounded: 3 attempts, ~0.1-0.2 s then ~0.3-0.6 s. Longer waits are Eventarc's
# redelivery; the jitter keeps half of each delay so backoff still grows under contention.
DEFAULT_RETRY = RetryPolicy(
    attempts=3, initial_delay=0.2, max_delay=2.0, multiplier=3.0, min_jitter=0.5
)


def make_registry(settings: Settings) -> VertexRegistry:
    """One client for the process: the emulator when `VERTEX_AI_EMULATOR_HOST` is set."""
    from google.cloud import aiplatform_v1

    client = gapic_client(aiplatform_v1.ModelServiceClient, settings)
    return VertexRegistry(client, project=settings.project, location=settings.location)


def gapic_client(client_class: Callable[..., T], settings: Settings) -> T:
    """A GAPIC service client over REST: the emulator when `VERTEX_AI_EMULATOR_HOST` is set,
    else the regional endpoint with application default credentials (the runtime account)."""
    if settings.vertex_emulator_host:
        from google.auth.credentials import AnonymousCredentials

        return client_class(
            transport="rest",
            client_options={"api_endpoint": settings.vertex_emulator_host},
            credentials=AnonymousCredentials(),
        )
    return client_class(
        transport="rest",
        client_options={"api_endpoint": f"{settings.location}-aiplatform.googleapis.com"},
    )


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
        self._retry = retry or DEFAULT_RETRY
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
        return version_info(model_pb)

    def list_models(
        self, display_name: str | None = None, *, labels: dict[str, str] | None = None
    ) -> list[ModelVersionInfo]:
        """Default versions of the models named `display_name` (names are not unique)."""
        terms = [f"display_name={quote(display_name)}"] if display_name is not None else []
        query = filter_query(terms, labels)
        models = self._call(
            "ListModels",
            lambda: list(self._client.list_models(**self._opts(parent=self.parent, **query))),
        )
        return [version_info(m) for m in models]

    def list_versions(
        self, model: str, *, labels: dict[str, str] | None = None
    ) -> list[ModelVersionInfo]:
        query = filter_query([], labels)
        name = self.model_name(model)
        models = self._call(
            "ListModelVersions",
            lambda: list(self._client.list_model_versions(**self._opts(name=name, **query))),
        )
        return [version_info(m) for m in models]

    def merge_version_aliases(
        self, version_name: str, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> ModelVersionInfo:
        """`version_name` is `MODEL@VERSION`; adding `default` makes that version the default."""
        if "@" not in version_name:
            raise PermanentError(f"{version_name!r} names no version: expected MODEL@VERSION.")
        check_aliases([a for a in add if a != DEFAULT_ALIAS] + list(remove))
        changes = [*add, *(f"-{a}" for a in remove)]
        name = self.model_name(version_name)
        model_pb = self._call(
            "MergeVersionAliases",
            lambda: self._client.merge_version_aliases(
                **self._opts(name=name, version_aliases=changes)
            ),
        )
        return version_info(model_pb)

    def delete_model_version(self, version_name: str) -> None:
        name = self.model_name(version_name)
        self._call(
            "DeleteModelVersion",
            lambda: self._finish(self._client.delete_model_version(**self._opts(name=name))),
        )

    def import_model_evaluation(self, version_name: str, spec: EvaluationSpec) -> EvaluationInfo:
        """One ImportModelEvaluation into `MODEL@VERSION` (not retried here: importing twice makes
        two evaluations; see ensure_evaluation)."""
        from google.cloud.aiplatform_v1 import types

        evaluation = types.ModelEvaluation(
            display_name=spec.display_name,
            metrics_schema_uri=spec.metrics_schema_uri,
            metrics=spec.metrics,
            metadata=spec.metadata,
        )
        parent = self.model_name(version_name)
        request = types.ImportModelEvaluationRequest(parent=parent, model_evaluation=evaluation)
        found = self._call(
            "ImportModelEvaluation",
            lambda: self._client.import_model_evaluation(**self._opts(request=request)),
            retry=False,
        )
        return evaluation_info(found)

    def list_model_evaluations(self, version_name: str) -> list[EvaluationInfo]:
        """The evaluations of `MODEL@VERSION` (`MODEL` alone: of its default version)."""
        parent = self.model_name(version_name)
        found = self._call(
            "ListModelEvaluations",
            lambda: list(self._client.list_model_evaluations(**self._opts(parent=parent))),
        )
        return [evaluation_info(e) for e in found]

    def ensure_evaluation(
        self, version_name: str, spec: EvaluationSpec
    ) -> tuple[EvaluationInfo, bool]:
        """`spec` imported into `MODEL@VERSION` exactly once: an evaluation of the same source
        (object and generation, in its metadata) is returned instead (`True`: reused)."""

        def once() -> tuple[EvaluationInfo, bool]:
            for found in self.list_model_evaluations(version_name):
                if same_source(found, spec):
                    return found, True
            return self.import_model_evaluation(version_name, spec), False

        return call_with_retry(
            once,
            is_transient=is_transient,
            what=f"importing an evaluation into {version_name}",
            policy=self._retry,
            wrap_last=False,
        )

    def upload_model(
        self,
        request: VersionRequest,
        *,
        model_id: str = "",
        parent_model: str = "",
        deadline: float | None = None,
    ) -> RegisteredVersion:
        """One UploadModel attempt (not retried here: it is not idempotent; see ensure_version)."""
        from google.cloud.aiplatform_v1 import types

        aliases = list(request.aliases) + ([DEFAULT_ALIAS] if request.make_default else [])
        model = types.Model(
            display_name=request.display_name,
            description=request.description,
            version_description=request.description,
            artifact_uri=request.artifact_uri,
            # TF Serving needs its command, port and routes; prebuilt images only their URI.
            container_spec=types.ModelContainerSpec(
                **container_spec(request.serving_image, model_id_for(request.display_name)).as_api()
            ),
            labels=dict(request.labels),
            version_aliases=aliases,
        )
        upload = types.UploadModelRequest(
            parent=self.parent, model=model, model_id=model_id, parent_model=parent_model
        )
        result = self._call(
            "UploadModel",
            lambda: self._finish(
                self._client.upload_model(**self._opts(request=upload)), deadline=deadline
            ),
            retry=False,
        )
        if not parent_model and DEFAULT_ALIAS not in aliases:
            aliases.append(DEFAULT_ALIAS)  # a model's first version is always its default
        return RegisteredVersion(result.model, result.model_version_id, aliases=tuple(aliases))

    # ---- the composite -------------------------------------------------------------------
    def ensure_version(
        self, request: VersionRequest, *, deadline: float | None = None
    ) -> RegisteredVersion:
        """Make `request` a version of the model named `request.display_name`, exactly once.

        The upload-key label makes it idempotent: a version carrying the key is returned
        (`reused=True`) instead of uploading again, so a lost response or a redelivered event
        costs a lookup, not a duplicate version.
        """
        check_request(request)

        def interrupted(exc: BaseException, delay: float) -> None:
            _LOG.warning("upload of %r interrupted (%s); retrying", request.display_name, exc)

        return call_with_retry(
            lambda: self._ensure_once(request, deadline),
            is_transient=lambda exc: isinstance(exc, UploadInterrupted),
            what=f"registering {request.display_name!r}",
            policy=self._retry,
            on_retry=interrupted,
            wrap_last=False,
        )

    def _ensure_once(self, request: VersionRequest, deadline: float | None) -> RegisteredVersion:
        model = self._find_model(request.display_name)
        if model is None:
            try:
                return self._upload(request, deadline, model_id=model_id_for(request.display_name))
            except AlreadyExists:  # another worker created it first: add our version to it
                model = self._find_model(request.display_name)
                if model is None:
                    raise UploadInterrupted(
                        "the model reported as existing was not found"
                    ) from None
        key = request.labels[UPLOAD_KEY_LABEL]
        for found in self.list_versions(model, labels={UPLOAD_KEY_LABEL: key}):
            # Vertex merges model-level labels into every version it returns, so the label alone
            # can match a version that never carried it; the content-addressed artifact cannot.
            if found.artifact_uri.rstrip("/") != request.artifact_uri.rstrip("/"):
                continue
            _LOG.info("upload key %s is already %s; keeping it", key, found.version_name)
            return RegisteredVersion(found.model, found.version_id, True, found.aliases)
        return self._upload(request, deadline, parent_model=model)

    def _upload(
        self, request: VersionRequest, deadline: float | None, **target: str
    ) -> RegisteredVersion:
        try:
            return self.upload_model(request, deadline=deadline, **target)
        except OperationPending:
            raise  # accepted and still running: uploading again could duplicate it
        except TransientError as exc:
            raise UploadInterrupted(str(exc)) from exc
        except ModelNotFound as exc:  # the parent model vanished meanwhile: look again
            if not target.get("parent_model"):
                raise
            raise UploadInterrupted(str(exc)) from exc

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

    def _finish(self, operation: Any, *, deadline: float | None = None) -> Any:
        """Wait for a long-running operation, never past `deadline` (the run's time left)."""
        from google.api_core.future import polling

        timeout = self._operation_timeout
        if deadline is not None:
            timeout = max(1.0, min(timeout, deadline - time.monotonic()))
        poll = polling.DEFAULT_POLLING.with_delay(initial=self._poll_initial, maximum=10.0)
        try:
            return operation.result(timeout=timeout, polling=poll)
        except TimeoutError as exc:  # concurrent.futures.TimeoutError is TimeoutError (3.11)
            name = getattr(getattr(operation, "operation", None), "name", "") or "?"
            raise OperationPending(
                f"Vertex AI operation {name} had not finished after {timeout:.0f} s, the time "
                "this run had left; the upload is kept claimed and its redelivery will find the "
                "version by its upload key"
            ) from exc

    def _call(self, action: str, fn: Callable[[], T], *, retry: bool = True) -> T:
        def attempt() -> T:
            try:
                return fn()
            except Exception as exc:  # translated; anything that is not Vertex's is re-raised
                error = translate(exc, action, self._project)
                if error is None:
                    raise
                raise error from exc

        def retrying(exc: BaseException, delay: float) -> None:
            _LOG.warning("%s failed transiently (%s); retrying in %.2fs", action, exc, delay)

        return call_with_retry(
            attempt,
            is_transient=is_transient,
            what=f"Vertex AI {action}",
            policy=self._retry if retry else replace(self._retry, attempts=1),
            on_retry=retrying,
            wrap_last=False,
        )
