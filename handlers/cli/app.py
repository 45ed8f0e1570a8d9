"""`registrar`: the operator's command line over the same library calls as the function.

    registrar backfill gs://BUCKET/models/ [--dry-run] [--concurrency N] [--uploads-per-minute N]
    registrar versions NAME
    registrar show NAME[@VERSION|@ALIAS]
    registrar promote NAME@VERSION [--alias ALIAS]
    registrar rollback NAME [--alias ALIAS]
    registrar status gs://BUCKET/models/x/v3/model.keras
    registrar verify NAME[@VERSION]
    registrar gate NAME[@VERSION] [--dry-run]
    registrar deploy NAME@VERSION|NAME@ALIAS --endpoint E [--traffic N] [--machine-type T] [--no-wait]
    registrar traffic E [DEPLOYMENT=PERCENT ...]
    registrar undeploy NAME@VERSION|DEPLOYED_MODEL_ID --endpoint E [--force] [--no-wait]
    registrar rollback --endpoint E [--no-wait]
    registrar operation OPERATION [--wait]
    registrar move-image NAME[@VERSION] | --all [--serving-image URI] [--move-aliases]

Settings come from the function's environment variables (`Settings.from_env`, emulators included);
every option also reads an environment variable (shown in `--help`). Exit codes: see
handlers/cli/output.py and docs/cli.md. TensorFlow is never imported here: validation runs in the
same sandboxed worker process the function uses.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from ..errors import PermanentError, SettingsError, TransientError
from ..logs import LOGGER_NAME, JsonFormatter
from ..settings import Settings, env_flag
from . import backfill as backfill_lib
from . import canary as cli_canary
from . import commands as cli_commands
from . import deploy as cli_deploy
from . import jobs as cli_jobs
from . import move as cli_move
from .context import Context
from .output import FAILED, NOT_FOUND, TRANSIENT, USAGE, CliError, Output


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (the console script exits with it)."""
    env = os.environ
    parser = build_parser(env)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage (or --help)
        return exc.code if isinstance(exc.code, int) else USAGE
    out = Output(json_mode=args.json)
    if not getattr(args, "command", None):
        parser.print_usage(sys.stderr)
        out.error("name a command, e.g. `registrar versions NAME`; see `registrar --help`.")
        return USAGE
    with _logs(verbose=args.verbose):
        try:
            settings = _settings(env, args)
            return COMMANDS[args.command](Context(settings, out, args))
        except CliError as exc:
            return _fail(out, str(exc), exc.exit_code)
        except SettingsError as exc:
            return _fail(out, f"{exc} (settings come from the environment; see docs/cli.md)", USAGE)
        except TransientError as exc:
            return _fail(out, f"{exc}. This may pass on its own: retry in a minute.", TRANSIENT)
        except PermanentError as exc:
            codes = {"not_found": NOT_FOUND, "bad_alias": USAGE}
            return _fail(out, str(exc), codes.get(exc.code, FAILED))
        except KeyboardInterrupt:
            return _fail(out, "interrupted; re-running the command is safe.", 130)


def rollback(ctx: Context) -> int:
    """`rollback` is two commands under one name, routed here on its arguments: `rollback NAME`
    moves an alias back (handlers/cli/aliases.py), `rollback --endpoint E` sends an endpoint's
    traffic back (handlers/cli/deploy.py)."""
    args = ctx.args
    if args.endpoint and args.name:
        raise CliError(
            f"give either a model ({args.name}) or --endpoint, not both: `registrar rollback "
            f"{args.name}` moves an alias, `registrar rollback --endpoint {args.endpoint}` "
            "rolls the endpoint back.",
            USAGE,
        )
    if args.endpoint:
        return cli_deploy.rollback_endpoint(ctx)
    if args.name:
        return cli_commands.rollback(ctx)
    raise CliError(
        "rollback needs a model (`registrar rollback NAME` moves its alias back) or an "
        "endpoint (`registrar rollback --endpoint E` sends traffic back).",
        USAGE,
    )


def _commands() -> dict[str, Callable[[Context], int]]:
    """Every command by name; a name defined twice is a bug, not a silent override."""
    names = [
        *cli_commands.COMMANDS,
        *cli_deploy.COMMANDS,
        *cli_canary.COMMANDS,
        *cli_move.COMMANDS,
        *cli_jobs.COMMANDS,
        "rollback",
    ]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise RuntimeError(f"commands defined twice: {twice}")
    return {
        **cli_commands.COMMANDS,
        **cli_deploy.COMMANDS,
        **cli_canary.COMMANDS,
        **cli_move.COMMANDS,
        **cli_jobs.COMMANDS,
        "rollback": rollback,
    }


COMMANDS = _commands()


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="registrar",
        description="Register, inspect, promote, roll back and verify models in the Vertex AI "
        "Model Registry, exactly as the gcs-model-registrar function does.",
        epilog="Exit codes: 0 ok, 1 verification failed / rejected upload / refused, "
        "2 usage or settings error, 3 not found, 4 transient failure (retry).",
    )
    _common(parser, env, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        _common(sub, env, top=False)
        return sub

    backfill = command("backfill", "register every model already under a gs:// prefix")
    backfill.add_argument("uri", metavar="gs://BUCKET/PREFIX/")
    backfill.add_argument(
        "--dry-run",
        action="store_true",
        default=env_flag(env, "REGISTRAR_DRY_RUN"),
        help="only list what would happen; nothing is written [env REGISTRAR_DRY_RUN]",
    )
    backfill.add_argument(
        "--concurrency",
        type=_positive,
        # a string default goes through `type`, like a value from the command line
        default=env.get("REGISTRAR_CONCURRENCY") or str(backfill_lib.DEFAULT_CONCURRENCY),
        help="uploads handled at once (validation itself runs one at a time) "
        f"[env REGISTRAR_CONCURRENCY, default {backfill_lib.DEFAULT_CONCURRENCY}]",
    )
    backfill.add_argument(
        "--uploads-per-minute",
        type=_uploads_per_minute,
        default=env.get("REGISTRAR_UPLOADS_PER_MINUTE")
        or str(backfill_lib.DEFAULT_UPLOADS_PER_MINUTE),
        help="at most N UploadModel calls in any minute, across --concurrency; Vertex allows 60 "
        "per region, shared with the function (a 429 is waited out and retried) "
        f"[env REGISTRAR_UPLOADS_PER_MINUTE, 1-{backfill_lib.MAX_UPLOADS_PER_MINUTE}, "
        f"default {backfill_lib.DEFAULT_UPLOADS_PER_MINUTE}]",
    )
    backfill.add_argument(
        "--canary",
        action="store_true",
        default=env_flag(env, "REGISTRAR_CANARY"),
        help="also start the canary deployments DEPLOY_ENDPOINT asks for (off by default: a "
        "backfill registers, it does not deploy); their endpoint operations are paced with the "
        "uploads [env REGISTRAR_CANARY]",
    )
    command("versions", "list the versions of a model").add_argument("name", metavar="NAME")
    command("show", "one version in full, with its registration record").add_argument(
        "ref", metavar="NAME[@VERSION|@ALIAS]"
    )
    promote = command("promote", "point an alias (default: `default`) at a version")
    promote.add_argument("ref", metavar="NAME@VERSION")
    rollback = command(
        "rollback",
        "move an alias back to the version that held it before; with --endpoint E, send the "
        "endpoint's traffic back to what served before its newest deployment and undeploy that",
    )
    rollback.add_argument("name", metavar="NAME", nargs="?")
    for sub in (promote, rollback):
        sub.add_argument(
            "--alias",
            default=env.get("REGISTRAR_ALIAS") or "default",
            help="the version alias to move [env REGISTRAR_ALIAS, default `default`]",
        )
    command("status", "what became of an upload (.keras object or SavedModel folder)").add_argument(
        "uri", metavar="gs://BUCKET/PATH"
    )
    command("verify", "re-hash registered artifacts against their records").add_argument(
        "ref", metavar="NAME[@VERSION|@ALIAS]"
    )
    gate = command(
        "gate",
        "what the promotion gate decides for a version now (default: the `challenger`), and "
        "apply it",
    )
    gate.add_argument("name", metavar="NAME[@VERSION]")
    gate.add_argument(
        "--dry-run",
        action="store_true",
        default=env_flag(env, "REGISTRAR_DRY_RUN"),
        help="only say what the gate would decide; no alias moves [env REGISTRAR_DRY_RUN]",
    )
    cli_deploy.add_commands(command, env, rollback=rollback)
    cli_canary.add_commands(command, env)
    cli_move.add_command(command, env, _uploads_per_minute)

    cli_jobs.add_commands(command, env)
    cli_jobs.add_backfill_options(backfill)
    return parser


def _common(parser: argparse.ArgumentParser, env: Mapping[str, str], *, top: bool) -> None:
    """Options accepted before and after the command; values after the command win."""

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    parser.add_argument(
        "--json",
        action="store_true",
        default=default(env_flag(env, "REGISTRAR_JSON")),
        help="print one JSON document on stdout instead of tables [env REGISTRAR_JSON]",
    )
    parser.add_argument(
        "--project",
        default=default(None),
        help="Google Cloud project id [env GOOGLE_CLOUD_PROJECT]",
    )
    parser.add_argument(
        "--location", default=default(None), help="Vertex AI region [env VERTEX_LOCATION]"
    )
    parser.add_argument(
        "--bucket",
        default=default(env.get("REGISTRAR_BUCKET") or None),
        help="bucket for the alias history when a version's artifact_uri names none "
        "[env REGISTRAR_BUCKET]",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default(env_flag(env, "REGISTRAR_VERBOSE")),
        help="also print the pipeline's JSON log lines on stderr [env REGISTRAR_VERBOSE]",
    )


def _settings(env: Mapping[str, str], args: argparse.Namespace) -> Settings:
    overrides = {"GOOGLE_CLOUD_PROJECT": args.project, "VERTEX_LOCATION": args.location}
    merged = {**env, **{k: v for k, v in overrides.items() if v}}
    return Settings.from_env(merged)


def _fail(out: Output, message: str, code: int) -> int:
    out.error(message)
    if out.json_mode:
        out.data({"error": message, "exit_code": code})
    return code


@contextmanager
def _logs(*, verbose: bool) -> Iterator[None]:
    """The pipeline logs JSON lines for Cloud Logging; on a terminal they go to stderr, on demand."""
    logger = logging.getLogger(LOGGER_NAME)
    saved = (logger.handlers[:], logger.propagate, logger.level)
    handler: logging.Handler = logging.NullHandler()
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.DEBUG if verbose else logging.CRITICAL)
    try:
        yield
    finally:
        logger.handlers, logger.propagate = saved[0], saved[1]
        logger.setLevel(saved[2])


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is too small: the minimum is 1")
    return value


def _uploads_per_minute(text: str) -> int:
    value = _positive(text)
    if value > backfill_lib.MAX_UPLOADS_PER_MINUTE:
        raise argparse.ArgumentTypeError(
            f"{value} is too large: the maximum is {backfill_lib.MAX_UPLOADS_PER_MINUTE}"
        )
    return value


if __name__ == "__main__":
    sys.exit(main())
