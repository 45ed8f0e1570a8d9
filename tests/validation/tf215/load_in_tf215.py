"""Runs under a serving TensorFlow's own venv (`.venv-tf215/bin/python`: TensorFlow 2.15.1;
`.venv-tf220/bin/python`: 2.20.0; never imports `handlers`): loads each SavedModel the way TF
Serving does (the MetaGraph tagged "serve" into a session, variables restored through the saver,
the init op run: `tf.compat.v1.saved_model.loader.load`), then runs its serving_default signature.

A job names the SavedModel directory (`dir`), or the base path TF Serving is given (`base`, i.e.
`--model_base_path=<artifact_uri>`): then, as TF Serving does, the highest numeric
sub-directory is the version loaded, and none is an error.

stdin: JSON list of {"dir" | "base", "feed": {input key: .npy path}, "out": .npz path}. stdout: a
JSON list of {"ok": true, "tf": version[, "version": "1"]} or {"ok": false, "error": "..."}, in order.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf


def load_and_run(job: dict) -> dict:
    found: dict = {}
    directory = job.get("dir")
    if "base" in job:
        numbered = [name for name in os.listdir(job["base"]) if name.isdigit()]
        if not numbered:  # TF Serving: "No versions of servable … found under base path"
            return {"ok": False, "error": f"no numeric version directory under {job['base']}"}
        found["version"] = max(numbered, key=int)
        directory = os.path.join(job["base"], found["version"])
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], directory)
        signature = meta.signature_def["serving_default"]
        feed = {signature.inputs[k].name: np.load(p) for k, p in job["feed"].items()}
        fetch = {k: v.name for k, v in signature.outputs.items()}
        np.savez(job["out"], **session.run(fetch, feed))
    return {"ok": True, "tf": tf.__version__, **found}


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
