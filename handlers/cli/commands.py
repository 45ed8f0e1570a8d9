"""The `registrar` commands: each reads its arguments, calls the library, and reports.

Each returns the exit code; failures raise (CliError or the registrar errors) and handlers.cli.app
turns them into a message and a code.
"""

from __future__ import annotations

import atexit
from collections import Counter
from collections.abc import Callable

from ..pipeline import Pipeline
from ..registry import deploy as deploy_lib
from . import backfill as backfill_lib
from . import canary as canary_lib
from . import gate as gate_lib
from . import jobs as cli_jobs
from . import render
from .aliases import promote as promote_alias
from .aliases import rollback as rollback_alias
from .context import Context
from .models import (
    get_version,
    parse_ref,
    read_json,
    record_uri,
    resolve_model,
    sorted_versions,
    split_uri,
    version_summary,
)
from .output import FAILED, NOT_FOUND, OK, TRANSIENT, USAGE, CliError
from .status import summary_row, upload_status
from .verify import verify as verify_artifact


def backfill(ctx: Context) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    if getattr(ctx.args, "job_tasks", 0):  # the fleet: tasks of the Cloud Run job do the work
        return cli_jobs.start_backfill(ctx)
    args, out = ctx.args, ctx.out
    bucket, prefix = split_uri(args.uri)
    # One pacer for every thread: UploadModel calls (and, with --canary, the endpoint operations
    # canaries submit) stay under Vertex's per-region quota of long-running operations.
    pacer = backfill_lib.Pacer(args.uploads_per_minute, timer=backfill_lib.TIMER)
    settings = ctx.settings.for_backfill(canary=args.canary)
    if settings.deploy_endpoint:
        backfill_lib.pace_operations(deploy_lib.endpoint_registry(settings), pacer)
    registry = backfill_lib.paced_registry(settings, pacer)
    pipeline = Pipeline(settings, store=ctx.store, registry_factory=registry)
    try:
        plan = backfill_lib.discover(ctx.store, ctx.settings, bucket, prefix)
    except ValueError as exc:
        raise CliError(str(exc), USAGE) from None
    if plan.events and not args.dry_run:
        _ = pipeline.registry  # created once, before the worker threads
        # The validator is the process-wide one (one sandbox worker); it ends with the process.
        atexit.unregister(pipeline.validator.close)  # once per process, however many runs
        atexit.register(pipeline.validator.close)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    verb = "checking" if args.dry_run else "registering"
    with Progress(*columns, console=out.err, transient=True, disable=out.json_mode) as progress:
        task = progress.add_task(f"{verb} {len(plan.events)} upload(s)", total=len(plan.events))
        results = backfill_lib.run(
            pipeline,
            plan.events,
            concurrency=args.concurrency,
            dry_run=args.dry_run,
            on_result=lambda _: progress.advance(task),
            pacer=pacer,
        )
    everything = sorted(
        plan.skipped + results,
        key=lambda r: (backfill_lib.CATEGORIES.index(r.category), r.uri),
    )
    counts = Counter(r.category for r in everything)
    summary = {c: counts.get(c, 0) for c in backfill_lib.CATEGORIES}
    status = backfill_lib.exit_status(everything)
    if out.json_mode:
        out.data(
            {
                "uri": args.uri,
                "dry_run": args.dry_run,
                "summary": summary,
                "pacing": pacer.stats(),
                "canaries": bool(args.canary and settings.deploy_endpoint),
                "results": [r.as_dict() for r in everything],
            }
        )
    else:
        out.table(
            f"backfill of {args.uri}" + (" (dry run: nothing written)" if args.dry_run else ""),
            ("upload", "result", "version", "details"),
            (
                (r.uri, r.category, render.version_of(r.model, r.version_id), render.details(r))
                for r in everything
            ),
        )
        first = backfill_lib.WOULD_REGISTER if args.dry_run else backfill_lib.REGISTERED
        out.say(", ".join(f"{n} {c}" for c, n in summary.items() if n or c == first))
        if pacer.quota_retries:
            out.say(
                f"Vertex AI refused uploads over its quota (429) {pacer.quota_retries} time(s); "
                "each was waited out and handled again."
            )
        if summary[backfill_lib.PENDING]:
            out.say(
                "Some uploads are still pending: Vertex AI kept refusing them (429, quota "
                "exceeded). Run the same command again later; a lower --uploads-per-minute "
                "leaves more of the quota to the function."
            )
        if summary[backfill_lib.FAILED]:
            out.say("Some uploads failed transiently: run the same command again to finish them.")
    return {"ok": OK, backfill_lib.REJECTED: FAILED, backfill_lib.FAILED: TRANSIENT}[status]


def versions(ctx: Context) -> int:
    model = resolve_model(ctx.registry, ctx.args.name)
    found = sorted_versions(ctx.registry, model)
    summaries = [version_summary(v) for v in found]
    gates = gate_lib.gate_rows(ctx.store, ctx.settings, model, found, ctx.args.bucket)
    if gates:  # the promotion gate is on, or has decided for this model before
        for summary in summaries:
            summary["gate"] = gates.get(summary["version_id"])
    deployments = canary_lib.deployment_rows(ctx.store, ctx.settings, model, found, ctx.args.bucket)
    for summary in summaries:
        summary["deployment"] = deployments.get(summary["version_id"])
    if ctx.out.json_mode:
        display = summaries[0]["display_name"] if summaries else None
        ctx.out.data({"model": model, "display_name": display, "versions": summaries})
        return OK
    ctx.out.table(
        f"{model} ({found[0].display_name if found else 'no versions'})",
        ("version", "aliases", "created", "source", "digest")
        + (("gate metric", "gate") if gates else ())
        + (("deployment",) if deployments else ()),
        (
            (s["version_id"], s["aliases"], s["created"], s["source_uri"], render.short(s))
            + (gate_lib.cell(s.get("gate")) if gates else ())
            + ((s["deployment"] or "",) if deployments else ())
            for s in summaries
        ),
    )
    return OK


def show(ctx: Context) -> int:
    ref = parse_ref(ctx.args.ref)
    model = resolve_model(ctx.registry, ref.name)
    version = get_version(ctx.registry, model, ref.ref)
    location = record_uri(version, ctx.settings)
    record = read_json(ctx.store, location) if location else None
    summary = {**version_summary(version), "description": version.description}
    if ctx.out.json_mode:
        ctx.out.data({"version": summary, "record_uri": location, "record": record})
        return OK
    ctx.out.fields(f"{model}@{version.version_id}", render.version_fields(summary))
    if record is None:
        ctx.out.warn(
            f"no registration record at {location}: registered by something other than registrar,"
            " or the record was deleted."
            if location
            else "this version carries no registrar lineage (registered by something else)."
        )
        return OK
    ctx.out.fields(f"registration record {location}", render.record_fields(record))
    files = record.get("artifact_files") or {}
    if isinstance(files, dict) and files:
        ctx.out.table("artifact files", ("file", "sha256"), sorted(files.items()))
    return OK


def promote(ctx: Context) -> int:
    ref = parse_ref(ctx.args.ref)
    if ref.ref is None:
        raise CliError(
            f"promote needs a version: `registrar promote {ref.name}@VERSION` "
            f"(see `registrar versions {ref.name}`).",
            USAGE,
        )
    model = resolve_model(ctx.registry, ref.name)

    def move() -> dict:
        return promote_alias(
            ctx.registry, ctx.store, ctx.settings, model=model, ref=str(ref.ref),
            alias=ctx.args.alias, bucket=ctx.args.bucket,
        )  # fmt: skip

    if ctx.args.alias == "default":  # with PROMOTION_METRIC set: a manual gate decision
        return render.moved(ctx.out, gate_lib.promote_under_gate(ctx, model, ref.ref, move))
    return render.moved(ctx.out, move())


def rollback(ctx: Context) -> int:
    ref = parse_ref(ctx.args.name)
    if ref.ref is not None:
        raise CliError(
            f"rollback takes a model name only; to choose the version yourself use "
            f"`registrar promote {ref.name}@{ref.ref} --alias {ctx.args.alias}`.",
            USAGE,
        )
    model = resolve_model(ctx.registry, ref.name)
    result = rollback_alias(
        ctx.registry, ctx.store, ctx.settings, model=model, alias=ctx.args.alias,
        bucket=ctx.args.bucket,
    )  # fmt: skip
    return render.moved(ctx.out, result)


def status(ctx: Context) -> int:
    bucket, path = split_uri(ctx.args.uri)
    if not path:
        raise CliError("name an upload: gs://BUCKET/path/model.keras or gs://BUCKET/dir/.", USAGE)
    found = upload_status(ctx.store, ctx.settings, bucket, path)
    rows = [summary_row(r) for r in found.records]
    if not rows:
        raise CliError(
            f"no record for {found.uri}"
            + (
                f" (the object exists, generation {found.live_generation})"
                if found.live_generation
                else ""
            )
            + ": no event has reached the function for it yet. If it was uploaded before the "
            f"function was deployed, run `registrar backfill {found.uri.rsplit('/', 1)[0]}/`.",
            NOT_FOUND,
        )
    if ctx.out.json_mode:
        ctx.out.data(
            {
                "uri": found.uri,
                "live_generation": found.live_generation,
                "live_generation_unprocessed": found.live_unprocessed,
                "latest": rows[0],
                "records": rows,
            }
        )
    else:
        ctx.out.table(
            f"status of {found.uri} (newest first)",
            ("generation", "state", "version", "details", "deployment", "updated"),
            (
                (
                    r["generation"],
                    r["state"],
                    render.short_name(r["version"]),
                    r["detail"],
                    r["deployment"] or "",
                    r["updated"],
                )
                for r in rows
            ),
        )
        if found.live_unprocessed:
            ctx.out.warn(
                f"the live generation {found.live_generation} has no record yet (event pending?)."
            )
    return FAILED if rows[0]["state"] == "rejected" else OK


def verify(ctx: Context) -> int:
    ref = parse_ref(ctx.args.ref)
    model = resolve_model(ctx.registry, ref.name)
    targets = (
        [get_version(ctx.registry, model, ref.ref)]
        if ref.ref
        else sorted_versions(ctx.registry, model)
    )
    results = []
    for version in targets:
        location = record_uri(version, ctx.settings)
        results.append(
            verify_artifact(
                ctx.store,
                ctx.settings,
                version=version.version_name,
                artifact_uri=version.artifact_uri,
                record=read_json(ctx.store, location) if location else None,
                label_digest=version.labels.get("content-sha256"),
            )
        )
    ok = all(r.ok for r in results)
    if ctx.out.json_mode:
        ctx.out.data({"model": model, "ok": ok, "versions": [r.as_dict() for r in results]})
    else:
        ctx.out.table(
            f"verification of {model}",
            ("version", "artifact", "files", "result", "problems"),
            (
                (
                    r.version.rsplit("@", 1)[-1],
                    r.artifact_uri,
                    r.files_checked,
                    "ok" if r.ok else "FAILED",
                    "\n".join(f"{p.kind} {p.path}: {p.detail}".strip() for p in r.problems),
                )
                for r in results
            ),
        )
        if not ok:
            ctx.out.say(
                "A registered artifact changed after registration. Do not serve the failed "
                "version(s): promote another one, then find out who wrote to the artifact prefix."
            )
    return OK if ok else FAILED


COMMANDS: dict[str, Callable[[Context], int]] = {
    "backfill": backfill,
    "versions": versions,
    "show": show,
    "promote": promote,
    "status": status,
    "verify": verify,
    "gate": gate_lib.gate,
}
