"""`canary`: the canary lifecycle on a model's own endpoint (handlers/registry/canary.py).

    registrar canary status    NAME [--endpoint E]
    registrar canary start     NAME@VERSION|NAME@ALIAS [--endpoint E] [--traffic N]
    registrar canary promote   NAME [--endpoint E]   # the canary takes 100%, the champion goes
    registrar canary abort     NAME [--endpoint E]   # the champion takes 100%, the canary goes
    registrar canary reconcile NAME [--endpoint E]   # undeploy what a replacement left at 0%

The endpoint is `--endpoint`, else `DEPLOY_ENDPOINT` with `{model}` filled in - the endpoint the
function deploys to. Each step is taken under the model's lease (as the function's are) and is
written on the records of the uploads it affects (`registrar status`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any

from ..gcs.ledger import Ledger
from ..gcs.objects import ObjectStore
from ..registry import deploy as deploy_lib
from ..registry.canary import endpoint_ref, model_id
from ..settings import Settings
from .gate import ledger_bucket
from .models import get_version, parse_ref, record_uri, resolve_model, sorted_versions, split_uri
from .output import OK, USAGE, CliError

ACTIONS = ("status", "start", "promote", "abort", "reconcile")


def add_commands(
    command: Callable[[str, str], argparse.ArgumentParser], env: Mapping[str, str]
) -> None:
    canary = command(
        "canary",
        "a model's canary on its own endpoint: status, start, promote (finish), abort, reconcile",
    )
    canary.add_argument("action", choices=ACTIONS)
    canary.add_argument("ref", metavar="NAME[@VERSION|@ALIAS]")
    canary.add_argument(
        "--endpoint",
        default=env.get("REGISTRAR_ENDPOINT") or None,
        help="the endpoint [env REGISTRAR_ENDPOINT; default: DEPLOY_ENDPOINT with {model}]",
    )
    canary.add_argument(
        "--traffic",
        type=int,
        default=None,
        help="percent for a started canary [default: DEPLOY_TRAFFIC]",
    )


def canary(ctx: Any) -> int:
    args, out, settings = ctx.args, ctx.out, ctx.settings
    ref = parse_ref(args.ref)
    registry = deploy_lib.endpoint_registry(settings)
    model = resolve_model(registry, ref.name)
    endpoint = args.endpoint or (
        endpoint_ref(settings.deploy_endpoint, model_id(model))
        if settings.deploy_endpoint
        else None
    )
    if not endpoint:
        raise CliError(
            "which endpoint? Pass --endpoint E, or set DEPLOY_ENDPOINT (e.g. 'serving-{model}') as "
            "the function has it.",
            USAGE,
        )
    versions = sorted_versions(registry, model)
    bucket = ledger_bucket(versions, args.bucket)
    if bucket is None:
        raise CliError("no bucket for the model's ledger: pass --bucket.", USAGE)
    lifecycle = deploy_lib.canaries(settings, ctx.store, bucket, registry=registry)
    if args.action == "status":
        result = lifecycle.status(model, endpoint)
    elif args.action == "reconcile":
        result = lifecycle.reconcile(model, endpoint)
    elif args.action in ("promote", "abort"):
        result = getattr(lifecycle, args.action)(model, endpoint)
    else:
        if ref.ref is None:
            raise CliError(f"start needs a version: `registrar canary start {ref.name}@VERSION`.",
                           USAGE)  # fmt: skip
        version = get_version(registry, model, ref.ref)
        record = record_uri(version, settings)
        traffic = args.traffic if args.traffic is not None else settings.deploy_traffic
        if not 1 <= traffic <= 100:
            raise CliError(f"--traffic {traffic}: a percentage from 1 to 100.", USAGE)
        result = lifecycle.start(
            model=model,
            version_id=version.version_id,
            display_name=version.display_name,
            traffic=traffic,
            endpoint=endpoint,
            record=split_uri(record)[1] if record else None,
            machine=deploy_lib.shape_for,
            only_default=False,  # the operator names the version on purpose
        )
    if out.json_mode:
        out.data(result)
    else:
        for key, value in result.items():
            out.say(f"{key}: {value}")
    return OK


def deployment_rows(
    store: ObjectStore, settings: Settings, model: str, versions: list[Any], bucket: str | None
) -> dict[str, str]:
    """Per version id: its last canary step (`canary started`, `undeployed: replaced by a newer
    canary`, `champion: promoted`, …) from the model's ledger; empty when none was taken."""
    where = ledger_bucket(versions, bucket)
    doc = Ledger(store, settings.state_prefix).read(where, model) if where else {}
    rows: dict[str, str] = {}
    for step in (doc.get("canary") or {}).get("history") or []:
        if not isinstance(step, dict) or not step.get("version_id"):
            continue
        text = f"{step.get('role') or ''} {step.get('step', '')}".strip()
        if step.get("why"):
            text += f": {step['why']}"
        rows[str(step["version_id"])] = text
    return rows


COMMANDS: dict[str, Callable[[Any], int]] = {"canary": canary}
