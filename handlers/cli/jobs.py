"""`registrar job [EXECUTION] [--wait]` and `registrar backfill ... --job-tasks N`: the Cloud Run
job (JOB_NAME) from the operator's side.

`job` without an execution lists JOB_NAME's recent executions; with one (a full name, or the
execution id of JOB_NAME) it shows the tasks' counts and, for a fleet backfill, each task's
progress and summary (documents the tasks write under STATE_PREFIX, handlers/fleet.py);
`--wait` follows it until every task has finished. A hand-off's execution is in the upload's
record (`registrar status gs://...`).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..gcs.documents import read_document
from .context import Context
from .output import FAILED, OK, TRANSIENT, USAGE, CliError

if TYPE_CHECKING:
    from ..handoff.jobs import Execution

FLEET_CATEGORIES = ("registered", "already", "rejected", "skipped", "failed")
POLL_SECONDS = 5.0


def add_commands(
    command: Callable[[str, str], argparse.ArgumentParser], env: Mapping[str, str]
) -> None:
    job = command("job", "the Cloud Run job (JOB_NAME): its executions, or follow one")
    job.add_argument("execution", nargs="?", metavar="EXECUTION", help="name or execution id")
    job.add_argument("--wait", action="store_true", help="follow until every task has finished")


def add_backfill_options(backfill: argparse.ArgumentParser) -> None:
    backfill.add_argument(
        "--job-tasks",
        type=int,
        default=0,
        metavar="N",
        help="run the backfill as an execution of the Cloud Run job (JOB_NAME) with N tasks, "
        "each taking its share of the uploads; --uploads-per-minute is split between them",
    )
    backfill.add_argument(
        "--wait", action="store_true", help="with --job-tasks: follow the execution to its end"
    )


def start_backfill(ctx: Context) -> int:
    """`registrar backfill gs://B/P --job-tasks N`: start the fleet and say how to follow it."""
    args, out, settings = ctx.args, ctx.out, ctx.settings
    tasks, budget = args.job_tasks, args.uploads_per_minute
    if not settings.job_name:
        raise CliError("--job-tasks needs JOB_NAME: the Cloud Run job to run (Terraform: "
                       "job.enabled = true, output job_name)", USAGE)  # fmt: skip
    if args.dry_run:
        raise CliError("--dry-run runs here; drop --job-tasks to preview", USAGE)
    check_task_count(tasks, budget)
    if getattr(args, "canary", False):
        raise CliError(
            "--canary is for an in-process backfill: the job's tasks register only. Start "
            "canaries afterwards with `registrar canary start NAME@VERSION`, or drop --job-tasks.",
            USAGE,
        )
    per_task = budget // tasks
    from ..handoff import jobs  # the Cloud Run client (~0.3 s): only for the job's commands

    execution = jobs.start(
        settings,
        ["backfill", args.uri, "--uploads-per-minute", str(per_task)],
        task_count=tasks,
    )
    if out.json_mode and not args.wait:
        out.data({"execution": execution, "tasks": tasks, "uploads_per_minute_per_task": per_task})
        return OK
    out.say(f"started {execution}: {tasks} task(s), {per_task} UploadModel call(s)/min each")
    out.say(f"follow it: registrar job {execution.rsplit('/', 1)[1]} --wait")
    return follow(ctx, execution) if args.wait else OK


def check_task_count(tasks: int, budget: int) -> None:
    """Each task paces at least one UploadModel call a minute: at most `budget` tasks (a raised
    quota's budget, up to limits.MAX_UPLOADS_PER_MINUTE, allows that many)."""
    if not 1 <= tasks <= budget:
        raise CliError(
            f"--job-tasks must be 1..{budget}: each task needs at least one of the {budget} "
            "UploadModel calls per minute (--uploads-per-minute)",
            USAGE,
        )


def job(ctx: Context) -> int:
    from ..handoff import jobs  # the Cloud Run client (~0.3 s): only for the job's commands

    args, out, settings = ctx.args, ctx.out, ctx.settings
    if not args.execution:
        found = list(jobs.executions(settings))
        if out.json_mode:
            out.data({"job": jobs.job_path(settings), "executions": [e.as_dict() for e in found]})
        else:
            out.table(
                f"executions of {jobs.job_path(settings)}",
                ("execution", "state", "tasks", "succeeded", "failed", "running", "retried"),
                ((e.name.rsplit("/", 1)[1], e.state, e.task_count, e.succeeded, e.failed,
                  e.running, e.retried) for e in found),
            )  # fmt: skip
        return OK
    name = args.execution
    if "/" not in name:
        name = f"{jobs.job_path(settings)}/executions/{name}"
    return follow(ctx, name) if args.wait else show(ctx, jobs.execution(settings, name))


def follow(ctx: Context, name: str) -> int:
    from ..handoff import jobs

    last = None
    while True:
        execution = jobs.execution(ctx.settings, name)
        line = (execution.succeeded, execution.failed, execution.running, execution.retried)
        if line != last and not ctx.out.json_mode:
            ctx.out.say(
                f"{execution.state}: {execution.succeeded}/{execution.task_count} task(s) "
                f"succeeded, {execution.failed} failed, {execution.running} running, "
                f"{execution.retried} retried"
            )
            last = line
        if execution.done:
            return show(ctx, execution)
        time.sleep(POLL_SECONDS)


def show(ctx: Context, execution: Execution) -> int:
    out = ctx.out
    tasks = _fleet_tasks(ctx, execution)
    totals = {c: sum(t.get("counts", {}).get(c, 0) for t in tasks) for c in FLEET_CATEGORIES}
    if out.json_mode:
        out.data({**execution.as_dict(), "tasks": tasks, "uploads": totals if tasks else None})
    else:
        out.fields(
            execution.name,
            (
                ("state", execution.state),
                ("tasks", execution.task_count),
                ("succeeded / failed / running", f"{execution.succeeded} / {execution.failed} / "
                 f"{execution.running}"),
                ("retried attempts", execution.retried),
                ("message", execution.message),
                ("args", " ".join(execution.args)),
            ),
        )  # fmt: skip
        if tasks:
            out.table(
                "fleet backfill, per task",
                ("task", "attempt", "state", "done", "total", *FLEET_CATEGORIES),
                ((t.get("task_index"), t.get("attempt"), t.get("state"), t.get("done"),
                  t.get("total"), *(t.get("counts", {}).get(c, 0) for c in FLEET_CATEGORIES))
                 for t in tasks),
            )  # fmt: skip
            out.say(", ".join(f"{n} {c}" for c, n in totals.items()))
    if not execution.done:
        return OK
    if execution.state != "succeeded" or totals["failed"]:
        return TRANSIENT if totals["failed"] else FAILED
    return FAILED if totals["rejected"] else OK


def _fleet_tasks(ctx: Context, execution: Execution) -> list[dict[str, Any]]:
    """The progress documents of a fleet backfill's tasks (none for a hand-off)."""
    if len(execution.args) < 2 or execution.args[0] != "backfill":
        return []
    uri = execution.args[1]
    if not uri.startswith("gs://"):
        return []
    bucket = uri[5:].split("/", 1)[0]
    prefix = f"{ctx.settings.state_prefix}jobs/{execution.name.rsplit('/', 1)[1]}/"
    found = []
    for obj in ctx.store.list_objects(bucket, prefix):
        doc = read_document(ctx.store, bucket, obj.name, corrupt={})
        if doc and doc[0]:
            found.append(doc[0])
    return sorted(found, key=lambda t: int(t.get("task_index", 0)))


COMMANDS: dict[str, Callable[[Context], int]] = {"job": job}
