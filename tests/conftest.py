"""Shared fixtures: real fake-gcs-server and Vertex emulator processes, real tiny TF models,
and functions-framework's own app serving `register_model` (the same app a real server runs).

Nothing here is mocked; the only thing this machine cannot provide is real GCP credentials, which
is why every client points at an emulator.

Session fixtures are per test process: under pytest-xdist each worker starts its own emulators
(on free ports, in its own temp dirs), so nothing here is shared between workers. No fixture leaves
the function's settings in `os.environ`: they are passed to what needs them (`function_env`,
`make_settings()`), or set for a scope with `monkeypatch` / `pytest.MonkeyPatch.context()`.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from dev import stack
from dev.bridge import binary_event
from emulators.vertex.admin import AdminClient
from handlers.settings import Settings

PROJECT = "test-project"
LOCATION = "us-central1"
# The emulators judge serving images' end of availability on this date, not on the calendar, so
# tests naming Vertex's prebuilt 2.15 image keep passing after 2027-01-14.
EMULATOR_TODAY = "2026-12-07"
ROOT = Path(__file__).resolve().parent.parent
_bucket_ids = itertools.count()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `slow` first: pytest-xdist (`--dist loadfile`) hands whole files to the
    workers in this order, so the long files start at once, on different workers, instead of
    one of them ending the run alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable


@dataclass
class Services:
    storage_url: str
    vertex_url: str


@pytest.fixture(scope="session")
def service_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service-logs")


@pytest.fixture(scope="session")
def fake_gcs(service_logs: Path) -> Iterator[stack.Service]:
    """The session's fake-gcs-server (one per worker); tests make their own buckets in it."""
    storage = stack.start_fake_gcs(log_dir=service_logs)
    yield storage
    storage.stop()


@pytest.fixture(scope="session")
def services(fake_gcs: stack.Service, service_logs: Path) -> Iterator[Services]:
    """fake-gcs-server and the Vertex emulator as separate processes, as deployed in `make up`;
    this emulator checks artifact directories in that fake-gcs-server."""
    vertex = stack.start_vertex_emulator(
        log_dir=service_logs, storage_url=fake_gcs.url, today=EMULATOR_TODAY
    )
    yield Services(fake_gcs.url, vertex.url)
    vertex.stop()


@pytest.fixture(scope="session")
def emulator_url() -> Iterator[str]:
    """The session's in-process Vertex emulator (port 0, no artifact check), for the emulator and
    registry tests; a test resets it by asking for `admin`."""
    from datetime import date

    from emulators.vertex import start_in_thread

    # A fixed "today": the prebuilt images the tests name are judged on it, not on the calendar.
    server, url = start_in_thread(port=0, today=date.fromisoformat(EMULATOR_TODAY))
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture
def admin(emulator_url: str) -> Any:
    """The in-process emulator's admin client, after a reset (state, faults, config)."""
    from emulators.vertex import AdminClient

    handle = AdminClient(emulator_url)
    handle.reset()
    return handle


def make_settings(**fields: Any) -> Settings:
    """The one way tests build a `Settings` directly: the test project plus `fields`. (The
    function's own path, environment -> `Settings.from_env`, is `function_env`'s.)"""
    return Settings(**{"project": PROJECT, **fields})


def function_env(services: Services, **overrides: str) -> dict[str, str]:
    return {
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "VERTEX_LOCATION": LOCATION,
        "STORAGE_EMULATOR_HOST": services.storage_url,
        "VERTEX_AI_EMULATOR_HOST": services.vertex_url,
        "LOG_LEVEL": "DEBUG",
        **overrides,
    }


class Vertex(AdminClient):
    """The emulator through its real REST API, plus the admin client it ships (faults, reset,
    config: emulators/vertex/admin.py, the one the dev stack uses too)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.parent = f"projects/{PROJECT}/locations/{LOCATION}"

    def models(self, display_name: str | None = None) -> list[dict[str, Any]]:
        """Every model (each page: the API pages at 100)."""
        params = {"filter": f'display_name="{display_name}"'} if display_name else {}
        found: list[dict[str, Any]] = []
        while True:
            reply = requests.get(f"{self.url}/v1/{self.parent}/models", params=params, timeout=5)
            reply.raise_for_status()
            page = reply.json()
            found += page.get("models", [])
            if not page.get("nextPageToken"):
                return found
            params = {**params, "pageToken": page["nextPageToken"]}

    def versions(self, model_name: str) -> list[dict[str, Any]]:
        reply = requests.get(f"{self.url}/v1/{model_name}:listVersions", timeout=5)
        reply.raise_for_status()
        return sorted(reply.json().get("models", []), key=lambda m: int(m["versionId"]))

    def all_versions(self) -> list[dict[str, Any]]:
        return [v for m in self.models() for v in self.versions(m["name"])]


@pytest.fixture
def vertex(services: Services) -> Vertex:
    handle = Vertex(services.vertex_url)
    handle.reset()
    return handle


class Bucket:
    """One fresh, versioned fake-gcs-server bucket per test, used through the JSON API."""

    def __init__(self, storage_url: str, name: str) -> None:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        self.storage_url = storage_url
        self.name = name
        self.client = storage.Client(
            project=PROJECT,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": storage_url},
        )
        stack.create_bucket(storage_url, name)
        self.handle = self.client.bucket(name)

    def upload(
        self,
        local: Path,
        name: str,
        metadata: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        blob = self.handle.blob(name)
        if metadata:
            blob.metadata = metadata
        blob.upload_from_filename(str(local))
        return self.resource(name)

    def upload_bytes(self, data: bytes, name: str) -> dict[str, Any]:
        self.handle.blob(name).upload_from_string(data)
        return self.resource(name)

    def upload_dir(
        self, local_dir: Path, prefix: str, *, seed: int = 0, metadata: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Like `gcloud storage cp -r`: one object per file, in a shuffled order."""
        files = sorted(p for p in local_dir.rglob("*") if p.is_file())
        random.Random(seed).shuffle(files)
        return [
            self.upload(p, prefix + p.relative_to(local_dir).as_posix(), metadata) for p in files
        ]

    def resource(self, name: str) -> dict[str, Any]:
        """The object resource exactly as the JSON API (and so the event payload) has it."""
        from urllib.parse import quote

        reply = requests.get(
            f"{self.storage_url}/storage/v1/b/{self.name}/o/{quote(name, safe='')}", timeout=5
        )
        reply.raise_for_status()
        return reply.json()

    def read_json(self, name: str) -> dict[str, Any]:
        return json.loads(self.handle.blob(name).download_as_bytes())

    def record(self, resource: dict[str, Any]) -> dict[str, Any]:
        """The registrar's record of an uploaded object generation (`.keras` uploads)."""
        return self.read_json(
            f"registrar-state/uploads/{resource['name']}/g{resource['generation']}.json"
        )

    def names(self, prefix: str = "") -> list[str]:
        return sorted(b.name for b in self.client.list_blobs(self.name, prefix=prefix))


@pytest.fixture
def bucket(services: Services) -> Bucket:
    return Bucket(services.storage_url, f"test-bucket-{os.getpid()}-{next(_bucket_ids)}")


@pytest.fixture(scope="session")
def function_client(services: Services) -> Any:
    """functions-framework's app for main.py as deployed (uvicorn/ASGI), driven over HTTP."""
    return _function_app(services, asgi=True)


@pytest.fixture(scope="session")
def wsgi_function_client(services: Services) -> Any:
    """The same function under FUNCTION_USE_ASGI=false: gunicorn + Flask's WSGI app."""
    return _function_app(services, asgi=False)


class _AsgiClient:
    """Starlette's TestClient with the `post(path, data=, headers=)` of Flask's test client."""

    def __init__(self, app: Any) -> None:
        import warnings

        with warnings.catch_warnings():  # starlette 1.x nudges towards httpx2; httpx works
            warnings.simplefilter("ignore")
            from starlette.testclient import TestClient

        self._client = TestClient(app, raise_server_exceptions=False)

    def post(self, path: str, data: bytes | str, headers: dict[str, str]) -> Any:
        body = data.encode() if isinstance(data, str) else data
        return self._client.post(path, content=body, headers=headers)


def _function_app(services: Services, *, asgi: bool) -> Any:
    from functions_framework import _function_registry, create_app

    # main.py reads its settings once, when create_app imports it; the environment (and what
    # functions-framework itself writes into it) is restored right after, not left for the session.
    env = function_env(services, FUNCTION_USE_ASGI="true" if asgi else "false")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        for name in ("FUNCTION_TARGET", "FUNCTION_SIGNATURE_TYPE"):
            patch.delenv(name, raising=False)  # restored (removed) afterwards
        # functions-framework remembers ASGI registrations process-wide; main.py registers afresh.
        _function_registry.ASGI_FUNCTIONS.discard("register_model")
        app = create_app(
            target="register_model", source=str(ROOT / "main.py"), signature_type="cloudevent"
        )
    return _AsgiClient(app) if asgi else app.test_client()


def deliver(client: Any, resource: dict[str, Any], event_id: str | None = None) -> int:
    """POST the binary-mode CloudEvent Eventarc would send for this object; returns the status."""
    headers, body = binary_event(resource, event_id)
    return client.post("/", data=body, headers=headers).status_code


def deliver_until_acked(
    url: str,
    resource: dict[str, Any],
    event_id: str | None = None,
    *,
    max_attempts: int = 80,
    max_backoff: float = 1.0,
) -> int:
    """POST the event to a function server until it answers 2xx, as Pub/Sub push redelivers (with
    a shortened, jittered backoff); returns the number of attempts. The event id defaults to the
    object's name#generation, so redeliveries are the same event."""
    event_id = event_id or f"{resource['name']}#{resource['generation']}"
    headers, body = binary_event(resource, event_id)
    for attempt in range(1, max_attempts + 1):
        if requests.post(url, data=body, headers=headers, timeout=300).status_code < 300:
            return attempt
        time.sleep(min(max_backoff, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))
    raise AssertionError(f"{resource['name']} never acknowledged")


@dataclass(frozen=True)
class Models:
    keras_a: Path
    keras_b: Path
    saved_model: Path  # two variables shards
    saved_model_b: Path


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    from tests.modelfactory import build_keras_model, build_saved_model

    root = tmp_path_factory.mktemp("models")
    return Models(
        keras_a=build_keras_model(root / "a" / "model.keras", seed=1),
        keras_b=build_keras_model(root / "b" / "model.keras", seed=2),
        saved_model=build_saved_model(root / "sm", seed=3, shards=2),
        saved_model_b=build_saved_model(root / "sm_b", seed=4),
    )
