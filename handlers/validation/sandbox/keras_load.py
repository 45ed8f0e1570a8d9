"""Loading a `.keras` in the sandbox worker without copies of its weights (worker only: imports
TensorFlow and Keras at import time; see `load_keras_model`)."""

from __future__ import annotations

import contextlib
import gc
import io
import os
import sys
import zipfile
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import h5py
import keras
import numpy as np
import tensorflow as tf
from keras.src.backend.common import global_state
from keras.src.backend.tensorflow.core import Variable as _TFVariable
from keras.src.saving import saving_lib

from ..scan.h5 import MemberWindow, member_data_offset
from .protocol import Failure

_WEIGHTS = "model.weights.h5"
_ZERO_COPY_MIN_BYTES = 1 << 20  # smaller arrays take Keras' ordinary path (no difference)
_ALIGN = 64  # TensorFlow's allocator alignment; Eigen aborts on less (checked, not assumed)


def load_keras_model(path: str) -> Any:
    """`keras.saving.load_model(path, safe_mode=True, compile=False)`, without its weight copies.

    load_model reads `model.weights.h5` into memory (psutil installed) or extracts it next to the
    archive, after initialising every variable randomly; then each weight exists up to 4 times at
    once. Here the model is built from the same config by the same Keras code (safe_mode=True) with
    variable initialisation deferred, and each weight is read from the stored zip member in place
    into an aligned buffer that becomes the variable itself. Archives this does not cover
    (compressed weights, assets) and any unexpected error take load_model itself.
    """
    try:
        plan = _in_place_plan(path)
    except Exception:  # noqa: BLE001 anything unusual: let load_model judge the archive
        plan = None
    if plan is not None:
        try:
            return _load_in_place(path, *plan)
        except (Failure, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 same verdict and message as before: ask load_model
            print(f"in-place load fell back to load_model: {exc!r}"[:500], file=sys.stderr)
            gc.collect()
    return keras.saving.load_model(path, safe_mode=True, compile=False)


def _in_place_plan(path: str) -> tuple[bytes, int, int] | None:
    """(config.json, offset, size) of the stored weights member, or None to use load_model."""
    with open(path, "rb") as f, zipfile.ZipFile(f) as zf:
        if sorted(zf.namelist()) != ["config.json", "metadata.json", _WEIGHTS]:
            return None  # assets need Keras' extraction; anything else is load_model's to judge
        info = zf.getinfo(_WEIGHTS)
        if info.compress_type != zipfile.ZIP_STORED:
            return None
        offset = member_data_offset(f, info)
        if offset + info.file_size > os.fstat(f.fileno()).st_size:
            return None
        return zf.read("config.json"), offset, info.file_size


def _load_in_place(path: str, config: bytes, offset: int, size: int) -> Any:
    """load_model's `_load_model_from_fileobj` minus the weight copies (see load_keras_model)."""
    previous = global_state.get_global_attribute("uninitialized_variables", [])
    global_state.set_global_attribute("uninitialized_variables", [])
    fd = os.open(path, os.O_RDONLY)
    try:
        with keras.StatelessScope(initialize_variables=False):  # values come from the file
            model = saving_lib._model_from_config(config, None, False, True)
        pending = list(global_state.get_global_attribute("uninitialized_variables", []))
        store = _InPlaceStore(io.BufferedReader(MemberWindow(fd, offset, size), 1 << 20))
        failed: set[Any] = set()
        errors: dict[Any, Any] = {}
        try:
            with _adopting_assign():
                saving_lib._load_state(
                    model,
                    weights_store=store,
                    assets_store=None,
                    inner_path="",
                    visited_saveables=set(),
                    failed_saveables=failed,
                    error_msgs=errors,
                )
        finally:
            store.close()
        if failed:
            saving_lib._raise_loading_failure(errors)
        for variable in pending:  # not in the file (e.g. optimizer-free state): as load_model
            if variable._value is None:
                variable._deferred_initialize()
        return model
    finally:
        os.close(fd)
        global_state.set_global_attribute("uninitialized_variables", previous)


class _InPlaceStore(saving_lib.H5IOStore):
    """Keras' HDF5 weight store (same group/dataset checks) on an open file object; large arrays
    are read into buffers aligned for TensorFlow, so a variable can adopt them without a copy."""

    def __init__(self, fileobj: Any) -> None:
        self._fileobj = fileobj
        super().__init__(_WEIGHTS, mode="r")

    def _get_h5_file(self, path_or_io: Any, mode: str | None = None) -> Any:
        return h5py.File(self._fileobj, mode="r")

    def __getitem__(self, key: str) -> Any:
        dataset = saving_lib.safe_get_h5_dataset(self._h5_entry_group, key)
        dtype = dataset.dtype
        if (
            dtype.kind not in "fiu"
            or "dtype" in dataset.attrs
            or dataset.nbytes < _ZERO_COPY_MIN_BYTES
        ):
            return super().__getitem__(key)  # bfloat16, strings, small: Keras' own conversion
        raw = np.empty(dataset.nbytes + _ALIGN, dtype=np.uint8)
        start = -raw.ctypes.data % _ALIGN
        array = (
            raw[start : start + dataset.nbytes].view(dtype.newbyteorder("=")).reshape(dataset.shape)
        )
        dataset.read_direct(array)
        return array


def _adoptable(value: Any, dtype: Any) -> bool:
    return (
        isinstance(value, np.ndarray)
        and value.nbytes >= _ZERO_COPY_MIN_BYTES
        and value.dtype.kind in "fiu"
        and value.dtype.isnative
        and value.flags.c_contiguous
        and value.flags.writeable
        and value.ctypes.data % _ALIGN == 0
        and dtype is not None
        and keras.backend.standardize_dtype(value.dtype.name)
        == keras.backend.standardize_dtype(dtype)
    )


@contextlib.contextmanager
def _adopting_assign() -> Iterator[None]:
    """While loading: a large aligned array becomes a tensor without a copy (dlpack; a plain
    conversion copies it twice), and an uninitialised (deferred) variable takes the loaded tensor
    as its value instead of running its initializer and then copying the value over it."""
    convert, assign = _TFVariable._convert_to_tensor, _TFVariable._direct_assign

    def _convert(self: Any, value: Any, dtype: Any = None) -> Any:
        if _adoptable(value, dtype):
            return tf.experimental.dlpack.from_dlpack(value.__dlpack__())
        return convert(self, value, dtype=dtype)

    def _assign(self: Any, value: Any) -> None:
        if self._value is not None:
            assign(self, value)
            return
        with tf.init_scope():
            self._initialize(tf.cast(value, self._dtype))
        self._initializer = None

    _TFVariable._convert_to_tensor, _TFVariable._direct_assign = _convert, _assign
    try:
        yield
    finally:
        _TFVariable._convert_to_tensor, _TFVariable._direct_assign = convert, assign
