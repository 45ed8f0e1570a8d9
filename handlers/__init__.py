"""gcs-model-registrar: GCS upload -> validated -> registered Vertex AI model version.

A map of the house, in the order the data path reads (event -> upload -> validation -> publish ->
registration -> record). Where a module runs: [F] the function, [W] the sandbox worker, [C] the
`registrar` CLI. [F+C]: shared by design — the CLI's backfill runs the function's own pipeline, and
its other commands read the same records and registry. tests/test_house.py checks the directions
(no cycles; nothing outside cli/ imports cli/; [W] modules import only [W] modules and the shared
leaves protocol, h5 and errors).

    pipeline.py          [F+C] orchestration only: one method per stage
    outcome.py           [F+C] Outcome, and Registration: record, log line, notification in one value
    errors.py            [F+C+W] the error hierarchy that decides ack versus redeliver
    settings.py          [F+C] every setting declared once (README table generated from it)
    serving_images.py    [F+C] serving images as data: prebuilt images' lifecycle (the one 60-day
                         warn/refuse rule), TF Serving's container spec and numbered layout,
                         which TensorFlow an image runs
    logs.py retry.py notify.py   [F+C] JSON logging, bounded retries, the Pub/Sub outcome message
    hardening.py         [F] the function process makes itself non-dumpable

    intake/              [F+C] what an event is and which objects form an upload
        events.py            CloudEvent -> ObjectEvent (the only module that knows event shapes)
        layout.py            object name -> kind of upload, display name (the stem rule)
        names.py             canonical object names; the only way a download creates a file
        uploads.py           classified object -> pinned Upload (exact generations, completeness)
        metrics.py           the metrics that travel with an upload (metadata / metrics.json)

    validation/          [F+C] the Validator seam and its report
        validator.py report.py
        scan/                [F+C] static checks without TensorFlow, bounded
            limits.py zip_framing.py keras.py keras_config.py keras_allowlist.py (generated)
            h5.py [F+C+W: keras_load reads member offsets with it]
            proto.py tensor_bundle.py savedmodel.py
            graph.py graph_checks.py ops.py op_allowlist.py (generated) saver.py assets_extra.py
            serving_ops.py serving_registry/ (generated op registries per TensorFlow version;
            which version and the images' dates: handlers/serving_images.py)
        sandbox/
            process.py reasons.py    [F+C] the worker's parent side; our words per reason code
            protocol.py              [F+C+W] the shared leaf both sides speak
            worker.py tf_ops.py checks.py feeds.py keras_load.py confine.py   [W]

    gcs/                 [F+C] objects (the store), records (claims + outcomes), publish,
                         ledger (the promotion gate's per-model lease and decisions)

    registry/            [F+C] interface (what the pipeline asks of a registry), lineage,
                         vertex, vertex_types, vertex_errors (the Vertex implementation),
                         evaluation (metrics -> ModelEvaluation), promotion (the gate),
                         gated (metrics + gate as the pipeline runs them, late metrics.json),
                         endpoints (deploy one exact version, traffic splits, operations),
                         deploy (the serving-image rule at deploy, the DEPLOY_ENDPOINT canary)

    cli/                 [C] app (the `registrar` command), commands, output, render, models,
                         status, verify, aliases, backfill, gate, deploy, move (move-image)

Package `__init__` modules stay empty so that importing a leaf (the worker imports
`validation.sandbox.protocol` before TensorFlow) pulls in nothing else.
"""
