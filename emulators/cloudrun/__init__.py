"""A Cloud Run Admin API v2 jobs emulator: jobs, `jobs.run` with overrides, executions, over REST.

    server, base_url = start_in_thread(port=0, workdir=repo_root)
    # run_v2.JobsClient(transport="rest", client_options={"api_endpoint": base_url},
    #                   credentials=AnonymousCredentials()), then:
    server.shutdown()

Each task of an execution runs as a local process (the container's `command` + `args`) with the
environment Cloud Run sets (see README.md). Standalone: `python -m emulators.cloudrun --port 8090`.
"""

from emulators.cloudrun.admin import AdminClient
from emulators.cloudrun.server import JobsServer, start_in_thread

__all__ = ["AdminClient", "JobsServer", "start_in_thread"]
