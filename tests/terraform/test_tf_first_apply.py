"""The first `terraform apply` on a fresh project succeeds (issue 12, section 4), and the nits.

Static checks read the parsed module; behaviour is evaluated by Terraform itself with
`terraform console` on a provider-free probe (tfconsole.py): variable validation, the environment
the function gets, the failures metric's filter, and the existing bucket's postconditions.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from handlers.settings import Settings
from tests.terraform import tfconsole
from tests.terraform.logfilter import matches
from tests.terraform.tfparse import one

needs_terraform = pytest.mark.skipif(
    tfconsole.TERRAFORM is None, reason="terraform binary not on PATH: not evaluated"
)


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory, module: dict[str, Any]) -> Path:
    # `self` of the existing bucket's postconditions, as a variable the tests set.
    extra = '\nvariable "fake_self" {\n  type    = any\n  default = null\n}\n'
    return tfconsole.make_probe(tmp_path_factory.mktemp("tf-first-apply"), extra)


def _depends_on(body: dict[str, Any]) -> str:
    return " ".join(body.get("depends_on", []))


# --- APIs before service accounts -------------------------------------------------------------------


def test_service_accounts_wait_for_the_iam_api(module: dict[str, Any]) -> None:
    assert "iam.googleapis.com" in module["locals"]["apis"]
    accounts = module["resource"]["google_service_account"]
    assert set(accounts) == {"runtime", "trigger", "build", "job"}
    for name, body in accounts.items():
        # The whole for_each resource (not one key), so this also holds with enable_apis = false.
        assert "${google_project_service.required}" in body.get("depends_on", []), (
            f"google_service_account.{name} must depend on google_project_service.required"
        )


# --- waits ------------------------------------------------------------------------------------------


def test_time_provider_is_declared(module: dict[str, Any]) -> None:
    (terraform,) = module["terraform"]
    assert one(terraform["required_providers"])["time"]["source"] == "hashicorp/time"


def test_alert_policy_waits_for_its_log_based_metric(module: dict[str, Any]) -> None:
    sleep = module["resource"]["time_sleep"]["failures_metric"]
    policy = module["resource"]["google_monitoring_alert_policy"]["failures"]
    assert sleep["count"] == policy["count"] == "${var.failure_alert.enabled ? 1 : 0}"
    # Starts once the metric exists, and is replaced (waited for again) with the metric.
    assert sleep["triggers"] == {"metric": "${google_logging_metric.failures.id}"}
    assert sleep["create_duration"] == "${var.failure_alert.metric_wait_seconds}s"
    assert "time_sleep.failures_metric" in _depends_on(policy)


@needs_terraform
def test_metric_wait_defaults_to_minutes_and_is_bounded(probe: Path) -> None:
    assert tfconsole.value(probe, "var.failure_alert.metric_wait_seconds") == 300
    assert tfconsole.value(probe, "var.failure_alert.enabled") is True
    assert tfconsole.rejected(probe, "failure_alert", failure_alert={"metric_wait_seconds": -1})
    assert tfconsole.rejected(probe, "failure_alert", failure_alert={"metric_wait_seconds": 3600})


DOCUMENTED_BUILD_ROLES = (
    {"roles/run.builder"},
    {"roles/logging.logWriter", "roles/artifactregistry.writer", "roles/storage.objectAdmin"},
)


def test_build_account_gets_the_roles_google_documents(module: dict[str, Any]) -> None:
    members = module["resource"]["google_project_iam_member"]
    build = {b["role"] for b in members.values() if "google_service_account.build" in b["member"]}
    assert build in DOCUMENTED_BUILD_ROLES, f"build account roles {sorted(build)}"
    for body in members.values():
        if "google_service_account.build" in body["member"]:
            assert "condition" not in body and "dynamic" not in body, "documented grants are whole"
            assert body["count"] == "${var.build_service_account_email == null ? 1 : 0}"


def test_function_waits_60s_after_the_grants_it_needs(
    module: dict[str, Any], function: dict[str, Any]
) -> None:
    sleep = module["resource"]["time_sleep"]["iam_propagation"]
    assert sleep["create_duration"] == "60s"  # the provider's own Cloud Functions examples
    triggers = " ".join(sleep["triggers"].values())
    for grant in (
        "google_project_iam_member.build",  # the build reads the source zip with it
        "google_project_iam_member.gcs_pubsub_publisher",  # direct trigger creation checks it
        "google_pubsub_topic_iam_member.gcs_publishes_uploads",
        "google_project_iam_member.trigger_event_receiver",
        "google_project_iam_member.runtime_aiplatform_user",
        "google_storage_bucket_iam_member.runtime_read_models",
    ):
        assert grant in triggers, f"time_sleep.iam_propagation does not wait for {grant}"
    assert "time_sleep.iam_propagation" in _depends_on(function)
    # The function no longer races the grants directly (it waits for the sleep that follows them).
    assert "google_project_iam_member.build" not in _depends_on(function)


# --- bucket location = vertex_location ----------------------------------------------------------


def test_created_bucket_is_placed_in_the_vertex_location(module: dict[str, Any]) -> None:
    bucket = module["resource"]["google_storage_bucket"]["models"]
    assert bucket["location"] == "${upper(local.created_bucket_location)}"
    assert module["locals"]["created_bucket_location"] == (
        "${lower(coalesce(var.bucket_location, local.vertex_location))}"
    )


@needs_terraform
@pytest.mark.parametrize(
    ("variables", "location"),
    [
        ({}, "us-central1"),
        ({"vertex_location": "europe-west4"}, "europe-west4"),
        ({"region": "europe-west1", "vertex_location": "europe-west4"}, "europe-west4"),
        ({"vertex_location": "europe-west4", "bucket_location": "EUROPE-WEST4"}, "europe-west4"),
    ],
)
def test_created_bucket_location_follows_vertex(
    probe: Path, variables: dict[str, str], location: str
) -> None:
    assert tfconsole.value(probe, "local.created_bucket_location", **variables) == location
    assert tfconsole.value(probe, "local.vertex_location", **variables) == location


@needs_terraform
@pytest.mark.parametrize(
    "variables",
    [
        {"bucket_location": "US"},  # multi-region: not the Vertex region
        {"bucket_location": "europe-west4"},  # region us-central1 = Vertex location
        {"vertex_location": "europe-west4", "bucket_location": "us-central1"},
    ],
)
def test_created_bucket_elsewhere_fails_at_plan_time(
    probe: Path, variables: dict[str, str]
) -> None:
    assert tfconsole.rejected(probe, "bucket_location", **variables), variables


@needs_terraform
def test_bucket_location_is_ignored_for_an_existing_bucket(probe: Path) -> None:
    assert not tfconsole.rejected(
        probe, "bucket_location", create_bucket=False, bucket_location="US"
    )


def _postconditions(module: dict[str, Any]) -> list[str]:
    existing = module["data"]["google_storage_bucket"]["existing"]
    assert "depends_on" not in existing, "depends_on would defer the read (and the check) to apply"
    return [c["condition"] for c in one(existing["lifecycle"])["postcondition"]]


@needs_terraform
@pytest.mark.parametrize(
    ("bucket", "variables", "holds"),
    [
        ({"location": "US-CENTRAL1", "uniform_bucket_level_access": True}, {}, True),
        ({"location": "US", "uniform_bucket_level_access": True}, {}, False),
        ({"location": "NAM4", "uniform_bucket_level_access": True}, {}, False),
        ({"location": "US-CENTRAL1", "uniform_bucket_level_access": False}, {}, False),
        (
            {"location": "EUROPE-WEST4", "uniform_bucket_level_access": True},
            {"vertex_location": "europe-west4"},
            True,
        ),
        (
            {"location": "US-CENTRAL1", "uniform_bucket_level_access": True},
            {"vertex_location": "europe-west4"},
            False,
        ),
    ],
)
def test_existing_bucket_is_checked_at_plan_time(
    module: dict[str, Any],
    probe: Path,
    bucket: dict[str, Any],
    variables: dict[str, Any],
    holds: bool,
) -> None:
    conditions = _postconditions(module)
    assert any("self.location" in c for c in conditions), conditions
    assert any("self.uniform_bucket_level_access" in c for c in conditions), conditions
    expression = " && ".join(
        f"({tfconsole.unwrap(c).replace('self.', 'var.fake_self.')})" for c in conditions
    )
    result = tfconsole.value(probe, expression, create_bucket=False, fake_self=bucket, **variables)
    assert result is holds, (bucket, variables, conditions)


# --- runtime is in test_tf_contract.py (test_runtime_is_a_python_the_code_supports) -------------

# --- failures metric: one count per failed delivery ---------------------------------------------

_STDOUT = "projects/my-project/logs/run.googleapis.com%2Fstdout"
_REQUESTS = "projects/my-project/logs/run.googleapis.com%2Frequests"
_RESOURCE = {"type": "cloud_run_revision", "labels": {"service_name": "model-registrar"}}


def _line(severity: str, log: str = _STDOUT, **payload: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"resource": _RESOURCE, "logName": log, "severity": severity}
    if payload:
        entry["jsonPayload"] = payload
    return entry


def _request(status: int) -> dict[str, Any]:
    entry = _line("ERROR" if status >= 500 else "INFO", _REQUESTS)
    entry["httpRequest"] = {"status": status}
    return entry


# What one delivery leaves in Cloud Logging, and how often the failures metric may count it.
DELIVERIES = {
    "failed (ASGI: 503)": (
        [_line("ERROR", outcome="failed", reason="vertex_unavailable"), _request(503)],
        1,
    ),
    "crash (uncaught exception: 500)": (
        [
            _line("ERROR", message="Exception in ASGI application", stack_trace="Traceback ..."),
            _request(500),
        ],
        1,
    ),
    "start-up crash (plain stderr text)": (
        [_line("ERROR", "projects/my-project/logs/run.googleapis.com%2Fstderr")],
        1,
    ),
    "rejected": (
        [_line("ERROR", outcome="rejected", reason="keras.lambda_layer"), _request(204)],
        0,
    ),
    "in progress elsewhere (503)": ([_line("INFO", outcome="in_progress"), _request(503)], 0),
    "registered": ([_line("INFO", outcome="registered"), _request(204)], 0),
    "another service's failure": (
        [
            {
                **_line("ERROR", outcome="failed"),
                "resource": {**_RESOURCE, "labels": {"service_name": "other"}},
            }
        ],
        0,
    ),
}


@needs_terraform
@pytest.mark.parametrize("delivery", DELIVERIES)
def test_failures_metric_counts_each_failed_delivery_once(
    module: dict[str, Any], probe: Path, delivery: str
) -> None:
    template = module["resource"]["google_logging_metric"]["failures"]["filter"]
    rendered = tfconsole.value(probe, f'"{template}"')
    entries, expected = DELIVERIES[delivery]
    counted = sum(matches(rendered, entry) for entry in entries)
    assert counted == expected, f"{delivery}: counted {counted}x by {rendered}"


def test_logfilter_evaluator_has_teeth() -> None:
    text = 'a.b="x" AND (severity>=ERROR OR NOT c:*) AND d:"Sub"'
    assert matches(text, {"a": {"b": "x"}, "severity": "ERROR", "c": 1, "d": "has sub in it"})
    assert not matches(text, {"a": {"b": "x"}, "severity": "WARNING", "c": 1, "d": "sub"})
    assert matches(text, {"a": {"b": "x"}, "severity": "DEBUG", "d": "SUB"})
    assert not matches(text, {"a": {"b": "y"}, "severity": "ERROR", "d": "sub"})
    with pytest.raises(ValueError):
        matches("a.b ~ x", {})


# --- Pub/Sub ----------------------------------------------------------------------------------------


def test_no_paid_topic_message_retention(module: dict[str, Any]) -> None:
    for name, topic in module["resource"]["google_pubsub_topic"].items():
        # Billed as storage; the trigger's own subscription keeps undelivered messages already.
        assert "message_retention_duration" not in topic, f"google_pubsub_topic.{name}"


# --- names within Google's limits -------------------------------------------------------------------

_SERVICE_ACCOUNT_ID = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]")


def test_service_accounts_use_the_checked_ids(module: dict[str, Any]) -> None:
    accounts = module["resource"]["google_service_account"]
    for name, body in accounts.items():
        assert body["account_id"] == f"${{local.service_account_ids.{name}}}", name


@needs_terraform
@pytest.mark.parametrize(
    ("project_id", "name"),
    [
        ("abcdef", "abc"),  # shortest valid inputs
        ("p" * 30, "n" * 26),  # longest valid inputs
        ("my-project", "model-registrar"),
    ],
)
def test_derived_names_fit_google_limits(probe: Path, project_id: str, name: str) -> None:
    names = tfconsole.value(
        probe,
        "{ sa = local.service_account_ids, bucket = local.source_bucket_name, fn = var.name }",
        project_id=project_id,
        name=name,
    )
    for account_id in names["sa"].values():
        assert _SERVICE_ACCOUNT_ID.fullmatch(account_id), account_id  # 6-30 characters
    assert _BUCKET.fullmatch(names["bucket"]), names["bucket"]  # at most 63 characters
    assert names["bucket"].startswith(f"{project_id}-{name}-")
    assert len(names["fn"]) <= 49  # Cloud Run service names (the function's service)


@needs_terraform
@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("name", "ab"),  # -run etc. would make a 5-character account ID
        ("source_bucket_name", "x" * 64),
        ("source_bucket_name", "Has-Capitals"),
        ("upload_topic_name", "goog-uploads"),
        ("upload_topic_name", "9uploads"),
        ("labels", {"Team": "ml"}),
        ("labels", {"team": "x" * 64}),
        ("build_service_account_email", "not-an-email"),
    ],
)
def test_inputs_that_feed_names_are_validated(probe: Path, variable: str, value: Any) -> None:
    assert tfconsole.rejected(probe, variable, **{variable: value}), f"{variable}={value!r}"


@needs_terraform
def test_valid_name_inputs_are_accepted(probe: Path) -> None:
    assert tfconsole.value(
        probe,
        "[var.source_bucket_name, var.upload_topic_name, var.build_service_account_email]",
        source_bucket_name="my-project-registrar-src",
        upload_topic_name="model-uploads",
        build_service_account_email="123456789-compute@developer.gserviceaccount.com",
        labels={"team": "ml-platform", "cost_center": ""},
    ) == [
        "my-project-registrar-src",
        "model-uploads",
        "123456789-compute@developer.gserviceaccount.com",
    ]


# --- instances --------------------------------------------------------------------------------------


@needs_terraform
@pytest.mark.parametrize(
    ("minimum", "maximum", "valid"), [(0, 5, True), (5, 5, True), (6, 5, False)]
)
def test_min_instances_at_most_max_instances(
    probe: Path, minimum: int, maximum: int, valid: bool
) -> None:
    result = tfconsole.rejected(
        probe, "min_instance_count", min_instance_count=minimum, max_instance_count=maximum
    )
    assert bool(result) is not valid, (minimum, maximum)


# --- promotion, canary deployment, serving TF version -----------------------------------------------

NEW_SETTINGS = {
    "PROMOTION_METRIC": "var.promotion.metric",
    "PROMOTION_GOAL": "var.promotion.goal",
    "PROMOTION_MIN_DELTA": "var.promotion.min_delta",
    "PROMOTION_THRESHOLD": "var.promotion.threshold",
    "DEPLOY_ENDPOINT": "var.deploy.endpoint",
    "DEPLOY_TRAFFIC": "var.deploy.traffic_percent",
    "SERVING_TF_VERSION": "var.serving_tf_version",
}


def test_new_settings_are_optional_environment_variables(module: dict[str, Any]) -> None:
    optional = module["locals"]["env_optional"]
    for env, expression in NEW_SETTINGS.items():
        assert optional.get(env) == f"${{{expression}}}", env
    variables = module["variable"]
    for name in ("promotion", "deploy"):
        assert variables[name]["default"] == {}, name
        assert variables[name]["nullable"] is False
        assert len(variables[name]["validation"]) >= 3, f"{name} needs validation"
    assert variables["serving_tf_version"]["default"] is None
    assert variables["serving_tf_version"]["validation"]


def test_new_settings_descriptions_state_the_code_defaults(module: dict[str, Any]) -> None:
    code = Settings(project="some-project")
    promotion = module["variable"]["promotion"]["description"]
    deploy = module["variable"]["deploy"]["description"]
    assert f"goal (PROMOTION_GOAL) [{code.promotion_goal};" in promotion, promotion
    assert f"min_delta (PROMOTION_MIN_DELTA) [{code.promotion_min_delta:g}:" in promotion
    assert code.promotion_metric is None and "[unset: every new version takes default]" in promotion
    assert f"1-100 [{code.deploy_traffic}]" in deploy, deploy
    assert code.deploy_endpoint is None and "[unset: nothing is deployed]" in deploy


@needs_terraform
def test_new_settings_are_unset_by_default(probe: Path) -> None:
    env = tfconsole.value(probe, "local.environment_variables")
    assert not set(NEW_SETTINGS) & set(env), env


@needs_terraform
def test_new_settings_reach_the_code(probe: Path) -> None:
    env = tfconsole.value(
        probe,
        "local.environment_variables",
        vertex_location="europe-west4",
        promotion={"metric": "val_auc", "goal": "minimize", "min_delta": 0.005, "threshold": 0.9},
        deploy={
            "endpoint": "projects/my-project/locations/europe-west4/endpoints/1234567890",
            "traffic_percent": 25,
        },
        serving_image="europe-west4-docker.pkg.dev/my-project/serving/custom:1",
        serving_tf_version="2.15",
    )
    assert {k: env[k] for k in NEW_SETTINGS} == {
        "PROMOTION_METRIC": "val_auc",
        "PROMOTION_GOAL": "minimize",
        "PROMOTION_MIN_DELTA": "0.005",
        "PROMOTION_THRESHOLD": "0.9",
        "DEPLOY_ENDPOINT": "projects/my-project/locations/europe-west4/endpoints/1234567890",
        "DEPLOY_TRAFFIC": "25",
        "SERVING_TF_VERSION": "2.15",
    }
    s = Settings.from_env(env)
    assert (s.promotion_metric, s.promotion_goal) == ("val_auc", "minimize")
    assert (s.promotion_min_delta, s.promotion_threshold) == (0.005, 0.9)
    assert (s.deploy_endpoint, s.deploy_traffic) == (env["DEPLOY_ENDPOINT"], 25)
    assert s.serving_tf_version == "2.15"


@needs_terraform
@pytest.mark.parametrize(
    ("variable", "value", "extra"),
    [
        ("promotion", {"metric": "val auc"}, {}),
        ("promotion", {"metric": "val_auc", "goal": "best"}, {}),
        ("promotion", {"metric": "val_auc", "min_delta": -0.1}, {}),
        ("promotion", {"goal": "minimize"}, {}),  # nothing to minimize
        ("promotion", {"threshold": 0.9}, {}),
        ("deploy", {"endpoint": "projects/p/endpoints/1"}, {}),
        ("deploy", {"endpoint": "123", "traffic_percent": 0}, {}),
        ("deploy", {"endpoint": "123", "traffic_percent": 101}, {}),
        ("deploy", {"endpoint": "123", "traffic_percent": 12.5}, {}),
        ("deploy", {"traffic_percent": 50}, {}),  # no endpoint to shift traffic on
        (
            "deploy",
            {"endpoint": "projects/my-project/locations/us-east1/endpoints/1"},
            {"vertex_location": "europe-west4"},
        ),
        ("serving_tf_version", "2.x", {}),
        ("serving_tf_version", "2.15.1", {}),
    ],
)
def test_invalid_new_settings_are_rejected_at_plan_time(
    probe: Path, variable: str, value: Any, extra: dict[str, Any]
) -> None:
    assert tfconsole.rejected(probe, variable, **{variable: value}, **extra), (
        f"{variable}={value!r}"
    )


def test_runtime_account_may_deploy_to_endpoints(module: dict[str, Any]) -> None:
    # roles/aiplatform.user holds aiplatform.endpoints.* (deploy, undeploy, update): the canary
    # deployment needs no further grant.
    members = module["resource"]["google_project_iam_member"]
    assert members["runtime_aiplatform_user"]["role"] == "roles/aiplatform.user"
    assert members["runtime_aiplatform_user"]["member"] == "${local.runtime_member}"
