"""UploadModel's artifact check, as Vertex does it: look into `artifact_uri` before accepting.

Vertex copies a model's artifacts at upload, and refuses a directory it cannot serve:
- a bucket outside the Vertex region (Vertex "Import models" page,
  cloud.google.com/vertex-ai/docs/general/import-model: the bucket's region must match the
  regional endpoint); multi-region and dual-region buckets (`US`, `EU`, `NAM4`, ...) are refused
  too - "In Vertex, buckets must be in a single region and must match the region of the Vertex
  service" (vertex-ai-samples#19; python-aiplatform#885 has the service's error text,
  FAILED_PRECONDITION);
- more than 10 GB of artifacts (same page: the total file size must be 10 GB or less) - taken as
  10 * 10**9 bytes, summed over every object under the directory, sub-directories included;
- a directory that holds no files at all;
- for a prebuilt TensorFlow serving image (`…/vertex-ai/prediction/tf2-cpu.*`, `tf2-gpu.*`,
  `tf-cpu.*`, `tf-gpu.*`), one without exactly one of `saved_model.pb` / `saved_model.pbtxt` at
  its top level.
The emulator reads the bucket (`GET /storage/v1/b/B`) and lists the directory recursively through
the GCS JSON API of a storage emulator (fake-gcs-server), stdlib only. A storage endpoint that
does not answer is a 503 (transient): the check is never silently skipped once an endpoint is
configured.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode

from emulators.vertex.errors import ApiError, failed_precondition, invalid

_LOG = logging.getLogger("emulators.vertex")
# Google's prebuilt TensorFlow prediction images (aiplatform `constants/prediction.py`), current
# (`{us,europe,asia}-docker.pkg.dev/vertex-ai/prediction/`) and legacy (`gcr.io/cloud-aiplatform`).
PREBUILT_TF = re.compile(
    r"(?:[a-z]+-docker\.pkg\.dev/vertex-ai|(?:[a-z]+\.)?gcr\.io/cloud-aiplatform)/prediction/"
    r"tf2?-(?:cpu|gpu)\.[0-9-]+(?::[\w.-]+)?"
)
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
MAX_ARTIFACT_BYTES = 10 * 10**9  # "10 GB or less": decimal gigabytes
_PAGE_SIZE = 1000
_MAX_PAGES = 200  # 200k objects under one model directory is far past anything real


def normalise_storage_url(url: str | None) -> str | None:
    """`STORAGE_EMULATOR_HOST` may be `host:port` (as gsutil takes it) or a full URL."""
    if not url:
        return None
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


class ArtifactChecker:
    """Checks artifact directories in the storage service at `storage_url` (a GCS JSON API)."""

    def __init__(self, storage_url: str, timeout: float = 5.0) -> None:
        self.storage_url = normalise_storage_url(storage_url) or ""
        self._timeout = timeout

    def check(self, artifact_uri: str, image_uri: str, location: str) -> None:
        """Raise the ApiError Vertex answers for `artifact_uri` served by `image_uri` from the
        Vertex region `location`, if any."""
        bucket, _, path = artifact_uri[len("gs://") :].partition("/")
        prefix = path.rstrip("/") + "/" if path.strip("/") else ""
        directory = f"gs://{bucket}/{prefix}"
        self._check_location(bucket, directory, location)
        sizes = self._list(bucket, prefix)
        below = [name[len(prefix) :] for name in sizes if name != prefix]
        files = {prefix + rest for rest in below if "/" not in rest}
        if not below:  # a zero-byte `dir/` placeholder alone is not a file
            raise invalid(f'There are no files under "{directory}" to copy.')
        if PREBUILT_TF.fullmatch(image_uri):
            found = [name for name in SAVED_MODEL_FILES if prefix + name in files]
            if len(found) != 1:
                raise invalid(
                    f"Model directory {directory} is expected to contain exactly one of: "
                    f"[{', '.join(SAVED_MODEL_FILES)}]."
                )
        total = sum(sizes.values())
        if total > MAX_ARTIFACT_BYTES:
            raise invalid(
                f"The model artifacts under {directory} total {total} bytes; the total file size "
                f"of model artifacts must be 10 GB ({MAX_ARTIFACT_BYTES} bytes) or less."
            )

    def _check_location(self, bucket: str, directory: str, location: str) -> None:
        """The bucket must be in the Vertex region itself (GCS reports e.g. `US-CENTRAL1`)."""
        reply = self._get(f"/storage/v1/b/{quote(bucket, safe='')}", bucket)
        bucket_location = str(reply.get("location") or "").lower()
        if bucket_location != location.lower():
            raise failed_precondition(
                f"The Cloud Storage bucket of `{directory}` is in location `{bucket_location}`. "
                f"It must be in the same regional location as the service location "
                f"`{location}`."
            )

    def _list(self, bucket: str, prefix: str) -> dict[str, int]:
        """Every object under `prefix`, sub-directories included: name -> size in bytes."""
        sizes: dict[str, int] = {}
        token = ""
        for _ in range(_MAX_PAGES):
            query = {"prefix": prefix, "maxResults": str(_PAGE_SIZE)}
            if token:
                query["pageToken"] = token
            reply = self._get(
                f"/storage/v1/b/{quote(bucket, safe='')}/o?{urlencode(query)}", bucket
            )
            for item in reply.get("items", []):
                sizes[item["name"]] = int(item.get("size") or 0)
            token = reply.get("nextPageToken") or ""
            if not token:
                break
        return sizes

    def _get(self, path: str, bucket: str) -> dict[str, Any]:
        url = self.storage_url + path
        try:
            with urllib.request.urlopen(url, timeout=self._timeout) as reply:
                return json.loads(reply.read() or b"{}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise invalid(
                    f"Cloud Storage bucket {bucket!r} of Model.artifact_uri does not exist."
                ) from None
            if exc.code in (401, 403):
                raise ApiError(
                    403,
                    f"Vertex AI cannot read gs://{bucket}: the Vertex AI service agent needs "
                    "storage.objects.list on it.",
                ) from None
            raise _unavailable(url, f"HTTP {exc.code}") from None
        except (OSError, ValueError) as exc:  # URLError, refused, timeout, a garbled reply
            raise _unavailable(url, repr(exc)) from None


def _unavailable(url: str, why: str) -> ApiError:
    _LOG.warning("artifact check: storage endpoint %s failed: %s", url, why)
    return ApiError(
        503,
        f"The artifact check could not list the model directory in Cloud Storage ({why}). "
        "Try again later.",
    )
