"""`deploy`, `traffic`, `undeploy`, `rollback --endpoint` and `operation`: serving registered versions.

    registrar deploy NAME@VERSION|NAME@ALIAS --endpoint E [--traffic N] [--machine-type T] [--no-wait]
    registrar traffic E [DEPLOYMENT=PERCENT ...]
    registrar undeploy NAME@VERSION|DEPLOYED_MODEL_ID --endpoint E [--force] [--no-wait]
    registrar rollback --endpoint E [--no-wait]
    registrar operation OPERATION [--wait]

`deploy` pins the exact version an alias names (a deployment must not follow later alias moves),
refuses what would break serving (no `registered` record, an artifact that fails `verify`, a
serving image past its end of availability), creates the endpoint if needed, and gives the new
deployment N% of the traffic, the rest keeping its proportions. Long operations show progress
on stderr and end with the endpoint's split; `--no-wait` leaves them running and says how to
follow them. The library calls are handlers/registry/endpoints.py and deploy.py.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from .. import serving_images
from ..errors import PermanentError, TransientError
from ..registry import deploy as deploy_lib
from ..registry.canary import foreign_reason
from ..registry.endpoints import (
    NEW_DEPLOYMENT,
    DeployedModelInfo,
    EndpointInfo,
    EndpointRegistry,
    Operation,
    make_endpoint_registry,
    split_with,
    split_with_new,
    split_without,
)
from ..registry.interface import ModelVersionInfo
from ..settings import env_flag
from .context import Context
from .models import get_version, parse_ref, read_json, record_uri, resolve_model
from .output import FAILED, NOT_FOUND, OK, TRANSIENT, USAGE, CliError, Output
from .verify import verify as verify_artifact

# PermanentError codes of the endpoint library that are the operator's input being wrong.
_USAGE_CODES = ("bad_traffic", "ambiguous_endpoint", "bad_endpoint", "bad_operation", "bad_version")
_ASSIGNMENT = re.compile(r"^(?P<key>.+?)=(?P<percent>\d{1,3})%?$")


# ---- the parser (called from handlers/cli/app.py) ---------------------------------------------
def add_commands(
    command: Callable[[str, str], argparse.ArgumentParser],
    env: Mapping[str, str],
    *,
    rollback: argparse.ArgumentParser,
) -> None:
    deploy = command(
        "deploy", "deploy one exact version to an endpoint (created if needed) and split traffic"
    )
    deploy.add_argument("ref", metavar="NAME@VERSION|NAME@ALIAS")
    _endpoint_option(deploy, env, required=True)
    deploy.add_argument(
        "--traffic",
        type=_percent,
        default=env.get("REGISTRAR_TRAFFIC") or "100",
        help="percent of the endpoint's traffic for the new deployment; the others keep their "
        "proportions of the rest [env REGISTRAR_TRAFFIC, default 100]",
    )
    deploy.add_argument(
        "--allow-other-model",
        action="store_true",
        help="deploy even though the endpoint serves (or is labelled for) another model: its "
        "traffic split then sends part of that model's requests to this one",
    )
    deploy.add_argument(
        "--machine-type",
        default=env.get("REGISTRAR_MACHINE_TYPE") or None,
        help="machine type of the deployment [env REGISTRAR_MACHINE_TYPE; default: the machines "
        f"of the deployment serving most traffic, else {deploy_lib.DEFAULT_MACHINE_TYPE}]",
    )
    traffic = command("traffic", "show an endpoint's traffic split, or set it")
    traffic.add_argument("endpoint", metavar="ENDPOINT")
    traffic.add_argument(
        "assignments",
        nargs="*",
        metavar="DEPLOYMENT=PERCENT",
        help="DEPLOYMENT is a deployed model id or NAME@VERSION; deployments not named share the "
        "rest in their current proportions",
    )
    undeploy = command("undeploy", "remove a deployment from an endpoint (its traffic goes to "
                       "the others)")  # fmt: skip
    undeploy.add_argument("ref", metavar="NAME@VERSION|DEPLOYED_MODEL_ID")
    _endpoint_option(undeploy, env, required=True)
    undeploy.add_argument(
        "--force",
        action="store_true",
        help="also undeploy the endpoint's last deployment (it then serves nothing)",
    )
    _endpoint_option(rollback, {}, required=False)  # REGISTRAR_ENDPOINT would hide NAME
    operation = command("operation", "the state of a long operation (from --no-wait or a record)")
    operation.add_argument("name", metavar="OPERATION")
    operation.add_argument(
        "--wait", action="store_true", help="wait until it is done, showing progress"
    )
    for sub in (deploy, undeploy, rollback, operation):
        sub.add_argument(
            "--timeout",
            type=_seconds,
            default=env.get("REGISTRAR_TIMEOUT") or "3600",
            help="seconds to wait for a long operation before leaving it running "
            "[env REGISTRAR_TIMEOUT, default 3600]",
        )
    for sub in (deploy, undeploy, rollback):
        sub.add_argument(
            "--no-wait",
            action="store_true",
            default=env_flag(env, "REGISTRAR_NO_WAIT"),
            help="start the operation and return; follow it with `registrar operation NAME` "
            "[env REGISTRAR_NO_WAIT]",
        )


def _endpoint_option(
    parser: argparse.ArgumentParser, env: Mapping[str, str], *, required: bool
) -> None:
    default = env.get("REGISTRAR_ENDPOINT") or None
    parser.add_argument(
        "--endpoint",
        required=required and default is None,
        default=default,
        help="endpoint id, display name or projects/P/locations/L/endpoints/E "
        "[env REGISTRAR_ENDPOINT]",
    )


def _percent(text: str) -> int:
    try:
        value = int(text.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole percentage") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{value} is not a percentage (0-100)")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError("the timeout cannot be negative")
    return value


# ---- commands -----------------------------------------------------------------------------
def deploy(ctx: Context) -> int:
    args, out = ctx.args, ctx.out
    ref = parse_ref(args.ref)
    if ref.ref is None:
        raise CliError(
            f"deploy needs a version: `registrar deploy {ref.name}@VERSION` or "
            f"`{ref.name}@default` (see `registrar versions {ref.name}`).",
            USAGE,
        )
    with _library_errors():
        endpoints = _endpoints(ctx)
        model = resolve_model(endpoints, ref.name)
        version = get_version(endpoints, model, ref.ref)  # an alias is pinned to its version here
        short = _version_label(model, version.version_id)
        checks = _preflight(ctx, endpoints, version)
        with _progress(out, f"finding endpoint {args.endpoint}") as progress:
            endpoint, created = endpoints.ensure_endpoint(
                args.endpoint, timeout=min(args.timeout, 600.0), on_progress=progress
            )
        if created:
            out.say(f"created endpoint {endpoint.name}")
        mixed = foreign_reason(endpoint, model)
        if mixed and not args.allow_other_model:
            raise CliError(
                f"refusing to deploy {short}: {mixed} Pass --allow-other-model to do it anyway.",
                FAILED,
            )
        already = endpoint.of_version(model, version.version_id)
        if already:
            out.say(
                f"{short} is already deployed on {_label(endpoint)} as {already[0].id} with "
                f"{endpoint.share(already[0].id)}% of the traffic; change the split with "
                f"`registrar traffic {args.endpoint} {already[0].id}=N`."
            )
            return _show(out, endpoint, extra={"version": version.version_name, "checks": checks,
                                               "created_endpoint": created, "operation": None})  # fmt: skip
        split = split_with_new(endpoint.traffic, [d.id for d in endpoint.deployed], args.traffic)
        if split.get(NEW_DEPLOYMENT, 0) != args.traffic:
            out.warn(
                f"nothing else serves on {_label(endpoint)}: the new deployment takes "
                f"{split[NEW_DEPLOYMENT]}% of the traffic, not {args.traffic}%."
            )
        shape = deploy_lib.shape_for(endpoint, args.machine_type)
        operation = endpoints.deploy(
            endpoint.name,
            version.version_name,
            traffic_split=split,
            display_name=deploy_lib.deployed_display_name(version.display_name, version.version_id),
            machine_type=shape.machine_type,
            accelerator=shape.accelerator,
            max_replicas=shape.max_replicas,
        )
        out.say(
            f"deploying {short} to {_label(endpoint)} on {shape.machine_type}"
            + (f" (the machines of deployment {shape.copied_from})" if shape.copied_from else "")
            + f": {_split_text(split, endpoint)}"
        )
        extra = {"version": version.version_name, "checks": checks, "created_endpoint": created,
                 "requested_split": split}  # fmt: skip
        return _finish(ctx, endpoints, operation, endpoint.name, extra)


def traffic(ctx: Context) -> int:
    args, out = ctx.args, ctx.out
    with _library_errors():
        endpoints = _endpoints(ctx)
        endpoint = endpoints.require_endpoint(args.endpoint)
        if not args.assignments:
            return _show(out, endpoint)
        assigned = _assignments(endpoints, endpoint, args.assignments)
        before = dict(endpoint.traffic)
        updated = endpoints.set_traffic(
            endpoint.name,
            lambda e: split_with(e.traffic, [d.id for d in e.deployed], assigned),
        )
    out.say(
        f"traffic of {_label(updated)}: {_plain_split(before, endpoint)} -> "
        f"{_plain_split(updated.traffic, updated)}"
    )
    return _show(out, updated, extra={"traffic_before": before})


def undeploy(ctx: Context) -> int:
    args = ctx.args
    with _library_errors():
        endpoints = _endpoints(ctx)
        endpoint = endpoints.require_endpoint(args.endpoint)
        target = _deployment(endpoints, endpoint, args.ref)
        if len(endpoint.deployed) == 1 and not args.force:
            raise CliError(
                f"{target.id} ({_version_label(target.model, target.version_id)}) is the only "
                f"deployment on {_label(endpoint)}: without it the endpoint serves nothing. Deploy "
                "another version first, or add --force.",
                FAILED,
            )
        return _remove(ctx, endpoints, endpoint, target, action="undeploy")


def rollback_endpoint(ctx: Context) -> int:
    """`rollback --endpoint E`: traffic back to what served before the newest deployment, which is
    then undeployed. (handlers/cli/app.py routes `rollback`: NAME alone is an alias move.)"""
    args = ctx.args
    with _library_errors():
        endpoints = _endpoints(ctx)
        endpoint = endpoints.require_endpoint(args.endpoint)
        newest = endpoint.newest
        if newest is None or len(endpoint.deployed) < 2:
            raise CliError(
                f"{_label(endpoint)} has {len(endpoint.deployed)} deployment(s): nothing to roll "
                "back to.",
                NOT_FOUND,
            )
        return _remove(ctx, endpoints, endpoint, newest, action="rollback")


def operation(ctx: Context) -> int:
    args, out = ctx.args, ctx.out
    with _library_errors():
        endpoints = _endpoints(ctx)
        state = endpoints.operation_state(args.name)
        if args.wait and not state.done:
            started, delay = time.monotonic(), 1.0
            with _progress(out, f"{state.kind} {args.name}") as progress:
                while not state.done and time.monotonic() - started < args.timeout:
                    time.sleep(min(delay, max(0.0, args.timeout - (time.monotonic() - started))))
                    delay = min(delay * 1.5, 10.0)
                    state = endpoints.operation_state(args.name)
                    state.elapsed = time.monotonic() - started
                    progress(state)
    if out.json_mode:
        out.data(state.as_dict())
    else:
        out.fields(
            f"operation {state.name}",
            [("kind", state.kind), ("endpoint", state.endpoint), ("state", state.state),
             ("error", state.error)],
        )  # fmt: skip
        if not state.done:
            out.say(f"still running; wait for it with `registrar operation {state.name} --wait`.")
    if state.error:
        return FAILED
    return TRANSIENT if args.wait and not state.done else OK


COMMANDS: dict[str, Callable[[Context], int]] = {
    "deploy": deploy,
    "traffic": traffic,
    "undeploy": undeploy,
    "operation": operation,
}


# ---- pieces -------------------------------------------------------------------------------
def _endpoints(ctx: Context) -> EndpointRegistry:
    global _labels
    endpoints = make_endpoint_registry(ctx.settings)
    _labels = _Labels(endpoints)  # one command per call: names are looked up afresh
    return endpoints


class _Labels:
    """`MyAwesomeModel@2` for people (the model id can be a hash: `myawesomemodel-f4fcdbd8`)."""

    def __init__(self, registry: EndpointRegistry | None) -> None:
        self._registry = registry
        self._names: dict[str, str] = {}

    def __call__(self, model: str, version_id: str) -> str:
        if model not in self._names:
            self._names[model] = model.rsplit("/", 1)[-1]
            if self._registry is not None:
                with contextlib.suppress(PermanentError, TransientError):
                    self._names[model] = self._registry.get_model(model).display_name
        return f"{self._names[model]}@{version_id}"


_labels = _Labels(None)


def _version_label(model: str, version_id: str) -> str:
    return _labels(model, version_id)


def _preflight(
    ctx: Context, endpoints: EndpointRegistry, version: ModelVersionInfo
) -> dict[str, Any]:
    """Refuse what would break serving; returns what was checked (for --json)."""
    out, settings = ctx.out, ctx.settings
    name = version.version_name
    location = record_uri(version, settings)
    if location is None:
        raise CliError(
            f"{name} was not registered by registrar (its labels and description carry no "
            "lineage), so its artifact cannot be checked: refusing to deploy it.",
            FAILED,
        )
    record = read_json(ctx.store, location)
    state = (record or {}).get("state")
    if state != "registered":
        why = f"is {state!r}" if record else "is missing"
        raise CliError(
            f"the registration record of {name} ({location}) {why}, not 'registered': refusing "
            "to deploy it. `registrar show` tells more.",
            FAILED,
        )
    image = deploy_lib.check_serving_image(
        endpoints.serving_image(name),
        replacement=serving_images.default_image(settings.project, settings.location),
    )
    if not image.ok:
        raise CliError(f"refusing to deploy {name}: {image.message}", FAILED)
    if image.warn:
        out.warn(image.message)
    with _progress(out, f"verifying {version.artifact_uri}"):
        verified = verify_artifact(
            ctx.store,
            settings,
            version=name,
            artifact_uri=version.artifact_uri,
            record=record,
            label_digest=version.labels.get("content-sha256"),
        )
    if not verified.ok:
        problems = "; ".join(f"{p.kind} {p.path}: {p.detail}".strip() for p in verified.problems)
        raise CliError(
            f"refusing to deploy {name}: its artifact {version.artifact_uri} is not what was "
            f"registered ({problems}). Deploy another version, then find out who wrote to the "
            "artifact prefix.",
            FAILED,
        )
    serving = (
        f"serving image supported until {image.end_of_availability.isoformat()}"
        if image.end_of_availability
        else "serving image has no known end of availability"
    )
    out.say(
        f"checks passed for {_version_label(version.model, version.version_id)}: record "
        f"registered, artifact verified ({verified.files_checked} files), {serving}"
    )
    return {
        "record": location,
        "record_state": state,
        "artifact_files_verified": verified.files_checked,
        "serving_image": image.as_dict(),
    }


def _remove(
    ctx: Context,
    endpoints: EndpointRegistry,
    endpoint: EndpointInfo,
    target: DeployedModelInfo,
    *,
    action: str,
) -> int:
    """Give `target`'s traffic back to the others (at once), then undeploy it (a long operation)."""
    out = ctx.out
    before = dict(endpoint.traffic)
    remaining = [d for d in endpoint.deployed if d.id != target.id]
    short = _version_label(target.model, target.version_id)
    if remaining:
        updated = endpoints.set_traffic(
            endpoint.name,
            lambda e: split_without(e.traffic, [d.id for d in e.deployed], target.id),
        )
        serving = ", ".join(
            f"{_version_label(d.model, d.version_id)} ({d.id})"
            for d in remaining
            if updated.share(d.id)
        )
        out.say(
            f"traffic of {_label(endpoint)}: {_plain_split(before, endpoint)} -> "
            f"{_plain_split(updated.traffic, endpoint)}"
            + (f"; now serving {serving}" if serving else "")
        )
    operation = endpoints.undeploy(endpoint.name, target.id)
    out.say(f"undeploying {short} ({target.id}) from {_label(endpoint)}")
    extra = {"action": action, "undeployed": target.as_dict(), "traffic_before": before}
    return _finish(ctx, endpoints, operation, endpoint.name, extra)


def _finish(
    ctx: Context,
    endpoints: EndpointRegistry,
    operation: Operation,
    endpoint: str,
    extra: dict[str, Any],
) -> int:
    """Wait (with progress) unless --no-wait; end with the operation's state and the split."""
    args, out = ctx.args, ctx.out
    if not args.no_wait:
        with _progress(out, f"{operation.kind} {operation.name}") as progress:
            try:
                endpoints.wait(operation, timeout=args.timeout, on_progress=progress)
            except PermanentError as exc:
                raise CliError(f"{operation.kind} {operation.name} failed: {exc}", FAILED) from None
    follow = f"registrar operation {operation.name} --wait"
    if operation.done:
        out.say(f"{operation.kind} {operation.state} in {operation.elapsed:.1f} s")
    elif args.no_wait:
        out.say(f"{operation.kind} started: {operation.name}. Follow it with `{follow}`.")
    else:
        out.say(
            f"{operation.kind} still running after {args.timeout:.0f} s; it carries on in Vertex "
            f"AI. Follow it with `{follow}`."
        )
    final = endpoints.get_endpoint(endpoint)
    if operation.kind == "DeployModel" and operation.done and operation.result is not None:
        extra["deployed_model_id"] = operation.result.deployed_model.id
    code = _show(out, final, extra={**extra, "operation": operation.as_dict()},
                 highlight=extra.get("deployed_model_id"))  # fmt: skip
    if not operation.done and not args.no_wait:
        return TRANSIENT
    return code


def _show(
    out: Output,
    endpoint: EndpointInfo,
    *,
    extra: dict[str, Any] | None = None,
    highlight: str | None = None,
) -> int:
    if out.json_mode:
        out.data({**endpoint.as_dict(), **(extra or {})})
        return OK
    out.table(
        f"endpoint {_label(endpoint)}: {endpoint.name}",
        ("deployed model", "version", "traffic", "machines", "deployed"),
        (
            (
                d.id + (" (new)" if d.id == highlight else ""),
                _version_label(d.model, d.version_id),
                f"{endpoint.share(d.id)}%",
                d.machine_type
                + (f" + {d.accelerator}" if d.accelerator else "")
                + f" x{d.min_replicas}-{d.max_replicas}",
                d.create_time,
            )
            for d in endpoint.deployed
        ),
        caption=None if endpoint.deployed else "nothing deployed",
    )
    return OK


def _assignments(
    endpoints: EndpointRegistry, endpoint: EndpointInfo, texts: list[str]
) -> dict[str, int]:
    assigned: dict[str, int] = {}
    for text in texts:
        match = _ASSIGNMENT.match(text.strip())
        if match is None:
            raise CliError(
                f"{text!r}: expected DEPLOYMENT=PERCENT (a deployed model id or NAME@VERSION, "
                "then a whole percentage), e.g. 3001=90 churn@2=10.",
                USAGE,
            )
        target = _deployment(endpoints, endpoint, match.group("key"))
        if target.id in assigned:
            raise CliError(f"{text!r}: deployment {target.id} is named twice.", USAGE)
        assigned[target.id] = int(match.group("percent"))
    return assigned


def _deployment(endpoints: EndpointRegistry, endpoint: EndpointInfo, ref: str) -> DeployedModelInfo:
    """A deployed model id, or NAME@VERSION|NAME@ALIAS of a version deployed exactly once here."""
    found = endpoint.deployment(ref)
    if found is not None:
        return found
    if "@" not in ref:
        ids = ", ".join(d.id for d in endpoint.deployed) or "none"
        raise CliError(
            f"no deployed model {ref!r} on {_label(endpoint)} (deployed: {ids}); name one by its id "
            "or as NAME@VERSION.",
            NOT_FOUND,
        )
    parsed = parse_ref(ref)
    model = resolve_model(endpoints, parsed.name)
    version = get_version(endpoints, model, parsed.ref)
    matches = endpoint.of_version(model, version.version_id)
    short = _version_label(model, version.version_id)
    if not matches:
        raise CliError(f"{short} is not deployed on {_label(endpoint)}.", NOT_FOUND)
    if len(matches) > 1:
        ids = ", ".join(d.id for d in matches)
        raise CliError(f"{short} is deployed {len(matches)} times ({ids}); name one by id.", USAGE)
    return matches[0]


def _split_text(split: Mapping[str, int], endpoint: EndpointInfo) -> str:
    parts = []
    for key, percent in split.items():
        if key == NEW_DEPLOYMENT:
            parts.insert(0, f"{percent}% to the new deployment")
            continue
        d = endpoint.deployment(key)
        parts.append(f"{percent}% to {_version_label(d.model, d.version_id) if d else key}")
    return ", ".join(parts)


def _label(endpoint: EndpointInfo) -> str:
    """`churn-prod`, or `Churn serving (1234567890)` when the id is not the display name."""
    if endpoint.display_name == endpoint.endpoint_id:
        return endpoint.endpoint_id
    return f"{endpoint.display_name} ({endpoint.endpoint_id})"


def _plain_split(split: Mapping[str, int], endpoint: EndpointInfo) -> str:
    """`churn@1 90%, churn@4 10%` (deployed model ids for deployments not on `endpoint`)."""
    order = {d.id: i for i, d in enumerate(endpoint.deployed)}
    parts = []
    for key, percent in sorted(split.items(), key=lambda kv: order.get(kv[0], len(order))):
        d = endpoint.deployment(key)
        parts.append(f"{_version_label(d.model, d.version_id) if d else key} {percent}%")
    return ", ".join(parts) or "no traffic"


@contextmanager
def _progress(out: Output, what: str) -> Iterator[Callable[[Operation], None]]:
    """A spinner on stderr (people only) that long operations update with their elapsed time."""
    if out.json_mode:
        yield lambda _: None
        return
    with out.err.status(f"{what} ...") as status:
        yield lambda op: status.update(f"{what} ... {op.state}, {op.elapsed:.0f} s")


@contextmanager
def _library_errors() -> Iterator[None]:
    """The endpoint library's input errors are usage errors (exit 2)."""
    try:
        yield
    except PermanentError as exc:
        if exc.code in _USAGE_CODES:
            raise CliError(str(exc), USAGE) from None
        raise
