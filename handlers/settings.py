"""Settings, read once from the environment at start-up and validated with messages naming the variable.

Every setting is declared once, in `DECLARATIONS`: its environment name, its default, the parser
that checks it and a description. The `Settings` dataclass takes its defaults from there, the
README's settings table is generated from there (`python -m handlers.settings` prints it; a test
compares), and the Terraform contract test checks the function's environment against it.
Shared by design: the function and the CLI read the same settings.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import serving_images
from .errors import SettingsError

GB = 1000**3  # Vertex's artifact limit is 10 GB: decimal gigabytes, not GiB

# The one boolean vocabulary (functions-framework reads FUNCTION_USE_ASGI through click's boolean
# parsing, so this is click's list); the CLI's environment switches use it too.
TRUE_WORDS = ("1", "true", "t", "yes", "y", "on")
FALSE_WORDS = ("0", "false", "f", "no", "n", "off")


def parse_bool(name: str, raw: str) -> bool:
    word = raw.strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise SettingsError(f"{name}={raw!r}: expected 'true' or 'false' (or 1/0, yes/no, on/off).")


def env_flag(env: Mapping[str, str], name: str, *, default: bool = False) -> bool:
    """A boolean switch read outside `Settings` (CLI options); same spellings, same errors."""
    raw = env.get(name, "").strip()
    return default if not raw else parse_bool(name, raw)


# ---- parsers: raw (stripped, non-empty) string -> value, or SettingsError naming the variable --
Parser = Callable[[str, str], Any]


def _text(name: str, raw: str) -> str:
    return raw


def _whole(minimum: int, maximum: int | None = None) -> Parser:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw.replace("_", ""))
        except ValueError:
            raise SettingsError(f"{name}={raw!r} is not a whole number.") from None
        if value < minimum:
            raise SettingsError(f"{name}={value} is too small: the minimum is {minimum}.")
        if maximum is not None and value > maximum:
            raise SettingsError(f"{name}={value} is too large: the maximum is {maximum}.")
        return value

    return parse


def _number(minimum: float | None = None, *, finite: bool = True) -> Parser:
    def parse(name: str, raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{name}={raw!r} is not a number.") from None
        if finite and (value != value or value in (float("inf"), float("-inf"))):
            raise SettingsError(f"{name}={raw!r} is not a finite number.")
        if minimum is not None and not value >= minimum:
            raise SettingsError(f"{name}={value} is too small: the minimum is {minimum}.")
        return value

    return parse


def _choice(*options: str, upper: bool = False) -> Parser:
    def parse(name: str, raw: str) -> str:
        value = raw.upper() if upper else raw.lower()
        if value not in options:
            raise SettingsError(f"{name}={raw!r}: expected one of {', '.join(options)}.")
        return value

    return parse


def _matching(pattern: str, expected: str) -> Parser:
    compiled = re.compile(pattern)

    def parse(name: str, raw: str) -> str:
        if not compiled.fullmatch(raw):
            raise SettingsError(f"{name}={raw!r} is not {expected}.")
        return raw

    return parse


_ENDPOINT_TEMPLATE = re.compile(
    r"(projects/[^/]+/locations/[^/]+/endpoints/)?(?:[A-Za-z0-9_-]|\{model\})+"
)


def _endpoint_template(name: str, raw: str) -> str:
    """An endpoint id/name, or a template of one with `{model}` (the model's id, up to 63
    characters of [a-z0-9_-]); no other placeholder."""
    if not _ENDPOINT_TEMPLATE.fullmatch(raw) or re.search(r"[{}]", raw.replace("{model}", "")):
        raise SettingsError(
            f"{name}={raw!r} is not an endpoint id, projects/P/locations/L/endpoints/E, or a "
            "template of one with {model} (e.g. 'serving-{model}'); {model} is the only "
            "placeholder."
        )
    if len(raw.replace("{model}", "m" * 63).rsplit("/", 1)[-1]) > 128:
        raise SettingsError(f"{name}={raw!r}: the endpoint name would exceed 128 characters.")
    return raw


def _prefix(name: str, raw: str) -> str:
    value = raw if raw.endswith("/") else raw + "/"
    if not re.fullmatch(r"[^\s/][^\r\n]*/", value) or "//" in value:
        raise SettingsError(
            f"{name}={value!r} is not an object-name prefix such as 'models/' "
            "(no leading slash, no empty segments)."
        )
    return value


def _regex_with_model(name: str, raw: str) -> re.Pattern[str]:
    try:
        compiled = re.compile(raw)
    except re.error as exc:
        raise SettingsError(f"{name} is not a valid regex: {exc}") from None
    if "model" not in compiled.groupindex:
        raise SettingsError(
            f"{name} must have a named group `model`, e.g. "
            r"'^models/(?P<model>[^/]+)/(?P<version>[^/]+)/'."
        )
    return compiled


def _policy(name: str, raw: str) -> bool:
    return _choice("new", "keep")(name, raw) == "new"


# `module.path.ClassName`, or a registered name `package>ClassName` (what
# `@keras.saving.register_keras_serializable(package=...)` registers and Keras 3 writes).
OBJECT_ENTRY = r"[A-Za-z_][\w.]*\.[A-Za-z_]\w*|[A-Za-z_][\w.-]*>[A-Za-z_]\w*"
MODULE_ENTRY = r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*"


def _object_list(name: str, raw: str) -> frozenset[str]:
    objects = frozenset(s.strip() for s in raw.split(",") if s.strip())
    for obj in objects:
        if not re.fullmatch(OBJECT_ENTRY, obj):
            raise SettingsError(
                f"{name} entry {obj!r}: expected a registered name 'package>ClassName' "
                "(as @keras.saving.register_keras_serializable writes it) or 'module.path.ClassName'."
            )
    return objects


# The sandbox's layers a setting may require (the keys of `validation.sandbox_layers`, with the
# function process' own non-dumpable as `non_dumpable`). The default: what both Cloud Run
# execution environments provide (gVisor has no Landlock).
SANDBOX_LAYERS = ("seccomp", "no_new_privs", "non_dumpable", "landlock", "caps_dropped",
                  "securebits", "rlimits")  # fmt: skip
DEFAULT_REQUIRED_LAYERS = ("seccomp", "no_new_privs", "non_dumpable")


def _layers(name: str, raw: str) -> tuple[str, ...]:
    if raw.lower() == "none":
        return ()
    layers = tuple(dict.fromkeys(s.strip().lower() for s in raw.split(",") if s.strip()))
    unknown = [x for x in layers if x not in SANDBOX_LAYERS]
    if unknown or not layers:
        raise SettingsError(
            f"{name}={raw!r}: unknown layer {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"expected a comma-separated list of {', '.join(SANDBOX_LAYERS)}, or 'none'."
        )
    return layers


def _module_list(name: str, raw: str) -> tuple[str, ...]:
    """Importable module names, in order; each must be found on this interpreter's path (the
    sandbox worker has the same), without importing it here."""
    import importlib.util

    modules = tuple(dict.fromkeys(s.strip() for s in raw.split(",") if s.strip()))
    for module in modules:
        if not re.fullmatch(MODULE_ENTRY, module):
            raise SettingsError(f"{name} entry {module!r}: expected a module name (a.b.c).")
        top = module.partition(".")[0]
        if importlib.util.find_spec(top) is None:
            raise SettingsError(
                f"{name} entry {module!r}: no module {top!r} is installed beside the function. "
                "Deploy it with the function (a package in requirements.txt, or a module next to "
                "main.py)."
            )
    return modules


def _keras_hub(name: str, raw: str) -> bool:
    """On only where `keras_hub` is installed beside the function (the opt-in `kerashub` extra):
    the sandbox imports it before confinement, so a missing package would fail every load."""
    import importlib.util

    on = parse_bool(name, raw)
    if on and importlib.util.find_spec("keras_hub") is None:
        raise SettingsError(
            f"{name}=true but the package keras_hub is not installed beside the function. Deploy "
            "the kerashub extra (requirements-kerashub.txt; Terraform: keras_hub = true) or unset "
            f"{name}."
        )
    return on


def _url(name: str, raw: str) -> str:
    if re.match(r"^https?://[^/\s]+", raw):
        return raw.rstrip("/")
    # google-cloud-storage accepts a bare host:port for its emulator; keep that working.
    if re.fullmatch(r"[\w.-]+:\d+", raw):
        return f"http://{raw}"
    raise SettingsError(f"{name}={raw!r}: expected http://HOST:PORT.")


@dataclass(frozen=True)
class Declaration:
    env: str
    attr: str
    default: Any
    parse: Parser
    description: str
    shown_default: str = ""  # the README's default column when `default` is not self-explaining
    platform: bool = False  # set by the developer or the platform, never by Terraform

    def readme_default(self) -> str:
        if self.shown_default:
            return self.shown_default
        if self.default is None:
            return "—"
        if isinstance(self.default, bool):
            return f"`{str(self.default).lower()}`"
        return f"`{self.default}`"


_D = Declaration
DECLARATIONS: tuple[Declaration, ...] = (
    _D(
        "GOOGLE_CLOUD_PROJECT",
        "project",
        None,
        _matching(
            r"[a-z][a-z0-9-]{4,28}[a-z0-9]",
            "a project id: 6-30 lowercase letters, digits or hyphens, starting with a letter "
            "(the id, not the number or name)",
        ),
        "project that owns the Vertex AI models",
        shown_default="— (required)",
    ),
    _D(
        "VERTEX_LOCATION",
        "location",
        "us-central1",
        _matching(r"[a-z]+-[a-z]+\d+", "a Vertex AI region such as 'us-central1'"),
        "Vertex AI region; the bucket must be in the same region",
    ),
    _D(
        "MODEL_PREFIX",
        "model_prefix",
        "models/",
        _prefix,
        "object-name prefix watched for model uploads",
    ),
    _D(
        "MODEL_PATH_PATTERN",
        "model_path_pattern",
        None,
        _regex_with_model,
        "regex with named group `model` (and optional `version`) overriding the naming rule",
    ),
    _D(
        "DEFAULT_VERSION_POLICY",
        "make_new_version_default",
        True,
        _policy,
        "`new`: each new version takes the `default` alias; `keep`: leave it where it is",
        shown_default="`new`",
    ),
    _D(
        "ALLOW_CROSS_FOLDER_MODELS",
        "allow_cross_folder_models",
        False,
        parse_bool,
        "`false`: a model belongs to the top-level folder under `MODEL_PREFIX` its first version "
        "came from (the prefix itself for flat uploads), and an upload from another folder that "
        "names it is rejected (`name.owned_by_another_folder`); `true`: any folder may add versions",
    ),
    _D(
        "SERVING_CONTAINER_IMAGE_URI",
        "serving_image",
        "",
        _text,
        "serving container registered with every version: a Vertex prebuilt TF image (refused "
        "past its end of availability, warned 60 days before) or TF Serving as a custom container "
        "(README: Serving images)",
        shown_default=f"`LOCATION-docker.pkg.dev/PROJECT/{serving_images.DEFAULT_REPOSITORY}/"
        f"{serving_images.TF_SERVING_IMAGE}`",
    ),
    _D(
        "ARTIFACT_PREFIX",
        "artifact_prefix",
        "registered/",
        _prefix,
        "where immutable validated copies go; must not overlap `MODEL_PREFIX`",
    ),
    _D(
        "STATE_PREFIX",
        "state_prefix",
        "registrar-state/",
        _prefix,
        "where per-upload records go; must not overlap the other prefixes",
    ),
    _D(
        "NOTIFY_TOPIC",
        "notify_topic",
        None,
        _matching(
            r"projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/topics/[A-Za-z][\w.~+%-]{2,254}",
            "a topic name: expected 'projects/PROJECT/topics/TOPIC'",
        ),
        "`projects/P/topics/T`: one Pub/Sub message per final outcome",
        shown_default="— (off)",
    ),
    _D(
        "LOG_LEVEL",
        "log_level",
        "INFO",
        _choice("DEBUG", "INFO", "WARNING", "ERROR", upper=True),
        "`DEBUG`, `INFO`, `WARNING` or `ERROR`",
    ),
    _D(
        "FUNCTION_TIMEOUT_SECONDS",
        "function_timeout_seconds",
        540,
        _whole(60, 540),
        "the function's run limit (Terraform sets it from `timeout_seconds`): waits on Vertex AI "
        "and on the promotion gate's lock end before it, with time left to write the record",
    ),
    _D(
        "CLAIM_LEASE_SECONDS",
        "claim_lease_seconds",
        900,
        _whole(30),
        "how long a worker's claim blocks others; must be above `FUNCTION_TIMEOUT_SECONDS`",
    ),
    _D(
        "MAX_ARTIFACT_BYTES",
        "max_artifact_bytes",
        10 * GB,
        _whole(1024),
        "largest upload (a `.keras`, or a whole SavedModel directory); Vertex's own limit",
        shown_default="`10000000000` (10 GB)",
    ),
    _D(
        "MAX_UNCOMPRESSED_BYTES",
        "max_uncompressed_bytes",
        12 * GB,
        _whole(1024),
        "largest total uncompressed size of a `.keras`",
        shown_default="`12000000000` (12 GB)",
    ),
    _D(
        "MAX_COMPRESSION_RATIO",
        "max_compression_ratio",
        200.0,
        _number(1.0),
        "largest uncompressed/compressed ratio of a `.keras` member",
        shown_default="`200`",
    ),
    _D(
        "MAX_ARCHIVE_MEMBERS",
        "max_archive_members",
        10_000,
        _whole(3),
        "most members a `.keras` may have",
    ),
    _D(
        "KERAS_EXTRA_ALLOWED_OBJECTS",
        "keras_extra_allowed_objects",
        frozenset(),
        _object_list,
        "comma-separated custom objects to allow beyond Keras built-ins: registered names "
        "`package>ClassName` (what `@keras.saving.register_keras_serializable` writes), or "
        "`module.ClassName`; see [Custom Keras objects](#custom-keras-objects)",
        shown_default="—",
    ),
    _D(
        "KERAS_CUSTOM_OBJECT_MODULES",
        "keras_custom_object_modules",
        (),
        _module_list,
        "comma-separated modules the sandbox imports before loading a `.keras`, so that the "
        "custom objects they register load; deployed with the function",
        shown_default="—",
    ),
    _D(
        "KERAS_HUB",
        "keras_hub",
        False,
        _keras_hub,
        "`true`: `.keras` files may use KerasHub's registered classes (`keras_hub>BertBackbone`, "
        "...; the generated list), and the sandbox imports `keras_hub`; needs the `kerashub` "
        "extra deployed; see [KerasHub (opt-in)](#kerashub-opt-in)",
    ),
    _D(
        "VALIDATION_TIMEOUT_SECONDS",
        "validation_timeout_seconds",
        300,
        _whole(5),
        "wall-clock limit for loading, smoke-testing and exporting one artifact; must be "
        "below `FUNCTION_TIMEOUT_SECONDS`",
    ),
    _D(
        "VALIDATION_MEMORY_MB",
        "validation_memory_mb",
        None,
        _whole(256),
        "memory ceiling of the sandboxed loader",
        shown_default="80% of the instance",
    ),
    _D(
        "VALIDATOR_MAX_USES",
        "validator_max_uses",
        50,
        _whole(1),
        "recycle the sandbox worker after this many artifacts",
    ),
    _D(
        "SANDBOX_REQUIRED_LAYERS",
        "sandbox_required_layers",
        DEFAULT_REQUIRED_LAYERS,
        _layers,
        "sandbox layers without which the function does not validate: an upload is then "
        "redelivered (503, an ERROR naming the layer) until the platform provides them. Any of "
        f"{', '.join(f'`{x}`' for x in SANDBOX_LAYERS)}, or `none`",
        shown_default="`" + ",".join(DEFAULT_REQUIRED_LAYERS) + "`",
    ),
    _D(
        "TEMP_DIR",
        "temp_dir",
        None,
        _text,
        "scratch directory for downloads (in memory on Cloud Functions)",
        shown_default="system temp",
    ),
    _D(
        "DIRECTORY_UPLOAD_WINDOW_SECONDS",
        "directory_upload_window_seconds",
        3600,
        _whole(1),
        "a SavedModel's required files must all be written within this window",
    ),
    _D(
        "FUNCTION_USE_ASGI",
        "use_asgi",
        True,
        parse_bool,
        "functions-framework's own switch. `true`: its uvicorn (ASGI) server; objects that are "
        "not models are answered on the event loop without a thread hop. `false`: gunicorn + "
        "Flask, about a quarter of the events/s, but the only one that also converts the legacy "
        "1st-gen background-event shape (2nd-gen triggers always send CloudEvents)",
    ),
    _D(
        "SERVING_TF_VERSION",
        "serving_tf_version",
        None,
        _matching(r"2\.\d{1,2}", "a TensorFlow minor version such as '2.15'"),
        "TensorFlow version of a custom serving image; prebuilt Vertex images and versioned "
        "`tensorflow/serving:X.Y.Z` images need none (it is read from the image URI)",
        shown_default="from the image URI",
    ),
    _D(
        "PROMOTION_METRIC",
        "promotion_metric",
        None,
        _matching(r"[A-Za-z_][\w.-]{0,127}", "a metric name (letters, digits, _ . -)"),
        "metric that gates the `default` alias; unset: every new version takes `default`",
        shown_default="— (no gate)",
    ),
    _D(
        "PROMOTION_GOAL",
        "promotion_goal",
        "maximize",
        _choice("maximize", "minimize"),
        "`maximize` or `minimize` the promotion metric",
    ),
    _D(
        "PROMOTION_MIN_DELTA",
        "promotion_min_delta",
        0.0,
        _number(0.0),
        "how much better than the current default a new version must be",
        shown_default="`0`",
    ),
    _D(
        "PROMOTION_THRESHOLD",
        "promotion_threshold",
        None,
        _number(),
        "absolute bar the promotion metric must meet (at least, or at most when minimizing)",
    ),
    _D(
        "DEPLOY_ENDPOINT",
        "deploy_endpoint",
        None,
        _endpoint_template,
        "start a canary deployment of each newly promoted default version on the model's own "
        "endpoint: a template where `{model}` is the model's id (e.g. `serving-{model}`), or one "
        "endpoint id / `projects/P/locations/L/endpoints/E` (then only one model can use it)",
        shown_default="— (off)",
    ),
    _D(
        "DEPLOY_TRAFFIC",
        "deploy_traffic",
        10,
        _whole(1, 100),
        "percent of the endpoint's traffic the canary gets (the champion keeps the rest)",
    ),
    _D(
        "DEPLOY_WAIT_SECONDS",
        "deploy_wait_seconds",
        60,
        _whole(0, 480),
        "how long a run waits for a canary's deployment to land (to finish replacing the older "
        "canary) or for another operation on the endpoint; never past the run's deadline",
    ),
    _D(
        "JOB_NAME",
        "job_name",
        None,
        _matching(
            r"(projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/locations/[a-z]+-[a-z]+\d+/jobs/)?"
            r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?",
            "a Cloud Run job: 'projects/P/locations/L/jobs/J' or a job id (then in "
            "GOOGLE_CLOUD_PROJECT and VERTEX_LOCATION)",
        ),
        "the Cloud Run job that takes uploads the function cannot (at or above `HANDOFF_BYTES`, "
        "or too slow for the run's deadline); unset: such uploads are rejected (`too_large_for_"
        "function`)",
        shown_default="— (off)",
    ),
    _D(
        "HANDOFF_BYTES",
        "handoff_bytes",
        None,
        _whole(1),
        "uploads this large or larger go to `JOB_NAME`: the largest upload whose measured peak "
        "(2.0x its size above an idle 0.75 GiB, +5% margin) fits the instance",
        shown_default="(instance memory - 0.75 GiB) / 2.1",
    ),
    _D(
        "JOB_TIMEOUT_SECONDS",
        "job_timeout_seconds",
        3600,
        _whole(60, 168 * 3600),
        "the job's task timeout (Terraform sets it from `job.timeout_seconds`): a job task's "
        "run deadline, as `FUNCTION_TIMEOUT_SECONDS` is the function's",
    ),
    _D(
        "HANDOFF_LEASE_SECONDS",
        "handoff_lease_seconds",
        4 * 3600,
        _whole(120),
        "how long a `handed_off` upload belongs to its job execution; after it, a redelivered "
        "event or `registrar backfill` starts it again (a lost execution). Must be above "
        "`JOB_TIMEOUT_SECONDS`; cover the job's retries too",
    ),
    _D(
        "STORAGE_EMULATOR_HOST",
        "storage_emulator_host",
        None,
        _url,
        "`http://HOST:PORT` of fake-gcs-server (development only)",
        platform=True,
    ),
    _D(
        "CLOUD_RUN_EMULATOR_HOST",
        "cloud_run_emulator_host",
        None,
        _url,
        "`http://HOST:PORT` of the Cloud Run jobs emulator (development only; REST, anonymous "
        "credentials)",
        platform=True,
    ),
    _D(
        "VERTEX_AI_EMULATOR_HOST",
        "vertex_emulator_host",
        None,
        _url,
        "`http://HOST:PORT` of the Vertex AI emulator (development only; REST, anonymous "
        "credentials)",
        platform=True,
    ),
)
_BY_ATTR = {d.attr: d for d in DECLARATIONS}

# name -> description of every variable this code reads (Terraform sets all but the platform's)
ENV_VARS: dict[str, str] = {d.env: d.description for d in DECLARATIONS if not d.platform}
PLATFORM_ENV_VARS = tuple(d.env for d in DECLARATIONS if d.platform)


def _default(attr: str) -> Any:
    return _BY_ATTR[attr].default


@dataclass(frozen=True)
class Settings:
    project: str
    location: str = _default("location")
    model_prefix: str = _default("model_prefix")
    model_path_pattern: re.Pattern[str] | None = _default("model_path_pattern")  # noqa: RUF009
    make_new_version_default: bool = _default("make_new_version_default")
    allow_cross_folder_models: bool = _default("allow_cross_folder_models")
    serving_image: str = _default("serving_image")
    artifact_prefix: str = _default("artifact_prefix")
    state_prefix: str = _default("state_prefix")
    notify_topic: str | None = _default("notify_topic")
    log_level: str = _default("log_level")
    function_timeout_seconds: int = _default("function_timeout_seconds")
    claim_lease_seconds: int = _default("claim_lease_seconds")
    max_artifact_bytes: int = _default("max_artifact_bytes")
    max_uncompressed_bytes: int = _default("max_uncompressed_bytes")
    max_compression_ratio: float = _default("max_compression_ratio")
    max_archive_members: int = _default("max_archive_members")
    keras_extra_allowed_objects: frozenset[str] = _default("keras_extra_allowed_objects")
    keras_custom_object_modules: tuple[str, ...] = _default("keras_custom_object_modules")
    keras_hub: bool = _default("keras_hub")
    validation_timeout_seconds: int = _default("validation_timeout_seconds")
    validation_memory_mb: int | None = _default("validation_memory_mb")
    validator_max_uses: int = _default("validator_max_uses")
    sandbox_required_layers: tuple[str, ...] = _default("sandbox_required_layers")
    temp_dir: str | None = _default("temp_dir")
    directory_upload_window_seconds: int = _default("directory_upload_window_seconds")
    use_asgi: bool = _default("use_asgi")
    serving_tf_version: str | None = _default("serving_tf_version")
    promotion_metric: str | None = _default("promotion_metric")
    promotion_goal: str = _default("promotion_goal")
    promotion_min_delta: float = _default("promotion_min_delta")
    promotion_threshold: float | None = _default("promotion_threshold")
    deploy_endpoint: str | None = _default("deploy_endpoint")
    deploy_traffic: int = _default("deploy_traffic")
    deploy_wait_seconds: int = _default("deploy_wait_seconds")
    job_name: str | None = _default("job_name")
    handoff_bytes: int | None = _default("handoff_bytes")
    job_timeout_seconds: int = _default("job_timeout_seconds")
    handoff_lease_seconds: int = _default("handoff_lease_seconds")
    storage_emulator_host: str | None = _default("storage_emulator_host")
    cloud_run_emulator_host: str | None = _default("cloud_run_emulator_host")
    vertex_emulator_host: str | None = _default("vertex_emulator_host")

    @property
    def sandbox_keras_modules(self) -> tuple[str, ...]:
        """What the sandbox imports before confinement: keras_hub (KERAS_HUB), then the
        operator's KERAS_CUSTOM_OBJECT_MODULES."""
        hub = ("keras_hub",) if self.keras_hub else ()
        return tuple(dict.fromkeys((*hub, *self.keras_custom_object_modules)))

    def for_backfill(self, *, canary: bool) -> Settings:
        """A backfill registers; it deploys nothing unless asked (`--canary`): a bucket of old
        uploads must not start a canary each. The one home of that rule (CLI and fleet tasks)."""
        return self if canary else dataclasses.replace(self, deploy_endpoint=None)

    def __post_init__(self) -> None:
        if not self.serving_image:  # the default depends on the project and region
            image = serving_images.default_image(self.project, self.location)
            object.__setattr__(self, "serving_image", image)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for declared in DECLARATIONS:
            raw = env.get(declared.env, "").strip()
            if raw:
                values[declared.attr] = declared.parse(declared.env, raw)
        if "project" not in values:
            raise SettingsError(
                f"GOOGLE_CLOUD_PROJECT is not set: {ENV_VARS['GOOGLE_CLOUD_PROJECT']}."
            )
        settings = cls(**values)
        _check_together(settings)
        return settings


def _check_together(s: Settings) -> None:
    """Rules that involve more than one setting."""
    for name, value in (("ARTIFACT_PREFIX", s.artifact_prefix), ("STATE_PREFIX", s.state_prefix)):
        if value.startswith(s.model_prefix) or s.model_prefix.startswith(value):
            raise SettingsError(
                f"{name}={value!r} overlaps MODEL_PREFIX={s.model_prefix!r}: objects written "
                "there would trigger registrations themselves. Choose a prefix outside the watched one."
            )
    if s.artifact_prefix.startswith(s.state_prefix) or s.state_prefix.startswith(s.artifact_prefix):
        raise SettingsError(
            f"ARTIFACT_PREFIX={s.artifact_prefix!r} and STATE_PREFIX={s.state_prefix!r} overlap; "
            "keep artifacts and records apart."
        )
    # Every wait of a run ends inside the platform's run limit; a claim outlives the run, so a
    # live worker's claim is never taken over.
    if s.claim_lease_seconds <= s.function_timeout_seconds:
        raise SettingsError(
            f"CLAIM_LEASE_SECONDS={s.claim_lease_seconds} must be above "
            f"FUNCTION_TIMEOUT_SECONDS={s.function_timeout_seconds}: a claim must outlive the "
            "run that holds it, or a slow run's upload is taken over and worked on twice. Raise "
            "CLAIM_LEASE_SECONDS (Terraform: limits.claim_lease_seconds) or lower the timeout."
        )
    if s.handoff_lease_seconds <= s.job_timeout_seconds:
        raise SettingsError(
            f"HANDOFF_LEASE_SECONDS={s.handoff_lease_seconds} must be above "
            f"JOB_TIMEOUT_SECONDS={s.job_timeout_seconds}: a hand-off must outlive its job's "
            "task, or a running execution's upload is started again."
        )
    if s.validation_timeout_seconds >= s.function_timeout_seconds:
        raise SettingsError(
            f"VALIDATION_TIMEOUT_SECONDS={s.validation_timeout_seconds} must be below "
            f"FUNCTION_TIMEOUT_SECONDS={s.function_timeout_seconds}: otherwise the platform ends "
            "a slow validation's run before it can record a rejection. Lower "
            "VALIDATION_TIMEOUT_SECONDS (Terraform: limits.validation_timeout_seconds) or raise "
            "the timeout (Terraform: timeout_seconds)."
        )
    # The serving TensorFlow version every model is checked against: from a prebuilt image's URI,
    # else SERVING_TF_VERSION; a custom image without it, a contradiction, or a version without
    # an op registry stops start-up with what to set. An image past its end of availability is
    # refused per upload instead (a record for each, saying what to set): serving_images.check.
    serving_images.resolve_tf_version(s.serving_image, s.serving_tf_version)


def readme_table() -> str:
    """The README's settings table, generated from the declarations (a test keeps them equal)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{d.env}` | {d.readme_default()} | {d.description} |" for d in DECLARATIONS]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.stdout.write(readme_table())
