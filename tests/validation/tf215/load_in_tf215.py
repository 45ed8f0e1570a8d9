"""Runs under `.venv-tf215/bin/python` (TensorFlow 2.15.1 only; never imports `handlers`): loads
each SavedModel the way TF Serving 2.15 does (the MetaGraph tagged "serve" into a session,
variables restored through the saver, the init op run: `tf.compat.v1.saved_model.loader.load`),
then runs its serving_default signature.

stdin: JSON list of {"dir", "feed": {input key: .npy path}, "out": .npz path}. stdout: a JSON list
of {"ok": true, "tf": version} or {"ok": false, "error": "..."} in the same order.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf


def load_and_run(job: dict) -> dict:
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], job["dir"])
        signature = meta.signature_def["serving_default"]
        feed = {signature.inputs[k].name: np.load(p) for k, p in job["feed"].items()}
        fetch = {k: v.name for k, v in signature.outputs.items()}
        np.savez(job["out"], **session.run(fetch, feed))
    return {"ok": True, "tf": tf.__version__}


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
