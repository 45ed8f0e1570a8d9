"""Serving images as data: which TensorFlow each serves, how long Vertex keeps it, how it runs.

A leaf (imports only `errors`): settings, the pipeline, the registry and the CLI read it.

Two kinds of image:
- Vertex's prebuilt TensorFlow prediction images (`…/vertex-ai/prediction/tf2-cpu.2-15:latest`).
  Vertex retires them: each has an end of availability, after which a version naming it cannot
  be deployed. Their lifecycle is `PREBUILT` below, with its source.
- The official TensorFlow Serving image (`tensorflow/serving:2.20.0`, from Docker Hub), served by
  Vertex as a *custom container* from Artifact Registry (a remote repository that proxies Docker
  Hub, created by the Terraform module). It has no Vertex end of availability; Vertex needs the
  container spec `container_spec` returns, and TF Serving loads `<artifact_uri>/<number>/`
  (`NUMBERED_LAYOUT`).

ONE rule for every caller (registration and `registrar deploy`): `check(image, today)` — past its
end of availability: refused; within `WARN_DAYS`: a warning; otherwise fine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from .errors import SettingsError

# Vertex "Pre-built containers for prediction" page (the TensorFlow table: "End of patch and
# support date", "End of availability"; "only the :latest tag is supported"), checked 2026-11.
PREBUILT_SOURCE = "https://cloud.google.com/vertex-ai/docs/predictions/pre-built-containers"
SUPPORTED_TAGS = ("latest",)
WARN_DAYS = 60  # registration and deploy warn this many days (or fewer) before the date

# The default: TensorFlow Serving 2.20.0, the newest release (tensorflow/serving tag 2.20.0,
# "Update version for 2.20.0 release" #4135, announced in #4129; setup.py pins TF >=2.20.0);
# Docker Hub publishes each release as tensorflow/serving:<version>. TF Serving 2.21 has no
# release, so the validating TF (2.21) is checked against 2.20's op registry instead.
TF_SERVING_VERSION = "2.20.0"
# TF Serving 2.20.0: https://github.com/tensorflow/serving/releases/tag/2.20.0
TF_SERVING_IMAGE = f"tensorflow/serving:{TF_SERVING_VERSION}"  # on Docker Hub
# Terraform's remote repository (terraform/serving_image.tf) is named this by default.
DEFAULT_REPOSITORY = "tensorflow-serving"
# TF Serving's REST port (its Dockerfile: EXPOSE 8501); one port, not one Vertex reserves.
TF_SERVING_PORT = 8501

# Versions with a generated op registry (handlers/validation/scan/serving_registry/tf_X_Y.py);
# a test keeps this list equal to the files.
REGISTRIES = ("2.12", "2.13", "2.14", "2.15", "2.20", "2.21")


@dataclass(frozen=True)
class Prebuilt:
    """One Vertex prebuilt TensorFlow prediction image family (CPU and GPU share dates)."""

    tf_version: str  # "2.15"
    end_of_availability: date
    end_of_patch: date | None = None  # not on record here: not guessed
    supported_tags: tuple[str, ...] = SUPPORTED_TAGS
    source: str = PREBUILT_SOURCE


PREBUILT: dict[str, Prebuilt] = {
    p.tf_version: p
    for p in (
        Prebuilt("2.12", date(2025, 6, 30)),
        Prebuilt("2.13", date(2025, 11, 28)),
        Prebuilt("2.14", date(2027, 1, 14)),
        Prebuilt("2.15", date(2027, 1, 14)),
    )
}
_PREBUILT = re.compile(
    r"^(?:(?:us|europe|asia)-docker\.pkg\.dev/vertex-ai"
    r"|(?:(?:us|eu|asia)\.)?gcr\.io/cloud-aiplatform)"
    r"/prediction/tf2?-(?P<kind>cpu|gpu)\.(?P<major>\d+)-(?P<minor>\d+)"
    r"(?::(?P<tag>[\w.-]+)|@sha256:[0-9a-f]{64})?$"
)
# `…/tensorflow/serving:2.20.0` (or `-gpu`), wherever it is mirrored; a digest pin needs
# SERVING_TF_VERSION since the version cannot be read from it.
_TF_SERVING = re.compile(
    r"^(?:[\w.-]+(?::\d+)?/)*tensorflow/serving:(?P<major>\d+)\.(?P<minor>\d+)\.\d+(?:-gpu)?$"
)


def default_image(project: str, location: str) -> str:
    """The default serving image: TF Serving through the module's Artifact Registry remote
    repository in the Vertex region (Vertex pulls custom images only from Artifact Registry)."""
    return f"{location}-docker.pkg.dev/{project}/{DEFAULT_REPOSITORY}/{TF_SERVING_IMAGE}"


def prebuilt_tf_version(image: str) -> str | None:
    """'2.15' for a Vertex prebuilt TensorFlow prediction image URI, None for any other image."""
    match = _PREBUILT.match(image.strip())
    return f"{int(match['major'])}.{int(match['minor'])}" if match else None


def tf_serving_version(image: str) -> str | None:
    """'2.20' for an official TensorFlow Serving image URI with a version tag, else None."""
    match = _TF_SERVING.match(image.strip())
    return f"{int(match['major'])}.{int(match['minor'])}" if match else None


def is_tf_serving(image: str) -> bool:
    return tf_serving_version(image) is not None or "/tensorflow/serving" in image


def lifecycle(image: str) -> Prebuilt | None:
    """The prebuilt family's lifecycle; None for images Vertex does not retire (custom)."""
    version = prebuilt_tf_version(image)
    return PREBUILT.get(version) if version else None


@dataclass(frozen=True)
class ImageStatus:
    image: str
    ok: bool  # False: past its end of availability (refuse)
    warn: bool  # ok, but within WARN_DAYS of the date
    end_of_availability: date | None
    days_left: int | None
    message: str

    def as_dict(self) -> dict[str, object]:
        return {
            "image": self.image,
            "eol": self.end_of_availability,
            "days_left": self.days_left,
            "ok": self.ok,
            "warn": self.warn,
            "message": self.message,
        }


def today_utc() -> date:
    return datetime.now(UTC).date()


def check(image: str, today: date | None = None, *, replacement: str | None = None) -> ImageStatus:
    """The one rule: refuse past the end of availability, warn within `WARN_DAYS`.

    `replacement`: the image to suggest (the caller knows the project's default URI)."""
    today = today or today_utc()
    family = lifecycle(image)
    if family is None:
        version = prebuilt_tf_version(image)
        note = (
            f"{image}: a prebuilt image of TensorFlow {version} with no end-of-availability "
            f"date on record ({PREBUILT_SOURCE})"
            if version
            else f"{image}: a custom container; Vertex sets no end of availability for it"
        )
        return ImageStatus(image, True, False, None, None, note)
    eol = family.end_of_availability
    left = (eol - today).days
    instead = (
        replacement or f"<REGION>-docker.pkg.dev/<PROJECT>/{DEFAULT_REPOSITORY}/{TF_SERVING_IMAGE}"
    )
    fix = (
        f"Set SERVING_CONTAINER_IMAGE_URI={instead} (TensorFlow Serving {TF_SERVING_VERSION} as "
        "a custom container; Terraform: variable serving_image), and move registered versions "
        "with `registrar move-image --all`"
    )
    tag = _PREBUILT.match(image.strip())["tag"]  # type: ignore[index]
    if left < 0:
        return ImageStatus(
            image,
            False,
            False,
            eol,
            left,
            f"serving image {image} reached its end of availability on {eol.isoformat()} "
            f"({PREBUILT_SOURCE}): Vertex no longer deploys it. {fix}.",
        )
    if tag is not None and tag not in family.supported_tags:
        latest = image.strip().rsplit(":", 1)[0] + ":" + family.supported_tags[0]
        return ImageStatus(
            image,
            False,
            False,
            eol,
            left,
            f"serving image {image}: only the "
            f"{', '.join(':' + t for t in family.supported_tags)} tag of Vertex's prebuilt "
            f"images is supported ({PREBUILT_SOURCE}). Set SERVING_CONTAINER_IMAGE_URI={latest}, "
            f"or {instead} (available beyond {eol.isoformat()}).",
        )
    if left <= WARN_DAYS:
        return ImageStatus(
            image,
            True,
            True,
            eol,
            left,
            f"serving image {image} reaches its end of availability on {eol.isoformat()} "
            f"({left} days left); versions registered with it cannot be deployed after "
            f"that. {fix}.",
        )
    return ImageStatus(
        image, True, False, eol, left, f"{image} is available until {eol.isoformat()}"
    )


def resolve_tf_version(image: str, declared: str | None) -> str:
    """The TensorFlow version the serving image runs, or `SettingsError` saying what to set."""
    read = prebuilt_tf_version(image) or tf_serving_version(image)
    if read and declared and declared != read:
        raise SettingsError(
            f"SERVING_TF_VERSION={declared} contradicts SERVING_CONTAINER_IMAGE_URI={image}, an "
            f"image of TensorFlow {read}. Unset SERVING_TF_VERSION (the version is read from "
            "the image URI) or choose the image of that version."
        )
    version = read or declared
    if not version:
        raise SettingsError(
            f"SERVING_CONTAINER_IMAGE_URI={image} names neither a Vertex prebuilt TensorFlow "
            "image nor a versioned tensorflow/serving image, so the TensorFlow version it serves "
            "with cannot be read from it, and every model must be checked against that "
            "version's ops. Set SERVING_TF_VERSION to the TensorFlow (Serving) version inside "
            "the image, e.g. SERVING_TF_VERSION=2.20."
        )
    if version not in REGISTRIES:
        raise SettingsError(
            f"The serving image runs TensorFlow {version}, for which this registrar has no op "
            f"registry (it has {', '.join(REGISTRIES)}); models could not be checked against "
            "it. Use a serving image of one of those versions, or generate the registry from "
            f"that version's wheel: tensorflow-cpu=={version}.* in a venv, then "
            "`python dev/gen_op_lists.py registry > "
            f"handlers/validation/scan/serving_registry/tf_{version.replace('.', '_')}.py`."
        )
    return version


# ---- how the image runs on Vertex ---------------------------------------------------------------
def numbered_layout(image: str) -> bool:
    """Does the image load `<artifact_uri>/1/saved_model.pb` (TF Serving) rather than
    `<artifact_uri>/saved_model.pb` (Vertex prebuilt images)?"""
    return prebuilt_tf_version(image) is None and is_tf_serving(image)


@dataclass(frozen=True)
class ContainerSpec:
    """The fields of Vertex's ModelContainerSpec (and the SDK's `serving_container_*`)."""

    image_uri: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    predict_route: str = ""
    health_route: str = ""

    def as_api(self) -> dict[str, object]:
        """The REST/GAPIC `containerSpec` fields (empty ones left out)."""
        spec: dict[str, object] = {"image_uri": self.image_uri}
        if self.command:
            spec["command"] = list(self.command)
        if self.args:
            spec["args"] = list(self.args)
        if self.ports:
            spec["ports"] = [{"container_port": p} for p in self.ports]
        if self.predict_route:
            spec["predict_route"] = self.predict_route
        if self.health_route:
            spec["health_route"] = self.health_route
        return spec


def container_spec(image: str, model_name: str) -> ContainerSpec:
    """What Vertex needs to run `image` for a model; `model_name` ([a-z0-9_-]) names the model
    inside TF Serving and in its routes. Prebuilt images need only their URI."""
    if not numbered_layout(image):
        return ContainerSpec(image)
    # Vertex expands $(AIP_STORAGE_URI) (the gs:// copy of artifact_uri) in command and args;
    # TF Serving reads gs:// itself and serves the highest numbered version under it.
    return ContainerSpec(
        image,
        command=("/usr/bin/tensorflow_model_server",),
        args=(
            f"--rest_api_port={TF_SERVING_PORT}",
            f"--model_name={model_name}",
            "--model_base_path=$(AIP_STORAGE_URI)",
        ),
        ports=(TF_SERVING_PORT,),
        predict_route=f"/v1/models/{model_name}:predict",
        health_route=f"/v1/models/{model_name}",
    )
