"""The graph-level checks of a SavedModel, in the function process, on the parsed MetaGraph:
op allowlist (`scan.ops`), saver structure (`scan.saver`), the object graph the Python loader
wires (`scan.object_graph`), `assets.extra/` (`scan.assets_extra`)
and the serving runtime's op registry (`scan.serving_ops`). Called by
`scan.savedmodel.scan_saved_model_dir` for uploads and for the export of every `.keras`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import PermanentError, SettingsError
from ...serving_images import resolve_tf_version
from ...settings import Settings
from .assets_extra import check_assets_extra
from .graph import GraphIndex
from .object_graph import check_object_graph
from .ops import check_ops
from .saver import check_saver, restore_names, saver_functions
from .serving_ops import check_serving_compat
from .tensor_bundle import BundleError, open_bundle_index


def check_graph(root: Path, meta: Any, settings: Settings) -> list[str]:
    """Raise `Rejected` (`savedmodel.disallowed_op`, `.bad_saver`, `.object_graph_mismatch`,
    `.object_graph_path`, `.bad_assets_extra`, `.serving_incompatible`) or return notes for
    the report. The variables index must already have been checked (`scan.savedmodel`)."""
    index = GraphIndex(meta)
    saver_fns = saver_functions(index)
    check_ops(index, saver_fns)
    wanted = restore_names(index, saver_fns)
    check_saver(index, _index_keys(root / "variables" / "variables.index", wanted))
    notes = check_object_graph(root, index)
    notes += check_assets_extra(root, meta)
    version = serving_tf_version(settings)
    check_serving_compat(index, version)
    return [*notes, f"loads in serving TensorFlow {version}"]


def serving_tf_version(settings: Settings) -> str:
    """The serving TensorFlow version; a settings problem is a permanent error here (the
    settings check at start-up normally reports it first)."""
    try:
        return resolve_tf_version(settings.serving_image, settings.serving_tf_version)
    except SettingsError as exc:
        raise PermanentError(str(exc), code="settings.serving_tf_version") from None


def _index_keys(index: Path, wanted: set[str]) -> set[str] | None:
    """Which of `wanted` the variables index holds (one streamed pass; nothing else is kept);
    None when there is no index."""
    if not index.is_file():
        return None
    if not wanted:
        return set()
    found = set()
    try:
        with open_bundle_index(index) as (_, entries):
            for key, *_ in entries:
                if key in wanted:
                    found.add(key)
    except (BundleError, OSError, UnicodeDecodeError):
        return set()  # already rejected by the variables check when it is unreadable
    return found
