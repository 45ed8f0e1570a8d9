"""Bad metadata never blocks or loops a model, proven as a class through the function.

Hypothesis generates metadata values (`metrics`, `display_name`, `description`, `aliases`, keys the
registrar does not read), metrics bodies (`metrics.json`: JSON and not, integers of thousands of
digits, NaN/Infinity, huge floats, deep nesting, any Unicode) and object names, puts them in
fake-gcs-server and delivers each event over HTTP to a real functions-framework server (with the
Vertex emulator). Every event must be acknowledged (2xx) and end in a record — `registered`, or
`rejected` with a documented reason code — or, for an object that is not part of a model upload, be
ignored; never an unexpected 5xx (which the platform would redeliver for 24 hours, re-validating
the model each time).

The budget is fixed and documented (README, Development): each example that uploads a model is
validated in the sandbox (~1 s with the tiny model reused here), so `FUNCTION_EXAMPLES` examples
per model property and `METRICS_FILE_EXAMPLES` for late `metrics.json` bodies (no validation);
derandomized, no example database, no deadline. The parsers themselves get a larger budget in
tests/intake/test_metadata_properties.py.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dev import stack
from dev.bridge import binary_event
from tests.conftest import Bucket, Services, function_env

FUNCTION_EXAMPLES = 25
METRICS_FILE_EXAMPLES = 60
STATE = "registrar-state/uploads/"
# The rejections an upload's metadata can earn (README: reason codes); anything else is a bug.
METADATA_REJECTIONS = {
    "bad_display_name",
    "bad_alias",
    "bad_description",
    "name.owned_by_another_folder",
}
_METRICS_CODE = re.compile(r"metrics\.[a-z_]+")
_ids = itertools.count()


def _budget(examples: int) -> Any:
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


# ---- strategies: what an attacker who can set object metadata can write -------------------------
# GCS custom metadata and object names are UTF-8: no lone surrogates reach the function (the
# parsers' own properties cover them). Control characters are allowed in metadata values.
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=120)
# Past a double's range (309 digits), and past Python's int-string limit (4300 digits).
HUGE_INT = st.one_of(st.integers(300, 4300), st.integers(4301, 7000)).map(lambda n: "9" * n)
NUMBER = st.one_of(
    st.integers().map(str),
    HUGE_INT,
    HUGE_INT.map(lambda d: "-" + d),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["1e999", "-1e999", "NaN", "Infinity", "-Infinity", "1.5e308", "5e-324"]),
)


def _json(text: str) -> str:
    return json.dumps(text)


JSON_VALUE = st.recursive(
    st.one_of(NUMBER, st.sampled_from(["true", "false", "null"]), TEXT.map(_json)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: "[" + ",".join(xs) + "]"),
        st.lists(st.tuples(TEXT, inner), max_size=3).map(
            lambda kv: "{" + ",".join(f"{_json(k)}:{v}" for k, v in kv) + "}"
        ),
    ),
    max_leaves=8,
)
METRICS_OBJECT = st.dictionaries(
    st.one_of(st.sampled_from(["auc", "loss"]), TEXT), JSON_VALUE, max_size=4
).map(lambda d: "{" + ",".join(f"{_json(k)}: {v}" for k, v in d.items()) + "}")
METRICS_TEXT = st.one_of(
    METRICS_OBJECT,
    JSON_VALUE,
    TEXT,
    st.integers(1, 6000).map(lambda n: "[" * n + "]" * n),  # GCS metadata is at most 8 KiB
    st.integers(1, 3000).map(lambda n: '{"a":' * n + "1" + "}" * n),
)
METRICS_BODY = st.one_of(
    METRICS_TEXT.map(str.encode),
    st.binary(max_size=200),
    st.integers(1, 100_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 30).map(lambda n: b'{"auc": ' + b"9" * (1000 * n) + b"}"),
)
ALIASES = st.one_of(
    TEXT,
    st.lists(st.from_regex(r"[a-z][a-zA-Z0-9-]{0,8}[a-z0-9]", fullmatch=True), max_size=3).map(
        ",".join
    ),
    st.sampled_from(["default", "1", "challenger", "a,b", ",,", "Prod"]),
)
METADATA = st.fixed_dictionaries(
    {},
    optional={
        "metrics": METRICS_TEXT,
        "display_name": st.one_of(TEXT, st.just("shared-name")),
        "description": TEXT,
        "aliases": ALIASES,
        "other": TEXT,
    },
)
# Object names GCS accepts (UTF-8, no CR/LF, 1-1024 bytes), under the prefix, ending as a model.
NAME_PART = st.text(
    st.characters(exclude_categories=["Cs", "Cc"], exclude_characters="/"), min_size=1, max_size=30
).filter(lambda s: s not in (".", ".."))


# ---- the function, as deployed, on the emulators ---------------------------------------------------
@pytest.fixture(scope="module")
def server(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    logs = tmp_path_factory.mktemp("metadata-properties")
    env = {
        **stack.function_env(services.storage_url, services.vertex_url),
        **function_env(services),
    }
    service = stack.start_function(env, log_dir=logs)
    yield service
    service.stop()


@pytest.fixture(scope="module")
def prop_bucket(services: Services) -> Bucket:
    return Bucket(services.storage_url, f"metadata-properties-{next(_ids)}")


@pytest.fixture(scope="module")
def tiny_keras(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny model for every example: validation is the slow part of each."""
    from tests.modelfactory import build_keras_model

    return build_keras_model(
        tmp_path_factory.mktemp("tiny") / "m.keras", seed=7, input_dim=2, units=1
    )


def _post(server: Any, resource: dict[str, Any]) -> int:
    headers, body = binary_event(resource)
    # CloudEvents' HTTP binding percent-encodes header values outside printable ASCII.
    headers["ce-subject"] = quote(headers["ce-subject"], safe="/:")
    return requests.post(server.url, data=body, headers=headers, timeout=300).status_code


def _record(bucket: Bucket, resource: dict[str, Any]) -> dict[str, Any]:
    return bucket.read_json(f"{STATE}{resource['name']}/g{resource['generation']}.json")


def _check_upload_outcome(record: dict[str, Any]) -> None:
    state = record.get("state")
    if state == "rejected":
        assert record["reason"]["code"] in METADATA_REJECTIONS, record["reason"]
        return
    assert state == "registered", record
    metrics = record.get("metrics", {"state": "none"})
    assert metrics["state"] in ("attached", "rejected", "none"), metrics
    if metrics["state"] == "rejected":
        assert _METRICS_CODE.fullmatch(metrics["reason"]["code"]), metrics


@_budget(FUNCTION_EXAMPLES)
@given(metadata=METADATA)
def test_any_metadata_on_a_model_ends_in_a_record_never_a_5xx(
    server: Any, prop_bucket: Bucket, tiny_keras: Path, metadata: dict[str, str]
) -> None:
    name = f"models/folder-{next(_ids)}/model.keras"
    resource = prop_bucket.upload(tiny_keras, name, metadata)
    assert _post(server, resource) == 200
    _check_upload_outcome(_record(prop_bucket, resource))


@_budget(FUNCTION_EXAMPLES)
@given(metrics=st.one_of(HUGE_INT.map(lambda d: '{"auc": ' + d + "}"), METRICS_TEXT))
def test_any_metrics_metadata_is_a_verdict_on_the_metrics_not_the_model(
    server: Any, prop_bucket: Bucket, tiny_keras: Path, metrics: str
) -> None:
    resource = prop_bucket.upload(tiny_keras, f"models/m-{next(_ids)}.keras", {"metrics": metrics})
    assert _post(server, resource) == 200
    record = _record(prop_bucket, resource)
    assert record["state"] == "registered", record
    assert record["metrics"]["state"] in ("attached", "rejected"), record["metrics"]


@pytest.fixture(scope="module")
def registered_dir(server: Any, prop_bucket: Bucket, tiny_keras: Path) -> str:
    """A folder with a registered model: each late metrics.json is attached to it or rejected."""
    resource = prop_bucket.upload(tiny_keras, "models/late/model.keras")
    assert _post(server, resource) == 200
    assert _record(prop_bucket, resource)["state"] == "registered"
    return "models/late/"


@_budget(METRICS_FILE_EXAMPLES)
@given(body=METRICS_BODY)
def test_any_late_metrics_json_is_attached_or_rejected_never_a_5xx(
    server: Any, prop_bucket: Bucket, registered_dir: str, body: bytes
) -> None:
    resource = prop_bucket.upload_bytes(body, registered_dir + "metrics.json")
    assert _post(server, resource) == 200
    record = _record(prop_bucket, resource)
    assert record["state"] in ("attached", "rejected"), record
    if record["state"] == "rejected":
        assert _METRICS_CODE.fullmatch(record["reason"]["code"]), record["reason"]


@_budget(FUNCTION_EXAMPLES)
@given(parts=st.lists(NAME_PART, min_size=1, max_size=3), suffix=st.sampled_from([".keras", ""]))
def test_any_object_name_ends_in_a_record_or_is_ignored_never_a_5xx(
    server: Any, prop_bucket: Bucket, tiny_keras: Path, parts: list[str], suffix: str
) -> None:
    name = f"models/n{next(_ids)}/" + "/".join(parts) + suffix
    if len(name.encode()) > 1024:
        name = name.encode()[:1000].decode(errors="ignore") + suffix
    resource = prop_bucket.upload(tiny_keras, name)
    assert _post(server, resource) == 200
    records = prop_bucket.names(f"{STATE}{name}/")
    if name.lower().endswith(".keras"):
        assert records, f"no record for {name!r}"
        _check_upload_outcome(_record(prop_bucket, resource))
    else:
        assert not records  # not a model upload: acknowledged, ignored, one log line
