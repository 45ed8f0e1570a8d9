"""A Vertex AI Model Registry emulator: the v1 ModelService over the REST surface the SDK uses.

    server, base_url = start_in_thread(port=0)
    # point the SDK at base_url (api_transport="rest", AnonymousCredentials()), then:
    server.shutdown()

`start_in_thread(port=0, storage_url=gcs_url)` also checks UploadModel's artifact directory in
that storage emulator, as Vertex does (see README.md).
Standalone: `python -m emulators.vertex --port 8089` (checks artifacts in `--storage-url`, else
`$STORAGE_EMULATOR_HOST`, when either is set).
"""

from emulators.vertex.admin import AdminClient
from emulators.vertex.server import EmulatorServer, start_in_thread
from emulators.vertex.store import Store

__all__ = ["AdminClient", "EmulatorServer", "Store", "start_in_thread"]
