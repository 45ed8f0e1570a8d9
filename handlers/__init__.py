"""gcs-model-registrar: GCS upload -> validated -> registered Vertex AI model version.

A map of the house, in the order the data path reads (event -> upload -> validation -> publish ->
registration -> record). Where a module runs: [F] the function, [W] the sandbox worker, [C] the
`registrar` CLI; [F+C] shared by design (the CLI reuses the function's library, e.g. backfill).

    pipeline.py          [F+C] orchestration only: one method per stage
    errors.py settings.py logs.py retry.py notify.py   [F+C] cross-cutting
    intake/              [F+C] what an event is and which objects form an upload
        events.py            CloudEvent -> ObjectEvent (the only module that knows event shapes)
        layout.py            object name -> kind of upload, display name
        uploads.py           classified object -> pinned Upload (exact generations)
        metrics.py           the metrics that travel with an upload (metadata / metrics.json)
    validation/          [F+C] the Validator seam and its report
        validator.py report.py
        scan/                static checks without TensorFlow (parent side, bounded)
        sandbox/             process.py [F+C] parent side; protocol.py shared leaf;
                             worker.py tf_ops.py checks.py keras_load.py [W]
    gcs/                 [F+C] objects (the store), records (claims + outcomes), publish,
                         ledger (the promotion gate's per-model lease and decisions)
    registry/            [F+C] the ModelRegistry interface, lineage, Vertex implementation;
                         evaluation (metrics -> ModelEvaluation), promotion (the gate),
                         gated (metrics + gate as the pipeline runs them, late metrics.json)
                         endpoints (deploy one exact version, traffic splits, operations),
                         deploy (serving-image check, the DEPLOY_ENDPOINT canary)
    cli/                 [C] the `registrar` command and its pieces

Package `__init__` modules stay empty so that importing a leaf (the worker imports
`validation.sandbox.protocol` before TensorFlow) pulls in nothing else.
"""
