"""`python -m emulators.cloudrun --port N [--host H] [--workdir DIR] [--max-parallel K]`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from emulators.cloudrun.runner import Runner
from emulators.cloudrun.server import JobsServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulators.cloudrun", description=__doc__)
    env = os.environ.get
    parser.add_argument("--host", default=env("CLOUD_RUN_EMULATOR_BIND", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env("CLOUD_RUN_EMULATOR_PORT", "8090")))
    parser.add_argument("--workdir", default=".", help="where task processes run (the repo root)")
    parser.add_argument(
        "--max-parallel", type=int, default=4, help="most tasks of one execution at once"
    )
    parser.add_argument("--verbose", action="store_true", help="log every request and task line")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    server = JobsServer((args.host, args.port), Runner(args.workdir, None, args.max_parallel))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"Cloud Run jobs emulator ready on {server.base_url}", flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.runner.stop()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
