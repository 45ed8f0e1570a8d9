"""gcs-model-registrar: GCS upload -> validated -> registered Vertex AI model version.

A map of the house, in the order the data path reads (event -> upload -> validation -> publish ->
registration -> record). Where a module runs: [F] the function, [W] the sandbox worker, [C] the
`registrar` CLI, [J] the Cloud Run job. [F+C]: shared by design — the CLI's backfill runs the
function's own pipeline, and its other commands read the same records and registry; the job runs
that pipeline too (every [F+C] module also runs in [J]).

Arrows run one way: entry -> pipeline -> stages -> store -> leaves. A part imports its own modules
and the parts on its line, nothing else (tests/test_house.py holds this table, its few named
exceptions, and the short list of imports deferred for their cost; every import counts, those in
functions and under TYPE_CHECKING too, and there is no import circle):

    entry (main.py)      -> pipeline, leaves
    job (job.py, fleet)  -> pipeline, intake, registry, store, leaves
    cli/                 -> pipeline, handoff, intake, registry, store, leaves
    pipeline             -> late, handoff, intake, validation, registry, store, leaves
    late/                -> intake, validation, registry, store, leaves
    handoff/             -> store, leaves
    intake/              -> store, leaves         (names and listings, never bytes)
    validation/          -> leaves                (local files only; no event, no registry)
    registry/            -> store, leaves         (records and the gate's ledger)
    store (gcs/)         -> leaves                (knows no upload, model or registry)
    leaves               -> leaves

Nothing outside cli/ imports cli/; [W] modules import only [W] modules and the shared leaves
protocol, h5 and errors. Contracts own their types: registry/interface.py (ModelRegistry, its
values and ModelNotFound), validation/interface.py (ModelValidator); implementations import them.

    job.py               [J] the Cloud Run job's entry: one handed-off upload through the pipeline
                         with the job's limits, its claim taken over from the hand-off
    fleet.py             [J] one task's share of a fleet backfill: deterministic share by model,
                         paced UploadModel calls, a progress/summary document per task
    pipeline.py          [F+C] the main path: triage routes each event to a stage, one call per
                         stage; the run's deadline; the one summary line per event
    registration.py      [F+C] Registration: record, log line, notification in one value, and the
                         version request (lineage as plain values) built from every stage's result

    leaves:
    outcome.py           [F+C] Outcome: what one event came to (plain values)
    errors.py            [F+C+W] the error hierarchy that decides ack versus redeliver
    settings.py          [F+C] every setting declared once (README table generated from it)
    serving_images.py    [F+C] serving images as data: prebuilt images' lifecycle (the one 60-day
                         warn/refuse rule), TF Serving's container spec and numbered layout,
                         which TensorFlow an image runs
    logs.py notify.py    [F+C] JSON logging, the Pub/Sub outcome message
    hardening.py         [F] makes the function process non-dumpable; warns when Landlock is missing
    model_metrics.py     [F+C] the metrics found for an upload, as plain values (intake reads them,
                         the gate imports them)
    object_names.py      [F+C] the canonical object-name rule (intake and validation apply it)
    limits.py            [F+C] caps on what the function process parses (intake checks them from
                         metadata before download, validation on the file); the most UploadModel
                         calls a minute a backfill may pace to (the CLI and the job's tasks)

    intake/              [F+C] what an event is and which objects form an upload
        events.py            CloudEvent -> ObjectEvent (the only module that knows event shapes)
        layout.py            object name -> kind of upload, display name (the stem rule)
        names.py             the only way a download creates a file (names checked first)
        uploads.py           classified object -> pinned Upload (exact generations, completeness;
                             the graph's asset names come from the validator it is handed)
        listing.py           which uploads a listing holds (backfill, late arrivals)
        download.py          pinned objects into a new local directory, names checked first
        metrics.py           the metrics that travel with an upload (metadata / metrics.json)
        user_metadata.py     the `description` metadata held to text Vertex can take

    validation/          [F+C] the ModelValidator seam (interface.py), its implementation and report
        interface.py validator.py report.py
        scan/                [F+C] static checks without TensorFlow, bounded
            zip_framing.py keras.py keras_config.py keras_allowlist.py keras_hub_allowlist.py (generated)
            h5.py [F+C+W: keras_load reads member offsets with it]
            proto.py tensor_bundle.py savedmodel.py
            graph.py graph_checks.py ops.py op_allowlist.py (generated) saver.py assets_extra.py
            object_graph.py      what tf.saved_model.load wires, held to the graph's rules
            serving_ops.py serving_registry/ (generated op registries per TensorFlow version;
            which version and the images' dates: handlers/serving_images.py)
        sandbox/
            process.py reasons.py    [F+C] the worker's parent side; our words per reason code
            protocol.py              [F+C+W] the shared leaf both sides speak
            worker.py tf_ops.py checks.py feeds.py keras_load.py confine.py   [W]

    gcs/                 [F+C] objects (the store), records (claims + outcomes; `claimed`, the
                         one claim -> finish/release wrapper of every flow), documents (JSON
                         with its generation, under records and ledger), publish (pinned
                         objects -> content-addressed copy), ledger (the gate's lease and decisions)

    registry/            [F+C] interface (the contract: what is asked of a registry, its values and
                         not-found error), labels (MANAGED_BY, how our Vertex resources are
                         marked), lineage (labels + description from plain values),
                         vertex, vertex_types, vertex_errors (the Vertex implementation),
                         folders (a model belongs to the folder of its first version),
                         evaluation (metrics -> ModelEvaluation), promotion (the gate),
                         gated (metrics + gate as a registration stage: prepare / settle),
                         endpoints (deploy one exact version, traffic splits, operations),
                         deploy (the serving-image rule at deploy, the DEPLOY_ENDPOINT hook), canary (the
                         canary lifecycle: one model per endpoint, champion + one canary)

    late/                [F+C] arrivals: the stage beside the main path for files that reach an
                         upload after it was settled (a metrics.json, a late fingerprint.pb),
                         handed its collaborators (store, records, registry, validator, notifier)

    handoff/             [F+C] uploads the function cannot take: policy (HANDOFF_BYTES from the
                         instance memory and the measured peak, the run's deadline), takeover
                         (claim -> `handed_off` with a token -> one job execution), jobs (the
                         Cloud Run Admin API: start an execution, read executions)

    cli/                 [C] app (the `registrar` command; routes `rollback`), context (what every
                         command is handed), commands, output, render, models, status, verify,
                         aliases, backfill, gate, deploy, canary, move (move-image)

Package `__init__` modules stay empty so that importing a leaf (the worker imports
`validation.sandbox.protocol` before TensorFlow) pulls in nothing else.
"""
