"""A fleet backfill of a few hundred uploads, paced (issue 22), over the local stack.

`registrar backfill --job-tasks 3 --uploads-per-minute 240` starts three tasks in the Cloud Run
jobs emulator, 80 UploadModel calls a minute each: a project with a raised Vertex quota, so each
task's share is above Vertex's default 60 (which a task used to refuse). The Vertex emulator
enforces a quota of exactly that budget, 240 LRO submissions a minute: 300 uploads do not fit in
one minute's quota, so unless the tasks together keep their calls under 240 in every 60 s some are
refused with 429. Asserted: every upload is registered exactly once, no call was ever refused,
the admitted calls never exceed the budget in any 60 s window (the emulator's read-out,
`GET /_emulator/quota`), the tasks' summaries and `registrar job EXECUTION` account for every
upload once, and a re-run registers nothing. The run is paced: about 76 s of UploadModel calls
(about 110 s for the whole test on a 2-core machine; about 60 s when the tasks may go at 600 a
minute).

In its own file so pytest-xdist (`--dist loadfile`) runs it beside the other fleet tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from handlers import fleet
from tests.conftest import LOCATION, PROJECT, Bucket, Models, Vertex

pytestmark = pytest.mark.slow  # minutes: scheduled first (tests/conftest.py)

UPLOADS = 300
TASKS = 3
BUDGET = 240  # UploadModel calls per minute for the whole fleet: 80 per task
PER_TASK = BUDGET // TASKS


def balanced_names() -> list[str]:
    """UPLOADS model names, UPLOADS / TASKS in each task's share: every task runs at its full
    pace for the whole run (the fleet at the budget throughout), and none runs on alone."""
    shares: list[list[str]] = [[] for _ in range(TASKS)]
    for i in range(4 * UPLOADS):
        name = f"m{i:04d}"
        mine = shares[fleet.share(name, TASKS)]
        if len(mine) < UPLOADS // TASKS:
            mine.append(name)
    names = sorted(n for share in shares for n in share)
    assert len(names) == UPLOADS
    return names


def test_a_few_hundred_uploads_over_several_tasks_register_once_paced(
    bucket: Bucket, vertex: Vertex, models: Models, registrar: Callable[..., tuple[int, str]]
) -> None:
    assert UPLOADS > BUDGET  # more than one minute's quota: unpaced, some would get a 429
    names = balanced_names()  # the same few-kB models under distinct names
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: bucket.upload((models.keras_a, models.keras_b)[i % 2],
                                              f"models/{names[i]}/model.keras"), range(UPLOADS)))  # fmt: skip
    uri = f"gs://{bucket.name}/models/"
    key = f"{PROJECT}/{LOCATION}"

    vertex.config(quota_per_minute=BUDGET)  # Vertex's quota, raised to exactly the budget
    try:
        code, out = registrar("backfill", uri, "--job-tasks", str(TASKS), "--wait",
                              "--uploads-per-minute", str(BUDGET))  # fmt: skip
        assert code == 0, out
        assert f"{PER_TASK} UploadModel call(s)/min each" in out
        registered = sorted(v["displayName"] for v in vertex.all_versions())
        assert registered == names  # each exactly once

        quota = vertex.quota()
        assert quota["refused"].get(key, 0) == 0  # not one 429: the fleet kept to the budget
        assert len(quota["accepted"][key]) == UPLOADS  # one UploadModel call per upload
        assert quota["peak"][key] <= BUDGET  # in any 60 s window, as Vertex counts them
        # ... because each task spaced its calls, however fast this machine is (unpaced, at 600 a
        # minute, this test took about 60 s here, not 110): a task's 100 calls span at least 99
        # of its intervals
        stamps = sorted(quota["accepted"][key])
        paced = (UPLOADS // TASKS - 1) * fleet.Spacing(PER_TASK).interval
        assert stamps[-1] - stamps[0] >= paced - 1.0  # 1 s for the calls' arrival jitter

        # The tasks' summaries cover every upload once between them, each at its share of pace.
        summaries = [bucket.read_json(n) for n in bucket.names("registrar-state/jobs/")]
        assert len(summaries) == TASKS
        assert sum(s["total"] for s in summaries) == UPLOADS
        assert sum(s["counts"]["registered"] for s in summaries) == UPLOADS
        assert sum(s["upload_calls"] for s in summaries) == UPLOADS
        assert all(s["state"] == "done" and s["uploads_per_minute"] == PER_TASK
                   for s in summaries)  # fmt: skip

        execution = out.split("started ", 1)[1].split(":", 1)[0].rsplit("/", 1)[1]
        code, shown = registrar("job", execution, "--json")
        document = json.loads(shown)
        assert code == 0 and document["state"] == "succeeded"
        assert document["retried"] == 0  # no task failed (a 429 would have made one exit 1)
        assert document["uploads"] == {
            "registered": UPLOADS, "already": 0, "rejected": 0, "skipped": 0, "failed": 0
        }  # fmt: skip
        assert len(document["tasks"]) == TASKS

        code, out = registrar("backfill", uri, "--job-tasks", str(TASKS), "--wait", "--json",
                              "--uploads-per-minute", str(BUDGET))  # fmt: skip
        assert code == 0, out
        assert json.loads(out)["uploads"]["already"] == UPLOADS
        assert len(vertex.all_versions()) == UPLOADS  # a re-run is a no-op
        assert len(vertex.quota()["accepted"][key]) == UPLOADS  # ... that calls no UploadModel
    finally:
        vertex.config(quota_per_minute=None)
