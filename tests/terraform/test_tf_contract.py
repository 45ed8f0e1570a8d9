"""Code <-> Terraform contract: what the module deploys must match what the code expects.

Each test reads both sides (main.py / handlers/ via ast or import, Terraform via python-hcl2) so a
change on one side without the other fails here, offline.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from handlers import serving_images
from handlers.intake.events import ACCEPTED_EVENT_TYPES
from handlers.settings import ENV_VARS, PLATFORM_ENV_VARS, Settings
from tests.terraform.tfparse import ROOT, local_ref, one

_QUOTED = re.compile(r'"([^"\\]*)"')


def _walk_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [str(k), *_walk_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in _walk_strings(v)]
    return []


# --- entry point & runtime --------------------------------------------------------------------------


def test_entry_point_is_a_cloudevent_function_in_main_py(
    module: dict[str, Any], function: dict[str, Any]
) -> None:
    build = one(function["build_config"])
    entry_point = local_ref(build["entry_point"], module)
    tree = ast.parse((ROOT / "main.py").read_text(encoding="utf-8"))
    # Top level, or in main.py's if/else choosing the server flavour (FUNCTION_USE_ASGI).
    top = [*tree.body, *(n for s in tree.body if isinstance(s, ast.If) for n in s.body + s.orelse)]
    defs = [
        n
        for n in top
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == entry_point
    ]
    assert defs, f"main.py defines no top-level {entry_point}()"
    for fn in defs:
        decorators = [ast.unparse(d) for d in fn.decorator_list]
        assert {"functions_framework.cloud_event", "functions_framework.aio.cloud_event"} & set(
            decorators
        ), f"{entry_point} must be a functions-framework CloudEvent function, has {decorators}"
        args = fn.args
        assert len(args.args) == 1 and not (args.vararg or args.kwarg or args.kwonlyargs), (
            f"{entry_point} must take exactly one argument (the CloudEvent)"
        )
        assert args.args[0].annotation is not None
        assert ast.unparse(args.args[0].annotation) == "CloudEvent"
        assert fn.returns is not None and ast.unparse(fn.returns) == "None"


def test_runtime_is_a_python_the_code_supports(
    module: dict[str, Any], function: dict[str, Any]
) -> None:
    runtime = local_ref(one(function["build_config"])["runtime"], module)
    match = re.fullmatch(r"python3(\d+)", runtime)
    assert match, f"runtime {runtime!r} is not a Python runtime"
    python = Version(f"3.{match.group(1)}")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    supported = SpecifierSet(pyproject["project"]["requires-python"])
    assert python in supported, f"{runtime} does not satisfy requires-python {supported}"
    # Deploy the Python every test here ran on, not a neighbour that merely satisfies the range.
    tested = f"python{sys.version_info.major}{sys.version_info.minor}"
    assert runtime == tested, f"function.tf deploys {runtime}, the tests run on {tested}"


# --- environment ------------------------------------------------------------------------------------


def _env_maps(module: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return module["locals"]["env_always"], module["locals"]["env_optional"]


def test_function_environment_is_built_from_the_two_env_maps(
    module: dict[str, Any], function: dict[str, Any]
) -> None:
    service = one(function["service_config"])
    assert service["environment_variables"] == "${local.environment_variables}"
    merged = module["locals"]["environment_variables"]
    assert "local.env_always" in merged and "local.env_optional" in merged, merged
    assert "if v != null" in merged, "optional settings must be left out when null"
    # Build-time variables would not reach the running function.
    assert "environment_variables" not in one(function["build_config"])


def test_every_setting_the_code_reads_is_set_or_deliberately_defaulted(
    module: dict[str, Any],
) -> None:
    always, optional = _env_maps(module)
    overlap = set(always) & set(optional)
    assert not overlap, f"set both always and optionally: {sorted(overlap)}"
    in_terraform = set(always) | set(optional)
    missing = set(ENV_VARS) - in_terraform
    unknown = in_terraform - set(ENV_VARS)
    assert not missing, (
        f"read by handlers/settings.py but absent from function.tf: {sorted(missing)}"
    )
    assert not unknown, f"set by function.tf but not read by the code (typo?): {sorted(unknown)}"


def test_required_settings_are_always_set(module: dict[str, Any]) -> None:
    always, _ = _env_maps(module)
    # Settings.from_env raises without GOOGLE_CLOUD_PROJECT; python312 does not set it for us.
    assert always["GOOGLE_CLOUD_PROJECT"] == "${var.project_id}"
    for name in ("MODEL_PREFIX", "ARTIFACT_PREFIX", "STATE_PREFIX"):
        assert name in always, f"{name} drives IAM conditions too; it must always be set"


def test_emulator_variables_are_never_deployed(module: dict[str, Any]) -> None:
    text = " ".join(_walk_strings(module))
    for name in PLATFORM_ENV_VARS:
        assert name not in text, f"{name} is for local runs only and must not appear in Terraform"


def test_terraform_defaults_equal_the_code_defaults(module: dict[str, Any]) -> None:
    code = Settings(project="some-project")
    variables = module["variable"]
    assert variables["model_prefix"]["default"] == code.model_prefix
    assert variables["artifact_prefix"]["default"] == code.artifact_prefix
    assert variables["state_prefix"]["default"] == code.state_prefix
    # serving_image null: the module's TF Serving image, as the code's default names it
    assert variables["serving_image"]["default"] is None
    assert variables["tf_serving_version"]["default"] == serving_images.TF_SERVING_VERSION
    assert variables["serving_repository_id"]["default"] == serving_images.DEFAULT_REPOSITORY
    assert module["locals"]["serving_image"] == (
        "${coalesce(var.serving_image, "
        '"${local.vertex_location}-docker.pkg.dev/${var.project_id}/${var.serving_repository_id}'
        '/tensorflow/serving:${var.tf_serving_version}")}'
    ), module["locals"]["serving_image"]
    assert variables["log_level"]["default"] == code.log_level
    assert variables["asgi_server"]["default"] is code.use_asgi
    assert (variables["default_version_policy"]["default"] == "new") is (
        code.make_new_version_default
    )
    assert variables["region"]["default"] == code.location
    # function.tf's precondition assumes the code's validation timeout.
    fallback = module["locals"]["validation_timeout_seconds"]
    assert fallback == (
        f"${{coalesce(var.limits.validation_timeout_seconds, {code.validation_timeout_seconds})}}"
    ), fallback
    # ... and its lease precondition the code's claim lease.
    lease = module["locals"]["claim_lease_seconds"]
    assert lease == f"${{coalesce(var.limits.claim_lease_seconds, {code.claim_lease_seconds})}}"


def test_limits_description_states_the_code_defaults(module: dict[str, Any]) -> None:
    code = Settings(project="some-project")
    description = module["variable"]["limits"]["description"]
    stated = dict(re.findall(r"(\w+) \[([^\]]+)\]", description))
    attributes = re.findall(r"(\w+) = optional", module["variable"]["limits"]["type"])
    assert set(stated) == set(attributes), "every limit's code default must be in the description"
    _, optional = _env_maps(module)
    for attribute in attributes:
        assert optional.get(attribute.upper()) == f"${{var.limits.{attribute}}}", (
            f"limits.{attribute} must feed {attribute.upper()}"
        )
    units = {"GiB": 1024**3, "GB": 1000**3}
    for name, text in stated.items():
        actual = getattr(code, name)
        number = re.fullmatch(r"(\d+)(?: (GiB|GB))?", text)
        if number is None:  # e.g. "80% of the instance's memory": derived at run time
            assert actual is None, f"{name}: code default is {actual}, description says {text!r}"
            continue
        expected = int(number.group(1)) * units.get(number.group(2) or "", 1)
        assert actual == expected, f"{name}: code default {actual}, description says {text!r}"


# --- events & trigger -------------------------------------------------------------------------------


def test_trigger_event_types_are_the_ones_the_handler_accepts(module: dict[str, Any]) -> None:
    expression = module["locals"]["event_type"]
    assert set(_QUOTED.findall(expression)) == set(ACCEPTED_EVENT_TYPES), expression


def test_trigger_modes_select_the_right_event_and_transport(
    module: dict[str, Any], function: dict[str, Any]
) -> None:
    expression = module["locals"]["event_type"]
    assert re.fullmatch(
        r'\$\{local\.is_direct \? "google\.cloud\.storage\.object\.v1\.finalized" : '
        r'"google\.cloud\.pubsub\.topic\.v1\.messagePublished"\}',
        expression,
    ), expression
    assert module["locals"]["is_direct"] == '${var.trigger_mode == "direct"}'
    trigger = one(function["event_trigger"])
    assert trigger["event_type"] == "${local.event_type}"
    assert "google_pubsub_topic.uploads" in trigger["pubsub_topic"]
    (filters,) = [d["event_filters"] for d in trigger["dynamic"] if "event_filters" in d]
    assert one(filters["content"])["attribute"] == "bucket"
    assert filters["for_each"].startswith("${local.is_direct ?")


def test_notification_mode_filters_on_the_model_prefix(module: dict[str, Any]) -> None:
    notification = module["resource"]["google_storage_notification"]["uploads"]
    assert notification["payload_format"] == "JSON_API_V1"
    assert notification["event_types"] == ["OBJECT_FINALIZE"]
    assert notification["object_name_prefix"] == "${var.model_prefix}"
    assert "google_pubsub_topic_iam_member.gcs_publishes_uploads" in notification["depends_on"][0]


def test_failed_events_are_retried(function: dict[str, Any]) -> None:
    assert one(function["event_trigger"])["retry_policy"] == "RETRY_POLICY_RETRY"


# --- service limits ---------------------------------------------------------------------------------


def test_service_config_is_internal_single_concurrency_and_within_limits(
    module: dict[str, Any], function: dict[str, Any]
) -> None:
    service = one(function["service_config"])
    assert service["ingress_settings"] == "ALLOW_INTERNAL_ONLY"
    assert service["max_instance_request_concurrency"] == 1
    assert service["timeout_seconds"] == "${var.timeout_seconds}"
    always, _ = _env_maps(module)
    # The code's waits end inside the run limit only if it knows the same number.
    assert always["FUNCTION_TIMEOUT_SECONDS"] == "${tostring(var.timeout_seconds)}"
    timeout = module["variable"]["timeout_seconds"]
    assert timeout["default"] == Settings(project="some-project").function_timeout_seconds
    assert timeout["default"] <= 540
    assert "var.timeout_seconds <= 540" in one(timeout["validation"])["condition"]
    assert service["available_memory"] == "${var.memory}"
    assert service["available_cpu"] == "${local.cpu}"
    memory = module["variable"]["memory"]["default"]
    gib = int(memory.removesuffix("Gi"))
    assert gib >= 4, "TensorFlow plus an in-memory /tmp needs at least 4Gi"
    cpu_for_memory = module["locals"]["cpu_for_memory"]
    for size, cpu in cpu_for_memory.items():
        if int(size.removesuffix("Gi")) > 4:
            assert int(cpu) >= 2, f"{size} needs at least 2 vCPU, map says {cpu}"


# --- source archive ---------------------------------------------------------------------------------


def _fileset(root: Path, pattern: str) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.glob(pattern) if p.is_file()}


def _archived_files(module: dict[str, Any]) -> set[str]:
    files: set[str] = set()
    for pattern in module["locals"]["source_patterns"]:
        files |= _fileset(ROOT, pattern)
    return files


def test_archive_is_built_from_the_include_list(module: dict[str, Any]) -> None:
    archive = module["data"]["archive_file"]["source"]
    assert "source_dir" not in archive, "packaging the whole tree would ship tests/ and .venv/"
    (sources,) = [d["source"] for d in archive["dynamic"] if "source" in d]
    assert sources["for_each"] == "${local.source_files}"
    assert "fileset(local.source_dir, pattern)" in module["locals"]["source_files"]


def test_archive_holds_the_function_and_nothing_else(module: dict[str, Any]) -> None:
    files = _archived_files(module)
    assert {"main.py", "requirements.txt", "handlers/__init__.py"} <= files, sorted(files)
    excluded = ("tests/", "terraform/", "dev/", "bench/", "emulators/", ".venv", ".git")
    leaked = sorted(f for f in files if f.startswith(excluded) or "__pycache__" in f)
    assert not leaked, f"archive would ship {leaked}"
    assert all(f in {"main.py", "requirements.txt"} or f.startswith("handlers/") for f in files)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_archived_code_imports_only_archived_or_installed_modules(module: dict[str, Any]) -> None:
    files = _archived_files(module)
    local_roots = {p.name for p in ROOT.iterdir() if p.is_dir()} | {
        p.stem for p in ROOT.glob("*.py")
    }
    for name in sorted(f for f in files if f.endswith(".py")):
        for imported in _imports(ROOT / name):
            top = imported.split(".")[0]
            if top not in local_roots:
                continue  # third party: requirements.txt's business
            assert top in {"handlers", "main"}, (
                f"{name} imports {imported}, which is not deployed (only main.py and handlers/ are)"
            )
            candidates = {
                imported.replace(".", "/") + ".py",
                imported.replace(".", "/") + "/__init__.py",
                imported.rsplit(".", 1)[0].replace(".", "/") + ".py",  # from pkg.mod import name
            }
            assert candidates & files, f"{name} imports {imported}, missing from the archive"


# --- IAM --------------------------------------------------------------------------------------------


def test_nothing_is_public(module: dict[str, Any]) -> None:
    for text in _walk_strings(module):
        lowered = text.lower()
        assert "allusers" not in lowered and "allauthenticatedusers" not in lowered, text


def test_no_primitive_or_admin_roles(module: dict[str, Any]) -> None:
    roles = [s for s in _walk_strings(module) if s.startswith("roles/")]
    assert roles, "no roles found: the parser or the module changed shape"
    for role in roles:
        assert role not in {"roles/owner", "roles/editor", "roles/viewer"}, role
        assert "admin" not in role.lower(), f"{role} is broader than the function needs"


def test_runtime_bucket_roles_are_conditioned_on_their_prefix(module: dict[str, Any]) -> None:
    members = module["resource"]["google_storage_bucket_iam_member"]
    expected = {
        "runtime_read_models": ("roles/storage.objectViewer", "models"),
        "runtime_read_artifacts": ("roles/storage.objectViewer", "artifacts"),
        "runtime_create_artifacts": ("roles/storage.objectCreator", "artifact_prefix"),
        "runtime_state_records": ("roles/storage.objectUser", "state"),
    }
    # The Cloud Run job (job.tf) gets exactly the function's grants, under its own account.
    jobs = {name.replace("runtime_", "job_"): grant for name, grant in expected.items()}
    assert set(members) == set(expected) | set(jobs), sorted(members)
    conditions = module["locals"]["prefix_conditions"]
    for name, (role, prefix) in {**expected, **jobs}.items():
        member = members[name]
        assert member["role"] == role, (name, member["role"])
        account = "job" if name.startswith("job_") else "runtime"
        assert member["member"] == f"${{local.{account}_member}}"
        if account == "job":
            assert member["count"] == "${local.job_enabled ? 1 : 0}", name
        expression = one(member["condition"])["expression"]
        if prefix in ("models", "artifacts", "state"):
            assert expression == f"${{local.prefix_conditions.{prefix}}}", expression
        else:
            assert f"${{local.objects_path}}${{var.{prefix}}}" in expression, expression
    for key, var in {"models": "model", "artifacts": "artifact", "state": "state"}.items():
        assert re.search(rf"\b{key} = var\.{var}_prefix\b", conditions), conditions
    assert "resource.name.startsWith" in conditions
    assert "storage.googleapis.com/objectListPrefix" in conditions
    assert module["locals"]["objects_path"] == "projects/_/buckets/${var.bucket_name}/objects/"


def test_runtime_project_roles_are_only_aiplatform_user(module: dict[str, Any]) -> None:
    project_members = module["resource"]["google_project_iam_member"]
    runtime = {
        name: body["role"] for name, body in project_members.items() if "runtime" in body["member"]
    }
    assert runtime == {"runtime_aiplatform_user": "roles/aiplatform.user"}, runtime


def test_the_job_has_the_functions_project_role_and_nothing_more(module: dict[str, Any]) -> None:
    project_members = module["resource"]["google_project_iam_member"]
    job = {name: b["role"] for name, b in project_members.items() if "job_member" in b["member"]}
    assert job == {"job_aiplatform_user": "roles/aiplatform.user"}, job
    notify = module["resource"]["google_pubsub_topic_iam_member"]["job_notify"]
    assert notify["count"] == "${local.job_enabled && var.notify_topic != null ? 1 : 0}"


def test_the_function_may_start_only_its_job_with_overrides(module: dict[str, Any]) -> None:
    """run.invoker lacks run.jobs.runWithOverrides and run.developer can change the job: a
    custom role with the two permissions, bound on the job resource, to the runtime account."""
    role = module["resource"]["google_project_iam_custom_role"]["job_runner"]
    assert sorted(role["permissions"]) == ["run.jobs.run", "run.jobs.runWithOverrides"]
    binding = module["resource"]["google_cloud_run_v2_job_iam_member"]["function_runs_job"]
    assert binding["name"] == "${google_cloud_run_v2_job.registrar[0].name}"
    assert binding["role"] == "${google_project_iam_custom_role.job_runner[0].id}"
    assert binding["member"] == "${local.runtime_member}"
    runtime_project_roles = {
        b["role"]
        for b in module["resource"]["google_project_iam_member"].values()
        if b["member"] == "${local.runtime_member}"
    }
    assert not {r for r in runtime_project_roles if "run" in r}, runtime_project_roles


def test_the_job_runs_the_functions_own_build_with_its_settings(module: dict[str, Any]) -> None:
    job = module["resource"]["google_cloud_run_v2_job"]["registrar"]
    task = one(one(job["template"])["template"])
    container = one(task["containers"])
    assert container["image"] == (
        "${data.google_cloud_run_v2_service.function[0].template[0].containers[0].image}"
    )
    service = module["data"]["google_cloud_run_v2_service"]["function"]
    assert "google_cloudfunctions2_function.registrar.service_config[0].service" in service["name"]
    # The entry the code has: handlers/job.py, through the buildpack launcher.
    assert container["command"][-3:] == ["python", "-m", "handlers.job"]
    assert (ROOT / "handlers" / "job.py").is_file()
    assert task["service_account"] == "${google_service_account.job[0].email}"
    assert task["timeout"] == "${var.job.timeout_seconds}s"
    environment = module["locals"]["job_environment"]
    assert "local.environment_variables" in environment and "JOB_TIMEOUT_SECONDS" in environment
    optional = module["locals"]["env_optional"]
    assert optional["JOB_NAME"] == "${var.job.enabled ? local.job_path : null}"
    assert module["locals"]["job_path"].endswith("/jobs/${local.job_id}")
    assert job["name"] == "${local.job_id}"


def test_trigger_account_invokes_only_this_service(module: dict[str, Any]) -> None:
    invoker = module["resource"]["google_cloud_run_service_iam_member"]["trigger_invoker"]
    assert invoker["role"] == "roles/run.invoker"
    assert "google_service_account.trigger" in invoker["member"]
    assert "google_cloudfunctions2_function.registrar" in invoker["service"]
    project_roles = [b["role"] for b in module["resource"]["google_project_iam_member"].values()]
    assert "roles/run.invoker" not in project_roles, "run.invoker must not be project-wide"
    receiver = module["resource"]["google_project_iam_member"]["trigger_event_receiver"]
    assert receiver["role"] == "roles/eventarc.eventReceiver"


def test_notify_topic_publish_is_granted_only_when_set(module: dict[str, Any]) -> None:
    notify = module["resource"]["google_pubsub_topic_iam_member"]["runtime_notify"]
    assert notify["count"] == "${var.notify_topic == null ? 0 : 1}"
    assert notify["topic"] == "${var.notify_topic}"
    assert notify["role"] == "roles/pubsub.publisher"


def test_gcs_service_agent_publishes_on_the_uploads_topic_in_notification_mode(
    module: dict[str, Any],
) -> None:
    on_topic = module["resource"]["google_pubsub_topic_iam_member"]["gcs_publishes_uploads"]
    assert on_topic["topic"] == "${google_pubsub_topic.uploads[0].id}"
    assert "google_storage_project_service_account.gcs" in on_topic["member"]
    project_wide = module["resource"]["google_project_iam_member"]["gcs_pubsub_publisher"]
    assert project_wide["count"] == "${local.is_direct ? 1 : 0}", "project-wide only when direct"


# --- buckets ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["models", "source"])
def test_buckets_are_private_uniform_and_versioned(module: dict[str, Any], name: str) -> None:
    bucket = module["resource"]["google_storage_bucket"][name]
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert one(bucket["versioning"])["enabled"] is True


# --- monitoring -------------------------------------------------------------------------------------


def _constants(node: ast.expr) -> list[str]:
    """String constants an expression can evaluate to: "a", or "a" if busy else "b"."""
    if isinstance(node, ast.Constant):
        return [str(node.value)]
    if isinstance(node, ast.IfExp):
        return [*_constants(node.body), *_constants(node.orelse)]
    return []


def _code_outcomes() -> set[str]:
    outcomes: set[str] = set()
    for path in (ROOT / "handlers").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            if name.endswith("Outcome") and node.args:
                outcomes.update(_constants(node.args[0]))
            for keyword in node.keywords:
                if keyword.arg == "outcome":
                    outcomes.update(_constants(keyword.value))
    return outcomes


def test_metric_filters_name_outcomes_the_code_logs(module: dict[str, Any]) -> None:
    code = _code_outcomes()
    assert {"rejected", "failed", "registered"} <= code, f"code logs outcomes {sorted(code)}"
    texts = [
        *_walk_strings(module["resource"]["google_logging_metric"]),
        module["locals"]["failures_filter"],
    ]
    named = set(re.findall(r'jsonPayload\.outcome="(\w+)"', " ".join(texts)))
    assert {"rejected", "failed"} <= named, named
    assert named <= code, f"metrics filter on outcomes the code never logs: {sorted(named - code)}"


def test_failure_alert_watches_the_failures_metric(module: dict[str, Any]) -> None:
    alert = module["resource"]["google_monitoring_alert_policy"]["failures"]
    condition = one(one(alert["conditions"])["condition_threshold"])
    assert "google_logging_metric.failures.name" in condition["filter"]
    # rejections are logged at ERROR as well; they must not page anyone
    assert "NOT jsonPayload.outcome:*" in module["locals"]["failures_filter"]


# --- the dashboard (dashboard.tf) --------------------------------------------------------------------


def test_the_dashboard_shows_every_timed_stage_and_the_canary_steps_the_code_logs(
    module: dict[str, Any],
) -> None:
    """The per-stage latency metrics cover every stage the pipeline times, and the canary metric
    reads the field the registration's summary line carries (`deployment.state`)."""
    source = (ROOT / "handlers" / "pipeline.py").read_text(encoding="utf-8")
    timed = set(re.findall(r'\btimed\(timings, "(\w+)"\)', source))
    stages = module["locals"]["timed_stages"]
    assert timed and timed <= set(_QUOTED.findall(str(stages))), (timed, stages)
    metrics = module["resource"]["google_logging_metric"]
    assert "jsonPayload.deployment.state" in metrics["canary_steps"]["filter"]
    dashboard = module["resource"]["google_monitoring_dashboard"]["registrar"]
    text = str(dashboard["dashboard_json"]) + str(module["locals"]["dashboard_tiles"])
    for name in ("outcomes", "rejected", "failures", "canary_steps", "endpoint_changes",
                 "stage_seconds"):  # fmt: skip
        assert f"google_logging_metric.{name}" in text, name
    assert "EndpointService" in module["locals"]["endpoint_audit"]
