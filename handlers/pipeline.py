"""The data path, top to bottom: event -> upload -> validation -> publish -> registration -> record.

Every event ends here as *acknowledge* or *redeliver*: `handle` (or `triage`, then
`handle_triaged`) returns an `Outcome` (acknowledged) or raises `TransientError` (the platform
redelivers), after one summary log line. Triage routes model uploads to `handle_model` and late
files (`metrics.json`) to the late-arrivals stage (handlers/late/arrivals.py).
"""

from __future__ import annotations

import gc
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from . import serving_images
from .errors import (
    PermanentError,
    PermissionDenied,
    Rejected,
    SandboxLayerMissing,
    Superseded,
    TransientError,
    Waiting,
)
from .gcs import publish
from .gcs.objects import ObjectStore
from .gcs.records import AlreadyFinal, Held, Records, claimed, record_name
from .handoff import policy
from .intake import layout, metrics, user_metadata
from .intake import uploads as artifacts
from .intake.download import Hashing, fetch, fetch_then_hash
from .intake.events import MalformedEvent, NotAFinalizeEvent, ObjectEvent, parse_event
from .logs import get_logger, log, timed
from .notify import Notifier
from .outcome import Outcome
from .registration import Registration, version_request
from .registry import folders, lineage
from .registry.interface import ModelRegistry
from .registry.vertex_errors import OperationPending
from .settings import Settings
from .validation.interface import ModelValidator
from .validation.report import ValidationReport

if TYPE_CHECKING:
    from .late.arrivals import LateArrivals

_logger = get_logger(__name__)
# The platform stops a run after FUNCTION_TIMEOUT_SECONDS (at most 540 s for an event-driven
# function); whatever waits (Vertex, the gate's lock) stops RUN_MARGIN_SECONDS earlier (a sixth of
# a shorter timeout), so the run can still write its outcome and answer.
RUN_MARGIN_SECONDS = 60.0


@dataclass(frozen=True)
class ModelEvent:
    """An event that names (part of) a model upload: what `Pipeline.handle_model` works on."""

    event: ObjectEvent
    artifact: layout.KerasFile | layout.SavedModelMember
    started: float  # monotonic time the event arrived, for elapsed_s


@dataclass(frozen=True)
class MetricsEvent:
    """A `metrics.json` event: for the late-arrivals stage (`Pipeline.handle_metrics`)."""

    event: ObjectEvent
    artifact: layout.MetricsFile
    started: float


Triaged = ModelEvent | MetricsEvent


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        *,
        store: ObjectStore | None = None,
        registry_factory: Callable[[], ModelRegistry] | None = None,
        validator_factory: Callable[[], ModelValidator] | None = None,
        notifier: Notifier | None = None,
        hand_off: bool = False,
        holder: str | None = None,
    ) -> None:
        # hand_off: the function's limits apply (uploads that do not fit go to JOB_NAME);
        # holder: this pipeline runs in a job task (handlers/job.py), whose claims name it.
        self.settings = settings
        self.hand_off = hand_off
        self.holder = holder
        self.store = store or ObjectStore(settings)
        self.records = Records(self.store, settings.claim_lease_seconds)
        self._registry_factory = registry_factory or _default_registry(settings)
        self._validator_factory = validator_factory or _default_validator(settings)
        self._registry: ModelRegistry | None = None
        self._validator: ModelValidator | None = None
        # One sandbox worker per instance: uploads handled on parallel threads take turns.
        self._validation_lock = threading.Lock()
        self._registry_lock = threading.Lock()
        self.notifier = notifier or Notifier(settings.notify_topic)
        self._late: LateArrivals | None = None
        self._settled = False

    @property
    def registry(self) -> ModelRegistry:
        with self._registry_lock:
            if self._registry is None:
                self._registry = self._registry_factory()
            return self._registry

    def _warm_up(self) -> None:
        """On a cold instance, overlap the slow starts with the GCS work that comes first:
        the sandbox's TF import (~2 s) and the Vertex client's import (~0.7 s)."""
        self.validator.prestart()
        if self._registry is None and not self._registry_lock.locked():
            threading.Thread(
                target=self._import_registry, name="registry-warm-up", daemon=True
            ).start()

    def _import_registry(self) -> None:
        self.registry  # noqa: B018 the Vertex SDK's import, off the event's path
        _settle_long_lived()

    def _after_first_event(self) -> None:
        """The imports a first model event brings (storage client, gate, records): settled."""
        if not self._settled:
            self._settled = True
            _settle_long_lived()

    @property
    def validator(self) -> ModelValidator:
        if self._validator is None:
            self._validator = self._validator_factory()
        return self._validator

    @property
    def late(self) -> LateArrivals:
        """The late-arrivals stage, handed this pipeline's collaborators (never the pipeline)."""
        if self._late is None:
            from .late.arrivals import LateArrivals  # its gate modules: only late events need them

            self._late = LateArrivals(
                settings=self.settings,
                store=self.store,
                records=self.records,
                registry=lambda: self.registry,
                validator=lambda: self.validator,
                notifier=self.notifier,
                validation_lock=self._validation_lock,
            )
        return self._late

    # -- entry -------------------------------------------------------------------------------
    def handle(self, attributes: dict[str, Any], data: Any) -> Outcome:
        triaged = self.triage(attributes, data)
        if isinstance(triaged, Outcome):
            return triaged
        return self.handle_triaged(triaged)

    def handle_triaged(self, triaged: Triaged) -> Outcome:
        """The I/O part of an event, on the stage triage routed it to."""
        try:
            if isinstance(triaged, MetricsEvent):
                return self.handle_metrics(triaged)
            return self.handle_model(triaged)
        finally:
            self._after_first_event()

    def triage(self, attributes: dict[str, Any], data: Any) -> Outcome | Triaged:
        """Settle, and log, every event that needs no I/O: another event type, a malformed event,
        an object that is not part of a model upload. Anything else comes back routed: a
        `ModelEvent` for `handle_model`, a `MetricsEvent` for the late-arrivals stage. No I/O and
        ~30 µs, so an async server can run it on its event loop."""
        started = time.monotonic()
        try:
            event = parse_event(attributes, data)
        except NotAFinalizeEvent as exc:
            return self._done(Outcome("ignored", str(exc)), logging.DEBUG, started)
        except MalformedEvent as exc:
            return self._done(
                Outcome(
                    "malformed",
                    f"malformed event acknowledged: {exc}",
                    {"event_id": attributes.get("id")},
                ),
                logging.ERROR,
                started,
            )
        return self._classify(event, started)

    def handle_object(self, event: ObjectEvent, started: float | None = None) -> Outcome:
        """One object generation, however it was announced (event, backfill, replay)."""
        classified = self._classify(event, time.monotonic() if started is None else started)
        if isinstance(classified, Outcome):
            return classified
        return self.handle_triaged(classified)

    def _classify(self, event: ObjectEvent, started: float) -> Outcome | Triaged:
        if not layout.is_watched(event.name, self.settings):
            return self._done(
                Outcome("ignored", "outside MODEL_PREFIX", _base(event)), logging.DEBUG, started
            )
        artifact = layout.classify(event.name, self.settings)
        if isinstance(artifact, layout.MetricsFile):
            return MetricsEvent(event, artifact, started)
        if isinstance(artifact, layout.NotAModel):
            quiet = artifact.reason.startswith(("folder", "temporary"))
            return self._done(
                Outcome("ignored", f"not a model upload: {artifact.reason}", _base(event)),
                logging.DEBUG if quiet else logging.INFO,
                started,
            )
        return ModelEvent(event, artifact, started)

    def handle_metrics(self, metrics_event: MetricsEvent) -> Outcome:
        """A `metrics.json`: the late-arrivals stage decides, this logs its one summary line."""
        event, started = metrics_event.event, metrics_event.started
        base = _base(event)
        try:
            outcome, level = self.late.metrics_file(
                event, metrics_event.artifact.directory, base, self._deadline(started)
            )
        except TransientError as exc:
            self._retrying(exc, event.uri, base, {}, started)
        return self._done(outcome, level, started)

    def handle_model(self, model_event: ModelEvent) -> Outcome:
        """A model upload's event: resolve, claim, validate, register, record."""
        event, artifact, started = model_event.event, model_event.artifact, model_event.started
        base = _base(event)
        self._warm_up()
        timings: dict[str, float] = {}
        try:
            with timed(timings, "resolve"):
                upload = self._resolve(event, artifact)
        except (Waiting, Superseded) as exc:
            return self._done(Outcome(exc.code, str(exc), base), logging.INFO, started)
        except PermanentError as exc:  # e.g. permission denied listing: nothing was claimed
            return self._done(
                Outcome("rejected", str(exc), {**base, "reason": exc.code}), logging.ERROR, started
            )
        except TransientError as exc:
            self._retrying(exc, event.uri, base, timings, started)
        try:
            return self._process(upload, timings, started)
        except PermanentError as exc:  # the record itself cannot be written (e.g. permission)
            return self._done(
                Outcome("rejected", f"{upload.uri}: {exc}", {**base, "reason": exc.code}),
                logging.ERROR,
                started,
            )
        except TransientError as exc:
            self._retrying(
                exc, upload.uri, {**base, "upload_key": upload.upload_key}, timings, started
            )

    def _retrying(
        self,
        exc: TransientError,
        uri: str,
        fields: dict[str, Any],
        timings: dict[str, float],
        started: float,
    ) -> NoReturn:
        """One summary line, then re-raise: 5xx, so the platform redelivers."""
        busy = exc.code == "in_progress_elsewhere"
        if isinstance(exc, PermissionDenied):  # say exactly what IAM must grant, and where
            fields = {**fields, "missing_permission": exc.permission, "resource": exc.resource}
        if isinstance(
            exc, SandboxLayerMissing
        ):  # the platform's, named: see SANDBOX_REQUIRED_LAYERS
            fields = {**fields, "missing_layers": exc.layers}
        log(
            _logger,
            logging.INFO if busy else logging.ERROR,
            f"{uri}: {exc}" if busy else f"{uri} failed, asking for redelivery: {exc}",
            outcome="in_progress" if busy else "failed",
            **fields,
            reason=exc.code,
            timings=timings,
            elapsed_s=round(time.monotonic() - started, 3),
        )
        raise exc

    def _resolve(
        self, event: ObjectEvent, artifact: layout.KerasFile | layout.SavedModelMember
    ) -> artifacts.Upload:
        if isinstance(artifact, layout.KerasFile):
            return artifacts.resolve_keras(event, artifact, self.store, self.settings)
        return artifacts.resolve_saved_model(
            event, artifact, self.store, self.settings, asset_names=self.validator.asset_names
        )

    # -- one claimed upload ----------------------------------------------------------------------
    def _process(
        self, upload: artifacts.Upload, timings: dict[str, float], started: float
    ) -> Outcome:
        base = {
            "source_uri": upload.uri,
            "generation": upload.generation,
            "upload_key": upload.upload_key,
            "event_id": upload.trigger.event_id,
        }
        record_object = record_name(
            self.settings.state_prefix, upload.source_path, upload.record_key
        )
        identity = {
            "source": upload.uri,
            "bucket": upload.bucket,
            "kind": upload.kind,
            "upload_key": upload.upload_key,
            "record": f"gs://{upload.bucket}/{record_object}",
            "members": {upload.relative(m): m.generation for m in upload.members},
        }
        with claimed(
            self.records,
            upload.bucket,
            record_object,
            identity,
            keep=(OperationPending,),  # keeps the claim: a redelivery now could upload twice
            timings=timings,
            holder=self.holder,
        ) as held:
            if isinstance(held, AlreadyFinal):
                return self._already(upload, held, base, timings, started)
            try:
                outcome = self._register(upload, held, timings, started)
            except PermanentError as exc:
                record = held.finish(
                    {
                        "state": "rejected",
                        "reason": {"code": exc.code, "message": str(exc)},
                        **self._sandbox_section(),
                        "timings": timings,
                    }
                )
                self.notifier.publish(record)
                fields = {**base, "reason": exc.code, "record": identity["record"]}
                return self._done(
                    Outcome("rejected", str(exc), {**fields, "timings": timings}),
                    logging.ERROR,
                    started,
                )
            except Superseded as exc:
                reason = {"code": exc.code, "message": str(exc)}
                held.finish({"state": "superseded", "reason": reason})
                return self._done(Outcome("superseded", str(exc), base), logging.INFO, started)
        return self._done(outcome, logging.INFO, started)

    def _already(
        self,
        upload: artifacts.Upload,
        final: AlreadyFinal,
        base: dict[str, Any],
        timings: dict[str, float],
        started: float,
    ) -> Outcome:
        """A final record exists: a duplicate delivery, or a member that arrived late."""
        fields = {**base, **_summary(final.record), "timings": timings}
        late = _late_member(upload, final.record)
        if late == "fingerprint.pb" and final.record.get("state") == "registered":
            mixed = self.late.fingerprint(upload, final.record, timings)
            if mixed is not None:
                return self._done(mixed, logging.ERROR, started)
        if late:  # e.g. fingerprint.pb written after the directory was registered
            return self._done(
                Outcome(
                    "late",
                    f"{late} arrived after {upload.uri} was {final.record.get('state')}; "
                    "it is not part of the registered version and registers nothing new",
                    {**fields, "late_member": late},
                ),
                logging.INFO,
                started,
            )
        return self._done(
            Outcome(
                "duplicate",
                f"already {final.record.get('state')}: duplicate delivery acknowledged",
                fields,
            ),
            logging.INFO,
            started,
        )

    def _register(
        self, upload: artifacts.Upload, held: Held, timings: dict[str, float], started: float
    ) -> Outcome:
        """Stages of one claimed upload: name -> validate + publish -> register -> record."""
        name = layout.display_name_for(upload.source_path, self.settings, upload.metadata)
        self._check_serving_image(registration_source=upload.uri)  # before any work
        artifacts.check_size(upload, self.settings)
        aliases = lineage.parse_aliases(upload.metadata.get("aliases"), upload.uri)
        user_metadata.check(upload.metadata, upload.uri)
        with timed(timings, "folder"):  # before download: another folder's model is refused
            folder = folders.owner_label(
                self.registry, name.display_name, bucket=upload.bucket,
                source_path=upload.source_path, uri=upload.uri, settings=self.settings,
            )  # fmt: skip
        # the cheap checks above reject bad metadata before a job is started for nothing
        if self.hand_off:
            left = self._deadline(started) - time.monotonic()
            why = policy.needs_job(upload.size, self.settings, left)
            if why is not None:
                return self._hand_off(upload, held, why, timings)
        if self.holder:  # a job task now holds the upload (a kill from here on is mid-way)
            log(_logger, logging.INFO, f"{upload.uri}: taken over by job task {self.holder}",
                upload_key=upload.upload_key, holder=self.holder)  # fmt: skip
        report, published = self._validate_and_publish(upload, name, timings)
        request = version_request(
            upload=upload,
            display_name=name.display_name,
            version_hint=name.version_hint,
            aliases=aliases,
            published=published,
            validation=report,
            settings=self.settings,
        )
        request = folders.labelled(request, folder)
        from .registry import gated  # imported on the first model event, not at start-up

        found = metrics.for_upload(upload, self.store, self.settings)
        prepared = gated.prepare(found, request, self.settings)
        with timed(timings, "register"):
            version = self.registry.ensure_version(
                prepared.request, deadline=self._deadline(started)
            )
        registration = Registration(
            upload, name, version, published, report, request.aliases, timings
        )
        with timed(timings, "gate"):  # evaluation imported, `default` / `challenger` decided
            settled = gated.settle(
                prepared, version, bucket=upload.bucket, upload_key=upload.upload_key,
                registry=self.registry, store=self.store, settings=self.settings,
                deadline=self._deadline(started),
            )  # fmt: skip
        registration.extra.update(settled)
        if self.settings.deploy_endpoint:  # start (not wait for) a canary of a new default
            from .registry import deploy

            with timed(timings, "deploy"):
                registration.extra.update(
                    deploy.after_registration(
                        version,
                        name.display_name,
                        registration.aliases_now,
                        self.settings,
                        self.store,
                        bucket=upload.bucket,
                        record=held.claim.name,
                        deadline=self._deadline(started),
                    )
                )
        with timed(timings, "record"):
            record = held.finish(registration.record())
        self.notifier.publish(record)
        return registration.outcome()

    def _hand_off(
        self, upload: artifacts.Upload, held: Held, why: policy.Why, timings: dict[str, float]
    ) -> Outcome:
        """Too large or too slow for the function: one job execution takes it (or, with no job
        configured, a rejection naming the setting)."""
        if not self.settings.job_name:
            raise Rejected(policy.no_job(upload.uri, why), code=why.code)
        from .handoff.takeover import hand_off  # the Cloud Run client: only when handing off

        args = ["upload", "--bucket", upload.bucket, "--object", upload.trigger.name,
                "--generation", str(upload.trigger.generation)]  # fmt: skip
        with timed(timings, "hand_off"):
            record = hand_off(held, self.records, self.settings, args=args, why=why,
                              timings=timings)  # fmt: skip
        execution = (record.get("handoff") or {}).get("execution", "")
        return Outcome(
            "handed_off",
            f"{upload.uri}: {why.message}; handed off to the job execution {execution}",
            {"source_uri": upload.uri, "generation": upload.generation,
             "upload_key": upload.upload_key, "reason": why.code, "execution": execution,
             "record": f"gs://{upload.bucket}/{held.claim.name}", "timings": timings},
        )  # fmt: skip

    def _validate_and_publish(
        self, upload: artifacts.Upload, name: layout.ModelName, timings: dict[str, float]
    ) -> tuple[ValidationReport, publish.Published]:
        """Download at the pinned generations, validate in the sandbox, publish what was validated."""
        validator = self.validator
        with tempfile.TemporaryDirectory(prefix="registrar-", dir=self.settings.temp_dir) as tmp:
            workdir = Path(tmp)
            with timed(timings, "download"):
                local, hashing = self._download(upload, workdir / "source")
            try:
                with timed(timings, "validate"), self._validation_lock:
                    if upload.kind == "keras":
                        report = validator.validate_keras(local, workdir / "work", consume=True)
                    else:
                        report = validator.validate_saved_model(local, workdir / "work")
                with timed(timings, "hash"):  # what is left of the SHA-256 pass: mostly nothing
                    sha256 = hashing.result()
            finally:
                hashing.close()  # the files go with the temp dir
            digest = publish.source_digest(sha256, single_file=upload.kind == "keras")
            # Publishing copies the source server-side: free its local copy (RAM on Cloud
            # Functions) before the exported SavedModel is uploaded.
            shutil.rmtree(workdir / "source", ignore_errors=True)
            with timed(timings, "publish"):
                target = publish.artifact_dir(
                    self.settings.artifact_prefix,
                    name.display_name,
                    digest,
                    numbered=serving_images.numbered_layout(self.settings.serving_image),
                )
                published = publish.publish(
                    upload.source,
                    store=self.store,
                    directory=target,
                    digest=digest,
                    validated=sha256,
                    exported_dir=report.saved_model_dir if upload.kind == "keras" else None,
                )
        return report, published

    def _check_serving_image(self, *, registration_source: str) -> None:
        """The one serving-image rule (handlers/serving_images.py): past its end of availability
        the upload is refused (its record says what to set); within 60 days, a warning."""
        settings = self.settings
        status = serving_images.check(
            settings.serving_image,
            replacement=serving_images.default_image(settings.project, settings.location),
        )
        if not status.ok:
            raise PermanentError(
                f"{status.message.rstrip('.')}. Nothing of {registration_source} was "
                "registered: upload it again after the change (a new generation is a new upload).",
                code="serving_image.end_of_availability"
                if (status.days_left or 0) < 0
                else "serving_image.unsupported_tag",
            )
        if status.warn:
            log(
                _logger,
                logging.WARNING,
                status.message,
                serving_image=settings.serving_image,
                end_of_availability=str(status.end_of_availability),
                days_left=status.days_left,
                source_uri=registration_source,
            )

    def _sandbox_section(self) -> dict[str, Any]:
        """Which sandbox layers held, for a rejection's record (a registration has it already)."""
        layers = self._validator.sandbox_layers if self._validator is not None else None
        return {"validation": {"sandbox_layers": dict(layers)}} if layers else {}

    def _deadline(self, started: float) -> float:
        return run_deadline(self.settings, started)

    def _download(self, upload: artifacts.Upload, root: Path) -> tuple[Path, Hashing]:
        """Every member, at its pinned generation, into a new file under `root` (created here).

        All names are checked first (`names.check_names`: canonical, no two onto one file), so
        a bad name is a rejection before a byte is read; each file is created inside `root`
        with O_EXCL | O_NOFOLLOW; each download is held to the object's metadata
        (`upload.digest_mismatch`). Returns the local path and the digests: a SavedModel's
        SHA-256 is computed on a thread while the sandbox validates (its files are hard-linked
        there, they stay here); a `.keras` is hashed as it arrives (the sandbox consumes it)."""
        files = {upload.relative(m): m for m in upload.members}
        if upload.kind == "keras":
            digests = fetch(self.store, files, root, upload.uri)
            return root / upload.relative(upload.members[0]), Hashing.finished(digests)
        return root, fetch_then_hash(self.store, files, root, upload.uri)

    def _done(self, outcome: Outcome, level: int, started: float) -> Outcome:
        log(
            _logger,
            level,
            outcome.message,
            outcome=outcome.outcome,
            **outcome.fields,
            elapsed_s=round(time.monotonic() - started, 6),
        )
        return outcome


def _settle_long_lived() -> None:
    """Move what the imports left (~280k objects once the Vertex SDK is in) out of the cyclic
    collector's reach: a full collection over them takes ~0.2 s, holding the GIL, at whichever
    event happens to trigger it. They live as long as the process; `gc.freeze` costs nothing."""
    gc.freeze()


def run_deadline(settings: Settings, started: float) -> float:
    """When every wait of the run that began at `started` (monotonic) must stop: inside the
    platform's run limit (FUNCTION_TIMEOUT_SECONDS), with a margin to record the outcome."""
    limit = float(settings.function_timeout_seconds)
    return started + limit - min(RUN_MARGIN_SECONDS, limit / 6)


def _base(event: ObjectEvent) -> dict[str, Any]:
    return {"source_uri": event.uri, "generation": event.generation, "event_id": event.event_id}


def _late_member(upload: artifacts.Upload, record: dict[str, Any]) -> str | None:
    """The optional member this event is for, when the final record was made without it."""
    if upload.kind != "saved_model":
        return None
    relative = upload.trigger.name[len(upload.source_path) :]
    if relative in artifacts.OPTIONAL_MEMBERS and relative not in record.get("members", {}):
        return relative
    return None


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    keys = ("state", "display_name", "model", "version_id", "artifact_uri", "reason")
    return {k: record[k] for k in keys if k in record}


def _default_registry(settings: Settings) -> Callable[[], ModelRegistry]:
    def make() -> ModelRegistry:
        from .registry.vertex import make_registry

        return make_registry(settings)

    return make


def _default_validator(settings: Settings) -> Callable[[], ModelValidator]:
    def make() -> ModelValidator:
        from .validation.validator import get_validator

        return get_validator(settings)

    return make
