"""Builders for hostile (and benign) artifacts, with plain zipfile/h5py/json where possible."""

from __future__ import annotations

import base64
import copy
import json
import marshal
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np

METADATA = {"keras_version": "3.15.1", "date_saved": "2000-01-01@00:00:00"}


def sentinel_code(sentinel: Path) -> str:
    """base64 marshal of a function that would create `sentinel` if it ever ran (Lambda payload)."""
    namespace: dict[str, Any] = {}
    exec(f"def f(x):\n    open({str(sentinel)!r}, 'w').write('pwned')\n    return x", namespace)
    return base64.b64encode(marshal.dumps(namespace["f"].__code__)).decode()


def lambda_layer(sentinel: Path, name: str = "evil") -> dict[str, Any]:
    return {
        "module": "keras.layers",
        "class_name": "Lambda",
        "config": {
            "name": name,
            "function": {
                "class_name": "__lambda__",
                "config": {"code": sentinel_code(sentinel), "defaults": None, "closure": None},
            },
        },
        "registered_name": None,
        "name": name,
        "inbound_nodes": [],
    }


def read_member(keras_file: Path, name: str) -> bytes:
    with zipfile.ZipFile(keras_file) as zf:
        return zf.read(name)


def write_keras(
    path: Path,
    config: Any,
    *,
    weights: bytes | None = None,
    metadata: Any = None,
    extra: dict[str, bytes] | None = None,
    compression: int = zipfile.ZIP_STORED,
) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps(metadata or METADATA))
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", weights if weights is not None else empty_h5(path))
        for name, data in (extra or {}).items():
            zf.writestr(name, data, compress_type=compression)
    return path


def empty_h5(near: Path) -> bytes:
    tmp = near.with_suffix(".tmp.h5")
    with h5py.File(tmp, "w") as h5:
        h5.create_group("layers")
    data = tmp.read_bytes()
    tmp.unlink()
    return data


def with_layer(base_config: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    """A copy of a functional config with `layer` appended to its layers."""
    config = copy.deepcopy(base_config)
    config["config"]["layers"].append(layer)
    return config


def h5_with_external_link(path: Path, target: str) -> bytes:
    tmp = path.with_suffix(".tmp.h5")
    with h5py.File(tmp, "w") as h5:
        h5.create_group("layers/dense/vars")
        h5["layers/dense/vars/0"] = h5py.ExternalLink(target, "/secret")
    data = tmp.read_bytes()
    tmp.unlink()
    return data


def legacy_h5(path: Path) -> Path:
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = json.dumps({"class_name": "Sequential"})
        h5.create_dataset("model_weights/dense/kernel", data=np.zeros((4, 3), "float32"))
    return path
