"""Properties of every parser of a user-controlled value (metrics, display_name, description,
aliases, object names, folder labels, warm-up files): whatever the input, the result is a value or the parser's documented
rejection — never any other exception (which the pipeline would answer with a 5xx, and the platform
redeliver for 24 h).

Fast, so a larger fixed budget than the through-the-function suite
(tests/integration/test_metadata_properties.py): `UNIT_EXAMPLES` examples per property,
derandomized (the same examples on every run), no example database.
"""

from __future__ import annotations

import json
import math
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.errors import PermanentError
from handlers.intake import layout, user_metadata
from handlers.intake.metrics import MAX_NAME_CHARS, MetricsRejected, parse
from handlers.registry import folders
from handlers.registry.lineage import parse_aliases
from handlers.settings import Settings

UNIT_EXAMPLES = 500
BUDGET = settings(
    max_examples=UNIT_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
SETTINGS = Settings(project="test-project")
_METRICS_CODE = re.compile(r"metrics\.[a-z_]+")
# Any text, including lone surrogates (JSON's "\ud800" escape decodes to one).
ANY_TEXT = st.text(st.characters(codec=None, categories=None), max_size=200)
HUGE_INT = st.integers(min_value=300, max_value=6000).map(lambda n: "9" * n)


def _json_values() -> st.SearchStrategy[str]:
    """JSON text of every shape: scalars, huge ints and floats, NaN/Infinity, nesting."""
    number = st.one_of(
        st.integers().map(str),
        HUGE_INT,
        HUGE_INT.map(lambda d: "-" + d),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.sampled_from(["1e999", "-1e999", "1e-999", "NaN", "Infinity", "-Infinity", "0.0"]),
    )
    scalar = st.one_of(number, st.sampled_from(["true", "false", "null"]), ANY_TEXT.map(_quote))
    return st.recursive(
        scalar,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
            st.lists(st.tuples(ANY_TEXT, inner), max_size=4).map(
                lambda kv: "{" + ",".join(f"{_quote(k)}:{v}" for k, v in kv) + "}"
            ),
        ),
        max_leaves=12,
    )


def _quote(text: str) -> str:
    return json.dumps(text)  # ASCII escapes: lone surrogates become "\\udXXX", as in a request


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


METRICS_BODIES = st.one_of(
    st.binary(max_size=300),
    ANY_TEXT,
    _json_values(),
    st.dictionaries(ANY_TEXT, _json_values(), max_size=5).map(
        lambda d: "{" + ",".join(f"{_quote(k)}: {v}" for k, v in d.items()) + "}"
    ),
    st.integers(1, 200_000).map(_deep),
    st.integers(1, 200_000).map(lambda n: '{"a":' * n + "1" + "}" * n),
)


@BUDGET
@given(METRICS_BODIES)
def test_metrics_parse_gives_finite_metrics_or_a_metrics_rejection(body: bytes | str) -> None:
    try:
        values = parse(body, "metrics.json")
    except MetricsRejected as exc:
        assert _METRICS_CODE.fullmatch(exc.code), exc.code
        return
    assert values and all(isinstance(v, float) and math.isfinite(v) for v in values.values())
    assert all(0 < len(name) <= MAX_NAME_CHARS for name in values)


@BUDGET
@given(st.dictionaries(st.sampled_from(["auc", "loss", "n"]), HUGE_INT, min_size=1))
def test_an_integer_of_thousands_of_digits_is_a_non_finite_metric(values: dict[str, str]) -> None:
    body = "{" + ",".join(f'"{k}": {v}' for k, v in values.items()) + "}"
    try:
        parse(body, "metrics.json")
    except MetricsRejected as exc:
        assert exc.code == "metrics.not_finite"
    else:  # a few hundred digits still fit a double
        assert all(len(v) <= 308 for v in values.values())


NAME_SOURCES = st.one_of(
    st.just("models/"),
    st.lists(ANY_TEXT, min_size=1, max_size=4).map(lambda parts: "models/" + "/".join(parts)),
    ANY_TEXT.map(lambda s: f"models/{s}.keras"),
    ANY_TEXT.map(lambda s: f"models/{s}/"),
)


@BUDGET
@given(NAME_SOURCES, st.dictionaries(st.sampled_from(["display_name", "x"]), ANY_TEXT))
def test_display_name_is_a_name_vertex_takes_or_bad_display_name(
    source: str, metadata: dict[str, str]
) -> None:
    try:
        named = layout.display_name_for(source, SETTINGS, metadata)
    except PermanentError as exc:
        assert exc.code == "bad_display_name"
        return
    name = named.display_name
    assert 0 < len(name) <= layout.MAX_DISPLAY_NAME and name == name.strip()
    name.encode("utf-8")  # travels to Vertex as JSON


@BUDGET
@given(ANY_TEXT)
def test_aliases_are_vertex_aliases_or_bad_alias(raw: str) -> None:
    try:
        aliases = parse_aliases(raw, "gs://b/models/m.keras")
    except PermanentError as exc:
        assert exc.code == "bad_alias"
        return
    assert all(re.fullmatch(r"[a-z][a-zA-Z0-9-]{0,126}[a-z0-9]", a) for a in aliases)


@BUDGET
@given(ANY_TEXT)
def test_a_description_is_encodable_text_or_bad_description(text: str) -> None:
    try:
        user_metadata.check({"description": text}, "gs://b/models/m.keras")
    except PermanentError as exc:
        assert exc.code == "bad_description"
        return
    text.encode("utf-8")
    assert "\x00" not in text


@BUDGET
@given(ANY_TEXT)
def test_every_object_name_under_the_prefix_is_classified(rest: str) -> None:
    artifact = layout.classify("models/" + rest, SETTINGS)
    assert isinstance(artifact, (layout.KerasFile, layout.SavedModelMember, layout.NotAModel)), (
        artifact
    )


LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")


@BUDGET
@given(
    st.from_regex(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]", fullmatch=True),
    st.lists(ANY_TEXT.filter(lambda s: s and "/" not in s), min_size=1, max_size=3),
)
def test_folder_labels_are_vertex_label_values_and_tell_folders_apart(
    bucket: str, parts: list[str]
) -> None:
    source = "models/" + "/".join(parts) + ".keras"
    folder = folders.folder_of(source, SETTINGS)
    assert folder == ("models/" if len(parts) == 1 else f"models/{parts[0]}/")
    value = folders.folder_label(bucket, folder, SETTINGS)
    assert LABEL_VALUE.fullmatch(value), value
    other = folders.folder_label(bucket, folder + "x/", SETTINGS)
    assert other != value


# ---- warm-up files (assets.extra/tf_serving_warmup_requests): the one file TF Serving replays ----
def _framed(payload: bytes) -> bytes:
    import struct

    from handlers.validation.scan.assets_extra import _masked_crc

    length = struct.pack("<Q", len(payload))
    return (
        length
        + struct.pack("<I", _masked_crc(length))
        + payload
        + struct.pack("<I", _masked_crc(payload))
    )


WARMUP_BYTES = st.one_of(
    st.binary(max_size=400),
    st.lists(st.binary(max_size=200), max_size=5).map(lambda ps: b"".join(map(_framed, ps))),
)


@BUDGET
@given(WARMUP_BYTES)
def test_a_warmup_file_is_checked_or_bad_assets_extra(data: bytes) -> None:
    import tempfile
    from pathlib import Path
    from types import SimpleNamespace

    from handlers.errors import Rejected
    from handlers.validation.scan.assets_extra import WARMUP, check_assets_extra

    signature = SimpleNamespace(
        inputs=[SimpleNamespace(key="x")], outputs=[SimpleNamespace(key="y")]
    )
    meta = SimpleNamespace(signature_def=[SimpleNamespace(key="serving_default", value=signature)])
    with tempfile.TemporaryDirectory() as tmp:
        extra = Path(tmp) / "assets.extra"
        extra.mkdir()
        (extra / WARMUP).write_bytes(data)
        try:
            notes = check_assets_extra(Path(tmp), meta)
        except Rejected as exc:
            assert exc.code == "savedmodel.bad_assets_extra"
            return
    assert notes and notes[0].startswith("warmup: ")


# ---- object names: an upload's member names, and the event that names an object ---------------
@BUDGET
@given(st.lists(ANY_TEXT, min_size=1, max_size=5))
def test_member_names_are_canonical_or_rejected(relatives: list[str]) -> None:
    from handlers.errors import Rejected
    from handlers.intake import names

    try:
        checked = names.check_names(relatives, "gs://b/models/m/")
    except Rejected as exc:
        assert exc.code in (names.BAD_NAME, names.COLLISION), exc.code
        return
    assert isinstance(checked, list)
    assert all(names.name_problem(r) is None for r in relatives)


@BUDGET
@given(
    name=st.one_of(ANY_TEXT, st.none(), st.integers()),
    generation=st.one_of(st.integers(), ANY_TEXT, st.none(), st.just("9" * 5000)),
)
def test_any_event_payload_is_an_object_event_or_malformed(
    name: object, generation: object
) -> None:
    from handlers.intake.events import MalformedEvent, NotAFinalizeEvent, ObjectEvent, parse_event

    attributes = {"id": "e1", "type": "google.cloud.storage.object.v1.finalized"}
    data = {"bucket": "b", "name": name, "generation": generation}
    try:
        event = parse_event(attributes, data)
    except (MalformedEvent, NotAFinalizeEvent):
        return
    assert isinstance(event, ObjectEvent) and isinstance(event.name, str)
