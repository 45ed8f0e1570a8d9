"""Build benchmark models in a child process (TensorFlow stays out of the bench process):
`python -m bench.build SPEC_JSON` where SPEC_JSON is a list of
{"kind": "keras" | "saved_model", "path": ..., "bytes": ..., "seed": ...}.

Every model is one float32 Dense layer (kernel `d x d`, d = sqrt(bytes / 4)), so its weights are
`bytes` long; `.keras` files come from `model.save`, SavedModels from `tf.saved_model.save` with an
explicit `serving_default` (not `model.export()`, which writes every weight twice: keras#23553).
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def side(n_bytes: int) -> int:
    return max(2, math.isqrt(n_bytes // 4))


def build(spec: dict[str, Any]) -> None:
    import numpy as np

    d = side(int(spec["bytes"]))
    rng = np.random.default_rng(int(spec["seed"]))
    kernel = rng.random((d, d), dtype=np.float32) - np.float32(0.5)
    bias = rng.random((d,), dtype=np.float32)
    path = Path(spec["path"])
    path.parent.mkdir(parents=True, exist_ok=True)
    if spec["kind"] == "keras":
        import keras

        inputs = keras.Input(shape=(d,), name="x", dtype="float32")
        model = keras.Model(inputs, keras.layers.Dense(d, name="dense")(inputs), name="bench")
        model.get_layer("dense").set_weights([kernel, bias])
        model.save(path)
        del model
    else:
        import tensorflow as tf

        module = tf.Module()
        module.kernel = tf.Variable(kernel, name="kernel")
        constant = tf.constant(bias)

        @tf.function(input_signature=[tf.TensorSpec([None, d], tf.float32, name="x")])
        def serve(x: Any) -> dict[str, Any]:
            return {"y": tf.matmul(x, module.kernel) + constant}

        module.serve = serve
        tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    del kernel


def build_in_child(specs: list[dict[str, Any]]) -> None:
    """Build `specs` in a fresh child process (the caller never imports TensorFlow)."""
    import subprocess

    from bench.common import PYTHON, ROOT, clean_env

    done = subprocess.run(
        [PYTHON, "-m", "bench.build", json.dumps([{**s, "path": str(s["path"])} for s in specs])],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"building benchmark models failed: {done.stderr[-2000:]}")


def main() -> None:
    for spec in json.loads(sys.argv[1]):
        build(spec)
    print("built", flush=True)


if __name__ == "__main__":
    main()
