"""The emulator's state and Vertex's registry semantics, independent of HTTP.

One lock guards everything, so every API call is atomic (the races tests provoke, e.g. two first
uploads with the same model_id, resolve exactly as on Vertex: one wins, the other gets 409).
Mutations take effect when the call is accepted; long-running operations only delay when the
client *sees* them done (`operation_polls` GetOperation calls answer `done: false` first).

Labels: the labels of a model's first upload are the *model's* labels; every version also has its
own. Vertex returns both merged ("Both the model labels and the version labels are merged when a
model is returned", UpdateModelRequest docs), so every rendered version - and every filter - sees
`{**model.labels, **version.labels}`: a version's own label wins on a conflict.

Deployments: the endpoint service (another module) tells the store which versions are deployed
through `set_deployment_lookup`; DeleteModelVersion / DeleteModel refuse deployed versions.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from emulators.vertex import containers, evaluations, filters, rules
from emulators.vertex.artifacts import ArtifactChecker
from emulators.vertex.errors import (
    already_exists,
    failed_precondition,
    invalid,
    not_found,
)
from emulators.vertex.paging import page
from emulators.vertex.persist import (
    Operation,
    load_operations,
    poll_operation,
    start_operation,
    with_etag,
    write_state,
)
from emulators.vertex.resources import (
    DELETE_METADATA,
    EMPTY,
    MODEL_FIELDS,
    OUTPUT_ONLY,
    UPLOAD_FIELDS,
    UPLOAD_METADATA,
    UPLOAD_RESPONSE,
    camel_keys,
    now,
    parse_model_name,
)

DEFAULT = rules.DEFAULT_ALIAS
# (model name without a version, version id) -> is that version deployed to an endpoint?
DeploymentLookup = Callable[[str, str], bool]


@dataclass
class Version:
    version_id: str
    fields: dict[str, Any]  # the client's Model fields that are stored as sent
    labels: dict[str, str]
    aliases: list[str]  # user aliases; `default` is Model.default_version
    create_time: str
    update_time: str
    # ModelEvaluations of this version: id -> stored fields (evaluations.py), createTime included
    evaluations: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Model:
    name: str
    display_name: str
    create_time: str
    update_time: str
    default_version: str = "1"
    next_version: int = 1
    versions: dict[str, Version] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # model-level: the first upload's


class Store:
    def __init__(
        self,
        state_file: str | None = None,
        operation_polls: int = 0,
        artifacts: ArtifactChecker | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self._state_file = state_file
        self.operation_polls = operation_polls
        self.artifacts = artifacts  # None: artifact directories are not looked into
        self.today_override: date | None = None  # the emulator's "today" (serving-image dates)
        self._models: dict[str, Model] = {}
        self._operations: dict[str, Operation] = {}
        self._counter = 0
        self._deployment_lookup: DeploymentLookup | None = None
        if state_file and os.path.exists(state_file):
            self._load(state_file)

    # ---- deployments (the endpoint service's hook) ----------------------------------------
    def set_deployment_lookup(self, lookup: DeploymentLookup | None) -> DeploymentLookup | None:
        """Install `lookup(model_name, version_id) -> bool`; returns the previous one.

        `model_name` is `projects/P/locations/L/models/M` (no `@version`) and `version_id` the
        version's id ("1", "2", ...). The endpoint service registers a lookup that answers
        whether that version backs a DeployedModel; DeleteModelVersion and DeleteModel then
        refuse deployed versions with FAILED_PRECONDITION, as Vertex does. `None` removes the
        lookup (nothing counts as deployed). The lookup outlives `reset()`: it is wiring, not
        state.

        The store calls `lookup` while holding its own (re-entrant) lock, so `lookup` must not
        wait for a lock that another thread may hold while it calls into the Store (read a set
        under a lock that is never held across Store calls, or a snapshot); calling Store
        methods from inside `lookup` on the same thread is fine.
        """
        with self._lock:
            previous, self._deployment_lookup = self._deployment_lookup, lookup
            return previous

    def is_deployed(self, model_name: str, version_id: str) -> bool:
        """Whether version `version_id` of `model_name` (no `@`) is deployed to an endpoint."""
        lookup = self._deployment_lookup
        return bool(lookup and lookup(model_name, version_id))

    # ---- admin ---------------------------------------------------------------------------
    def today(self) -> date:
        return self.today_override or datetime.now(UTC).date()

    def reset(self) -> None:
        with self._lock:
            self._models.clear()
            self._operations.clear()
            self._counter = 0
            self._save()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "models": {
                    name: [self._render(m, v) for v in m.versions.values()]
                    for name, m in self._models.items()
                },
                "operations": len(self._operations),
                "operation_polls": self.operation_polls,
                "storage_url": self.artifacts.storage_url if self.artifacts else None,
            }

    # ---- ModelService --------------------------------------------------------------------
    def upload_model(self, project: str, location: str, body: dict[str, Any]) -> dict[str, Any]:
        rules.check_parent(project, location)
        parent = f"projects/{project}/locations/{location}"
        body = camel_keys(body)
        rules.no_unknown(body, UPLOAD_FIELDS, "UploadModelRequest")
        if body.get("parent") not in (None, parent):
            raise invalid(f"parent {body['parent']!r} does not match the URL's {parent!r}.")
        spec = body.get("model")
        if not isinstance(spec, dict):
            raise invalid("UploadModelRequest.model is required.")
        spec = camel_keys(spec, nested=("containerSpec", "predictSchemata"))
        rules.no_unknown(spec, MODEL_FIELDS, "model")
        rules.check_display_name(spec.get("displayName"))
        labels = rules.check_labels(spec.get("labels"))
        requested = spec.get("versionAliases") or []
        aliases = rules.check_aliases(a for a in requested if a != DEFAULT)
        if spec.get("artifactUri"):
            rules.check_artifact_uri(spec["artifactUri"])
        rules.check_container_spec(spec)
        containers.check(spec["containerSpec"], self.today())
        if spec.get("artifactUri") and self.artifacts is not None:
            # Outside the lock: a slow storage endpoint must not stall every other call.
            self.artifacts.check(spec["artifactUri"], spec["containerSpec"]["imageUri"], location)
        stored = {
            k: v
            for k, v in spec.items()
            if k not in OUTPUT_ONLY and k not in ("labels", "versionAliases", "displayName")
        }
        with self._lock:
            stamp = now()
            if body.get("parentModel"):
                model = self._parent_model(body["parentModel"], parent)
            else:
                model = self._create_model(parent, body.get("modelId"), spec["displayName"], stamp)
                model.labels = dict(labels)
            version_id = str(model.next_version)
            model.next_version += 1
            version = Version(version_id, stored, labels, [], stamp, stamp)
            model.versions[version_id] = version
            model.update_time = stamp
            self._assign(model, version, aliases)
            if DEFAULT in requested or len(model.versions) == 1:
                model.default_version = version_id
            response = {
                "@type": UPLOAD_RESPONSE,
                "model": model.name,
                "modelVersionId": version_id,
            }
            return self._operation(model.name, UPLOAD_METADATA, response, stamp)

    def get_model(self, name: str) -> dict[str, Any]:
        with self._lock:
            model, version = self._resolve(name)
            return self._render(model, version)

    def list_models(
        self, project: str, location: str, query: dict[str, str | None]
    ) -> dict[str, Any]:
        rules.check_parent(project, location)
        parent = f"projects/{project}/locations/{location}/models/"
        match = filters.parse(query.get("filter"), allowed=("display_name", "displayName", "model"))
        with self._lock:
            items = [
                (m, m.versions[m.default_version])
                for name, m in self._models.items()
                if name.startswith(parent)
            ]
            items = [(m, v) for m, v in items if match(self._record(m, v))]
            rendered = [self._render(m, v) for m, v in items]
        return page(rendered, "models", query, ("displayName", "createTime", "updateTime"))

    def list_versions(self, name: str, query: dict[str, str | None]) -> dict[str, Any]:
        *_, selector = parse_model_name(name)
        if selector:
            raise invalid(f"ListModelVersions takes a model name without a version: {name!r}.")
        match = filters.parse(query.get("filter"), allowed=())
        with self._lock:
            model = self._model(name)
            rendered = [
                self._render(model, v)
                for v in model.versions.values()
                if match(self._record(model, v))
            ]
        return page(rendered, "models", query, ("createTime", "updateTime"))

    def merge_version_aliases(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        *_, selector = parse_model_name(name)
        if not selector:
            raise invalid(f"MergeVersionAliases needs a version: {name!r} has no '@VERSION'.")
        changes = camel_keys(body).get("versionAliases") or []
        if not changes:
            raise invalid("MergeVersionAliasesRequest.version_aliases is required.")
        add = [a for a in changes if not a.startswith("-")]
        remove = [a[1:] for a in changes if a.startswith("-")]
        if DEFAULT in remove:
            raise invalid(
                "The 'default' alias cannot be removed; assign it to another version instead."
            )
        add_set, remove_set = set(add), set(remove)
        add_user = rules.check_aliases(a for a in add if a != DEFAULT and a not in remove_set)
        remove_user = rules.check_aliases(a for a in remove if a not in add_set)
        with self._lock:
            model, version = self._resolve(name)
            self._assign(model, version, add_user)
            version.aliases = [a for a in version.aliases if a not in remove_user]
            if DEFAULT in add:
                model.default_version = version.version_id
            version.update_time = model.update_time = now()
            self._save()
            return self._render(model, version)

    def delete_model_version(self, name: str) -> dict[str, Any]:
        *_, selector = parse_model_name(name)
        if not selector:
            raise invalid(f"DeleteModelVersion needs a version: {name!r} has no '@VERSION'.")
        with self._lock:
            model, version = self._resolve(name)
            if len(model.versions) == 1:
                raise failed_precondition(
                    f"Version {version.version_id} is the only version of {model.name}; "
                    "delete the model instead."
                )
            if self.is_deployed(model.name, version.version_id):
                raise failed_precondition(
                    f"Version {version.version_id} of {model.name} is deployed to an endpoint; "
                    "undeploy it before deleting it."
                )
            del model.versions[version.version_id]
            if model.default_version == version.version_id:
                # "When you delete a model version that has the default alias assigned, the alias
                # is automatically assigned to the next most recent version."
                model.default_version = max(model.versions, key=int)
            model.update_time = now()
            return self._operation(model.name, DELETE_METADATA, {"@type": EMPTY}, now())

    def delete_model(self, name: str) -> dict[str, Any]:
        *_, selector = parse_model_name(name)
        if selector:
            raise invalid(f"DeleteModel takes a model name without a version: {name!r}.")
        with self._lock:
            model = self._model(name)
            deployed = [v for v in model.versions if self.is_deployed(model.name, v)]
            if deployed:
                raise failed_precondition(
                    f"Model {model.name} cannot be deleted: version(s) {', '.join(deployed)} "
                    "are deployed to an endpoint; undeploy them first."
                )
            del self._models[model.name]
            return self._operation(model.name, DELETE_METADATA, {"@type": EMPTY}, now())

    # ---- ModelEvaluations (evaluations.py) -----------------------------------------------
    def import_model_evaluation(self, parent: str, body: dict[str, Any]) -> dict[str, Any]:
        """ImportModelEvaluation into the version `parent` names (`models/M`: the default)."""
        parse_model_name(parent)
        stored = evaluations.check_import(parent, body)
        with self._lock:
            model, version = self._resolve(parent)
            self._counter += 1
            evaluation_id = str(2_000_000_000_000_000_000 + self._counter)
            stored["createTime"] = now()
            version.evaluations[evaluation_id] = stored
            self._save()
            return evaluations.render(model.name, evaluation_id, stored)

    def get_model_evaluation(self, name: str) -> dict[str, Any]:
        model_name, evaluation_id = evaluations.parse_name(name)
        *_, selector = parse_model_name(model_name)
        with self._lock:
            model, named = self._resolve(model_name)
            for version in model.versions.values():
                stored = version.evaluations.get(evaluation_id)
                if stored is not None and (selector is None or version is named):
                    return evaluations.render(model.name, evaluation_id, stored)
            raise not_found(f"ModelEvaluation {name} not found.")

    def list_model_evaluations(self, parent: str, query: dict[str, str | None]) -> dict[str, Any]:
        """The evaluations of the version `parent` names (`models/M`: the default version).

        The filter is "the standard list filter" (undocumented fields): `display_name` /
        `displayName` with `=` / `!=` is served, anything else is refused.
        """
        parse_model_name(parent)
        match = filters.parse(
            query.get("filter"), allowed=("display_name", "displayName"), labels=False
        )
        with self._lock:
            model, version = self._resolve(parent)
            rendered = [
                evaluations.render(model.name, evaluation_id, stored)
                for evaluation_id, stored in version.evaluations.items()
            ]
        rendered = [e for e in rendered if match({"displayName": e.get("displayName", "")})]
        return page(rendered, "modelEvaluations", query, ())

    def get_operation(self, name: str) -> dict[str, Any]:
        with self._lock:
            return poll_operation(self._operations, name)

    # ---- internals -----------------------------------------------------------------------
    def _create_model(
        self, parent: str, model_id: str | None, display_name: str, stamp: str
    ) -> Model:
        if model_id:
            rules.check_model_id(model_id)
        else:
            self._counter += 1
            model_id = str(1_000_000_000_000_000_000 + self._counter)
        name = f"{parent}/models/{model_id}"
        if name in self._models:
            raise already_exists(f"Model {name} already exists.")
        model = Model(name, display_name, stamp, stamp)
        self._models[name] = model
        return model

    def _parent_model(self, parent_model: str, parent: str) -> Model:
        project, location, _, selector = parse_model_name(parent_model)
        if selector:
            raise invalid(f"parent_model {parent_model!r} must not name a version.")
        if f"projects/{project}/locations/{location}" != parent:
            raise invalid(f"parent_model {parent_model!r} is not under {parent!r}.")
        return self._model(parent_model)

    def _model(self, name: str) -> Model:
        model = self._models.get(name)
        if model is None:
            raise not_found(f"Model {name} not found.")
        return model

    def _resolve(self, name: str) -> tuple[Model, Version]:
        project, location, model_id, selector = parse_model_name(name)
        model = self._model(f"projects/{project}/locations/{location}/models/{model_id}")
        if selector is None or selector == DEFAULT:
            return model, model.versions[model.default_version]
        if selector in model.versions:
            return model, model.versions[selector]
        for version in model.versions.values():
            if selector in version.aliases:
                return model, version
        raise not_found(f"Model {model.name} has no version or alias {selector!r}.")

    def _assign(self, model: Model, version: Version, aliases: list[str]) -> None:
        """Aliases are unique within a model: assigning one moves it from its current holder."""
        for other in model.versions.values():
            if other is not version:
                other.aliases = [a for a in other.aliases if a not in aliases]
        version.aliases += [a for a in aliases if a not in version.aliases]

    def _operation(
        self, model_name: str, metadata_type: str, response: dict[str, Any], stamp: str
    ) -> dict[str, Any]:
        self._counter += 1
        name = f"{model_name}/operations/{self._counter}"
        answer = start_operation(
            self._operations, name, metadata_type, response, stamp, self.operation_polls
        )
        self._save()
        return answer

    def _record(self, model: Model, version: Version) -> dict[str, Any]:
        return {
            "model": model.name.rsplit("/", 1)[1],
            "displayName": model.display_name,
            "labels": _merged_labels(model, version),
        }

    def _render(self, model: Model, version: Version) -> dict[str, Any]:
        is_default = model.default_version == version.version_id
        out = dict(version.fields)
        out.update(
            name=model.name,
            versionId=version.version_id,
            versionAliases=([DEFAULT] if is_default else []) + version.aliases,
            versionCreateTime=version.create_time,
            versionUpdateTime=version.update_time,
            displayName=model.display_name,
            createTime=model.create_time,
            updateTime=model.update_time,
            modelSourceInfo={"sourceType": "CUSTOM"},
        )
        labels = _merged_labels(model, version)
        if labels:
            out["labels"] = labels
        if "containerSpec" in out:
            out["supportedDeploymentResourcesTypes"] = ["DEDICATED_RESOURCES"]
        return with_etag(out)

    def _save(self) -> None:
        if not self._state_file:
            return
        data = {
            "counter": self._counter,
            "models": [asdict(m) for m in self._models.values()],
            "operations": {n: asdict(o) for n, o in self._operations.items()},
        }
        write_state(self._state_file, data)

    def _load(self, path: str) -> None:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        self._counter = data.get("counter", 0)
        for raw in data.get("models", []):
            versions = {k: Version(**v) for k, v in raw.pop("versions").items()}
            if "labels" not in raw and "1" in versions:  # a state file from before model labels
                raw["labels"] = dict(versions["1"].labels)
            self._models[raw["name"]] = Model(**raw, versions=versions)
        self._operations.update(load_operations(data.get("operations", {})))


def _merged_labels(model: Model, version: Version) -> dict[str, str]:
    """Model labels merged with the version's own; the version's win on a conflict."""
    return {**model.labels, **version.labels}
