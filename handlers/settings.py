"""Settings, read once from the environment at start-up and validated with messages naming the variable.

`ENV_VARS` is the single list of every variable this code reads; the Terraform contract test
checks it against the function's `environment_variables`. Keep the two in step.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from handlers.errors import SettingsError

DEFAULT_SERVING_IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"

# Variables the platform or the developer sets that Terraform deliberately does not.
PLATFORM_ENV_VARS = ("VERTEX_AI_EMULATOR_HOST", "STORAGE_EMULATOR_HOST")

ENV_VARS: dict[str, str] = {
    # name: one-line description (README's settings table says the same, with defaults)
    "GOOGLE_CLOUD_PROJECT": "project that owns the Vertex AI models (required)",
    "VERTEX_LOCATION": "Vertex AI region",
    "MODEL_PREFIX": "object-name prefix watched for model uploads",
    "MODEL_PATH_PATTERN": "regex with named group `model` (and optional `version`) overriding naming",
    "DEFAULT_VERSION_POLICY": "`new`: each new version takes the default alias; `keep`: leave it",
    "SERVING_CONTAINER_IMAGE_URI": "serving container registered with every version",
    "ARTIFACT_PREFIX": "where validated, immutable copies of artifacts are written",
    "STATE_PREFIX": "where per-upload records (claims, outcomes) are written",
    "NOTIFY_TOPIC": "optional Pub/Sub topic (projects/P/topics/T) for one message per outcome",
    "LOG_LEVEL": "DEBUG, INFO, WARNING or ERROR",
    "CLAIM_LEASE_SECONDS": "how long a worker's claim on an upload blocks others",
    "MAX_ARTIFACT_BYTES": "largest accepted upload (bytes, whole SavedModel directory or .keras)",
    "MAX_UNCOMPRESSED_BYTES": "largest total uncompressed size of a .keras archive",
    "MAX_COMPRESSION_RATIO": "largest uncompressed/compressed ratio of a .keras member",
    "MAX_ARCHIVE_MEMBERS": "most members a .keras archive may have",
    "KERAS_EXTRA_ALLOWED_OBJECTS": "comma-separated extra `module.ClassName` objects allowed in configs",
    "VALIDATION_TIMEOUT_SECONDS": "wall-clock limit for loading + smoke-testing one artifact",
    "VALIDATION_MEMORY_MB": "memory ceiling of the sandboxed loader (default: 80% of the instance)",
    "VALIDATOR_MAX_USES": "recycle the sandboxed loader process after this many artifacts",
    "TEMP_DIR": "scratch directory for downloads (in-memory on Cloud Functions)",
    "DIRECTORY_UPLOAD_WINDOW_SECONDS": "a SavedModel's files must all be written within this window",
    "FUNCTION_USE_ASGI": "functions-framework's server: `true` uvicorn (ASGI), `false` gunicorn+Flask",
}

_VERTEX_REGION = re.compile(r"^[a-z]+-[a-z]+\d+$")
_TOPIC = re.compile(r"^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/topics/[A-Za-z][\w.~+%-]{2,254}$")
_PREFIX = re.compile(r"^[^\s/][^\r\n]*/$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# functions-framework reads FUNCTION_USE_ASGI through click's boolean parsing: accept what it accepts.
_TRUE = ("1", "true", "t", "yes", "y", "on")
_FALSE = ("0", "false", "f", "no", "n", "off")


@dataclass(frozen=True)
class Settings:
    project: str
    location: str = "us-central1"
    model_prefix: str = "models/"
    model_path_pattern: re.Pattern[str] | None = None
    make_new_version_default: bool = True
    serving_image: str = DEFAULT_SERVING_IMAGE
    artifact_prefix: str = "registered/"
    state_prefix: str = "registrar-state/"
    notify_topic: str | None = None
    log_level: str = "INFO"
    claim_lease_seconds: int = 900
    max_artifact_bytes: int = 10 * 1024**3  # Vertex's artifact limit is 10 GB
    max_uncompressed_bytes: int = 12 * 1024**3
    max_compression_ratio: float = 200.0
    max_archive_members: int = 10_000
    keras_extra_allowed_objects: frozenset[str] = field(default_factory=frozenset)
    validation_timeout_seconds: int = 300
    validation_memory_mb: int | None = None  # None: derived from the instance's memory
    validator_max_uses: int = 50
    temp_dir: str | None = None
    directory_upload_window_seconds: int = 3600
    use_asgi: bool = True
    vertex_emulator_host: str | None = None
    storage_emulator_host: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        get = _Reader(env)
        project = get.str("GOOGLE_CLOUD_PROJECT", required=True)
        assert project is not None
        if not re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", project):
            raise SettingsError(
                f"GOOGLE_CLOUD_PROJECT={project!r} is not a project id: expected 6-30 lowercase "
                "letters, digits or hyphens, starting with a letter (the id, not the number or name)."
            )
        location = get.str("VERTEX_LOCATION", default="us-central1")
        assert location is not None
        if not _VERTEX_REGION.match(location):
            raise SettingsError(
                f"VERTEX_LOCATION={location!r} is not a Vertex AI region such as 'us-central1'."
            )
        model_prefix = get.prefix("MODEL_PREFIX", "models/")
        artifact_prefix = get.prefix("ARTIFACT_PREFIX", "registered/")
        state_prefix = get.prefix("STATE_PREFIX", "registrar-state/")
        for name, value in (("ARTIFACT_PREFIX", artifact_prefix), ("STATE_PREFIX", state_prefix)):
            if value.startswith(model_prefix) or model_prefix.startswith(value):
                raise SettingsError(
                    f"{name}={value!r} overlaps MODEL_PREFIX={model_prefix!r}: objects written there "
                    "would trigger registrations themselves. Choose a prefix outside the watched one."
                )
        if artifact_prefix.startswith(state_prefix) or state_prefix.startswith(artifact_prefix):
            raise SettingsError(
                f"ARTIFACT_PREFIX={artifact_prefix!r} and STATE_PREFIX={state_prefix!r} overlap; "
                "keep artifacts and records apart."
            )
        pattern = get.str("MODEL_PATH_PATTERN")
        compiled = None
        if pattern:
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise SettingsError(f"MODEL_PATH_PATTERN is not a valid regex: {exc}") from None
            if "model" not in compiled.groupindex:
                raise SettingsError(
                    "MODEL_PATH_PATTERN must have a named group `model`, e.g. "
                    r"'^models/(?P<model>[^/]+)/(?P<version>[^/]+)/'."
                )
        policy = (get.str("DEFAULT_VERSION_POLICY", default="new") or "").lower()
        if policy not in ("new", "keep"):
            raise SettingsError(f"DEFAULT_VERSION_POLICY={policy!r}: expected 'new' or 'keep'.")
        topic = get.str("NOTIFY_TOPIC")
        if topic and not _TOPIC.match(topic):
            raise SettingsError(
                f"NOTIFY_TOPIC={topic!r} is not a topic name: expected 'projects/PROJECT/topics/TOPIC'."
            )
        log_level = (get.str("LOG_LEVEL", default="INFO") or "").upper()
        if log_level not in _LOG_LEVELS:
            raise SettingsError(
                f"LOG_LEVEL={log_level!r}: expected one of {', '.join(_LOG_LEVELS)}."
            )
        extra = get.str("KERAS_EXTRA_ALLOWED_OBJECTS") or ""
        extra_objects = frozenset(s.strip() for s in extra.split(",") if s.strip())
        for obj in extra_objects:
            if not re.fullmatch(r"[A-Za-z_][\w.]*\.[A-Za-z_]\w*", obj):
                raise SettingsError(
                    f"KERAS_EXTRA_ALLOWED_OBJECTS entry {obj!r}: expected 'module.path.ClassName'."
                )
        memory = get.int("VALIDATION_MEMORY_MB", default=None, minimum=256)
        return cls(
            project=project,
            location=location,
            model_prefix=model_prefix,
            model_path_pattern=compiled,
            make_new_version_default=policy == "new",
            serving_image=get.str("SERVING_CONTAINER_IMAGE_URI", default=DEFAULT_SERVING_IMAGE)
            or DEFAULT_SERVING_IMAGE,
            artifact_prefix=artifact_prefix,
            state_prefix=state_prefix,
            notify_topic=topic or None,
            log_level=log_level,
            claim_lease_seconds=get.int("CLAIM_LEASE_SECONDS", default=900, minimum=30) or 900,
            max_artifact_bytes=get.int("MAX_ARTIFACT_BYTES", default=10 * 1024**3, minimum=1024)
            or 0,
            max_uncompressed_bytes=get.int(
                "MAX_UNCOMPRESSED_BYTES", default=12 * 1024**3, minimum=1024
            )
            or 0,
            max_compression_ratio=get.float("MAX_COMPRESSION_RATIO", default=200.0, minimum=1.0),
            max_archive_members=get.int("MAX_ARCHIVE_MEMBERS", default=10_000, minimum=3) or 0,
            keras_extra_allowed_objects=extra_objects,
            validation_timeout_seconds=get.int("VALIDATION_TIMEOUT_SECONDS", default=300, minimum=5)
            or 300,
            validation_memory_mb=memory,
            validator_max_uses=get.int("VALIDATOR_MAX_USES", default=50, minimum=1) or 50,
            temp_dir=get.str("TEMP_DIR"),
            directory_upload_window_seconds=get.int(
                "DIRECTORY_UPLOAD_WINDOW_SECONDS", default=3600, minimum=1
            )
            or 3600,
            use_asgi=get.bool("FUNCTION_USE_ASGI", default=True),
            vertex_emulator_host=get.url("VERTEX_AI_EMULATOR_HOST"),
            storage_emulator_host=get.url("STORAGE_EMULATOR_HOST"),
        )


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def str(self, name: str, *, default: str | None = None, required: bool = False) -> str | None:
        value = self._env.get(name, "").strip()
        if not value:
            if required:
                raise SettingsError(f"{name} is not set: {ENV_VARS.get(name, name)}.")
            return default
        return value

    def bool(self, name: str, *, default: bool) -> bool:
        raw = self.str(name)
        if raw is None:
            return default
        if raw.lower() in _TRUE or raw.lower() in _FALSE:
            return raw.lower() in _TRUE
        raise SettingsError(f"{name}={raw!r}: expected 'true' or 'false'.")

    def int(self, name: str, *, default: int | None, minimum: int) -> int | None:
        raw = self.str(name)
        if raw is None:
            return default
        try:
            value = int(raw.replace("_", ""))
        except ValueError:
            raise SettingsError(f"{name}={raw!r} is not a whole number.") from None
        if value < minimum:
            raise SettingsError(f"{name}={value} is too small: the minimum is {minimum}.")
        return value

    def float(self, name: str, *, default: float, minimum: float) -> float:
        raw = self.str(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{name}={raw!r} is not a number.") from None
        if not value >= minimum:
            raise SettingsError(f"{name}={value} is too small: the minimum is {minimum}.")
        return value

    def prefix(self, name: str, default: str) -> str:
        value = self.str(name, default=default) or default
        if not value.endswith("/"):
            value += "/"
        if not _PREFIX.match(value) or "//" in value:
            raise SettingsError(
                f"{name}={value!r} is not an object-name prefix such as 'models/' "
                "(no leading slash, no empty segments)."
            )
        return value

    def url(self, name: str) -> str | None:
        value = self.str(name)
        if value is None:
            return None
        if not re.match(r"^https?://[^/\s]+", value):
            # google-cloud-storage accepts a bare host:port for its emulator; keep that working.
            if re.fullmatch(r"[\w.-]+:\d+", value):
                return f"http://{value}"
            raise SettingsError(f"{name}={value!r}: expected http://HOST:PORT.")
        return value.rstrip("/")
