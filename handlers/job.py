"""Cloud Run job entry point, two commands:

* `python -m handlers.job upload --bucket B --object O --generation G --token T`: one handed-off
  upload, through the function's own pipeline with the job's limits (below);
* `python -m handlers.job backfill gs://B/P --uploads-per-minute K`: this task's share of a
  fleet backfill (handlers/fleet.py).

The function hands an upload off (handlers/handoff/takeover.py) with the token that lets this
execution, and only it, take the `handed_off` record over. Same checks, sandbox, record and
exactly-once rules as the function; the limits are the job's: its run deadline is
JOB_TIMEOUT_SECONDS (the task timeout) instead of FUNCTION_TIMEOUT_SECONDS, and its claim outlives
that. The claim names `TOKEN#EXECUTION`, so when a task dies (out of memory, an instance lost)
the platform's next attempt of the same task takes the claim over at once, and the registry's
lineage labels find a version the dead attempt may already have created: never two versions.

Exit status: 0 when the upload is settled (registered, rejected, already done, or no longer
ours); 1 when it should be tried again (a transient failure: Cloud Run retries the task up to the
job's max_retries; after that the hand-off expires and the upload is started again).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys

from . import fleet
from .errors import TransientError
from .hardening import harden_function_process
from .intake.events import ObjectEvent
from .limits import MAX_UPLOADS_PER_MINUTE
from .logs import configure, get_logger, log
from .pipeline import RUN_MARGIN_SECONDS, Pipeline
from .settings import Settings

_logger = get_logger(__name__)


def job_settings(settings: Settings) -> Settings:
    """The function's settings with the job's limits: the run deadline is the task timeout and a
    claim outlives it (the records' rule: a live worker is never doubled)."""
    return dataclasses.replace(
        settings,
        function_timeout_seconds=settings.job_timeout_seconds,
        claim_lease_seconds=settings.job_timeout_seconds + int(RUN_MARGIN_SECONDS),
    )


def task_identity(env: dict[str, str] | None = None) -> dict[str, str]:
    """What Cloud Run tells a task about itself (container contract, jobs)."""
    env = dict(os.environ if env is None else env)
    return {
        "job": env.get("CLOUD_RUN_JOB", ""),
        "execution": env.get("CLOUD_RUN_EXECUTION", ""),
        "task_index": env.get("CLOUD_RUN_TASK_INDEX", "0"),
        "task_count": env.get("CLOUD_RUN_TASK_COUNT", "1"),
        "attempt": env.get("CLOUD_RUN_TASK_ATTEMPT", "0"),
    }


def upload(args: argparse.Namespace, settings: Settings) -> int:
    task = task_identity()
    holder = f"{args.token}#{task['execution'] or 'local'}"
    pipeline = Pipeline(job_settings(settings), holder=holder)
    event = ObjectEvent(
        bucket=args.bucket,
        name=args.object,
        generation=args.generation,
        event_id=f"handoff:{task['execution'] or 'local'}:{task['attempt']}",
    )
    try:
        outcome = pipeline.handle_object(event)
    except TransientError:
        return 1  # logged by the pipeline; the platform retries the task
    log(
        _logger,
        logging.INFO,
        f"job task done: {outcome.outcome}",
        outcome=outcome.outcome,
        job_task=task,
        source_uri=f"gs://{args.bucket}/{args.object}",
    )
    return 0


def uploads_per_minute(text: str) -> int:
    """A task's pace: the CLI's bound (`registrar backfill --uploads-per-minute`), so any budget
    the CLI accepts, split between the tasks, is a pace each task accepts."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_UPLOADS_PER_MINUTE:
        raise argparse.ArgumentTypeError(
            f"{value} is out of range: 1..{MAX_UPLOADS_PER_MINUTE} UploadModel calls per minute "
            "(Vertex's default quota is 60 per minute per region, shared by all tasks; more needs "
            "a raised quota)"
        )
    return value


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m handlers.job", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)
    one = sub.add_parser("upload", help="register one handed-off upload")
    one.add_argument("--bucket", required=True)
    one.add_argument("--object", required=True, help="the object that announced the upload")
    one.add_argument("--generation", required=True, type=int)
    one.add_argument("--token", required=True, help="the hand-off token in the upload's record")
    many = sub.add_parser("backfill", help="this task's share of a fleet backfill")
    many.add_argument("uri", metavar="gs://BUCKET/PREFIX/")
    many.add_argument(
        "--uploads-per-minute",
        type=uploads_per_minute,
        required=True,
        help=f"this task's share of the backfill's budget (1-{MAX_UPLOADS_PER_MINUTE})",
    )
    return root


def backfill(args: argparse.Namespace, settings: Settings) -> int:
    if not args.uri.startswith("gs://") or "/" not in args.uri[5:]:
        raise SystemExit(f"expected gs://BUCKET/PREFIX/, not {args.uri!r}")
    bucket, prefix = args.uri[5:].split("/", 1)
    task = task_identity()
    status = fleet.run(
        job_settings(settings),
        bucket=bucket,
        prefix=prefix or settings.model_prefix,
        uploads_per_minute=args.uploads_per_minute,
        task=task,
    )
    log(_logger, logging.INFO, f"fleet backfill task done (exit {status})", job_task=task)
    return status


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings.from_env()
    configure(settings.log_level)
    harden_function_process()  # as the function: the sandbox worker cannot read our memory
    return upload(args, settings) if args.command == "upload" else backfill(args, settings)


if __name__ == "__main__":
    sys.exit(main())
