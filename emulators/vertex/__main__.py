"""`python -m emulators.vertex --port N [--host H] [--state-file F] [--operation-polls K]
[--storage-url URL]`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from datetime import date

from emulators.vertex.endpoints import CONCURRENT_MODES, state_file_for
from emulators.vertex.server import EmulatorServer, make_store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulators.vertex", description=__doc__)
    env = os.environ.get
    parser.add_argument("--host", default=env("VERTEX_EMULATOR_BIND", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env("VERTEX_EMULATOR_PORT", "8089")))
    parser.add_argument(
        "--state-file",
        default=env("VERTEX_EMULATOR_STATE_FILE"),
        help="persist models here (JSON) and reload them at start",
    )
    parser.add_argument(
        "--operation-polls",
        type=int,
        default=int(env("VERTEX_EMULATOR_OPERATION_POLLS", "0")),
        help="GetOperation calls answered `done: false` before an operation is done",
    )
    parser.add_argument(
        "--storage-url",
        default=env("STORAGE_EMULATOR_HOST"),
        help="GCS JSON API (fake-gcs-server) to check UploadModel's artifact directory in, as "
        "Vertex does; without one the directory is not looked into",
    )
    parser.add_argument(
        "--quota-per-minute",
        type=int,
        default=int(env("VERTEX_EMULATOR_QUOTA_PER_MINUTE", "0")),
        help="enforce Vertex's quota on long-running-operation submissions (UploadModel, "
        "deletes, endpoint LROs) per project and region: N per minute, 429 over it; Vertex's "
        "default is 60. 0 (the default): not enforced",
    )
    parser.add_argument(
        "--deploy-seconds",
        type=float,
        default=float(env("VERTEX_EMULATOR_DEPLOY_SECONDS", "0")),
        help="DeployModel/UndeployModel operations land (change the endpoint) this many seconds "
        "after they start, `done: false` until then; 0 (the default): at once",
    )
    parser.add_argument(
        "--concurrent-mutations",
        choices=CONCURRENT_MODES,
        default=env("VERTEX_EMULATOR_CONCURRENT_MUTATIONS", "reject"),
        help="a second deploy/undeploy/traffic change of an endpoint while one is running: "
        "`reject` (FAILED_PRECONDITION) or `last_writer_wins` (Vertex does not document which)",
    )
    parser.add_argument(
        "--today",
        type=date.fromisoformat,
        default=env("VERTEX_EMULATOR_TODAY") or None,
        help="YYYY-MM-DD: the date serving-image end of availability is judged on (default: "
        'the real UTC date; admin: POST /_emulator/config {"today": ...})',
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    store = make_store(args.state_file, args.operation_polls, args.storage_url)
    store.today_override = args.today
    server = EmulatorServer(
        (args.host, args.port),
        store,
        endpoint_state_file=state_file_for(args.state_file),
        quota_per_minute=args.quota_per_minute or None,
        deploy_seconds=args.deploy_seconds,
        concurrent_mutations=args.concurrent_mutations,
    )
    if store.artifacts is None:
        logging.info("no storage endpoint: artifact directories are not checked")
    else:
        logging.info("artifact directories are checked in %s", store.artifacts.storage_url)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"Vertex AI emulator ready on {server.base_url}", flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
