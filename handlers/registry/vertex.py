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
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import PermanentError, TransientError
from ..logs import get_logger
from ..serving_images import container_spec
from ..settings import Settings
from .evaluation import (
    EvaluationInfo,
    EvaluationSpec,
    evaluation_info,
    same_source,
)
from .folders import FOLDER_LABEL
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
    from google.api_core.retry import Retry

    DEFAULT_RETRY: Retry  # module __getattr__ below builds it on first use

# The public API; names defined in vertex_types / vertex_errors stay importable from here.
__all__ = [
    "ALIAS_PATTERN",
    "DEFAULT_ALIAS",
    "DEFAULT_RETRY",
    "AlreadyExists",
    "ModelNotFound",
    "ModelVersionInfo",
    "VertexRegistry",
    "gapic_client",
    "make_registry",
    "model_id_for",
]
_LOG = get_logger(__name__)
T = TypeVar("T")
# Short and bounded: retry a transient failure for at most 3 s (a few attempts, backing off from
# 0.2 s by x3 with full jitter). Longer waits are Eventarc's redelivery (24 h, 10-600 s backoff).
RETRY_SECONDS = 3.0


def _log_transient(exc: Exception) -> None:
    _LOG.warning("%s (transient: retried while the retry budget lasts)", exc)


@cache
def _default_retry() -> Retry:
    from google.api_core.retry import Retry  # lazy: importing this module must stay cheap

    return Retry(
        predicate=is_transient,
        initial=0.2,
        maximum=2.0,
        multiplier=3.0,
        timeout=RETRY_SECONDS,
        on_error=_log_transient,
    )


def __getattr__(name: str) -> Any:
    """`DEFAULT_RETRY`, Vertex's one retry (an api_core `Retry`), built on first use."""
    if name == "DEFAULT_RETRY":
        return _default_retry()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


RPC_TIMEOUT_SECONDS = 60.0


def rpc_timeout(settings: Settings) -> float:
    """One call's limit: 60 s, or a sixth of a shorter FUNCTION_TIMEOUT_SECONDS (the run's
    waits must end inside it; long-running operations are bounded by the run's deadline)."""
    return min(RPC_TIMEOUT_SECONDS, settings.function_timeout_seconds / 6)


def make_registry(settings: Settings) -> VertexRegistry:
    """One client for the process: the emulator when `VERTEX_AI_EMULATOR_HOST` is set."""
    from google.cloud import aiplatform_v1

    client = gapic_client(aiplatform_v1.ModelServiceClient, settings)
    return VertexRegistry(
        client,
        project=settings.project,
        location=settings.location,
        rpc_timeout=rpc_timeout(settings),
    )


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
        retry: Retry | None = None,
        rpc_timeout: float = RPC_TIMEOUT_SECONDS,
        operation_timeout: float = 900.0,
        poll_initial: float = 1.0,
    ) -> None:
        self._client = client
        self._project = project
        self.parent = f"projects/{project}/locations/{location}"
        # Every call's retry unless it says otherwise (`retry=` on `_call`); None: DEFAULT_RETRY.
        self._retry = retry if retry is not None else _default_retry()
        self._rpc_timeout = rpc_timeout
        self._operation_timeout = operation_timeout
        self._poll_initial = poll_initial

    def model_name(self, model: str) -> str:
        return model if model.startswith("projects/") else f"{self.parent}/models/{model}"

    # ---- primitives ----------------------------------------------------------------------
    def get_model(
        self, model: str, version: str | None = None, *, retry: Retry | bool = True
    ) -> ModelVersionInfo:
        """`version` is a version id or an alias; None means the default version."""
        name = self.model_name(model) + (f"@{version}" if version else "")
        model_pb = self._call(
            "GetModel", lambda: self._client.get_model(**self._opts(name=name)), retry=retry
        )
        return version_info(model_pb)

    def list_models(
        self,
        display_name: str | None = None,
        *,
        labels: dict[str, str] | None = None,
        retry: Retry | bool = True,
    ) -> list[ModelVersionInfo]:
        """Default versions of the models named `display_name` (names are not unique)."""
        terms = [f"display_name={quote(display_name)}"] if display_name is not None else []
        query = filter_query(terms, labels)
        models = self._call(
            "ListModels",
            lambda: list(self._client.list_models(**self._opts(parent=self.parent, **query))),
            retry=retry,
        )
        return [version_info(m) for m in models]

    def list_versions(
        self, model: str, *, labels: dict[str, str] | None = None, retry: Retry | bool = True
    ) -> list[ModelVersionInfo]:
        query = filter_query([], labels)
        name = self.model_name(model)
        models = self._call(
            "ListModelVersions",
            lambda: list(self._client.list_model_versions(**self._opts(name=name, **query))),
            retry=retry,
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
            retry=None,
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

        return _retrying(self._retry, once)

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
            retry=None,
        )
        if not parent_model and DEFAULT_ALIAS not in aliases:
            aliases.append(DEFAULT_ALIAS)  # a model's first version is always its default
        return RegisteredVersion(result.model, result.model_version_id, aliases=tuple(aliases))

    def model_label(self, display_name: str, key: str) -> str | None:
        """Label `key` of the model named `display_name`: as its default version returns it (model
        labels merged), else from its oldest version that carries it; None when there is no such
        model or no version carries the label."""
        found = self._find(display_name)
        return None if found is None else self._label_of(found, key)

    def _label_of(self, model: ModelVersionInfo, key: str) -> str | None:
        value = model.labels.get(key)
        if value is not None:
            return value
        versions = sorted(self.list_versions(model.model), key=lambda v: int(v.version_id or 0))
        return next((v.labels[key] for v in versions if key in v.labels), None)

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
        # The whole lookup-then-upload runs again only when an upload's outcome is unknown
        # (`UploadInterrupted`): the fresh lookup finds a version the lost reply had made.
        again = self._within(deadline).with_predicate(_interrupted)
        return _retrying(again, lambda: self._ensure_once(request, deadline))

    def _ensure_once(self, request: VersionRequest, deadline: float | None) -> RegisteredVersion:
        existing = self._find(request.display_name, deadline)
        if existing is None:
            try:
                return self._upload(request, deadline, model_id=model_id_for(request.display_name))
            except AlreadyExists:  # another worker created it first: add our version to it
                existing = self._find(request.display_name, deadline)
                if existing is None:
                    raise UploadInterrupted(
                        "the model reported as existing was not found"
                    ) from None
        self._check_folder(existing, request)
        model = existing.model
        key = request.labels[UPLOAD_KEY_LABEL]
        found_versions = self.list_versions(
            model, labels={UPLOAD_KEY_LABEL: key}, retry=self._within(deadline)
        )
        for found in found_versions:
            # Vertex merges model-level labels into every version it returns, so the label alone
            # can match a version that never carried it; the content-addressed artifact cannot.
            if found.artifact_uri.rstrip("/") != request.artifact_uri.rstrip("/"):
                continue
            _LOG.info("upload key %s is already %s; keeping it", key, found.version_name)
            return RegisteredVersion(found.model, found.version_id, True, found.aliases)
        return self._upload(request, deadline, parent_model=model)

    def _check_folder(self, model: ModelVersionInfo, request: VersionRequest) -> None:
        """The model a version is added to still belongs to the folder the pipeline checked
        before download (handlers/registry/folders.py): when another folder created it meanwhile,
        redeliver, and the check before download decides again."""
        mine = request.labels.get(FOLDER_LABEL)
        if mine is None:
            return
        owner = self._label_of(model, FOLDER_LABEL)
        if owner is not None and owner != mine:
            raise TransientError(
                f"{model.model} was created meanwhile from another folder ({FOLDER_LABEL}={owner}, "
                f"this upload's is {mine}); asking for redelivery to check the folder rule again",
                code="folder_owner_changed",
            )

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

    def _find(self, display_name: str, deadline: float | None = None) -> ModelVersionInfo | None:
        """The model named `display_name`, as its default version (model labels merged)."""
        model_id = model_id_for(display_name)
        try:
            info = self.get_model(model_id, retry=self._within(deadline))
        except ModelNotFound:
            pass
        else:
            if info.display_name != display_name:
                raise PermanentError(
                    f"Model id {model_id!r} (derived from display name {display_name!r}) belongs "
                    f"to {info.model} named {info.display_name!r}. Rename one of the two models.",
                    code="model_id_taken",
                )
            return info
        found = self.list_models(display_name, retry=self._within(deadline))
        if len(found) > 1:
            names = ", ".join(sorted(m.model for m in found))
            raise PermanentError(
                f"{len(found)} models are named {display_name!r} ({names}); cannot tell which one "
                "gets the new version. Rename or delete all but one, or give this upload another "
                "model name.",
                code="ambiguous_display_name",
            )
        return found[0] if found else None

    # ---- plumbing ------------------------------------------------------------------------
    def _within(self, deadline: float | None) -> Retry:
        """This client's retry, its budget cut to the run's time left (`deadline`, monotonic):
        retries never outlast the run. Computed per call, as api_core's timeout is relative."""
        if deadline is None:
            return self._retry
        left = max(0.0, deadline - time.monotonic())
        budget = self._retry.timeout
        return self._retry.with_timeout(left if budget is None else min(budget, left))

    def _opts(self, **request: Any) -> dict[str, Any]:
        # Explicit retry/timeout: retries are ours (`_call`, time-bounded); the SDK's would hang.
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

    def _call(self, action: str, fn: Callable[[], T], *, retry: Retry | bool | None = True) -> T:
        """`fn` with SDK errors translated, retried by `retry`: True is this client's retry, a
        `Retry` that one (e.g. cut to a deadline), False/None never (a call that is not
        idempotent, like starting an UploadModel or a DeployModel, is retried by its caller)."""

        def attempt() -> T:
            try:
                return fn()
            except Exception as exc:  # translated; anything that is not Vertex's is re-raised
                error = translate(exc, action, self._project)
                if error is None:
                    raise
                raise error from exc

        if retry is None or retry is False:
            return attempt()
        return _retrying(self._retry if retry is True else retry, attempt)


def _interrupted(exc: Exception) -> bool:
    return isinstance(exc, UploadInterrupted)


def _retrying(retry: Retry, target: Callable[[], T]) -> T:
    """`retry(target)()`, raising the last failure itself when the budget runs out.

    api_core raises `RetryError` then; callers need the registrar error inside it (its code,
    e.g. `vertex_unreachable`, and its class, e.g. `UploadInterrupted` or `PermissionDenied`).
    """
    from google.api_core.exceptions import RetryError

    try:
        return retry(target)()
    except RetryError as exc:
        if isinstance(exc.cause, Exception):
            raise exc.cause from exc.cause.__cause__
        raise
