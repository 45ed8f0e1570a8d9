"""Inputs for test predictions, synthesised from a serving signature (worker only: TensorFlow).

Two feeds per model: all zeros (unknown dimensions 1), and a seeded random sample within the
declared dtypes (unknown dimensions 2): floats uniform in [-1, 1], integers 0 or 1 (a valid index
into any vocabulary or embedding), booleans, and short lowercase ASCII strings. A graph that works
on zeros only — an assertion on its input, an index taken from it — fails the second.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np
import tensorflow as tf

SEED = 20260101
_LETTERS = np.array(list(string.ascii_lowercase.encode()), dtype=np.uint8)


def zeros(specs: dict[str, Any]) -> dict[str, np.ndarray]:
    """All-zero inputs of the declared shapes, batch 1 (and 1 for any other unknown dimension);
    empty strings for string inputs."""
    feed = {}
    for name, spec in specs.items():
        shape = _shape(spec, 1)
        if spec.dtype == tf.string:
            feed[name] = np.full(shape, b"", dtype=object)
        else:
            feed[name] = np.zeros(shape, spec.dtype.as_numpy_dtype)
    return feed


def sample(specs: dict[str, Any], seed: int = SEED) -> dict[str, np.ndarray]:
    """A seeded random sample of the declared inputs (unknown dimensions 2; inputs in name
    order, so the same signature always gets the same sample)."""
    rng = np.random.default_rng(seed)
    feed = {}
    for name in sorted(specs):
        spec = specs[name]
        shape, dtype = _shape(spec, 2), spec.dtype
        if dtype == tf.string:
            lengths = rng.integers(1, 9, size=shape)
            words = [bytes(rng.choice(_LETTERS, int(n))) for n in lengths.ravel()]
            feed[name] = np.array(words, dtype=object).reshape(shape)
        elif dtype.is_floating:
            feed[name] = rng.uniform(-1.0, 1.0, shape).astype(dtype.as_numpy_dtype)
        elif dtype.is_complex:
            values = rng.uniform(-1.0, 1.0, shape) + 1j * rng.uniform(-1.0, 1.0, shape)
            feed[name] = values.astype(dtype.as_numpy_dtype)
        elif dtype.is_bool:
            feed[name] = rng.integers(0, 2, shape).astype(bool)
        elif dtype.is_integer:
            feed[name] = rng.integers(0, 2, shape).astype(dtype.as_numpy_dtype)
        else:
            feed[name] = np.zeros(shape, dtype.as_numpy_dtype)
    return feed


def string_input(specs: dict[str, Any]) -> str | None:
    """The first string input's name, if any."""
    return next((n for n in sorted(specs) if getattr(specs[n], "dtype", None) == tf.string), None)


def _shape(spec: Any, unknown: int) -> list[int]:
    return [unknown if d is None else d for d in spec.shape.as_list()]
