"""Runs under the serving TensorFlow's own venv (`.venv-tf220/bin/python`: TensorFlow 2.20.0, the
TensorFlow of the default serving image tensorflow/serving:2.20.0; never imports `handlers`).

For each artifact directory (the `artifact_uri` a version registers) it does what TF Serving does
with `--model_base_path=<artifact_uri>`: find the numeric version sub-directories, take the
highest, load the MetaGraph tagged "serve" into a session (variables restored through the saver,
the init op run: `tf.compat.v1.saved_model.loader.load`), then run serving_default.

stdin: JSON list of {"base", "feed": {input key: .npy path}, "out": .npz path}. stdout: a JSON list
of {"ok": true, "tf": version, "version": "1"} or {"ok": false, "error": "..."}, in order.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf


def load_and_run(job: dict) -> dict:
    base = job["base"]
    numbered = [name for name in os.listdir(base) if name.isdigit()]
    if not numbered:  # TF Serving: "No versions of servable … found under base path"
        return {"ok": False, "error": f"no numeric version directory under {base}"}
    version = max(numbered, key=int)
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], os.path.join(base, version))
        signature = meta.signature_def["serving_default"]
        feed = {signature.inputs[k].name: np.load(p) for k, p in job["feed"].items()}
        fetch = {k: v.name for k, v in signature.outputs.items()}
        np.savez(job["out"], **session.run(fetch, feed))
    return {"ok": True, "tf": tf.__version__, "version": version}


def main() -> int:
    results = []
    for job in json.load(sys.stdin):
        try:
            results.append(load_and_run(job))
        except Exception as exc:  # noqa: BLE001 report every failure, carry on with the next
            results.append({"ok": False, "error": f"{type(exc).__name__}: {exc}"[:3000]})
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
